//! `sluice serve` (the Lambda runtime loop) and the cold-start probe `bench` runs.

use std::path::PathBuf;

use sluice_pipeline::{Pipeline, lambda};

/// The pipeline `serve` runs, loaded (after the logs are set up) on a thread of its own from the
/// start of the process while the async runtime starts: a cold start is a sequence of such
/// waits, and on two cores these two overlap (measured: 0.2 ms of a 3.2 ms init).
pub struct Preload(std::thread::JoinHandle<Result<Pipeline, sluice_pipeline::ConfigError>>);

impl Preload {
    /// Start loading the pipeline `serve` would run: `config`, else `$SLUICE_CONFIG`, else
    /// `./pipeline.toml`.
    pub fn start(config: Option<PathBuf>) -> Self {
        let path = config
            .or_else(|| std::env::var_os("SLUICE_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("pipeline.toml"));
        Preload(std::thread::spawn(move || {
            lambda::init_logging();
            Pipeline::load(&path)
        }))
    }
}

pub async fn run(preload: Preload) -> anyhow::Result<u8> {
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
    let loaded = preload
        .0
        .join()
        .map_err(|_| anyhow::anyhow!("loading the pipeline panicked"))?;
    let pipeline = match loaded {
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

/// Load the pipeline and build what serve builds before it asks for the first event, one step
/// after the other (serve overlaps the load with the runtime's start); print `ready`.
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
