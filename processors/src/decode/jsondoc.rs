//! JSON documents that hold an array of records at a path (`records = "Records"`), as CloudTrail
//! writes them: `{"Records":[{…},{…}]}`. Several documents may follow one another (concatenated,
//! as Firehose writes), and documents may be pretty-printed.
//!
//! The document is never held whole: a byte-level scanner tracks where it is, and each element of
//! the records array is cut out (newlines outside strings dropped) and decoded like one NDJSON
//! line, so declared schemas, inference and rejects behave exactly as for NDJSON. Reject positions
//! count records. An element longer than `max_line_bytes` is rejected without being held whole; a
//! document that ends inside a record rejects that record; a document with no array at the path is
//! an error naming the path.

use arrow_schema::SchemaRef;

use super::ndjson::{NdjsonDecoder, NdjsonDecoderBuilder};
use super::{Decoded, Decoder};
use crate::{Error, Reject};

/// Where a byte of a JSON stream falls relative to strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrByte {
    /// Not in a string.
    Outside,
    /// The opening quote.
    Open,
    /// Inside a string; `escaped` when a backslash precedes it.
    Inside {
        /// The byte is escaped.
        escaped: bool,
    },
    /// The closing quote.
    Close,
}

/// Tracks strings (and their escapes) across a JSON byte stream fed one byte at a time, for the
/// scanners that only need to know structure.
#[derive(Debug, Default)]
pub(crate) struct JsonStrings {
    in_str: bool,
    esc: bool,
}

impl JsonStrings {
    /// Classify the next byte.
    pub(crate) fn step(&mut self, c: u8) -> StrByte {
        if !self.in_str {
            if c == b'"' {
                self.in_str = true;
                return StrByte::Open;
            }
            return StrByte::Outside;
        }
        if self.esc {
            self.esc = false;
            return StrByte::Inside { escaped: true };
        }
        match c {
            b'\\' => {
                self.esc = true;
                StrByte::Inside { escaped: false }
            }
            b'"' => {
                self.in_str = false;
                StrByte::Close
            }
            _ => StrByte::Inside { escaped: false },
        }
    }

    /// True between an opening and a closing quote.
    pub(crate) fn inside(&self) -> bool {
        self.in_str
    }
}

struct Frame {
    is_obj: bool,
    /// The key whose value is being read (objects).
    key: Option<String>,
    /// This frame's path from the root matches the target path so far.
    on_path: bool,
}

/// Streaming decoder for record arrays inside JSON documents.
pub struct JsonRecordsDecoder {
    path: Vec<String>,
    inner: NdjsonDecoder,
    max: usize,
    stack: Vec<Frame>,
    strings: JsonStrings,
    /// The string being read is an object key.
    str_is_key: bool,
    key_buf: Vec<u8>,
    expect_key: bool,
    /// Depth of the records array while inside it.
    target: Option<usize>,
    found: bool,
    capture: Vec<u8>,
    capturing: bool,
    oversized: usize,
    record_no: u64,
    /// Depth at which a captured scalar started.
    scalar: bool,
}

impl std::fmt::Debug for JsonRecordsDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonRecordsDecoder")
            .field("path", &self.path)
            .finish()
    }
}

impl JsonRecordsDecoder {
    /// Records at `path` (dotted; empty: the document itself is the array), each decoded by an
    /// NDJSON decoder built from `inner`.
    pub fn new(path: &str, inner: NdjsonDecoderBuilder, max_record_bytes: usize) -> Self {
        let path: Vec<String> = path
            .split('.')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        Self {
            path,
            inner: inner.with_max_line_bytes(usize::MAX / 2).build(),
            max: max_record_bytes.max(1),
            stack: Vec::new(),
            strings: JsonStrings::default(),
            str_is_key: false,
            key_buf: Vec::new(),
            expect_key: false,
            target: None,
            found: false,
            capture: Vec::new(),
            capturing: false,
            oversized: 0,
            record_no: 0,
            scalar: false,
        }
    }

    /// Does a new container at the current position sit at the target path?
    fn child_on_path(&self) -> (bool, bool) {
        // (on the path so far, is exactly the target)
        let parent_on = self.stack.last().is_none_or(|f| f.on_path);
        if !parent_on {
            return (false, false);
        }
        let depth_keys = self.stack.iter().filter(|f| f.is_obj).count();
        let key_ok = match self.stack.last() {
            None => true,
            Some(f) if f.is_obj => {
                let i = depth_keys - 1;
                i < self.path.len() && f.key.as_deref() == Some(self.path[i].as_str())
            }
            Some(_) => false,
        };
        let keys_so_far = if self.stack.is_empty() { 0 } else { depth_keys };
        (key_ok, key_ok && keys_so_far == self.path.len())
    }

    fn end_capture(&mut self, out: &mut Decoded) -> Result<(), Error> {
        self.capturing = false;
        self.scalar = false;
        self.record_no += 1;
        if self.oversized > 0 {
            let len = std::mem::take(&mut self.oversized);
            out.rejects.push(Reject::new(
                self.record_no,
                format!(
                    "record is {len} bytes, longer than max_line_bytes ({})",
                    self.max
                ),
                &self.capture,
            ));
            self.capture.clear();
            return Ok(());
        }
        self.capture.push(b'\n');
        let mut inner = Decoded::default();
        self.inner.decode(&self.capture, &mut inner)?;
        self.capture.clear();
        // The inner decoder reads one line per record, so its line numbers are record numbers and
        // its origins each record's text (without the newlines between its tokens).
        for (b, origins) in inner.take_batches() {
            out.emit(b, origins);
        }
        for mut r in inner.rejects {
            r.position = self.record_no;
            out.rejects.push(r);
        }
        Ok(())
    }

    fn push_byte(&mut self, c: u8) {
        if self.oversized > 0 {
            self.oversized += 1;
            return;
        }
        if self.capture.len() >= self.max {
            self.oversized = self.capture.len() + 1;
            self.capture.truncate(crate::REJECT_RAW_BYTES);
            return;
        }
        self.capture.push(c);
    }
}

impl Decoder for JsonRecordsDecoder {
    fn decode(&mut self, buf: &[u8], out: &mut Decoded) -> Result<(), Error> {
        for &c in buf {
            let in_target = self.target == Some(self.stack.len());
            match self.strings.step(c) {
                StrByte::Inside { escaped } => {
                    if self.capturing {
                        self.push_byte(c);
                    }
                    if self.str_is_key && !escaped && c != b'\\' && self.key_buf.len() < 1024 {
                        self.key_buf.push(c);
                    }
                    continue;
                }
                StrByte::Close => {
                    if self.capturing {
                        self.push_byte(c);
                    }
                    if self.str_is_key {
                        if let Some(f) = self.stack.last_mut() {
                            f.key = Some(String::from_utf8_lossy(&self.key_buf).into_owned());
                        }
                        self.key_buf.clear();
                    }
                    continue;
                }
                StrByte::Open | StrByte::Outside => {}
            }
            // Outside strings.
            if self.capturing
                && self.scalar
                && matches!(c, b',' | b']' | b' ' | b'\t' | b'\r' | b'\n')
            {
                self.end_capture(out)?;
            }
            if in_target
                && !self.capturing
                && !matches!(c, b',' | b']' | b' ' | b'\t' | b'\r' | b'\n')
            {
                self.capturing = true;
                self.scalar = !matches!(c, b'{' | b'[' | b'"');
            }
            if self.capturing && !matches!(c, b'\r' | b'\n') {
                self.push_byte(c);
            }
            match c {
                b'"' => {
                    self.str_is_key =
                        self.stack.last().is_some_and(|f| f.is_obj) && self.expect_key;
                    if self.capturing && self.stack.len() == self.target.unwrap_or(usize::MAX) {
                        self.scalar = true;
                    }
                }
                b'{' | b'[' => {
                    let (on_path, exact) = self.child_on_path();
                    let is_obj = c == b'{';
                    self.stack.push(Frame {
                        is_obj,
                        key: None,
                        on_path: on_path && !(exact && is_obj),
                    });
                    self.expect_key = is_obj;
                    if exact && !is_obj && self.target.is_none() && !self.capturing {
                        self.target = Some(self.stack.len());
                        self.found = true;
                    }
                }
                b'}' | b']' => {
                    let closing_target = self.target == Some(self.stack.len()) && c == b']';
                    self.stack.pop();
                    if closing_target {
                        self.target = None;
                    }
                    if self.capturing && self.target == Some(self.stack.len()) && !self.scalar {
                        self.end_capture(out)?;
                    }
                    self.expect_key = false;
                }
                b':' => self.expect_key = false,
                b',' => self.expect_key = self.stack.last().is_some_and(|f| f.is_obj),
                _ => {}
            }
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Decoded) -> Result<(), Error> {
        if self.capturing {
            if self.scalar && !self.strings.inside() {
                self.end_capture(out)?;
            } else {
                self.record_no += 1;
                out.rejects.push(Reject::new(
                    self.record_no,
                    "the document ends inside this record (truncated?)",
                    &self.capture,
                ));
                self.capturing = false;
            }
        }
        if !self.found {
            return Err(Error::Decode(format!(
                "no array at `{}` in the document; set [input] records to the path of the records array",
                if self.path.is_empty() {
                    "(top level)".to_string()
                } else {
                    self.path.join(".")
                }
            )));
        }
        self.inner.finish(out)
    }

    fn keep_origins(&mut self, keep: bool) {
        self.inner.keep_origins(keep);
    }

    fn schema(&self) -> Option<SchemaRef> {
        self.inner.schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;

    fn run(path: &str, text: &[u8], chunk: usize) -> (Vec<String>, Vec<Reject>) {
        let schema = crate::decode::schema_from_types([
            ("eventName", "string"),
            ("userIdentity.arn", "string"),
        ])
        .unwrap();
        let mut d =
            JsonRecordsDecoder::new(path, NdjsonDecoder::builder().with_schema(schema), 1000);
        let mut out = Decoded::default();
        for c in text.chunks(chunk) {
            d.decode(c, &mut out).unwrap();
        }
        d.finish(&mut out).unwrap();
        let mut names = Vec::new();
        for b in &out.batches {
            let n = b.column(0).as_string::<i32>();
            let arn = b.column(1).as_struct().column(0).as_string::<i32>();
            for i in 0..b.num_rows() {
                names.push(format!("{}|{}", n.value(i), arn.value(i)));
            }
        }
        (names, out.rejects)
    }

    #[test]
    fn records_at_a_path_in_any_chunking() {
        let doc = br#"{"Other":[{"eventName":"no"}],"Records":[
  {"eventName":"A","userIdentity":{"arn":"arn:1","x":{"Records":[1]}},"requestParameters":{"Records":"]"}},
  {"eventName":"B \"q\" ]}","userIdentity":{"arn":"arn:2"}},
  {"eventName":5},
  7
 ],"Tail":{"Records":[{"eventName":"no"}]}}
{"Records":[{"eventName":"C","userIdentity":{"arn":"arn:3"}}]}"#;
        for chunk in [1, 3, 7, 64, 4096] {
            let (names, rejects) = run("Records", doc, chunk);
            // A number where a string is declared is kept as its text, as in NDJSON.
            assert_eq!(
                names,
                ["A|arn:1", "B \"q\" ]}|arn:2", "5|", "C|arn:3"],
                "chunk {chunk}"
            );
            let pos: Vec<u64> = rejects.iter().map(|r| r.position).collect();
            assert_eq!(pos, vec![4], "chunk {chunk}: {rejects:?}");
            assert!(
                rejects[0].reason.contains("expected a JSON object"),
                "{}",
                rejects[0].reason
            );
        }
    }

    #[test]
    fn truncated_documents_and_missing_paths() {
        let (names, rejects) = run(
            "Records",
            br#"{"Records":[{"eventName":"A","userIdentity":{"arn":"x"}},{"eventName":"B","user"#,
            5,
        );
        assert_eq!(names, vec!["A|x"]);
        assert_eq!(rejects.len(), 1);
        assert!(rejects[0].reason.contains("truncated"));
        let schema = crate::decode::schema_from_types([("a", "string")]).unwrap();
        let mut d = JsonRecordsDecoder::new(
            "Records",
            NdjsonDecoder::builder().with_schema(schema),
            1000,
        );
        let mut out = Decoded::default();
        d.decode(br#"{"records":[]}"#, &mut out).unwrap();
        assert!(
            d.finish(&mut out)
                .unwrap_err()
                .to_string()
                .contains("no array at `Records`")
        );
        let (names, _) = run("", br#"[{"eventName":"T","userIdentity":{"arn":"t"}}]"#, 2);
        assert_eq!(names, vec!["T|t"]);
    }
}
