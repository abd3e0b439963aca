//! Parquet input: the footer, then row groups, fetched by range with only the columns the
//! stages read.

use sluice_processors::decode::Decoded;

use crate::Error;
use crate::run::Handler;
use crate::run::unit::UnitOfWork;
use crate::trigger::ObjectRef;

impl Handler {
    /// Parquet: the footer, then row groups, fetched by range with only the columns the stages need.
    pub(crate) async fn read_parquet(
        &self,
        obj: &ObjectRef,
        unit: &mut UnitOfWork<'_>,
    ) -> Result<(), Error> {
        use futures::StreamExt;
        use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
        let not_parquet = |e: parquet::errors::ParquetError| {
            Error::Data(format!(
                "not a readable Parquet file ({e}); check [input] format"
            ))
        };
        let at = obj.at();
        let size = self.input.size(&obj.bucket, &obj.key, &at).await?;
        let file =
            crate::store::RangeReader::new(self.input.clone(), &obj.bucket, &obj.key, at, size);
        let builder = ParquetRecordBatchStreamBuilder::new(file)
            .await
            .map_err(not_parquet)?;
        let mut builder = builder.with_batch_size(self.plan.limits.batch_rows);
        if let Some(cols) = self.plan.projection().filter(|_| self.extra.is_empty()) {
            let schema = builder.schema().clone();
            let mut roots = Vec::new();
            for c in &cols {
                match schema.index_of(c) {
                    Ok(i) => roots.push(i),
                    Err(_) => {
                        let names: Vec<&str> =
                            schema.fields().iter().map(|f| f.name().as_str()).collect();
                        return Err(Error::Data(format!(
                            "the pipeline reads column `{c}`, which this Parquet file does not have (columns: {})",
                            names.join(", ")
                        )));
                    }
                }
            }
            roots.sort_unstable();
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            builder = builder.with_projection(mask);
        }
        let mut stream = builder.build().map_err(not_parquet)?;
        let mut first_row = 1;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(not_parquet)?;
            let n = batch.num_rows() as u64;
            // A timestamp outside the years 1 to 9999 is a reject here as in every decoder.
            let (batch, out_of_range) =
                sluice_processors::decode::timestamp::refuse_out_of_range(batch, first_row)?;
            first_row += n;
            let mut decoded = Decoded {
                rejects: out_of_range,
                ..Decoded::default()
            };
            decoded.emit(batch, None);
            unit.push(&mut decoded).await?;
        }
        Ok(())
    }
}
