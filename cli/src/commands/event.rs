//! `sluice event`: realistic S3, S3 Batch Operations, Kinesis, SQS, CloudWatch Logs, DynamoDB
//! Streams and Firehose events for local objects and lines, for replay.

use std::path::PathBuf;

use anyhow::Context;
use sluice_pipeline::event;
use sluice_pipeline::store::FsStore;

#[derive(clap::Subcommand)]
pub enum EventKind {
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
    /// An S3 Batch Operations invocation (the Lambda invoke operation's), one task per key.
    BatchOps {
        /// Bucket name.
        #[arg(long)]
        bucket: String,
        /// Object key, as uploaded (URL-encoded in the task, as in a manifest).
        #[arg(long, required = true)]
        key: Vec<String>,
        /// The invocation schema: 1.0 (the bucket by ARN) or 2.0 (by name, with user arguments).
        #[arg(long, default_value = "2.0", value_parser = ["1.0", "2.0"])]
        schema: String,
    },
    /// A CloudWatch Logs subscription invoking the function directly: each line of each FILE
    /// becomes one log event's message.
    Cwlogs {
        /// The log group.
        #[arg(long, default_value = "/aws/lambda/orders")]
        log_group: String,
        /// The log stream.
        #[arg(long, default_value = "2026/11/22/[$LATEST]0f1e")]
        log_stream: String,
        /// Write the CONTROL_MESSAGE a new subscription is checked with instead.
        #[arg(long)]
        control: bool,
        /// Newline-delimited files of log messages.
        files: Vec<PathBuf>,
    },
    /// A DynamoDB Streams batch of INSERTs: each line of each FILE (a JSON object) one item.
    Dynamodb {
        /// The table (in the stream's ARN).
        #[arg(long, default_value = "orders")]
        table: String,
        /// The item's key attribute.
        #[arg(long, default_value = "id")]
        key: String,
        /// Newline-delimited JSON objects.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// A Firehose data-transformation batch: each line of each FILE becomes one record (its
    /// data), or with --gzip each FILE one gzip record of its lines (as CloudWatch Logs
    /// subscriptions reach Firehose).
    Firehose {
        /// The delivery stream (in its ARN).
        #[arg(long, default_value = "sluice-delivery")]
        stream: String,
        /// The Kinesis stream the delivery stream reads, when it reads one (each record then
        /// carries its Kinesis metadata).
        #[arg(long, value_name = "STREAM")]
        source_stream: Option<String>,
        /// Each FILE whole, gzip-compressed, as one record.
        #[arg(long)]
        gzip: bool,
        /// Newline-delimited files (NDJSON, CSV rows, log lines), or with --gzip any files.
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

pub async fn run(kind: EventKind) -> anyhow::Result<u8> {
    match kind {
        EventKind::S3 {
            bucket,
            key,
            size,
            store,
            sqs,
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
        EventKind::Kinesis {
            stream,
            kpl,
            kpl_records,
            window_seconds,
            per_invoke,
            files,
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
        EventKind::BatchOps {
            bucket,
            key,
            schema,
        } => {
            let ev = event::batch_ops_event(&schema, &bucket, &key);
            println!("{}", serde_json::to_string_pretty(&ev)?);
            Ok(0)
        }
        EventKind::Cwlogs {
            log_group,
            log_stream,
            control,
            files,
        } => {
            let messages: Vec<String> = read_lines(&files)?
                .iter()
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect();
            if messages.is_empty() && !control {
                anyhow::bail!("no log messages: give FILEs of lines, or --control");
            }
            let ev = event::cloudwatch_logs_event(&log_group, &log_stream, &messages, control);
            println!("{}", serde_json::to_string_pretty(&ev)?);
            Ok(0)
        }
        EventKind::Dynamodb { table, key, files } => {
            let mut items = Vec::new();
            for (i, line) in read_lines(&files)?.iter().enumerate() {
                let item: serde_json::Value = serde_json::from_slice(line)
                    .with_context(|| format!("line {} is not a JSON object", i + 1))?;
                anyhow::ensure!(item.is_object(), "line {} is not a JSON object", i + 1);
                items.push(item);
            }
            let ev = event::dynamodb_event(&table, &key, &items);
            println!("{}", serde_json::to_string_pretty(&ev)?);
            Ok(0)
        }
        EventKind::Firehose {
            stream,
            source_stream,
            gzip,
            files,
        } => {
            let payloads = if gzip {
                let mut out = Vec::new();
                for f in &files {
                    let bytes =
                        std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
                    out.push(event::gzip(&bytes));
                }
                out
            } else {
                read_lines(&files)?
            };
            let ev = event::firehose_event(&stream, source_stream.as_deref(), &payloads);
            println!("{}", serde_json::to_string_pretty(&ev)?);
            Ok(0)
        }
        EventKind::Sqs { queue, files } => {
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
