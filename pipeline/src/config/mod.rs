//! `pipeline.toml`: the configuration a user writes, checked into a [`Plan`] that is ready to run.
//!
//! Unknown keys are errors. Every error names the file, the line and the key, and says what would
//! be valid. Expressions are type-checked here when the input schema is declared, so a typo in a
//! column name fails `sluice validate`, not the first invocation.
//!
//! [`model`] is what a user writes (serde, unknown keys refused); [`parse`] reads it from TOML;
//! `check` turns it into a [`Plan`] (one function per section: input, stages, output, rejects,
//! metrics), with errors located by `spans`; `describe` is what `sluice validate` prints.

mod check;
mod describe;
pub mod model;
mod plan;
mod spans;
#[cfg(test)]
mod tests;

use std::path::Path;

use crate::error::ConfigError;

pub use model::*;
pub use plan::*;
use spans::{Seg, line_of, locate, path_segments};

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
}
