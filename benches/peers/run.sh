#!/usr/bin/env bash
# Peer comparisons in one run, each tool on one core:
#   benches/peers/run.sh filter [MB]   NDJSON → filter → Parquet: Sluice, DuckDB, pyarrow
#   benches/peers/run.sh rollup [MB]   the reference rollup: Sluice, DuckDB, Polars (plain and gzip)
#   benches/peers/run.sh kinesis [N]   an N-record (default 10 000) Kinesis batch through the rollup:
#                                      Sluice's handler, Python (json+base64+pyarrow), Node.js
#   benches/peers/run.sh thumbnails [N]  N (default 3) 12 MP and 2 MP JPEG photos → widths 1024/512/128,
#                                      JPEG and WebP q80: Sluice, Pillow (± draft), sharp, vipsthumbnail
# Generates ~MB (default 100) of clickstream NDJSON; DuckDB, pyarrow and Polars come from PyPI into
# the test virtualenv.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}"
VENV="${SLUICE_VENV:-$HOME/.cache/sluice/venv}"
JOB="${1:-rollup}"
MB="${2:-100}"
case "$JOB" in
  filter) script=filter_to_parquet.py; deps=("duckdb>=1" "pyarrow>=15") ;;
  rollup) script=rollup.py; deps=("duckdb>=1" "polars>=1") ;;
  kinesis) deps=("pyarrow>=15") ;;
  thumbnails) deps=("pillow>=10") ;;
  *) echo "usage: $0 filter|rollup [MB] | kinesis [RECORDS] | thumbnails [N]" >&2; exit 2 ;;
esac
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${deps[@]}"
cargo build --release --quiet -p sluice-pipeline -p sluice-benches
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$JOB" = thumbnails ]; then
  NODE_DIR="${SLUICE_NODE_DIR:-$HOME/.cache/sluice/node}"
  mkdir -p "$NODE_DIR"
  [ -f "$NODE_DIR/package.json" ] || echo '{"name":"sluice-peers","private":true}' >"$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --silent sharp@0.34) || echo "sharp could not be installed; comparing without it" >&2
  # The corpus is kept between runs (generating 12 MP photos takes a while).
  CORPUS="${SLUICE_THUMB_DIR:-$HOME/.cache/sluice/thumbs}"
  mkdir -p "$CORPUS"
  "$VENV/bin/python" benches/peers/thumbnails.py "$CARGO_TARGET_DIR/release/sluice" "$CORPUS" \
    "$NODE_DIR/node_modules" "${2:-3}"
  exit
fi
if [ "$JOB" = kinesis ]; then
  N="${2:-10000}"
  NODE_DIR="${SLUICE_NODE_DIR:-$HOME/.cache/sluice/node}"
  mkdir -p "$NODE_DIR"
  [ -f "$NODE_DIR/package.json" ] || echo '{"name":"sluice-peers","private":true}' >"$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --silent parquet-wasm@0.7 apache-arrow@21)
  "$CARGO_TARGET_DIR/release/gen-clickstream" "$work/all.ndjson" $(( N / 3000 + 1 )) >/dev/null
  head -n "$N" "$work/all.ndjson" >"$work/records.ndjson"
  "$CARGO_TARGET_DIR/release/sluice" event kinesis --stream clicks "$work/records.ndjson" >"$work/event.json"
  "$VENV/bin/python" benches/peers/kinesis_batch.py "$CARGO_TARGET_DIR/release/bench-batch" \
    benches/peers/rollup.toml "$work/event.json" "$NODE_DIR/node_modules"
  exit
fi
"$CARGO_TARGET_DIR/release/gen-clickstream" "$work/clickstream.ndjson" "$MB"
"$VENV/bin/python" "benches/peers/$script" "$CARGO_TARGET_DIR/release/sluice" "$work/clickstream.ndjson"
