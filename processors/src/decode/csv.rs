//! CSV (and TSV, or any one-byte delimiter): RFC 4180 quoting with doubled quotes, CRLF or LF, an
//! optional UTF-8 byte-order mark, with or without a header row.
//!
//! Columns are typed by a declared schema (matched to the header by name, or by position without a
//! header) or inferred from the first `batch_rows` records: a column whose non-empty values all read
//! as integers is int64, then float64, bool, timestamp (ISO 8601 with a time), date, else string.
//! A record with more fields than there are columns, or a value that does not fit its column, is a
//! reject naming it; missing trailing fields are null. Records are parsed by `csv-core` as the bytes
//! arrive, and a record longer than `max_line_bytes` is rejected without being held whole.

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use csv_core::{ReadRecordResult, Reader, ReaderBuilder};

use super::row::RowBuilder;
use super::{Decoded, Decoder, Origins};
use crate::{DEFAULT_BATCH_ROWS, Error, Reject};

/// Settings for [`CsvDecoder`].
#[derive(Debug, Clone)]
pub struct CsvDecoderBuilder {
    schema: Option<SchemaRef>,
    header: bool,
    delimiter: u8,
    batch_rows: usize,
    max_record_bytes: usize,
    max_columns: usize,
}

impl Default for CsvDecoderBuilder {
    fn default() -> Self {
        Self {
            schema: None,
            header: true,
            delimiter: b',',
            batch_rows: DEFAULT_BATCH_ROWS,
            max_record_bytes: super::ndjson::DEFAULT_MAX_LINE_BYTES,
            max_columns: super::ndjson::DEFAULT_MAX_INFERRED_COLUMNS,
        }
    }
}

impl CsvDecoderBuilder {
    /// Type columns by `schema` instead of inferring them.
    pub fn with_schema(mut self, schema: SchemaRef) -> Self {
        self.schema = Some(schema);
        self
    }
    /// Whether the first record names the columns (default true).
    pub fn with_header(mut self, header: bool) -> Self {
        self.header = header;
        self
    }
    /// The field delimiter (default `,`).
    pub fn with_delimiter(mut self, d: u8) -> Self {
        self.delimiter = d;
        self
    }
    /// Rows per batch, and records sampled for inference.
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }
    /// Longest accepted record in bytes.
    pub fn with_max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = bytes.max(1);
        self
    }
    /// Most columns decoded without a declared schema (default
    /// [`super::ndjson::DEFAULT_MAX_INFERRED_COLUMNS`]): a wider header or record fails the
    /// object, before records are held to infer types.
    pub fn with_max_inferred_columns(mut self, columns: usize) -> Self {
        self.max_columns = columns.max(1);
        self
    }
    /// The decoder.
    pub fn build(self) -> CsvDecoder {
        CsvDecoder {
            reader: ReaderBuilder::new().delimiter(self.delimiter).build(),
            out: vec![0; 4096],
            ends: vec![0; 64],
            nout: 0,
            nends: 0,
            skipping: false,
            started: false,
            line: 1,
            record_line: 1,
            at_start: true,
            quotes: 0,
            after_newline: false,
            names: None,
            map: Vec::new(),
            rows: None,
            sample: Vec::new(),
            origins: Origins::default(),
            text: Vec::new(),
            settings: self,
        }
    }
}

/// Streaming CSV decoder.
pub struct CsvDecoder {
    settings: CsvDecoderBuilder,
    reader: Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    nout: usize,
    nends: usize,
    /// The current record is over the limit; its bytes are being dropped.
    skipping: bool,
    started: bool,
    /// Line number of the next byte, and of the current record's start.
    line: u64,
    record_line: u64,
    /// No byte of the next record has been consumed yet.
    at_start: bool,
    /// Quote characters consumed in the current record (odd at the end: an unclosed quote).
    quotes: usize,
    /// The last byte consumed was a line feed (so the current line is `line - 1`'s successor).
    after_newline: bool,
    names: Option<Vec<String>>,
    /// Field position → column.
    map: Vec<Option<usize>>,
    rows: Option<RowBuilder>,
    /// Records held for schema inference: (line, fields, text).
    sample: Vec<(u64, Vec<String>, Vec<u8>)>,
    /// The record of each row since the last batch was emitted.
    origins: Origins,
    /// The current record's text as it came in (its first 4 KiB), quotes and all.
    text: Vec<u8>,
}

impl std::fmt::Debug for CsvDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvDecoder")
            .field("names", &self.names)
            .finish()
    }
}

/// A record's text without the line break that ended it.
fn trim_line_end(mut t: &[u8]) -> &[u8] {
    while let Some(rest) = t.strip_suffix(b"\n").or_else(|| t.strip_suffix(b"\r")) {
        t = rest;
    }
    t
}

/// The fields of a record (`out` with field `ends`), or the index of one that is not UTF-8.
fn split_fields<'a>(out: &'a [u8], ends: &[usize]) -> Result<Vec<&'a str>, usize> {
    let mut start = 0;
    let mut fields = Vec::with_capacity(ends.len());
    for (i, &end) in ends.iter().enumerate() {
        match std::str::from_utf8(&out[start..end]) {
            Ok(s) => fields.push(s),
            Err(_) => return Err(i),
        }
        start = end;
    }
    Ok(fields)
}

fn infer_type(values: &[&str]) -> DataType {
    let vals: Vec<&str> = values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .collect();
    if vals.is_empty() {
        return DataType::Utf8;
    }
    let all = |f: &dyn Fn(&str) -> bool| vals.iter().all(|v| f(v));
    if all(&|v| v.parse::<i64>().is_ok()) {
        DataType::Int64
    } else if all(&|v| v.parse::<f64>().is_ok() && v.bytes().any(|b| b.is_ascii_digit())) {
        DataType::Float64
    } else if all(&|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")) {
        DataType::Boolean
    } else if all(&|v| {
        v.len() >= 19
            && matches!(v.as_bytes()[10], b'T' | b' ')
            && super::fastjson::parse_timestamp_micros(v).is_some()
    }) {
        crate::expr::timestamp_type()
    } else if all(&|v| super::fastjson::parse_date(v).is_some()) {
        DataType::Date32
    } else {
        DataType::Utf8
    }
}

impl CsvDecoder {
    /// The current record as it came in, without its line break (its first 4 KiB).
    fn raw(&self) -> &[u8] {
        trim_line_end(&self.text)
    }

    /// Set up columns once names (or the first record's width) and types are known.
    fn setup(&mut self, width: usize, types: Option<Vec<DataType>>) -> Result<(), Error> {
        let names: Vec<String> = match &self.names {
            Some(n) => n.clone(),
            None => (1..=width).map(|i| format!("column_{i}")).collect(),
        };
        let schema = match &self.settings.schema {
            Some(s) => {
                self.map = if self.settings.header {
                    names.iter().map(|n| s.index_of(n).ok()).collect()
                } else {
                    (0..s.fields().len()).map(Some).collect()
                };
                s.clone()
            }
            None => {
                let types = types.unwrap_or_else(|| vec![DataType::Utf8; names.len()]);
                self.map = (0..names.len()).map(Some).collect();
                Arc::new(Schema::new(
                    names
                        .iter()
                        .zip(types)
                        .map(|(n, t)| Field::new(n, t, true))
                        .collect::<Vec<_>>(),
                ))
            }
        };
        self.rows = Some(RowBuilder::new(schema, false, self.settings.batch_rows)?);
        Ok(())
    }

    fn record(&mut self, out: &mut Decoded) -> Result<(), Error> {
        let line = self.record_line;
        if self.skipping {
            self.skipping = false;
            let mut r = [Reject::new(
                line,
                format!(
                    "record is longer than max_line_bytes ({})",
                    self.settings.max_record_bytes
                ),
                self.raw(),
            )];
            self.note_span(line, &mut r);
            out.rejects.extend(r);
            return Ok(());
        }
        if self.nends == 1 && self.ends[0] == 0 {
            return Ok(()); // a blank line
        }
        // Take the buffers out while the record's fields borrow them; they go back below.
        let record = std::mem::take(&mut self.out);
        let ends = std::mem::take(&mut self.ends);
        let text = std::mem::take(&mut self.text);
        let before = out.rejects.len();
        let raw = trim_line_end(&text);
        let r = self.record_fields(line, &record[..self.nout], &ends[..self.nends], raw, out);
        self.out = record;
        self.ends = ends;
        self.text = text;
        self.note_span(line, &mut out.rejects[before..]);
        r
    }

    /// A rejected record that spans several lines says which: a quote left open joins lines
    /// into one record, and those lines are in this reject, not lost without a word.
    fn note_span(&self, line: u64, rejects: &mut [Reject]) {
        let last = self.line - u64::from(self.after_newline);
        if last > line {
            for r in rejects {
                r.reason.push_str(&format!(
                    " (the record spans lines {line}–{last}: a quoted field joins them; an unbalanced quote would too)"
                ));
            }
        }
    }

    fn record_fields(
        &mut self,
        line: u64,
        record: &[u8],
        ends: &[usize],
        raw: &[u8],
        out: &mut Decoded,
    ) -> Result<(), Error> {
        let fields = match split_fields(record, ends) {
            Ok(f) => f,
            Err(i) => {
                out.rejects.push(Reject::new(
                    line,
                    format!("field {} is not valid UTF-8", i + 1),
                    raw,
                ));
                return Ok(());
            }
        };
        if self.names.is_none() && self.settings.header {
            let mut seen = std::collections::HashSet::new();
            let names: Vec<String> = fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let n = f.trim().to_string();
                    if n.is_empty() || !seen.insert(n.clone()) {
                        format!("column_{}", i + 1)
                    } else {
                        n
                    }
                })
                .collect();
            if let Some(s) = &self.settings.schema
                && !s.fields().iter().any(|f| names.contains(f.name()))
            {
                return Err(Error::Decode(format!(
                    "the header names none of the declared schema's columns (header: {}); set header = false or fix the schema",
                    names.join(", ")
                )));
            }
            self.too_wide(names.len())?;
            self.names = Some(names);
            return Ok(());
        }
        if self.rows.is_none() && self.settings.schema.is_none() {
            self.too_wide(fields.len())?;
            let owned = fields.iter().map(|s| s.to_string()).collect();
            self.sample.push((line, owned, raw.to_vec()));
            if self.sample.len() >= self.settings.batch_rows {
                self.drain_sample(out)?;
            }
            return Ok(());
        }
        if self.rows.is_none() {
            self.setup(fields.len(), None)?;
        }
        self.push(line, &fields, raw, out)
    }

    /// Without a declared schema, `width` columns past the limit is an error: each column holds
    /// a batch of rows (25 000 columns took 1 GB), and the records sampled to infer types hold
    /// every field.
    fn too_wide(&self, width: usize) -> Result<(), Error> {
        let max = self.settings.max_columns;
        if self.settings.schema.is_none() && width > max {
            return Err(Error::Schema(format!(
                "the CSV has {width} columns, more than [input] max_inferred_columns ({max}) allows \
                 when the schema is inferred; declare [input] schema with the columns the pipeline \
                 reads (only those are decoded)"
            )));
        }
        Ok(())
    }

    fn push(
        &mut self,
        line: u64,
        fields: &[&str],
        raw: &[u8],
        out: &mut Decoded,
    ) -> Result<(), Error> {
        let Some(rows) = self.rows.as_mut() else {
            return Ok(());
        };
        let ncols = rows.schema().fields().len();
        // More fields than there are columns: the record is misquoted or from another file shape.
        if fields.len() > self.map.len() {
            let what = match (self.settings.header, self.settings.schema.is_some()) {
                (true, _) => "the header has",
                (false, true) => "the schema has",
                (false, false) => "the first records have",
            };
            out.rejects.push(Reject::new(
                line,
                format!(
                    "record has {} fields; {what} {}",
                    fields.len(),
                    self.map.len()
                ),
                raw,
            ));
            return Ok(());
        }
        let mut values: Vec<Option<&str>> = vec![None; ncols];
        for (pos, f) in fields.iter().enumerate() {
            if let Some(Some(col)) = self.map.get(pos) {
                values[*col] = Some(f);
            }
        }
        match rows.push(&values) {
            Ok(()) => {
                self.origins.push(line, raw);
                if rows.len() >= self.settings.batch_rows {
                    self.emit(out)?;
                }
            }
            Err(reason) => out.rejects.push(Reject::new(
                line,
                format!("does not fit the schema: {reason}"),
                raw,
            )),
        }
        Ok(())
    }

    fn drain_sample(&mut self, out: &mut Decoded) -> Result<(), Error> {
        let sample = std::mem::take(&mut self.sample);
        let width = match &self.names {
            Some(n) => n.len(),
            None => sample.iter().map(|(_, f, _)| f.len()).max().unwrap_or(0),
        };
        let types: Vec<DataType> = (0..width)
            .map(|i| {
                let vals: Vec<&str> = sample
                    .iter()
                    .filter_map(|(_, f, _)| f.get(i).map(String::as_str))
                    .collect();
                infer_type(&vals)
            })
            .collect();
        self.setup(width, Some(types))?;
        for (line, fields, raw) in &sample {
            let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
            self.push(*line, &refs, raw, out)?;
        }
        Ok(())
    }

    fn emit(&mut self, out: &mut Decoded) -> Result<(), Error> {
        if let Some(rows) = self.rows.as_mut()
            && let Some(b) = rows.flush().map_err(|e| Error::arrow("decoding CSV", e))?
        {
            out.emit(b, Some(self.origins.take()));
        }
        self.origins.clear();
        Ok(())
    }

    fn run(&mut self, mut input: &[u8], out: &mut Decoded) -> Result<(), Error> {
        let at_end = input.is_empty();
        loop {
            let (res, nin, nout, nends) = if self.skipping {
                let mut scratch = [0u8; 4096];
                let mut ends = [0usize; 64];
                let r = self.reader.read_record(input, &mut scratch, &mut ends);
                (r.0, r.1, 0, 0)
            } else {
                self.reader.read_record(
                    input,
                    &mut self.out[self.nout..],
                    &mut self.ends[self.nends..],
                )
            };
            let mut lead = 0;
            if self.at_start {
                // Line endings and blank lines before a record are skipped by csv-core; the record
                // starts on the line after them.
                lead = input[..nin]
                    .iter()
                    .take_while(|b| matches!(b, b'\r' | b'\n'))
                    .count();
                self.record_line =
                    self.line + memchr::memchr_iter(b'\n', &input[..lead]).count() as u64;
                if lead < nin || nout > 0 || nends > 0 {
                    self.at_start = false;
                }
            }
            let room = crate::REJECT_RAW_BYTES.saturating_sub(self.text.len());
            let part = &input[lead.min(nin)..nin];
            self.text.extend_from_slice(&part[..part.len().min(room)]);
            self.line += memchr::memchr_iter(b'\n', &input[..nin]).count() as u64;
            self.quotes += memchr::memchr_iter(b'"', &input[..nin]).count();
            if nin > 0 {
                self.after_newline = input[nin - 1] == b'\n';
            }
            input = &input[nin..];
            // csv-core writes end positions as if the whole record were one buffer.
            self.nout += nout;
            self.nends += nends;
            match res {
                ReadRecordResult::InputEmpty => return Ok(()),
                ReadRecordResult::OutputFull => {
                    if self.skipping {
                        continue;
                    }
                    if self.out.len() >= self.settings.max_record_bytes {
                        self.skipping = true;
                    } else {
                        let n = (self.out.len() * 2).min(self.settings.max_record_bytes.max(4096));
                        self.out.resize(n, 0);
                    }
                }
                ReadRecordResult::OutputEndsFull if self.skipping => {}
                ReadRecordResult::OutputEndsFull => {
                    let n = self.ends.len() * 2;
                    self.ends.resize(n, 0);
                }
                ReadRecordResult::Record => {
                    let last = self.line - u64::from(self.after_newline);
                    if at_end && self.quotes % 2 == 1 && last > self.record_line {
                        // The input ended inside a quoted field opened lines before: every line
                        // after the quote was read as part of that field. Nothing after it can be
                        // trusted to be the rows it looks like, and they must not vanish into
                        // one reject: the object fails, and nothing of it is written.
                        return Err(Error::Decode(format!(
                            "a quoted field opened in the record on line {} is never closed: it runs to the end of the object (line {last}), so no line after it can be read as a record; fix the quoting (a quote inside a quoted field is written twice, \"\")",
                            self.record_line,
                        )));
                    } else if at_end && self.quotes % 2 == 1 {
                        // The last line opens a quote it never closes: it is a reject, and no
                        // line after it is lost.
                        out.rejects.push(Reject::new(
                            self.record_line,
                            "unterminated quoted field on the object's last line",
                            self.raw(),
                        ));
                    } else {
                        self.record(out)?;
                    }
                    self.quotes = 0;
                    self.nout = 0;
                    self.nends = 0;
                    self.at_start = true;
                    self.text.clear();
                }
                ReadRecordResult::End => return Ok(()),
            }
            if at_end && input.is_empty() && matches!(res, ReadRecordResult::End) {
                return Ok(());
            }
        }
    }
}

impl Decoder for CsvDecoder {
    fn decode(&mut self, mut buf: &[u8], out: &mut Decoded) -> Result<(), Error> {
        if !self.started && !buf.is_empty() {
            self.started = true;
            buf = buf.strip_prefix(b"\xef\xbb\xbf").unwrap_or(buf);
        }
        if buf.is_empty() {
            return Ok(());
        }
        self.run(buf, out)
    }

    fn finish(&mut self, out: &mut Decoded) -> Result<(), Error> {
        self.run(&[], out)?;
        Decoder::flush(self, out)
    }

    fn flush(&mut self, out: &mut Decoded) -> Result<(), Error> {
        if self.rows.is_none() && !self.sample.is_empty() {
            self.drain_sample(out)?;
        }
        self.emit(out)
    }

    fn keep_origins(&mut self, keep: bool) {
        self.origins.keep(keep);
    }

    fn schema(&self) -> Option<SchemaRef> {
        self.rows
            .as_ref()
            .map(|r| r.schema().clone())
            .or_else(|| self.settings.schema.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use arrow_array::{Array, RecordBatch};

    fn run(b: CsvDecoderBuilder, chunks: &[&[u8]]) -> (RecordBatch, Vec<Reject>, SchemaRef) {
        let mut d = b.build();
        let mut out = Decoded::default();
        for c in chunks {
            for piece in c.chunks(5) {
                d.decode(piece, &mut out).unwrap();
            }
        }
        d.finish(&mut out).unwrap();
        let schema = d.schema().unwrap();
        (
            arrow_select::concat::concat_batches(&schema, &out.batches).unwrap(),
            out.rejects,
            schema,
        )
    }

    /// Issue 27: a CSV of 25 000 columns with no schema took 1 GB (a batch of builders per
    /// column, and every field of the sampled records). Past the limit, with or without a
    /// header, it is an error that says to declare the schema; declared, it is read.
    #[test]
    fn inferred_columns_are_capped() {
        let header: Vec<String> = (0..25_000).map(|i| format!("c{i}")).collect();
        let row: Vec<String> = (0..25_000).map(|i| i.to_string()).collect();
        let text = format!("{}\n{}\n", header.join(","), row.join(","));
        for header in [true, false] {
            let mut d = CsvDecoderBuilder::default().with_header(header).build();
            let mut out = Decoded::default();
            let e = d
                .decode(text.as_bytes(), &mut out)
                .and_then(|()| d.finish(&mut out))
                .unwrap_err();
            assert!(
                e.to_string().starts_with(
                    "the CSV has 25000 columns, more than [input] max_inferred_columns (1000)"
                ),
                "{e}"
            );
        }
        let declared = crate::decode::schema_from_types([("c7", "int64")]).unwrap();
        let (b, rejects, _) = run(
            CsvDecoderBuilder::default().with_schema(declared),
            &[text.as_bytes()],
        );
        assert!(rejects.is_empty(), "{rejects:?}");
        assert_eq!(b.column(0).as_primitive::<Int64Type>().value(0), 7);
    }

    #[test]
    fn quoting_crlf_bom_and_inference() {
        let text = "\u{feff}id,name,score,when,ok\r\n1,\"Smith, Jo\",1.5,2026-11-22T10:00:00Z,true\r\n2,\"say \"\"hi\"\"\",,2026-11-22 11:00:00,false\r\n3,\"multi\nline\",2,2026-11-22T12:00:00Z,TRUE\r\n";
        let (b, rejects, schema) = run(CsvDecoderBuilder::default(), &[text.as_bytes()]);
        assert!(rejects.is_empty(), "{rejects:?}");
        let types: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), crate::expr::type_name(f.data_type())))
            .collect();
        assert_eq!(
            types,
            [
                "id int64",
                "name string",
                "score float64",
                "when timestamp",
                "ok bool"
            ]
        );
        assert_eq!(b.num_rows(), 3);
        let name = b.column(1).as_string::<i32>();
        assert_eq!(
            (name.value(0), name.value(1), name.value(2)),
            ("Smith, Jo", "say \"hi\"", "multi\nline")
        );
        assert!(b.column(2).is_null(1));
    }

    #[test]
    fn declared_schema_by_header_name_and_rejects() {
        let schema =
            crate::decode::schema_from_types([("status", "int64"), ("path", "string")]).unwrap();
        let text = b"path;status;extra\n/a;200;x\n/b;oops;y\n/c;404;z;too-many\n/d\n\n";
        let (b, rejects, _) = run(
            CsvDecoderBuilder::default()
                .with_schema(schema)
                .with_delimiter(b';'),
            &[text],
        );
        assert_eq!(b.num_rows(), 2);
        assert_eq!(b.column(0).as_primitive::<Int64Type>().value(0), 200);
        assert!(b.column(0).is_null(1));
        assert_eq!(b.column(1).as_string::<i32>().value(1), "/d");
        assert_eq!(rejects.len(), 2);
        assert_eq!(rejects[0].position, 3);
        assert!(
            rejects[0]
                .reason
                .contains("column 'status' expects an integer, found \"oops\""),
            "{}",
            rejects[0].reason
        );
        assert_eq!(rejects[1].position, 4);
        assert!(
            rejects[1]
                .reason
                .contains("record has 4 fields; the header has 3"),
            "{}",
            rejects[1].reason
        );
    }

    #[test]
    fn rejects_name_the_physical_line_after_multi_line_fields() {
        let schema = crate::decode::schema_from_types([("a", "string"), ("n", "int64")]).unwrap();
        let text = b"a,n\r\n\"x\ny\nz\",1\r\nb,bad\r\nc,2\nd,worse\n";
        let (b, rejects, _) = run(CsvDecoderBuilder::default().with_schema(schema), &[text]);
        assert_eq!(b.num_rows(), 2);
        let pos: Vec<u64> = rejects.iter().map(|r| r.position).collect();
        assert_eq!(pos, vec![5, 7]);
    }

    #[test]
    fn no_header_unbalanced_quotes_and_long_records() {
        let text = b"a,1\nb,2\n\"c,3\nd,4\n";
        // Without a header or schema, the width comes from the first records; a wider one is a reject.
        let (b, rejects, _) = run(
            CsvDecoderBuilder::default()
                .with_header(false)
                .with_batch_rows(2),
            &[b"a,1\nb,2\nc,3,extra\n"],
        );
        assert_eq!(b.num_rows(), 2);
        assert!(
            rejects[0]
                .reason
                .contains("record has 3 fields; the first records have 2"),
            "{}",
            rejects[0].reason
        );
        // An open quote would swallow the rest of the object into one field: the object fails,
        // naming the line, instead of succeeding with the rows after it missing.
        let mut d = CsvDecoderBuilder::default().with_header(false).build();
        let mut out = Decoded::default();
        d.decode(text, &mut out).unwrap();
        let e = d.finish(&mut out).unwrap_err().to_string();
        assert!(
            e.contains("opened in the record on line 3 is never closed"),
            "{e}"
        );
        assert!(e.contains("(line 4)"), "{e}");
        // 10 000 rows after a stray quote on row 2: never a success with one row.
        let mut many = String::from("a,1\n\"b,2\n");
        for i in 0..10_000 {
            many.push_str(&format!("r{i},{i}\n"));
        }
        let mut d = CsvDecoderBuilder::default().with_header(false).build();
        let mut out = Decoded::default();
        let mut failed = None;
        for piece in many.as_bytes().chunks(4096) {
            if let Err(e) = d.decode(piece, &mut out) {
                failed = Some(e);
                break;
            }
        }
        let failed = failed.or_else(|| d.finish(&mut out).err());
        assert!(failed.is_some_and(|e| e.to_string().contains("line 2 is never closed")));
        // Two stray quotes join the lines between into one record, which says so.
        let schema = crate::decode::schema_from_types([("k", "string"), ("n", "int64")]).unwrap();
        let (b, rejects, _) = run(
            CsvDecoderBuilder::default()
                .with_header(false)
                .with_schema(schema),
            &[b"a,1\nb,\"2\nc,3\nd,4\"\ne,5\n"],
        );
        assert_eq!(b.num_rows(), 2);
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].position, 2);
        assert!(
            rejects[0].reason.contains("the record spans lines 2–4"),
            "{}",
            rejects[0].reason
        );
        let big = format!("x,{}\ny,1\n", "z".repeat(10_000));
        let (b, rejects, _) = run(
            CsvDecoderBuilder::default()
                .with_header(false)
                .with_max_record_bytes(1000),
            &[big.as_bytes()],
        );
        assert_eq!(b.num_rows(), 1);
        assert_eq!(rejects.len(), 1);
        assert!(
            rejects[0]
                .reason
                .contains("longer than max_line_bytes (1000)")
        );
    }
}
