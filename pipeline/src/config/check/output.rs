//! `[output]`, `[metrics]`, `[rejects]`, and where they write against the input keys.

use arrow_schema::SchemaRef;
use globset::GlobMatcher;

use crate::config::model::*;
use crate::config::plan::{
    CatalogSpec, CommitMode, DEFAULT_TARGET_FILE_BYTES, Encoding, FileSpec, PartitionField,
    RestSpec, TableSpec,
};
use crate::config::spans::*;
use crate::error::ConfigError;

/// `[output]`: its destination, format, partitions and limits, against the schema it receives;
/// where it writes, and how its files are written.
pub(super) fn check(
    config: &PipelineConfig,
    current: Option<&SchemaRef>,
    resize: &Option<ResizeSpec>,
    cx: &Ctx<'_>,
) -> Result<(Destination, FileSpec), ConfigError> {
    let out = &config.output;
    let output = if config.input.trigger == Trigger::Firehose {
        // Checked by `firehose`, before the stages.
        Destination::Firehose
    } else if out.uri.is_empty()
        && locate(cx.text, &[Seg::Key("output"), Seg::Key("uri")], true).is_none()
    {
        return Err(cx.err(
            &[Seg::Key("output")],
            "names no destination: add uri = \"s3://bucket/prefix/\" (or a local folder, or \
             kinesis://stream); only a Firehose transformation ([input] trigger = \"firehose\") \
             has none",
        ));
    } else {
        Destination::parse(&out.uri).map_err(|m| {
            cx.err(
                &[Seg::Key("output"), Seg::Key("uri")],
                format!("`{}` {m}", out.uri),
            )
        })?
    };
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
        if out.format == OutputFormat::Parquet && locate(cx.text, &at("format"), true).is_some() {
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
    let encoding = Encoding::parse(out.format, out.compression.as_deref()).map_err(|valid| {
        cx.err(
            &[Seg::Key("output"), Seg::Key("compression")],
            format!(
                "`{}` is not valid for this format; use one of: {valid}",
                out.compression.as_deref().unwrap_or_default()
            ),
        )
    })?;
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
    let aggregate = config
        .stages
        .iter()
        .any(|s| matches!(s, StageConfig::Aggregate { .. }));
    if aggregate && out.per == Per::Object && locate(cx.text, &at("per"), true).is_some() {
        return Err(cx.err(
            &at("per"),
            "an aggregate sees every object of an invocation and writes once: remove per, or set it to \"invocation\"",
        ));
    }
    if out.per == Per::Invocation && (kinesis || resize.is_some()) {
        return Err(cx.err(
            &at("per"),
            "gathers objects into one set of files: renditions and kinesis:// records are written one by one",
        ));
    }
    let table = table(config, &output, current, cx)?;
    if table.is_some() {
        let index = config
            .stages
            .iter()
            .any(|s| matches!(s, StageConfig::Index { .. }));
        if resize.is_some() || index {
            return Err(cx.err(
                &[Seg::Key("output"), Seg::Key("format")],
                "an Iceberg table takes rows; renditions and index files are files: write them to \
                 s3://bucket/prefix/ or a folder as parquet",
            ));
        }
    }
    let files = FileSpec {
        encoding,
        partition_by: out.partition_by.clone(),
        max_row_group_bytes: out.max_row_group_bytes,
        max_open_partitions: out.max_open_partitions,
        partition_key: out.partition_key.clone(),
        table,
    };
    Ok((output, files))
}

/// A Firehose transformation (`[input] trigger = "firehose"`): its rows go back to Firehose in
/// the answer, one NDJSON document per record, partitioned by `partition_by` (the answer's
/// `metadata.partitionKeys`). Every `[output]` setting about files, streams or tables, and every
/// stage that does not keep each row's record (an aggregate, an index, renditions), is refused:
/// Firehose answers record by record.
pub(super) fn firehose(
    config: &PipelineConfig,
    resize: &Option<ResizeSpec>,
    cx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    let out = &config.output;
    let at = |key: &'static str| [Seg::Key("output"), Seg::Key(key)];
    let about = [
        ("uri", "Firehose delivers the rows to its own destination"),
        (
            "compression",
            "Firehose compresses what it delivers (its destination's compression setting)",
        ),
        (
            "encryption",
            "Firehose encrypts what it delivers (its destination's settings)",
        ),
        (
            "kms_key_id",
            "Firehose encrypts what it delivers (its destination's settings)",
        ),
        ("per", "each record is answered on its own"),
        (
            "partition_key",
            "Firehose partitions by partition_by, the answer's partition keys",
        ),
        ("max_row_group_bytes", "no files are written"),
        ("max_open_partitions", "no files are written"),
    ];
    for (key, why) in about {
        if locate(cx.text, &at(key), true).is_some() {
            return Err(cx.err(
                &at(key),
                format!("has no meaning for a Firehose transformation ({why}); remove it"),
            ));
        }
    }
    let input = |key: &'static str| [Seg::Key("input"), Seg::Key(key)];
    for key in ["buckets", "keys", "on_missing", "fifo", "compression"] {
        if locate(cx.text, &input(key), true).is_some() {
            return Err(cx.err(
                &input(key),
                "has no meaning for a Firehose transformation (its records are not S3 objects or \
                 SQS messages; a gzip record is inflated whatever this says); remove it",
            ));
        }
    }
    if config.input.format == "csv" && config.input.header != Some(false) {
        return Err(cx.err(
            &input("header"),
            "a Firehose batch's records are CSV lines with no header among them (the first \
             would be taken for one, and its row lost): set header = false, with the columns \
             in order in [input] schema",
        ));
    }
    if out.format != OutputFormat::Ndjson {
        return Err(cx.err(
            &at("format"),
            "a Firehose transformation answers each record with its rows as NDJSON: set format = \
             \"ndjson\" (Firehose's record format conversion can write Parquet from it)",
        ));
    }
    if config.rejects.is_some() {
        return Err(cx.err(
            &[Seg::Key("rejects")],
            "a Firehose transformation answers a record it cannot transform ProcessingFailed, and \
             Firehose writes it to its error output (the processing-failed/ prefix of its S3 \
             bucket), its reason logged: remove [rejects]",
        ));
    }
    if resize.is_some() || config.input.format == "image" {
        return Err(cx.err(
            &[Seg::Key("input"), Seg::Key("format")],
            "renditions are files, and a Firehose transformation answers records: resize images \
             from S3 notifications",
        ));
    }
    for (i, st) in config.stages.iter().enumerate() {
        let why = match st {
            StageConfig::Filter { .. } | StageConfig::Select { .. } => continue,
            StageConfig::Aggregate { .. } => {
                "an aggregate's rows come from many records, and Firehose answers each record \
                 with its own rows; aggregate what Firehose delivers (or read the stream itself)"
            }
            StageConfig::Index { .. } => {
                "an index is files beside an output; a Firehose transformation answers records"
            }
            StageConfig::Resize(_) => {
                "renditions are files; a Firehose transformation answers records"
            }
        };
        return Err(cx.err(&[Seg::Key("stage"), Seg::Index(i), Seg::Key("type")], why));
    }
    Ok(())
}

/// `format = "iceberg"` and its settings (`table`, `catalog`, `partition`, `target_file_bytes`),
/// which no other format takes.
fn table(
    config: &PipelineConfig,
    output: &Destination,
    current: Option<&SchemaRef>,
    cx: &Ctx<'_>,
) -> Result<Option<TableSpec>, ConfigError> {
    let out = &config.output;
    let at = |key: &'static str| [Seg::Key("output"), Seg::Key(key)];
    if out.format != OutputFormat::Iceberg {
        let stray = [
            ("table", out.table.is_some()),
            ("catalog", out.catalog.is_some()),
            ("warehouse", out.warehouse.is_some()),
            ("sigv4", out.sigv4.is_some()),
            ("partition", !out.partition.is_empty()),
            ("target_file_bytes", out.target_file_bytes.is_some()),
            ("commit", out.commit.is_some()),
            ("queue", out.queue.is_some()),
        ];
        if let Some((key, _)) = stray.iter().find(|(_, set)| *set) {
            return Err(cx.err(
                &at(key),
                format!(
                    "is a table setting, for format = \"iceberg\"; remove it, or set that format (for \
                     folders of {} files, partition_by names the columns)",
                    out.format.name()
                ),
            ));
        }
        return Ok(None);
    }
    if !cfg!(feature = "iceberg") {
        return Err(cx.err(
            &at("format"),
            "this sluice was built without its `iceberg` feature; rebuild with it (it is in the default build)",
        ));
    }
    if matches!(output, Destination::Kinesis { .. }) {
        return Err(cx.err(
            &at("uri"),
            "an Iceberg table's files live under s3://bucket/prefix/ or a local folder, not in a stream",
        ));
    }
    if !out.partition_by.is_empty() {
        return Err(cx.err(
            &at("partition_by"),
            "a table is partitioned by its partition spec: use partition = [\"identity(col)\", \"day(ts)\", …]",
        ));
    }
    let Some(ident) = &out.table else {
        return Err(cx.err(
            &at("format"),
            "an Iceberg output names its table: add table = \"namespace.name\" to [output]",
        ));
    };
    let parts: Vec<&str> = ident.split('.').collect();
    let plain = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if parts.len() < 2 || !parts.iter().all(|p| plain(p)) {
        return Err(cx.err(
            &at("table"),
            format!(
                "`{ident}` is not namespace.name: two or more dot-separated names of letters, digits, _ and -"
            ),
        ));
    }
    let catalog = match out.catalog.as_deref() {
        None => CatalogSpec::Sqlite("catalog.db".into()),
        Some(c) if c.starts_with("sqlite:") => {
            let path = c.trim_start_matches("sqlite:").trim_start_matches("//");
            if path.is_empty() {
                return Err(cx.err(
                    &at("catalog"),
                    "names no file: write sqlite:catalog.db (relative to a local output folder) or sqlite:/abs/path.db",
                ));
            }
            CatalogSpec::Sqlite(path.into())
        }
        Some("glue") => CatalogSpec::Glue,
        Some(c) if c.starts_with("rest+http://") || c.starts_with("rest+https://") => {
            let uri = c
                .trim_start_matches("rest+")
                .trim_end_matches('/')
                .to_string();
            let host = uri
                .split("://")
                .nth(1)
                .and_then(|r| r.split(['/', ':']).next())
                .unwrap_or_default();
            if host.is_empty() {
                return Err(cx.err(&at("catalog"), format!("`{c}` names no host")));
            }
            let sigv4 = match out.sigv4.as_deref().map(str::trim) {
                Some("none") => None,
                Some("") => {
                    return Err(cx.err(
                        &at("sigv4"),
                        "names no service: write the SigV4 service (s3tables, glue, execute-api…) or \"none\"",
                    ));
                }
                Some(service) => Some(service.to_string()),
                // S3 Tables (s3tables.REGION.amazonaws.com) and Glue (glue.REGION.amazonaws.com)
                // take SigV4 for the service their host names.
                None => host
                    .strip_suffix(".amazonaws.com")
                    .and_then(|h| h.split('.').next())
                    .map(str::to_string),
            };
            CatalogSpec::Rest(RestSpec {
                uri,
                warehouse: out.warehouse.clone().filter(|w| !w.is_empty()),
                sigv4,
            })
        }
        Some(c) => {
            return Err(cx.err(
                &at("catalog"),
                format!("`{c}` is not a catalog; use sqlite:FILE, glue or rest+https://…"),
            ));
        }
    };
    if !matches!(catalog, CatalogSpec::Rest(_)) {
        for (key, set) in [
            ("warehouse", out.warehouse.is_some()),
            ("sigv4", out.sigv4.is_some()),
        ] {
            if set {
                return Err(cx.err(
                    &at(key),
                    format!("is a REST catalog's setting (catalog = \"rest+https://…\"), not {catalog}'s"),
                ));
            }
        }
    }
    if catalog == CatalogSpec::Glue {
        // Glue has databases (one level) and lower-case names; Athena reads no hyphens.
        let glue_name = |p: &str| {
            p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if parts.len() != 2 || !parts.iter().all(|p| glue_name(p)) {
            return Err(cx.err(
                &at("table"),
                format!(
                    "`{ident}` is not a Glue table name: database.table, each of lower-case \
                     letters, digits and _"
                ),
            ));
        }
        if !matches!(output, Destination::S3 { .. }) {
            return Err(cx.err(
                &at("uri"),
                "a table in the Glue Data Catalog keeps its files in S3: use s3://bucket/prefix/",
            ));
        }
    }
    let mut partition = Vec::new();
    for (i, p) in out.partition.iter().enumerate() {
        let seg = [Seg::Key("output"), Seg::Key("partition"), Seg::Index(i)];
        let field = partition_field(p).map_err(|m| cx.err(&seg, format!("`{p}` {m}")))?;
        if let Some(s) = current {
            let Ok(f) = s.field_with_name(&field.column) else {
                let cols: Vec<&str> = s.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(cx.err(
                    &seg,
                    format!(
                        "names `{}`, which does not reach the output; columns are: {}",
                        field.column,
                        cols.join(", ")
                    ),
                ));
            };
            if let Some(why) = transform_refuses(&field.transform, f.data_type()) {
                return Err(cx.err(&seg, format!("`{p}`: {why}")));
            }
        }
        if partition.iter().any(|q: &PartitionField| q == &field) {
            return Err(cx.err(&seg, format!("`{p}` is repeated")));
        }
        partition.push(field);
    }
    let target_file_bytes = out.target_file_bytes.unwrap_or(DEFAULT_TARGET_FILE_BYTES);
    if target_file_bytes < 1 << 20 {
        return Err(cx.err(
            &at("target_file_bytes"),
            "must be at least 1048576 (1 MiB); the default is 134217728 (128 MiB)",
        ));
    }
    let commit = match (out.commit.as_deref(), out.queue.as_deref().map(str::trim)) {
        (None | Some("direct"), None) => CommitMode::Direct,
        (Some("queue"), Some(q)) if !q.is_empty() => {
            if q.chars().any(char::is_whitespace) {
                return Err(cx.err(
                    &at("queue"),
                    format!("`{q}` is not an SQS queue: write its URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME) or its name"),
                ));
            }
            CommitMode::Queue(q.to_string())
        }
        (Some("queue"), _) => {
            return Err(cx.err(
                &at("commit"),
                "\"queue\" sends each invocation's files to an SQS queue: name it with queue = \"URL or name\" in [output]",
            ));
        }
        (None | Some("direct"), Some(_)) => {
            return Err(cx.err(
                &at("queue"),
                "is where commit = \"queue\" sends the files; set that too, or remove queue",
            ));
        }
        (Some(other), _) => {
            return Err(cx.err(
                &at("commit"),
                format!("`{other}` is not a commit mode; use \"direct\" (the invocation commits) or \"queue\" (a committer does)"),
            ));
        }
    };
    Ok(Some(TableSpec {
        namespace: parts[..parts.len() - 1]
            .iter()
            .map(|p| p.to_string())
            .collect(),
        name: parts[parts.len() - 1].to_string(),
        catalog,
        partition,
        target_file_bytes,
        commit,
    }))
}

/// `day(ts)`, `bucket(16, user_id)`… as a partition field, or what is wrong with it.
pub(crate) fn partition_field(text: &str) -> Result<PartitionField, String> {
    const HOW: &str = "is not a partition transform; write identity(col), year(col), month(col), \
                       day(col), hour(col), bucket(N, col) or truncate(W, col)";
    let t = text.trim();
    let (name, rest) = t.split_once('(').ok_or(HOW)?;
    let args = rest.strip_suffix(')').ok_or(HOW)?;
    let args: Vec<&str> = args.split(',').map(str::trim).collect();
    let name = name.trim();
    let column = |a: &str| -> Result<String, String> {
        if a.is_empty() {
            Err("names no column".into())
        } else {
            Ok(a.to_string())
        }
    };
    match (name, args.as_slice()) {
        ("identity" | "year" | "month" | "day" | "hour", [col]) => Ok(PartitionField {
            transform: name.to_string(),
            column: column(col)?,
        }),
        ("bucket" | "truncate", [n, col]) => {
            let n: u32 = n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                format!("needs a positive whole number before the column, not `{n}`")
            })?;
            Ok(PartitionField {
                transform: format!("{name}[{n}]"),
                column: column(col)?,
            })
        }
        ("bucket" | "truncate", _) => Err(format!("takes two arguments: {name}(N, column)")),
        ("identity" | "year" | "month" | "day" | "hour", _) => {
            Err(format!("takes one argument: {name}(column)"))
        }
        _ => Err(HOW.into()),
    }
}

/// Why `transform` cannot be applied to a column of type `ty`, if it cannot.
fn transform_refuses(transform: &str, ty: &arrow_schema::DataType) -> Option<String> {
    use arrow_schema::DataType as T;
    let temporal = matches!(ty, T::Date32 | T::Date64 | T::Timestamp(..));
    let ok = match transform.split('[').next().unwrap_or_default() {
        "identity" => !matches!(ty, T::Struct(_) | T::List(_) | T::LargeList(_) | T::Map(..)),
        "year" | "month" | "day" => temporal,
        "hour" => matches!(ty, T::Timestamp(..)),
        "bucket" => {
            ty.is_integer()
                || temporal
                || matches!(
                    ty,
                    T::Utf8
                        | T::LargeUtf8
                        | T::Utf8View
                        | T::Binary
                        | T::LargeBinary
                        | T::Decimal128(..)
                )
        }
        "truncate" => {
            ty.is_integer()
                || matches!(
                    ty,
                    T::Utf8 | T::LargeUtf8 | T::Utf8View | T::Binary | T::Decimal128(..)
                )
        }
        _ => false,
    };
    (!ok).then(|| {
        format!(
            "the column is {}, which this transform does not take (year/month/day take dates and \
             timestamps, hour timestamps, bucket and truncate numbers and strings)",
            sluice_processors::expr::a_type(ty)
        )
    })
}

/// `[metrics]`: the namespace and dimension sets.
pub(super) fn metrics(m: &MetricsConfig, cx: &Ctx<'_>) -> Result<(), ConfigError> {
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
    Ok(())
}

/// `[rejects]`: a folder or S3 prefix apart from the output.
pub(super) fn rejects(
    config: &PipelineConfig,
    output: &Destination,
    cx: &Ctx<'_>,
) -> Result<Option<Destination>, ConfigError> {
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
        && let Some(why) = overlap(output, r)
    {
        return Err(cx.err(
            &[Seg::Key("rejects"), Seg::Key("uri")],
            format!(
                "`{r}` {why} the output location `{output}`: whatever reads the output would read the \
                 rejects as data. Give rejects a folder of their own beside it, e.g. a sibling `rejects/`"
            ),
        ));
    }
    Ok(rejects)
}

/// The recursive-invocation trap: an output or rejects prefix the input keys match would trigger
/// the function again with every file it writes (refused); one that might (no keys) is a warning.
pub(super) fn loops(
    config: &PipelineConfig,
    keys: &[GlobMatcher],
    output: &Destination,
    rejects: Option<&Destination>,
    cx: &Ctx<'_>,
) -> Result<Vec<String>, ConfigError> {
    let input = &config.input;
    let out = &config.output;
    // The recursive-invocation trap: outputs landing where the trigger's keys match.
    let mut warnings = Vec::new();
    let ext = match out.format {
        OutputFormat::Parquet | OutputFormat::Iceberg => "parquet",
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
        if section == "output"
            && let Some(t) = &out.table
        {
            // A table's files: data (partitioned or not) and metadata under namespace/name/.
            let dir = format!("{prefix}{}/", t.replace('.', "/"));
            samples.push(format!("{dir}data/x-0123456789abcdef-00000.parquet"));
            samples.push(format!("{dir}data/p=v/x-0123456789abcdef-00000.parquet"));
            samples.push(format!("{dir}metadata/00001-0123.metadata.json"));
            samples.push(format!("{dir}metadata/snap-1-0123.avro"));
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
    Ok(warnings)
}
