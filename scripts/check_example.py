#!/usr/bin/env python3
"""Replay the bundled example and check its Parquet output against answers computed here, from the
input objects, with Python's json module; the output is read with pyarrow and with DuckDB.

Usage: check_example.py PATH/TO/sluice
"""
import gzip
import json
import math
import os
import subprocess
import sys
import tempfile

import duckdb
import pyarrow.dataset as ds

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OBJECTS = os.path.join(ROOT, "fixtures", "objects", "analytics-in")
KEYS = [
    "clickstream/2026/11/22/web+app events.ndjson",
    "clickstream/2026/11/23/café-東京.ndjson.gz",
    "clickstream/2026/11/24/firehose-1.ndjson.gz",
]


def lines(key):
    data = open(os.path.join(OBJECTS, key), "rb").read()
    if data[:2] == b"\x1f\x8b":
        # gzip.decompress reads every member, as Firehose's concatenated files need.
        data = gzip.decompress(data)
    return data.split(b"\n")


def valid_records():
    """The records of the example objects that Sluice must accept, as dicts, read independently."""
    rejected = 0
    out = []
    for key in KEYS:
        for raw in lines(key):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                rejected += 1
                continue
            if not isinstance(rec, dict):
                rejected += 1
                continue
            lat = rec.get("latency_ms")
            if lat is not None and not isinstance(lat, int):
                rejected += 1
                continue
            out.append(rec)
    return out, rejected


def kept(rec):
    """SQL semantics of `event_type <> 'view' OR latency_ms > 500`: null is not true."""
    et, lat = rec.get("event_type"), rec.get("latency_ms")
    return (et is not None and et != "view") or (lat is not None and lat > 500)


def expected():
    records, rejected = valid_records()
    rows = []
    for rec in filter(kept, records):
        kb = math.floor(rec["bytes"] / 1024.0 * 10 + 0.5) / 10
        rows.append((rec["ts"][:10], rec["user_id"], rec["page"], rec["geo"]["country"], rec.get("latency_ms"), kb))
    return sorted(rows, key=repr), rejected


def main():
    sluice = sys.argv[1]
    want, want_rejected = expected()
    with tempfile.TemporaryDirectory() as out:
        cmd = [sluice, "replay", "examples/clickstream/pipeline.toml", "examples/clickstream/events/", "--out", out, "--json"]
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr
        summary = json.loads(res.stdout.splitlines()[0])
        table = ds.dataset(os.path.join(out, "analytics-out", "clickstream"), format="parquet", partitioning="hive").to_table()
        got = sorted(
            (
                str(r["day"]),
                r["user_id"],
                r["page"],
                r["country"],
                r["latency_ms"],
                r["kb"],
            )
            for r in table.to_pylist()
        )
        assert len(got) == len(want), f"pyarrow read {len(got)} rows, expected {len(want)}"
        for g, w in zip(sorted(got, key=repr), want):
            assert g[:5] == w[:5] and abs(g[5] - w[5]) < 1e-9, f"{g} != {w}"
        assert summary["records_out"] == len(want), summary
        assert summary["rejected"] == want_rejected, (summary, want_rejected)
        glob = os.path.join(out, "analytics-out", "clickstream", "**", "*.parquet")
        counts = duckdb.sql(
            f"select cast(day as varchar), count(*), count(*) filter (where slow) from read_parquet('{glob}', hive_partitioning=true) group by 1 order by 1"
        ).fetchall()
        by_day = {}
        for r in want:
            d = by_day.setdefault(r[0], [0, 0])
            d[0] += 1
            d[1] += r[4] is not None and r[4] > 500
        assert counts == [(d, n, s) for d, (n, s) in sorted(by_day.items())], (counts, by_day)
        rejects = [json.loads(l) for l in open(os.path.join(out, "analytics-out", "rejects", "clickstream", [f for f in os.listdir(os.path.join(out, "analytics-out", "rejects", "clickstream"))][0]))]
        assert len(rejects) == want_rejected and all(r["reason"] and r["source"].startswith("s3://analytics-in/") for r in rejects)
    print(f"example ok: {len(want)} rows in {len(counts)} day partitions match pyarrow and DuckDB; {want_rejected} rejects with reasons")
    print("3 passed, 0 failed")


if __name__ == "__main__":
    main()
