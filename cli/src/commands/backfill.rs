//! `sluice backfill`: the objects already in a bucket, as an S3 Batch Operations job — listed,
//! written as its manifest, and (with `--local`) processed here the way the job would.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use sluice_pipeline::backfill;
use sluice_pipeline::store::ObjectMeta;
use sluice_pipeline::{Pipeline, store};

use super::*;

#[derive(clap::Args)]
pub struct BackfillArgs {
    /// The pipeline.toml.
    pub config: PathBuf,
    /// What to backfill: s3://bucket/prefix/ (the objects under it that the pipeline reads).
    pub from: String,
    /// Only objects last written at or after this time (2026-11-01, or RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = backfill::parse_time)]
    pub since: Option<SystemTime>,
    /// Only objects last written before this time.
    #[arg(long, value_name = "TIME", value_parser = backfill::parse_time)]
    pub until: Option<SystemTime>,
    /// Write the job's CSV manifest here: s3://bucket/key (then the command that creates the job
    /// is printed) or a local file.
    #[arg(long, value_name = "DEST")]
    pub manifest: Option<String>,
    /// Process the objects here, each as the task Batch Operations would send it.
    #[arg(long)]
    pub local: bool,
    /// With --local: objects in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub parallel: u32,
    /// With --local: retries of a task answered TemporaryFailure (Batch Operations retries too).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub max_retries: u32,
    #[command(flatten)]
    pub stores: StoreArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(a: BackfillArgs) -> anyhow::Result<u8> {
    let pipeline = match Pipeline::load(&a.config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(2);
        }
    };
    let Some((bucket, prefix)) = a
        .from
        .strip_prefix("s3://")
        .map(|r| r.split_once('/').unwrap_or((r, "")))
        .filter(|(b, _)| !b.is_empty())
    else {
        eprintln!("sluice: `{}` is not s3://bucket/prefix/", a.from);
        return Ok(2);
    };
    let (input, output) = match a.stores.open(&pipeline, true).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sluice: {e}");
            return Ok(2);
        }
    };
    let handler = Arc::new(
        pipeline
            .handler_with_streams(input.clone(), output, a.stores.endpoint_url.as_deref())
            .await,
    );
    let listing =
        match backfill::list(&handler, input.as_ref(), bucket, prefix, a.since, a.until).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("sluice: listing s3://{bucket}/{prefix}: {e}");
                return Ok(1);
            }
        };
    let mut report = serde_json::json!({
        "from": a.from,
        "objects": listing.objects.len(),
        "left_out": listing.left_out,
    });
    if !a.json {
        println!(
            "{} objects to backfill under s3://{bucket}/{prefix} ({} left out: not read by this pipeline, or outside --since/--until)",
            listing.objects.len(),
            listing.left_out
        );
    }
    if let Some(dest) = &a.manifest {
        let csv = backfill::manifest(&listing.objects);
        match dest.strip_prefix("s3://").and_then(|r| r.split_once('/')) {
            Some((mb, mk)) => {
                // Through the S3 store (an endpoint's, else the SDK's default).
                let s3 = match &a.stores.endpoint_url {
                    Some(_) => input.clone(),
                    None => s3_store(None, None).await?,
                };
                store::put(
                    s3.as_ref(),
                    mb,
                    mk,
                    ObjectMeta::typed("text/csv"),
                    csv.into_bytes(),
                )
                .await
                .with_context(|| format!("writing the manifest to {dest}"))?;
                let reports = format!(
                    "{}reports",
                    mk.rsplit_once('/')
                        .map_or(String::new(), |(d, _)| format!("{d}/"))
                );
                if !a.json {
                    println!(
                        "manifest written to {dest}; create the job with (ETag: aws s3api head-object --bucket {mb} --key {mk}):\n{}",
                        backfill::create_job_command(mb, mk, &reports)
                    );
                }
            }
            None => {
                std::fs::write(dest, csv).with_context(|| format!("writing {dest}"))?;
                if !a.json {
                    println!(
                        "manifest written to {dest}; upload it to S3 and create the job with:\n{}",
                        backfill::create_job_command("MANIFEST_BUCKET", "MANIFEST_KEY", "reports")
                    );
                }
            }
        }
        report["manifest"] = serde_json::json!(dest);
    }
    if !a.local {
        if a.json {
            println!("{report}");
        }
        return Ok(0);
    }
    // Progress on stderr: redrawn in place on a terminal, else a line every tenth.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let total = listing.objects.len();
    let step = (total / 10).max(1);
    let progress = |done: usize, total: usize| {
        let mut err = std::io::stderr();
        if terminal {
            let _ = write!(err, "\rbackfill: {done}/{total} objects");
            if done == total {
                let _ = writeln!(err);
            }
        } else if done.is_multiple_of(step) || done == total {
            let _ = writeln!(err, "backfill: {done}/{total} objects");
        }
    };
    let done = backfill::run_local(
        handler,
        &listing.objects,
        a.parallel as usize,
        a.max_retries,
        progress,
    )
    .await;
    let count = |code: &str| done.iter().filter(|d| d.code == code).count();
    let failed: Vec<&backfill::Done> = done.iter().filter(|d| d.code != "Succeeded").collect();
    report["succeeded"] = count("Succeeded").into();
    report["temporary_failures"] = count("TemporaryFailure").into();
    report["permanent_failures"] = count("PermanentFailure").into();
    report["invocations"] = done
        .iter()
        .map(|d| u64::from(d.invocations))
        .sum::<u64>()
        .into();
    report["failures"] = failed
        .iter()
        .map(|d| serde_json::json!({"source": d.source, "result": d.code, "reason": d.reason}))
        .collect();
    if a.json {
        println!("{report}");
    } else {
        println!(
            "{} succeeded, {} failed ({} temporary, {} permanent)",
            count("Succeeded"),
            failed.len(),
            count("TemporaryFailure"),
            count("PermanentFailure")
        );
        for d in &failed {
            println!("  {} {}: {}", d.code, d.source, d.reason);
        }
    }
    Ok(u8::from(!failed.is_empty()))
}
