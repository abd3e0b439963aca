//! Sluice: stream and file pipelines on AWS Lambda, described in a `pipeline.toml`.
//!
//! This crate owns everything with I/O: the config ([`config`]), event triggers ([`trigger`]),
//! object stores ([`store`]), output writers ([`write`](mod@write)), the [`Handler`] that runs a
//! pipeline on one event ([`run`], reading objects through [`read`]), the Lambda loop
//! ([`lambda`]) and local replay ([`replay`]). The data stages themselves live in
//! `sluice-processors`; the `sluice` command line is the `sluice-cli` crate.
//!
//! A Rust user can build a pipeline in code, add a stage of their own, and run it as a Lambda or
//! under replay with one call:
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::RecordBatch;
//! use arrow_schema::SchemaRef;
//! use sluice_pipeline::Pipeline;
//! use sluice_processors::{Error, FnFactory, Stage};
//!
//! /// Drops every other batch (a stand-in for your own logic).
//! struct Halve { schema: SchemaRef, n: usize }
//! impl Stage for Halve {
//!     fn name(&self) -> &'static str { "halve" }
//!     fn schema(&self) -> SchemaRef { self.schema.clone() }
//!     fn push(&mut self, b: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<(), Error> {
//!         self.n += 1;
//!         if self.n % 2 == 1 { out.push(b) }
//!         Ok(())
//!     }
//! }
//!
//! let pipeline = Pipeline::from_toml(r#"
//!     name = "demo"
//!     [input]
//!     format = "ndjson"
//!     schema = { page = "string", ms = "int64" }
//!     [[stage]]
//!     type = "filter"
//!     where = "ms > 100"
//!     [output]
//!     uri = "s3://out/demo/"
//! "#)?
//! .with_stage(FnFactory::new("halve", |s: &SchemaRef| Ok(Box::new(Halve { schema: s.clone(), n: 0 }) as Box<dyn Stage>)));
//! assert_eq!(pipeline.plan().stages.len(), 1);
//! // In `main`: `std::process::exit(pipeline.run().await)` serves Lambda invocations when
//! // AWS_LAMBDA_RUNTIME_API is set, and otherwise replays the event files named on the command line.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate Features
//!
//! - `s3` (default): the S3 object store on `aws-sdk-s3`.
//! - `kinesis` (default): `kinesis://` outputs on `aws-sdk-kinesis`.
//! - `mimalloc`: mimalloc as the global allocator.
//! - `fuzzing`: the fuzz targets' entry points (`fuzz/`, and the tests that replay their seeds).
#![warn(missing_docs)]

#[cfg(any(feature = "s3", feature = "kinesis", feature = "iceberg"))]
mod aws;

/// Every program linking Sluice with the `mimalloc` feature (off by default) allocates with
/// mimalloc. A batch allocates a few large buffers (the decoded records, the column builders) and
/// frees them at its end; glibc's malloc hands such blocks back to the kernel and page-faults them
/// in again on the next batch, mimalloc keeps them — for about a second, which raises peak memory
/// (see the feature's note in Cargo.toml). Measured trade-off; the default stays glibc's.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
pub mod backfill;
pub mod bench;
pub mod budget;
pub mod catalog;
pub mod config;
mod error;
pub mod event;
/// The fuzz targets' entry points and their checks (feature `fuzzing`: the fuzz crate and the
/// tests build it; the shipped binary does not).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod kinesis;
pub mod lambda;
pub mod read;
pub mod replay;
pub mod run;
pub mod search;
pub mod store;
#[cfg(feature = "iceberg")]
pub mod table;
#[cfg(test)]
mod testing;
pub mod trigger;
pub use lambda::metrics;
pub use trigger::{fast as fastevent, kpl, stream};
pub mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_processors::StageFactory;

/// The Lambda event and response types the pipeline reads and answers with (hand
/// [`run::Handler::handle_event`] one of its events).
pub use aws_lambda_events;
pub use config::Plan;
pub use error::{ConfigError, Error, ErrorClass, MISSING, SUPERSEDED, own_output};
pub use run::{Handler, Summary};
use store::{FsStore, ObjectStore};

/// A pipeline built from config (a file, text, or structs made in code) plus stages of your own.
#[derive(Clone)]
pub struct Pipeline {
    plan: Plan,
    extra: Vec<Arc<dyn StageFactory>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("plan", &self.plan)
            .finish()
    }
}

impl Pipeline {
    /// Load `pipeline.toml`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Ok(Self {
            plan: Plan::load(path.as_ref())?,
            extra: Vec::new(),
        })
    }

    /// Config given as TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            plan: Plan::from_str(Path::new("<inline>"), text)?,
            extra: Vec::new(),
        })
    }

    /// Config built in code.
    pub fn from_config(config: config::PipelineConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            plan: Plan::from_config(config)?,
            extra: Vec::new(),
        })
    }

    /// Append a stage of your own after the configured stages.
    pub fn with_stage(mut self, factory: impl StageFactory + 'static) -> Self {
        self.extra.push(Arc::new(factory));
        self
    }

    /// The checked plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// A handler reading from `input` and writing S3 destinations to `output`.
    pub fn handler(&self, input: Arc<dyn ObjectStore>, output: Arc<dyn ObjectStore>) -> Handler {
        self.extra
            .iter()
            .fold(Handler::new(self.plan.clone(), input, output), |h, s| {
                h.with_stage(s.clone())
            })
    }

    /// [`Pipeline::handler`], plus a Kinesis client (from the standard chain, at `endpoint_url` when
    /// given) when the output is a `kinesis://` stream.
    pub async fn handler_with_streams(
        &self,
        input: Arc<dyn ObjectStore>,
        output: Arc<dyn ObjectStore>,
        endpoint_url: Option<&str>,
    ) -> Handler {
        let h = self.handler(input, output).with_endpoint(endpoint_url);
        #[cfg(feature = "kinesis")]
        if matches!(self.plan.output, config::Destination::Kinesis { .. }) {
            let putter = kinesis::KinesisPutter::from_env(endpoint_url).await;
            return h.with_record_putter(Arc::new(putter));
        }
        let _ = endpoint_url;
        h
    }

    /// The handler the Lambda loop runs: the S3 store from the standard chain, and a Kinesis
    /// client for a `kinesis://` output, each made when its first request needs it.
    ///
    /// Not in the background while the loop asks for the first event: making the S3 client
    /// reads and parses the system's TLS trust store, and on the two cores of the cold-start
    /// measurement that work took the init from 3.5 to 5.5 ms (it competes with the start for
    /// CPU and page-fault locks, as it does within a small function's CPU share) while saving
    /// the first answer 0.3 ms.
    #[cfg(feature = "s3")]
    pub async fn serving_handler(&self) -> Handler {
        let s3 = Arc::new(store::S3Store::lazy(None).for_pipeline(&self.plan.config));
        let h = self.handler(s3.clone(), s3);
        #[cfg(feature = "kinesis")]
        if matches!(self.plan.output, config::Destination::Kinesis { .. }) {
            return h.with_record_putter(Arc::new(kinesis::KinesisPutter::lazy(None)));
        }
        h
    }

    /// Run as a Lambda when `AWS_LAMBDA_RUNTIME_API` is set (S3 store from the standard chain);
    /// otherwise replay the event files named on the command line against `$SLUICE_STORE`
    /// (default `./fixtures/objects`), writing under `$SLUICE_OUT` (default: the store), and print one
    /// JSON summary per event. Returns the process exit status (0 ok, 1 an event failed, 2 usage).
    pub async fn run(self) -> i32 {
        if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
            lambda::init_logging();
            #[cfg(feature = "s3")]
            {
                let handler = self.serving_handler().await;
                return match lambda::serve(handler).await {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("sluice: the Lambda runtime stopped: {e}");
                        1
                    }
                };
            }
            #[cfg(not(feature = "s3"))]
            {
                eprintln!("sluice: built without the `s3` feature; cannot run as a Lambda");
                return 2;
            }
        }
        let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
        if args.is_empty() {
            eprintln!("usage: name event files (or folders, or .jsonl files) to replay");
            return 2;
        }
        let events = match replay::collect(&args) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("sluice: {e}");
                return 2;
            }
        };
        let root = std::env::var_os("SLUICE_STORE")
            .map(PathBuf::from)
            .unwrap_or_else(|| "fixtures/objects".into());
        let out = std::env::var_os("SLUICE_OUT")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.clone());
        let handler = self
            .handler_with_streams(
                Arc::new(FsStore::new(root)),
                Arc::new(FsStore::new(out)),
                None,
            )
            .await;
        let mut failed = false;
        for s in replay::replay(&handler, events).await {
            failed |= s.failed();
            println!("{}", serde_json::to_string(&s).unwrap_or_default());
        }
        i32::from(failed)
    }
}
