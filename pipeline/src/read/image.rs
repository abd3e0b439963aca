//! Image input: a blob read whole (within its limit), made into renditions off the async
//! threads, each written as its own file; one row per rendition for the stages after resize.

use std::sync::Arc;

use arrow_array::RecordBatch;
use sluice_processors::decode::Decoded;

use crate::Error;
use crate::run::Handler;
use crate::run::unit::UnitOfWork;
use crate::trigger::ObjectRef;

use super::read_error;

impl Handler {
    /// An image: read whole (within `max_input_bytes`), made into its renditions off the async
    /// threads, each written as `{output}/{variant}/{key with the new extension}`; a file that
    /// cannot be read is a reject, not a failure. Stages after `resize` get a row per rendition.
    pub(crate) async fn resize(
        &self,
        obj: &ObjectRef,
        spec: &crate::config::ResizeSpec,
        unit: &mut UnitOfWork<'_>,
    ) -> Result<(), Error> {
        use sluice_processors::resize::renditions;
        use tokio::io::AsyncReadExt;
        let limit = spec.options.max_input_bytes;
        let over = |n: u64| format!("the file is {n} bytes, over max_input_bytes ({limit})");
        let made = match obj.size {
            // Refused before a byte is downloaded.
            Some(n) if n > limit => Err((over(n), Vec::new())),
            _ => {
                let mut data = Vec::new();
                let at = obj.at();
                self.input
                    .get(&obj.bucket, &obj.key, &at)
                    .await?
                    .take(limit + 1)
                    .read_to_end(&mut data)
                    .await
                    .map_err(|e| read_error(&obj.uri(), e))?;
                if self.plan.index.is_some() {
                    let mut f = crate::catalog::Fingerprint::default();
                    f.update(&data);
                    unit.counts.fingerprint = Some(f.finish());
                }
                if data.len() as u64 > limit {
                    Err((over(data.len() as u64), Vec::new()))
                } else {
                    let options = spec.options.clone();
                    tokio::task::spawn_blocking(move || match renditions(&data, &options) {
                        Ok((info, r)) => Ok((info, r)),
                        Err(reason) => Err((reason, data)),
                    })
                    .await
                    .map_err(|e| Error::Internal(format!("the resize worker stopped: {e}")))?
                }
            }
        };
        let made = match made {
            Ok((info, r)) => {
                // Upright, as a viewer shows it.
                let (w, h) = if info.orientation >= 5 {
                    (info.height, info.width)
                } else {
                    (info.width, info.height)
                };
                unit.counts.image = Some(crate::catalog::ImageFacts {
                    width: w,
                    height: h,
                    orientation: info.orientation,
                    renditions: r.len(),
                });
                r
            }
            Err((reason, data)) => {
                let mut decoded = Decoded::default();
                decoded
                    .rejects
                    .push(sluice_processors::Reject::new(1, reason, &data));
                return unit.push(&mut decoded).await;
            }
        };
        unit.counts.records_in += 1;
        let mut rows = RenditionRows::default();
        for r in made {
            let key = format!(
                "{}/{}",
                r.variant,
                with_extension(&obj.key, r.format.extension())
            );
            let n = r.bytes.len();
            let location = unit
                .sink
                .write_blob(
                    &key,
                    crate::store::ObjectMeta {
                        content_type: r.format.content_type(),
                        cache_control: Some(&spec.cache_control),
                    },
                    r.bytes,
                )
                .await?;
            unit.counts.records_out += 1;
            rows.push(
                &obj.uri(),
                &r.variant,
                &location,
                r.width,
                r.height,
                n,
                r.format.name(),
            );
        }
        if !self.plan.stages.is_empty() {
            let schema = crate::config::rendition_schema();
            let batch = rows.finish(&schema)?;
            unit.push_batches(vec![(batch, None)]).await?;
        }
        Ok(())
    }
}

/// `key` with its last extension replaced (or added): `photos/a.b.HEIC` → `photos/a.b.jpg`.
fn with_extension(key: &str, ext: &str) -> String {
    let name_at = key.rfind('/').map_or(0, |i| i + 1);
    let stem = match key[name_at..].rfind('.') {
        Some(dot) if dot > 0 => &key[..name_at + dot],
        _ => key,
    };
    format!("{stem}.{ext}")
}

/// The rows stages after `resize` see.
#[derive(Default)]
struct RenditionRows {
    source: Vec<String>,
    variant: Vec<String>,
    key: Vec<String>,
    width: Vec<i64>,
    height: Vec<i64>,
    bytes: Vec<i64>,
    format: Vec<&'static str>,
}

impl RenditionRows {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        source: &str,
        variant: &str,
        key: &str,
        width: u32,
        height: u32,
        bytes: usize,
        format: &'static str,
    ) {
        self.source.push(source.to_string());
        self.variant.push(variant.to_string());
        self.key.push(key.to_string());
        self.width.push(i64::from(width));
        self.height.push(i64::from(height));
        self.bytes.push(bytes as i64);
        self.format.push(format);
    }

    fn finish(self, schema: &arrow_schema::SchemaRef) -> Result<RecordBatch, Error> {
        use arrow_array::{ArrayRef, Int64Array, StringArray};
        let cols: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(self.source)),
            Arc::new(StringArray::from(self.variant)),
            Arc::new(StringArray::from(self.key)),
            Arc::new(Int64Array::from(self.width)),
            Arc::new(Int64Array::from(self.height)),
            Arc::new(Int64Array::from(self.bytes)),
            Arc::new(StringArray::from(self.format)),
        ];
        RecordBatch::try_new(schema.clone(), cols)
            .map_err(|e| Error::Internal(format!("rendition rows: {e}")))
    }
}
