//! The term index of the rows an output receives (an index stage with a text column).

use arrow_array::RecordBatch;

use super::files::Outputs;
use super::{PARQUET_TYPE, parquet_file};
use crate::Error;
use crate::store::ObjectMeta;

/// Rows written are also indexed: `{output}/_index/terms/{base}.parquet` and `_index/docs/`.
pub(super) struct IndexSink {
    builder: sluice_processors::index::TermIndexBuilder,
    text: String,
    id: Option<String>,
    source: String,
    rows: u64,
}

impl IndexSink {
    pub(super) fn add(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        use arrow_array::Array;
        let text_col = |name: &str| -> Result<Option<arrow_array::StringArray>, Error> {
            let Some(c) = batch.column_by_name(name) else {
                return Ok(None);
            };
            let c = arrow_cast::cast(c, &arrow_schema::DataType::Utf8).map_err(|e| {
                Error::Processor(sluice_processors::Error::arrow(
                    "the index's text column",
                    e,
                ))
            })?;
            Ok(c.as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .cloned())
        };
        let Some(text) = text_col(&self.text)? else {
            return Err(Error::Data(format!(
                "the index stage's text column `{}` is not in the rows",
                self.text
            )));
        };
        let ids = match &self.id {
            Some(c) => text_col(c)?,
            None => None,
        };
        for i in 0..batch.num_rows() {
            let row = self.rows + i as u64;
            if text.is_null(i) {
                continue;
            }
            let doc = match &ids {
                Some(ids) if !ids.is_null(i) => ids.value(i).to_string(),
                _ => format!("{}#{}", self.source, row + 1),
            };
            self.builder.add(&doc, &self.text, text.value(i));
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }
}

impl Outputs {
    /// Also index the rows written: column `text` of each row, as document `id` (a column) or
    /// `{source}#{row}`.
    pub fn with_index(mut self, spec: &crate::config::IndexSpec, source: String) -> Self {
        self.index = Some(IndexSink {
            builder: sluice_processors::index::TermIndexBuilder::new(
                sluice_processors::tokenize::Tokenizer::new(&spec.stop_words),
            ),
            text: spec.text.clone().unwrap_or_default(),
            id: spec.id.clone(),
            source,
            rows: 0,
        });
        self
    }

    /// Write the term index of what was written (if there is one): two Parquet files named
    /// after this unit of work's base, so a retry replaces them.
    pub(super) async fn write_index(&mut self) -> Result<(), Error> {
        let Some(sink) = self.index.take() else {
            return Ok(());
        };
        if sink.builder.documents() == 0 {
            return Ok(());
        }
        let (terms, docs) = sink.builder.finish().map_err(|e| {
            Error::Processor(sluice_processors::Error::arrow(
                "building the term index",
                e,
            ))
        })?;
        for (dir, batch) in [("terms", terms), ("docs", docs)] {
            let key = format!("_index/{dir}/{}.parquet", self.base);
            self.write_blob(&key, ObjectMeta::typed(PARQUET_TYPE), parquet_file(&batch)?)
                .await?;
        }
        Ok(())
    }
}
