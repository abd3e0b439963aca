//! The `sluice` command line: validate, replay, serve, search, bench, backfill, event, table.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sluice_pipeline::{Pipeline, lambda};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Stream and file pipelines on AWS Lambda: validate, replay, serve."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a pipeline and print the resolved plan.
    Validate {
        /// The pipeline.toml.
        config: PathBuf,
    },
    /// Run captured events through the handler the Lambda runs, against local files or an endpoint.
    Replay(commands::replay::ReplayArgs),
    /// The Lambda runtime loop (what the deployed bootstrap runs).
    Serve {
        /// The pipeline.toml; defaults to $SLUICE_CONFIG, then ./pipeline.toml.
        config: Option<PathBuf>,
    },
    /// Rank the documents of a term index (written by an index stage) for a query, by BM25.
    Search(commands::search::SearchArgs),
    /// Measure the pipeline's handler on events, and what it would cost on Lambda at each memory
    /// size (an estimate from the measured CPU and wall time; the method is printed with it).
    Bench(commands::bench::BenchArgs),
    /// Time one cold start: load the pipeline and build the handler as `serve` does, print
    /// `ready`, exit (run by `bench` in fresh processes).
    #[command(hide = true)]
    InitProbe {
        /// The pipeline.toml.
        config: PathBuf,
    },
    /// A pipeline's Iceberg table: show it, or find (and delete) its orphan files.
    #[cfg(feature = "iceberg")]
    Table {
        #[command(subcommand)]
        command: commands::table::TableCommand,
    },
    /// Backfill the objects already in a bucket with S3 Batch Operations: list those the
    /// pipeline reads, write the job's manifest, or run the job's tasks here (--local).
    Backfill(commands::backfill::BackfillArgs),
    /// Write a realistic event for local objects, for replay.
    Event {
        #[command(subcommand)]
        kind: commands::event::EventKind,
    },
}

fn main() -> ExitCode {
    lambda::mark_process_start();
    // Deployed as the function's `bootstrap`, Lambda runs it with no arguments: serve, without
    // building the whole command line's parser first (a cold start pays for every step).
    let cli =
        if std::env::args_os().len() == 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
            Cli {
                command: Command::Serve { config: None },
            }
        } else {
            match Cli::try_parse() {
                Ok(c) => c,
                Err(e) => {
                    let _ = e.print();
                    return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
                }
            }
        };
    // Serving, the pipeline loads meanwhile the async runtime starts.
    let preload = match &cli.command {
        Command::Serve { config } => Some(commands::serve::Preload::start(config.clone())),
        _ => None,
    };
    // Every thread gets the main thread's 8 MiB stack (tokio's default is 2 MiB): stages
    // evaluate expressions by recursion, one level per operator, bounded by the parser at
    // `MAX_TREE_DEPTH`, and a margin here costs only address space.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sluice: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli, preload)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::from(2)
        }
    }
}
async fn run(cli: Cli, preload: Option<commands::serve::Preload>) -> anyhow::Result<u8> {
    match cli.command {
        Command::Validate { config } => match Pipeline::load(&config) {
            Ok(p) => {
                print!("{}", p.plan());
                Ok(0)
            }
            Err(e) => {
                eprintln!("{e}");
                Ok(2)
            }
        },
        Command::Replay(a) => commands::replay::run(a).await,
        Command::Search(a) => commands::search::run(a).await,
        Command::Serve { config } => {
            commands::serve::run(preload.unwrap_or_else(|| commands::serve::Preload::start(config)))
                .await
        }
        Command::Bench(a) => commands::bench::run(a).await,
        Command::InitProbe { config } => commands::serve::init_probe(config).await,
        Command::Event { kind } => commands::event::run(kind).await,
        Command::Backfill(a) => commands::backfill::run(a).await,
        #[cfg(feature = "iceberg")]
        Command::Table { command } => commands::table::run(command).await,
    }
}
