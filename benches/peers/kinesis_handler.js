// The reference Kinesis rollup as a Node.js Lambda handler would write it: JSON.parse of the event,
// base64 and JSON.parse of each record, the filter, group by page and 1-minute window with count,
// sum(bytes), avg(latency_ms), max(latency_ms) and count_distinct(user_id), then zstd Parquet
// (apache-arrow + parquet-wasm). Warm: runs the handler ITERATIONS times on the same event bytes
// and prints the median milliseconds per batch.
//
// Usage: node kinesis_handler.js EVENT.json [ITERATIONS]   (NODE_PATH names the node_modules)
const fs = require("fs");
const arrow = require("apache-arrow");
const parquet = require("parquet-wasm");

function handler(body) {
  const event = JSON.parse(body);
  const groups = new Map();
  for (const r of event.Records) {
    const c = JSON.parse(Buffer.from(r.kinesis.data, "base64").toString("utf8"));
    if (!(c.event_type !== "view" || c.latency_ms > 500)) continue;
    const ts = Date.parse(c.ts);
    const window = ts - (ts % 60000);
    const key = window + "\u0000" + c.page;
    let g = groups.get(key);
    if (!g) {
      g = { window, page: c.page, hits: 0, bytes: 0, lat: 0, latN: 0, max: null, users: new Set() };
      groups.set(key, g);
    }
    g.hits += 1;
    if (c.bytes != null) g.bytes += c.bytes;
    if (c.latency_ms != null) {
      g.lat += c.latency_ms;
      g.latN += 1;
      g.max = g.max === null ? c.latency_ms : Math.max(g.max, c.latency_ms);
    }
    if (c.user_id != null) g.users.add(c.user_id);
  }
  const aggregated = process.hrtime.bigint();
  const rows = [...groups.values()].sort((a, b) => a.window - b.window || (a.page < b.page ? -1 : a.page > b.page ? 1 : 0));
  const table = arrow.tableFromArrays({
    window_start: rows.map((g) => g.window),
    page: rows.map((g) => g.page),
    hits: BigInt64Array.from(rows.map((g) => BigInt(g.hits))),
    bytes: BigInt64Array.from(rows.map((g) => BigInt(g.bytes))),
    avg_latency: Float64Array.from(rows.map((g) => (g.latN ? g.lat / g.latN : NaN))),
    max_latency: BigInt64Array.from(rows.map((g) => BigInt(g.max ?? 0))),
    users: BigInt64Array.from(rows.map((g) => BigInt(g.users.size))),
  });
  const wasmTable = parquet.Table.fromIPCStream(arrow.tableToIPC(table, "stream"));
  const props = new parquet.WriterPropertiesBuilder().setCompression(parquet.Compression.ZSTD).build();
  return { rows: rows.length, parquet: parquet.writeParquet(wasmTable, props), aggregated };
}

const body = fs.readFileSync(process.argv[2]);
const iterations = Number(process.argv[3] || 30);
const times = [];
const upToAggregate = [];
let out;
for (let i = 0; i < iterations + 3; i++) {
  const t = process.hrtime.bigint();
  out = handler(body);
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (i >= 3) {
    times.push(ms);
    upToAggregate.push(Number(out.aggregated - t) / 1e6);
  }
}
const median = (v) => v.sort((a, b) => a - b)[Math.floor((v.length - 1) / 2)];
console.log(JSON.stringify({
  p50_ms: median(times),
  parse_and_aggregate_p50_ms: median(upToAggregate),
  groups: out.rows,
  parquet_bytes: out.parquet.length,
}));
