//! S3 objects: each through a unit of its own (images as many at once as there are cores), or,
//! with an aggregate, all of an invocation's through one; skips, failures and catalog rows
//! tallied.

use std::time::Instant;

use tracing::{info, warn};

use super::Handler;
use super::outcome::{ObjectResult, Skip, Tally};
use super::unit::UnitOfWork;
use crate::catalog::{CatalogRow, Status};
use crate::config::OnMissing;
use crate::trigger::ObjectRef;
use crate::write::{base_name, invocation_name};
use crate::{Error, MISSING};

impl Handler {
    /// Every object through one unit of work: an aggregate sees the whole invocation, and writes
    /// once. Tallied: each object processed, skipped (superseded) or, when the unit fails, failed.
    pub(super) async fn run_invocation(&self, objects: &[&ObjectRef], t: &mut Tally) {
        let started = Instant::now();
        let outcome = self.process_all(objects).await;
        self.tally_invocation(objects, started, outcome, t);
    }

    /// `[output] per = "invocation"`: every object through one unit, as for an aggregate (one
    /// set of files per partition, named after all of them). An object that cannot be used as
    /// input (corrupt, the wrong format: a retry would fail the same way), or is gone or was
    /// written by this pipeline, is left out alone and the unit run again without it, so one bad
    /// object never fails its neighbours; any other failure (storage, the deadline) fails them
    /// all, for a retry. Each pass leaves out at least one object, so there are at most as many
    /// passes as objects, and they stop at the deadline like any request.
    pub(super) async fn run_gathered(&self, mut objects: Vec<&ObjectRef>, t: &mut Tally) {
        let started = Instant::now();
        loop {
            let outcome = self.process_all(&objects).await;
            let Err(e) = &outcome else {
                return self.tally_invocation(&objects, started, outcome, t);
            };
            let alone = e.missing()
                || e.own_output_of().is_some()
                || e.class() == crate::error::ErrorClass::BadInput;
            let culprit = match e {
                Error::Object { location, .. } if alone => {
                    objects.iter().position(|o| &o.uri() == location)
                }
                _ => None,
            };
            let (Some(i), true) = (culprit, objects.len() > 1) else {
                return self.tally_invocation(&objects, started, outcome, t);
            };
            let obj = objects.remove(i);
            let Err(e) = outcome else { return };
            // Tallied as it would be alone (failed, or skipped when gone or our own).
            self.tally_object(obj, started, Err(e), t);
            // In a FIFO batch, what came after it (in its group) waits for it.
            let mut kept = Vec::with_capacity(objects.len());
            for o in objects {
                match t.fifo_blocked(o) {
                    Some(reason) => self.hold_back(o, reason, t),
                    None => kept.push(o),
                }
            }
            objects = kept;
            if objects.is_empty() {
                return;
            }
            info!(bucket = %obj.bucket, key = %obj.key, left = objects.len(), "Left out of the invocation's files; the rest again without it.");
        }
    }

    /// An invocation-wide unit's outcome in the tally: each object processed, skipped
    /// (superseded) or, when the unit failed, failed.
    fn tally_invocation(
        &self,
        objects: &[&ObjectRef],
        started: Instant,
        outcome: Result<ObjectResult, Error>,
        t: &mut Tally,
    ) {
        let format = self.plan.config.input.format.as_str();
        let cataloging = self.plan.index.is_some();
        match outcome {
            Ok(mut r) => {
                let superseded = std::mem::take(&mut r.superseded);
                for uri in &superseded {
                    let obj = objects.iter().find(|o| &o.uri() == uri).copied();
                    self.skip(t, obj, uri, crate::SUPERSEDED);
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
                    ms = started.elapsed().as_millis() as u64,
                    "Processed invocation."
                );
                t.s.objects += objects.len() as u64;
                #[cfg(feature = "iceberg")]
                t.hold(&mut r, &objects);
                if cataloging {
                    for obj in &objects {
                        let mut row = CatalogRow::new(obj, Status::Processed, None, format);
                        row.outputs = r.outputs.clone();
                        row.columns = r.columns.clone();
                        t.catalog.push(row);
                    }
                }
                t.s.absorb(r);
            }
            Err(e) => {
                // Nothing was written; every message must be retried.
                t.s.failed_objects += objects.len() as u64;
                for obj in objects {
                    if let Some(id) = &obj.message_id
                        && !t.s.batch_item_failures.contains(id)
                    {
                        t.s.batch_item_failures.push(id.clone());
                    }
                }
                warn!(error = %e, class = %e.class(), "Invocation failed.");
                if cataloging {
                    for obj in objects {
                        t.catalog.push(CatalogRow::new(
                            obj,
                            Status::Failed(e.class()),
                            Some(e.to_string()),
                            format,
                        ));
                    }
                }
                t.fail(e.class(), e.to_string());
            }
        }
    }

    /// Each object through a unit of its own. Images are CPU work off the async threads: as
    /// many at once as there are cores (each holds one decoded image); record files stream one
    /// after another.
    pub(super) async fn run_objects(&self, objects: Vec<&ObjectRef>, t: &mut Tally) {
        use futures::StreamExt;
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
        if t.fifo.is_some() {
            // A FIFO batch in order, one at a time: an object after a failed message (of its
            // group) is not processed, so the queue keeps their order.
            for obj in waiting.by_ref() {
                match t.fifo_blocked(obj) {
                    Some(reason) => self.hold_back(obj, reason, t),
                    None => {
                        let (obj, started, outcome) = self.timed(obj).await;
                        self.tally_object(obj, started, outcome, t);
                    }
                }
            }
            return;
        }
        for obj in waiting.by_ref().take(width) {
            done.push_back(self.timed(obj));
        }
        while let Some((obj, started, outcome)) = done.next().await {
            if let Some(next) = waiting.next() {
                done.push_back(self.timed(next));
            }
            self.tally_object(obj, started, outcome, t);
        }
    }

    /// An object of a FIFO batch held back behind a failed message: reported failed (to come
    /// back, in order), not processed.
    pub(super) fn hold_back(&self, obj: &ObjectRef, reason: String, t: &mut Tally) {
        info!(bucket = %obj.bucket, key = %obj.key, reason = %reason, "Held back (FIFO).");
        let why = format!("{}: {reason}", obj.uri());
        Self::fail_object(obj, crate::error::ErrorClass::RetryLater, why, t);
    }

    /// One object's outcome in the tally (and its catalog row).
    fn tally_object(
        &self,
        obj: &ObjectRef,
        started: Instant,
        outcome: Result<ObjectResult, Error>,
        t: &mut Tally,
    ) {
        let format = self.plan.config.input.format.as_str();
        let cataloging = self.plan.index.is_some();
        match outcome {
            Ok(mut r) => {
                info!(
                    bucket = %obj.bucket, key = %obj.key, records_in = r.records_in,
                    records_out = r.records_out, rejected = r.rejected,
                    ms = started.elapsed().as_millis() as u64, "Processed object."
                );
                let error = r.error.take();
                if cataloging {
                    let status = match &error {
                        Some(e) => Status::Failed(e.class()),
                        None => Status::Processed,
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
                    t.catalog.push(row);
                }
                #[cfg(feature = "iceberg")]
                if error.is_none() {
                    t.hold(&mut r, &[obj]);
                }
                t.s.absorb(r);
                match error {
                    None => t.s.objects += 1,
                    Some(e) => self.fail(obj, e, t),
                }
            }
            Err(e) if e.missing() && self.plan.limits.on_missing == OnMissing::Skip => {
                // Gone since its notification: nothing to retry; said so, not failed.
                info!(bucket = %obj.bucket, key = %obj.key, "Object gone; skipped.");
                let reason = e.missing_reason().unwrap_or_else(|| MISSING.into());
                self.skip(t, Some(obj), &obj.uri(), &reason);
            }
            Err(e) if e.superseded() => {
                // Overwritten since its notification: the newer upload's notification
                // reads it; reading it here too would write its rows twice.
                info!(bucket = %obj.bucket, key = %obj.key, "Object overwritten since its notification; skipped.");
                self.skip(t, Some(obj), &obj.uri(), crate::SUPERSEDED);
            }
            Err(ref e) if let Some(pipeline) = e.own_output_of() => {
                // Written by this pipeline (its metadata marker): processing it would
                // trigger the pipeline again, and again.
                warn!(bucket = %obj.bucket, key = %obj.key, "Object written by this pipeline; skipped (recursive-invocation guard).");
                let reason = crate::own_output(pipeline);
                self.skip(t, Some(obj), &obj.uri(), &reason);
            }
            Err(e) => {
                if cataloging {
                    t.catalog.push(CatalogRow::new(
                        obj,
                        Status::Failed(e.class()),
                        Some(e.to_string()),
                        format,
                    ));
                }
                self.fail(obj, e, t)
            }
        }
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
            let ran = match self.read(obj, &mut unit).await {
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

    fn fail(&self, obj: &ObjectRef, e: Error, t: &mut Tally) {
        warn!(bucket = %obj.bucket, key = %obj.key, error = %e, class = %e.class(), "Object failed.");
        Self::fail_object(obj, e.class(), e.to_string(), t);
    }

    /// An object failed (or held back): counted, its message (if any) reported with why.
    fn fail_object(obj: &ObjectRef, class: crate::error::ErrorClass, why: String, t: &mut Tally) {
        t.s.failed_objects += 1;
        if let Some(id) = &obj.message_id {
            t.fail_item(id, class, &why);
        }
        t.fail(class, why);
    }

    /// A skipped item: counted, reported with its reason, and, when it names an object and the
    /// pipeline keeps a catalog, a `skipped` row there.
    pub(super) fn skip(
        &self,
        t: &mut Tally,
        object: Option<&ObjectRef>,
        source: &str,
        reason: &str,
    ) {
        if let Some(obj) = object
            && self.plan.index.is_some()
        {
            t.catalog.push(CatalogRow::new(
                obj,
                Status::Skipped,
                Some(reason.to_string()),
                &self.plan.config.input.format,
            ));
        }
        t.s.skipped += 1;
        t.s.skips.push(Skip {
            source: source.to_string(),
            reason: reason.to_string(),
        });
    }

    /// Whether the pipeline reads `bucket`/`key` (its `[input]` buckets and keys, and not its own
    /// output), as an upload notified there would be read.
    pub fn reads(&self, bucket: &str, key: &str) -> bool {
        self.skip_reason(&ObjectRef {
            bucket: bucket.to_string(),
            key: key.to_string(),
            size: None,
            etag: None,
            version_id: None,
            message_id: None,
            event_time: None,
        })
        .is_none()
    }

    pub(super) fn skip_reason(&self, obj: &ObjectRef) -> Option<String> {
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
    pub(super) fn is_own(&self, bucket: &str, key: &str) -> bool {
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
        let ran = self.read(obj, &mut unit).await;
        let mut result = unit.close(ran).await.map_err(wrap)?;
        // An image that cannot be read is a reject, and the rest of the event goes on; a record
        // file none of whose records can be decoded is more likely the wrong format, and fails.
        // (Records a stage refused, an overflow say, were read: they never fail the object.)
        if result.records_in > 0
            && result.records_in == result.undecodable
            && self.plan.resize.is_none()
        {
            result.error = Some(wrap(Error::Data(format!(
                "none of its {} records could be read as `{}` (all are in the rejects); check [input] format and compression",
                result.rejected, self.plan.config.input.format
            ))));
        }
        Ok(result)
    }
}
