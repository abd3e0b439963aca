//! Running the handler on the events, warm, and sampling each invocation: wall and CPU time,
//! peak memory, records and bytes.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::*;
use crate::run::Handler;

/// One measured invocation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// The event's name.
    pub event: String,
    /// Wall time, ms.
    pub wall_ms: f64,
    /// CPU time of the whole process over the invocation (every thread), ms.
    pub cpu_ms: f64,
    /// Records read (decoded or rejected).
    pub records_in: u64,
    /// Rows written.
    pub records_out: u64,
    /// Records rejected.
    pub rejected: u64,
    /// Bytes taken in (object sizes, stream payloads).
    pub bytes_in: u64,
    /// Bytes the invocation wrote (outputs, rejects, catalog).
    pub bytes_out: u64,
    /// Peak resident memory of the process during the invocation, bytes (when the system says).
    pub peak_rss: Option<u64>,
    /// The event failed (counted, and reported).
    pub error: Option<String>,
    /// What it asked of AWS besides Lambda (see [`Meter`]).
    pub requests: Requests,
}

/// The CPU time this process has used, all threads, in ms: the sum of each thread's
/// `/proc/self/task/*/schedstat` (nanoseconds), else `/proc/self/stat`'s clock ticks.
pub fn process_cpu_ms() -> Option<f64> {
    let mut total_ns: u64 = 0;
    let mut any = false;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            let Ok(text) = std::fs::read_to_string(t.path().join("schedstat")) else {
                continue;
            };
            if let Some(ns) = text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
            {
                total_ns += ns;
                any = true;
            }
        }
    }
    if any {
        return Some(total_ns as f64 / 1e6);
    }
    // utime and stime, fields 14 and 15, after the command name in parentheses.
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 * 10.0)
}

/// Start a new peak-memory window (Linux: `/proc/self/clear_refs` with 5 resets the high-water
/// mark to the current size). Returns whether it could.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The peak resident memory since the last reset (or the process start), bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Total size of the files under `dir`, and remove them (the next invocation writes afresh).
fn take_outputs(dir: &Path) -> u64 {
    fn walk(dir: &Path, total: &mut u64) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(&path, total),
                Ok(_) => *total += e.metadata().map(|m| m.len()).unwrap_or(0),
                Err(_) => {}
            }
        }
    }
    let mut total = 0;
    walk(dir, &mut total);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::create_dir_all(dir);
    total
}

/// Run every event through `handler`, `warmup` rounds unmeasured then `iterations` measured,
/// outputs written under `scratch` (emptied after each invocation), each invocation's requests
/// counted by `meter` when given. `progress(done, total)` is called after each invocation.
pub async fn measure(
    handler: &Handler,
    meter: Option<&Meter>,
    events: &[(String, Vec<u8>)],
    warmup: usize,
    iterations: usize,
    scratch: &Path,
    mut progress: impl FnMut(usize, usize),
) -> Vec<Sample> {
    let total = (warmup + iterations) * events.len();
    let mut samples = Vec::with_capacity(iterations * events.len());
    let mut done = 0;
    for round in 0..warmup + iterations {
        for (name, bytes) in events {
            let can_reset = reset_peak_rss();
            let cpu0 = process_cpu_ms();
            let t = Instant::now();
            let (s, _) = handler
                .handle_bytes(bytes, Some(deadline_from(t)))
                .await
                .into_parts();
            let wall_ms = t.elapsed().as_secs_f64() * 1e3;
            let cpu_ms = match (cpu0, process_cpu_ms()) {
                (Some(a), Some(b)) => (b - a).max(0.0),
                _ => wall_ms,
            };
            let peak = if can_reset { peak_rss() } else { None };
            let requests = meter.map_or_else(Requests::default, |m| m.take(&s, handler.plan()));
            handler.forget_table().await;
            let bytes_out = take_outputs(scratch);
            done += 1;
            progress(done, total);
            if round < warmup {
                continue;
            }
            samples.push(Sample {
                event: name.clone(),
                wall_ms,
                cpu_ms,
                records_in: s.records_in,
                records_out: s.records_out,
                rejected: s.rejected,
                bytes_in: s.bytes_in,
                bytes_out,
                peak_rss: peak,
                error: s.error.clone(),
                requests,
            });
        }
    }
    samples
}
