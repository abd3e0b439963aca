//! Test support shared by the modules' tests.

use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray};
use arrow_schema::SchemaRef;
use sluice_processors::{Error, FnFactory, Kept, Stage, StageFactory};

type Check = Arc<dyn Fn(&RecordBatch) -> Result<(), Error> + Send + Sync>;

/// Passes batches on after `check` (which may take its time, fail, or panic).
struct Probe {
    schema: SchemaRef,
    check: Check,
}

impl Stage for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn push(&mut self, b: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<(), Error> {
        (self.check)(&b)?;
        out.push(b);
        Ok(())
    }
    fn kept(&self) -> Kept {
        Kept::All
    }
}

/// A stage of our own, as a user would add one, that runs `check` on every batch.
pub(crate) fn probe(
    check: impl Fn(&RecordBatch) -> Result<(), Error> + Send + Sync + 'static,
) -> Arc<dyn StageFactory> {
    let check: Check = Arc::new(check);
    Arc::new(FnFactory::new("probe", move |s: &SchemaRef| {
        Ok(Box::new(Probe {
            schema: s.clone(),
            check: check.clone(),
        }) as Box<dyn Stage>)
    }))
}

/// True when the batch's first column (a string) holds `value`.
pub(crate) fn holds(b: &RecordBatch, value: &str) -> bool {
    b.column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .is_some_and(|p| (0..p.len()).any(|i| p.is_valid(i) && p.value(i) == value))
}
