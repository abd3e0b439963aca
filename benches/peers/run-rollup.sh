#!/usr/bin/env bash
# The reference rollup, Sluice vs DuckDB vs Polars, one core each, in one run (see rollup.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}"
VENV="${SLUICE_VENV:-$HOME/.cache/sluice/venv}"
MB="${1:-100}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import duckdb, polars" 2>/dev/null || "$VENV/bin/pip" install --quiet "duckdb>=1" "polars>=1"
cargo build --release --quiet -p sluice-pipeline -p sluice-benches
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$CARGO_TARGET_DIR/release/gen-clickstream" "$work/clickstream.ndjson" "$MB"
"$VENV/bin/python" benches/peers/rollup.py "$CARGO_TARGET_DIR/release/sluice" "$work/clickstream.ndjson"
