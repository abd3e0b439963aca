#!/usr/bin/env python3
"""Side-by-side, one core: NDJSON → filter → zstd Parquet on the same generated clickstream file,
by Sluice (the dist-profile `sluice replay`, the real handler with the filesystem store), DuckDB (one
thread) and pyarrow (one thread, the usual Python Lambda approach).

Usage: filter_to_parquet.py SLUICE_BIN INPUT.ndjson [RUNS]
Prints (and appends to $SLUICE_PEERS_OUT) a markdown table: medians, MB/s, records/s, ratios.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

FILTER_SQL = "event_type <> 'view' OR latency_ms > 500"
COLUMNS = ["ts", "user_id", "event_type", "page", "latency_ms", "bytes"]


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import alternate, emit, table, throughput  # noqa: E402


def clocked(fn):
    """fn timed: () → (seconds, what fn returned)."""
    def run():
        t = time.perf_counter()
        r = fn()
        return time.perf_counter() - t, r
    return run


def sluice(bin_path, src, work):
    store = os.path.join(work, "store")
    os.makedirs(os.path.join(store, "in", "clickstream"), exist_ok=True)
    dst = os.path.join(store, "in", "clickstream", "part-0.ndjson")
    if not os.path.exists(dst):
        os.link(src, dst) if os.stat(src).st_dev == os.stat(store).st_dev else shutil.copy(src, dst)
    cfg = os.path.join(work, "pipeline.toml")
    with open(cfg, "w") as f:
        f.write(
            'name = "peer"\n[input]\nformat = "ndjson"\n'
            'schema = { ts = "timestamp", user_id = "string", event_type = "string", page = "string", latency_ms = "int64", bytes = "int64" }\n'
            f'[[stage]]\ntype = "filter"\nwhere = "{FILTER_SQL}"\n[output]\nuri = "s3://out/peer/"\n'
        )
    ev = os.path.join(work, "event.json")
    size = os.path.getsize(dst)
    subprocess.run([bin_path, "event", "s3", "--bucket", "in", "--key", "clickstream/part-0.ndjson", "--size", str(size)],
                   check=True, stdout=open(ev, "w"))

    def run():
        # One worker thread, like one vCPU.
        env = dict(os.environ, TOKIO_WORKER_THREADS="1")
        out = subprocess.run(["taskset", "-c", "0", bin_path, "replay", cfg, ev, "--store", store, "--json"],
                             check=True, capture_output=True, text=True, env=env)
        return json.loads(out.stdout.splitlines()[0])["records_out"]

    return clocked(run)


def duckdb_run(src, work):
    import duckdb

    out = os.path.join(work, "duckdb.parquet")

    def run():
        con = duckdb.connect()
        con.execute("SET threads = 1")
        cols = "{" + ", ".join(f"'{c}': '{t}'" for c, t in zip(COLUMNS, ["TIMESTAMPTZ", "VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "BIGINT"])) + "}"
        con.execute(
            f"COPY (SELECT {', '.join(COLUMNS)} FROM read_ndjson('{src}', columns={cols}) WHERE {FILTER_SQL}) "
            f"TO '{out}' (FORMAT parquet, COMPRESSION zstd)"
        )
        return con.execute(f"SELECT count(*) FROM '{out}'").fetchone()[0]

    return clocked(run)


def pyarrow_run(src, work):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    out = os.path.join(work, "pyarrow.parquet")
    schema = pa.schema([("ts", pa.timestamp("us", tz="UTC")), ("user_id", pa.string()), ("event_type", pa.string()),
                        ("page", pa.string()), ("latency_ms", pa.int64()), ("bytes", pa.int64())])

    def run():
        t = pj.read_json(src, read_options=pj.ReadOptions(use_threads=False, block_size=8 << 20),
                         parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))
        mask = pc.or_kleene(pc.not_equal(t["event_type"], "view"), pc.greater(t["latency_ms"], 500))
        kept = t.filter(mask)
        pq.write_table(kept, out, compression="zstd")
        return kept.num_rows

    return clocked(run)


def main():
    bin_path, src = sys.argv[1], os.path.abspath(sys.argv[2])
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    size = os.path.getsize(src)
    records = sum(1 for _ in open(src, "rb"))
    with tempfile.TemporaryDirectory() as work:
        tools = {}
        for name, make in [("Sluice", lambda: sluice(bin_path, src, work)),
                           ("DuckDB (1 thread)", lambda: duckdb_run(src, work)),
                           ("pyarrow (1 thread)", lambda: pyarrow_run(src, work))]:
            try:
                tools[name] = make()
            except Exception as e:  # a peer that is not installed is reported, not fatal
                print(f"{name}: skipped: {e}", file=sys.stderr)
        results = alternate(tools, runs)
        kept = {n: r[2] for n, r in results.items()}
        if len(set(kept.values())) > 1:
            print(f"row counts differ: {kept}")
            sys.exit(1)
        emit(table(
            "NDJSON → filter → zstd Parquet",
            f"{size / 1e6:.0f} MB of generated clickstream NDJSON, {records} records, {next(iter(kept.values()), 0)} kept; "
            "one core each (`taskset -c 0`, one thread); median of the runs, run in turns; Sluice is the "
            "dist-profile `sluice replay` (process start included), the peers are timed inside their process.",
            results,
            throughput(size, records)))


if __name__ == "__main__":
    main()
