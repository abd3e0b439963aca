//! Time Sluice's handler on one stream batch the way the Lambda runtime meets it: the raw event
//! bytes parsed, then handled (decode, stages, output written to a scratch folder), warm, on one
//! thread. `bench-batch CONFIG EVENT.json [ITERATIONS] [bytes-only]` prints one JSON line:
//! `{"records", "event_bytes", "iterations", "p50_ms", "p90_ms", "min_ms", "via_value_p50_ms",
//! "records_per_s"}` — `via_value` is the same work after building a `serde_json::Value` of the
//! event, as the runtime's default deserializer would.

use std::sync::Arc;
use std::time::Instant;

use sluice_pipeline::Pipeline;
use sluice_pipeline::store::{FsStore, ObjectStore};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(config), Some(event)) = (args.first(), args.get(1)) else {
        eprintln!("usage: bench-batch CONFIG EVENT.json [ITERATIONS] [bytes-only]");
        std::process::exit(2);
    };
    let iterations: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(50);
    // `bytes-only` skips the comparison run (for profiling the real path alone).
    let compare = args.get(3).map(String::as_str) != Some("bytes-only");
    let pipeline = match Pipeline::load(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let bytes = match std::fs::read(event) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{event}: {e}");
            std::process::exit(2);
        }
    };
    let scratch = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("scratch folder: {e}");
            std::process::exit(1);
        }
    };
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(scratch.path()));
    let handler = pipeline.handler(store.clone(), store);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    let mut total = Vec::with_capacity(iterations);
    let mut via_value = Vec::with_capacity(iterations);
    let mut records = 0;
    // As the Lambda runs it: the invocation's bytes straight into the handler. The first runs
    // warm the allocator and caches, as a warm Lambda is.
    for i in 0..iterations + 3 {
        let t = Instant::now();
        let deadline = sluice_pipeline::bench::deadline_from(t);
        let s = rt
            .block_on(handler.handle_bytes(&bytes, Some(deadline)))
            .summary;
        let took = t.elapsed();
        if let Some(e) = &s.error {
            eprintln!("the batch failed: {e}");
            std::process::exit(1);
        }
        records = s.records_in;
        if i >= 3 {
            total.push(took.as_secs_f64() * 1e3);
        }
    }
    // For comparison, in a pass of its own: the runtime's default, a serde_json::Value first.
    for i in 0..if compare { iterations + 3 } else { 0 } {
        let t = Instant::now();
        let value: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("{event}: not JSON: {e}");
                std::process::exit(2);
            }
        };
        rt.block_on(handler.handle(&value));
        drop(value);
        if i >= 3 {
            via_value.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    if via_value.is_empty() {
        via_value.push(f64::NAN);
    }
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    let p50 = pct(&mut total, 0.5);
    println!(
        "{}",
        serde_json::json!({
            "records": records,
            "event_bytes": bytes.len(),
            "iterations": iterations,
            "p50_ms": p50,
            "p90_ms": pct(&mut total, 0.9),
            "min_ms": total[0],
            "via_value_p50_ms": pct(&mut via_value, 0.5),
            "records_per_s": records as f64 / (p50 / 1e3),
        })
    );
}
