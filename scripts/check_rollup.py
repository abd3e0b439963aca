#!/usr/bin/env python3
"""Check the aggregate stage against answers computed independently:

1. the bundled rollup example (objects with nulls and bad lines) against a Python aggregation of the
   same records, read with json;
2. a generated clickstream file (~16 MB) against DuckDB running the same query.

Counts, sums, max and distinct counts must be equal; averages within 1e-12 relative.
Usage: check_rollup.py SLUICE_BIN GEN_CLICKSTREAM_BIN
"""
import os
import subprocess
import sys
import tempfile

import duckdb
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_example import ROOT, kept, valid_records  # noqa: E402

MINUTE = 60_000_000


def micros(ts):
    import datetime
    return int(datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1_000_000 + 0.5)


def sluice_groups(path):
    t = pq.read_table(path)
    out = {}
    for r in t.to_pylist():
        w = int(r["window_start"].timestamp() * 1_000_000 + 0.5)
        out[(w, r["page"])] = (r["hits"], r["bytes"], r["avg_latency"], r["max_latency"], r["users"], r["slow"])
    return out


def same(got, want, what):
    assert set(got) == set(want), f"{what}: groups differ: {len(got)} vs {len(want)}; e.g. {sorted(set(got) ^ set(want), key=repr)[:3]}"
    for k, w in want.items():
        g = got[k]
        for i, (a, b) in enumerate(zip(g, w)):
            if i == 2:
                assert (a is None and b is None) or abs(a - b) <= 1e-12 * max(1.0, abs(b)), f"{what} {k} avg {a} != {b}"
            else:
                assert a == b, f"{what} {k} field {i}: {a} != {b}"


def python_rollup():
    groups = {}
    for rec in filter(kept, valid_records()[0]):
        lat = rec.get("latency_ms")
        w = micros(rec["ts"]) // MINUTE * MINUTE
        g = groups.setdefault((w, rec["page"]), {"hits": 0, "bytes": 0, "lat": [], "users": set(), "slow": 0})
        g["hits"] += 1
        g["bytes"] += rec["bytes"]
        if lat is not None:
            g["lat"].append(lat)
            g["slow"] += lat > 1000
        g["users"].add(rec["user_id"])
    return {
        k: (g["hits"], g["bytes"], (sum(g["lat"]) / len(g["lat"])) if g["lat"] else None, max(g["lat"]) if g["lat"] else None, len(g["users"]), g["slow"])
        for k, g in groups.items()
    }


def main():
    sluice, gen = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as out:
        res = subprocess.run([sluice, "replay", "examples/clickstream-rollup/pipeline.toml", "examples/clickstream-rollup/events/", "--out", out, "--json"],
                             cwd=ROOT, capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr
        folder = os.path.join(out, "analytics-out", "rollups")
        files = [f for f in os.listdir(folder) if f.endswith(".parquet")]
        assert len(files) == 1, files
        same(sluice_groups(os.path.join(folder, files[0])), python_rollup(), "example")

    with tempfile.TemporaryDirectory() as work:
        store = os.path.join(work, "store")
        data = os.path.join(store, "in", "clickstream", "part-0.ndjson")
        os.makedirs(os.path.dirname(data))
        subprocess.run([gen, data, "16"], check=True, capture_output=True)
        ev = os.path.join(work, "event.json")
        with open(ev, "w") as f:
            subprocess.run([sluice, "event", "s3", "--bucket", "in", "--key", "clickstream/part-0.ndjson", "--store", store], check=True, stdout=f)
        cfg = os.path.join(work, "pipeline.toml")
        text = open(os.path.join(ROOT, "examples", "clickstream-rollup", "pipeline.toml")).read().replace("analytics-out", "out")
        open(cfg, "w").write(text)
        res = subprocess.run([sluice, "replay", cfg, ev, "--store", store, "--json"], capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr
        folder = os.path.join(store, "out", "rollups")
        got = sluice_groups(os.path.join(folder, os.listdir(folder)[0]))
        rows = duckdb.sql(f"""
            select epoch_us(ts) // {MINUTE} * {MINUTE} as w, page, count(*), sum(bytes), avg(latency_ms), max(latency_ms),
                   count(distinct user_id), sum(case when latency_ms > 1000 then 1 else 0 end)
            from read_ndjson('{data}', columns={{'ts': 'TIMESTAMPTZ', 'user_id': 'VARCHAR', 'event_type': 'VARCHAR', 'page': 'VARCHAR', 'latency_ms': 'BIGINT', 'bytes': 'BIGINT'}})
            where event_type <> 'view' or latency_ms > 500
            group by all
        """).fetchall()
        want = {(r[0], r[1]): (r[2], int(r[3]), r[4], r[5], r[6], int(r[7])) for r in rows}
        same(got, want, "generated")
        print(f"rollup ok: example matches Python; {len(want)} groups over 16 MB match DuckDB")
    print("2 passed, 0 failed")


if __name__ == "__main__":
    main()
