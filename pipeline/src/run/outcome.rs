//! What an event comes to: the [`Summary`] (printed by replay, returned by the Lambda) and the
//! Lambda answer, gathered in a `Tally` as the event's items are processed.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::catalog::CatalogRow;
use crate::error::ErrorClass;
use crate::trigger::{self, StreamRecord};

/// What one event did; printed by `sluice replay --json`, returned by the Lambda.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// The event's name (file, or file:line for `.jsonl`); empty in the Lambda.
    pub event: String,
    /// What delivered the event, printed as `s3`, `sqs`, `sns`, `sqs+sns`, `eventbridge`,
    /// `sqs+eventbridge`, `kinesis` or `unknown`.
    pub trigger: trigger::Source,
    /// S3 objects processed.
    pub objects: u64,
    /// S3 objects that failed (not counted in `objects`).
    #[serde(rename = "failed")]
    pub failed_objects: u64,
    /// Records ignored by rule: removals, test events, unmatched keys.
    pub skipped: u64,
    /// Stream records delivered (Kinesis records, SQS messages whose bodies are records),
    /// whatever became of them.
    pub delivered: u64,
    /// Records read (decoded or rejected).
    pub records_in: u64,
    /// Rows written.
    pub records_out: u64,
    /// Records rejected.
    pub rejected: u64,
    /// Files written (outputs, then rejects).
    pub outputs: Vec<String>,
    /// SQS message ids to retry (SQS-delivered events only).
    pub batch_item_failures: Vec<String>,
    /// Wall time.
    pub duration_ms: u64,
    /// The failure, when the event failed.
    pub error: Option<String>,
    /// What a retry of the failure would do (the most hopeful class of its errors), when the
    /// event failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<ErrorClass>,
    /// What was skipped and why.
    pub skips: Vec<Skip>,
    /// An Iceberg output: the milliseconds its one commit took (loading the table, the fast
    /// append and the catalog's update, conflicts retried included), whenever it tried one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_ms: Option<f64>,
    /// An Iceberg output: what its commit (or, `commit = "queue"`, its message, or the
    /// committer's fold of a batch) came to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitStats>,
    /// A Firehose transformation's answer: in the summary, how many records were answered `Ok`,
    /// `Dropped` and `ProcessingFailed` (each failed one with its reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firehose: Option<super::firehose::Answer>,
    /// A Kinesis tumbling window's state, returned for the window's next invocation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Map<String, Value>>,
    /// Time spent in each stage.
    #[serde(skip)]
    pub stages: Vec<StageTime>,
    /// Bytes taken in: the sizes of the objects processed (as their notifications give them)
    /// and of the stream records' payloads.
    #[serde(skip)]
    pub bytes_in: u64,
    /// Why each failed item (an SQS message, a Batch Operations task) failed, by its id, when
    /// known item by item: a Batch Operations answer gives each task its own result.
    #[serde(skip)]
    pub item_failures: Vec<(String, ErrorClass, String)>,
    /// An S3 Batch Operations invocation: what its answer names.
    #[serde(skip)]
    pub batch: Option<trigger::BatchJob>,
}

/// What an invocation's table commit came to.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CommitStats {
    /// `direct` (the invocation committed), `queued` (it sent its files to the committer) or
    /// `committer` (it folded a batch of messages).
    pub mode: &'static str,
    /// Data files committed (queued, for `queued`).
    pub files: u64,
    /// The rows they hold.
    pub rows: u64,
    /// Commit attempts that conflicted with another commit and were retried.
    pub conflicts: u32,
    /// The committer: messages committed, dropped (their sources were committed already) and
    /// refused (returned to the queue).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<[u64; 3]>,
    /// The committer: milliseconds from each committed message's sending to its commit (up to
    /// 100 of them): how long the writers' rows took to become visible.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub visible_ms: Vec<f64>,
    /// `queued`: the message's bytes (SQS bills each 64 KiB as a request).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_bytes: Option<u64>,
}

/// A skipped record.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Skip {
    /// `s3://bucket/key` or the record kind.
    pub source: String,
    /// Why.
    pub reason: String,
}

impl Summary {
    /// An invocation that failed before its trigger was known, and why.
    pub fn unknown(error: String) -> Summary {
        Summary {
            trigger: trigger::Source::of(trigger::Kind::Unknown),
            error: Some(error),
            error_class: Some(ErrorClass::BadInput),
            ..Summary::default()
        }
    }

    /// True when something failed (the invocation errors, or SQS messages are retried).
    pub fn failed(&self) -> bool {
        self.error.is_some() || !self.batch_item_failures.is_empty()
    }

    /// The Lambda response: `{"batchItemFailures": […]}` for SQS and Kinesis events (built from
    /// `aws_lambda_events`' `SqsBatchResponse` and `KinesisEventResponse`; a tumbling window's
    /// adds its `state`), otherwise the summary.
    pub fn lambda_response(&self, sqs: bool) -> Value {
        use aws_lambda_events::event::sqs::SqsBatchResponse;
        use aws_lambda_events::event::streams::{KinesisBatchItemFailure, KinesisEventResponse};
        if let Some(job) = &self.batch {
            return self.batch_response(job);
        }
        if let Some(answer) = &self.firehose {
            return serde_json::to_value(answer.response()).unwrap_or(Value::Null);
        }
        if !sqs {
            return serde_json::to_value(self).unwrap_or(Value::Null);
        }
        let ids = self.batch_item_failures.iter().cloned();
        let kinesis = || {
            let mut r = KinesisEventResponse::default();
            r.batch_item_failures = ids
                .clone()
                .map(|id| {
                    let mut f = KinesisBatchItemFailure::default();
                    f.item_identifier = Some(id);
                    f
                })
                .collect();
            r
        };
        match &self.state {
            // A tumbling window answers with its state and the failures together. (The
            // crate's window response holds string values only; an aggregate's state is JSON.)
            Some(state) => {
                let mut v = serde_json::to_value(kinesis()).unwrap_or(Value::Null);
                if let Some(o) = v.as_object_mut() {
                    o.insert("state".into(), Value::Object(state.clone()));
                }
                v
            }
            None if self.trigger.kinesis() => {
                serde_json::to_value(kinesis()).unwrap_or(Value::Null)
            }
            None if self.trigger.ordered() => {
                use aws_lambda_events::event::streams::{
                    DynamoDbBatchItemFailure, DynamoDbEventResponse,
                };
                let mut r = DynamoDbEventResponse::default();
                r.batch_item_failures = ids
                    .map(|id| {
                        let mut f = DynamoDbBatchItemFailure::default();
                        f.item_identifier = Some(id);
                        f
                    })
                    .collect();
                serde_json::to_value(r).unwrap_or(Value::Null)
            }
            None => {
                let mut r = SqsBatchResponse::default();
                r.set_failures(ids);
                serde_json::to_value(r).unwrap_or(Value::Null)
            }
        }
    }
}

/// The longest `resultString` given (Batch Operations writes it into the job's report).
const RESULT_STRING_MAX: usize = 1024;

impl Summary {
    /// An S3 Batch Operations answer (`aws_lambda_events`' `S3BatchJobResponse`): every task,
    /// once, in order, `Succeeded` (processed, or skipped by rule: the reason says which),
    /// `TemporaryFailure` (S3 retries it: a transient failure, the deadline) or
    /// `PermanentFailure` (corrupt input, the wrong format, a pipeline or permission problem),
    /// with why.
    fn batch_response(&self, job: &trigger::BatchJob) -> Value {
        use aws_lambda_events::event::s3::batch_job::{S3BatchJobResponse, S3BatchJobResult};
        let mut r = S3BatchJobResponse::default();
        r.invocation_schema_version = Some(job.schema.clone());
        r.invocation_id = Some(job.invocation_id.clone());
        r.treat_missing_keys_as = Some("PermanentFailure".into());
        r.results = job
            .tasks
            .iter()
            .map(|(id, source)| {
                let failed = self
                    .item_failures
                    .iter()
                    .find(|(f, _, _)| f == id)
                    .map(|(_, class, why)| (*class, why.clone()))
                    .or_else(|| {
                        // Failed with the rest (a commit, a unit of the whole invocation, the
                        // deadline): the event's own error and class.
                        self.batch_item_failures.contains(id).then(|| {
                            (
                                self.error_class.unwrap_or(ErrorClass::RetryLater),
                                self.error.clone().unwrap_or_default(),
                            )
                        })
                    });
                let (code, text) = match failed {
                    Some((ErrorClass::RetryLater, why)) => ("TemporaryFailure", why),
                    Some((_, why)) => ("PermanentFailure", why),
                    None => match self.skips.iter().find(|k| &k.source == source) {
                        Some(k) => ("Succeeded", format!("skipped: {}", k.reason)),
                        None => ("Succeeded", "processed".to_string()),
                    },
                };
                let mut text = text;
                if text.len() > RESULT_STRING_MAX {
                    let mut cut = RESULT_STRING_MAX - 3;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                    text.push_str("...");
                }
                let mut result = S3BatchJobResult::default();
                result.task_id = Some(id.clone());
                result.result_code = Some(code.into());
                result.result_string = Some(text);
                result
            })
            .collect();
        serde_json::to_value(r).unwrap_or(Value::Null)
    }

    /// Add one unit of work's counts and outputs.
    pub(super) fn absorb(&mut self, r: ObjectResult) {
        self.records_in += r.records_in;
        self.records_out += r.records_out;
        self.rejected += r.rejected;
        self.outputs.extend(r.outputs);
    }

    /// Report `rest` of a stream batch for redelivery: a Kinesis shard resumes at its first
    /// record, SQS retries each message.
    pub(super) fn redeliver(&mut self, rest: &[&StreamRecord], kinesis: bool) {
        let n = if kinesis { 1 } else { rest.len() };
        self.batch_item_failures
            .extend(rest.iter().take(n).map(|r| r.id().to_string()));
    }
}

/// What processing one object produced.
#[derive(Debug, Default)]
pub(crate) struct ObjectResult {
    /// Set when the object was read but nothing in it was usable.
    pub(crate) error: Option<Error>,
    pub(crate) records_in: u64,
    pub(crate) records_out: u64,
    pub(crate) rejected: u64,
    /// Of `rejected`, the records that could not be decoded at all (not those a stage refused).
    pub(crate) undecodable: u64,
    pub(crate) outputs: Vec<String>,
    /// A stream batch stopped before this record, its deadline near.
    pub(crate) stopped_at: Option<usize>,
    /// sha256 and sniffed content type of the object read (for the catalog).
    pub(crate) fingerprint: Option<(String, &'static str)>,
    /// What the resize stage saw of an image (for the catalog).
    pub(crate) image: Option<crate::catalog::ImageFacts>,
    /// Per-column statistics of the rows written (for the catalog).
    pub(crate) columns: Vec<sluice_processors::stats::ColumnStat>,
    /// Objects of a per-invocation run left out: overwritten since their notification.
    pub(crate) superseded: Vec<String>,
    /// An Iceberg output's data files, written, for the invocation's commit.
    #[cfg(feature = "iceberg")]
    pub(crate) table_files: Vec<iceberg::spec::DataFile>,
}

/// Time spent in one stage during an event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageTime {
    /// The stage's type (`filter`, `aggregate` …).
    pub stage: String,
    /// Milliseconds in its `push` and `finish` calls.
    pub ms: f64,
}

/// What one event came to: its summary, and how Lambda is to be answered.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// What the event did.
    pub summary: Summary,
    /// Whether the answer names the failed items (`batchItemFailures`: SQS, Kinesis) rather than
    /// failing the invocation.
    pub per_item: bool,
}

impl Outcome {
    /// The Lambda response (see [`Summary::lambda_response`]).
    pub fn lambda_response(&self) -> Value {
        self.summary.lambda_response(self.per_item)
    }

    /// The summary and whether the answer names failed items, apart.
    pub fn into_parts(self) -> (Summary, bool) {
        (self.summary, self.per_item)
    }
}

/// What an event's items come to, gathered as they are processed: the summary, the errors
/// (joined into its `error` at the end), a catalog row per object met when the pipeline keeps a
/// catalog, and whether the answer names failed items (SQS) rather than failing the invocation.
pub(super) struct Tally {
    pub(super) s: Summary,
    pub(super) errors: Vec<String>,
    /// The most hopeful class of `errors`.
    pub(super) class: Option<ErrorClass>,
    pub(super) catalog: Vec<CatalogRow>,
    pub(super) per_item: bool,
    /// An SQS FIFO batch: what a failure holds back.
    pub(super) fifo: Option<Fifo>,
    /// An Iceberg output's data files written by the event's units, for its one commit.
    #[cfg(feature = "iceberg")]
    pub(super) table: TableTally,
}

/// An SQS FIFO batch's messages in order, with their message groups, and whether a failed
/// message holds back only the later messages of its group (`[input] fifo = "group"`) or every
/// later message (AWS's rule).
pub(super) struct Fifo {
    pub(super) order: Vec<(String, String)>,
    pub(super) by_group: bool,
}

impl Fifo {
    /// Why the message `id` must not be processed now: one before it (of its group) failed.
    fn blocked_by(&self, id: &str, failed: &[String]) -> Option<String> {
        let p = self.order.iter().position(|(m, _)| m == id)?;
        let group = &self.order[p].1;
        self.order[..p]
            .iter()
            .find(|(m, g)| (!self.by_group || g == group) && failed.contains(m))
            .map(|(m, g)| {
                let whose = if self.by_group {
                    format!(" (message group {g})")
                } else {
                    String::new()
                };
                format!(
                    "not processed: message {m} before it in this FIFO batch failed{whose}, and the queue keeps their order"
                )
            })
    }

    /// The batch's failures as a FIFO queue needs them, in order: each failed message and every
    /// message after it (of its group).
    fn failures(&self, failed: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let mut all = false;
        let mut groups = std::collections::HashSet::new();
        for (m, g) in &self.order {
            if all || groups.contains(g) || failed.contains(m) {
                out.push(m.clone());
                if self.by_group {
                    groups.insert(g.clone());
                } else {
                    all = true;
                }
            }
        }
        out.extend(
            failed
                .iter()
                .filter(|m| !out.contains(m))
                .cloned()
                .collect::<Vec<_>>(),
        );
        out
    }
}

impl Tally {
    /// The item `id` (an SQS message, a Batch Operations task) failed, `class`, because `why`:
    /// reported once, with its reason.
    pub(super) fn fail_item(&mut self, id: &str, class: ErrorClass, why: &str) {
        if !self.s.batch_item_failures.iter().any(|f| f == id) {
            self.s.batch_item_failures.push(id.to_string());
            self.s
                .item_failures
                .push((id.to_string(), class, why.to_string()));
        }
    }

    /// Why an object of a FIFO batch must not be processed now (see [`Fifo::blocked_by`]).
    pub(super) fn fifo_blocked(&self, obj: &crate::trigger::ObjectRef) -> Option<String> {
        let fifo = self.fifo.as_ref()?;
        fifo.blocked_by(obj.message_id.as_deref()?, &self.s.batch_item_failures)
    }
}

/// The data files an event's units wrote into its table, and what they came from: committed
/// together at the end of the event, or, when that fails, every object of them failed.
#[cfg(feature = "iceberg")]
#[derive(Default)]
pub(super) struct TableTally {
    /// Each unit's data files and sources (`s3://bucket/key@version`, as snapshots record them).
    pub(super) units: Vec<crate::table::Unit>,
    /// The objects behind them (their SQS message ids, if any), for a failed commit.
    pub(super) message_ids: Vec<Option<String>>,
    /// The rows the files hold.
    pub(super) records_out: u64,
    /// A Kinesis batch's first record: where the shard resumes when the commit fails.
    pub(super) resume_at: Option<String>,
}

impl Tally {
    pub(super) fn new(invocation: &trigger::Invocation) -> Self {
        Tally {
            s: Summary {
                trigger: invocation.source,
                error: invocation.error.clone(),
                error_class: invocation.error.as_ref().map(|_| ErrorClass::BadInput),
                batch: invocation.work.batch.clone(),
                ..Summary::default()
            },
            errors: Vec::new(),
            class: None,
            catalog: Vec::new(),
            per_item: invocation.source.per_item(),
            fifo: None,
            #[cfg(feature = "iceberg")]
            table: TableTally::default(),
        }
    }

    /// Hold a unit's table data files for the event's commit: they came from `objects`.
    #[cfg(feature = "iceberg")]
    pub(super) fn hold(&mut self, r: &mut ObjectResult, objects: &[&crate::trigger::ObjectRef]) {
        self.table.units.push(crate::table::Unit {
            sources: objects.iter().map(|o| crate::table::source_id(o)).collect(),
            files: std::mem::take(&mut r.table_files),
            rows: r.records_out,
        });
        self.table.records_out += r.records_out;
        for o in objects {
            self.table.message_ids.push(o.message_id.clone());
        }
    }

    /// Hold a Kinesis batch's table data files for the event's commit: they came from
    /// `records` of one shard, of which the first `processed` were read.
    #[cfg(feature = "iceberg")]
    pub(super) fn hold_batch(
        &mut self,
        r: &mut ObjectResult,
        records: &[&StreamRecord],
        processed: usize,
    ) {
        let done = &records[..processed.min(records.len())];
        let (Some(first), Some(last)) = (done.first(), done.last()) else {
            return;
        };
        self.table.units.push(crate::table::Unit {
            sources: vec![crate::table::stream_source(
                first.shard(),
                first.id(),
                last.id(),
            )],
            files: std::mem::take(&mut r.table_files),
            rows: r.records_out,
        });
        self.table.records_out += r.records_out;
        self.table.resume_at = Some(first.id().to_string());
    }

    /// A failure of some of the event's work, and what a retry would do.
    pub(super) fn fail(&mut self, class: ErrorClass, error: String) {
        self.class = Some(ErrorClass::most_hopeful(self.class, class));
        self.errors.push(error);
    }

    /// The summary (the first three errors in its `error`, and how many more) and whether the
    /// Lambda answer reports batch item failures.
    pub(super) fn finish(self, started: Instant, stages: Vec<StageTime>) -> Outcome {
        let Tally {
            mut s,
            errors,
            class,
            per_item,
            fifo,
            ..
        } = self;
        if let Some(fifo) = &fifo {
            s.batch_item_failures = fifo.failures(&s.batch_item_failures);
        }
        if let Some(class) = class {
            s.error_class = Some(ErrorClass::most_hopeful(s.error_class, class));
        }
        if !errors.is_empty() {
            let mut text = errors
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            if errors.len() > 3 {
                text.push_str(&format!(" (and {} more)", errors.len() - 3));
            }
            s.error = Some(match &s.error {
                Some(e) => format!("{e}; {text}"),
                None => text,
            });
        }
        s.duration_ms = started.elapsed().as_millis() as u64;
        s.stages = stages;
        Outcome {
            summary: s,
            per_item,
        }
    }
}
