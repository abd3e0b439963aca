//! The handler: one event in, objects processed, one [`Summary`] out. The Lambda loop and
//! `sluice replay` both call [`Handler::handle`], so replay does exactly what the Lambda does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow_array::{Array, RecordBatch};
use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use serde::Serialize;
use serde_json::Value;
use sluice_processors::decode::{Decoded, Decoder, Origins};
use sluice_processors::sniff::GZIP_MAGIC;
use sluice_processors::{Kept, Stage, StageFactory};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tracing::{info, warn};

use crate::catalog::CatalogRow;
use crate::config::{Compression, InputSpec, OnMissing, Plan};
use crate::kinesis::RecordPutter;
use crate::output::{Outputs, Rejects, Staging, base_name, invocation_name};
use crate::store::{ByteReader, ObjectStore, Tap};
use crate::trigger::{self, Item, ObjectRef, StreamRecord};
use crate::{Error, MISSING};

/// Bytes read from an object per step (1 MiB).
const READ_BYTES: usize = 1 << 20;
const PAGE: usize = 4096;

/// `len` bytes of `space` starting at a page boundary. The kernel's copy into a read buffer
/// (`rep movsb`) is several times slower on some x86 CPUs (AMD Zen measured: 16% of a rollup's
/// time, against 4%) when the destination is not aligned like the page-cache source.
fn page_aligned(space: &mut [u8], len: usize) -> &mut [u8] {
    let off = space.as_ptr().align_offset(PAGE).min(PAGE);
    &mut space[off..off + len]
}

/// What one event did; printed by `sluice replay --json`, returned by the Lambda.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// The event's name (file, or file:line for `.jsonl`); empty in the Lambda.
    pub event: String,
    /// The trigger shape seen: `s3`, `sqs`, `sns`, `sqs+sns`, `eventbridge`, or `unknown`.
    pub trigger: String,
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
    /// What was skipped and why.
    pub skips: Vec<Skip>,
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
            trigger: "unknown".into(),
            error: Some(error),
            ..Summary::default()
        }
    }

    /// True when something failed (the invocation errors, or SQS messages are retried).
    pub fn failed(&self) -> bool {
        self.error.is_some() || !self.batch_item_failures.is_empty()
    }

    /// The Lambda response: `{"batchItemFailures": […]}` for SQS events, otherwise the summary.
    pub fn lambda_response(&self, sqs: bool) -> Value {
        if sqs {
            let items: Vec<Value> = self
                .batch_item_failures
                .iter()
                .map(|id| serde_json::json!({ "itemIdentifier": id }))
                .collect();
            match &self.state {
                // A tumbling window answers with its state and the failures together.
                Some(state) => serde_json::json!({ "state": state, "batchItemFailures": items }),
                None => serde_json::json!({ "batchItemFailures": items }),
            }
        } else {
            serde_json::to_value(self).unwrap_or(Value::Null)
        }
    }
}

impl Summary {
    /// Add one unit of work's counts and outputs.
    fn absorb(&mut self, r: ObjectResult) {
        self.records_in += r.records_in;
        self.records_out += r.records_out;
        self.rejected += r.rejected;
        self.outputs.extend(r.outputs);
    }

    /// Report `rest` of a stream batch for redelivery: a Kinesis shard resumes at its first
    /// record, SQS retries each message.
    fn redeliver(&mut self, rest: &[&StreamRecord], kinesis: bool) {
        let n = if kinesis { 1 } else { rest.len() };
        self.batch_item_failures
            .extend(rest.iter().take(n).map(|r| r.id().to_string()));
    }
}

/// What processing one object produced.
#[derive(Debug, Default)]
struct ObjectResult {
    /// Set when the object was read but nothing in it was usable.
    error: Option<Error>,
    records_in: u64,
    records_out: u64,
    rejected: u64,
    /// Of `rejected`, the records that could not be decoded at all (not those a stage refused).
    undecodable: u64,
    outputs: Vec<String>,
    /// A stream batch stopped before this record, its deadline near.
    stopped_at: Option<usize>,
    /// sha256 and sniffed content type of the object read (for the catalog).
    fingerprint: Option<(String, &'static str)>,
    /// What the resize stage saw of an image (for the catalog).
    image: Option<crate::catalog::ImageFacts>,
    /// Per-column statistics of the rows written (for the catalog).
    columns: Vec<sluice_processors::stats::ColumnStat>,
    /// Objects of a per-invocation run left out: overwritten since their notification.
    superseded: Vec<String>,
}

/// Runs a [`Plan`] against objects in a store.
#[derive(Clone)]
pub struct Handler {
    plan: Arc<Plan>,
    input: Arc<dyn ObjectStore>,
    output: Arc<dyn ObjectStore>,
    streams: Option<Arc<dyn RecordPutter>>,
    extra: Vec<Arc<dyn StageFactory>>,
    /// Nanoseconds spent in each stage (configured, then extra) during the current event.
    clock: Arc<Vec<AtomicU64>>,
    /// The deadline of an event handled without one: this long after it starts (a function's
    /// timeout, for replay).
    timeout: Option<std::time::Duration>,
    /// The memory budget in MB ([`crate::budget`]).
    memory_mb: u64,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("pipeline", &self.plan.config.name)
            .finish()
    }
}

impl Handler {
    /// Read objects from `input`; write S3 destinations to `output` (local folders are always local).
    pub fn new(plan: Plan, input: Arc<dyn ObjectStore>, output: Arc<dyn ObjectStore>) -> Self {
        let clock = stage_clock(plan.stages.len());
        Self {
            plan: Arc::new(plan),
            input,
            output,
            streams: None,
            extra: Vec::new(),
            clock,
            timeout: None,
            memory_mb: crate::budget::memory_mb(),
        }
    }

    /// The memory budget, in MB, in place of the one from the environment
    /// ([`crate::budget::memory_mb`]): what `sluice replay --memory-mb` sets.
    pub fn with_memory_mb(mut self, mb: u64) -> Self {
        self.memory_mb = mb.max(crate::budget::MIN_MEMORY_MB);
        self
    }

    /// Give every event handled without a deadline one, `timeout` after it starts, as a Lambda
    /// function's timeout does (what `sluice replay --timeout` sets).
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Put the rows of a `kinesis://` output with `putter`.
    pub fn with_record_putter(mut self, putter: Arc<dyn RecordPutter>) -> Self {
        self.streams = Some(putter);
        self
    }

    /// The outputs of one unit of work, named after `base`; an index stage names its row
    /// documents after `source`.
    fn outputs(&self, base: String, source: &str) -> Outputs {
        let outputs = Outputs::new(
            &self.plan.config.output,
            &self.plan.output,
            &self.output,
            self.streams.as_ref(),
            base,
        )
        .with_memory(crate::budget::writers_bytes(self.memory_mb));
        let outputs = match &self.plan.index {
            Some(_) => outputs.with_stats(),
            None => outputs,
        };
        #[cfg(feature = "index")]
        if let Some(spec) = self.plan.index.as_ref().filter(|i| i.text.is_some()) {
            return outputs.with_index(spec, source.to_string());
        }
        let _ = source;
        outputs
    }

    /// Append a stage of your own after the configured ones.
    pub fn with_stage(mut self, stage: Arc<dyn StageFactory>) -> Self {
        self.extra.push(stage);
        self.clock = stage_clock(self.plan.stages.len() + self.extra.len());
        self
    }

    /// The plan's decoder for `key`, keeping each row's input line when a stage of this handler
    /// (its own included) or its output can refuse a row and the rejects are written.
    fn decoder(&self, key: &str) -> Result<Box<dyn Decoder>, sluice_processors::Error> {
        let mut d = self.plan.decoder(key)?;
        d.keep_origins(self.plan.traces_rejects(!self.extra.is_empty()));
        Ok(d)
    }

    /// Each stage's name and the milliseconds spent in it since the last call (which resets).
    fn stage_times(&self) -> Vec<StageTime> {
        self.plan
            .stages
            .iter()
            .map(|s| s.factory.name())
            .chain(self.extra.iter().map(|f| f.name()))
            .zip(self.clock.iter())
            .map(|(name, ns)| StageTime {
                stage: name.to_string(),
                ms: ns.swap(0, Ordering::Relaxed) as f64 / 1e6,
            })
            .collect()
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Process one event. Never panics; failures are in the summary.
    pub async fn handle(&self, event: &Value) -> (Summary, bool) {
        self.handle_until(event, None).await
    }

    /// Process one event that must be done by `deadline` (the Lambda invocation's): a stream batch
    /// stops at a record boundary `[output] deadline_reserve_ms` before it, writes what is done and
    /// reports the rest as batch item failures, rather than being killed mid-write.
    pub async fn handle_until(&self, event: &Value, deadline: Option<Instant>) -> (Summary, bool) {
        self.handle_parsed(trigger::parse(event), Instant::now(), deadline)
            .await
    }

    /// Process an event given as the invocation's JSON bytes (what the Lambda runtime receives): a
    /// plain Kinesis batch is read without building a JSON tree ([`crate::fastevent`]), anything
    /// else is parsed with `serde_json`. Otherwise as [`Handler::handle_until`].
    pub async fn handle_bytes(&self, body: &[u8], deadline: Option<Instant>) -> (Summary, bool) {
        let started = Instant::now();
        if let Some(parsed) = crate::fastevent::kinesis(body) {
            return self.handle_parsed(parsed, started, deadline).await;
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(event) => {
                self.handle_parsed(trigger::parse(&event), started, deadline)
                    .await
            }
            Err(e) => (
                Summary::unknown(format!("the event is not JSON: {e}")),
                false,
            ),
        }
    }

    /// With a deadline, every request is bounded by it (a fifth of the time left before it, at
    /// least 200 ms and at most 1.5 s, is kept for clean-up and the answer), and whatever is still
    /// running just before it is given up: the answer is then the one that loses nothing (every
    /// SQS message and the batch's first Kinesis record reported for redelivery, an asynchronous
    /// event failed), so Lambda always gets an answer before it kills the function.
    async fn handle_parsed(
        &self,
        parsed: trigger::Parsed,
        started: Instant,
        deadline: Option<Instant>,
    ) -> (Summary, bool) {
        let Some(deadline) = deadline.or_else(|| self.timeout.map(|t| started + t)) else {
            return self.run_parsed(&parsed, started, None).await;
        };
        let now = Instant::now();
        let (cut, last) = deadline_cuts(deadline, now);
        let gave_up = || {
            warn!(
                "The invocation's deadline came before it finished; reporting all of it for redelivery."
            );
            out_of_time(&parsed, started)
        };
        if last <= now {
            return gave_up();
        }
        let work = crate::store::with_deadline(
            Some(cut),
            self.run_parsed(&parsed, started, Some(deadline)),
        );
        // The deadline is looked at first each time the work yields: work that could still
        // finish after it must not, since its answer would come too late.
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(last.into()) => gave_up(),
            done = work => done,
        }
    }

    async fn run_parsed(
        &self,
        parsed: &trigger::Parsed,
        started: Instant,
        deadline: Option<Instant>,
    ) -> (Summary, bool) {
        let mut s = Summary {
            trigger: parsed.trigger.clone(),
            error: parsed.error.clone(),
            ..Summary::default()
        };
        let mut errors = Vec::new();
        // With an index stage, every object met gets a catalog row.
        let mut catalog: Vec<CatalogRow> = Vec::new();
        let cataloging = self.plan.index.is_some();
        let format = self.plan.config.input.format.as_str();
        let mut objects: Vec<&ObjectRef> = Vec::new();
        let mut records: Vec<&StreamRecord> = Vec::new();
        for item in &parsed.items {
            match item {
                Item::Record(r) => records.push(r),
                Item::Skipped {
                    source,
                    reason,
                    object,
                } => {
                    // A deletion or other change to an object is in the audit log too.
                    self.skip(&mut s, &mut catalog, object.as_deref(), source, reason);
                }
                Item::Failed { message_id, reason } => {
                    warn!(message_id, reason, "Cannot process an SQS message.");
                    s.batch_item_failures.push(message_id.clone());
                    errors.push(format!("message {message_id}: {reason}"));
                }
                Item::Object(obj) => {
                    if let Some(reason) = self.skip_reason(obj) {
                        self.skip(&mut s, &mut catalog, Some(obj), &obj.uri(), &reason);
                        continue;
                    }
                    objects.push(obj);
                }
            }
        }
        s.bytes_in = objects.iter().filter_map(|o| o.size).sum::<u64>()
            + records
                .iter()
                .map(|r| r.data.as_ref().map_or(0, |d| d.len() as u64))
                .sum::<u64>();
        let mut per_item = parsed.sqs;
        s.delivered = records.len() as u64;
        if !records.is_empty() || parsed.window.is_some() {
            let t = Instant::now();
            let kinesis = parsed.trigger == "kinesis";
            let outcome = match &parsed.window {
                Some(w) => self
                    .process_window(&records, w, parsed.lines.as_ref(), deadline)
                    .await
                    .map(|(r, state)| (r, Some(state))),
                None => self
                    .process_records(&records, parsed.lines.as_ref(), deadline)
                    .await
                    .map(|r| (r, None)),
            };
            match outcome {
                Ok((r, state)) => {
                    s.state = state;
                    if let Some(n) = r.stopped_at {
                        // Lambda redelivers from the first failure (Kinesis) or each failed
                        // message (SQS): exactly the records not processed.
                        let rest = &records[n..];
                        s.redeliver(rest, kinesis);
                        warn!(
                            processed = n,
                            left = rest.len(),
                            "The invocation's deadline is near: stopped at a record boundary."
                        );
                    }
                    info!(
                        records = records.len(),
                        records_in = r.records_in,
                        records_out = r.records_out,
                        rejected = r.rejected,
                        ms = t.elapsed().as_millis() as u64,
                        "Processed batch."
                    );
                    s.absorb(r);
                }
                Err(e) => {
                    // Nothing of the batch was written (outputs are aborted whole), so Lambda must
                    // redeliver all of it: a Kinesis shard resumes at the first record, and every
                    // SQS message is retried; a window keeps the state it came with.
                    s.redeliver(&records, kinesis);
                    if let Some(w) = &parsed.window {
                        s.state = Some(w.state.clone());
                        // With no record to name, only an invocation error makes Lambda retry.
                        per_item &= !records.is_empty();
                    }
                    warn!(error = %e, "Batch failed.");
                    errors.push(e.to_string());
                }
            }
        }
        if self.per_invocation() && !objects.is_empty() {
            // One chain over every object: an aggregate sees the whole invocation, and writes once.
            let t = Instant::now();
            match self.process_all(&objects).await {
                Ok(mut r) => {
                    let superseded = std::mem::take(&mut r.superseded);
                    for uri in &superseded {
                        let obj = objects.iter().find(|o| &o.uri() == uri).copied();
                        self.skip(&mut s, &mut catalog, obj, uri, crate::SUPERSEDED);
                    }
                    let objects: Vec<&ObjectRef> = objects
                        .iter()
                        .filter(|o| !superseded.contains(&o.uri()))
                        .copied()
                        .collect();
                    info!(
                        objects = objects.len(),
                        records_in = r.records_in,
                        records_out = r.records_out,
                        rejected = r.rejected,
                        ms = t.elapsed().as_millis() as u64,
                        "Processed invocation."
                    );
                    s.objects += objects.len() as u64;
                    if cataloging {
                        for obj in &objects {
                            let mut row = CatalogRow::new(obj, "processed", None, format);
                            row.outputs = r.outputs.clone();
                            row.columns = r.columns.clone();
                            catalog.push(row);
                        }
                    }
                    s.absorb(r);
                }
                Err(e) => {
                    // Nothing was written; every message must be retried.
                    s.failed_objects += objects.len() as u64;
                    for obj in &objects {
                        if let Some(id) = &obj.message_id
                            && !s.batch_item_failures.contains(id)
                        {
                            s.batch_item_failures.push(id.clone());
                        }
                    }
                    warn!(error = %e, "Invocation failed.");
                    if cataloging {
                        for obj in &objects {
                            catalog.push(CatalogRow::new(
                                obj,
                                "failed",
                                Some(e.to_string()),
                                format,
                            ));
                        }
                    }
                    errors.push(e.to_string());
                }
            }
        } else {
            use futures::StreamExt;
            // Images are CPU work off the async threads: as many at once as there are cores (each
            // holds one decoded image). Record files stream one after another.
            let width = if self.plan.resize.is_some() {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            } else {
                1
            };
            // At most `width` objects' futures exist at a time: each holds its whole processing
            // state, so making all of a 10 000-object event's futures up front took ~20 KB per
            // object before any was read. (Pushed by hand: a closure in a stream's type trips the
            // Send check of the Lambda future.)
            let mut waiting = objects.into_iter();
            let mut done = futures::stream::FuturesOrdered::new();
            for obj in waiting.by_ref().take(width) {
                done.push_back(self.timed(obj));
            }
            while let Some((obj, t, outcome)) = done.next().await {
                if let Some(next) = waiting.next() {
                    done.push_back(self.timed(next));
                }
                match outcome {
                    Ok(mut r) => {
                        info!(
                            bucket = %obj.bucket, key = %obj.key, records_in = r.records_in,
                            records_out = r.records_out, rejected = r.rejected,
                            ms = t.elapsed().as_millis() as u64, "Processed object."
                        );
                        let error = r.error.take();
                        if cataloging {
                            let status = if error.is_some() {
                                "failed"
                            } else {
                                "processed"
                            };
                            let reason = error.as_ref().map(ToString::to_string);
                            let mut row = CatalogRow::new(obj, status, reason, format);
                            row.counts = Some((r.records_in, r.records_out, r.rejected));
                            row.outputs = r.outputs.clone();
                            if let Some((hash, ct)) = r.fingerprint.take() {
                                row.sha256 = Some(hash);
                                row.content_type = Some(ct);
                            }
                            row.image = r.image;
                            row.columns = std::mem::take(&mut r.columns);
                            catalog.push(row);
                        }
                        s.absorb(r);
                        match error {
                            None => s.objects += 1,
                            Some(e) => self.fail(obj, e, &mut s, &mut errors),
                        }
                    }
                    Err(e)
                        if e.missing() && self.plan.config.input.on_missing == OnMissing::Skip =>
                    {
                        // Gone since its notification: nothing to retry; said so, not failed.
                        info!(bucket = %obj.bucket, key = %obj.key, "Object gone; skipped.");
                        let reason = e.missing_reason().unwrap_or_else(|| MISSING.into());
                        self.skip(&mut s, &mut catalog, Some(obj), &obj.uri(), &reason);
                    }
                    Err(e) if e.superseded() => {
                        // Overwritten since its notification: the newer upload's notification
                        // reads it; reading it here too would write its rows twice.
                        info!(bucket = %obj.bucket, key = %obj.key, "Object overwritten since its notification; skipped.");
                        self.skip(
                            &mut s,
                            &mut catalog,
                            Some(obj),
                            &obj.uri(),
                            crate::SUPERSEDED,
                        );
                    }
                    Err(ref e) if let Some(pipeline) = e.own_output_of() => {
                        // Written by this pipeline (its metadata marker): processing it would
                        // trigger the pipeline again, and again.
                        warn!(bucket = %obj.bucket, key = %obj.key, "Object written by this pipeline; skipped (recursive-invocation guard).");
                        let reason = crate::own_output(pipeline);
                        self.skip(&mut s, &mut catalog, Some(obj), &obj.uri(), &reason);
                    }
                    Err(e) => {
                        if cataloging {
                            catalog.push(CatalogRow::new(
                                obj,
                                "failed",
                                Some(e.to_string()),
                                format,
                            ));
                        }
                        self.fail(obj, e, &mut s, &mut errors)
                    }
                }
            }
        }
        // Never a row for the pipeline's own outputs: the row would be an output too, and its
        // notification would make another row, and so on.
        for row in catalog.iter().filter(|r| !self.is_own(&r.bucket, &r.key)) {
            if let Err(e) = self.write_catalog(row).await {
                warn!(error = %e, "Could not write the catalog row.");
                errors.push(e.to_string());
            }
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
        s.stages = self.stage_times();
        (s, per_item)
    }

    /// `{output}/_index/objects/{name}.parquet`: the object's catalog row, named like its outputs.
    async fn write_catalog(&self, row: &CatalogRow) -> Result<(), Error> {
        let Some((store, bucket, prefix)) = crate::output::resolve(&self.plan.output, &self.output)
        else {
            return Ok(());
        };
        let name = base_name(
            &row.bucket,
            &row.key,
            row.version_id.as_deref().or(row.etag.as_deref()),
        );
        let key = format!("{prefix}_index/objects/{name}.parquet");
        let file = crate::output::parquet_file(&crate::catalog::batch(row)?)?;
        let meta = crate::store::ObjectMeta::typed(crate::output::PARQUET_TYPE);
        crate::store::put(store.as_ref(), &bucket, &key, meta, file).await
    }

    /// True when a stage needs every record of the invocation (an aggregate).
    fn per_invocation(&self) -> bool {
        self.plan.stages.iter().any(|s| s.factory.per_invocation())
            || self.extra.iter().any(|f| f.per_invocation())
    }

    /// The records of a stream batch through one chain, in order; one set of outputs named after
    /// the batch (shard and first sequence number), so a redelivered batch overwrites, whatever
    /// its size.
    async fn process_records(
        &self,
        recs: &[&StreamRecord],
        lines: Option<&bytes::Bytes>,
        deadline: Option<Instant>,
    ) -> Result<ObjectResult, Error> {
        let Some(first) = recs.first() else {
            return Ok(ObjectResult::default());
        };
        let (base, source) = if first.shard().is_empty() {
            (
                invocation_name(recs.iter().map(|r| ("sqs", r.id(), None))),
                format!("sqs message {}", first.id()),
            )
        } else {
            (
                crate::output::stream_name(first.shard(), first.id()),
                format!("kinesis {} from {}", first.shard(), first.id()),
            )
        };
        let mut unit = UnitOfWork::new(self, base, source);
        let stop = self.stop_before(deadline);
        let ran = self
            .run_records(Batch { recs, lines }, stop, &mut unit)
            .await;
        unit.close(ran).await
    }

    /// Decode each record's payload (KPL aggregates split into their user records, gzip inflated)
    /// and push it through the chain. Line formats share one decoder with a line break between
    /// records; document formats (json, cloudtrail, cloudwatch-logs, text) decode each record as
    /// a document of its own, and a record that is not a good document is one reject (its rows, if
    /// any were decoded, are dropped with it), so bad data never blocks the shard.
    async fn run_records(
        &self,
        Batch { recs, lines }: Batch<'_>,
        stop: Option<Instant>,
        unit: &mut UnitOfWork<'_>,
    ) -> Result<(), Error> {
        let line_format = matches!(
            self.plan.input,
            InputSpec::Ndjson | InputSpec::Log(_) | InputSpec::Csv(_)
        );
        let mut shared = if line_format {
            Some(self.decoder("")?)
        } else {
            None
        };
        let mut decoded = Decoded::default();
        let mut inflated = Vec::new();
        // With stream columns, each payload's rows are flushed and tagged with where they came
        // from, then gathered back into full batches so the stages never see tiny ones.
        let cols = self.plan.stream_columns();
        let batch_rows = self.plan.config.input.batch_rows.max(1);
        let mut tagged: Vec<(RecordBatch, Option<Origins>)> = Vec::new();
        let mut pending = Pending::default();
        let mut watch = Watch::new();
        for (n, rec) in recs.iter().enumerate() {
            // The first record is always processed: every invocation makes progress.
            if n > 0 && watch.past(stop) {
                unit.counts.stopped_at = Some(n);
                break;
            }
            watch.passed(rec.data.as_ref().map_or(0, |d| d.len()));
            let reject = |reason: &str, raw: &[u8]| {
                sluice_processors::Reject::new(
                    n as u64 + 1,
                    format!("record {}: {reason}", rec.id()),
                    raw,
                )
            };
            // (subsequence, partition key, payload); a plain record allocates no list.
            let single: [(i64, &str, &[u8]); 1];
            let users: Vec<(i64, &str, &[u8])>;
            let payloads: &[(i64, &str, &[u8])] = match &rec.data {
                Err(reason) => {
                    decoded.rejects.push(reject(reason, b""));
                    &[]
                }
                Ok(data) if crate::kpl::is_aggregated(data) => {
                    match crate::kpl::deaggregate(data) {
                        Ok(u) => {
                            users = u
                                .into_iter()
                                .enumerate()
                                .map(|(i, u)| (i as i64, u.partition_key, u.data))
                                .collect();
                            &users
                        }
                        Err(reason) => {
                            decoded.rejects.push(reject(&reason, data));
                            &[]
                        }
                    }
                }
                Ok(data) => {
                    single = [(0, rec.partition_key(), &data[..])];
                    &single
                }
            };
            for &(subsequence, partition_key, payload) in payloads {
                let payload = if payload.starts_with(&GZIP_MAGIC) {
                    match inflate(payload, &mut inflated, MAX_RECORD_INFLATED) {
                        Ok(()) => inflated.as_slice(),
                        Err(reason) => {
                            decoded.rejects.push(reject(&reason, payload));
                            continue;
                        }
                    }
                } else {
                    payload
                };
                let mut doc = Decoded::default();
                match shared.as_mut() {
                    Some(d) if cols.is_empty() => {
                        // Records' lines are gathered and decoded a large block at a time: one
                        // decoder call per record would cost more than the records themselves.
                        pending.add(d.as_mut(), lines, payload, &mut decoded)?;
                    }
                    Some(d) => {
                        d.decode(payload, &mut doc)?;
                        if !payload.ends_with(b"\n") {
                            d.decode(b"\n", &mut doc)?;
                        }
                        d.flush(&mut doc)?;
                    }
                    None => {
                        let mut d = self.decoder("")?;
                        if let Err(e) = d
                            .decode(payload, &mut doc)
                            .and_then(|()| d.finish(&mut doc))
                        {
                            doc = Decoded::default();
                            decoded.rejects.push(reject(&e.to_string(), payload));
                        }
                    }
                }
                if cols.is_empty() {
                    decoded.append(&mut doc);
                    continue;
                }
                decoded.rejects.append(&mut doc.rejects);
                let origin = crate::stream::Origin {
                    shard: Some(rec.shard()).filter(|s| !s.is_empty()),
                    sequence: rec.id(),
                    subsequence,
                    partition_key: Some(partition_key).filter(|k| !k.is_empty()),
                    arrival: rec.arrival,
                };
                for (b, o) in doc.take_batches() {
                    if b.num_rows() > 0 {
                        tagged.push((crate::stream::tag(&b, cols, &origin)?, o));
                    }
                }
                if tagged.iter().map(|(b, _)| b.num_rows()).sum::<usize>() >= batch_rows {
                    let (b, o) = gather(&mut tagged)?;
                    decoded.emit(b, o);
                }
            }
            // Most records only add lines to what is pending: nothing to drain yet.
            if !decoded.batches.is_empty() || !decoded.rejects.is_empty() {
                unit.push(&mut decoded).await?;
                watch.worked();
            }
        }
        if let Some(d) = shared.as_mut() {
            // With stream columns every row was flushed at its record's end; nothing is left.
            pending.flush(d.as_mut(), lines, &mut decoded)?;
            d.finish(&mut decoded)?;
        }
        if !tagged.is_empty() {
            let (b, o) = gather(&mut tagged)?;
            decoded.emit(b, o);
        }
        unit.push(&mut decoded).await
    }

    /// Every object through one unit of work: one chain, one set of outputs named after all of
    /// the objects, and a rejects file per object.
    async fn process_all(&self, objs: &[&ObjectRef]) -> Result<ObjectResult, Error> {
        let wrap = |obj: &ObjectRef, e: Error| match e {
            Error::Store { .. } => e,
            other => Error::Object {
                location: obj.uri(),
                source: Box::new(other),
            },
        };
        let base = invocation_name(objs.iter().map(|o| {
            (
                o.bucket.as_str(),
                o.key.as_str(),
                o.version_id.as_deref().or(o.etag.as_deref()),
            )
        }));
        let mut unit = UnitOfWork::new(self, base.clone(), base.clone());
        for obj in objs {
            let version = obj.version_id.as_deref().or(obj.etag.as_deref());
            unit.next_source(obj.uri(), base_name(&obj.bucket, &obj.key, version));
            let ran = match self.run(obj, &mut unit).await {
                // Overwritten since its notification, found before a byte of it was read: left
                // out (its newer upload's notification reads it), or the invocation would fail
                // on it every time it is delivered again.
                Err(e) if e.superseded() => {
                    unit.leave_out(obj.uri()).await;
                    continue;
                }
                Ok(()) => unit.end_source().await,
                Err(e) => Err(e),
            };
            if let Err(e) = ran {
                unit.abort().await;
                return Err(wrap(obj, e));
            }
        }
        // Objects were read but gave no record (an empty file): with a declared schema the
        // chain is built anyway, so a global aggregate still writes its one row (count 0), as
        // SQL does over an empty table.
        if !unit.has_chain()
            && let (Some(obj), Some(schema)) = (objs.last(), self.plan.schema.clone())
            && let Err(e) = unit.start_chain(schema)
        {
            unit.abort().await;
            return Err(wrap(obj, e));
        }
        // What the stages emit at the end of the invocation has its own rejects file.
        let source = objs.last().map(|o| o.uri()).unwrap_or_default();
        unit.next_source(source, format!("{base}-final"));
        unit.finish().await
    }

    fn fail(&self, obj: &ObjectRef, e: Error, s: &mut Summary, errors: &mut Vec<String>) {
        warn!(bucket = %obj.bucket, key = %obj.key, error = %e, retryable = e.retryable(), "Object failed.");
        s.failed_objects += 1;
        if let Some(id) = &obj.message_id
            && !s.batch_item_failures.contains(id)
        {
            s.batch_item_failures.push(id.clone());
        }
        errors.push(e.to_string());
    }

    /// A skipped item: counted, reported with its reason, and, when it names an object and the
    /// pipeline keeps a catalog, a `skipped` row there.
    fn skip(
        &self,
        s: &mut Summary,
        catalog: &mut Vec<CatalogRow>,
        object: Option<&ObjectRef>,
        source: &str,
        reason: &str,
    ) {
        if let Some(obj) = object
            && self.plan.index.is_some()
        {
            catalog.push(CatalogRow::new(
                obj,
                "skipped",
                Some(reason.to_string()),
                &self.plan.config.input.format,
            ));
        }
        s.skipped += 1;
        s.skips.push(Skip {
            source: source.to_string(),
            reason: reason.to_string(),
        });
    }

    fn skip_reason(&self, obj: &ObjectRef) -> Option<String> {
        if !self.plan.bucket_selected(&obj.bucket) {
            return Some(format!(
                "bucket is not in [input] buckets ({})",
                self.plan.config.input.buckets.join(", ")
            ));
        }
        if !self.plan.key_selected(&obj.key) {
            return Some(format!(
                "key does not match [input] keys ({})",
                self.plan.config.input.keys.join(", ")
            ));
        }
        if self.plan.output.contains(&obj.bucket, &obj.key) {
            return Some(format!(
                "is under the output location {} (recursive-invocation guard)",
                self.plan.output
            ));
        }
        if let Some(r) = &self.plan.rejects
            && r.contains(&obj.bucket, &obj.key)
        {
            return Some(format!(
                "is under the rejects location {r} (recursive-invocation guard)"
            ));
        }
        None
    }

    /// Whether `bucket`/`key` is where this pipeline writes (its outputs, index or rejects).
    fn is_own(&self, bucket: &str, key: &str) -> bool {
        self.plan.output.contains(bucket, key)
            || self
                .plan
                .rejects
                .as_ref()
                .is_some_and(|r| r.contains(bucket, key))
    }

    /// [`Self::process`], with when it started.
    async fn timed<'a>(
        &self,
        obj: &'a ObjectRef,
    ) -> (&'a ObjectRef, Instant, Result<ObjectResult, Error>) {
        let t = Instant::now();
        // Past the deadline for requests, an object is not started: it is failed (retried by
        // Lambda, or its SQS message redelivered) rather than begun and cut short.
        let outcome = match crate::store::request_deadline() {
            Some(d) if t >= d => Err(Error::Store {
                location: obj.uri(),
                message: "not started: the invocation's deadline was too near".into(),
                retryable: true,
            }),
            _ => self.process(obj).await,
        };
        (obj, t, outcome)
    }

    async fn process(&self, obj: &ObjectRef) -> Result<ObjectResult, Error> {
        let wrap = |e: Error| match e {
            Error::Store { .. } => e,
            other => Error::Object {
                location: obj.uri(),
                source: Box::new(other),
            },
        };
        let version = obj.version_id.as_deref().or(obj.etag.as_deref());
        let base = base_name(&obj.bucket, &obj.key, version);
        let mut unit = UnitOfWork::new(self, base, obj.uri());
        let ran = self.run(obj, &mut unit).await;
        let mut result = unit.close(ran).await.map_err(wrap)?;
        // An image that cannot be read is a reject, and the rest of the event goes on; a record
        // file none of whose records can be decoded is more likely the wrong format, and fails.
        // (Records a stage refused, an overflow say, were read: they never fail the object.)
        if result.records_in > 0
            && result.records_in == result.undecodable
            && self.plan.resize.is_none()
        {
            result.error = Some(wrap(Error::Io(format!(
                "none of its {} records could be read as `{}` (all are in the rejects); check [input] format and compression",
                result.rejected, self.plan.config.input.format
            ))));
        }
        Ok(result)
    }

    /// Read one object into the chain (built on its first batch if there is none yet).
    async fn run(&self, obj: &ObjectRef, unit: &mut UnitOfWork<'_>) -> Result<(), Error> {
        if let Some(c) = self.plan.stream_columns().first() {
            return Err(Error::Io(format!(
                "the pipeline reads `{}`, a column of stream records (Kinesis, SQS), which S3 objects do not have",
                c.name()
            )));
        }
        // (A plan has a resize stage only in builds with the `image` feature.)
        #[cfg(feature = "image")]
        if let Some(spec) = &self.plan.resize {
            return self.resize(obj, spec, unit).await;
        }
        if matches!(self.plan.input, InputSpec::Parquet) {
            self.read_parquet(obj, unit).await?;
        } else {
            let input = &self.plan.config.input;
            let at = obj.at();
            let reader = self.input.get(&obj.bucket, &obj.key, &at).await?;
            // The catalog's hash and content type, taken from the stored bytes as they stream.
            let (reader, seen) = if self.plan.index.is_some() {
                let (r, seen) = crate::catalog::fingerprinted(reader);
                (r, Some(seen))
            } else {
                (reader, None)
            };
            let mut reader = decompress(reader, input.compression, input.max_inflate_ratio).await?;
            let mut decoder = self.decoder(&obj.key)?;
            let mut space = vec![0u8; READ_BYTES + PAGE];
            let buf = page_aligned(&mut space, READ_BYTES);
            let mut decoded = Decoded::default();
            loop {
                let n = reader
                    .read(buf)
                    .await
                    .map_err(|e| read_error(&obj.uri(), e))?;
                if n == 0 {
                    decoder.finish(&mut decoded)?;
                } else {
                    decoder.decode(&buf[..n], &mut decoded)?;
                }
                unit.push(&mut decoded).await?;
                if n == 0 {
                    break;
                }
            }
            if let Some(seen) = seen {
                drop(reader);
                if let Some(f) = Arc::into_inner(seen).and_then(|m| m.into_inner().ok()) {
                    unit.counts.fingerprint = Some(f.finish());
                }
            }
        }
        Ok(())
    }

    /// An image: read whole (within `max_input_bytes`), made into its renditions off the async
    /// threads, each written as `{output}/{variant}/{key with the new extension}`; a file that
    /// cannot be read is a reject, not a failure. Stages after `resize` get a row per rendition.
    #[cfg(feature = "image")]
    async fn resize(
        &self,
        obj: &ObjectRef,
        spec: &crate::config::ResizeSpec,
        unit: &mut UnitOfWork<'_>,
    ) -> Result<(), Error> {
        use sluice_processors::resize::renditions;
        use tokio::io::AsyncReadExt;
        let limit = spec.options.max_input_bytes;
        let over = |n: u64| format!("the file is {n} bytes, over max_input_bytes ({limit})");
        let made = match obj.size {
            // Refused before a byte is downloaded.
            Some(n) if n > limit => Err((over(n), Vec::new())),
            _ => {
                let mut data = Vec::new();
                let at = obj.at();
                self.input
                    .get(&obj.bucket, &obj.key, &at)
                    .await?
                    .take(limit + 1)
                    .read_to_end(&mut data)
                    .await
                    .map_err(|e| read_error(&obj.uri(), e))?;
                if self.plan.index.is_some() {
                    let mut f = crate::catalog::Fingerprint::default();
                    f.update(&data);
                    unit.counts.fingerprint = Some(f.finish());
                }
                if data.len() as u64 > limit {
                    Err((over(data.len() as u64), Vec::new()))
                } else {
                    let options = spec.options.clone();
                    tokio::task::spawn_blocking(move || match renditions(&data, &options) {
                        Ok((info, r)) => Ok((info, r)),
                        Err(reason) => Err((reason, data)),
                    })
                    .await
                    .map_err(|e| Error::Io(format!("the resize worker stopped: {e}")))?
                }
            }
        };
        let made = match made {
            Ok((info, r)) => {
                // Upright, as a viewer shows it.
                let (w, h) = if info.orientation >= 5 {
                    (info.height, info.width)
                } else {
                    (info.width, info.height)
                };
                unit.counts.image = Some(crate::catalog::ImageFacts {
                    width: w,
                    height: h,
                    orientation: info.orientation,
                    renditions: r.len(),
                });
                r
            }
            Err((reason, data)) => {
                let mut decoded = Decoded::default();
                decoded
                    .rejects
                    .push(sluice_processors::Reject::new(1, reason, &data));
                return unit.push(&mut decoded).await;
            }
        };
        unit.counts.records_in += 1;
        let mut rows = RenditionRows::default();
        for r in made {
            let key = format!(
                "{}/{}",
                r.variant,
                with_extension(&obj.key, r.format.extension())
            );
            let n = r.bytes.len();
            let location = unit
                .sink
                .write_blob(
                    &key,
                    crate::store::ObjectMeta {
                        content_type: r.format.content_type(),
                        cache_control: Some(&spec.cache_control),
                    },
                    r.bytes,
                )
                .await?;
            unit.counts.records_out += 1;
            rows.push(
                &obj.uri(),
                &r.variant,
                &location,
                r.width,
                r.height,
                n,
                r.format.name(),
            );
        }
        if !self.plan.stages.is_empty() {
            let schema = crate::config::rendition_schema();
            let batch = rows.finish(&schema)?;
            unit.push_batches(vec![(batch, None)]).await?;
        }
        Ok(())
    }

    /// Parquet: the footer, then row groups, fetched by range with only the columns the stages need.
    async fn read_parquet(&self, obj: &ObjectRef, unit: &mut UnitOfWork<'_>) -> Result<(), Error> {
        use futures::StreamExt;
        use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
        let not_parquet = |e: parquet::errors::ParquetError| {
            Error::Io(format!(
                "not a readable Parquet file ({e}); check [input] format"
            ))
        };
        let at = obj.at();
        let size = self.input.size(&obj.bucket, &obj.key, &at).await?;
        let file =
            crate::store::RangeReader::new(self.input.clone(), &obj.bucket, &obj.key, at, size);
        let builder = ParquetRecordBatchStreamBuilder::new(file)
            .await
            .map_err(not_parquet)?;
        let mut builder = builder.with_batch_size(self.plan.config.input.batch_rows);
        if let Some(cols) = self.plan.projection().filter(|_| self.extra.is_empty()) {
            let schema = builder.schema().clone();
            let mut roots = Vec::new();
            for c in &cols {
                match schema.index_of(c) {
                    Ok(i) => roots.push(i),
                    Err(_) => {
                        let names: Vec<&str> =
                            schema.fields().iter().map(|f| f.name().as_str()).collect();
                        return Err(Error::Io(format!(
                            "the pipeline reads column `{c}`, which this Parquet file does not have (columns: {})",
                            names.join(", ")
                        )));
                    }
                }
            }
            roots.sort_unstable();
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            builder = builder.with_projection(mask);
        }
        let mut stream = builder.build().map_err(not_parquet)?;
        let mut first_row = 1;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(not_parquet)?;
            let n = batch.num_rows() as u64;
            // A timestamp outside the years 1 to 9999 is a reject here as in every decoder.
            let (batch, out_of_range) =
                sluice_processors::decode::timestamp::refuse_out_of_range(batch, first_row)?;
            first_row += n;
            let mut decoded = Decoded {
                rejects: out_of_range,
                ..Decoded::default()
            };
            decoded.emit(batch, None);
            unit.push(&mut decoded).await?;
        }
        Ok(())
    }

    /// The stages, built for `input`.
    fn build_chain(&self, input: arrow_schema::SchemaRef) -> Result<Chain, Error> {
        let mut schema = input.clone();
        let mut stages = Vec::new();
        for f in self
            .plan
            .stages
            .iter()
            .map(|s| &s.factory)
            .chain(self.extra.iter())
        {
            let st = f.build(&schema)?;
            schema = st.schema();
            stages.push(st);
        }
        Ok(Chain {
            input,
            stages,
            clock: self.clock.clone(),
        })
    }

    /// A batch of a Kinesis tumbling window. A pipeline with an aggregate starts from the state
    /// the window's previous invocation returned and returns its own; only the window's last
    /// invocation writes the result, named after the shard and the window. Other pipelines
    /// process the batch as usual. A failed or interrupted batch writes nothing and the caller
    /// returns the state it came with, so a redelivery starts over from the same point.
    async fn process_window(
        &self,
        recs: &[&StreamRecord],
        w: &trigger::TumblingWindow,
        lines: Option<&bytes::Bytes>,
        deadline: Option<Instant>,
    ) -> Result<(ObjectResult, serde_json::Map<String, Value>), Error> {
        if !self.per_invocation() {
            return Ok((
                self.process_records(recs, lines, deadline).await?,
                serde_json::Map::new(),
            ));
        }
        let Some(schema) = self.plan.schema.clone() else {
            return Err(Error::Io(
                "a Kinesis tumbling window carries the aggregate's state between invocations, \
                 which needs a known input schema: declare [input] schema"
                    .into(),
            ));
        };
        let mut chain = self.build_chain(crate::stream::with_columns(
            &schema,
            self.plan.stream_columns(),
        ))?;
        for (i, st) in chain.stages.iter_mut().enumerate() {
            if let Some(v) = w.state.get(&state_key(i)) {
                st.load_state(&decode_state(v)?)?;
            }
        }
        let shard = recs.first().map_or(w.shard.as_str(), |r| r.shard());
        let base = match (w.is_final, recs.first()) {
            (false, Some(f)) => crate::output::stream_name(f.shard(), f.id()),
            _ => crate::output::window_name(shard, &w.start),
        };
        let source = format!("kinesis {shard} window {}", w.start);
        let mut unit = UnitOfWork::new(self, base, source);
        unit.chain = Some(chain);
        let stop = self.stop_before(deadline);
        let mut ran = self
            .run_records(Batch { recs, lines }, stop, &mut unit)
            .await;
        if ran.is_ok() && unit.counts.stopped_at.is_some() {
            ran = Err(Error::Io(
                "the invocation's deadline came in the middle of a tumbling window's batch; \
                 it is redelivered whole with the window's state as it was"
                    .into(),
            ));
        }
        let mut state = serde_json::Map::new();
        let mut last = w.is_final;
        if ran.is_ok() && !last {
            match save_states(&unit.chain) {
                Ok(saved) => state = saved,
                Err(e) => ran = Err(e),
            }
            let size = serde_json::to_vec(&state).map_or(usize::MAX, |v| v.len());
            if ran.is_ok() && size > MAX_WINDOW_STATE {
                // Lambda would refuse it: write the window's result so far as a part of its
                // own, and start the rest of the window afresh.
                warn!(
                    size,
                    limit = MAX_WINDOW_STATE,
                    "The window's state is too big to carry; writing the result so far as a part."
                );
                state = serde_json::Map::new();
                last = true;
            }
        }
        if ran.is_ok() && last {
            ran = unit.end_input().await;
        }
        let r = match ran {
            Ok(()) => unit.commit().await?,
            Err(e) => {
                unit.abort().await;
                return Err(e);
            }
        };
        Ok((r, state))
    }

    /// When a stream batch must stop: `[output] deadline_reserve_ms` before the point where the
    /// invocation's requests must be done (see [`deadline_cuts`]), so what is done can be written.
    fn stop_before(&self, deadline: Option<Instant>) -> Option<Instant> {
        let reserve = self.plan.config.output.deadline_reserve_ms;
        deadline.map(|d| {
            let cut = crate::store::request_deadline().map_or(d, |c| c.min(d));
            stop_time(cut, Instant::now(), reserve)
        })
    }
}

/// `key` with its last extension replaced (or added): `photos/a.b.HEIC` → `photos/a.b.jpg`.
#[cfg_attr(not(feature = "image"), allow(dead_code))]
fn with_extension(key: &str, ext: &str) -> String {
    let name_at = key.rfind('/').map_or(0, |i| i + 1);
    let stem = match key[name_at..].rfind('.') {
        Some(dot) if dot > 0 => &key[..name_at + dot],
        _ => key,
    };
    format!("{stem}.{ext}")
}

/// The rows stages after `resize` see.
#[cfg_attr(not(feature = "image"), allow(dead_code))]
#[derive(Default)]
struct RenditionRows {
    source: Vec<String>,
    variant: Vec<String>,
    key: Vec<String>,
    width: Vec<i64>,
    height: Vec<i64>,
    bytes: Vec<i64>,
    format: Vec<&'static str>,
}

#[cfg_attr(not(feature = "image"), allow(dead_code))]
impl RenditionRows {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        source: &str,
        variant: &str,
        key: &str,
        width: u32,
        height: u32,
        bytes: usize,
        format: &'static str,
    ) {
        self.source.push(source.to_string());
        self.variant.push(variant.to_string());
        self.key.push(key.to_string());
        self.width.push(i64::from(width));
        self.height.push(i64::from(height));
        self.bytes.push(bytes as i64);
        self.format.push(format);
    }

    fn finish(self, schema: &arrow_schema::SchemaRef) -> Result<RecordBatch, Error> {
        use arrow_array::{ArrayRef, Int64Array, StringArray};
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(self.source)),
            Arc::new(StringArray::from(self.variant)),
            Arc::new(StringArray::from(self.key)),
            Arc::new(Int64Array::from(self.width)),
            Arc::new(Int64Array::from(self.height)),
            Arc::new(Int64Array::from(self.bytes)),
            Arc::new(StringArray::from(self.format)),
        ];
        RecordBatch::try_new(schema.clone(), cols)
            .map_err(|e| Error::Io(format!("rendition rows: {e}")))
    }
}

/// One object's or one stream batch's work (or, with an aggregate, all of an invocation's
/// objects): the chain of stages, the sink its rows go to, its rejects and its counts. Input is
/// pushed in as it is decoded; at the end the unit is finished (the stages' last rows written,
/// then every file it wrote published at once) or aborted (nothing it wrote stays).
struct UnitOfWork<'h> {
    handler: &'h Handler,
    /// Built for the first batch's schema (or before, when the schema is known).
    chain: Option<Chain>,
    sink: Outputs,
    rejects: Rejects,
    /// Rejects files of sources the unit read before the current one, sealed, not yet visible.
    staged: Staging,
    counts: ObjectResult,
}

impl<'h> UnitOfWork<'h> {
    /// A unit whose outputs and rejects are named after `base`; its rejects say they came from
    /// `source`.
    fn new(handler: &'h Handler, base: String, source: String) -> Self {
        let plan = &handler.plan;
        UnitOfWork {
            handler,
            chain: None,
            sink: handler.outputs(base.clone(), &source),
            rejects: Rejects::new(plan.rejects.as_ref(), &handler.output, source, base),
            staged: Staging::default(),
            counts: ObjectResult::default(),
        }
    }

    fn has_chain(&self) -> bool {
        self.chain.is_some()
    }

    /// Build the chain for `schema` before any row arrives.
    fn start_chain(&mut self, schema: arrow_schema::SchemaRef) -> Result<(), Error> {
        self.chain = Some(self.handler.build_chain(schema)?);
        Ok(())
    }

    /// Decoded input: its rejects written, its rows through the chain, and what comes out to
    /// the sink.
    async fn push(&mut self, decoded: &mut Decoded) -> Result<(), Error> {
        let rj = std::mem::take(&mut decoded.rejects);
        self.counts.records_in += rj.len() as u64;
        self.counts.undecodable += rj.len() as u64;
        self.rejects.write(&rj).await?;
        let batches = decoded.take_batches();
        self.counts.records_in += batches
            .iter()
            .map(|(b, _)| b.num_rows() as u64)
            .sum::<u64>();
        self.push_batches(batches).await
    }

    /// Batches through the chain (built on first use for the first batch's schema), and what
    /// comes out written.
    async fn push_batches(
        &mut self,
        batches: Vec<(RecordBatch, Option<Origins>)>,
    ) -> Result<(), Error> {
        let Some((first, _)) = batches.first() else {
            return Ok(());
        };
        if self.chain.is_none() {
            self.start_chain(first.schema())?;
        }
        let Some(chain) = self.chain.as_mut() else {
            return Ok(());
        };
        for (b, origins) in batches {
            if b.schema().fields() != chain.input.fields() {
                return Err(Error::Io(
                    "its records have a different schema from the invocation's first object, and an aggregate \
                     needs one schema; declare [input] schema"
                        .into(),
                ));
            }
            let mut refused = Vec::new();
            let flow = Flow::decoded(b, origins.as_ref());
            let out = push_through(
                &mut chain.stages,
                &chain.clock,
                vec![flow],
                origins.as_ref(),
                &mut refused,
            )?;
            for f in &out {
                write_out(
                    f,
                    origins.as_ref(),
                    &mut self.sink,
                    &mut self.rejects,
                    &mut self.counts,
                )
                .await?;
            }
            self.rejects.write(&refused).await?;
        }
        Ok(())
    }

    /// End of input: finish every stage in order, passing what each emits downstream.
    async fn end_input(&mut self) -> Result<(), Error> {
        let Some(chain) = self.chain.as_mut() else {
            return Ok(());
        };
        let stages = &mut chain.stages;
        let clock = &chain.clock[..];
        for i in 0..stages.len() {
            let mut out = Vec::new();
            let t = Instant::now();
            stages[i].finish(&mut out)?;
            if let Some(spent) = clock.get(i) {
                spent.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            let mut refused = stages[i].take_rejects();
            let out = push_through(
                &mut stages[i + 1..],
                clock.get(i + 1..).unwrap_or(&[]),
                out.into_iter().map(Flow::untraced).collect(),
                None,
                &mut refused,
            )?;
            for f in &out {
                write_out(f, None, &mut self.sink, &mut self.rejects, &mut self.counts).await?;
            }
            self.rejects.write(&refused).await?;
        }
        for st in stages.iter_mut() {
            let r = st.take_rejects();
            if !r.is_empty() {
                self.rejects.write(&r).await?;
            }
        }
        Ok(())
    }

    /// A unit that reads several sources (an invocation's objects) keeps a rejects file per
    /// source: the next source's, named `name`, from `source`. The current one was ended (or
    /// never written): [`Self::end_source`], [`Self::leave_out`].
    fn next_source(&mut self, source: String, name: String) {
        let next = Rejects::new(
            self.handler.plan.rejects.as_ref(),
            &self.handler.output,
            source,
            name,
        );
        let ended = std::mem::replace(&mut self.rejects, next);
        debug_assert_eq!(
            ended.count, 0,
            "a source's rejects replaced before it ended"
        );
    }

    /// The rejects in place of a source's that ended: none written, none counted.
    fn no_rejects(&self) -> Rejects {
        Rejects::new(None, &self.handler.output, String::new(), String::new())
    }

    /// The current source read to its end: its rejects file sealed, published with the rest.
    async fn end_source(&mut self) -> Result<(), Error> {
        let blank = self.no_rejects();
        let done = std::mem::replace(&mut self.rejects, blank);
        self.counts.rejected += done.count;
        if let Some(r) = done.stage().await? {
            self.staged.push(r);
        }
        Ok(())
    }

    /// The current source is left out of the unit (overwritten since its notification, found
    /// before a byte of it was read): its rejects dropped.
    async fn leave_out(&mut self, uri: String) {
        let blank = self.no_rejects();
        std::mem::replace(&mut self.rejects, blank).abort().await;
        self.counts.superseded.push(uri);
    }

    /// Finish when `ran` (the reading) succeeded, abort when it failed.
    async fn close(self, ran: Result<(), Error>) -> Result<ObjectResult, Error> {
        match ran {
            Ok(()) => self.finish().await,
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    /// End of input, then every file of the unit published.
    async fn finish(mut self) -> Result<ObjectResult, Error> {
        match self.end_input().await {
            Ok(()) => self.commit().await,
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    /// The unit's outputs, its rejects files: every one written and sealed first, then all made
    /// visible at once, or none (on a failure each is dropped, and any already visible deleted
    /// again). The counts say what was published.
    async fn commit(self) -> Result<ObjectResult, Error> {
        let UnitOfWork {
            sink,
            rejects,
            staged,
            mut counts,
            ..
        } = self;
        counts.rejected += rejects.count;
        counts.columns = sink.column_stats();
        let mut staging = match sink.stage().await {
            Ok(s) => s,
            Err(e) => {
                rejects.abort().await;
                staged.discard().await;
                return Err(e);
            }
        };
        staging.extend(staged);
        match rejects.stage().await {
            Ok(Some(r)) => staging.push(r),
            Ok(None) => {}
            Err(e) => {
                staging.discard().await;
                return Err(e);
            }
        }
        counts.outputs = staging.publish().await?;
        Ok(counts)
    }

    /// Nothing the unit wrote stays: open uploads aborted, sealed files dropped.
    async fn abort(self) {
        self.sink.abort().await;
        self.rejects.abort().await;
        self.staged.discard().await;
    }
}

/// Write one output batch; rows the output cannot take (a stream record over its limits) are
/// rejects, not output.
async fn write_out(
    flow: &Flow,
    origins: Option<&Origins>,
    outputs: &mut Outputs,
    rejects: &mut Rejects,
    result: &mut ObjectResult,
) -> Result<(), Error> {
    outputs.write(&flow.batch).await?;
    let refused: Vec<_> = outputs
        .take_rejects()
        .into_iter()
        .map(|r| trace(r, flow.from.as_deref(), origins))
        .collect();
    result.records_out += flow.batch.num_rows().saturating_sub(refused.len()) as u64;
    rejects.write(&refused).await
}

/// Stream records' lines are decoded in blocks of about this many bytes.
const JOIN_BYTES: usize = 1 << 20;

/// For an invocation that starts at `now` and must answer by `deadline`: when its requests must
/// be done (a fifth of the time left is kept back, at least 200 ms and at most 1.5 s: aborting
/// uploads and answering), and when whatever still runs is given up (a quarter of that margin
/// before the deadline).
fn deadline_cuts(deadline: Instant, now: Instant) -> (Instant, Instant) {
    use std::time::Duration;
    let left = deadline.saturating_duration_since(now);
    let margin = (left / 5).clamp(Duration::from_millis(200), Duration::from_millis(1500));
    let at = |d: Duration| deadline.checked_sub(d).unwrap_or(now).max(now);
    (at(margin), at(margin / 4))
}

/// The answer of an invocation given up at its deadline: nothing of it counts as done. Every
/// SQS message is reported for redelivery, a Kinesis batch from its first record (with a
/// window's state as it came), and an asynchronous event fails, so Lambda retries it; what was
/// written meanwhile is rewritten, under the same names, by the redelivery.
fn out_of_time(parsed: &trigger::Parsed, started: Instant) -> (Summary, bool) {
    let mut s = Summary {
        trigger: parsed.trigger.clone(),
        error: Some(
            "the invocation's deadline came before it finished (a request stalled, or the function's \
             timeout is too short for this event); all of it is reported for redelivery"
                .into(),
        ),
        ..Summary::default()
    };
    let mut records = Vec::new();
    for item in &parsed.items {
        let id = match item {
            Item::Record(r) => {
                records.push(r);
                continue;
            }
            Item::Object(o) => {
                s.failed_objects += 1;
                o.message_id.as_ref()
            }
            Item::Failed { message_id, .. } => Some(message_id),
            Item::Skipped { .. } => None,
        };
        if let Some(id) = id
            && !s.batch_item_failures.contains(id)
        {
            s.batch_item_failures.push(id.clone());
        }
    }
    s.redeliver(&records, parsed.trigger == "kinesis");
    s.delivered = records.len() as u64;
    let mut per_item = parsed.sqs;
    if let Some(w) = &parsed.window {
        s.state = Some(w.state.clone());
        per_item &= !records.is_empty();
    }
    s.duration_ms = started.elapsed().as_millis() as u64;
    (s, per_item)
}

/// When a batch that starts at `now` stops for `deadline`: `reserve_ms` before it, but never
/// sooner than halfway from `now` to the deadline. A reserve as long as the function's timeout
/// (a 20 s reserve on a 10 s function) would otherwise stop every invocation before its first
/// record, forever; clamped, each one makes progress and still leaves half its time to write.
fn stop_time(deadline: Instant, now: Instant, reserve_ms: u64) -> Instant {
    let left = deadline.saturating_duration_since(now);
    let reserve = std::time::Duration::from_millis(reserve_ms);
    if reserve <= left / 2 {
        return deadline.checked_sub(reserve).unwrap_or(deadline);
    }
    if reserve >= left {
        warn!(
            reserve_ms,
            left_ms = left.as_millis() as u64,
            "[output] deadline_reserve_ms is longer than this invocation has; stopping halfway \
             instead. Lower it, or raise the function's timeout."
        );
    }
    now + left / 2
}

/// When a stream batch looks at the clock for its deadline: before its first record, after a
/// record that ran the stages (a decode block, a drain), and at least every 64 records or 1 MiB
/// of payload. Most records of a batch only add their lines to a block, microseconds of work; a
/// clock read before each would cost ~3% of a 10 000-record batch.
#[derive(Default)]
struct Watch {
    /// Records and payload bytes since the clock was last read.
    records: usize,
    bytes: usize,
    /// Whether the stages ran since (or nothing has been read yet).
    worked: bool,
}

impl Watch {
    const RECORDS: usize = 64;
    const BYTES: usize = 1 << 20;

    /// Due at once: the first record is always looked at.
    fn new() -> Self {
        Watch {
            worked: true,
            ..Watch::default()
        }
    }

    /// Whether `stop` has come, looking at the clock only when it is due.
    fn past(&mut self, stop: Option<Instant>) -> bool {
        let Some(t) = stop else { return false };
        if !self.worked && self.records < Self::RECORDS && self.bytes < Self::BYTES {
            return false;
        }
        *self = Watch::default();
        Instant::now() >= t
    }

    /// A record of `bytes` went by.
    fn passed(&mut self, bytes: usize) {
        self.records += 1;
        self.bytes += bytes;
    }

    /// The stages ran.
    fn worked(&mut self) {
        self.worked = true;
    }
}

/// Line text waiting for the batch's shared decoder, gathered so that it is decoded a large block
/// at a time (one decoder call per record would cost more than the records themselves): a run of
/// records lying back to back in the batch's `lines` buffer, decoded in place, or copies of
/// records that do not. At most one of the two holds text at a time, so the decoder meets the
/// records in order.
#[derive(Default)]
struct Pending {
    run: std::ops::Range<usize>,
    copied: Vec<u8>,
}

impl Pending {
    /// One record's payload, ended by a line break.
    fn add(
        &mut self,
        d: &mut dyn Decoder,
        lines: Option<&bytes::Bytes>,
        payload: &[u8],
        out: &mut Decoded,
    ) -> Result<(), Error> {
        match lines.and_then(|l| line_in(l, payload)) {
            Some((start, end)) => {
                if start != self.run.end || !self.copied.is_empty() {
                    self.flush(d, lines, out)?;
                    self.run = start..start;
                }
                self.run.end = end;
            }
            None => {
                if !self.run.is_empty() {
                    self.flush(d, lines, out)?;
                }
                self.copied.extend_from_slice(payload);
                if !payload.ends_with(b"\n") {
                    self.copied.push(b'\n');
                }
            }
        }
        if self.run.len() + self.copied.len() >= JOIN_BYTES {
            self.flush(d, lines, out)?;
        }
        Ok(())
    }

    /// Decode what is waiting.
    fn flush(
        &mut self,
        d: &mut dyn Decoder,
        lines: Option<&bytes::Bytes>,
        out: &mut Decoded,
    ) -> Result<(), Error> {
        if let Some(l) = lines.filter(|_| !self.run.is_empty()) {
            d.decode(&l[self.run.clone()], out)?;
        }
        self.run = self.run.end..self.run.end;
        if !self.copied.is_empty() {
            d.decode(&self.copied, out)?;
            self.copied.clear();
        }
        Ok(())
    }
}

/// A stream batch's records, and the buffer their data were decoded into when one holds them all
/// ([`trigger::Parsed::lines`]).
#[derive(Clone, Copy)]
struct Batch<'a> {
    recs: &'a [&'a StreamRecord],
    lines: Option<&'a bytes::Bytes>,
}

/// Where `payload` lies in `lines` with its line break: `(start, end)` with `lines[start..end]`
/// the payload and then a line break (unless the payload ends with one), or `None` when
/// `payload` is not a slice of `lines` or no line break follows it there.
fn line_in(lines: &[u8], payload: &[u8]) -> Option<(usize, usize)> {
    let start = (payload.as_ptr() as usize).checked_sub(lines.as_ptr() as usize)?;
    let end = start.checked_add(payload.len())?;
    if end > lines.len() {
        return None;
    }
    if payload.ends_with(b"\n") {
        Some((start, end))
    } else {
        (lines.get(end) == Some(&b'\n')).then_some((start, end + 1))
    }
}

/// The largest window state returned to Lambda (its limit is 1 MB for the whole response).
const MAX_WINDOW_STATE: usize = 1_000_000 - 16 * 1024;
/// The most a saved stage state may inflate to.
const MAX_STATE_INFLATED: usize = 256 << 20;

fn state_key(stage: usize) -> String {
    format!("sluice:stage:{stage}")
}

/// Every stage's state that has one, zstd-compressed and base64-encoded, keyed by stage.
fn save_states(chain: &Option<Chain>) -> Result<serde_json::Map<String, Value>, Error> {
    use base64::Engine;
    let mut state = serde_json::Map::new();
    let Some(chain) = chain else {
        return Ok(state);
    };
    for (i, st) in chain.stages.iter().enumerate() {
        if let Some(bytes) = st.save_state()? {
            // With zstd's checksum, a state damaged on its way back is an error when it is read.
            let packed = zstd::bulk::Compressor::new(3)
                .and_then(|mut c| {
                    c.include_checksum(true)?;
                    c.compress(&bytes)
                })
                .map_err(|e| Error::Io(format!("compressing the window state: {e}")))?;
            state.insert(
                state_key(i),
                Value::String(base64::engine::general_purpose::STANDARD.encode(packed)),
            );
        }
    }
    Ok(state)
}

fn decode_state(v: &Value) -> Result<Vec<u8>, Error> {
    use base64::Engine;
    let bad = |why: String| {
        Error::Io(format!(
            "the window state from Lambda cannot be read: {why}"
        ))
    };
    let text = v.as_str().ok_or_else(|| bad("not a string".into()))?;
    let packed = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| bad(e.to_string()))?;
    zstd::bulk::decompress(&packed, MAX_STATE_INFLATED).map_err(|e| bad(e.to_string()))
}

/// The stages of one run, built for the schema of the first batch.
struct Chain {
    input: arrow_schema::SchemaRef,
    stages: Vec<Box<dyn Stage>>,
    /// Time spent per stage, shared with the handler.
    clock: Arc<Vec<AtomicU64>>,
}

fn stage_clock(n: usize) -> Arc<Vec<AtomicU64>> {
    Arc::new((0..n).map(|_| AtomicU64::new(0)).collect())
}

/// Time spent in one stage during an event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StageTime {
    /// The stage's type (`filter`, `aggregate` …).
    pub stage: String,
    /// Milliseconds in its `push` and `finish` calls.
    pub ms: f64,
}

/// One batch of the tagged rows gathered so far, with their origins when every part has them.
fn gather(
    tagged: &mut Vec<(RecordBatch, Option<Origins>)>,
) -> Result<(RecordBatch, Option<Origins>), Error> {
    let (batches, parts): (Vec<RecordBatch>, Vec<Option<Origins>>) =
        std::mem::take(tagged).into_iter().unzip();
    let origins = parts
        .into_iter()
        .try_fold(Origins::default(), |mut all, o| {
            all.extend(&o?);
            Some(all)
        });
    let Some(first) = batches.first() else {
        return Err(Error::Io("no rows to gather".into()));
    };
    if batches
        .iter()
        .any(|b| b.schema().fields() != first.schema().fields())
    {
        return Err(Error::Io(
            "the batch's records decode to different schemas; declare [input] schema".into(),
        ));
    }
    let batch = arrow_select::concat::concat_batches(&first.schema(), &batches)
        .map_err(|e| Error::Io(format!("gathering the rows of a stream batch: {e}")))?;
    Ok((batch, origins))
}

/// Rows on their way through the chain, and for each the index of the input row (of the batch
/// that entered the chain) it came from, while that is known.
struct Flow {
    batch: RecordBatch,
    from: Option<Vec<u32>>,
}

impl Flow {
    /// Rows whose lineage is not followed.
    fn untraced(batch: RecordBatch) -> Self {
        Self { batch, from: None }
    }

    /// The rows of a batch decoded from `origins`: row i is input row i.
    fn decoded(batch: RecordBatch, origins: Option<&Origins>) -> Self {
        let from = origins
            .filter(|o| o.len() == batch.num_rows())
            .map(|o| (0..o.len() as u32).collect());
        Self { batch, from }
    }
}

/// The input rows behind what one push emitted (`out`), from the input rows behind what it was
/// given (`from`) and what the stage says it kept; `None` for each when that cannot be told.
fn lineage(from: Vec<u32>, kept: Kept, out: &[RecordBatch]) -> Vec<Option<Vec<u32>>> {
    let emitted: Option<Vec<u32>> = match kept {
        Kept::All => Some(from),
        Kept::Mask(m) if m.len() == from.len() => Some(
            from.into_iter()
                .enumerate()
                .filter(|&(i, _)| m.is_valid(i) && m.value(i))
                .map(|(_, f)| f)
                .collect(),
        ),
        _ => None,
    };
    let total: usize = out.iter().map(RecordBatch::num_rows).sum();
    match emitted {
        Some(mut e) if e.len() == total => {
            let mut per = Vec::with_capacity(out.len());
            for b in out.iter().rev() {
                per.push(Some(e.split_off(e.len() - b.num_rows())));
            }
            per.reverse();
            per
        }
        _ => vec![None; out.len()],
    }
}

/// `r`, traced to the input line its row was decoded from when that is known: `from` maps the
/// rows of the batch the stage was given to rows of the decoded batch, whose lines `origins` hold.
fn trace(
    r: sluice_processors::Reject,
    from: Option<&[u32]>,
    origins: Option<&Origins>,
) -> sluice_processors::Reject {
    let origin = r
        .pushed_row
        .and_then(|i| from?.get(i))
        .and_then(|&f| origins?.get(f as usize));
    match origin {
        Some((line, raw)) => r.traced(line, raw),
        None => r,
    }
}

/// Push batches through `stages`; a row a stage refuses is added to `refused`, traced to the
/// input line it was decoded from when `origins` tell (the flows' `from` index them).
fn push_through(
    stages: &mut [Box<dyn Stage>],
    clock: &[AtomicU64],
    flows: Vec<Flow>,
    origins: Option<&Origins>,
    refused: &mut Vec<sluice_processors::Reject>,
) -> Result<Vec<Flow>, Error> {
    let mut cur = flows;
    for (st, spent) in stages.iter_mut().zip(clock) {
        let t = Instant::now();
        let mut next = Vec::with_capacity(cur.len());
        let mut out = Vec::new();
        for Flow { batch, from } in cur {
            st.push(batch, &mut out)?;
            refused.extend(
                st.take_rejects()
                    .into_iter()
                    .map(|r| trace(r, from.as_deref(), origins)),
            );
            let from = match from {
                Some(from) => lineage(from, st.kept(), &out),
                None => vec![None; out.len()],
            };
            next.extend(
                out.drain(..)
                    .zip(from)
                    .map(|(batch, from)| Flow { batch, from }),
            );
        }
        spent.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        cur = next;
    }
    Ok(cur)
}

fn read_error(uri: &str, e: std::io::Error) -> Error {
    let msg = e.to_string();
    if e.kind() == std::io::ErrorKind::FileTooLarge {
        // A decompression bomb (see `inflation_check`): its reason, and never retried (the
        // same bytes inflate the same way).
        Error::Store {
            location: uri.to_string(),
            message: msg,
            retryable: false,
        }
    } else if e.kind() == std::io::ErrorKind::InvalidData
        || e.kind() == std::io::ErrorKind::UnexpectedEof
    {
        Error::Io(format!(
            "the object is corrupt or truncated ({msg}); nothing was written for it"
        ))
    } else {
        Error::Store {
            location: uri.to_string(),
            message: format!("reading failed: {msg}"),
            retryable: true,
        }
    }
}

/// A stream record inflates to at most this much (Kinesis records are at most 1 MiB; CloudWatch
/// Logs subscription payloads compress about tenfold).
const MAX_RECORD_INFLATED: u64 = 64 << 20;

/// Inflate a gzip payload into `out`, refusing more than `limit` bytes (a decompression bomb).
fn inflate(gz: &[u8], out: &mut Vec<u8>, limit: u64) -> Result<(), String> {
    use std::io::Read;
    out.clear();
    let mut d = flate2::read::MultiGzDecoder::new(gz).take(limit + 1);
    d.read_to_end(out)
        .map_err(|e| format!("the gzip payload is corrupt or truncated: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!(
            "the gzip payload inflates past {} MiB (a decompression bomb?)",
            limit >> 20
        ));
    }
    Ok(())
}

/// Decompressed bytes any object may reach before its inflation ratio is checked.
const INFLATE_FREE: u64 = 512 << 20;

/// Refuse an object that has inflated past [`INFLATE_FREE`] and to more than `ratio` times the
/// stored bytes read so far: a decompression bomb (1 GB of zeros is ~1 MB of gzip) is stopped
/// after a bounded amount of work, with its reason, instead of running to the deadline.
fn inflation_check(inflated: u64, stored: u64, ratio: u64) -> std::io::Result<()> {
    let stored = stored.max(1);
    if ratio == 0 || inflated <= INFLATE_FREE || inflated / stored <= ratio {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        format!(
            "it inflates more than {ratio}× ({inflated} bytes from the first {stored} stored \
             bytes), over [input] max_inflate_ratio: refused as a decompression bomb"
        ),
    ))
}

/// Wrap a reader in the decompressor its magic bytes (or the configured compression) call for,
/// refusing more than `max_ratio` inflation past [`INFLATE_FREE`] (see [`inflation_check`]).
pub async fn decompress(
    reader: ByteReader,
    compression: Compression,
    max_ratio: u64,
) -> Result<ByteReader, Error> {
    let stored = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = stored.clone();
    let reader = Tap::reader(reader, move |b: &[u8]| {
        count.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    });
    let mut r = BufReader::with_capacity(256 << 10, reader);
    let kind = match compression {
        Compression::Auto => {
            let head = r
                .fill_buf()
                .await
                .map_err(|e| Error::Io(format!("reading failed: {e}")))?;
            if head.starts_with(&GZIP_MAGIC) {
                Compression::Gzip
            } else if sluice_processors::sniff::is_zstd(head) {
                Compression::Zstd
            } else {
                Compression::None
            }
        }
        other => other,
    };
    let inflating: ByteReader = match kind {
        Compression::Gzip => Box::pin(GzipMembers::new(r)),
        Compression::Zstd => {
            let mut d = ZstdDecoder::new(r);
            d.multiple_members(true);
            Box::pin(d)
        }
        _ => return Ok(Box::pin(r)),
    };
    let mut inflated = 0u64;
    Ok(Tap::reader(inflating, move |b: &[u8]| {
        inflated += b.len() as u64;
        inflation_check(
            inflated,
            stored.load(std::sync::atomic::Ordering::Relaxed),
            max_ratio,
        )
    }))
}

/// gzip members one after another, as `gunzip` reads them: after the last member, zero bytes
/// (the padding some writers and tape-era tools leave) end the stream; anything else there must
/// be another member, or it is an error saying what was found.
struct GzipMembers<R> {
    state: Option<GzipState<R>>,
}

enum GzipState<R> {
    /// Inside a member.
    Member(Box<GzipDecoder<R>>),
    /// Between members: what follows decides.
    Between(R),
}

impl<R: tokio::io::AsyncBufRead + Unpin> GzipMembers<R> {
    fn new(r: R) -> Self {
        Self {
            state: Some(GzipState::Member(Box::new(GzipDecoder::new(r)))),
        }
    }
}

impl<R: tokio::io::AsyncBufRead + Unpin> tokio::io::AsyncRead for GzipMembers<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            match self.state.take() {
                None => return Poll::Ready(Ok(())),
                Some(GzipState::Member(mut d)) => {
                    let before = buf.filled().len();
                    let polled = std::pin::Pin::new(&mut d).poll_read(cx, buf);
                    match polled {
                        Poll::Ready(Ok(())) if buf.filled().len() == before => {
                            // The member ended: its trailer was read, nothing past it.
                            self.state = Some(GzipState::Between(d.into_inner()));
                        }
                        other => {
                            self.state = Some(GzipState::Member(d));
                            return other;
                        }
                    }
                }
                Some(GzipState::Between(mut r)) => {
                    let head = match std::pin::Pin::new(&mut r).poll_fill_buf(cx) {
                        Poll::Pending => {
                            self.state = Some(GzipState::Between(r));
                            return Poll::Pending;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(head)) => head,
                    };
                    if head.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    if head.starts_with(&GZIP_MAGIC[..1]) {
                        self.state = Some(GzipState::Member(Box::new(GzipDecoder::new(r))));
                    } else if let Some(at) = head.iter().position(|&b| b != 0) {
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!(
                                "after a complete gzip member comes byte 0x{:02x}, which is neither another \
                                 member nor zero padding",
                                head[at]
                            ),
                        )));
                    } else {
                        let n = head.len();
                        std::pin::Pin::new(&mut r).consume(n);
                        self.state = Some(GzipState::Between(r));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FsStore;
    use std::io::Write;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn inflation_is_free_to_512_mib_then_bounded_by_the_ratio() {
        let gib = 1u64 << 30;
        assert!(inflation_check(INFLATE_FREE, 1, 100).is_ok());
        assert!(inflation_check(gib, gib / 100, 100).is_ok());
        assert!(inflation_check(gib, gib / 1000, 0).is_ok());
        let e = inflation_check(gib, gib / 1000, 100).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
        // Reported as itself, not as a corrupt object or a retryable read failure.
        let e = read_error("s3://b/k", e);
        assert!(!e.retryable());
        assert!(
            e.to_string()
                .starts_with("s3://b/k: it inflates more than 100×")
                && e.to_string().contains("decompression bomb"),
            "{e}"
        );
    }

    #[test]
    fn read_buffers_start_on_a_page() {
        let mut space = vec![0u8; 10_000 + 2 * PAGE];
        for skew in [0, 1, 17, 4095] {
            let buf = page_aligned(&mut space[skew..skew + 10_000 + PAGE], 10_000);
            assert_eq!(buf.len(), 10_000);
            assert_eq!(buf.as_ptr() as usize % PAGE, 0);
        }
    }

    async fn read_all(r: ByteReader, c: Compression) -> Result<Vec<u8>, Error> {
        let mut r = decompress(r, c, 100).await?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .await
            .map_err(|e| Error::Io(e.to_string()))?;
        Ok(out)
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    async fn zst(data: &[u8]) -> Vec<u8> {
        let mut e = async_compression::tokio::write::ZstdEncoder::new(Vec::new());
        e.write_all(data).await.unwrap();
        e.shutdown().await.unwrap();
        e.into_inner()
    }

    #[tokio::test]
    async fn detects_compression_and_reads_every_member() {
        let plain = b"{\"a\":1}\n".repeat(1000);
        let mut two_gz = gz(&plain);
        two_gz.extend(gz(b"{\"a\":2}\n"));
        let mut two_zst = zst(&plain).await;
        two_zst.extend(zst(b"{\"a\":2}\n").await);
        let mut want = plain.clone();
        want.extend_from_slice(b"{\"a\":2}\n");
        for (data, c) in [
            (two_gz.clone(), Compression::Auto),
            (two_zst.clone(), Compression::Auto),
            (two_gz, Compression::Gzip),
            (two_zst, Compression::Zstd),
        ] {
            let got = read_all(Box::pin(std::io::Cursor::new(data)), c)
                .await
                .unwrap();
            assert_eq!(got, want);
        }
        let got = read_all(
            Box::pin(std::io::Cursor::new(plain.clone())),
            Compression::Auto,
        )
        .await
        .unwrap();
        assert_eq!(got, plain);
        // Forced gzip on plain bytes is a clear failure, not garbage rows.
        assert!(
            read_all(Box::pin(std::io::Cursor::new(plain)), Compression::Gzip)
                .await
                .is_err()
        );
        assert!(
            read_all(
                Box::pin(std::io::Cursor::new(Vec::new())),
                Compression::Auto
            )
            .await
            .unwrap()
            .is_empty()
        );
    }

    /// Issue 27: a zstd stream that starts with a skippable frame (as `pzstd` writes) was read
    /// as plain text, and gzip with trailing zero padding (which `gunzip` accepts) was refused.
    #[tokio::test]
    async fn reads_zstd_behind_a_skippable_frame_and_gzip_with_zero_padding() {
        let plain = b"{\"a\":1}\n".repeat(1000);
        let mut skippable = vec![0x5a, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4];
        skippable.extend(zst(&plain).await);
        let mut padded = gz(&plain);
        padded.extend(gz(b"{\"a\":2}\n"));
        padded.extend(std::iter::repeat_n(0u8, 700_000));
        let mut want = plain.clone();
        want.extend_from_slice(b"{\"a\":2}\n");
        for (data, c, want) in [
            (skippable.clone(), Compression::Auto, &plain),
            (skippable, Compression::Zstd, &plain),
            (padded.clone(), Compression::Auto, &want),
            (padded, Compression::Gzip, &want),
        ] {
            // Through a small reader, so members and padding cross buffer boundaries.
            let r = tokio::io::BufReader::with_capacity(1000, std::io::Cursor::new(data));
            let got = read_all(Box::pin(r), c).await.unwrap();
            assert_eq!(&got, want);
        }
        // Anything but zeros after the last member is still an error, with its reason.
        let mut garbage = gz(&plain);
        garbage.extend(b"\0\0trailing text");
        let e = read_all(Box::pin(std::io::Cursor::new(garbage)), Compression::Auto)
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("neither another member nor zero padding"),
            "{e}"
        );
    }

    fn plan(text: &str) -> Plan {
        Plan::from_str(std::path::Path::new("t.toml"), text).unwrap()
    }

    #[tokio::test]
    async fn infers_the_schema_and_writes_to_a_local_folder() {
        let dir = tempfile::tempdir().unwrap();
        let obj = dir.path().join("in/b/data/x.ndjson.zst");
        std::fs::create_dir_all(obj.parent().unwrap()).unwrap();
        let body = b"{\"ts\":\"2026-11-22T10:00:00Z\",\"n\":5,\"tags\":[\"a\"]}\n{\"ts\":\"2026-11-23T10:00:00Z\",\"n\":50,\"tags\":[]}\n{\"ts\":\"2026-11-23T11:00:00Z\",\"n\":\"many\"}\n";
        std::fs::write(&obj, zst(body).await).unwrap();
        let out = dir.path().join("out");
        let p = plan(&format!(
            "name = \"t\"\n[input]\nformat = \"ndjson\"\nbatch_rows = 2\n[[stage]]\ntype = \"filter\"\nwhere = \"n > 1\"\n[[stage]]\ntype = \"select\"\ncolumns = {{ day = \"date(ts)\", n = \"n\" }}\n[output]\nuri = \"{}\"\nformat = \"ndjson\"\ncompression = \"gzip\"\npartition_by = [\"day\"]\n[rejects]\nuri = \"{}\"\n",
            out.display(),
            dir.path().join("rejects").display()
        ));
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path().join("in")));
        let h = Handler::new(p, store.clone(), store);
        let ev = crate::event::s3_event(vec![crate::event::s3_record(
            "b",
            "data/x.ndjson.zst",
            10,
            "e",
        )]);
        let (s, _) = h.handle(&ev).await;
        assert_eq!(s.error, None);
        assert_eq!((s.records_in, s.records_out, s.rejected), (3, 2, 1));
        assert_eq!(s.outputs.len(), 3, "{:?}", s.outputs);
        let day23 = s
            .outputs
            .iter()
            .find(|o| o.contains("day=2026-11-23"))
            .unwrap();
        assert!(day23.ends_with(".ndjson.gz"), "{day23}");
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(std::fs::File::open(day23).unwrap()),
            &mut text,
        )
        .unwrap();
        assert_eq!(text, "{\"n\":50}\n");
        let rejects = std::fs::read_to_string(s.outputs.last().unwrap()).unwrap();
        assert!(
            rejects.contains("\"line\":3") && rejects.contains("'n'") && rejects.contains("many"),
            "{rejects}"
        );
    }

    /// A Parquet file of `rows` rows in row groups of 100: id, page, ms, and a wide unused column.
    pub(crate) fn parquet_file(rows: usize) -> Vec<u8> {
        use arrow_array::{Int64Array, RecordBatch, StringArray};
        let schema = Arc::new(arrow_schema::Schema::new(vec![
            arrow_schema::Field::new("id", arrow_schema::DataType::Int64, false),
            arrow_schema::Field::new("page", arrow_schema::DataType::Utf8, true),
            arrow_schema::Field::new("ms", arrow_schema::DataType::Int64, true),
            arrow_schema::Field::new("blob", arrow_schema::DataType::Utf8, true),
        ]));
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(100))
            .build();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).unwrap();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
                Arc::new(StringArray::from_iter(
                    (0..rows).map(|i| Some(format!("/p/{}", i % 7))),
                )),
                Arc::new(Int64Array::from_iter(
                    (0..rows).map(|i| (i % 5 != 0).then_some(i as i64 * 3)),
                )),
                Arc::new(StringArray::from_iter(
                    (0..rows).map(|i| Some("x".repeat(100 + i % 3))),
                )),
            ],
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.into_inner().unwrap()
    }

    #[tokio::test]
    async fn parquet_input_is_read_by_row_group_with_only_the_needed_columns() {
        let dir = tempfile::tempdir().unwrap();
        let obj = dir.path().join("b/t/part-0.parquet");
        std::fs::create_dir_all(obj.parent().unwrap()).unwrap();
        std::fs::write(&obj, parquet_file(1000)).unwrap();
        std::fs::write(
            dir.path().join("b/t/bad.parquet"),
            b"PAR1 this is not parquet",
        )
        .unwrap();
        let p = plan(
            "name = \"t\"\n[input]\nformat = \"parquet\"\nbatch_rows = 64\n[[stage]]\ntype = \"filter\"\nwhere = \"ms > 2000\"\n[[stage]]\ntype = \"select\"\ncolumns = { id = \"id\", page = \"upper(page)\" }\n[output]\nuri = \"s3://o/p/\"\nformat = \"ndjson\"\n",
        );
        assert_eq!(
            p.projection(),
            Some(vec!["ms".to_string(), "id".to_string(), "page".to_string()])
        );
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
        let h = Handler::new(p, store.clone(), store.clone());
        let ev = crate::event::s3_event(vec![
            crate::event::s3_record("b", "t/part-0.parquet", 1, "e"),
            crate::event::s3_record("b", "t/bad.parquet", 1, "e"),
        ]);
        let (s, _) = h.handle(&ev).await;
        assert_eq!(s.records_in, 1000);
        // ms = 3i > 2000 and i % 5 != 0: i in 667..1000 without multiples of 5.
        let want = (667..1000).filter(|i| i % 5 != 0).count() as u64;
        assert_eq!(s.records_out, want);
        let text = std::fs::read_to_string(&s.outputs[0]).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            "{\"id\":667,\"page\":\"/P/2\"}"
        );
        let err = s.error.unwrap();
        assert!(
            err.contains("t/bad.parquet") && err.contains("not a readable Parquet file"),
            "{err}"
        );

        // A column the file lacks is named.
        let p = plan(
            "name = \"t\"\n[input]\nformat = \"parquet\"\n[[stage]]\ntype = \"select\"\ncolumns = { x = \"nope\" }\n[output]\nuri = \"s3://o/q/\"\n",
        );
        let h = Handler::new(p, store.clone(), store.clone());
        let (s, _) = h
            .handle(&crate::event::s3_event(vec![crate::event::s3_record(
                "b",
                "t/part-0.parquet",
                1,
                "e",
            )]))
            .await;
        assert!(
            s.error
                .unwrap()
                .contains("reads column `nope`, which this Parquet file does not have")
        );
    }

    #[tokio::test]
    async fn stream_batches_decode_every_record_and_fail_whole_at_the_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = { p = \"string\", n = \"int64\" }\n[[stage]]\ntype = \"aggregate\"\ngroup_by = [\"p\"]\nmeasures = { c = \"count(*)\", s = \"sum(n)\" }\n[output]\nuri = \"s3://o/agg/\"\nformat = \"ndjson\"\n[rejects]\nuri = \"s3://o/rejects/\"\n";
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
        let h = Handler::new(plan(cfg), store.clone(), store.clone());
        let agg = crate::kpl::aggregate(&[
            ("k", b"{\"p\":\"x\",\"n\":2}"),
            ("k", b"{\"p\":\"y\",\"n\":3}"),
        ]);
        let payloads = vec![
            ("a".to_string(), b"{\"p\":\"x\",\"n\":1}".to_vec()),
            ("b".to_string(), agg),
            ("c".to_string(), b"not json".to_vec()),
            // gzip, as CloudWatch Logs subscriptions and many producers send it
            ("d".to_string(), {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(b"{\"p\":\"x\",\"n\":10}\n").unwrap();
                e.finish().unwrap()
            }),
        ];
        let ev = crate::event::kinesis_event("s", &payloads);
        let (s, per_item) = h.handle(&ev).await;
        assert!(per_item);
        assert_eq!(s.trigger, "kinesis");
        assert_eq!(s.error, None);
        assert_eq!((s.records_in, s.records_out, s.rejected), (5, 2, 1));
        // Named by the first record: a redelivery of another size replaces it.
        let first = crate::event::kinesis_sequence(0);
        assert!(
            s.outputs[0].ends_with(&format!("/agg/shardId-000000000000-{first}.ndjson")),
            "{:?}",
            s.outputs
        );
        assert_eq!(
            std::fs::read_to_string(&s.outputs[0]).unwrap(),
            "{\"p\":\"x\",\"c\":3,\"s\":13}\n{\"p\":\"y\",\"c\":1,\"s\":3}\n"
        );
        assert_eq!(
            s.lambda_response(true),
            serde_json::json!({ "batchItemFailures": [] })
        );

        // The output cannot be written (a file where its folder must go): nothing is written and
        // the shard must resume at the batch's first record; SQS retries every message.
        std::fs::remove_dir_all(dir.path().join("o")).unwrap();
        std::fs::write(dir.path().join("o"), b"in the way").unwrap();
        let (s, _) = h.handle(&ev).await;
        assert!(s.error.is_some());
        assert_eq!(s.batch_item_failures, vec![first.clone()]);
        assert_eq!(
            s.lambda_response(true),
            serde_json::json!({ "batchItemFailures": [{ "itemIdentifier": first }] })
        );
        let sqs =
            crate::event::sqs_records_event("q", &["{\"p\":\"x\",\"n\":1}".into(), "{}".into()]);
        let (s, per_item) = h.handle(&sqs).await;
        assert!(per_item);
        assert_eq!(s.trigger, "sqs");
        assert_eq!(s.batch_item_failures.len(), 2);
    }

    #[tokio::test]
    async fn records_decoded_in_place_give_what_copied_records_give() {
        // The fast event path decodes runs of plain records where their data lie; the general
        // path copies each record. A batch that breaks the runs every way: several lines in one
        // record, a line break at the end or not, an empty record, a KPL aggregate, gzip, bad
        // JSON, bad base64, and a run longer than one decoder block.
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
        let cfg = "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = { p = \"string\", n = \"int64\" }\n[[stage]]\ntype = \"aggregate\"\ngroup_by = [\"p\"]\nmeasures = { c = \"count(*)\", s = \"sum(n)\" }\n[output]\nuri = \"s3://o/agg/\"\nformat = \"ndjson\"\n[rejects]\nuri = \"s3://o/rejects/\"\n";
        let h = Handler::new(plan(cfg), store.clone(), store.clone());
        let gz = |t: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(t).unwrap();
            e.finish().unwrap()
        };
        let long: String = (0..JOIN_BYTES / 16 + 10)
            .map(|i| format!("{{\"p\":\"z\",\"n\":{}}}\n", i % 10))
            .collect();
        let payloads: Vec<(String, Vec<u8>)> = [
            b"{\"p\":\"x\",\"n\":1}".to_vec(),
            b"{\"p\":\"x\",\"n\":2}\n{\"p\":\"y\",\"n\":3}".to_vec(),
            b"{\"p\":\"y\",\"n\":4}\n".to_vec(),
            Vec::new(),
            crate::kpl::aggregate(&[
                ("k", b"{\"p\":\"x\",\"n\":5}"),
                ("k", b"{\"p\":\"y\",\"n\":6}"),
            ]),
            b"{\"p\":\"x\",\"n\":7}".to_vec(),
            gz(b"{\"p\":\"x\",\"n\":8}\n"),
            b"not json".to_vec(),
            b"BASE64".to_vec(),
            long.clone().into_bytes(),
            b"{\"p\":\"y\",\"n\":9}".to_vec(),
        ]
        .into_iter()
        .map(|d| ("k".to_string(), d))
        .collect();
        let ev = crate::event::kinesis_event("s", &payloads);
        let text = serde_json::to_string(&ev)
            .unwrap()
            .replacen("\"QkFTRTY0\"", "\"QkFTRTY0!\"", 1);
        let ev: Value = serde_json::from_str(&text).unwrap();
        assert!(crate::fastevent::kinesis(text.as_bytes()).is_some());
        let z: i64 = (0..JOIN_BYTES / 16 + 10).map(|i| (i % 10) as i64).sum();
        let want = format!(
            "{{\"p\":\"x\",\"c\":5,\"s\":23}}\n{{\"p\":\"y\",\"c\":4,\"s\":22}}\n{{\"p\":\"z\",\"c\":{},\"s\":{z}}}\n",
            JOIN_BYTES / 16 + 10
        );
        let mut seen = Vec::new();
        for fast in [false, true] {
            let (s, _) = if fast {
                h.handle_bytes(text.as_bytes(), None).await
            } else {
                h.handle(&ev).await
            };
            assert_eq!(s.error, None);
            assert_eq!(s.rejected, 2, "fast: {fast}");
            assert_eq!(std::fs::read_to_string(&s.outputs[0]).unwrap(), want);
            let rejects = std::fs::read_to_string(&s.outputs[1]).unwrap();
            assert!(rejects.contains("not base64"), "{rejects}");
            assert!(rejects.contains("not json"), "{rejects}");
            seen.push((s.records_in, s.records_out, rejects));
        }
        assert_eq!(seen[0], seen[1]);
    }

    #[tokio::test]
    async fn stream_columns_name_the_record_every_row_came_from() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
        // Two rows in one record: two lines for NDJSON, an array for JSON documents.
        let event = |two: &dyn Fn(&str, &str) -> String| {
            let agg = crate::kpl::aggregate(&[
                ("u1", two("x", "").as_bytes()),
                ("skip", two("dropped", "").as_bytes()),
                ("u3", two("y", "z").as_bytes()),
            ]);
            crate::event::kinesis_event(
                "s",
                &[
                    ("a".to_string(), two("w", "w2").into_bytes()),
                    ("b".to_string(), agg),
                ],
            )
        };
        let lines = |a: &str, b: &str| {
            let mut t = format!("{{\"p\":\"{a}\"}}");
            if !b.is_empty() {
                t.push_str(&format!("\n{{\"p\":\"{b}\"}}"));
            }
            t
        };
        let array = |a: &str, b: &str| {
            let mut t = format!("[{{\"p\":\"{a}\"}}");
            if !b.is_empty() {
                t.push_str(&format!(",{{\"p\":\"{b}\"}}"));
            }
            t + "]"
        };
        let s0 = crate::event::kinesis_sequence(0);
        let s1 = crate::event::kinesis_sequence(1);
        let row = |p: &str, seq: &str, sub: i64, pk: &str, at: &str| {
            format!(
                "{{\"p\":\"{p}\",\"_shard\":\"shardId-000000000000\",\"_sequence\":\"{seq}\",\"_subsequence\":{sub},\"_partition_key\":\"{pk}\",\"_arrival\":\"{at}\"}}\n"
            )
        };
        let want = [
            row("w", &s0, 0, "a", "2025-11-22T12:00:00Z"),
            row("w2", &s0, 0, "a", "2025-11-22T12:00:00Z"),
            row("x", &s1, 0, "u1", "2025-11-22T12:00:00.001Z"),
            row("y", &s1, 2, "u3", "2025-11-22T12:00:00.001Z"),
            row("z", &s1, 2, "u3", "2025-11-22T12:00:00.001Z"),
        ]
        .concat();
        // A line format (one decoder over the batch) and a document format (one per record), with
        // batches small enough that rows of several records are gathered into one.
        type Two<'a> = &'a dyn Fn(&str, &str) -> String;
        let formats: [(&str, Two<'_>); 2] = [("ndjson", &lines), ("json", &array)];
        for (n, (format, two)) in formats.into_iter().enumerate() {
            let ev = event(two);
            let cfg = format!(
                "name = \"t\"\n[input]\nformat = \"{format}\"\nbatch_rows = 2\nschema = {{ p = \"string\" }}\n\
                 [[stage]]\ntype = \"filter\"\nwhere = \"_partition_key <> 'skip'\"\n\
                 [[stage]]\ntype = \"select\"\ncolumns = {{ p = \"p\", _shard = \"_shard\", _sequence = \"_sequence\", _subsequence = \"_subsequence\", _partition_key = \"_partition_key\", _arrival = \"_arrival\" }}\n\
                 [output]\nuri = \"s3://o/{n}/\"\nformat = \"ndjson\"\n"
            );
            let h = Handler::new(plan(&cfg), store.clone(), store.clone());
            let (s, _) = h.handle(&ev).await;
            assert_eq!(s.error, None, "{format}");
            assert_eq!((s.records_in, s.records_out), (6, 5), "{format}");
            let got = std::fs::read_to_string(&s.outputs[0]).unwrap();
            assert_eq!(got, want, "{format}");
        }
        // Without a stage naming them, the columns are not added.
        let cfg = "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = { p = \"string\" }\n[output]\nuri = \"s3://o/plain/\"\nformat = \"ndjson\"\n";
        let (s, _) = Handler::new(plan(cfg), store.clone(), store.clone())
            .handle(&event(&lines))
            .await;
        let got = std::fs::read_to_string(&s.outputs[0]).unwrap();
        assert!(got.starts_with("{\"p\":\"w\"}\n"), "{got}");
    }

    #[test]
    fn the_deadline_is_looked_at_first_after_work_and_every_64_records_or_mib() {
        let gone = Some(Instant::now());
        assert!(!Watch::new().past(None));
        // Before the first record.
        let mut w = Watch::new();
        assert!(w.past(gone));
        // Records that only add lines: not until the 64th, or 1 MiB of them.
        for _ in 0..63 {
            w.passed(100);
            assert!(!w.past(gone));
        }
        w.passed(100);
        assert!(w.past(gone));
        w.passed(JOIN_BYTES);
        assert!(w.past(gone));
        // A record that ran the stages: at once.
        w.passed(10);
        w.worked();
        assert!(w.past(gone));
        // A deadline not come is never past.
        let later = Some(Instant::now() + std::time::Duration::from_secs(60));
        let mut w = Watch::new();
        for _ in 0..1000 {
            w.passed(5000);
            assert!(!w.past(later));
        }
    }

    /// A handler over a scratch folder whose records take `ms` each in a stage of the user's
    /// (one-row batches, so every record reaches it as it is decoded), with `reserve_ms` as its
    /// deadline reserve; and a Kinesis batch of `n` records of a full decode block each (so each
    /// is decoded, and reaches the slow stage, before the next record's deadline check).
    fn slow_handler(
        dir: &std::path::Path,
        ms: u64,
        reserve_ms: u64,
        n: usize,
    ) -> (Handler, Value, String) {
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir));
        let cfg = format!(
            "name = \"t\"\n[input]\nformat = \"ndjson\"\nbatch_rows = 1\nschema = {{ p = \"string\" }}\n[output]\nuri = \"s3://o/d/\"\nformat = \"ndjson\"\ndeadline_reserve_ms = {reserve_ms}\n"
        );
        let h = Handler::new(plan(&cfg), store.clone(), store).with_stage(crate::testing::probe(
            move |_| {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(())
            },
        ));
        let pad = "x".repeat(JOIN_BYTES);
        let payloads: Vec<(String, Vec<u8>)> = (0..n)
            .map(|i| {
                let line = format!("{{\"p\":\"r{i}\",\"pad\":\"{pad}\"}}");
                ("k".to_string(), line.into_bytes())
            })
            .collect();
        (h, crate::event::kinesis_event("s", &payloads), pad)
    }

    #[tokio::test]
    async fn a_near_deadline_stops_at_a_record_boundary_and_reports_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (h, ev, pad) = slow_handler(dir.path(), 1000, 1600, 4);
        // 4 s left: requests must be done 800 ms before the deadline (a fifth of it), and the
        // records stop 1.6 s before that, at 1.6 s. The first record ends at 1 s, the second at
        // 2 s, so the batch stops before the third, with two written well before the deadline.
        let deadline = Instant::now() + std::time::Duration::from_millis(4000);
        let (s, per_item) = h.handle_until(&ev, Some(deadline)).await;
        assert!(per_item);
        assert_eq!(s.error, None);
        assert_eq!((s.records_in, s.records_out), (2, 2));
        assert_eq!(
            s.batch_item_failures,
            vec![crate::event::kinesis_sequence(2)]
        );
        assert_eq!(
            std::fs::read_to_string(&s.outputs[0]).unwrap(),
            "{\"p\":\"r0\"}\n{\"p\":\"r1\"}\n"
        );
        // SQS: every message not processed is reported.
        let bodies: Vec<String> = (0..3)
            .map(|i| format!("{{\"p\":\"m{i}\",\"pad\":\"{pad}\"}}"))
            .collect();
        let sqs = crate::event::sqs_records_event("q", &bodies);
        let deadline = Instant::now() + std::time::Duration::from_millis(4000);
        let (s, _) = h.handle_until(&sqs, Some(deadline)).await;
        let ids: Vec<String> = sqs["Records"].as_array().unwrap()[2..]
            .iter()
            .map(|r| r["messageId"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(s.batch_item_failures, ids);
        // Already past it: answered at once, nothing counted as done, and the shard resumes at
        // the first record.
        let (s, per_item) = h.handle_until(&ev, Some(Instant::now())).await;
        assert!(per_item);
        assert_eq!(s.records_in, 0);
        assert!(
            s.error
                .is_some_and(|e| e.contains("deadline came before it finished"))
        );
        assert_eq!(
            s.batch_item_failures,
            vec![crate::event::kinesis_sequence(0)]
        );
    }

    /// Issue 27: a reserve longer than the function's timeout (20 s of a 2 s invocation) used to
    /// stop every invocation before its first record, forever. It is clamped to half the time
    /// left, so the batch makes progress.
    #[tokio::test]
    async fn a_reserve_longer_than_the_time_left_still_makes_progress() {
        let dir = tempfile::tempdir().unwrap();
        let (h, ev, _) = slow_handler(dir.path(), 900, 20_000, 3);
        // 2 s left, requests done by 1.6 s: the stop comes halfway to that, at 800 ms; the first
        // record takes 900 ms.
        let deadline = Instant::now() + std::time::Duration::from_millis(2000);
        let (s, _) = h.handle_until(&ev, Some(deadline)).await;
        assert_eq!(s.error, None);
        assert_eq!((s.records_in, s.records_out), (1, 1));
        assert_eq!(
            s.batch_item_failures,
            vec![crate::event::kinesis_sequence(1)]
        );
    }

    #[test]
    fn requests_end_a_fifth_before_the_deadline_and_the_answer_just_before_it() {
        let now = Instant::now();
        let ms = std::time::Duration::from_millis;
        // A fifth of the time left, at least 200 ms, at most 1.5 s; given up a quarter of that
        // before the deadline.
        assert_eq!(
            deadline_cuts(now + ms(4_000), now),
            (now + ms(3_200), now + ms(3_800))
        );
        assert_eq!(
            deadline_cuts(now + ms(60_000), now),
            (now + ms(58_500), now + ms(59_625))
        );
        assert_eq!(
            deadline_cuts(now + ms(500), now),
            (now + ms(300), now + ms(450))
        );
        assert_eq!(deadline_cuts(now, now), (now, now));
    }

    #[test]
    fn the_stop_is_the_reserve_before_the_deadline_or_halfway() {
        let now = Instant::now();
        let ms = std::time::Duration::from_millis;
        assert_eq!(stop_time(now + ms(10_000), now, 2_000), now + ms(8_000));
        assert_eq!(stop_time(now + ms(10_000), now, 5_000), now + ms(5_000));
        assert_eq!(stop_time(now + ms(10_000), now, 20_000), now + ms(5_000));
        assert_eq!(stop_time(now, now, 2_000), now);
    }

    #[tokio::test]
    async fn cloudwatch_logs_subscriptions_on_kinesis_give_one_row_per_log_event() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
        let cfg = "name = \"t\"\n[input]\nformat = \"cloudwatch-logs\"\n\
                   [[stage]]\ntype = \"select\"\ncolumns = { logGroup = \"logGroup\", id = \"id\", timestamp = \"timestamp\", message = \"message\", _partition_key = \"_partition_key\" }\n\
                   [output]\nuri = \"s3://o/cwl/\"\nformat = \"ndjson\"\n[rejects]\nuri = \"s3://o/rej/\"\n";
        let h = Handler::new(plan(cfg), store.clone(), store.clone());
        let gz = |doc: &str| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(doc.as_bytes()).unwrap();
            e.finish().unwrap()
        };
        // What a subscription filter puts on the stream: first a health check, then the data.
        let control = r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1795372800000,"message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}"#;
        let data = r#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/lambda/orders","logStream":"2026/11/22/[$LATEST]0f1e","subscriptionFilters":["to-kinesis"],"logEvents":[{"id":"37912336480170237219999837021066536802556432375838965760","timestamp":1795372801000,"message":"START RequestId: 7c1a Version: $LATEST\n"},{"id":"37912336480192537965198367644208072520829080737344946177","timestamp":1795372801001,"message":"{\"level\":\"error\",\"msg\":\"payment declined\"}\n"}]}"#;
        let ev = crate::event::kinesis_event(
            "logs",
            &[
                ("ctl".to_string(), gz(control)),
                ("orders".to_string(), gz(data)),
            ],
        );
        let (s, _) = h.handle(&ev).await;
        assert_eq!(s.error, None);
        assert_eq!((s.records_in, s.records_out, s.rejected), (2, 2, 0));
        let got = std::fs::read_to_string(&s.outputs[0]).unwrap();
        assert_eq!(
            got,
            "{\"logGroup\":\"/aws/lambda/orders\",\"id\":\"37912336480170237219999837021066536802556432375838965760\",\"timestamp\":\"2026-11-22T18:40:01Z\",\"message\":\"START RequestId: 7c1a Version: $LATEST\\n\",\"_partition_key\":\"orders\"}\n\
             {\"logGroup\":\"/aws/lambda/orders\",\"id\":\"37912336480192537965198367644208072520829080737344946177\",\"timestamp\":\"2026-11-22T18:40:01.001Z\",\"message\":\"{\\\"level\\\":\\\"error\\\",\\\"msg\\\":\\\"payment declined\\\"}\\n\",\"_partition_key\":\"orders\"}\n"
        );
    }

    #[tokio::test]
    async fn a_record_that_is_not_a_document_is_a_reject_not_a_blocked_shard() {
        // Regression: with a document format, one record without the records array failed the
        // whole batch, so Lambda would redeliver it forever.
        let dir = tempfile::tempdir().unwrap();
        let cfg = "name = \"t\"\n[input]\nformat = \"json\"\nrecords = \"items\"\nschema = { n = \"int64\" }\n[output]\nuri = \"s3://o/rows/\"\nformat = \"ndjson\"\n[rejects]\nuri = \"s3://o/rejects/\"\n";
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
        let h = Handler::new(plan(cfg), store.clone(), store);
        let payloads: Vec<(String, Vec<u8>)> = [
            &b"{\"items\":[{\"n\":1},{\"n\":2}]}"[..],
            b"{\"other\":true}",
            b"{\"items\":[{\"n\":3}]}",
        ]
        .iter()
        .map(|d| ("k".to_string(), d.to_vec()))
        .collect();
        let (s, _) = h.handle(&crate::event::kinesis_event("s", &payloads)).await;
        assert_eq!(s.error, None);
        assert!(s.batch_item_failures.is_empty());
        assert_eq!((s.records_out, s.rejected), (3, 1));
        assert_eq!(
            std::fs::read_to_string(&s.outputs[0]).unwrap(),
            "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"
        );
        let rejects = std::fs::read_to_string(&s.outputs[1]).unwrap();
        assert!(rejects.contains("no array at `items`"), "{rejects}");
        assert!(
            rejects.contains(&crate::event::kinesis_sequence(1)),
            "{rejects}"
        );
    }

    #[tokio::test]
    async fn an_aggregate_spans_the_invocation_and_fails_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        for (k, body) in [
            ("a.ndjson", "{\"p\":\"x\",\"n\":1}\n{\"p\":\"y\",\"n\":2}\n"),
            ("b.ndjson", "{\"p\":\"x\",\"n\":5}\n"),
        ] {
            let path = dir.path().join("b").join(k);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        let p = plan(
            "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = { p = \"string\", n = \"int64\" }\n[[stage]]\ntype = \"aggregate\"\ngroup_by = [\"p\"]\nmeasures = { c = \"count(*)\", s = \"sum(n)\" }\n[output]\nuri = \"s3://o/agg/\"\nformat = \"ndjson\"\n",
        );
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
        let h = Handler::new(p, store.clone(), store.clone());
        let two = crate::event::s3_event(vec![
            crate::event::s3_record("b", "a.ndjson", 1, "e1"),
            crate::event::s3_record("b", "b.ndjson", 1, "e2"),
        ]);
        let (s, _) = h.handle(&two).await;
        assert_eq!(s.error, None);
        assert_eq!((s.objects, s.records_in, s.records_out), (2, 3, 2));
        assert_eq!(s.outputs.len(), 1);
        assert!(
            s.outputs[0].contains("/agg/a-and-1-more-"),
            "{:?}",
            s.outputs
        );
        assert_eq!(
            std::fs::read_to_string(&s.outputs[0]).unwrap(),
            "{\"p\":\"x\",\"c\":2,\"s\":6}\n{\"p\":\"y\",\"c\":1,\"s\":2}\n"
        );

        // Through SQS, with one object missing: nothing is written and every message is retried.
        let sqs = serde_json::json!({"Records": [
            crate::event::sqs_event(&crate::event::s3_event(vec![crate::event::s3_record("b", "a.ndjson", 1, "e1")]), "m1")["Records"][0].clone(),
            crate::event::sqs_event(&crate::event::s3_event(vec![crate::event::s3_record("b", "gone.ndjson", 1, "e3")]), "m2")["Records"][0].clone(),
        ]});
        std::fs::remove_dir_all(dir.path().join("o")).unwrap();
        let (s, is_sqs) = h.handle(&sqs).await;
        assert!(is_sqs);
        assert_eq!(
            s.batch_item_failures,
            vec!["m1".to_string(), "m2".to_string()]
        );
        assert!(s.error.unwrap().contains("gone.ndjson: no such object"));
        assert!(!dir.path().join("o").exists());
    }

    #[tokio::test]
    async fn a_type_error_against_an_inferred_schema_fails_the_object_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let obj = dir.path().join("b/k.ndjson");
        std::fs::create_dir_all(obj.parent().unwrap()).unwrap();
        std::fs::write(&obj, b"{\"n\":\"text\"}\n").unwrap();
        let p = plan(
            "name = \"t\"\n[input]\nformat = \"ndjson\"\n[[stage]]\ntype = \"filter\"\nwhere = \"n > 1\"\n[output]\nuri = \"s3://o/p/\"\n",
        );
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
        let h = Handler::new(p, store.clone(), store);
        let (s, _) = h
            .handle(&crate::event::s3_event(vec![crate::event::s3_record(
                "b", "k.ndjson", 1, "e",
            )]))
            .await;
        let err = s.error.unwrap();
        assert!(
            err.contains("s3://b/k.ndjson") && err.contains("cannot apply `>` to string and int64"),
            "{err}"
        );
        assert!(!dir.path().join("o").exists());
    }
}
