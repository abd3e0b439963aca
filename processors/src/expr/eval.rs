//! Type checking (expression → [`Node`] plan) and columnar evaluation with Arrow kernels.

use std::sync::Arc;

use arrow_arith::boolean::{and_kleene, is_not_null, is_null, not, or_kleene};
use arrow_arith::numeric;
use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Datum, Float64Array, Int64Array, NullArray, RecordBatch, Scalar,
    StringArray, TimestampMicrosecondArray, UInt32Array, make_array, new_null_array,
};
use arrow_buffer::NullBuffer;
use arrow_ord::cmp;
use arrow_schema::{ArrowError, DataType, Schema};

use super::a_type;
use super::func::{self, Func};
use super::parse::{BinOp, Expr, ExprKind, Literal};
use super::{timestamp_type, type_name};
use crate::Error;

/// A value during evaluation: a column, or one value standing for every row.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Array(ArrayRef),
    Scalar(ArrayRef),
}

impl Val {
    pub(crate) fn array(&self) -> &ArrayRef {
        match self {
            Val::Array(a) | Val::Scalar(a) => a,
        }
    }
    /// Apply an element-wise function, keeping scalar-ness.
    pub(crate) fn map(
        &self,
        f: impl FnOnce(&ArrayRef) -> Result<ArrayRef, ArrowError>,
    ) -> Result<Val, ArrowError> {
        Ok(match self {
            Val::Array(a) => Val::Array(f(a)?),
            Val::Scalar(a) => Val::Scalar(f(a)?),
        })
    }
    pub(crate) fn into_array(self, rows: usize) -> Result<ArrayRef, ArrowError> {
        match self {
            Val::Array(a) => Ok(a),
            Val::Scalar(a) => {
                if first_is_null(&a) {
                    return Ok(new_null_array(a.data_type(), rows));
                }
                let idx = UInt32Array::from(vec![0u32; rows]);
                arrow_select::take::take(a.as_ref(), &idx, None)
            }
        }
    }
}

/// Run a binary kernel on two values, with scalars passed as Arrow `Scalar` datums.
pub(crate) fn binary(
    l: &Val,
    r: &Val,
    f: impl FnOnce(&dyn Datum, &dyn Datum) -> Result<ArrayRef, ArrowError>,
) -> Result<Val, ArrowError> {
    let (ls, rs);
    let ld: &dyn Datum = match l {
        Val::Array(a) => a,
        Val::Scalar(a) => {
            ls = Scalar::new(a.clone());
            &ls
        }
    };
    let rd: &dyn Datum = match r {
        Val::Array(a) => a,
        Val::Scalar(a) => {
            rs = Scalar::new(a.clone());
            &rs
        }
    };
    let out = f(ld, rd)?;
    Ok(match (l, r) {
        (Val::Scalar(_), Val::Scalar(_)) => Val::Scalar(out),
        _ => Val::Array(out),
    })
}

/// Two arrays of equal length, broadcasting scalars; `true` when both were scalars.
pub(crate) fn align(l: &Val, r: &Val) -> Result<(ArrayRef, ArrayRef, bool), ArrowError> {
    let n = match (l, r) {
        (Val::Scalar(a), Val::Scalar(b)) => return Ok((a.clone(), b.clone(), true)),
        (Val::Array(a), _) | (_, Val::Array(a)) => a.len(),
    };
    Ok((l.clone().into_array(n)?, r.clone().into_array(n)?, false))
}

/// A checked, ready-to-run expression node.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Column(Vec<usize>),
    Literal(ArrayRef),
    Cast(Box<Node>, DataType),
    Cmp(BinOp, Box<Node>, Box<Node>),
    Arith(BinOp, Box<Node>, Box<Node>, DataType),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    IsNull(Box<Node>, bool),
    Like {
        expr: Box<Node>,
        pattern: Box<Node>,
        negated: bool,
        ci: bool,
    },
    Case {
        branches: Vec<(Node, Node)>,
        otherwise: Option<Box<Node>>,
        data_type: DataType,
    },
    /// A function, its arguments and the type it returns.
    Func(Func, Vec<Node>, DataType),
    /// `coalesce(…)`: its arguments (cast to their common type) and that type.
    Coalesce(Vec<Node>, DataType),
    Concat(Box<Node>, Box<Node>),
    /// An integer divisor with its zeros made null.
    NullIfZero(Box<Node>),
}

pub(crate) struct Planner<'a> {
    pub(crate) text: &'a str,
    pub(crate) schema: &'a Schema,
}

impl Planner<'_> {
    pub(crate) fn err(&self, offset: usize, message: impl Into<String>) -> Error {
        Error::Expr {
            expr: self.text.to_string(),
            offset,
            message: message.into(),
        }
    }
}

pub(crate) fn plan(expr: &Expr, text: &str, schema: &Schema) -> Result<(Node, DataType), Error> {
    Planner { text, schema }.plan(expr)
}

fn is_numeric(dt: &DataType) -> bool {
    dt.is_numeric()
}

fn is_string(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// The type two operands are brought to before comparing or combining them.
pub(crate) fn common_type(a: &DataType, b: &DataType) -> Option<DataType> {
    use DataType::*;
    if a == b {
        return Some(if is_string(a) { Utf8 } else { a.clone() });
    }
    Some(match (a, b) {
        (Null, x) | (x, Null) => {
            if is_string(x) {
                Utf8
            } else {
                x.clone()
            }
        }
        (x, y) if is_string(x) && is_string(y) => Utf8,
        (x, y) if is_numeric(x) && is_numeric(y) => {
            if x.is_floating() || y.is_floating() {
                Float64
            } else {
                Int64
            }
        }
        (Timestamp(..), Timestamp(..)) | (Timestamp(..), Date32) | (Date32, Timestamp(..)) => {
            timestamp_type()
        }
        (Timestamp(..), s) | (s, Timestamp(..)) if is_string(s) => timestamp_type(),
        (Date32, s) | (s, Date32) if is_string(s) => Date32,
        _ => return None,
    })
}

pub(crate) fn cast_to(node: Node, from: &DataType, to: &DataType) -> Node {
    if from == to {
        node
    } else {
        Node::Cast(Box::new(node), to.clone())
    }
}

impl Planner<'_> {
    pub(crate) fn plan(&self, e: &Expr) -> Result<(Node, DataType), Error> {
        let (node, dt) = self.plan_node(e)?;
        Ok((fold_null(node, &dt), dt))
    }

    fn plan_node(&self, e: &Expr) -> Result<(Node, DataType), Error> {
        match &e.kind {
            ExprKind::Literal(l) => Ok(literal(l)),
            ExprKind::Column(path) => self.column(path, e.offset),
            ExprKind::Binary { op, left, right } => self.binary(*op, left, right, e.offset),
            ExprKind::Not(inner) => {
                let n = self.boolean(inner, "NOT")?;
                Ok((Node::Not(Box::new(n)), DataType::Boolean))
            }
            ExprKind::Neg(inner) => {
                let (n, dt) = self.plan(inner)?;
                // `-(null)` is a null int64.
                let (n, dt) = if dt == DataType::Null {
                    (cast_to(n, &dt, &DataType::Int64), DataType::Int64)
                } else {
                    (n, dt)
                };
                if !is_numeric(&dt) {
                    return Err(
                        self.err(inner.offset, format!("cannot negate {} value", a_type(&dt)))
                    );
                }
                Ok((Node::Neg(Box::new(n)), dt))
            }
            ExprKind::IsNull { expr, negated } => {
                let (n, _) = self.plan(expr)?;
                Ok((Node::IsNull(Box::new(n), *negated), DataType::Boolean))
            }
            ExprKind::InList {
                expr,
                list,
                negated,
            } => {
                let mut terms = Vec::with_capacity(list.len());
                for item in list {
                    terms.push(self.binary(BinOp::Eq, expr, item, item.offset)?.0);
                }
                // A balanced tree of ORs: `x IN (…8 000 values…)` is 13 levels deep, not 8 000
                // (evaluation recurses once per level).
                let n = super::balance(terms, |l, r| Node::Or(Box::new(l), Box::new(r)))
                    .ok_or_else(|| self.err(e.offset, "IN needs at least one value"))?;
                Ok((
                    if *negated { Node::Not(Box::new(n)) } else { n },
                    DataType::Boolean,
                ))
            }
            ExprKind::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let (ge, _) = self.binary(BinOp::GtEq, expr, low, low.offset)?;
                let (le, _) = self.binary(BinOp::LtEq, expr, high, high.offset)?;
                let n = Node::And(Box::new(ge), Box::new(le));
                Ok((
                    if *negated { Node::Not(Box::new(n)) } else { n },
                    DataType::Boolean,
                ))
            }
            ExprKind::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => {
                let s = self.string(expr, "LIKE")?;
                let p = self.string(pattern, "LIKE pattern")?;
                Ok((
                    Node::Like {
                        expr: Box::new(s),
                        pattern: Box::new(p),
                        negated: *negated,
                        ci: *case_insensitive,
                    },
                    DataType::Boolean,
                ))
            }
            ExprKind::Case {
                branches,
                otherwise,
            } => {
                let mut planned = Vec::new();
                let mut dt = DataType::Null;
                for (c, v) in branches {
                    let c = self.boolean(c, "WHEN")?;
                    let (vn, vt) = self.plan(v)?;
                    dt = common_type(&dt, &vt).ok_or_else(|| {
                        self.err(
                            v.offset,
                            format!(
                                "CASE branches mix {} and {}",
                                type_name(&dt),
                                type_name(&vt)
                            ),
                        )
                    })?;
                    planned.push((c, vn, vt));
                }
                let otherwise = match otherwise {
                    Some(o) => {
                        let (on, ot) = self.plan(o)?;
                        dt = common_type(&dt, &ot).ok_or_else(|| {
                            self.err(
                                o.offset,
                                format!(
                                    "CASE branches mix {} and {}",
                                    type_name(&dt),
                                    type_name(&ot)
                                ),
                            )
                        })?;
                        Some(Box::new(cast_to(on, &ot, &dt)))
                    }
                    None => None,
                };
                let branches = planned
                    .into_iter()
                    .map(|(c, v, vt)| (c, cast_to(v, &vt, &dt)))
                    .collect();
                Ok((
                    Node::Case {
                        branches,
                        otherwise,
                        data_type: dt.clone(),
                    },
                    dt,
                ))
            }
            ExprKind::Cast { expr, to } => {
                let dt = super::parse_type(to).ok_or_else(|| {
                    self.err(
                        e.offset,
                        format!("unknown type `{to}`; valid types: {}", super::TYPE_NAMES),
                    )
                })?;
                let (n, from) = self.plan(expr)?;
                if !arrow_cast::can_cast_types(&from, &dt) {
                    return Err(self.err(
                        e.offset,
                        format!("cannot cast {} to {}", type_name(&from), type_name(&dt)),
                    ));
                }
                Ok((cast_to(n, &from, &dt), dt))
            }
            ExprKind::Call { name, args, star } => func::plan(self, name, args, *star, e.offset),
        }
    }

    pub(crate) fn boolean(&self, e: &Expr, what: &str) -> Result<Node, Error> {
        let (n, dt) = self.plan(e)?;
        match dt {
            DataType::Boolean => Ok(n),
            DataType::Null => Ok(cast_to(n, &dt, &DataType::Boolean)),
            other => Err(self.err(
                e.offset,
                format!(
                    "{what} needs a true/false value, found {}",
                    type_name(&other)
                ),
            )),
        }
    }

    pub(crate) fn string(&self, e: &Expr, what: &str) -> Result<Node, Error> {
        let (n, dt) = self.plan(e)?;
        if is_string(&dt) || dt == DataType::Null {
            Ok(cast_to(n, &dt, &DataType::Utf8))
        } else {
            Err(self.err(
                e.offset,
                format!("{what} needs a string, found {}", type_name(&dt)),
            ))
        }
    }

    fn column(&self, path: &[String], offset: usize) -> Result<(Node, DataType), Error> {
        let mut idx = Vec::with_capacity(path.len());
        let mut fields = self.schema.fields().clone();
        let mut dt = DataType::Null;
        for (depth, name) in path.iter().enumerate() {
            let Some((i, f)) = fields.find(name) else {
                let known: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
                let hint = known
                    .iter()
                    .find(|k| k.eq_ignore_ascii_case(name))
                    .map(|k| format!("; did you mean `{k}`?"));
                let scope = if depth == 0 {
                    "the input".to_string()
                } else {
                    format!("`{}`", path[..depth].join("."))
                };
                return Err(self.err(
                    offset,
                    format!(
                        "unknown column `{name}` in {scope}{}",
                        hint.unwrap_or_else(|| format!("; columns are: {}", known.join(", ")))
                    ),
                ));
            };
            idx.push(i);
            dt = f.data_type().clone();
            if depth + 1 < path.len() {
                match &dt {
                    DataType::Struct(children) => fields = children.clone(),
                    other => {
                        return Err(self.err(
                            offset,
                            format!(
                                "`{}` is {}, not a struct with fields",
                                path[..=depth].join("."),
                                a_type(other)
                            ),
                        ));
                    }
                }
            }
        }
        // Other string encodings are read as Utf8 so every kernel sees one string type.
        let node = Node::Column(idx);
        if matches!(dt, DataType::LargeUtf8 | DataType::Utf8View) {
            return Ok((cast_to(node, &dt, &DataType::Utf8), DataType::Utf8));
        }
        Ok((node, dt))
    }

    fn binary(
        &self,
        op: BinOp,
        l: &Expr,
        r: &Expr,
        offset: usize,
    ) -> Result<(Node, DataType), Error> {
        match op {
            BinOp::And | BinOp::Or => {
                let ln = self.boolean(l, op.symbol())?;
                let rn = self.boolean(r, op.symbol())?;
                let n = if op == BinOp::And {
                    Node::And(Box::new(ln), Box::new(rn))
                } else {
                    Node::Or(Box::new(ln), Box::new(rn))
                };
                Ok((n, DataType::Boolean))
            }
            BinOp::Concat => {
                // Any value concatenates as its text; null makes the result null, as in SQL.
                let (ln, lt) = self.plan(l)?;
                let (rn, rt) = self.plan(r)?;
                for (t, e) in [(&lt, l), (&rt, r)] {
                    if matches!(t, DataType::Struct(_) | DataType::List(_)) {
                        return Err(
                            self.err(e.offset, format!("cannot concatenate {} value", a_type(t)))
                        );
                    }
                }
                let (ln, rn) = (
                    cast_to(ln, &lt, &DataType::Utf8),
                    cast_to(rn, &rt, &DataType::Utf8),
                );
                Ok((Node::Concat(Box::new(ln), Box::new(rn)), DataType::Utf8))
            }
            _ => {
                let (ln, lt) = self.plan(l)?;
                let (rn, rt) = self.plan(r)?;
                let ct = common_type(&lt, &rt).ok_or_else(|| {
                    self.err(
                        offset,
                        format!(
                            "cannot apply `{}` to {} and {}{}",
                            op.symbol(),
                            type_name(&lt),
                            type_name(&rt),
                            if is_numeric(&lt) != is_numeric(&rt)
                                && (is_string(&lt) || is_string(&rt))
                            {
                                "; write numbers without quotes, or cast(x AS int64)"
                            } else {
                                ""
                            }
                        ),
                    )
                })?;
                // Two null literals: a null takes the type its context needs, and int64 serves
                // both comparison and arithmetic.
                let ct = if ct == DataType::Null {
                    DataType::Int64
                } else {
                    ct
                };
                let (ln, rn) = (cast_to(ln, &lt, &ct), cast_to(rn, &rt, &ct));
                if op.is_comparison() {
                    if matches!(ct, DataType::Struct(_) | DataType::List(_)) {
                        return Err(
                            self.err(offset, format!("cannot compare {} values", type_name(&ct)))
                        );
                    }
                    return Ok((Node::Cmp(op, Box::new(ln), Box::new(rn)), DataType::Boolean));
                }
                if !is_numeric(&ct) {
                    return Err(self.err(
                        offset,
                        format!(
                            "`{}` needs numbers, found {} and {}",
                            op.symbol(),
                            type_name(&lt),
                            type_name(&rt)
                        ),
                    ));
                }
                // Integer division and `%` by zero are null (a float's are IEEE's ±inf or NaN, as
                // in DuckDB): a zero divisor is a null operand, so the row is null whatever the
                // dividend holds, and `x / 0` folds to null.
                let rn = if ct.is_integer() && matches!(op, BinOp::Div | BinOp::Rem) {
                    Node::NullIfZero(Box::new(rn))
                } else {
                    rn
                };
                Ok((Node::Arith(op, Box::new(ln), Box::new(rn), ct.clone()), ct))
            }
        }
    }
}

/// An operator or function (other than AND, OR, IS NULL, CASE and coalesce) with a constant null
/// operand is null, and its other operands are never evaluated: `null + i * 2` cannot overflow.
/// DuckDB folds these the same way.
fn fold_null(node: Node, dt: &DataType) -> Node {
    let strict_null = match &node {
        Node::Cmp(_, l, r) | Node::Arith(_, l, r, _) | Node::Concat(l, r) => {
            is_const_null(l) || is_const_null(r)
        }
        Node::Neg(x) | Node::Cast(x, _) => is_const_null(x),
        Node::Like { expr, pattern, .. } => is_const_null(expr) || is_const_null(pattern),
        Node::Func(_, args, _) => args.iter().any(is_const_null),
        _ => false,
    };
    if strict_null && !matches!(node, Node::Literal(_)) {
        Node::Literal(new_null_array(dt, 1))
    } else {
        node
    }
}

/// True for an expression that reads no column and is null (`null`, `cast(null AS int64)`,
/// `CASE WHEN false THEN 1 END`).
fn is_const_null(n: &Node) -> bool {
    match n {
        Node::Literal(a) => first_is_null(a),
        Node::Cast(x, _) => is_const_null(x),
        Node::Column(_) => false,
        _ if reads_columns(n) => false,
        _ => {
            let one = RecordBatch::try_new_with_options(
                Arc::new(Schema::empty()),
                vec![],
                &arrow_array::RecordBatchOptions::new().with_row_count(Some(1)),
            );
            one.ok()
                .and_then(|b| n.eval(&b).ok())
                .and_then(|v| v.into_array(1).ok())
                .is_some_and(|a| first_is_null(&a))
        }
    }
}

fn reads_columns(n: &Node) -> bool {
    match n {
        Node::Column(_) => true,
        Node::Literal(_) => false,
        Node::Cast(x, _)
        | Node::Not(x)
        | Node::Neg(x)
        | Node::IsNull(x, _)
        | Node::NullIfZero(x) => reads_columns(x),
        Node::Cmp(_, l, r)
        | Node::Arith(_, l, r, _)
        | Node::And(l, r)
        | Node::Or(l, r)
        | Node::Concat(l, r) => reads_columns(r) || reads_columns(l),
        Node::Like { expr, pattern, .. } => reads_columns(expr) || reads_columns(pattern),
        Node::Case {
            branches,
            otherwise,
            ..
        } => {
            branches
                .iter()
                .any(|(c, v)| reads_columns(c) || reads_columns(v))
                || otherwise.as_deref().is_some_and(reads_columns)
        }
        Node::Func(_, args, _) | Node::Coalesce(args, _) => args.iter().any(reads_columns),
    }
}

fn literal(l: &Literal) -> (Node, DataType) {
    let a: ArrayRef = match l {
        Literal::Null => Arc::new(NullArray::new(1)),
        Literal::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
        Literal::Int(v) => Arc::new(Int64Array::from(vec![*v])),
        Literal::Float(v) => Arc::new(Float64Array::from(vec![*v])),
        Literal::String(s) => Arc::new(StringArray::from(vec![s.as_str()])),
        Literal::Timestamp(t) => {
            Arc::new(TimestampMicrosecondArray::from(vec![*t]).with_timezone("UTC"))
        }
    };
    let dt = a.data_type().clone();
    (Node::Literal(a), dt)
}

fn bool_val(v: &Val) -> Result<&BooleanArray, ArrowError> {
    v.array().as_boolean_opt().ok_or_else(|| {
        ArrowError::InvalidArgumentError(format!(
            "expected booleans, found {}",
            v.array().data_type()
        ))
    })
}

/// Floats brought to one value per SQL value before comparing: -0.0 is 0.0 and every NaN the
/// one positive NaN, so that the total order the kernels use puts NaN above every number and
/// equal to itself, as DuckDB and PostgreSQL do.
pub(crate) fn canonical_floats(v: Val) -> Result<Val, ArrowError> {
    if matches!(v.array().data_type(), DataType::Float64 | DataType::Float32) {
        v.map(|a| Ok(canonical_float_array(a)))
    } else {
        Ok(v)
    }
}

/// A float array with -0.0 made 0.0 and every NaN the one positive NaN, so that values SQL holds
/// equal are one value (group keys, distinct counts, partition folders); other types are returned
/// as they are. (`x + 0.0` is +0.0 for both zeros and `x` for every other number.)
pub fn canonical_float_array(a: &ArrayRef) -> ArrayRef {
    use arrow_array::types::{Float32Type, Float64Type};
    match a.data_type() {
        DataType::Float64 => Arc::new(
            a.as_primitive::<Float64Type>()
                .unary::<_, Float64Type>(|x| if x.is_nan() { f64::NAN } else { x + 0.0 }),
        ),
        DataType::Float32 => Arc::new(
            a.as_primitive::<Float32Type>()
                .unary::<_, Float32Type>(|x| if x.is_nan() { f32::NAN } else { x + 0.0 }),
        ),
        _ => a.clone(),
    }
}

/// `node`'s values for the rows of `mask`; the other rows are null and `node` is not evaluated
/// for them (when it fails on the whole batch, it is run again on the masked rows alone).
pub(crate) fn eval_masked(
    node: &Node,
    batch: &RecordBatch,
    mask: &BooleanArray,
    data_type: &DataType,
) -> Result<ArrayRef, ArrowError> {
    let rows = batch.num_rows();
    let n = mask.true_count();
    if n == 0 {
        return Ok(new_null_array(data_type, rows));
    }
    let first = node.eval(batch).and_then(|v| v.into_array(rows));
    match first {
        Ok(a) => Ok(a),
        Err(e) if n == rows => Err(e),
        Err(_) => eval_subset(node, batch, mask),
    }
}

/// Whether a one-value array (a scalar) is null. (A NullArray has no null buffer: its own
/// `is_null` says false.)
fn first_is_null(a: &ArrayRef) -> bool {
    a.data_type() == &DataType::Null || a.is_null(0)
}

/// One null standing for every row.
fn null_of(dt: &DataType) -> Val {
    Val::Scalar(new_null_array(dt, 1))
}

/// [`strict_operands`] of two.
fn strict_pair(l: &Node, r: &Node, batch: &RecordBatch) -> Result<Option<[Val; 2]>, ArrowError> {
    Ok(strict_operands(&[l, r], batch)?.and_then(|v| <[Val; 2]>::try_from(v).ok()))
}

/// The operands of a strict operator or function (null when any operand is null). An operand
/// that fails is evaluated again for only the rows where every other operand is present: on a
/// row where another operand is null the result is null whatever this one holds, so its error
/// there is not an error (`k * (i * 2)` is null where `k` is, even where `i * 2` overflows).
/// None when no row has all its operands.
fn strict_operands(
    children: &[&Node],
    batch: &RecordBatch,
) -> Result<Option<Vec<Val>>, ArrowError> {
    let mut vals = Vec::with_capacity(children.len());
    let mut failure = None;
    for c in children {
        match c.eval(batch) {
            Ok(v) => vals.push(Some(v)),
            Err(e) => {
                failure.get_or_insert(e);
                vals.push(None);
            }
        }
    }
    let Some(failure) = failure else {
        return Ok(Some(vals.into_iter().flatten().collect()));
    };
    let rows = batch.num_rows();
    let mut open = vec![true; rows];
    for v in vals.iter().flatten() {
        match v {
            Val::Scalar(a) => {
                if first_is_null(a) {
                    return Ok(None);
                }
            }
            Val::Array(a) => {
                if let Some(nulls) = a.logical_nulls() {
                    for (o, valid) in open.iter_mut().zip(nulls.iter()) {
                        *o &= valid;
                    }
                }
            }
        }
    }
    let mask = BooleanArray::from(open);
    let n = mask.true_count();
    if n == rows {
        return Err(failure);
    }
    if n == 0 {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(vals.len());
    for (c, v) in children.iter().zip(vals) {
        out.push(match v {
            Some(v) => v,
            None => Val::Array(eval_subset(c, batch, &mask)?),
        });
    }
    Ok(Some(out))
}

/// `node` evaluated on the rows of `mask` alone, scattered back: the other rows are null.
fn eval_subset(
    node: &Node,
    batch: &RecordBatch,
    mask: &BooleanArray,
) -> Result<ArrayRef, ArrowError> {
    let n = mask.true_count();
    let sub = arrow_select::filter::filter_record_batch(batch, mask)?;
    let vals = node.eval(&sub)?.into_array(n)?;
    let mut k = 0u32;
    let idx: UInt32Array = mask
        .iter()
        .map(|m| {
            (m == Some(true)).then(|| {
                k += 1;
                k - 1
            })
        })
        .collect();
    arrow_select::take::take(vals.as_ref(), &idx, None)
}

impl Node {
    pub(crate) fn eval(&self, batch: &RecordBatch) -> Result<Val, ArrowError> {
        match self {
            Node::Column(path) => {
                let mut arr = batch.column(path[0]).clone();
                for &i in &path[1..] {
                    let s = arr.as_struct();
                    let child = s.column(i).clone();
                    // A null struct makes its fields null, whatever the child array holds.
                    let nulls = NullBuffer::union(s.nulls(), child.nulls());
                    arr = make_array(child.into_data().into_builder().nulls(nulls).build()?);
                }
                Ok(Val::Array(arr))
            }
            Node::Literal(a) => Ok(Val::Scalar(a.clone())),
            Node::Cast(n, dt) => n.eval(batch)?.map(|a| super::cast::cast(a, dt)),
            Node::Cmp(op, l, r) => {
                let Some([l, r]) = strict_pair(l, r, batch)? else {
                    return Ok(null_of(&DataType::Boolean));
                };
                let (l, r) = (canonical_floats(l)?, canonical_floats(r)?);
                binary(&l, &r, |a, b| {
                    let out = match op {
                        BinOp::Eq => cmp::eq(a, b),
                        BinOp::NotEq => cmp::neq(a, b),
                        BinOp::Lt => cmp::lt(a, b),
                        BinOp::LtEq => cmp::lt_eq(a, b),
                        BinOp::Gt => cmp::gt(a, b),
                        _ => cmp::gt_eq(a, b),
                    }?;
                    Ok(Arc::new(out) as ArrayRef)
                })
            }
            Node::Arith(op, l, r, dt) => {
                let Some([l, r]) = strict_pair(l, r, batch)? else {
                    return Ok(null_of(dt));
                };
                binary(&l, &r, |a, b| match op {
                    BinOp::Add => numeric::add(a, b),
                    BinOp::Sub => numeric::sub(a, b),
                    BinOp::Mul => numeric::mul(a, b),
                    BinOp::Div => numeric::div(a, b),
                    _ => numeric::rem(a, b),
                })
            }
            Node::And(l, r) | Node::Or(l, r) => {
                let l = l.eval(batch)?;
                // The right side counts only for the rows the left does not decide (false for
                // AND, true for OR): an error there, on a decided row, is not an error.
                let r = match r.eval(batch) {
                    Ok(r) => r,
                    Err(_) => {
                        let left = l.clone().into_array(batch.num_rows())?;
                        let decided = matches!(self, Node::Or(..));
                        let open: BooleanArray = bool_val(&Val::Array(left))?
                            .iter()
                            .map(|v| Some(v != Some(decided)))
                            .collect();
                        Val::Array(eval_masked(r, batch, &open, &DataType::Boolean)?)
                    }
                };
                let (a, b, scalar) = align(&l, &r)?;
                let (a, b) = (
                    bool_val(&Val::Array(a))?.clone(),
                    bool_val(&Val::Array(b))?.clone(),
                );
                let out: ArrayRef = Arc::new(if matches!(self, Node::And(..)) {
                    and_kleene(&a, &b)?
                } else {
                    or_kleene(&a, &b)?
                });
                Ok(if scalar {
                    Val::Scalar(out)
                } else {
                    Val::Array(out)
                })
            }
            Node::Not(n) => {
                let v = n.eval(batch)?;
                v.map(|a| Ok(Arc::new(not(bool_val(&Val::Array(a.clone()))?)?) as ArrayRef))
            }
            Node::Neg(n) => n.eval(batch)?.map(|a| numeric::neg(a)),
            Node::IsNull(n, negated) => {
                let v = n.eval(batch)?;
                v.map(|a| {
                    Ok(Arc::new(if *negated {
                        is_not_null(a.as_ref())?
                    } else {
                        is_null(a.as_ref())?
                    }) as ArrayRef)
                })
            }
            Node::Like {
                expr,
                pattern,
                negated,
                ci,
            } => {
                let Some([s, p]) = strict_pair(expr, pattern, batch)? else {
                    return Ok(null_of(&DataType::Boolean));
                };
                binary(&s, &p, |a, b| {
                    use arrow_string::like;
                    let out = match (negated, ci) {
                        (false, false) => like::like(a, b),
                        (false, true) => like::ilike(a, b),
                        (true, false) => like::nlike(a, b),
                        (true, true) => like::nilike(a, b),
                    }?;
                    Ok(Arc::new(out) as ArrayRef)
                })
            }
            Node::Case {
                branches,
                otherwise,
                data_type,
            } => {
                // Each branch is evaluated for the rows that take it, and only those: an error
                // in a branch no row takes is not an error.
                let rows = batch.num_rows();
                let mut open = BooleanArray::from(vec![true; rows]);
                let mut parts: Vec<(BooleanArray, ArrayRef)> = Vec::new();
                for (c, v) in branches {
                    if open.true_count() == 0 {
                        break;
                    }
                    let c = eval_masked(c, batch, &open, &DataType::Boolean)?;
                    let c = c.as_boolean();
                    let takes: BooleanArray = open
                        .iter()
                        .zip(c.iter())
                        .map(|(o, c)| Some(o == Some(true) && c == Some(true)))
                        .collect();
                    if takes.true_count() == 0 {
                        continue;
                    }
                    open = open
                        .iter()
                        .zip(takes.iter())
                        .map(|(o, t)| Some(o == Some(true) && t != Some(true)))
                        .collect();
                    let vals = eval_masked(v, batch, &takes, data_type)?;
                    parts.push((takes, vals));
                }
                if let Some(o) = otherwise
                    && open.true_count() > 0
                {
                    let vals = eval_masked(o, batch, &open, data_type)?;
                    parts.push((open, vals));
                }
                let mut result = new_null_array(data_type, rows);
                for (mask, vals) in parts {
                    result = arrow_select::zip::zip(&mask, &vals, &result)?;
                }
                Ok(Val::Array(result))
            }
            Node::Concat(l, r) => {
                let Some([l, r]) = strict_pair(l, r, batch)? else {
                    return Ok(null_of(&DataType::Utf8));
                };
                let (a, b, scalar) = align(&l, &r)?;
                let (a, b) = (a.as_string_opt::<i32>(), b.as_string_opt::<i32>());
                let (Some(a), Some(b)) = (a, b) else {
                    return Err(ArrowError::InvalidArgumentError("|| needs strings".into()));
                };
                let out: ArrayRef =
                    Arc::new(arrow_string::concat_elements::concat_elements_utf8(a, b)?);
                Ok(if scalar {
                    Val::Scalar(out)
                } else {
                    Val::Array(out)
                })
            }
            Node::Coalesce(args, dt) => {
                // Each argument only for the rows every earlier one left null.
                let rows = batch.num_rows();
                let mut acc = args[0].eval(batch)?.into_array(rows)?;
                for a in &args[1..] {
                    let open = is_null(acc.as_ref())?;
                    if open.true_count() == 0 {
                        break;
                    }
                    let v = eval_masked(a, batch, &open, dt)?;
                    acc = arrow_select::zip::zip(&open, &v, &acc)?;
                }
                Ok(Val::Array(acc))
            }
            Node::NullIfZero(n) => n.eval(batch)?.map(|a| {
                let zero = arrow_cast::cast(&Int64Array::from(vec![0]), a.data_type())?;
                let is_zero = cmp::eq(a, &Scalar::new(zero))?;
                arrow_select::nullif::nullif(a.as_ref(), &is_zero)
            }),
            Node::Func(f, args, dt) => {
                let args: Vec<&Node> = args.iter().collect();
                let Some(vals) = strict_operands(&args, batch)? else {
                    return Ok(null_of(dt));
                };
                f.eval(&vals)
            }
        }
    }
}
