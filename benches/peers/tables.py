#!/usr/bin/env python3
"""Iceberg table output against Parquet output, one core, same data: NDJSON → filter and the
reference rollup, each into zstd Parquet files and into an Iceberg table (the embedded SQLite
catalog), through the dist-profile `sluice replay` (the real handler, the filesystem store).

The input is split into PARTS objects, each its own S3 event, replayed as PARTS invocations in one
process: into a table that is PARTS commits (one snapshot each). Reported: end-to-end MB/s for
each (whole process, median of RUNS), the table's throughput as a share of Parquet's, and the
commit's own cost per invocation (`commit_ms` of each summary: loading the table, the fast
append, the catalog update), median and p99 over every invocation of every run.

Usage: tables.py SLUICE_BIN INPUT.ndjson [RUNS] [PARTS]
Prints (and appends to $SLUICE_PEERS_OUT) a markdown table.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import alternate, emit  # noqa: E402

SCHEMA = ('schema = { ts = "timestamp", user_id = "string", event_type = "string", page = "string", '
          'latency_ms = "int64", bytes = "int64" }')
FILTER = ('name = "filter"\n[input]\nformat = "ndjson"\n' + SCHEMA + '\n'
          '[[stage]]\ntype = "filter"\nwhere = "event_type <> \'view\' OR latency_ms > 500"\n')
TABLE = '[output]\nuri = "s3://out/lake/"\nformat = "iceberg"\ntable = "bench.t"\n'
PARQUET = '[output]\nuri = "s3://out/files/"\n'


def rollup_head():
    text = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "rollup.toml")).read()
    return text[: text.index("[output]")]


def split(src, store, parts):
    """`src` cut at line boundaries into `parts` objects in/c/part-N.ndjson; their keys."""
    folder = os.path.join(store, "in", "c")
    os.makedirs(folder, exist_ok=True)
    size = os.path.getsize(src)
    keys = []
    with open(src, "rb") as f:
        for n in range(parts):
            chunk = f.read(size // parts) if n < parts - 1 else f.read()
            chunk += f.readline() if n < parts - 1 else b""
            key = f"c/part-{n:03}.ndjson"
            with open(os.path.join(store, "in", key), "wb") as out:
                out.write(chunk)
            keys.append(key)
    return keys


def main():
    bin_path, src = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    parts = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    work = tempfile.mkdtemp(prefix="sluice-tables-")
    try:
        store = os.path.join(work, "store")
        keys = split(src, store, parts)
        events = []
        for key in keys:
            ev = os.path.join(work, key.replace("/", "_") + ".json")
            with open(ev, "w") as f:
                subprocess.run([bin_path, "event", "s3", "--bucket", "in", "--key", key, "--store", store],
                               check=True, stdout=f)
            events.append(ev)
        size = os.path.getsize(src)
        configs = {
            "filter → Parquet": FILTER + PARQUET,
            "filter → table": FILTER + TABLE,
            "rollup → Parquet": rollup_head() + PARQUET,
            "rollup → table": rollup_head() + TABLE,
        }
        commits = {name: [] for name in configs}
        tools = {}
        for name, text in configs.items():
            cfg = os.path.join(work, name.split()[0] + ("-table" if "table" in name else "-parquet") + ".toml")
            with open(cfg, "w") as f:
                f.write(text)

            def run(cfg=cfg, name=name):
                out = tempfile.mkdtemp(dir=work)
                env = dict(os.environ, TOKIO_WORKER_THREADS="1")
                t = time.perf_counter()
                p = subprocess.run(["taskset", "-c", "0", bin_path, "replay", cfg, *events, "--store", store,
                                    "--out", out, "--json"], check=True, capture_output=True, text=True, env=env)
                took = time.perf_counter() - t
                shutil.rmtree(out)
                summaries = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
                assert len(summaries) == parts and not any(s.get("error") for s in summaries), p.stdout[-2000:]
                commits[name].extend(s["commit_ms"] for s in summaries if s.get("commit_ms") is not None)
                return took, sum(s["records_out"] for s in summaries)

            tools[name] = run
        results = alternate(tools, runs)
        lines = [f"### Iceberg table output against Parquet output ({size / 1e6:.0f} MB NDJSON in {parts} objects, "
                 f"{parts} invocations per run, one core)", "",
                 "The dist-profile `sluice replay` (whole process, one worker thread on one core), medians of "
                 f"{runs} runs in turns; into a table each invocation is one commit to a local SQLite catalog. "
                 "`commit_ms` is the commit's own time per invocation.", "",
                 "| pipeline | median s | MB/s | records out | table ÷ Parquet throughput | commit ms p50 | commit ms p99 |",
                 "|---|---:|---:|---:|---:|---:|---:|"]
        for name, (med, _, out_rows) in results.items():
            share = ""
            if "table" in name:
                base = results.get(name.replace("table", "Parquet"))
                if base:
                    share = f"{base[0] / med:.2f}"
            c = sorted(commits[name])
            p50 = f"{statistics.median(c):.1f}" if c else ""
            p99 = f"{c[min(len(c) - 1, int(len(c) * 0.99))]:.1f}" if c else ""
            lines.append(f"| {name} | {med:.3f} | {size / med / 1e6:.0f} | {out_rows} | {share} | {p50} | {p99} |")
        emit("\n".join(lines) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
