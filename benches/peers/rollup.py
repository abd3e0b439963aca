#!/usr/bin/env python3
"""The reference rollup side by side, one core each: NDJSON → filter `event_type <> 'view' OR
latency_ms > 500` → group by page and 1-minute window → count, sum(bytes), avg(latency_ms),
max(latency_ms), count_distinct(user_id) → zstd Parquet. Plain and gzip input, and the records
reshaped (common.reshape: 11 more unread fields, each record's keys in an order of its own).

Sluice runs as the dist-profile `sluice replay` process pinned to one core; DuckDB with threads=1;
Polars with POLARS_MAX_THREADS=1 in its own process (gzip is inflated by Python's gzip module, as a
Python Lambda would). Peers are timed inside their process (interpreter start and imports are not
counted); Sluice is timed as a whole process, start-up included. Prints (and appends to
$SLUICE_PEERS_OUT) a markdown table per input: medians, MB/s, records/s, ratios.

Usage: rollup.py SLUICE_BIN INPUT.ndjson [RUNS]
"""
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

FILTER = "event_type <> 'view' OR latency_ms > 500"
ROLLUP_TOML = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "rollup.toml")).read()

DUCK = """
SET threads = 1;
COPY (
  SELECT time_bucket(INTERVAL '1 minute', ts) AS window_start, page, count(*) AS hits, sum(bytes) AS bytes,
         avg(latency_ms) AS avg_latency, max(latency_ms) AS max_latency, count(DISTINCT user_id) AS users
  FROM read_ndjson('{src}', columns={{'ts': 'TIMESTAMPTZ', 'user_id': 'VARCHAR', 'event_type': 'VARCHAR', 'page': 'VARCHAR', 'latency_ms': 'BIGINT', 'bytes': 'BIGINT'}})
  WHERE {filter}
  GROUP BY ALL ORDER BY 1, 2
) TO '{out}' (FORMAT parquet, COMPRESSION zstd);
"""

POLARS = r"""
import gzip, io, sys, time, polars as pl
src, out = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
schema = {"ts": pl.String, "user_id": pl.String, "event_type": pl.String, "page": pl.String, "latency_ms": pl.Int64, "bytes": pl.Int64}
data = gzip.open(src).read() if src.endswith(".gz") else src
df = pl.read_ndjson(io.BytesIO(data) if isinstance(data, bytes) else data, schema=schema)
df = df.with_columns(pl.col("ts").str.to_datetime(time_zone="UTC"))
(df.filter((pl.col("event_type") != "view") | (pl.col("latency_ms") > 500))
   .group_by(pl.col("ts").dt.truncate("1m").alias("window_start"), "page")
   .agg(pl.len().alias("hits"), pl.col("bytes").sum(), pl.col("latency_ms").mean().alias("avg_latency"),
        pl.col("latency_ms").max().alias("max_latency"), pl.col("user_id").n_unique().alias("users"))
   .sort("window_start", "page")
   .write_parquet(out, compression="zstd"))
print(time.perf_counter() - t0)
"""


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import alternate, emit, reshape, table, throughput  # noqa: E402


def once(cmd, env=None, inner=False):
    """Seconds of one run. With `inner`, the command prints its own query time (so the Python
    interpreter's start and imports are not charged to the peer)."""
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, env=env, text=True)
    return float(out.stdout.strip().splitlines()[-1]) if inner else time.perf_counter() - t


def main():
    sluice, src = sys.argv[1], os.path.abspath(sys.argv[2])
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    size = os.path.getsize(src)
    records = sum(1 for _ in open(src, "rb"))
    py = sys.executable
    with tempfile.TemporaryDirectory() as work:
        gz = os.path.join(work, "clickstream.ndjson.gz")
        with open(src, "rb") as f, gzip.open(gz, "wb", compresslevel=6) as g:
            shutil.copyfileobj(f, g)
        store = os.path.join(work, "store", "in", "c")
        os.makedirs(store)
        shutil.copy(src, os.path.join(store, "part.ndjson"))
        shutil.copy(gz, os.path.join(store, "part.ndjson.gz"))
        # The same records shaped as no reader is tuned to (common.reshape): more unread fields,
        # each record's keys in an order of its own.
        wide = os.path.join(store, "wide.ndjson")
        rng = random.Random(31)
        with open(src, "rb") as f, open(wide, "wb") as w:
            for line in f:
                w.write(reshape(json.loads(line), rng) + b"\n")
        cfg = os.path.join(work, "rollup.toml")
        open(cfg, "w").write(ROLLUP_TOML)
        for label, path, key in [("plain", src, "c/part.ndjson"), ("gzip", gz, "c/part.ndjson.gz"),
                                 ("reshaped", wide, "c/wide.ndjson")]:
            size = os.path.getsize(path) if label == "reshaped" else os.path.getsize(src)
            ev = os.path.join(work, f"{label}.json")
            with open(ev, "w") as f:
                subprocess.run([sluice, "event", "s3", "--bucket", "in", "--key", key, "--store", os.path.join(work, "store")], check=True, stdout=f)
            env1 = dict(os.environ, TOKIO_WORKER_THREADS="1")
            duck_sql = os.path.join(work, f"q-{label}.sql")
            open(duck_sql, "w").write(DUCK.format(src=path, filter=FILTER, out=os.path.join(work, "duck.parquet")))
            tools = {
                "Sluice": lambda ev=ev: once(["taskset", "-c", "0", sluice, "replay", cfg, ev, "--store", os.path.join(work, "store"), "--json"], env=env1),
                "DuckDB (1 thread)": lambda duck_sql=duck_sql: once(["taskset", "-c", "0", py, "-c",
                    f"import duckdb, time; c = duckdb.connect(); q = open('{duck_sql}').read(); t = time.perf_counter(); c.execute(q); print(time.perf_counter() - t)"],
                    inner=True),
                "Polars (1 thread)": lambda path=path: once(["taskset", "-c", "0", py, "-c", POLARS, path, os.path.join(work, "polars.parquet")],
                                                           env=dict(os.environ, POLARS_MAX_THREADS="1"), inner=True),
            }
            results = alternate(tools, runs)
            # Peak memory of a lone Sluice run (RUSAGE_CHILDREN is the max over children so far,
            # so measured in a fresh interpreter).
            peak = subprocess.run([py, "-c", "import resource, subprocess, sys; subprocess.run(sys.argv[1:], capture_output=True); "
                                   "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)",
                                   sluice, "replay", cfg, ev, "--store", os.path.join(work, "store")],
                                  capture_output=True, text=True).stdout.strip()
            emit(table(
                f"Rollup ({label} NDJSON{', gzip level 6' if label == 'gzip' else ''}"
                f"{' (22 fields, each record with its keys in an order of its own)' if label == 'reshaped' else ''}) → filter → group by page, 1 min → zstd Parquet",
                f"{size / 1e6:.0f} MB uncompressed, {records} records; one core each; median of the runs, run in "
                f"turns. Sluice is a whole `sluice replay` process (start-up included; peak RSS {peak} MiB); "
                "DuckDB and Polars are timed inside their process.",
                results,
                throughput(size, records)))


if __name__ == "__main__":
    main()
