//! The `select` stage: project, rename and derive columns with expressions.
//!
//! Each output column is `name = "expression"`, in the order given. Nothing is buffered.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};

use crate::expr::Compiled;
use crate::{Error, Kept, Reject, Stage, StageFactory};

/// A compiled select.
#[derive(Debug)]
pub struct Select {
    columns: Vec<Compiled>,
    schema: SchemaRef,
    rows_seen: u64,
    rejects: Vec<Reject>,
    /// Which rows the last push emitted.
    kept: Kept,
}

impl Select {
    /// Compile `(output name, expression)` pairs against `input`.
    pub fn new(columns: &[(String, String)], input: &SchemaRef) -> Result<Self, Error> {
        if columns.is_empty() {
            return Err(Error::Schema("select needs at least one column".into()));
        }
        let mut compiled = Vec::with_capacity(columns.len());
        let mut fields = Vec::with_capacity(columns.len());
        for (name, text) in columns {
            let c = Compiled::new(text, input)?;
            fields.push(Field::new(name, c.data_type().clone(), true));
            compiled.push(c);
        }
        Ok(Self {
            columns: compiled,
            schema: Arc::new(Schema::new(fields)),
            rows_seen: 0,
            rejects: Vec::new(),
            kept: Kept::Unknown,
        })
    }
}

impl Stage for Select {
    fn name(&self) -> &'static str {
        "select"
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<(), Error> {
        let mut errors = Vec::new();
        let arrays: Vec<_> = self
            .columns
            .iter()
            .map(|c| {
                let (values, e) = c.evaluate_rows(&batch);
                errors.extend(e);
                values
            })
            .collect();
        let rows = batch.num_rows();
        let opts = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows));
        let mut selected = RecordBatch::try_new_with_options(self.schema.clone(), arrays, &opts)
            .map_err(|e| Error::arrow("select", e))?;
        self.kept = Kept::All;
        if !errors.is_empty() {
            // A row any column fails on is a reject, and left out of the output.
            let mut keep = vec![true; rows];
            for e in &errors {
                keep[e.row] = false;
            }
            let keep = arrow_array::BooleanArray::from(keep);
            selected = arrow_select::filter::filter_record_batch(&selected, &keep)
                .map_err(|e| Error::arrow("select", e))?;
            self.kept = Kept::Mask(keep);
            self.rejects
                .extend(crate::row_rejects("select", &batch, self.rows_seen, errors));
        }
        self.rows_seen += rows as u64;
        out.push(selected);
        Ok(())
    }
    fn take_rejects(&mut self) -> Vec<Reject> {
        std::mem::take(&mut self.rejects)
    }
    fn kept(&self) -> Kept {
        self.kept.clone()
    }
}

/// Builds [`Select`]s.
#[derive(Debug, Clone)]
pub struct SelectFactory {
    columns: Vec<(String, String)>,
}

impl SelectFactory {
    /// A factory for `columns = { name = "expr", … }`.
    pub fn new(columns: Vec<(String, String)>) -> Self {
        Self { columns }
    }
}

impl StageFactory for SelectFactory {
    fn name(&self) -> &'static str {
        "select"
    }
    fn build(&self, input: &SchemaRef) -> Result<Box<dyn Stage>, Error> {
        Ok(Box::new(Select::new(&self.columns, input)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;

    #[test]
    fn projects_renames_and_derives() {
        let batch = crate::filter::sample();
        let cols = vec![
            ("path".to_string(), "page".to_string()),
            ("day".to_string(), "date(ts)".to_string()),
            ("slow".to_string(), "latency_ms > 500".to_string()),
            ("double".to_string(), "latency_ms * 2".to_string()),
        ];
        let mut s = Select::new(&cols, &batch.schema()).unwrap();
        let mut out = Vec::new();
        s.push(batch, &mut out).unwrap();
        let b = &out[0];
        assert_eq!(
            b.schema().field(1).data_type(),
            &arrow_schema::DataType::Date32
        );
        assert_eq!(
            b.column(3).as_primitive::<Int64Type>().values().to_vec()[..3],
            [240, 1800, 0]
        );
        assert!(b.column(2).as_boolean().value(1));
        assert_eq!(b.column(0).as_string::<i32>().value(1), "/Cart");
    }
}
