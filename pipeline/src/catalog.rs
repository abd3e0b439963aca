//! The object catalog an index stage keeps: one row per source object the pipeline met —
//! processed, failed or skipped, with the reason — as Parquet under `{output}/_index/objects/`,
//! one file per object named like its outputs, so a re-run replaces its row instead of adding one.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::Error;
use crate::trigger::ObjectRef;

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
    /// `processed`, `failed` or `skipped`.
    pub status: &'static str,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    /// The pipeline's `[input] format`.
    pub format: String,
    /// Records read, written and rejected (none when the object was not read on its own).
    pub counts: Option<(u64, u64, u64)>,
    /// Where its outputs went.
    pub outputs: Vec<String>,
}

impl CatalogRow {
    /// A row for `obj` with `status`.
    pub fn new(obj: &ObjectRef, status: &'static str, format: &str) -> Self {
        CatalogRow {
            bucket: obj.bucket.clone(),
            key: obj.key.clone(),
            version_id: obj.version_id.clone(),
            etag: obj.etag.clone(),
            size: obj.size,
            status,
            reason: None,
            format: format.to_string(),
            counts: None,
            outputs: Vec::new(),
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
        Field::new("status", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, true),
        Field::new("format", DataType::Utf8, false),
        Field::new("records_in", DataType::Int64, true),
        Field::new("records_out", DataType::Int64, true),
        Field::new("rejected", DataType::Int64, true),
        Field::new(
            "outputs",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
    ]))
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
        Arc::new(s(Some(r.status))),
        Arc::new(s(r.reason.as_deref())),
        Arc::new(s(Some(&r.format))),
        Arc::new(n(r.counts.map(|c| c.0))),
        Arc::new(n(r.counts.map(|c| c.1))),
        Arc::new(n(r.counts.map(|c| c.2))),
        Arc::new(outputs.finish()),
    ];
    RecordBatch::try_new(schema(), cols).map_err(|e| Error::Io(format!("catalog row: {e}")))
}

/// The row as a Parquet file.
pub fn parquet(r: &CatalogRow) -> Result<Vec<u8>, Error> {
    let b = batch(r)?;
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, b.schema(), None)
        .map_err(|e| Error::Io(format!("catalog: {e}")))?;
    w.write(&b)
        .and_then(|()| w.close().map(|_| ()))
        .map_err(|e| Error::Io(format!("catalog: {e}")))?;
    Ok(buf)
}
