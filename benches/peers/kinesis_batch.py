#!/usr/bin/env python3
"""A 10 000-record Kinesis batch of clickstream JSON through filter → 1-minute rollup → zstd Parquet,
side by side on one core each: Sluice's handler (bench-batch: the invocation's bytes in, event
parsing included), the same handler in Python (json + base64 + pyarrow) and in Node.js
(JSON.parse + Buffer + apache-arrow + parquet-wasm). All warm, median of ITERATIONS batches.

Usage: kinesis_batch.py BENCH_BATCH_BIN CONFIG EVENT.json NODE_MODULES [ITERATIONS]
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, env=None):
    out = subprocess.run(["taskset", "-c", "0", *cmd], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    bench, config, event, node_modules = sys.argv[1:5]
    iterations = sys.argv[5] if len(sys.argv) > 5 else "30"
    # Lambda delivers events as compact JSON; `sluice event` writes them pretty-printed.
    doc = json.load(open(event))
    event = event + ".compact.json"
    with open(event, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    records = len(doc["Records"])
    size = os.path.getsize(event)
    sluice = run([bench, config, event, iterations])
    python = run([sys.executable, os.path.join(HERE, "kinesis_handler.py"), event, str(max(5, int(iterations) // 3))])
    node = run(["node", os.path.join(HERE, "kinesis_handler.js"), event, iterations],
               env={**os.environ, "NODE_PATH": node_modules})
    print(f"Kinesis batch: {records} records, {size / 1e6:.1f} MB of compact event JSON, one core each, warm, median")
    print(f"{'':<34}{'ms/batch':>10}{'records/s':>14}")
    rows = [
        ("Sluice (event bytes → Parquet)", sluice["p50_ms"]),
        ("Sluice via serde_json::Value", sluice["via_value_p50_ms"]),
        ("Python json+base64+pyarrow", python["p50_ms"]),
        ("Node.js JSON+Buffer+parquet-wasm", node["p50_ms"]),
    ]
    for name, ms in rows:
        print(f"{name:<34}{ms:>10.2f}{records / (ms / 1e3):>14,.0f}")
    print(f"Python up to its aggregate: {python['parse_and_decode_p50_ms']:.1f} ms; "
          f"Node up to its Parquet write: {node['parse_and_aggregate_p50_ms']:.1f} ms")
    print(f"Sluice vs Python: {python['p50_ms'] / sluice['p50_ms']:.1f}x; "
          f"vs Node.js: {node['p50_ms'] / sluice['p50_ms']:.1f}x "
          f"(targets: under 10 ms, 10x Python, 5x Node.js)")


if __name__ == "__main__":
    main()
