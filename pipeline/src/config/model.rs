//! The config a user writes: the `pipeline.toml` structs (serde, unknown keys refused).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use sluice_processors::DEFAULT_BATCH_ROWS;

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
    /// An SQS FIFO queue's batch: past its first failed message, what else is reported failed
    /// (and not processed): every later message of the batch (`batch`, the default: AWS's rule,
    /// order kept across the queue), or only the later messages of the same message group
    /// (`group`: other groups go on).
    #[serde(default)]
    pub fifo: FifoOrder,
    /// What invokes the function: `any` (the default: S3 notifications in every envelope,
    /// Kinesis, SQS, DynamoDB Streams, Batch Operations and CloudWatch Logs events, each as it
    /// comes) or `firehose` (a Firehose data-transformation function: each record's rows go back
    /// to Firehose in the answer, and `[output]` names no destination).
    #[serde(default)]
    pub trigger: Trigger,
}

/// `[input] trigger`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Every event shape, each answered as its source expects.
    #[default]
    Any,
    /// Firehose's data-transformation contract only.
    Firehose,
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
            fifo: FifoOrder::default(),
            trigger: Trigger::default(),
        }
    }
}

/// `[input] fifo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FifoOrder {
    /// Every message after the first failed one.
    #[default]
    Batch,
    /// The later messages of the failed one's message group.
    Group,
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

pub(crate) fn default_batch_rows() -> usize {
    DEFAULT_BATCH_ROWS
}
pub(crate) fn default_max_inflate_ratio() -> u64 {
    100
}

pub(crate) fn default_max_line_bytes() -> usize {
    sluice_processors::decode::ndjson::DEFAULT_MAX_LINE_BYTES
}

pub(crate) fn default_max_inferred_columns() -> usize {
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

pub(crate) fn yes() -> bool {
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

pub(crate) fn default_max_groups() -> usize {
    sluice_processors::aggregate::DEFAULT_MAX_GROUPS
}

pub(crate) fn default_max_distinct_values() -> usize {
    sluice_processors::aggregate::DEFAULT_MAX_DISTINCT_VALUES
}

/// `[output]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// `s3://bucket/prefix/`, `kinesis://stream` or a local folder; none for a Firehose
    /// transformation (`[input] trigger = "firehose"`), whose rows go back in its answer.
    #[serde(default)]
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
    /// `format = "iceberg"`: the table, `namespace.name`, created on first commit when missing.
    #[serde(default)]
    pub table: Option<String>,
    /// `format = "iceberg"`: the catalog. `sqlite:FILE` (the default, `sqlite:catalog.db`: a
    /// SQLite file, relative to a local output folder), `glue` or `rest+https://…`.
    #[serde(default)]
    pub catalog: Option<String>,
    /// `catalog = "rest+…"`: the catalog's warehouse (S3 Tables: the table bucket's ARN).
    #[serde(default)]
    pub warehouse: Option<String>,
    /// `catalog = "rest+…"`: sign its requests with AWS SigV4 for this service (`s3tables`,
    /// `glue`, `execute-api`…), or `none`. Default: the service an `*.amazonaws.com` host names,
    /// else none.
    #[serde(default)]
    pub sigv4: Option<String>,
    /// `format = "iceberg"`: the partition spec of a table the pipeline creates, in Iceberg's
    /// transforms: `identity(col)`, `year|month|day|hour(col)`, `bucket(N, col)`,
    /// `truncate(W, col)`.
    #[serde(default)]
    pub partition: Vec<String>,
    /// `format = "iceberg"`: data files roll over to a new file at about this many bytes
    /// (default 128 MiB).
    #[serde(default)]
    pub target_file_bytes: Option<u64>,
    /// `format = "iceberg"`: how an invocation's data files reach the table. `direct` (the
    /// default): the invocation commits them itself. `queue`: it sends one message describing
    /// them to `queue`, and the committer (the same function, triggered by that queue) folds a
    /// batch of messages into one snapshot.
    #[serde(default)]
    pub commit: Option<String>,
    /// `commit = "queue"`: the SQS queue of commit messages, by URL or name.
    #[serde(default)]
    pub queue: Option<String>,
    /// What one set of output files covers: each S3 object (`object`, the default) or all the
    /// objects of an invocation (`invocation`: an SQS-batched trigger's thousands of small
    /// objects become one file per partition). An aggregate always covers the invocation.
    #[serde(default)]
    pub per: Per,
}

/// `[output] per`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    /// A set of files per S3 object.
    #[default]
    Object,
    /// One set of files for all the objects of an invocation.
    Invocation,
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
            table: None,
            catalog: None,
            warehouse: None,
            sigv4: None,
            partition: Vec::new(),
            target_file_bytes: None,
            commit: None,
            queue: None,
            per: Per::Object,
        }
    }
}

pub(crate) fn default_row_group_bytes() -> usize {
    32 << 20
}
pub(crate) fn default_max_open_partitions() -> usize {
    64
}
pub(crate) fn default_deadline_reserve_ms() -> u64 {
    2_000
}

impl OutputFormat {
    /// As written in the config.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Parquet => "parquet",
            OutputFormat::Ndjson => "ndjson",
            OutputFormat::Iceberg => "iceberg",
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
    /// Parquet data files committed into an Apache Iceberg table (`table`, `catalog`).
    Iceberg,
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
    /// The answer to Firehose (`[input] trigger = "firehose"`): each record's rows, as NDJSON.
    Firehose,
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
pub(crate) fn overlap(output: &Destination, rejects: &Destination) -> Option<&'static str> {
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
            Destination::Kinesis { .. } | Destination::Firehose => None,
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
            Destination::Firehose => f.write_str("the answer to Firehose"),
        }
    }
}
