//! Running a pipeline on one event. The Lambda loop and `sluice replay` both call
//! [`Handler::handle`], so replay does exactly what the Lambda does. The data flow
//! ([`Handler::handle_bytes`] down): the event's bytes become a typed [`trigger::Invocation`]; its
//! deadline bounds everything after (`deadline`); its items are sorted, and each object or
//! stream batch goes through a `unit::UnitOfWork` — read ([`crate::read`]), through the
//! stages, written and published together, or aborted whole (`objects`, `records`,
//! `window`); the catalog rows are written (`catalog`); the `outcome` is the summary and
//! the Lambda answer.

mod catalog;
mod deadline;
pub mod firehose;
mod objects;
pub mod outcome;
mod records;
#[cfg(test)]
mod tests;
pub(crate) mod unit;
mod window;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::Value;
use sluice_processors::StageFactory;
use sluice_processors::decode::Decoder;
use tracing::warn;

use crate::config::Plan;
use crate::kinesis::RecordPutter;
use crate::store::ObjectStore;
use crate::trigger::{self, Item, ObjectRef, StreamRecord};
use crate::write::Outputs;

use deadline::{deadline_cuts, out_of_time};
use outcome::Tally;
pub use outcome::{CommitStats, Outcome, Skip, StageTime, Summary};
use unit::stage_clock;

/// Runs a [`Plan`] against objects in a store.
#[derive(Clone)]
pub struct Handler {
    pub(crate) plan: Arc<Plan>,
    pub(crate) input: Arc<dyn ObjectStore>,
    pub(crate) output: Arc<dyn ObjectStore>,
    streams: Option<Arc<dyn RecordPutter>>,
    pub(crate) extra: Vec<Arc<dyn StageFactory>>,
    /// Nanoseconds spent in each stage (configured, then extra) during the current event.
    clock: Arc<Vec<AtomicU64>>,
    /// The deadline of an event handled without one: this long after it starts (a function's
    /// timeout, for replay).
    timeout: Option<std::time::Duration>,
    /// The memory budget in MB ([`crate::budget`]).
    memory_mb: u64,
    /// An Iceberg output's table (its catalog opened on first use, kept across events).
    #[cfg(feature = "iceberg")]
    table: Option<Arc<crate::table::Target>>,
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
        #[cfg(feature = "iceberg")]
        let table = plan.files.table.as_ref().map(|spec| {
            Arc::new(crate::table::Target::new(
                spec,
                &plan.output,
                &output,
                &plan.config.name,
            ))
        });
        Self {
            #[cfg(feature = "iceberg")]
            table,
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
    pub(crate) fn outputs(&self, base: String, source: &str) -> Outputs {
        let outputs = Outputs::new(
            &self.plan.files,
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
        match self.plan.index.as_ref().filter(|i| i.text.is_some()) {
            Some(spec) => outputs.with_index(spec, source.to_string()),
            None => outputs,
        }
    }

    /// Append a stage of your own after the configured ones.
    pub fn with_stage(mut self, stage: Arc<dyn StageFactory>) -> Self {
        self.extra.push(stage);
        self.clock = stage_clock(self.plan.stages.len() + self.extra.len());
        self
    }

    /// The plan's decoder for `key`, keeping each row's input line when a stage of this handler
    /// (its own included) or its output can refuse a row and the rejects are written.
    pub(crate) fn decoder(&self, key: &str) -> Result<Box<dyn Decoder>, sluice_processors::Error> {
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

    /// An Iceberg output's catalog client (Glue) at `endpoint`, the endpoint the stores use
    /// (replay's `--endpoint-url`); without it, the SDK's default for the environment.
    pub fn with_endpoint(self, endpoint: Option<&str>) -> Self {
        #[cfg(feature = "iceberg")]
        return self.map_table(|t| t.with_endpoint(endpoint));
        #[cfg(not(feature = "iceberg"))]
        {
            let _ = endpoint;
            self
        }
    }

    /// The handler with its Iceberg output's table changed by `f` (not shared yet: a handler
    /// is set up as it is made).
    #[cfg(feature = "iceberg")]
    fn map_table(mut self, f: impl FnOnce(crate::table::Target) -> crate::table::Target) -> Self {
        if let Some(t) = self.table.take() {
            self.table = Some(match Arc::try_unwrap(t) {
                Ok(t) => Arc::new(f(t)),
                Err(shared) => shared,
            });
        }
        self
    }

    /// `sluice bench`: an Iceberg output's table goes into a SQLite catalog at `catalog`
    /// whatever the config names (no table is created or committed in Glue or a REST catalog),
    /// and its commit messages (`commit = "queue"`) are taken — sized for the bill — and never
    /// sent, as Kinesis records are taken by a counting putter: a committer must not be handed
    /// files in a bench's scratch folder. See [`Handler::forget_table`].
    pub fn benched(self, catalog: &std::path::Path) -> Self {
        #[cfg(feature = "iceberg")]
        return self.map_table(|t| t.benched(catalog));
        #[cfg(not(feature = "iceberg"))]
        {
            let _ = catalog;
            self
        }
    }

    /// `sluice bench`, between invocations: a benched table is dropped from its catalog, so
    /// each invocation (its output folder emptied) writes into a new one, as the first did.
    pub async fn forget_table(&self) {
        #[cfg(feature = "iceberg")]
        if let Some(t) = &self.table {
            t.forget().await;
        }
    }

    /// An Iceberg output's table (`sluice table show|orphans`).
    #[cfg(feature = "iceberg")]
    pub fn table(&self) -> Option<&Arc<crate::table::Target>> {
        self.table.as_ref()
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Process one event. Never panics; failures are in the summary.
    pub async fn handle(&self, event: &Value) -> Outcome {
        self.handle_until(event, None).await
    }

    /// Process an event given as a typed value: one of `aws_lambda_events`' (re-exported as
    /// [`crate::aws_lambda_events`]: `S3Event`, `SqsEvent`, `SnsEvent`, `KinesisEvent`,
    /// `EventBridgeEvent`…), or anything else that serializes to an event's JSON.
    pub async fn handle_event<E: serde::Serialize + ?Sized>(&self, event: &E) -> Outcome {
        match serde_json::to_value(event) {
            Ok(v) => self.handle(&v).await,
            Err(e) => Outcome {
                summary: Summary::unknown(format!("the event is not JSON: {e}")),
                per_item: false,
            },
        }
    }

    /// Process one event that must be done by `deadline` (the Lambda invocation's): a stream batch
    /// stops at a record boundary `[output] deadline_reserve_ms` before it, writes what is done and
    /// reports the rest as batch item failures, rather than being killed mid-write.
    pub async fn handle_until(&self, event: &Value, deadline: Option<Instant>) -> Outcome {
        self.handle_invocation(trigger::parse(event), Instant::now(), deadline)
            .await
    }

    /// Process an event given as the invocation's JSON bytes (what the Lambda runtime receives): a
    /// plain Kinesis batch is read without building a JSON tree ([`crate::fastevent`]), anything
    /// else is parsed with `serde_json`. Otherwise as [`Handler::handle_until`].
    pub async fn handle_bytes(&self, body: &[u8], deadline: Option<Instant>) -> Outcome {
        let started = Instant::now();
        if let Some(invocation) = crate::fastevent::kinesis(body) {
            return self.handle_invocation(invocation, started, deadline).await;
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(event) => {
                self.handle_invocation(trigger::parse(&event), started, deadline)
                    .await
            }
            Err(e) => Outcome {
                summary: Summary::unknown(format!("the event is not JSON: {e}")),
                per_item: false,
            },
        }
    }

    /// With a deadline, every request is bounded by it (a fifth of the time left before it, at
    /// least 200 ms and at most 1.5 s, is kept for clean-up and the answer), and whatever is still
    /// running just before it is given up: the answer is then the one that loses nothing (every
    /// SQS message and the batch's first Kinesis record reported for redelivery, an asynchronous
    /// event failed), so Lambda always gets an answer before it kills the function.
    async fn handle_invocation(
        &self,
        invocation: trigger::Invocation,
        started: Instant,
        deadline: Option<Instant>,
    ) -> Outcome {
        let Some(deadline) = deadline.or_else(|| self.timeout.map(|t| started + t)) else {
            return self.run_event(&invocation, started, None).await;
        };
        let now = Instant::now();
        let (cut, last) = deadline_cuts(deadline, now);
        let gave_up = || {
            warn!(
                "The invocation's deadline came before it finished; reporting all of it for redelivery."
            );
            out_of_time(&invocation, started)
        };
        if last <= now {
            return gave_up();
        }
        let work = crate::store::with_deadline(
            Some(cut),
            self.run_event(&invocation, started, Some(deadline)),
        );
        // The deadline is looked at first each time the work yields: work that could still
        // finish after it must not, since its answer would come too late.
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(last.into()) => gave_up(),
            done = work => done,
        }
    }

    /// The data flow of one event: its items sorted (skips and undeliverable messages reported
    /// at once), a stream batch through one unit of work, objects each through their own unit
    /// (or, with an aggregate, all through one), the catalog rows written, and the outcome.
    async fn run_event(
        &self,
        invocation: &trigger::Invocation,
        started: Instant,
        deadline: Option<Instant>,
    ) -> Outcome {
        let mut t = Tally::new(invocation);
        t.fifo = invocation.work.fifo.clone().map(|order| outcome::Fifo {
            order,
            by_group: self.plan.config.input.fifo == crate::config::FifoOrder::Group,
        });
        if invocation.source.kind == trigger::Kind::DynamoDb
            && self.plan.config.input.format.as_str() != "ndjson"
        {
            t.fail(
                crate::error::ErrorClass::Permanent,
                "a DynamoDB Streams batch delivers items as JSON documents: set [input] format = \
                 \"ndjson\" to read them (one row per change)"
                    .into(),
            );
            t.s.redeliver(
                &invocation
                    .work
                    .items
                    .iter()
                    .filter_map(|i| match i {
                        trigger::Item::Record(r) => Some(r),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
                true,
            );
            return t.finish(started, self.stage_times());
        }
        if invocation.source.kind == trigger::Kind::CloudWatchLogs
            && self.plan.config.input.format.as_str() != "cloudwatch-logs"
        {
            t.fail(
                crate::error::ErrorClass::Permanent,
                "a CloudWatch Logs subscription delivers documents of log events: set [input] \
                 format = \"cloudwatch-logs\" to read them (one row per log event)"
                    .into(),
            );
            return t.finish(started, self.stage_times());
        }
        let firehose = self.plan.output == crate::config::Destination::Firehose;
        if invocation.error.is_none()
            && firehose != (invocation.source.kind == trigger::Kind::Firehose)
        {
            let why = if firehose {
                format!(
                    "this pipeline is a Firehose transformation ([input] trigger = \"firehose\"), \
                     and the event is {}: only Firehose's data-transformation batches can be \
                     answered with their rows",
                    invocation.source
                )
            } else {
                "a Firehose data-transformation batch is answered with its rows, record by record: \
                 set [input] trigger = \"firehose\" (and leave out [output] uri) to transform it"
                    .to_string()
            };
            t.fail(crate::error::ErrorClass::Permanent, why);
            // Nothing of it is processed: the whole event fails, for its source to retry.
            t.per_item = false;
            return t.finish(started, self.stage_times());
        }
        #[allow(unused_mut)]
        let (mut objects, mut records) = self.sort_items(invocation, &mut t);
        if let Some(job) = &invocation.work.firehose {
            t.s.delivered = records.len() as u64;
            t.s.bytes_in = records
                .iter()
                .map(|r| r.data.as_ref().map_or(0, |d| d.len() as u64))
                .sum();
            self.run_firehose(job, &records, deadline, &mut t);
            return t.finish(started, self.stage_times());
        }
        t.s.bytes_in = objects.iter().filter_map(|o| o.size).sum::<u64>()
            + records
                .iter()
                .map(|r| r.data.as_ref().map_or(0, |d| d.len() as u64))
                .sum::<u64>();
        t.s.delivered = records.len() as u64;
        // A table committed through a queue: an SQS batch of messages is the committer's (SQS
        // records into a table are not supported otherwise).
        #[cfg(feature = "iceberg")]
        if let Some(target) = self.table.as_ref().filter(|t| t.queued())
            && invocation.source.kind == trigger::Kind::Messages
            && !records.is_empty()
        {
            Box::pin(self.run_committer(target, &records, &mut t)).await;
            return t.finish(started, self.stage_times());
        }
        #[cfg(feature = "iceberg")]
        let session = match Box::pin(self.begin_table(
            invocation,
            &mut objects,
            &mut records,
            &mut t,
        ))
        .await
        {
            Ok(s) => s,
            Err(()) => return t.finish(started, self.stage_times()),
        };
        let work = async {
            if !records.is_empty() || invocation.work.window.is_some() {
                self.run_batch(invocation, &records, deadline, &mut t).await;
            }
            if self.per_invocation() && !objects.is_empty() {
                self.run_invocation(&objects, &mut t).await;
            } else if self.plan.config.output.per == crate::config::Per::Invocation
                && !objects.is_empty()
            {
                self.run_gathered(objects, &mut t).await;
            } else {
                self.run_objects(objects, &mut t).await;
            }
        };
        // The table's futures (the crate's writers and commits) are large: on the heap.
        #[cfg(feature = "iceberg")]
        Box::pin(crate::table::with_session(session.clone(), work)).await;
        #[cfg(not(feature = "iceberg"))]
        work.await;
        #[cfg(feature = "iceberg")]
        if let Some(session) = session {
            Box::pin(self.commit_table(&session, &mut t)).await;
        }
        self.write_catalog(&mut t).await;
        t.finish(started, self.stage_times())
    }

    /// An Iceberg output's session for this event: the table loaded once, and the objects its
    /// snapshots already hold skipped (already committed). When the catalog cannot be reached,
    /// every item fails (retried), and `Err` ends the event.
    #[cfg(feature = "iceberg")]
    async fn begin_table(
        &self,
        invocation: &trigger::Invocation,
        objects: &mut Vec<&ObjectRef>,
        records: &mut Vec<&StreamRecord>,
        t: &mut Tally,
    ) -> Result<Option<Arc<crate::table::Session>>, ()> {
        let Some(target) = &self.table else {
            return Ok(None);
        };
        if objects.is_empty() && records.is_empty() && invocation.work.window.is_none() {
            return Ok(None);
        }
        let kinesis = invocation.source.kinesis();
        if (!records.is_empty() && !kinesis) || invocation.work.window.is_some() {
            // A snapshot records a Kinesis batch by its shard's sequence range; SQS records (by
            // message id) and tumbling windows (their state) have no such record yet.
            let e = crate::Error::Data(format!(
                "table {}: SQS record batches, DynamoDB Streams and Kinesis tumbling windows into \
                 an Iceberg table are not supported yet; S3-triggered objects and Kinesis batches are",
                target.name()
            ));
            warn!(error = %e, "Batch failed.");
            t.s.redeliver(records, invocation.source.ordered());
            t.fail(e.class(), e.to_string());
            records.clear();
        }
        match target.begin().await {
            Ok(session) => {
                objects.retain(|obj| {
                    let Some(snapshot) = session.committed(&crate::table::source_id(obj)) else {
                        return true;
                    };
                    let reason = format!(
                        "already committed to table {} (snapshot {snapshot})",
                        session.name()
                    );
                    self.skip(t, Some(obj), &obj.uri(), &reason);
                    false
                });
                // A redelivered Kinesis batch (after a commit whose answer was lost, say, or
                // split in two by bisect-on-error) starts with records already committed: they
                // are left out, once each, and the rest processed.
                let original: Vec<&str> = records.iter().map(|r| r.id()).collect();
                let before = records.len();
                let mut held_by = None;
                records.retain(|r| match session.committed_record(r.shard(), r.id()) {
                    Some(snap) => {
                        held_by.get_or_insert((r.shard().to_string(), r.id().to_string(), snap));
                        false
                    }
                    None => true,
                });
                if let Some((shard, first, snap)) = held_by {
                    let n = before - records.len();
                    t.s.skipped += n as u64;
                    t.s.skips.push(crate::run::Skip {
                        source: format!("kinesis {shard} from {first} ({n} records)"),
                        reason: format!(
                            "already committed to table {} (snapshot {snap})",
                            session.name()
                        ),
                    });
                }
                if session.queued()
                    && !records.is_empty()
                    && let Err(e) = Self::leave_out_claimed(&session, records, t).await
                {
                    warn!(error = %e, class = %e.class(), "Cannot read the table's queued claims.");
                    t.s.redeliver(records, invocation.source.ordered());
                    t.fail(e.class(), e.to_string());
                    records.clear();
                }
                // Held records inside the batch, not at its start (a retry resumes at its
                // checkpoint, so Lambda does not deliver this; a hand-made event might) leave a
                // hole that one sequence range cannot record: committing from before the hole
                // to after it would claim the held records again, and be refused every retry.
                // The records after the hole are reported for redelivery, which resumes there.
                if let Some(k) = after_hole(&original, records) {
                    tracing::info!(
                        from = records[k].id(),
                        "Records after committed ones in the batch's middle come back."
                    );
                    t.s.redeliver(&records[k..], true);
                    records.truncate(k);
                }
                Ok(Some(session))
            }
            Err(e) => {
                warn!(error = %e, class = %e.class(), "Cannot reach the table.");
                for obj in objects.iter() {
                    t.s.failed_objects += 1;
                    if let Some(id) = &obj.message_id
                        && !t.s.batch_item_failures.contains(id)
                    {
                        t.s.batch_item_failures.push(id.clone());
                    }
                }
                t.fail(e.class(), e.to_string());
                Err(())
            }
        }
    }

    /// A Kinesis batch into a queued table: the records a claim holds (an earlier delivery
    /// queued them, or claimed them and failed to send) are left out, once each, and each claim
    /// the batch overlaps has its message sent again, so what the earlier delivery queued
    /// reaches the committer however its send ended.
    #[cfg(feature = "iceberg")]
    async fn leave_out_claimed(
        session: &crate::table::Session,
        records: &mut Vec<&StreamRecord>,
        t: &mut Tally,
    ) -> Result<(), crate::Error> {
        use crate::table::seq_cmp;
        let mut shards: Vec<String> = records.iter().map(|r| r.shard().to_string()).collect();
        shards.sort_unstable();
        shards.dedup();
        for shard in shards {
            let claims = session.claims(&shard).await?;
            let ids = || {
                records
                    .iter()
                    .filter(|r| r.shard() == shard)
                    .map(|r| r.id())
            };
            let (Some(lo), Some(hi)) = (
                ids().min_by(|a, b| seq_cmp(a, b)),
                ids().max_by(|a, b| seq_cmp(a, b)),
            ) else {
                continue;
            };
            let overlapped: Vec<_> = claims.iter().filter(|c| c.overlaps(lo, hi)).collect();
            for c in &overlapped {
                session.resend(c).await?;
            }
            let before = records.len();
            let mut first = None;
            records.retain(|r| {
                if r.shard() != shard || !overlapped.iter().any(|c| c.covers(r.id())) {
                    return true;
                }
                first.get_or_insert(r.id().to_string());
                false
            });
            if let Some(first) = first {
                let n = before - records.len();
                t.s.skipped += n as u64;
                let named: Vec<String> = overlapped
                    .iter()
                    .map(|c| format!("{}..{}", c.first, c.last))
                    .collect();
                t.s.skips.push(crate::run::Skip {
                    source: format!("kinesis {shard} from {first} ({n} records)"),
                    reason: format!(
                        "queued already for table {} (claimed {}; its message sent again)",
                        session.name(),
                        named.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    /// Commit the data files the event's units wrote, in one snapshot. When the commit fails
    /// nothing of them is in the table: every object behind them is failed (retried), and the
    /// files are orphans (`sluice table orphans`).
    #[cfg(feature = "iceberg")]
    async fn commit_table(&self, session: &crate::table::Session, t: &mut Tally) {
        let held = std::mem::take(&mut t.table);
        if held.units.iter().all(|u| u.sources.is_empty()) {
            return;
        }
        let pending = crate::table::Pending { units: held.units };
        let paths: Vec<String> = pending
            .units
            .iter()
            .flat_map(|u| u.files.iter().map(|f| f.file_path().to_string()))
            .collect();
        let started = Instant::now();
        let rows: u64 = pending.units.iter().map(|u| u.rows).sum();
        let mut stats = outcome::CommitStats {
            files: paths.len() as u64,
            rows,
            ..Default::default()
        };
        let committed = if session.queued() {
            // The committer commits them: the files are the invocation's output once queued.
            stats.mode = "queued";
            session.enqueue(pending).await.map(|bytes| {
                tracing::info!(table = %session.name(), files = paths.len(), "Queued the files for the committer.");
                stats.message_bytes = Some(bytes);
            })
        } else {
            stats.mode = "direct";
            session.commit(pending).await.map(|done| {
                stats.conflicts = done.conflicts;
                if let Some(id) = done.snapshot {
                    tracing::info!(table = %session.name(), snapshot = id, files = paths.len(), "Committed.");
                }
            })
        };
        t.s.commit_ms = Some(started.elapsed().as_secs_f64() * 1e3);
        match committed {
            Ok(()) => {
                t.s.commit = Some(stats);
                t.s.outputs.extend(paths);
            }
            Err(e) => {
                warn!(error = %e, class = %e.class(), "Commit failed; nothing of the event is in the table.");
                let n = held.message_ids.len() as u64;
                t.s.objects = t.s.objects.saturating_sub(n);
                t.s.failed_objects += n;
                t.s.records_out = t.s.records_out.saturating_sub(held.records_out);
                // The shard resumes at the batch's first record (Lambda takes the lowest
                // sequence number reported).
                if let Some(first) = held.resume_at
                    && !t.s.batch_item_failures.contains(&first)
                {
                    t.s.batch_item_failures.insert(0, first);
                }
                for id in held.message_ids.into_iter().flatten() {
                    if !t.s.batch_item_failures.contains(&id) {
                        t.s.batch_item_failures.push(id);
                    }
                }
                t.fail(e.class(), e.to_string());
            }
        }
    }

    /// The committer (`commit = "queue"`): the batch's commit messages folded into one snapshot.
    /// A message that cannot be read, or whose units can be neither committed nor dropped, is
    /// returned to the queue with its reason (its redrive policy moves it to the dead-letter
    /// queue in the end); when the commit fails, every message is.
    #[cfg(feature = "iceberg")]
    async fn run_committer(
        &self,
        target: &Arc<crate::table::Target>,
        records: &[&StreamRecord],
        t: &mut Tally,
    ) {
        use crate::error::ErrorClass;
        use crate::table::queue::{Message, Queued};
        let mut queued = Vec::with_capacity(records.len());
        for r in records {
            let id = r.id();
            match r
                .data
                .as_deref()
                .map_err(Clone::clone)
                .and_then(Message::parse)
            {
                Ok(message) => queued.push(Queued {
                    id: id.to_string(),
                    message,
                }),
                Err(why) => {
                    warn!(message_id = id, reason = %why, "Cannot commit a queued message.");
                    t.fail_item(id, ErrorClass::BadInput, &why);
                    t.fail(ErrorClass::BadInput, format!("message {id}: {why}"));
                }
            }
        }
        if queued.is_empty() {
            return;
        }
        let ids: Vec<String> = queued.iter().map(|q| q.id.clone()).collect();
        let started = Instant::now();
        let folded = target.fold(queued).await;
        t.s.commit_ms = Some(started.elapsed().as_secs_f64() * 1e3);
        match folded {
            Ok(f) => {
                let mut stats = outcome::CommitStats {
                    mode: "committer",
                    conflicts: f.conflicts,
                    messages: Some([
                        f.committed.len() as u64,
                        // Messages none of whose units was committed.
                        f.dropped
                            .iter()
                            .map(|(id, _)| id)
                            .filter(|id| f.committed.iter().all(|(c, _, _)| c != *id))
                            .collect::<std::collections::HashSet<_>>()
                            .len() as u64,
                        f.refused.len() as u64,
                    ]),
                    visible_ms: f.visible_ms,
                    ..Default::default()
                };
                for (id, why) in f.refused {
                    warn!(message_id = %id, reason = %why, "Refused a queued message.");
                    t.fail_item(&id, ErrorClass::Permanent, &why);
                    t.fail(ErrorClass::Permanent, format!("message {id}: {why}"));
                }
                for (id, why) in f.dropped {
                    t.s.skipped += 1;
                    t.s.skips.push(Skip {
                        source: format!("message {id}"),
                        reason: why,
                    });
                }
                for (_, rows, paths) in f.committed {
                    t.s.records_out += rows;
                    stats.rows += rows;
                    stats.files += paths.len() as u64;
                    t.s.outputs.extend(paths);
                }
                if let Some(id) = f.snapshot {
                    tracing::info!(table = %target.name(), snapshot = id, files = stats.files, "Committed the queued files.");
                }
                t.s.commit = Some(stats);
            }
            Err(e) => {
                warn!(error = %e, class = %e.class(), "Commit failed; every message returns to the queue.");
                for id in &ids {
                    t.fail_item(id, e.class(), &e.to_string());
                }
                t.fail(e.class(), e.to_string());
            }
        }
    }

    /// The event's objects and stream records; items skipped (with their reason) and SQS
    /// messages that cannot be read (reported for redelivery) are tallied here.
    fn sort_items<'p>(
        &self,
        invocation: &'p trigger::Invocation,
        t: &mut Tally,
    ) -> (Vec<&'p ObjectRef>, Vec<&'p StreamRecord>) {
        let mut objects: Vec<&ObjectRef> = Vec::new();
        let mut records: Vec<&StreamRecord> = Vec::new();
        for item in &invocation.work.items {
            match item {
                Item::Record(r) => records.push(r),
                Item::Skipped {
                    source,
                    reason,
                    object,
                } => {
                    // A deletion or other change to an object is in the audit log too.
                    self.skip(t, object.as_deref(), source, reason);
                }
                Item::Failed { message_id, reason } => {
                    warn!(message_id, reason, "Cannot process an SQS message.");
                    t.fail_item(message_id, crate::error::ErrorClass::BadInput, reason);
                    t.fail(
                        crate::error::ErrorClass::BadInput,
                        format!("message {message_id}: {reason}"),
                    );
                }
                Item::Object(obj) => match self.skip_reason(obj) {
                    Some(reason) => self.skip(t, Some(obj), &obj.uri(), &reason),
                    None => objects.push(obj),
                },
            }
        }
        (objects, records)
    }

    /// True when a stage needs every record of the invocation (an aggregate).
    pub(crate) fn per_invocation(&self) -> bool {
        self.plan.stages.iter().any(|s| s.factory.per_invocation())
            || self.extra.iter().any(|f| f.per_invocation())
    }
}

/// The first of `kept` (what is left of a batch whose records were `original`, in order) that
/// does not follow the one before it in `original`: where a hole of left-out records ends.
#[cfg(feature = "iceberg")]
fn after_hole(original: &[&str], kept: &[&StreamRecord]) -> Option<usize> {
    if kept.len() == original.len() {
        return None;
    }
    let at: std::collections::HashMap<&str, usize> = original
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, i))
        .collect();
    (1..kept.len()).find(
        |&k| match (at.get(kept[k - 1].id()), at.get(kept[k].id())) {
            (Some(a), Some(b)) => *b != a + 1,
            _ => false,
        },
    )
}
