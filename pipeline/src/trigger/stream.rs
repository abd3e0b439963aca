//! The columns a stream batch adds to its decoded rows, so expressions can read where a row came
//! from: `_shard`, `_sequence`, `_subsequence`, `_partition_key` and `_arrival`. Only the columns
//! some stage names are added (see [`crate::config::Plan::stream_columns`]).

use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::Error;

/// A stream record column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// The Kinesis shard id (`shardId-000000000000`); null for SQS.
    Shard,
    /// The Kinesis sequence number, or the SQS message id.
    Sequence,
    /// The user record's index inside a KPL aggregate; 0 for a record that is not aggregated.
    Subsequence,
    /// The partition key (a KPL user record's own), or the SQS FIFO message group id; null if none.
    PartitionKey,
    /// The approximate arrival time (Kinesis) or sent time (SQS), UTC.
    Arrival,
}

impl Column {
    /// Every column, in the order they are appended.
    pub const ALL: [Column; 5] = [
        Column::Shard,
        Column::Sequence,
        Column::Subsequence,
        Column::PartitionKey,
        Column::Arrival,
    ];

    /// The name expressions use.
    pub fn name(self) -> &'static str {
        match self {
            Column::Shard => "_shard",
            Column::Sequence => "_sequence",
            Column::Subsequence => "_subsequence",
            Column::PartitionKey => "_partition_key",
            Column::Arrival => "_arrival",
        }
    }

    fn field(self) -> Field {
        let dt = match self {
            Column::Subsequence => DataType::Int64,
            Column::Arrival => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            _ => DataType::Utf8,
        };
        Field::new(
            self.name(),
            dt,
            !matches!(self, Column::Sequence | Column::Subsequence),
        )
    }
}

/// Where a run of rows came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The shard, for Kinesis.
    pub shard: Option<&'a str>,
    /// The sequence number or message id.
    pub sequence: &'a str,
    /// The index inside a KPL aggregate (0 otherwise).
    pub subsequence: i64,
    /// The partition key or message group id, when there is one.
    pub partition_key: Option<&'a str>,
    /// Arrival, seconds since the epoch.
    pub arrival: Option<f64>,
}

/// `schema` with `cols` appended.
pub fn with_columns(schema: &SchemaRef, cols: &[Column]) -> SchemaRef {
    if cols.is_empty() {
        return schema.clone();
    }
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    fields.extend(cols.iter().map(|c| Arc::new(c.field())));
    Arc::new(Schema::new(fields))
}

/// `batch` with the `cols` appended, row `i`'s from `origin(i)` (rows of several records).
pub fn tag_each<'a>(
    batch: &RecordBatch,
    cols: &[Column],
    origin: impl Fn(usize) -> Origin<'a>,
) -> Result<RecordBatch, Error> {
    let n = batch.num_rows();
    let schema = batch.schema();
    let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
    let rows = || (0..n).map(&origin);
    for &c in cols {
        if schema.index_of(c.name()).is_ok() {
            return Err(Error::Data(format!(
                "the records have a field named `{}`, which is the stream column of that name; rename it in the data or use another name",
                c.name()
            )));
        }
        let array: ArrayRef = match c {
            Column::Shard => Arc::new(rows().map(|o| o.shard).collect::<StringArray>()),
            Column::Sequence => Arc::new(rows().map(|o| Some(o.sequence)).collect::<StringArray>()),
            Column::PartitionKey => {
                Arc::new(rows().map(|o| o.partition_key).collect::<StringArray>())
            }
            Column::Subsequence => Arc::new(rows().map(|o| o.subsequence).collect::<Int64Array>()),
            Column::Arrival => Arc::new(
                rows()
                    .map(|o| o.arrival.map(|s| (s * 1e6).round() as i64))
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
        };
        arrays.push(array);
    }
    RecordBatch::try_new(with_columns(&schema, cols), arrays)
        .map_err(|e| Error::Internal(format!("adding the stream columns: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;

    #[test]
    fn tags_every_row_with_its_origin() {
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let origin = Origin {
            shard: Some("shardId-000000000007"),
            sequence: "49590338271490256608559692538361571095921575989136588898",
            subsequence: 2,
            partition_key: None,
            arrival: Some(1_545_084_650.987),
        };
        let t = tag_each(&b, &Column::ALL, |_| origin).unwrap();
        assert_eq!(t.num_columns(), 6);
        let shard = t.column(1).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(shard.value(2), "shardId-000000000007");
        let seq = t.column(2).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(seq.value(0), origin.sequence);
        let sub = t.column(3).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(sub.values().to_vec(), vec![2, 2, 2]);
        assert_eq!(t.column(4).null_count(), 3);
        let at = t
            .column(5)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(at.value(1), 1_545_084_650_987_000);
        // A record field of the same name is refused, not shadowed.
        assert!(tag_each(&t, &[Column::Shard], |_| origin).is_err());
    }
}
