//! Decompression of objects and stream records: gzip (every member) and zstd by magic bytes or
//! config, with the inflation limits that stop a decompression bomb.

use std::sync::Arc;

use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use sluice_processors::sniff::GZIP_MAGIC;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::Error;
use crate::config::Compression;
use crate::store::{ByteReader, Tap};

/// A stream record inflates to at most this much (Kinesis records are at most 1 MiB; CloudWatch
/// Logs subscription payloads compress about tenfold).
pub(crate) const MAX_RECORD_INFLATED: u64 = 64 << 20;

/// Inflate a gzip payload into `out`, refusing more than `limit` bytes (a decompression bomb).
pub(crate) fn inflate(gz: &[u8], out: &mut Vec<u8>, limit: u64) -> Result<(), String> {
    use std::io::Read;
    out.clear();
    let mut d = flate2::read::MultiGzDecoder::new(gz).take(limit + 1);
    d.read_to_end(out)
        .map_err(|e| format!("the gzip payload is corrupt or truncated: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!(
            "the gzip payload inflates past {} MiB (a decompression bomb?)",
            limit >> 20
        ));
    }
    Ok(())
}

/// Decompressed bytes any object may reach before its inflation ratio is checked.
const INFLATE_FREE: u64 = 512 << 20;

/// Refuse an object that has inflated past `INFLATE_FREE` and to more than `ratio` times the
/// stored bytes read so far: a decompression bomb (1 GB of zeros is ~1 MB of gzip) is stopped
/// after a bounded amount of work, with its reason, instead of running to the deadline.
fn inflation_check(inflated: u64, stored: u64, ratio: u64) -> std::io::Result<()> {
    let stored = stored.max(1);
    if ratio == 0 || inflated <= INFLATE_FREE || inflated / stored <= ratio {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        format!(
            "it inflates more than {ratio}× ({inflated} bytes from the first {stored} stored \
             bytes), over [input] max_inflate_ratio: refused as a decompression bomb"
        ),
    ))
}

/// Wrap a reader in the decompressor its magic bytes (or the configured compression) call for,
/// refusing more than `max_ratio` inflation past `INFLATE_FREE` (see `inflation_check`).
pub async fn decompress(
    reader: ByteReader,
    compression: Compression,
    max_ratio: u64,
) -> Result<ByteReader, Error> {
    let stored = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = stored.clone();
    // The stored bytes' own read errors are marked, so that what comes out of a decoder can be
    // told apart: theirs may pass on a retry, the decoder's (corrupt input) never do.
    let reader: ByteReader = Box::pin(MapErr {
        inner: reader,
        f: mark_stored,
    });
    let reader = Tap::reader(reader, move |b: &[u8]| {
        count.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    });
    let mut r = BufReader::with_capacity(256 << 10, reader);
    let kind = match compression {
        Compression::Auto => {
            let head = r
                .fill_buf()
                .await
                .map_err(|e| Error::Io(format!("reading failed: {}", classify(e))))?;
            if head.starts_with(&GZIP_MAGIC) {
                Compression::Gzip
            } else if sluice_processors::sniff::is_zstd(head) {
                Compression::Zstd
            } else {
                Compression::None
            }
        }
        other => other,
    };
    let inflating: ByteReader = match kind {
        Compression::Gzip => Box::pin(GzipMembers::new(r)),
        Compression::Zstd => {
            let mut d = ZstdDecoder::new(r);
            d.multiple_members(true);
            Box::pin(d)
        }
        _ => {
            return Ok(Box::pin(MapErr {
                inner: Box::pin(r),
                f: classify,
            }));
        }
    };
    let inflating: ByteReader = Box::pin(MapErr {
        inner: inflating,
        f: classify,
    });
    let mut inflated = 0u64;
    Ok(Tap::reader(inflating, move |b: &[u8]| {
        inflated += b.len() as u64;
        inflation_check(
            inflated,
            stored.load(std::sync::atomic::Ordering::Relaxed),
            max_ratio,
        )
    }))
}

/// A read error of the stored bytes (the network, a file), carried through a decoder unchanged.
#[derive(Debug)]
struct Stored(std::io::Error);

impl std::fmt::Display for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Stored {}

fn mark_stored(e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), Stored(e))
}

/// What a read error out of a decoder is: a read of the stored bytes that failed, as it was
/// (retried or not as its kind says), or else the decoder's own, which is the input being corrupt
/// (`InvalidData`: a retry reads the same bytes). Decoders report corrupt input as `Other` and
/// other kinds; only the stored read's kind says anything about a retry.
fn classify(e: std::io::Error) -> std::io::Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Stored>()) {
        let kind = e.kind();
        return match e.into_inner().map(|b| b.downcast::<Stored>()) {
            Some(Ok(stored)) => stored.0,
            _ => std::io::Error::from(kind),
        };
    }
    match e.kind() {
        std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => e,
        _ => std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    }
}

/// A reader whose errors pass through `f` (and which reads nothing in a call that fails).
struct MapErr {
    inner: ByteReader,
    f: fn(std::io::Error) -> std::io::Error,
}

impl tokio::io::AsyncRead for MapErr {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let f = self.f;
        let before = buf.filled().len();
        match self.inner.as_mut().poll_read(cx, buf) {
            std::task::Poll::Ready(Err(e)) => {
                // A decoder may give out bytes and fail in one call (async-compression's does
                // when the stream under it fails); `AsyncRead` promises nothing was read then.
                // The read fails as a whole, so those bytes go.
                buf.set_filled(before);
                std::task::Poll::Ready(Err(f(e)))
            }
            other => other,
        }
    }
}

/// gzip members one after another, as `gunzip` reads them: after the last member, zero bytes
/// (the padding some writers and tape-era tools leave) end the stream; anything else there must
/// be another member, or it is an error saying what was found.
struct GzipMembers<R> {
    state: Option<GzipState<R>>,
}

enum GzipState<R> {
    /// Inside a member.
    Member(Box<GzipDecoder<R>>),
    /// Between members: what follows decides.
    Between(R),
}

impl<R: tokio::io::AsyncBufRead + Unpin> GzipMembers<R> {
    fn new(r: R) -> Self {
        Self {
            state: Some(GzipState::Member(Box::new(GzipDecoder::new(r)))),
        }
    }
}

impl<R: tokio::io::AsyncBufRead + Unpin> tokio::io::AsyncRead for GzipMembers<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            match self.state.take() {
                None => return Poll::Ready(Ok(())),
                Some(GzipState::Member(mut d)) => {
                    let before = buf.filled().len();
                    let polled = std::pin::Pin::new(&mut d).poll_read(cx, buf);
                    match polled {
                        Poll::Ready(Ok(())) if buf.filled().len() == before => {
                            // The member ended: its trailer was read, nothing past it.
                            self.state = Some(GzipState::Between(d.into_inner()));
                        }
                        other => {
                            self.state = Some(GzipState::Member(d));
                            return other;
                        }
                    }
                }
                Some(GzipState::Between(mut r)) => {
                    let head = match std::pin::Pin::new(&mut r).poll_fill_buf(cx) {
                        Poll::Pending => {
                            self.state = Some(GzipState::Between(r));
                            return Poll::Pending;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(head)) => head,
                    };
                    if head.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    if head.starts_with(&GZIP_MAGIC[..1]) {
                        self.state = Some(GzipState::Member(Box::new(GzipDecoder::new(r))));
                    } else if let Some(at) = head.iter().position(|&b| b != 0) {
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!(
                                "after a complete gzip member comes byte 0x{:02x}, which is neither another \
                                 member nor zero padding",
                                head[at]
                            ),
                        )));
                    } else {
                        let n = head.len();
                        std::pin::Pin::new(&mut r).consume(n);
                        self.state = Some(GzipState::Between(r));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::read::read_error;
    use std::io::Write;
    use tokio::io::AsyncReadExt;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn inflation_is_free_to_512_mib_then_bounded_by_the_ratio() {
        let gib = 1u64 << 30;
        assert!(inflation_check(INFLATE_FREE, 1, 100).is_ok());
        assert!(inflation_check(gib, gib / 100, 100).is_ok());
        assert!(inflation_check(gib, gib / 1000, 0).is_ok());
        let e = inflation_check(gib, gib / 1000, 100).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
        // Reported as itself, not as a corrupt object or a retryable read failure.
        let e = read_error("s3://b/k", e);
        assert!(!e.retryable());
        assert!(
            e.to_string()
                .starts_with("s3://b/k: it inflates more than 100×")
                && e.to_string().contains("decompression bomb"),
            "{e}"
        );
    }

    async fn read_all(r: ByteReader, c: Compression) -> Result<Vec<u8>, Error> {
        let mut r = decompress(r, c, 100).await?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)
            .await
            .map_err(|e| Error::Io(e.to_string()))?;
        Ok(out)
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    pub(crate) async fn zst(data: &[u8]) -> Vec<u8> {
        let mut e = async_compression::tokio::write::ZstdEncoder::new(Vec::new());
        e.write_all(data).await.unwrap();
        e.shutdown().await.unwrap();
        e.into_inner()
    }

    #[tokio::test]
    async fn detects_compression_and_reads_every_member() {
        let plain = b"{\"a\":1}\n".repeat(1000);
        let mut two_gz = gz(&plain);
        two_gz.extend(gz(b"{\"a\":2}\n"));
        let mut two_zst = zst(&plain).await;
        two_zst.extend(zst(b"{\"a\":2}\n").await);
        let mut want = plain.clone();
        want.extend_from_slice(b"{\"a\":2}\n");
        for (data, c) in [
            (two_gz.clone(), Compression::Auto),
            (two_zst.clone(), Compression::Auto),
            (two_gz, Compression::Gzip),
            (two_zst, Compression::Zstd),
        ] {
            let got = read_all(Box::pin(std::io::Cursor::new(data)), c)
                .await
                .unwrap();
            assert_eq!(got, want);
        }
        let got = read_all(
            Box::pin(std::io::Cursor::new(plain.clone())),
            Compression::Auto,
        )
        .await
        .unwrap();
        assert_eq!(got, plain);
        // Forced gzip on plain bytes is a clear failure, not garbage rows.
        assert!(
            read_all(Box::pin(std::io::Cursor::new(plain)), Compression::Gzip)
                .await
                .is_err()
        );
        assert!(
            read_all(
                Box::pin(std::io::Cursor::new(Vec::new())),
                Compression::Auto
            )
            .await
            .unwrap()
            .is_empty()
        );
    }

    /// Issue 27: a zstd stream that starts with a skippable frame (as `pzstd` writes) was read
    /// as plain text, and gzip with trailing zero padding (which `gunzip` accepts) was refused.
    #[tokio::test]
    async fn reads_zstd_behind_a_skippable_frame_and_gzip_with_zero_padding() {
        let plain = b"{\"a\":1}\n".repeat(1000);
        let mut skippable = vec![0x5a, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4];
        skippable.extend(zst(&plain).await);
        let mut padded = gz(&plain);
        padded.extend(gz(b"{\"a\":2}\n"));
        padded.extend(std::iter::repeat_n(0u8, 700_000));
        let mut want = plain.clone();
        want.extend_from_slice(b"{\"a\":2}\n");
        for (data, c, want) in [
            (skippable.clone(), Compression::Auto, &plain),
            (skippable, Compression::Zstd, &plain),
            (padded.clone(), Compression::Auto, &want),
            (padded, Compression::Gzip, &want),
        ] {
            // Through a small reader, so members and padding cross buffer boundaries.
            let r = tokio::io::BufReader::with_capacity(1000, std::io::Cursor::new(data));
            let got = read_all(Box::pin(r), c).await.unwrap();
            assert_eq!(&got, want);
        }
        // Anything but zeros after the last member is still an error, with its reason.
        let mut garbage = gz(&plain);
        garbage.extend(b"\0\0trailing text");
        let e = read_all(Box::pin(std::io::Cursor::new(garbage)), Compression::Auto)
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("neither another member nor zero padding"),
            "{e}"
        );
    }

    /// Issue 28: a corrupt deflate stream came out of the decoder as an `Other` error and was
    /// classed `retry_later` (Lambda retried a file that can never decode); a read of the stored
    /// bytes cut part-way keeps its own kind through the decoder.
    #[tokio::test]
    async fn a_decoder_error_is_corrupt_input_and_a_cut_read_stays_itself() {
        let corrupt = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03not deflate".to_vec();
        let zstd_corrupt = [&[0x28u8, 0xb5, 0x2f, 0xfd][..], &[0xff; 40]].concat();
        for (bytes, c) in [
            (corrupt, Compression::Auto),
            (zstd_corrupt, Compression::Auto),
            (b"plain".to_vec(), Compression::Zstd),
        ] {
            let mut r = decompress(Box::pin(std::io::Cursor::new(bytes)), c, 100)
                .await
                .unwrap();
            let e = r.read_to_end(&mut Vec::new()).await.unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData, "{e}");
            let e = crate::read::read_error("s3://b/k", e);
            assert_eq!(e.class(), crate::ErrorClass::BadInput, "{e}");
        }
        // Half a gzip stream, then the connection drops.
        let whole = gz(&b"{\"a\":1}\n".repeat(10_000));
        let cut = tokio::io::AsyncReadExt::chain(
            std::io::Cursor::new(whole[..whole.len() / 2].to_vec()),
            Failing,
        );
        let mut r = decompress(Box::pin(cut), Compression::Auto, 100)
            .await
            .unwrap();
        let e = r.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
        assert_eq!(e.to_string(), "reset by peer");
        let e = crate::read::read_error("s3://b/k", e);
        assert_eq!(e.class(), crate::ErrorClass::RetryLater, "{e}");
    }

    /// A reader whose connection is reset.
    struct Failing;

    impl tokio::io::AsyncRead for Failing {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "reset by peer",
            )))
        }
    }
}
