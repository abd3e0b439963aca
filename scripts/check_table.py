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
6. REST: the example's table through an Iceberg REST catalog that checks SigV4
   (scripts/rest_catalog.py), read back with pyiceberg's REST client; unsigned and wrongly
   signed requests refused; 16 writers at once.
7. Glue: the example's table in the AWS Glue Data Catalog against moto's Glue and S3
   (SLUICE_TEST_S3_ENDPOINT), read back with pyiceberg's GlueCatalog: the rows equal the Parquet
   output's in S3 for the same objects; replayed again, nothing added.
8. Commit queue (`commit = "queue"`) against moto's SQS and S3 with a local SQLite catalog (and
   again with moto's Glue as the catalog): 64
   writers at once (one of them delivered twice) each queue one message and commit nothing; the
   committer, fed the queue's messages in SQS batches as Lambda delivers them, is killed mid-batch
   and run again on that batch: every row exactly once (pyiceberg), the duplicate dropped, and a
   batch delivered again adds nothing.
9. Commit queue faults, through a proxy in front of moto: a SendMessage refused, one whose answer
   is lost after SQS took it, one that stalls past the function's timeout; each writer fails with
   the reason and its retry queues again; the committer commits every row once.
10. Commit queue from Kinesis: each writer claims its range before it sends; a batch delivered
   again, half of it, a longer batch after a send whose answers were lost, and a batch after a
   refused send: every record once, no message refused, every claim removed.

Usage: check_table.py SLUICE
"""
import contextlib
import http.server
import threading
import time
import urllib.parse
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

from forwarder import Forwarder

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
        assert snaps[0].summary["sluice.invocation"].startswith("replay:"), snaps[0].summary

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


def clickstream_in_s3(sluice, s3, bucket, tmp):
    """The example's objects uploaded to `bucket` (moto), and the path of their S3 event."""
    store = os.path.join(tmp, "store")
    for key in CLICKSTREAM:
        local = os.path.join(store, bucket, key)
        os.makedirs(os.path.dirname(local), exist_ok=True)
        shutil.copy(os.path.join("fixtures", "objects", "analytics-in", key), local)
        s3.upload_file(local, bucket, key)
    ev = os.path.join(tmp, "event.json")
    with open(ev, "w") as f:
        args = [sluice, "event", "s3", "--bucket", bucket, "--store", store]
        for key in CLICKSTREAM:
            args += ["--key", key]
        subprocess.run(args, check=True, stdout=f, timeout=30)
    return ev


@contextlib.contextmanager
def rest_catalog(tmp, env, *args):
    """scripts/rest_catalog.py started with `args` (SigV4 for s3tables checked); its URL."""
    server = subprocess.Popen(
        [sys.executable, "scripts/rest_catalog.py", "--db", os.path.join(tmp, "rest.db"), "--sigv4", "s3tables",
         *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = server.stdout.readline()
        assert line.startswith("listening on "), f"the REST fixture did not start: {line} {server.stderr.read()}"
        yield line.split()[-1]
    finally:
        server.terminate()
        server.wait(timeout=10)


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
        ev = clickstream_in_s3(sluice, s3, inb, tmp)
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


QUEUED = """
name = "queued"
[input]
format = "ndjson"
schema = {{ id = "int64", who = "string", n = "int64" }}
[output]
uri = "s3://{bucket}/lake/"
format = "iceberg"
table = "{ns}.queued"
{catalog}
partition = ["bucket(4, who)"]
commit = "queue"
queue = "{queue}"
"""


def queue_mode(sluice, endpoint, writers=64, per=20, batch=16, glue=False):
    import random

    with queue_scratch(endpoint, "queued-g" if glue else "queued", QUEUED, glue) as q:
        tmp, config, bucket, qname, ns, env = q.tmp, q.config, q.bucket, q.queue, q.ns, q.env
        s3, sqs, url, sql, catalog_line = q.s3, q.sqs, q.url, q.sql, q.catalog_line
        store = os.path.join(tmp, "store")
        events = []
        for w in range(writers):
            key = f"in/part-{w:02}.ndjson"
            local = os.path.join(store, bucket, key)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with open(local, "w") as f:
                for i in range(per):
                    f.write(json.dumps({"id": w * per + i, "who": f"w{w}-{i % 7}", "n": i}) + "\n")
            s3.upload_file(local, bucket, key)
            ev = os.path.join(tmp, f"writer-{w:02}.json")
            with open(ev, "w") as f:
                subprocess.run([sluice, "event", "s3", "--bucket", bucket, "--key", key, "--store", store],
                               check=True, stdout=f, timeout=30)
            events.append(ev)

        def start(ev):
            return subprocess.Popen([sluice, "replay", config, ev, "--endpoint-url", endpoint, "--json"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

        def finish(p, code=0):
            o, e = p.communicate(timeout=DEADLINE_S)
            assert p.returncode == code, f"exited {p.returncode}: {o} {e}"
            return json.loads(o.splitlines()[-1])

        procs = [start(ev) for ev in events]
        written = [finish(p) for p in procs]
        assert all(s["records_out"] == per and s["error"] is None for s in written), written
        assert all(s["commit"]["mode"] == "queued" and s["commit"]["message_bytes"] > 0
                   and s["commit"]["rows"] == per for s in written), written[0]
        # One writer delivered again before the committer ran: its files again, a second message.
        assert finish(start(events[0]))["records_out"] == per
        # Nothing is in the table until the committer runs.
        assert sql.load_table(f"{ns}.queued").snapshots() == []
        # `sluice table show` tells the pending messages from the queue's depth.
        r = subprocess.run([sluice, "table", "show", config, "--endpoint-url", endpoint, "--json"],
                           capture_output=True, text=True, timeout=DEADLINE_S, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        shown = json.loads(r.stdout)
        assert shown["queue"] == {"queue": qname, "waiting": writers + 1, "committing": 0}, shown["queue"]

        messages = []
        deadline = time.monotonic() + 60
        while len(messages) < writers + 1 and time.monotonic() < deadline:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                      AttributeNames=["All"]).get("Messages", [])
            messages += got
        assert len(messages) == writers + 1, f"{len(messages)} messages queued for {writers + 1} deliveries"
        random.Random(7).shuffle(messages)
        batches = []
        for b in range(0, len(messages), batch):
            ev = os.path.join(tmp, f"commit-{b // batch}.json")
            with open(ev, "w") as f:
                json.dump(sqs_event(messages[b:b + batch], q.arn), f)
            batches.append(ev)

        # The committer killed mid-batch (before or after its commit, whichever the moment
        # catches: early in the first batch, later in the second), then the batch delivered again.
        for ev, wait in [(batches[0], 0.05), (batches[1], 0.6)]:
            p = start(ev)
            time.sleep(wait)
            p.kill()
            p.communicate(timeout=DEADLINE_S)
        summaries = [finish(start(ev)) for ev in batches]
        assert all(s["batch_item_failures"] == [] for s in summaries), summaries
        # Each message of a batch is committed, or dropped whole as already committed.
        for s, b in zip(summaries, range(0, len(messages), batch)):
            c = s["commit"]
            assert c["mode"] == "committer" and sum(c["messages"]) == len(messages[b:b + batch]), c
            assert c["messages"][2] == 0 and len(c.get("visible_ms", [])) == c["messages"][0], c
        assert sum(s["commit"]["messages"][1] for s in summaries) >= 1
        dropped = sum(len(s["skips"]) for s in summaries)
        # The duplicate writer's message, and after a kill that came after the commit, batch 0's.
        assert dropped >= 1, summaries
        t = sql.load_table(f"{ns}.queued")
        ids = sorted(t.scan().to_arrow().column("id").to_pylist())
        assert ids == list(range(writers * per)), f"rows lost or duplicated: {len(ids)} rows"
        snaps = t.snapshots()
        assert len(snaps) <= len(batches), len(snaps)
        writers_seen = set()
        for snap in snaps:
            writers_seen |= set(json.loads(snap.summary["sluice.writers"]))
        assert len(writers_seen) == writers, len(writers_seen)

        # The last batch delivered again (its answer lost): nothing added.
        again = finish(start(batches[-1]))
        assert again["records_out"] == 0 and len(again["skips"]) >= 1, again
        t = sql.load_table(f"{ns}.queued")
        assert len(t.snapshots()) == len(snaps) and t.scan().to_arrow().num_rows == writers * per
        if glue:
            print(f"queue (Glue): {writers} writers at once (one delivered twice) into a table in moto's "
                  f"Glue; the committer, killed mid-batch and run again: {writers * per} rows exactly once "
                  f"(pyiceberg's GlueCatalog) in {len(snaps)} snapshots; a batch delivered again added nothing")
            return

        # A writer whose files do not fit in a message (400 partitions): the message points to
        # an object beside the table's metadata, which the committer reads, then removes.
        wide = os.path.join(tmp, "wide.toml")
        open(wide, "w").write(QUEUED.format(bucket=bucket, catalog=catalog_line, queue=qname, ns=ns)
                              .replace("raw.queued", "raw.wide")
                              .replace('partition = ["bucket(4, who)"]',
                                       'partition = ["identity(id)"]\nmax_open_partitions = 1000'))
        key = "in/wide.ndjson"
        local = os.path.join(store, bucket, key)
        with open(local, "w") as f:
            for i in range(400):
                f.write(json.dumps({"id": i, "who": "w", "n": i}) + "\n")
        s3.upload_file(local, bucket, key)
        ev = os.path.join(tmp, "wide-writer.json")
        with open(ev, "w") as f:
            subprocess.run([sluice, "event", "s3", "--bucket", bucket, "--key", key, "--store", store],
                           check=True, stdout=f, timeout=30)
        r = subprocess.run([sluice, "replay", wide, ev, "--endpoint-url", endpoint, "--json"],
                           capture_output=True, text=True, timeout=DEADLINE_S, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        [m] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2)["Messages"]
        body = json.loads(m["Body"])
        assert body["units"] == [] and body["units_at"].endswith(".json"), m["Body"][:300]
        ev = os.path.join(tmp, "wide-commit.json")
        with open(ev, "w") as f:
            json.dump(sqs_event([m], q.arn), f)
        r = subprocess.run([sluice, "replay", wide, ev, "--endpoint-url", endpoint, "--json"],
                           capture_output=True, text=True, timeout=DEADLINE_S, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout.splitlines()[-1])["records_out"] == 400, r.stdout
        t = sql.load_table("raw.wide")
        assert sorted(t.scan().to_arrow().column("id").to_pylist()) == list(range(400))
        held = body["units_at"].split(f"s3://{bucket}/", 1)[1]
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=held), "the units object was kept"

        print(f"queue: {writers} writers at once (one delivered twice) queued {writers + 1} messages; "
              f"the committer, killed mid-batch and run again, committed {len(batches)} batches of {batch} "
              f"in {len(snaps)} snapshots: {writers * per} rows exactly once (pyiceberg), {dropped} "
              f"dropped as already committed; a batch delivered again added nothing; 400 files of one "
              f"writer went through an object beside the metadata and were committed")


class SqsFaults(Forwarder):
    """A proxy in front of moto that forwards every request (S3, SQS, Glue) and does what `mode`
    says to SQS SendMessage calls (JSON protocol: `X-Amz-Target: AmazonSQS.SendMessage`; query
    protocol: `Action=SendMessage`): "fail" answers 500 without forwarding, "lost" forwards and
    then answers 500 (SQS has the message, the writer is told it failed), "stall" never answers
    in time; "pass" forwards. `sends` counts the SendMessage calls seen."""

    mode = "pass"
    sends = 0

    def forward(self):
        body = self.body()
        target = self.headers.get("X-Amz-Target", "")
        send = target.endswith(".SendMessage") or (body is not None and b"Action=SendMessage&" in body)
        failed = (500, [("Content-Type", "application/x-amz-json-1.0")],
                  b'{"__type":"com.amazonaws.sqs#InternalError","message":"injected by the test proxy"}')
        if send:
            SqsFaults.sends += 1
            if SqsFaults.mode == "stall":
                time.sleep(30)
                return self.answer(500, [], b"")
            if SqsFaults.mode == "fail":
                return self.answer(*failed)
        answer = self.relay(body)
        # "lost": SQS has the message, the writer is told the send failed.
        self.answer(*(failed if send and SqsFaults.mode == "lost" else answer))


def sqs_event(messages, arn):
    """The SQS event Lambda delivers for `messages` (as boto3's receive_message gives them)."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": {}, "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": "us-east-1"} for m in messages]}


def drain(sqs, url, want, seconds=30):
    """Every message of the queue, up to `want` (waiting at most `seconds`)."""
    got = []
    deadline = time.monotonic() + seconds
    while len(got) < want and time.monotonic() < deadline:
        got += sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    return got


@contextlib.contextmanager
def queue_scratch(endpoint, name, config_text, glue=False):
    """A bucket and a queue in moto (both named `name`-PID), a catalog (a SQLite file, or with
    `glue` moto's Glue and a namespace of the queue's name), and `config_text` formatted with
    them: yields their namespace (tmp, config, bucket, queue, ns, catalog_line, s3, sqs, url,
    arn, sql, env)."""
    import types
    import boto3
    creds = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=endpoint, **creds)
    sqs = boto3.client("sqs", endpoint_url=endpoint, **creds)
    tag = f"{name}-{os.getpid()}"
    s3.create_bucket(Bucket=tag)
    url = sqs.create_queue(QueueName=tag, Attributes={"VisibilityTimeout": "900"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
    s3props = {"s3.endpoint": endpoint, "s3.region": "us-east-1",
               "s3.access-key-id": "test", "s3.secret-access-key": "test"}
    with tempfile.TemporaryDirectory() as tmp:
        catalog = os.path.join(tmp, "catalog.db")
        config = os.path.join(tmp, "pipeline.toml")
        if glue:
            from pyiceberg.catalog.glue import GlueCatalog
            ns, catalog_line = tag.replace("-", ""), 'catalog = "glue"'
            sql = GlueCatalog("glue", **{"glue.endpoint": endpoint, "glue.region": "us-east-1",
                                         "glue.access-key-id": "test", "glue.secret-access-key": "test"},
                              **s3props)
        else:
            ns, catalog_line = "raw", f'catalog = "sqlite:{catalog}"'
            sql = SqlCatalog("sluice", uri=f"sqlite:///{catalog}", **s3props)
        open(config, "w").write(config_text.format(bucket=tag, catalog=catalog_line, queue=tag, ns=ns))
        yield types.SimpleNamespace(tmp=tmp, config=config, bucket=tag, queue=tag, ns=ns,
                                    catalog_line=catalog_line, s3=s3, sqs=sqs, url=url, arn=arn,
                                    sql=sql, env=env)


def run_sluice(sluice, config, event, endpoint, env, *extra):
    """`sluice replay CONFIG EVENT --endpoint-url ENDPOINT --json`: (exit code, last summary)."""
    r = subprocess.run([sluice, "replay", config, event, "--endpoint-url", endpoint, "--json", *extra],
                       capture_output=True, text=True, timeout=DEADLINE_S, env=env)
    lines = r.stdout.splitlines()
    assert lines, f"exited {r.returncode} with no summary: {r.stderr[-2000:]}"
    return r.returncode, json.loads(lines[-1])


@contextlib.contextmanager
def sqs_faults(endpoint):
    """A [`SqsFaults`] proxy in front of `endpoint`: yields its URL."""
    up = urllib.parse.urlparse(endpoint)
    SqsFaults.upstream = (up.hostname, up.port)
    SqsFaults.mode, SqsFaults.sends = "pass", 0
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SqsFaults)
    proxy.daemon_threads = True
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}"
    finally:
        proxy.shutdown()
        proxy.server_close()


def queue_faults(sluice, endpoint):
    """A writer's SendMessage that fails, whose answer is lost after SQS took the message, or that
    stalls past the function's timeout: the writer fails with the reason and its object is retried;
    the retry queues again; the committer folds whatever reached the queue into one snapshot with
    every row exactly once (read back by pyiceberg, which reads each file at the size the
    manifest records)."""
    with queue_scratch(endpoint, "qfaults", QUEUED) as q, sqs_faults(endpoint) as via:
        store = os.path.join(q.tmp, "store")
        events = {}
        for name, first in [("fail", 0), ("lost", 100), ("stall", 200)]:
            key = f"in/{name}.ndjson"
            local = os.path.join(store, q.bucket, key)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            with open(local, "w") as f:
                for i in range(first, first + 30):
                    f.write(json.dumps({"id": i, "who": f"{name}{i % 5}", "n": i}) + "\n")
            q.s3.upload_file(local, q.bucket, key)
            ev = os.path.join(q.tmp, f"{name}.json")
            with open(ev, "w") as f:
                subprocess.run([sluice, "event", "s3", "--bucket", q.bucket, "--key", key, "--store", store],
                               check=True, stdout=f, timeout=30)
            events[name] = ev

        # SendMessage refused, every attempt: the writer fails, naming the queue; nothing queued.
        SqsFaults.mode, SqsFaults.sends = "fail", 0
        code, s = run_sluice(sluice, q.config, events["fail"], via, q.env)
        assert code != 0 and s["failed"] == 1 and "sending the commit message" in (s["error"] or ""), s
        assert SqsFaults.sends >= 2, f"the SDK tried {SqsFaults.sends} times"
        assert drain(q.sqs, q.url, 1, seconds=2) == [], "a message was queued by a failed send"

        # SQS takes each attempt, but every answer is lost: the writer fails, and the queue
        # holds one message per attempt, all with the same sources.
        SqsFaults.mode, SqsFaults.sends = "lost", 0
        code, s = run_sluice(sluice, q.config, events["lost"], via, q.env)
        assert code != 0 and s["failed"] == 1, s
        lost_sends = SqsFaults.sends
        assert lost_sends >= 2, (lost_sends, s)

        # SendMessage stalls: the writer gives up inside its 6 s timeout.
        SqsFaults.mode = "stall"
        started = time.monotonic()
        code, s = run_sluice(sluice, q.config, events["stall"], via, q.env, "--timeout", "6")
        took = time.monotonic() - started
        assert code != 0 and s["failed"] == 1 and took < 15, (took, s)

        # Each object retried, the queue answering: one message each.
        SqsFaults.mode = "pass"
        for name in ("fail", "lost", "stall"):
            code, s = run_sluice(sluice, q.config, events[name], via, q.env)
            assert code == 0 and s["commit"]["mode"] == "queued", s
        messages = drain(q.sqs, q.url, lost_sends + 3)
        assert len(messages) == lost_sends + 3, f"{len(messages)} messages for {lost_sends + 3} accepted sends"
        ev = os.path.join(q.tmp, "commit.json")
        with open(ev, "w") as f:
            json.dump(sqs_event(messages, q.arn), f)
        code, s = run_sluice(sluice, q.config, ev, endpoint, q.env)
        assert code == 0 and s["batch_item_failures"] == [], s
        assert s["commit"]["messages"] == [3, lost_sends, 0], s["commit"]
        t = q.sql.load_table("raw.queued")
        ids = sorted(t.scan().to_arrow().column("id").to_pylist())
        want = list(range(0, 30)) + list(range(100, 130)) + list(range(200, 230))
        assert ids == want, f"rows lost or duplicated: {len(ids)} rows"
        assert len(t.snapshots()) == 1
        print(f"queue faults: a refused SendMessage fails its writer and queues nothing; {lost_sends} "
              f"sends taken by SQS with their answers lost, and the retry's, commit once; a stalled send "
              f"ends inside the 6 s timeout ({took:.1f} s); 90 rows exactly once in one snapshot")


QUEUED_STREAM = """
name = "queued-stream"
[input]
format = "ndjson"
schema = {{ id = "int64", page = "string" }}
[output]
uri = "s3://{bucket}/lake/"
format = "iceberg"
table = "{ns}.stream"
{catalog}
partition = ["identity(page)"]
commit = "queue"
queue = "{queue}"
"""


def queue_kinesis(sluice, endpoint):
    """Kinesis batches through the commit queue. A writer claims its range (an object named by
    shard and range, holding its message) before it sends; a later delivery of those records
    leaves them out and sends the claim's message again. So a redelivered batch, the halves of a
    bisected one, a longer batch after a send whose answer was lost, and a batch after a send
    that failed all end with every record once, and no message is refused; the committer
    removes each claim once its message is committed or dropped."""
    with queue_scratch(endpoint, "qstream", QUEUED_STREAM) as q, sqs_faults(endpoint) as via:
        lines = os.path.join(q.tmp, "records.ndjson")
        with open(lines, "w") as f:
            for i in range(250):
                f.write(json.dumps({"id": i, "page": f"/p{i % 3}"}) + "\n")
        r = subprocess.run([sluice, "event", "kinesis", lines], capture_output=True, text=True,
                           timeout=30, check=True)
        whole = json.loads(r.stdout)
        batches = {"a": whole["Records"][:100], "a-first-half": whole["Records"][:50],
                   "b": whole["Records"][100:150], "b-longer": whole["Records"][100:200],
                   "c": whole["Records"][200:]}
        paths = {}
        for name, records in batches.items():
            paths[name] = os.path.join(q.tmp, f"{name}.json")
            with open(paths[name], "w") as f:
                json.dump(dict(whole, Records=records), f)

        def write(name, mode="pass", code=0):
            SqsFaults.mode = mode
            got, s = run_sluice(sluice, q.config, paths[name], via, q.env)
            SqsFaults.mode = "pass"
            assert got == code, s
            return s

        def claims():
            listed = q.s3.list_objects_v2(Bucket=q.bucket, Prefix="lake/").get("Contents", [])
            return sorted(o["Key"].rsplit("/", 1)[1] for o in listed if "/sluice-queued-kinesis/" in o["Key"])

        def commit(messages):
            ev = os.path.join(q.tmp, "commit.json")
            with open(ev, "w") as f:
                json.dump(sqs_event(messages, q.arn), f)
            got, s = run_sluice(sluice, q.config, ev, endpoint, q.env)
            assert got == 0 and s["batch_item_failures"] == [], s
            return s

        seq = [r["kinesis"]["sequenceNumber"] for r in whole["Records"]]
        s = write("a")
        assert s["records_out"] == 100 and s["commit"]["mode"] == "queued", s
        assert claims() == [f"{seq[0]}..{seq[99]}.json"], claims()
        # Delivered again, and bisected: nothing written, the claim's message sent again.
        for name, n in [("a", 100), ("a-first-half", 50)]:
            s = write(name)
            assert s["records_out"] == 0 and s["skipped"] == n, s
            assert "queued already for table raw.stream" in s["skips"][0]["reason"], s["skips"]
        # Batch b: SQS takes each attempt, the answers are lost; the writer fails, and Lambda's
        # retry brings a longer batch: b's records are left out (b's message sent again), the
        # new ones claimed and queued.
        s = write("b", mode="lost", code=1)
        assert s["batch_item_failures"] == [seq[100]] and "sending the commit message" in s["error"], s
        s = write("b-longer")
        assert s["records_out"] == 50 and s["skipped"] == 50, s
        # Batch c: the send refused; the claim is there, the message is not; the retry sends it.
        s = write("c", mode="fail", code=1)
        assert s["batch_item_failures"] == [seq[200]], s
        s = write("c")
        assert s["records_out"] == 0 and s["skipped"] == 50, s
        assert len(claims()) == 4, claims()
        # `table orphans --delete` deletes nothing a queued message may name: not the queued
        # data files, not a claim while the table does not hold its records.
        r = subprocess.run([sluice, "table", "orphans", q.config, "--endpoint-url", endpoint, "--delete",
                            "--older-than", "0s", "--json"], capture_output=True, text=True,
                           timeout=DEADLINE_S, env=q.env)
        assert r.returncode == 0, r.stdout + r.stderr
        listed = [json.loads(line) for line in r.stdout.splitlines()]
        pending = [o for o in listed if "/sluice-queued-kinesis/" in o["uri"]]
        assert len(pending) == 4 and all(not o["deleted"] and "claim" in o["kept"] for o in pending), pending
        data = [o for o in listed if o["uri"].endswith(".parquet")]
        assert data and all(not o["deleted"] and "queued message" in o["kept"] for o in data), listed
        assert len(claims()) == 4, claims()
        messages = drain(q.sqs, q.url, 50, seconds=10)
        refused = 0
        for i in range(0, len(messages), 10):
            s = commit(messages[i:i + 10])
            refused += s["commit"]["messages"][2]
        assert refused == 0
        t = q.sql.load_table("raw.stream")
        ids = sorted(t.scan().to_arrow().column("id").to_pylist())
        assert ids == list(range(250)), f"rows lost or duplicated: {len(ids)} rows"
        assert claims() == [], f"claims left after their messages were committed: {claims()}"
        # A message (a copy of a committed one) naming a data file of the table as its claim:
        # dropped as committed, and the data file is not deleted.
        body = json.loads(messages[0]["Body"])
        victim = t.inspect.files().column("file_path").to_pylist()[0]
        body["claim"] = victim
        q.sqs.send_message(QueueUrl=q.url, MessageBody=json.dumps(body))
        s = commit(drain(q.sqs, q.url, 1))
        assert s["commit"]["messages"] == [0, 1, 0], s
        ids = sorted(q.sql.load_table("raw.stream").scan().to_arrow().column("id").to_pylist())
        assert ids == list(range(250)), f"a message deleted a data file: {len(ids)} rows"
        # A message of new records whose file lies outside the table: refused with the reason.
        body = json.loads(messages[0]["Body"])
        body.pop("claim", None)
        body["sources"] = body["units"][0]["sources"] = ["kinesis:shardId-000000000009#1..2"]
        body["units"][0]["files"][0]["file_path"] = f"s3://{q.bucket}/elsewhere/x.parquet"
        body["units"] = body["units"][:1]
        q.sqs.send_message(QueueUrl=q.url, MessageBody=json.dumps(body))
        ev = os.path.join(q.tmp, "commit.json")
        with open(ev, "w") as f:
            json.dump(sqs_event(drain(q.sqs, q.url, 1), q.arn), f)
        got, s = run_sluice(sluice, q.config, ev, endpoint, q.env)
        assert got != 0 and "not under the table's location" in s["error"], s
        assert len(s["batch_item_failures"]) == 1 and s["commit"]["messages"] == [0, 0, 1], s
        # A claim left behind (its removal failed) on records the table holds is an orphan to delete.
        held = f"{seq[0]}..{seq[99]}.json"
        key = f"lake/raw/stream/metadata/sluice-queued-kinesis/shardId-000000000000/{held}"
        q.s3.put_object(Bucket=q.bucket, Key=key, Body=b"{}")
        r = subprocess.run([sluice, "table", "orphans", q.config, "--endpoint-url", endpoint, "--delete",
                            "--older-than", "0s", "--json"], capture_output=True, text=True,
                           timeout=DEADLINE_S, env=q.env)
        assert r.returncode == 0, r.stdout + r.stderr
        gone = [json.loads(line) for line in r.stdout.splitlines() if held in line]
        assert len(gone) == 1 and gone[0]["deleted"], r.stdout
        assert claims() == [], claims()
        print(f"queue (Kinesis): a batch, its redelivery and half of it; a longer batch after a send "
              f"whose answers were lost; a batch after a refused send: {len(messages)} messages, none "
              f"refused, 250 records exactly once, every claim removed")


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

    # Committed records in the middle of a delivered batch (a hand-made event; Lambda resumes
    # at a checkpoint): the records before them are committed, the ones after them come back.
    with tempfile.TemporaryDirectory() as tmp:
        store, out, config = scratch(tmp, STREAM)
        seq = [rec["kinesis"]["sequenceNumber"] for rec in whole["Records"]]
        for name, ev in [("middle", dict(whole, Records=whole["Records"][50:100])),
                         ("around", whole), ("rest", dict(whole, Records=whole["Records"][100:]))]:
            paths[name] = os.path.join(tmp, name + ".json")
            with open(paths[name], "w") as f:
                json.dump(ev, f)

        def replay_code(name):
            r = subprocess.run([sluice, "replay", config, paths[name], "--store", store, "--out", out, "--json"],
                               capture_output=True, text=True, timeout=DEADLINE_S)
            return r.returncode, json.loads(r.stdout.splitlines()[-1])

        code, s = replay_code("middle")
        assert code == 0 and s["records_out"] == 50, s
        code, s = replay_code("around")
        assert s["records_out"] == 50 and s["batch_item_failures"] == [seq[100]], s
        code, s = replay_code("rest")
        assert code == 0 and s["records_out"] == 50, s
        ids = sorted(table(out, "raw.clicks").scan().to_arrow().column("id").to_pylist())
        assert ids == list(range(150)), f"rows lost or duplicated: {len(ids)}"
    print("kinesis: a batch committed once; the same batch again adds nothing; an overlapping "
          "redelivery adds only its 50 new records (150 rows exactly once, 2 snapshots); a batch "
          "around committed records commits those before them and returns those after")


def rest(sluice):
    """The example's table through an Iceberg REST catalog (scripts/rest_catalog.py: the REST
    protocol in front of pyiceberg's SQL catalog) that checks AWS SigV4 on every request, as S3
    Tables does: sluice's signed requests pass, unsigned or wrongly signed ones are refused with
    403 and nothing is committed; pyiceberg's own REST client (signing with botocore) reads back
    the rows the Parquet example writes; 16 writers at once; replayed again, nothing added."""
    import urllib.request
    from pyiceberg.catalog.rest import RestCatalog

    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
    env.pop("AWS_ENDPOINT_URL", None)
    with tempfile.TemporaryDirectory() as tmp:
        with rest_catalog(tmp, env, "--warehouse", f"file://{tmp}/wh", "--prefix", "wh1") as url:

            def stats():
                return json.loads(urllib.request.urlopen(f"{url}/_stats", timeout=10).read())

            out = os.path.join(tmp, "out")
            base = open(f"{EXAMPLE}/pipeline.toml").read().replace(
                'catalog = "sqlite:catalog.db"', f'catalog = "rest+{url}"\nwarehouse = "wh1"')
            configs = {}
            for name, extra in [("signed", 'sigv4 = "s3tables"'), ("unsigned", 'sigv4 = "none"')]:
                configs[name] = os.path.join(tmp, f"{name}.toml")
                open(configs[name], "w").write(base.replace('format = "iceberg"', f'format = "iceberg"\n{extra}'))

            def run(cfg, events, **kw):
                r = subprocess.run([sluice, "replay", cfg, events, "--out", out, "--json"], capture_output=True,
                                   text=True, timeout=DEADLINE_S, env=dict(env, **kw))
                return r, [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]

            # Unsigned, and signed with the wrong secret: refused, nothing committed.
            for cfg, kw, why in [(configs["unsigned"], {}, "not signed"),
                                 (configs["signed"], {"AWS_SECRET_ACCESS_KEY": "wrong"}, "does not match")]:
                r, s = run(cfg, f"{EXAMPLE}/events/", **kw)
                assert r.returncode != 0 and s and s[-1]["error"] and "403" in s[-1]["error"] and why in s[-1]["error"], \
                    (r.stdout, r.stderr)
            refused = stats()
            assert refused["rejected_unsigned"] >= 1 and refused["rejected_bad_signature"] >= 1, refused
            assert refused["commits"] == 0 and refused["creates"] == 0, refused

            r, s = run(configs["signed"], f"{EXAMPLE}/events/")
            assert r.returncode == 0 and s[-1]["records_out"] == 99 and s[-1]["objects"] == 3, (r.stdout, r.stderr)
            os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
            catalog = RestCatalog("rest", uri=url, warehouse="wh1", **{
                "rest.sigv4-enabled": "true", "rest.signing-region": "us-east-1", "rest.signing-name": "s3tables"})
            t = catalog.load_table("analytics.clicks")
            got = t.scan().to_arrow()
            with tempfile.TemporaryDirectory() as pq_out:
                replay(sluice, "examples/clickstream/pipeline.toml", "examples/clickstream/events/", pq_out)
                parquet = ds.dataset(os.path.join(pq_out, "analytics-out", "clickstream"), format="parquet",
                                     partitioning="hive").to_table()
            assert got.num_rows == parquet.num_rows == 99, (got.num_rows, parquet.num_rows)
            assert rows(got, COLUMNS) == rows(parquet, COLUMNS), "REST table rows differ from the Parquet output's"
            assert len(t.snapshots()) == 1
            r, s = run(configs["signed"], f"{EXAMPLE}/events/")
            assert r.returncode == 0 and s[-1]["records_out"] == 0, s
            assert sum("already committed" in k["reason"] for k in s[-1]["skips"]) == 3, s
            assert len(catalog.load_table("analytics.clicks").snapshots()) == 1

            # 16 writers at once into one table of the same catalog.
            store = os.path.join(tmp, "store")
            os.makedirs(os.path.join(store, "in"))
            cfg = os.path.join(tmp, "many.toml")
            open(cfg, "w").write(CONFIG.replace('format = "iceberg"',
                                                f'format = "iceberg"\ncatalog = "rest+{url}"\nsigv4 = "s3tables"'))
            events = [upload(sluice, store, f"part-{w:02}.ndjson",
                             [{"id": w * 50 + i, "who": f"w{w}", "n": i} for i in range(50)]) for w in range(16)]
            procs = [subprocess.Popen([sluice, "replay", cfg, ev, "--store", store, "--out", out, "--json"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                     for ev in events]
            for p in procs:
                o, e = p.communicate(timeout=DEADLINE_S)
                assert p.returncode == 0, f"a writer exited {p.returncode}: {o} {e}"
            t = catalog.load_table("raw.events")
            ids = sorted(t.scan().to_arrow().column("id").to_pylist())
            assert ids == list(range(16 * 50)), f"rows lost or duplicated: {len(ids)}"
            assert len(t.snapshots()) == 16, len(t.snapshots())
            # A commit that lands but whose answer is lost (a 500): the invocation fails, for a
            # retry, and the retry finds its objects committed: every row once.
            lost_cfg = os.path.join(tmp, "lost.toml")
            open(lost_cfg, "w").write(open(cfg).read().replace('table = "raw.events"', 'table = "raw.lost"'))
            urllib.request.urlopen(urllib.request.Request(f"{url}/_lose_answers", data=b"1", method="POST"),
                                   timeout=10)
            runs = []
            for _ in range(2):
                r = subprocess.run([sluice, "replay", lost_cfg, events[0], "--store", store, "--out", out, "--json"],
                                   capture_output=True, text=True, timeout=DEADLINE_S, env=env)
                runs.append((r.returncode, json.loads(r.stdout.splitlines()[-1])))
            (first_rc, first), (second_rc, second) = runs
            assert first_rc == 1 and "500" in first["error"] and first["error_class"] == "retry_later", first
            assert second_rc == 0 and second["records_out"] == 0, second
            assert any(k["reason"].startswith("already committed") for k in second["skips"]), second
            t = catalog.load_table("raw.lost")
            assert sorted(t.scan().to_arrow().column("id").to_pylist()) == list(range(50)) and len(t.snapshots()) == 1
            print(f"rest: unsigned and wrongly signed requests refused (403), nothing committed; 99 rows read back "
                  f"by pyiceberg's REST client equal the Parquet output's; replayed again: nothing added; 16 "
                  f"writers at once: 800 rows exactly once, 16 snapshots ({stats()['conflicts']} conflicts retried); a commit "
                  f"whose answer was lost: retried, found committed, 50 rows once")


def rest_s3(sluice, endpoint):
    """As S3 Tables does: the REST catalog chooses where the table lives (a bucket of its own,
    not the pipeline's `uri`; the warehouse is a table bucket ARN), against moto's S3. The
    example's rows land there, read back with pyiceberg's REST client."""
    import boto3
    from pyiceberg.catalog.rest import RestCatalog

    creds = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=endpoint, **creds)
    tag = f"{os.getpid()}"
    inb, outb, tb = f"rest-in-{tag}", f"rest-out-{tag}", f"rest-tables-{tag}"
    for b in (inb, outb, tb):
        s3.create_bucket(Bucket=b)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
    with tempfile.TemporaryDirectory() as tmp:
        with rest_catalog(tmp, env, "--warehouse", f"s3://{tb}/", "--s3-endpoint", endpoint) as url:
            ev = clickstream_in_s3(sluice, s3, inb, tmp)
            cfg = os.path.join(tmp, "table.toml")
            open(cfg, "w").write(
                open(f"{EXAMPLE}/pipeline.toml").read().replace("analytics-out", outb).replace(
                    'catalog = "sqlite:catalog.db"',
                    f'catalog = "rest+{url}"\nwarehouse = "arn:aws:s3tables:us-east-1:123456789012:bucket/{tb}"\n'
                    'sigv4 = "s3tables"'))
            r = subprocess.run([sluice, "replay", cfg, ev, "--endpoint-url", endpoint, "--json"],
                               capture_output=True, text=True, timeout=DEADLINE_S, env=env)
            assert r.returncode == 0, f"{r.stdout} {r.stderr}"
            s = json.loads(r.stdout.splitlines()[-1])
            assert s["records_out"] == 99 and s["objects"] == 3, s
            os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
            catalog = RestCatalog("rest", uri=url, **{
                "rest.sigv4-enabled": "true", "rest.signing-region": "us-east-1", "rest.signing-name": "s3tables",
                "s3.endpoint": endpoint, "s3.region": "us-east-1",
                "s3.access-key-id": "test", "s3.secret-access-key": "test"})
            t = catalog.load_table("analytics.clicks")
            assert t.location().startswith(f"s3://{tb}/"), t.location()
            assert t.scan().to_arrow().num_rows == 99
            files = [f.file.file_path for f in t.scan().plan_files()]
            assert files and all(f.startswith(f"s3://{tb}/") for f in files), files
            stray = [o["Key"] for o in s3.list_objects_v2(Bucket=outb).get("Contents", [])
                     if not o["Key"].startswith("rejects/")]  # the example's rejects go to its own bucket
            assert not stray, f"table files written outside the table's bucket: {stray}"
            # table show and orphans follow the table to where the catalog put it.
            def table_cmd(*args):
                r = subprocess.run([sluice, "table", *args, cfg, "--endpoint-url", endpoint, "--json"],
                                   capture_output=True, text=True, timeout=60, env=env)
                assert r.returncode == 0, f"table {args}: {r.stdout} {r.stderr}"
                return r.stdout
            shown = json.loads(table_cmd("show"))
            assert len(shown["snapshots"]) == 1, shown
            assert table_cmd("orphans").strip() == "", "a fresh table has no orphans"
            stray_key = t.location()[len(f"s3://{tb}/"):].rstrip("/") + "/data/stray.parquet"
            s3.put_object(Bucket=tb, Key=stray_key, Body=b"x")
            listed = [json.loads(l) for l in table_cmd("orphans").splitlines()]
            assert [o["uri"] for o in listed] == [f"s3://{tb}/{stray_key}"], listed
            print(f"rest (S3 Tables' way): the catalog put the table in s3://{tb}/; 99 rows and "
                  f"{len(files)} data files there, read back by pyiceberg's REST client; table show and "
                  f"orphans find it there")


def main():
    sluice = os.path.abspath(sys.argv[1])
    example(sluice)
    concurrency(sluice)
    evolution(sluice)
    kinesis(sluice)
    rest(sluice)
    endpoint = os.environ.get("SLUICE_TEST_S3_ENDPOINT")
    if endpoint:
        glue(sluice, endpoint)
        rest_s3(sluice, endpoint)
        queue_mode(sluice, endpoint)
        queue_mode(sluice, endpoint, writers=64, batch=16, glue=True)
        queue_faults(sluice, endpoint)
        queue_kinesis(sluice, endpoint)
    elif os.environ.get("SLUICE_REQUIRE_S3"):
        sys.exit("SLUICE_REQUIRE_S3 is set but SLUICE_TEST_S3_ENDPOINT is not: the Glue check cannot run")
    else:
        print("glue: skipped (no SLUICE_TEST_S3_ENDPOINT; scripts/test.sh starts moto and sets it)")


if __name__ == "__main__":
    main()
