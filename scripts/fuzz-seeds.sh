#!/usr/bin/env bash
# Copy the fixtures into fuzz/corpus/<target>/ as seed corpora for `cargo fuzz run <target>`.
set -euo pipefail
cd "$(dirname "$0")/.."
c=fuzz/corpus
mkdir -p "$c"/{event,decoders,kpl,config,expression,parquet,image}
cp fixtures/events/*.json "$c/event/"
find fixtures/objects -type f -size -64k -exec cp {} "$c/decoders/" \;
find fixtures/images -type f -size -256k -exec cp {} "$c/image/" \;
for f in examples/*/pipeline.toml; do cp "$f" "$c/config/$(basename "$(dirname "$f")").toml"; done
printf "%s" "event_type <> 'view' OR latency_ms > 500" >"$c/expression/filter"
printf "%s" "date(ts) = '2026-11-22' AND lower(page) LIKE '/a%'" >"$c/expression/select"
find fixtures -name '*.parquet' -size -256k -exec cp {} "$c/parquet/" \; 2>/dev/null || true
echo "seeded $(find "$c" -type f | wc -l) files under $c"
