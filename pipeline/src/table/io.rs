//! The Iceberg crate's storage over Sluice's own object stores: every data, manifest and
//! metadata file of a table is read and written through the [`ObjectStore`] the pipeline writes
//! its outputs with (the same S3 client, deadline, encryption settings and retries; a local
//! folder for replay), never through a second client.
//!
//! A table file's URI is the store's [`ObjectStore::root_uri`] for the bucket followed by its
//! key (`s3://bucket/key`, `file:///abs/folder/key`); a URI outside that root is refused (a
//! catalog naming files elsewhere cannot make the pipeline read or write there).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use iceberg::io::{
    FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig,
    StorageFactory,
};
use iceberg::{ErrorKind, Result};

use crate::Error;
use crate::store::{At, ObjectMeta, ObjectStore, ObjectWriter};

/// `Content-Type` of table metadata (JSON) and manifests (Avro).
const METADATA_TYPE: &str = "application/octet-stream";

/// One bucket of an object store, as the Iceberg crate's storage.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoreIo {
    /// Not serialized: the crate's storage types are serializable (to ship a table's I/O to
    /// other processes), which Sluice never does; one deserialized has no store and fails.
    #[serde(skip)]
    store: Option<Arc<dyn ObjectStore>>,
    bucket: String,
    /// What every URI of this bucket starts with.
    root: String,
    /// Files in the store's other buckets are this table's too (a REST catalog, S3 Tables
    /// among them, chooses where a table lives).
    any_bucket: bool,
}

impl StoreIo {
    /// `bucket` of `store`, or why a table cannot live there.
    pub fn new(store: Arc<dyn ObjectStore>, bucket: &str) -> std::result::Result<Self, String> {
        let root = store.root_uri(bucket).ok_or_else(|| {
            format!(
                "{} cannot hold a table: its objects have no URI",
                store.location(bucket, "")
            )
        })?;
        Ok(Self {
            store: Some(store),
            bucket: bucket.to_string(),
            root,
            any_bucket: false,
        })
    }

    /// The same storage, taking `s3://other-bucket/key` too (a catalog that chooses where its
    /// tables live).
    pub fn any_bucket(mut self) -> Self {
        self.any_bucket = true;
        self
    }

    /// The bucket and key a URI names, or an error when it is not this storage's.
    pub(crate) fn locate<'p>(&'p self, path: &'p str) -> Result<(&'p str, &'p str)> {
        if let Ok(key) = self.key(path) {
            return Ok((&self.bucket, key));
        }
        // Another bucket of the same store: `s3://b/k` when the home root is `s3://…`.
        if self.any_bucket
            && let Some(scheme) = self.root.split_once("://").map(|(s, _)| s)
            && scheme != "file"
            && let Some(rest) = path.strip_prefix(&format!("{scheme}://")[..])
            && let Some((bucket, key)) = rest.split_once('/')
            && !bucket.is_empty()
            && !key.is_empty()
        {
            return Ok((bucket, key));
        }
        self.key(path).map(|k| (self.bucket.as_str(), k))
    }

    /// The URI of `key`.
    pub fn uri(&self, key: &str) -> String {
        format!("{}{}", self.root, key.trim_start_matches('/'))
    }

    /// The URI of `key` in `bucket` (this storage's bucket, or another of its store).
    pub fn uri_in(&self, bucket: &str, key: &str) -> String {
        if bucket == self.bucket {
            return self.uri(key);
        }
        match self.store.as_ref().and_then(|s| s.root_uri(bucket)) {
            Some(root) => format!("{root}{}", key.trim_start_matches('/')),
            None => format!("{bucket}/{key}"),
        }
    }

    /// The key a URI names, or an error when it is not under this bucket.
    pub fn key<'p>(&self, path: &'p str) -> Result<&'p str> {
        // `file:/abs` and `file:///abs` are one file; catalogs and readers write either.
        let rest = path.strip_prefix(&self.root).or_else(|| {
            let alt = self.root.strip_prefix("file://")?;
            path.strip_prefix("file:")
                .and_then(|p| p.strip_prefix(alt))
                .or_else(|| path.strip_prefix(alt))
        });
        match rest {
            Some(k) if !k.is_empty() => Ok(k),
            _ => Err(iceberg::Error::new(
                ErrorKind::DataInvalid,
                format!(
                    "{path} is not under the table's storage root {}; sluice reads and writes a table's files only there",
                    self.root
                ),
            )),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object store.
    pub(crate) fn store(&self) -> Result<&Arc<dyn ObjectStore>> {
        self.store.as_ref().ok_or_else(|| {
            iceberg::Error::new(
                ErrorKind::Unexpected,
                "a table storage without its object store (deserialized)",
            )
        })
    }
}

/// A Sluice error as the Iceberg crate's, retryable when a retry may succeed.
pub fn to_iceberg(e: Error) -> iceberg::Error {
    let retry = e.retryable();
    iceberg::Error::new(ErrorKind::Unexpected, e.to_string()).with_retryable(retry)
}

#[async_trait::async_trait]
#[typetag::serde(name = "sluice")]
impl Storage for StoreIo {
    async fn exists(&self, path: &str) -> Result<bool> {
        let (bucket, key) = self.locate(path)?;
        match self.store()?.size(bucket, key, At::own()).await {
            Ok(_) => Ok(true),
            Err(e) if e.missing() => Ok(false),
            Err(e) => Err(to_iceberg(e)),
        }
    }

    async fn metadata(&self, path: &str) -> Result<FileMetadata> {
        let (bucket, key) = self.locate(path)?;
        let size = self
            .store()?
            .size(bucket, key, At::own())
            .await
            .map_err(to_iceberg)?;
        Ok(FileMetadata { size })
    }

    async fn read(&self, path: &str) -> Result<Bytes> {
        let (bucket, key) = self.locate(path)?;
        let store = self.store()?;
        let size = store
            .size(bucket, key, At::own())
            .await
            .map_err(to_iceberg)?;
        store
            .get_range(bucket, key, At::own(), 0..size)
            .await
            .map_err(to_iceberg)
    }

    async fn reader(&self, path: &str) -> Result<Box<dyn FileRead>> {
        let (bucket, key) = self.locate(path)?;
        Ok(Box::new(Reader {
            store: self.store()?.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
        }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> Result<()> {
        let mut w = self.writer(path).await?;
        w.write(bs).await?;
        w.close().await
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn FileWrite>> {
        let (bucket, key) = self.locate(path)?;
        let content_type = if key.ends_with(".parquet") {
            crate::write::PARQUET_TYPE
        } else {
            METADATA_TYPE
        };
        let inner = self
            .store()?
            .create(bucket, key, ObjectMeta::typed(content_type))
            .await
            .map_err(to_iceberg)?;
        Ok(Box::new(Writer { inner: Some(inner) }))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        let (bucket, key) = self.locate(path)?;
        self.store()?.delete(bucket, key).await.map_err(to_iceberg)
    }

    async fn delete_prefix(&self, path: &str) -> Result<()> {
        let (bucket, prefix) = self.locate(path)?;
        let prefix = format!("{}/", prefix.trim_end_matches('/'));
        let store = self.store()?;
        for key in store.list(bucket, &prefix).await.map_err(to_iceberg)? {
            store.delete(bucket, &key).await.map_err(to_iceberg)?;
        }
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> Result<()> {
        use futures::StreamExt;
        while let Some(p) = paths.next().await {
            self.delete(&p).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> Result<InputFile> {
        self.locate(path)?;
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> Result<OutputFile> {
        self.locate(path)?;
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Ranged reads of one table file.
struct Reader {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    key: String,
}

#[async_trait::async_trait]
impl FileRead for Reader {
    async fn read(&self, range: Range<u64>) -> Result<Bytes> {
        self.store
            .get_range(&self.bucket, &self.key, At::own(), range)
            .await
            .map_err(to_iceberg)
    }
}

/// A table file being written: visible whole when closed, and nothing (no partial object, no
/// open upload) when dropped unclosed.
struct Writer {
    inner: Option<Box<dyn ObjectWriter>>,
}

#[async_trait::async_trait]
impl FileWrite for Writer {
    async fn write(&mut self, bs: Bytes) -> Result<()> {
        let w = self.inner.as_mut().ok_or_else(closed)?;
        if let Err(e) = w.write(bs).await {
            if let Some(mut w) = self.inner.take() {
                w.abort().await;
            }
            return Err(to_iceberg(e));
        }
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        let mut w = self.inner.take().ok_or_else(closed)?;
        match w.complete().await {
            Ok(_) => Ok(()),
            Err(e) => {
                w.abort().await;
                Err(to_iceberg(e))
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Dropped unclosed (the write failed, or the work was given up): abort it off this
        // thread, so no temporary file or open multipart upload is left behind.
        if let Some(mut w) = self.inner.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = tokio::time::timeout(crate::store::CLEANUP_GRACE, w.abort()).await;
            });
        }
    }
}

fn closed() -> iceberg::Error {
    iceberg::Error::new(ErrorKind::Unexpected, "write to a closed table file")
}

/// Hands the catalog's `FileIO` the [`StoreIo`] it was made with.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct StoreIoFactory {
    #[serde(skip)]
    io: Option<StoreIo>,
}

impl StoreIoFactory {
    /// A factory of `io`.
    pub fn new(io: StoreIo) -> Self {
        Self { io: Some(io) }
    }
}

#[typetag::serde(name = "sluice")]
impl StorageFactory for StoreIoFactory {
    fn build(&self, _config: &StorageConfig) -> Result<Arc<dyn Storage>> {
        match &self.io {
            Some(io) => Ok(Arc::new(io.clone())),
            None => Err(iceberg::Error::new(
                ErrorKind::Unexpected,
                "a table storage factory without its object store (deserialized)",
            )),
        }
    }
}
