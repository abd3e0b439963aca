#!/usr/bin/env bash
# Peer comparisons in one run, each tool on one core:
#   benches/peers/run.sh filter [MB]   NDJSON → filter → Parquet: Sluice, DuckDB, pyarrow
#   benches/peers/run.sh rollup [MB]   the reference rollup: Sluice, DuckDB, Polars (plain and gzip)
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
  *) echo "usage: $0 filter|rollup [MB]" >&2; exit 2 ;;
esac
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${deps[@]}"
cargo build --release --quiet -p sluice-pipeline -p sluice-benches
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$CARGO_TARGET_DIR/release/gen-clickstream" "$work/clickstream.ndjson" "$MB"
"$VENV/bin/python" "benches/peers/$script" "$CARGO_TARGET_DIR/release/sluice" "$work/clickstream.ndjson"
