"""The reference Kinesis rollup as a Python Lambda handler would write it: json.loads of the
event, base64 and json.loads of each record, the filter, then pyarrow: group by page and 1-minute
window with count, sum(bytes), avg(latency_ms), max(latency_ms) and count_distinct(user_id), and
zstd Parquet. Warm: runs the handler ITERATIONS times on the same event bytes and prints the median
milliseconds per batch as JSON.

Usage: kinesis_handler.py EVENT.json [ITERATIONS]
"""
import base64
import datetime
import io
import json
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq


def handler(body):
    event = json.loads(body)
    window, page, user, latency, nbytes = [], [], [], [], []
    for r in event["Records"]:
        c = json.loads(base64.b64decode(r["kinesis"]["data"]))
        if not (c.get("event_type") != "view" or (c.get("latency_ms") or 0) > 500):
            continue
        ts = datetime.datetime.fromisoformat(c["ts"].replace("Z", "+00:00"))
        window.append(ts.replace(second=0, microsecond=0))
        page.append(c.get("page"))
        user.append(c.get("user_id"))
        latency.append(c.get("latency_ms"))
        nbytes.append(c.get("bytes"))
    table = pa.table({
        "window_start": pa.array(window, pa.timestamp("us", tz="UTC")),
        "page": page, "user_id": user, "latency_ms": pa.array(latency, pa.int64()),
        "bytes": pa.array(nbytes, pa.int64()),
    })
    aggregated_at = time.perf_counter()
    out = table.group_by(["window_start", "page"]).aggregate([
        ([], "count_all"), ("bytes", "sum"), ("latency_ms", "mean"), ("latency_ms", "max"),
        ("user_id", "count_distinct"),
    ]).sort_by([("window_start", "ascending"), ("page", "ascending")])
    sink = io.BytesIO()
    pq.write_table(out, sink, compression="zstd")
    return out.num_rows, sink.getbuffer().nbytes, aggregated_at


def main():
    body = open(sys.argv[1], "rb").read()
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    times, decode = [], []
    for i in range(iterations + 3):
        t = time.perf_counter()
        rows, size, mid = handler(body)
        if i >= 3:
            times.append((time.perf_counter() - t) * 1e3)
            decode.append((mid - t) * 1e3)
    times.sort()
    decode.sort()
    print(json.dumps({"p50_ms": times[(len(times) - 1) // 2],
                      "parse_and_decode_p50_ms": decode[(len(decode) - 1) // 2],
                      "groups": rows, "parquet_bytes": size}))


if __name__ == "__main__":
    main()
