//! `sluice table show|orphans`: a pipeline's Iceberg table, through the catalog its config names.

use std::path::PathBuf;
use std::sync::Arc;

use sluice_pipeline::Pipeline;
use sluice_pipeline::store::{FsStore, ObjectStore};

use super::*;

#[derive(clap::Subcommand)]
pub enum TableCommand {
    /// The table's schema, partition spec, snapshots (with the sources each holds), files and rows.
    Show(TableArgs),
    /// Files under the table's folder that no snapshot or metadata refers to (written by an
    /// invocation whose commit failed, or being written now), with their age.
    Orphans {
        #[command(flatten)]
        table: TableArgs,
        /// Delete the orphans older than --older-than.
        #[arg(long)]
        delete: bool,
        /// With --delete: only files at least this old, e.g. 30m, 6h, 2d (default 1d; an
        /// invocation may still be writing a younger one, up to Lambda's 15 minutes).
        #[arg(long, value_name = "AGE", value_parser = parse_age, default_value = "1d")]
        older_than: std::time::Duration,
    },
}

#[derive(clap::Args)]
pub struct TableArgs {
    /// The pipeline.toml whose [output] is the table.
    pub config: PathBuf,
    /// The local folder replay wrote to (--out of replay; default: fixtures/objects).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The table's files are in S3 at this endpoint instead of a local folder.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `30m`, `6h`, `2d`, `90s`.
fn parse_age(text: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = n
        .parse()
        .map_err(|_| format!("`{text}` is not an age like 30m, 6h or 2d"))?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}` is not an age like 30m, 6h or 2d")),
    };
    Ok(std::time::Duration::from_secs(n.saturating_mul(secs)))
}

pub async fn run(cmd: TableCommand) -> anyhow::Result<u8> {
    let (args, orphans) = match cmd {
        TableCommand::Show(a) => (a, None),
        TableCommand::Orphans {
            table,
            delete,
            older_than,
        } => (table, Some((delete, older_than))),
    };
    let pipeline = match Pipeline::load(&args.config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(2);
        }
    };
    let output: Arc<dyn ObjectStore> = match &args.endpoint_url {
        Some(url) => s3_store(Some(url), Some(&pipeline)).await?,
        None => Arc::new(FsStore::new(
            args.out
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE)),
        )),
    };
    let handler = pipeline
        .handler(output.clone(), output)
        .with_endpoint(args.endpoint_url.as_deref());
    let Some(table) = handler.table() else {
        eprintln!(
            "sluice: {}: [output] is not a table; set format = \"iceberg\" and table = \"namespace.name\"",
            args.config.display()
        );
        return Ok(2);
    };
    match orphans {
        None => {
            let r = match table.report().await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("sluice: {e}");
                    return Ok(1);
                }
            };
            if args.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print_report(&r);
            }
        }
        Some((delete, older_than)) => {
            let found = match table.orphans(older_than, delete).await {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("sluice: {e}");
                    return Ok(1);
                }
            };
            if args.json {
                for o in &found {
                    println!("{}", serde_json::to_string(o)?);
                }
            } else {
                for o in &found {
                    let age = o
                        .age_s
                        .map_or("age unknown".to_string(), |s| format!("{s} s old"));
                    let done = match (o.deleted, o.kept) {
                        (true, _) => ", deleted".to_string(),
                        (false, Some(why)) => format!(", kept: {why}"),
                        (false, None) => String::new(),
                    };
                    println!("{} ({age}{done})", o.uri);
                }
                let deleted = found.iter().filter(|o| o.deleted).count();
                println!(
                    "{} orphan file(s){}",
                    found.len(),
                    if delete {
                        format!(", {deleted} deleted")
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    Ok(0)
}

fn print_report(r: &sluice_pipeline::table::TableReport) {
    println!("table    {} (catalog {})", r.table, r.catalog);
    if let Some(q) = &r.queue {
        match (q.waiting, q.committing, &q.error) {
            (Some(w), Some(c), _) => println!(
                "queue    {}: {w} message(s) of files waiting for the committer, {c} being committed",
                q.queue
            ),
            (_, _, e) => println!(
                "queue    {}: its depth cannot be read ({})",
                q.queue,
                e.as_deref().unwrap_or("no answer")
            ),
        }
    }
    if !r.exists {
        println!("         not created yet: the first commit creates it");
        return;
    }
    println!("location {}", r.location.as_deref().unwrap_or_default());
    let cols: Vec<String> = r
        .columns
        .iter()
        .map(|c| {
            format!(
                "{} {}{}",
                c.name,
                c.ty,
                if c.required { " required" } else { "" }
            )
        })
        .collect();
    println!("schema   {}", cols.join(", "));
    if r.partition.is_empty() {
        println!("partition none");
    } else {
        println!("partition {}", r.partition.join(", "));
    }
    println!("now      {} rows in {} data files", r.rows, r.files);
    for s in &r.snapshots {
        println!(
            "snapshot {} {} {}: +{} rows in {} files{}",
            s.id,
            s.committed_at,
            s.operation,
            s.added_rows,
            s.added_files,
            s.pipeline
                .as_deref()
                .map(|p| format!(" by {p}"))
                .unwrap_or_default()
                + &s.invocation
                    .as_deref()
                    .map(|i| format!(" (invocation {i})"))
                    .unwrap_or_default()
        );
        for src in &s.sources {
            println!("         from {src}");
        }
        if !s.writers.is_empty() {
            println!("         queued by {}", s.writers.join(", "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages_are_read_in_their_units() {
        assert_eq!(parse_age("90s"), Ok(std::time::Duration::from_secs(90)));
        assert_eq!(parse_age("2d"), Ok(std::time::Duration::from_secs(172_800)));
        assert!(parse_age("2 days").is_err());
        assert!(parse_age("h").is_err());
    }
}
