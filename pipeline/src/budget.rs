//! One memory budget for an invocation, derived from the function's memory.
//!
//! Lambda kills a function that passes its memory size, mid-write, losing the answer for the
//! whole batch. What grows with the input is bounded: by settings that name themselves
//! (`max_line_bytes`, `max_groups`, `max_distinct_values`, `max_inferred_columns`, …) and, for
//! what the output files hold in memory before it is written (Parquet row groups in progress, S3
//! parts being gathered, for every open partition), by a share of this budget.
//!
//! The budget is `SLUICE_MEMORY_MB` when set, else the function's memory size
//! (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, set by Lambda), else [`DEFAULT_MEMORY_MB`] (what
//! `sluice replay` assumes unless given `--memory-mb`).

/// The budget when neither `SLUICE_MEMORY_MB` nor Lambda says otherwise: the memory size of the
/// function `infra/template.yaml` deploys.
pub const DEFAULT_MEMORY_MB: u64 = 1024;

/// The smallest budget taken (Lambda's smallest function).
pub const MIN_MEMORY_MB: u64 = 128;

/// The budget in MB: `SLUICE_MEMORY_MB`, else `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, else
/// [`DEFAULT_MEMORY_MB`]; values that are not numbers are ignored, and none is below
/// [`MIN_MEMORY_MB`].
pub fn memory_mb() -> u64 {
    ["SLUICE_MEMORY_MB", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse::<u64>().ok())
        .unwrap_or(DEFAULT_MEMORY_MB)
        .max(MIN_MEMORY_MB)
}

/// What the output files of one unit of work may hold in memory together, as the Parquet writer
/// counts it: an eighth of the budget. What it counts is about half of what its allocations
/// take, and a row group written out is briefly held twice; the rest is the process itself
/// (~40 MB), the batches in flight, decoder buffers (up to `max_line_bytes` each) and the
/// stages' state. Measured: 190 MB of incompressible rows over 64 partitions peak at 202 MiB
/// with a 256 MB budget.
pub fn writers_bytes(memory_mb: u64) -> usize {
    usize::try_from(memory_mb.max(MIN_MEMORY_MB) << 20).unwrap_or(usize::MAX) / 8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_get_an_eighth_of_at_least_the_smallest_function() {
        assert_eq!(writers_bytes(1024), 128 << 20);
        assert_eq!(writers_bytes(256), 32 << 20);
        assert_eq!(writers_bytes(0), 16 << 20);
    }
}
