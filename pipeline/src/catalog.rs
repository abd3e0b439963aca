//! The object catalog an index stage keeps: one row per source object the pipeline met —
//! processed, failed or skipped, with the reason — as Parquet under `{output}/_index/objects/`,
//! one file per object named like its outputs, so a re-run replaces its row instead of adding one.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Int64Array, ListArray, RecordBatch, StringArray, StructArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

use sluice_processors::sniff::{SNIFF_BYTES, content_type};
use sluice_processors::stats::ColumnStat;

use crate::trigger::ObjectRef;
use crate::{Error, ErrorClass};

/// What became of an object: processed, failed (with why), or skipped (with why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Read and its outputs published.
    Processed,
    /// Read and failed (retried by Lambda, or its message redelivered), and what a retry would
    /// do.
    Failed(ErrorClass),
    /// Not read: outside the pipeline's keys, a deletion, superseded, gone.
    Skipped,
}

impl Status {
    /// As the catalog's `status` column holds it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Processed => "processed",
            Status::Failed(_) => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// What became of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogRow {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version id, if the bucket is versioned.
    pub version_id: Option<String>,
    /// ETag from the notification.
    pub etag: Option<String>,
    /// Size in bytes from the notification.
    pub size: Option<u64>,
    /// When the notification says it was uploaded, microseconds since the epoch.
    pub last_modified: Option<i64>,
    /// `processed`, `failed` or `skipped`.
    pub status: Status,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// The pipeline's `[input] format`.
    pub format: String,
    /// Records read, written and rejected (none when the object was not read on its own).
    pub counts: Option<(u64, u64, u64)>,
    /// Where its outputs went.
    pub outputs: Vec<String>,
    /// sha256 of its bytes as stored (when it was read as a stream).
    pub sha256: Option<String>,
    /// The content type its first bytes show.
    pub content_type: Option<&'static str>,
    /// What the resize stage saw of an image.
    pub image: Option<ImageFacts>,
    /// Minimum, maximum and null count of each column written for it.
    pub columns: Vec<ColumnStat>,
}

/// An image's upright size, EXIF orientation and how many renditions were made of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageFacts {
    /// Width as a viewer shows it.
    pub width: u32,
    /// Height as a viewer shows it.
    pub height: u32,
    /// The EXIF orientation, 1–8.
    pub orientation: u8,
    /// Renditions written.
    pub renditions: usize,
}

impl CatalogRow {
    /// A row for `obj`: `status`, and why when it failed or was skipped.
    pub fn new(obj: &ObjectRef, status: Status, reason: Option<String>, format: &str) -> Self {
        CatalogRow {
            bucket: obj.bucket.clone(),
            key: obj.key.clone(),
            version_id: obj.version_id.clone(),
            etag: obj.etag.clone(),
            size: obj.size,
            last_modified: obj
                .event_time
                .as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp_micros()),
            status,
            reason,
            format: format.to_string(),
            counts: None,
            outputs: Vec::new(),
            sha256: None,
            content_type: None,
            image: None,
            columns: Vec::new(),
        }
    }
}

/// The catalog's schema.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("bucket", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("version_id", DataType::Utf8, true),
        Field::new("etag", DataType::Utf8, true),
        Field::new("size", DataType::Int64, true),
        Field::new(
            "last_modified",
            DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("sha256", DataType::Utf8, true),
        Field::new("content_type", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, true),
        Field::new("error_class", DataType::Utf8, true),
        Field::new("format", DataType::Utf8, false),
        Field::new("records_in", DataType::Int64, true),
        Field::new("records_out", DataType::Int64, true),
        Field::new("rejected", DataType::Int64, true),
        Field::new("width", DataType::Int64, true),
        Field::new("height", DataType::Int64, true),
        Field::new("orientation", DataType::Int64, true),
        Field::new("renditions", DataType::Int64, true),
        Field::new(
            "outputs",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        Field::new(
            "columns",
            DataType::List(Arc::new(Field::new(
                "item",
                DataType::Struct(column_fields()),
                true,
            ))),
            false,
        ),
    ]))
}

/// A `columns` entry: one output column's name, Arrow type, rows, nulls and bounds (as text).
fn column_fields() -> Fields {
    Fields::from(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("nulls", DataType::Int64, false),
        Field::new("min", DataType::Utf8, true),
        Field::new("max", DataType::Utf8, true),
    ])
}

/// One row as a batch.
pub fn batch(r: &CatalogRow) -> Result<RecordBatch, Error> {
    let n = |v: Option<u64>| Int64Array::from(vec![v.map(|v| v as i64)]);
    let s = |v: Option<&str>| StringArray::from(vec![v]);
    let mut outputs = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::Utf8,
        true,
    )));
    for o in &r.outputs {
        outputs.values().append_value(o);
    }
    outputs.append(true);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(s(Some(&r.bucket))),
        Arc::new(s(Some(&r.key))),
        Arc::new(s(r.version_id.as_deref())),
        Arc::new(s(r.etag.as_deref())),
        Arc::new(n(r.size)),
        Arc::new(
            arrow_array::TimestampMicrosecondArray::from(vec![r.last_modified])
                .with_timezone("UTC"),
        ),
        Arc::new(s(r.sha256.as_deref())),
        Arc::new(s(r.content_type)),
        Arc::new(s(Some(r.status.as_str()))),
        Arc::new(s(r.reason.as_deref())),
        Arc::new(s(match r.status {
            Status::Failed(class) => Some(class.as_str()),
            _ => None,
        })),
        Arc::new(s(Some(&r.format))),
        Arc::new(n(r.counts.map(|c| c.0))),
        Arc::new(n(r.counts.map(|c| c.1))),
        Arc::new(n(r.counts.map(|c| c.2))),
        Arc::new(n(r.image.map(|i| u64::from(i.width)))),
        Arc::new(n(r.image.map(|i| u64::from(i.height)))),
        Arc::new(n(r.image.map(|i| u64::from(i.orientation)))),
        Arc::new(n(r.image.map(|i| i.renditions as u64))),
        Arc::new(outputs.finish()),
        Arc::new(columns(&r.columns)?),
    ];
    RecordBatch::try_new(schema(), cols).map_err(|e| Error::Internal(format!("catalog row: {e}")))
}

/// The `columns` list of one row.
fn columns(stats: &[ColumnStat]) -> Result<ListArray, Error> {
    let s = |v: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
    let n = |v: Vec<i64>| -> ArrayRef { Arc::new(Int64Array::from(v)) };
    let items = StructArray::try_new(
        column_fields(),
        vec![
            s(stats.iter().map(|c| Some(c.name.as_str())).collect()),
            s(stats.iter().map(|c| Some(c.data_type.as_str())).collect()),
            n(stats.iter().map(|c| c.rows as i64).collect()),
            n(stats.iter().map(|c| c.nulls as i64).collect()),
            s(stats.iter().map(|c| c.min.as_deref()).collect()),
            s(stats.iter().map(|c| c.max.as_deref()).collect()),
        ],
        None,
    )
    .map_err(|e| Error::Internal(format!("catalog columns: {e}")))?;
    let item = Arc::new(Field::new("item", DataType::Struct(column_fields()), true));
    ListArray::try_new(
        item,
        OffsetBuffer::from_lengths([stats.len()]),
        Arc::new(items),
        None,
    )
    .map_err(|e| Error::Internal(format!("catalog columns: {e}")))
}

/// What the catalog learns from an object's bytes as they stream past: their sha256, and the
/// content type their first bytes show.
#[derive(Default)]
pub struct Fingerprint {
    hash: sha2::Sha256,
    head: Vec<u8>,
}

impl Fingerprint {
    /// Take the next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        self.hash.update(bytes);
        if self.head.len() < SNIFF_BYTES {
            let n = (SNIFF_BYTES - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
        }
    }

    /// (sha256 hex, sniffed content type).
    pub fn finish(self) -> (String, &'static str) {
        use sha2::Digest;
        let hex = self
            .hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        (hex, content_type(&self.head))
    }
}

/// An object's reader that feeds a [`Fingerprint`] as it is read; the fingerprint is taken from
/// the returned cell when reading is done.
pub fn fingerprinted(
    inner: crate::store::ByteReader,
) -> (crate::store::ByteReader, Arc<std::sync::Mutex<Fingerprint>>) {
    let seen = Arc::new(std::sync::Mutex::new(Fingerprint::default()));
    let feed = seen.clone();
    let reader = crate::store::Tap::reader(inner, move |bytes: &[u8]| {
        if let Ok(mut f) = feed.lock() {
            f.update(bytes);
        }
        Ok(())
    });
    (reader, seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_hash_every_piece_and_sniff_the_start() {
        let mut f = Fingerprint::default();
        f.update(b"alpha ");
        f.update(b"beta");
        assert_eq!(
            f.finish(),
            (
                "1a989ea86150171c687b0727f218eedbb94c4665a7da9b0add1bf5de607f2bf1".to_string(),
                "text/plain"
            )
        );
    }
}
