//! A Firehose data-transformation batch (`[input] trigger = "firehose"`): each record's payload
//! decoded (gzip inflated), its rows through the stages with the record each came from followed,
//! and every record answered once, in order — `Ok` with its rows as NDJSON and its partition
//! keys, `Dropped` when the stages left none of its rows, `ProcessingFailed` (its reason logged)
//! when a row of it could not be read or transformed, when the deadline came before it, or when
//! its rows would take the answer past Lambda's 6 MB response limit. Firehose keeps the records
//! answered `ProcessingFailed` in its error output; nothing is lost.

use std::time::Instant;

use arrow_array::RecordBatch;
use serde::Serialize;
use sluice_processors::decode::Origins;
use tracing::{info, warn};

use super::Handler;
use super::outcome::Tally;
use super::records::{RecordRows, Watch};
use super::unit::{Chain, Flow, push_through};
use crate::Error;
use crate::trigger::{FirehoseJob, StreamRecord};

/// Lambda's limit on a synchronous invocation's response, which Firehose's is: 6 MB.
pub const RESPONSE_LIMIT: usize = 6 * 1024 * 1024;

/// Failed records whose reasons are logged one by one, per batch.
const LOGGED_FAILURES: usize = 20;

/// What became of one Firehose record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transformed {
    /// Transformed: its rows are the answer's data.
    Ok,
    /// The stages kept none of its rows (or it held none).
    Dropped,
    /// It could not be transformed, for this reason; Firehose writes it to its error output.
    Failed(String),
}

impl Transformed {
    /// The `result` Firehose reads.
    pub fn result(&self) -> &'static str {
        match self {
            Transformed::Ok => "Ok",
            Transformed::Dropped => "Dropped",
            Transformed::Failed(_) => "ProcessingFailed",
        }
    }
}

/// One record's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The `recordId` it answers.
    pub record_id: String,
    /// Its result.
    pub result: Transformed,
    /// Its rows as NDJSON, one line each (empty unless `Ok`).
    pub data: Vec<u8>,
    /// Its rows' `[output] partition_by` values, the answer's `metadata.partitionKeys`, in the
    /// order configured (empty unless `Ok`).
    pub partition_keys: Vec<(String, String)>,
    /// Rows in `data` (0 unless `Ok`).
    pub rows: usize,
}

/// A Firehose batch's answer: every record once, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    /// The invocation it answers.
    pub job: FirehoseJob,
    /// Each record's answer, in the batch's order.
    pub records: Vec<Answered>,
}

impl Answer {
    /// The answer as Firehose reads it, built from `aws_lambda_events`'
    /// `KinesisFirehoseResponse`.
    pub fn response(&self) -> aws_lambda_events::event::firehose::KinesisFirehoseResponse {
        let mut r = aws_lambda_events::event::firehose::KinesisFirehoseResponse::default();
        r.records = self.records.iter().map(entry).collect();
        r
    }

    /// How many records were answered `result`.
    pub fn count(&self, result: &str) -> usize {
        self.records
            .iter()
            .filter(|a| a.result.result() == result)
            .count()
    }
}

/// One record's entry in the answer.
fn entry(a: &Answered) -> aws_lambda_events::event::firehose::KinesisFirehoseResponseRecord {
    use aws_lambda_events::event::firehose::{
        KinesisFirehoseResponseRecord, KinesisFirehoseResponseRecordMetadata,
    };
    let mut meta = KinesisFirehoseResponseRecordMetadata::default();
    meta.partition_keys = a.partition_keys.iter().cloned().collect();
    let mut e = KinesisFirehoseResponseRecord::default();
    e.record_id = Some(a.record_id.clone());
    e.result = Some(a.result.result().to_string());
    // The crate's Base64Data is built through its Vec (its field is private).
    e.data.extend_from_slice(&a.data);
    e.metadata = meta;
    e
}

/// Bytes `a` takes in the answer's JSON, as [`entry`] serializes it —
/// `{"recordId":"…","result":"…","data":"…","metadata":{"partitionKeys":{…}}}` — worked out
/// without writing it (its data in base64 would be most of the batch, twice over).
fn entry_bytes(a: &Answered) -> usize {
    entry_size(
        &a.record_id,
        a.result.result(),
        a.data.len(),
        &a.partition_keys,
    )
}

/// Bytes of an entry answering `id` with `result`, `data_len` bytes of data and `keys`.
fn entry_size(id: &str, result: &str, data_len: usize, keys: &[(String, String)]) -> usize {
    let text = |t: &str| serde_json::to_string(t).map_or(usize::MAX / 4, |j| j.len());
    let keys_len: usize = keys
        .iter()
        .map(|(k, v)| text(k) + 1 + text(v))
        .sum::<usize>()
        + keys.len().saturating_sub(1);
    r#"{"recordId":,"result":,"data":"","metadata":{"partitionKeys":{}}}"#.len()
        + text(id)
        + text(result)
        + data_len.div_ceil(3) * 4
        + keys_len
}

/// In a summary: how many records were answered each way, and why each failed one failed.
impl Serialize for Answer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct Failed<'a> {
            record_id: &'a str,
            reason: &'a str,
        }
        let failed: Vec<Failed<'_>> = self
            .records
            .iter()
            .filter_map(|a| match &a.result {
                Transformed::Failed(reason) => Some(Failed {
                    record_id: &a.record_id,
                    reason,
                }),
                _ => None,
            })
            .collect();
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("ok", &self.count("Ok"))?;
        m.serialize_entry("dropped", &self.count("Dropped"))?;
        m.serialize_entry("processing_failed", &failed)?;
        m.end()
    }
}

/// Where a record stands while its batch is transformed.
#[derive(Debug, Default, Clone)]
struct Progress {
    failed: Option<String>,
    data: Vec<u8>,
    rows: usize,
    /// Its rows' partition values, as the first of them gave them.
    keys: Option<Vec<(String, String)>>,
}

/// Every record's progress, and the bytes of data their answers hold so far (past the response
/// limit, no more rows are kept: the answer could not carry them).
struct Ledger {
    records: Vec<Progress>,
    kept: usize,
}

impl Ledger {
    /// Record `i` failed because `why` (the first reason stays); its rows are let go.
    fn fail(&mut self, i: usize, why: impl Into<String>) {
        if let Some(p) = self.records.get_mut(i) {
            if p.failed.is_none() {
                p.failed = Some(why.into());
            }
            self.kept -= p.data.len();
            p.data = Vec::new();
        }
    }
}

impl Handler {
    /// A Firehose batch: every record transformed and answered (see the module's doc). Only a
    /// failure of the pipeline itself (not of a record) fails the invocation, which Firehose
    /// then retries whole.
    pub(super) fn run_firehose(
        &self,
        job: &FirehoseJob,
        records: &[&StreamRecord],
        deadline: Option<Instant>,
        t: &mut Tally,
    ) {
        let started = Instant::now();
        let mut ledger = Ledger {
            records: vec![Progress::default(); records.len()],
            kept: 0,
        };
        if let Err(e) = self.transform(records, deadline, &mut ledger, t) {
            warn!(error = %e, class = %e.class(), "Firehose batch failed.");
            t.fail(e.class(), e.to_string());
            return;
        }
        let answer = answer(job, records, ledger.records, RESPONSE_LIMIT);
        // Each failed record's reason, up to a bound: a batch of malformed records must not
        // write thousands of log lines (CloudWatch Logs bills them); the summary has them all.
        let failed = answer.records.iter().filter_map(|a| match &a.result {
            Transformed::Failed(why) => Some((&a.record_id, why)),
            _ => None,
        });
        for (n, (id, why)) in failed.enumerate() {
            if n == LOGGED_FAILURES {
                let more = answer.count("ProcessingFailed") - LOGGED_FAILURES;
                warn!(
                    more,
                    "More Firehose records ProcessingFailed (reasons not logged)."
                );
                break;
            }
            warn!(record_id = %id, reason = %why, "Firehose record ProcessingFailed.");
        }
        info!(
            records = records.len(),
            ok = answer.count("Ok"),
            dropped = answer.count("Dropped"),
            processing_failed = answer.count("ProcessingFailed"),
            ms = started.elapsed().as_millis() as u64,
            "Transformed Firehose batch."
        );
        t.s.records_out = answer.records.iter().map(|a| a.rows as u64).sum();
        t.s.firehose = Some(answer);
    }

    /// Decode every record and push its rows through the stages, each row's output appended to
    /// its record's data; rejects fail their records.
    fn transform(
        &self,
        records: &[&StreamRecord],
        deadline: Option<Instant>,
        ledger: &mut Ledger,
        t: &mut Tally,
    ) -> Result<(), Error> {
        let stop = self.stop_before(deadline);
        let mut rows = RecordRows::new(self)?;
        let mut flow = Flowing::default();
        let mut watch = Watch::new();
        for (n, rec) in records.iter().enumerate() {
            // The first record is always transformed: every invocation makes progress.
            if n > 0 && watch.past(stop) {
                for late in n..records.len() {
                    ledger.fail(
                        late,
                        "the invocation's deadline came before this record was transformed \
                         (see [output] deadline_reserve_ms, and the function's timeout)",
                    );
                }
                break;
            }
            match &rec.data {
                Err(reason) => ledger.fail(n, reason.clone()),
                Ok(data) => {
                    watch.passed(data.len());
                    rows.add(self, n as u32, data)?;
                }
            }
            if self.drain(&mut rows, &mut flow, records, ledger, t)? {
                watch.worked();
            }
        }
        rows.finish()?;
        self.drain(&mut rows, &mut flow, records, ledger, t)?;
        self.flow(&mut flow, true, ledger, t)
    }

    /// What has been decoded: rejects fail their records, rows gathered (tagged with the stream
    /// columns) for the stages; whether the stages ran.
    fn drain(
        &self,
        rows: &mut RecordRows,
        flow: &mut Flowing,
        records: &[&StreamRecord],
        ledger: &mut Ledger,
        t: &mut Tally,
    ) -> Result<bool, Error> {
        let failed = rows.failed.drain(..);
        let refused = rows.rejects.drain(..).map(|(r, j)| (r, j.reason));
        for (r, why) in failed.chain(refused) {
            t.s.records_in += 1;
            t.s.rejected += 1;
            ledger.fail(
                r as usize,
                format!("it holds a row that could not be read: {why}"),
            );
        }
        let cols = self.plan.stream_columns();
        let mut ran = false;
        for (b, recs, _) in std::mem::take(&mut rows.rows) {
            t.s.records_in += b.num_rows() as u64;
            let b = if cols.is_empty() {
                b
            } else {
                crate::stream::tag_each(&b, cols, |row| {
                    let r = records[recs[row] as usize];
                    crate::stream::Origin {
                        shard: Some(r.shard()).filter(|s| !s.is_empty()),
                        sequence: r.id(),
                        subsequence: 0,
                        partition_key: Some(r.partition_key()).filter(|k| !k.is_empty()),
                        arrival: r.arrival,
                    }
                })?
            };
            if flow.chain.is_none() {
                flow.chain = Some(self.build_chain(b.schema())?);
            }
            if let Some(chain) = &flow.chain
                && b.schema().fields() != chain.input.fields()
            {
                for &r in &recs {
                    ledger.fail(
                        r as usize,
                        "its rows decode to a different schema from the batch's first rows; \
                         declare [input] schema",
                    );
                }
                continue;
            }
            flow.rows += b.num_rows();
            flow.pending.push((b, recs));
            if flow.rows >= self.plan.limits.batch_rows.max(1) {
                self.flow(flow, false, ledger, t)?;
                ran = true;
            }
        }
        Ok(ran)
    }

    /// The gathered rows through the stages (at the end, the stages finished too), each row that
    /// comes out appended to its record's answer.
    fn flow(
        &self,
        flow: &mut Flowing,
        end: bool,
        ledger: &mut Ledger,
        t: &mut Tally,
    ) -> Result<(), Error> {
        let Some(chain) = flow.chain.as_mut() else {
            return Ok(());
        };
        flow.rows = 0;
        if !flow.pending.is_empty() {
            let (batches, parts): (Vec<RecordBatch>, Vec<Vec<u32>>) =
                std::mem::take(&mut flow.pending).into_iter().unzip();
            let recs: Vec<u32> = parts.concat();
            let batch = arrow_select::concat::concat_batches(&chain.input, &batches)
                .map_err(|e| Error::Internal(format!("gathering a Firehose batch's rows: {e}")))?;
            // Each row's origin is its record (numbered from 1), so a row a stage refuses is
            // traced to it.
            let mut origins = Origins::default();
            for &r in &recs {
                origins.push(u64::from(r) + 1, b"");
            }
            let mut refused = Vec::new();
            let out = push_through(
                &mut chain.stages,
                &chain.clock,
                vec![Flow::decoded(batch, Some(&origins))],
                Some(&origins),
                &mut refused,
            )?;
            for r in refused {
                t.s.rejected += 1;
                let at = r.line.and_then(|l| usize::try_from(l).ok()?.checked_sub(1));
                match at.filter(|&i| i < ledger.records.len()) {
                    Some(i) => ledger.fail(
                        i,
                        format!(
                            "a row of it was refused by the {} stage: {}",
                            r.stage.unwrap_or("?"),
                            r.reason
                        ),
                    ),
                    None => {
                        return Err(Error::Internal(format!(
                            "a row the {} stage refused could not be traced to its record",
                            r.stage.unwrap_or("?")
                        )));
                    }
                }
            }
            for f in out {
                let Some(from) = f.from else {
                    return Err(Error::Internal(
                        "a stage did not say which rows it kept, so rows could not be answered \
                         with their records"
                            .into(),
                    ));
                };
                let of: Vec<u32> = from.iter().map(|&i| recs[i as usize]).collect();
                self.answer_rows(&f.batch, &of, ledger)?;
            }
        }
        if end {
            for st in chain.stages.iter_mut() {
                let mut out = Vec::new();
                st.finish(&mut out)?;
                if out.iter().any(|b| b.num_rows() > 0) {
                    return Err(Error::Internal(format!(
                        "the {} stage gave rows at the end of the batch, which belong to no record",
                        st.name()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Rows that came out of the stages, `of[i]` the record of row `i`: each as an NDJSON line
    /// of its record's data, its partition values (which must be the same for all of a
    /// record's rows) its record's partition keys. Past the response limit, a record's rows are
    /// not kept (the answer could not carry them).
    fn answer_rows(
        &self,
        batch: &RecordBatch,
        of: &[u32],
        ledger: &mut Ledger,
    ) -> Result<(), Error> {
        let columns = &self.plan.files.partition_by;
        let mut keys: Vec<Vec<(String, String)>> = Vec::new();
        let data = if columns.is_empty() {
            batch.clone()
        } else {
            crate::write::partition_rows(batch, columns, |_, values| {
                keys.push(
                    columns
                        .iter()
                        .zip(values)
                        .map(|(c, v)| {
                            let v = v.as_deref().unwrap_or(crate::write::NULL_PARTITION);
                            (c.clone(), v.to_string())
                        })
                        .collect(),
                );
            })?
        };
        let text = sluice_processors::json::ndjson(&data)
            .map_err(|e| Error::Processor(sluice_processors::Error::arrow("writing NDJSON", e)))?;
        let mut start = 0;
        for (row, end) in memchr::memchr_iter(b'\n', &text).enumerate() {
            let line = &text[start..=end];
            start = end + 1;
            let Some(i) = of.get(row).map(|&r| r as usize) else {
                return Err(Error::Internal(
                    "more NDJSON lines than rows in a Firehose answer".into(),
                ));
            };
            let Some(p) = ledger.records.get_mut(i) else {
                continue;
            };
            if p.failed.is_some() {
                continue;
            }
            if let Some(k) = keys.get(row) {
                match &p.keys {
                    None => p.keys = Some(k.clone()),
                    Some(first) if first != k => {
                        let why = format!(
                            "its rows fall in different partitions ({} and {}), and Firehose \
                             partitions a record as a whole",
                            show(first),
                            show(k)
                        );
                        ledger.fail(i, why);
                        continue;
                    }
                    Some(_) => {}
                }
            }
            if ledger.kept + line.len() > RESPONSE_LIMIT {
                ledger.fail(i, too_big());
                continue;
            }
            ledger.kept += line.len();
            p.data.extend_from_slice(line);
            p.rows += 1;
        }
        Ok(())
    }
}

fn show(keys: &[(String, String)]) -> String {
    keys.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn too_big() -> String {
    format!(
        "its rows would take the answer past Lambda's {} MB response limit; Firehose keeps the \
         record in its error output (send smaller batches: the delivery stream's processor \
         buffer size)",
        RESPONSE_LIMIT >> 20
    )
}

/// Rows on their way to the stages, and the stages.
#[derive(Default)]
struct Flowing {
    chain: Option<Chain>,
    pending: Vec<(RecordBatch, Vec<u32>)>,
    rows: usize,
}

/// Every record's answer, in order, within `limit` bytes of JSON: a record whose answer would
/// pass it is answered `ProcessingFailed` instead (room for every record's answer is kept, so
/// each is answered).
fn answer(
    job: &FirehoseJob,
    records: &[&StreamRecord],
    progress: Vec<Progress>,
    limit: usize,
) -> Answer {
    let mut answers: Vec<Answered> = records
        .iter()
        .zip(progress)
        .map(|(r, p)| {
            let result = match p.failed {
                Some(why) => Transformed::Failed(why),
                None if p.rows == 0 => Transformed::Dropped,
                None => Transformed::Ok,
            };
            let ok = result == Transformed::Ok;
            Answered {
                record_id: r.id().to_string(),
                result,
                data: if ok { p.data } else { Vec::new() },
                partition_keys: if ok {
                    p.keys.unwrap_or_default()
                } else {
                    Vec::new()
                },
                rows: if ok { p.rows } else { 0 },
            }
        })
        .collect();
    // `{"records":[` … `]}` and the commas between the entries.
    let frame = r#"{"records":[]}"#.len() + answers.len().saturating_sub(1);
    let failed_size = |a: &Answered| entry_size(&a.record_id, "ProcessingFailed", 0, &[]);
    let floor: Vec<usize> = answers.iter().map(failed_size).collect();
    let mut total = frame + floor.iter().sum::<usize>();
    for (a, least) in answers.iter_mut().zip(floor) {
        if matches!(a.result, Transformed::Failed(_)) {
            continue;
        }
        let size = entry_bytes(a);
        if total - least + size <= limit {
            total = total - least + size;
        } else {
            a.result = Transformed::Failed(too_big());
            a.data = Vec::new();
            a.partition_keys = Vec::new();
            a.rows = 0;
        }
    }
    Answer {
        job: job.clone(),
        records: answers,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::Plan;
    use crate::store::{FsStore, ObjectStore};

    fn handler(text: &str) -> Handler {
        let plan = Plan::from_str(std::path::Path::new("t.toml"), text).unwrap();
        let dir = std::env::temp_dir();
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir));
        Handler::new(plan, store.clone(), store)
    }

    const WEB: &str = r#"name = "web"
[input]
format = "ndjson"
trigger = "firehose"
[[stage]]
type = "filter"
where = "status >= 400"
[[stage]]
type = "select"
columns = { day = "date(ts)", path = "path", status = "status", code = "CASE WHEN status = 404 THEN 9223372036854775807 + status ELSE status - 400 END" }
[output]
format = "ndjson"
partition_by = ["day"]
"#;

    fn gz(text: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text).unwrap();
        e.finish().unwrap()
    }

    fn b64(v: &Value) -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }

    #[tokio::test]
    async fn every_record_is_answered_once_in_order_kept_dropped_or_failed() {
        let h = handler(WEB);
        let line = |status: u16, day: u8, path: &str| {
            format!(r#"{{"ts":"2026-11-{day}T10:00:00Z","status":{status},"path":"{path}"}}"#)
                .into_bytes()
        };
        let two = [line(500, 22, "/b"), b"\n".to_vec(), line(503, 22, "/c")].concat();
        let split = [line(500, 22, "/d"), b"\n".to_vec(), line(500, 23, "/e")].concat();
        let mut ev = crate::event::firehose_event(
            "web-logs",
            None,
            &[
                line(500, 22, "/a"),    // kept
                line(200, 22, "/ok"),   // filtered out: Dropped
                b"{not json".to_vec(),  // malformed: ProcessingFailed
                gz(&two),               // gzip, two rows: kept together
                split,                  // two partitions: ProcessingFailed
                line(404, 22, "/zero"), // the select overflows: refused
                b"".to_vec(),           // no rows: Dropped
            ],
        );
        // One record whose data is not base64: its own failure, not its neighbours'.
        ev["records"][6]["data"] = json!("%%%not base64");
        let out = h.handle(&ev).await;
        let s = &out.summary;
        assert_eq!(s.error, None);
        assert_eq!(s.trigger.to_string(), "firehose");
        let r = out.lambda_response();
        let recs = r["records"].as_array().unwrap();
        let ids: Vec<&str> = recs
            .iter()
            .map(|x| x["recordId"].as_str().unwrap())
            .collect();
        let sent: Vec<&str> = ev["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["recordId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, sent, "every record once, in order");
        let results: Vec<&str> = recs.iter().map(|x| x["result"].as_str().unwrap()).collect();
        assert_eq!(
            results,
            [
                "Ok",
                "Dropped",
                "ProcessingFailed",
                "Ok",
                "ProcessingFailed",
                "ProcessingFailed",
                "ProcessingFailed"
            ]
        );
        assert_eq!(
            String::from_utf8(b64(&recs[0]["data"])).unwrap(),
            "{\"path\":\"/a\",\"status\":500,\"code\":100}\n"
        );
        assert_eq!(
            recs[0]["metadata"]["partitionKeys"],
            json!({"day": "2026-11-22"})
        );
        assert_eq!(
            String::from_utf8(b64(&recs[3]["data"])).unwrap(),
            "{\"path\":\"/b\",\"status\":500,\"code\":100}\n{\"path\":\"/c\",\"status\":503,\"code\":103}\n"
        );
        for i in [1, 2, 4, 5, 6] {
            assert_eq!(recs[i]["data"], "", "record {i} carries no data");
            assert_eq!(recs[i]["metadata"]["partitionKeys"], json!({}));
        }
        let why = |i: usize| match &s.firehose.as_ref().unwrap().records[i].result {
            Transformed::Failed(w) => w.clone(),
            other => panic!("{other:?}"),
        };
        assert!(why(2).contains("could not be read"), "{}", why(2));
        assert!(
            why(4).contains("different partitions (day=2026-11-22 and day=2026-11-23)"),
            "{}",
            why(4)
        );
        assert!(why(5).contains("select stage"), "{}", why(5));
        assert!(why(6).contains("not a Firehose record"), "{}", why(6));
        assert_eq!(s.records_out, 3);
        // The summary says the same.
        let v = serde_json::to_value(s).unwrap();
        assert_eq!(v["firehose"]["ok"], 2);
        assert_eq!(v["firehose"]["dropped"], 1);
        assert_eq!(
            v["firehose"]["processing_failed"].as_array().unwrap().len(),
            4
        );
    }

    #[tokio::test]
    async fn fields_that_appear_in_later_records_are_kept() {
        // Every record is one line; the schema is inferred over the batch, not its first record.
        let h = handler(
            "name = \"t\"\n[input]\nformat = \"ndjson\"\ntrigger = \"firehose\"\n[output]\nformat = \"ndjson\"\n",
        );
        let ev = crate::event::firehose_event(
            "s",
            Some("clicks"),
            &[br#"{"a":1}"#.to_vec(), br#"{"a":2,"b":"x"}"#.to_vec()],
        );
        let r = h.handle(&ev).await.lambda_response();
        let data: Vec<String> = r["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| String::from_utf8(b64(&x["data"])).unwrap())
            .collect();
        assert_eq!(data, ["{\"a\":1}\n", "{\"a\":2,\"b\":\"x\"}\n"]);
    }

    #[tokio::test]
    async fn stream_columns_name_each_rows_own_record() {
        let h = handler(
            "name = \"t\"\n[input]\nformat = \"ndjson\"\ntrigger = \"firehose\"\n[[stage]]\ntype = \"select\"\ncolumns = { a = \"a\", key = \"_partition_key\", id = \"_sequence\" }\n[output]\nformat = \"ndjson\"\n",
        );
        let ev = crate::event::firehose_event(
            "s",
            Some("clicks"),
            &[br#"{"a":1}"#.to_vec(), br#"{"a":2}"#.to_vec()],
        );
        let r = h.handle(&ev).await.lambda_response();
        for (i, x) in r["records"].as_array().unwrap().iter().enumerate() {
            let row: Value = serde_json::from_slice(&b64(&x["data"])).unwrap();
            assert_eq!(row["a"], i as i64 + 1);
            assert_eq!(row["key"], format!("pk-{i}"));
            assert_eq!(row["id"], x["recordId"]);
        }
    }

    #[tokio::test]
    async fn an_answer_that_would_pass_6_mb_fails_the_records_past_it_and_answers_every_one() {
        // CloudWatch Logs through Firehose: each record a gzip document of log events that
        // inflates far beyond its size. 40 records of ~200 KB of rows each: ~8 MB of answer.
        let h = handler(
            "name = \"t\"\n[input]\nformat = \"cloudwatch-logs\"\ntrigger = \"firehose\"\n[output]\nformat = \"ndjson\"\n",
        );
        let message = "x".repeat(2000);
        let payloads: Vec<Vec<u8>> = (0..40)
            .map(|r| {
                let events: Vec<Value> = (0..100)
                    .map(|i| json!({"id": format!("{r}-{i}"), "timestamp": 1_795_372_800_000i64 + i, "message": message}))
                    .collect();
                gz(json!({
                    "messageType": "DATA_MESSAGE", "owner": "123456789012",
                    "logGroup": "/aws/lambda/x", "logStream": "s",
                    "subscriptionFilters": ["f"], "logEvents": events
                })
                .to_string()
                .as_bytes())
            })
            .collect();
        let ev = crate::event::firehose_event("logs", None, &payloads);
        let out = h.handle(&ev).await;
        assert_eq!(out.summary.error, None);
        let r = out.lambda_response();
        let text = serde_json::to_vec(&r).unwrap();
        assert!(text.len() <= RESPONSE_LIMIT, "{} bytes", text.len());
        let recs = r["records"].as_array().unwrap();
        assert_eq!(recs.len(), 40);
        let ok = recs.iter().take_while(|x| x["result"] == "Ok").count();
        assert!((20..40).contains(&ok), "{ok} kept");
        for (i, x) in recs.iter().enumerate() {
            assert_eq!(x["recordId"], ev["records"][i]["recordId"]);
            if i < ok {
                let lines = b64(&x["data"])
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .count();
                assert_eq!(lines, 100);
            } else {
                assert_eq!(x["result"], "ProcessingFailed", "record {i}");
                assert_eq!(x["data"], "");
            }
        }
        let a = out.summary.firehose.as_ref().unwrap();
        assert!(matches!(&a.records[ok].result, Transformed::Failed(w) if w.contains("6 MB")));
    }

    #[tokio::test]
    async fn records_past_the_deadline_are_processing_failed_not_lost() {
        // Each record a full decode block, so its rows reach the stages (400 ms each, in a
        // stage of the user's) before the next record's deadline check. The deadline is 1 s
        // away, requests cut 200 ms before it, the batch stops 100 ms before that: at 700 ms,
        // after the second record at the earliest; the third is never reached.
        let h = handler(
            "name = \"t\"\n[input]\nformat = \"ndjson\"\ntrigger = \"firehose\"\nbatch_rows = 1\n[output]\nformat = \"ndjson\"\ndeadline_reserve_ms = 100\n",
        )
        .with_stage(crate::testing::probe(|_| {
            std::thread::sleep(std::time::Duration::from_millis(400));
            Ok(())
        }));
        let pad = "x".repeat(super::super::records::JOIN_BYTES);
        let payloads: Vec<Vec<u8>> = (0..3)
            .map(|i| format!("{{\"a\":{i},\"pad\":\"{pad}\"}}").into_bytes())
            .collect();
        let ev = crate::event::firehose_event("s", None, &payloads);
        let deadline = Instant::now() + std::time::Duration::from_millis(1000);
        let out = h.handle_until(&ev, Some(deadline)).await;
        assert_eq!(out.summary.error, None);
        let r = out.lambda_response();
        let results: Vec<&str> = r["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["result"].as_str().unwrap())
            .collect();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0], "Ok");
        assert_eq!(results[2], "ProcessingFailed");
        let a = out.summary.firehose.as_ref().unwrap();
        assert!(matches!(&a.records[2].result, Transformed::Failed(w) if w.contains("deadline")));
    }

    #[tokio::test]
    async fn a_firehose_pipeline_refuses_other_events_and_others_refuse_firehose() {
        let h = handler(WEB);
        let s3 = crate::event::s3_event(vec![crate::event::s3_record("b", "k", 1, "e")]);
        let out = h.handle(&s3).await;
        assert!(!out.per_item);
        let e = out.summary.error.unwrap();
        assert!(
            e.contains("Firehose transformation") && e.contains("the event is s3"),
            "{e}"
        );
        let plain = handler(
            "name = \"t\"\n[input]\nformat = \"ndjson\"\n[output]\nuri = \"out\"\nformat = \"ndjson\"\n",
        );
        let ev = crate::event::firehose_event("s", None, &[b"{}".to_vec()]);
        let out = plain.handle(&ev).await;
        assert!(!out.per_item);
        let e = out.summary.error.unwrap();
        assert!(e.contains("set [input] trigger = \"firehose\""), "{e}");
    }

    #[tokio::test]
    async fn the_documented_sample_round_trips_through_the_typed_values() {
        use aws_lambda_events::event::firehose::{KinesisFirehoseEvent, KinesisFirehoseResponse};
        let sample: Value = serde_json::from_str(include_str!(
            "../../../fixtures/events/firehose-transformation.json"
        ))
        .unwrap();
        let typed: KinesisFirehoseEvent = serde_json::from_value(sample.clone()).unwrap();
        let again: KinesisFirehoseEvent =
            serde_json::from_value(serde_json::to_value(&typed).unwrap()).unwrap();
        assert_eq!(typed, again);
        let inv = crate::trigger::parse(&sample);
        assert_eq!(inv.error, None);
        let job = inv.work.firehose.as_ref().unwrap();
        assert_eq!(job.invocation_id, "invocationIdExample");
        assert_eq!(job.arrivals, [1_495_072_949_453]);
        let h = handler(
            "name = \"t\"\n[input]\nformat = \"text\"\ntrigger = \"firehose\"\n[output]\nformat = \"ndjson\"\n",
        );
        let out = h.handle(&sample).await;
        let r = out.lambda_response();
        let typed: KinesisFirehoseResponse = serde_json::from_value(r.clone()).unwrap();
        assert_eq!(serde_json::to_value(&typed).unwrap(), r);
        assert_eq!(typed.records.len(), 1);
        let rec = &typed.records[0];
        assert_eq!(
            rec.record_id.as_deref(),
            Some("49546986683135544286507457936321625675700192471156785154")
        );
        assert_eq!(rec.result.as_deref(), Some("Ok"));
        assert_eq!(
            String::from_utf8(rec.data.to_vec()).unwrap(),
            // (`key` names an object; a record has none.)
            "{\"key\":\"\",\"text\":\"Hello, this is a test 123.\"}\n"
        );
    }

    #[test]
    fn an_entrys_size_is_what_it_serializes_to() {
        for (id, result, data, keys) in [
            (
                "49546986683135544286507457936321625675700192471156785154",
                Transformed::Ok,
                b"{\"a\":1}\n".to_vec(),
                vec![],
            ),
            (
                "r\"1\\\u{1}é",
                Transformed::Dropped,
                vec![],
                vec![("day".to_string(), "2026-11-22".to_string())],
            ),
            (
                "x",
                Transformed::Failed("why".into()),
                vec![7; 1000],
                vec![
                    ("a\"b".to_string(), "v/é\n".to_string()),
                    ("c".to_string(), String::new()),
                ],
            ),
            ("y", Transformed::Ok, vec![0; 2], vec![]),
        ] {
            let a = Answered {
                record_id: id.to_string(),
                result,
                data,
                partition_keys: keys,
                rows: 0,
            };
            let written = serde_json::to_vec(&entry(&a)).unwrap().len();
            assert_eq!(entry_bytes(&a), written, "{a:?}");
        }
    }

    #[tokio::test]
    async fn a_bomb_fails_its_record_alone_and_a_redelivery_answers_the_same() {
        let h = handler(
            "name = \"t\"\n[input]\nformat = \"ndjson\"\ntrigger = \"firehose\"\n[output]\nformat = \"ndjson\"\n",
        );
        // 70 MiB of line breaks in ~70 KB of gzip: past the 64 MiB a record may inflate to.
        let bomb = gz(&vec![b'\n'; 70 << 20]);
        assert!(bomb.len() < 1 << 20);
        let ev = crate::event::firehose_event(
            "s",
            None,
            &[br#"{"a":1}"#.to_vec(), bomb, br#"{"a":2}"#.to_vec()],
        );
        let out = h.handle(&ev).await;
        assert_eq!(out.summary.error, None);
        let first = out.lambda_response();
        let results: Vec<&str> = first["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["result"].as_str().unwrap())
            .collect();
        assert_eq!(results, ["Ok", "ProcessingFailed", "Ok"]);
        let a = out.summary.firehose.as_ref().unwrap();
        assert!(
            matches!(&a.records[1].result, Transformed::Failed(w) if w.contains("inflates past 64 MiB")),
            "{:?}",
            a.records[1]
        );
        assert_eq!(b64(&first["records"][2]["data"]), b"{\"a\":2}\n");
        // Firehose retries a batch whole: the same batch is answered the same, byte for byte.
        assert_eq!(h.handle(&ev).await.lambda_response(), first);
    }

    #[tokio::test]
    async fn an_event_without_record_ids_fails_whole() {
        let h = handler(WEB);
        let mut ev = crate::event::firehose_event("s", None, &[b"{}".to_vec()]);
        ev["records"][0].as_object_mut().unwrap().remove("recordId");
        let out = h.handle(&ev).await;
        assert!(!out.per_item);
        assert!(out.summary.error.unwrap().contains("recordId"));
    }
}
