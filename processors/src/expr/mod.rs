//! The expression language: SQL `WHERE`-clause syntax, type-checked against a schema, evaluated a
//! column at a time with Arrow compute kernels.
//!
//! [`parse`] turns text into an [`Expr`]; [`Compiled::new`] resolves columns, checks types and inserts
//! the casts that make operands agree (so `ts > '2026-11-22'` compares timestamps), failing with an
//! error that points at the offending part; [`Compiled::evaluate`] runs on a [`RecordBatch`].
//!
//! Semantics are SQL's, as DuckDB and PostgreSQL implement them (the README lists the few
//! deliberate departures, and `scripts/check_sql.py` compares random expressions with DuckDB):
//! comparisons with null are null, `AND`/`OR` are three-valued, a filter keeps rows whose
//! predicate is true; -0.0 equals 0.0 and NaN equals itself above every number; `CASE`,
//! `coalesce`, `AND` and `OR` evaluate an operand only for the rows it decides; a strict operator
//! is null where an operand is null (or an integer divisor is zero), without an error from its
//! other operands there; `cast` gives null where a value does not convert. An error on one row
//! (an overflow) is confined to that row by [`Compiled::evaluate_rows`].
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{Array, BooleanArray, Int64Array, RecordBatch};
//! use arrow_schema::{DataType, Field, Schema};
//! use sluice_processors::expr::Compiled;
//!
//! let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
//! let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![Some(1), None, Some(7)]))])?;
//! let e = Compiled::new("n % 2 = 1 AND n BETWEEN 2 AND 10", &schema)?;
//! assert_eq!(e.data_type(), &DataType::Boolean);
//! let out = e.evaluate(&batch)?;
//! let out = out.as_any().downcast_ref::<BooleanArray>().unwrap();
//! assert_eq!(out, &BooleanArray::from(vec![Some(false), None, Some(true)]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cast;
mod eval;
mod func;
mod parse;

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema, TimeUnit};

pub use eval::canonical_float_array;
pub use parse::{BinOp, Expr, ExprKind, Literal, parse, parse_timestamp};

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, Int64Array};
    use arrow_schema::Field;

    /// Columns `i` (int64: MAX, 1, MIN, null) and `f` (float64: -0.0, 0.0, NaN from 0/0, 2.5).
    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![
                    Some(i64::MAX),
                    Some(1),
                    Some(i64::MIN),
                    None,
                ])),
                Arc::new(Float64Array::from(vec![
                    -0.0,
                    0.0,
                    f64::from_bits(0xfff8_0000_0000_0000),
                    2.5,
                ])),
            ],
        )
        .unwrap()
    }

    /// Each row's value as text (`null` for null), and the rows that failed.
    fn eval(text: &str) -> (Vec<String>, Vec<usize>) {
        let b = batch();
        let c = Compiled::new(text, &b.schema()).unwrap_or_else(|e| panic!("{text}: {e}"));
        let (values, errors) = c.evaluate_rows(&b);
        let opts = arrow_cast::display::FormatOptions::default().with_null("null");
        let f = arrow_cast::display::ArrayFormatter::try_new(values.as_ref(), &opts).unwrap();
        (
            (0..values.len()).map(|i| f.value(i).to_string()).collect(),
            errors.iter().map(|e| e.row).collect(),
        )
    }

    fn values(text: &str) -> Vec<String> {
        let (v, errors) = eval(text);
        assert!(errors.is_empty(), "{text}: rows {errors:?} failed");
        v
    }

    #[test]
    fn minus_zero_equals_zero_and_nan_is_above_every_number_and_equal_to_itself() {
        assert_eq!(values("f = 0"), ["true", "true", "false", "false"]);
        assert_eq!(values("f < 0.0"), ["false", "false", "false", "false"]);
        assert_eq!(values("f IN (0.0)"), ["true", "true", "false", "false"]);
        // 0/0 is a NaN with its sign bit set on x86: it must still sort above every number.
        assert_eq!(values("f > 1.0e308"), ["false", "false", "true", "false"]);
        assert_eq!(values("f <= 1.0"), ["true", "true", "false", "false"]);
        assert_eq!(
            values("f = cast('NaN' AS float64)"),
            ["false", "false", "true", "false"]
        );
        assert_eq!(
            values("f BETWEEN -1 AND 1"),
            ["true", "true", "false", "false"]
        );
    }

    #[test]
    fn a_branch_is_evaluated_only_for_the_rows_that_take_it() {
        assert_eq!(values("coalesce(-32.95, i + i)"), ["-32.95"; 4]);
        assert_eq!(
            values("CASE WHEN false THEN 9223372036854775807 + 1 ELSE 0 END"),
            ["0"; 4]
        );
        assert_eq!(
            values("CASE WHEN i < 10 AND i > 0 THEN i + i ELSE -1 END"),
            ["-1", "2", "-1", "-1"]
        );
        assert_eq!(
            values("coalesce(CASE WHEN i = 1 THEN null ELSE 5 END, i * 2)"),
            ["5", "2", "5", "5"]
        );
        assert_eq!(
            values("i = 1 AND i + i > 0"),
            ["false", "true", "false", "null"]
        );
        assert_eq!(
            values("i <> 1 OR i * 3 = 3"),
            ["true", "true", "true", "null"]
        );
        // A branch a row does take still fails that row, and only that row.
        let (v, errors) = eval("CASE WHEN i > 0 THEN i + 1 ELSE 0 END");
        assert_eq!(
            (v, errors),
            (
                vec!["null".into(), "2".into(), "0".into(), "0".into()],
                vec![0]
            )
        );
    }

    #[test]
    fn an_error_is_the_failing_rows_alone() {
        assert_eq!(
            eval("i - 1"),
            (
                vec![
                    "9223372036854775806".into(),
                    "0".into(),
                    "null".into(),
                    "null".into()
                ],
                vec![2]
            )
        );
        assert_eq!(eval("-i").1, [2]);
        assert_eq!(eval("abs(i)").1, [2]);
        assert_eq!(eval("i / -1").1, [2]);
        assert_eq!(eval("i * 2").1, [0, 2]);
        let b = batch();
        let c = Compiled::new("i - 1", &b.schema()).unwrap();
        let (_, errors) = c.evaluate_rows(&b);
        assert!(
            errors[0].message.contains("`i - 1`"),
            "{}",
            errors[0].message
        );
        assert!(
            errors[0].message.contains("-9223372036854775808"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn a_batch_whose_every_row_fails_is_every_row_a_reject() {
        // 8 192 rows, all overflowing: the halving finds each of them, and keeps no value.
        let schema = Arc::new(Schema::new(vec![Field::new("i", DataType::Int64, true)]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![i64::MAX; 8192]))],
        )
        .unwrap();
        let c = Compiled::new("i + 1", &schema).unwrap();
        let (values, errors) = c.evaluate_rows(&b);
        assert_eq!(errors.len(), 8192);
        assert_eq!(values.null_count(), 8192);
        assert!(errors.iter().enumerate().all(|(k, e)| e.row == k));
    }

    #[test]
    fn casts_that_do_not_fit_are_null() {
        assert_eq!(values("cast(1.0e308 AS float32)"), ["null"; 4]);
        assert_eq!(
            values("cast(f * 1.0e300 AS float32)"),
            ["-0.0", "0.0", "NaN", "null"]
        );
        assert_eq!(values("cast(2.5 AS int64)"), ["2"; 4]);
        assert_eq!(values("cast(-3.5 AS int64)"), ["-4"; 4]);
        assert_eq!(values("cast(1.0e19 AS int64)"), ["null"; 4]);
        assert_eq!(values("cast(f AS int64)"), ["0", "0", "null", "2"]);
        assert_eq!(values("cast(' 1.5 ' AS int64)"), ["2"; 4]);
        assert_eq!(values("cast(i AS int32)"), ["null", "1", "null", "null"]);
    }

    #[test]
    fn numbers_and_text_cast_to_timestamps_by_the_one_epoch_rule() {
        let want = "2023-11-14T22:13:20Z";
        for e in [
            "cast(1700000000 AS timestamp)",
            "cast(1700000000000 AS timestamp)",
            "cast(1700000000.0 AS timestamp)",
            "cast('1700000000' AS timestamp)",
            "cast('2023-11-15T00:13:20+02:00' AS timestamp)",
        ] {
            assert_eq!(values(e), [want; 4], "{e}");
        }
        assert_eq!(values("cast(1.0e30 AS timestamp)"), ["null"; 4]);
        assert_eq!(
            values("cast('10000-01-01T00:00:00Z' AS timestamp)"),
            ["null"; 4]
        );
    }

    #[test]
    fn a_null_literal_takes_the_type_its_context_needs() {
        for e in [
            "round(null)",
            "round(null, 1)",
            "abs(null)",
            "-(null)",
            "date(null)",
            "hour(null)",
            "date_trunc('day', null)",
            "null + null",
            "null = null",
            "null || 'a'",
            "lower(null)",
            "null LIKE 'a%'",
            "coalesce(null, null)",
        ] {
            assert_eq!(values(e), ["null"; 4], "{e}");
        }
        assert_eq!(values("coalesce(null, i)")[1], "1");
    }

    #[test]
    fn round_is_half_away_from_zero_on_the_exact_value() {
        assert_eq!(values("round(-15, -1)"), ["-20"; 4]);
        assert_eq!(values("round(15, -1)"), ["20"; 4]);
        assert_eq!(values("round(-14, -1)"), ["-10"; 4]);
        assert_eq!(values("round(-2.5)"), ["-3.0"; 4]);
        assert_eq!(values("round(2.5)"), ["3.0"; 4]);
        assert_eq!(values("round(2.675, 2)"), ["2.67"; 4]);
        assert_eq!(values("round(1.005, 2)"), ["1.0"; 4]);
        assert_eq!(values("round(0.125, 2)"), ["0.13"; 4]);
        assert_eq!(values("round(-0.125, 2)"), ["-0.13"; 4]);
        assert_eq!(values("round(1.0e308, 2)"), ["1e308"; 4]);
        assert_eq!(values("round(1234.5, -2)"), ["1200.0"; 4]);
        assert_eq!(values("round(1250.0, -2)"), ["1300.0"; 4]);
        assert_eq!(values("round(f, 0)"), ["-0.0", "0.0", "NaN", "3.0"]);
        assert_eq!(eval("round(9223372036854775807, -1)").1, [0, 1, 2, 3]);
        assert_eq!(values("round(1.0e308, -18)"), ["1e308"; 4]);
        assert_eq!(values("round(i, 2)")[1], "1");
    }

    #[test]
    fn the_smallest_integer_literal_is_an_int64() {
        let b = batch();
        let c = Compiled::new("-9223372036854775808", &b.schema()).unwrap();
        assert_eq!(c.data_type(), &DataType::Int64);
        assert_eq!(
            values("-9223372036854775808 = i"),
            ["false", "false", "true", "null"]
        );
        assert_eq!(eval("- -9223372036854775808").1, [0, 1, 2, 3]);
        let c = Compiled::new("9223372036854775808", &b.schema()).unwrap();
        assert_eq!(c.data_type(), &DataType::Float64);
    }

    #[test]
    fn concatenation_binds_looser_than_arithmetic() {
        assert_eq!(values("'a' || 1 + 2"), ["a3"; 4]);
        assert_eq!(values("'a' || 'b' = 'ab'"), ["true"; 4]);
        assert_eq!(values("'ab' LIKE 'a' || '%'"), ["true"; 4]);
    }

    #[test]
    fn trim_strips_space_separators_only() {
        assert_eq!(values("trim('\u{3000} x \u{a0}')"), ["x"; 4]);
        assert_eq!(values("length(trim('\t x\n'))"), ["4"; 4]);
        assert_eq!(values("trim('\n x \n', ' \n')"), ["x"; 4]);
        assert_eq!(values("trim('abcxcba', 'ab')"), ["cxc"; 4]);
    }

    #[test]
    fn lists_the_columns_an_expression_reads() {
        let e = super::parse("geo.lat > 1 AND lower(page) IN ('a', x) OR CASE WHEN ok THEN \"odd name\" END IS NULL AND geo.cc = 'x'").unwrap();
        assert_eq!(super::columns(&e), ["geo", "page", "x", "ok", "odd name"]);
    }
}

use crate::Error;
use eval::Node;

/// The top-level columns an expression reads (for `geo.lat`, `geo`), each once, in first-use order.
pub fn columns(expr: &Expr) -> Vec<String> {
    fn walk(e: &Expr, out: &mut Vec<String>) {
        match &e.kind {
            ExprKind::Literal(_) => {}
            ExprKind::Column(path) => {
                if let Some(root) = path.first()
                    && !out.contains(root)
                {
                    out.push(root.clone());
                }
            }
            ExprKind::Binary { left, right, .. } => {
                walk(left, out);
                walk(right, out);
            }
            ExprKind::Not(x) | ExprKind::Neg(x) => walk(x, out),
            ExprKind::IsNull { expr, .. } | ExprKind::Cast { expr, .. } => walk(expr, out),
            ExprKind::InList { expr, list, .. } => {
                walk(expr, out);
                list.iter().for_each(|x| walk(x, out));
            }
            ExprKind::Between {
                expr, low, high, ..
            } => {
                walk(expr, out);
                walk(low, out);
                walk(high, out);
            }
            ExprKind::Like { expr, pattern, .. } => {
                walk(expr, out);
                walk(pattern, out);
            }
            ExprKind::Case {
                branches,
                otherwise,
            } => {
                for (c, v) in branches {
                    walk(c, out);
                    walk(v, out);
                }
                if let Some(o) = otherwise {
                    walk(o, out);
                }
            }
            ExprKind::Call { args, .. } => args.iter().for_each(|x| walk(x, out)),
        }
    }
    let mut out = Vec::new();
    walk(expr, &mut out);
    out
}

/// The timestamp type Sluice normalises to: microseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

/// Parse a type name as used in `schema` and `cast(x AS type)`.
pub fn parse_type(name: &str) -> Option<DataType> {
    Some(match name.to_ascii_lowercase().as_str() {
        "string" | "str" | "utf8" | "text" | "varchar" => DataType::Utf8,
        // A string holding a value's JSON text (objects and arrays kept whole); for decoding.
        "json" => DataType::Utf8,
        "int64" | "int" | "bigint" | "integer" | "long" => DataType::Int64,
        "int32" => DataType::Int32,
        "float64" | "float" | "double" => DataType::Float64,
        "float32" | "real" => DataType::Float32,
        "bool" | "boolean" => DataType::Boolean,
        "timestamp" => timestamp_type(),
        "date" => DataType::Date32,
        _ => return None,
    })
}

/// The type names [`parse_type`] accepts, for error messages.
pub const TYPE_NAMES: &str = "string, int64, int32, float64, float32, bool, timestamp, date, json";

/// A short, user-facing name of an Arrow type.
pub fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Int64 => "int64".into(),
        DataType::Int32 => "int32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Boolean => "bool".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::Date32 => "date".into(),
        DataType::Null => "null".into(),
        DataType::Struct(_) => "struct".into(),
        DataType::List(f) => format!("list<{}>", type_name(f.data_type())),
        other => other.to_string().to_lowercase(),
    }
}

/// `items` joined pairwise, in order, into a balanced tree by `join` (`None` when empty): a chain
/// of n terms is ⌈log2 n⌉ levels deep instead of n, and everything that reads the tree recurses
/// once per level. Used for AND/OR chains (parser) and `IN` lists (planner).
pub(crate) fn balance<T>(mut items: Vec<T>, join: impl Fn(T, T) -> T) -> Option<T> {
    while items.len() > 1 {
        let mut next = Vec::with_capacity(items.len().div_ceil(2));
        let mut it = items.into_iter();
        while let Some(l) = it.next() {
            next.push(match it.next() {
                Some(r) => join(l, r),
                None => l,
            });
        }
        items = next;
    }
    items.pop()
}

/// A type's name with its article, for sentences: `an int64`, `a string`.
pub fn a_type(dt: &DataType) -> String {
    let name = type_name(dt);
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

/// An expression checked against a schema, ready to evaluate on batches of that schema.
#[derive(Debug, Clone)]
pub struct Compiled {
    node: Node,
    data_type: DataType,
    text: String,
}

impl Compiled {
    /// Parse `text` and check it against `schema`.
    pub fn new(text: &str, schema: &Schema) -> Result<Self, Error> {
        let expr = parse(text)?;
        Self::from_expr(&expr, text, schema)
    }

    /// Check a parsed expression against `schema`; `text` is its source, for errors.
    pub fn from_expr(expr: &Expr, text: &str, schema: &Schema) -> Result<Self, Error> {
        let (node, data_type) = eval::plan(expr, text, schema)?;
        Ok(Self {
            node,
            data_type,
            text: text.to_string(),
        })
    }

    /// The type the expression evaluates to.
    pub fn data_type(&self) -> &DataType {
        &self.data_type
    }

    /// The expression text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluate on a batch; the result has one value per row. Any row that fails fails the
    /// whole call: stages use [`Compiled::evaluate_rows`], which confines an error to its row.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef, Error> {
        self.node
            .eval(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| Error::arrow(format!("evaluating `{}`", self.text), e))
    }

    /// Evaluate on a batch, confining errors to the rows that cause them: an overflow or a
    /// value out of range on one row gives that row a null and a [`RowError`], and the other
    /// rows their values. The failing rows are found by halving the batch (a batch with `k` bad
    /// rows takes about `2k·log2(rows)` extra evaluations; none when no row fails).
    pub fn evaluate_rows(&self, batch: &RecordBatch) -> (ArrayRef, Vec<RowError>) {
        let mut errors = Vec::new();
        let values = self.rows_from(batch, 0, &mut errors);
        (values, errors)
    }

    fn rows_from(&self, batch: &RecordBatch, first: usize, errors: &mut Vec<RowError>) -> ArrayRef {
        let rows = batch.num_rows();
        let e = match self.node.eval(batch).and_then(|v| v.into_array(rows)) {
            Ok(values) => return values,
            Err(e) => e,
        };
        if rows <= 1 {
            errors.push(RowError {
                row: first,
                message: format!("`{}` failed: {e}", self.text),
            });
            return arrow_array::new_null_array(&self.data_type, rows);
        }
        let half = rows / 2;
        let left = self.rows_from(&batch.slice(0, half), first, errors);
        let right = self.rows_from(&batch.slice(half, rows - half), first + half, errors);
        match arrow_select::concat::concat(&[left.as_ref(), right.as_ref()]) {
            Ok(a) => a,
            // Two arrays of the same type always concatenate; should they not, every row of
            // this part is refused rather than any row given a wrong value.
            Err(e) => {
                errors.retain(|r| r.row < first);
                errors.extend((first..first + rows).map(|row| RowError {
                    row,
                    message: format!("`{}` failed: {e}", self.text),
                }));
                arrow_array::new_null_array(&self.data_type, rows)
            }
        }
    }
}

/// A row on which an expression failed (an overflow, a value out of range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The row's index in the batch.
    pub row: usize,
    /// The expression and what went wrong, with the value where the kernel names it.
    pub message: String,
}
