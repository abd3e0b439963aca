//! The rest of the bill: what an invocation asks of AWS besides Lambda's duration and request —
//! S3 requests, KMS data keys, Kinesis PUT payload units, catalog requests and the CloudWatch
//! Logs ingestion of the function's own log lines — counted while the handler runs (the stores
//! count their requests, a Kinesis client counts its records, the log lines are written and
//! counted as `sluice serve` writes them) and priced.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;

use crate::config::{CatalogSpec, Encryption, Plan};
use crate::kinesis::{Entry, RecordPutter};
use crate::run::Summary;
use crate::store::{CountingStore, S3Requests};

/// AWS's published prices for the services besides Lambda, US East (N. Virginia), standard
/// tiers, no free tier.
pub mod service_prices {
    /// When these were last checked against the services' pricing pages.
    pub const AS_OF: &str = "2026-12-07";
    /// S3 Standard PUT, COPY, POST and LIST requests, dollars each ($0.005 per 1 000).
    pub const S3_TIER1: f64 = 0.005 / 1e3;
    /// S3 Standard GET, SELECT and every other request, dollars each ($0.0004 per 1 000).
    pub const S3_TIER2: f64 = 0.0004 / 1e3;
    /// KMS requests, dollars each ($0.03 per 10 000).
    pub const KMS_REQUEST: f64 = 0.03 / 1e4;
    /// Kinesis Data Streams (provisioned) PUT payload units, dollars each ($0.014 per million).
    pub const KINESIS_PUT_UNIT: f64 = 0.014 / 1e6;
    /// A PUT payload unit covers this much of a record (its data and partition key).
    pub const KINESIS_UNIT_BYTES: usize = 25 * 1024;
    /// AWS Glue Data Catalog requests past the free million, dollars each ($1 per million).
    pub const GLUE_REQUEST: f64 = 1.0 / 1e6;
    /// SQS standard queue requests, dollars each ($0.40 per million; each 64 KiB of a message
    /// is billed as a request).
    pub const SQS_REQUEST: f64 = 0.40 / 1e6;
    /// An SQS request covers this much of a message.
    pub const SQS_REQUEST_BYTES: u64 = 64 * 1024;
    /// CloudWatch Logs standard ingestion, dollars per GB (2^30 bytes).
    pub const LOGS_PER_GB: f64 = 0.50;
    /// Bytes of Lambda's own lines for each invocation (`START`, `END`, `REPORT`).
    pub const LAMBDA_PLATFORM_LOG_BYTES: u64 = 250;
    /// Bytes each of the function's lines carries on Lambda beyond what is logged here: its
    /// `requestId` and X-Ray `traceId` (`,"requestId":"…36…","traceId":"Root=1-…;Parent=…;Sampled=1"`).
    pub const LINE_CONTEXT_BYTES: u64 = 138;
}

/// What one invocation (or several, added up) asked of AWS besides Lambda.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Requests {
    /// S3 requests of the input and output stores.
    pub s3: S3Requests,
    /// KMS requests: one data key per object written with `encryption = "sse-kms"` (none with an
    /// S3 Bucket Key, which the bucket may have; reads of encrypted inputs are not seen here).
    pub kms: u64,
    /// Records put on a `kinesis://` output.
    pub kinesis_records: u64,
    /// Their PUT payload units (each 25 KB of a record, or part of it).
    pub kinesis_put_units: u64,
    /// Catalog requests of an Iceberg output: the table loaded and the commit (two per commit;
    /// one, the load, for an invocation that sends its files to the commit queue).
    pub catalog: u64,
    /// SQS requests of `commit = "queue"`: each message sent, a request per 64 KiB of it.
    pub sqs: u64,
    /// The function's log lines (its own and the metrics line) and Lambda's three.
    pub log_lines: u64,
    /// Their bytes, as CloudWatch Logs ingests them.
    pub log_bytes: u64,
}

impl Requests {
    /// These and `o`, added.
    pub fn plus(self, o: Requests) -> Requests {
        Requests {
            s3: self.s3.plus(o.s3),
            kms: self.kms + o.kms,
            kinesis_records: self.kinesis_records + o.kinesis_records,
            kinesis_put_units: self.kinesis_put_units + o.kinesis_put_units,
            catalog: self.catalog + o.catalog,
            sqs: self.sqs + o.sqs,
            log_lines: self.log_lines + o.log_lines,
            log_bytes: self.log_bytes + o.log_bytes,
        }
    }

    /// What they cost, with the catalog requests priced as `catalog`'s.
    pub fn cost(&self, catalog: Catalog) -> Costs {
        use service_prices::*;
        let s3 = self.s3.tier1() as f64 * S3_TIER1 + self.s3.tier2() as f64 * S3_TIER2;
        let kms = self.kms as f64 * KMS_REQUEST;
        let kinesis = self.kinesis_put_units as f64 * KINESIS_PUT_UNIT;
        // Half the requests load the table (a GET), half commit (a PUT).
        let catalog = match catalog {
            Catalog::None => 0.0,
            Catalog::Glue => self.catalog as f64 * GLUE_REQUEST,
            Catalog::S3Tables => self.catalog as f64 / 2.0 * (S3_TIER1 + S3_TIER2),
        };
        let sqs = self.sqs as f64 * SQS_REQUEST;
        let logs = self.log_bytes as f64 / f64::from(1u32 << 30) * LOGS_PER_GB;
        Costs {
            s3,
            kms,
            kinesis,
            catalog,
            sqs,
            logs,
            total: s3 + kms + kinesis + catalog + sqs + logs,
        }
    }
}

/// Dollars, by service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Costs {
    /// S3 requests.
    pub s3: f64,
    /// KMS requests.
    pub kms: f64,
    /// Kinesis PUT payload units.
    pub kinesis: f64,
    /// Catalog requests.
    pub catalog: f64,
    /// SQS requests.
    pub sqs: f64,
    /// CloudWatch Logs ingestion.
    pub logs: f64,
    /// All of them.
    pub total: f64,
}

impl Costs {
    /// Each divided by `d`.
    pub fn per(self, d: f64) -> Costs {
        Costs {
            s3: self.s3 / d,
            kms: self.kms / d,
            kinesis: self.kinesis / d,
            catalog: self.catalog / d,
            sqs: self.sqs / d,
            logs: self.logs / d,
            total: self.total / d,
        }
    }
}

/// How an Iceberg output's catalog requests are priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Catalog {
    /// No catalog requests are billed (no table, or a SQLite catalog file).
    None,
    /// The Glue Data Catalog: per request.
    Glue,
    /// A REST catalog (S3 Tables): as S3 requests.
    S3Tables,
}

impl Catalog {
    /// The catalog `plan` commits to.
    pub fn of(plan: &Plan) -> Catalog {
        match plan.files.table.as_ref().map(|t| &t.catalog) {
            Some(CatalogSpec::Glue) => Catalog::Glue,
            Some(CatalogSpec::Rest(_)) => Catalog::S3Tables,
            _ => Catalog::None,
        }
    }
}

/// A Kinesis client for `sluice bench`: every record is taken (none sent anywhere), and what a
/// stream would bill for it counted.
#[derive(Debug, Default)]
pub struct CountingPutter {
    records: AtomicU64,
    units: AtomicU64,
}

impl RecordPutter for CountingPutter {
    fn put<'a>(
        &'a self,
        _stream: &'a str,
        entries: &'a [Entry],
    ) -> BoxFuture<'a, Result<Vec<Option<String>>, crate::Error>> {
        for e in entries {
            let bytes = e.partition_key.len() + e.data.len();
            let units = bytes.div_ceil(service_prices::KINESIS_UNIT_BYTES).max(1);
            self.records.fetch_add(1, Ordering::Relaxed);
            self.units.fetch_add(units as u64, Ordering::Relaxed);
        }
        async move { Ok(vec![None; entries.len()]) }.boxed()
    }
}

static LOG_LINES: AtomicU64 = AtomicU64::new(0);
static LOG_BYTES: AtomicU64 = AtomicU64::new(0);

/// Where the counted log lines go: counted, then dropped.
struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOG_BYTES.fetch_add(buf.len() as u64, Ordering::Relaxed);
        LOG_LINES.fetch_add(
            memchr::memchr_iter(b'\n', buf).count() as u64,
            Ordering::Relaxed,
        );
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log as `sluice serve` does (its JSON lines, at its level), into a counter instead of stdout.
/// False when this process already logs somewhere (nothing is counted then).
pub fn count_logs() -> bool {
    tracing_subscriber::fmt()
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .event_format(crate::lambda::LambdaJson)
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            crate::lambda::log_filter(),
        ))
        .with_writer(|| LogSink)
        .try_init()
        .is_ok()
}

/// What `sluice bench` counts an invocation by.
#[derive(Debug, Clone)]
pub struct Meter {
    /// The input store, counting.
    pub input: CountingStore,
    /// The output store, counting.
    pub output: CountingStore,
    /// The Kinesis client of a `kinesis://` output.
    pub putter: Arc<CountingPutter>,
    /// Whether the log lines are counted (see [`count_logs`]).
    pub logs: bool,
}

impl Meter {
    /// What the invocation that gave `s` asked for since the last call.
    pub fn take(&self, s: &Summary, plan: &Plan) -> Requests {
        let s3 = self.input.take().plus(self.output.take());
        let kms = if plan.config.output.encryption == Some(Encryption::SseKms) {
            s3.objects_written
        } else {
            0
        };
        let mut lines = LOG_LINES.swap(0, Ordering::Relaxed);
        let mut bytes = LOG_BYTES.swap(0, Ordering::Relaxed);
        if !self.logs {
            (lines, bytes) = (0, 0);
        }
        bytes += lines * service_prices::LINE_CONTEXT_BYTES;
        if plan.config.metrics.enabled {
            let emf = crate::metrics::emf_line(s, &plan.config.metrics, &plan.config.name, "", 0);
            lines += 1;
            bytes += emf.to_string().len() as u64 + 1;
        }
        lines += 3;
        bytes += service_prices::LAMBDA_PLATFORM_LOG_BYTES;
        Requests {
            s3,
            kms,
            kinesis_records: self.putter.records.swap(0, Ordering::Relaxed),
            kinesis_put_units: self.putter.units.swap(0, Ordering::Relaxed),
            catalog: match s.commit.as_ref().map(|c| c.mode) {
                Some("queued") => 1,
                Some(_) => 2,
                None => 0,
            },
            sqs: s
                .commit
                .as_ref()
                .and_then(|c| c.message_bytes)
                .map_or(0, |b| b.div_ceil(service_prices::SQS_REQUEST_BYTES).max(1)),
            log_lines: lines,
            log_bytes: bytes,
        }
    }
}

/// The rest of the bill over a bench run: what the invocations asked for, and its price.
#[derive(Debug, Clone, Serialize)]
pub struct Bill {
    /// When the prices were checked.
    pub prices_as_of: &'static str,
    /// How catalog requests are priced.
    pub catalog: Catalog,
    /// Every measured invocation's requests, added up.
    pub requests: Requests,
    /// Dollars per invocation, by service.
    pub usd_per_invocation: Costs,
    /// Dollars per million records read, by service (when there were records).
    pub usd_per_million_records: Option<Costs>,
    /// Dollars per GB taken in, by service (when bytes were taken in).
    pub usd_per_gb_in: Option<Costs>,
}

impl Bill {
    /// The bill of `samples`, catalog requests priced as `catalog`'s.
    pub fn new(samples: &[super::Sample], catalog: Catalog) -> Bill {
        let n = samples.len().max(1) as f64;
        let requests = samples
            .iter()
            .fold(Requests::default(), |a, s| a.plus(s.requests));
        let records = samples.iter().map(|s| s.records_in).sum::<u64>() as f64;
        let bytes = samples.iter().map(|s| s.bytes_in).sum::<u64>() as f64;
        let all = requests.cost(catalog);
        Bill {
            prices_as_of: service_prices::AS_OF,
            catalog,
            requests,
            usd_per_invocation: all.per(n),
            usd_per_million_records: (records > 0.0).then(|| all.per(records / 1e6)),
            usd_per_gb_in: (bytes > 0.0).then(|| all.per(bytes / 1e9)),
        }
    }
}
