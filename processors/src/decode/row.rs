//! Typed columns from text fields: the shared back end of every line and CSV format.
//!
//! A row is given as one optional `&str` per column; each value is converted to its column's type
//! and the whole row is appended only when every value converts, so a bad row is a reject that
//! names the column and the value, and leaves no trace in the batch. Conversions follow the AWS log
//! conventions: `-` is null where the format says so, an empty field is null for non-string columns,
//! and timestamps may be ISO 8601, epoch seconds / milliseconds / microseconds, or Common Log
//! Format's `10/Oct/2000:13:55:36 -0700` (brackets optional); all become UTC microseconds.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{ArrowError, DataType, SchemaRef, TimeUnit};

use super::fastjson::{parse_date, parse_int, parse_timestamp_micros};

enum Col {
    Str(StringBuilder),
    I64(Int64Builder),
    F64(Float64Builder),
    Bool(BooleanBuilder),
    Ts(TimestampMicrosecondBuilder, super::timestamp::EpochUnit),
    Date(Date32Builder),
}

#[derive(Clone, Copy)]
enum Cell {
    Null,
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(usize),
}

/// Appends rows of text fields to typed builders.
pub(crate) struct RowBuilder {
    schema: SchemaRef,
    cols: Vec<Col>,
    cells: Vec<Cell>,
    /// `-` means null.
    dash_null: bool,
    rows: usize,
}

impl RowBuilder {
    /// Builders for `schema`; every field must be [`supported`].
    pub(crate) fn new(
        schema: SchemaRef,
        dash_null: bool,
        capacity: usize,
    ) -> Result<Self, crate::Error> {
        let mut cols = Vec::new();
        for f in schema.fields() {
            cols.push(match f.data_type() {
                DataType::Utf8 => Col::Str(StringBuilder::with_capacity(capacity, capacity * 16)),
                DataType::Int64 => Col::I64(Int64Builder::with_capacity(capacity)),
                DataType::Float64 => Col::F64(Float64Builder::with_capacity(capacity)),
                DataType::Boolean => Col::Bool(BooleanBuilder::with_capacity(capacity)),
                dt @ DataType::Timestamp(TimeUnit::Microsecond, _) => {
                    Col::Ts(
                        TimestampMicrosecondBuilder::with_capacity(capacity).with_data_type(dt.clone()),
                        super::timestamp::EpochUnit::of(f),
                    )
                }
                DataType::Date32 => Col::Date(Date32Builder::with_capacity(capacity)),
                other => {
                    return Err(crate::Error::Schema(format!(
                        "column `{}` has type {}, which text formats cannot hold; use string, int64, float64, bool, timestamp or date",
                        f.name(),
                        crate::expr::type_name(other)
                    )));
                }
            });
        }
        let n = cols.len();
        Ok(Self {
            schema,
            cols,
            cells: vec![Cell::Null; n],
            dash_null,
            rows: 0,
        })
    }

    /// The schema of emitted batches.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows buffered.
    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// Convert and append one row; `fields[i]` is column `i` (missing trailing fields are null).
    pub(crate) fn push(&mut self, fields: &[Option<&str>]) -> Result<(), String> {
        for (i, col) in self.cols.iter().enumerate() {
            let v = fields.get(i).copied().flatten();
            let v = match v {
                Some("-") if self.dash_null => None,
                Some("") if !matches!(col, Col::Str(_)) => None,
                other => other,
            };
            self.cells[i] = match v {
                None => Cell::Null,
                Some(s) => {
                    let bad = |want: &str| {
                        let shown: String = s.chars().take(60).collect();
                        format!(
                            "column '{}' expects {want}, found \"{shown}\"",
                            self.schema.field(i).name()
                        )
                    };
                    match col {
                        Col::Str(_) => Cell::Str(i),
                        Col::I64(_) => {
                            Cell::Int(parse_int(s.trim()).ok_or_else(|| bad("an integer"))?)
                        }
                        Col::F64(_) => Cell::Float(
                            s.trim()
                                .parse::<f64>()
                                .ok()
                                .filter(|v| !super::fastjson::out_of_range(*v, false, s))
                                .ok_or_else(|| bad("a number"))?,
                        ),
                        Col::Bool(_) => {
                            Cell::Bool(parse_bool(s).ok_or_else(|| bad("true or false"))?)
                        }
                        Col::Ts(_, unit) => Cell::Int(
                            parse_text_timestamp(s, *unit)
                                .ok_or_else(|| bad(super::timestamp::EXPECTED))?,
                        ),
                        Col::Date(_) => Cell::Int(i64::from(
                            parse_date(s.trim())
                                .or_else(|| {
                                    parse_text_timestamp(s, Default::default())
                                        .map(|t| t.div_euclid(86_400_000_000) as i32)
                                })
                                .ok_or_else(|| bad("a date"))?,
                        )),
                    }
                }
            };
        }
        for (i, col) in self.cols.iter_mut().enumerate() {
            let cell = self.cells[i];
            match (col, cell) {
                (Col::Str(b), Cell::Str(j)) => b.append_value(fields[j].unwrap_or_default()),
                (Col::Str(b), _) => b.append_null(),
                (Col::I64(b), Cell::Int(v)) => b.append_value(v),
                (Col::I64(b), _) => b.append_null(),
                (Col::F64(b), Cell::Float(v)) => b.append_value(v),
                (Col::F64(b), _) => b.append_null(),
                (Col::Bool(b), Cell::Bool(v)) => b.append_value(v),
                (Col::Bool(b), _) => b.append_null(),
                (Col::Ts(b, _), Cell::Int(v)) => b.append_value(v),
                (Col::Ts(b, _), _) => b.append_null(),
                (Col::Date(b), Cell::Int(v)) => b.append_value(v as i32),
                (Col::Date(b), _) => b.append_null(),
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// The buffered rows as a batch.
    pub(crate) fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        if self.rows == 0 {
            return Ok(None);
        }
        let arrays: Vec<ArrayRef> = self
            .cols
            .iter_mut()
            .map(|c| -> ArrayRef {
                match c {
                    Col::Str(b) => Arc::new(b.finish()),
                    Col::I64(b) => Arc::new(b.finish()),
                    Col::F64(b) => Arc::new(b.finish()),
                    Col::Bool(b) => Arc::new(b.finish()),
                    Col::Ts(b, _) => Arc::new(b.finish()),
                    Col::Date(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), arrays).map(Some)
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// A timestamp written as text in any of the forms AWS logs use, as UTC microseconds: an epoch
/// number (in `unit`, or by magnitude), RFC 3339, or Common Log Format's.
pub(crate) fn parse_text_timestamp(s: &str, unit: super::timestamp::EpochUnit) -> Option<i64> {
    let s = s.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    if s.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.')
        && let Some(t) = super::timestamp::epoch_micros(s, unit)
    {
        return Some(t);
    }
    if let Some(t) = parse_clf(s) {
        return Some(t);
    }
    parse_timestamp_micros(s)
}

/// `10/Oct/2000:13:55:36 -0700`.
fn parse_clf(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS
        .iter()
        .position(|m| m.as_bytes().eq_ignore_ascii_case(&b[3..6]))?
        + 1;
    // Slice with `get`: a multi-byte character where digits belong must be a miss, not a panic.
    let (year, day, time, rest) = (s.get(7..11)?, s.get(0..2)?, s.get(12..20)?, s.get(20..)?);
    let tz = rest.trim();
    let iso = format!(
        "{year}-{month:02}-{day}T{time}{}",
        if tz.is_empty() { "Z" } else { tz }
    );
    parse_timestamp_micros(&iso)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMicrosecondType};

    #[test]
    fn reads_every_timestamp_form() {
        let want = crate::expr::parse_timestamp("2000-10-10T20:55:36Z").unwrap();
        for s in [
            "[10/Oct/2000:13:55:36 -0700]",
            "10/Oct/2000:13:55:36 -0700",
            "2000-10-10T20:55:36Z",
            "2000-10-10T13:55:36-07:00",
            "971211336",
            "971211336000",
            "971211336000000",
            "2000-10-10 20:55:36",
        ] {
            assert_eq!(
                parse_text_timestamp(s, Default::default()),
                Some(want),
                "{s}"
            );
        }
        assert_eq!(parse_text_timestamp("yesterday", Default::default()), None);
        assert_eq!(
            parse_text_timestamp("10/Foo/2000:13:55:36 -0700", Default::default()),
            None
        );
        // Regression: a multi-byte character across a slice boundary once panicked.
        assert_eq!(
            parse_text_timestamp("10/Oct/2000:13:55:3é -0700", Default::default()),
            None
        );
        assert_eq!(
            parse_text_timestamp("10/Oct/2é0:13:55:36 -0700", Default::default()),
            None
        );
    }

    #[test]
    fn bad_values_name_the_column_and_leave_no_row() {
        let schema =
            crate::decode::schema_from_types([("s", "string"), ("n", "int64"), ("t", "timestamp")])
                .unwrap();
        let mut r = RowBuilder::new(schema, true, 4).unwrap();
        r.push(&[Some("a"), Some("-"), Some("1418530010")]).unwrap();
        let e = r.push(&[Some("b"), Some("x1"), None]).unwrap_err();
        assert_eq!(e, "column 'n' expects an integer, found \"x1\"");
        r.push(&[Some("-"), Some("")]).unwrap();
        let b = r.flush().unwrap().unwrap();
        assert_eq!(b.num_rows(), 2);
        assert!(b.column(0).is_null(1));
        assert!(b.column(1).as_primitive::<Int64Type>().is_null(0));
        assert_eq!(
            b.column(2)
                .as_primitive::<TimestampMicrosecondType>()
                .value(0),
            1_418_530_010_000_000
        );
        assert!(b.column(2).is_null(1));
        assert_eq!(b.column(0).as_string::<i32>().value(0), "a");
    }
}
