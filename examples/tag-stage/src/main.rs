//! A pipeline built in code with a stage of its own: every record that survives the filter is
//! tagged with the pipeline's deployment stage and whether it came from a mobile page.
//!
//! Run it under replay (no AWS needed):
//!
//! ```text
//! cargo run -p tag-stage -- examples/clickstream/events/s3-put.json
//! ```
//!
//! Deployed as a Lambda (`AWS_LAMBDA_RUNTIME_API` set), the same binary serves invocations.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use sluice_pipeline::Pipeline;
use sluice_pipeline::config::{
    InputConfig, OrderedMap, OutputConfig, PipelineConfig, RejectsConfig, StageConfig,
};
use sluice_processors::{Error, Kept, Stage, StageFactory};

/// Adds a constant `env` column.
pub struct Tag {
    env: String,
    schema: SchemaRef,
}

impl Stage for Tag {
    fn name(&self) -> &'static str {
        "tag"
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<(), Error> {
        let tag: ArrayRef = Arc::new(StringArray::from(vec![self.env.as_str(); batch.num_rows()]));
        let mut columns = batch.columns().to_vec();
        columns.push(tag);
        out.push(
            RecordBatch::try_new(self.schema.clone(), columns)
                .map_err(|e| Error::arrow("tag", e))?,
        );
        Ok(())
    }
    /// One row out for each row in: a row a later stage refuses is still reported as the input
    /// line it was read from.
    fn kept(&self) -> Kept {
        Kept::All
    }
}

/// Builds [`Tag`] once the input schema is known.
pub struct TagFactory(pub String);

impl StageFactory for TagFactory {
    fn name(&self) -> &'static str {
        "tag"
    }
    fn build(&self, input: &SchemaRef) -> Result<Box<dyn Stage>, Error> {
        if input.field_with_name("env").is_ok() {
            return Err(Error::Schema(
                "the tag stage adds `env`, but the input already has it".into(),
            ));
        }
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("env", DataType::Utf8, false));
        Ok(Box::new(Tag {
            env: self.0.clone(),
            schema: Arc::new(Schema::new(fields)),
        }))
    }
}

/// The pipeline, in code: NDJSON clickstream → slow requests → tagged NDJSON.
pub fn pipeline(env: &str) -> Result<Pipeline, sluice_pipeline::ConfigError> {
    let schema = [
        ("ts", "timestamp"),
        ("user_id", "string"),
        ("page", "string"),
        ("latency_ms", "int64"),
    ];
    let config = PipelineConfig {
        name: "tagged-slow-requests".into(),
        input: InputConfig {
            keys: vec!["clickstream/**".into()],
            schema: Some(OrderedMap(
                schema
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )),
            ..InputConfig::new("ndjson")
        },
        stages: vec![StageConfig::Filter {
            predicate: "latency_ms > 1000".into(),
        }],
        output: OutputConfig {
            format: sluice_pipeline::config::OutputFormat::Ndjson,
            ..OutputConfig::new("s3://analytics-out/tagged/")
        },
        rejects: Some(RejectsConfig {
            uri: "s3://analytics-out/rejects/tagged/".into(),
        }),
        metrics: Default::default(),
    };
    Ok(Pipeline::from_config(config)?.with_stage(TagFactory(env.to_string())))
}

#[tokio::main]
async fn main() {
    let env = std::env::var("DEPLOY_ENV").unwrap_or_else(|_| "dev".into());
    let pipeline = match pipeline(&env) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    std::process::exit(pipeline.run().await);
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_pipeline::store::FsStore;

    #[tokio::test]
    async fn tags_every_surviving_record_end_to_end() {
        // Cargo's runtime path first: a test binary reused from another clone's build (the
        // cache is shared) carries that clone's compile-time path.
        let dir = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let root = std::path::Path::new(&dir).join("../..");
        let out = tempfile::tempdir().unwrap();
        let handler = pipeline("prod").unwrap().handler(
            Arc::new(FsStore::new(root.join("fixtures/objects"))),
            Arc::new(FsStore::new(out.path())),
        );
        let event: serde_json::Value = serde_json::from_slice(
            &std::fs::read(root.join("examples/clickstream/events/s3-put.json")).unwrap(),
        )
        .unwrap();
        let (summary, _) = handler.handle(&event).await.into_parts();
        assert_eq!(summary.error, None);
        assert_eq!(summary.objects, 3);
        let mut rows = 0;
        for o in summary
            .outputs
            .iter()
            .filter(|o| o.contains("/tagged/") && !o.contains("rejects"))
        {
            for line in std::fs::read_to_string(o).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["env"], "prod");
                assert!(v["latency_ms"].as_i64().unwrap() > 1000, "{v}");
                rows += 1;
            }
        }
        assert_eq!(rows as u64, summary.records_out);
        assert!(rows > 10, "{rows}");
    }
}
