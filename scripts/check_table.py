#!/usr/bin/env python3
"""Iceberg table outputs, read back by an independent reader (pyiceberg, PyPI), never our code.

1. The bundled example (examples/clickstream-table) replayed: pyiceberg reads the table from its
   SQLite catalog, and its rows equal the rows the Parquet example (examples/clickstream) writes
   for the same events (read with pyarrow). One snapshot, recording the three objects.
2. The same events replayed again: nothing added (every object reported already committed).
3. Concurrency: 16 `sluice replay` processes started together, each on a different object, commit
   into one table: 16 snapshots, every row exactly once. All 16 replayed again together: no new
   rows, no new snapshot.
4. Evolution: a new column in the data is added to the table; an incompatible type fails the
   object, naming the column, and commits nothing.
5. Kinesis: batches recorded by their shard's sequence ranges; a redelivered batch adds only
   what is not committed.
6. Glue: the example's table in the AWS Glue Data Catalog against moto's Glue and S3
   (SLUICE_TEST_S3_ENDPOINT), read back with pyiceberg's GlueCatalog: the rows equal the Parquet
   output's in S3 for the same objects; replayed again, nothing added.

Usage: check_table.py SLUICE
"""
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pyarrow as pa
import pyarrow.dataset as ds
from pyiceberg.catalog.sql import SqlCatalog

EXAMPLE = "examples/clickstream-table"
DEADLINE_S = 180


def replay(sluice, config, events, out, store=None):
    cmd = [sluice, "replay", config, events, "--out", out, "--json"]
    if store:
        cmd += ["--store", store]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=DEADLINE_S)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}: {r.stdout} {r.stderr}"
    return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]


def table(out, name="analytics.clicks"):
    cat = SqlCatalog("sluice", uri=f"sqlite:///{out}/catalog.db", warehouse=f"file://{out}")
    return cat.load_table(name)


def rows(t: pa.Table, columns):
    """The rows as sorted tuples of text; an instant as its UTC wall time (a Glue table keeps
    timestamps as `timestamp`, in UTC)."""
    t = t.select(columns)
    out = []
    for r in t.to_pylist():
        vals = []
        for v in r.values():
            if isinstance(v, datetime.datetime) and v.tzinfo is not None:
                v = v.astimezone(datetime.timezone.utc).replace(tzinfo=None)
            vals.append("" if v is None else str(v))
        out.append(tuple(vals))
    return sorted(out)


def example(sluice):
    with tempfile.TemporaryDirectory() as tmp:
        out_pq = os.path.join(tmp, "parquet")
        out_t = os.path.join(tmp, "table")
        replay(sluice, "examples/clickstream/pipeline.toml", "examples/clickstream/events/", out_pq)
        [s] = replay(sluice, f"{EXAMPLE}/pipeline.toml", f"{EXAMPLE}/events/", out_t)
        assert s["objects"] == 3 and s["error"] is None, s
        assert s["records_out"] == 99, s

        t = table(out_t)
        got = t.scan().to_arrow()
        parquet = ds.dataset(
            os.path.join(out_pq, "analytics-out", "clickstream"), format="parquet", partitioning="hive"
        ).to_table()
        columns = COLUMNS
        assert got.num_rows == parquet.num_rows == 99, (got.num_rows, parquet.num_rows)
        assert rows(got, columns) == rows(parquet, columns), "table rows differ from the Parquet output's"
        assert [f.name for f in t.schema().fields] == columns, t.schema()
        assert str(t.spec()).count("identity") == 1, t.spec()
        snaps = t.snapshots()
        assert len(snaps) == 1, snaps
        sources = json.loads(snaps[0].summary["sluice.sources"])
        assert len(sources) == 3 and all(x.startswith("s3://analytics-in/clickstream/") for x in sources), sources
        assert snaps[0].summary["added-records"] == "99", snaps[0].summary

        # Delivered again: nothing added, each object said to be already committed.
        [s] = replay(sluice, f"{EXAMPLE}/pipeline.toml", f"{EXAMPLE}/events/", out_t)
        already = [k for k in s["skips"] if k["reason"].startswith("already committed to table analytics.clicks")]
        assert len(already) == 3 and s["records_out"] == 0 and s["objects"] == 0, s
        t = table(out_t)
        assert len(t.snapshots()) == 1 and t.scan().to_arrow().num_rows == 99
        print(f"example: 99 rows read back by pyiceberg equal the Parquet output's; replayed again: nothing added")


CONFIG = """
name = "concurrent"
[input]
format = "ndjson"
schema = { id = "int64", who = "string", n = "int64" }
[[stage]]
type = "filter"
where = "n >= 0"
[output]
uri = "s3://lake/tables/"
format = "iceberg"
table = "raw.events"
partition = ["bucket(4, who)"]
"""


def scratch(tmp, config_text):
    """A local store with an `in` bucket, an output folder and the pipeline.toml, under `tmp`."""
    store = os.path.join(tmp, "store")
    os.makedirs(os.path.join(store, "in"))
    config = os.path.join(tmp, "pipeline.toml")
    open(config, "w").write(config_text)
    return store, os.path.join(tmp, "out"), config


def upload(sluice, store, key, rows):
    """`rows` as the NDJSON object s3://in/KEY of the store, and the path of its S3 event."""
    with open(os.path.join(store, "in", key), "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    ev = os.path.join(os.path.dirname(store), key + ".event.json")
    with open(ev, "w") as f:
        subprocess.run([sluice, "event", "s3", "--bucket", "in", "--key", key, "--store", store],
                       check=True, stdout=f, timeout=30)
    return ev


def concurrency(sluice, writers=16, per=50):
    with tempfile.TemporaryDirectory() as tmp:
        store, out, config = scratch(tmp, CONFIG)
        events = [
            upload(sluice, store, f"part-{w:02}.ndjson",
                   [{"id": w * per + i, "who": f"w{w}-{i % 7}", "n": i} for i in range(per)])
            for w in range(writers)
        ]

        def all_at_once():
            procs = [subprocess.Popen([sluice, "replay", config, ev, "--store", store, "--out", out, "--json"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for ev in events]
            summaries = []
            for p in procs:
                o, e = p.communicate(timeout=DEADLINE_S)
                assert p.returncode == 0, f"a writer exited {p.returncode}: {o} {e}"
                summaries.append(json.loads(o.splitlines()[-1]))
            return summaries

        first = all_at_once()
        assert sum(s["records_out"] for s in first) == writers * per, first
        t = table(out, "raw.events")
        got = t.scan().to_arrow()
        ids = sorted(got.column("id").to_pylist())
        assert ids == list(range(writers * per)), f"rows lost or duplicated: {len(ids)} rows"
        assert len(t.snapshots()) == writers, len(t.snapshots())

        again = all_at_once()
        assert all(s["records_out"] == 0 for s in again), again
        assert all(any(k["reason"].startswith("already committed") for k in s["skips"]) for s in again), again
        t = table(out, "raw.events")
        assert t.scan().to_arrow().num_rows == writers * per
        assert len(t.snapshots()) == writers
        print(f"concurrency: {writers} writers at once → {writers} snapshots, {writers * per} rows exactly once; "
              f"all replayed again → nothing added")


EVOLVING = """
name = "evolving"
[input]
format = "ndjson"
[output]
uri = "s3://lake/tables/"
format = "iceberg"
table = "raw.evolving"
"""


def evolution(sluice):
    """Without a declared schema each object's columns are its own: a new column is added to the
    table (the rows already there read it as null); a column whose type cannot go into the
    table's fails that object, naming the column, and commits nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        store, out, config = scratch(tmp, EVOLVING)
        objects = {
            "a.ndjson": [{"id": 1, "n": 10}, {"id": 2, "n": 20}],
            "b.ndjson": [{"id": 3, "n": 30, "tag": "new"}],
            "c.ndjson": [{"id": 4, "n": "not a number"}],
        }
        summaries = {}
        for key, rows in objects.items():
            ev = upload(sluice, store, key, rows)
            r = subprocess.run([sluice, "replay", config, ev, "--store", store, "--out", out, "--json"],
                               capture_output=True, text=True, timeout=DEADLINE_S)
            summaries[key] = (r.returncode, json.loads(r.stdout.splitlines()[-1]))
        assert summaries["a.ndjson"][0] == 0 and summaries["b.ndjson"][0] == 0, summaries
        code, s = summaries["c.ndjson"]
        assert code == 1 and s["failed"] == 1 and "column `n`" in (s["error"] or ""), s
        t = table(out, "raw.evolving")
        assert [f.name for f in t.schema().fields] == ["id", "n", "tag"], t.schema()
        got = sorted(t.scan().to_arrow().to_pylist(), key=lambda r: r["id"])
        assert got == [
            {"id": 1, "n": 10, "tag": None},
            {"id": 2, "n": 20, "tag": None},
            {"id": 3, "n": 30, "tag": "new"},
        ], got
        assert len(t.snapshots()) == 2, t.snapshots()
        print("evolution: a new column added (older rows read it as null); a string into the long "
              "column `n` failed that object by name and committed nothing")


CLICKSTREAM = [
    "clickstream/2026/11/22/web+app events.ndjson",
    "clickstream/2026/11/23/café-東京.ndjson.gz",
    "clickstream/2026/11/24/firehose-1.ndjson.gz",
]
COLUMNS = ["day", "ts", "user_id", "event_type", "page", "country", "latency_ms", "slow", "kb"]


def glue(sluice, endpoint):
    """The example's table in the AWS Glue Data Catalog, against moto's Glue and S3: pyiceberg's
    GlueCatalog reads the same rows the Parquet example writes to S3 for the same objects."""
    import boto3
    from pyarrow import fs
    from pyiceberg.catalog.glue import GlueCatalog

    creds = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=endpoint, **creds)
    tag = f"{os.getpid()}"
    inb, outb, db = f"glue-in-{tag}", f"glue-out-{tag}", f"glue{tag}"
    s3.create_bucket(Bucket=inb)
    s3.create_bucket(Bucket=outb)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        for key in CLICKSTREAM:
            local = os.path.join(store, inb, key)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            shutil.copy(os.path.join("fixtures", "objects", "analytics-in", key), local)
            s3.upload_file(local, inb, key)
        ev = os.path.join(tmp, "event.json")
        with open(ev, "w") as f:
            args = [sluice, "event", "s3", "--bucket", inb, "--store", store]
            for key in CLICKSTREAM:
                args += ["--key", key]
            subprocess.run(args, check=True, stdout=f, timeout=30)
        parquet_cfg = os.path.join(tmp, "parquet.toml")
        open(parquet_cfg, "w").write(open("examples/clickstream/pipeline.toml").read().replace("analytics-out", outb))
        table_cfg = os.path.join(tmp, "table.toml")
        open(table_cfg, "w").write(
            open(f"{EXAMPLE}/pipeline.toml").read()
            .replace("analytics-out", outb)
            .replace('table = "analytics.clicks"', f'table = "{db}.clicks"')
            .replace('catalog = "sqlite:catalog.db"', 'catalog = "glue"')
        )

        def run(cfg):
            r = subprocess.run([sluice, "replay", cfg, ev, "--endpoint-url", endpoint, "--json"],
                               capture_output=True, text=True, timeout=DEADLINE_S, env=env)
            assert r.returncode == 0, f"{cfg}: {r.stdout} {r.stderr}"
            return json.loads(r.stdout.splitlines()[-1])

        assert run(parquet_cfg)["records_out"] == 99
        s = run(table_cfg)
        assert s["records_out"] == 99 and s["objects"] == 3, s
        catalog = GlueCatalog("glue", **{
            "glue.endpoint": endpoint, "glue.region": "us-east-1",
            "glue.access-key-id": "test", "glue.secret-access-key": "test",
            "s3.endpoint": endpoint, "s3.region": "us-east-1",
            "s3.access-key-id": "test", "s3.secret-access-key": "test",
        })
        t = catalog.load_table(f"{db}.clicks")
        got = t.scan().to_arrow()
        s3fs = fs.S3FileSystem(endpoint_override=endpoint, scheme="http", access_key="test",
                               secret_key="test", region="us-east-1")
        parquet = ds.dataset(f"{outb}/clickstream", filesystem=s3fs, format="parquet",
                             partitioning="hive").to_table()
        assert got.num_rows == parquet.num_rows == 99, (got.num_rows, parquet.num_rows)
        assert rows(got, COLUMNS) == rows(parquet, COLUMNS), "Glue table rows differ from the Parquet output's"
        assert len(t.snapshots()) == 1
        # Delivered again: nothing added.
        s = run(table_cfg)
        assert s["records_out"] == 0 and sum("already committed" in k["reason"] for k in s["skips"]) == 3, s
        t = catalog.load_table(f"{db}.clicks")
        assert len(t.snapshots()) == 1 and t.scan().to_arrow().num_rows == 99
        print("glue: 99 rows read back by pyiceberg's GlueCatalog from moto equal the Parquet output's; "
              "replayed again: nothing added")


STREAM = """
name = "stream-table"
[input]
format = "ndjson"
schema = { id = "int64", page = "string" }
[output]
uri = "s3://lake/tables/"
format = "iceberg"
table = "raw.clicks"
partition = ["identity(page)"]
"""


def kinesis(sluice):
    """Kinesis batches into a table: each snapshot records its shard's sequence range, so a
    redelivered batch whose first records are committed (a different batch size, a checkpoint
    lost after the commit) adds only the rest, and the same batch again adds nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        store, out, config = scratch(tmp, STREAM)
        lines = os.path.join(tmp, "records.ndjson")
        with open(lines, "w") as f:
            for i in range(150):
                f.write(json.dumps({"id": i, "page": f"/p{i % 3}"}) + "\n")
        r = subprocess.run([sluice, "event", "kinesis", lines], capture_output=True, text=True, timeout=30, check=True)
        whole = json.loads(r.stdout)
        first = dict(whole, Records=whole["Records"][:100])
        overlapping = dict(whole, Records=whole["Records"][50:])
        paths = {}
        for name, ev in [("first", first), ("overlapping", overlapping)]:
            paths[name] = os.path.join(tmp, name + ".json")
            with open(paths[name], "w") as f:
                json.dump(ev, f)

        def run(name):
            r = subprocess.run([sluice, "replay", config, paths[name], "--store", store, "--out", out, "--json"],
                               capture_output=True, text=True, timeout=DEADLINE_S)
            assert r.returncode == 0, f"{name}: {r.stdout} {r.stderr}"
            return json.loads(r.stdout.splitlines()[-1])

        s = run("first")
        assert s["records_out"] == 100 and s["batch_item_failures"] == [], s
        s = run("first")
        assert s["records_out"] == 0 and s["skipped"] == 100, s
        assert "already committed to table raw.clicks" in s["skips"][0]["reason"], s
        s = run("overlapping")
        assert s["records_out"] == 50 and s["skipped"] == 50, s
        t = table(out, "raw.clicks")
        ids = sorted(t.scan().to_arrow().column("id").to_pylist())
        assert ids == list(range(150)), f"rows lost or duplicated: {len(ids)}"
        assert len(t.snapshots()) == 2, t.snapshots()
        ranges = [json.loads(x.summary["sluice.sources"]) for x in t.snapshots()]
        assert all(len(r) == 1 and r[0].startswith("kinesis:shardId-000000000000#") for r in ranges), ranges
        print("kinesis: a batch committed once; the same batch again adds nothing; an overlapping "
              "redelivery adds only its 50 new records (150 rows exactly once, 2 snapshots)")


def main():
    sluice = os.path.abspath(sys.argv[1])
    example(sluice)
    concurrency(sluice)
    evolution(sluice)
    kinesis(sluice)
    endpoint = os.environ.get("SLUICE_TEST_S3_ENDPOINT")
    if endpoint:
        glue(sluice, endpoint)
    elif os.environ.get("SLUICE_REQUIRE_S3"):
        sys.exit("SLUICE_REQUIRE_S3 is set but SLUICE_TEST_S3_ENDPOINT is not: the Glue check cannot run")
    else:
        print("glue: skipped (no SLUICE_TEST_S3_ENDPOINT; scripts/test.sh starts moto and sets it)")


if __name__ == "__main__":
    main()
