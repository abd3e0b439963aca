//! From the samples to each memory size's duration and cost.

use serde::Serialize;

use super::*;

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
    /// Dollars per invocation all told: Lambda and the rest of the bill ([`Bill`]).
    pub total_usd_per_invocation: f64,
    /// Dollars per million records read, all told.
    pub total_usd_per_million_records: Option<f64>,
    /// Dollars per GB taken in, all told.
    pub total_usd_per_gb_in: Option<f64>,
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
                total_usd_per_invocation: usd,
                total_usd_per_million_records: (records > 0.0).then(|| usd / records * 1e6),
                total_usd_per_gb_in: (bytes > 0.0).then(|| usd / bytes * 1e9),
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
