//! The catalog: a row per object met (processed, failed or skipped), written as a Parquet file
//! under the output's `_index/objects/`, named like the object's outputs.

use tracing::warn;

use super::Handler;
use super::outcome::Tally;
use crate::Error;
use crate::catalog::CatalogRow;
use crate::write::base_name;

impl Handler {
    /// Every catalog row of the event written; never a row for the pipeline's own outputs (the
    /// row would be an output too, and its notification would make another row, and so on).
    pub(super) async fn write_catalog(&self, t: &mut Tally) {
        let rows = std::mem::take(&mut t.catalog);
        for row in rows.iter().filter(|r| !self.is_own(&r.bucket, &r.key)) {
            if let Err(e) = self.write_catalog_row(row).await {
                warn!(error = %e, "Could not write the catalog row.");
                t.fail(e.class(), e.to_string());
            }
        }
    }

    /// `{output}/_index/objects/{name}.parquet`: the object's catalog row, named like its outputs.
    async fn write_catalog_row(&self, row: &CatalogRow) -> Result<(), Error> {
        let Some((store, bucket, prefix)) = crate::write::resolve(&self.plan.output, &self.output)
        else {
            return Ok(());
        };
        let name = base_name(
            &row.bucket,
            &row.key,
            row.version_id.as_deref().or(row.etag.as_deref()),
        );
        let key = format!("{prefix}_index/objects/{name}.parquet");
        let file = crate::write::parquet_file(&crate::catalog::batch(row)?)?;
        let meta = crate::store::ObjectMeta::typed(crate::write::PARQUET_TYPE);
        crate::store::put(store.as_ref(), &bucket, &key, meta, file).await
    }
}
