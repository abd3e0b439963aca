//! `sluice bench`: what a pipeline costs on Lambda, from measurements of its own handler on the
//! user's own events.
//!
//! Each event is handled the way the Lambda handles it (the invocation's bytes straight into
//! [`Handler::handle_bytes`]), warm, one after another, `iterations` times after `warmup` rounds.
//! For every invocation the wall time, the CPU time of the whole process, the peak resident memory,
//! the records and the bytes read and written are taken. From them [`estimate`] works out, for
//! each Lambda memory size, how long the invocation would take and what it would cost:
//!
//! - Lambda gives CPU in proportion to memory: one vCPU at 1 769 MB, six at 10 240 MB (the most).
//! - An invocation's time is split into the part its CPU time fills (CPU time divided by the
//!   threads it kept busy) and the rest (waiting on storage). The waiting stays as measured; the
//!   CPU part runs with `min(threads used, vCPUs)` — so below one vCPU it stretches by `1 / vCPU`,
//!   and above it only a handler that used several threads gets faster.
//! - One core of the machine running the bench is taken as one Lambda vCPU of the chosen
//!   architecture: the estimate is as good as that likeness (Graviton and the machine's core may
//!   differ by tens of percent either way).
//! - Billed duration is rounded up to the millisecond; the price is GB-seconds at the
//!   architecture's rate plus the request charge ([`prices`]).

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::run::Handler;

/// The deadline an invocation started at `start` is timed with: every Lambda invocation has one
/// (here Lambda's longest timeout, 15 minutes), and the handler's clock checks are part of the
/// time.
pub fn deadline_from(start: Instant) -> Instant {
    start + std::time::Duration::from_secs(900)
}

/// Lambda's published on-demand prices, US East (N. Virginia), first tier (the first 6 billion
/// GB-seconds a month for x86_64, 7.5 billion for arm64), without the free tier.
pub mod prices {
    /// When these prices were last checked against <https://aws.amazon.com/lambda/pricing/>
    /// (unchanged since arm64 functions came in September 2021).
    pub const AS_OF: &str = "2026-11-23";
    /// Dollars per GB-second of duration, x86_64.
    pub const X86_64_GB_SECOND: f64 = 0.000_016_666_7;
    /// Dollars per GB-second of duration, arm64.
    pub const ARM64_GB_SECOND: f64 = 0.000_013_333_4;
    /// Dollars per request (0.20 per million), either architecture.
    pub const REQUEST: f64 = 0.20 / 1e6;
}

/// Memory (MB) at which a function has one full vCPU.
pub const FULL_VCPU_MB: f64 = 1769.0;
/// The most vCPUs a function gets (at 10 240 MB).
pub const MAX_VCPUS: f64 = 6.0;
/// Lambda's memory range, MB.
pub const MEMORY_RANGE: std::ops::RangeInclusive<u32> = 128..=10_240;
/// The sizes priced when none are given.
pub const DEFAULT_MEMORY_MB: &[u32] = &[
    128, 256, 512, 1024, 1536, 1769, 2048, 3008, 4096, 6144, 8192, 10_240,
];

/// A Lambda architecture, for its price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// Graviton (the default: cheaper per GB-second).
    Arm64,
    /// Intel / AMD.
    X86_64,
}

impl Arch {
    /// Dollars per GB-second.
    pub fn gb_second(self) -> f64 {
        match self {
            Arch::Arm64 => prices::ARM64_GB_SECOND,
            Arch::X86_64 => prices::X86_64_GB_SECOND,
        }
    }

    /// The name Lambda uses.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Arm64 => "arm64",
            Arch::X86_64 => "x86_64",
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "arm64" | "aarch64" => Ok(Arch::Arm64),
            "x86_64" | "x86-64" | "amd64" => Ok(Arch::X86_64),
            _ => Err(format!("`{s}`: the architecture is arm64 or x86_64")),
        }
    }
}

/// Parse `--memory-mb`: sizes separated by commas, each within Lambda's 128–10 240 MB.
pub fn parse_memory_list(s: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mb: u32 = part
            .parse()
            .map_err(|_| format!("`{part}` is not a memory size in MB"))?;
        if !MEMORY_RANGE.contains(&mb) {
            return Err(format!(
                "{mb} MB: Lambda's memory is between {} and {} MB",
                MEMORY_RANGE.start(),
                MEMORY_RANGE.end()
            ));
        }
        out.push(mb);
    }
    if out.is_empty() {
        return Err("no memory sizes given".into());
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

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
/// outputs written under `scratch` (emptied after each invocation). `progress(done, total)` is
/// called after each invocation.
pub async fn measure(
    handler: &Handler,
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
            let (s, _) = handler.handle_bytes(bytes, Some(deadline_from(t))).await;
            let wall_ms = t.elapsed().as_secs_f64() * 1e3;
            let cpu_ms = match (cpu0, process_cpu_ms()) {
                (Some(a), Some(b)) => (b - a).max(0.0),
                _ => wall_ms,
            };
            let peak = if can_reset { peak_rss() } else { None };
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
            });
        }
    }
    samples
}

/// What one memory size would do.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Estimate {
    /// Memory, MB.
    pub memory_mb: u32,
    /// vCPUs Lambda gives at this size.
    pub vcpus: f64,
    /// Mean estimated duration per invocation, ms.
    pub duration_ms: f64,
    /// Mean billed duration (each invocation rounded up to the ms), ms.
    pub billed_ms: f64,
    /// GB-seconds per invocation.
    pub gb_seconds: f64,
    /// Dollars per invocation (duration and request).
    pub usd_per_invocation: f64,
    /// Dollars per million records read (when there were records).
    pub usd_per_million_records: Option<f64>,
    /// Dollars per GB taken in (when bytes were taken in).
    pub usd_per_gb_in: Option<f64>,
    /// Whether the measured peak memory fits in this size.
    pub fits: bool,
    /// The cheapest size that fits.
    pub cheapest: bool,
    /// The fastest size that fits (the cheaper one on a tie).
    pub fastest: bool,
}

/// vCPUs at `memory_mb`.
pub fn vcpus(memory_mb: u32) -> f64 {
    (f64::from(memory_mb) / FULL_VCPU_MB).min(MAX_VCPUS)
}

/// The estimated duration (ms) of an invocation measured as `wall_ms` with `cpu_ms` of CPU time,
/// given `vcpus`. See the module documentation for the model.
pub fn estimated_ms(wall_ms: f64, cpu_ms: f64, vcpus: f64) -> f64 {
    if wall_ms <= 0.0 {
        return 0.0;
    }
    let cpu_ms = cpu_ms.max(0.0);
    let threads = (cpu_ms / wall_ms).max(1.0);
    let busy = cpu_ms / threads;
    let waiting = (wall_ms - busy).max(0.0);
    waiting + cpu_ms / threads.min(vcpus)
}

/// Price every size in `memory_mb` for `samples`, with the process's measured `peak` (bytes).
pub fn estimate(
    samples: &[Sample],
    memory_mb: &[u32],
    arch: Arch,
    peak: Option<u64>,
) -> Vec<Estimate> {
    let n = samples.len().max(1) as f64;
    let records = samples.iter().map(|s| s.records_in).sum::<u64>() as f64 / n;
    let bytes = samples.iter().map(|s| s.bytes_in).sum::<u64>() as f64 / n;
    let mut out: Vec<Estimate> = memory_mb
        .iter()
        .map(|&mb| {
            let v = vcpus(mb);
            let (mut duration, mut billed) = (0.0, 0.0);
            for s in samples {
                let d = estimated_ms(s.wall_ms, s.cpu_ms, v);
                duration += d;
                billed += d.ceil().max(1.0);
            }
            let (duration, billed) = (duration / n, billed / n);
            let gb_seconds = f64::from(mb) / 1024.0 * billed / 1e3;
            let usd = gb_seconds * arch.gb_second() + prices::REQUEST;
            Estimate {
                memory_mb: mb,
                vcpus: v,
                duration_ms: duration,
                billed_ms: billed,
                gb_seconds,
                usd_per_invocation: usd,
                usd_per_million_records: (records > 0.0).then(|| usd / records * 1e6),
                usd_per_gb_in: (bytes > 0.0).then(|| usd / bytes * 1e9),
                fits: peak.is_none_or(|p| p <= u64::from(mb) * 1024 * 1024),
                cheapest: false,
                fastest: false,
            }
        })
        .collect();
    let best = |key: &dyn Fn(&Estimate) -> (f64, f64)| {
        out.iter()
            .enumerate()
            .filter(|(_, e)| e.fits)
            .min_by(|a, b| {
                let (ka, kb) = (key(a.1), key(b.1));
                ka.0.total_cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
            })
            .map(|(i, _)| i)
    };
    let cheapest = best(&|e| (e.usd_per_invocation, f64::from(e.memory_mb)));
    let fastest = best(&|e| (e.duration_ms, e.usd_per_invocation));
    if let Some(i) = cheapest {
        out[i].cheapest = true;
    }
    if let Some(i) = fastest {
        out[i].fastest = true;
    }
    out
}

/// Percentile `p` (0–1) of `v`, nearest rank.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * p).round() as usize]
}

/// The whole report: measurements and estimates.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The pipeline file.
    pub config: String,
    /// Events, in order.
    pub events: Vec<String>,
    /// Measured rounds over the events.
    pub iterations: usize,
    /// Unmeasured rounds first.
    pub warmup: usize,
    /// Invocations measured.
    pub invocations: usize,
    /// Invocations whose event failed.
    pub failed: usize,
    /// Wall time per invocation, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// CPU time per invocation, median, ms.
    pub cpu_p50_ms: f64,
    /// Records read per invocation, mean.
    pub records_per_invocation: f64,
    /// Records out per invocation, mean.
    pub records_out_per_invocation: f64,
    /// Rejects per invocation, mean.
    pub rejected_per_invocation: f64,
    /// Bytes taken in per invocation, mean.
    pub bytes_in_per_invocation: f64,
    /// Bytes written per invocation, mean.
    pub bytes_out_per_invocation: f64,
    /// Records per second of wall time.
    pub records_per_s: f64,
    /// MB (10^6 bytes) taken in per second of wall time.
    pub mb_per_s: f64,
    /// Records per second of CPU time: per core.
    pub records_per_cpu_s: f64,
    /// Peak resident memory over all invocations, bytes (the process: runtime, events, handler).
    pub peak_rss: Option<u64>,
    /// Cold start: a fresh process's time from spawn to ready to serve, median, ms.
    pub init_ms: Option<f64>,
    /// Fresh processes timed for `init_ms`.
    pub init_runs: usize,
    /// The architecture priced.
    pub arch: Arch,
    /// When the prices were checked.
    pub prices_as_of: &'static str,
    /// Dollars per GB-second at `arch`.
    pub usd_per_gb_second: f64,
    /// Dollars per request.
    pub usd_per_request: f64,
    /// How the estimate is made, in a sentence a reader can check.
    pub method: &'static str,
    /// Per memory size.
    pub estimates: Vec<Estimate>,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// The estimate's method, as printed.
pub const METHOD: &str = "Estimated, not measured on Lambda: Lambda gives one vCPU at 1769 MB, \
in proportion below and up to 6 at 10240 MB; each invocation's CPU time (all threads) runs on \
min(threads it used, vCPUs) while its waiting time stays as measured; one core here counts as \
one Lambda vCPU; billed time is each invocation's duration rounded up to the ms, averaged (so \
it may show a fraction); prices are US East (N. Virginia) on-demand, first tier, free tier not \
deducted.";

impl Report {
    /// Summarise `samples` and price them.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: String,
        events: Vec<String>,
        warmup: usize,
        iterations: usize,
        samples: &[Sample],
        init: &[f64],
        memory_mb: &[u32],
        arch: Arch,
    ) -> Self {
        let n = samples.len().max(1) as f64;
        let wall: Vec<f64> = samples.iter().map(|s| s.wall_ms).collect();
        let cpu: Vec<f64> = samples.iter().map(|s| s.cpu_ms).collect();
        let sum = |f: &dyn Fn(&Sample) -> u64| samples.iter().map(f).sum::<u64>() as f64;
        let records = sum(&|s| s.records_in);
        let bytes_in = sum(&|s| s.bytes_in);
        let wall_s = wall.iter().sum::<f64>() / 1e3;
        let cpu_s = cpu.iter().sum::<f64>() / 1e3;
        let peak = samples
            .iter()
            .filter_map(|s| s.peak_rss)
            .max()
            .or_else(peak_rss);
        let per_s = |x: f64, secs: f64| if secs > 0.0 { x / secs } else { 0.0 };
        Report {
            config,
            events,
            iterations,
            warmup,
            invocations: samples.len(),
            failed: samples.iter().filter(|s| s.error.is_some()).count(),
            p50_ms: percentile(&wall, 0.5),
            p90_ms: percentile(&wall, 0.9),
            p99_ms: percentile(&wall, 0.99),
            cpu_p50_ms: percentile(&cpu, 0.5),
            records_per_invocation: records / n,
            records_out_per_invocation: sum(&|s| s.records_out) / n,
            rejected_per_invocation: sum(&|s| s.rejected) / n,
            bytes_in_per_invocation: bytes_in / n,
            bytes_out_per_invocation: sum(&|s| s.bytes_out) / n,
            records_per_s: per_s(records, wall_s),
            mb_per_s: per_s(bytes_in / 1e6, wall_s),
            records_per_cpu_s: per_s(records, cpu_s),
            peak_rss: peak,
            init_ms: (!init.is_empty()).then(|| percentile(init, 0.5)),
            init_runs: init.len(),
            arch,
            prices_as_of: prices::AS_OF,
            usd_per_gb_second: arch.gb_second(),
            usd_per_request: prices::REQUEST,
            method: METHOD,
            estimates: estimate(samples, memory_mb, arch, peak),
            first_error: samples.iter().find_map(|s| s.error.clone()),
        }
    }

    /// What a size is marked with: cheapest, fastest, and (with `fit`) too small for the peak.
    fn marks(&self, e: &Estimate, fit: bool) -> Vec<String> {
        let mut marks = Vec::new();
        if e.cheapest {
            marks.push("cheapest".to_string());
        }
        if e.fastest {
            marks.push("fastest".to_string());
        }
        if fit && !e.fits {
            marks.push(format!(
                "too small: peak {}",
                self.peak_rss.map(mib).unwrap_or_default()
            ));
        }
        marks
    }

    /// The terminal report.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "sluice bench {}: {} event(s) x {} iteration(s) after {} warm-up, {} invocations{}",
            self.config,
            self.events.len(),
            self.iterations,
            self.warmup,
            self.invocations,
            if self.failed > 0 {
                format!(
                    ", {} FAILED: {}",
                    self.failed,
                    self.first_error.as_deref().unwrap_or("")
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            o,
            "  time         p50 {}  p90 {}  p99 {}  (CPU p50 {})",
            ms(self.p50_ms),
            ms(self.p90_ms),
            ms(self.p99_ms),
            ms(self.cpu_p50_ms)
        );
        let _ = writeln!(
            o,
            "  throughput   {} records/s  {:.1} MB/s  ({} records per CPU second)",
            count(self.records_per_s),
            self.mb_per_s,
            count(self.records_per_cpu_s)
        );
        let _ = writeln!(
            o,
            "  records      {} in, {} out, {} rejected per invocation",
            count(self.records_per_invocation),
            count(self.records_out_per_invocation),
            count(self.rejected_per_invocation)
        );
        let _ = writeln!(
            o,
            "  bytes        {} read, {} written per invocation",
            size(self.bytes_in_per_invocation),
            size(self.bytes_out_per_invocation)
        );
        let _ = writeln!(
            o,
            "  peak memory  {}",
            self.peak_rss
                .map_or("unknown".into(), |p| format!("{} resident", mib(p)))
        );
        let _ = writeln!(
            o,
            "  cold start   {}",
            self.init_ms.map_or("not measured".into(), |i| format!(
                "{} from process start to ready (median of {} fresh processes)",
                ms(i),
                self.init_runs
            ))
        );
        let _ = writeln!(
            o,
            "\nCost on Lambda, {} (${} per GB-s, ${:.2} per million requests; prices of {}):",
            self.arch.name(),
            self.usd_per_gb_second,
            self.usd_per_request * 1e6,
            self.prices_as_of
        );
        let _ = writeln!(
            o,
            "  {:>8}  {:>5}  {:>10}  {:>9}  {:>14}  {:>12}  {:>10}",
            "memory", "vCPU", "duration", "billed", "$/invocation", "$/1M records", "$/GB in"
        );
        for e in &self.estimates {
            let [duration, billed, per_invocation, per_million, per_gb] = cells(e);
            let _ = writeln!(
                o,
                "  {:>5} MB  {:>5.2}  {:>10}  {:>9}  {:>14}  {:>12}  {:>10}  {}",
                e.memory_mb,
                e.vcpus,
                duration,
                billed,
                per_invocation,
                per_million,
                per_gb,
                self.marks(e, true).join(", ")
            );
        }
        let _ = writeln!(o, "\n{}", self.method);
        o
    }

    /// A self-contained page: the chart of cost and duration against memory size (SVG drawn
    /// here, no script, nothing fetched) and the tables.
    pub fn html(&self) -> String {
        use std::fmt::Write;
        let per_million = self
            .estimates
            .iter()
            .all(|e| e.usd_per_million_records.is_some());
        let (cost_label, cost): (&str, Vec<f64>) = if per_million {
            (
                "$ per million records",
                self.estimates
                    .iter()
                    .map(|e| e.usd_per_million_records.unwrap_or(0.0))
                    .collect(),
            )
        } else {
            (
                "$ per invocation",
                self.estimates
                    .iter()
                    .map(|e| e.usd_per_invocation)
                    .collect(),
            )
        };
        let duration: Vec<f64> = self.estimates.iter().map(|e| e.duration_ms).collect();
        let (w, h, left, right, top, bottom) = (920.0, 420.0, 110.0, 90.0, 30.0, 60.0);
        let plot_w = w - left - right;
        let plot_h = h - top - bottom;
        let n = self.estimates.len().max(1);
        let x = |i: usize| left + plot_w * (i as f64 + 0.5) / n as f64;
        let max_cost = cost
            .iter()
            .copied()
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE)
            * 1.1;
        let max_dur = duration
            .iter()
            .copied()
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE)
            * 1.1;
        let y = |v: f64, max: f64| top + plot_h * (1.0 - v / max);
        let mut svg = String::new();
        let _ = write!(
            svg,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="cost and duration against memory size">"##
        );
        let _ = write!(
            svg,
            r##"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#999"/>"##
        );
        for k in 0..=4 {
            let f = k as f64 / 4.0;
            let yy = top + plot_h * (1.0 - f);
            let _ = write!(
                svg,
                r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e0e0e0"/><text x="{}" y="{:.1}" text-anchor="end" font-size="12" fill="#c0392b">{}</text><text x="{}" y="{:.1}" font-size="12" fill="#2471a3">{}</text>"##,
                left + plot_w,
                left - 6.0,
                yy + 4.0,
                escape(&dollars(max_cost * f)),
                left + plot_w + 6.0,
                yy + 4.0,
                escape(&ms(max_dur * f)),
            );
        }
        for (i, e) in self.estimates.iter().enumerate() {
            let _ = write!(
                svg,
                r##"<text x="{:.1}" y="{}" text-anchor="middle" font-size="12">{}</text>"##,
                x(i),
                top + plot_h + 18.0,
                e.memory_mb
            );
            if !e.fits {
                let _ = write!(
                    svg,
                    r##"<rect x="{:.1}" y="{top}" width="{:.1}" height="{plot_h}" fill="#000" fill-opacity="0.08"><title>peak memory does not fit</title></rect>"##,
                    x(i) - plot_w / n as f64 / 2.0,
                    plot_w / n as f64
                );
            }
        }
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="middle" font-size="13">memory (MB)</text><text transform="translate(18 {}) rotate(-90)" text-anchor="middle" font-size="13" fill="#c0392b">{}</text><text transform="translate({} {}) rotate(90)" text-anchor="middle" font-size="13" fill="#2471a3">duration (ms)</text>"##,
            left + plot_w / 2.0,
            h - 14.0,
            top + plot_h / 2.0,
            cost_label,
            w - 14.0,
            top + plot_h / 2.0
        );
        let line = |svg: &mut String, vals: &[f64], max: f64, color: &str, class: &str| {
            let pts: Vec<String> = vals
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v, max)))
                .collect();
            let _ = write!(
                svg,
                r##"<polyline class="{class}" points="{}" fill="none" stroke="{color}" stroke-width="2.5"/>"##,
                pts.join(" ")
            );
            for (i, v) in vals.iter().enumerate() {
                let _ = write!(
                    svg,
                    r##"<circle class="{class}" cx="{:.1}" cy="{:.1}" r="4" fill="{color}"/>"##,
                    x(i),
                    y(*v, max)
                );
            }
        };
        line(&mut svg, &cost, max_cost, "#c0392b", "cost");
        line(&mut svg, &duration, max_dur, "#2471a3", "duration");
        for (i, e) in self.estimates.iter().enumerate() {
            let label = self.marks(e, false);
            if !label.is_empty() {
                let _ = write!(
                    svg,
                    r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="12" font-weight="bold">{}</text>"##,
                    x(i),
                    (y(cost[i], max_cost) - 10.0).max(top + 12.0),
                    label.join(" · ")
                );
            }
        }
        svg.push_str("</svg>");

        let mut rows = String::new();
        for e in &self.estimates {
            let [duration, billed, per_invocation, per_million, per_gb] =
                cells(e).map(|c| escape(&c));
            let _ = write!(
                rows,
                "<tr{}><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if e.fits { "" } else { r#" class="nofit""# },
                e.memory_mb,
                e.vcpus,
                duration,
                billed,
                per_invocation,
                per_million,
                per_gb,
                escape(&self.marks(e, true).join(", "))
            );
        }
        let measured = format!(
            "<ul><li>{} invocations ({} event(s) × {} iterations, {} warm-up rounds){}</li>\
             <li>time per invocation: p50 {}, p90 {}, p99 {} (CPU p50 {})</li>\
             <li>{} records/s, {:.1} MB/s; {} records per CPU second</li>\
             <li>per invocation: {} records in, {} out, {} rejected; {} read, {} written</li>\
             <li>peak memory: {}</li><li>cold start: {}</li></ul>",
            self.invocations,
            self.events.len(),
            self.iterations,
            self.warmup,
            if self.failed > 0 {
                format!(", <b>{} failed</b>", self.failed)
            } else {
                String::new()
            },
            escape(&ms(self.p50_ms)),
            escape(&ms(self.p90_ms)),
            escape(&ms(self.p99_ms)),
            escape(&ms(self.cpu_p50_ms)),
            escape(&count(self.records_per_s)),
            self.mb_per_s,
            escape(&count(self.records_per_cpu_s)),
            escape(&count(self.records_per_invocation)),
            escape(&count(self.records_out_per_invocation)),
            escape(&count(self.rejected_per_invocation)),
            escape(&size(self.bytes_in_per_invocation)),
            escape(&size(self.bytes_out_per_invocation)),
            escape(&self.peak_rss.map_or("unknown".into(), mib)),
            escape(&self.init_ms.map_or("not measured".into(), |i| format!(
                "{} (median of {} fresh processes)",
                ms(i),
                self.init_runs
            ))),
        );
        format!(
            r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sluice bench: {config}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-top: 1em; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th {{ background: #f0f0f0; }}
tr.nofit td {{ color: #999; }}
.legend span {{ display: inline-block; margin-right: 2em; }}
.method {{ max-width: 60em; color: #555; }}
</style></head>
<body>
<h1>sluice bench: {config}</h1>
<p>Lambda {arch}, prices of {as_of}: ${gbs} per GB-second, ${req:.2} per million requests.</p>
<p class="legend"><span style="color:#c0392b">● {cost_label}</span><span style="color:#2471a3">● duration (ms)</span></p>
{svg}
<table id="estimates"><thead><tr><th>memory (MB)</th><th>vCPU</th><th>duration</th><th>billed</th><th>$ / invocation</th><th>$ / 1M records</th><th>$ / GB in</th><th></th></tr></thead>
<tbody>{rows}</tbody></table>
<h2>Measured</h2>
{measured}
<p class="method">{method}</p>
</body></html>
"##,
            config = escape(&self.config),
            arch = self.arch.name(),
            as_of = self.prices_as_of,
            gbs = self.usd_per_gb_second,
            req = self.usd_per_request * 1e6,
            method = escape(self.method),
        )
    }
}

/// A size's duration, billed duration, and dollars per invocation, per million records and per
/// GB in, as printed.
fn cells(e: &Estimate) -> [String; 5] {
    [
        ms(e.duration_ms),
        ms(e.billed_ms),
        dollars(e.usd_per_invocation),
        e.usd_per_million_records.map_or("-".into(), dollars),
        e.usd_per_gb_in.map_or("-".into(), dollars),
    ]
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Milliseconds, to three significant figures or so.
fn ms(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// Dollars, with enough digits to tell sizes apart.
fn dollars(v: f64) -> String {
    if v == 0.0 {
        "$0".into()
    } else if v >= 1.0 {
        format!("${v:.2}")
    } else {
        // Four significant figures.
        let digits = (-v.log10()).ceil() as usize + 3;
        format!("${v:.digits$}")
    }
}

/// A count with thousands separated.
fn count(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn size(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} GB", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} MB", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} kB", v / 1e3)
    } else {
        format!("{v:.0} B")
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(wall: f64, cpu: f64, records: u64) -> Sample {
        Sample {
            wall_ms: wall,
            cpu_ms: cpu,
            records_in: records,
            bytes_in: 1_000_000,
            ..Sample::default()
        }
    }

    #[test]
    fn cpu_bound_time_stretches_below_one_vcpu_and_not_above() {
        // 10 ms, all of it one thread's CPU.
        assert!((estimated_ms(10.0, 10.0, 0.5) - 20.0).abs() < 1e-9);
        assert!((estimated_ms(10.0, 10.0, 1.0) - 10.0).abs() < 1e-9);
        assert!((estimated_ms(10.0, 10.0, 4.0) - 10.0).abs() < 1e-9);
        // Half of it waiting on storage: only the CPU half stretches.
        assert!((estimated_ms(10.0, 5.0, 0.25) - 25.0).abs() < 1e-9);
        // Two threads busy for 10 ms (20 ms of CPU): halved vCPU share doubles it, more does
        // not help past two.
        assert!((estimated_ms(10.0, 20.0, 1.0) - 20.0).abs() < 1e-9);
        assert!((estimated_ms(10.0, 20.0, 6.0) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn vcpus_follow_memory_up_to_six() {
        assert!((vcpus(1769) - 1.0).abs() < 1e-9);
        assert!((vcpus(128) - 128.0 / 1769.0).abs() < 1e-9);
        assert!((vcpus(10_240) - 5.788).abs() < 1e-3);
    }

    #[test]
    fn prices_a_cpu_bound_invocation() {
        // 20 ms of one core, 10 000 records.
        let samples = vec![sample(20.0, 20.0, 10_000); 3];
        let est = estimate(&samples, &[128, 1769, 3008], Arch::Arm64, Some(100 << 20));
        // 128 MB: 20 ms × 1769/128 = 276.4 ms → 277 ms billed.
        assert_eq!(est[0].billed_ms, 277.0);
        assert!(est[0].fits, "100 MiB fits in 128 MB");
        assert!((est[0].duration_ms - 276.406).abs() < 1e-2);
        let usd_1769 = 1769.0 / 1024.0 * 0.020 * prices::ARM64_GB_SECOND + prices::REQUEST;
        assert!((est[1].usd_per_invocation - usd_1769).abs() < 1e-15);
        assert!((est[1].usd_per_million_records.unwrap() - usd_1769 * 100.0).abs() < 1e-12);
        assert!((est[1].usd_per_gb_in.unwrap() - usd_1769 * 1000.0).abs() < 1e-12);
        // Past one vCPU a one-thread handler is no faster, only dearer.
        assert_eq!(est[2].billed_ms, 20.0);
        assert!(est[2].usd_per_invocation > est[1].usd_per_invocation);
        // 0.125 GB × 0.277 s = 0.034625 GB-s against 1.7275 GB × 0.020 s = 0.034551 GB-s: the
        // rounding up at 128 MB makes 1769 MB the cheapest, and of the two at 20 ms the cheaper
        // is the fastest.
        assert!((est[0].gb_seconds - 0.034_625).abs() < 1e-12);
        assert!(est[1].cheapest && !est[0].cheapest && !est[2].cheapest);
        assert!(est[1].fastest && !est[2].fastest);
    }

    #[test]
    fn a_size_too_small_for_the_peak_is_never_cheapest() {
        let samples = vec![sample(20.0, 20.0, 10)];
        let est = estimate(&samples, &[128, 256, 512], Arch::X86_64, Some(200 << 20));
        assert!(!est[0].fits);
        assert!(est[1].fits && est[2].fits);
        assert!(!est[0].cheapest && !est[0].fastest);
        assert_eq!(est.iter().filter(|e| e.cheapest).count(), 1);
    }

    #[test]
    fn memory_lists_are_checked() {
        assert_eq!(parse_memory_list("512, 128,512").unwrap(), vec![128, 512]);
        assert!(
            parse_memory_list("64")
                .unwrap_err()
                .contains("between 128 and 10240")
        );
        assert!(parse_memory_list("1g").unwrap_err().contains("`1g`"));
        assert!("sparc".parse::<Arch>().is_err());
        assert_eq!("x86_64".parse::<Arch>().unwrap(), Arch::X86_64);
    }

    #[test]
    fn the_page_stands_alone() {
        let samples = vec![sample(20.0, 20.0, 10_000)];
        let r = Report::new(
            "p<1>.toml".into(),
            vec!["e.json".into()],
            1,
            1,
            &samples,
            &[5.0],
            DEFAULT_MEMORY_MB,
            Arch::Arm64,
        );
        let html = r.html();
        assert!(html.contains("p&lt;1&gt;.toml"));
        assert!(!html.contains("<script"), "no script needed");
        assert!(!html.contains("src="), "nothing fetched");
        assert_eq!(
            html.matches("<circle class=\"cost\"").count(),
            DEFAULT_MEMORY_MB.len()
        );
        assert_eq!(
            html.matches("<tr>").count() + html.matches("<tr class").count(),
            13
        );
        let text = r.text();
        assert!(text.contains("cheapest"), "{text}");
        assert!(text.contains("Estimated, not measured on Lambda"));
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(count(1234567.0), "1 234 567");
        assert_eq!(count(999.0), "999");
        assert_eq!(dollars(0.000_002_345_6), "$0.000002346");
        assert_eq!(dollars(0.5), "$0.5000");
        assert_eq!(ms(12.345), "12.3 ms");
    }
}
