#!/usr/bin/env bash
# Sluice beside its peers, in one run, each tool on one core, run in turns, medians:
#   benches/peers/run.sh all [RUNS]    everything below, into benches/peers/RESULTS.md (with the
#                                      versions of every tool and the machine)
#   benches/peers/run.sh filter [MB]   NDJSON → filter → Parquet: Sluice, DuckDB, pyarrow
#   benches/peers/run.sh rollup [MB]   the reference rollup: Sluice, DuckDB, Polars (plain and gzip)
#   benches/peers/run.sh kinesis [N]   an N-record (default 10 000) Kinesis batch through the rollup:
#                                      Sluice's handler, Python (json+base64+pyarrow), Node.js; then
#                                      the same batch reshaped (11 more unread fields, keys shuffled)
#   benches/peers/run.sh tables [MB]   Iceberg table output against Parquet output: filter and the
#                                      rollup, MB/s each, and the commit's cost per invocation
#   benches/peers/run.sh cold [RUNS]   cold start: the dist-profile `sluice` as `bootstrap` (every stage built
#                                      in) beside a minimal lambda_runtime hello-world (benches/hello-lambda),
#                                      process start to first request for an event, RUNS (30) each
#   benches/peers/run.sh commits [Ns]  the commit curve: N (default 1,4,16,64,256) concurrent writers into
#                                      one Iceberg table (local SQLite catalog), direct commits against the
#                                      commit queue (moto's SQS, started and stopped here); writes
#                                      benches/peers/commits.{md,json,html} (the plot)
#   benches/peers/run.sh thumbnails [N]  N (default 3) 12 MP and 2 MP JPEG photos → widths 1024/512/128,
#                                      JPEG and WebP q80: Sluice, Pillow (± draft), sharp, vipsthumbnail
# The data is generated, seeded (gen-clickstream; the photos from Pillow's seeded noise). DuckDB,
# Polars, pyarrow and Pillow come from PyPI into the test virtualenv; sharp, apache-arrow and
# parquet-wasm from npm into ~/.cache/sluice/node; vipsthumbnail from Debian's libvips-tools
# (installed when missing and this runs as root). Each table is printed as markdown.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}"
VENV="${SLUICE_VENV:-$HOME/.cache/sluice/venv}"
NODE_DIR="${SLUICE_NODE_DIR:-$HOME/.cache/sluice/node}"
JOB="${1:-rollup}"
ARG="${2:-}"
RUNS="${SLUICE_PEER_RUNS:-5}"
# Published figures come from the dist profile (fat LTO, one codegen unit): what is deployed.
BIN="$CARGO_TARGET_DIR/dist"

python_deps() {
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$@"
}

node_deps() {
  mkdir -p "$NODE_DIR"
  [ -f "$NODE_DIR/package.json" ] || echo '{"name":"sluice-peers","private":true}' >"$NODE_DIR/package.json"
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --silent "$@") || echo "npm: $* could not be installed; comparing without" >&2
}

filter() {
  python_deps "duckdb>=1" "pyarrow>=15"
  "$BIN/gen-clickstream" "$work/filter.ndjson" "${1:-100}" >/dev/null
  "$VENV/bin/python" benches/peers/filter_to_parquet.py "$BIN/sluice" "$work/filter.ndjson" "$RUNS"
}

rollup() {
  python_deps "duckdb>=1" "polars>=1"
  "$BIN/gen-clickstream" "$work/rollup.ndjson" "${1:-100}" >/dev/null
  "$VENV/bin/python" benches/peers/rollup.py "$BIN/sluice" "$work/rollup.ndjson" "$RUNS"
}

kinesis() {
  local n="${1:-10000}"
  python_deps "pyarrow>=15"
  node_deps parquet-wasm@0.7 apache-arrow@21
  "$BIN/gen-clickstream" "$work/all.ndjson" $(( n / 3000 + 1 )) >/dev/null
  head -n "$n" "$work/all.ndjson" >"$work/records.ndjson"
  "$BIN/sluice" event kinesis --stream clicks "$work/records.ndjson" >"$work/event.json"
  "$VENV/bin/python" benches/peers/kinesis_batch.py "$BIN/bench-batch" benches/peers/rollup.toml \
    "$work/event.json" "$NODE_DIR/node_modules" 20 "$RUNS"
}

thumbnails() {
  python_deps "pillow>=10" "numpy>=1.24"
  node_deps sharp@0.34
  if ! command -v vipsthumbnail >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get install -y -q libvips-tools >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q libvips-tools >/dev/null)) \
      || echo "libvips-tools could not be installed; comparing without vipsthumbnail" >&2
  fi
  # The corpus is kept between runs (generating 12 MP photos takes a while).
  local corpus="${SLUICE_THUMB_DIR:-$HOME/.cache/sluice/thumbs}"
  mkdir -p "$corpus"
  "$VENV/bin/python" benches/peers/thumbnails.py "$BIN/sluice" "$corpus" "$NODE_DIR/node_modules" "${1:-3}" "$RUNS"
}

tables() {
  "$BIN/gen-clickstream" "$work/tables.ndjson" "${1:-100}" >/dev/null
  "$VENV/bin/python" benches/peers/tables.py "$BIN/sluice" "$work/tables.ndjson" "$RUNS" 8
}

commits() {
  python_deps "moto[server]>=5,<6"
  local port log
  port=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  log="$work/moto.log"
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  local moto=$!
  # shellcheck disable=SC2064
  trap "kill $moto 2>/dev/null; rm -rf '$work'" EXIT
  for _ in $(seq 100); do
    "$VENV/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null && break
    sleep 0.1
  done
  AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
    timeout 3600 "$BIN/commit-curve" "http://127.0.0.1:$port" benches/peers "${1:-1,4,16,64,256}" "${COMMIT_ROUNDS:-1}" "${COMMIT_BUDGET_S:-300}"
  kill "$moto" 2>/dev/null || true
}

cold() {
  if [ -n "${SLUICE_PEERS_OUT:-}" ]; then
    { echo "## Cold start"; echo; python3 benches/peers/cold_start.py "$BIN/sluice" "$BIN/hello-lambda" "${1:-30}"; echo; } \
      | tee -a "$SLUICE_PEERS_OUT"
  else
    python3 benches/peers/cold_start.py "$BIN/sluice" "$BIN/hello-lambda" "${1:-30}"
  fi
}

case "$JOB" in
  filter | rollup | kinesis | thumbnails | tables | cold | commits | all) ;;
  *) echo "usage: $0 all | filter [MB] | rollup [MB] | kinesis [RECORDS] | thumbnails [N] | tables [MB] | cold [RUNS] | commits [N,N,…]" >&2; exit 2 ;;
esac
cargo build --profile dist --quiet -p sluice-cli -p sluice-benches -p hello-lambda
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "$JOB" != all ]; then
  "$JOB" ${ARG:+"$ARG"}
  exit
fi

[ -n "$ARG" ] && RUNS="$ARG"
out=benches/peers/RESULTS.md
python_deps "duckdb>=1" "polars>=1" "pyarrow>=15" "pillow>=10" "numpy>=1.24"
node_deps sharp@0.34 parquet-wasm@0.7 apache-arrow@21
{
  echo "# Sluice beside its peers"
  echo
  echo "Written by \`benches/peers/run.sh all\` on $(date -u +%Y-%m-%d) (git $(git rev-parse --short HEAD 2>/dev/null || echo '?')). One core each,"
  echo "tools run in turns, $RUNS runs, medians. Reproduce: \`benches/peers/run.sh all\`."
  echo
} >"$out"
export SLUICE_PEERS_OUT="$PWD/$out"
filter 100
rollup 100
kinesis 10000
thumbnails 3
tables 100
cold 30
{
  echo "## Versions"
  echo
  "$VENV/bin/python" -c "import sys; sys.path.insert(0, 'benches/peers'); import common; print(common.versions(sys.argv[1], sys.argv[2]))" \
    "$BIN/sluice" "$NODE_DIR/node_modules"
} >>"$out"
echo "== written to $out"
