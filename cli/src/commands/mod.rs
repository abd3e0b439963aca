//! The `sluice` command line, one file per command; what they share is here.

pub mod backfill;
pub mod bench;
pub mod event;
pub mod replay;
pub mod search;
pub mod serve;
#[cfg(feature = "iceberg")]
pub mod table;

use sluice_pipeline::Pipeline;
use sluice_pipeline::store::{FsStore, ObjectStore};
use std::path::PathBuf;
use std::sync::Arc;

/// The local store `replay` and `bench` read when `--store` is not given.
pub const DEFAULT_STORE: &str = "fixtures/objects";

/// A local store folder that is not there is an error naming where it was looked for (a
/// relative default, `fixtures/objects`, run from another folder would otherwise find no object
/// and report every upload as "deleted").
pub fn local_store(store: &std::path::Path) -> Result<(), String> {
    if store.is_dir() {
        return Ok(());
    }
    let abs = std::path::absolute(store).unwrap_or_else(|_| store.to_path_buf());
    Err(format!(
        "the local store {} is not a folder (it holds s3://bucket/key as FOLDER/bucket/key); \
         name it with --store, run from the folder that holds it, or read S3 with --endpoint-url",
        abs.display()
    ))
}

/// Where `s3://bucket/key` is read and outputs are written (`replay`, `backfill`): local
/// folders, or an S3-compatible endpoint.
#[derive(clap::Args)]
pub struct StoreArgs {
    /// Local store: s3://bucket/key is read from DIR/bucket/key (default: fixtures/objects).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Where S3 outputs are written, as OUT/bucket/key (default: the store).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Read (and list) and write through this S3-compatible endpoint instead of local folders.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

impl StoreArgs {
    /// The input and output stores for `pipeline`: the endpoint's S3 store for both, else the
    /// local folders. A `--store` that is not a folder is an error; so is the default one when
    /// `need_store` (a command that lists it at once), else it is looked for when an object is
    /// read (a stream batch needs none).
    pub async fn open(
        &self,
        pipeline: &Pipeline,
        need_store: bool,
    ) -> Result<(Arc<dyn ObjectStore>, Arc<dyn ObjectStore>), String> {
        if let Some(url) = &self.endpoint_url {
            let s3 = s3_store(Some(url), Some(pipeline))
                .await
                .map_err(|e| e.to_string())?;
            return Ok((s3.clone(), s3));
        }
        let store = self
            .store
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE));
        if self.store.is_some() || need_store {
            local_store(&store)?;
        }
        let out = self.out.clone().unwrap_or_else(|| store.clone());
        Ok((Arc::new(FsStore::new(store)), Arc::new(FsStore::new(out))))
    }
}

/// `--timeout`: seconds, as a Lambda function's timeout is given (fractions allowed), 0.1 to 900.
pub fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(0.1..=900.0).contains(&secs) {
        return Err(format!(
            "{text} s is not a Lambda timeout; give 0.1 to 900 seconds"
        ));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// The S3 store (at `endpoint` when given, else the SDK's default endpoint for the environment);
/// for a pipeline, its writes carry the pipeline's marker and encryption
/// ([`sluice_pipeline::store::S3Store::for_pipeline`]).
#[cfg(feature = "s3")]
pub async fn s3_store(
    endpoint: Option<&str>,
    pipeline: Option<&Pipeline>,
) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let store = sluice_pipeline::store::S3Store::from_env(endpoint).await;
    Ok(Arc::new(match pipeline {
        Some(p) => store.for_pipeline(&p.plan().config),
        None => store,
    }))
}

#[cfg(not(feature = "s3"))]
pub async fn s3_store(
    _endpoint: Option<&str>,
    _pipeline: Option<&Pipeline>,
) -> anyhow::Result<Arc<dyn ObjectStore>> {
    anyhow::bail!("this sluice was built without the `s3` feature, so it cannot read or write S3")
}
