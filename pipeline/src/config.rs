//! `pipeline.toml`: the configuration a user writes, checked into a [`Plan`] that is ready to run.
//!
//! Unknown keys are errors. Every error names the file, the line and the key, and says what would
//! be valid. Expressions are type-checked here when the input schema is declared, so a typo in a
//! column name fails `sluice validate`, not the first invocation.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::SchemaRef;
use globset::GlobMatcher;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use sluice_processors::aggregate::{AggregateFactory, Window, parse_every};
use sluice_processors::decode::Decoder;
use sluice_processors::decode::aws;
use sluice_processors::decode::csv::CsvDecoderBuilder;
use sluice_processors::decode::jsondoc::JsonRecordsDecoder;
use sluice_processors::decode::logs::{LogDecoderBuilder, Preset};
use sluice_processors::decode::ndjson::NdjsonDecoder;
use sluice_processors::expr::type_name;
use sluice_processors::filter::FilterFactory;
use sluice_processors::select::SelectFactory;
use sluice_processors::{DEFAULT_BATCH_ROWS, StageFactory};

use crate::error::ConfigError;

/// The whole `pipeline.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Used in output names, logs and metrics.
    pub name: String,
    /// What the objects hold and how to read them.
    pub input: InputConfig,
    /// The stages, in order (`[[stage]]` tables).
    #[serde(default, rename = "stage")]
    pub stages: Vec<StageConfig>,
    /// Where and how results are written.
    pub output: OutputConfig,
    /// Where rejected records go (NDJSON). Without it rejects are only counted and logged.
    #[serde(default)]
    pub rejects: Option<RejectsConfig>,
    /// CloudWatch metrics written by `sluice serve` (Embedded Metric Format log lines).
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// `[metrics]`: one Embedded Metric Format line per invocation, so CloudWatch has the pipeline's
/// counts and timings without an API call.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Write them (the Lambda only; replay never does).
    pub enabled: bool,
    /// The CloudWatch namespace.
    pub namespace: String,
    /// Dimension sets, each a list of `pipeline`, `trigger`, `function`.
    pub dimensions: Vec<Vec<String>>,
}

/// The dimensions a metric can carry.
pub const METRIC_DIMENSIONS: [&str; 3] = ["pipeline", "trigger", "function"];

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            namespace: "Sluice".into(),
            dimensions: vec![vec!["pipeline".into()]],
        }
    }
}

/// `[input]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// The record format: `ndjson`, `json` (with `records`), `csv`, `lines` (with `pattern`), a log
    /// preset (`alb`, `cloudfront`, `vpc-flow`, `s3-access`, `clf`, `cloudtrail`, `cloudwatch-logs`),
    /// or `text` (the whole object as one row).
    pub format: String,
    /// `lines` only: a regular expression whose named groups are the columns.
    #[serde(default)]
    pub pattern: Option<String>,
    /// `json` only: dotted path of the records array inside each document (`Records` for
    /// CloudTrail-shaped files); empty or absent: the document itself is the array.
    #[serde(default)]
    pub records: Option<String>,
    /// `csv` only: whether the first record names the columns (default true).
    #[serde(default)]
    pub header: Option<bool>,
    /// `csv` only: the field delimiter, one character (default `,`; `\t` for TSV).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// `auto` (by magic bytes, the default), `none`, `gzip` or `zstd`.
    #[serde(default)]
    pub compression: Compression,
    /// Buckets whose objects are processed; objects from other buckets are skipped. Empty: any bucket.
    /// Naming them also lets `validate` tell an output bucket apart from the trigger bucket.
    #[serde(default)]
    pub buckets: Vec<String>,
    /// Globs selecting the object keys to process (`*` stays within a `/` segment, `**` crosses them).
    /// Objects that match none are skipped and reported. Empty: every key.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Column name → type (`string`, `int64`, `float64`, `bool`, `timestamp`, `date`, …). Columns not
    /// listed are not decoded. Absent: inferred from the first `batch_rows` records of each object.
    #[serde(default)]
    pub schema: Option<OrderedMap>,
    /// Rows per Arrow batch (default 8192).
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// Longest accepted record line in bytes (default 4 MiB); longer lines are rejects.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Without `schema`: most columns inferred (nested fields one by one; default 1 000). An
    /// NDJSON line with more fields is a reject; more among the first records, or a wider CSV,
    /// fails the object with a message to declare `schema`.
    #[serde(default = "default_max_inferred_columns")]
    pub max_inferred_columns: usize,
    /// A compressed object may inflate to 512 MiB, and past that to at most this many times the
    /// compressed bytes read so far (default 100; real logs and NDJSON inflate 5–50×, a gzip bomb
    /// ~1000×): more is refused as a decompression bomb. `0` turns the check off.
    #[serde(default = "default_max_inflate_ratio")]
    pub max_inflate_ratio: u64,
    /// An object gone by the time it is read (deleted, or overwritten away, after its
    /// notification): `skip` (default: reported as skipped, nothing to retry) or `fail` (the
    /// object fails, so Lambda retries the event and then dead-letters it).
    #[serde(default)]
    pub on_missing: OnMissing,
}

impl InputConfig {
    /// Input of `format`, every other setting at its default.
    pub fn new(format: impl Into<String>) -> Self {
        InputConfig {
            format: format.into(),
            pattern: None,
            records: None,
            header: None,
            delimiter: None,
            compression: Compression::default(),
            buckets: Vec::new(),
            keys: Vec::new(),
            schema: None,
            batch_rows: default_batch_rows(),
            max_line_bytes: default_max_line_bytes(),
            max_inferred_columns: default_max_inferred_columns(),
            max_inflate_ratio: default_max_inflate_ratio(),
            on_missing: OnMissing::default(),
        }
    }
}

/// `[input] on_missing`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnMissing {
    /// Report the object as skipped.
    #[default]
    Skip,
    /// Fail the object.
    Fail,
}

fn default_batch_rows() -> usize {
    DEFAULT_BATCH_ROWS
}
fn default_max_inflate_ratio() -> u64 {
    100
}

fn default_max_line_bytes() -> usize {
    sluice_processors::decode::ndjson::DEFAULT_MAX_LINE_BYTES
}

fn default_max_inferred_columns() -> usize {
    sluice_processors::decode::ndjson::DEFAULT_MAX_INFERRED_COLUMNS
}

impl Compression {
    /// As written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Auto => "auto",
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// `[input] compression`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Detect gzip and zstd by their magic bytes; anything else is read as is.
    #[default]
    Auto,
    /// Read as is.
    None,
    /// gzip, including concatenated members.
    Gzip,
    /// zstd, including concatenated frames.
    Zstd,
}

/// One `[[stage]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StageConfig {
    /// Keep rows where `where` is true.
    Filter {
        /// A boolean expression.
        #[serde(rename = "where")]
        predicate: String,
    },
    /// Project, rename and derive columns: `columns = { name = "expression", … }`.
    Select {
        /// Output column → expression, in order.
        columns: OrderedMap,
    },
    /// Group and summarise all records of an invocation.
    Aggregate {
        /// Group columns (none: one group).
        #[serde(default)]
        group_by: Vec<String>,
        /// Optional tumbling window: `{ column = "ts", every = "1m" }`.
        #[serde(default)]
        window: Option<WindowConfig>,
        /// Output column → aggregate call (`count(*)`, `sum(bytes)`, …), in order.
        measures: OrderedMap,
        /// Most groups held (default 1 000 000); more is an error naming this setting.
        #[serde(default = "default_max_groups")]
        max_groups: usize,
        /// Most distinct values each `count_distinct` keeps, over all its groups (default
        /// 1 000 000, ~40 MB); more is an error naming `approx_count_distinct`.
        #[serde(default = "default_max_distinct_values")]
        max_distinct_values: usize,
    },
    /// Renditions of each image (`[input] format = "image"`; the first stage).
    Resize(ResizeConfig),
    /// A term index of a text column, written beside the output (the last stage).
    Index {
        /// The text column to index (`text` for `format = "text"` objects).
        #[serde(default)]
        text: Option<String>,
        /// A column naming each row's document; default: the source and the row number.
        #[serde(default)]
        id: Option<String>,
        /// Terms left out of the index (compared after case folding).
        #[serde(default)]
        stop_words: Vec<String>,
    },
}

/// A checked index stage.
#[derive(Debug, Clone)]
pub struct IndexSpec {
    /// The text column; none: the object catalog only.
    pub text: Option<String>,
    /// The document id column, if any.
    pub id: Option<String>,
    /// Stop words.
    pub stop_words: Vec<String>,
}

/// `type = "resize"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResizeConfig {
    /// The renditions: `[{ name, width, height, fit }]`.
    pub variants: Vec<VariantConfig>,
    /// `jpeg`, `png`, `webp` or `same` (the default: JPEG, PNG and WebP stay as they are; GIF,
    /// TIFF and BMP become PNG).
    #[serde(default)]
    pub format: Option<String>,
    /// JPEG and WebP quality, 1–100 (default 80).
    #[serde(default)]
    pub quality: Option<u8>,
    /// Progressive JPEG (default false).
    #[serde(default)]
    pub progressive: bool,
    /// Drop EXIF and other metadata (default true); the ICC profile is always kept.
    #[serde(default = "yes")]
    pub strip_metadata: bool,
    /// What transparency becomes in a JPEG: `#rrggbb` (default `#ffffff`).
    #[serde(default)]
    pub background: Option<String>,
    /// `lanczos3` (default), `mitchell`, `catmull-rom`, `bilinear` or `nearest`.
    #[serde(default)]
    pub filter: Option<String>,
    /// Largest width × height accepted, read from the header before decoding (default 100 000 000).
    #[serde(default)]
    pub max_pixels: Option<u64>,
    /// Largest file accepted in bytes (default 64 MiB).
    #[serde(default)]
    pub max_input_bytes: Option<u64>,
    /// The `Cache-Control` of each rendition on S3 (default `public, max-age=86400`).
    #[serde(default)]
    pub cache_control: Option<String>,
}

/// One `variants` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantConfig {
    /// Names the output folder.
    pub name: String,
    /// Box width in pixels.
    #[serde(default)]
    pub width: Option<u32>,
    /// Box height in pixels.
    #[serde(default)]
    pub height: Option<u32>,
    /// `contain` (default), `cover`, `fill` or `inside`.
    #[serde(default)]
    pub fit: Option<String>,
}

fn yes() -> bool {
    true
}

/// The default `Cache-Control` of renditions.
pub const DEFAULT_CACHE_CONTROL: &str = "public, max-age=86400";

/// A checked resize stage.
#[derive(Debug, Clone)]
pub struct ResizeSpec {
    /// What to make.
    /// (shared with the resize workers, not copied per image)
    pub options: Arc<sluice_processors::resize::ResizeOptions>,
    /// `Cache-Control` of each rendition.
    pub cache_control: String,
}

/// `window = { column, every }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// A timestamp column.
    pub column: String,
    /// Window length: `30s`, `1m`, `5m`, `1h`, `1d` (also `ms`).
    pub every: String,
}

fn default_max_groups() -> usize {
    sluice_processors::aggregate::DEFAULT_MAX_GROUPS
}

fn default_max_distinct_values() -> usize {
    sluice_processors::aggregate::DEFAULT_MAX_DISTINCT_VALUES
}

/// `[output]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// `s3://bucket/prefix/` or a local folder.
    pub uri: String,
    /// `parquet` (default) or `ndjson`.
    #[serde(default)]
    pub format: OutputFormat,
    /// Parquet: `zstd` (default), `snappy` or `none`. NDJSON: `none` (default) or `gzip`.
    #[serde(default)]
    pub compression: Option<String>,
    /// Columns whose values name Hive-style folders (`day=2026-11-22/`); they are not repeated in the files.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Parquet row groups are closed at this many bytes of encoded data (default 32 MiB), which bounds
    /// memory per open file and keeps ranged S3 reads efficient.
    #[serde(default = "default_row_group_bytes")]
    pub max_row_group_bytes: usize,
    /// Most open partition files per object (default 64); more is an error naming this setting.
    #[serde(default = "default_max_open_partitions")]
    pub max_open_partitions: usize,
    /// Stream batches: when the invocation's deadline is this close (default 2 000 ms), stop at a
    /// record boundary, write what is done and report the rest as batch item failures.
    #[serde(default = "default_deadline_reserve_ms")]
    pub deadline_reserve_ms: u64,
    /// `kinesis://` outputs: the expression whose value is each record's partition key (default:
    /// a digest of the row, spreading rows evenly over the shards).
    #[serde(default)]
    pub partition_key: Option<String>,
    /// Server-side encryption of every object the pipeline writes to S3 (outputs, rejects,
    /// index): `sse-s3` (S3-managed keys) or `sse-kms` (a KMS key: `kms_key_id`, else the
    /// account's `aws/s3` key). Unset, the bucket's default encryption applies.
    #[serde(default)]
    pub encryption: Option<Encryption>,
    /// The KMS key (id, ARN or `alias/…`) for `encryption = "sse-kms"`.
    #[serde(default)]
    pub kms_key_id: Option<String>,
}

/// `[output] encryption`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Encryption {
    /// `sse-s3`: S3-managed keys (AES256).
    #[serde(rename = "sse-s3")]
    SseS3,
    /// `sse-kms`: a KMS key.
    #[serde(rename = "sse-kms")]
    SseKms,
}

impl OutputConfig {
    /// Output to `uri` as Parquet, every other setting at its default.
    pub fn new(uri: impl Into<String>) -> Self {
        OutputConfig {
            uri: uri.into(),
            format: OutputFormat::default(),
            compression: None,
            partition_by: Vec::new(),
            max_row_group_bytes: default_row_group_bytes(),
            max_open_partitions: default_max_open_partitions(),
            deadline_reserve_ms: default_deadline_reserve_ms(),
            partition_key: None,
            encryption: None,
            kms_key_id: None,
        }
    }
}

fn default_row_group_bytes() -> usize {
    32 << 20
}
fn default_max_open_partitions() -> usize {
    64
}
fn default_deadline_reserve_ms() -> u64 {
    2_000
}

impl OutputFormat {
    /// As written in the config.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Parquet => "parquet",
            OutputFormat::Ndjson => "ndjson",
        }
    }
}

/// `[output] format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Apache Parquet.
    #[default]
    Parquet,
    /// Newline-delimited JSON.
    Ndjson,
}

/// `[rejects]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectsConfig {
    /// `s3://bucket/prefix/` or a local folder.
    pub uri: String,
}

/// A TOML table read in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderedMap(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedMap {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of name = \"text\" pairs")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<OrderedMap, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, String>()? {
                    out.push((k, v));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Where outputs or rejects go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An S3 bucket and key prefix (empty, or ending in `/`).
    S3 {
        /// Bucket.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
    /// A local folder.
    Dir(PathBuf),
    /// A Kinesis data stream (its name or ARN): each row is put as one JSON record.
    Kinesis {
        /// Stream name or ARN.
        stream: String,
    },
}

impl Destination {
    /// Parse `s3://bucket/prefix/`, `kinesis://stream` or a local path.
    pub fn parse(uri: &str) -> Result<Self, String> {
        if let Some(stream) = uri.strip_prefix("kinesis://") {
            if stream.is_empty() {
                return Err(format!(
                    "`{uri}` has no stream; write kinesis://stream-name"
                ));
            }
            return Ok(Destination::Kinesis {
                stream: stream.to_string(),
            });
        }
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("`{uri}` has no bucket; write s3://bucket/prefix/"));
            }
            let mut prefix = prefix.to_string();
            if !prefix.is_empty() && !prefix.ends_with('/') {
                prefix.push('/');
            }
            if let Some(seg) = prefix
                .split_terminator('/')
                .find(|s| s.is_empty() || *s == "." || *s == "..")
            {
                let what = if seg.is_empty() {
                    "an empty folder (`//`)".to_string()
                } else {
                    format!("a `{seg}` folder")
                };
                return Err(format!(
                    "has {what} in its key prefix: S3 keeps it as written while a local store \
                     collapses it, so the two would write different keys; write s3://{bucket}/{}",
                    prefix
                        .split_terminator('/')
                        .filter(|s| !s.is_empty() && *s != "." && *s != "..")
                        .map(|s| format!("{s}/"))
                        .collect::<String>()
                ));
            }
            return Ok(Destination::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        if let Some((scheme, _)) = uri.split_once("://") {
            return Err(format!(
                "`{scheme}://` is not supported; use s3://bucket/prefix/, kinesis://stream or a local folder"
            ));
        }
        if uri.is_empty() {
            return Err("is empty; use s3://bucket/prefix/ or a local folder".into());
        }
        Ok(Destination::Dir(PathBuf::from(uri)))
    }

    /// True when `bucket/key` lies under this destination.
    pub fn contains(&self, bucket: &str, key: &str) -> bool {
        matches!(self, Destination::S3 { bucket: b, prefix } if b == bucket && key.starts_with(prefix.as_str()))
    }
}

/// Whether a rejects location is the output location, or lies inside it where a reader of the
/// output would find it (`None`: apart). A folder whose name starts with `_` or `.` is one that
/// Hive, Spark, Athena and Trino skip, as the output's own `_index/` is.
fn overlap(output: &Destination, rejects: &Destination) -> Option<&'static str> {
    fn parts(d: &Destination) -> Option<Vec<String>> {
        match d {
            Destination::S3 { bucket, prefix } => Some(
                std::iter::once(format!("s3:{bucket}"))
                    .chain(prefix.split_terminator('/').map(str::to_string))
                    .collect(),
            ),
            Destination::Dir(p) => Some(
                p.components()
                    .filter(|c| !matches!(c, std::path::Component::CurDir))
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect(),
            ),
            Destination::Kinesis { .. } => None,
        }
    }
    let (o, r) = (parts(output)?, parts(rejects)?);
    if o == r {
        return Some("is");
    }
    let hidden = |name: &String| name.starts_with('_') || name.starts_with('.');
    match r.strip_prefix(o.as_slice()) {
        Some([first, ..]) if !hidden(first) => Some("lies inside"),
        _ => None,
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Destination::Dir(p) => write!(f, "{}", p.display()),
            Destination::Kinesis { stream } => write!(f, "kinesis://{stream}"),
        }
    }
}

/// A stage ready to be built once the input schema is known, with its description.
#[derive(Clone)]
pub struct PlannedStage {
    /// The factory.
    pub factory: Arc<dyn StageFactory>,
    /// One line for `sluice validate`.
    pub describe: String,
}

impl fmt::Debug for PlannedStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe)
    }
}

/// A checked pipeline, ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The config as written.
    pub config: PipelineConfig,
    /// How objects are decoded.
    pub input: InputSpec,
    /// Where it was read from.
    pub file: PathBuf,
    /// The declared input schema, if any.
    pub schema: Option<SchemaRef>,
    /// Key globs; empty means every key.
    pub keys: Vec<GlobMatcher>,
    /// The stages.
    pub stages: Vec<PlannedStage>,
    /// Output destination.
    pub output: Destination,
    /// Rejects destination.
    pub rejects: Option<Destination>,
    /// Warnings worth printing (e.g. a possible recursive trigger).
    pub warnings: Vec<String>,
    /// The stream columns the stages name (found once, when the config is checked).
    streamed: Vec<crate::stream::Column>,
    /// The resize stage of an image pipeline; the other stages get a row per rendition.
    pub resize: Option<ResizeSpec>,
    /// The index stage: rows reaching the output are also indexed.
    pub index: Option<IndexSpec>,
}

fn w_every(micros: i64) -> String {
    match micros {
        m if m % 86_400_000_000 == 0 => format!("{}d", m / 86_400_000_000),
        m if m % 3_600_000_000 == 0 => format!("{}h", m / 3_600_000_000),
        m if m % 60_000_000 == 0 => format!("{}m", m / 60_000_000),
        m if m % 1_000_000 == 0 => format!("{}s", m / 1_000_000),
        m => format!("{}ms", m / 1_000),
    }
}

/// The formats this build reads.
pub const FORMATS: &str = "ndjson, json, csv, parquet, lines, alb, cloudfront, vpc-flow, s3-access, clf, \
cloudtrail, cloudwatch-logs, text, image";

/// How `[input]` is decoded.
#[derive(Debug, Clone)]
pub enum InputSpec {
    /// Newline-delimited JSON.
    Ndjson,
    /// A line format: `lines` with a pattern, or a log preset.
    Log(LogDecoderBuilder),
    /// CSV / TSV.
    Csv(CsvDecoderBuilder),
    /// JSON documents with records at a path.
    Json {
        /// Dotted path; empty for a top-level array.
        records: String,
    },
    /// CloudTrail log files.
    CloudTrail,
    /// CloudWatch Logs subscription payloads.
    CloudWatchLogs,
    /// The whole object as one row.
    Text,
    /// Apache Parquet, read by row group with only the needed columns.
    Parquet,
    /// Images, made into renditions by the resize stage.
    Image,
}

impl Plan {
    /// A fresh decoder for the object `key`.
    pub fn decoder(&self, key: &str) -> Result<Box<dyn Decoder>, sluice_processors::Error> {
        let input = &self.config.input;
        let ndjson = || {
            let b = NdjsonDecoder::builder()
                .with_batch_rows(input.batch_rows)
                .with_max_line_bytes(input.max_line_bytes)
                .with_max_inferred_columns(input.max_inferred_columns);
            match &self.schema {
                Some(s) => b.with_schema(s.clone()),
                None => b,
            }
        };
        let mut d: Box<dyn Decoder> = match &self.input {
            InputSpec::Ndjson => Box::new(ndjson().build()),
            InputSpec::Log(b) => Box::new(b.clone().build()?),
            InputSpec::Csv(b) => Box::new(b.clone().build()),
            InputSpec::Json { records } => Box::new(JsonRecordsDecoder::new(
                records,
                ndjson(),
                input.max_line_bytes,
            )),
            InputSpec::CloudTrail => Box::new(JsonRecordsDecoder::new(
                "Records",
                ndjson(),
                input.max_line_bytes,
            )),
            InputSpec::CloudWatchLogs => Box::new(aws::CloudWatchLogsDecoder::new(
                input.batch_rows,
                input.max_line_bytes,
            )?),
            InputSpec::Text => Box::new(aws::TextDecoder::new(key, input.max_line_bytes)),
            InputSpec::Parquet => {
                return Err(sluice_processors::Error::Decode(
                    "Parquet is read by range, not as a byte stream".into(),
                ));
            }
            InputSpec::Image => {
                return Err(sluice_processors::Error::Decode(
                    "images are read whole from S3 objects by the resize stage, not decoded as records".into(),
                ));
            }
        };
        d.keep_origins(self.traces_rejects(false));
        Ok(d)
    }

    /// Whether rows keep their input lines until the stages have run, so that a row a stage (or
    /// a Kinesis output) refuses is written to the rejects as the line it was read from: only
    /// when rejects are written somewhere and something after decoding can refuse a row, since
    /// keeping them copies every line (about 2 % of the reference rollup's instructions).
    /// `more_stages`: stages of the caller's own run after the planned ones.
    pub fn traces_rejects(&self, more_stages: bool) -> bool {
        self.rejects.is_some()
            && (more_stages
                || !self.stages.is_empty()
                || matches!(self.output, Destination::Kinesis { .. }))
    }

    /// The top-level input columns the stages read, when that is all the output needs (a `select`
    /// stage decides the output); `None` means every column is needed.
    pub fn projection(&self) -> Option<Vec<String>> {
        let mut cols = Vec::new();
        for st in &self.config.stages {
            stage_columns(st, &mut cols);
            // Stages that pass every column on (filter, index) leave the output needing them all.
            if !matches!(st, StageConfig::Filter { .. } | StageConfig::Index { .. }) {
                return Some(cols);
            }
        }
        None
    }

    /// The stream record columns (`_shard`, `_sequence`, …) any stage names, in their fixed order:
    /// a stream batch adds these to its decoded rows.
    pub fn stream_columns(&self) -> &[crate::stream::Column] {
        &self.streamed
    }
}

fn stream_columns(stages: &[StageConfig]) -> Vec<crate::stream::Column> {
    let mut cols = Vec::new();
    for st in stages {
        stage_columns(st, &mut cols);
    }
    crate::stream::Column::ALL
        .into_iter()
        .filter(|c| cols.iter().any(|n| n == c.name()))
        .collect()
}

/// Add the columns one stage's expressions read to `cols` (each once).
fn stage_columns(st: &StageConfig, cols: &mut Vec<String>) {
    let mut add = |text: &str| {
        if let Ok(e) = sluice_processors::expr::parse(text) {
            for c in sluice_processors::expr::columns(&e) {
                if !cols.contains(&c) {
                    cols.push(c);
                }
            }
        }
    };
    let quoted = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    match st {
        StageConfig::Filter { predicate } => add(predicate),
        StageConfig::Resize(_) => {}
        StageConfig::Index { text, id, .. } => {
            text.iter().chain(id).for_each(|c| add(&quoted(c)));
        }
        StageConfig::Select { columns } => columns.0.iter().for_each(|(_, e)| add(e)),
        StageConfig::Aggregate {
            group_by,
            window,
            measures,
            ..
        } => {
            group_by.iter().for_each(|g| add(&quoted(g)));
            if let Some(w) = window {
                add(&quoted(&w.column));
            }
            measures.0.iter().for_each(|(_, e)| add(e));
        }
    }
}

/// One step of a key path.
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Find the byte span of a key path in a TOML document: of the whole path when `exact`, otherwise
/// of its longest prefix that exists.
fn locate(text: &str, path: &[Seg<'_>], exact: bool) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let span = root.span();
    let mut cur = toml::Spanned::new(span, DeValue::Table(root.into_inner()));
    let mut best = None;
    for seg in path {
        let next = match seg {
            Seg::Key(k) => cur.get_ref().get(*k),
            Seg::Index(i) => cur.get_ref().get(*i),
        };
        let Some(next) = next else {
            return if exact { None } else { best };
        };
        best = Some(next.span());
        cur = next.clone();
    }
    best
}

/// An owned path step, parsed from `stage[0].where`.
enum OwnedSeg {
    Key(String),
    Index(usize),
}

impl OwnedSeg {
    fn as_seg(&self) -> Seg<'_> {
        match self {
            OwnedSeg::Key(k) => Seg::Key(k),
            OwnedSeg::Index(i) => Seg::Index(*i),
        }
    }
}

fn path_segments(path: &str) -> Vec<OwnedSeg> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            out.push(OwnedSeg::Key(name.to_string()));
        }
        for idx in rest.split('[') {
            if let Ok(i) = idx.trim_end_matches(']').parse() {
                out.push(OwnedSeg::Index(i));
            }
        }
    }
    out
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// A checked index stage (stage `i`; `last` when nothing follows it), against the columns that
/// reach it when they are known.
fn index_spec(
    (text, id, stop_words): (&Option<String>, &Option<String>, &Vec<String>),
    input: &InputSpec,
    current: Option<&SchemaRef>,
    (i, last): (usize, bool),
    cx: &Ctx<'_>,
) -> Result<IndexSpec, ConfigError> {
    let at = |k: &'static str| [Seg::Key("stage"), Seg::Index(i), Seg::Key(k)];
    if !last {
        return Err(cx.err(
            &at("type"),
            "index is the last stage: it indexes the rows the output receives",
        ));
    }
    // Without a text column (and not whole text objects): the catalog only.
    let text = match (text, input) {
        (Some(t), _) => Some(t.clone()),
        (None, InputSpec::Text) => Some("text".to_string()),
        (None, _) => None,
    };
    for (key, col) in [("text", text.as_ref()), ("id", id.as_ref())] {
        let (Some(col), Some(s)) = (col, current) else {
            continue;
        };
        let Ok(f) = s.field_with_name(col) else {
            let have: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(cx.err(
                &at(key),
                format!(
                    "no column `{col}` reaches this stage; it has: {}",
                    have.join(", ")
                ),
            ));
        };
        let is_text = matches!(
            f.data_type(),
            arrow_schema::DataType::Utf8
                | arrow_schema::DataType::LargeUtf8
                | arrow_schema::DataType::Utf8View
        );
        if key == "text" && !is_text {
            return Err(cx.err(
                &at(key),
                format!("`{col}` is {}, not text", type_name(f.data_type())),
            ));
        }
    }
    Ok(IndexSpec {
        text,
        id: id.clone(),
        stop_words: stop_words.clone(),
    })
}

/// The rows an image pipeline's stages after `resize` see: one per rendition written.
pub fn rendition_schema() -> SchemaRef {
    use arrow_schema::{DataType, Field, Schema};
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("variant", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, false),
        Field::new("width", DataType::Int64, false),
        Field::new("height", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("format", DataType::Utf8, false),
    ]))
}

fn resize_spec(r: &ResizeConfig, cx: &Ctx<'_>) -> Result<ResizeSpec, ConfigError> {
    use sluice_processors::resize::{self, Filter, Fit, OutputFormat, ResizeOptions, Variant};
    let at = |k: &'static str| [Seg::Key("stage"), Seg::Index(0), Seg::Key(k)];
    if r.variants.is_empty() {
        return Err(cx.err(
            &at("variants"),
            "needs at least one variant, e.g. [{ name = \"thumb\", width = 128 }]",
        ));
    }
    let mut variants: Vec<Variant> = Vec::new();
    for (j, v) in r.variants.iter().enumerate() {
        let here = |k: &'static str| {
            [
                Seg::Key("stage"),
                Seg::Index(0),
                Seg::Key("variants"),
                Seg::Index(j),
                Seg::Key(k),
            ]
        };
        let fit = match v.fit.as_deref() {
            None => Fit::Contain,
            Some(f) => Fit::parse(f).ok_or_else(|| {
                cx.err(
                    &here("fit"),
                    format!("`{f}` is not a fit; use contain, cover, fill or inside"),
                )
            })?,
        };
        if v.width.is_none() && v.height.is_none() {
            return Err(cx.err(&here("name"), "needs width, height or both"));
        }
        if v.width == Some(0) || v.height == Some(0) {
            return Err(cx.err(&here("width"), "sizes are at least 1 pixel"));
        }
        if matches!(fit, Fit::Cover | Fit::Fill) && (v.width.is_none() || v.height.is_none()) {
            return Err(cx.err(
                &here("fit"),
                "cover and fill need both width and height (a box to fill)",
            ));
        }
        let ok_name = !v.name.is_empty()
            && v.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !v.name.starts_with('.');
        if !ok_name {
            return Err(cx.err(
                &here("name"),
                format!(
                    "`{}` names an output folder: use letters, digits, - _ .",
                    v.name
                ),
            ));
        }
        if variants.iter().any(|o| o.name == v.name) {
            return Err(cx.err(&here("name"), format!("`{}` is named twice", v.name)));
        }
        variants.push(Variant {
            name: v.name.clone(),
            width: v.width,
            height: v.height,
            fit,
        });
    }
    let format = match r.format.as_deref() {
        None => OutputFormat::Same,
        Some(f) => OutputFormat::parse(f).ok_or_else(|| {
            cx.err(
                &at("format"),
                format!("`{f}` is not an image format sluice writes; use jpeg, png, webp or same"),
            )
        })?,
    };
    let quality = r.quality.unwrap_or(80);
    if !(1..=100).contains(&quality) {
        return Err(cx.err(&at("quality"), "is 1 to 100"));
    }
    let background = match r.background.as_deref() {
        None => [255, 255, 255],
        Some(c) => parse_colour(c).ok_or_else(|| {
            cx.err(
                &at("background"),
                format!("`{c}` is not a colour; write #rrggbb, e.g. \"#ffffff\""),
            )
        })?,
    };
    let filter = match r.filter.as_deref() {
        None => Filter::Lanczos3,
        Some(f) => Filter::parse(f).ok_or_else(|| {
            cx.err(
                &at("filter"),
                format!("`{f}` is not a filter; use lanczos3, mitchell, catmull-rom, bilinear or nearest"),
            )
        })?,
    };
    let positive = |v: Option<u64>, k: &'static str, d: u64| match v {
        Some(0) => Err(cx.err(&at(k), "must be at least 1")),
        v => Ok(v.unwrap_or(d)),
    };
    Ok(ResizeSpec {
        options: Arc::new(ResizeOptions {
            variants,
            format,
            quality,
            progressive: r.progressive,
            strip_metadata: r.strip_metadata,
            background,
            filter,
            max_pixels: positive(r.max_pixels, "max_pixels", resize::DEFAULT_MAX_PIXELS)?,
            max_input_bytes: positive(
                r.max_input_bytes,
                "max_input_bytes",
                resize::DEFAULT_MAX_INPUT_BYTES,
            )?,
        }),
        cache_control: r
            .cache_control
            .clone()
            .unwrap_or_else(|| DEFAULT_CACHE_CONTROL.to_string()),
    })
}

/// `#rrggbb` (or `rrggbb`).
fn parse_colour(c: &str) -> Option<[u8; 3]> {
    let hex = c.strip_prefix('#').unwrap_or(c);
    if hex.len() != 6 || !hex.is_ascii() {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err(&self, path: &[Seg<'_>], message: impl Into<String>) -> ConfigError {
        let key = path
            .iter()
            .map(|s| match s {
                Seg::Key(k) => format!(".{k}"),
                Seg::Index(i) => format!("[{i}]"),
            })
            .collect::<String>();
        ConfigError {
            file: self.file.to_path_buf(),
            line: locate(self.text, path, false).map(|r| line_of(self.text, r.start)),
            key: Some(key.trim_start_matches('.').to_string()),
            message: message.into(),
        }
    }
}

/// Parse TOML text into the config structs, with file/line/key errors.
pub fn parse(file: &Path, text: &str) -> Result<PipelineConfig, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError {
        file: file.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)),
        key: None,
        message: format!("not valid TOML: {}", e.message()),
    })?;
    serde_path_to_error::deserialize::<_, PipelineConfig>(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let mut message = inner.message().trim().to_string();
        if path == "stage" && message.starts_with("invalid type: map, expected a sequence") {
            message = "`[stage]` is one table, but stages are a list of tables: write `[[stage]]` \
                       (two brackets) above each stage"
                .into();
        }
        let mut line = inner.span().map(|s| line_of(text, s.start));
        let mut key = (path != ".").then_some(path);
        // Inside `[[stage]]` tables serde reports the table, not the key: find the key itself.
        if let Some(name) = message
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
        {
            let full = match &key {
                Some(k) => format!("{k}.{name}"),
                None => name.to_string(),
            };
            let segs = path_segments(&full);
            let segs: Vec<Seg<'_>> = segs.iter().map(|s| s.as_seg()).collect();
            if let Some(r) = locate(text, &segs, true) {
                line = Some(line_of(text, r.start));
                key = Some(full);
            }
        }
        ConfigError {
            file: file.to_path_buf(),
            line,
            key,
            message,
        }
    })
}

impl Plan {
    /// Read and check a config file.
    pub fn load(file: &Path) -> Result<Plan, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
            file: file.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read the config: {e}"),
        })?;
        Self::from_str(file, &text)
    }

    /// Check config text; `file` names it in errors.
    pub fn from_str(file: &Path, text: &str) -> Result<Plan, ConfigError> {
        let config = parse(file, text)?;
        Self::check(config, file, text)
    }

    /// Check a config built in code (errors name `<code>` and the key).
    pub fn from_config(config: PipelineConfig) -> Result<Plan, ConfigError> {
        Self::check(config, Path::new("<code>"), "")
    }

    fn check(config: PipelineConfig, file: &Path, text: &str) -> Result<Plan, ConfigError> {
        let cx = Ctx { file, text };
        let input = &config.input;
        if input.batch_rows == 0 || input.batch_rows > 1 << 20 {
            return Err(cx.err(
                &[Seg::Key("input"), Seg::Key("batch_rows")],
                "must be between 1 and 1048576",
            ));
        }
        if input.max_inferred_columns == 0 {
            return Err(cx.err(
                &[Seg::Key("input"), Seg::Key("max_inferred_columns")],
                "must be at least 1 (the default is 1000)",
            ));
        }
        if input.max_line_bytes == 0 {
            return Err(cx.err(
                &[Seg::Key("input"), Seg::Key("max_line_bytes")],
                "must be at least 1 (the default is 4194304, 4 MiB): with 0 every record is a reject",
            ));
        }
        let mut keys = Vec::new();
        for (i, k) in input.keys.iter().enumerate() {
            let g = globset::GlobBuilder::new(k)
                .literal_separator(true)
                .build()
                .map_err(|e| {
                    cx.err(
                        &[Seg::Key("input"), Seg::Key("keys"), Seg::Index(i)],
                        format!("not a valid glob: {e}"),
                    )
                })?;
            keys.push(g.compile_matcher());
        }
        let declared = match &input.schema {
            None => None,
            Some(m) => {
                if m.0.is_empty() {
                    return Err(cx.err(
                        &[Seg::Key("input"), Seg::Key("schema")],
                        "is empty; list columns or remove it to infer",
                    ));
                }
                let s = sluice_processors::decode::schema_from_types(
                    m.0.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                )
                .map_err(|e| cx.err(&[Seg::Key("input"), Seg::Key("schema")], e.to_string()))?;
                Some(s)
            }
        };
        let format_err = |m: String| cx.err(&[Seg::Key("input"), Seg::Key("format")], m);
        if input.pattern.is_some() && input.format != "lines" {
            return Err(cx.err(
                &[Seg::Key("input"), Seg::Key("pattern")],
                "is only used with format = \"lines\"",
            ));
        }
        if input.records.is_some() && input.format != "json" {
            return Err(cx.err(
                &[Seg::Key("input"), Seg::Key("records")],
                "is only used with format = \"json\"",
            ));
        }
        if input.format != "csv" {
            for (key, set) in [
                ("header", input.header.is_some()),
                ("delimiter", input.delimiter.is_some()),
            ] {
                if set {
                    return Err(cx.err(
                        &[Seg::Key("input"), Seg::Key(key)],
                        "is only used with format = \"csv\"",
                    ));
                }
            }
        }
        let fixed = |name: &str| -> Result<(), ConfigError> {
            if input.schema.is_some() {
                return Err(cx.err(
                    &[Seg::Key("input"), Seg::Key("schema")],
                    format!("format `{name}` has a fixed, documented schema; remove `schema`"),
                ));
            }
            Ok(())
        };
        let spec = match input.format.as_str() {
            "ndjson" => InputSpec::Ndjson,
            "json" => InputSpec::Json {
                records: input.records.clone().unwrap_or_default(),
            },
            "cloudtrail" => {
                fixed("cloudtrail")?;
                InputSpec::CloudTrail
            }
            "cloudwatch-logs" => {
                fixed("cloudwatch-logs")?;
                InputSpec::CloudWatchLogs
            }
            "text" => {
                fixed("text")?;
                InputSpec::Text
            }
            "image" => {
                fixed("image")?;
                InputSpec::Image
            }
            "parquet" => {
                if input.schema.is_some() {
                    return Err(cx.err(
                        &[Seg::Key("input"), Seg::Key("schema")],
                        "Parquet files carry their own schema; remove `schema`",
                    ));
                }
                InputSpec::Parquet
            }
            "csv" => {
                let delimiter = match input.delimiter.as_deref() {
                    None => b',',
                    Some("\t" | "tab" | "\\t") => b'\t',
                    Some(d) if d.len() == 1 && d.is_ascii() => d.as_bytes()[0],
                    Some(d) => {
                        return Err(cx.err(
                            &[Seg::Key("input"), Seg::Key("delimiter")],
                            format!("`{d}` is not one ASCII character; use e.g. \",\", \";\", \"|\" or \"\\t\""),
                        ));
                    }
                };
                let mut b = CsvDecoderBuilder::default()
                    .with_header(input.header.unwrap_or(true))
                    .with_delimiter(delimiter)
                    .with_batch_rows(input.batch_rows)
                    .with_max_record_bytes(input.max_line_bytes)
                    .with_max_inferred_columns(input.max_inferred_columns);
                if let Some(s) = &declared {
                    for f in s.fields() {
                        if matches!(f.data_type(), arrow_schema::DataType::Struct(_)) {
                            return Err(cx.err(
                                &[Seg::Key("input"), Seg::Key("schema")],
                                format!(
                                    "CSV has no nested fields; `{}` cannot be a struct",
                                    f.name()
                                ),
                            ));
                        }
                    }
                    b = b.with_schema(s.clone());
                }
                InputSpec::Csv(b)
            }
            "lines" => {
                let Some(pattern) = &input.pattern else {
                    return Err(format_err(
                        "format = \"lines\" needs `pattern`, a regular expression with named groups, e.g. '^(?P<level>\\S+) (?P<msg>.*)$'".into(),
                    ));
                };
                // The declared fields whole: a `timestamp(ms)` column's unit is in its metadata.
                let fields: Vec<arrow_schema::Field> = declared
                    .iter()
                    .flat_map(|s| s.fields().iter().map(|f| f.as_ref().clone()))
                    .collect();
                let b = LogDecoderBuilder::pattern_fields(pattern, &fields).map_err(|e| {
                    cx.err(&[Seg::Key("input"), Seg::Key("pattern")], e.to_string())
                })?;
                InputSpec::Log(b)
            }
            name => match Preset::from_name(name) {
                Some(p) => {
                    if input.schema.is_some() {
                        return Err(cx.err(
                            &[Seg::Key("input"), Seg::Key("schema")],
                            format!("format `{name}` has a fixed, documented schema; remove `schema` (or use format = \"lines\" with a pattern)"),
                        ));
                    }
                    InputSpec::Log(LogDecoderBuilder::preset(p))
                }
                None => {
                    return Err(format_err(format!(
                        "unknown format `{name}`; this build reads: {FORMATS}"
                    )));
                }
            },
        };
        let spec = match spec {
            InputSpec::Log(b) => InputSpec::Log(
                b.with_batch_rows(input.batch_rows)
                    .with_max_line_bytes(input.max_line_bytes),
            ),
            other => other,
        };
        let schema = match &spec {
            InputSpec::Ndjson | InputSpec::Csv(_) | InputSpec::Json { .. } => declared,
            InputSpec::Log(b) => Some(b.schema()),
            InputSpec::CloudTrail => Some(aws::cloudtrail_schema()),
            InputSpec::CloudWatchLogs => Some(aws::cloudwatch_logs_schema()),
            InputSpec::Text => Some(aws::text_schema()),
            InputSpec::Parquet => None,
            InputSpec::Image => Some(rendition_schema()),
        };
        let resize = match (&spec, config.stages.first()) {
            (InputSpec::Image, Some(StageConfig::Resize(r))) => Some(resize_spec(r, &cx)?),
            (InputSpec::Image, _) => {
                return Err(format_err(
                    "format = \"image\" needs a first [[stage]] with type = \"resize\"".into(),
                ));
            }
            _ => None,
        };
        if let Some(i) =
            config.stages.iter().enumerate().position(|(i, st)| {
                matches!(st, StageConfig::Resize(_)) && (i > 0 || resize.is_none())
            })
        {
            return Err(cx.err(
                &[Seg::Key("stage"), Seg::Index(i), Seg::Key("type")],
                "resize is the first stage of an image pipeline ([input] format = \"image\"), and the only resize",
            ));
        }

        let mut stages = Vec::new();
        let mut index = None;
        // Stream batches add the stream columns the stages name.
        let streamed = stream_columns(&config.stages);
        let mut current = schema
            .clone()
            .map(|s| crate::stream::with_columns(&s, &streamed));
        for (i, st) in config.stages.iter().enumerate() {
            let (factory, describe, key): (Arc<dyn StageFactory>, String, &str) = match st {
                // Checked above; it makes the rows the next stages see.
                StageConfig::Resize(_) => continue,
                StageConfig::Index {
                    text,
                    id,
                    stop_words,
                } => {
                    let last = i + 1 == config.stages.len();
                    index = Some(index_spec(
                        (text, id, stop_words),
                        &spec,
                        current.as_ref(),
                        (i, last),
                        &cx,
                    )?);
                    continue;
                }
                StageConfig::Filter { predicate } => {
                    // Parse now, whatever the schema, so syntax errors never wait for data.
                    sluice_processors::expr::parse(predicate).map_err(|e| {
                        cx.err(
                            &[Seg::Key("stage"), Seg::Index(i), Seg::Key("where")],
                            e.to_string(),
                        )
                    })?;
                    (
                        Arc::new(FilterFactory::new(predicate.clone())),
                        format!("filter where {predicate}"),
                        "where",
                    )
                }
                StageConfig::Select { columns } => {
                    for (name, e) in &columns.0 {
                        sluice_processors::expr::parse(e).map_err(|err| {
                            cx.err(
                                &[
                                    Seg::Key("stage"),
                                    Seg::Index(i),
                                    Seg::Key("columns"),
                                    Seg::Key(name),
                                ],
                                err.to_string(),
                            )
                        })?;
                    }
                    let d = columns
                        .0
                        .iter()
                        .map(|(k, v)| format!("{k} = {v}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    (
                        Arc::new(SelectFactory::new(columns.0.clone())),
                        format!("select {d}"),
                        "columns",
                    )
                }
                StageConfig::Aggregate {
                    group_by,
                    window,
                    measures,
                    max_groups,
                    max_distinct_values,
                } => {
                    let at = |k: &'static str| [Seg::Key("stage"), Seg::Index(i), Seg::Key(k)];
                    if measures.0.is_empty() {
                        return Err(cx.err(
                            &at("measures"),
                            "needs at least one measure, e.g. hits = \"count(*)\"",
                        ));
                    }
                    for (name, e) in &measures.0 {
                        sluice_processors::expr::parse(e).map_err(|err| {
                            cx.err(
                                &[
                                    Seg::Key("stage"),
                                    Seg::Index(i),
                                    Seg::Key("measures"),
                                    Seg::Key(name),
                                ],
                                err.to_string(),
                            )
                        })?;
                    }
                    let window = match window {
                        None => None,
                        Some(w) => Some(Window {
                            column: w.column.clone(),
                            every_micros: parse_every(&w.every).map_err(|m| {
                                cx.err(
                                    &[
                                        Seg::Key("stage"),
                                        Seg::Index(i),
                                        Seg::Key("window"),
                                        Seg::Key("every"),
                                    ],
                                    m,
                                )
                            })?,
                        }),
                    };
                    if *max_groups == 0 {
                        return Err(cx.err(&at("max_groups"), "must be at least 1"));
                    }
                    if *max_distinct_values == 0 {
                        return Err(cx.err(&at("max_distinct_values"), "must be at least 1"));
                    }
                    let d = format!(
                        "aggregate by {}{} → {}",
                        if group_by.is_empty() {
                            "(everything)".to_string()
                        } else {
                            group_by.join(", ")
                        },
                        window
                            .as_ref()
                            .map(|w| format!(" per {} of `{}`", w_every(w.every_micros), w.column))
                            .unwrap_or_default(),
                        measures
                            .0
                            .iter()
                            .map(|(k, v)| format!("{k} = {v}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    (
                        Arc::new(AggregateFactory {
                            group_by: group_by.clone(),
                            window,
                            measures: measures.0.clone(),
                            max_groups: *max_groups,
                            max_distinct_values: *max_distinct_values,
                        }),
                        d,
                        "measures",
                    )
                }
            };
            if let Some(s) = &current {
                let built = factory.build(s).map_err(|e| {
                    // Point at the one select column that fails, not the whole table.
                    if let StageConfig::Aggregate {
                        measures, group_by, ..
                    } = st
                    {
                        for (name, text) in &measures.0 {
                            let one = sluice_processors::aggregate::Aggregate::new(
                                &[],
                                None,
                                &[(name.clone(), text.clone())],
                                1,
                                s,
                            );
                            if let Err(e) = one {
                                return cx.err(
                                    &[
                                        Seg::Key("stage"),
                                        Seg::Index(i),
                                        Seg::Key("measures"),
                                        Seg::Key(name),
                                    ],
                                    e.to_string(),
                                );
                            }
                        }
                        if !group_by.is_empty() {
                            return cx.err(
                                &[Seg::Key("stage"), Seg::Index(i), Seg::Key("group_by")],
                                e.to_string(),
                            );
                        }
                    }
                    if let StageConfig::Select { columns } = st {
                        for (name, text) in &columns.0 {
                            if let Err(e) = sluice_processors::expr::Compiled::new(text, s) {
                                return cx.err(
                                    &[
                                        Seg::Key("stage"),
                                        Seg::Index(i),
                                        Seg::Key(key),
                                        Seg::Key(name),
                                    ],
                                    e.to_string(),
                                );
                            }
                        }
                    }
                    cx.err(
                        &[Seg::Key("stage"), Seg::Index(i), Seg::Key(key)],
                        e.to_string(),
                    )
                })?;
                current = Some(built.schema());
            }
            stages.push(PlannedStage { factory, describe });
        }

        let out = &config.output;
        let output = Destination::parse(&out.uri).map_err(|m| {
            cx.err(
                &[Seg::Key("output"), Seg::Key("uri")],
                format!("`{}` {m}", out.uri),
            )
        })?;
        let kinesis = matches!(output, Destination::Kinesis { .. });
        if kinesis
            && config
                .stages
                .iter()
                .any(|s| matches!(s, StageConfig::Index { .. }))
        {
            return Err(cx.err(
                &[Seg::Key("output"), Seg::Key("uri")],
                "the index is written as Parquet files beside the output: use s3://bucket/prefix/ or a folder",
            ));
        }
        if kinesis && resize.is_some() {
            return Err(cx.err(
                &[Seg::Key("output"), Seg::Key("uri")],
                "renditions are files: write them to s3://bucket/prefix/ or a folder, not a kinesis:// stream",
            ));
        }
        let at = |key: &'static str| [Seg::Key("output"), Seg::Key(key)];
        if kinesis {
            if !out.partition_by.is_empty() {
                return Err(cx.err(
                    &at("partition_by"),
                    "a kinesis:// output has no folders to partition into; use partition_key to choose each record's shard",
                ));
            }
            if out.format == OutputFormat::Parquet && locate(cx.text, &at("format"), true).is_some()
            {
                return Err(cx.err(
                    &at("format"),
                    "a kinesis:// output puts each row as one JSON record; remove format (or write \"ndjson\")",
                ));
            }
            if out.compression.is_some() {
                return Err(cx.err(
                    &at("compression"),
                    "a kinesis:// output puts each row as one JSON record, uncompressed; remove compression",
                ));
            }
        } else if out.partition_key.is_some() {
            return Err(cx.err(
                &at("partition_key"),
                "only a kinesis:// output has partition keys; for folders use partition_by",
            ));
        }
        if let (Some(text), Some(s)) = (&out.partition_key, &current) {
            sluice_processors::expr::Compiled::new(text, s)
                .map_err(|e| cx.err(&at("partition_key"), e.to_string()))?;
        }
        if out.encryption.is_some() && !matches!(output, Destination::S3 { .. }) {
            return Err(cx.err(
                &at("encryption"),
                format!(
                    "is S3 server-side encryption, and `{output}` is not in S3: remove it (a local \
                     folder is as encrypted as its disk)"
                ),
            ));
        }
        if out.kms_key_id.is_some() && out.encryption != Some(Encryption::SseKms) {
            return Err(cx.err(
                &at("kms_key_id"),
                "a KMS key is used by encryption = \"sse-kms\" only; set it, or remove kms_key_id",
            ));
        }
        if out.kms_key_id.as_deref().is_some_and(str::is_empty) {
            return Err(cx.err(
                &at("kms_key_id"),
                "is empty; name a KMS key id, ARN or alias/…",
            ));
        }
        let valid_compression: &[&str] = match out.format {
            OutputFormat::Parquet => &["zstd", "snappy", "none"],
            OutputFormat::Ndjson => &["none", "gzip"],
        };
        if let Some(c) = &out.compression
            && !valid_compression.contains(&c.as_str())
        {
            return Err(cx.err(
                &[Seg::Key("output"), Seg::Key("compression")],
                format!(
                    "`{c}` is not valid for this format; use one of: {}",
                    valid_compression.join(", ")
                ),
            ));
        }
        if out.max_open_partitions == 0 {
            return Err(cx.err(
                &at("max_open_partitions"),
                "must be at least 1 (the default is 64): with 0 no output file can be opened",
            ));
        }
        for (i, p) in out.partition_by.iter().enumerate() {
            let unsafe_char = p.chars().find(|&c| {
                c.is_control()
                    || matches!(
                        c,
                        '/' | '\\'
                            | '='
                            | '%'
                            | ':'
                            | '"'
                            | '\''
                            | '#'
                            | '?'
                            | '*'
                            | '{'
                            | '}'
                            | '['
                            | ']'
                            | '^'
                    )
            });
            if p.is_empty() || unsafe_char.is_some() {
                return Err(cx.err(
                    &[Seg::Key("output"), Seg::Key("partition_by"), Seg::Index(i)],
                    format!(
                        "`{}` names a folder level (`{p}=value/`), so it cannot be empty or hold / \\ = % : \" ' # ? * {{ }} [ ] ^ or control characters; rename the column with a select stage",
                        p.escape_debug()
                    ),
                ));
            }
        }
        if out.max_row_group_bytes < 1 << 20 {
            return Err(cx.err(
                &[Seg::Key("output"), Seg::Key("max_row_group_bytes")],
                "must be at least 1048576 (1 MiB)",
            ));
        }
        if let Some(s) = &current {
            for (i, p) in out.partition_by.iter().enumerate() {
                let Ok(f) = s.field_with_name(p) else {
                    let cols: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
                    return Err(cx.err(
                        &[Seg::Key("output"), Seg::Key("partition_by"), Seg::Index(i)],
                        format!(
                            "no column `{p}` reaches the output; columns are: {}",
                            cols.join(", ")
                        ),
                    ));
                };
                if matches!(
                    f.data_type(),
                    arrow_schema::DataType::Struct(_) | arrow_schema::DataType::List(_)
                ) {
                    return Err(cx.err(
                        &[Seg::Key("output"), Seg::Key("partition_by"), Seg::Index(i)],
                        format!(
                            "`{p}` is {}; partition by a string, number, bool or date",
                            sluice_processors::expr::a_type(f.data_type())
                        ),
                    ));
                }
            }
            if !out.partition_by.is_empty() && out.partition_by.len() == s.fields().len() {
                return Err(cx.err(
                    &[Seg::Key("output"), Seg::Key("partition_by")],
                    "partitions by every column, which leaves nothing to write in the files",
                ));
            }
        }
        let m = &config.metrics;
        if m.namespace.is_empty() || m.namespace.starts_with("AWS/") || m.namespace.len() > 255 {
            return Err(cx.err(
                &[Seg::Key("metrics"), Seg::Key("namespace")],
                "a namespace is 1 to 255 characters and cannot start with AWS/",
            ));
        }
        for (i, set) in m.dimensions.iter().enumerate() {
            for (j, d) in set.iter().enumerate() {
                if !METRIC_DIMENSIONS.contains(&d.as_str()) || set[..j].contains(d) {
                    return Err(cx.err(
                        &[
                            Seg::Key("metrics"),
                            Seg::Key("dimensions"),
                            Seg::Index(i),
                            Seg::Index(j),
                        ],
                        format!(
                            "`{d}` is not a dimension, or is repeated; use {}",
                            METRIC_DIMENSIONS.join(", ")
                        ),
                    ));
                }
            }
        }
        let rejects = match &config.rejects {
            None => None,
            Some(r) if r.uri.starts_with("kinesis://") => {
                return Err(cx.err(
                    &[Seg::Key("rejects"), Seg::Key("uri")],
                    "rejects go to s3://bucket/prefix/ or a local folder, not a stream",
                ));
            }
            Some(r) => Some(Destination::parse(&r.uri).map_err(|m| {
                cx.err(
                    &[Seg::Key("rejects"), Seg::Key("uri")],
                    format!("`{}` {m}", r.uri),
                )
            })?),
        };

        if let Some(r) = &rejects
            && let Some(why) = overlap(&output, r)
        {
            return Err(cx.err(
                &[Seg::Key("rejects"), Seg::Key("uri")],
                format!(
                    "`{r}` {why} the output location `{output}`: whatever reads the output would read the \
                     rejects as data. Give rejects a folder of their own beside it, e.g. a sibling `rejects/`"
                ),
            ));
        }

        // The recursive-invocation trap: outputs landing where the trigger's keys match.
        let mut warnings = Vec::new();
        let ext = match out.format {
            OutputFormat::Parquet => "parquet",
            OutputFormat::Ndjson => {
                if out.compression.as_deref() == Some("gzip") {
                    "ndjson.gz"
                } else {
                    "ndjson"
                }
            }
        };
        let mut dests = vec![(&output, ext, "output")];
        if let Some(r) = &rejects {
            dests.push((r, "ndjson", "rejects"));
        }
        for (dest, ext, section) in dests {
            let Destination::S3 { prefix, bucket } = dest else {
                continue;
            };
            if !input.buckets.is_empty() && !input.buckets.contains(bucket) {
                // A different bucket from every trigger bucket: no loop possible.
                continue;
            }
            let mut part = String::new();
            let mut samples = vec![format!("{prefix}x-0123456789abcdef.{ext}")];
            for p in &out.partition_by {
                part.push_str(&format!("{p}=v/"));
                samples.push(format!("{prefix}{part}x-0123456789abcdef.{ext}"));
            }
            if keys.is_empty() {
                warnings.push(format!(
                    "[{section}] writes to {dest} and [input] keys is empty: if the trigger bucket is that bucket, \
                     every output would trigger the function again. Set keys; at run time objects under {dest} are skipped."
                ));
            }
            for (i, g) in keys.iter().enumerate() {
                if let Some(s) = samples.iter().find(|s| g.is_match(s.as_str())) {
                    return Err(cx.err(
                        &[Seg::Key(section), Seg::Key("uri")],
                        format!(
                            "writes to {dest}, where [input] keys[{i}] `{}` matches what it writes (e.g. `{s}`): every output \
                             would trigger the function again. Write outside the input keys, narrow the glob, or \
                             list the trigger buckets in [input] buckets if the output bucket is not one of them",
                            input.keys[i]
                        ),
                    ));
                }
            }
        }

        Ok(Plan {
            input: spec,
            schema,
            keys,
            stages,
            output,
            rejects,
            warnings,
            streamed,
            resize,
            index,
            file: file.to_path_buf(),
            config,
        })
    }

    /// True when objects of `bucket` are processed.
    pub fn bucket_selected(&self, bucket: &str) -> bool {
        self.config.input.buckets.is_empty()
            || self.config.input.buckets.iter().any(|b| b == bucket)
    }

    /// True when `key` is selected by `[input] keys`.
    pub fn key_selected(&self, key: &str) -> bool {
        self.keys.is_empty() || self.keys.iter().any(|g| g.is_match(key))
    }
}

fn schema_line(s: &SchemaRef) -> String {
    s.fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), type_name(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(f, "pipeline {} ({})", c.name, self.file.display())?;
        let keys = if c.input.keys.is_empty() {
            "every key".to_string()
        } else {
            c.input.keys.join(", ")
        };
        writeln!(
            f,
            "input    {} · compression {} · keys {keys}",
            c.input.format,
            c.input.compression.name()
        )?;
        match &self.schema {
            Some(s) => writeln!(f, "         schema: {}", schema_line(s))?,
            None => writeln!(
                f,
                "         schema: inferred from the first {} records of each object",
                c.input.batch_rows
            )?,
        }
        if !self.streamed.is_empty() {
            let names: Vec<&str> = self.streamed.iter().map(|c| c.name()).collect();
            writeln!(
                f,
                "         + {} from the trigger: Kinesis and SQS batches add them to each row; \
                 S3 objects have none (an object fails, saying so)",
                names.join(", ")
            )?;
        }
        // The stages see the stream columns they name, as in `check`.
        let mut current = self
            .schema
            .clone()
            .map(|s| crate::stream::with_columns(&s, &self.streamed));
        for (i, st) in self.stages.iter().enumerate() {
            writeln!(f, "stage {}  {}", i + 1, st.describe)?;
            if let Some(s) = &current {
                match st.factory.build(s) {
                    Ok(built) => {
                        let out = built.schema();
                        if out == *s {
                            writeln!(f, "         schema unchanged")?;
                        } else {
                            writeln!(f, "         → {}", schema_line(&out))?;
                        }
                        current = Some(out);
                    }
                    Err(e) => writeln!(f, "         error: {e}")?,
                }
            }
        }
        let compression = c
            .output
            .compression
            .clone()
            .unwrap_or_else(|| match c.output.format {
                OutputFormat::Parquet => "zstd".into(),
                OutputFormat::Ndjson => "none".into(),
            });
        match self.output {
            Destination::Kinesis { .. } => {
                write!(f, "output   one JSON record per row → {}", self.output)?
            }
            _ => write!(
                f,
                "output   {} ({compression}) → {}",
                c.output.format.name(),
                self.output
            )?,
        }
        if !c.output.partition_by.is_empty() {
            write!(f, " partitioned by {}", c.output.partition_by.join(", "))?;
        }
        writeln!(f)?;
        match &self.rejects {
            Some(r) => writeln!(f, "rejects  ndjson → {r}")?,
            None => writeln!(f, "rejects  counted and logged only (no [rejects] section)")?,
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "clicks"

[input]
format = "ndjson"
keys = ["logs/**/*.ndjson.gz"]
schema = { ts = "timestamp", page = "string", latency_ms = "int64" }

[[stage]]
type = "filter"
where = "latency_ms > 500"

[[stage]]
type = "select"
columns = { page = "page", day = "date(ts)" }

[output]
uri = "s3://out/clicks/"
partition_by = ["day"]

[rejects]
uri = "s3://out/rejects/"
"#;

    fn check(text: &str) -> Result<Plan, ConfigError> {
        Plan::from_str(Path::new("p.toml"), text)
    }

    #[test]
    fn an_unknown_stage_type_names_the_types_there_are() {
        let e = check(&GOOD.replace("type = \"select\"", "type = \"selekt\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("stage[1].type"), "{e}");
        assert!(e.to_string().contains("unknown variant `selekt`"), "{e}");
        assert!(
            e.to_string().contains("`resize`") && e.to_string().contains("`index`"),
            "{e}"
        );
        assert!(!e.to_string().contains("not in this build"), "{e}");
    }

    /// Issue 27: each of these passed `validate` and then lost data or wrote where it should not.
    #[test]
    fn settings_that_cannot_work_are_refused_naming_the_key() {
        let cases: [(String, &str, &str); 9] = [
            (
                GOOD.replace(
                    "format = \"ndjson\"",
                    "format = \"ndjson\"\nmax_line_bytes = 0",
                ),
                "input.max_line_bytes",
                "at least 1",
            ),
            (
                GOOD.replace(
                    "partition_by = [\"day\"]",
                    "partition_by = [\"day\"]\nmax_open_partitions = 0",
                ),
                "output.max_open_partitions",
                "at least 1",
            ),
            (
                GOOD.replace("uri = \"s3://out/rejects/\"", "uri = \"s3://out/clicks/\""),
                "rejects.uri",
                "is the output location",
            ),
            (
                GOOD.replace(
                    "uri = \"s3://out/rejects/\"",
                    "uri = \"s3://out/clicks/day=x/\"",
                ),
                "rejects.uri",
                "lies inside the output location",
            ),
            (
                GOOD.replace("uri = \"s3://out/clicks/\"\n", "uri = \"out/c\"\n")
                    .replace("uri = \"s3://out/rejects/\"", "uri = \"./out/c/\""),
                "rejects.uri",
                "is the output location",
            ),
            (
                GOOD.replace("s3://out/clicks/", "s3://out//clicks/"),
                "output.uri",
                "an empty folder (`//`)",
            ),
            (
                GOOD.replace("s3://out/rejects/", "s3://out/../rejects/"),
                "rejects.uri",
                "a `..` folder",
            ),
            (
                GOOD.replace("day = \"date(ts)\"", "\"../../evil\" = \"date(ts)\"")
                    .replace(
                        "partition_by = [\"day\"]",
                        "partition_by = [\"../../evil\"]",
                    ),
                "output.partition_by[0]",
                "names a folder level",
            ),
            (
                GOOD.replace("day = \"date(ts)\"", "\"a=b\" = \"date(ts)\"")
                    .replace("partition_by = [\"day\"]", "partition_by = [\"a=b\"]"),
                "output.partition_by[0]",
                "names a folder level",
            ),
        ];
        for (text, key, says) in cases {
            let e = check(&text).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
            assert!(e.to_string().contains(says), "{e}");
            assert!(e.line.is_some(), "{e}");
        }
        // Beside each other is fine, and so is a hidden folder inside (readers of the output
        // skip `_` and `.` folders, as they skip its `_index/`), or the output inside the rejects.
        for rejects in [
            "s3://out/clicks-rejects/",
            "s3://out/clicks/_rejects/",
            "s3://out/",
        ] {
            check(&GOOD.replace("s3://out/rejects/", rejects)).unwrap();
        }
    }

    /// Issue 39: what a newcomer met. `[stage]` said "invalid type: map, expected a sequence";
    /// the plan printed `Auto` and `Ndjson`, called a kinesis:// output "Parquet (zstd)", and
    /// showed "error: unknown column `_shard`" with exit 0; `encryption` on a local folder was
    /// accepted; messages said "a int64".
    #[test]
    fn what_a_newcomer_meets_says_what_to_do() {
        let e = check(
            "name = \"x\"\n[input]\nformat = \"ndjson\"\n[stage]\ntype = \"filter\"\nwhere = \"a > 1\"\n[output]\nuri = \"out/\"\n",
        )
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("stage"), "{e}");
        assert!(e.to_string().contains("write `[[stage]]`"), "{e}");

        let plan = check(GOOD).unwrap().to_string();
        assert!(plan.contains("compression auto"), "{plan}");
        assert!(
            plan.contains("output   parquet (zstd) → s3://out/clicks/"),
            "{plan}"
        );
        let ndjson = check(&GOOD.replace("partition_by = [\"day\"]", "format = \"ndjson\""))
            .unwrap()
            .to_string();
        assert!(ndjson.contains("output   ndjson (none)"), "{ndjson}");
        let kinesis = check(
            &GOOD
                .replace("uri = \"s3://out/clicks/\"", "uri = \"kinesis://clicks\"")
                .replace("partition_by = [\"day\"]\n", ""),
        )
        .unwrap()
        .to_string();
        assert!(
            kinesis.contains("output   one JSON record per row → kinesis://clicks"),
            "{kinesis}"
        );

        let streamed = check(&GOOD.replace(
            "columns = { page = \"page\", day = \"date(ts)\" }",
            "columns = { page = \"page\", day = \"date(ts)\", shard = \"_shard\" }",
        ))
        .unwrap()
        .to_string();
        assert!(!streamed.contains("error"), "{streamed}");
        assert!(
            streamed.contains("+ _shard from the trigger: Kinesis and SQS batches"),
            "{streamed}"
        );
        assert!(streamed.contains("shard string"), "{streamed}");

        let e = check(&GOOD.replace(
            "uri = \"s3://out/clicks/\"\n",
            "uri = \"out/clicks/\"\nencryption = \"sse-s3\"\n",
        ))
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("output.encryption"), "{e}");
        assert!(e.to_string().contains("is not in S3"), "{e}");

        let e = check(&GOOD.replace("latency_ms > 500", "latency_ms || 'x' = 'x' AND -page = 1"))
            .unwrap_err();
        assert!(
            e.to_string().contains("cannot negate a string value"),
            "{e}"
        );
        let e = check(&GOOD.replace("where = \"latency_ms > 500\"", "where = \"latency_ms\""))
            .unwrap_err();
        assert!(e.to_string().contains("but this is an int64"), "{e}");
    }

    #[test]
    fn metrics_dimensions_and_namespace_are_checked() {
        let base = "name = \"m\"\n[input]\nformat = \"text\"\n[output]\nuri = \"s3://o/p/\"\n";
        let p = check(base).unwrap();
        assert_eq!(p.config.metrics, MetricsConfig::default());
        let p = check(&format!(
            "{base}[metrics]\nnamespace = \"Team/Etl\"\ndimensions = [[\"pipeline\", \"trigger\"], [\"function\"]]\n"
        ))
        .unwrap();
        assert_eq!(p.config.metrics.namespace, "Team/Etl");
        let e = check(&format!(
            "{base}[metrics]\ndimensions = [[\"pipeline\"], [\"trigger\", \"shard\"]]\n"
        ))
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("metrics.dimensions[1][1]"), "{e}");
        assert_eq!(e.line, Some(7), "{e}");
        assert!(e.to_string().contains("`shard` is not a dimension"), "{e}");
        let e = check(&format!("{base}[metrics]\nnamespace = \"AWS/Lambda\"\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("metrics.namespace"), "{e}");
        let e = check(&format!("{base}[metrics]\nnamspace = \"x\"\n")).unwrap_err();
        assert!(e.to_string().contains("namspace"), "{e}");
    }

    #[test]
    fn kinesis_outputs_are_checked_like_the_rest() {
        let k = GOOD.replace(
            "uri = \"s3://out/clicks/\"\npartition_by = [\"day\"]",
            "uri = \"kinesis://clicks-out\"\npartition_key = \"page\"",
        );
        let p = check(&k).unwrap();
        assert_eq!(
            p.output,
            Destination::Kinesis {
                stream: "clicks-out".into()
            }
        );
        let e =
            check(&k.replace("partition_key = \"page\"", "partition_key = \"pgae\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("output.partition_key"), "{e}");
        assert_eq!(e.line, Some(19), "{e}");
        assert!(e.message.contains("unknown column `pgae`"), "{e}");
        let e =
            check(&k.replace("partition_key = \"page\"", "partition_by = [\"day\"]")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("output.partition_by"), "{e}");
        let e = check(&k.replace("partition_key = \"page\"", "format = \"parquet\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("output.format"), "{e}");
        let e = check(&k.replace("s3://out/rejects/", "kinesis://rejects")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("rejects.uri"), "{e}");
        let e = check(&GOOD.replace("partition_by = [\"day\"]", "partition_key = \"page\""))
            .unwrap_err();
        assert!(e.message.contains("only a kinesis:// output"), "{e}");
        assert!(check(&k.replace("kinesis://clicks-out", "kinesis://")).is_err());
    }

    #[test]
    fn resolves_a_good_config() {
        let p = check(GOOD).unwrap();
        let printed = p.to_string();
        assert!(printed.contains("→ page string, day date"), "{printed}");
        assert!(p.key_selected("logs/2026/11/a.ndjson.gz"));
        assert!(!p.key_selected("logs/a.csv"));
        assert!(!p.key_selected("other/a.ndjson.gz"));
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = check(&GOOD.replace("keys =", "kyes =")).unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        assert!(
            e.to_string()
                .starts_with("p.toml:6: `input.kyes`: unknown field `kyes`, expected one of"),
            "{e}"
        );

        let e = check(&GOOD.replace("latency_ms > 500", "latncy_ms > 500")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(11), Some("stage[0].where")),
            "{e}"
        );
        assert!(e.message.contains("unknown column `latncy_ms`"), "{e}");

        let e = check(&GOOD.replace("\"date(ts)\"", "\"date(page + 1)\"")).unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(15), Some("stage[1].columns.day")),
            "{e}"
        );

        let e = check(&GOOD.replace("type = \"select\"", "type = \"aggregat\"")).unwrap_err();
        assert!(
            e.message
                .contains("expected one of `filter`, `select`, `aggregate`"),
            "{e}"
        );
        assert_eq!(e.line, Some(14), "{e}");

        let e = check(&GOOD.replace("\"int64\"", "\"integer64\"")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("input.schema"), "{e}");
        assert!(e.message.contains("valid types"), "{e}");

        let e = check(&GOOD.replace("partition_by = [\"day\"]", "partition_by = [\"dya\"]"))
            .unwrap_err();
        assert_eq!(
            (e.line, e.key.as_deref()),
            (Some(19), Some("output.partition_by[0]")),
            "{e}"
        );

        let e = check(&GOOD.replace("s3://out/clicks/", "gs://out/clicks/")).unwrap_err();
        assert!(e.message.contains("not supported"), "{e}");

        let e = check("name = \"x\"\n[input\nformat = 1").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.starts_with("not valid TOML"), "{e}");

        let e = check(&GOOD.replace("where =", "wher =")).unwrap_err();
        assert_eq!(e.line, Some(11), "{e}");
        assert!(
            e.message.contains("unknown field `wher`, expected `where`"),
            "{e}"
        );

        let e = check(&GOOD.replace("format = \"ndjson\"", "format = \"xml\"")).unwrap_err();
        assert!(
            e.message.contains(
                "unknown format `xml`; this build reads: ndjson, json, csv, parquet, lines, alb"
            ),
            "{e}"
        );
    }

    #[test]
    fn server_side_encryption_is_checked_where_it_is_written() {
        let with = |extra: &str| {
            GOOD.replace(
                "partition_by = [\"day\"]\n",
                &format!("partition_by = [\"day\"]\n{extra}"),
            )
        };
        let p = check(&with(
            "encryption = \"sse-kms\"\nkms_key_id = \"alias/etl\"\n",
        ))
        .unwrap();
        assert_eq!(p.config.output.encryption, Some(Encryption::SseKms));
        assert_eq!(p.config.output.kms_key_id.as_deref(), Some("alias/etl"));
        let p = check(&with("encryption = \"sse-s3\"\n")).unwrap();
        assert_eq!(p.config.output.encryption, Some(Encryption::SseS3));
        // A key without SSE-KMS, an empty key, and an unknown kind: file, line and key named.
        for (extra, line, key, says) in [
            (
                "kms_key_id = \"alias/etl\"\n",
                20,
                "output.kms_key_id",
                "sse-kms",
            ),
            (
                "encryption = \"sse-s3\"\nkms_key_id = \"k\"\n",
                21,
                "output.kms_key_id",
                "sse-kms",
            ),
            (
                "encryption = \"sse-kms\"\nkms_key_id = \"\"\n",
                21,
                "output.kms_key_id",
                "empty",
            ),
            ("encryption = \"aes\"\n", 20, "output.encryption", "sse-s3"),
        ] {
            let e = check(&with(extra)).unwrap_err();
            assert_eq!((e.line, e.key.as_deref()), (Some(line), Some(key)), "{e}");
            assert!(e.message.contains(says), "{e}");
        }
    }

    #[test]
    fn refuses_the_recursive_invocation_trap() {
        let text = GOOD
            .replace("s3://out/clicks/", "s3://in/logs/out/")
            .replace("keys = [\"logs/**/*.ndjson.gz\"]", "keys = [\"logs/**\"]");
        let e = check(&text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("output.uri"), "{e}");
        assert!(e.message.contains("trigger the function again"), "{e}");
        // Same prefix but a glob that cannot match what is written is fine.
        assert!(check(&GOOD.replace("s3://out/clicks/", "s3://in/logs/out/")).is_ok());
        // No keys at all: allowed with a warning, guarded at run time.
        let p = check(&GOOD.replace("keys = [\"logs/**/*.ndjson.gz\"]", "")).unwrap();
        assert!(p.warnings[0].contains("keys is empty"));
        assert!(p.output.contains("out", "clicks/day=x/a.parquet"));
    }
}
