#!/usr/bin/env python3
"""Side-by-side, one core: NDJSON → filter → zstd Parquet on the same generated clickstream file,
by Sluice (the release `sluice replay`, the real handler with the filesystem store), DuckDB (one
thread) and pyarrow (one thread, the usual Python Lambda approach).

Usage: filter_to_parquet.py SLUICE_BIN INPUT.ndjson
Prints MB/s and records/s per tool, and peak resident memory for Sluice.
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

FILTER_SQL = "event_type <> 'view' OR latency_ms > 500"
COLUMNS = ["ts", "user_id", "event_type", "page", "latency_ms", "bytes"]


def best_of(n, fn):
    times = []
    result = None
    for _ in range(n):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


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

    return best_of(3, run)


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

    return best_of(3, run)


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

    return best_of(3, run)


def main():
    bin_path, src = sys.argv[1], os.path.abspath(sys.argv[2])
    size = os.path.getsize(src)
    records = sum(1 for _ in open(src, "rb"))
    with tempfile.TemporaryDirectory() as work:
        rows = {}
        for name, fn in [("sluice", lambda: sluice(bin_path, src, work)), ("duckdb (1 thread)", lambda: duckdb_run(src, work)),
                         ("pyarrow (1 thread)", lambda: pyarrow_run(src, work))]:
            try:
                secs, kept = fn()
            except Exception as e:  # a peer that is not installed is reported, not fatal
                print(f"{name:20} skipped: {e}")
                continue
            rows[name] = kept
            extra = ""
            if name == "sluice":
                peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
                extra = f"   peak RSS {peak:.0f} MiB"
            print(f"{name:20} {secs * 1000:8.0f} ms  {size / secs / 1e6:7.0f} MB/s  {records / secs / 1e6:5.2f} M records/s  kept {kept}{extra}")
        if len(set(rows.values())) > 1:
            print(f"row counts differ: {rows}")
            sys.exit(1)


if __name__ == "__main__":
    main()
