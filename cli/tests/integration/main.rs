//! Integration tests: golden replays of every fixture event, the `sluice` command line, and the
//! S3 store against a real S3 endpoint (moto's server, started by the test command), with faults
//! injected between them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod cli;
mod faults;
mod fuzzed;
mod golden;
mod images;
mod index;
#[cfg(feature = "kinesis")]
mod kinesis;
mod load;
mod s3;
mod semantics;
mod serve;
mod support;
