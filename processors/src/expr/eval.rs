//! Type checking (expression → [`Node`] plan) and columnar evaluation with Arrow kernels.

use std::sync::Arc;

use arrow_arith::boolean::{and_kleene, is_not_null, is_null, not, or_kleene};
use arrow_arith::numeric;
use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Datum, Float64Array, Int64Array, NullArray, Scalar, StringArray,
    TimestampMicrosecondArray, UInt32Array, make_array, new_null_array,
};
use arrow_buffer::NullBuffer;
use arrow_ord::cmp;
use arrow_schema::{ArrowError, DataType, Schema};

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
                if a.is_null(0) {
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
    Func(Func, Vec<Node>),
    Concat(Box<Node>, Box<Node>),
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
                if !is_numeric(&dt) {
                    return Err(self.err(
                        inner.offset,
                        format!("cannot negate a {} value", type_name(&dt)),
                    ));
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
                let mut acc: Option<Node> = None;
                for item in list {
                    let (eq, _) = self.binary(BinOp::Eq, expr, item, item.offset)?;
                    acc = Some(match acc {
                        None => eq,
                        Some(prev) => Node::Or(Box::new(prev), Box::new(eq)),
                    });
                }
                let n = acc.ok_or_else(|| self.err(e.offset, "IN needs at least one value"))?;
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
                                "`{}` is a {}, not a struct with fields",
                                path[..=depth].join("."),
                                type_name(other)
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
                        return Err(self.err(
                            e.offset,
                            format!("cannot concatenate a {} value", type_name(t)),
                        ));
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
                Ok((Node::Arith(op, Box::new(ln), Box::new(rn), ct.clone()), ct))
            }
        }
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

impl Node {
    pub(crate) fn eval(&self, batch: &arrow_array::RecordBatch) -> Result<Val, ArrowError> {
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
            Node::Cast(n, dt) => n.eval(batch)?.map(|a| arrow_cast::cast(a, dt)),
            Node::Cmp(op, l, r) => {
                let (l, r) = (l.eval(batch)?, r.eval(batch)?);
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
                let (l, mut r) = (l.eval(batch)?, r.eval(batch)?);
                let integer = dt.is_integer();
                if integer && matches!(op, BinOp::Div | BinOp::Rem) {
                    // Integer division by zero is null, not an error for the whole batch.
                    let zero = Val::Scalar(arrow_cast::cast(&Int64Array::from(vec![0]), dt)?);
                    let is_zero =
                        binary(&r, &zero, |a, b| Ok(Arc::new(cmp::eq(a, b)?) as ArrayRef))?;
                    r = match (&r, &is_zero) {
                        (Val::Scalar(a), Val::Scalar(z)) | (Val::Array(a), Val::Array(z)) => {
                            let v = arrow_select::nullif::nullif(a.as_ref(), z.as_boolean())?;
                            if matches!(r, Val::Scalar(_)) {
                                Val::Scalar(v)
                            } else {
                                Val::Array(v)
                            }
                        }
                        _ => r,
                    };
                }
                binary(&l, &r, |a, b| match op {
                    BinOp::Add => numeric::add(a, b),
                    BinOp::Sub => numeric::sub(a, b),
                    BinOp::Mul => numeric::mul(a, b),
                    BinOp::Div => numeric::div(a, b),
                    _ => numeric::rem(a, b),
                })
            }
            Node::And(l, r) | Node::Or(l, r) => {
                let (l, r) = (l.eval(batch)?, r.eval(batch)?);
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
                let (s, p) = (expr.eval(batch)?, pattern.eval(batch)?);
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
                let rows = batch.num_rows();
                let mut result = match otherwise {
                    Some(o) => o.eval(batch)?.into_array(rows)?,
                    None => new_null_array(data_type, rows),
                };
                for (c, v) in branches.iter().rev() {
                    let c = c.eval(batch)?.into_array(rows)?;
                    let c = c.as_boolean();
                    let mask: BooleanArray = c.iter().map(|x| Some(x == Some(true))).collect();
                    let v = v.eval(batch)?.into_array(rows)?;
                    result = arrow_select::zip::zip(&mask, &v, &result)?;
                }
                Ok(Val::Array(result))
            }
            Node::Concat(l, r) => {
                let (l, r) = (l.eval(batch)?, r.eval(batch)?);
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
            Node::Func(f, args) => {
                let vals = args
                    .iter()
                    .map(|a| a.eval(batch))
                    .collect::<Result<Vec<_>, _>>()?;
                f.eval(&vals, batch.num_rows())
            }
        }
    }
}
