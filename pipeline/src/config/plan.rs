//! A checked pipeline, ready to run: its input spec, planned stages, destinations and limits.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use globset::GlobMatcher;
use sluice_processors::StageFactory;
use sluice_processors::decode::Decoder;
use sluice_processors::decode::aws;
use sluice_processors::decode::csv::CsvDecoderBuilder;
use sluice_processors::decode::jsondoc::JsonRecordsDecoder;
use sluice_processors::decode::logs::LogDecoderBuilder;
use sluice_processors::decode::ndjson::NdjsonDecoder;

use crate::config::model::*;

/// What a run needs of `[input]` and `[output]` beyond the plan's parts, checked and typed.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rows per batch a decoder emits (1 to 1 048 576; checked).
    pub batch_rows: usize,
    /// How much more than the stored bytes an object may inflate to (0: unbounded).
    pub max_inflate_ratio: u64,
    /// How an object's compression is told.
    pub compression: Compression,
    /// What an object deleted since its notification is.
    pub on_missing: OnMissing,
    /// How long before the invocation's deadline a stream batch stops.
    pub deadline_reserve: std::time::Duration,
}

/// How the output files are written (`[output]`), checked and typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// The files' format and compression.
    pub encoding: Encoding,
    /// Columns whose values name Hive-style folders (`day=2026-11-22/`).
    pub partition_by: Vec<String>,
    /// Parquet row groups close at this many bytes of encoded data.
    pub max_row_group_bytes: usize,
    /// Most open partition files per unit of work.
    pub max_open_partitions: usize,
    /// `kinesis://` outputs: the expression whose value is each record's partition key.
    pub partition_key: Option<String>,
    /// `format = "iceberg"`: the table the files are committed into.
    pub table: Option<TableSpec>,
}

/// An Iceberg table output (`[output] format = "iceberg"`), checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// The namespace (`analytics` of `analytics.clicks`; a dotted namespace is nested).
    pub namespace: Vec<String>,
    /// The table's name.
    pub name: String,
    /// Where the table is registered.
    pub catalog: CatalogSpec,
    /// The partition spec of a table the pipeline creates.
    pub partition: Vec<PartitionField>,
    /// Data files roll over at about this many bytes.
    pub target_file_bytes: u64,
    /// How an invocation's data files reach the table.
    pub commit: CommitMode,
}

/// `[output] commit`: who commits an invocation's data files into its table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CommitMode {
    /// The invocation, in one snapshot of its own (conflicts retried).
    #[default]
    Direct,
    /// The committer: the invocation sends one message describing its files to this SQS queue
    /// (a URL or a name), and the function the queue triggers folds each batch of messages
    /// into one snapshot.
    Queue(String),
}

impl TableSpec {
    /// `namespace.name`.
    pub fn ident(&self) -> String {
        format!("{}.{}", self.namespace.join("."), self.name)
    }
}

/// `[output] catalog`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogSpec {
    /// An embedded SQL catalog on a SQLite file (a relative path is relative to a local output
    /// folder, else to the working directory).
    Sqlite(PathBuf),
    /// The AWS Glue Data Catalog of the function's account and region.
    Glue,
    /// An Iceberg REST catalog.
    Rest(RestSpec),
}

/// An Iceberg REST catalog: where, which warehouse, how requests are signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestSpec {
    /// `https://host/path` (the `/v1/…` routes go under it).
    pub uri: String,
    /// The warehouse asked for in `GET /v1/config` (S3 Tables: the table bucket's ARN).
    pub warehouse: Option<String>,
    /// The SigV4 service name requests are signed for, or `None` to send them unsigned.
    pub sigv4: Option<String>,
}

impl fmt::Display for CatalogSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogSpec::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            CatalogSpec::Glue => f.write_str("glue"),
            CatalogSpec::Rest(r) => write!(f, "rest+{}", r.uri),
        }
    }
}

/// One field of a table's partition spec: an Iceberg transform of a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionField {
    /// The transform as Iceberg writes it: `identity`, `day`, `bucket[16]`, `truncate[4]`.
    pub transform: String,
    /// The source column.
    pub column: String,
}

/// The default `[output] target_file_bytes`: 128 MiB.
pub const DEFAULT_TARGET_FILE_BYTES: u64 = 128 << 20;

/// An output file's format and compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Parquet, its pages compressed with the codec.
    Parquet(ParquetCodec),
    /// Newline-delimited JSON, gzipped or not.
    Ndjson {
        /// The whole file is one gzip stream (`.ndjson.gz`).
        gzip: bool,
    },
}

/// The codec of Parquet pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParquetCodec {
    /// zstd at its default level (the default).
    Zstd,
    /// Snappy.
    Snappy,
    /// Uncompressed.
    None,
}

impl Encoding {
    /// `[output] compression` for `format`, or the values it may take.
    pub fn parse(format: OutputFormat, compression: Option<&str>) -> Result<Self, &'static str> {
        match (format, compression) {
            (OutputFormat::Parquet, None | Some("zstd")) => {
                Ok(Encoding::Parquet(ParquetCodec::Zstd))
            }
            (OutputFormat::Parquet, Some("snappy")) => Ok(Encoding::Parquet(ParquetCodec::Snappy)),
            (OutputFormat::Parquet, Some("none")) => Ok(Encoding::Parquet(ParquetCodec::None)),
            (OutputFormat::Parquet, Some(_)) => Err("zstd, snappy, none"),
            (OutputFormat::Ndjson, None | Some("none")) => Ok(Encoding::Ndjson { gzip: false }),
            (OutputFormat::Ndjson, Some("gzip")) => Ok(Encoding::Ndjson { gzip: true }),
            (OutputFormat::Ndjson, Some(_)) => Err("none, gzip"),
            (OutputFormat::Iceberg, None | Some("zstd")) => {
                Ok(Encoding::Parquet(ParquetCodec::Zstd))
            }
            (OutputFormat::Iceberg, Some("snappy")) => Ok(Encoding::Parquet(ParquetCodec::Snappy)),
            (OutputFormat::Iceberg, Some("none")) => Ok(Encoding::Parquet(ParquetCodec::None)),
            (OutputFormat::Iceberg, Some(_)) => Err("zstd, snappy, none"),
        }
    }

    /// The files' extension.
    pub fn extension(self) -> &'static str {
        match self {
            Encoding::Parquet(_) => "parquet",
            Encoding::Ndjson { gzip: true } => "ndjson.gz",
            Encoding::Ndjson { gzip: false } => "ndjson",
        }
    }

    /// The files' `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Parquet(_) => crate::write::PARQUET_TYPE,
            Encoding::Ndjson { .. } => "application/x-ndjson",
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
    /// The schema it emits, when the input schema is declared (known from the check, which
    /// built the stage against it).
    pub output: Option<SchemaRef>,
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
    pub(crate) streamed: Vec<crate::stream::Column>,
    /// The resize stage of an image pipeline; the other stages get a row per rendition.
    pub resize: Option<ResizeSpec>,
    /// The index stage: rows reaching the output are also indexed.
    pub index: Option<IndexSpec>,
    /// The limits and settings a run reads, checked and typed.
    pub limits: Limits,
    /// How the output files are written.
    pub files: FileSpec,
}

pub(crate) fn w_every(micros: i64) -> String {
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

pub(crate) fn stream_columns(stages: &[StageConfig]) -> Vec<crate::stream::Column> {
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
pub(crate) fn stage_columns(st: &StageConfig, cols: &mut Vec<String>) {
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

impl Plan {
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
