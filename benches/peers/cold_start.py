#!/usr/bin/env python3
"""Cold start, Sluice beside a minimal lambda_runtime hello-world built the same way.

Each binary is started as Lambda starts a function (`bootstrap`, no arguments, the Runtime API in
AWS_LAMBDA_RUNTIME_API) against a Runtime API served here; timed from just before the process is
spawned to its first request for an event (`GET …/invocation/next`: init done), and to its answer
to that event: for Sluice an S3 notification of a 200-line NDJSON object, read from and written
(as Parquet) to an S3 endpoint served here too (plain HTTP on loopback: no network, but the SDK's
client, credentials and TLS trust store are all made as in Lambda); the hello-world echoes it.
RUNS fresh processes each, in turns, with a warm page cache; medians and p90.

Usage: cold_start.py SLUICE_BIN HELLO_BIN [RUNS]
Prints a markdown table and the ratio of the medians.
"""
import http.server
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

OBJECT = "".join(
    json.dumps({"ts": f"2026-11-22T12:{i // 60:02d}:{i % 60:02d}Z", "page": f"/p/{i % 7}", "n": i % 5})
    + "\n" for i in range(200)).encode()
# Every field S3 sends (a record without `userIdentity`, say, is not one S3 sends, and is skipped).
EVENT = json.dumps({"Records": [{
    "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
    "eventTime": "2026-11-22T12:00:00.000Z", "eventName": "ObjectCreated:Put",
    "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"},
    "requestParameters": {"sourceIPAddress": "203.0.113.7"},
    "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"},
    "s3": {"s3SchemaVersion": "1.0", "configurationId": "cold",
           "bucket": {"name": "in", "ownerIdentity": {"principalId": "AIDAEXAMPLE"}, "arn": "arn:aws:s3:::in"},
           "object": {"key": "k.ndjson", "size": len(OBJECT), "sequencer": "0055AED6DCD90281E5"}}}]}).encode()

PIPELINE = """name = "cold"
[input]
format = "ndjson"
buckets = ["in"]
schema = { ts = "timestamp", page = "string", n = "int64" }
[[stage]]
type = "filter"
where = "n > 0"
[output]
uri = "s3://out/rows/"
"""


class Api(http.server.BaseHTTPRequestHandler):
    """The Runtime API: one event, then the answer is taken and the run is over."""
    marks = None

    def do_GET(self):
        if self.path.endswith("/invocation/next"):
            if "next" in Api.marks:
                return  # a second request: the run is over; never answered
            Api.marks["next"] = time.perf_counter()
            self.send_response(200)
            for k, v in [("Lambda-Runtime-Aws-Request-Id", "req-1"),
                         ("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30_000)),
                         ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:cold"),
                         ("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"),
                         ("Content-Type", "application/json"), ("Content-Length", str(len(EVENT)))]:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(EVENT)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        Api.marks["answer" if self.path.endswith("/response") else "error"] = time.perf_counter()
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class S3(http.server.BaseHTTPRequestHandler):
    """Just enough of S3 (path style): the one object to read, and PUTs kept by key."""
    protocol_version = "HTTP/1.1"
    puts = None

    def do_GET(self):
        if self.path.split("?")[0] != "/in/k.ndjson":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        for k, v in [("Content-Length", str(len(OBJECT))), ("Content-Type", "application/x-ndjson"),
                     ("ETag", '"0123456789abcdef0123456789abcdef"'),
                     ("Last-Modified", "Sun, 22 Nov 2026 12:00:00 GMT")]:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(OBJECT)

    def do_PUT(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        S3.puts[self.path.split("?")[0]] = body
        self.send_response(200)
        self.send_header("ETag", '"fedcba9876543210fedcba9876543210"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def serve(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A request thread still reading a connection of a killed process must not hold the run up.
    server.daemon_threads = True
    server.block_on_close = False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stop(server):
    """Stop a server, or fail the run if it does not stop within 5 s (never hang)."""
    t = threading.Thread(target=server.shutdown, daemon=True)
    t.start()
    t.join(5)
    if t.is_alive():
        raise SystemExit("a local server did not stop within 5 s")
    server.server_close()


def once(binary, env):
    Api.marks = {}
    S3.puts = {}
    server, s3 = serve(Api), serve(S3)
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{s3.server_address[1]}")
    t0 = time.perf_counter()
    p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = t0 + 30
    while "answer" not in Api.marks and "error" not in Api.marks and time.perf_counter() < deadline:
        if p.poll() is not None:
            break
        time.sleep(0.0005)
    p.kill()
    p.wait()
    for srv in (server, s3):
        stop(srv)
    if "next" not in Api.marks or "answer" not in Api.marks:
        raise SystemExit(f"{binary}: no answer to its first event ({Api.marks}, exit {p.returncode})")
    return (Api.marks["next"] - t0) * 1000, (Api.marks["answer"] - t0) * 1000, dict(S3.puts)


def main():
    sluice, hello = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    with tempfile.TemporaryDirectory() as work:
        cfg = os.path.join(work, "pipeline.toml")
        open(cfg, "w").write(PIPELINE)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLUICE_"))}
        base.update({"AWS_LAMBDA_FUNCTION_NAME": "cold", "AWS_LAMBDA_FUNCTION_VERSION": "1",
                     "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "AWS_REGION": "us-east-1",
                     "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                     "AWS_EC2_METADATA_DISABLED": "true", "AWS_LAMBDA_LOG_LEVEL": "WARN"})
        tools = {"Sluice (every stage built in)": (sluice, dict(base, SLUICE_CONFIG=cfg)),
                 "lambda_runtime hello-world": (hello, base)}
        for path, env in tools.values():
            once(path, env)  # the page cache warm
        got = {name: [] for name in tools}
        for _ in range(runs):
            for name, (path, env) in tools.items():
                init, answer, puts = once(path, env)
                if path == sluice and not any(k.startswith("/out/rows/") and v[:4] == b"PAR1" for k, v in puts.items()):
                    raise SystemExit(f"Sluice answered without writing its Parquet output: {sorted(puts)}")
                got[name].append((init, answer))
    print(f"| {runs} fresh processes each | size | to first request (init) p50 / p90 | to first answer p50 (Sluice: object read, Parquet written) |")
    print("|---|---|---|---|")
    p50 = {}
    for name, (path, _) in tools.items():
        init = sorted(i for i, _ in got[name])
        answer = sorted(a for _, a in got[name])
        p50[name] = statistics.median(init)
        print(f"| {name} | {os.path.getsize(path) / 1e6:.1f} MB | {p50[name]:.1f} / "
              f"{init[int(len(init) * 0.9) - 1]:.1f} ms | {statistics.median(answer):.1f} ms |")
    a, b = p50.values()
    print(f"\nSluice's init is {a / b:.2f}× the hello-world's.")


if __name__ == "__main__":
    main()
