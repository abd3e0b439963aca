//! Newline-delimited JSON: one JSON object per line.
//!
//! Lines are gathered into blocks of `batch_rows` and decoded by `arrow-json` in one pass. When a
//! block holds a bad line (invalid JSON, not an object, a value that does not fit the schema), the
//! block is decoded again line by line so that exactly the bad lines become rejects — with their line
//! number and arrow-json's reason — and every good line goes on. Blank lines are skipped; `\r\n`
//! endings are accepted; a line longer than `max_line_bytes` is rejected without being buffered whole.
//!
//! Without a declared schema, the schema is inferred from the first block: JSON types map to int64,
//! float64, bool, string, lists and structs, and strings that all look like RFC 3339 timestamps (or
//! dates) become timestamps (or dates).
//!
//! # Example
//!
//! ```
//! use sluice_processors::decode::{Decoded, Decoder, ndjson::NdjsonDecoder};
//!
//! let mut d = NdjsonDecoder::builder().build();
//! let mut out = Decoded::default();
//! d.decode(b"{\"page\":\"/\",\"ms\":12}\n{broken\n{\"page\":\"/a\",", &mut out)?;
//! d.decode(b"\"ms\":7}\n", &mut out)?;
//! d.finish(&mut out)?;
//! assert_eq!(out.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
//! assert_eq!(out.rejects[0].position, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_json::reader::{Decoder as JsonDecoder, ReaderBuilder, infer_json_schema_from_iterator};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::fastjson::FastDecoder;
use super::lines::{Line, LineBuffer, LineSink, feed_lines, finish_lines};
use super::{Decoded, Decoder, Origins};
use crate::{DEFAULT_BATCH_ROWS, Error, Reject};

/// Lines longer than this are rejected unless configured otherwise (4 MiB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 4 << 20;

/// Most columns (nested fields counted one by one) a schema is inferred with, unless configured
/// otherwise. Each column's builders hold a batch of rows: 30 000 inferred columns took 1.2 GB.
pub const DEFAULT_MAX_INFERRED_COLUMNS: usize = 1000;

/// Settings for [`NdjsonDecoder`].
#[derive(Debug, Clone)]
pub struct NdjsonDecoderBuilder {
    schema: Option<SchemaRef>,
    batch_rows: usize,
    max_line_bytes: usize,
    max_columns: usize,
}

impl NdjsonDecoderBuilder {
    /// Decode into `schema` instead of inferring one. Fields absent from it are ignored.
    pub fn with_schema(mut self, schema: SchemaRef) -> Self {
        self.schema = Some(schema);
        self
    }
    /// Rows per emitted batch (default 8 192).
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }
    /// Longest accepted line in bytes (default 4 MiB).
    pub fn with_max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes.max(1);
        self
    }
    /// Most columns a schema is inferred with (default [`DEFAULT_MAX_INFERRED_COLUMNS`]): a line
    /// with more fields is a reject, and more among the lines inferred from fails the object.
    pub fn with_max_inferred_columns(mut self, columns: usize) -> Self {
        self.max_columns = columns.max(1);
        self
    }
    /// The decoder.
    pub fn build(self) -> NdjsonDecoder {
        NdjsonDecoder {
            fast: self
                .schema
                .as_ref()
                .and_then(|s| FastDecoder::new(s, self.batch_rows)),
            schema: self.schema,
            batch_rows: self.batch_rows,
            inner: None,
            block: Vec::new(),
            lines: Vec::new(),
            lines_in: LineBuffer::new(self.max_line_bytes),
            max_columns: self.max_columns,
            origins: Origins::default(),
        }
    }
}

/// Streaming NDJSON decoder with per-line rejects.
pub struct NdjsonDecoder {
    schema: Option<SchemaRef>,
    /// The direct-to-builders parser, when the schema is known and its types are ones it handles.
    fast: Option<FastDecoder>,
    batch_rows: usize,
    inner: Option<JsonDecoder>,
    /// Complete lines of the current block, each followed by `\n`.
    block: Vec<u8>,
    /// (line number, start, end) of each line in `block`.
    lines: Vec<(u64, usize, usize)>,
    /// Splits the input into lines.
    lines_in: LineBuffer,
    /// Most columns inferred.
    max_columns: usize,
    /// The line of each row decoded since the last batch was emitted.
    origins: Origins,
}

impl std::fmt::Debug for NdjsonDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NdjsonDecoder")
            .field("schema", &self.schema)
            .finish()
    }
}

impl NdjsonDecoder {
    /// Start configuring a decoder.
    pub fn builder() -> NdjsonDecoderBuilder {
        NdjsonDecoderBuilder {
            schema: None,
            batch_rows: DEFAULT_BATCH_ROWS,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_columns: DEFAULT_MAX_INFERRED_COLUMNS,
        }
    }

    fn json_decoder(&self, schema: &SchemaRef) -> Result<JsonDecoder, Error> {
        ReaderBuilder::new(schema.clone())
            .with_batch_size(self.batch_rows)
            .with_coerce_primitive(true)
            .build_decoder()
            .map_err(|e| Error::arrow("building the NDJSON decoder", e))
    }

    fn end_line(&mut self, line_no: u64, line: &[u8], out: &mut Decoded) -> Result<(), Error> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        if let Some(fast) = self.fast.as_mut() {
            if let Err(e) = fast.push_line(line) {
                out.rejects.push(Reject::new(line_no, e.to_string(), line));
            } else {
                self.origins.push(line_no, line);
                if fast.len() >= self.batch_rows {
                    Self::flush_fast(fast, &mut self.origins, out)?;
                }
            }
            return Ok(());
        }
        let start = self.block.len();
        self.block.extend_from_slice(line);
        self.lines.push((line_no, start, self.block.len()));
        self.block.push(b'\n');
        if self.lines.len() >= self.batch_rows {
            self.flush_block(out)?;
        }
        Ok(())
    }

    fn flush_block(&mut self, out: &mut Decoded) -> Result<(), Error> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let schema = match &self.schema {
            Some(s) => s.clone(),
            None => match self.infer(out)? {
                Some(s) => {
                    self.schema = Some(s.clone());
                    self.fast = FastDecoder::new(&s, self.batch_rows);
                    if let Some(fast) = self.fast.as_mut() {
                        for &(no, st, e) in &self.lines {
                            let line = &self.block[st..e];
                            if let Err(err) = fast.push_line(line) {
                                out.rejects.push(Reject::new(no, err.to_string(), line));
                            } else {
                                self.origins.push(no, line);
                            }
                        }
                        Self::flush_fast(fast, &mut self.origins, out)?;
                        self.block.clear();
                        self.lines.clear();
                        return Ok(());
                    }
                    s
                }
                None => {
                    // Nothing in this block is a JSON object: every line is a reject.
                    for &(no, s, e) in &self.lines {
                        out.rejects.push(Reject::new(
                            no,
                            json_reason(&self.block[s..e]),
                            &self.block[s..e],
                        ));
                    }
                    self.block.clear();
                    self.lines.clear();
                    return Ok(());
                }
            },
        };
        // arrow-json reads 2.5 into an integer column as 2: lines like that go the slow way,
        // where they are rejects (as the fast decoder makes them).
        let truncates = integers(schema.fields())
            && self
                .lines
                .iter()
                .any(|&(_, s, e)| integer_mismatch(&schema, &self.block[s..e]).is_some());
        let fast = if truncates {
            Ok(None)
        } else {
            self.decode_block(&schema)
        };
        match fast {
            Ok(Some(batch)) if batch.num_rows() == self.lines.len() => {
                let mut origins = self.origins.like();
                for &(no, s, e) in &self.lines {
                    origins.push(no, &self.block[s..e]);
                }
                out.emit(batch, Some(origins));
            }
            _ => {
                self.inner = None;
                self.decode_lines(&schema, out)?;
            }
        }
        self.block.clear();
        self.lines.clear();
        Ok(())
    }

    fn flush_fast(
        fast: &mut FastDecoder,
        origins: &mut Origins,
        out: &mut Decoded,
    ) -> Result<(), Error> {
        if let Some(b) = fast.flush().map_err(|e| Error::arrow("ndjson", e))? {
            out.emit(b, Some(origins.take()));
        }
        origins.clear();
        Ok(())
    }

    fn decode_block(&mut self, schema: &SchemaRef) -> Result<Option<RecordBatch>, Error> {
        if self.inner.is_none() {
            self.inner = Some(self.json_decoder(schema)?);
        }
        let Some(dec) = self.inner.as_mut() else {
            return Ok(None);
        };
        let n = dec
            .decode(&self.block)
            .map_err(|e| Error::arrow("ndjson", e))?;
        if n != self.block.len() {
            return Ok(None);
        }
        dec.flush().map_err(|e| Error::arrow("ndjson", e))
    }

    /// The slow path: one line at a time, so each bad line is found and rejected.
    fn decode_lines(&mut self, schema: &SchemaRef, out: &mut Decoded) -> Result<(), Error> {
        let mut good = Vec::new();
        let mut origins = self.origins.like();
        let mut dec = self.json_decoder(schema)?;
        let check = integers(schema.fields());
        for &(no, s, e) in &self.lines {
            let line = &self.block[s..e];
            if let Some(why) = check.then(|| integer_mismatch(schema, line)).flatten() {
                out.rejects.push(Reject::new(
                    no,
                    format!("does not fit the schema: {why}"),
                    line,
                ));
                continue;
            }
            let res = dec.decode(line).and_then(|n| {
                if n != line.len() {
                    return Err(arrow_schema::ArrowError::JsonError(
                        "more than one JSON value on the line".into(),
                    ));
                }
                dec.flush()
            });
            match res {
                Ok(Some(b)) if b.num_rows() == 1 => {
                    origins.push(no, line);
                    good.push(b);
                }
                Ok(Some(b)) => {
                    out.rejects.push(Reject::new(
                        no,
                        format!(
                            "expected one JSON object on the line, found {}",
                            b.num_rows()
                        ),
                        line,
                    ));
                }
                Ok(None) => {
                    out.rejects
                        .push(Reject::new(no, "the line holds no JSON object", line))
                }
                Err(err) => {
                    out.rejects
                        .push(Reject::new(no, clean_reason(&err.to_string(), line), line));
                    dec = self.json_decoder(schema)?;
                }
            }
        }
        if !good.is_empty() {
            let batch = arrow_select::concat::concat_batches(schema, &good)
                .map_err(|e| Error::arrow("ndjson", e))?;
            out.emit(batch, Some(origins));
        }
        Ok(())
    }

    /// Infer a schema from the objects in the current block; `None` if it holds none. A line
    /// with more fields than the column limit is a reject (and leaves the block); more columns
    /// than the limit among the rest is an error that says to declare the schema.
    fn infer(&mut self, out: &mut Decoded) -> Result<Option<SchemaRef>, Error> {
        let max = self.max_columns;
        let mut values: Vec<serde_json::Value> = Vec::new();
        let mut wide = Vec::new();
        for (i, &(no, s, e)) in self.lines.iter().enumerate() {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&self.block[s..e]) else {
                continue;
            };
            if !v.is_object() {
                continue;
            }
            let n = leaves(&v);
            if n > max {
                out.rejects.push(Reject::new(
                    no,
                    format!(
                        "has {n} fields, more than [input] max_inferred_columns ({max}) allows when \
                         the schema is inferred; declare [input] schema with the columns the pipeline reads"
                    ),
                    &self.block[s..e],
                ));
                wide.push(i);
                continue;
            }
            values.push(v);
        }
        if !wide.is_empty() {
            let mut i = 0;
            self.lines.retain(|_| {
                i += 1;
                !wide.contains(&(i - 1))
            });
        }
        if values.is_empty() {
            return Ok(None);
        }
        let Ok(schema) = infer_json_schema_from_iterator(values.iter().map(|v| Ok(v.clone())))
        else {
            return Ok(None);
        };
        let columns = schema_leaves(&schema.fields);
        if columns > max {
            return Err(Error::Schema(format!(
                "the first records hold {columns} different fields, more than [input] max_inferred_columns \
                 ({max}) allows when the schema is inferred; declare [input] schema with the columns the \
                 pipeline reads (only those are decoded)"
            )));
        }
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| {
                if f.data_type() == &DataType::Utf8
                    && let Some(dt) = temporal_type(values.iter().filter_map(|v| v.get(f.name())))
                {
                    return Field::new(f.name(), dt, true);
                }
                f.as_ref().clone().with_nullable(true)
            })
            .collect();
        Ok(Some(Arc::new(Schema::new(fields))))
    }
}

/// About the columns a JSON value makes (an object's fields, nested ones counted one by one; an
/// array as its first element, as a list is one column of its items), by a loop: the value may
/// be as deep as the parser allows.
fn leaves(v: &serde_json::Value) -> usize {
    let mut n = 0;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Object(m) if !m.is_empty() => stack.extend(m.values()),
            serde_json::Value::Array(a) if !a.is_empty() => stack.extend(a.first()),
            _ => n += 1,
        }
    }
    n
}

/// The leaf columns of a schema (a struct's fields one by one).
fn schema_leaves(fields: &arrow_schema::Fields) -> usize {
    let mut n = 0;
    let mut stack: Vec<&arrow_schema::Field> = fields.iter().map(|f| f.as_ref()).collect();
    while let Some(f) = stack.pop() {
        match f.data_type() {
            DataType::Struct(children) if !children.is_empty() => {
                stack.extend(children.iter().map(|c| c.as_ref()))
            }
            DataType::List(item) | DataType::LargeList(item) => stack.push(item.as_ref()),
            _ => n += 1,
        }
    }
    n
}

/// `Timestamp` when every non-null string looks like an RFC 3339 timestamp, `Date32` for dates.
fn temporal_type<'a>(values: impl Iterator<Item = &'a serde_json::Value>) -> Option<DataType> {
    let mut kind = None;
    for v in values {
        let Some(s) = v.as_str() else {
            if v.is_null() {
                continue;
            }
            return None;
        };
        let this = if s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() {
            DataType::Date32
        } else if s.len() >= 19
            && s.as_bytes()
                .get(10)
                .is_some_and(|c| *c == b'T' || *c == b' ')
            && crate::expr::parse_timestamp(s).is_some()
        {
            crate::expr::timestamp_type()
        } else {
            return None;
        };
        match &kind {
            None => kind = Some(this),
            Some(k) if *k == this => {}
            Some(_) => return None,
        }
    }
    kind
}

fn json_reason(line: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(line) {
        Err(e) => format!("invalid JSON: {e}"),
        Ok(v) if !v.is_object() => "expected a JSON object, found another JSON value".to_string(),
        Ok(_) => "could not decode the object".to_string(),
    }
}

fn clean_reason(msg: &str, line: &[u8]) -> String {
    let msg = msg.strip_prefix("Json error: ").unwrap_or(msg);
    if msg.contains("whilst decoding field")
        || msg.contains("failed to parse")
        || msg.contains("more than one")
    {
        format!("does not fit the schema: {msg}")
    } else if std::str::from_utf8(line).is_err() {
        "the line is not valid UTF-8".to_string()
    } else {
        json_reason(line)
    }
}

/// Whether `fields` (nested ones too) hold an integer column.
fn integers(fields: &arrow_schema::Fields) -> bool {
    fields.iter().any(|f| integer_type(f.data_type()))
}

fn integer_type(t: &DataType) -> bool {
    match t {
        DataType::Struct(f) => integers(f),
        DataType::List(f) | DataType::LargeList(f) => integer_type(f.data_type()),
        t => t.is_integer(),
    }
}

/// A number in `line` that an integer column of `schema` would take with its fraction cut off
/// (arrow-json reads 2.5 into an int64 column as 2): what the fast decoder says of it.
fn integer_mismatch(schema: &Schema, line: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    fields_mismatch(schema.fields(), &v, "")
}

fn fields_mismatch(
    fields: &arrow_schema::Fields,
    v: &serde_json::Value,
    path: &str,
) -> Option<String> {
    let o = v.as_object()?;
    fields.iter().find_map(|f| {
        let here = if path.is_empty() {
            f.name().clone()
        } else {
            format!("{path}.{}", f.name())
        };
        value_mismatch(f.data_type(), o.get(f.name())?, &here)
    })
}

fn value_mismatch(t: &DataType, v: &serde_json::Value, path: &str) -> Option<String> {
    match t {
        DataType::Struct(f) => fields_mismatch(f, v, path),
        DataType::List(f) | DataType::LargeList(f) => v
            .as_array()?
            .iter()
            .find_map(|e| value_mismatch(f.data_type(), e, path)),
        t if t.is_integer() => match v {
            // 2.0 and 3e2 are integers (as the fast decoder takes them); 2.5 is not.
            serde_json::Value::Number(n) if n.is_f64() => {
                let f = n.as_f64()?;
                (f.fract() != 0.0 || f.abs() >= 9.2e18)
                    .then(|| format!("field '{path}' expects an integer, found {n}"))
            }
            _ => None,
        },
        _ => None,
    }
}

impl Decoder for NdjsonDecoder {
    fn decode(&mut self, buf: &[u8], out: &mut Decoded) -> Result<(), Error> {
        feed_lines(self, buf, out)
    }

    fn finish(&mut self, out: &mut Decoded) -> Result<(), Error> {
        finish_lines(self, out)?;
        self.flush(out)
    }

    fn flush(&mut self, out: &mut Decoded) -> Result<(), Error> {
        self.flush_block(out)?;
        if let Some(fast) = self.fast.as_mut() {
            Self::flush_fast(fast, &mut self.origins, out)?;
        }
        Ok(())
    }

    fn keep_origins(&mut self, keep: bool) {
        self.origins.keep(keep);
    }

    fn schema(&self) -> Option<SchemaRef> {
        self.schema.clone()
    }
}

impl LineSink for NdjsonDecoder {
    fn line_buffer(&mut self) -> &mut LineBuffer {
        &mut self.lines_in
    }

    fn on_line(&mut self, line: Line<'_>, out: &mut Decoded) -> Result<(), Error> {
        match line {
            Line::Text(no, text) => self.end_line(no, text, out),
            Line::TooLong(no, len, max, head) => {
                out.rejects.push(Reject::new(
                    no,
                    format!("line is {len} bytes, longer than max_line_bytes ({})", max),
                    head,
                ));
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;

    fn run(d: &mut NdjsonDecoder, chunks: &[&[u8]]) -> Decoded {
        let mut out = Decoded::default();
        for c in chunks {
            d.decode(c, &mut out).unwrap();
        }
        d.finish(&mut out).unwrap();
        out
    }

    fn schema() -> SchemaRef {
        crate::decode::schema_from_types([("page", "string"), ("ms", "int64"), ("ts", "timestamp")])
            .unwrap()
    }

    #[test]
    fn bad_lines_become_rejects_and_good_lines_go_on() {
        let input = b"{\"page\":\"/\",\"ms\":1,\"ts\":\"2026-11-22T10:00:00Z\"}\n\
{\"page\":\"/a\",\"ms\":\"slow\"}\n\
not json\n\
\n\
[1,2]\n\
{\"page\":\"/b\",\"ms\":3} {\"page\":\"/c\"}\n\
{\"page\":\"/d\",\"ms\":4}\r\n\
{\"page\":\"/e\",\"ms\":5}";
        let mut d = NdjsonDecoder::builder()
            .with_schema(schema())
            .with_batch_rows(3)
            .build();
        let out = run(&mut d, &[&input[..50], &input[50..51], &input[51..]]);
        let rows: usize = out.batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 3, "{:?}", out.rejects);
        let ms: Vec<i64> = out
            .batches
            .iter()
            .flat_map(|b| b.column(1).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(ms, vec![1, 4, 5]);
        let pos: Vec<u64> = out.rejects.iter().map(|r| r.position).collect();
        assert_eq!(pos, vec![2, 3, 5, 6]);
        assert!(
            out.rejects[0].reason.contains("does not fit the schema"),
            "{}",
            out.rejects[0].reason
        );
        assert!(
            out.rejects[0].reason.contains("ms"),
            "{}",
            out.rejects[0].reason
        );
        assert!(
            out.rejects[1].reason.starts_with("invalid JSON"),
            "{}",
            out.rejects[1].reason
        );
        assert_eq!(out.rejects[1].raw, b"not json");
    }

    /// Issue 27: with no schema, one line of 30 000 keys made 30 000 columns of builders
    /// (1.2 GB). A line wider than the limit is a reject; the other lines go on. Many lines whose
    /// fields differ, together past the limit, fail the object with a message to declare a
    /// schema; with a schema, only its columns are decoded, however wide the lines.
    #[test]
    fn inferred_columns_are_capped() {
        let wide: String = (0..30_000)
            .map(|i| format!("\"k{i}\":{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let input = format!("{{\"a\":1}}\n{{{wide}}}\n{{\"a\":2,\"b\":{{\"c\":[{{\"d\":1}}]}}}}\n");
        let mut d = NdjsonDecoder::builder().build();
        let out = run(&mut d, &[input.as_bytes()]);
        assert_eq!(out.rejects.len(), 1);
        assert_eq!(out.rejects[0].position, 2);
        assert!(
            out.rejects[0]
                .reason
                .starts_with("has 30000 fields, more than [input] max_inferred_columns (1000)"),
            "{}",
            out.rejects[0].reason
        );
        let rows: usize = out.batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 2);
        assert_eq!(out.batches[0].num_columns(), 2);
        // 200 lines of 10 fields each, all different: 2 000 columns together.
        let many: String = (0..200)
            .map(|l| {
                let fields: Vec<String> = (0..10).map(|f| format!("\"f{l}_{f}\":1")).collect();
                format!("{{{}}}\n", fields.join(","))
            })
            .collect();
        let mut d = NdjsonDecoder::builder().build();
        let mut out = Decoded::default();
        let e = d
            .decode(many.as_bytes(), &mut out)
            .and_then(|()| d.finish(&mut out))
            .unwrap_err();
        assert!(
            e.to_string().starts_with("the first records hold 2000 different fields, more than [input] max_inferred_columns (1000)")
                && e.to_string().contains("declare [input] schema"),
            "{e}"
        );
        // Declared: the wide line is read for its one declared column.
        let declared = crate::decode::schema_from_types([("k7", "int64")]).unwrap();
        let mut d = NdjsonDecoder::builder().with_schema(declared).build();
        let out = run(&mut d, &[input.as_bytes()]);
        let rows: usize = out.batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!((rows, out.rejects.len()), (3, 0));
    }

    #[test]
    fn infers_types_including_timestamps() {
        let mut d = NdjsonDecoder::builder().build();
        let out = run(
            &mut d,
            &[b"{\"a\":1,\"b\":\"x\",\"t\":\"2026-11-22T10:00:00.5Z\",\"d\":\"2026-11-22\",\"g\":{\"lat\":1.5},\"f\":1.5}\n{\"a\":null,\"f\":2}\n"],
        );
        let s = d.schema().unwrap();
        let types: Vec<String> = s
            .fields()
            .iter()
            .map(|f| crate::expr::type_name(f.data_type()))
            .collect();
        let names: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
        let by_name: std::collections::HashMap<_, _> = names.into_iter().zip(types).collect();
        assert_eq!(by_name["a"], "int64");
        assert_eq!(by_name["b"], "string");
        assert_eq!(by_name["t"], "timestamp");
        assert_eq!(by_name["d"], "date");
        assert_eq!(by_name["g"], "struct");
        assert_eq!(by_name["f"], "float64");
        assert_eq!(out.batches[0].num_rows(), 2);
    }

    #[test]
    fn oversized_lines_are_rejected_without_buffering() {
        let mut d = NdjsonDecoder::builder()
            .with_schema(schema())
            .with_max_line_bytes(100)
            .build();
        let big = vec![b'x'; 10_000];
        let out = run(
            &mut d,
            &[
                b"{\"ms\":1}\n{\"page\":\"",
                &big,
                &big,
                b"\"}\n{\"ms\":2}\n",
                &big,
            ],
        );
        assert_eq!(out.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
        assert_eq!(out.rejects.len(), 2);
        assert_eq!(out.rejects[0].position, 2);
        assert!(
            out.rejects[0].reason.contains("20011 bytes"),
            "{}",
            out.rejects[0].reason
        );
        assert_eq!(out.rejects[0].raw.len(), crate::REJECT_RAW_BYTES);
        // Regression: the limit in the reason once read 0 (the splitter was moved out while it ran).
        assert!(
            out.rejects[0]
                .reason
                .ends_with("longer than max_line_bytes (100)"),
            "{}",
            out.rejects[0].reason
        );
        assert_eq!(out.rejects[1].position, 4);
        assert!(d.lines_in.held() <= 100 + crate::REJECT_RAW_BYTES + 16_384);
    }

    #[test]
    fn invalid_utf8_is_a_reject() {
        let mut d = NdjsonDecoder::builder().with_schema(schema()).build();
        let out = run(&mut d, &[b"{\"page\":\"\xff\xfe\"}\n{\"ms\":2}\n"]);
        assert_eq!(out.batches[0].num_rows(), 1);
        assert_eq!(out.rejects.len(), 1);
        assert_eq!(out.rejects[0].position, 1);
    }

    #[test]
    fn schemas_with_lists_use_arrow_json_with_the_same_rejects() {
        // Lists are not handled by the direct parser; arrow-json decodes them, line by line on errors.
        let mut d = NdjsonDecoder::builder().with_batch_rows(2).build();
        let out = run(&mut d, &[b"{\"tags\":[\"a\",\"b\"],\"n\":1}\n{\"tags\":[],\"n\":3}\n{\"tags\":[\"c\"],\"n\":\"x\"}\nnope\n"]);
        assert!(matches!(
            d.schema()
                .unwrap()
                .field_with_name("tags")
                .unwrap()
                .data_type(),
            DataType::List(_)
        ));
        assert_eq!(out.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
        let pos: Vec<u64> = out.rejects.iter().map(|r| r.position).collect();
        assert_eq!(pos, vec![3, 4]);
        assert!(
            out.rejects[0].reason.starts_with("does not fit the schema"),
            "{}",
            out.rejects[0].reason
        );
        assert!(
            out.rejects[1].reason.starts_with("invalid JSON"),
            "{}",
            out.rejects[1].reason
        );
    }

    #[test]
    fn no_objects_at_all_rejects_everything() {
        let mut d = NdjsonDecoder::builder().build();
        let out = run(&mut d, &[b"hello\nworld\n"]);
        assert!(out.batches.is_empty());
        assert_eq!(out.rejects.len(), 2);
        assert!(d.schema().is_none());
    }

    /// A float after an integer was inferred, in a schema the fast decoder does not take (a
    /// list column): a reject, as on the fast path — arrow-json alone would read 2.5 as 2.
    #[test]
    fn a_fraction_into_an_inferred_integer_is_a_reject_not_a_truncation() {
        for rows in [1, 100] {
            let mut d = NdjsonDecoder::builder().with_batch_rows(rows).build();
            let mut out = Decoded::default();
            d.decode(b"{\"n\":1,\"tags\":[\"x\"],\"s\":{\"k\":[1]}}\n", &mut out)
                .unwrap();
            d.flush(&mut out).unwrap();
            d.decode(
                b"{\"n\":2.5,\"tags\":[]}\n{\"n\":3.0,\"tags\":[],\"s\":{\"k\":[2,7.5]}}\n{\"n\":4,\"tags\":[]}\n",
                &mut out,
            )
            .unwrap();
            d.finish(&mut out).unwrap();
            let n: Vec<i64> = out
                .batches
                .iter()
                .flat_map(|b| {
                    b.column_by_name("n")
                        .unwrap()
                        .as_primitive::<arrow_array::types::Int64Type>()
                        .values()
                        .to_vec()
                })
                .collect();
            assert_eq!(n, [1, 4], "batch_rows {rows}");
            let reasons: Vec<String> = out.rejects.iter().map(|r| r.reason.clone()).collect();
            assert_eq!(
                reasons,
                [
                    "does not fit the schema: field 'n' expects an integer, found 2.5",
                    "does not fit the schema: field 's.k' expects an integer, found 7.5"
                ],
                "batch_rows {rows}"
            );
        }
    }
}
