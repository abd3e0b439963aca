#!/usr/bin/env python3
"""A 10 000-record Kinesis batch of clickstream JSON through filter → 1-minute rollup → zstd Parquet,
side by side on one core each: Sluice's handler (bench-batch: the invocation's bytes in, event
parsing included), the same handler in Python (json + base64 + pyarrow) and in Node.js
(JSON.parse + Buffer + apache-arrow + parquet-wasm). All warm; prints (and appends to $SLUICE_PEERS_OUT) a markdown table.

Then the same on the batch reshaped, so no reader is tuned to one generator: every record gets 11
more fields the query does not read (longer strings among them, a nested object, numbers), and
each record's keys come in an order of their own (seeded).

Usage: kinesis_batch.py BENCH_BATCH_BIN CONFIG EVENT.json NODE_MODULES [ITERATIONS] [RUNS]
"""
import base64
import json
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


sys.path.insert(0, HERE)
from common import alternate, emit, reshape, table  # noqa: E402


def run(cmd, env=None):
    out = subprocess.run(["taskset", "-c", "0", *cmd], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def reshaped(doc, seed=31):
    """`doc` with every record's data reshaped ([`common.reshape`]), its final line break kept."""
    rng = random.Random(seed)
    out = json.loads(json.dumps(doc))
    for r in out["Records"]:
        data = base64.b64decode(r["kinesis"]["data"])
        text = reshape(json.loads(data), rng)
        if data.endswith(b"\n"):
            text += b"\n"
        r["kinesis"]["data"] = base64.b64encode(text).decode()
    return out


def main():
    bench, config, event, node_modules = sys.argv[1:5]
    iterations = sys.argv[5] if len(sys.argv) > 5 else "20"
    runs = int(sys.argv[6]) if len(sys.argv) > 6 else 5
    # Lambda delivers events as compact JSON; `sluice event` writes them pretty-printed.
    doc = json.load(open(event))
    shapes = [("", doc), (", records reshaped (22 fields in their own order each)", reshaped(doc))]
    for i, (label, d) in enumerate(shapes):
        compact = f"{event}.{i}.compact.json"
        with open(compact, "w") as f:
            json.dump(d, f, separators=(",", ":"))
        compare(bench, config, compact, node_modules, iterations, runs, label)


def compare(bench, config, event, node_modules, iterations, runs, label):
    doc = json.load(open(event))
    records = len(doc["Records"])
    size = os.path.getsize(event)
    node_env = {**os.environ, "NODE_PATH": node_modules}

    def sluice():
        r = run([bench, config, event, iterations, "bytes-only"])
        return r["p50_ms"] / 1e3, None

    def sluice_value():
        r = run([bench, config, event, iterations])
        return r["via_value_p50_ms"] / 1e3, None

    def python():
        r = run([sys.executable, os.path.join(HERE, "kinesis_handler.py"), event, str(max(5, int(iterations) // 3))])
        return r["p50_ms"] / 1e3, f"{r['parse_and_decode_p50_ms']:.1f} ms to its aggregate"

    def node():
        r = run(["node", os.path.join(HERE, "kinesis_handler.js"), event, iterations], env=node_env)
        return r["p50_ms"] / 1e3, f"{r['parse_and_aggregate_p50_ms']:.1f} ms to its Parquet write"

    results = alternate({
        "Sluice (event bytes → Parquet)": sluice,
        "Sluice via serde_json::Value": sluice_value,
        "Python json+base64+pyarrow": python,
        "Node.js JSON+Buffer+parquet-wasm": node,
    }, runs)
    emit(table(
        f"Kinesis batch: {records} records{label} → filter → 1-minute rollup → zstd Parquet",
        f"{size / 1e6:.1f} MB of compact event JSON, its parsing included; one core each, warm; each run is "
        f"the median of {iterations} batches in one process, the table the median of the runs, run in "
        "turns. Targets: under 10 ms a batch, 10× Python, 5× Node.js.",
        results,
        [("ms / batch", lambda m, _: f"{m * 1000:.2f}"),
         ("records/s", lambda m, _: f"{records / m:,.0f}"),
         ("note", lambda _, x: x or "")]))


if __name__ == "__main__":
    main()
