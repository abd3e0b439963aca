//! Where objects are read from and written to: a local folder laid out as `DIR/bucket/key`, or S3.
//!
//! Handlers only see the [`ObjectStore`] trait, so local replay, tests and the Lambda run the same
//! code. Reads are streams and writes are pushed in pieces: memory never depends on object size.

mod fs;
#[cfg(feature = "s3")]
mod s3;

use std::pin::Pin;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::io::AsyncRead;

pub use fs::FsStore;
#[cfg(feature = "s3")]
pub use s3::S3Store;

use crate::Error;

/// An object's bytes as a stream.
pub type ByteReader = Pin<Box<dyn AsyncRead + Send>>;

/// A reader that shows every chunk read through it to `look` on the way (a hash, a count, a
/// limit); an error from `look` fails the read.
pub struct Tap<F> {
    inner: ByteReader,
    look: F,
}

impl<F: FnMut(&[u8]) -> std::io::Result<()> + Send + Unpin + 'static> Tap<F> {
    /// `inner`, with each chunk read shown to `look`.
    pub fn reader(inner: ByteReader, look: F) -> ByteReader {
        Box::pin(Tap { inner, look })
    }
}

impl<F: FnMut(&[u8]) -> std::io::Result<()> + Unpin> AsyncRead for Tap<F> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = this.inner.as_mut().poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &r
            && let Err(e) = (this.look)(&buf.filled()[before..])
        {
            return std::task::Poll::Ready(Err(e));
        }
        r
    }
}

/// Read and write objects by bucket and key.
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Open an object for reading.
    fn get<'a>(&'a self, bucket: &'a str, key: &'a str)
    -> BoxFuture<'a, Result<ByteReader, Error>>;
    /// Start writing an object. Nothing is visible under `key` until [`ObjectWriter::complete`].
    fn create<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectWriter>, Error>>;
    /// The object's size in bytes.
    fn size<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<u64, Error>>;
    /// Bytes `range` of an object (for formats read by range, like Parquet).
    fn get_range<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'a, Result<Bytes, Error>>;
    /// Where this store keeps `bucket/key`, for reports (`s3://…` or a path).
    fn location(&self, bucket: &str, key: &str) -> String;
    /// The keys under `prefix` in `bucket`, sorted (temporary files being written are not listed).
    fn list<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, Error>>;
}

/// The headers an object is written with (S3 keeps them; a folder has nowhere to).
#[derive(Debug, Clone, Copy)]
pub struct ObjectMeta<'a> {
    /// `Content-Type`.
    pub content_type: &'a str,
    /// `Cache-Control`, if any.
    pub cache_control: Option<&'a str>,
}

impl<'a> ObjectMeta<'a> {
    /// Just a content type.
    pub fn typed(content_type: &'a str) -> Self {
        ObjectMeta {
            content_type,
            cache_control: None,
        }
    }
}

/// An object being written.
pub trait ObjectWriter: Send {
    /// Append bytes.
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), Error>>;
    /// Make the object visible, whole. Returns its size in bytes.
    fn complete(&mut self) -> BoxFuture<'_, Result<u64, Error>>;
    /// Give up: nothing (and no partial object) is left behind.
    fn abort(&mut self) -> BoxFuture<'_, ()>;
}

/// Write `bytes` as the whole object `bucket/key`: visible complete, or not at all.
pub async fn put(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    meta: ObjectMeta<'_>,
    bytes: Vec<u8>,
) -> Result<(), Error> {
    let mut w = store.create(bucket, key, meta).await?;
    if let Err(e) = w.write(Bytes::from(bytes)).await {
        w.abort().await;
        return Err(e);
    }
    w.complete().await.map(|_| ())
}

/// A "no such object" error for `location`.
pub fn not_found(location: String) -> Error {
    Error::Missing { location }
}

/// Reads an object by byte range, for Parquet's async reader.
pub struct RangeReader {
    store: std::sync::Arc<dyn ObjectStore>,
    bucket: String,
    key: String,
    size: u64,
}

impl RangeReader {
    /// A reader of `bucket/key`, `size` bytes long.
    pub fn new(store: std::sync::Arc<dyn ObjectStore>, bucket: &str, key: &str, size: u64) -> Self {
        Self {
            store,
            bucket: bucket.to_string(),
            key: key.to_string(),
            size,
        }
    }
}

impl parquet::arrow::async_reader::AsyncFileReader for RangeReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        use futures::FutureExt;
        async move {
            self.store
                .get_range(&self.bucket, &self.key, range)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a parquet::arrow::arrow_reader::ArrowReaderOptions>,
    ) -> BoxFuture<
        'a,
        parquet::errors::Result<std::sync::Arc<parquet::file::metadata::ParquetMetaData>>,
    > {
        use futures::FutureExt;
        async move {
            let size = self.size;
            // One ranged read usually fetches the footer and its metadata together.
            let reader = parquet::file::metadata::ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(64 << 10));
            let md = reader.load_and_finish(&mut *self, size).await?;
            Ok(std::sync::Arc::new(md))
        }
        .boxed()
    }
}
