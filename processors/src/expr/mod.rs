//! The expression language: SQL `WHERE`-clause syntax, type-checked against a schema, evaluated a
//! column at a time with Arrow compute kernels.
//!
//! [`parse`] turns text into an [`Expr`]; [`Compiled::new`] resolves columns, checks types and inserts
//! the casts that make operands agree (so `ts > '2026-11-22'` compares timestamps), failing with an
//! error that points at the offending part; [`Compiled::evaluate`] runs on a [`RecordBatch`].
//!
//! Semantics are SQL's: comparisons with null are null, `AND`/`OR` are three-valued, a filter keeps
//! rows whose predicate is true. Integer division and `%` by zero give null; `cast` gives null where a
//! value does not convert.
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

mod eval;
mod func;
mod parse;

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema, TimeUnit};

pub use parse::{BinOp, Expr, ExprKind, Literal, parse, parse_timestamp};

#[cfg(test)]
mod tests {
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

    /// Evaluate on a batch; the result has one value per row.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef, Error> {
        self.node
            .eval(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| Error::arrow(format!("evaluating `{}`", self.text), e))
    }
}
