//! Per-column statistics of the rows a pipeline writes — minimum, maximum and null count, the way
//! Parquet keeps them per row group — gathered over every batch of one object's output, so a
//! catalog can say what is in a file without opening it.
//!
//! Columns are matched by name across batches (a decoder inferring its schema may add one later).
//! Minimum and maximum follow Arrow's order (floats: NaN above every number) and are kept as
//! one-row arrays; a column whose type changes between batches keeps its null count but loses
//! its bounds. Nested columns (lists, structs, maps) have a null count only.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow_arith::aggregate;
use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, ArrowNumericType, BooleanArray, LargeStringArray, PrimitiveArray, RecordBatch,
    StringArray, downcast_primitive_array,
};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{ArrowError, DataType, SortOptions};

/// Text bounds longer than this many characters are shortened (still bounds: the minimum to a
/// prefix, the maximum to a prefix with its last character raised), as Parquet writers do.
pub const MAX_BOUND_CHARS: usize = 64;

/// One column's statistics, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnStat {
    /// The column's name.
    pub name: String,
    /// Its Arrow type, as Arrow prints it (`Int64`, `Utf8`, `Timestamp(µs, "UTC")` …).
    pub data_type: String,
    /// Rows seen.
    pub rows: u64,
    /// Nulls among them.
    pub nulls: u64,
    /// The smallest value, as text (`None` when every value was null or the type has no order).
    pub min: Option<String>,
    /// The largest value, as text.
    pub max: Option<String>,
}

/// Statistics gathered batch by batch.
#[derive(Debug, Default)]
pub struct ColumnStats {
    cols: Vec<Col>,
}

#[derive(Debug)]
struct Col {
    name: String,
    data_type: DataType,
    rows: u64,
    nulls: u64,
    /// One-row arrays; `None` until a non-null value is seen.
    bounds: Option<(ArrayRef, ArrayRef)>,
    /// The type changed between batches: no bounds.
    mixed: bool,
}

impl ColumnStats {
    /// Count `batch` in.
    pub fn add(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        let schema = batch.schema();
        for (field, array) in schema.fields().iter().zip(batch.columns()) {
            let at = match self.cols.iter().position(|c| c.name == *field.name()) {
                Some(i) => i,
                None => {
                    self.cols.push(Col {
                        name: field.name().clone(),
                        data_type: field.data_type().clone(),
                        rows: 0,
                        nulls: 0,
                        bounds: None,
                        mixed: false,
                    });
                    self.cols.len() - 1
                }
            };
            let col = &mut self.cols[at];
            col.rows += array.len() as u64;
            col.nulls += array.logical_null_count() as u64;
            if col.mixed {
                continue;
            }
            if *array.data_type() != col.data_type {
                col.mixed = true;
                col.bounds = None;
                continue;
            }
            let Some((lo, hi)) = bounds(array.as_ref())? else {
                continue;
            };
            col.bounds = Some(match col.bounds.take() {
                None => (lo, hi),
                Some((old_lo, old_hi)) => (
                    pick(old_lo, lo, Ordering::Less)?,
                    pick(old_hi, hi, Ordering::Greater)?,
                ),
            });
        }
        Ok(())
    }

    /// The statistics so far, in the order columns were first seen.
    pub fn finish(&self) -> Vec<ColumnStat> {
        self.cols
            .iter()
            .map(|c| {
                let (min, max) = match &c.bounds {
                    Some((lo, hi)) => (text(lo, false), text(hi, true)),
                    None => (None, None),
                };
                ColumnStat {
                    name: c.name.clone(),
                    data_type: c.data_type.to_string(),
                    rows: c.rows,
                    nulls: c.nulls,
                    min,
                    max,
                }
            })
            .collect()
    }
}

/// `a` unless `b` is further in the direction `want`.
fn pick(a: ArrayRef, b: ArrayRef, want: Ordering) -> Result<ArrayRef, ArrowError> {
    let cmp = arrow_ord::ord::make_comparator(a.as_ref(), b.as_ref(), SortOptions::default())?;
    Ok(if cmp(0, 0) == want.reverse() { b } else { a })
}

/// The smallest and largest non-null values of `array` as one-row arrays; `None` when there are
/// none or the type has no useful order.
fn bounds(array: &dyn Array) -> Result<Option<(ArrayRef, ArrayRef)>, ArrowError> {
    if array.null_count() == array.len() {
        return Ok(None);
    }
    Ok(downcast_primitive_array!(
        array => primitive(array),
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            aggregate::min_string(a).zip(aggregate::max_string(a)).map(|(lo, hi)| {
                (one(StringArray::from(vec![lo])), one(StringArray::from(vec![hi])))
            })
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            aggregate::min_string(a).zip(aggregate::max_string(a)).map(|(lo, hi)| {
                (one(LargeStringArray::from(vec![lo])), one(LargeStringArray::from(vec![hi])))
            })
        }
        DataType::Boolean => {
            let a = array.as_boolean();
            aggregate::min_boolean(a).zip(aggregate::max_boolean(a)).map(|(lo, hi)| {
                (one(BooleanArray::from(vec![lo])), one(BooleanArray::from(vec![hi])))
            })
        }
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Map(..)
        | DataType::Union(..)
        | DataType::Null => None,
        _ => scan(array)?,
    ))
}

fn one(a: impl Array + 'static) -> ArrayRef {
    Arc::new(a)
}

fn primitive<T: ArrowNumericType>(a: &PrimitiveArray<T>) -> Option<(ArrayRef, ArrayRef)> {
    let lo = aggregate::min(a)?;
    let hi = aggregate::max(a)?;
    let make = |v| -> ArrayRef {
        Arc::new(PrimitiveArray::<T>::from_iter_values([v]).with_data_type(a.data_type().clone()))
    };
    Some((make(lo), make(hi)))
}

/// Any other ordered type (binary, views, dictionaries …): one pass with Arrow's comparator.
fn scan(array: &dyn Array) -> Result<Option<(ArrayRef, ArrayRef)>, ArrowError> {
    let cmp = arrow_ord::ord::make_comparator(array, array, SortOptions::default())?;
    let mut valid = (0..array.len()).filter(|&i| array.is_valid(i));
    let Some(first) = valid.next() else {
        return Ok(None);
    };
    let (mut lo, mut hi) = (first, first);
    for i in valid {
        if cmp(i, lo) == Ordering::Less {
            lo = i;
        }
        if cmp(i, hi) == Ordering::Greater {
            hi = i;
        }
    }
    Ok(Some((array.slice(lo, 1), array.slice(hi, 1))))
}

/// A bound as text; long text shortened so it stays a bound.
fn text(a: &ArrayRef, upper: bool) -> Option<String> {
    let f = ArrayFormatter::try_new(a.as_ref(), &FormatOptions::default()).ok()?;
    let s = f.value(0).to_string();
    if !matches!(
        a.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) || s.chars().count() <= MAX_BOUND_CHARS
    {
        return Some(s);
    }
    let mut cut: Vec<char> = s.chars().take(MAX_BOUND_CHARS).collect();
    if upper {
        // Raise the last character that can be raised, dropping what follows it.
        while let Some(c) = cut.pop() {
            if let Some(next) = (u32::from(c) + 1..=0x10FFFF).find_map(char::from_u32) {
                cut.push(next);
                return Some(cut.into_iter().collect());
            }
        }
        // Every character was the highest there is: no shorter upper bound.
        return Some(s);
    }
    Some(cut.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        BinaryArray, Float64Array, Int64Array, ListArray, TimestampMicrosecondArray,
        types::Int32Type,
    };
    use arrow_schema::{Field, Schema};

    fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let schema = Schema::new(
            cols.iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(Arc::new(schema), cols.into_iter().map(|c| c.1).collect()).unwrap()
    }

    fn find<'a>(s: &'a [ColumnStat], name: &str) -> &'a ColumnStat {
        s.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn bounds_and_nulls_over_several_batches() {
        let mut st = ColumnStats::default();
        st.add(&batch(vec![
            ("n", one(Int64Array::from(vec![Some(5), None, Some(-3)]))),
            (
                "s",
                one(StringArray::from(vec![Some("pear"), Some("apple"), None])),
            ),
            ("f", one(Float64Array::from(vec![1.5, f64::NAN, 0.25]))),
            (
                "t",
                one(
                    TimestampMicrosecondArray::from(vec![1_700_000_000_000_000, 0, 5])
                        .with_timezone("UTC"),
                ),
            ),
        ]))
        .unwrap();
        st.add(&batch(vec![
            ("n", one(Int64Array::from(vec![Some(9), Some(0)]))),
            (
                "s",
                one(StringArray::from(vec![Some("zucchini"), Some("banana")])),
            ),
            ("b", one(BinaryArray::from(vec![&b"\x02"[..], b"\x01\xff"]))),
        ]))
        .unwrap();
        let s = st.finish();
        assert_eq!(
            s.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["n", "s", "f", "t", "b"]
        );
        let n = find(&s, "n");
        assert_eq!((n.rows, n.nulls), (5, 1));
        assert_eq!(
            (n.min.as_deref(), n.max.as_deref()),
            (Some("-3"), Some("9"))
        );
        assert_eq!(n.data_type, "Int64");
        let t = find(&s, "s");
        assert_eq!(
            (t.min.as_deref(), t.max.as_deref(), t.nulls),
            (Some("apple"), Some("zucchini"), 1)
        );
        // NaN sorts above every number, as in Arrow and Parquet's total order.
        let f = find(&s, "f");
        assert_eq!(
            (f.min.as_deref(), f.max.as_deref()),
            (Some("0.25"), Some("NaN"))
        );
        let t = find(&s, "t");
        assert_eq!(
            (t.min.as_deref(), t.max.as_deref()),
            (Some("1970-01-01T00:00:00Z"), Some("2023-11-14T22:13:20Z"))
        );
        let b = find(&s, "b");
        assert_eq!(
            (b.min.as_deref(), b.max.as_deref()),
            (Some("01ff"), Some("02"))
        );
    }

    #[test]
    fn all_null_nested_and_changing_columns_have_no_bounds() {
        let mut st = ColumnStats::default();
        let list =
            ListArray::from_iter_primitive::<Int32Type, _, _>(vec![Some(vec![Some(1)]), None]);
        st.add(&batch(vec![
            ("x", one(Int64Array::from(vec![None, None]))),
            ("l", one(list)),
            ("c", one(Int64Array::from(vec![1, 2]))),
        ]))
        .unwrap();
        st.add(&batch(vec![("c", one(StringArray::from(vec!["a", "b"])))]))
            .unwrap();
        let s = st.finish();
        let x = find(&s, "x");
        assert_eq!((x.nulls, x.min.clone(), x.max.clone()), (2, None, None));
        let l = find(&s, "l");
        assert_eq!((l.nulls, l.min.clone()), (1, None));
        let c = find(&s, "c");
        assert_eq!(
            (c.rows, c.data_type.as_str(), c.min.clone()),
            (4, "Int64", None)
        );
    }

    #[test]
    fn long_text_bounds_stay_bounds() {
        let long_a = format!("{}b", "a".repeat(80));
        let long_z = format!("{}x", "z".repeat(80));
        let mut st = ColumnStats::default();
        st.add(&batch(vec![(
            "s",
            one(StringArray::from(vec![long_a.as_str(), long_z.as_str()])),
        )]))
        .unwrap();
        let s = &st.finish()[0];
        let (lo, hi) = (s.min.clone().unwrap(), s.max.clone().unwrap());
        assert_eq!(lo, "a".repeat(MAX_BOUND_CHARS));
        assert_eq!(hi, format!("{}{{", "z".repeat(MAX_BOUND_CHARS - 1)));
        assert!(lo.as_str() <= long_a.as_str() && hi.as_str() >= long_z.as_str());
    }
}
