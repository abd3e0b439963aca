//! Where objects are read from and written to: a local folder laid out as `DIR/bucket/key`, or S3.
//!
//! Handlers only see the [`ObjectStore`] trait, so local replay, tests and the Lambda run the same
//! code. Reads are streams and writes are pushed in pieces: memory never depends on object size.

mod counting;
mod fs;
#[cfg(feature = "s3")]
mod s3;

use std::pin::Pin;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::io::AsyncRead;

pub use counting::{CountingStore, S3Requests};
pub use fs::FsStore;
#[cfg(feature = "s3")]
pub use s3::S3Store;

use crate::Error;

/// Parts of S3 multipart uploads are this large (8 MiB); objects smaller than one part are one
/// PutObject.
pub const PART_BYTES: usize = 8 << 20;

/// S3's smallest part (all but the last): what [`ObjectWriter::flush_part`] sends early.
pub const MIN_PART_BYTES: usize = 5 << 20;

/// An object's bytes as a stream.
pub type ByteReader = Pin<Box<dyn AsyncRead + Send>>;

tokio::task_local! {
    /// When the current invocation's requests must be done by (see [`with_deadline`]).
    static DEADLINE: std::time::Instant;
}

/// Run `work` with every request the stores and the Kinesis output make inside it (and every
/// read of an object's body) bounded by `deadline`: a request that stalls past it fails as a
/// retryable error for its location, through the usual clean-up (aborted uploads, a failed
/// object, batch item failures), instead of hanging the invocation until Lambda kills it.
pub async fn with_deadline<F: std::future::Future>(
    deadline: Option<std::time::Instant>,
    work: F,
) -> F::Output {
    match deadline {
        Some(d) => DEADLINE.scope(d, work).await,
        None => work.await,
    }
}

/// The deadline requests made now must meet, if [`with_deadline`] set one.
pub fn request_deadline() -> Option<std::time::Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// The error of a request the invocation's deadline cut short.
pub fn past_deadline(location: impl Into<String>) -> Error {
    Error::Store {
        location: location.into(),
        message: "no answer before the invocation's deadline (the request stalled, or the \
                  function's timeout is too short for this work)"
            .into(),
        retryable: true,
    }
}

/// `work`, or [`past_deadline`] for `location` when the current deadline comes first.
pub async fn bounded<T, F>(location: &str, work: F) -> Result<T, Error>
where
    F: std::future::Future<Output = Result<T, Error>>,
{
    match request_deadline() {
        Some(d) => tokio::time::timeout_at(d.into(), work)
            .await
            .unwrap_or_else(|_| Err(past_deadline(location))),
        None => work.await,
    }
}

/// Clean-up after a failure (aborting an upload) may take this long, deadline or not: it is one
/// small request, and leaving it undone costs only an incomplete upload that a bucket lifecycle
/// rule removes.
pub const CLEANUP_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// A reader that fails with [`past_deadline`] once `deadline` passes while it waits for bytes.
struct DeadlineReader {
    inner: ByteReader,
    timer: Pin<Box<tokio::time::Sleep>>,
    location: String,
}

/// `inner`, bounded by the current deadline when there is one.
pub fn bounded_reader(inner: ByteReader, location: &str) -> ByteReader {
    match request_deadline() {
        Some(d) => Box::pin(DeadlineReader {
            inner,
            timer: Box::pin(tokio::time::sleep_until(d.into())),
            location: location.to_string(),
        }),
        None => inner,
    }
}

impl AsyncRead for DeadlineReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::future::Future;
        use std::task::Poll;
        let this = &mut *self;
        match this.inner.as_mut().poll_read(cx, buf) {
            Poll::Pending => {}
            done => return done,
        }
        match this.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                past_deadline(this.location.clone()).to_string(),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

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

/// Which content of an object a read must see: the one its notification named. S3 reads that
/// version (`versionId`, in a versioned bucket), else only the content with that ETag
/// (`If-Match`): an object overwritten since fails with [`Error::Superseded`] rather than being
/// read as the newer upload, whose own notification reads it. A local folder has one content
/// per key, read as it is. The default is the current content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct At {
    /// The version the notification named.
    pub version_id: Option<String>,
    /// The content's ETag the notification named (quotes optional).
    pub etag: Option<String>,
    /// An object this pipeline wrote and reads back on purpose (a table's metadata and
    /// manifests): the recursive-invocation guard, which refuses to read the pipeline's own
    /// outputs as input, does not apply.
    pub own: bool,
}

impl At {
    /// Whatever the object holds now.
    pub fn latest() -> &'static At {
        static LATEST: At = At {
            version_id: None,
            etag: None,
            own: false,
        };
        &LATEST
    }

    /// Whatever the object holds now, read back by the pipeline that wrote it (see [`At::own`]).
    pub fn own() -> &'static At {
        static OWN: At = At {
            version_id: None,
            etag: None,
            own: true,
        };
        &OWN
    }

    /// The version, else the ETag (quoted, as `If-Match` wants it), to ask for.
    pub fn pin(&self) -> (Option<String>, Option<String>) {
        match (&self.version_id, &self.etag) {
            (Some(v), _) => (Some(v.clone()), None),
            (None, Some(e)) if !e.is_empty() => (
                None,
                Some(if e.starts_with('"') {
                    e.clone()
                } else {
                    format!("\"{e}\"")
                }),
            ),
            _ => (None, None),
        }
    }
}

/// A key and when its object was last written, where the store tells.
pub type Dated = (String, Option<std::time::SystemTime>);

/// Read and write objects by bucket and key.
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Open an object for reading, at the content `at` names.
    fn get<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        at: &'a At,
    ) -> BoxFuture<'a, Result<ByteReader, Error>>;
    /// Start writing an object. Nothing is visible under `key` until [`ObjectWriter::complete`].
    fn create<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectWriter>, Error>>;
    /// The object's size in bytes, at the content `at` names.
    fn size<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        at: &'a At,
    ) -> BoxFuture<'a, Result<u64, Error>>;
    /// Bytes `range` of an object at the content `at` names (for formats read by range, like
    /// Parquet: every range of one file from the same content).
    fn get_range<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        at: &'a At,
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
    /// The keys under `prefix` in `bucket` with when each was last written (where the store
    /// tells), sorted.
    fn list_dated<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Dated>, Error>> {
        use futures::FutureExt;
        async move {
            let keys = self.list(bucket, prefix).await?;
            Ok(keys.into_iter().map(|k| (k, None)).collect())
        }
        .boxed()
    }
    /// Remove an object (none there is not an error): taking back what a unit published when a
    /// later object of the same unit could not be.
    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), Error>>;
    /// The URI that key `K` of `bucket` is `URI` + `K` under, for formats that name their files
    /// by URI (an Iceberg table's metadata): `s3://bucket/`, or `file:///abs/folder/`. `None`
    /// when the store has no such names.
    fn root_uri(&self, _bucket: &str) -> Option<String> {
        None
    }
    /// The local folder this store keeps its objects in, if it is one.
    fn local_root(&self) -> Option<&std::path::Path> {
        None
    }
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
    /// Every byte is written: send what is still held where the store can without making the
    /// object visible (an S3 multipart upload's last part; a file flushed under its temporary
    /// name), so that [`ObjectWriter::complete`] is one quick step that seldom fails.
    fn seal(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
    /// Make the object visible, whole. Returns its size in bytes.
    fn complete(&mut self) -> BoxFuture<'_, Result<u64, Error>>;
    /// Give up: nothing (and no partial object) is left behind.
    fn abort(&mut self) -> BoxFuture<'_, ()>;
    /// Bytes written but held in memory, not yet sent (an S3 part being gathered).
    fn buffered(&self) -> usize {
        0
    }
    /// Send what is held now if the store can (an S3 part of at least its 5 MiB minimum), to
    /// free memory under pressure.
    fn flush_part(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
}

/// An object written whole and sealed, not yet visible: one of the outputs of a unit of work,
/// published together with the others ([`publish`]) or dropped with them ([`discard`]).
pub struct Staged {
    writer: Box<dyn ObjectWriter>,
    store: std::sync::Arc<dyn ObjectStore>,
    bucket: String,
    key: String,
}

impl Staged {
    /// `writer`, sealed, which writes `bucket/key` of `store`; on failure it is aborted.
    pub async fn seal(
        mut writer: Box<dyn ObjectWriter>,
        store: std::sync::Arc<dyn ObjectStore>,
        bucket: &str,
        key: &str,
    ) -> Result<Staged, Error> {
        if let Err(e) = writer.seal().await {
            writer.abort().await;
            return Err(e);
        }
        Ok(Staged {
            writer,
            store,
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }

    /// Where it will be.
    pub fn location(&self) -> String {
        self.store.location(&self.bucket, &self.key)
    }
}

/// Make every staged object visible, in order: their locations. When one cannot be, the rest are
/// dropped and those already made visible are deleted again, so a unit's outputs are all there
/// or none is (a process killed between two of them may leave the first; the unit's redelivery
/// writes the same names again).
pub async fn publish(staged: Vec<Staged>) -> Result<Vec<String>, Error> {
    let mut done: Vec<Staged> = Vec::with_capacity(staged.len());
    let mut rest = staged.into_iter();
    while let Some(mut s) = rest.next() {
        if let Err(e) = s.writer.complete().await {
            s.writer.abort().await;
            discard(rest.collect()).await;
            for d in done {
                retract(d).await;
            }
            return Err(e);
        }
        done.push(s);
    }
    Ok(done.iter().map(Staged::location).collect())
}

/// Take back a published object, within the clean-up grace (the deadline has often passed).
async fn retract(s: Staged) {
    let Staged {
        store, bucket, key, ..
    } = s;
    let location = store.location(&bucket, &key);
    match tokio::time::timeout(CLEANUP_GRACE, store.delete(&bucket, &key)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(%location, error = %e, "Could not take back an output of a failed unit.")
        }
        Err(_) => tracing::warn!(%location, "No answer to taking back an output of a failed unit."),
    }
}

/// Drop staged objects without making any visible.
pub async fn discard(staged: Vec<Staged>) {
    for mut s in staged {
        s.writer.abort().await;
    }
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
    Error::Missing {
        location,
        looked_for: None,
    }
}

/// Reads an object by byte range, for Parquet's async reader.
pub struct RangeReader {
    store: std::sync::Arc<dyn ObjectStore>,
    bucket: String,
    key: String,
    at: At,
    size: u64,
}

impl RangeReader {
    /// A reader of `bucket/key` at the content `at` names, `size` bytes long.
    pub fn new(
        store: std::sync::Arc<dyn ObjectStore>,
        bucket: &str,
        key: &str,
        at: At,
        size: u64,
    ) -> Self {
        Self {
            store,
            bucket: bucket.to_string(),
            key: key.to_string(),
            at,
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
                .get_range(&self.bucket, &self.key, &self.at, range)
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
        use parquet::errors::ParquetError;
        use parquet::file::metadata::{FooterTail, ParquetMetaDataReader};
        use sluice_processors::decode::parquet_footer::{MAX_PARQUET_NESTING, check_nesting};
        async move {
            let size = self.size;
            if size < 8 {
                return Err(ParquetError::EOF(format!(
                    "it is {size} bytes, shorter than a Parquet footer"
                )));
            }
            // One ranged read usually fetches the footer and its metadata together.
            let start = size.saturating_sub(64 << 10);
            let tail = self.get_bytes(start..size).await?;
            let (rest, last8) = tail.split_at(tail.len().saturating_sub(8));
            let footer = FooterTail::try_from(last8)?;
            if footer.is_encrypted_footer() {
                return Err(ParquetError::General(
                    "its footer is encrypted, which sluice does not read".into(),
                ));
            }
            let len = footer.metadata_length();
            if len as u64 + 8 > size {
                return Err(ParquetError::EOF(format!(
                    "its footer says the metadata is {len} bytes, more than the {size}-byte file holds"
                )));
            }
            let metadata = if len <= rest.len() {
                tail.slice(rest.len() - len..rest.len())
            } else {
                self.get_bytes(size - 8 - len as u64..size - 8).await?
            };
            // Before any tree is built from it: a schema nested thousands deep would overflow
            // the stack of the reader's recursion and abort the process.
            check_nesting(&metadata, MAX_PARQUET_NESTING).map_err(ParquetError::General)?;
            let md = ParquetMetaDataReader::decode_metadata(&metadata)?;
            Ok(std::sync::Arc::new(md))
        }
        .boxed()
    }
}
