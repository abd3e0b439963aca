#!/usr/bin/env python3
"""`sluice bench` end to end: the bundled example benchmarked with --json and --html; the report's
figures checked against each other and against the cost model worked out here independently (the
rest of the bill, too: S3, KMS, Kinesis, catalog, SQS and CloudWatch Logs, priced here from the requests
the report counted, and those counts checked against what the example does); the
HTML page opened in headless Chromium (Debian's `chromium`), with no network, and its screenshot
checked for the chart's two lines.

Usage: check_bench.py SLUICE_BIN [CHROMIUM]
"""
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARM64_GB_S = 0.0000133334
X86_GB_S = 0.0000166667
REQUEST = 0.20 / 1e6
# The rest of the bill, US East standard tiers, from the services' pricing pages.
S3_PUT_LIST = 0.005 / 1000
S3_GET_OTHER = 0.0004 / 1000
KMS = 0.03 / 10000
KINESIS_PUT_UNIT = 0.014 / 1e6
GLUE = 1.0 / 1e6
SQS = 0.40 / 1e6
LOGS_PER_GIB = 0.50
# The objects the example's event names under its keys, as the notifications give their sizes.
EVENT_BYTES = sum(
    r["s3"]["object"]["size"]
    for r in json.load(open(os.path.join(ROOT, "examples/clickstream/events/s3-put.json")))["Records"]
    if r["eventName"].startswith("ObjectCreated") and r["s3"]["object"]["key"].startswith("clickstream/"))
COST_RGB = (0xC0, 0x39, 0x2B)
DURATION_RGB = (0x24, 0x71, 0xA3)


def fail(msg):
    print(f"check_bench: FAIL: {msg}")
    sys.exit(1)


def near(a, b, rel=1e-6):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-30)


def run_bench(sluice, work, arch, memory):
    html = os.path.join(work, f"bench-{arch}.html")
    out = subprocess.run(
        [sluice, "bench", "examples/clickstream/pipeline.toml", "examples/clickstream/events",
         "--iterations", "4", "--warmup", "1", "--cold-starts", "2", "--arch", arch,
         "--memory-mb", memory, "--json", "--html", html],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        fail(f"sluice bench exited {out.returncode}: {out.stderr}")
    return json.loads(out.stdout), html


def check_report(r, arch, sizes):
    price = ARM64_GB_S if arch == "arm64" else X86_GB_S
    if r["invocations"] != 4 or r["failed"] != 0:
        fail(f"invocations {r['invocations']}, failed {r['failed']}")
    # The example's one object: 155 lines, 5 of them bad, 99 rows through the filter.
    if (r["records_per_invocation"], r["records_out_per_invocation"], r["rejected_per_invocation"]) != (155, 99, 5):
        fail(f"records {r['records_per_invocation']} / {r['records_out_per_invocation']} / {r['rejected_per_invocation']}")
    if r["bytes_in_per_invocation"] != EVENT_BYTES or r["bytes_out_per_invocation"] <= 0:
        fail(f"bytes {r['bytes_in_per_invocation']} in, {r['bytes_out_per_invocation']} out")
    if not (0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]):
        fail("percentiles out of order")
    if not (r["peak_rss"] and r["peak_rss"] > 1 << 20):
        fail(f"peak memory {r['peak_rss']}")
    if r["init_runs"] != 2 or not (r["init_ms"] and r["init_ms"] > 0):
        fail(f"cold start {r['init_ms']} over {r['init_runs']}")
    if r["usd_per_gb_second"] != price or r["arch"] != arch:
        fail(f"price {r['usd_per_gb_second']} for {r['arch']}")
    est = r["estimates"]
    if [e["memory_mb"] for e in est] != sizes:
        fail(f"sizes {[e['memory_mb'] for e in est]}")
    # Independently: the mean billed ms at a size times its GB, at the price, plus a request.
    for e in est:
        vcpus = min(e["memory_mb"] / 1769, 6)
        if not near(e["vcpus"], vcpus):
            fail(f"{e['memory_mb']} MB: {e['vcpus']} vCPUs")
        usd = e["memory_mb"] / 1024 * e["billed_ms"] / 1000 * price + REQUEST
        if not near(e["usd_per_invocation"], usd):
            fail(f"{e['memory_mb']} MB: ${e['usd_per_invocation']} per invocation, expected ${usd}")
        if not near(e["usd_per_million_records"], usd / 155 * 1e6):
            fail(f"{e['memory_mb']} MB: per million records")
        if not near(e["usd_per_gb_in"], usd / EVENT_BYTES * 1e9):
            fail(f"{e['memory_mb']} MB: per GB")
        if e["billed_ms"] < e["duration_ms"] or e["billed_ms"] > e["duration_ms"] + 1:
            fail(f"{e['memory_mb']} MB: billed {e['billed_ms']} for {e['duration_ms']}")
        if e["fits"] != (r["peak_rss"] <= e["memory_mb"] << 20):
            fail(f"{e['memory_mb']} MB: fits is {e['fits']}")
    # Below one vCPU a CPU-bound handler stretches: 128 MB is slower than 1769 MB.
    if est[0]["duration_ms"] <= est[-1]["duration_ms"]:
        fail("128 MB is not slower than the largest size")
    cheapest = [e for e in est if e["cheapest"]]
    fastest = [e for e in est if e["fastest"]]
    if len(cheapest) != 1 or len(fastest) != 1:
        fail("not exactly one cheapest and one fastest")
    fitting = [e for e in est if e["fits"]]
    if cheapest[0]["usd_per_invocation"] != min(e["usd_per_invocation"] for e in fitting):
        fail("the cheapest is not the cheapest")
    if fastest[0]["duration_ms"] != min(e["duration_ms"] for e in fitting):
        fail("the fastest is not the fastest")
    if "Estimated, not measured on Lambda" not in r["method"]:
        fail("the method is not stated")
    check_bill(r)


def check_bill(r):
    """The rest of the bill: the requests counted are the example's (each invocation reads its 3
    objects and writes 4 files: 3 Parquet outputs and a rejects file, each one PutObject), and
    their price, worked out here from the counts, is the report's."""
    b, n = r["bill"], r["invocations"]
    q = b["requests"]
    s3 = q["s3"]
    if (s3["get"], s3["head"], s3["list"], s3["put"], s3["multipart"]) != (3 * n, 0, 0, 4 * n, 0):
        fail(f"S3 requests counted {s3}")
    if q["kms"] != 0 or q["kinesis_records"] != 0 or q["catalog"] != 0 or q["sqs"] != 0:
        fail(f"requests the example never makes were counted: {q}")
    # Lambda's START, END and REPORT, the metrics line, and the handler's own lines.
    if q["log_lines"] < 5 * n or q["log_bytes"] < 250 * n:
        fail(f"log lines {q['log_lines']}, {q['log_bytes']} bytes")
    cost = {
        "s3": ((s3["put"] + s3["multipart"] + s3["list"]) * S3_PUT_LIST + (s3["get"] + s3["head"]) * S3_GET_OTHER),
        "kms": q["kms"] * KMS,
        "kinesis": q["kinesis_put_units"] * KINESIS_PUT_UNIT,
        "catalog": q["catalog"] * GLUE if b["catalog"] == "glue" else 0.0,
        "sqs": q["sqs"] * SQS,
        "logs": q["log_bytes"] / 2**30 * LOGS_PER_GIB,
    }
    cost["total"] = sum(cost.values())
    for k, v in cost.items():
        if not near(b["usd_per_invocation"][k], v / n):
            fail(f"{k}: ${b['usd_per_invocation'][k]} per invocation, expected ${v / n}")
        if not near(b["usd_per_million_records"][k], v / (155 * n) * 1e6):
            fail(f"{k}: per million records")
    for e in r["estimates"]:
        if not near(e["total_usd_per_invocation"], e["usd_per_invocation"] + cost["total"] / n):
            fail(f"{e['memory_mb']} MB: all told ${e['total_usd_per_invocation']}")
        if not near(e["total_usd_per_million_records"], e["usd_per_million_records"] + cost["total"] / (155 * n) * 1e6):
            fail(f"{e['memory_mb']} MB: all told per million records")


def find_chromium(arg):
    for c in [arg, shutil.which("chromium"), shutil.which("chromium-browser")]:
        if c and os.path.exists(c):
            return c
    return None


def screenshot(chromium, html, work, name):
    png = os.path.join(work, name + ".png")
    profile = tempfile.mkdtemp(dir=work)
    out = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         # Nothing may be fetched: the page must stand alone.
         "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={profile}",
         "--window-size=1000,700", f"--screenshot={png}", "file://" + html],
        capture_output=True, text=True, timeout=120)
    if out.returncode != 0 or not os.path.exists(png):
        fail(f"chromium could not render the page: {out.stderr[-2000:]}")
    px = Image.open(png).convert("RGB").tobytes()

    def count(rgb):
        return sum(1 for i in range(0, len(px), 3)
                   if abs(px[i] - rgb[0]) <= 12 and abs(px[i + 1] - rgb[1]) <= 12
                   and abs(px[i + 2] - rgb[2]) <= 12)

    return count(COST_RGB), count(DURATION_RGB)


def render(chromium, html, work):
    """The page's coloured pixels, less those of the same page without its lines and markers (the
    coloured axis labels and legend stay): what is left is the chart itself."""
    page = open(html, encoding="utf-8").read()
    bare = re.sub(r"<(polyline|circle) [^>]*/>", "", page)
    bare_path = os.path.join(work, "bare.html")
    with open(bare_path, "w", encoding="utf-8") as f:
        f.write(bare)
    full = screenshot(chromium, html, work, "page")
    text = screenshot(chromium, bare_path, work, "bare")
    cost, duration = full[0] - text[0], full[1] - text[1]
    # Each line crosses ~700 px at 2.5 px wide, with markers of r=4: over a thousand pixels at full colour; 500 leaves room for anti-aliasing.
    if cost < 500 or duration < 500:
        fail(f"the chart's lines are not on the page: {cost} cost and {duration} duration pixels")
    return cost, duration


def main():
    sluice = os.path.abspath(sys.argv[1])
    chromium = find_chromium(sys.argv[2] if len(sys.argv) > 2 else None)
    work = tempfile.mkdtemp()
    try:
        sizes = [128, 512, 1769, 3008, 10240]
        r, html = run_bench(sluice, work, "arm64", ",".join(map(str, sizes)))
        check_report(r, "arm64", sizes)
        r2, _ = run_bench(sluice, work, "x86_64", "10240,128")
        check_report(r2, "x86_64", [128, 10240])
        page = open(html, encoding="utf-8").read()
        for bad in ("<script", "src=", "<link", "@import", "url("):
            if bad in page:
                fail(f"the page refers to something outside it: {bad}")
        if 'id="bill"' not in page or "CloudWatch Logs" not in page:
            fail("the page has no table of the rest of the bill")
        if chromium is None:
            fail("no chromium to render the page with (Debian: apt-get install chromium)")
        cost, duration = render(chromium, html, work)
        share = r["bill"]["usd_per_invocation"]["total"] / r["estimates"][-1]["total_usd_per_invocation"]
        print(f"check_bench: ok: {len(r['estimates'])} sizes priced for arm64 and 2 for x86_64 as the "
              f"model says; the rest of the bill priced from its counted requests as worked out here "
              f"({share:.0%} of the example's bill at 10 240 MB is not Lambda's); page rendered by "
              f"{os.path.basename(chromium)} ({cost} cost, {duration} duration pixels)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
