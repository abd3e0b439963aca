//! `[input]`: batch and line limits, key globs, the schema, the format and its options, and the
//! resize stage of an image pipeline.

use arrow_schema::SchemaRef;
use globset::GlobMatcher;

use sluice_processors::decode::aws;
use sluice_processors::decode::csv::CsvDecoderBuilder;
use sluice_processors::decode::logs::{LogDecoderBuilder, Preset};

use crate::config::model::*;
use crate::config::plan::*;
use crate::config::spans::*;
use crate::error::ConfigError;

use super::resize::resize_spec;

/// What the rest of the check needs of `[input]`.
pub(super) struct Input {
    pub(super) spec: InputSpec,
    pub(super) schema: Option<SchemaRef>,
    pub(super) keys: Vec<GlobMatcher>,
    pub(super) resize: Option<ResizeSpec>,
}

pub(super) fn check(config: &PipelineConfig, cx: &Ctx<'_>) -> Result<Input, ConfigError> {
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
            let b = LogDecoderBuilder::pattern_fields(pattern, &fields)
                .map_err(|e| cx.err(&[Seg::Key("input"), Seg::Key("pattern")], e.to_string()))?;
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
        (InputSpec::Image, Some(StageConfig::Resize(r))) => Some(resize_spec(r, cx)?),
        (InputSpec::Image, _) => {
            return Err(format_err(
                "format = \"image\" needs a first [[stage]] with type = \"resize\"".into(),
            ));
        }
        _ => None,
    };
    if let Some(i) = config
        .stages
        .iter()
        .enumerate()
        .position(|(i, st)| matches!(st, StageConfig::Resize(_)) && (i > 0 || resize.is_none()))
    {
        return Err(cx.err(
            &[Seg::Key("stage"), Seg::Index(i), Seg::Key("type")],
            "resize is the first stage of an image pipeline ([input] format = \"image\"), and the only resize",
        ));
    }
    Ok(Input {
        spec,
        schema,
        keys,
        resize,
    })
}
