//! A store that counts the S3 requests what goes through it would make: for `sluice bench`, which
//! runs the handler over local folders and prices what it asked of S3 as S3 would bill it.
//!
//! Each read is one `GetObject` (a ranged read too), a size one `HeadObject`, a listing one
//! `ListObjectsV2` per 1 000 keys. A written object follows [`S3Store`](super::S3Store)'s own
//! rule: one `PutObject` when it stays under a part ([`PART_BYTES`]) and is never pushed out
//! early, otherwise a multipart upload — `CreateMultipartUpload`, an `UploadPart` each time a
//! part is full (or, under memory pressure, at least [`MIN_PART_BYTES`]), the last part and
//! `CompleteMultipartUpload`. Deletions and aborted uploads are free on S3 and not counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;

use super::{
    At, ByteReader, Dated, MIN_PART_BYTES, ObjectMeta, ObjectStore, ObjectWriter, PART_BYTES,
};
use crate::Error;

/// S3 requests, by how S3 prices them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct S3Requests {
    /// `GetObject`, whole or ranged.
    pub get: u64,
    /// `HeadObject`.
    pub head: u64,
    /// `ListObjectsV2` (one per 1 000 keys).
    pub list: u64,
    /// `PutObject`.
    pub put: u64,
    /// `CreateMultipartUpload`, `UploadPart` and `CompleteMultipartUpload`.
    pub multipart: u64,
    /// Objects written (each a `PutObject` or a multipart upload), for KMS: one data key each
    /// under SSE-KMS without an S3 Bucket Key.
    pub objects_written: u64,
}

impl S3Requests {
    /// The requests S3 prices as PUT, COPY, POST and LIST.
    pub fn tier1(&self) -> u64 {
        self.put + self.multipart + self.list
    }

    /// The requests S3 prices as GET and every other kind.
    pub fn tier2(&self) -> u64 {
        self.get + self.head
    }

    /// These and `other`, added.
    pub fn plus(self, other: S3Requests) -> S3Requests {
        S3Requests {
            get: self.get + other.get,
            head: self.head + other.head,
            list: self.list + other.list,
            put: self.put + other.put,
            multipart: self.multipart + other.multipart,
            objects_written: self.objects_written + other.objects_written,
        }
    }
}

#[derive(Debug, Default)]
struct Counter {
    get: AtomicU64,
    head: AtomicU64,
    list: AtomicU64,
    put: AtomicU64,
    multipart: AtomicU64,
    objects_written: AtomicU64,
}

impl Counter {
    fn add(field: &AtomicU64, n: u64) {
        field.fetch_add(n, Ordering::Relaxed);
    }
}

/// `inner`, with every request it would make of S3 counted.
#[derive(Debug, Clone)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counts: Arc<Counter>,
}

impl CountingStore {
    /// Count what goes through `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        CountingStore {
            inner,
            counts: Arc::default(),
        }
    }

    /// The requests counted since the last call (the counts start again from zero).
    pub fn take(&self) -> S3Requests {
        let c = &self.counts;
        let take = |f: &AtomicU64| f.swap(0, Ordering::Relaxed);
        S3Requests {
            get: take(&c.get),
            head: take(&c.head),
            list: take(&c.list),
            put: take(&c.put),
            multipart: take(&c.multipart),
            objects_written: take(&c.objects_written),
        }
    }
}

impl ObjectStore for CountingStore {
    fn get<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        at: &'a At,
    ) -> BoxFuture<'a, Result<ByteReader, Error>> {
        Counter::add(&self.counts.get, 1);
        self.inner.get(bucket, key, at)
    }

    fn create<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        meta: ObjectMeta<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectWriter>, Error>> {
        async move {
            let inner = self.inner.create(bucket, key, meta).await?;
            Ok(Box::new(CountingWriter {
                inner,
                counts: self.counts.clone(),
                held: 0,
                multipart: false,
            }) as Box<dyn ObjectWriter>)
        }
        .boxed()
    }

    fn size<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        at: &'a At,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        Counter::add(&self.counts.head, 1);
        self.inner.size(bucket, key, at)
    }

    fn get_range<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        at: &'a At,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'a, Result<Bytes, Error>> {
        Counter::add(&self.counts.get, 1);
        self.inner.get_range(bucket, key, at, range)
    }

    fn location(&self, bucket: &str, key: &str) -> String {
        self.inner.location(bucket, key)
    }

    fn list<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, Error>> {
        async move {
            let keys = self.inner.list(bucket, prefix).await?;
            Counter::add(&self.counts.list, pages(keys.len()));
            Ok(keys)
        }
        .boxed()
    }

    fn list_dated<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Dated>, Error>> {
        async move {
            let keys = self.inner.list_dated(bucket, prefix).await?;
            Counter::add(&self.counts.list, pages(keys.len()));
            Ok(keys)
        }
        .boxed()
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        self.inner.delete(bucket, key)
    }

    fn root_uri(&self, bucket: &str) -> Option<String> {
        self.inner.root_uri(bucket)
    }

    fn local_root(&self) -> Option<&std::path::Path> {
        self.inner.local_root()
    }
}

/// `ListObjectsV2` calls for `keys` keys: 1 000 a page, and one call for none.
fn pages(keys: usize) -> u64 {
    keys.div_ceil(1000).max(1) as u64
}

/// A writer whose S3 requests are counted as [`S3Store`](super::S3Store)'s writer makes them.
struct CountingWriter {
    inner: Box<dyn ObjectWriter>,
    counts: Arc<Counter>,
    /// Bytes an S3 writer would hold, not yet sent as a part.
    held: usize,
    /// A multipart upload was started.
    multipart: bool,
}

impl CountingWriter {
    /// A part goes out (the upload is created with the first).
    fn part(&mut self) {
        let created = u64::from(!self.multipart);
        self.multipart = true;
        Counter::add(&self.counts.multipart, 1 + created);
        self.held = 0;
    }
}

impl ObjectWriter for CountingWriter {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), Error>> {
        self.held += data.len();
        if self.held >= PART_BYTES {
            self.part();
        }
        self.inner.write(data)
    }

    fn seal(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        if self.multipart && self.held > 0 {
            self.part();
        }
        self.inner.seal()
    }

    fn complete(&mut self) -> BoxFuture<'_, Result<u64, Error>> {
        async move {
            let size = self.inner.complete().await?;
            if self.multipart {
                if self.held > 0 {
                    self.part();
                }
                Counter::add(&self.counts.multipart, 1);
            } else {
                Counter::add(&self.counts.put, 1);
            }
            Counter::add(&self.counts.objects_written, 1);
            Ok(size)
        }
        .boxed()
    }

    fn abort(&mut self) -> BoxFuture<'_, ()> {
        self.inner.abort()
    }

    fn buffered(&self) -> usize {
        self.inner.buffered()
    }

    fn flush_part(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        if self.held >= MIN_PART_BYTES {
            self.part();
        }
        self.inner.flush_part()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::FsStore;

    #[tokio::test]
    async fn requests_are_counted_as_s3_would_bill_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = CountingStore::new(Arc::new(FsStore::new(dir.path())));
        // A small object: one PutObject.
        crate::store::put(&s, "b", "small", ObjectMeta::typed("x"), vec![1; 1000])
            .await
            .unwrap();
        assert_eq!(
            s.take(),
            S3Requests {
                put: 1,
                objects_written: 1,
                ..S3Requests::default()
            }
        );
        // 20 MiB in 1 MiB writes: two full 8 MiB parts, then the last 4 MiB at completion —
        // create, three parts, complete.
        let mut w = s.create("b", "big", ObjectMeta::typed("x")).await.unwrap();
        for _ in 0..20 {
            w.write(Bytes::from(vec![0u8; 1 << 20])).await.unwrap();
        }
        w.seal().await.unwrap();
        w.complete().await.unwrap();
        assert_eq!(
            s.take(),
            S3Requests {
                multipart: 5,
                objects_written: 1,
                ..S3Requests::default()
            }
        );
        // Reads, sizes, ranges, a listing; the counts start again after each take.
        let mut r = s.get("b", "small", At::latest()).await.unwrap();
        let mut buf = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut buf)
            .await
            .unwrap();
        s.size("b", "small", At::latest()).await.unwrap();
        s.get_range("b", "small", At::latest(), 0..10)
            .await
            .unwrap();
        assert_eq!(s.list("b", "").await.unwrap().len(), 2);
        let got = s.take();
        assert_eq!(
            (got.get, got.head, got.list, got.tier1(), got.tier2()),
            (2, 1, 1, 1, 3)
        );
        assert_eq!(pages(0), 1);
        assert_eq!(pages(1000), 1);
        assert_eq!(pages(1001), 2);
    }
}
