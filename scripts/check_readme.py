#!/usr/bin/env python3
"""The README, run: every snippet in it does what the README says, so it cannot drift from the binary.

    check_readme.py SLUICE

- Every ```toml block is a complete pipeline.toml: `sluice validate` must accept it, and its plan
  must show no error.
- Every command in a ```sh block runs from the checkout: `cargo run --release -p sluice-cli --`
  is the given binary, `cargo run -p X` is run as written, the test command itself is skipped.
  Outputs given with `--out` go to a scratch folder; whatever else a command writes into the
  checkout (the tag-stage example writes under fixtures/objects/) is removed after it, so the
  fixtures other tests read stay as committed. Where the README says what a command
  prints ("3 objects, 2 skipped …, 155 records in, 99 out, 5 rejected") and where it writes, the
  run must agree.
- The command-line synopsis: every `--option` it shows for a command is one that command takes
  (`sluice COMMAND --help`).

Every check is printed; the exit status is 1 when one fails.
"""

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
failures = []


def check(ok, what, detail=""):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        if detail:
            print("     " + detail.replace("\n", "\n     "))
        failures.append(what)


def blocks(text):
    """(language, body, the text after the block up to the next blank line) of every fenced block."""
    out = []
    for m in re.finditer(r"^```(\w*)\n(.*?)^```\n", text, re.S | re.M):
        after = text[m.end():].split("\n\n", 1)[0]
        out.append((m.group(1), m.group(2), after))
    return out


def run(cmd, **kw):
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, **kw)


def check_toml(sluice, i, body):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "pipeline.toml")
        with open(path, "w") as f:
            f.write(body)
        p = run([sluice, "validate", path])
        first = body.strip().splitlines()[0]
        check(
            p.returncode == 0 and "error" not in p.stdout,
            f"toml block {i} ({first[:50]}) validates",
            p.stdout + p.stderr,
        )


def said_counts(after):
    """The counts a sentence after a command says it prints, if it says them."""
    m = re.search(
        r"(\d+) objects?,\s+(\d+) skipped[^,]*,\s+(\d+) records in,\s+(\d+) out,\s+(\d+) rejected",
        after,
    )
    if not m:
        return None
    keys = ["objects", "skipped", "records_in", "records_out", "rejected"]
    return dict(zip(keys, map(int, m.groups())))


def said_paths(after, out_flag):
    """The folders under `out/` a sentence names, as globs under the scratch folder."""
    return [p.replace("2x", "2?") for p in re.findall(r"`" + re.escape(out_flag) + r"([^`]+/)`", after)]


def files_under(folder):
    return {os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs}


def check_command(sluice, line, after, scratch):
    fixtures = os.path.join(ROOT, "fixtures")
    before = files_under(fixtures)
    try:
        run_command(sluice, line, after, scratch)
    finally:
        for f in sorted(files_under(fixtures) - before):
            os.remove(f)
        for d, dirs, fs in sorted(os.walk(fixtures), reverse=True):
            if not dirs and not fs and not any(b.startswith(d + os.sep) for b in before):
                os.rmdir(d)


def run_command(sluice, line, after, scratch):
    args = shlex.split(line)
    if args[:1] == ["scripts/test.sh"]:
        print(f"skip {line} (the command running this check)")
        return
    if args[:5] == ["cargo", "run", "--release", "-p", "sluice-cli"] and args[5] == "--":
        args = [sluice] + args[6:]
    # Outputs into the scratch folder, not the checkout.
    out_flag = None
    if "--out" in args:
        i = args.index("--out")
        out_flag = args[i + 1]
        args[i + 1] = scratch
    counts = said_counts(after)
    if counts is not None and args[0] == sluice:
        args.append("--json")
    p = run(args)
    check(p.returncode == 0, f"`{line}` runs", (p.stdout + p.stderr)[-2000:])
    if counts is not None and p.returncode == 0:
        summaries = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
        got = {k: sum(s[k] for s in summaries) for k in counts}
        check(got == counts, f"`{line}` prints what the README says: {counts}", f"it printed {got}")
    if out_flag:
        import glob

        for rel in said_paths(after, out_flag):
            found = glob.glob(os.path.join(scratch, rel))
            check(
                any(os.listdir(f) for f in found if os.path.isdir(f)),
                f"`{line}` writes under {out_flag}{rel}",
                f"found {found}",
            )


def check_synopsis(sluice, body):
    """Each `sluice CMD [SUB] … --opt …` line of the synopsis: its options exist."""
    helps = {}
    command = None
    for line in body.splitlines():
        m = re.match(r"sluice (\w+)(?: (s3|kinesis|sqs|batch-ops|cwlogs|dynamodb|firehose|show|orphans)(?![\w-]))?", line.strip())
        if m:
            command = [c for c in m.groups() if c]
        if not command:
            continue
        key = " ".join(command)
        if key not in helps:
            p = run([sluice, *command, "--help"])
            helps[key] = p.stdout
        for opt in re.findall(r"(--[a-z][a-z-]*)", line):
            check(opt in helps[key], f"`sluice {key}` takes {opt}", helps[key][-1500:])


def main():
    sluice = os.path.abspath(sys.argv[1])
    text = open(os.path.join(ROOT, "README.md")).read()
    found = blocks(text)
    tomls = [b for b in found if b[0] == "toml"]
    check(len(tomls) >= 3, f"the README has its TOML blocks ({len(tomls)})")
    for i, (lang, body, after) in enumerate(found):
        if lang == "toml":
            check_toml(sluice, i, body)
        elif lang == "sh":
            for line in body.splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    with tempfile.TemporaryDirectory() as scratch:
                        check_command(sluice, line, after, scratch)
        elif lang == "" and body.lstrip().startswith("sluice "):
            check_synopsis(sluice, body)
    # Commands written inline, in backticks, with real arguments (no CONFIG-style placeholders).
    fenced = re.sub(r"^```.*?^```\n", "", text, flags=re.S | re.M)
    for cmd in re.findall(r"`((?:cargo run|sluice) [^`]+)`", fenced):
        args = shlex.split(cmd)
        real = [a for a in args[2:] if not a.startswith("-")]
        if not real or any(re.fullmatch(r"[A-Z][A-Z_.]*", a) for a in args):
            continue
        with tempfile.TemporaryDirectory() as scratch:
            check_command(sluice, cmd, "", scratch)
    print(f"{len(failures)} failed" if failures else "README: every snippet does what it says")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
