//! What `sluice validate` prints of a plan.

use std::fmt;

use arrow_schema::SchemaRef;
use sluice_processors::expr::type_name;

use crate::config::model::*;
use crate::config::plan::*;

pub(crate) fn schema_line(s: &SchemaRef) -> String {
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
        let firehose = self.output == Destination::Firehose;
        if firehose {
            writeln!(
                f,
                "input    {} · each record of a Firehose batch (gzip inflated)",
                c.input.format
            )?;
        } else {
            writeln!(
                f,
                "input    {} · compression {} · keys {keys}",
                c.input.format,
                c.input.compression.name()
            )?;
        }
        match &self.schema {
            Some(s) => writeln!(f, "         schema: {}", schema_line(s))?,
            None => writeln!(
                f,
                "         schema: inferred from the first {} records of each {}",
                c.input.batch_rows,
                if firehose { "batch" } else { "object" }
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
            // What the check found the stage emits; nothing is built again here.
            if let (Some(s), Some(out)) = (&current, &st.output) {
                if out == s {
                    writeln!(f, "         schema unchanged")?;
                } else {
                    writeln!(f, "         → {}", schema_line(out))?;
                }
                current = Some(out.clone());
            }
        }
        let compression = c
            .output
            .compression
            .clone()
            .unwrap_or_else(|| match c.output.format {
                OutputFormat::Parquet | OutputFormat::Iceberg => "zstd".into(),
                OutputFormat::Ndjson => "none".into(),
            });
        match self.output {
            Destination::Kinesis { .. } => {
                write!(f, "output   one JSON record per row → {}", self.output)?
            }
            Destination::Firehose => write!(
                f,
                "output   each record Ok (its rows as NDJSON), Dropped or ProcessingFailed → {}",
                self.output
            )?,
            _ => write!(
                f,
                "output   {} ({compression}) → {}",
                c.output.format.name(),
                self.output
            )?,
        }
        if !c.output.partition_by.is_empty() {
            let what = if firehose {
                ", partition keys:"
            } else {
                " partitioned by"
            };
            write!(f, "{what} {}", c.output.partition_by.join(", "))?;
        }
        if let Some(t) = &self.files.table {
            write!(f, ", table {} in catalog {}", t.ident(), t.catalog)?;
            if !t.partition.is_empty() {
                let fields: Vec<String> = t
                    .partition
                    .iter()
                    .map(|p| format!("{}({})", p.transform, p.column))
                    .collect();
                write!(f, " partitioned by {}", fields.join(", "))?;
            }
            if let crate::config::CommitMode::Queue(q) = &t.commit {
                write!(f, ", committed through queue {q}")?;
            }
        }
        writeln!(f)?;
        match &self.rejects {
            Some(r) => writeln!(f, "rejects  ndjson → {r}")?,
            None if firehose => writeln!(
                f,
                "rejects  their records ProcessingFailed, kept in Firehose's error output; logged"
            )?,
            None => writeln!(f, "rejects  counted and logged only (no [rejects] section)")?,
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
