//! Event JSON → a typed [`Invocation`]: its [`Source`] (what delivered it, and so how it is
//! answered) and its [`Work`] (which objects and records to process, what was skipped and why).
//!
//! One parser handles every shape S3 notifications arrive in: direct S3 notifications, inside SQS
//! message bodies, inside SNS notifications, SNS inside SQS, and EventBridge `Object Created` events.
//! AWS payloads are read leniently (unknown fields ignored); nothing in an event can make this panic.
//!
//! - `ObjectCreated:*` records become [`ObjectRef`]s, with keys form-decoded (`+` is a space, `%2B`
//!   a plus, `%XX` UTF-8 bytes). EventBridge keys are taken as they are.
//! - Removals, restores, lifecycle, replication and intelligent-tiering notifications, EventBridge
//!   events other than `Object Created`, and the `s3:TestEvent` are [`Item::Skipped`] with a reason.
//! - An SQS message whose body is shaped like a notification (`Records`, an SNS envelope, an
//!   EventBridge `aws.s3` event) but cannot be read as one is [`Item::Failed`]: it is reported as a
//!   batch item failure so the queue redrives it to its dead-letter queue instead of deleting it.
//!   Any other SQS body, and every Kinesis record, is an [`Item::Record`] for `[input] format`.
//!
//! [`fast`] reads a plain Kinesis batch from the invocation's bytes without a JSON tree (the
//! general path here is the reference it is checked against), [`kpl`] splits KPL aggregates, and
//! [`stream`] adds the stream columns (shard, sequence number, partition key, arrival) to rows.

pub mod dynamodb;
pub mod fast;
pub mod kpl;
pub mod stream;

use std::sync::Arc;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3EventRecord;
use aws_lambda_events::event::s3::batch_job::S3BatchJobEvent;
use aws_lambda_events::event::sns::{SnsMessage, SnsRecord};
use aws_lambda_events::event::sqs::SqsMessage;
use serde::Deserialize;
use serde_json::Value;

/// An object to process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Bucket name.
    pub bucket: String,
    /// Decoded object key.
    pub key: String,
    /// Size from the notification, if given.
    pub size: Option<u64>,
    /// ETag from the notification, if given.
    pub etag: Option<String>,
    /// Version id, if the bucket is versioned.
    pub version_id: Option<String>,
    /// The SQS message that carried it, for batch item failures.
    pub message_id: Option<String>,
    /// When S3 says the upload happened (`eventTime`, or EventBridge's `time`), as written.
    pub event_time: Option<String>,
}

impl ObjectRef {
    /// `s3://bucket/key`.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// The content its notification named: its version, else its ETag.
    pub fn at(&self) -> crate::store::At {
        crate::store::At {
            version_id: self.version_id.clone().filter(|v| !v.is_empty()),
            etag: self.etag.clone().filter(|e| !e.is_empty()),
            own: false,
        }
    }
}

/// A record of a Kinesis batch, or an SQS message whose body is a record (not a notification).
///
/// Its sequence number (or message id), shard and partition key are cut from a buffer the whole
/// batch shares: a 10 000-record event's are one allocation, not 30 000, and one reference count
/// per record, not three (which cost more than reading them).
#[derive(Clone)]
pub struct StreamRecord {
    ids: Arc<String>,
    cuts: [(u32, u32); 3],
    /// Approximate arrival, seconds since the epoch.
    pub arrival: Option<f64>,
    /// The payload (base64 already decoded), or why it could not be read.
    pub data: Result<bytes::Bytes, String>,
    /// What the fast reader saw of `data` as it decoded it, for those very bytes.
    seen: Option<Seen>,
}

/// What the fast Kinesis reader saw of a record's payload while it was in cache: the records
/// loop can then hand it to the decoder without touching it first. Its first and last bytes
/// (aggregated? gzip? a line break at the end?) are otherwise each a cache miss per record — the
/// payloads were decoded megabytes earlier — while the decoder streams through them after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The payload it was taken of (`data` is public, and may be replaced).
    at: (usize, usize),
    /// Neither a KPL aggregate nor gzip: the payload is its own text.
    pub(crate) plain: bool,
    /// It ends with a line break (else the batch's `lines` has one right after it).
    pub(crate) ends_line: bool,
}

impl StreamRecord {
    /// A record with its own id, shard and partition key.
    pub fn new(
        id: &str,
        shard: &str,
        partition_key: &str,
        arrival: Option<f64>,
        data: Result<bytes::Bytes, String>,
    ) -> Self {
        let mut ids = KinesisIds::default();
        let place = [id, shard, partition_key].map(|t| ids.push(t));
        StreamRecord::cut(&ids.finish(), place, arrival, data)
    }

    /// A record whose ids are at `place` in `all` (a range that is not on character boundaries
    /// inside `all`, or past 4 GiB, is empty text).
    pub(crate) fn cut(
        all: &Arc<String>,
        place: IdRanges,
        arrival: Option<f64>,
        data: Result<bytes::Bytes, String>,
    ) -> Self {
        // Boundaries are checked where the text is read.
        let cuts = place.map(|r| match (u32::try_from(r.start), u32::try_from(r.end)) {
            (Ok(s), Ok(e)) => (s, e),
            _ => (0, 0),
        });
        StreamRecord {
            ids: all.clone(),
            cuts,
            arrival,
            data,
            seen: None,
        }
    }

    /// Note what the payload is, as seen by whoever decoded it (`plain`: neither a KPL aggregate
    /// nor gzip; `ends_line`: it ends with a line break).
    pub(crate) fn saw(&mut self, plain: bool, ends_line: bool) {
        self.seen = self.data.as_ref().ok().map(|d| Seen {
            at: (d.as_ptr() as usize, d.len()),
            plain,
            ends_line,
        });
    }

    /// What [`StreamRecord::saw`] noted, if the payload is still the one it was noted of.
    pub(crate) fn seen(&self) -> Option<Seen> {
        let d = self.data.as_ref().ok()?;
        self.seen.filter(|s| s.at == (d.as_ptr() as usize, d.len()))
    }

    fn text(&self, which: usize) -> &str {
        let (s, e) = self.cuts[which];
        self.ids.get(s as usize..e as usize).unwrap_or_default()
    }

    /// What a batch item failure names: the sequence number (Kinesis) or message id (SQS).
    pub fn id(&self) -> &str {
        self.text(0)
    }

    /// The Kinesis shard (`shardId-…` from the record's `eventID`); empty for SQS.
    pub fn shard(&self) -> &str {
        self.text(1)
    }

    /// The partition key (Kinesis) or message group id (SQS FIFO), else empty.
    pub fn partition_key(&self) -> &str {
        self.text(2)
    }
}

impl PartialEq for StreamRecord {
    fn eq(&self, other: &Self) -> bool {
        (self.id(), self.shard(), self.partition_key())
            == (other.id(), other.shard(), other.partition_key())
            && self.arrival == other.arrival
            && self.data == other.data
    }
}

impl std::fmt::Debug for StreamRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamRecord")
            .field("id", &self.id())
            .field("shard", &self.shard())
            .field("partition_key", &self.partition_key())
            .field("arrival", &self.arrival)
            .field("data", &self.data)
            .finish()
    }
}

/// One thing found in an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Process this object (boxed: an item is a stream record far more often, and a record is
    /// half the size of an object).
    Object(Box<ObjectRef>),
    /// Process this stream record.
    Record(StreamRecord),
    /// Ignored by rule; not an error.
    Skipped {
        /// What was skipped (`s3://bucket/key`, or the record kind).
        source: String,
        /// Why.
        reason: String,
        /// The object a notification that is not an upload names (a deletion, a restore …),
        /// for the catalog.
        object: Option<Box<ObjectRef>>,
    },
    /// A message that cannot be processed; reported as a batch item failure.
    Failed {
        /// The SQS message id.
        message_id: String,
        /// Why.
        reason: String,
    },
}

/// One event, typed: what delivered it and the work it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// What delivered the event (S3, SQS, SNS, EventBridge, Kinesis), and so how it is answered.
    pub source: Source,
    /// The objects and records to process, and what was skipped.
    pub work: Work,
    /// Set when the event is not one Sluice understands at all (`source` is then
    /// [`Kind::Unknown`]).
    pub error: Option<String>,
}

/// The work an event holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Work {
    /// Found items in event order.
    pub items: Vec<Item>,
    /// Set for a Kinesis batch of a tumbling window (`TumblingWindowInSeconds`).
    pub window: Option<TumblingWindow>,
    /// Set for an S3 Batch Operations invocation: what its answer must name.
    pub batch: Option<BatchJob>,
    /// Set for a Firehose data-transformation batch: what its answer and its error output name.
    pub firehose: Option<FirehoseJob>,
    /// Set for a batch from an SQS FIFO queue: each message's id and message group, in the
    /// batch's order (what fails keeps the order: see `[input] fifo`).
    pub fifo: Option<Vec<(String, String)>>,
    /// The buffer the records' data were decoded into, when one holds them all: each record's
    /// data is a slice of it followed by a line break, so a run of records in a line format is
    /// one slice of it, decoded in place.
    pub lines: Option<bytes::Bytes>,
}

/// What delivered an event: the shape of what it carries, and the envelopes (an SQS message, an
/// SNS notification) it came in. Printed as `s3`, `sqs`, `sns`, `sqs+sns`, `eventbridge`,
/// `sqs+eventbridge`, `kinesis` or `unknown` (an S3 notification in an envelope is named by the
/// envelope alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Source {
    /// What the event carries.
    pub kind: Kind,
    /// Delivered in SQS messages.
    pub sqs: bool,
    /// Delivered in an SNS notification.
    pub sns: bool,
}

/// What an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// S3 event notifications (or the `s3:TestEvent`).
    S3,
    /// EventBridge events from `aws.s3`.
    EventBridge,
    /// A Kinesis batch.
    Kinesis,
    /// SQS messages whose bodies are the records.
    Messages,
    /// An S3 Batch Operations job's tasks (each an object, each answered with a result code).
    BatchOps,
    /// A CloudWatch Logs subscription delivered to the function directly (`awslogs.data`).
    CloudWatchLogs,
    /// A DynamoDB Streams batch (each record an item's change, in order).
    DynamoDb,
    /// A Firehose data-transformation batch (each record answered with its transformed rows).
    Firehose,
    /// Nothing Sluice understands.
    #[default]
    Unknown,
}

impl Source {
    /// A source of this kind, with no envelope.
    pub const fn of(kind: Kind) -> Source {
        Source {
            kind,
            sqs: matches!(kind, Kind::Messages),
            sns: false,
        }
    }

    /// Whether failures are reported per item (`batchItemFailures`: SQS message ids, Kinesis
    /// sequence numbers) instead of failing the invocation.
    pub fn per_item(self) -> bool {
        self.sqs || self.ordered() || self.kind == Kind::BatchOps
    }

    /// Whether the event is a shard's batch (Kinesis, DynamoDB Streams): it resumes at its first
    /// failed record, and nothing after it is processed.
    pub fn ordered(self) -> bool {
        self.kinesis() || self == Source::of(Kind::DynamoDb)
    }

    /// Whether the event is a Kinesis batch (a shard resumes at its first failed record).
    pub fn kinesis(self) -> bool {
        self == Source::of(Kind::Kinesis)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<&str> = Vec::with_capacity(3);
        if self.sqs {
            parts.push("sqs");
        }
        if self.sns {
            parts.push("sns");
        }
        match self.kind {
            // An S3 notification in an envelope is named by the envelope.
            Kind::S3 if parts.is_empty() => parts.push("s3"),
            Kind::S3 | Kind::Messages => {}
            Kind::EventBridge => parts.push("eventbridge"),
            Kind::Kinesis => parts.push("kinesis"),
            Kind::BatchOps => parts.push("batch-ops"),
            Kind::CloudWatchLogs => parts.push("cwlogs"),
            Kind::DynamoDb => parts.push("dynamodb"),
            Kind::Firehose => parts.push("firehose"),
            Kind::Unknown => parts = vec!["unknown"],
        }
        if parts.is_empty() {
            parts.push("sqs");
        }
        f.write_str(&parts.join("+"))
    }
}

impl serde::Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The tumbling-window part of a Kinesis event: Lambda passes the state the previous invocation
/// of the window returned, and marks the window's last invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct TumblingWindow {
    /// Window start and end, as Lambda gives them (`2026-11-22T12:00:00Z`).
    pub start: String,
    /// Window end.
    pub end: String,
    /// The shard (`shardId` of the event).
    pub shard: String,
    /// The state returned by the window's previous invocation (empty at its start).
    pub state: serde_json::Map<String, Value>,
    /// The window's last invocation: emit its result.
    pub is_final: bool,
}

fn tumbling_window(event: &Value) -> Option<TumblingWindow> {
    let w = event.get("window")?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    Some(TumblingWindow {
        start: text(w.get("start")),
        end: text(w.get("end")),
        shard: text(event.get("shardId")),
        state: event
            .get("state")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
        is_final: event
            .get("isFinalInvokeForWindow")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// An S3 Batch Operations invocation (schema 1.0 or 2.0): its answer repeats the schema and the
/// invocation id, and gives every task a result, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchJob {
    /// `invocationSchemaVersion`.
    pub schema: String,
    /// `invocationId`.
    pub invocation_id: String,
    /// Each task's id and the object it names (`s3://bucket/key`, as far as it could be read).
    pub tasks: Vec<(String, String)>,
}

/// An S3 Batch Operations event, read into `aws_lambda_events`' [`S3BatchJobEvent`]: each task
/// an object to process, its task id standing where an SQS message id does (what fails is named
/// by it). Schema 2.0 names the bucket (`s3Bucket`, which the crate's task type lacks: read from
/// the task's JSON), 1.0 its ARN; keys are URL-encoded as in a manifest.
fn batch_ops(event: &Value, items: &mut Vec<Item>) -> Result<BatchJob, String> {
    let ev = S3BatchJobEvent::deserialize(event)
        .map_err(|e| format!("not an S3 Batch Operations event as AWS sends it: {e}"))?;
    let raw = event.get("tasks").and_then(Value::as_array);
    let mut job = BatchJob {
        schema: ev.invocation_schema_version.unwrap_or_else(|| "1.0".into()),
        invocation_id: ev.invocation_id.unwrap_or_default(),
        tasks: Vec::with_capacity(ev.tasks.len()),
    };
    for (i, task) in ev.tasks.into_iter().enumerate() {
        let id = task.task_id.unwrap_or_default();
        let bucket = task
            .s3_bucket_arn
            .as_deref()
            .and_then(|arn| arn.split_once(":::").map(|(_, b)| b.to_string()))
            .or_else(|| {
                raw.and_then(|r| r.get(i))
                    .and_then(|t| t.get("s3Bucket"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_default();
        let raw_key = task.s3_key.unwrap_or_default();
        let key = decode_key(&raw_key);
        let source = format!("s3://{bucket}/{}", key.as_deref().unwrap_or(&raw_key));
        job.tasks.push((id.clone(), source.clone()));
        let item = match key {
            Err(reason) => Item::Failed {
                message_id: id,
                reason: format!("{source}: {reason}"),
            },
            Ok(key) if bucket.is_empty() || key.is_empty() => Item::Failed {
                message_id: id,
                reason: format!("{source}: the task names no bucket or key"),
            },
            Ok(key) => Item::Object(Box::new(ObjectRef {
                bucket,
                key,
                size: None,
                etag: None,
                version_id: task.s3_version_id.filter(|v| !v.is_empty()),
                message_id: Some(id),
                event_time: None,
            })),
        };
        items.push(item);
    }
    Ok(job)
}

/// A Firehose data-transformation invocation: its records are [`Item::Record`]s (their id the
/// `recordId`, every one answered once, in order), and this is what else the answer and
/// Firehose's error output name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FirehoseJob {
    /// `invocationId`.
    pub invocation_id: String,
    /// `deliveryStreamArn`.
    pub delivery_stream_arn: String,
    /// `sourceKinesisStreamArn`, when the delivery stream reads a Kinesis stream.
    pub source_stream_arn: Option<String>,
    /// Each record's arrival at Firehose (`approximateArrivalTimestamp`, milliseconds since the
    /// epoch), in order, for its error output.
    pub arrivals: Vec<i64>,
}

/// A Firehose data-transformation event, each record read into `aws_lambda_events`'
/// [`KinesisFirehoseEventRecord`] on its own: a record that is not shaped as Firehose sends them
/// (its data not base64, say) is that record's failure, not its neighbours'. The records' Kinesis
/// metadata, when the delivery stream reads a stream, gives the shard and partition key; the
/// record id stands where a sequence number does.
fn firehose(event: &Value, items: &mut Vec<Item>) -> Result<FirehoseJob, String> {
    use aws_lambda_events::event::firehose::{KinesisFirehoseEvent, KinesisFirehoseEventRecord};
    let records = event
        .get("records")
        .and_then(Value::as_array)
        .ok_or("a Firehose event without `records`")?;
    // The envelope typed alone (its fields but the records, not a copy of them: a batch is up
    // to 6 MB); the records one by one below.
    let mut envelope: serde_json::Map<String, Value> = event
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.as_str() != "records")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    envelope.insert("records".into(), Value::Array(Vec::new()));
    let ev = KinesisFirehoseEvent::deserialize(&Value::Object(envelope))
        .map_err(|e| format!("not a Firehose event as AWS sends it: {e}"))?;
    let mut job = FirehoseJob {
        invocation_id: ev.invocation_id.unwrap_or_default(),
        delivery_stream_arn: ev.delivery_stream_arn.unwrap_or_default(),
        source_stream_arn: ev.source_kinesis_stream_arn,
        arrivals: Vec::with_capacity(records.len()),
    };
    let mut ids = KinesisIds::default();
    let mut read = Vec::with_capacity(records.len());
    for r in records {
        // Every record must be answered by its id: one without is an event Firehose never sends.
        let id = r
            .get("recordId")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .ok_or("a Firehose record without a `recordId`: it could not be answered")?;
        let (shard, key, arrival, data) = match KinesisFirehoseEventRecord::deserialize(r) {
            Ok(rec) => {
                let meta = rec.kinesis_firehose_record_metadata.as_ref();
                let shard = meta.and_then(|m| m.shard_id.as_deref()).unwrap_or("");
                let key = meta.and_then(|m| m.partition_key.as_deref()).unwrap_or("");
                let arrival = rec.approximate_arrival_timestamp.0.timestamp_millis();
                (
                    ids.push(shard),
                    ids.push(key),
                    arrival,
                    Ok(bytes::Bytes::from(rec.data.0)),
                )
            }
            Err(e) => (
                ids.push(""),
                ids.push(""),
                r.get("approximateArrivalTimestamp")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
                Err(format!("not a Firehose record as AWS sends it: {e}")),
            ),
        };
        job.arrivals.push(arrival);
        read.push(([ids.push(id), shard, key], arrival, data));
    }
    let all = ids.finish();
    items.extend(read.into_iter().map(|(place, arrival, data)| {
        Item::Record(StreamRecord::cut(
            &all,
            place,
            Some(arrival as f64 / 1000.0),
            data,
        ))
    }));
    Ok(job)
}

/// A CloudWatch Logs subscription delivered to the function directly: `awslogs.data` is a base64
/// gzip document of log events, which becomes one stream record — inflated under `[limits]` and
/// read by the `cloudwatch-logs` format as a subscription's Kinesis record is (one row per log
/// event, CONTROL_MESSAGEs skipped). Named `awslogs-` and a hash of the payload, so a redelivery
/// writes the same outputs again.
///
/// Not read into `aws_lambda_events`' `LogsEvent`: its deserializer inflates the gzip whole,
/// with no bound, while parsing the event, so a payload of a few hundred kilobytes could take
/// gigabytes; here only the base64 is undone, and inflating is bounded as for every record.
fn cloudwatch_logs(logs: &Value) -> Result<Item, String> {
    use sha2::Digest;
    let data = logs
        .get("data")
        .and_then(Value::as_str)
        .ok_or("a CloudWatch Logs subscription event without `awslogs.data`")?;
    // CloudWatch Logs pads its base64; a payload written without padding reads the same.
    let gz = base64_simd::STANDARD_NO_PAD
        .decode_to_vec(data.trim_end_matches('=').as_bytes())
        .map_err(|_| "`awslogs.data` is not base64".to_string())?;
    let hash = sha2::Sha256::digest(data.as_bytes());
    let id: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    Ok(Item::Record(StreamRecord::new(
        &format!("awslogs-{id}"),
        "",
        "",
        None,
        Ok(bytes::Bytes::from(gz)),
    )))
}

/// An SQS batch's messages in order, with their message groups, as [`message`] reads them; a
/// FIFO queue's (its ARN ends in `.fifo`, or the messages carry a `MessageGroupId`) when `fifo`.
#[derive(Default)]
struct Order {
    messages: Vec<(String, String)>,
    fifo: bool,
}

impl Order {
    fn add(&mut self, msg: &SqsMessage) {
        let group = msg.attributes.get("MessageGroupId");
        self.fifo |= group.is_some()
            || msg
                .event_source_arn
                .as_deref()
                .is_some_and(|a| a.ends_with(".fifo"));
        self.messages.push((
            msg.message_id.clone().unwrap_or_default(),
            group.cloned().unwrap_or_default(),
        ));
    }
}

/// Decode an S3 notification key: `+` is a space, `%XX` are UTF-8 bytes.
pub fn decode_key(key: &str) -> Result<String, String> {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("key `{key}` does not decode to UTF-8"))
}

/// Parse an event.
pub fn parse(event: &Value) -> Invocation {
    let mut work = Work {
        window: tumbling_window(event),
        ..Work::default()
    };
    if work.window.is_some()
        && event
            .get("Records")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
    {
        // A window's last invocation may come with no records, only the state.
        return Invocation {
            source: Source::of(Kind::Kinesis),
            work,
            error: None,
        };
    }
    if let Some(logs) = event.get("awslogs") {
        let source = Source::of(Kind::CloudWatchLogs);
        return match cloudwatch_logs(logs) {
            Ok(record) => {
                work.items.push(record);
                Invocation {
                    source,
                    work,
                    error: None,
                }
            }
            Err(e) => Invocation {
                source,
                work,
                error: Some(e),
            },
        };
    }
    if is_firehose(event) {
        return match firehose(event, &mut work.items) {
            Ok(job) => {
                work.firehose = Some(job);
                Invocation {
                    source: Source::of(Kind::Firehose),
                    work,
                    error: None,
                }
            }
            Err(e) => Invocation {
                source: Source::of(Kind::Firehose),
                work: Work::default(),
                error: Some(e),
            },
        };
    }
    if event.get("invocationSchemaVersion").is_some() && event.get("tasks").is_some() {
        let source = Source::of(Kind::BatchOps);
        return match batch_ops(event, &mut work.items) {
            Ok(job) => {
                work.batch = Some(job);
                Invocation {
                    source,
                    work,
                    error: None,
                }
            }
            Err(e) => Invocation {
                source: Source::of(Kind::Unknown),
                work,
                error: Some(e),
            },
        };
    }
    let mut order = Order::default();
    let (source, error) = match message(event, None, &mut work.items, &mut order, 0) {
        Ok(source) => (source, None),
        Err(e) => (Source::of(Kind::Unknown), Some(e)),
    };
    if order.fifo {
        work.fifo = Some(order.messages);
    }
    Invocation {
        source,
        work,
        error,
    }
}

const MAX_NESTING: usize = 4;

/// Parse one message; returns what it is.
fn message(
    v: &Value,
    message_id: Option<&str>,
    items: &mut Vec<Item>,
    order: &mut Order,
    depth: usize,
) -> Result<Source, String> {
    if depth > MAX_NESTING {
        return Err("notifications nested too deeply".into());
    }
    if let Some(records) = v.get("Records").and_then(Value::as_array) {
        let mut shape: Option<Source> = None;
        for r in records {
            let source = r
                .get("eventSource")
                .or_else(|| r.get("EventSource"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let this = match source {
                "aws:s3" => {
                    items.push(s3_record(r, message_id));
                    Source::of(Kind::S3)
                }
                "aws:kinesis" => {
                    items.extend(kinesis_items(vec![kinesis_record(r)]));
                    Source::of(Kind::Kinesis)
                }
                // Lambda's own DynamoDB Streams batch (never inside another delivery).
                "aws:dynamodb" if depth == 0 => {
                    items.push(dynamodb::record(r));
                    Source::of(Kind::DynamoDb)
                }
                "aws:sqs" => {
                    let msg = match SqsMessage::deserialize(r) {
                        Ok(msg) => msg,
                        Err(e) => {
                            // Not shaped as SQS delivers messages: a reject with serde's reason,
                            // under the id it gives, if any.
                            let id = r.get("messageId").and_then(Value::as_str).unwrap_or("");
                            items.push(Item::Record(StreamRecord::new(
                                id,
                                "",
                                "",
                                None,
                                Err(format!("not an SQS message as AWS sends it: {e}")),
                            )));
                            shape.get_or_insert(Source::of(Kind::Messages));
                            continue;
                        }
                    };
                    if depth == 0 {
                        order.add(&msg);
                    }
                    let id = msg.message_id.clone().unwrap_or_default();
                    // SQS never delivers a message without a body; one that has none (or an
                    // empty one) is a reject with its reason, never a record that vanishes.
                    let (body, data) = match msg.body.as_deref() {
                        Some(b) if !b.is_empty() => {
                            (b, Ok(bytes::Bytes::copy_from_slice(b.as_bytes())))
                        }
                        Some(_) => ("", Err("the message body is empty".into())),
                        None => ("", Err("the message has no `body` string".into())),
                    };
                    let notification = serde_json::from_str::<Value>(body)
                        .ok()
                        .filter(is_notification);
                    let Some(b) = notification else {
                        // Not an S3 notification in any envelope: the body is a record.
                        let attribute = |k: &str| msg.attributes.get(k).map(String::as_str);
                        items.push(Item::Record(StreamRecord::new(
                            &id,
                            "",
                            attribute("MessageGroupId").unwrap_or(""),
                            attribute("SentTimestamp")
                                .and_then(|t| t.parse::<f64>().ok())
                                .map(|ms| ms / 1000.0),
                            data,
                        )));
                        shape.get_or_insert(Source::of(Kind::Messages));
                        continue;
                    };
                    let mut inner_items = Vec::new();
                    match message(&b, Some(&id), &mut inner_items, order, depth + 1) {
                        Ok(inner) => {
                            items.extend(inner_items);
                            Source { sqs: true, ..inner }
                        }
                        Err(reason) => {
                            items.push(Item::Failed {
                                message_id: id,
                                reason,
                            });
                            Source {
                                sqs: true,
                                ..Source::of(Kind::S3)
                            }
                        }
                    }
                }
                "aws:sns" => {
                    let rec = SnsRecord::deserialize(r)
                        .map_err(|e| format!("not an SNS record as AWS sends it: {e}"))?;
                    match serde_json::from_str::<Value>(&rec.sns.message) {
                        Ok(m) => Source {
                            sns: true,
                            ..message(&m, message_id, items, order, depth + 1)?
                        },
                        Err(e) => return Err(format!("SNS message is not JSON: {e}")),
                    }
                }
                other => {
                    return Err(format!(
                        "a record with eventSource `{other}` is not an S3 notification (nor SQS or SNS carrying one)"
                    ));
                }
            };
            // Name the event by its first record's shape; mixed batches keep the first.
            shape.get_or_insert(this);
        }
        return Ok(shape.unwrap_or(Source::of(Kind::S3)));
    }
    if v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        let bucket = v.get("Bucket").and_then(Value::as_str).unwrap_or("?");
        items.push(Item::Skipped {
            source: format!("s3://{bucket}"),
            reason: "s3:TestEvent (sent when a notification is configured)".into(),
            object: None,
        });
        return Ok(Source::of(Kind::S3));
    }
    if v.get("Type").and_then(Value::as_str) == Some("Notification") {
        // An SNS envelope delivered through SQS without raw message delivery.
        let envelope = SnsMessage::deserialize(v)
            .map_err(|e| format!("not an SNS notification as AWS sends it: {e}"))?;
        let m = serde_json::from_str::<Value>(&envelope.message)
            .map_err(|e| format!("SNS message is not JSON: {e}"))?;
        let inner = message(&m, message_id, items, order, depth + 1)?;
        return Ok(Source { sns: true, ..inner });
    }
    if v.get("source").and_then(Value::as_str) == Some("aws.s3") && v.get("detail-type").is_some() {
        items.push(eventbridge(v, message_id));
        return Ok(Source::of(Kind::EventBridge));
    }
    Err("not an S3 notification: expected `Records`, an EventBridge event from aws.s3, or s3:TestEvent".into())
}

/// Whether an event is Firehose's data-transformation batch: `records` (lower case, which no
/// other event Lambda receives names so) with a delivery stream or an invocation id.
pub fn is_firehose(event: &Value) -> bool {
    event.get("records").is_some_and(Value::is_array)
        && (event.get("deliveryStreamArn").is_some() || event.get("invocationId").is_some())
}

/// Whether a message body is an S3 notification in one of the shapes [`parse`] reads (so an SQS
/// body that is not one is a record for the pipeline's `[input] format`).
fn is_notification(v: &Value) -> bool {
    v.get("Records").is_some_and(Value::is_array)
        || v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent")
        || v.get("Type").and_then(Value::as_str) == Some("Notification")
        || (v.get("source").and_then(Value::as_str) == Some("aws.s3")
            && v.get("detail-type").is_some())
}

fn kinesis_record(r: &Value) -> KinesisFields<'_> {
    let k = r.get("kinesis").unwrap_or(&Value::Null);
    fn text(v: Option<&Value>) -> &str {
        v.and_then(Value::as_str).unwrap_or("")
    }
    KinesisFields {
        sequence: text(k.get("sequenceNumber")),
        event_id: text(r.get("eventID")),
        partition_key: text(k.get("partitionKey")),
        arrival: k.get("approximateArrivalTimestamp").and_then(Value::as_f64),
        data: decode_data(k.get("data").and_then(Value::as_str).map(str::as_bytes)),
    }
}

/// A Kinesis record's `data`: its base64 decoded (SIMD: a 10 000-record batch holds ~7 MB of it;
/// decoding checks the alphabet and padding).
pub(crate) fn decode_data(b64: Option<&[u8]>) -> Result<bytes::Bytes, String> {
    match b64 {
        None => Err("the Kinesis record has no `data`".to_string()),
        Some(b64) => base64_simd::STANDARD
            .decode_to_vec(b64)
            .map(bytes::Bytes::from)
            .map_err(|_| BAD_BASE64.to_string()),
    }
}

pub(crate) const BAD_BASE64: &str = "the Kinesis record's data is not base64";

/// What a Kinesis record is made of, however the event was read.
pub(crate) struct KinesisFields<'a> {
    pub sequence: &'a str,
    pub event_id: &'a str,
    pub partition_key: &'a str,
    pub arrival: Option<f64>,
    pub data: Result<bytes::Bytes, String>,
}

/// Kinesis records from their fields, their ids, shards and keys all in one buffer.
pub(crate) fn kinesis_items(records: Vec<KinesisFields<'_>>) -> Vec<Item> {
    let mut ids = KinesisIds::default();
    let ranges: Vec<_> = records
        .iter()
        .map(|f| ids.add(f.sequence, f.event_id, f.partition_key))
        .collect();
    let all = ids.finish();
    records
        .into_iter()
        .zip(ranges)
        .map(|(f, r)| Item::Record(StreamRecord::cut(&all, r, f.arrival, f.data)))
        .collect()
}

/// Where a Kinesis record's sequence number, shard and partition key are in a [`KinesisIds`].
pub(crate) type IdRanges = [std::ops::Range<usize>; 3];

/// The sequence numbers, shards and partition keys of a batch's Kinesis records, gathered in one
/// buffer as the records are read: the records share it instead of three strings each.
#[derive(Default)]
pub(crate) struct KinesisIds {
    buf: String,
    /// The last shard's place in `buf` (a batch is usually one shard's).
    shard: std::ops::Range<usize>,
}

impl KinesisIds {
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        KinesisIds {
            buf: String::with_capacity(bytes),
            shard: 0..0,
        }
    }

    /// One record's: its shard is the part of `event_id` before the colon.
    pub(crate) fn add(&mut self, sequence: &str, event_id: &str, partition_key: &str) -> IdRanges {
        // eventID is `shardId-000000000006:49590338271490256608559692538361571095921575989136588898`.
        let same = self.buf.get(self.shard.clone()).is_some_and(|s| {
            event_id.starts_with(s) && event_id.as_bytes().get(s.len()) == Some(&b':')
        });
        if !same {
            let s = memchr::memchr(b':', event_id.as_bytes())
                .and_then(|i| event_id.get(..i))
                .unwrap_or("");
            self.shard = self.push(s);
        }
        [
            self.push(sequence),
            self.shard.clone(),
            self.push(partition_key),
        ]
    }

    /// `s` added as it is: where it lies.
    fn push(&mut self, s: &str) -> std::ops::Range<usize> {
        self.buf.push_str(s);
        self.buf.len() - s.len()..self.buf.len()
    }

    /// The buffer, shared (an `Arc<String>`, not an `Arc<str>`: that would copy it).
    pub(crate) fn finish(self) -> Arc<String> {
        Arc::new(self.buf)
    }
}

/// An S3 notification record, read into `aws_lambda_events`' [`S3EventRecord`]. One that is not
/// shaped as AWS sends them (a field missing or of the wrong type) is failed (in SQS: the message
/// comes back, then goes to the dead-letter queue) or skipped, with serde's reason.
fn s3_record(r: &Value, message_id: Option<&str>) -> Item {
    let rec = match S3EventRecord::deserialize(r) {
        Ok(rec) => rec,
        Err(e) => {
            let text = |p: &str| r.pointer(p).and_then(Value::as_str).unwrap_or("");
            let source = format!(
                "s3://{}/{}",
                text("/s3/bucket/name"),
                text("/s3/object/key")
            );
            return fail_or_skip(
                message_id,
                source,
                format!("not an S3 notification record as AWS sends it: {e}"),
            );
        }
    };
    let name = rec.event_name.as_deref().unwrap_or("");
    let bucket = rec.s3.bucket.name.as_deref().unwrap_or("");
    let raw_key = rec.s3.object.key.as_deref().unwrap_or("");
    let key = decode_key(raw_key);
    let source = format!("s3://{bucket}/{}", key.as_deref().unwrap_or(raw_key));
    let o = &rec.s3.object;
    let object = |key: String| ObjectRef {
        bucket: bucket.to_string(),
        key,
        size: o.size.and_then(|n| u64::try_from(n).ok()),
        etag: o.e_tag.clone(),
        version_id: o.version_id.clone(),
        message_id: message_id.map(str::to_string),
        event_time: Some(
            rec.event_time
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
    };
    if !name.starts_with("ObjectCreated:") {
        return Item::Skipped {
            source,
            reason: format!(
                "{} is not an upload",
                if name.is_empty() {
                    "an unnamed event"
                } else {
                    name
                }
            ),
            object: key
                .ok()
                .filter(|k| !bucket.is_empty() && !k.is_empty())
                .map(|k| Box::new(object(k))),
        };
    }
    let key = match key {
        Ok(k) => k,
        Err(reason) => return fail_or_skip(message_id, source, reason),
    };
    if bucket.is_empty() || key.is_empty() {
        return fail_or_skip(
            message_id,
            source,
            "the notification names no bucket or key".into(),
        );
    }
    Item::Object(Box::new(object(key)))
}

fn fail_or_skip(message_id: Option<&str>, source: String, reason: String) -> Item {
    match message_id {
        Some(id) => Item::Failed {
            message_id: id.to_string(),
            reason: format!("{source}: {reason}"),
        },
        None => Item::Skipped {
            source,
            reason,
            object: None,
        },
    }
}

/// An EventBridge event from `aws.s3`, read into `aws_lambda_events`' [`EventBridgeEvent`] with
/// S3's `detail` ([`S3Detail`]).
fn eventbridge(v: &Value, message_id: Option<&str>) -> Item {
    let ev = match EventBridgeEvent::<S3Detail>::deserialize(v) {
        Ok(ev) => ev,
        Err(e) => {
            let text = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("");
            let source = format!(
                "s3://{}/{}",
                text("/detail/bucket/name"),
                text("/detail/object/key")
            );
            return fail_or_skip(
                message_id,
                source,
                format!("not an EventBridge event from S3 as AWS sends it: {e}"),
            );
        }
    };
    let kind = ev.detail_type.as_str();
    let bucket = ev.detail.bucket.name.as_str();
    let key = ev.detail.object.key.as_str();
    let source = format!("s3://{bucket}/{key}");
    let o = &ev.detail.object;
    let object = || ObjectRef {
        bucket: bucket.to_string(),
        key: key.to_string(),
        size: o.size,
        etag: o.etag.clone(),
        version_id: o.version_id.clone(),
        message_id: message_id.map(str::to_string),
        event_time: ev
            .time
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    };
    let named = !bucket.is_empty() && !key.is_empty();
    if kind != "Object Created" {
        return Item::Skipped {
            source,
            reason: format!("EventBridge `{kind}` is not an upload"),
            object: named.then(|| Box::new(object())),
        };
    }
    if !named {
        return fail_or_skip(
            message_id,
            source,
            "the event names no bucket or key".into(),
        );
    }
    Item::Object(Box::new(object()))
}

/// The `detail` of S3's EventBridge events (`Object Created`, `Object Deleted`, …), which
/// `aws_lambda_events` leaves generic.
#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct S3Detail {
    /// The bucket.
    #[serde(default)]
    pub bucket: S3DetailBucket,
    /// The object.
    #[serde(default)]
    pub object: S3DetailObject,
}

/// [`S3Detail`]'s bucket.
#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct S3DetailBucket {
    /// Its name.
    #[serde(default)]
    pub name: String,
}

/// [`S3Detail`]'s object: its key as it is (not form-encoded, unlike a notification's).
#[derive(Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct S3DetailObject {
    /// The key.
    #[serde(default)]
    pub key: String,
    /// Its size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// Its ETag.
    #[serde(default)]
    pub etag: Option<String>,
    /// Its version id, in a versioned bucket.
    #[serde(default)]
    pub version_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_keys_like_aws_encodes_them() {
        assert_eq!(decode_key("Happy+Face.jpg").unwrap(), "Happy Face.jpg");
        assert_eq!(decode_key("c%2B%2B/a%2Bb.txt").unwrap(), "c++/a+b.txt");
        assert_eq!(
            decode_key("caf%C3%A9/%E6%97%A5%E6%9C%AC.ndjson").unwrap(),
            "café/日本.ndjson"
        );
        assert_eq!(
            decode_key("dt%3D2026-11-22/_SUCCESS").unwrap(),
            "dt=2026-11-22/_SUCCESS"
        );
        assert!(decode_key("bad%FF").is_err());
    }

    #[test]
    fn never_panics_on_odd_payloads() {
        for v in [
            json!(null),
            json!(42),
            json!("Records"),
            json!({"Records": 5}),
            json!({"Records": [1, "x", null, {}]}),
            json!({"Records": [{"eventSource": "aws:s3"}]}),
            json!({"Records": [{"eventSource": "aws:sqs", "body": 7}]}),
            json!({"Records": [{"eventSource": "aws:sns", "Sns": {"Message": "{not json"}}]}),
            json!({"source": "aws.s3", "detail-type": 3}),
        ] {
            let _ = parse(&v);
        }
        let p = parse(&json!({"hello": "world"}));
        assert_eq!(p.source.to_string(), "unknown");
        assert!(p.error.unwrap().contains("not an S3 notification"));
    }

    #[test]
    fn mutated_real_events_never_panic() {
        // Every JSON value reachable by small edits of real-shaped events must parse to *something*.
        let seeds = [
            crate::event::sqs_event(&crate::event::s3_event(vec![crate::event::s3_record("b", "a b+c/ü.json", 5, "e")]), "m").to_string(),
            crate::event::sns_event(&crate::event::s3_event(vec![crate::event::s3_record("b", "k", 1, "e")])).to_string(),
            json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": "b"}, "object": {"key": "k", "size": 1}}}).to_string(),
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut parsed = 0;
        for round in 0..3000 {
            let mut s: Vec<u8> = seeds[round % seeds.len()].clone().into_bytes();
            for _ in 0..(1 + next() % 4) {
                let i = (next() as usize) % s.len();
                match next() % 3 {
                    0 => {
                        s.remove(i);
                    }
                    1 => s.insert(i, b"\"{}[],:0%+"[(next() % 10) as usize]),
                    _ => s[i] = b"abcXYZ019 "[(next() % 10) as usize],
                }
            }
            if let Ok(v) = serde_json::from_slice::<Value>(&s) {
                parsed += 1;
                let p = parse(&v);
                assert!(!p.source.to_string().is_empty());
            }
        }
        assert!(parsed > 300, "only {parsed} mutations were JSON");
    }

    #[test]
    fn changes_that_are_not_uploads_name_their_object() {
        let fixture = |name: &str| -> Value {
            // Cargo's runtime path first: a test binary reused from another clone's build
            // carries that clone's compile-time path.
            let dir = std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
            let path = format!("{dir}/../fixtures/events/{name}");
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
        };
        let p = parse(&fixture("s3-other-kinds.json"));
        assert_eq!(p.work.items.len(), 6);
        for item in &p.work.items {
            let Item::Skipped {
                reason,
                object: Some(o),
                ..
            } = item
            else {
                panic!("{item:?}")
            };
            assert!(reason.ends_with(" is not an upload"), "{reason}");
            assert_eq!(o.key, "clickstream/2026/11/22/web+app events.ndjson");
        }
        let p = parse(&fixture("eventbridge-deleted.json"));
        let Item::Skipped {
            object: Some(o), ..
        } = &p.work.items[0]
        else {
            panic!("{p:?}")
        };
        assert_eq!(
            (
                o.bucket.as_str(),
                o.version_id.as_deref(),
                o.event_time.as_deref()
            ),
            (
                "analytics-in",
                Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"),
                Some("2026-11-22T12:00:00Z")
            )
        );
        // The test event names no object.
        let p = parse(&fixture("s3-test-event.json"));
        assert!(matches!(
            &p.work.items[0],
            Item::Skipped { object: None, .. }
        ));
    }

    #[test]
    fn sqs_bodies_are_records_unless_they_are_notifications() {
        let p = parse(&json!({"Records": [
            {"eventSource": "aws:sqs", "messageId": "m1", "body": "plain text",
             "attributes": {"SentTimestamp": "1545082649183", "MessageGroupId": "g1"}},
            {"eventSource": "aws:sqs", "messageId": "m2", "body": "{\"Event\":\"s3:TestEvent\",\"Bucket\":\"b\"}"},
            {"eventSource": "aws:sqs", "messageId": "m3", "body": "{\"Records\":[{\"eventSource\":\"aws:dynamodb\"}]}"},
        ]}));
        assert!(p.source.per_item());
        assert_eq!(p.source.to_string(), "sqs");
        let Item::Record(r) = &p.work.items[0] else {
            panic!("{:?}", p.work.items[0]);
        };
        assert_eq!(
            (r.id(), r.partition_key(), r.arrival),
            ("m1", "g1", Some(1_545_082_649.183))
        );
        assert_eq!(r.data.as_deref(), Ok(&b"plain text"[..]));
        assert!(matches!(&p.work.items[1], Item::Skipped { .. }));
        // Shaped like a notification but not one Sluice reads: redriven to the dead-letter queue.
        assert!(matches!(&p.work.items[2], Item::Failed { message_id, .. } if message_id == "m3"));
    }

    /// Issue 27: a message without a body used to become an empty record that decoded to
    /// nothing: no row, no reject, no failure.
    #[test]
    fn sqs_messages_without_a_body_are_records_that_say_why() {
        let p = parse(&json!({"Records": [
            {"eventSource": "aws:sqs", "messageId": "m1"},
            {"eventSource": "aws:sqs", "messageId": "m2", "body": null},
            {"eventSource": "aws:sqs", "messageId": "m3", "body": ""},
            {"eventSource": "aws:sqs", "messageId": "m4", "body": {"a": 1}},
        ]}));
        let reasons: Vec<(&str, &str)> = p
            .work
            .items
            .iter()
            .map(|i| match i {
                Item::Record(r) => (r.id(), r.data.as_ref().map(|_| "").unwrap_or_else(|e| e)),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            reasons,
            [
                ("m1", "the message has no `body` string"),
                ("m2", "the message has no `body` string"),
                ("m3", "the message body is empty"),
                (
                    "m4",
                    "not an SQS message as AWS sends it: invalid type: map, expected a string"
                ),
            ]
        );
    }

    #[test]
    fn a_batch_shares_one_text_buffer() {
        let f = |shard: &'static str, seq: &'static str, key: &'static str| KinesisFields {
            sequence: seq,
            event_id: shard,
            partition_key: key,
            arrival: None,
            data: Ok(bytes::Bytes::new()),
        };
        let items = kinesis_items(vec![
            f("shardId-1:10", "10", "é"),
            f("shardId-1:11", "11", ""),
            f("shardId-2:12", "12", "k"),
            f("no colon", "13", "k"),
        ]);
        let recs: Vec<_> = items
            .iter()
            .map(|i| match i {
                Item::Record(r) => (r.shard(), r.id(), r.partition_key()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            recs,
            [
                ("shardId-1", "10", "é"),
                ("shardId-1", "11", ""),
                ("shardId-2", "12", "k"),
                ("", "13", "k"),
            ]
        );
        // A cut that is not on character boundaries is empty, not a panic.
        let all = Arc::new(String::from("é!"));
        let r = StreamRecord::cut(&all, [1..3, 0..2, 2..9], None, Ok(bytes::Bytes::new()));
        assert_eq!((r.id(), r.shard(), r.partition_key()), ("", "é", ""));
        let r = StreamRecord::new("a\"b", "", "k", None, Err("no".into()));
        assert_eq!(
            format!("{r:?}"),
            r#"StreamRecord { id: "a\"b", shard: "", partition_key: "k", arrival: None, data: Err("no") }"#
        );
    }

    #[test]
    fn kinesis_records_carry_shard_sequence_key_arrival_and_data() {
        // The shape of the AWS documentation's sample Kinesis event.
        let p = parse(&json!({"Records": [{
            "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "1",
                "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
                "data": "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==", "approximateArrivalTimestamp": 1545084650.987},
            "eventSource": "aws:kinesis", "eventVersion": "1.0",
            "eventID": "shardId-000000000006:49590338271490256608559692538361571095921575989136588898",
            "eventName": "aws:kinesis:record", "awsRegion": "us-east-2",
            "eventSourceARN": "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream"
        }, {
            "kinesis": {"partitionKey": "2", "sequenceNumber": "4959", "data": "not base64!"},
            "eventSource": "aws:kinesis", "eventID": "shardId-000000000006:4959"
        }]}));
        assert!(p.source.per_item());
        assert_eq!(p.source.to_string(), "kinesis");
        let Item::Record(r) = &p.work.items[0] else {
            panic!("{:?}", p.work.items[0]);
        };
        assert_eq!(r.shard(), "shardId-000000000006");
        assert_eq!(
            r.id(),
            "49590338271490256608559692538361571095921575989136588898"
        );
        assert_eq!(r.partition_key(), "1");
        assert_eq!(r.arrival, Some(1545084650.987));
        assert_eq!(r.data.as_deref(), Ok(&b"Hello, this is a test."[..]));
        let Item::Record(bad) = &p.work.items[1] else {
            panic!("{:?}", p.work.items[1]);
        };
        assert!(bad.data.as_ref().unwrap_err().contains("not base64"));
    }

    /// Issue 28: the trigger was a composite string compared as text; it is a typed [`Source`]
    /// now, printed as before.
    #[test]
    fn every_shape_is_a_typed_source_printed_as_before() {
        use crate::event::{s3_event, s3_record, sqs_event, sqs_records_event};
        let s3 = s3_event(vec![s3_record("b", "k", 1, "e")]);
        let sns = crate::event::sns_event(&s3);
        let envelope = crate::event::sns_envelope(&s3);
        let bridge = json!({"source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "b"}, "object": {"key": "k", "size": 1}}});
        let kinesis = crate::event::kinesis_event("s", &[("p".into(), b"x".to_vec())]);
        for (event, kind, sqs, sns, name, per_item) in [
            (s3.clone(), Kind::S3, false, false, "s3", false),
            (sqs_event(&s3, "m"), Kind::S3, true, false, "sqs", true),
            (sns, Kind::S3, false, true, "sns", false),
            (
                sqs_event(&envelope, "m"),
                Kind::S3,
                true,
                true,
                "sqs+sns",
                true,
            ),
            (
                bridge.clone(),
                Kind::EventBridge,
                false,
                false,
                "eventbridge",
                false,
            ),
            (
                sqs_event(&bridge, "m"),
                Kind::EventBridge,
                true,
                false,
                "sqs+eventbridge",
                true,
            ),
            (kinesis, Kind::Kinesis, false, false, "kinesis", true),
            (
                sqs_records_event("q", &["a".into()]),
                Kind::Messages,
                true,
                false,
                "sqs",
                true,
            ),
            (
                json!({"hello": 1}),
                Kind::Unknown,
                false,
                false,
                "unknown",
                false,
            ),
        ] {
            let p = parse(&event);
            assert_eq!(p.source, Source { kind, sqs, sns }, "{event}");
            assert_eq!(p.source.to_string(), name);
            assert_eq!(p.source.per_item(), per_item, "{name}");
            assert_eq!(serde_json::to_value(p.source).unwrap(), json!(name));
        }
    }

    /// Kinesis records are read by Sluice's own reader, not into `aws_lambda_events`'
    /// `KinesisEventRecord`: its arrival time parsing reads the digits after the point as
    /// milliseconds, whatever their number. Should this start failing, the crate was fixed and
    /// the general Kinesis path can move to it.
    #[test]
    fn kinesis_records_keep_their_arrival_time_which_the_typed_record_misreads() {
        use aws_lambda_events::event::kinesis::KinesisEventRecord;
        let record = |arrival: Value| {
            json!({"eventSource": "aws:kinesis", "eventID": "shardId-000000000000:1",
                   "kinesis": {"partitionKey": "p", "sequenceNumber": "1", "data": "eA==",
                               "approximateArrivalTimestamp": arrival}})
        };
        let typed: KinesisEventRecord =
            serde_json::from_value(record(json!(1545084650.5))).expect("typed");
        assert_eq!(
            typed
                .kinesis
                .approximate_arrival_timestamp
                .timestamp_subsec_millis(),
            5,
            "the crate reads .5 s as 5 ms"
        );
        assert!(
            serde_json::from_value::<KinesisEventRecord>(record(json!(1545084650.1234))).is_err()
        );
        for (arrival, want) in [
            (1545084650.5, 1545084650.5),
            (1545084650.1234, 1545084650.1234),
        ] {
            let p = parse(&json!({"Records": [record(json!(arrival))]}));
            let Item::Record(r) = &p.work.items[0] else {
                panic!("{p:?}")
            };
            assert_eq!(r.arrival, Some(want));
        }
    }

    /// Every fixture event of a shape `aws_lambda_events` has reads into its typed value, and
    /// that value, written back out, is the same invocation: nothing Sluice reads is lost in the
    /// typed values.
    #[test]
    fn fixture_events_round_trip_through_the_typed_values() {
        use aws_lambda_events::event::{
            eventbridge::EventBridgeEvent, s3::S3Event, sns::SnsEvent, sqs::SqsEvent,
        };
        fn again<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Value {
            let typed: T = serde_json::from_value(v.clone()).expect("the typed value");
            serde_json::to_value(typed).expect("back to JSON")
        }
        type RoundTrip = fn(&Value) -> Value;
        let fixtures: [(&str, &str, RoundTrip); 10] = [
            (
                "s3-direct",
                include_str!("../../../fixtures/events/s3-direct.json"),
                again::<S3Event>,
            ),
            (
                "s3-other-kinds",
                include_str!("../../../fixtures/events/s3-other-kinds.json"),
                again::<S3Event>,
            ),
            (
                "s3-missing-object",
                include_str!("../../../fixtures/events/s3-missing-object.json"),
                again::<S3Event>,
            ),
            (
                "s3-not-json",
                include_str!("../../../fixtures/events/s3-not-json.json"),
                again::<S3Event>,
            ),
            (
                "s3-corrupt-gzip",
                include_str!("../../../fixtures/events/s3-corrupt-gzip.json"),
                again::<S3Event>,
            ),
            (
                "sqs-s3",
                include_str!("../../../fixtures/events/sqs-s3.json"),
                again::<SqsEvent>,
            ),
            (
                "sqs-sns-s3",
                include_str!("../../../fixtures/events/sqs-sns-s3.json"),
                again::<SqsEvent>,
            ),
            (
                "sns-s3",
                include_str!("../../../fixtures/events/sns-s3.json"),
                again::<SnsEvent>,
            ),
            (
                "eventbridge-created",
                include_str!("../../../fixtures/events/eventbridge-created.json"),
                again::<EventBridgeEvent>,
            ),
            (
                "eventbridge-deleted",
                include_str!("../../../fixtures/events/eventbridge-deleted.json"),
                again::<EventBridgeEvent>,
            ),
        ];
        for (name, text, round_trip) in fixtures {
            let v: Value = serde_json::from_str(text).expect(name);
            let direct = parse(&v);
            assert!(direct.error.is_none(), "{name}: {:?}", direct.error);
            assert!(
                !direct
                    .work
                    .items
                    .iter()
                    .any(|i| matches!(i, Item::Failed { .. })),
                "{name}: {direct:?}"
            );
            assert_eq!(parse(&round_trip(&v)), direct, "{name}");
        }
    }

    #[test]
    fn batch_operations_tasks_are_objects_named_by_their_task_ids() {
        let keys = vec!["a b+c/ü.json".to_string(), "k2".to_string()];
        for schema in ["1.0", "2.0"] {
            let p = parse(&crate::event::batch_ops_event(schema, "bkt", &keys));
            assert_eq!(p.source.to_string(), "batch-ops");
            assert!(p.source.per_item());
            let job = p.work.batch.as_ref().expect("job");
            assert_eq!(job.schema, schema);
            assert_eq!(
                job.tasks,
                [
                    ("task-0".to_string(), "s3://bkt/a b+c/ü.json".to_string()),
                    ("task-1".to_string(), "s3://bkt/k2".to_string())
                ]
            );
            let Item::Object(o) = &p.work.items[0] else {
                panic!("{p:?}")
            };
            assert_eq!((o.bucket.as_str(), o.key.as_str()), ("bkt", "a b+c/ü.json"));
            assert_eq!(o.message_id.as_deref(), Some("task-0"));
        }
        // A task without a bucket, or with a key that is not UTF-8 once decoded, is failed by
        // its id; the event as a whole not being one is an error.
        let mut ev = crate::event::batch_ops_event("2.0", "bkt", &keys);
        ev["tasks"][0]["s3Bucket"] = json!(null);
        ev["tasks"][1]["s3Key"] = json!("bad%FF");
        let p = parse(&ev);
        let failed: Vec<&str> = p
            .work
            .items
            .iter()
            .map(|i| match i {
                Item::Failed { message_id, .. } => message_id.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(failed, ["task-0", "task-1"]);
        let p = parse(&json!({"invocationSchemaVersion": "1.0", "tasks": "nope"}));
        assert_eq!(p.source.to_string(), "unknown");
        assert!(p.error.unwrap().contains("S3 Batch Operations"));
    }

    #[test]
    fn a_direct_cloudwatch_logs_subscription_is_one_record_of_its_inflatable_document() {
        use aws_lambda_events::event::cloudwatch_logs::LogsEvent;
        let text = include_str!("../../../examples/cloudwatch-logs/events/awslogs.json");
        let ev: Value = serde_json::from_str(text).expect("example");
        // The example is what the typed value writes, and reads back as it (from text: the
        // crate's reader borrows its keys).
        let typed: LogsEvent = serde_json::from_str(text).expect("typed");
        assert_eq!(typed.aws_logs.data.log_events.len(), 5);
        assert_eq!(typed.aws_logs.data.message_type, "DATA_MESSAGE");
        let p = parse(&ev);
        assert_eq!(
            (p.source.to_string(), p.error.clone()),
            ("cwlogs".to_string(), None)
        );
        let [Item::Record(r)] = p.work.items.as_slice() else {
            panic!("{p:?}")
        };
        assert!(r.id().starts_with("awslogs-"), "{}", r.id());
        let gz = r.data.as_ref().expect("data");
        assert_eq!(&gz[..2], [0x1f, 0x8b]);
        // The padded base64 AWS sends reads the same.
        use base64::Engine;
        let padded = base64::engine::general_purpose::STANDARD.encode(gz);
        let p2 = parse(&json!({"awslogs": {"data": padded}}));
        let [Item::Record(r2)] = p2.work.items.as_slice() else {
            panic!("{p2:?}")
        };
        assert_eq!(r2.data, r.data);
        assert!(parse(&json!({"awslogs": {}})).error.is_some());
    }
}
