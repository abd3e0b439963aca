//! A stream batch (Kinesis, SQS records) through one unit of work: KPL aggregates split, gzip
//! payloads inflated, line formats decoded a large block at a time, document formats a record
//! at a time (a bad record is one reject), stream columns tagged; stopped at a record boundary
//! when the deadline is near.

use std::time::Instant;

use arrow_array::RecordBatch;
use sluice_processors::decode::{Decoded, Decoder, Origins};
use sluice_processors::sniff::GZIP_MAGIC;
use tracing::{info, warn};

use super::Handler;
use super::outcome::{ObjectResult, Tally};
use super::unit::UnitOfWork;
use crate::Error;
use crate::config::InputSpec;
use crate::read::decompress::{MAX_RECORD_INFLATED, inflate};
use crate::trigger::{self, StreamRecord};
use crate::write::invocation_name;

impl Handler {
    /// A stream batch (Kinesis, SQS records, a tumbling window's batch) through one unit of work,
    /// tallied: on a deadline, the records not reached are reported for redelivery; on a
    /// failure, all of them (nothing of the batch was written).
    pub(super) async fn run_batch(
        &self,
        invocation: &trigger::Invocation,
        records: &[&StreamRecord],
        deadline: Option<Instant>,
        t: &mut Tally,
    ) {
        let started = Instant::now();
        #[cfg(feature = "iceberg")]
        let kinesis = invocation.source.kinesis();
        // A shard (Kinesis, DynamoDB Streams) resumes at its first failed record.
        let ordered = invocation.source.ordered();
        let work = &invocation.work;
        let outcome = match &work.window {
            Some(w) => self
                .process_window(records, w, work.lines.as_ref(), deadline)
                .await
                .map(|(r, state)| (r, Some(state))),
            None => self
                .process_records(records, work.lines.as_ref(), deadline)
                .await
                .map(|r| (r, None)),
        };
        match outcome {
            #[allow(unused_mut)]
            Ok((mut r, state)) => {
                t.s.state = state;
                #[cfg(feature = "iceberg")]
                if kinesis && work.window.is_none() {
                    let processed = r.stopped_at.unwrap_or(records.len());
                    t.hold_batch(&mut r, records, processed);
                }
                if let Some(n) = r.stopped_at {
                    // Lambda redelivers from the first failure (Kinesis) or each failed
                    // message (SQS): exactly the records not processed.
                    let rest = &records[n..];
                    t.s.redeliver(rest, ordered);
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
                    ms = started.elapsed().as_millis() as u64,
                    "Processed batch."
                );
                t.s.absorb(r);
            }
            Err(e) => {
                // Nothing of the batch was written (outputs are aborted whole), so Lambda must
                // redeliver all of it: a Kinesis shard resumes at the first record, and every
                // SQS message is retried; a window keeps the state it came with.
                t.s.redeliver(records, ordered);
                if let Some(w) = &work.window {
                    t.s.state = Some(w.state.clone());
                    // With no record to name, only an invocation error makes Lambda retry.
                    t.per_item &= !records.is_empty();
                }
                warn!(error = %e, class = %e.class(), "Batch failed.");
                t.fail(e.class(), e.to_string());
            }
        }
    }

    /// The records of a stream batch through one chain, in order; one set of outputs named after
    /// the batch (shard and first sequence number), so a redelivered batch overwrites, whatever
    /// its size.
    pub(super) async fn process_records(
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
                crate::write::stream_name(first.shard(), first.id()),
                format!("shard {} from {}", first.shard(), first.id()),
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
    /// any were decoded, are dropped with it), so bad data never blocks the shard. With stream
    /// columns, each row is tagged with the record (and KPL user record) it came from.
    pub(super) async fn run_records(
        &self,
        Batch { recs, lines }: Batch<'_>,
        stop: Option<Instant>,
        unit: &mut UnitOfWork<'_>,
    ) -> Result<(), Error> {
        let line_format = matches!(
            self.plan.input,
            InputSpec::Ndjson | InputSpec::Log(_) | InputSpec::Csv(_)
        );
        let cols = self.plan.stream_columns();
        // Plain line records are decoded in place, a large block at a time; everything else
        // through `RecordRows`, which knows each row's record.
        let (mut shared, mut rows) = if line_format && cols.is_empty() {
            (Some(self.decoder("")?), None)
        } else {
            (None, Some(RecordRows::new(self)?))
        };
        let mut decoded = Decoded::default();
        let mut inflated = Vec::new();
        // Each payload given to `rows`: its record, subsequence and partition key.
        let mut units: Vec<(usize, i64, &str)> = Vec::new();
        let batch_rows = self.plan.limits.batch_rows.max(1);
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
            // What the fast reader saw of a plain payload: its bytes need not be looked at here.
            let seen = rec.seen().filter(|s| s.plain);
            // (subsequence, partition key, payload); a plain record allocates no list.
            let single: [(i64, &str, &[u8]); 1];
            let users: Vec<(i64, &str, &[u8])>;
            let payloads: &[(i64, &str, &[u8])] = match &rec.data {
                Err(reason) => {
                    decoded.rejects.push(reject(reason, b""));
                    &[]
                }
                Ok(data) if seen.is_none() && crate::kpl::is_aggregated(data) => {
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
                if let Some(rr) = rows.as_mut() {
                    let at = units.len() as u32;
                    units.push((n, subsequence, partition_key));
                    rr.add(self, at, payload)?;
                    for (_, why) in rr.failed.drain(..) {
                        decoded.rejects.push(reject(&why, payload));
                    }
                    continue;
                }
                let Some(d) = shared.as_mut() else { continue };
                let payload = if seen.is_none() && payload.starts_with(&GZIP_MAGIC) {
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
                // Records' lines are gathered and decoded a large block at a time: one decoder
                // call per record would cost more than the records themselves.
                let ends_line = seen.map(|s| s.ends_line);
                pending.add(d.as_mut(), lines, (payload, ends_line), &mut decoded)?;
            }
            if let Some(rr) = rows.as_mut() {
                self.tag_rows(rr, recs, &units, &mut tagged, &mut decoded)?;
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
            pending.flush(d.as_mut(), lines, &mut decoded)?;
            d.finish(&mut decoded)?;
        }
        if let Some(rr) = rows.as_mut() {
            rr.finish()?;
            self.tag_rows(rr, recs, &units, &mut tagged, &mut decoded)?;
        }
        if !tagged.is_empty() {
            let (b, o) = gather(&mut tagged)?;
            decoded.emit(b, o);
        }
        unit.push(&mut decoded).await
    }

    /// The rows `rr` decoded so far, tagged with the stream columns of their units (`units`: the
    /// record, subsequence and partition key of each) and gathered into `tagged`; its rejects
    /// into `decoded`.
    fn tag_rows(
        &self,
        rr: &mut RecordRows,
        recs: &[&StreamRecord],
        units: &[(usize, i64, &str)],
        tagged: &mut Vec<(RecordBatch, Option<Origins>)>,
        decoded: &mut Decoded,
    ) -> Result<(), Error> {
        decoded.rejects.extend(rr.rejects.drain(..).map(|(_, r)| r));
        let cols = self.plan.stream_columns();
        for (b, of, o) in rr.rows.drain(..) {
            if b.num_rows() == 0 {
                continue;
            }
            let b = if cols.is_empty() {
                b
            } else {
                crate::stream::tag_each(&b, cols, |row| {
                    let (n, subsequence, partition_key) =
                        units.get(of[row] as usize).copied().unwrap_or((0, 0, ""));
                    let rec = recs[n];
                    crate::stream::Origin {
                        shard: Some(rec.shard()).filter(|s| !s.is_empty()),
                        sequence: rec.id(),
                        subsequence,
                        partition_key: Some(partition_key).filter(|k| !k.is_empty()),
                        arrival: rec.arrival,
                    }
                })?
            };
            tagged.push((b, o));
        }
        Ok(())
    }
}

/// Stream records' payloads decoded together, each row and each reject knowing the payload (a
/// "unit": a record, or a KPL user record of one) it came from. Line formats share one decoder,
/// fed a large block at a time (each payload ended by a line break), so a schema is inferred
/// over the batch as for an object, and a row's unit is found from the input line its decoder
/// says it came from; document formats decode each payload on its own. Gzip payloads are
/// inflated (at most [`MAX_RECORD_INFLATED`]).
pub(super) struct RecordRows {
    shared: Option<Box<dyn Decoder>>,
    block: Vec<u8>,
    /// The first line (1-based, as the shared decoder numbers them) of each unit given to it,
    /// and the unit.
    starts: Vec<(u64, u32)>,
    next_line: u64,
    inflated: Vec<u8>,
    decoded: Decoded,
    /// Decoded rows: each batch with each row's unit, and the input line each row came from.
    pub(super) rows: Vec<(RecordBatch, Vec<u32>, Option<Origins>)>,
    /// Lines the decoders refused, with their units.
    pub(super) rejects: Vec<(u32, sluice_processors::Reject)>,
    /// Units that could not be read at all (not gzip, not a document), and why.
    pub(super) failed: Vec<(u32, String)>,
}

impl RecordRows {
    /// Rows of `handler`'s input format.
    pub(super) fn new(handler: &Handler) -> Result<Self, Error> {
        let line_format = matches!(
            handler.plan.input,
            InputSpec::Ndjson | InputSpec::Log(_) | InputSpec::Csv(_)
        );
        let shared = if line_format {
            let mut d = handler.plan.decoder("")?;
            d.keep_origins(true);
            Some(d)
        } else {
            None
        };
        Ok(RecordRows {
            shared,
            block: Vec::new(),
            starts: Vec::new(),
            next_line: 1,
            inflated: Vec::new(),
            decoded: Decoded::default(),
            rows: Vec::new(),
            rejects: Vec::new(),
            failed: Vec::new(),
        })
    }

    /// Unit `unit`'s payload (gzip inflated first).
    pub(super) fn add(&mut self, handler: &Handler, unit: u32, data: &[u8]) -> Result<(), Error> {
        let mut inflated = std::mem::take(&mut self.inflated);
        let payload: &[u8] = if data.starts_with(&GZIP_MAGIC) {
            if let Err(reason) = inflate(data, &mut inflated, MAX_RECORD_INFLATED) {
                self.failed.push((unit, reason));
                self.inflated = inflated;
                return Ok(());
            }
            &inflated
        } else {
            data
        };
        if self.shared.is_some() {
            let lines = memchr::memchr_iter(b'\n', payload).count() as u64
                + u64::from(!payload.ends_with(b"\n"));
            self.starts.push((self.next_line, unit));
            self.next_line += lines;
            self.block.extend_from_slice(payload);
            if !payload.ends_with(b"\n") {
                self.block.push(b'\n');
            }
            if self.block.len() >= JOIN_BYTES {
                self.flush()?;
            }
        } else {
            let mut d = handler.decoder("")?;
            let mut doc = Decoded::default();
            match d
                .decode(payload, &mut doc)
                .and_then(|()| d.finish(&mut doc))
            {
                Err(e) => self.failed.push((unit, e.to_string())),
                Ok(()) => {
                    for r in doc.rejects.drain(..) {
                        self.rejects.push((unit, r));
                    }
                    for (b, o) in doc.take_batches() {
                        let n = b.num_rows();
                        self.rows.push((b, vec![unit; n], o));
                    }
                }
            }
        }
        // The buffer is kept for the next payload.
        self.inflated = inflated;
        Ok(())
    }

    /// Decode the block gathered so far.
    pub(super) fn flush(&mut self) -> Result<(), Error> {
        if let Some(d) = self.shared.as_mut()
            && !self.block.is_empty()
        {
            d.decode(&self.block, &mut self.decoded)?;
            self.block.clear();
        }
        self.take()
    }

    /// The end: whatever the decoder still holds.
    pub(super) fn finish(&mut self) -> Result<(), Error> {
        self.flush()?;
        if let Some(d) = self.shared.as_mut() {
            d.finish(&mut self.decoded)?;
        }
        self.take()
    }

    /// The unit whose payload holds line `line` of the shared decoder's input.
    fn unit_at(&self, line: u64) -> u32 {
        let i = self.starts.partition_point(|&(s, _)| s <= line);
        self.starts.get(i.wrapping_sub(1)).map_or(0, |&(_, u)| u)
    }

    /// What the shared decoder gave, each row and reject with its unit.
    fn take(&mut self) -> Result<(), Error> {
        let rejects = std::mem::take(&mut self.decoded.rejects);
        for r in rejects {
            let unit = self.unit_at(r.position);
            self.rejects.push((unit, r));
        }
        for (b, origins) in self.decoded.take_batches() {
            let Some(o) = origins.filter(|o| o.len() == b.num_rows()) else {
                return Err(Error::Internal(
                    "the decoder did not say which input line each row came from".into(),
                ));
            };
            let units = (0..o.len())
                .map(|i| o.get(i).map_or(0, |(line, _)| self.unit_at(line)))
                .collect();
            self.rows.push((b, units, Some(o)));
        }
        Ok(())
    }
}

/// Stream records' lines are decoded in blocks of about this many bytes.
pub(super) const JOIN_BYTES: usize = 1 << 20;

/// When a stream batch looks at the clock for its deadline: before its first record, after a
/// record that ran the stages (a decode block, a drain), and at least every 64 records or 1 MiB
/// of payload. Most records of a batch only add their lines to a block, microseconds of work; a
/// clock read before each would cost ~3% of a 10 000-record batch.
#[derive(Default)]
pub(super) struct Watch {
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
    pub(super) fn new() -> Self {
        Watch {
            worked: true,
            ..Watch::default()
        }
    }

    /// Whether `stop` has come, looking at the clock only when it is due.
    pub(super) fn past(&mut self, stop: Option<Instant>) -> bool {
        let Some(t) = stop else { return false };
        if !self.worked && self.records < Self::RECORDS && self.bytes < Self::BYTES {
            return false;
        }
        *self = Watch::default();
        Instant::now() >= t
    }

    /// A record of `bytes` went by.
    pub(super) fn passed(&mut self, bytes: usize) {
        self.records += 1;
        self.bytes += bytes;
    }

    /// The stages ran.
    pub(super) fn worked(&mut self) {
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
    /// One record's payload, ended by a line break, and whether it ends with one when that is
    /// known ([`crate::trigger::Seen`]: then it is not looked at).
    fn add(
        &mut self,
        d: &mut dyn Decoder,
        lines: Option<&bytes::Bytes>,
        (payload, ends_line): (&[u8], Option<bool>),
        out: &mut Decoded,
    ) -> Result<(), Error> {
        match lines.and_then(|l| line_in(l, payload, ends_line)) {
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
/// ([`trigger::Work::lines`]).
#[derive(Clone, Copy)]
pub(super) struct Batch<'a> {
    pub(super) recs: &'a [&'a StreamRecord],
    pub(super) lines: Option<&'a bytes::Bytes>,
}

/// Where `payload` lies in `lines` with its line break: `(start, end)` with `lines[start..end]`
/// the payload and then a line break (unless the payload ends with one), or `None` when
/// `payload` is not a slice of `lines` or no line break follows it there. `ends_line`, when
/// known, says whether the payload ends with its line break (else `lines` has one after it, as
/// the fast reader that saw it wrote them): then neither byte is looked at.
fn line_in(lines: &[u8], payload: &[u8], ends_line: Option<bool>) -> Option<(usize, usize)> {
    let start = (payload.as_ptr() as usize).checked_sub(lines.as_ptr() as usize)?;
    let end = start.checked_add(payload.len())?;
    if end > lines.len() {
        return None;
    }
    match ends_line {
        Some(true) => Some((start, end)),
        Some(false) => (end < lines.len()).then_some((start, end + 1)),
        None if payload.ends_with(b"\n") => Some((start, end)),
        None => (lines.get(end) == Some(&b'\n')).then_some((start, end + 1)),
    }
}

/// One batch of the tagged rows gathered so far, with their origins when every part has them.
pub(crate) fn gather(
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
        return Err(Error::Internal("no rows to gather".into()));
    };
    if batches
        .iter()
        .any(|b| b.schema().fields() != first.schema().fields())
    {
        return Err(Error::Data(
            "the batch's records decode to different schemas; declare [input] schema".into(),
        ));
    }
    let batch = arrow_select::concat::concat_batches(&first.schema(), &batches)
        .map_err(|e| Error::Internal(format!("gathering the rows of a stream batch: {e}")))?;
    Ok((batch, origins))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_found_in_the_lines_with_its_line_break() {
        let lines = b"ab\ncd\n\nef\n".to_vec();
        let at = |s: usize, e: usize| &lines[s..e];
        // Looked at: a payload ending with its line break, one followed by one.
        assert_eq!(line_in(&lines, at(0, 3), None), Some((0, 3)));
        assert_eq!(line_in(&lines, at(0, 2), None), Some((0, 3)));
        // Not followed by one: "c" is followed by "d".
        assert_eq!(line_in(&lines, at(3, 4), None), None);
        // Known from what the reader saw: neither byte is looked at.
        assert_eq!(line_in(&lines, at(3, 5), Some(false)), Some((3, 6)));
        assert_eq!(line_in(&lines, at(3, 6), Some(true)), Some((3, 6)));
        // At the very end with no room for a line break, and not a slice of the lines at all.
        assert_eq!(line_in(&lines, at(7, 10), Some(false)), None);
        assert_eq!(line_in(&lines, b"ab\n", None), None);
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
}
