//! `sluice replay`: captured events through the handler the Lambda runs, with its redelivery.

use std::path::PathBuf;

use anyhow::Context;
use sluice_pipeline::{Pipeline, replay};

use super::*;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// The pipeline.toml.
    pub config: PathBuf,
    /// Event files, folders of them, or .jsonl files of events.
    #[arg(required = true)]
    pub events: Vec<PathBuf>,
    #[command(flatten)]
    pub stores: StoreArgs,
    /// Print one JSON summary line per event.
    #[arg(long)]
    pub json: bool,
    /// Redeliver failures the way Lambda does (a Kinesis shard from the reported record, SQS
    /// messages reported, async invocations whole), up to N retries each.
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,
    /// Kinesis: on a function error (a crash), split the batch in two and retry each half.
    #[arg(long)]
    pub bisect_on_error: bool,
    /// Append what is finally given up to FILE as JSON lines (Lambda's on-failure record for
    /// Kinesis and async invocations; the message itself for SQS, as a dead-letter queue gets it).
    #[arg(long, value_name = "FILE")]
    pub on_failure: Option<PathBuf>,
    /// The function's timeout: each event must be done this many seconds after it starts, as
    /// on Lambda (requests still running near it fail, and what is unfinished is reported for
    /// redelivery). Default: no deadline.
    #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
    pub timeout: Option<std::time::Duration>,
    /// The function's memory size in MB, the budget the output files share (default:
    /// $SLUICE_MEMORY_MB, else 1024).
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(128..=10240))]
    pub memory_mb: Option<u64>,
}

pub async fn run(a: ReplayArgs) -> anyhow::Result<u8> {
    let ReplayArgs {
        config,
        events,
        stores,
        json,
        max_retries,
        bisect_on_error,
        on_failure,
        timeout,
        memory_mb,
    } = a;
    let pipeline = match Pipeline::load(&config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(2);
        }
    };
    let events = match replay::collect(&events) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("sluice: {e}");
            return Ok(2);
        }
    };
    let (input, output) = match stores.open(&pipeline, false).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sluice: {e}");
            return Ok(2);
        }
    };
    let handler = pipeline
        .handler_with_streams(input, output, stores.endpoint_url.as_deref())
        .await;
    let handler = match timeout {
        Some(t) => handler.with_timeout(t),
        None => handler,
    };
    let handler = match memory_mb {
        Some(mb) => handler.with_memory_mb(mb),
        None => handler,
    };
    let print = |s: &sluice_pipeline::run::Summary| -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(s)?);
        } else {
            println!("{}", replay::describe(s));
        }
        Ok(())
    };
    if max_retries.is_some() || bisect_on_error || on_failure.is_some() {
        let policy = replay::Redelivery {
            max_retries: max_retries.unwrap_or(0),
            bisect: bisect_on_error,
        };
        let mut given_up = Vec::new();
        let mut printed = Ok(());
        let mut carry = replay::WindowCarry::default();
        for e in events {
            let lost = replay::replay_redelivered(&handler, e, policy, &mut carry, |s| {
                if let Err(e) = print(&s) {
                    printed = Err(e);
                }
            })
            .await;
            given_up.extend(lost);
        }
        printed.context("printing a summary")?;
        if let Some(path) = &on_failure {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            for v in &given_up {
                writeln!(f, "{v}").with_context(|| format!("writing {}", path.display()))?;
            }
        }
        if !given_up.is_empty() {
            eprintln!(
                "sluice: gave up on {} batch(es) or message(s) after {} retries{}",
                given_up.len(),
                policy.max_retries,
                on_failure
                    .as_ref()
                    .map(|p| format!(" (written to {})", p.display()))
                    .unwrap_or_default()
            );
        }
        return Ok(u8::from(!given_up.is_empty()));
    }
    let mut failed = 0usize;
    let mut printed = Ok(());
    // On a terminal, long runs show where they are (on stderr, so --json output stays clean).
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    replay::replay_each(&handler, events, |i, total, s| {
        failed += usize::from(s.failed());
        if let Err(e) = print(&s) {
            printed = Err(e);
        }
        let failures = match failed {
            0 => String::new(),
            n => format!(", {n} failed"),
        };
        if progress && total > 1 {
            eprint!(
                "\r{} of {total} events replayed{failures}{}",
                i + 1,
                if i + 1 == total { "\n" } else { "" }
            );
        } else if !json && total > 1 && i + 1 == total {
            println!("{total} events replayed{failures}");
        }
    })
    .await;
    printed.context("printing a summary")?;
    Ok(u8::from(failed > 0))
}
