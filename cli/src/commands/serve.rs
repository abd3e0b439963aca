//! `sluice serve` (the Lambda runtime loop) and the cold-start probe `bench` runs.

use std::path::PathBuf;

use sluice_pipeline::{Pipeline, lambda};

pub async fn run(config: Option<PathBuf>) -> anyhow::Result<u8> {
    if let Some(missing) = lambda::missing_environment() {
        eprintln!(
            "sluice serve is the Lambda runtime loop: it needs what Lambda sets for a function, \
             and {missing} is not set. To run a pipeline here, use `sluice replay CONFIG EVENT` \
             (what the function would do, on local files or an S3 endpoint); to run this loop \
             under a local Lambda Runtime API, use cargo-lambda's emulator (`cargo lambda watch`, \
             then `cargo lambda invoke`; see infra/README.md)."
        );
        return Ok(2);
    }
    lambda::init_logging();
    let path = config
        .or_else(|| std::env::var_os("SLUICE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("pipeline.toml"));
    let pipeline = match Pipeline::load(&path) {
        Ok(p) => p,
        Err(e) => {
            // Logged as JSON so it reaches CloudWatch; the init error fails the cold start.
            tracing::error!(error = %e, "Invalid pipeline config.");
            eprintln!("{e}");
            return Ok(2);
        }
    };
    lambda::serve(serving_handler(&pipeline).await?)
        .await
        .map_err(|e| anyhow::anyhow!("the Lambda runtime stopped: {e}"))?;
    Ok(0)
}

/// Load the pipeline and build what serve builds before it asks for the first event; `ready`.
pub async fn init_probe(config: PathBuf) -> anyhow::Result<u8> {
    let pipeline = match Pipeline::load(&config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return Ok(2);
        }
    };
    // Exactly what serve builds before it asks for the first event.
    std::hint::black_box(serving_handler(&pipeline).await?);
    println!("ready");
    Ok(0)
}

/// The handler `serve` runs ([`Pipeline::serving_handler`]).
#[cfg(feature = "s3")]
async fn serving_handler(pipeline: &Pipeline) -> anyhow::Result<sluice_pipeline::run::Handler> {
    Ok(pipeline.serving_handler().await)
}

#[cfg(not(feature = "s3"))]
async fn serving_handler(_pipeline: &Pipeline) -> anyhow::Result<sluice_pipeline::run::Handler> {
    anyhow::bail!("this sluice was built without the `s3` feature, so it cannot serve as a Lambda")
}
