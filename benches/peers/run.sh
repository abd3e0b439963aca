#!/usr/bin/env bash
# Peer comparison in one run: generate ~100 MB of clickstream NDJSON, then NDJSON → filter → Parquet
# by Sluice, DuckDB and pyarrow, each on one core. Uses the test virtualenv for DuckDB and pyarrow.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}"
VENV="${SLUICE_VENV:-$HOME/.cache/sluice/venv}"
MB="${1:-100}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import duckdb, pyarrow" 2>/dev/null || "$VENV/bin/pip" install --quiet "duckdb>=1" "pyarrow>=15"
cargo build --release --quiet -p sluice-pipeline -p sluice-benches
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$CARGO_TARGET_DIR/release/gen-clickstream" "$work/clickstream.ndjson" "$MB"
"$VENV/bin/python" benches/peers/filter_to_parquet.py "$CARGO_TARGET_DIR/release/sluice" "$work/clickstream.ndjson"
