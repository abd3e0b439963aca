//! The `sluice` command line: validate, replay, serve, event.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_pipeline::store::{FsStore, ObjectStore};
use sluice_pipeline::{Pipeline, bench, event, lambda, replay};

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
    Replay {
        /// The pipeline.toml.
        config: PathBuf,
        /// Event files, folders of them, or .jsonl files of events.
        #[arg(required = true)]
        events: Vec<PathBuf>,
        /// Local store: s3://bucket/key is read from DIR/bucket/key (default: fixtures/objects).
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// Where S3 outputs are written, as OUT/bucket/key (default: the store).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Read and write through this S3-compatible endpoint instead of local folders.
        #[arg(long, value_name = "URL")]
        endpoint_url: Option<String>,
        /// Print one JSON summary line per event.
        #[arg(long)]
        json: bool,
        /// Redeliver failures the way Lambda does (a Kinesis shard from the reported record, SQS
        /// messages reported, async invocations whole), up to N retries each.
        #[arg(long, value_name = "N")]
        max_retries: Option<u32>,
        /// Kinesis: on a function error (a crash), split the batch in two and retry each half.
        #[arg(long)]
        bisect_on_error: bool,
        /// Append what is finally given up to FILE as JSON lines (Lambda's on-failure record for
        /// Kinesis and async invocations; the message itself for SQS, as a dead-letter queue gets it).
        #[arg(long, value_name = "FILE")]
        on_failure: Option<PathBuf>,
        /// The function's timeout: each event must be done this many seconds after it starts, as
        /// on Lambda (requests still running near it fail, and what is unfinished is reported for
        /// redelivery). Default: no deadline.
        #[arg(long, value_name = "SECONDS", value_parser = parse_timeout)]
        timeout: Option<std::time::Duration>,
        /// The function's memory size in MB, the budget the output files share (default:
        /// $SLUICE_MEMORY_MB, else 1024).
        #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(128..=10240))]
        memory_mb: Option<u64>,
    },
    /// The Lambda runtime loop (what the deployed bootstrap runs).
    Serve {
        /// The pipeline.toml; defaults to $SLUICE_CONFIG, then ./pipeline.toml.
        config: Option<PathBuf>,
    },
    /// Rank the documents of a term index (written by an index stage) for a query, by BM25.
    Search {
        /// The index stage's output: a folder, or s3://bucket/prefix/ (holding _index/terms/).
        index: String,
        /// The query: words, in any language the index stage tokenizes.
        query: String,
        /// How many documents to print.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Read s3:// through this S3-compatible endpoint.
        #[arg(long, value_name = "URL")]
        endpoint_url: Option<String>,
        /// One JSON line per hit: {"doc","score","matched"}.
        #[arg(long)]
        json: bool,
    },
    /// Measure the pipeline's handler on events, and what it would cost on Lambda at each memory
    /// size (an estimate from the measured CPU and wall time; the method is printed with it).
    Bench(BenchArgs),
    /// Time one cold start: load the pipeline and build the handler as `serve` does, print
    /// `ready`, exit (run by `bench` in fresh processes).
    #[command(hide = true)]
    InitProbe {
        /// The pipeline.toml.
        config: PathBuf,
    },
    /// Write a realistic event for local objects, for replay.
    Event {
        #[command(subcommand)]
        kind: EventKind,
    },
}

#[derive(Subcommand)]
enum EventKind {
    /// An S3 ObjectCreated:Put notification (optionally delivered through SQS).
    S3 {
        /// Bucket name.
        #[arg(long)]
        bucket: String,
        /// Object key, as uploaded (it is encoded the way S3 encodes notification keys).
        #[arg(long, required = true)]
        key: Vec<String>,
        /// Object size in bytes; default: the size of STORE/bucket/key if it exists, else 0.
        #[arg(long)]
        size: Option<u64>,
        /// Local store used to look up sizes.
        #[arg(long, value_name = "DIR", default_value = "fixtures/objects")]
        store: PathBuf,
        /// Wrap the notification in an SQS message.
        #[arg(long)]
        sqs: bool,
    },
    /// A Kinesis batch: each line of each FILE becomes one record (its data).
    Kinesis {
        /// Stream name (in the event source ARN).
        #[arg(long, default_value = "sluice-stream")]
        stream: String,
        /// Pack the records KPL-style into aggregated records (up to --kpl-records each).
        #[arg(long)]
        kpl: bool,
        /// User records per aggregated record with --kpl.
        #[arg(long, default_value_t = 100)]
        kpl_records: usize,
        /// Write the invocations of one tumbling window of this many seconds instead, one event per
        /// line (.jsonl), the last marked as the window's final invocation.
        #[arg(long, value_name = "SECONDS")]
        window_seconds: Option<u64>,
        /// Records per invocation with --window-seconds.
        #[arg(long, value_name = "N", default_value_t = 100)]
        per_invoke: usize,
        /// Newline-delimited files (NDJSON, CSV rows, log lines).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// An SQS batch: each line of each FILE becomes one message body.
    Sqs {
        /// Queue name (in the event source ARN).
        #[arg(long, default_value = "sluice-queue")]
        queue: String,
        /// Newline-delimited files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    lambda::mark_process_start();
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Deployed as the function's `bootstrap`, Lambda runs it with no arguments: serve.
    if args.len() == 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        args.push("serve".into());
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
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
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
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
        Command::Replay {
            config,
            events,
            store,
            out,
            endpoint_url,
            json,
            max_retries,
            bisect_on_error,
            on_failure,
            timeout,
            memory_mb,
        } => {
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
            let (input, output): (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>) = match &endpoint_url
            {
                Some(url) => {
                    let s3 = match s3_store(Some(url), Some(&pipeline)).await {
                        Ok(s) => s,
                        Err(e) => {
                            eprintln!("sluice: {e}");
                            return Ok(2);
                        }
                    };
                    (s3.clone(), s3)
                }
                None => {
                    // A store named that is not there is a mistake, whatever the events; the
                    // default one is looked for when an object is read (a stream batch needs none).
                    if let Some(Err(e)) = store.as_deref().map(local_store) {
                        eprintln!("sluice: {e}");
                        return Ok(2);
                    }
                    let store = store.unwrap_or_else(|| PathBuf::from(DEFAULT_STORE));
                    let out = out.unwrap_or_else(|| store.clone());
                    (Arc::new(FsStore::new(store)), Arc::new(FsStore::new(out)))
                }
            };
            let handler = pipeline
                .handler_with_streams(input, output, endpoint_url.as_deref())
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
                        writeln!(f, "{v}")
                            .with_context(|| format!("writing {}", path.display()))?;
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
        Command::Search {
            index,
            query,
            limit,
            endpoint_url,
            json,
        } => {
            let (store, bucket, prefix): (Arc<dyn ObjectStore>, String, String) =
                match index.strip_prefix("s3://") {
                    Some(rest) => {
                        let (b, p) = rest.split_once('/').unwrap_or((rest, ""));
                        match s3_store(endpoint_url.as_deref(), None).await {
                            Ok(s) => (s, b.to_string(), p.to_string()),
                            Err(e) => {
                                eprintln!("sluice: {e}");
                                return Ok(2);
                            }
                        }
                    }
                    None => (
                        Arc::new(sluice_pipeline::store::FsStore::flat(&index)),
                        String::new(),
                        String::new(),
                    ),
                };
            match sluice_pipeline::search::search(store, &bucket, &prefix, &query, limit).await {
                Ok(hits) => {
                    for h in &hits {
                        if json {
                            println!(
                                "{}",
                                serde_json::json!({"doc": h.doc, "score": h.score, "matched": h.matched})
                            );
                        } else {
                            println!("{:>8.3}  {}  ({})", h.score, h.doc, h.matched.join(", "));
                        }
                    }
                    if hits.is_empty() && !json {
                        eprintln!("no documents match");
                    }
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("sluice: {e}");
                    Ok(1)
                }
            }
        }
        Command::Serve { config } => {
            if let Some(missing) = lambda::missing_environment() {
                eprintln!(
                    "sluice serve is the Lambda runtime loop: it needs what Lambda sets for a function, \
                     and {missing} is not set. To run a pipeline here, use `sluice replay CONFIG EVENT` \
                     (what the function would do, on local files or an S3 endpoint); to run this loop \
                     under a local Lambda Runtime API, use cargo-lambda's emulator (`cargo lambda watch`, \
                     then `cargo lambda invoke`; see infra/README.md)."
                );
                return Ok(2);
            }
            lambda::init_logging();
            let path = config
                .or_else(|| std::env::var_os("SLUICE_CONFIG").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("pipeline.toml"));
            let pipeline = match Pipeline::load(&path) {
                Ok(p) => p,
                Err(e) => {
                    // Logged as JSON so it reaches CloudWatch; the init error fails the cold start.
                    tracing::error!(error = %e, "Invalid pipeline config.");
                    eprintln!("{e}");
                    return Ok(2);
                }
            };
            lambda::serve(serving_handler(&pipeline).await?)
                .await
                .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))?;
            Ok(0)
        }
        Command::Bench(args) => bench(args).await,
        Command::InitProbe { config } => {
            let pipeline = match Pipeline::load(&config) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(2);
                }
            };
            // Exactly what serve builds before it asks for the first event.
            std::hint::black_box(serving_handler(&pipeline).await?);
            println!("ready");
            Ok(0)
        }
        Command::Event {
            kind:
                EventKind::S3 {
                    bucket,
                    key,
                    size,
                    store,
                    sqs,
                },
        } => {
            let fs = FsStore::new(&store);
            let mut records = Vec::new();
            for k in &key {
                let file = fs.path(&bucket, k).ok();
                let size = match size {
                    Some(s) => s,
                    None => file
                        .as_ref()
                        .and_then(|p| std::fs::metadata(p).ok())
                        .map(|m| m.len())
                        .unwrap_or(0),
                };
                // The ETag S3 gives the same bytes uploaded in one PUT (their MD5), so the event
                // also replays against a bucket holding them. With no local file there is no
                // content to name: no eTag, and the object is read as it is then.
                let etag = file.as_deref().and_then(file_md5).unwrap_or_default();
                records.push(event::s3_record(&bucket, k, size, &etag));
            }
            let mut ev = event::s3_event(records);
            if sqs {
                ev = event::sqs_event(&ev, "059f36b4-87a3-44ab-83d2-661975830a7d");
            }
            println!("{}", serde_json::to_string_pretty(&ev)?);
            Ok(0)
        }
        Command::Event {
            kind:
                EventKind::Kinesis {
                    stream,
                    kpl,
                    kpl_records,
                    window_seconds,
                    per_invoke,
                    files,
                },
        } => {
            let lines = read_lines(&files)?;
            let payloads: Vec<(String, Vec<u8>)> = if kpl {
                lines
                    .chunks(kpl_records.max(1))
                    .enumerate()
                    .map(|(i, chunk)| {
                        let keys: Vec<String> =
                            (0..chunk.len()).map(|j| format!("pk-{}", j % 4)).collect();
                        let users: Vec<(&str, &[u8])> = keys
                            .iter()
                            .zip(chunk)
                            .map(|(k, l)| (k.as_str(), l.as_slice()))
                            .collect();
                        (format!("agg-{i}"), sluice_pipeline::kpl::aggregate(&users))
                    })
                    .collect()
            } else {
                lines
                    .into_iter()
                    .enumerate()
                    .map(|(i, l)| (format!("pk-{}", i % 4), l))
                    .collect()
            };
            if let Some(seconds) = window_seconds {
                for ev in event::kinesis_window_events(&stream, &payloads, seconds, per_invoke) {
                    println!("{}", serde_json::to_string(&ev)?);
                }
                return Ok(0);
            }
            let ev = event::kinesis_event(&stream, &payloads);
            println!("{}", serde_json::to_string_pretty(&ev)?);
            Ok(0)
        }
        Command::Event {
            kind: EventKind::Sqs { queue, files },
        } => {
            // SQS bodies are text: bytes that are not UTF-8 cannot be sent, so they are replaced.
            let bodies: Vec<String> = read_lines(&files)?
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect();
            let ev = event::sqs_records_event(&queue, &bodies);
            println!("{}", serde_json::to_string_pretty(&ev)?);
            Ok(0)
        }
    }
}

/// The non-blank lines of every file, in order, as bytes (a line need not be UTF-8: Kinesis data
/// is bytes, and a bad line is what a replay should show being rejected).
/// The local store `replay` and `bench` read when `--store` is not given.
const DEFAULT_STORE: &str = "fixtures/objects";

/// A local store folder that is not there is an error naming where it was looked for (a
/// relative default, `fixtures/objects`, run from another folder would otherwise find no object
/// and report every upload as "deleted").
fn local_store(store: &std::path::Path) -> Result<(), String> {
    if store.is_dir() {
        return Ok(());
    }
    let abs = std::path::absolute(store).unwrap_or_else(|_| store.to_path_buf());
    Err(format!(
        "the local store {} is not a folder (it holds s3://bucket/key as FOLDER/bucket/key); \
         name it with --store, run from the folder that holds it, or read S3 with --endpoint-url",
        abs.display()
    ))
}

/// `--timeout`: seconds, as a Lambda function's timeout is given (fractions allowed), 0.1 to 900.
fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(0.1..=900.0).contains(&secs) {
        return Err(format!(
            "{text} s is not a Lambda timeout; give 0.1 to 900 seconds"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn read_lines(files: &[PathBuf]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut lines = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        lines.extend(
            bytes
                .split(|b| *b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                .map(<[u8]>::to_vec),
        );
    }
    Ok(lines)
}

/// The S3 store (at `endpoint` when given, else the SDK's default endpoint for the environment);
/// for a pipeline, its writes carry the pipeline's marker and encryption
/// ([`sluice_pipeline::store::S3Store::for_pipeline`]).
#[cfg(feature = "s3")]
async fn s3_store(
    endpoint: Option<&str>,
    pipeline: Option<&Pipeline>,
) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let store = sluice_pipeline::store::S3Store::from_env(endpoint).await;
    Ok(Arc::new(match pipeline {
        Some(p) => store.for_pipeline(&p.plan().config),
        None => store,
    }))
}

/// The handler `serve` runs ([`Pipeline::serving_handler`]).
#[cfg(feature = "s3")]
async fn serving_handler(pipeline: &Pipeline) -> anyhow::Result<sluice_pipeline::run::Handler> {
    Ok(pipeline.serving_handler().await)
}

#[cfg(not(feature = "s3"))]
async fn serving_handler(_pipeline: &Pipeline) -> anyhow::Result<sluice_pipeline::run::Handler> {
    anyhow::bail!("this sluice was built without the `s3` feature, so it cannot serve as a Lambda")
}

#[derive(clap::Args)]
struct BenchArgs {
    /// The pipeline.toml.
    config: PathBuf,
    /// Event files, folders of them, or .jsonl files of events (as for replay).
    #[arg(required = true)]
    events: Vec<PathBuf>,
    /// Measured rounds over the events.
    #[arg(long, default_value_t = 20)]
    iterations: usize,
    /// Unmeasured rounds first (a warm Lambda has run before).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Memory sizes to price, MB, comma-separated [default: 128,256,512,1024,1536,1769,2048,3008,4096,6144,8192,10240]
    #[arg(long, value_name = "LIST")]
    memory_mb: Option<String>,
    /// The Lambda architecture priced: arm64 or x86_64.
    #[arg(long, default_value = "arm64")]
    arch: String,
    /// Local store: s3://bucket/key is read from DIR/bucket/key (default: fixtures/objects).
    #[arg(long, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Fresh processes started to time the cold start (0: do not measure it).
    #[arg(long, default_value_t = 5)]
    cold_starts: usize,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML page with the cost and duration chart.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

async fn bench(a: BenchArgs) -> anyhow::Result<u8> {
    use std::io::{IsTerminal, Write};
    let usage = |e: String| -> anyhow::Result<u8> {
        eprintln!("sluice bench: {e}");
        Ok(2)
    };
    let memory = match a.memory_mb.as_deref() {
        Some(list) => match bench::parse_memory_list(list) {
            Ok(m) => m,
            Err(e) => return usage(format!("--memory-mb: {e}")),
        },
        None => bench::DEFAULT_MEMORY_MB.to_vec(),
    };
    let arch: bench::Arch = match a.arch.parse() {
        Ok(v) => v,
        Err(e) => return usage(format!("--arch: {e}")),
    };
    if a.iterations == 0 {
        return usage("--iterations must be at least 1".into());
    }
    let pipeline = match Pipeline::load(&a.config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(2);
        }
    };
    let mut events = Vec::new();
    for e in replay::collect(&a.events).map_err(|e| anyhow::anyhow!(e))? {
        match e.load() {
            Ok(v) => events.push((e.name, serde_json::to_vec(&v)?)),
            Err(err) => return usage(format!("{}: {err}", e.name)),
        }
    }
    if let Some(Err(e)) = a.store.as_deref().map(local_store) {
        return usage(e);
    }
    let store = a
        .store
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE));
    let scratch = tempfile::tempdir().context("a scratch folder for the outputs")?;
    let input: Arc<dyn ObjectStore> = Arc::new(FsStore::new(&store));
    let output: Arc<dyn ObjectStore> = Arc::new(FsStore::new(scratch.path()));
    let handler = pipeline.handler(input, output);

    // Cold starts first, while the machine is quiet: fresh processes of this same binary.
    let mut init = Vec::new();
    if a.cold_starts > 0 {
        let exe = std::env::current_exe().context("this program's path")?;
        for _ in 0..a.cold_starts {
            match cold_start(&exe, &a.config) {
                Ok(ms) => init.push(ms),
                Err(e) => {
                    eprintln!("sluice bench: cold start not measured: {e:#}");
                    init.clear();
                    break;
                }
            }
        }
    }
    let progress_on = std::io::stderr().is_terminal();
    let started = std::time::Instant::now();
    let samples = bench::measure(
        &handler,
        &events,
        a.warmup,
        a.iterations,
        scratch.path(),
        |done, total| {
            if progress_on
                && (done == total || done.is_multiple_of(5) || started.elapsed().as_secs() < 2)
            {
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r\x1b[Kbench: {done}/{total} invocations, {:.1} s",
                    started.elapsed().as_secs_f64()
                );
                if done == total {
                    let _ = writeln!(err);
                }
            }
        },
    )
    .await;
    let report = bench::Report::new(
        a.config.display().to_string(),
        events.iter().map(|(n, _)| n.clone()).collect(),
        a.warmup,
        a.iterations,
        &samples,
        &init,
        &memory,
        arch,
    );
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.text());
    }
    if let Some(path) = &a.html {
        std::fs::write(path, report.html())
            .with_context(|| format!("writing {}", path.display()))?;
        if !a.json {
            println!("chart: {}", path.display());
        }
    }
    Ok(if report.failed > 0 { 1 } else { 0 })
}

/// One fresh process of this binary, from spawn to its `ready` line, in ms.
fn cold_start(exe: &std::path::Path, config: &std::path::Path) -> anyhow::Result<f64> {
    use std::io::BufRead;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("init-probe")
        .arg(config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // A region so the SDK's configuration never waits on an instance metadata endpoint.
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        cmd.env("AWS_REGION", "us-east-1");
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true");
    let t = std::time::Instant::now();
    let mut child = cmd.spawn().context("starting a fresh process")?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        std::io::BufReader::new(out).read_line(&mut line)?;
    }
    let took = t.elapsed().as_secs_f64() * 1e3;
    let out = child.wait_with_output()?;
    if !line.starts_with("ready") {
        anyhow::bail!(
            "the probe did not get ready: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(took)
}

#[cfg(not(feature = "s3"))]
async fn s3_store(
    _endpoint: Option<&str>,
    _pipeline: Option<&Pipeline>,
) -> anyhow::Result<Arc<dyn ObjectStore>> {
    anyhow::bail!("this sluice was built without the `s3` feature, so it cannot read or write S3")
}

/// The hex MD5 of a file, read a piece at a time (an object of any size); `None` when it cannot
/// be read.
fn file_md5(path: &std::path::Path) -> Option<String> {
    use md5::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut hash = md5::Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hash.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
