//! The checks the fuzz targets in `fuzz/` run on every input, shared with the test that replays
//! their seeds and every input they ever failed on (`tests/integration/fuzzed.rs`), so a crash
//! found once stays a test on stable Rust.
//!
//! Each function takes arbitrary bytes and panics only when a promise is broken: a panic inside
//! Sluice, two readers of the same input disagreeing, a decoder failing as a whole where it should
//! reject a record, a record unaccounted for, or a config error that does not name its file.

use std::path::Path;

use arrow_array::RecordBatch;
use sluice_processors::decode::Decoded;

use crate::config::Plan;
use crate::trigger::{Invocation, Item};

/// An invocation payload. The fast Kinesis reader never panics and, wherever the payload is JSON,
/// gives what the general path gives, and what `aws_lambda_events`' typed `KinesisEvent` reads
/// wherever that reads it; the general path never panics on any JSON.
pub fn event(data: &[u8]) {
    let fast = crate::fastevent::kinesis(data);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let general = crate::trigger::parse(&v);
    if let Some(mut fast) = fast {
        checked_lines(&fast);
        fast.work.lines = None;
        typed_kinesis_agrees(&fast, &v);
        assert_eq!(fast, general, "the fast Kinesis reader disagrees");
    }
}

/// The fast reader's records against `aws_lambda_events`' typed parse of the same batch, where
/// the crate reads it: the same records in order, each with its sequence number, shard,
/// partition key and data (a record whose data the crate decodes, the fast reader decodes to the
/// same bytes), and its arrival to the second (the crate reads the digits after the point as
/// milliseconds, whatever their number: see the trigger tests).
fn typed_kinesis_agrees(fast: &Invocation, v: &serde_json::Value) {
    use aws_lambda_events::event::kinesis::KinesisEvent;
    use serde::Deserialize;
    let Ok(typed) = KinesisEvent::deserialize(v) else {
        return;
    };
    assert_eq!(
        typed.records.len(),
        fast.work.items.len(),
        "the typed parse reads another number of records"
    );
    for (t, item) in typed.records.iter().zip(&fast.work.items) {
        let Item::Record(r) = item else {
            panic!("a fast-read batch holds {item:?}")
        };
        let k = &t.kinesis;
        assert_eq!(k.sequence_number.as_str(), r.id(), "sequence number");
        assert_eq!(k.partition_key.as_str(), r.partition_key(), "partition key");
        let shard = t
            .event_id
            .as_deref()
            .and_then(|id| id.split_once(':'))
            .map_or("", |(s, _)| s);
        assert_eq!(shard, r.shard(), "shard");
        if let Ok(d) = &r.data {
            assert_eq!(&k.data[..], &d[..], "data of {}", r.id());
        }
        if let Some(a) = r.arrival.filter(|a| a.is_finite()) {
            assert_eq!(
                k.approximate_arrival_timestamp.timestamp(),
                a.floor() as i64,
                "arrival of {}",
                r.id()
            );
        }
    }
}

/// The buffer every record's data of a fast-read batch is a slice of: each record's data followed
/// by a line break (or ending with one), in order, nothing else between — what the handler decodes
/// in place. Panics where that does not hold.
pub fn checked_lines(p: &Invocation) -> Option<bytes::Bytes> {
    let lines = p.work.lines.clone()?;
    let mut at = 0;
    for item in &p.work.items {
        let Item::Record(r) = item else {
            panic!("a fast-read batch holds {item:?}")
        };
        let Ok(d) = &r.data else { continue };
        let start = d.as_ptr() as usize - lines.as_ptr() as usize;
        assert_eq!(
            start,
            at,
            "record {} is not where the last one ended",
            r.id()
        );
        at = start + d.len();
        if !d.ends_with(b"\n") && !d.is_empty() {
            assert_eq!(lines[at], b'\n');
            at += 1;
        }
    }
    assert_eq!(at, lines.len());
    Some(lines)
}

/// Deterministic damage to `seed`: `rounds` copies, each with bytes overwritten, cut, duplicated
/// or removed somewhere (xorshift: the same every run) — what the tests feed the checks above
/// between fuzzer runs.
pub fn mutations(seed: &[u8], rounds: usize) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed.len() as u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let alphabet = b"{}[]\":,\\ \n\r\t0aZ-.e\x00\xff\xc3\x1f\x8b\x28\xb5\x2f\xfd";
    (0..rounds)
        .map(|round| {
            let mut t = seed.to_vec();
            if t.is_empty() {
                return vec![alphabet[round % alphabet.len()]];
            }
            let at = (next() % t.len() as u64) as usize;
            match round % 4 {
                0 => t[at] = alphabet[(next() % alphabet.len() as u64) as usize],
                1 => t.truncate(at),
                2 => {
                    let piece = t[at..(at + 16).min(t.len())].to_vec();
                    t.splice(at..at, piece);
                }
                _ => {
                    t.drain(at..(at + 1 + (next() % 8) as usize).min(t.len()));
                }
            }
            t
        })
        .collect()
}

/// The line and document formats, each as a pipeline reads them, and whether an object may fail
/// as a whole in it: a document that is not the declared shape (no records array, not a
/// CloudWatch Logs payload, a CSV header naming none of the declared columns) is the object's
/// error; otherwise a line format only ever rejects records.
const FORMATS: &[(&str, bool)] = &[
    (
        "format = \"ndjson\"\nschema = { ts = \"timestamp\", n = \"int64\", s = \"string\", f = \"float64\", b = \"bool\", \"g.c\" = \"string\" }",
        false,
    ),
    ("format = \"ndjson\"", false),
    ("format = \"json\"\nrecords = \"Records\"", true),
    ("format = \"json\"", true),
    ("format = \"csv\"", false),
    (
        // A header naming none of the declared columns is the object's error.
        "format = \"csv\"\nschema = { a = \"int64\", b = \"string\", c = \"timestamp\" }",
        true,
    ),
    (
        "format = \"lines\"\npattern = '^(?P<level>\\S+) (?P<msg>.*)$'",
        false,
    ),
    ("format = \"alb\"", false),
    ("format = \"cloudfront\"", false),
    ("format = \"vpc-flow\"", false),
    ("format = \"s3-access\"", false),
    ("format = \"clf\"", false),
    ("format = \"cloudtrail\"", true),
    ("format = \"cloudwatch-logs\"", true),
    ("format = \"text\"", false),
];

/// What a decoder made of some input: rows, and each reject's position and reason.
#[derive(Debug, PartialEq)]
struct Outcome {
    rows: usize,
    rejects: Vec<(u64, String)>,
}

/// The input decoded in `chunks`, or why the object failed as a whole.
fn decode(plan: &Plan, chunks: &[&[u8]]) -> Result<Outcome, String> {
    let mut d = match plan.decoder("fuzz/object") {
        Ok(d) => d,
        Err(e) => panic!("no decoder for {:?}: {e}", plan.input),
    };
    let mut out = Decoded::default();
    for c in chunks {
        d.decode(c, &mut out).map_err(|e| e.to_string())?;
    }
    d.finish(&mut out).map_err(|e| e.to_string())?;
    Ok(Outcome {
        rows: out.batches.iter().map(RecordBatch::num_rows).sum(),
        rejects: out
            .rejects
            .iter()
            .map(|r| (r.position, r.reason.clone()))
            .collect(),
    })
}

/// The plans of [`FORMATS`], built once (a fuzzer calls [`decoders`] millions of times).
fn plans() -> &'static [(Plan, bool)] {
    static PLANS: std::sync::OnceLock<Vec<(Plan, bool)>> = std::sync::OnceLock::new();
    PLANS.get_or_init(|| {
        FORMATS
            .iter()
            .map(|(format, may_fail)| {
                let toml = format!(
                    "name = \"fuzz\"\n[input]\n{format}\nbatch_rows = 7\nmax_line_bytes = 4096\n[output]\nuri = \"fuzz-out/\"\n"
                );
                match Plan::from_str(Path::new("fuzz.toml"), &toml) {
                    Ok(p) => (p, *may_fail),
                    Err(e) => panic!("the fuzz config for {format} is refused: {e}"),
                }
            })
            .collect()
    })
}

/// An object's bytes in every line and document format. Decoding never panics; a line format
/// never fails as a whole (a bad record is a reject with a reason) and a document format fails
/// only with a reason; and the bytes fed in two pieces, split where the first byte says, give
/// what they give fed whole: a record may span reads.
pub fn decoders(data: &[u8]) {
    let split = data
        .first()
        .map_or(0, |&b| usize::from(b) % (data.len() + 1));
    for (plan, may_fail) in plans() {
        let whole = decode(plan, &[data]);
        if let Err(e) = &whole {
            assert!(
                *may_fail,
                "{:?} failed as a whole instead of rejecting: {e}",
                plan.input
            );
            assert!(!e.is_empty());
        }
        let parts = decode(plan, &[&data[..split], &data[split..]]);
        assert_eq!(whole, parts, "{:?}: split at {split}", plan.input);
    }
}

/// A Kinesis record's data as a KPL aggregate. De-aggregation never panics, and what it accepts
/// aggregates back to records that de-aggregate the same.
pub fn kpl(data: &[u8]) {
    let Ok(records) = crate::kpl::deaggregate(data) else {
        return;
    };
    let pairs: Vec<(&str, &[u8])> = records.iter().map(|r| (r.partition_key, r.data)).collect();
    let again = crate::kpl::aggregate(&pairs);
    let back = match crate::kpl::deaggregate(&again) {
        Ok(b) => b,
        Err(e) => panic!("an aggregate of accepted records is refused: {e}"),
    };
    let back: Vec<(&str, &[u8])> = back.iter().map(|r| (r.partition_key, r.data)).collect();
    assert_eq!(pairs, back);
}

/// A `pipeline.toml`. Loading never panics, and every refusal names the file.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Plan::from_str(Path::new("fuzz.toml"), text) {
        let shown = e.to_string();
        assert!(
            shown.contains("fuzz.toml"),
            "an error without its file: {shown}"
        );
    }
}

/// The columns expressions are checked against, and a small batch of them with nulls, NaN,
/// `i64::MAX`, a NUL and non-ASCII text — built once.
fn expression_input() -> &'static RecordBatch {
    static BATCH: std::sync::OnceLock<RecordBatch> = std::sync::OnceLock::new();
    BATCH.get_or_init(|| {
        use arrow_array::{
            ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray,
            TimestampMicrosecondArray,
        };
        use std::sync::Arc;
        let schema = match sluice_processors::decode::schema_from_types([
            ("s", "string"),
            ("n", "int64"),
            ("f", "float64"),
            ("b", "bool"),
            ("t", "timestamp"),
        ]) {
            Ok(s) => s,
            Err(e) => panic!("the fuzz schema is refused: {e}"),
        };
        let ts = TimestampMicrosecondArray::from(vec![Some(0), None, Some(1_763_812_800_000_000)])
            .with_timezone_opt(match schema.field(4).data_type() {
                arrow_schema::DataType::Timestamp(_, tz) => tz.clone(),
                _ => None,
            });
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("a"), None, Some("é\u{0}x")])),
            Arc::new(Int64Array::from(vec![Some(i64::MAX), Some(0), None])),
            Arc::new(Float64Array::from(vec![Some(f64::NAN), None, Some(-0.0)])),
            Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            Arc::new(ts),
        ];
        match RecordBatch::try_new(schema, columns) {
            Ok(b) => b,
            Err(e) => panic!("the fuzz batch is refused: {e}"),
        }
    })
}

/// `text` parsed and checked against the fuzz columns (`s`, `n`, `f`, `b`, `t`).
pub fn compile(text: &str) -> Result<sluice_processors::expr::Compiled, sluice_processors::Error> {
    sluice_processors::expr::Compiled::new(text, &expression_input().schema())
}

/// An expression, as a filter's `where`. Parsing and checking never panic; an expression that
/// checks evaluates on a small batch without panicking.
pub fn expression(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(compiled) = compile(text) {
        let _ = compiled.evaluate(expression_input());
    }
}

/// A Parquet file. Reading it (footer, row groups, every column) never panics: a broken file is
/// an error.
pub fn parquet(data: &[u8]) {
    let _ = parquet_rows(data);
}

/// The rows of a Parquet file read whole, or the first error.
pub fn parquet_rows(data: &[u8]) -> Result<usize, parquet::errors::ParquetError> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::copy_from_slice(data),
    )?
    .with_batch_size(64)
    .build()?;
    let mut rows = 0;
    for batch in reader {
        rows += batch?.num_rows();
    }
    Ok(rows)
}

/// An image, made into a small rendition. Decoding never panics, and a header claiming more than
/// `max_pixels` is refused before any pixel is decoded.
pub fn image(data: &[u8]) {
    use sluice_processors::resize::{ResizeOptions, Variant, renditions};
    let opts = ResizeOptions {
        variants: vec![Variant {
            name: "s".into(),
            width: Some(32),
            height: None,
            fit: Default::default(),
        }],
        max_pixels: 4_000_000,
        max_input_bytes: 1 << 20,
        ..ResizeOptions::default()
    };
    if let Ok((info, made)) = renditions(data, &opts) {
        assert!(u64::from(info.width) * u64::from(info.height) <= opts.max_pixels);
        assert_eq!(made.len(), 1);
    }
}
