//! Local replay: run captured events through the very handler the Lambda runs.

use std::path::{Path, PathBuf};

use futures::FutureExt;
use serde_json::Value;

use crate::handler::{Handler, Summary};

/// One event to replay, with the name it is reported under.
#[derive(Debug, Clone)]
pub struct NamedEvent {
    /// File, or `file:line` for `.jsonl`.
    pub name: String,
    /// The payload, or why it could not be read.
    pub event: Result<Value, String>,
}

/// Expand event arguments: files, folders of `.json`/`.jsonl` files (sorted), and `.jsonl` files
/// (one event per line).
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
                read_file(&f, &mut out)?;
            }
        } else {
            read_file(a, &mut out)?;
        }
    }
    Ok(out)
}

fn read_file(path: &Path, out: &mut Vec<NamedEvent>) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the event file: {e}", path.display()))?;
    let name = path.display().to_string();
    if path.extension().and_then(|e| e.to_str()) == Some("jsonl") {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            out.push(NamedEvent {
                name: format!("{name}:{}", i + 1),
                event: serde_json::from_str(line).map_err(|e| format!("not JSON: {e}")),
            });
        }
    } else {
        out.push(NamedEvent {
            name,
            event: serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}")),
        });
    }
    Ok(())
}

/// Replay events one after another, collecting the summaries.
pub async fn replay(handler: &Handler, events: Vec<NamedEvent>) -> Vec<Summary> {
    let mut out = Vec::with_capacity(events.len());
    replay_each(handler, events, |_, _, s| out.push(s)).await;
    out
}

/// Replay events one after another, handing each summary to `done(index, total, summary)` as soon
/// as its event finishes (so long runs report as they go).
pub async fn replay_each(
    handler: &Handler,
    events: Vec<NamedEvent>,
    mut done: impl FnMut(usize, usize, Summary),
) {
    let total = events.len();
    for (i, e) in events.into_iter().enumerate() {
        let summary = match e.event {
            Ok(v) => {
                let (mut s, _) = handler.handle(&v).await;
                s.event = e.name;
                s
            }
            Err(err) => Summary {
                event: e.name,
                trigger: "unknown".into(),
                error: Some(err),
                ..Summary::default()
            },
        };
        done(i, total, summary);
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

/// The identifier Lambda uses for a record in batch item failures.
fn record_id(r: &Value) -> Option<&str> {
    r.pointer("/kinesis/sequenceNumber")
        .or_else(|| r.get("messageId"))
        .and_then(Value::as_str)
}

fn with_records(event: &Value, records: &[Value]) -> Value {
    let mut e = event.clone();
    if let Some(obj) = e.as_object_mut() {
        obj.insert("Records".into(), Value::Array(records.to_vec()));
    }
    e
}

/// Replay one event as Lambda's event source mapping would deliver it, redelivering failures per
/// `policy`; every delivery's summary goes to `done` (named `event#2` for the second, and so on).
pub async fn replay_redelivered(
    handler: &Handler,
    event: NamedEvent,
    policy: Redelivery,
    mut done: impl FnMut(Summary),
) -> GivenUp {
    let value = match event.event {
        Ok(v) => v,
        Err(err) => {
            done(Summary {
                event: event.name,
                trigger: "unknown".into(),
                error: Some(err),
                ..Summary::default()
            });
            return Vec::new();
        }
    };
    let records: Vec<Value> = value
        .get("Records")
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
        let (mut s, whole) = match run.await {
            Ok((s, per_item)) => {
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
                    trigger: "unknown".into(),
                    error: Some(format!("the function panicked: {what}")),
                    ..Summary::default()
                };
                (s, true)
            }
        };
        s.event = if deliveries == 1 {
            event.name.clone()
        } else {
            format!("{}#{deliveries}", event.name)
        };
        let kinesis = batch
            .first()
            .and_then(|r| r.get("eventSource"))
            .and_then(Value::as_str)
            == Some("aws:kinesis");
        let failed_ids = s.batch_item_failures.clone();
        done(s);
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
        } else if whole {
            given_up.push(serde_json::json!({
                "requestContext": {
                    "condition": "RetriesExhausted",
                    "approximateInvokeCount": tries + 1,
                },
                "requestPayload": ev,
            }));
        } else {
            // SQS: each message goes to the dead-letter queue as it is.
            given_up.extend(rest);
        }
    }
    given_up
}

/// Lambda's on-failure record for a Kinesis batch it gave up on.
fn kinesis_failure(batch: &[Value], invokes: u32) -> Value {
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
    let mut line = format!(
        "{}: {} · {} object{} · {} skipped · {} in → {} out · {} rejected · {} ms",
        s.event,
        s.trigger,
        s.objects,
        if s.objects == 1 { "" } else { "s" },
        s.skipped,
        s.records_in,
        s.records_out,
        s.rejected,
        s.duration_ms
    );
    for o in &s.outputs {
        line.push_str(&format!("\n  wrote {o}"));
    }
    for k in &s.skips {
        line.push_str(&format!("\n  skipped {}: {}", k.source, k.reason));
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
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FsStore, ObjectStore};
    use arrow_array::{Array, RecordBatch, StringArray};
    use arrow_schema::SchemaRef;
    use sluice_processors::{FnFactory, Stage};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Fails (an error, or a panic) on batches holding `poison`; `transient` failures are left.
    struct Trap {
        schema: SchemaRef,
        poison: &'static str,
        panic: bool,
        transient: Arc<AtomicUsize>,
    }

    impl Stage for Trap {
        fn name(&self) -> &'static str {
            "trap"
        }
        fn schema(&self) -> SchemaRef {
            self.schema.clone()
        }
        fn push(
            &mut self,
            b: RecordBatch,
            out: &mut Vec<RecordBatch>,
        ) -> Result<(), sluice_processors::Error> {
            let p = b.column(0).as_any().downcast_ref::<StringArray>().unwrap();
            let hit = (0..p.len()).any(|i| p.value(i) == self.poison);
            if hit && self.transient.load(Ordering::SeqCst) > 0 {
                self.transient.fetch_sub(1, Ordering::SeqCst);
                return Err(sluice_processors::Error::Schema("a passing hiccup".into()));
            }
            if hit && self.transient.load(Ordering::SeqCst) == 0 && self.poison != "flaky" {
                if self.panic {
                    panic!("poison");
                }
                return Err(sluice_processors::Error::Schema("poison".into()));
            }
            out.push(b);
            Ok(())
        }
    }

    fn handler(dir: &Path, poison: &'static str, panic: bool, transient: usize) -> Handler {
        let plan = crate::config::Plan::from_str(
            Path::new("t.toml"),
            "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = { p = \"string\" }\n[output]\nuri = \"s3://o/r/\"\nformat = \"ndjson\"\n",
        )
        .unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir));
        let left = Arc::new(AtomicUsize::new(transient));
        Handler::new(plan, store.clone(), store).with_stage(Arc::new(FnFactory::new(
            "trap",
            move |s: &SchemaRef| {
                Ok(Box::new(Trap {
                    schema: s.clone(),
                    poison,
                    panic,
                    transient: left.clone(),
                }) as Box<dyn Stage>)
            },
        )))
    }

    fn kinesis(values: &[&str]) -> NamedEvent {
        let payloads: Vec<(String, Vec<u8>)> = values
            .iter()
            .map(|v| ("k".to_string(), format!("{{\"p\":\"{v}\"}}").into_bytes()))
            .collect();
        NamedEvent {
            name: "e.json".into(),
            event: Ok(crate::event::kinesis_event("s", &payloads)),
        }
    }

    async fn run(h: &Handler, e: NamedEvent, policy: Redelivery) -> (Vec<Summary>, GivenUp) {
        let mut seen = Vec::new();
        let lost = replay_redelivered(h, e, policy, |s| seen.push(s)).await;
        (seen, lost)
    }

    #[tokio::test]
    async fn a_transient_failure_is_redelivered_from_the_failure_point() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(dir.path(), "flaky", false, 1);
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
        let h = handler(dir.path(), "poison", false, 0);
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
        let h = handler(dir.path(), "poison", true, 0);
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

    #[tokio::test]
    async fn sqs_messages_that_keep_failing_go_to_the_dead_letter_queue_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let h = handler(dir.path(), "poison", false, 0);
        let bodies: Vec<String> = ["a", "poison"]
            .iter()
            .map(|v| format!("{{\"p\":\"{v}\"}}"))
            .collect();
        let ev = crate::event::sqs_records_event("q", &bodies);
        let policy = Redelivery {
            max_retries: 1,
            bisect: false,
        };
        let named = NamedEvent {
            name: "q.json".into(),
            event: Ok(ev.clone()),
        };
        let (seen, lost) = run(&h, named, policy).await;
        // The batch fails whole (an SQS batch is written as one), so every message is retried
        // once, then both go to the dead-letter queue unchanged.
        assert_eq!(seen.len(), 2);
        assert_eq!(lost, ev["Records"].as_array().unwrap().clone());
    }
}
