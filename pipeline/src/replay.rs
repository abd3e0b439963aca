//! Local replay: run captured events through the very handler the Lambda runs.

use std::path::{Path, PathBuf};

use futures::FutureExt;
use serde_json::Value;

use crate::run::{Handler, Outcome, Summary};

/// One event to replay, with the name it is reported under. Events in files are read when they
/// are replayed, not when they are listed: a `.jsonl` of a hundred 10 MB batches is never held
/// whole in memory.
#[derive(Debug, Clone)]
pub struct NamedEvent {
    /// File, or `file:line` for `.jsonl`.
    pub name: String,
    source: Source,
}

#[derive(Debug, Clone)]
enum Source {
    /// A whole `.json` file.
    File(PathBuf),
    /// One line of a `.jsonl` file: its byte offset and length.
    Line(PathBuf, u64, usize),
    /// An event already in memory, or why it could not be had.
    Given(Result<Value, String>),
}

impl NamedEvent {
    /// An event in memory.
    pub fn given(name: impl Into<String>, event: Result<Value, String>) -> Self {
        NamedEvent {
            name: name.into(),
            source: Source::Given(event),
        }
    }

    /// The event's JSON bytes, read now.
    pub fn bytes(&self) -> Result<Vec<u8>, String> {
        use std::io::{Read, Seek, SeekFrom};
        let cannot = |path: &Path, e: std::io::Error| {
            format!("{}: cannot read the event file: {e}", path.display())
        };
        match &self.source {
            Source::File(path) => std::fs::read(path).map_err(|e| cannot(path, e)),
            Source::Line(path, at, len) => {
                let mut f = std::fs::File::open(path).map_err(|e| cannot(path, e))?;
                f.seek(SeekFrom::Start(*at)).map_err(|e| cannot(path, e))?;
                let mut line = vec![0; *len];
                f.read_exact(&mut line).map_err(|e| cannot(path, e))?;
                Ok(line)
            }
            Source::Given(Ok(v)) => serde_json::to_vec(v).map_err(|e| e.to_string()),
            Source::Given(Err(e)) => Err(e.clone()),
        }
    }

    /// The event, read and parsed now.
    pub fn load(&self) -> Result<Value, String> {
        match &self.source {
            Source::Given(v) => v.clone(),
            _ => serde_json::from_slice(&self.bytes()?)
                .map_err(|e| format!("the event is not JSON: {e}")),
        }
    }
}

/// Expand event arguments: files, folders of `.json`/`.jsonl` files (sorted), and `.jsonl` files
/// (one event per line). Only where each event is gets listed here; it is read when replayed.
pub fn collect(args: &[PathBuf]) -> Result<Vec<NamedEvent>, String> {
    let mut out = Vec::new();
    for a in args {
        if a.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(a)
                .map_err(|e| format!("{}: {e}", a.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("json" | "jsonl")
                        )
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(format!(
                    "{}: no .json or .jsonl event files in this folder",
                    a.display()
                ));
            }
            for f in files {
                list_file(&f, &mut out)?;
            }
        } else {
            list_file(a, &mut out)?;
        }
    }
    Ok(out)
}

/// List the events of one file: the file itself, or each non-blank line of a `.jsonl` (found in
/// one streaming pass that holds a line at a time).
fn list_file(path: &Path, out: &mut Vec<NamedEvent>) -> Result<(), String> {
    use std::io::BufRead;
    let cannot = |e: std::io::Error| format!("{}: cannot read the event file: {e}", path.display());
    let f = std::fs::File::open(path).map_err(cannot)?;
    let name = path.display().to_string();
    if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
        out.push(NamedEvent {
            name,
            source: Source::File(path.to_path_buf()),
        });
        return Ok(());
    }
    let mut r = std::io::BufReader::with_capacity(1 << 16, f);
    let mut line = Vec::new();
    let mut at = 0u64;
    for number in 1.. {
        line.clear();
        let n = r.read_until(b'\n', &mut line).map_err(cannot)?;
        if n == 0 {
            break;
        }
        let text = line.trim_ascii();
        if !text.is_empty() {
            let lead = line.len() - line.trim_ascii_start().len();
            out.push(NamedEvent {
                name: format!("{name}:{number}"),
                source: Source::Line(path.to_path_buf(), at + lead as u64, text.len()),
            });
        }
        at += n as u64;
    }
    Ok(())
}

/// Replay events one after another, collecting the summaries.
pub async fn replay(handler: &Handler, events: Vec<NamedEvent>) -> Vec<Summary> {
    let mut out = Vec::with_capacity(events.len());
    replay_each(handler, events, |_, _, s| out.push(s)).await;
    out
}

/// Carries a Kinesis tumbling window's state from one replayed event to the next, as Lambda does:
/// an event of the same shard and window gets the state the previous one returned; a new window
/// starts from the state its event holds (empty, for events made by hand).
#[derive(Debug, Default)]
pub struct WindowCarry {
    last: Option<(String, String, serde_json::Map<String, Value>)>,
}

impl WindowCarry {
    fn key(event: &Value) -> Option<(String, String)> {
        let w = event.get("window")?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
        Some((text(event.get("shardId")), text(w.get("start"))))
    }

    /// `event` as a value when it may take part in a window: it names a window, or a window's
    /// state is being carried (which the next event of that window must get). `None` for every
    /// other event, and for bytes that are not JSON (the handler says so).
    fn window_event(&self, event: &[u8]) -> Option<Value> {
        if self.last.is_none() && memchr::memmem::find(event, b"\"window\"").is_none() {
            return None;
        }
        serde_json::from_slice(event).ok()
    }

    /// Give `event` the state carried for its window, if any.
    pub fn apply(&self, event: &mut Value) {
        if let (Some((s, w)), Some((shard, start, state))) = (Self::key(event), &self.last)
            && (&s, &w) == (shard, start)
            && let Some(obj) = event.as_object_mut()
        {
            obj.insert("state".into(), Value::Object(state.clone()));
        }
    }

    /// Remember the state `s` returned for `event`'s window (none after its last invocation).
    pub fn update(&mut self, event: &Value, s: &Summary) {
        let last_invoke = event
            .get("isFinalInvokeForWindow")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        self.last = match (Self::key(event), &s.state) {
            (Some((shard, start)), Some(state)) if !last_invoke => {
                Some((shard, start, state.clone()))
            }
            _ => None,
        };
    }
}

/// Replay events one after another, handing each summary to `done(index, total, summary)` as soon
/// as its event finishes (so long runs report as they go).
pub async fn replay_each(
    handler: &Handler,
    events: Vec<NamedEvent>,
    mut done: impl FnMut(usize, usize, Summary),
) {
    let total = events.len();
    let mut carry = WindowCarry::default();
    for (i, e) in events.into_iter().enumerate() {
        let work = async {
            match e.bytes() {
                Ok(bytes) => match carry.window_event(&bytes) {
                    // A tumbling window's invocation, with the state its window carried so far.
                    Some(mut v) => {
                        carry.apply(&mut v);
                        let (s, _) = handler.handle(&v).await.into_parts();
                        carry.update(&v, &s);
                        s
                    }
                    // Every other event goes in as bytes, as the Lambda runtime hands it over.
                    None => {
                        let mut s = handler.handle_bytes(&bytes, None).await.summary;
                        if let Some(a) = &s.firehose {
                            // The event again only for the failed records' original data.
                            let v = if a.count("ProcessingFailed") > 0 {
                                serde_json::from_slice::<Value>(&bytes).unwrap_or_default()
                            } else {
                                Value::Null
                            };
                            deliver_firehose(handler, &v, &mut s).await;
                        }
                        s
                    }
                },
                Err(err) => Summary::unknown(err),
            }
        };
        #[cfg(feature = "iceberg")]
        let work = crate::table::with_invocation(format!("replay:{}", e.name), work);
        let mut summary = work.await;
        summary.event = e.name;
        done(i, total, summary);
    }
}

/// The bucket (under `--out`, a folder) a replay writes what Firehose would deliver into.
pub const FIREHOSE_BUCKET: &str = "firehose";

/// What Firehose does with a transformation's answer, done here for a replay: the records
/// answered `Ok` are delivered, their data back to back, to
/// `firehose/STREAM/[k=v/…]INVOCATION.ndjson` (one file per set of partition keys, as dynamic
/// partitioning would name its prefixes), and those answered `ProcessingFailed` to
/// `firehose/STREAM/processing-failed/INVOCATION.json` as Firehose's error output holds them
/// (one JSON document each, its original data in `rawData`). The files are added to the
/// summary's outputs; a file that cannot be written is the summary's error.
pub async fn deliver_firehose(handler: &Handler, event: &Value, s: &mut Summary) {
    use std::collections::BTreeMap;
    let Some(answer) = &s.firehose else {
        return;
    };
    let job = &answer.job;
    let stream = job
        .delivery_stream_arn
        .rsplit_once("deliverystream/")
        .map_or("delivery-stream", |(_, name)| name);
    let invocation = if job.invocation_id.is_empty() {
        "invocation"
    } else {
        job.invocation_id.as_str()
    };
    let raw: Vec<&Value> = event
        .get("records")
        .and_then(Value::as_array)
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    let mut delivered: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut failed = Vec::new();
    for (i, a) in answer.records.iter().enumerate() {
        match &a.result {
            crate::run::firehose::Transformed::Ok => {
                let mut path = String::new();
                for (k, v) in &a.partition_keys {
                    path.push_str(k);
                    path.push('=');
                    crate::write::partition_value(v, &mut path);
                    path.push('/');
                }
                delivered
                    .entry(path)
                    .or_default()
                    .extend_from_slice(&a.data);
            }
            crate::run::firehose::Transformed::Dropped => {}
            crate::run::firehose::Transformed::Failed(why) => {
                let arrival = job.arrivals.get(i).copied().unwrap_or(0);
                let line = serde_json::json!({
                    "attemptsMade": 1,
                    "arrivalTimestamp": arrival,
                    "errorCode": "Lambda.ProcessingFailedStatus",
                    "errorMessage": why,
                    "attemptEndingTimestamp": arrival,
                    "rawData": raw.get(i).and_then(|r| r.get("data")).cloned().unwrap_or_default(),
                    "lambdaArn": format!(
                        "arn:aws:lambda:us-east-1:123456789012:function:{}",
                        handler.plan.config.name
                    ),
                });
                failed.extend_from_slice(line.to_string().as_bytes());
                failed.push(b'\n');
            }
        }
    }
    let mut files: Vec<(String, Vec<u8>, &str)> = delivered
        .into_iter()
        .map(|(path, data)| {
            (
                format!("{stream}/{path}{invocation}.ndjson"),
                data,
                "application/x-ndjson",
            )
        })
        .collect();
    if !failed.is_empty() {
        files.push((
            format!("{stream}/processing-failed/{invocation}.json"),
            failed,
            "application/json",
        ));
    }
    for (key, data, kind) in files {
        let store = handler.output.as_ref();
        let meta = crate::store::ObjectMeta::typed(kind);
        match crate::store::put(store, FIREHOSE_BUCKET, &key, meta, data).await {
            Ok(()) => s.outputs.push(store.location(FIREHOSE_BUCKET, &key)),
            Err(e) => {
                s.error = Some(format!("delivering as Firehose would: {e}"));
                return;
            }
        }
    }
}

/// How a replay redelivers what fails, the way Lambda does: a Kinesis shard resumes at the reported
/// sequence number, SQS retries the reported messages, and an asynchronous (S3, SNS, EventBridge)
/// invocation that errors is retried whole.
#[derive(Debug, Clone, Copy, Default)]
pub struct Redelivery {
    /// Retries after the first delivery before giving up (Lambda's `MaximumRetryAttempts`; SQS's
    /// `maxReceiveCount` less one).
    pub max_retries: u32,
    /// Kinesis `BisectBatchOnFunctionError`: on a function error (a crash; Sluice itself answers
    /// with a batch response instead), split the batch in two and retry each half, the splits not
    /// counting as retries, so a poison record is isolated. With a batch response Lambda resumes at
    /// the reported record, bisecting or not.
    pub bisect: bool,
}

/// What a redelivered replay gave up on: one JSON line each, in the shape Lambda sends to an
/// on-failure destination (Kinesis: the batch's shard and sequence range; asynchronous invocations:
/// the event) or, for SQS, the message itself as a dead-letter queue receives it.
pub type GivenUp = Vec<Value>;

/// The identifier Lambda uses for a record in batch item failures (a Batch Operations task's id).
fn record_id(r: &Value) -> Option<&str> {
    r.pointer("/kinesis/sequenceNumber")
        .or_else(|| r.pointer("/dynamodb/SequenceNumber"))
        .or_else(|| r.get("messageId"))
        .or_else(|| r.get("taskId"))
        .and_then(Value::as_str)
}

/// Where an event keeps what is delivered again: an S3 Batch Operations job's `tasks`, else
/// `Records`.
fn records_key(event: &Value) -> &'static str {
    if event.get("invocationSchemaVersion").is_some() && event.get("tasks").is_some() {
        "tasks"
    } else if crate::trigger::is_firehose(event) {
        "records"
    } else {
        "Records"
    }
}

fn with_records(event: &Value, records: &[Value]) -> Value {
    let mut e = event.clone();
    let key = records_key(event);
    if let Some(obj) = e.as_object_mut() {
        obj.insert(key.into(), Value::Array(records.to_vec()));
    }
    e
}

/// Replay one event as Lambda's event source mapping would deliver it, redelivering failures per
/// `policy`; every delivery's summary goes to `done` (named `event#2` for the second, and so on).
pub async fn replay_redelivered(
    handler: &Handler,
    event: NamedEvent,
    policy: Redelivery,
    carry: &mut WindowCarry,
    mut done: impl FnMut(Summary),
) -> GivenUp {
    let value = match event.load() {
        Ok(mut v) => {
            carry.apply(&mut v);
            v
        }
        Err(err) => {
            done(Summary {
                event: event.name,
                ..Summary::unknown(err)
            });
            return Vec::new();
        }
    };
    let batch_ops = records_key(&value) == "tasks";
    let records: Vec<Value> = value
        .get(records_key(&value))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut given_up = Vec::new();
    let mut deliveries = 0u32;
    // Batches still to deliver, in order, with the retries each has had.
    let mut queue = std::collections::VecDeque::from([(records, 0u32)]);
    while let Some((batch, tries)) = queue.pop_front() {
        deliveries += 1;
        let ev = if batch.is_empty() {
            value.clone()
        } else {
            with_records(&value, &batch)
        };
        // A panic is what the runtime reports as a function error; so is an invocation error
        // outside a batch response.
        let run = std::panic::AssertUnwindSafe(handler.handle(&ev)).catch_unwind();
        // S3 Batch Operations retries the tasks answered `TemporaryFailure`; those answered
        // `PermanentFailure` go to the job's completion report as they are.
        let mut results = Vec::new();
        let (mut s, whole) = match run.await {
            Ok(Outcome {
                summary: mut s,
                per_item,
            }) => {
                carry.update(&ev, &s);
                deliver_firehose(handler, &ev, &mut s).await;
                if batch_ops {
                    results = s
                        .lambda_response(per_item)
                        .get("results")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                }
                let whole = s.error.is_some() && (!per_item || s.batch_item_failures.is_empty());
                (s, whole)
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|m| m.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let s = Summary {
                    error_class: Some(crate::ErrorClass::Permanent),
                    ..Summary::unknown(format!("the function panicked: {what}"))
                };
                (s, true)
            }
        };
        s.event = if deliveries == 1 {
            event.name.clone()
        } else {
            format!("{}#{deliveries}", event.name)
        };
        // A shard's batch (Kinesis, DynamoDB Streams): it resumes at its first failed record.
        let source = batch
            .first()
            .and_then(|r| r.get("eventSource"))
            .and_then(Value::as_str);
        let kinesis = matches!(source, Some("aws:kinesis" | "aws:dynamodb"));
        let failed_ids = s.batch_item_failures.clone();
        let (error, error_class) = (s.error.clone(), s.error_class);
        done(s);
        if batch_ops && !whole {
            let code = |task: &Value, want: &str| {
                results.iter().find(|r| {
                    r.get("taskId") == task.get("taskId")
                        && r.get("resultCode").and_then(Value::as_str) == Some(want)
                })
            };
            for task in &batch {
                if let Some(r) = code(task, "PermanentFailure") {
                    given_up.push(serde_json::json!({ "task": task, "result": r }));
                }
            }
            let again: Vec<Value> = batch
                .iter()
                .filter(|t| code(t, "TemporaryFailure").is_some())
                .cloned()
                .collect();
            if again.is_empty() {
                continue;
            }
            if tries < policy.max_retries {
                queue.push_front((again, tries + 1));
            } else {
                given_up.extend(again.iter().map(|task| {
                    serde_json::json!({ "task": task, "result": code(task, "TemporaryFailure") })
                }));
            }
            continue;
        }
        // What must be delivered again.
        let rest: Vec<Value> = if whole {
            batch.clone()
        } else if failed_ids.is_empty() {
            continue;
        } else if kinesis {
            // The shard resumes at the first reported sequence number.
            let at = batch
                .iter()
                .position(|r| record_id(r) == Some(failed_ids[0].as_str()))
                .unwrap_or(0);
            batch[at..].to_vec()
        } else {
            batch
                .iter()
                .filter(|r| record_id(r).is_some_and(|id| failed_ids.iter().any(|f| f == id)))
                .cloned()
                .collect()
        };
        // Lambda bisects on a function error; with a batch response it resumes at the reported
        // record, which is where `rest` starts.
        if kinesis && whole && policy.bisect && rest.len() > 1 {
            let (a, b) = rest.split_at(rest.len() / 2);
            queue.push_front((b.to_vec(), tries));
            queue.push_front((a.to_vec(), tries));
        } else if tries < policy.max_retries {
            queue.push_front((rest, tries + 1));
        } else if kinesis {
            given_up.push(kinesis_failure(&rest, tries + 1));
        } else if whole && crate::trigger::is_firehose(&value) {
            // Firehose skips a batch whose invocation keeps failing: each record goes to its
            // error output as it came.
            given_up.extend(rest.iter().map(|r| {
                serde_json::json!({
                    "attemptsMade": tries + 1,
                    "arrivalTimestamp": r.get("approximateArrivalTimestamp"),
                    "errorCode": "Lambda.FunctionError",
                    "errorMessage": error,
                    "attemptEndingTimestamp": r.get("approximateArrivalTimestamp"),
                    "rawData": r.get("data"),
                })
            }));
        } else if whole {
            // As Lambda's on-failure record of an asynchronous invocation: the event, and the
            // function's error with its class as `errorType`.
            given_up.push(serde_json::json!({
                "requestContext": {
                    "condition": "RetriesExhausted",
                    "approximateInvokeCount": tries + 1,
                },
                "requestPayload": ev,
                "responseContext": { "functionError": "Unhandled" },
                "responsePayload": {
                    "errorType": error_class.unwrap_or(crate::ErrorClass::Permanent).error_type(),
                    "errorMessage": error,
                },
            }));
        } else {
            // SQS: each message goes to the dead-letter queue as it is.
            given_up.extend(rest);
        }
    }
    given_up
}

/// Lambda's on-failure record for a Kinesis batch (or a DynamoDB Streams one) it gave up on.
fn kinesis_failure(batch: &[Value], invokes: u32) -> Value {
    if batch
        .first()
        .and_then(|r| r.get("eventSource"))
        .and_then(Value::as_str)
        == Some("aws:dynamodb")
    {
        let field = |r: Option<&Value>, p: &str| r.and_then(|r| r.pointer(p)).cloned();
        let (first, last) = (batch.first(), batch.last());
        return serde_json::json!({
            "requestContext": {
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invokes,
            },
            "version": "1.0",
            "DDBStreamBatchInfo": {
                "startSequenceNumber": field(first, "/dynamodb/SequenceNumber"),
                "endSequenceNumber": field(last, "/dynamodb/SequenceNumber"),
                "approximateArrivalOfFirstRecord": field(first, "/dynamodb/ApproximateCreationDateTime"),
                "approximateArrivalOfLastRecord": field(last, "/dynamodb/ApproximateCreationDateTime"),
                "batchSize": batch.len(),
                "streamArn": field(first, "/eventSourceARN"),
            },
        });
    }
    let field = |r: Option<&Value>, p: &str| r.and_then(|r| r.pointer(p)).cloned();
    let (first, last) = (batch.first(), batch.last());
    let shard = field(first, "/eventID").and_then(|v| {
        v.as_str()
            .and_then(|s| s.split(':').next())
            .map(str::to_string)
    });
    serde_json::json!({
        "requestContext": {
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": invokes,
        },
        "version": "1.0",
        "KinesisBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": field(first, "/kinesis/sequenceNumber"),
            "endSequenceNumber": field(last, "/kinesis/sequenceNumber"),
            "approximateArrivalOfFirstRecord": field(first, "/kinesis/approximateArrivalTimestamp"),
            "approximateArrivalOfLastRecord": field(last, "/kinesis/approximateArrivalTimestamp"),
            "batchSize": batch.len(),
            "streamArn": field(first, "/eventSourceARN"),
        },
    })
}

/// A human-readable line for one summary.
pub fn describe(s: &Summary) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut line = format!(
        "{}: {} · {}",
        s.event,
        s.trigger,
        plural(s.objects, "object", "objects")
    );
    if s.failed_objects > 0 {
        line.push_str(&format!(" · {} failed", s.failed_objects));
    }
    line.push_str(&format!(" · {} skipped", s.skipped));
    if s.delivered > 0 {
        line.push_str(&format!(
            " · {} delivered",
            plural(s.delivered, "record", "records")
        ));
    }
    line.push_str(&format!(
        " · {} in → {} out · {} rejected · {} ms",
        s.records_in, s.records_out, s.rejected, s.duration_ms
    ));
    for o in &s.outputs {
        line.push_str(&format!("\n  wrote {o}"));
    }
    for k in &s.skips {
        line.push_str(&format!("\n  skipped {}: {}", k.source, k.reason));
    }
    if let Some(a) = &s.firehose {
        line.push_str(&format!(
            "\n  answered {} Ok · {} Dropped · {} ProcessingFailed",
            a.count("Ok"),
            a.count("Dropped"),
            a.count("ProcessingFailed")
        ));
        for r in &a.records {
            if let crate::run::firehose::Transformed::Failed(why) = &r.result {
                line.push_str(&format!("\n  ProcessingFailed {}: {why}", r.record_id));
            }
        }
    }
    if !s.batch_item_failures.is_empty() {
        line.push_str(&format!(
            "\n  batch item failures: {}",
            s.batch_item_failures.join(", ")
        ));
    }
    if let Some(e) = &s.error {
        line.push_str(&format!("\n  error: {e}"));
    }
    if let Some(class) = s.error_class {
        line.push_str(&format!("\n  {}", retry_hint(class)));
    }
    line
}

/// What a retry of a failure of this class would do, for a person.
pub fn retry_hint(class: crate::ErrorClass) -> &'static str {
    match class {
        crate::ErrorClass::BadInput => {
            "bad input: a retry fails the same way (the failed input goes to the dead-letter \
             queue or on-failure destination once retries are exhausted)"
        }
        crate::ErrorClass::Permanent => {
            "permanent: a retry fails the same way until the pipeline, its permissions or its \
             buckets are fixed"
        }
        crate::ErrorClass::RetryLater => "transient: a retry may succeed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FsStore, ObjectStore};
    use crate::testing::holds;
    use arrow_array::RecordBatch;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn jsonl_events_are_listed_by_place_and_read_when_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.jsonl");
        std::fs::write(&path, "{\"a\":1}\r\n\n  {\"b\":2}  \nnot json\n{\"c\":3}").unwrap();
        let events = collect(std::slice::from_ref(&path)).unwrap();
        let name = path.display().to_string();
        let names: Vec<String> = events.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, [1, 3, 4, 5].map(|n| format!("{name}:{n}")));
        assert_eq!(events[0].load(), Ok(serde_json::json!({"a": 1})));
        assert_eq!(events[1].bytes().unwrap(), b"{\"b\":2}");
        assert!(
            events[2]
                .load()
                .unwrap_err()
                .starts_with("the event is not JSON")
        );
        assert_eq!(events[3].load(), Ok(serde_json::json!({"c": 3})));
        // Listing read nothing into the events: a file gone before its turn is that event's error.
        std::fs::remove_file(&path).unwrap();
        let gone = events[0].load().unwrap_err();
        assert!(gone.contains("cannot read the event file"), "{gone}");
        // A missing file is an error when listing, as before.
        assert!(collect(&[dir.path().join("none.json")]).is_err());
    }

    /// A handler whose pipeline ends in a stage of the user's running `check` on every batch.
    fn handler(
        dir: &Path,
        check: impl Fn(&RecordBatch) -> Result<(), sluice_processors::Error> + Send + Sync + 'static,
    ) -> Handler {
        let plan = crate::config::Plan::from_str(
            Path::new("t.toml"),
            "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = { p = \"string\" }\n[output]\nuri = \"s3://o/r/\"\nformat = \"ndjson\"\n",
        )
        .unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir));
        Handler::new(plan, store.clone(), store).with_stage(crate::testing::probe(check))
    }

    /// Fails on batches holding "poison".
    fn poisoned(b: &RecordBatch) -> Result<(), sluice_processors::Error> {
        if holds(b, "poison") {
            return Err(sluice_processors::Error::Schema("poison".into()));
        }
        Ok(())
    }

    fn kinesis(values: &[&str]) -> NamedEvent {
        let payloads: Vec<(String, Vec<u8>)> = values
            .iter()
            .map(|v| ("k".to_string(), format!("{{\"p\":\"{v}\"}}").into_bytes()))
            .collect();
        NamedEvent::given("e.json", Ok(crate::event::kinesis_event("s", &payloads)))
    }

    async fn run(h: &Handler, e: NamedEvent, policy: Redelivery) -> (Vec<Summary>, GivenUp) {
        let mut seen = Vec::new();
        let mut carry = WindowCarry::default();
        let lost = replay_redelivered(h, e, policy, &mut carry, |s| seen.push(s)).await;
        (seen, lost)
    }

    #[tokio::test]
    async fn batch_operations_retry_temporary_failures_and_report_permanent_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("in")).unwrap();
        std::fs::write(dir.path().join("in/ok.json"), b"{\"p\":\"a\"}\n").unwrap();
        std::fs::write(dir.path().join("in/slow.json"), b"{\"p\":\"slow\"}\n").unwrap();
        std::fs::write(dir.path().join("in/bad.json.gz"), b"\x1f\x8b\x08\x00junk").unwrap();
        let h = handler(dir.path(), |_| Ok(()));
        let policy = Redelivery {
            max_retries: 2,
            bisect: false,
        };
        let keys = |k: &[&str]| k.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        // Processed, and corrupt: Succeeded, and PermanentFailure reported once, never retried.
        let ev = crate::event::batch_ops_event("2.0", "in", &keys(&["ok.json", "bad.json.gz"]));
        let (seen, lost) = run(&h, NamedEvent::given("b.json", Ok(ev)), policy).await;
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].trigger.to_string(), "batch-ops");
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert_eq!(lost[0]["task"]["taskId"], "task-1");
        assert_eq!(lost[0]["result"]["resultCode"], "PermanentFailure");
        // Past the deadline (a function timeout shorter than what it keeps for its answer, so
        // every delivery is): TemporaryFailure, which S3 retries; still failing after the
        // retries, reported so.
        let h = handler(dir.path(), |_| Ok(())).with_timeout(std::time::Duration::from_millis(1));
        let ev = crate::event::batch_ops_event("1.0", "in", &keys(&["slow.json"]));
        let (seen, lost) = run(&h, NamedEvent::given("s.json", Ok(ev)), policy).await;
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[2].event, "s.json#3");
        assert_eq!(lost.len(), 1, "{lost:?}");
        assert_eq!(lost[0]["result"]["resultCode"], "TemporaryFailure");
        assert!(
            lost[0]["result"]["resultString"]
                .as_str()
                .unwrap()
                .contains("deadline"),
            "{lost:?}"
        );
    }

    #[tokio::test]
    async fn a_transient_failure_is_redelivered_from_the_failure_point() {
        let dir = tempfile::tempdir().unwrap();
        // Fails once on the batch holding "flaky", then lets it through.
        let hiccups = AtomicUsize::new(1);
        let h = handler(dir.path(), move |b| {
            let first = || hiccups.compare_exchange(1, 0, Ordering::SeqCst, Ordering::SeqCst);
            if holds(b, "flaky") && first().is_ok() {
                return Err(sluice_processors::Error::Schema("a passing hiccup".into()));
            }
            Ok(())
        });
        let policy = Redelivery {
            max_retries: 2,
            bisect: false,
        };
        let (seen, lost) = run(&h, kinesis(&["a", "flaky", "c"]), policy).await;
        assert!(lost.is_empty(), "{lost:?}");
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[0].batch_item_failures,
            vec![crate::event::kinesis_sequence(0)]
        );
        assert_eq!(
            (seen[1].event.as_str(), seen[1].records_out),
            ("e.json#2", 3)
        );
    }

    #[tokio::test]
    async fn a_batch_that_keeps_failing_is_given_up_after_the_retries() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(dir.path(), poisoned);
        let policy = Redelivery {
            max_retries: 2,
            bisect: false,
        };
        let (seen, lost) = run(&h, kinesis(&["a", "poison", "c"]), policy).await;
        assert_eq!(seen.len(), 3);
        assert_eq!(lost.len(), 1);
        let info = &lost[0]["KinesisBatchInfo"];
        assert_eq!(info["shardId"], "shardId-000000000000");
        assert_eq!(
            info["startSequenceNumber"],
            crate::event::kinesis_sequence(0)
        );
        assert_eq!(info["endSequenceNumber"], crate::event::kinesis_sequence(2));
        assert_eq!(info["batchSize"], 3);
        assert_eq!(lost[0]["requestContext"]["approximateInvokeCount"], 3);
    }

    #[tokio::test]
    async fn bisecting_on_a_crash_isolates_the_poison_record() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(dir.path(), |b| {
            assert!(!holds(b, "poison"), "poison");
            Ok(())
        });
        let policy = Redelivery {
            max_retries: 0,
            bisect: true,
        };
        let (seen, lost) = run(&h, kinesis(&["a", "b", "poison", "d"]), policy).await;
        // [a b poison d] crashes → [a b] ok, [poison d] crashes → [poison] crashes, given up; [d] ok.
        let outcome: Vec<(bool, u64)> = seen
            .iter()
            .map(|s| (s.error.is_some(), s.records_out))
            .collect();
        assert_eq!(
            outcome,
            vec![(true, 0), (false, 2), (true, 0), (true, 0), (false, 1)]
        );
        assert_eq!(lost.len(), 1);
        let info = &lost[0]["KinesisBatchInfo"];
        assert_eq!(
            info["startSequenceNumber"],
            crate::event::kinesis_sequence(2)
        );
        assert_eq!(info["batchSize"], 1);
    }

    /// Issue 28: an asynchronous invocation given up is recorded as Lambda records it, with the
    /// function's error and its class (`errorType`), so the on-failure destination says whether
    /// replaying it later can help.
    #[tokio::test]
    async fn an_asynchronous_event_given_up_carries_its_error_and_class() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("in")).unwrap();
        std::fs::write(dir.path().join("in/k.json.gz"), b"\x1f\x8b\x08\x00junk").unwrap();
        let h = handler(dir.path(), |_| Ok(()));
        let event =
            crate::event::s3_event(vec![crate::event::s3_record("in", "k.json.gz", 9, "e")]);
        let policy = Redelivery {
            max_retries: 2,
            bisect: false,
        };
        let (seen, lost) = run(&h, NamedEvent::given("e.json", Ok(event)), policy).await;
        assert_eq!(seen.len(), 3);
        assert!(
            seen.iter()
                .all(|s| s.error_class == Some(crate::ErrorClass::BadInput)),
            "{seen:?}"
        );
        assert!(describe(&seen[0]).ends_with(retry_hint(crate::ErrorClass::BadInput)));
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0]["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(lost[0]["responsePayload"]["errorType"], "Sluice.BadInput");
        let message = lost[0]["responsePayload"]["errorMessage"].as_str().unwrap();
        assert!(message.contains("corrupt or truncated"), "{message}");
    }

    #[tokio::test]
    async fn sqs_messages_that_keep_failing_go_to_the_dead_letter_queue_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(dir.path(), poisoned);
        let bodies: Vec<String> = ["a", "poison"]
            .iter()
            .map(|v| format!("{{\"p\":\"{v}\"}}"))
            .collect();
        let ev = crate::event::sqs_records_event("q", &bodies);
        let policy = Redelivery {
            max_retries: 1,
            bisect: false,
        };
        let named = NamedEvent::given("q.json", Ok(ev.clone()));
        let (seen, lost) = run(&h, named, policy).await;
        // The batch fails whole (an SQS batch is written as one), so every message is retried
        // once, then both go to the dead-letter queue unchanged.
        assert_eq!(seen.len(), 2);
        assert_eq!(lost, ev["Records"].as_array().unwrap().clone());
    }

    fn window_plan(dir: &Path) -> Handler {
        let plan = crate::config::Plan::from_str(
            Path::new("t.toml"),
            "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = { page = \"string\", user = \"string\", ms = \"int64\" }\n\
             [[stage]]\ntype = \"filter\"\nwhere = \"ms >= 0\"\n\
             [[stage]]\ntype = \"aggregate\"\ngroup_by = [\"page\"]\n\
             measures = { hits = \"count(*)\", total = \"sum(ms)\", avg_ms = \"avg(ms)\", users = \"count_distinct(user)\", approx = \"approx_count_distinct(user)\", first_user = \"first(user)\", last_user = \"last(user)\", top = \"max(ms)\", last_shard = \"last(_shard)\" }\n\
             [output]\nuri = \"s3://o/w/\"\nformat = \"ndjson\"\n",
        )
        .unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir));
        Handler::new(plan, store.clone(), store)
    }

    fn clicks(n: usize) -> Vec<(String, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let line = format!(
                    "{{\"page\":\"/p{}\",\"user\":\"u{}\",\"ms\":{}}}",
                    i % 3,
                    (i * 7) % 11,
                    if i % 10 == 9 {
                        -1
                    } else {
                        (i * 37 % 100) as i64
                    }
                );
                (format!("k{}", i % 4), line.into_bytes())
            })
            .collect()
    }

    #[tokio::test]
    async fn a_tumbling_window_over_several_invocations_equals_one_invocation() {
        let dir = tempfile::tempdir().unwrap();
        let h = window_plan(dir.path());
        let payloads = clicks(25);
        // All at once, as one ordinary batch.
        let (whole, _) = h
            .handle(&crate::event::kinesis_event("s", &payloads))
            .await
            .into_parts();
        assert_eq!(whole.error, None);
        let want = std::fs::read_to_string(&whole.outputs[0]).unwrap();
        assert_eq!(want.lines().count(), 3);

        for per_invoke in [1, 4, 10, 25] {
            let events: Vec<NamedEvent> =
                crate::event::kinesis_window_events("s", &payloads, 300, per_invoke)
                    .into_iter()
                    .map(|e| NamedEvent::given("w.jsonl", Ok(e)))
                    .collect();
            let n = events.len();
            let seen = replay(&h, events).await;
            assert_eq!(seen.len(), n);
            for s in &seen[..n - 1] {
                // Until the window's last invocation: state carried, nothing written.
                assert_eq!(s.error, None);
                assert!(s.outputs.is_empty(), "{:?}", s.outputs);
                assert!(
                    s.state
                        .as_ref()
                        .is_some_and(|st| st.contains_key("sluice:stage:1"))
                );
                assert_eq!(
                    s.lambda_response(true)["batchItemFailures"],
                    serde_json::json!([])
                );
            }
            let last = &seen[n - 1];
            assert_eq!(last.error, None);
            assert_eq!(last.state, Some(serde_json::Map::new()));
            assert!(
                last.outputs[0].ends_with("/w/shardId-000000000000-window-20251122T120000Z.ndjson"),
                "{:?}",
                last.outputs
            );
            let got = std::fs::read_to_string(&last.outputs[0]).unwrap();
            assert_eq!(got, want, "{per_invoke} records per invocation");
        }
    }

    #[tokio::test]
    async fn a_failed_window_invocation_keeps_the_state_it_came_with() {
        let dir = tempfile::tempdir().unwrap();
        let h = window_plan(dir.path());
        let events = crate::event::kinesis_window_events("s", &clicks(6), 60, 3);
        let (first, _) = h.handle(&events[0]).await.into_parts();
        let state = first.state.clone().unwrap();
        let mut last = events[1].clone();
        last["state"] = serde_json::Value::Object(state.clone());
        // The output folder cannot be created: the window's result cannot be written.
        std::fs::create_dir_all(dir.path().join("o")).unwrap();
        std::fs::write(dir.path().join("o/w"), b"in the way").unwrap();
        let (s, per_item) = h.handle(&last).await.into_parts();
        assert!(per_item);
        assert!(s.error.is_some());
        assert_eq!(s.state, Some(state.clone()));
        assert_eq!(
            s.batch_item_failures,
            vec![crate::event::kinesis_sequence(3)]
        );
        let r = s.lambda_response(true);
        assert_eq!(r["state"], serde_json::Value::Object(state.clone()));
        assert_eq!(
            r["batchItemFailures"][0]["itemIdentifier"],
            crate::event::kinesis_sequence(3)
        );
        // A last invocation with no records that fails can name no record: it is an invocation
        // error, so Lambda retries it.
        let mut empty = last.clone();
        empty["Records"] = serde_json::json!([]);
        let (s, per_item) = h.handle(&empty).await.into_parts();
        assert!(!per_item);
        assert!(s.error.is_some());
        // Unblocked, the empty last invocation writes the window from the state alone.
        std::fs::remove_file(dir.path().join("o/w")).unwrap();
        let (s, _) = h.handle(&empty).await.into_parts();
        assert_eq!(s.error, None);
        let got = std::fs::read_to_string(&s.outputs[0]).unwrap();
        assert_eq!(
            got.lines().filter(|l| l.contains("\"hits\":")).count(),
            3,
            "{got}"
        );
        // A state that is not ours is a clear error.
        let mut bad = last.clone();
        bad["state"] = serde_json::json!({ "sluice:stage:1": "bm90IHpzdGQ=" });
        let (s, _) = h.handle(&bad).await.into_parts();
        assert!(
            s.error
                .as_deref()
                .is_some_and(|e| e.contains("window state from Lambda cannot be read")),
            "{:?}",
            s.error
        );
    }

    #[tokio::test]
    async fn a_window_state_too_big_to_carry_is_written_as_a_part() {
        let dir = tempfile::tempdir().unwrap();
        let h = window_plan(dir.path());
        // 60 000 distinct users: their exact distinct count cannot fit in Lambda's 1 MB state.
        let payloads: Vec<(String, Vec<u8>)> = (0..300u64)
            .map(|r| {
                let lines: Vec<String> = (0..200u64)
                    .map(|j| {
                        let x = r * 200 + j;
                        let a = x.wrapping_mul(0x9e37_79b9_7f4a_7c15);
                        let b = (a ^ (a >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                        format!("{{\"page\":\"/p\",\"user\":\"{a:016x}{b:016x}\",\"ms\":1}}")
                    })
                    .collect();
                ("k".to_string(), lines.join("\n").into_bytes())
            })
            .chain(std::iter::once((
                "k".to_string(),
                b"{\"page\":\"/p\",\"user\":\"late\",\"ms\":5}".to_vec(),
            )))
            .collect();
        let events = crate::event::kinesis_window_events("s", &payloads, 60, 300);
        assert_eq!(events.len(), 2);
        let seen = replay(
            &h,
            events
                .into_iter()
                .map(|e| NamedEvent::given("w", Ok(e)))
                .collect(),
        )
        .await;
        // The first invocation writes its part (named after its records) and carries nothing.
        assert_eq!(seen[0].error, None);
        assert_eq!(seen[0].state, Some(serde_json::Map::new()));
        let part = std::fs::read_to_string(&seen[0].outputs[0]).unwrap();
        assert!(
            seen[0].outputs[0].ends_with(&format!(
                "shardId-000000000000-{}.ndjson",
                crate::event::kinesis_sequence(0)
            )),
            "{:?}",
            seen[0].outputs
        );
        assert!(part.contains("\"hits\":60000,"), "{part}");
        assert!(part.contains("\"users\":60000,"), "{part}");
        // The window's file holds the rest.
        let rest = std::fs::read_to_string(&seen[1].outputs[0]).unwrap();
        assert!(rest.contains("\"hits\":1,"), "{rest}");
        assert!(
            seen[1].outputs[0].contains("-window-"),
            "{:?}",
            seen[1].outputs
        );
    }
}
