//! Kinesis output (`[output] uri = "kinesis://stream-name"`): each output row becomes one JSON
//! record, put with PutRecords, so pipelines chain stream to stream.
//!
//! PutRecords' limits hold: at most 500 records and 5 MiB per call, 1 MiB per record (data and
//! partition key), partition keys of 1 to 256 characters. A row that can never fit (too big, or a
//! null, empty or too long partition key) is a reject with its reason, never a blocked batch.
//! PutRecords can accept some entries of a call and refuse others (throttling, internal errors):
//! only the refused entries are sent again, in order, with exponential backoff; when they are still
//! refused after the last attempt the batch fails, and Lambda redelivers it. Kinesis has no
//! idempotent put, so records of a call that succeeded before such a failure are sent again on the
//! redelivery: the output is at-least-once, and consumers that must not see duplicates dedupe on
//! the record's content or a key column.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, RecordBatch, StringArray};
use bytes::Bytes;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use sluice_processors::Reject;
use sluice_processors::expr::Compiled;

use crate::Error;

/// Most records in one PutRecords call.
pub const MAX_ENTRIES: usize = 500;
/// Most bytes (data and partition keys) in one PutRecords call.
pub const MAX_CALL_BYTES: usize = 5 << 20;
/// Most bytes (data and partition key) of one record.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// Most characters in a partition key.
pub const MAX_KEY_CHARS: usize = 256;

/// One PutRecords entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The partition key.
    pub partition_key: String,
    /// The record's bytes.
    pub data: Bytes,
}

impl Entry {
    fn size(&self) -> usize {
        self.partition_key.len() + self.data.len()
    }
}

/// Puts records on a stream: one PutRecords call.
pub trait RecordPutter: Send + Sync + std::fmt::Debug {
    /// Put `entries` on `stream` (a name or an ARN). Returns, per entry in order, `None` when it
    /// was stored or `Some(reason)` when it was refused; `Err` when the call as a whole failed.
    fn put<'a>(
        &'a self,
        stream: &'a str,
        entries: &'a [Entry],
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, Error>>;
}

/// How refused entries are retried.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Calls in all, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubled for each one after.
    pub backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 6,
            backoff: Duration::from_millis(100),
        }
    }
}

/// Rows of one unit of work on their way to a stream.
#[derive(Debug)]
pub struct StreamWriter {
    putter: Arc<dyn RecordPutter>,
    stream: String,
    key: Option<String>,
    compiled: Option<(arrow_schema::SchemaRef, Compiled)>,
    pending: Vec<Entry>,
    pending_bytes: usize,
    sent: u64,
    rejects: Vec<Reject>,
    rows: u64,
    retry: Retry,
}

impl StreamWriter {
    /// Rows to `stream`, keyed by the expression `key` (default: a digest of the row, which
    /// spreads rows evenly over the shards).
    pub fn new(putter: Arc<dyn RecordPutter>, stream: &str, key: Option<&str>) -> Self {
        StreamWriter {
            putter,
            stream: stream.to_string(),
            key: key.map(str::to_string),
            compiled: None,
            pending: Vec::new(),
            pending_bytes: 0,
            sent: 0,
            rejects: Vec::new(),
            rows: 0,
            retry: Retry::default(),
        }
    }

    /// Retry refused entries this way instead.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// Where the rows go, for reports.
    pub fn location(&self) -> String {
        format!("kinesis://{}", self.stream)
    }

    /// Records put so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Rows that could not be put, with their reasons, since the last call.
    pub fn take_rejects(&mut self) -> Vec<Reject> {
        std::mem::take(&mut self.rejects)
    }

    /// Each row's partition key, and why a row has none when its expression failed on it (an
    /// overflow): such a row is a reject, never a failed batch that blocks the shard.
    fn keys(
        &mut self,
        batch: &RecordBatch,
    ) -> Result<(Option<StringArray>, Vec<Option<String>>), Error> {
        let Some(text) = &self.key else {
            return Ok((None, Vec::new()));
        };
        let schema = batch.schema();
        let stale = self.compiled.as_ref().is_none_or(|(s, _)| *s != schema);
        if stale {
            let c = Compiled::new(text, &schema)
                .map_err(|e| Error::Data(format!("[output] partition_key `{text}`: {e}")))?;
            self.compiled = Some((schema, c));
        }
        let Some((_, c)) = &self.compiled else {
            return Ok((None, Vec::new()));
        };
        let (values, errors) = c.evaluate_rows(batch);
        let mut failed = Vec::new();
        if !errors.is_empty() {
            failed = vec![None; batch.num_rows()];
            for e in errors {
                failed[e.row].get_or_insert(format!("[output] partition_key: {}", e.message));
            }
        }
        let strings = arrow_cast::cast(&values, &arrow_schema::DataType::Utf8)
            .map_err(|e| Error::Data(format!("[output] partition_key `{text}` as text: {e}")))?;
        Ok((
            strings.as_any().downcast_ref::<StringArray>().cloned(),
            failed,
        ))
    }

    /// Queue the rows of `batch`, putting full calls as they fill.
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let (keys, failed) = self.keys(batch)?;
        let text = sluice_processors::json::ndjson(batch).map_err(|e| {
            Error::Processor(sluice_processors::Error::arrow("writing JSON records", e))
        })?;
        let text = Bytes::from(text);
        // One line per row: JSON text never holds a raw line break.
        let mut start = 0;
        for (row, end) in line_ends(&text).enumerate() {
            let line = text.slice(start..end + 1);
            start = end + 1;
            self.rows += 1;
            if let Some(Some(why)) = failed.get(row) {
                self.reject(row, &line, why.clone());
                continue;
            }
            let key = match &keys {
                None => hex_digest(&line),
                Some(k) if k.is_null(row) || k.value(row).is_empty() => {
                    self.reject(row, &line, "the partition key is null or empty".into());
                    continue;
                }
                Some(k) => k.value(row).to_string(),
            };
            if key.chars().count() > MAX_KEY_CHARS {
                self.reject(
                    row,
                    &line,
                    format!(
                        "the partition key has {} characters; Kinesis allows at most {MAX_KEY_CHARS}",
                        key.chars().count()
                    ),
                );
                continue;
            }
            let entry = Entry {
                partition_key: key,
                data: line,
            };
            if entry.size() > MAX_RECORD_BYTES {
                let reason = format!(
                    "the record is {} bytes with its partition key; Kinesis allows at most {MAX_RECORD_BYTES}",
                    entry.size()
                );
                self.reject(row, &entry.data, reason);
                continue;
            }
            if self.pending.len() == MAX_ENTRIES
                || self.pending_bytes + entry.size() > MAX_CALL_BYTES
            {
                self.flush().await?;
            }
            self.pending_bytes += entry.size();
            self.pending.push(entry);
        }
        Ok(())
    }

    /// Refuse the output row at `row` of the batch being written (the `self.rows`th overall),
    /// whose record would have been `raw`: a reject of the stage "output", traced to its input line
    /// by the handler when it can be.
    fn reject(&mut self, row: usize, raw: &[u8], reason: String) {
        let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
        self.rejects
            .push(Reject::in_stage("output", self.rows, reason, raw).pushed_as(row));
    }

    /// Put what is queued; only refused entries are sent again.
    pub async fn flush(&mut self) -> Result<(), Error> {
        let mut todo = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let mut wait = self.retry.backoff;
        for attempt in 1..=self.retry.attempts.max(1) {
            if todo.is_empty() {
                return Ok(());
            }
            let verdicts = self.putter.put(&self.stream, &todo).await?;
            if verdicts.len() != todo.len() {
                return Err(Error::Io(format!(
                    "PutRecords answered for {} records of {}",
                    verdicts.len(),
                    todo.len()
                )));
            }
            let mut refused = Vec::new();
            let mut reason = None;
            for (entry, verdict) in todo.into_iter().zip(verdicts) {
                match verdict {
                    None => self.sent += 1,
                    Some(r) => {
                        reason.get_or_insert(r);
                        refused.push(entry);
                    }
                }
            }
            todo = refused;
            if let Some(r) = reason {
                if attempt == self.retry.attempts.max(1) {
                    return Err(Error::Store {
                        location: self.location(),
                        message: format!(
                            "{} records were still refused after {attempt} PutRecords attempts (first reason: {r})",
                            todo.len()
                        ),
                        retryable: true,
                    });
                }
                tracing::warn!(refused = todo.len(), attempt, reason = %r, "PutRecords refused records; retrying them.");
                if crate::store::request_deadline()
                    .is_some_and(|d| std::time::Instant::now() + wait >= d)
                {
                    return Err(crate::store::past_deadline(self.location()));
                }
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
        }
        Ok(())
    }
}

/// The positions of the line breaks in `text`.
fn line_ends(text: &[u8]) -> impl Iterator<Item = usize> + '_ {
    text.iter()
        .enumerate()
        .filter(|(_, c)| **c == b'\n')
        .map(|(i, _)| i)
}

/// A partition key that spreads rows evenly: the first 16 bytes of the row's SHA-256, in hex.
fn hex_digest(data: &[u8]) -> String {
    Sha256::digest(data)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// PutRecords through the AWS SDK.
#[cfg(feature = "kinesis")]
#[derive(Debug, Clone)]
pub struct KinesisPutter {
    client: crate::aws::LazyClient<aws_sdk_kinesis::Client>,
}

#[cfg(feature = "kinesis")]
fn make_client(shared: &aws_config::SdkConfig, _: Option<&str>) -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::new(shared)
}

#[cfg(feature = "kinesis")]
impl KinesisPutter {
    /// A putter on an existing client.
    pub fn new(client: aws_sdk_kinesis::Client) -> Self {
        KinesisPutter {
            client: crate::aws::LazyClient::ready(client, make_client),
        }
    }

    /// A client from the standard chain; `endpoint_url` overrides the endpoint.
    pub async fn from_env(endpoint_url: Option<&str>) -> Self {
        let putter = Self::lazy(endpoint_url);
        putter.warm().await;
        putter
    }

    /// As [`KinesisPutter::from_env`], with the client made when it is first needed (see
    /// [`crate::store::S3Store::lazy`]).
    pub fn lazy(endpoint_url: Option<&str>) -> Self {
        KinesisPutter {
            client: crate::aws::LazyClient::lazy(endpoint_url, make_client),
        }
    }

    /// Make the client now (a no-op when it is made or being made).
    pub async fn warm(&self) {
        self.client().await;
    }

    /// The client, for callers that need more than PutRecords.
    pub async fn client(&self) -> &aws_sdk_kinesis::Client {
        self.client.get().await
    }
}

#[cfg(feature = "kinesis")]
impl RecordPutter for KinesisPutter {
    fn put<'a>(
        &'a self,
        stream: &'a str,
        entries: &'a [Entry],
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, Error>> {
        use aws_sdk_kinesis::primitives::Blob;
        use aws_sdk_kinesis::types::PutRecordsRequestEntry;
        Box::pin(async move {
            let location = format!("kinesis://{stream}");
            let mut req = self.client().await.put_records();
            req = if stream.starts_with("arn:") {
                req.stream_arn(stream)
            } else {
                req.stream_name(stream)
            };
            for e in entries {
                let entry = PutRecordsRequestEntry::builder()
                    .partition_key(e.partition_key.clone())
                    .data(Blob::new(e.data.to_vec()))
                    .build()
                    .map_err(|e| Error::Internal(format!("a PutRecords entry: {e}")))?;
                req = req.records(entry);
            }
            let out = crate::store::bounded(&location, async {
                req.send().await.map_err(|e| {
                    let retryable = matches!(
                        &e,
                        aws_sdk_kinesis::error::SdkError::TimeoutError(_)
                            | aws_sdk_kinesis::error::SdkError::DispatchFailure(_)
                    ) || e
                        .as_service_error()
                        .is_some_and(|s| s.is_provisioned_throughput_exceeded_exception());
                    Error::Store {
                        location: location.clone(),
                        message: aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string(),
                        retryable,
                    }
                })
            })
            .await?;
            Ok(out
                .records()
                .iter()
                .map(|r| {
                    r.error_code().map(|c| match r.error_message() {
                        Some(m) => format!("{c}: {m}"),
                        None => c.to_string(),
                    })
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Mutex;

    /// Kinesis as PutRecords answers it, with entries refused on the calls asked for (moto, the
    /// local endpoint, never refuses part of a call).
    #[derive(Debug, Default)]
    struct Stream {
        stored: Mutex<Vec<Entry>>,
        calls: Mutex<Vec<usize>>,
        /// (call number, entry index in that call) to refuse.
        refuse: Vec<(usize, usize)>,
    }

    impl RecordPutter for Stream {
        fn put<'a>(
            &'a self,
            _stream: &'a str,
            entries: &'a [Entry],
        ) -> BoxFuture<'a, Result<Vec<Option<String>>, Error>> {
            Box::pin(async move {
                let mut calls = self.calls.lock().unwrap();
                let call = calls.len();
                calls.push(entries.len());
                assert!(entries.len() <= MAX_ENTRIES);
                assert!(entries.iter().map(Entry::size).sum::<usize>() <= MAX_CALL_BYTES);
                let mut out = Vec::new();
                for (i, e) in entries.iter().enumerate() {
                    if self.refuse.contains(&(call, i)) {
                        out.push(Some(
                            "ProvisionedThroughputExceededException: slow down".into(),
                        ));
                    } else {
                        self.stored.lock().unwrap().push(e.clone());
                        out.push(None);
                    }
                }
                Ok(out)
            })
        }
    }

    fn batch(n: i64) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, true),
                Field::new("user", DataType::Utf8, true),
            ])),
            vec![
                Arc::new(Int64Array::from((0..n).collect::<Vec<_>>())),
                Arc::new(StringArray::from(
                    (0..n)
                        .map(|i| (i % 7 != 3).then(|| format!("u{}", i % 5)))
                        .collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    fn fast() -> Retry {
        Retry {
            attempts: 3,
            backoff: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn rows_go_in_calls_within_the_limits_keyed_by_the_expression() {
        let s = Arc::new(Stream::default());
        let mut w = StreamWriter::new(s.clone(), "out", Some("user")).with_retry(fast());
        w.write(&batch(1200)).await.unwrap();
        w.flush().await.unwrap();
        // Rows with a null key (every 7th from the 4th) are rejects; the rest are put in order.
        let rejects = w.take_rejects();
        assert_eq!(rejects.len(), 171);
        assert!(
            rejects[0].reason.contains("partition key is null"),
            "{:?}",
            rejects[0]
        );
        let stored = s.stored.lock().unwrap();
        assert_eq!(stored.len(), 1029);
        assert_eq!(w.sent(), 1029);
        assert_eq!(*s.calls.lock().unwrap(), vec![500, 500, 29]);
        assert_eq!(stored[0].partition_key, "u0");
        assert_eq!(&stored[0].data[..], b"{\"id\":0,\"user\":\"u0\"}\n");
        assert_eq!(&stored[3].data[..], b"{\"id\":4,\"user\":\"u4\"}\n");
    }

    #[tokio::test]
    async fn a_row_whose_partition_key_expression_fails_is_a_reject_not_a_failed_batch() {
        let s = Arc::new(Stream::default());
        let mut b = batch(3);
        let ids = Int64Array::from(vec![1, i64::MAX, 3]);
        b = RecordBatch::try_new(b.schema(), vec![Arc::new(ids), b.column(1).clone()]).unwrap();
        let mut w =
            StreamWriter::new(s.clone(), "out", Some("cast(id + 1 AS string)")).with_retry(fast());
        w.write(&b).await.unwrap();
        w.flush().await.unwrap();
        let rejects = w.take_rejects();
        assert_eq!(rejects.len(), 1);
        assert!(
            rejects[0].reason.contains("9223372036854775807 + 1"),
            "{}",
            rejects[0].reason
        );
        let keys: Vec<String> = s
            .stored
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.partition_key.clone())
            .collect();
        assert_eq!(keys, ["2", "4"]);
    }

    #[tokio::test]
    async fn only_refused_entries_are_sent_again() {
        let s = Arc::new(Stream {
            refuse: vec![(0, 1), (0, 3), (1, 1)],
            ..Stream::default()
        });
        let mut w = StreamWriter::new(s.clone(), "out", None).with_retry(fast());
        w.write(&batch(5)).await.unwrap();
        w.flush().await.unwrap();
        // Call 0 puts rows 0, 2, 4; call 1 gets rows 1 and 3 and refuses 3 again; call 2 puts it.
        // (Row 3's user is null, so its JSON has no `user`.)
        assert_eq!(*s.calls.lock().unwrap(), vec![5, 2, 1]);
        let ids: Vec<String> = s
            .stored
            .lock()
            .unwrap()
            .iter()
            .map(|e| String::from_utf8_lossy(&e.data[6..8]).to_string())
            .collect();
        assert_eq!(ids, vec!["0,", "2,", "4,", "1,", "3}"]);
        assert_eq!(w.sent(), 5);
        // Default keys are a digest of the row: stable, and different for different rows.
        let stored = s.stored.lock().unwrap();
        assert_eq!(
            stored[0].partition_key,
            hex_digest(b"{\"id\":0,\"user\":\"u0\"}\n")
        );
        assert_eq!(stored[0].partition_key.len(), 32);
        assert_ne!(stored[0].partition_key, stored[1].partition_key);
    }

    #[tokio::test]
    async fn entries_still_refused_after_the_last_attempt_fail_the_batch() {
        let s = Arc::new(Stream {
            refuse: vec![(0, 0), (1, 0), (2, 0)],
            ..Stream::default()
        });
        let mut w = StreamWriter::new(s.clone(), "out", None).with_retry(fast());
        w.write(&batch(2)).await.unwrap();
        let e = w.flush().await.unwrap_err();
        assert!(e.retryable());
        assert!(
            e.to_string()
                .contains("1 records were still refused after 3 PutRecords attempts"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn rows_too_big_for_a_record_are_rejects() {
        let s = Arc::new(Stream::default());
        let big = "x".repeat(MAX_RECORD_BYTES);
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("t", DataType::Utf8, false)])),
            vec![Arc::new(StringArray::from(vec![
                "small",
                big.as_str(),
                "small2",
            ]))],
        )
        .unwrap();
        let mut w = StreamWriter::new(s.clone(), "out", None).with_retry(fast());
        w.write(&b).await.unwrap();
        w.flush().await.unwrap();
        let r = w.take_rejects();
        assert_eq!(r.len(), 1);
        assert!(
            r[0].reason.contains("Kinesis allows at most 1048576"),
            "{}",
            r[0].reason
        );
        assert_eq!(s.stored.lock().unwrap().len(), 2);
    }
}
