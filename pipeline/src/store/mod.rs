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
        content_type: &'a str,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectWriter>, Error>>;
    /// Where this store keeps `bucket/key`, for reports (`s3://…` or a path).
    fn location(&self, bucket: &str, key: &str) -> String;
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

/// A "no such object" error for `location`.
pub fn not_found(location: String) -> Error {
    Error::Store {
        location,
        message: "no such object (deleted, or never written?)".into(),
        retryable: false,
    }
}
