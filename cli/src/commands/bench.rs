//! `sluice bench`: the handler measured on events, and priced at each Lambda memory size.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use sluice_pipeline::store::{CountingStore, FsStore, ObjectStore};
use sluice_pipeline::{Pipeline, bench, replay};

use super::*;

#[derive(clap::Args)]
pub struct BenchArgs {
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

pub async fn run(a: BenchArgs) -> anyhow::Result<u8> {
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
    // The stores and the Kinesis client count what the handler asks of S3 and Kinesis, and the
    // log lines it writes are counted as the Lambda would write them: the rest of the bill.
    let meter = bench::Meter {
        input: CountingStore::new(Arc::new(FsStore::new(&store))),
        output: CountingStore::new(Arc::new(FsStore::new(scratch.path()))),
        putter: Arc::new(bench::CountingPutter::default()),
        logs: bench::count_logs(),
    };
    let input: Arc<dyn ObjectStore> = Arc::new(meter.input.clone());
    let output: Arc<dyn ObjectStore> = Arc::new(meter.output.clone());
    // An Iceberg output's catalog: a SQLite file beside the scratch folder (which is emptied
    // after each invocation), whatever the config names.
    let catalog = tempfile::tempdir().context("a scratch folder for the table catalog")?;
    let handler = pipeline
        .handler(input, output)
        .with_record_putter(meter.putter.clone())
        .benched(&catalog.path().join("catalog.db"));

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
        Some(&meter),
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
        bench::Catalog::of(pipeline.plan()),
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
