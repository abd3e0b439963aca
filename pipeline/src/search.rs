//! `sluice search`: BM25 over a term index the index stage wrote, in a folder or under an S3 prefix.

use std::sync::Arc;

use arrow_array::RecordBatch;
use sluice_processors::index::Hit;
use sluice_processors::tokenize::Tokenizer;
use tokio::io::AsyncReadExt;

use crate::Error;
use crate::store::ObjectStore;

/// Rank the documents of the index under `prefix` (the index stage's output location, holding
/// `_index/terms/` and `_index/docs/`) for `query`; the best `limit`, best first.
pub async fn search(
    store: Arc<dyn ObjectStore>,
    bucket: &str,
    prefix: &str,
    query: &str,
    limit: usize,
) -> Result<Vec<Hit>, Error> {
    let prefix = match prefix {
        "" => String::new(),
        p if p.ends_with('/') => p.to_string(),
        p => format!("{p}/"),
    };
    let terms = read_all(&store, bucket, &format!("{prefix}_index/terms/")).await?;
    let docs = read_all(&store, bucket, &format!("{prefix}_index/docs/")).await?;
    if terms.is_empty() {
        return Err(Error::Data(format!(
            "no term index at {} (expected Parquet files under _index/terms/, written by an index stage)",
            store.location(bucket, &prefix)
        )));
    }
    sluice_processors::index::search(&terms, &docs, query, &Tokenizer::default(), limit)
        .map_err(Error::Io)
}

async fn read_all(
    store: &Arc<dyn ObjectStore>,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<RecordBatch>, Error> {
    let mut out = Vec::new();
    for key in store.list(bucket, prefix).await? {
        if !key.ends_with(".parquet") {
            continue;
        }
        let mut bytes = Vec::new();
        store
            .get(bucket, &key, crate::store::At::latest())
            .await?
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| Error::Io(format!("{}: {e}", store.location(bucket, &key))))?;
        let bad = |e: parquet::errors::ParquetError| {
            Error::Data(format!(
                "{}: not a readable Parquet file: {e}",
                store.location(bucket, &key)
            ))
        };
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(bytes),
        )
        .map_err(bad)?
        .build()
        .map_err(bad)?;
        for b in reader {
            out.push(b.map_err(|e| Error::Data(format!("{}: {e}", store.location(bucket, &key))))?);
        }
    }
    Ok(out)
}
