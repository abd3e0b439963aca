//! A config checked section by section into a [`Plan`].

mod index;
mod resize;

use std::path::Path;
use std::sync::Arc;

use sluice_processors::aggregate::{AggregateFactory, Window, parse_every};
use sluice_processors::decode::aws;
use sluice_processors::decode::csv::CsvDecoderBuilder;
use sluice_processors::decode::logs::{LogDecoderBuilder, Preset};
use sluice_processors::filter::FilterFactory;
use sluice_processors::select::SelectFactory;

use sluice_processors::StageFactory;

use crate::config::model::*;
use crate::config::plan::*;
use crate::config::spans::*;
use crate::error::ConfigError;

use index::index_spec;
use resize::resize_spec;

impl Plan {
    pub(crate) fn check(
        config: PipelineConfig,
        file: &Path,
        text: &str,
    ) -> Result<Plan, ConfigError> {
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
            stages.push(PlannedStage {
                factory,
                describe,
                output: current.clone(),
            });
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
}
