"""What every peer comparison shares: tools run alternating (A B C, A B C, …) so a slow spell of the
machine hits each alike, the median of the runs, and a markdown table with Sluice/peer ratios, which
is printed and, when $SLUICE_PEERS_OUT names a file, appended to it."""
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys


WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def reshape(rec, rng):
    """One clickstream record as compact JSON bytes, shaped as no reader is tuned to: 11 more
    fields the queries do not read (longer strings, a nested object, unicode, numbers, null) and
    its keys in an order of its own (`rng`, seeded by the caller)."""
    rec = dict(rec)
    rec.update({
        "message": " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 40))),
        "request_id": f"{rng.getrandbits(128):032x}",
        "trace": {"root": f"1-{rng.getrandbits(32):08x}-{rng.getrandbits(96):024x}", "sampled": rng.random() < 0.1,
                  "spans": [rng.randint(0, 10**6) for _ in range(3)]},
        "status": rng.choice([200, 200, 200, 301, 404, 500]),
        "ratio": round(rng.random(), 6),
        "host": f"ip-10-{rng.randint(0, 255)}-{rng.randint(0, 255)}-{rng.randint(0, 255)}.ec2.internal",
        "tags": [rng.choice(WORDS) for _ in range(rng.randint(0, 4))],
        "path": "/" + "/".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6))),
        "experiment": None,
        "retries": rng.randint(0, 3),
        "note": "Ünïcödé ✓ " * rng.randint(1, 5),
    })
    items = list(rec.items())
    rng.shuffle(items)
    return json.dumps(dict(items), separators=(",", ":"), ensure_ascii=False).encode()


def alternate(tools, runs):
    """`tools`: name → callable returning seconds (or (seconds, extra)). Each is run once untimed
    (after the inputs just written are flushed to disk: their writeback competed with the first
    timed runs, and a 3-run median of the rollup once took 300 ms where the next run gave 180 ms),
    then `runs` times, in turns. A tool that raises on a run is reported and left out. Returns
    name → (median seconds, list of seconds, last extra)."""
    times = {name: [] for name in tools}
    extra = {}
    live = dict(tools)
    os.sync()
    for round_ in range(runs + 1):
        warm = round_ > 0
        for name, fn in list(live.items()):
            try:
                r = fn()
            except Exception as e:  # a peer not installed, or failing, is reported, not fatal
                print(f"  {name}: skipped: {e}", file=sys.stderr)
                del live[name]
                continue
            if isinstance(r, tuple):
                r, extra[name] = r[0], r[1]
            if warm:
                times[name].append(r)
    return {n: (statistics.median(t), t, extra.get(n)) for n, t in times.items() if t}


def table(title, note, results, columns, sluice="Sluice"):
    """A markdown section: `columns` are (header, fn(median_seconds, extra) → str); a last column
    gives how many times faster Sluice is than each peer (peer median ÷ Sluice median; below 1 the
    peer is faster)."""
    base = next((v[0] for k, v in results.items() if k.startswith(sluice)), None)
    lines = [f"### {title}", "", note, "",
             "| tool | " + " | ".join(h for h, _ in columns) + " | runs | peer time ÷ Sluice time |",
             "|---|" + "---:|" * (len(columns) + 2)]
    for name, (med, runs, extra) in results.items():
        ratio = "—" if base is None or name.startswith(sluice) else f"{med / base:.2f}×"
        lines.append(f"| {name} | " + " | ".join(fn(med, extra) for _, fn in columns)
                     + f" | {len(runs)} | {ratio} |")
    return "\n".join(lines) + "\n"


def throughput(size, records):
    """The columns of a job over `size` bytes and `records` records: median, MB/s, records/s."""
    return [("median", lambda m, _: f"{m * 1000:.0f} ms"),
            ("MB/s", lambda m, _: f"{size / m / 1e6:.0f}"),
            ("records/s", lambda m, _: f"{records / m:,.0f}")]


def emit(md):
    print(md)
    out = os.environ.get("SLUICE_PEERS_OUT")
    if out:
        with open(out, "a", encoding="utf-8") as f:
            f.write(md + "\n")


def _cmd(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except Exception:
        return None


def versions(sluice_bin=None, node_modules=None):
    """Every tool's version, as a markdown list."""
    v = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {_cpu_model()}",
         "os": platform.platform(), "python": platform.python_version(),
         "rustc": _cmd(["rustc", "--version"]), "node": _cmd(["node", "--version"])}
    if sluice_bin:
        v["sluice"] = _cmd([sluice_bin, "--version"])
    for mod in ("duckdb", "polars", "pyarrow", "PIL"):
        try:
            m = __import__(mod)
            v["Pillow" if mod == "PIL" else mod] = m.__version__
        except Exception:
            pass
    if node_modules:
        for pkg in ("sharp", "apache-arrow", "parquet-wasm"):
            try:
                with open(os.path.join(node_modules, pkg, "package.json")) as f:
                    v[pkg] = json.load(f)["version"]
            except Exception:
                pass
    if shutil.which("vips"):
        v["libvips"] = _cmd(["vips", "--version"])
    return "\n".join(f"- {k}: {val}" for k, val in v.items() if val) + "\n"


def _cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
