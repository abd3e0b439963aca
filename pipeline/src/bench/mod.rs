//! `sluice bench`: what a pipeline costs on Lambda, from measurements of its own handler on the
//! user's own events.
//!
//! Each event is handled the way the Lambda handles it (the invocation's bytes straight into
//! [`Handler::handle_bytes`](crate::run::Handler::handle_bytes)), warm, one after another, `iterations` times after `warmup` rounds.
//! For every invocation the wall time, the CPU time of the whole process, the peak resident memory,
//! the records and the bytes read and written are taken. From them `estimate` works out, for
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
//!
//! `measure` runs and samples the handler, `estimate` prices each memory size, `bill` counts
//! and prices the rest (S3, KMS, Kinesis, the catalog, CloudWatch Logs), `report` prints the
//! table, the JSON and the HTML chart.

mod bill;
mod estimate;
mod measure;
mod report;
#[cfg(test)]
mod tests;

use std::time::Instant;

use serde::Serialize;

pub use bill::*;
pub use estimate::*;
pub use measure::*;
pub use report::*;

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
