#!/usr/bin/env python3
"""The deployed code path under cargo-lambda's Lambda runtime emulator.

`cargo lambda watch --only-lambda-apis` serves the Lambda Runtime API and the Invoke API; the
`sluice` binary runs as the function's `bootstrap` (no arguments, as Lambda starts it) against the
moto S3 endpoint, through a small recording proxy so that the X-Ray trace header of each S3 call
can be checked. Three events are invoked through the Invoke API — an S3 put, an SQS batch wrapping
S3 notifications (one object corrupt, one deleted), a Kinesis batch (one bad line) — and the responses, the
Parquet outputs in moto, the JSON log lines (request id and trace id on each) and the Embedded
Metric Format lines are checked. Init time and first-invocation latency are printed. Then the same
binary runs as a Firehose transformation function (its own config) and answers a Firehose batch
through the emulator, record by record.

Usage: check_lambda.py SLUICE_BIN CARGO_LAMBDA_BIN S3_ENDPOINT
"""
import base64
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from forwarder import Forwarder

import boto3
import pyarrow.parquet as pq

PIPELINE = """
name = "lambda-check"
[input]
format = "ndjson"
keys = ["clicks/**"]
schema = { n = "int64", page = "string" }
[[stage]]
type = "filter"
where = "n > 0"
[output]
uri = "s3://lambda-out/rows/"
format = "parquet"
[rejects]
uri = "s3://lambda-out/rejects/"
[metrics]
dimensions = [["pipeline"], ["pipeline", "trigger"]]
"""

FIREHOSE = """
name = "lambda-firehose"
[input]
format = "ndjson"
trigger = "firehose"
schema = { n = "int64", page = "string", day = "string" }
[[stage]]
type = "filter"
where = "n > 0"
[output]
format = "ndjson"
partition_by = ["day"]
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Recorder(Forwarder):
    """Forwards every request to the S3 endpoint, noting its method, path and trace header."""

    seen = []

    def forward(self):
        body = self.body()
        Recorder.seen.append((self.command, self.path, self.headers.get("X-Amzn-Trace-Id")))
        self.answer(*self.relay(body))


def event(sluice, *args):
    """An event written by `sluice event` (the same writer users make replay fixtures with)."""
    return json.loads(subprocess.run([sluice, "event", *args], check=True, capture_output=True).stdout)


def invoke(port, event):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/2015-03-31/functions/_/invocations",
                                 data=json.dumps(event).encode(), method="POST")
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        body = json.loads(r.read())
    return body, (time.perf_counter() - t) * 1e3


def wait_for_port(port, proc, what):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"{what} exited early")
            time.sleep(0.05)
    raise SystemExit(f"{what} did not start")


def elf_type(path):
    """The ELF file type: 2 for an executable linked at a fixed address, 3 for a
    position-independent one (or a shared object)."""
    with open(path, "rb") as f:
        head = f.read(18)
    if head[:4] != b"\x7fELF":
        raise SystemExit(f"{path} is not an ELF file")
    return int.from_bytes(head[16:18], "little" if head[5] == 1 else "big")


def main():
    sluice, cargo_lambda, endpoint = sys.argv[1:4]
    # cli/build.rs links `sluice` at a fixed address (its start skips ~145 000 relocations: the
    # README's "Cold start"), unless SLUICE_PIE asks for the position-independent default.
    pie = os.environ.get("SLUICE_PIE", "") not in ("", "0")
    if elf_type(sluice) != (3 if pie else 2):
        raise SystemExit(f"{sluice}: ELF type {elf_type(sluice)}, expected {'PIE (3)' if pie else 'a fixed-address executable (2)'}")
    work = tempfile.mkdtemp()
    procs = []
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        for b in ("lambda-in", "lambda-out"):
            try:
                s3.create_bucket(Bucket=b)
            except s3.exceptions.BucketAlreadyOwnedByYou:
                pass
        good = b'{"n":1,"page":"/a"}\n{"n":0,"page":"/skip"}\n{"n":2,"page":"/b"}\n'
        s3.put_object(Bucket="lambda-in", Key="clicks/one.ndjson", Body=good)
        s3.put_object(Bucket="lambda-in", Key="clicks/two.ndjson", Body=b'{"n":5,"page":"/c"}\n')
        # A gzip header and then nonsense: an object that cannot be read.
        s3.put_object(Bucket="lambda-in", Key="clicks/broken.ndjson.gz",
                      Body=b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03not deflate")

        # The recording proxy in front of moto.
        up = urllib.parse.urlparse(endpoint)
        Recorder.upstream = (up.hostname, up.port)
        proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"

        # The emulator: Runtime API and Invoke API on one port.
        port = free_port()
        emulator = subprocess.Popen(
            [cargo_lambda, "lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", str(port)],
            # It reads the workspace's metadata (and builds nothing with --only-lambda-apis).
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(emulator)
        wait_for_port(port, emulator, "cargo lambda watch")

        # The function, started as Lambda starts it: `bootstrap`, no arguments.
        cfg = os.path.join(work, "pipeline.toml")
        with open(cfg, "w") as f:
            f.write(PIPELINE)
        bootstrap = os.path.join(work, "bootstrap")
        shutil.copy(sluice, bootstrap)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLUICE_", "RUST_LOG"))}
        env.update({
            # As `cargo lambda watch --only-lambda-apis` tells a function started by hand.
            "AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{port}/.rt",
            "AWS_LAMBDA_FUNCTION_NAME": "_", "AWS_LAMBDA_FUNCTION_VERSION": "1",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL": proxy_url,
            "SLUICE_CONFIG": cfg, "AWS_LAMBDA_LOG_LEVEL": "INFO",
        })
        log_path = os.path.join(work, "function.log")
        log = open(log_path, "w")
        function = subprocess.Popen([bootstrap], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
        procs.append(function)

        # 1. An S3 put.
        put = event(sluice, "s3", "--bucket", "lambda-in", "--key", "clicks/one.ndjson", "--size", str(len(good)))
        resp, first_ms = invoke(port, put)
        assert resp["objects"] == 1 and resp["records_out"] == 2 and resp["error"] is None, resp
        # 2. SQS carrying S3 notifications, one naming a corrupt object and one an object deleted
        # since its notification: only the corrupt one is retried; the deleted one is skipped.
        ok, broken, missing = (event(sluice, "s3", "--bucket", "lambda-in", "--key", k, "--size", "20", "--sqs")
                               for k in ("clicks/two.ndjson", "clicks/broken.ndjson.gz", "clicks/missing.ndjson"))
        sqs = {"Records": ok["Records"] + broken["Records"] + missing["Records"]}
        resp, _ = invoke(port, sqs)
        assert resp == {"batchItemFailures": [{"itemIdentifier": broken["Records"][0]["messageId"]}]}, resp
        # 3. A Kinesis batch with a bad line: a reject, not a failure.
        lines = os.path.join(work, "lines.ndjson")
        with open(lines, "w") as f:
            f.write('{"n":7,"page":"/k"}\nnot json\n{"n":8,"page":"/l"}\n')
        resp, _ = invoke(port, event(sluice, "kinesis", "--stream", "clicks", lines))
        assert resp == {"batchItemFailures": []}, resp

        # Outputs in moto: the rows that passed the filter, readable by pyarrow.
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="lambda-out").get("Contents", [])]
        rows = []
        for k in keys:
            if k.startswith("rows/") and k.endswith(".parquet"):
                body = s3.get_object(Bucket="lambda-out", Key=k)["Body"].read()
                rows += pq.read_table(io.BytesIO(body)).to_pylist()
        assert sorted(r["page"] for r in rows) == ["/a", "/b", "/c", "/k", "/l"], (keys, rows)
        rejects = [k for k in keys if k.startswith("rejects/")]
        assert len(rejects) == 1, keys

        function.terminate()
        function.wait(timeout=10)
        log.close()
        lines = [json.loads(l) for l in open(log_path) if l.startswith("{")]
        ready = [l for l in lines if l.get("message") == "Ready for events."]
        assert len(ready) == 1, lines
        init_ms = ready[0]["init_ms"]
        logs = [l for l in lines if "message" in l and l is not ready[0]]
        emf = [l for l in lines if "_aws" in l]
        # The request id and the X-Ray trace id on every line logged during an invocation.
        assert logs and all(l.get("requestId") and l.get("traceId", "").startswith("Root=") for l in logs), logs
        done = [l for l in logs if l["message"] == "Invocation done."]
        assert len(done) == 3 and len({l["requestId"] for l in done}) == 3, done
        assert any(l["message"] == "Processed object." and l.get("key") == "clicks/one.ndjson" for l in logs), logs
        # One metrics line per invocation, in the configured dimension sets.
        assert len(emf) == 3, emf
        for m in emf:
            d = m["_aws"]["CloudWatchMetrics"][0]
            assert d["Namespace"] == "Sluice" and d["Dimensions"] == [["pipeline"], ["pipeline", "trigger"]], m
            assert m["pipeline"] == "lambda-check" and all(isinstance(m[x["Name"]], (int, float)) for x in d["Metrics"]), m
        by_trigger = {m["trigger"]: m for m in emf}
        assert by_trigger["kinesis"]["Rejected"] == 1 and by_trigger["kinesis"]["RecordsOut"] == 2, by_trigger
        assert by_trigger["s3"]["RecordsIn"] == 3 and by_trigger["s3"]["Stage.filter"] >= 0, by_trigger
        # The invocation's trace header went along with its S3 calls.
        traces = {l["traceId"].split(";")[0] for l in done}
        s3_calls = [c for c in Recorder.seen if c[1].startswith(("/lambda-in/", "/lambda-out/"))]
        assert s3_calls and all(t and t.split(";")[0] in traces for _, _, t in s3_calls), (s3_calls, traces)
        # 4. The same binary as a Firehose transformation function: kept, filtered and malformed
        # records, each answered by its recordId.
        cfg = os.path.join(work, "firehose.toml")
        with open(cfg, "w") as f:
            f.write(FIREHOSE)
        log = open(os.path.join(work, "firehose.log"), "w")
        function = subprocess.Popen([bootstrap], env=dict(env, SLUICE_CONFIG=cfg), stdout=log,
                                    stderr=subprocess.STDOUT, cwd=work)
        procs.append(function)
        fh_lines = os.path.join(work, "firehose.ndjson")
        with open(fh_lines, "w") as f:
            f.write('{"n":3,"page":"/f","day":"2026-11-22"}\n{"n":0,"page":"/g","day":"2026-11-22"}\nnot json\n')
        batch = event(sluice, "firehose", "--stream", "web", fh_lines)
        resp, _ = invoke(port, batch)
        got = [(r["recordId"], r["result"]) for r in resp["records"]]
        want = list(zip([r["recordId"] for r in batch["records"]], ["Ok", "Dropped", "ProcessingFailed"]))
        assert got == want, resp
        first = resp["records"][0]
        assert base64.b64decode(first["data"]) == b'{"n":3,"page":"/f"}\n', first
        assert first["metadata"]["partitionKeys"] == {"day": "2026-11-22"}, first
        function.terminate()
        function.wait(timeout=10)
        log.close()

        size = os.path.getsize(sluice)
        print(f"lambda ok: 3 invocations through cargo-lambda's emulator (S3, SQS with one retry, Kinesis with "
              f"one reject); {len(logs)} log lines with request and trace ids, {len(emf)} EMF lines, "
              f"{len(s3_calls)} S3 calls carrying the trace header; init {init_ms:.1f} ms, first invocation "
              f"{first_ms:.0f} ms (this build: {size / 1e6:.0f} MB); a Firehose batch answered record by record")
    except BaseException:
        for name in ("function.log", "firehose.log"):
            path = os.path.join(work, name)
            if os.path.exists(path):
                print(f"{name}:\n" + open(path).read()[-4000:], file=sys.stderr)
        raise
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
