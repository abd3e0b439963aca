//! How an object's bytes become input to a unit of work: streamed through decompression (with
//! bomb limits) into the format's decoder, Parquet by ranges (`parquet`), images whole
//! (`image`).

pub mod decompress;
mod image;
mod parquet;

use std::sync::Arc;

use sluice_processors::decode::Decoded;
use tokio::io::AsyncReadExt;

use crate::Error;
use crate::config::InputSpec;
use crate::run::Handler;
use crate::run::unit::UnitOfWork;
use crate::trigger::ObjectRef;

pub use decompress::decompress;

/// Bytes read from an object per step (1 MiB).
const READ_BYTES: usize = 1 << 20;

const PAGE: usize = 4096;

/// `len` bytes of `space` starting at a page boundary. The kernel's copy into a read buffer
/// (`rep movsb`) is several times slower on some x86 CPUs (AMD Zen measured: 16% of a rollup's
/// time, against 4%) when the destination is not aligned like the page-cache source.
pub(crate) fn page_aligned(space: &mut [u8], len: usize) -> &mut [u8] {
    let off = space.as_ptr().align_offset(PAGE).min(PAGE);
    &mut space[off..off + len]
}

pub(crate) fn read_error(uri: &str, e: std::io::Error) -> Error {
    let msg = e.to_string();
    if e.kind() == std::io::ErrorKind::FileTooLarge {
        // A decompression bomb (see `inflation_check`): its reason, and never retried (the
        // same bytes inflate the same way).
        Error::Store {
            location: uri.to_string(),
            message: msg,
            retryable: false,
        }
    } else if e.kind() == std::io::ErrorKind::InvalidData
        || e.kind() == std::io::ErrorKind::UnexpectedEof
    {
        Error::Data(format!(
            "the object is corrupt or truncated ({msg}); nothing was written for it"
        ))
    } else {
        Error::Store {
            location: uri.to_string(),
            message: format!("reading failed: {msg}"),
            retryable: true,
        }
    }
}

impl Handler {
    /// Read one object into the chain (built on its first batch if there is none yet).
    pub(crate) async fn read(
        &self,
        obj: &ObjectRef,
        unit: &mut UnitOfWork<'_>,
    ) -> Result<(), Error> {
        if let Some(c) = self.plan.stream_columns().first() {
            return Err(Error::Data(format!(
                "the pipeline reads `{}`, a column of stream records (Kinesis, SQS), which S3 objects do not have",
                c.name()
            )));
        }
        if let Some(spec) = &self.plan.resize {
            return self.resize(obj, spec, unit).await;
        }
        if matches!(self.plan.input, InputSpec::Parquet) {
            self.read_parquet(obj, unit).await?;
        } else {
            let at = obj.at();
            let reader = self.input.get(&obj.bucket, &obj.key, &at).await?;
            // The catalog's hash and content type, taken from the stored bytes as they stream.
            let (reader, seen) = if self.plan.index.is_some() {
                let (r, seen) = crate::catalog::fingerprinted(reader);
                (r, Some(seen))
            } else {
                (reader, None)
            };
            let mut reader = decompress(
                reader,
                self.plan.limits.compression,
                self.plan.limits.max_inflate_ratio,
            )
            .await?;
            let mut decoder = self.decoder(&obj.key)?;
            let mut space = vec![0u8; READ_BYTES + PAGE];
            let buf = page_aligned(&mut space, READ_BYTES);
            let mut decoded = Decoded::default();
            loop {
                let n = reader
                    .read(buf)
                    .await
                    .map_err(|e| read_error(&obj.uri(), e))?;
                if n == 0 {
                    decoder.finish(&mut decoded)?;
                } else {
                    decoder.decode(&buf[..n], &mut decoded)?;
                }
                unit.push(&mut decoded).await?;
                if n == 0 {
                    break;
                }
            }
            if let Some(seen) = seen {
                drop(reader);
                if let Some(f) = Arc::into_inner(seen).and_then(|m| m.into_inner().ok()) {
                    unit.counts.fingerprint = Some(f.finish());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 28: a corrupt or truncated object was an `Io` error, logged as retryable, though a
    /// retry reads the same bytes; it is a data error now. A read cut part-way stays retryable.
    #[test]
    fn a_corrupt_object_is_a_data_error_and_a_cut_read_may_be_retried() {
        let corrupt = read_error(
            "s3://b/k",
            std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid gzip header"),
        );
        assert!(matches!(corrupt, Error::Data(_)), "{corrupt:?}");
        assert!(!corrupt.retryable());
        assert!(
            corrupt.to_string().contains("corrupt or truncated"),
            "{corrupt}"
        );
        let cut = read_error(
            "s3://b/k",
            std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer"),
        );
        assert!(cut.retryable(), "{cut:?}");
    }

    #[test]
    fn read_buffers_start_on_a_page() {
        let mut space = vec![0u8; 10_000 + 2 * PAGE];
        for skew in [0, 1, 17, 4095] {
            let buf = page_aligned(&mut space[skew..skew + 10_000 + PAGE], 10_000);
            assert_eq!(buf.len(), 10_000);
            assert_eq!(buf.as_ptr() as usize % PAGE, 0);
        }
    }
}
