//! Where direct commits break and the commit queue takes over: N concurrent writers into one
//! Iceberg table (the embedded SQLite catalog), in both modes, as `benches/peers/run.sh commits`
//! runs it.
//!
//! `commit-curve SQS_ENDPOINT OUT_DIR [N,N,…] [ROUNDS] [BUDGET_S]`: for each N (default
//! 1,4,16,64,256),
//! N simulated invocations run at once in this process — each its own handler, so its own
//! catalog connection and table state, as separate Lambda sandboxes are — each reading its own
//! S3 object (a local store) and committing its rows; every writer does ROUNDS (default 1) such
//! invocations one after the other. A failed invocation is handled again, as Lambda retries it
//! (after 100 ms, at most 20 times), until BUDGET_S (default 300) seconds after the start: a
//! mode that cannot land every invocation by then is reported with what it landed (direct
//! commits at 256 writers landed 143 of 512 in 17 minutes on the development machine, every
//! attempt writing a metadata file that lists every snapshot before it). With `commit = "queue"` the writers send their files to an
//! SQS queue (moto at SQS_ENDPOINT) and one committer drains it as Lambda's event source does: it
//! receives up to 10 messages a request, gathers up to 1 000 or 500 ms, and hands the batch to
//! the handler as an SQS event, then deletes what was not reported as failed.
//!
//! Reported per mode and N, from the table's own snapshots: invocations landed per second
//! (from the first writer's start to the last commit), snapshots, conflicts per commit (retried
//! attempts, from every summary), the time from each invocation's start to the snapshot that made
//! its rows visible (p50, p99), and whether every source landed exactly once with every row.
//! Writes `OUT_DIR/commits.json`, `OUT_DIR/commits.md` and `OUT_DIR/commits.html` (the curve).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_pipeline::Pipeline;
use sluice_pipeline::store::{FsStore, ObjectStore};

const ROWS: usize = 200;
const RETRIES: usize = 20;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn config(dir: &Path, queue: Option<&str>) -> String {
    let commit = match queue {
        Some(q) => format!("commit = \"queue\"\nqueue = \"{q}\"\n"),
        None => String::new(),
    };
    format!(
        "name = \"curve\"\n[input]\nformat = \"ndjson\"\nschema = {{ id = \"int64\", who = \"string\", n = \"int64\" }}\n\
         [output]\nuri = \"s3://lake/tables/\"\nformat = \"iceberg\"\ntable = \"bench.curve\"\n\
         catalog = \"sqlite:{}\"\npartition = [\"bucket(4, who)\"]\n{commit}",
        dir.join("catalog.db").display()
    )
}

/// The S3 event of `s3://in/{key}` in `store`, as S3 sends it.
fn event(store: &Path, key: &str) -> Value {
    let size = std::fs::metadata(store.join("in").join(key)).map_or(0, |m| m.len());
    sluice_pipeline::event::s3_event(vec![sluice_pipeline::event::s3_record("in", key, size, "")])
}

struct Run {
    mode: &'static str,
    writers: usize,
    invocations: usize,
    landed_per_s: f64,
    snapshots: usize,
    conflicts_per_commit: f64,
    p50_ms: f64,
    p99_ms: f64,
    retried: u64,
    /// Every invocation landed, once.
    exactly_once: bool,
    /// No source landed twice (whether or not all landed in the budget).
    no_duplicates: bool,
    landed: usize,
    note: String,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn run(
    mode: &'static str,
    writers: usize,
    rounds: usize,
    budget: Duration,
    endpoint: &str,
    sqs: &aws_sdk_sqs::Client,
) -> Result<Run, String> {
    let deadline = Instant::now() + budget;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store_dir = dir.path().join("store");
    std::fs::create_dir_all(store_dir.join("in")).map_err(|e| e.to_string())?;
    let invocations = writers * rounds;
    for i in 0..invocations {
        let body: String = (0..ROWS)
            .map(|r| {
                format!(
                    "{{\"id\":{},\"who\":\"w{}-{}\",\"n\":{r}}}\n",
                    i * ROWS + r,
                    i,
                    r % 7
                )
            })
            .collect();
        std::fs::write(
            store_dir.join("in").join(format!("part-{i:05}.ndjson")),
            body,
        )
        .map_err(|e| e.to_string())?;
    }
    let queue_url = if mode == "queue" {
        let name = format!("curve-{}-{writers}-{}", std::process::id(), now_ms());
        let made = sqs
            .create_queue()
            .queue_name(&name)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                "600",
            )
            .send()
            .await
            .map_err(|e| format!("creating the queue: {e}"))?;
        Some((name, made.queue_url.unwrap_or_default()))
    } else {
        None
    };
    let cfg_path = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg_path,
        config(dir.path(), queue_url.as_ref().map(|q| q.0.as_str())),
    )
    .map_err(|e| e.to_string())?;
    let pipeline = Arc::new(Pipeline::load(&cfg_path).map_err(|e| e.to_string())?);
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(&store_dir));
    let conflicts = Arc::new(AtomicU64::new(0));
    let commits = Arc::new(AtomicU64::new(0));
    let retried = Arc::new(AtomicU64::new(0));
    let starts = Arc::new(std::sync::Mutex::new(HashMap::<String, u64>::new()));
    let t0 = now_ms();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (pipeline, store, endpoint) = (pipeline.clone(), store.clone(), endpoint.to_string());
        let (conflicts, commits, retried, starts) = (
            conflicts.clone(),
            commits.clone(),
            retried.clone(),
            starts.clone(),
        );
        let store_dir = store_dir.clone();
        tasks.push(tokio::spawn(async move {
            for r in 0..rounds {
                if Instant::now() >= deadline {
                    break;
                }
                let i = r * writers + w;
                let ev = event(&store_dir, &format!("part-{i:05}.ndjson"));
                let id = format!("writer-{i:05}");
                if let Ok(mut s) = starts.lock() {
                    s.insert(id.clone(), now_ms());
                }
                // Each invocation its own sandbox: its own handler and catalog connection.
                let left = deadline.saturating_duration_since(Instant::now());
                let handler = pipeline
                    .handler(store.clone(), store.clone())
                    .with_endpoint(Some(&endpoint))
                    .with_timeout(left.clamp(Duration::from_millis(200), Duration::from_secs(60)));
                let mut attempt = 0;
                loop {
                    let out =
                        sluice_pipeline::table::with_invocation(id.clone(), handler.handle(&ev))
                            .await;
                    if let Some(c) = &out.summary.commit {
                        conflicts.fetch_add(u64::from(c.conflicts), Ordering::Relaxed);
                        if c.mode == "direct" {
                            commits.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if !out.summary.failed() || attempt >= RETRIES || Instant::now() >= deadline {
                        break;
                    }
                    attempt += 1;
                    retried.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    let done = Arc::new(AtomicBool::new(false));
    let committer = queue_url.clone().map(|(_, url)| {
        let (pipeline, store, sqs, done) =
            (pipeline.clone(), store.clone(), sqs.clone(), done.clone());
        let (conflicts, commits, endpoint) =
            (conflicts.clone(), commits.clone(), endpoint.to_string());
        tokio::spawn(async move {
            let handler = pipeline
                .handler(store.clone(), store)
                .with_endpoint(Some(&endpoint))
                .with_timeout(Duration::from_secs(60));
            let mut n = 0u64;
            loop {
                let finished = done.load(Ordering::Relaxed);
                let mut batch = Vec::new();
                let started = Instant::now();
                while batch.len() < 1000 && started.elapsed() < Duration::from_millis(500) {
                    let got = sqs
                        .receive_message()
                        .queue_url(&url)
                        .max_number_of_messages(10)
                        .send()
                        .await;
                    match got {
                        Ok(o) if !o.messages().is_empty() => batch.extend(o.messages().to_vec()),
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
                if batch.is_empty() {
                    if finished || Instant::now() >= deadline + Duration::from_secs(60) {
                        return;
                    }
                    continue;
                }
                let records: Vec<Value> = batch
                    .iter()
                    .map(|m| {
                        json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(),
                               "body": m.body(), "attributes": {}, "messageAttributes": {},
                               "md5OfBody": m.md5_of_body(), "eventSource": "aws:sqs",
                               "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:curve",
                               "awsRegion": "us-east-1"})
                    })
                    .collect();
                n += 1;
                let out = sluice_pipeline::table::with_invocation(
                    format!("committer-{n}"),
                    handler.handle(&json!({ "Records": records })),
                )
                .await;
                if let Some(c) = &out.summary.commit {
                    conflicts.fetch_add(u64::from(c.conflicts), Ordering::Relaxed);
                    if out.summary.records_out > 0 {
                        commits.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let failed = &out.summary.batch_item_failures;
                for m in &batch {
                    if !failed.iter().any(|f| Some(f.as_str()) == m.message_id())
                        && let Some(h) = m.receipt_handle()
                    {
                        let _ = sqs
                            .delete_message()
                            .queue_url(&url)
                            .receipt_handle(h)
                            .send()
                            .await;
                    }
                }
            }
        })
    });
    for t in tasks {
        t.await.map_err(|e| e.to_string())?;
    }
    done.store(true, Ordering::Relaxed);
    if let Some(c) = committer {
        c.await.map_err(|e| e.to_string())?;
    }
    let handler = pipeline
        .handler(store.clone(), store)
        .with_endpoint(Some(endpoint));
    let table = handler.table().ok_or("no table")?;
    let report = table.report().await.map_err(|e| e.to_string())?;
    let starts = starts.lock().map_err(|e| e.to_string())?.clone();
    let mut visible = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut last = t0;
    for s in &report.snapshots {
        for src in &s.sources {
            *seen.entry(src.clone()).or_default() += 1;
        }
        last = last.max(s.timestamp_ms);
        let holders: Vec<&String> = if s.writers.is_empty() {
            s.invocation.iter().collect()
        } else {
            s.writers.iter().collect()
        };
        for w in holders {
            if let Some(&at) = starts.get(w) {
                visible.push(s.timestamp_ms.saturating_sub(at) as f64);
            }
        }
    }
    let no_duplicates = seen.values().all(|&n| n == 1) && report.rows == (seen.len() * ROWS) as u64;
    let exactly_once = no_duplicates && seen.len() == invocations;
    let commits = commits.load(Ordering::Relaxed).max(1);
    let secs = (last.saturating_sub(t0)).max(1) as f64 / 1e3;
    if let Some((_, url)) = &queue_url {
        let _ = sqs.delete_queue().queue_url(url).send().await;
    }
    Ok(Run {
        mode,
        writers,
        invocations,
        landed_per_s: seen.len() as f64 / secs,
        snapshots: report.snapshots.len(),
        conflicts_per_commit: conflicts.load(Ordering::Relaxed) as f64 / commits as f64,
        p50_ms: pct(&mut visible.clone(), 0.5),
        p99_ms: pct(&mut visible, 0.99),
        retried: retried.load(Ordering::Relaxed),
        exactly_once,
        no_duplicates,
        landed: seen.len(),
        note: format!("{} rows, {} sources", report.rows, seen.len()),
    })
}

/// One line of a chart: its name, colour and (N, value) points.
type Series = (&'static str, &'static str, Vec<(usize, f64)>);

/// A line chart of `series` over N on a log scale, as SVG.
fn chart(title: &str, unit: &str, series: &[Series]) -> String {
    let (w, h, left, bottom) = (560.0, 300.0, 60.0, 40.0);
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| (p.0 as f64).log2()))
        .collect();
    let (xmin, xmax) = (
        xs.iter().copied().fold(f64::INFINITY, f64::min),
        xs.iter().copied().fold(0.0, f64::max).max(1.0),
    );
    let ymax = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    let x =
        |n: usize| left + ((n as f64).log2() - xmin) / (xmax - xmin).max(1.0) * (w - left - 20.0);
    let y = |v: f64| h - bottom - v / ymax * (h - bottom - 30.0);
    let mut svg = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}' font-family='sans-serif' font-size='12'>\
         <text x='{left}' y='16' font-weight='bold'>{title}</text>\
         <line x1='{left}' y1='{}' x2='{}' y2='{}' stroke='#888'/><line x1='{left}' y1='30' x2='{left}' y2='{}' stroke='#888'/>\
         <text x='6' y='{}'>{ymax:.0} {unit}</text><text x='6' y='{}'>0</text>",
        h - bottom,
        w - 20.0,
        h - bottom,
        h - bottom,
        y(ymax / 1.1) + 4.0,
        h - bottom
    );
    let mut ticks: Vec<usize> = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.0))
        .collect();
    ticks.sort_unstable();
    ticks.dedup();
    for n in ticks {
        svg += &format!(
            "<text x='{}' y='{}' text-anchor='middle'>{n}</text>",
            x(n),
            h - bottom + 16.0
        );
    }
    svg += &format!(
        "<text x='{}' y='{}' text-anchor='middle'>concurrent writers (N)</text>",
        (w + left) / 2.0,
        h - 6.0
    );
    for (i, (name, colour, points)) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .filter(|p| p.1.is_finite())
            .map(|&(n, v)| format!("{:.1},{:.1}", x(n), y(v)))
            .collect();
        svg += &format!(
            "<polyline fill='none' stroke='{colour}' stroke-width='2' points='{}'/>",
            path.join(" ")
        );
        for &(n, v) in points.iter().filter(|p| p.1.is_finite()) {
            svg += &format!(
                "<circle cx='{:.1}' cy='{:.1}' r='3' fill='{colour}'/>",
                x(n),
                y(v)
            );
        }
        svg += &format!(
            "<text x='{}' y='{}' fill='{colour}'>{name}</text>",
            left + 10.0,
            44.0 + 14.0 * i as f64
        );
    }
    svg + "</svg>"
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(endpoint), Some(out)) = (args.first(), args.get(1)) else {
        eprintln!("usage: commit-curve SQS_ENDPOINT OUT_DIR [N,N,…] [ROUNDS]");
        std::process::exit(2);
    };
    let ns: Vec<usize> = args
        .get(2)
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 4, 16, 64, 256]);
    let rounds: usize = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(1);
    let budget = Duration::from_secs(args.get(4).and_then(|b| b.parse().ok()).unwrap_or(300));
    let out = PathBuf::from(out);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    let runs = rt.block_on(async {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .load()
            .await;
        let sqs = aws_sdk_sqs::Client::new(&shared);
        let mut runs = Vec::new();
        for &n in &ns {
            for mode in ["direct", "queue"] {
                match run(mode, n, rounds, budget, endpoint, &sqs).await {
                    Ok(r) => {
                        eprintln!(
                            "{mode} N={n}: {:.1} landed/s, {} snapshots, {:.2} conflicts/commit, p50 {:.0} ms, p99 {:.0} ms, {} retried, exactly once: {} ({})",
                            r.landed_per_s, r.snapshots, r.conflicts_per_commit, r.p50_ms, r.p99_ms, r.retried, r.exactly_once, r.note
                        );
                        runs.push(r);
                    }
                    Err(e) => {
                        eprintln!("{mode} N={n}: {e}");
                        std::process::exit(1);
                    }
                }
            }
        }
        runs
    });
    let json: Vec<Value> = runs
        .iter()
        .map(|r| {
            json!({"mode": r.mode, "writers": r.writers, "invocations": r.invocations,
                   "landed_per_s": r.landed_per_s, "snapshots": r.snapshots,
                   "conflicts_per_commit": r.conflicts_per_commit, "p50_ms": r.p50_ms,
                   "p99_ms": r.p99_ms, "retried": r.retried, "landed": r.landed,
                   "exactly_once": r.exactly_once, "no_duplicates": r.no_duplicates})
        })
        .collect();
    let mut md = String::from(
        "| N writers | mode | invocations | landed/s | snapshots | conflicts per commit | visible p50 | visible p99 | retried | every row once |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for r in &runs {
        md += &format!(
            "| {} | {} | {} | {:.1} | {} | {:.2} | {:.0} ms | {:.0} ms | {} | {} |\n",
            r.writers,
            r.mode,
            r.invocations,
            r.landed_per_s,
            r.snapshots,
            r.conflicts_per_commit,
            r.p50_ms,
            r.p99_ms,
            r.retried,
            if r.exactly_once {
                "yes".to_string()
            } else if r.no_duplicates {
                format!(
                    "{} of {} landed in {} s, none twice",
                    r.landed,
                    r.invocations,
                    budget.as_secs()
                )
            } else {
                "NO: a source landed twice".to_string()
            }
        );
    }
    let series = |f: fn(&Run) -> f64| -> Vec<Series> {
        [("direct", "#c0392b"), ("queue", "#2471a3")]
            .into_iter()
            .map(|(m, c)| {
                (
                    m,
                    c,
                    runs.iter()
                        .filter(|r| r.mode == m)
                        .map(|r| (r.writers, f(r)))
                        .collect(),
                )
            })
            .collect()
    };
    let html = format!(
        "<!doctype html><meta charset='utf-8'><title>Sluice: direct commits against the commit queue</title>\
         <h1>N concurrent writers into one Iceberg table</h1><p>Local SQLite catalog, moto's SQS; {rounds} invocation(s) per writer of {ROWS} rows each, {} s at most per run.</p>\
         {}{}{}<pre>{md}</pre>",
        budget.as_secs(),
        chart(
            "invocations landed per second",
            "/s",
            &series(|r| r.landed_per_s)
        ),
        chart("time to visibility, p99", "ms", &series(|r| r.p99_ms)),
        chart(
            "conflicts per commit",
            "",
            &series(|r| r.conflicts_per_commit)
        ),
    );
    let write = |name: &str, text: String| {
        if let Err(e) = std::fs::write(out.join(name), text) {
            eprintln!("{name}: {e}");
            std::process::exit(1);
        }
    };
    write(
        "commits.json",
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    );
    write("commits.md", md.clone());
    write("commits.html", html);
    print!("{md}");
    // Running out of the budget is a result; a row landing twice is a bug.
    if runs.iter().any(|r| !r.no_duplicates) {
        std::process::exit(1);
    }
}
