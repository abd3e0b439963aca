//! The unit of work: one object's or one stream batch's chain of stages, sink, rejects and
//! counts, pushed decoded input and then finished (its files published together) or aborted
//! (nothing it wrote stays).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arrow_array::{Array, RecordBatch};
use sluice_processors::decode::{Decoded, Origins};
use sluice_processors::{Kept, Stage};

use super::Handler;
use super::outcome::ObjectResult;
use crate::Error;
use crate::write::{Outputs, Rejects, Staging};

/// One object's or one stream batch's work (or, with an aggregate, all of an invocation's
/// objects): the chain of stages, the sink its rows go to, its rejects and its counts. Input is
/// pushed in as it is decoded; at the end the unit is finished (the stages' last rows written,
/// then every file it wrote published at once) or aborted (nothing it wrote stays).
pub(crate) struct UnitOfWork<'h> {
    pub(crate) handler: &'h Handler,
    /// Built for the first batch's schema (or before, when the schema is known).
    pub(crate) chain: Option<Chain>,
    pub(crate) sink: Outputs,
    pub(crate) rejects: Rejects,
    /// Rejects files of sources the unit read before the current one, sealed, not yet visible.
    pub(crate) staged: Staging,
    pub(crate) counts: ObjectResult,
}

impl<'h> UnitOfWork<'h> {
    /// A unit whose outputs and rejects are named after `base`; its rejects say they came from
    /// `source`.
    pub(crate) fn new(handler: &'h Handler, base: String, source: String) -> Self {
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

    pub(crate) fn has_chain(&self) -> bool {
        self.chain.is_some()
    }

    /// Build the chain for `schema` before any row arrives.
    pub(crate) fn start_chain(&mut self, schema: arrow_schema::SchemaRef) -> Result<(), Error> {
        self.chain = Some(self.handler.build_chain(schema)?);
        Ok(())
    }

    /// Decoded input: its rejects written, its rows through the chain, and what comes out to
    /// the sink.
    pub(crate) async fn push(&mut self, decoded: &mut Decoded) -> Result<(), Error> {
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
    pub(crate) async fn push_batches(
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
                return Err(Error::Data(
                    "its records have a different schema from the invocation's first object, and objects \
                     written together (an aggregate, or [output] per = \"invocation\") need one schema; \
                     declare [input] schema"
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
    pub(crate) async fn end_input(&mut self) -> Result<(), Error> {
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
    pub(crate) fn next_source(&mut self, source: String, name: String) {
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
    pub(crate) fn no_rejects(&self) -> Rejects {
        Rejects::new(None, &self.handler.output, String::new(), String::new())
    }

    /// The current source read to its end: its rejects file sealed, published with the rest.
    pub(crate) async fn end_source(&mut self) -> Result<(), Error> {
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
    pub(crate) async fn leave_out(&mut self, uri: String) {
        let blank = self.no_rejects();
        std::mem::replace(&mut self.rejects, blank).abort().await;
        self.counts.superseded.push(uri);
    }

    /// Finish when `ran` (the reading) succeeded, abort when it failed.
    pub(crate) async fn close(self, ran: Result<(), Error>) -> Result<ObjectResult, Error> {
        match ran {
            Ok(()) => self.finish().await,
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    /// End of input, then every file of the unit published.
    pub(crate) async fn finish(mut self) -> Result<ObjectResult, Error> {
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
    pub(crate) async fn commit(self) -> Result<ObjectResult, Error> {
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
        #[cfg(feature = "iceberg")]
        {
            counts.table_files = std::mem::take(&mut staging.table_files);
        }
        counts.outputs = staging.publish().await?;
        Ok(counts)
    }

    /// Nothing the unit wrote stays: open uploads aborted, sealed files dropped.
    pub(crate) async fn abort(self) {
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

/// The stages of one run, built for the schema of the first batch.
pub(crate) struct Chain {
    pub(crate) input: arrow_schema::SchemaRef,
    pub(crate) stages: Vec<Box<dyn Stage>>,
    /// Time spent per stage, shared with the handler.
    pub(crate) clock: Arc<Vec<AtomicU64>>,
}

pub(super) fn stage_clock(n: usize) -> Arc<Vec<AtomicU64>> {
    Arc::new((0..n).map(|_| AtomicU64::new(0)).collect())
}

/// Rows on their way through the chain, and for each the index of the input row (of the batch
/// that entered the chain) it came from, while that is known.
pub(crate) struct Flow {
    pub(super) batch: RecordBatch,
    pub(super) from: Option<Vec<u32>>,
}

impl Flow {
    /// Rows whose lineage is not followed.
    pub(crate) fn untraced(batch: RecordBatch) -> Self {
        Self { batch, from: None }
    }

    /// The rows of a batch decoded from `origins`: row i is input row i.
    pub(crate) fn decoded(batch: RecordBatch, origins: Option<&Origins>) -> Self {
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
pub(super) fn push_through(
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

impl Handler {
    /// The stages, built for `input`.
    pub(crate) fn build_chain(&self, input: arrow_schema::SchemaRef) -> Result<Chain, Error> {
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
}
