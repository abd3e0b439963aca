//! Writing results (the sinks): Parquet or NDJSON files (Hive-partitioned when asked), and NDJSON rejects.
//!
//! Files are streamed to the store as they are encoded: Parquet row groups are closed at
//! `max_row_group_bytes`, so an output of any size needs one row group of memory per open file,
//! and S3 outputs go up in multipart parts. Names are deterministic functions of the source object,
//! so a retried invocation overwrites instead of duplicating.
//!
//! `files`: Parquet and NDJSON files, partitioned, streamed, staged for publication;
//! `rejects`: the NDJSON rejects file; `index`: the term index of the rows written;
//! `names`: deterministic output names; `staging`: a unit's sealed files, published together.

mod files;
mod index;
pub mod names;
mod rejects;
mod staging;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use arrow_array::RecordBatch;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::Error;
use crate::config::Destination;
use crate::store::{FsStore, ObjectStore};

pub(crate) use files::partition_rows;
pub use files::{Outputs, RELIEF_FLOOR_BYTES};
pub use names::*;
pub use rejects::{REJECTS_EXT, Rejects};
pub use staging::Staging;

/// Resolve a destination to the store that holds it, its bucket and key prefix (`None` for a
/// stream or the answer to Firehose, which are not stores).
pub fn resolve(
    dest: &Destination,
    object_store: &Arc<dyn ObjectStore>,
) -> Option<(Arc<dyn ObjectStore>, String, String)> {
    match dest {
        Destination::S3 { bucket, prefix } => {
            Some((object_store.clone(), bucket.clone(), prefix.clone()))
        }
        Destination::Dir(path) => {
            Some((Arc::new(FsStore::flat(path)), String::new(), String::new()))
        }
        Destination::Kinesis { .. } | Destination::Firehose => None,
    }
}

/// Parquet's `Content-Type`.
pub const PARQUET_TYPE: &str = "application/vnd.apache.parquet";

/// One batch as a small zstd Parquet file in memory (index and catalog files).
pub fn parquet_file(batch: &RecordBatch) -> Result<Vec<u8>, Error> {
    let props = WriterProperties::builder()
        .set_compression(PqCompression::ZSTD(ZstdLevel::default()))
        .build();
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))
        .map_err(|e| Error::Internal(format!("writing Parquet: {e}")))?;
    w.write(batch)
        .and_then(|()| w.close().map(|_| ()))
        .map_err(|e| Error::Internal(format!("writing Parquet: {e}")))?;
    Ok(buf)
}
