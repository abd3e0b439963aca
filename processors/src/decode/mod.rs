//! Bytes → Arrow record batches, and rejects for what does not decode.
//!
//! A [`Decoder`] is fed an object's (decompressed) bytes in chunks of any size, as they arrive, and
//! emits bounded batches plus [`Reject`](crate::Reject)s with reasons. Memory is bounded by the batch
//! size and the longest allowed record, never by the object size.

pub mod aws;
pub mod csv;
mod fastjson;
pub mod jsondoc;
mod lines;
pub mod logs;
pub mod ndjson;
pub mod parquet_footer;
mod row;
pub mod timestamp;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

use crate::{Error, Reject};

pub use fastjson::find_quote_or_backslash;

/// What a decoder produced from the bytes pushed so far.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Complete batches, in input order.
    pub batches: Vec<RecordBatch>,
    /// Records that could not be decoded, in input order.
    pub rejects: Vec<Reject>,
    /// Where each batch's rows came from, parallel to `batches` (pushed by [`Decoded::emit`]);
    /// `None` for a batch whose rows have no input line of their own (documents, Parquet). When
    /// the two lists differ in length (a caller took `batches` alone) nothing is known of the
    /// batches already there, and the next [`Decoded::emit`] drops their origins, so origins a
    /// caller ignores never pile up.
    pub origins: Vec<Option<Origins>>,
}

impl Decoded {
    /// A complete batch, and where its rows came from when the decoder knows.
    pub fn emit(&mut self, batch: RecordBatch, origins: Option<Origins>) {
        let origins = origins.filter(|o| o.len() == batch.num_rows());
        self.resync();
        self.batches.push(batch);
        self.origins.push(origins);
    }

    /// Move every batch (with its origins) and reject of `other` to the end of this.
    pub fn append(&mut self, other: &mut Decoded) {
        self.resync();
        other.resync();
        self.batches.append(&mut other.batches);
        self.rejects.append(&mut other.rejects);
        self.origins.append(&mut other.origins);
    }

    /// When the two lists no longer pair up, forget every batch's origins (one `None` each).
    fn resync(&mut self) {
        if self.origins.len() != self.batches.len() {
            self.origins.clear();
            self.origins.resize_with(self.batches.len(), || None);
        }
    }

    /// Take the batches, each with its origins (`None` when they are not known).
    pub fn take_batches(&mut self) -> Vec<(RecordBatch, Option<Origins>)> {
        let batches = std::mem::take(&mut self.batches);
        let mut origins = std::mem::take(&mut self.origins);
        if origins.len() != batches.len() {
            origins.clear();
        }
        origins.resize_with(batches.len(), || None);
        batches.into_iter().zip(origins).collect()
    }
}

/// The input line (or record) each row of a batch was decoded from: its 1-based number in its
/// source and its bytes, at most [`REJECT_RAW_BYTES`](crate::REJECT_RAW_BYTES) of them, so a row
/// a stage refuses later is reported as the line it was read from. Switched off
/// ([`Decoder::keep_origins`]) it records nothing and costs nothing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Origins {
    /// Record nothing (nobody reads rejects' lines).
    off: bool,
    lines: Vec<u64>,
    /// End of each row's bytes in `bytes`.
    ends: Vec<usize>,
    bytes: Vec<u8>,
}

impl Origins {
    /// The origin of the next row: its line number and text (cut to the reject limit).
    pub fn push(&mut self, line: u64, raw: &[u8]) {
        if self.off {
            return;
        }
        self.bytes
            .extend_from_slice(&raw[..raw.len().min(crate::REJECT_RAW_BYTES)]);
        self.lines.push(line);
        self.ends.push(self.bytes.len());
    }

    /// True when switched off ([`Decoder::keep_origins`]).
    pub fn is_off(&self) -> bool {
        self.off
    }

    /// Rows recorded.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// True when no row is recorded.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Row `i`'s line number and text.
    pub fn get(&self, i: usize) -> Option<(u64, &[u8])> {
        let line = *self.lines.get(i)?;
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some((line, self.bytes.get(start..end)?))
    }

    /// Add `other`'s rows after these.
    pub fn extend(&mut self, other: &Origins) {
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.lines.extend_from_slice(&other.lines);
        self.ends.extend(other.ends.iter().map(|e| e + base));
    }

    /// Take the rows recorded so far, leaving this empty (with room for as many again).
    pub(crate) fn take(&mut self) -> Origins {
        let fresh = Origins {
            off: self.off,
            lines: Vec::with_capacity(self.lines.capacity()),
            ends: Vec::with_capacity(self.ends.capacity()),
            bytes: Vec::with_capacity(self.bytes.capacity()),
        };
        std::mem::replace(self, fresh)
    }

    /// Empty, and recording (or not) as this one does.
    pub(crate) fn like(&self) -> Origins {
        Origins {
            off: self.off,
            ..Origins::default()
        }
    }

    /// Record rows from now on (`keep`), or nothing.
    pub(crate) fn keep(&mut self, keep: bool) {
        self.off = !keep;
        if !keep {
            self.clear();
        }
    }

    /// Forget every row.
    pub(crate) fn clear(&mut self) {
        self.lines.clear();
        self.ends.clear();
        self.bytes.clear();
    }
}

/// Streaming bytes-to-batches decoding.
pub trait Decoder: Send {
    /// Consume `buf` (any amount; a record may span calls) and emit what is complete.
    fn decode(&mut self, buf: &[u8], out: &mut Decoded) -> Result<(), Error>;
    /// End of input: decode what is buffered. Called exactly once.
    fn finish(&mut self, out: &mut Decoded) -> Result<(), Error>;
    /// A record boundary (the end of one stream record's payload): emit every row of the complete
    /// input so far as batches now, without ending the input, so the rows of different records
    /// never share a batch. A decoder still inferring its schema settles it from what it has.
    /// Document decoders, which emit only at `finish`, keep this default.
    fn flush(&mut self, _out: &mut Decoded) -> Result<(), Error> {
        Ok(())
    }
    /// The schema of emitted batches, once known (declared, or inferred from the first records).
    fn schema(&self) -> Option<SchemaRef>;
    /// Whether to record the input line of every row ([`Origins`], given with each batch by
    /// [`Decoded::emit`]) so a row a stage refuses later is reported as that line. On by default;
    /// a pipeline that writes no rejects turns it off. Decoders whose rows have no line of
    /// their own (documents, Parquet) ignore it.
    fn keep_origins(&mut self, _keep: bool) {}
}

fn fastjson_metadata() -> &'static str {
    fastjson::JSON_METADATA
}

/// Build a schema from `(name, type name)` pairs as written in `[input] schema`. A dotted name such
/// as `geo.country` declares a field of a struct column (`geo`), which is decoded from a nested object.
pub fn schema_from_types<'a>(
    columns: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<SchemaRef, Error> {
    // (name, leaf type or children) in first-seen order.
    // A leaf's type and its field metadata (a `json` column, a timestamp's epoch unit).
    type Meta = Option<(&'static str, String)>;
    enum Node {
        Leaf(DataType, Meta),
        Struct(Vec<(String, Node)>),
    }
    fn insert(
        nodes: &mut Vec<(String, Node)>,
        path: &[&str],
        dt: DataType,
        full: &str,
        json: Meta,
    ) -> Result<(), Error> {
        let pos = nodes.iter().position(|(n, _)| n == path[0]);
        if path.len() == 1 {
            if pos.is_some() {
                return Err(Error::Schema(format!("column `{full}` is declared twice")));
            }
            nodes.push((path[0].to_string(), Node::Leaf(dt, json)));
            return Ok(());
        }
        let i = match pos {
            Some(i) => i,
            None => {
                nodes.push((path[0].to_string(), Node::Struct(Vec::new())));
                nodes.len() - 1
            }
        };
        match &mut nodes[i].1 {
            Node::Struct(children) => insert(children, &path[1..], dt, full, json),
            Node::Leaf(..) => Err(Error::Schema(format!(
                "`{}` is declared as a value and as a struct by `{full}`",
                path[0]
            ))),
        }
    }
    fn fields(nodes: Vec<(String, Node)>) -> Vec<Field> {
        nodes
            .into_iter()
            .map(|(name, n)| match n {
                Node::Leaf(dt, None) => Field::new(name, dt, true),
                Node::Leaf(dt, Some((key, value))) => Field::new(name, dt, true).with_metadata(
                    [(key.to_string(), value)]
                        .into_iter()
                        .collect::<std::collections::HashMap<String, String>>(),
                ),
                Node::Struct(children) => {
                    Field::new(name, DataType::Struct(Fields::from(fields(children))), true)
                }
            })
            .collect()
    }
    let mut nodes = Vec::new();
    for (name, ty) in columns {
        // `timestamp(ms)`: a timestamp whose epoch numbers are in that unit.
        let unit = ty
            .strip_prefix("timestamp(")
            .and_then(|u| u.strip_suffix(')'))
            .map(|u| {
                timestamp::EpochUnit::parse(u.trim()).ok_or_else(|| {
                    Error::Schema(format!(
                        "column `{name}` has type `{ty}`; a timestamp's epoch unit is s, ms, us or ns, e.g. timestamp(ms)"
                    ))
                })
            })
            .transpose()?;
        let ty = if unit.is_some() { "timestamp" } else { ty };
        let dt = crate::expr::parse_type(ty).ok_or_else(|| {
            Error::Schema(format!(
                "column `{name}` has unknown type `{ty}`; valid types: {}",
                crate::expr::TYPE_NAMES
            ))
        })?;
        let path: Vec<&str> = name.split('.').collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(Error::Schema(format!(
                "column name `{name}` has an empty part"
            )));
        }
        let meta = if ty.eq_ignore_ascii_case("json") {
            Some((fastjson_metadata(), "true".to_string()))
        } else {
            unit.map(|u| (timestamp::EPOCH_UNIT_METADATA, u.to_string()))
        };
        insert(&mut nodes, &path, dt, name, meta)?;
    }
    Ok(std::sync::Arc::new(Schema::new(fields(nodes))))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    /// Every row's origin (line number and text), fed in 3-byte chunks so lines span calls.
    fn origins_of(mut d: Box<dyn Decoder>, input: &[u8]) -> (Vec<(u64, String)>, Vec<u64>) {
        let mut out = Decoded::default();
        for piece in input.chunks(3) {
            d.decode(piece, &mut out).unwrap();
        }
        d.finish(&mut out).unwrap();
        let rejected = out.rejects.iter().map(|r| r.position).collect();
        let mut seen = Vec::new();
        for (batch, origins) in out.take_batches() {
            let origins = origins.expect("a line format knows where its rows came from");
            assert_eq!(origins.len(), batch.num_rows());
            for i in 0..origins.len() {
                let (line, raw) = origins.get(i).unwrap();
                seen.push((line, String::from_utf8(raw.to_vec()).unwrap()));
            }
        }
        (seen, rejected)
    }

    #[test]
    fn origins_a_caller_ignores_do_not_pile_up_or_shift_onto_other_batches() {
        let schema = schema_from_types([("n", "int64")]).unwrap();
        let mut d = ndjson::NdjsonDecoder::builder()
            .with_schema(schema)
            .with_batch_rows(1)
            .build();
        let mut out = Decoded::default();
        d.decode(b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n", &mut out)
            .unwrap();
        assert_eq!(out.origins.len(), 3);
        out.batches.drain(..2);
        d.decode(b"{\"n\":4}\n", &mut out).unwrap();
        d.finish(&mut out).unwrap();
        assert_eq!(out.origins.len(), out.batches.len());
        let taken = out.take_batches();
        // The batch left behind lost its origin (its neighbours were taken without theirs);
        // the next one is still known exactly.
        assert!(taken[0].1.is_none());
        let (line, raw) = taken[1].1.as_ref().unwrap().get(0).unwrap();
        assert_eq!((line, raw), (4, &b"{\"n\":4}"[..]));
        let mut rest = Decoded::default();
        rest.batches.push(taken[0].0.clone());
        out.append(&mut rest);
        assert_eq!(out.origins, vec![None]);
    }

    #[test]
    fn every_row_of_a_line_format_knows_the_line_it_was_read_from() {
        let typed = schema_from_types([("n", "int64"), ("page", "string")]).unwrap();
        let listed = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
        ]));
        let ndjson = b"{\"n\": 1, \"page\":\"/a\"}\n\n{\"n\":\"x\"}\r\n{ \"n\" : 3 }\r\n{\"n\":4}";
        let want = vec![
            (1, "{\"n\": 1, \"page\":\"/a\"}".to_string()),
            (4, "{ \"n\" : 3 }".to_string()),
            (5, "{\"n\":4}".to_string()),
        ];
        let built = |schema: Option<&SchemaRef>| {
            let b = ndjson::NdjsonDecoder::builder().with_batch_rows(2);
            Box::new(match schema {
                Some(s) => b.with_schema(s.clone()).build(),
                None => b.build(),
            })
        };
        // Declared (the direct parser), with a list (arrow-json's), inferred.
        assert_eq!(
            origins_of(built(Some(&typed)), ndjson),
            (want.clone(), vec![3])
        );
        assert_eq!(origins_of(built(Some(&listed)), ndjson), (want, vec![3]));
        let (seen, _) = origins_of(built(None), b"{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n");
        assert_eq!(seen.iter().map(|s| s.0).collect::<Vec<_>>(), [1, 2, 3]);
        // A CSV record is its text as written, quotes and line breaks inside them included.
        let csv = csv::CsvDecoderBuilder::default()
            .with_schema(typed.clone())
            .with_batch_rows(2)
            .build();
        let text = b"n,page\r\n1,\"/a, \"\"b\"\"\"\r\nx,/bad\n\n2,\"two\nlines\"\n3,/c";
        assert_eq!(
            origins_of(Box::new(csv), text),
            (
                vec![
                    (2, "1,\"/a, \"\"b\"\"\"".to_string()),
                    (5, "2,\"two\nlines\"".to_string()),
                    (7, "3,/c".to_string())
                ],
                vec![3]
            )
        );
        let lines = logs::LogDecoderBuilder::pattern(
            r"^(?P<n>\d+) (?P<page>\S+)$",
            &[("n".into(), DataType::Int64)],
        )
        .unwrap()
        .with_batch_rows(2)
        .build()
        .unwrap();
        assert_eq!(
            origins_of(Box::new(lines), b"1 /a\nnope\n2 /b\n3 /c\n"),
            (
                vec![
                    (1, "1 /a".to_string()),
                    (3, "2 /b".to_string()),
                    (4, "3 /c".to_string())
                ],
                vec![2]
            )
        );
    }

    #[test]
    fn dotted_names_declare_struct_fields() {
        let s = schema_from_types([
            ("ts", "timestamp"),
            ("geo.country", "string"),
            ("geo.lat", "float64"),
            ("n", "int64"),
        ])
        .unwrap();
        assert_eq!(s.fields().len(), 3);
        let DataType::Struct(children) = s.field(1).data_type() else {
            panic!("{s:?}")
        };
        assert_eq!(children.len(), 2);
        assert_eq!(children[1].data_type(), &DataType::Float64);
        assert!(schema_from_types([("a", "string"), ("a.b", "string")]).is_err());
        assert!(schema_from_types([("a", "string"), ("a", "int64")]).is_err());
        assert!(
            schema_from_types([("a", "blob")])
                .unwrap_err()
                .to_string()
                .contains("valid types")
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod garbage {
    use super::*;

    /// A small deterministic generator of nasty inputs: mutations of real-shaped lines.
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
            let mut v = seed.to_vec();
            for _ in 0..(self.next() % 8) {
                let i = (self.next() as usize) % (v.len() + 1);
                match self.next() % 5 {
                    0 if i < v.len() => {
                        v.remove(i);
                    }
                    1 => v.insert(
                        i,
                        [
                            b'"', b'\\', b'{', b'}', b'[', b',', b'\n', b'\r', b'\t', 0xff, 0xc3,
                            b'-', b' ',
                        ][(self.next() % 13) as usize],
                    ),
                    2 if i < v.len() => v[i] = self.next() as u8,
                    3 => v.truncate(i),
                    _ => {
                        let j = (self.next() as usize) % (v.len() + 1);
                        let (a, b) = (i.min(j), i.max(j));
                        let piece = v[a..b].to_vec();
                        v.splice(i..i, piece);
                    }
                }
            }
            v
        }
    }

    const SEEDS: &[&[u8]] = &[
        br#"{"ts":"2026-11-22T10:00:00.5Z","page":"/a","ms":12,"geo":{"cc":"DE","lat":1.5},"tags":["x"]}"#,
        b"https 2026-11-22T10:23:00.186641Z app/lb/1 192.0.2.39:2817 10.0.0.1:80 0.086 0.048 0.037 200 200 0 57 \"GET https://x/ HTTP/1.1\" \"curl\" - - arn \"Root=1\" \"-\" \"-\" 0 2026-11-22T10:22:48.364000Z \"forward\" \"-\" \"-\"",
        b"2 123456789010 eni-1 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK",
        b"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /a.gif HTTP/1.0\" 200 2326 \"-\" \"Mozilla\"",
        b"id,name,amount\r\n1,\"Doe, \"\"J\"\"\",1.5\r\n",
        br#"{"Records":[{"eventName":"A","userIdentity":{"arn":"x"}},{"eventTime":"2026-11-22T18:39:13Z"}]}"#,
        br#"{"messageType":"DATA_MESSAGE","logGroup":"g","logStream":"s","logEvents":[{"id":"1","timestamp":1795372800123,"message":"m"}]}"#,
        b"2026-11-22\t21:02:31\tLAX1\t392\t192.0.2.100\tGET\th\t/i\t200\t-\tUA\t-\t-\tHit",
    ];

    fn decoders() -> Vec<Box<dyn Decoder>> {
        let schema = schema_from_types([
            ("ts", "timestamp"),
            ("page", "string"),
            ("ms", "int64"),
            ("geo.lat", "float64"),
            ("geo.raw", "json"),
        ])
        .unwrap();
        let mut d: Vec<Box<dyn Decoder>> = vec![
            Box::new(
                ndjson::NdjsonDecoder::builder()
                    .with_schema(schema.clone())
                    .with_batch_rows(3)
                    .build(),
            ),
            Box::new(ndjson::NdjsonDecoder::builder().with_batch_rows(3).build()),
            Box::new(
                csv::CsvDecoderBuilder::default()
                    .with_batch_rows(2)
                    .with_max_record_bytes(64)
                    .build(),
            ),
            Box::new(
                csv::CsvDecoderBuilder::default()
                    .with_schema(schema.clone())
                    .with_header(false)
                    .build(),
            ),
            Box::new(jsondoc::JsonRecordsDecoder::new(
                "Records",
                ndjson::NdjsonDecoder::builder(),
                200,
            )),
            Box::new(aws::CloudWatchLogsDecoder::new(2, 300).unwrap()),
            Box::new(aws::TextDecoder::new("k", 100)),
            Box::new(
                logs::LogDecoderBuilder::pattern(
                    r"^(?P<a>\S+) (?P<n>\d+)",
                    &[("n".into(), DataType::Int64)],
                )
                .unwrap()
                .build()
                .unwrap(),
            ),
        ];
        for p in [
            logs::Preset::Alb,
            logs::Preset::CloudFront,
            logs::Preset::VpcFlow,
            logs::Preset::S3Access,
            logs::Preset::Clf,
        ] {
            d.push(Box::new(
                logs::LogDecoderBuilder::preset(p)
                    .with_max_line_bytes(200)
                    .build()
                    .unwrap(),
            ));
        }
        d
    }

    #[test]
    fn no_decoder_panics_on_mutated_input() {
        let mut g = Gen(0x5EED_1234_ABCD_0001);
        for round in 0..300 {
            let mut input = Vec::new();
            for _ in 0..(1 + g.next() % 4) {
                let seed = SEEDS[(g.next() as usize) % SEEDS.len()];
                input.extend(g.mutate(seed));
                input.push(b'\n');
            }
            for mut d in decoders() {
                let mut out = Decoded::default();
                let step = 1 + (g.next() as usize % 17);
                for chunk in input.chunks(step) {
                    // Errors are fine; panics are not.
                    if d.decode(chunk, &mut out).is_err() {
                        break;
                    }
                }
                let _ = d.finish(&mut out);
                // Whatever came out is well-formed: batches carry the decoder's schema.
                if let Some(schema) = d.schema() {
                    for b in &out.batches {
                        assert_eq!(
                            b.schema().fields().len(),
                            schema.fields().len(),
                            "round {round}"
                        );
                    }
                }
            }
        }
    }
}
