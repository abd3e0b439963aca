//! AWS JSON log formats: CloudTrail log files and CloudWatch Logs subscription payloads.
//!
//! - `cloudtrail`: the `Records` array of CloudTrail log files, with the documented record fields
//!   typed (`eventTime` a timestamp, `readOnly` a bool, `userIdentity` a struct so
//!   `userIdentity.arn` works in expressions) and the free-form parts (`requestParameters`,
//!   `responseElements`, `resources`, …) kept as JSON text. Insights records, which lack
//!   `eventName`, decode with it null.
//! - `cloudwatch-logs`: subscription-filter payloads as delivered to Kinesis or Firehose — JSON
//!   documents (gzip is undone by the pipeline's decompression), possibly concatenated — one row per
//!   log event with `owner`, `logGroup`, `logStream`, `id`, `timestamp`, `message`;
//!   `CONTROL_MESSAGE` documents are skipped.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::jsondoc::{JsonStrings, StrByte};
use super::row::RowBuilder;
use super::{Decoded, Decoder, Origins};
use crate::{Error, Reject};

/// CloudTrail record fields (CloudTrail User Guide, "CloudTrail record contents").
pub const CLOUDTRAIL_FIELDS: &[(&str, &str)] = &[
    ("eventVersion", "string"),
    ("userIdentity.type", "string"),
    ("userIdentity.principalId", "string"),
    ("userIdentity.arn", "string"),
    ("userIdentity.accountId", "string"),
    ("userIdentity.accessKeyId", "string"),
    ("userIdentity.userName", "string"),
    ("userIdentity.invokedBy", "string"),
    ("userIdentity.sessionContext", "json"),
    ("eventTime", "timestamp"),
    ("eventSource", "string"),
    ("eventName", "string"),
    ("awsRegion", "string"),
    ("sourceIPAddress", "string"),
    ("userAgent", "string"),
    ("errorCode", "string"),
    ("errorMessage", "string"),
    ("requestParameters", "json"),
    ("responseElements", "json"),
    ("additionalEventData", "json"),
    ("requestID", "string"),
    ("eventID", "string"),
    ("readOnly", "bool"),
    ("resources", "json"),
    ("eventType", "string"),
    ("apiVersion", "string"),
    ("managementEvent", "bool"),
    ("recipientAccountId", "string"),
    ("sharedEventID", "string"),
    ("vpcEndpointId", "string"),
    ("eventCategory", "string"),
    ("tlsDetails", "json"),
    ("insightDetails", "json"),
];

/// The CloudTrail schema.
pub fn cloudtrail_schema() -> SchemaRef {
    super::schema_from_types(CLOUDTRAIL_FIELDS.iter().copied())
        .unwrap_or_else(|_| Arc::new(Schema::empty()))
}

/// The schema of `cloudwatch-logs` rows.
pub fn cloudwatch_logs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("owner", DataType::Utf8, true),
        Field::new("logGroup", DataType::Utf8, true),
        Field::new("logStream", DataType::Utf8, true),
        Field::new("id", DataType::Utf8, true),
        Field::new("timestamp", crate::expr::timestamp_type(), true),
        Field::new("message", DataType::Utf8, true),
    ]))
}

/// Splits concatenated JSON documents and turns each subscription payload into rows.
pub struct CloudWatchLogsDecoder {
    rows: RowBuilder,
    doc: Vec<u8>,
    depth: usize,
    strings: JsonStrings,
    max: usize,
    oversized: usize,
    doc_no: u64,
    batch_rows: usize,
    /// The log event of each row since the last batch was emitted.
    origins: Origins,
}

impl std::fmt::Debug for CloudWatchLogsDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudWatchLogsDecoder")
            .field("doc_no", &self.doc_no)
            .finish()
    }
}

impl CloudWatchLogsDecoder {
    /// A decoder; one payload document may be at most `max_doc_bytes`.
    pub fn new(batch_rows: usize, max_doc_bytes: usize) -> Result<Self, Error> {
        Ok(Self {
            rows: RowBuilder::new(cloudwatch_logs_schema(), false, batch_rows.max(1))?,
            doc: Vec::new(),
            depth: 0,
            strings: JsonStrings::default(),
            max: max_doc_bytes.max(1),
            oversized: 0,
            doc_no: 0,
            batch_rows: batch_rows.max(1),
            origins: Origins::default(),
        })
    }

    fn document(&mut self, out: &mut Decoded) -> Result<(), Error> {
        self.doc_no += 1;
        let no = self.doc_no;
        if self.oversized > 0 {
            let len = std::mem::take(&mut self.oversized);
            out.rejects.push(Reject::new(
                no,
                format!(
                    "payload is {len} bytes, longer than max_line_bytes ({})",
                    self.max
                ),
                &self.doc,
            ));
            self.doc.clear();
            return Ok(());
        }
        let doc = std::mem::take(&mut self.doc);
        let v: serde_json::Value = match serde_json::from_slice(&doc) {
            Ok(v) => v,
            Err(e) => {
                out.rejects
                    .push(Reject::new(no, format!("invalid JSON: {e}"), &doc));
                return Ok(());
            }
        };
        match v.get("messageType").and_then(|m| m.as_str()) {
            Some("CONTROL_MESSAGE") => return Ok(()),
            Some("DATA_MESSAGE") | None => {}
            Some(other) => {
                out.rejects.push(Reject::new(
                    no,
                    format!("unknown messageType `{other}`"),
                    &doc,
                ));
                return Ok(());
            }
        }
        let Some(events) = v.get("logEvents").and_then(|e| e.as_array()) else {
            out.rejects.push(Reject::new(
                no,
                "not a CloudWatch Logs subscription payload: no `logEvents` array",
                &doc,
            ));
            return Ok(());
        };
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let (owner, group, stream) = (s("owner"), s("logGroup"), s("logStream"));
        for ev in events {
            let id = ev.get("id").map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string())
            });
            // Epoch milliseconds; anything else is passed on as text so it is rejected by name.
            let ts = ev.get("timestamp").filter(|t| !t.is_null()).map(|t| {
                match (t.as_i64(), t.as_str()) {
                    (Some(v), _) => chrono::DateTime::from_timestamp_millis(v)
                        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                        .unwrap_or_else(|| v.to_string()),
                    (None, Some(s)) => s.to_string(),
                    (None, None) => t.to_string(),
                }
            });
            let msg = ev.get("message").and_then(|m| m.as_str());
            let fields = [
                owner.as_deref(),
                group.as_deref(),
                stream.as_deref(),
                id.as_deref(),
                ts.as_deref(),
                msg,
            ];
            if let Err(reason) = self.rows.push(&fields) {
                out.rejects.push(Reject::new(
                    no,
                    format!("log event: {reason}"),
                    ev.to_string().as_bytes(),
                ));
            } else {
                // A row's input is its log event, in the payload numbered `no`.
                if !self.origins.is_off() {
                    self.origins.push(no, ev.to_string().as_bytes());
                }
                if self.rows.len() >= self.batch_rows {
                    self.emit(out)?;
                }
            }
        }
        Ok(())
    }

    fn emit(&mut self, out: &mut Decoded) -> Result<(), Error> {
        if let Some(b) = self
            .rows
            .flush()
            .map_err(|e| Error::arrow("decoding CloudWatch Logs", e))?
        {
            out.emit(b, Some(self.origins.take()));
        }
        self.origins.clear();
        Ok(())
    }
}

impl Decoder for CloudWatchLogsDecoder {
    fn decode(&mut self, buf: &[u8], out: &mut Decoded) -> Result<(), Error> {
        for &c in buf {
            if self.depth == 0
                && !self.strings.inside()
                && matches!(c, b' ' | b'\t' | b'\r' | b'\n')
            {
                continue;
            }
            if self.oversized > 0 {
                self.oversized += 1;
            } else if self.doc.len() >= self.max {
                self.oversized = self.doc.len() + 1;
                self.doc.truncate(crate::REJECT_RAW_BYTES);
            } else {
                self.doc.push(c);
            }
            if !matches!(self.strings.step(c), StrByte::Outside) {
                continue;
            }
            match c {
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        self.document(out)?;
                    }
                }
                _ if self.depth == 0 => {
                    // Text between documents: collect it as one bad document.
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Decoded) -> Result<(), Error> {
        if !self.doc.is_empty() || self.oversized > 0 {
            self.doc_no += 1;
            out.rejects.push(Reject::new(
                self.doc_no,
                "the object ends inside a payload (truncated?)",
                &self.doc,
            ));
            self.doc.clear();
        }
        self.emit(out)
    }

    fn keep_origins(&mut self, keep: bool) {
        self.origins.keep(keep);
    }

    fn schema(&self) -> Option<SchemaRef> {
        Some(self.rows.schema().clone())
    }
}

/// The whole object as one row: `key`, `text` — for indexing documents.
pub struct TextDecoder {
    key: String,
    text: Vec<u8>,
    max: usize,
    total: usize,
}

impl std::fmt::Debug for TextDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextDecoder")
            .field("key", &self.key)
            .finish()
    }
}

/// The schema of `text` rows.
pub fn text_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, true),
    ]))
}

impl TextDecoder {
    /// The object `key`, at most `max_bytes` long.
    pub fn new(key: &str, max_bytes: usize) -> Self {
        Self {
            key: key.to_string(),
            text: Vec::new(),
            max: max_bytes.max(1),
            total: 0,
        }
    }
}

impl Decoder for TextDecoder {
    fn decode(&mut self, buf: &[u8], _out: &mut Decoded) -> Result<(), Error> {
        self.total += buf.len();
        let room = self.max.saturating_sub(self.text.len());
        self.text.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(())
    }

    fn finish(&mut self, out: &mut Decoded) -> Result<(), Error> {
        if self.total > self.max {
            out.rejects.push(Reject::new(
                1,
                format!(
                    "object text is {} bytes, longer than max_line_bytes ({})",
                    self.total, self.max
                ),
                &self.text,
            ));
            return Ok(());
        }
        let text = match std::str::from_utf8(
            self.text
                .strip_prefix(b"\xef\xbb\xbf")
                .unwrap_or(&self.text),
        ) {
            Ok(t) => t.to_string(),
            Err(e) => {
                out.rejects.push(Reject::new(
                    1,
                    format!(
                        "the object is not UTF-8 text (invalid byte at offset {})",
                        e.valid_up_to()
                    ),
                    &self.text,
                ));
                return Ok(());
            }
        };
        let mut rows = RowBuilder::new(text_schema(), false, 1)?;
        rows.push(&[Some(&self.key), Some(&text)])
            .map_err(Error::Decode)?;
        if let Some(b) = rows.flush().map_err(|e| Error::arrow("text", e))? {
            out.emit(b, None);
        }
        Ok(())
    }

    fn schema(&self) -> Option<SchemaRef> {
        Some(text_schema())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMicrosecondType;

    #[test]
    fn cloudwatch_payloads_concatenated_with_control_messages() {
        let data = br#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1763805600000,"message":"CWL CONTROL MESSAGE: Checking health of destination Firehose."}]}{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/lambda/orders","logStream":"2026/11/22/[$LATEST]abc","subscriptionFilters":["all"],"logEvents":[{"id":"37853284209845465432","timestamp":1795341600000,"message":"START RequestId: 1 {\"braces\": \"}\"}"},{"id":"37853284209845465433","timestamp":1795341600123,"message":"END"}]}
{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/lambda/orders","logStream":"s2","logEvents":[{"id":"1","timestamp":"not a time","message":"x"}]}
{"truncated":"#;
        for chunk in [1, 7, 4096] {
            let mut d = CloudWatchLogsDecoder::new(100, 1 << 20).unwrap();
            let mut out = Decoded::default();
            for c in data.chunks(chunk) {
                d.decode(c, &mut out).unwrap();
            }
            d.finish(&mut out).unwrap();
            let b = &out.batches[0];
            assert_eq!(b.num_rows(), 2);
            assert_eq!(
                b.column(1).as_string::<i32>().value(0),
                "/aws/lambda/orders"
            );
            assert_eq!(
                b.column(5).as_string::<i32>().value(0),
                "START RequestId: 1 {\"braces\": \"}\"}"
            );
            assert_eq!(
                b.column(4)
                    .as_primitive::<TimestampMicrosecondType>()
                    .value(1),
                1_795_341_600_123_000
            );
            let pos: Vec<u64> = out.rejects.iter().map(|r| r.position).collect();
            assert_eq!(pos, vec![3, 4], "{:?}", out.rejects);
            assert!(
                out.rejects[0]
                    .reason
                    .contains("column 'timestamp' expects a timestamp")
            );
            assert!(out.rejects[1].reason.contains("truncated"));
        }
    }

    #[test]
    fn text_is_one_row_or_a_clear_reject() {
        let mut d = TextDecoder::new("docs/a.txt", 100);
        let mut out = Decoded::default();
        d.decode("我来到北京清华大学\n".as_bytes(), &mut out)
            .unwrap();
        d.finish(&mut out).unwrap();
        assert_eq!(
            out.batches[0].column(1).as_string::<i32>().value(0),
            "我来到北京清华大学\n"
        );
        let mut d = TextDecoder::new("docs/b.bin", 100);
        let mut out = Decoded::default();
        d.decode(b"\xff\xfe", &mut out).unwrap();
        d.finish(&mut out).unwrap();
        assert!(out.rejects[0].reason.contains("not UTF-8"));
        let mut d = TextDecoder::new("docs/c.txt", 10);
        let mut out = Decoded::default();
        d.decode(&[b'a'; 50], &mut out).unwrap();
        d.finish(&mut out).unwrap();
        assert!(out.rejects[0].reason.contains("50 bytes"));
    }
}
