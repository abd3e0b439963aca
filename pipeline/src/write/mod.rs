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

/// `props` with the dictionaries [`dictionary_choices`] picks for a file whose first batch is
/// `first`.
pub(crate) fn with_dictionaries(props: WriterProperties, first: &RecordBatch) -> WriterProperties {
    let mut b = props.into_builder();
    for (column, on) in dictionary_choices(first) {
        b = b.set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from(column), on);
    }
    b.build()
}

/// Rows of a file's first batch that [`dictionary_choices`] looks at, and the fewest it decides on.
const DICTIONARY_SAMPLE_ROWS: usize = 2048;
const DICTIONARY_MIN_ROWS: usize = 1024;

/// Which top-level columns of a Parquet file are worth a dictionary, judged on its first batch:
/// a column gets one when its values, dictionary-encoded (each distinct value once, then an
/// index of as many bits as the distinct count needs for every value), are smaller than written
/// plainly — as DuckDB's writer decides. Without this every column had one: a column whose values
/// barely repeat (timestamps, ids, sums) was interned value by value into a table that outgrew
/// the cache, for a dictionary larger than the values and then dropped past its 1 MiB page
/// limit — a fifth of the time of NDJSON → filter → Parquet, for a file 7% larger after zstd.
/// Columns of other types (nested, booleans), and first batches under
/// [`DICTIONARY_MIN_ROWS`] rows, keep Parquet's default.
pub(crate) fn dictionary_choices(batch: &RecordBatch) -> Vec<(String, bool)> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_schema::DataType;
    use std::hash::BuildHasher;
    let rows = batch.num_rows().min(DICTIONARY_SAMPLE_ROWS);
    if rows < DICTIONARY_MIN_ROWS {
        return Vec::new();
    }
    // Values are told apart by a 64-bit hash (or, up to 8 bytes wide, by their bits): a size
    // estimate does not need more, and a set of words is a fraction of a set of byte strings
    // (which was 4% of a 10 000-record Kinesis batch).
    let hasher = hashbrown::DefaultHashBuilder::default();
    let mut distinct = hashbrown::HashSet::with_capacity(rows);
    let mut out = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let column = column.slice(0, rows);
        distinct.clear();
        // Bytes of the values written plainly, and of the distinct ones.
        let (mut plain, mut dictionary, mut count) = (0, 0, 0);
        let mut add = |key: u64, size: usize| {
            plain += size;
            count += 1;
            if distinct.insert(key) {
                dictionary += size;
            }
        };
        let bytes = |v: &[u8]| hasher.hash_one(v);
        match column.data_type() {
            DataType::Utf8 => {
                for v in column.as_string::<i32>().iter().flatten() {
                    add(bytes(v.as_bytes()), v.len() + 4);
                }
            }
            DataType::LargeUtf8 => {
                for v in column.as_string::<i64>().iter().flatten() {
                    add(bytes(v.as_bytes()), v.len() + 4);
                }
            }
            DataType::Binary => {
                for v in column.as_binary::<i32>().iter().flatten() {
                    add(bytes(v), v.len() + 4);
                }
            }
            DataType::LargeBinary => {
                for v in column.as_binary::<i64>().iter().flatten() {
                    add(bytes(v), v.len() + 4);
                }
            }
            dt => match dt.primitive_width() {
                Some(width) if dt.is_primitive() => {
                    let data = column.to_data();
                    let Some(buffer) = data.buffers().first() else {
                        continue;
                    };
                    let at = data.offset() * width;
                    let Some(values) = buffer.as_slice().get(at..at + rows * width) else {
                        continue;
                    };
                    for (i, v) in values.chunks_exact(width).enumerate() {
                        if data.is_valid(i) {
                            let key = if width <= 8 {
                                let mut word = [0u8; 8];
                                word[..width].copy_from_slice(v);
                                u64::from_le_bytes(word)
                            } else {
                                bytes(v)
                            };
                            add(key, width);
                        }
                    }
                }
                _ => continue,
            },
        }
        if count == 0 {
            continue;
        }
        let bits = usize::BITS - (distinct.len().max(2) - 1).leading_zeros();
        let indexes = (count * bits as usize).div_ceil(8);
        out.push((field.name().clone(), dictionary + indexes < plain));
    }
    out
}

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
