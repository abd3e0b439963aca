//! Pure, synchronous data stages for Sluice: decoding bytes into Arrow record batches, the expression
//! language, and the tabular stages that run on it.
//!
//! Nothing here does I/O, talks to AWS or needs an async runtime: the `sluice-pipeline` crate reads
//! objects and records, feeds their bytes to a [`decode::Decoder`], pushes the batches through a chain of
//! [`Stage`]s and writes what comes out. Every stage is a streaming operator: it is pushed bounded
//! batches, emits zero or more batches, and is finished exactly once at the end of its input.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{Int64Array, RecordBatch, StringArray};
//! use arrow_schema::{DataType, Field, Schema};
//! use sluice_processors::{Stage, filter::Filter};
//!
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("page", DataType::Utf8, true),
//!     Field::new("latency_ms", DataType::Int64, true),
//! ]));
//! let batch = RecordBatch::try_new(schema.clone(), vec![
//!     Arc::new(StringArray::from(vec!["/", "/cart", "/pay"])),
//!     Arc::new(Int64Array::from(vec![120, 900, 640])),
//! ])?;
//! let mut filter = Filter::new("latency_ms > 500 AND page <> '/pay'", &schema)?;
//! let mut out = Vec::new();
//! filter.push(batch, &mut out)?;
//! filter.finish(&mut out)?;
//! assert_eq!(out[0].num_rows(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate Features
//!
//! - `image`: the resize stage ([`resize`]) and its codecs (JPEG, PNG, GIF, WebP via libwebp,
//!   TIFF, BMP).
//! - `index`: the term index ([`index`]) and its tokenizer ([`tokenize`], with jieba-rs's Chinese
//!   dictionary).
//!
//! Every decoder and tabular stage is always built (each is small next to Arrow itself).
#![warn(missing_docs)]

pub mod aggregate;
pub mod decode;
mod error;
pub mod expr;
pub mod filter;
pub mod index;
pub mod json;
pub mod pattern;
pub mod resize;
pub mod select;
pub mod sniff;
pub mod stats;
pub mod tokenize;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

pub use error::Error;

/// Rows per batch unless configured otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 8192;

/// A streaming tabular operator: pushed batches, emits batches, finished once.
///
/// Implement this for a stage of your own and hand it to the pipeline through a
/// [`StageFactory`]; it then runs after decode exactly like the built-in stages.
pub trait Stage: Send {
    /// Stable snake_case name; used in config, spans and errors.
    fn name(&self) -> &'static str;
    /// The schema of the batches this stage emits.
    fn schema(&self) -> SchemaRef;
    /// Consume one batch and emit zero or more batches.
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<(), Error>;
    /// End of input: flush buffered state. Called exactly once.
    fn finish(&mut self, _out: &mut Vec<RecordBatch>) -> Result<(), Error> {
        Ok(())
    }
    /// Records this stage refused since the last call (e.g. an aggregate's rows with no window).
    /// Their `position` counts rows pushed into the stage.
    fn take_rejects(&mut self) -> Vec<Reject> {
        Vec::new()
    }
    /// How the rows the last [`Stage::push`] emitted relate to the rows it was given, so a row a
    /// later stage refuses can be traced to the input line it was decoded from. The default,
    /// [`Kept::Unknown`], is always safe.
    fn kept(&self) -> Kept {
        Kept::Unknown
    }
    /// The stage's partial state, to carry from one invocation to the next (Kinesis tumbling
    /// windows); `None` when it keeps none. The stage goes on as if nothing happened.
    fn save_state(&self) -> Result<Option<Vec<u8>>, Error> {
        Ok(None)
    }
    /// Start from `state`, saved by [`Stage::save_state`] of a stage built from the same config.
    /// Called before the first push.
    fn load_state(&mut self, _state: &[u8]) -> Result<(), Error> {
        Err(Error::Schema(format!(
            "the {} stage keeps no state to load",
            self.name()
        )))
    }
}

/// What a [`Stage::push`] emitted, in terms of the rows it was given.
#[derive(Debug, Clone)]
pub enum Kept {
    /// One row for each row given, in order (a select with no rejects).
    All,
    /// One row for each row given where the mask is true (null counts as false), in order: a
    /// filter's kept rows.
    Mask(arrow_array::BooleanArray),
    /// Rows that are not the rows given one for one (an aggregate's groups), or not said.
    Unknown,
}

/// Builds a [`Stage`] once the schema of its input is known (declared in config, or inferred from
/// the first records of an object).
pub trait StageFactory: Send + Sync {
    /// Stable snake_case name of the stages this builds.
    fn name(&self) -> &'static str;
    /// Check the stage against its input schema and build it.
    fn build(&self, input: &SchemaRef) -> Result<Box<dyn Stage>, Error>;
    /// True when the stage must see every record of an invocation before emitting (aggregate):
    /// the pipeline then runs one chain over all objects of the invocation and writes once.
    fn per_invocation(&self) -> bool {
        false
    }
}

/// A [`StageFactory`] from a name and a closure.
pub struct FnFactory<F> {
    name: &'static str,
    f: F,
}

impl<F> FnFactory<F>
where
    F: Fn(&SchemaRef) -> Result<Box<dyn Stage>, Error> + Send + Sync,
{
    /// A factory named `name` that builds with `f`.
    pub fn new(name: &'static str, f: F) -> Self {
        Self { name, f }
    }
}

impl<F> StageFactory for FnFactory<F>
where
    F: Fn(&SchemaRef) -> Result<Box<dyn Stage>, Error> + Send + Sync,
{
    fn name(&self) -> &'static str {
        self.name
    }
    fn build(&self, input: &SchemaRef) -> Result<Box<dyn Stage>, Error> {
        (self.f)(input)
    }
}

/// A record that could not be decoded or did not fit the schema, or that a stage refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// 1-based line (or record) number within its source; for a stage's reject
    /// ([`Reject::in_stage`]), the 1-based number of the row among the rows that stage was given.
    pub position: u64,
    /// The stage that refused the row (its name), or None for a record that was not decoded.
    pub stage: Option<&'static str>,
    /// For a stage's reject traced back to its input: the source line (or record) the row was
    /// decoded from, whose bytes `raw` then holds.
    pub line: Option<u64>,
    /// For a stage's reject: the row's index in the batch whose [`Stage::push`] refused it, which
    /// lets the pipeline trace the row to its input line. `None` when not known.
    pub pushed_row: Option<usize>,
    /// What was wrong, in words a person can act on.
    pub reason: String,
    /// The raw bytes, truncated to [`REJECT_RAW_BYTES`]: the record as read, or, for a stage's
    /// reject not (yet) traced to its input, the row's values as a JSON object.
    pub raw: Vec<u8>,
    /// For a stage's reject traced to its input ([`Reject::traced`]): the row's values as the
    /// stage saw them, a JSON object (at most [`REJECT_RAW_BYTES`]).
    pub values: Option<Vec<u8>>,
    /// `raw` is the first part of a longer record.
    pub truncated: bool,
}

/// The first [`REJECT_RAW_BYTES`] of `raw` (fewer when the cut would split a UTF-8 character of
/// text, which would make the text look binary), and whether it may be less than all of it: the
/// decoders hand over at most that many bytes of a longer record, so `raw` of the full length
/// counts as cut.
fn reject_bytes(raw: &[u8]) -> (Vec<u8>, bool) {
    if raw.len() < REJECT_RAW_BYTES {
        return (raw.to_vec(), false);
    }
    let mut keep = REJECT_RAW_BYTES;
    if let Err(e) = std::str::from_utf8(&raw[..keep])
        && e.error_len().is_none()
    {
        keep = e.valid_up_to();
    }
    (raw[..keep].to_vec(), true)
}

/// A stage's rejects for rows an expression failed on: one per row (its first failure),
/// positioned by `rows_before` (rows pushed into the stage before this batch), the row itself
/// as its JSON text.
pub(crate) fn row_rejects(
    stage: &'static str,
    batch: &RecordBatch,
    rows_before: u64,
    errors: impl IntoIterator<Item = expr::RowError>,
) -> Vec<Reject> {
    let mut errors: Vec<expr::RowError> = errors.into_iter().collect();
    errors.sort_by_key(|e| e.row);
    errors.dedup_by_key(|e| e.row);
    errors
        .into_iter()
        .map(|e| {
            Reject::in_stage(
                stage,
                rows_before + e.row as u64 + 1,
                e.message,
                &row_json(batch, e.row),
            )
            .pushed_as(e.row)
        })
        .collect()
}

/// One row of a batch as a JSON object (the reject's `raw` when a stage refuses a row).
pub(crate) fn row_json(batch: &RecordBatch, row: usize) -> Vec<u8> {
    match json::ndjson(&batch.slice(row, 1)) {
        Ok(mut out) => {
            if out.last() == Some(&b'\n') {
                out.pop();
            }
            out
        }
        Err(e) => format!("(row {row} could not be shown: {e})").into_bytes(),
    }
}

/// Rejected raw bytes are truncated to this many bytes.
pub const REJECT_RAW_BYTES: usize = 4096;

impl Reject {
    /// A reject at `position` for `reason`, keeping at most [`REJECT_RAW_BYTES`] of `raw`.
    pub fn new(position: u64, reason: impl Into<String>, raw: &[u8]) -> Self {
        let (raw, truncated) = reject_bytes(raw);
        Self {
            position,
            stage: None,
            line: None,
            pushed_row: None,
            reason: reason.into(),
            raw,
            values: None,
            truncated,
        }
    }

    /// A row `stage` refused: the `row`th (1-based) it was given, its values as `raw` until the
    /// pipeline traces it to the input line it came from ([`Reject::traced`]).
    pub fn in_stage(stage: &'static str, row: u64, reason: impl Into<String>, raw: &[u8]) -> Self {
        Self {
            stage: Some(stage),
            ..Self::new(row, reason, raw)
        }
    }

    /// This stage reject, for the row at `index` in the batch the stage was pushed.
    pub fn pushed_as(mut self, index: usize) -> Self {
        self.pushed_row = Some(index);
        self
    }

    /// This stage reject, traced to the source `line` whose bytes were `raw`: those become its
    /// `raw`, and the row's values it held until now its `values`.
    pub fn traced(mut self, line: u64, raw: &[u8]) -> Self {
        self.line = Some(line);
        let (raw, truncated) = reject_bytes(raw);
        let values = std::mem::replace(&mut self.raw, raw);
        if self.stage.is_some() && self.values.is_none() {
            self.values = Some(values);
        }
        self.truncated = truncated;
        self
    }
}
