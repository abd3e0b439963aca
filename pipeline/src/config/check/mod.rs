//! A config checked section by section into a [`Plan`].

mod index;
mod input;
mod output;
mod resize;
mod stages;

use std::path::Path;

use crate::config::model::PipelineConfig;
use crate::config::plan::{Limits, Plan};
use crate::config::spans::Ctx;
use crate::error::ConfigError;

impl Plan {
    /// The config checked section by section: `[input]` (its format, schema and keys), the
    /// stages against the schema that reaches each, `[output]`, `[metrics]`, `[rejects]`, and the
    /// destinations against the input keys (the recursive-invocation trap).
    pub(crate) fn check(
        config: PipelineConfig,
        file: &Path,
        text: &str,
    ) -> Result<Plan, ConfigError> {
        let cx = Ctx { file, text };
        let input::Input {
            spec,
            schema,
            keys,
            resize,
        } = input::check(&config, &cx)?;
        if config.input.trigger == crate::config::Trigger::Firehose {
            output::firehose(&config, &resize, &cx)?;
        }
        let stages::Stages {
            stages,
            index,
            streamed,
            current,
        } = stages::check(&config, &spec, &schema, &resize, &cx)?;
        let (output, files) = output::check(&config, current.as_ref(), &resize, &cx)?;
        output::metrics(&config.metrics, &cx)?;
        let rejects = output::rejects(&config, &output, &cx)?;
        let warnings = output::loops(&config, &keys, &output, rejects.as_ref(), &cx)?;
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
            limits: Limits {
                batch_rows: config.input.batch_rows,
                max_inflate_ratio: config.input.max_inflate_ratio,
                compression: config.input.compression,
                on_missing: config.input.on_missing,
                deadline_reserve: std::time::Duration::from_millis(
                    config.output.deadline_reserve_ms,
                ),
            },
            files,
            file: file.to_path_buf(),
            config,
        })
    }
}
