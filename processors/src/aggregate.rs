//! The `aggregate` stage: streaming group-by with optional tumbling windows.
//!
//! Rows are pushed batch by batch; each batch's group keys (the window start first, then the
//! `group_by` columns) are encoded with `arrow-row` into order-preserving bytes, looked up in a hash
//! table of groups, and every measure updates typed per-group state in one pass over its evaluated
//! argument column. Only group state is held; `finish` emits the groups sorted by window then keys
//! (nulls first), so the same input gives the same output bytes.
//!
//! Measures: `count(*)`, `count(x)`, `sum`, `min`, `max`, `avg`, `count_distinct` (exact),
//! `approx_count_distinct` (HyperLogLog, 2^12 registers per group: standard error 1.04/√4096 ≈ 1.6%,
//! 4 KiB per group), `first` and `last` (the first and last non-null value in input order). Each
//! measure's argument is any expression (`sum(bytes * 8)`, `sum(CASE WHEN status >= 500 THEN 1 ELSE 0
//! END)`). Integer sums that overflow are an error, never a wrapped number. Rows whose window column
//! is null are rejects. More groups than `max_groups` is an error naming the setting.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use hashbrown::HashTable;

use crate::expr::{Compiled, ExprKind, parse, timestamp_type, type_name};
use crate::{Error, Reject, Stage, StageFactory};

/// Groups held at most, unless configured otherwise.
pub const DEFAULT_MAX_GROUPS: usize = 1_000_000;

/// HyperLogLog precision: 2^12 registers.
const HLL_P: u32 = 12;
const HLL_M: usize = 1 << HLL_P;

/// A tumbling window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The timestamp column.
    pub column: String,
    /// Window length in microseconds.
    pub every_micros: i64,
}

/// Parse a window length: `500ms`, `30s`, `1m`, `5m`, `1h`, `1d`.
pub fn parse_every(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 30s, 1m, 5m, 1h or 1d"))?;
    let unit_micros = match unit {
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" | "min" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => {
            return Err(format!(
                "`{s}` has unknown unit `{unit}`; use ms, s, m, h or d"
            ));
        }
    };
    if n <= 0 {
        return Err(format!("`{s}` must be longer than zero"));
    }
    n.checked_mul(unit_micros)
        .ok_or_else(|| format!("`{s}` is too long"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agg {
    CountStar,
    Count,
    Sum,
    Min,
    Max,
    Avg,
    CountDistinct,
    ApproxCountDistinct,
    First,
    Last,
}

/// How a measure's values are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Int,
    Float,
    Str,
    Bool,
}

enum State {
    Count(Vec<i64>),
    SumInt(Vec<i64>, Vec<bool>),
    SumFloat(Vec<f64>, Vec<bool>),
    Avg(Vec<f64>, Vec<i64>),
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Str(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
    /// Distinct (group, value) pairs, per-group counts, the value encoder, and the one hasher the
    /// table was built with (a fresh random hasher per batch would miss earlier entries).
    Distinct(
        Box<DistinctSet>,
        Vec<i64>,
        RowConverter,
        hashbrown::DefaultHashBuilder,
    ),
    Hll(Vec<u8>, RowConverter),
}

/// Most distinct (group, value) pairs one `count_distinct` keeps, unless configured otherwise.
/// 6 million short values took 230 MiB; a million is about 40 MB (measured before each table
/// entry kept its hash: 4 MB more now, 16 bytes an entry instead of 12).
pub const DEFAULT_MAX_DISTINCT_VALUES: usize = 1_000_000;

/// (group, value bytes) pairs, the bytes kept in one arena so an insert allocates nothing per value.
struct DistinctSet {
    /// (group, start, end) into `arena`, and the pair's hash (its low 32 bits, made 64 again by
    /// [`spread`]): the table grows without reading the arena again — a rehash that hashed each
    /// pair's bytes anew was a cache miss per pair, 4% of the reference rollup — and a probe
    /// compares bytes only when the hashes agree.
    table: HashTable<(u32, u32, u32, u32)>,
    arena: Vec<u8>,
    /// Most pairs kept.
    max: usize,
}

/// A 32-bit hash as the table's 64-bit one: the low bits (the bucket) stay those of `h`, and
/// the top 7 (hashbrown's tag) depend on all of it.
fn spread(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Default for DistinctSet {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            arena: Vec::new(),
            max: DEFAULT_MAX_DISTINCT_VALUES,
        }
    }
}

impl DistinctSet {
    /// Room for `n` more pairs, so a batch's inserts never rehash the table part way (a batch
    /// adds at most its row count; the table holds at most one batch's worth of spare room).
    fn reserve(&mut self, n: usize) {
        self.table.reserve(n, |&(.., h)| spread(h));
    }

    /// Insert; true when the pair is new.
    fn insert(
        &mut self,
        hasher: &hashbrown::DefaultHashBuilder,
        g: u32,
        bytes: &[u8],
    ) -> Result<bool, Error> {
        let h32 = std::hash::BuildHasher::hash_one(hasher, (g, bytes)) as u32;
        let h = spread(h32);
        let arena = &self.arena;
        if self
            .table
            .find(h, |&(gg, s, e, hh)| {
                hh == h32 && gg == g && &arena[s as usize..e as usize] == bytes
            })
            .is_some()
        {
            return Ok(false);
        }
        if self.table.len() >= self.max {
            return Err(Error::Compute(format!(
                "count_distinct keeps more than {} distinct values (over all its groups), the limit \
                 set by `max_distinct_values`: use approx_count_distinct (HyperLogLog: within about \
                 1.6%, 4 KiB per group), or raise the limit if the memory is there",
                self.max
            )));
        }
        let too_big = || {
            Error::Compute(
                "count_distinct holds more than 4 GiB of distinct values; use approx_count_distinct"
                    .into(),
            )
        };
        let start = u32::try_from(self.arena.len()).map_err(|_| too_big())?;
        self.arena.extend_from_slice(bytes);
        let end = u32::try_from(self.arena.len()).map_err(|_| too_big())?;
        self.table
            .insert_unique(h, (g, start, end, h32), |&(.., hh)| spread(hh));
        Ok(true)
    }
}

struct Measure {
    name: String,
    text: String,
    agg: Agg,
    arg: Option<Compiled>,
    /// The type values are held in and the type emitted.
    family: Family,
    out_type: DataType,
    state: State,
}

/// The groups' indexes in the order of their encoded keys (window first, then the keys).
/// Each key's first 16 bytes, zero-padded, are compared as one integer and the whole keys only
/// when those are equal: padded prefixes that differ order two keys as their bytes do (where one
/// key ends, its zero is at most the other's byte there), and most pairs differ in them.
fn sorted_groups(rows: &Rows) -> Vec<u32> {
    let mut keyed: Vec<(u128, u32)> = (0..rows.num_rows())
        .map(|i| {
            let data = rows.row(i).data();
            let mut head = [0u8; 16];
            let n = data.len().min(16);
            head[..n].copy_from_slice(&data[..n]);
            (u128::from_be_bytes(head), i as u32)
        })
        .collect();
    keyed.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| rows.row(a.1 as usize).cmp(&rows.row(b.1 as usize)))
    });
    keyed.into_iter().map(|(_, i)| i).collect()
}

impl Aggregate {
    /// Keep at most `n` distinct values in each `count_distinct` (default
    /// [`DEFAULT_MAX_DISTINCT_VALUES`]); more is an error that names `approx_count_distinct`.
    pub fn with_max_distinct_values(mut self, n: usize) -> Self {
        for m in &mut self.measures {
            if let State::Distinct(set, ..) = &mut m.state {
                set.max = n.max(1);
            }
        }
        self
    }
}

/// A compiled aggregate.
pub struct Aggregate {
    schema: SchemaRef,
    window: Option<(Compiled, i64)>,
    keys: Vec<Compiled>,
    converter: RowConverter,
    rows: Rows,
    /// (hash, group index) of every group's encoded key in `rows`.
    table: HashTable<(u64, u32)>,
    hasher: hashbrown::DefaultHashBuilder,
    measures: Vec<Measure>,
    max_groups: usize,
    batch_rows: usize,
    rows_seen: u64,
    rejects: Vec<Reject>,
    /// Identifies the config (and Sluice version) a saved state belongs to.
    fingerprint: u64,
}

impl std::fmt::Debug for Aggregate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregate")
            .field("groups", &self.rows.num_rows())
            .finish()
    }
}

fn expr_err(text: &str, message: String) -> Error {
    Error::Expr {
        expr: text.to_string(),
        offset: 0,
        message,
    }
}

fn family_of(dt: &DataType) -> Option<Family> {
    Some(match dt {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Timestamp(..)
        | DataType::Date32 => Family::Int,
        DataType::Float16 | DataType::Float32 | DataType::Float64 => Family::Float,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Family::Str,
        DataType::Boolean => Family::Bool,
        _ => return None,
    })
}

/// Values of an evaluated argument in their family's canonical array type.
fn canonical(a: &ArrayRef, family: Family) -> Result<ArrayRef, arrow_schema::ArrowError> {
    let target = match family {
        Family::Int => match a.data_type() {
            DataType::Timestamp(..) => {
                let us = arrow_cast::cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
                return arrow_cast::cast(&us, &DataType::Int64);
            }
            DataType::Date32 => {
                let d = arrow_cast::cast(a, &DataType::Int32)?;
                return arrow_cast::cast(&d, &DataType::Int64);
            }
            _ => DataType::Int64,
        },
        Family::Float => DataType::Float64,
        Family::Str => DataType::Utf8,
        Family::Bool => DataType::Boolean,
    };
    arrow_cast::cast(a, &target)
}

impl Measure {
    fn new(name: &str, text: &str, input: &Schema) -> Result<Self, Error> {
        let expr = parse(text)?;
        let ExprKind::Call {
            name: func,
            args,
            star,
        } = &expr.kind
        else {
            return Err(expr_err(
                text,
                "a measure is an aggregate call: count(*), count(x), sum, min, max, avg, count_distinct, \
                 approx_count_distinct, first or last"
                    .into(),
            ));
        };
        let agg = match func.as_str() {
            "count" if *star => Agg::CountStar,
            "count" => Agg::Count,
            "sum" => Agg::Sum,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "avg" | "mean" => Agg::Avg,
            "count_distinct" => Agg::CountDistinct,
            "approx_count_distinct" => Agg::ApproxCountDistinct,
            "first" => Agg::First,
            "last" => Agg::Last,
            other => {
                return Err(expr_err(
                    text,
                    format!(
                        "`{other}` is not an aggregate; use count(*), count(x), sum, min, max, avg, count_distinct, \
                         approx_count_distinct, first or last"
                    ),
                ));
            }
        };
        if agg == Agg::CountStar {
            return Ok(Self {
                name: name.into(),
                text: text.into(),
                agg,
                arg: None,
                family: Family::Int,
                out_type: DataType::Int64,
                state: State::Count(Vec::new()),
            });
        }
        if *star || args.len() != 1 {
            return Err(expr_err(text, format!("{func}() takes one argument")));
        }
        let mut arg = Compiled::from_expr(&args[0], text, input)?;
        if arg.data_type() == &DataType::Null {
            // Every branch of it is null (`CASE WHEN b THEN null END`): it takes the type its
            // context needs, and a measure needs one; int64, as DuckDB types a bare NULL as an
            // integer. Every value is null, so min, max, first and last are null, counts 0.
            let typed = crate::expr::Expr {
                offset: args[0].offset,
                kind: crate::expr::ExprKind::Cast {
                    expr: Box::new(args[0].clone()),
                    to: "int64".into(),
                },
            };
            arg = Compiled::from_expr(&typed, text, input)?;
        }
        let dt = arg.data_type().clone();
        let family = family_of(&dt).ok_or_else(|| {
            expr_err(
                text,
                format!("{func}() cannot aggregate {} values", type_name(&dt)),
            )
        })?;
        let numeric = dt.is_numeric();
        let (out_type, state) = match agg {
            Agg::Count => (DataType::Int64, State::Count(Vec::new())),
            Agg::Sum if !numeric => {
                return Err(expr_err(
                    text,
                    format!("sum() needs numbers, found {}", type_name(&dt)),
                ));
            }
            Agg::Avg if !numeric => {
                return Err(expr_err(
                    text,
                    format!("avg() needs numbers, found {}", type_name(&dt)),
                ));
            }
            Agg::Sum if family == Family::Int => {
                (DataType::Int64, State::SumInt(Vec::new(), Vec::new()))
            }
            Agg::Sum => (DataType::Float64, State::SumFloat(Vec::new(), Vec::new())),
            Agg::Avg => (DataType::Float64, State::Avg(Vec::new(), Vec::new())),
            Agg::CountDistinct => (
                DataType::Int64,
                State::Distinct(
                    Box::default(),
                    Vec::new(),
                    RowConverter::new(vec![SortField::new(dt.clone())])
                        .map_err(|e| Error::arrow("measure", e))?,
                    Default::default(),
                ),
            ),
            Agg::ApproxCountDistinct => (
                DataType::Int64,
                State::Hll(
                    Vec::new(),
                    RowConverter::new(vec![SortField::new(dt.clone())])
                        .map_err(|e| Error::arrow("measure", e))?,
                ),
            ),
            Agg::Min | Agg::Max | Agg::First | Agg::Last => {
                let out = match &dt {
                    DataType::Timestamp(_, tz) => {
                        DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
                    }
                    DataType::Date32 => DataType::Date32,
                    d if family == Family::Int => {
                        if d.is_signed_integer() || d.is_unsigned_integer() {
                            DataType::Int64
                        } else {
                            d.clone()
                        }
                    }
                    _ if family == Family::Float => DataType::Float64,
                    _ if family == Family::Str => DataType::Utf8,
                    _ => DataType::Boolean,
                };
                let state = match family {
                    Family::Int => State::Int(Vec::new()),
                    Family::Float => State::Float(Vec::new()),
                    Family::Str => State::Str(Vec::new()),
                    Family::Bool => State::Bool(Vec::new()),
                };
                (out, state)
            }
            Agg::CountStar => unreachable!("handled above"),
        };
        Ok(Self {
            name: name.into(),
            text: text.into(),
            agg,
            arg: Some(arg),
            family,
            out_type,
            state,
        })
    }

    fn grow(&mut self, n: usize) {
        match &mut self.state {
            State::Count(v) => v.resize(n, 0),
            State::SumInt(v, s) => {
                v.resize(n, 0);
                s.resize(n, false)
            }
            State::SumFloat(v, s) => {
                v.resize(n, 0.0);
                s.resize(n, false)
            }
            State::Avg(v, c) => {
                v.resize(n, 0.0);
                c.resize(n, 0)
            }
            State::Int(v) => v.resize(n, None),
            State::Float(v) => v.resize(n, None),
            State::Str(v) => v.resize(n, None),
            State::Bool(v) => v.resize(n, None),
            State::Distinct(_, c, _, _) => c.resize(n, 0),
            State::Hll(r, _) => r.resize(n * HLL_M, 0),
        }
    }

    /// Fold a batch's rows into their groups: `values` is the argument evaluated on the batch
    /// (None for `count(*)`); rows whose group is `SKIP` are left out.
    fn update(&mut self, values: Option<&ArrayRef>, groups: &[u32]) -> Result<(), Error> {
        let ctx = |e| Error::arrow(format!("measure `{}`", self.text), e);
        let Some(values) = values else {
            if let State::Count(c) = &mut self.state {
                for (_, g) in live(groups, |_| true) {
                    c[g] += 1;
                }
            }
            return Ok(());
        };
        // min, max and the distinct counts see -0.0 as 0.0 and every NaN as one NaN (above
        // every number), as SQL engines order and group them.
        let canonical_values;
        let values = if matches!(
            self.agg,
            Agg::Min | Agg::Max | Agg::CountDistinct | Agg::ApproxCountDistinct
        ) {
            canonical_values = crate::expr::canonical_float_array(values);
            &canonical_values
        } else {
            values
        };
        let agg = self.agg;
        let family = self.family;
        match &mut self.state {
            State::Count(c) => {
                for (_, g) in live(groups, |i| values.is_valid(i)) {
                    c[g] += 1;
                }
            }
            State::SumInt(sum, seen) => {
                let v = canonical(values, Family::Int).map_err(ctx)?;
                let v = v.as_primitive::<Int64Type>();
                for (i, g) in live(groups, |i| v.is_valid(i)) {
                    sum[g] = sum[g].checked_add(v.value(i)).ok_or_else(|| Error::Compute(format!(
                        "measure `{}` = {} overflows int64; sum a float instead: sum(cast(x AS float64))",
                        self.name, self.text
                    )))?;
                    seen[g] = true;
                }
            }
            State::SumFloat(sum, seen) => {
                let v = canonical(values, Family::Float).map_err(ctx)?;
                let v = v.as_primitive::<Float64Type>();
                for (i, g) in live(groups, |i| v.is_valid(i)) {
                    sum[g] += v.value(i);
                    seen[g] = true;
                }
            }
            State::Avg(sum, count) => {
                let v = canonical(values, Family::Float).map_err(ctx)?;
                let v = v.as_primitive::<Float64Type>();
                for (i, g) in live(groups, |i| v.is_valid(i)) {
                    sum[g] += v.value(i);
                    count[g] += 1;
                }
            }
            State::Int(acc) => {
                let v = canonical(values, family).map_err(ctx)?;
                let v = v.as_primitive::<Int64Type>();
                for (i, g) in live(groups, |i| v.is_valid(i)) {
                    fold(&mut acc[g], v.value(i), agg, |a, b| a.cmp(b));
                }
            }
            State::Float(acc) => {
                let v = canonical(values, family).map_err(ctx)?;
                let v = v.as_primitive::<Float64Type>();
                for (i, g) in live(groups, |i| v.is_valid(i)) {
                    fold(&mut acc[g], v.value(i), agg, |a, b| a.total_cmp(b));
                }
            }
            State::Bool(acc) => {
                let v = canonical(values, family).map_err(ctx)?;
                let v = v.as_boolean();
                for (i, g) in live(groups, |i| v.is_valid(i)) {
                    fold(&mut acc[g], v.value(i), agg, |a, b| a.cmp(b));
                }
            }
            State::Str(acc) => {
                let v = canonical(values, family).map_err(ctx)?;
                let v = v.as_string::<i32>();
                for (i, g) in live(groups, |i| v.is_valid(i)) {
                    let s = v.value(i);
                    let slot = &mut acc[g];
                    let replace = match (slot.as_deref(), agg) {
                        (None, _) => true,
                        (Some(cur), Agg::Min) => s < cur,
                        (Some(cur), Agg::Max) => s > cur,
                        (Some(_), Agg::Last) => true,
                        _ => false,
                    };
                    if replace {
                        *slot = Some(s.to_string());
                    }
                }
            }
            State::Distinct(set, counts, conv, hasher) => {
                // Strings are their own bytes; other types are row-encoded to tell values apart.
                let strings = values.as_string_opt::<i32>();
                let rows = match strings {
                    Some(_) => None,
                    None => Some(
                        conv.convert_columns(std::slice::from_ref(values))
                            .map_err(ctx)?,
                    ),
                };
                set.reserve(groups.len());
                for (i, g) in live(groups, |i| values.is_valid(i)) {
                    let bytes = match (strings, &rows) {
                        (Some(s), _) => s.value(i).as_bytes(),
                        (None, Some(r)) => r.row(i).data(),
                        (None, None) => continue,
                    };
                    if set.insert(hasher, g as u32, bytes)? {
                        counts[g] += 1;
                    }
                }
            }
            State::Hll(regs, conv) => {
                let rows = conv
                    .convert_columns(std::slice::from_ref(values))
                    .map_err(ctx)?;
                for (i, g) in live(groups, |i| values.is_valid(i)) {
                    let h = stable_hash(rows.row(i).data());
                    let idx = (h >> (64 - HLL_P)) as usize;
                    let rank = ((h << HLL_P) | (1 << (HLL_P - 1))).leading_zeros() as u8 + 1;
                    let r = &mut regs[g * HLL_M + idx];
                    if rank > *r {
                        *r = rank;
                    }
                }
            }
        }
        Ok(())
    }

    fn emit(&self, order: &[u32]) -> Result<ArrayRef, Error> {
        let pick = |i: &u32| *i as usize;
        let arr: ArrayRef = match &self.state {
            State::Count(c) | State::Distinct(_, c, _, _) => Arc::new(
                Int64Array::from_iter_values(order.iter().map(|i| c[pick(i)])),
            ),
            State::SumInt(v, s) => Arc::new(Int64Array::from_iter(
                order.iter().map(|i| s[pick(i)].then_some(v[pick(i)])),
            )),
            State::SumFloat(v, s) => Arc::new(Float64Array::from_iter(
                order.iter().map(|i| s[pick(i)].then_some(v[pick(i)])),
            )),
            State::Avg(v, c) => {
                Arc::new(Float64Array::from_iter(order.iter().map(|i| {
                    (c[pick(i)] > 0).then(|| v[pick(i)] / c[pick(i)] as f64)
                })))
            }
            State::Int(v) => {
                let a: ArrayRef = Arc::new(Int64Array::from_iter(order.iter().map(|i| v[pick(i)])));
                match &self.out_type {
                    DataType::Date32 => {
                        let d = arrow_cast::cast(&a, &DataType::Int32)
                            .map_err(|e| Error::arrow("emit", e))?;
                        arrow_cast::cast(&d, &DataType::Date32)
                            .map_err(|e| Error::arrow("emit", e))?
                    }
                    DataType::Timestamp(_, tz) => {
                        let t: TimestampMicrosecondArray =
                            a.as_primitive::<Int64Type>().reinterpret_cast();
                        Arc::new(match tz {
                            Some(tz) => t.with_timezone(tz.clone()),
                            None => t,
                        })
                    }
                    _ => a,
                }
            }
            State::Float(v) => Arc::new(Float64Array::from_iter(order.iter().map(|i| v[pick(i)]))),
            State::Str(v) => Arc::new(StringArray::from_iter(
                order.iter().map(|i| v[pick(i)].as_deref()),
            )),
            State::Bool(v) => Arc::new(BooleanArray::from_iter(order.iter().map(|i| v[pick(i)]))),
            State::Hll(regs, _) => {
                Arc::new(Int64Array::from_iter_values(order.iter().map(|i| {
                    hll_estimate(&regs[pick(i) * HLL_M..(pick(i) + 1) * HLL_M])
                })))
            }
        };
        Ok(arr)
    }
}

/// `(row, group)` for every row that belongs to a group and whose value is present.
fn live<'a>(
    groups: &'a [u32],
    present: impl Fn(usize) -> bool + 'a,
) -> impl Iterator<Item = (usize, usize)> + 'a {
    groups
        .iter()
        .enumerate()
        .filter(move |(i, g)| **g != SKIP && present(*i))
        .map(|(i, g)| (i, *g as usize))
}

/// Fold one value into a min/max/first/last slot.
fn fold<T: Copy>(slot: &mut Option<T>, v: T, agg: Agg, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) {
    let replace = match (&*slot, agg) {
        (None, _) => true,
        (Some(cur), Agg::Min) => cmp(&v, cur).is_lt(),
        (Some(cur), Agg::Max) => cmp(&v, cur).is_gt(),
        (Some(_), Agg::Last) => true,
        _ => false,
    };
    if replace {
        *slot = Some(v);
    }
}

/// A fixed 64-bit hash (FNV-1a, then a SplitMix64 finaliser), so estimates are the same every run.
fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// HyperLogLog estimate with the small-range (linear counting) correction.
fn hll_estimate(regs: &[u8]) -> i64 {
    let m = regs.len() as f64;
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let sum: f64 = regs.iter().map(|r| 2f64.powi(-i32::from(*r))).sum();
    let raw = alpha * m * m / sum;
    let zeros = regs.iter().filter(|r| **r == 0).count();
    let est = if raw <= 2.5 * m && zeros > 0 {
        m * (m / zeros as f64).ln()
    } else {
        raw
    };
    est.round() as i64
}

/// Marks a row that belongs to no group (a reject).
const SKIP: u32 = u32::MAX;

impl Aggregate {
    /// Compile against `input`.
    pub fn new(
        group_by: &[String],
        window: Option<&Window>,
        measures: &[(String, String)],
        max_groups: usize,
        input: &SchemaRef,
    ) -> Result<Self, Error> {
        if measures.is_empty() {
            return Err(Error::Schema(
                "an aggregate needs at least one measure, e.g. hits = \"count(*)\"".into(),
            ));
        }
        let mut fields = Vec::new();
        let mut sort_fields = Vec::new();
        let window = match window {
            None => None,
            Some(w) => {
                let c = Compiled::new(&format!("\"{}\"", w.column.replace('"', "\"\"")), input)
                    .map_err(|e| Error::Schema(format!("window column: {e}")))?;
                if !matches!(c.data_type(), DataType::Timestamp(..)) {
                    return Err(Error::Schema(format!(
                        "window column `{}` is {}, not a timestamp; declare it as timestamp in [input] schema",
                        w.column,
                        crate::expr::a_type(c.data_type())
                    )));
                }
                fields.push(Field::new("window_start", timestamp_type(), false));
                fields.push(Field::new("window_end", timestamp_type(), false));
                sort_fields.push(SortField::new(timestamp_type()));
                Some((c, w.every_micros))
            }
        };
        let mut keys = Vec::new();
        for g in group_by {
            let c = Compiled::new(&format!("\"{}\"", g.replace('"', "\"\"")), input)
                .map_err(|e| Error::Schema(format!("group_by: {e}")))?;
            let dt = c.data_type().clone();
            if matches!(dt, DataType::Struct(_) | DataType::List(_)) {
                return Err(Error::Schema(format!(
                    "cannot group by `{g}`, {}",
                    crate::expr::a_type(&dt)
                )));
            }
            if fields.iter().any(|f: &Field| f.name() == g) {
                return Err(Error::Schema(format!("`{g}` appears twice in group_by")));
            }
            fields.push(Field::new(g, dt.clone(), true));
            sort_fields.push(SortField::new(dt));
            keys.push(c);
        }
        let mut ms = Vec::new();
        for (name, text) in measures {
            if fields.iter().any(|f| f.name() == name) {
                return Err(Error::Schema(format!(
                    "measure `{name}` has the name of a group column"
                )));
            }
            let m = Measure::new(name, text, input)?;
            fields.push(Field::new(name, m.out_type.clone(), true));
            ms.push(m);
        }
        if sort_fields.is_empty() {
            // No keys at all: one group. Encode a constant so the machinery stays the same.
            sort_fields.push(SortField::new(DataType::Boolean));
        }
        let converter =
            RowConverter::new(sort_fields).map_err(|e| Error::arrow("aggregate keys", e))?;
        let rows = converter.empty_rows(1024, 16 * 1024);
        let fingerprint = stable_hash(
            format!(
                "sluice {} | {input:?} | {group_by:?} | {:?} | {measures:?}",
                env!("CARGO_PKG_VERSION"),
                window
                    .as_ref()
                    .map(|(c, every)| (c.text().to_string(), *every)),
            )
            .as_bytes(),
        );
        Ok(Self {
            schema: Arc::new(Schema::new(fields)),
            window,
            keys,
            converter,
            rows,
            table: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            measures: ms,
            max_groups: max_groups.max(1),
            batch_rows: crate::DEFAULT_BATCH_ROWS,
            rows_seen: 0,
            rejects: Vec::new(),
            fingerprint,
        })
    }

    /// The batch's encoded-key columns, and which rows have no window (their window column is
    /// null, or so far from 1970 that its window's start is not a timestamp).
    fn key_columns(&mut self, batch: &RecordBatch) -> Result<(Vec<ArrayRef>, Vec<bool>), Error> {
        let n = batch.num_rows();
        let mut cols = Vec::with_capacity(self.keys.len() + 1);
        let mut skip = vec![false; n];
        if let Some((w, every)) = &self.window {
            let ts = w.evaluate(batch)?;
            let ts = arrow_cast::cast(&ts, &DataType::Timestamp(TimeUnit::Microsecond, None))
                .map_err(|e| Error::arrow("window", e))?;
            let ts = ts.as_primitive::<TimestampMicrosecondType>();
            let every = *every;
            let starts: TimestampMicrosecondArray = ts
                .iter()
                .map(|v| {
                    v.and_then(|t| {
                        let start = t.div_euclid(every).checked_mul(every)?;
                        start.checked_add(every).map(|_| start)
                    })
                })
                .collect();
            for (i, s) in skip.iter_mut().enumerate() {
                *s = starts.is_null(i);
            }
            cols.push(Arc::new(starts.with_timezone("UTC")) as ArrayRef);
        }
        for k in &self.keys {
            // -0.0 and 0.0 are one group, and every NaN another.
            cols.push(crate::expr::canonical_float_array(&k.evaluate(batch)?));
        }
        if cols.is_empty() {
            cols.push(Arc::new(BooleanArray::from(vec![true; n])) as ArrayRef);
        }
        Ok((cols, skip))
    }

    fn reject_rows(&mut self, batch: &RecordBatch, skip: &[bool]) {
        let column = self
            .window
            .as_ref()
            .map(|(c, _)| c.text().trim_matches('"').to_string())
            .unwrap_or_default();
        for (i, _) in skip.iter().enumerate().filter(|(_, s)| **s) {
            self.rejects.push(Reject::in_stage(
                "aggregate",
                self.rows_seen + i as u64 + 1,
                format!(
                    "the window column `{column}` is null (or too far from 1970 for a window), so \
                     the record belongs to no window"
                ),
                &crate::row_json(batch, i),
            )
            .pushed_as(i));
        }
    }
}

impl Stage for Aggregate {
    fn name(&self) -> &'static str {
        "aggregate"
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn push(&mut self, batch: RecordBatch, _out: &mut Vec<RecordBatch>) -> Result<(), Error> {
        let n = batch.num_rows();
        let (cols, mut skip) = self.key_columns(&batch)?;
        if skip.iter().any(|s| *s) {
            self.reject_rows(&batch, &skip);
        }
        // Every measure's argument first: a row any of them fails on is a reject and counts in
        // no measure (not in some and not in others).
        let mut errors = Vec::new();
        let values: Vec<Option<ArrayRef>> = self
            .measures
            .iter()
            .map(|m| {
                m.arg.as_ref().map(|a| {
                    let (v, e) = a.evaluate_rows(&batch);
                    errors.extend(e.into_iter().filter(|e| !skip[e.row]));
                    v
                })
            })
            .collect();
        if !errors.is_empty() {
            for e in &errors {
                skip[e.row] = true;
            }
            self.rejects.extend(crate::row_rejects(
                "aggregate",
                &batch,
                self.rows_seen,
                errors,
            ));
        }
        let encoded = self
            .converter
            .convert_columns(&cols)
            .map_err(|e| Error::arrow("aggregate keys", e))?;
        let mut groups = vec![SKIP; n];
        let before = self.rows.num_rows();
        // Room for every row of the batch to be a new group: no rehash part way through it.
        self.table.reserve(n, |&(hh, _)| hh);
        for (i, g) in groups.iter_mut().enumerate() {
            if skip[i] {
                continue;
            }
            let row = encoded.row(i);
            let bytes = row.data();
            let h = std::hash::BuildHasher::hash_one(&self.hasher, bytes);
            let rows = &self.rows;
            let found = self
                .table
                .find(h, |&(hh, idx)| {
                    hh == h && rows.row(idx as usize).data() == bytes
                })
                .map(|&(_, idx)| idx);
            *g = match found {
                Some(idx) => idx,
                None => {
                    let idx = self.rows.num_rows();
                    if idx >= self.max_groups {
                        return Err(Error::Limit {
                            what: format!("the number of groups ({})", idx + 1),
                            limit: self.max_groups as u64,
                            setting: "max_groups",
                        });
                    }
                    self.rows.push(row);
                    self.table.insert_unique(h, (h, idx as u32), |&(hh, _)| hh);
                    idx as u32
                }
            };
        }
        let total = self.rows.num_rows();
        if total != before {
            for m in &mut self.measures {
                m.grow(total);
            }
        }
        for (m, v) in self.measures.iter_mut().zip(&values) {
            m.update(v.as_ref(), &groups)?;
        }
        self.rows_seen += n as u64;
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<RecordBatch>) -> Result<(), Error> {
        let n = self.rows.num_rows();
        if n == 0 {
            if self.window.is_none() && self.keys.is_empty() {
                // A global aggregate over no rows is one row, as in SQL: counts 0, the rest null.
                for m in &mut self.measures {
                    m.grow(1);
                }
                let columns = self
                    .measures
                    .iter()
                    .map(|m| m.emit(&[0]))
                    .collect::<Result<Vec<_>, _>>()?;
                out.push(
                    RecordBatch::try_new(self.schema.clone(), columns)
                        .map_err(|e| Error::arrow("aggregate output", e))?,
                );
            }
            return Ok(());
        }
        let order = sorted_groups(&self.rows);
        for chunk in order.chunks(self.batch_rows.max(1) * 8) {
            let mut keys = self
                .converter
                .convert_rows(chunk.iter().map(|i| self.rows.row(*i as usize)))
                .map_err(|e| Error::arrow("aggregate keys", e))?;
            let mut columns: Vec<ArrayRef> = Vec::new();
            if let Some((_, every)) = &self.window {
                let start = keys.remove(0);
                let every = *every;
                let s = start.as_primitive::<TimestampMicrosecondType>();
                let end: TimestampMicrosecondArray =
                    s.iter().map(|v| v.map(|t| t + every)).collect();
                columns.push(start);
                columns.push(Arc::new(end.with_timezone("UTC")));
            }
            if !self.keys.is_empty() {
                columns.extend(keys);
            }
            for m in &self.measures {
                columns.push(m.emit(chunk)?);
            }
            out.push(
                RecordBatch::try_new(self.schema.clone(), columns)
                    .map_err(|e| Error::arrow("aggregate output", e))?,
            );
        }
        Ok(())
    }

    fn take_rejects(&mut self) -> Vec<Reject> {
        std::mem::take(&mut self.rejects)
    }

    fn save_state(&self) -> Result<Option<Vec<u8>>, Error> {
        let n = self.rows.num_rows();
        let mut w = Vec::new();
        w.extend_from_slice(STATE_MAGIC);
        put_u64(&mut w, self.fingerprint);
        put_u64(&mut w, self.rows_seen);
        put_u32(&mut w, n as u32);
        for i in 0..n {
            put_bytes(&mut w, self.rows.row(i).data());
        }
        for m in &self.measures {
            m.save(&mut w, n);
        }
        Ok(Some(w))
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), Error> {
        let bad = |what: &str| {
            Error::Compute(format!(
                "the aggregate's saved state cannot be read ({what})"
            ))
        };
        if self.rows.num_rows() != 0 || self.rows_seen != 0 {
            return Err(bad("state loads only into a fresh aggregate"));
        }
        let mut r = Reader(state);
        if r.take(STATE_MAGIC.len())? != STATE_MAGIC {
            return Err(bad("not an aggregate state"));
        }
        if r.u64()? != self.fingerprint {
            return Err(Error::Compute(
                "the saved window state was made by a different pipeline config or Sluice version; \
                 finish the window with the config that started it"
                    .into(),
            ));
        }
        self.rows_seen = r.u64()?;
        let n = r.u32()? as usize;
        if n > self.max_groups {
            return Err(Error::Limit {
                what: format!("the number of groups in the saved state ({n})"),
                limit: self.max_groups as u64,
                setting: "max_groups",
            });
        }
        // Rows come back through the converter's parser and are decoded once to check them. The
        // bytes are this stage's own `save_state` output (the pipeline checksums them on their
        // way through Lambda), not arbitrary input.
        let parser = self.converter.parser();
        for idx in 0..n {
            let bytes = r.bytes()?;
            let row = parser.parse(bytes);
            self.converter
                .convert_rows([row])
                .map_err(|e| bad(&format!("group {idx}: {e}")))?;
            let h = std::hash::BuildHasher::hash_one(&self.hasher, bytes);
            self.rows.push(row);
            self.table.insert_unique(h, (h, idx as u32), |&(hh, _)| hh);
        }
        for m in &mut self.measures {
            m.grow(n);
            m.load(&mut r, n)?;
        }
        if !r.0.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(())
    }
}

const STATE_MAGIC: &[u8] = b"SLUICE-AGG-1";

fn put_u32(w: &mut Vec<u8>, v: u32) {
    w.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(w: &mut Vec<u8>, v: u64) {
    w.extend_from_slice(&v.to_le_bytes());
}
fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_u32(w, b.len() as u32);
    w.extend_from_slice(b);
}
fn put_opt(w: &mut Vec<u8>, v: Option<[u8; 8]>) {
    match v {
        Some(b) => {
            w.push(1);
            w.extend_from_slice(&b);
        }
        None => w.push(0),
    }
}

/// Reads a saved state; running out of bytes is an error, never a panic.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Compute(
                "the aggregate's saved state cannot be read (truncated)".into(),
            ));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn arr8(&mut self) -> Result<[u8; 8], Error> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Error> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.arr8()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn opt(&mut self) -> Result<Option<[u8; 8]>, Error> {
        match self.u8()? {
            0 => Ok(None),
            _ => self.arr8().map(Some),
        }
    }
}

impl Measure {
    /// Append this measure's state for `n` groups.
    fn save(&self, w: &mut Vec<u8>, n: usize) {
        match &self.state {
            State::Count(c) => c[..n].iter().for_each(|v| put_u64(w, *v as u64)),
            State::SumInt(v, s) => (0..n).for_each(|i| {
                put_opt(w, s[i].then(|| v[i].to_le_bytes()));
            }),
            State::SumFloat(v, s) => (0..n).for_each(|i| {
                put_opt(w, s[i].then(|| v[i].to_le_bytes()));
            }),
            State::Avg(v, c) => (0..n).for_each(|i| {
                put_u64(w, v[i].to_bits());
                put_u64(w, c[i] as u64);
            }),
            State::Int(v) => v[..n]
                .iter()
                .for_each(|x| put_opt(w, x.map(i64::to_le_bytes))),
            State::Float(v) => v[..n]
                .iter()
                .for_each(|x| put_opt(w, x.map(f64::to_le_bytes))),
            State::Bool(v) => v[..n].iter().for_each(|x| {
                w.push(match x {
                    None => 0,
                    Some(false) => 1,
                    Some(true) => 2,
                })
            }),
            State::Str(v) => v[..n].iter().for_each(|x| match x {
                None => w.push(0),
                Some(s) => {
                    w.push(1);
                    put_bytes(w, s.as_bytes());
                }
            }),
            State::Distinct(set, _, _, _) => {
                put_u64(w, set.table.len() as u64);
                for &(g, s, e, _) in set.table.iter() {
                    put_u32(w, g);
                    put_bytes(w, &set.arena[s as usize..e as usize]);
                }
            }
            State::Hll(regs, _) => w.extend_from_slice(&regs[..n * HLL_M]),
        }
    }

    /// Read this measure's state for `n` groups (already grown to `n`).
    fn load(&mut self, r: &mut Reader<'_>, n: usize) -> Result<(), Error> {
        match &mut self.state {
            State::Count(c) => {
                for v in c.iter_mut().take(n) {
                    *v = r.u64()? as i64;
                }
            }
            State::SumInt(v, s) => {
                for i in 0..n {
                    if let Some(b) = r.opt()? {
                        v[i] = i64::from_le_bytes(b);
                        s[i] = true;
                    }
                }
            }
            State::SumFloat(v, s) => {
                for i in 0..n {
                    if let Some(b) = r.opt()? {
                        v[i] = f64::from_le_bytes(b);
                        s[i] = true;
                    }
                }
            }
            State::Avg(v, c) => {
                for i in 0..n {
                    v[i] = f64::from_bits(r.u64()?);
                    c[i] = r.u64()? as i64;
                }
            }
            State::Int(v) => {
                for x in v.iter_mut().take(n) {
                    *x = r.opt()?.map(i64::from_le_bytes);
                }
            }
            State::Float(v) => {
                for x in v.iter_mut().take(n) {
                    *x = r.opt()?.map(f64::from_le_bytes);
                }
            }
            State::Bool(v) => {
                for x in v.iter_mut().take(n) {
                    *x = match r.u8()? {
                        0 => None,
                        1 => Some(false),
                        _ => Some(true),
                    };
                }
            }
            State::Str(v) => {
                for x in v.iter_mut().take(n) {
                    *x = match r.u8()? {
                        0 => None,
                        _ => Some(
                            std::str::from_utf8(r.bytes()?)
                                .map_err(|_| {
                                    Error::Compute(
                                        "the aggregate's saved state cannot be read (text is not UTF-8)"
                                            .into(),
                                    )
                                })?
                                .to_string(),
                        ),
                    };
                }
            }
            State::Distinct(set, counts, _, hasher) => {
                let entries = r.u64()?;
                for _ in 0..entries {
                    let g = r.u32()?;
                    let bytes = r.bytes()?;
                    if g as usize >= n {
                        return Err(Error::Compute(
                            "the aggregate's saved state cannot be read (a distinct value of no group)"
                                .into(),
                        ));
                    }
                    if set.insert(hasher, g, bytes)? {
                        counts[g as usize] += 1;
                    }
                }
            }
            State::Hll(regs, _) => regs[..n * HLL_M].copy_from_slice(r.take(n * HLL_M)?),
        }
        Ok(())
    }
}

/// Builds [`Aggregate`]s.
#[derive(Debug, Clone)]
pub struct AggregateFactory {
    /// Group columns.
    pub group_by: Vec<String>,
    /// Optional tumbling window.
    pub window: Option<Window>,
    /// `(name, measure expression)` in output order.
    pub measures: Vec<(String, String)>,
    /// Most groups held.
    pub max_groups: usize,
    /// Most distinct values each `count_distinct` keeps.
    pub max_distinct_values: usize,
}

impl StageFactory for AggregateFactory {
    fn name(&self) -> &'static str {
        "aggregate"
    }
    fn build(&self, input: &SchemaRef) -> Result<Box<dyn Stage>, Error> {
        Ok(Box::new(
            Aggregate::new(
                &self.group_by,
                self.window.as_ref(),
                &self.measures,
                self.max_groups,
                input,
            )?
            .with_max_distinct_values(self.max_distinct_values),
        ))
    }
    fn per_invocation(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};

    fn batch() -> RecordBatch {
        let ts = |s: &str| crate::expr::parse_timestamp(s).unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", timestamp_type(), true),
            Field::new("page", DataType::Utf8, true),
            Field::new("user", DataType::Utf8, true),
            Field::new("ms", DataType::Int64, true),
            Field::new("ok", DataType::Boolean, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(
                    TimestampMicrosecondArray::from(vec![
                        Some(ts("2026-11-22T10:00:05Z")),
                        Some(ts("2026-11-22T10:00:50Z")),
                        Some(ts("2026-11-22T10:01:10Z")),
                        Some(ts("2026-11-22T10:00:30Z")),
                        None,
                        Some(ts("2026-11-22T09:59:59Z")),
                    ])
                    .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec![
                    Some("/b"),
                    Some("/a"),
                    Some("/a"),
                    Some("/a"),
                    Some("/a"),
                    None,
                ])),
                Arc::new(StringArray::from(vec![
                    Some("u1"),
                    Some("u1"),
                    Some("u2"),
                    Some("u2"),
                    Some("u3"),
                    Some("u1"),
                ])),
                Arc::new(Int64Array::from(vec![
                    Some(10),
                    Some(20),
                    Some(30),
                    None,
                    Some(50),
                    Some(60),
                ])),
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    Some(true),
                    Some(true),
                    None,
                    Some(false),
                ])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn groups_sort_as_their_whole_keys_do() {
        // Keys that tie in their first 16 encoded bytes, keys that are prefixes of one another,
        // empty, null and zero bytes: the prefix sort must give the order of the whole keys.
        let long = "/products/category/shoes";
        let keys: Vec<Option<String>> = [
            Some(format!("{long}/b")),
            Some(format!("{long}/a")),
            Some(long.to_string()),
            Some("a".to_string()),
            Some("a\0".to_string()),
            Some("a\0\0".to_string()),
            Some("ab".to_string()),
            Some(String::new()),
            None,
            Some(format!("{long}/a\0")),
        ]
        .into_iter()
        .collect();
        let windows = [3i64, -1, 3, 0, 0, 3, 0, i64::MAX, 0, 3];
        let conv = RowConverter::new(vec![
            SortField::new(DataType::Int64),
            SortField::new(DataType::Utf8),
        ])
        .unwrap();
        let rows = conv
            .convert_columns(&[
                Arc::new(Int64Array::from(windows.to_vec())) as ArrayRef,
                Arc::new(StringArray::from(keys.clone())) as ArrayRef,
            ])
            .unwrap();
        let mut want: Vec<u32> = (0..rows.num_rows() as u32).collect();
        want.sort_by(|a, b| rows.row(*a as usize).cmp(&rows.row(*b as usize)));
        assert_eq!(sorted_groups(&rows), want);
        // And that order is (window, key) with nulls first.
        let shown: Vec<(i64, Option<&str>)> = want
            .iter()
            .map(|&i| (windows[i as usize], keys[i as usize].as_deref()))
            .collect();
        let mut by_value: Vec<(i64, Option<&str>)> = windows
            .iter()
            .zip(&keys)
            .map(|(w, k)| (*w, k.as_deref()))
            .collect();
        by_value.sort();
        assert_eq!(shown, by_value);
    }

    fn measures() -> Vec<(String, String)> {
        [
            ("hits", "count(*)"),
            ("with_ms", "count(ms)"),
            ("total", "sum(ms * 2)"),
            ("avg_ms", "avg(ms)"),
            ("max_ms", "max(ms)"),
            ("min_user", "min(user)"),
            ("users", "count_distinct(user)"),
            ("approx_users", "approx_count_distinct(user)"),
            ("first_user", "first(user)"),
            ("last_user", "last(user)"),
            ("oks", "sum(CASE WHEN ok THEN 1 ELSE 0 END)"),
            ("latest", "max(ts)"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
    }

    #[test]
    fn state_saved_mid_stream_and_loaded_gives_the_same_result() {
        let b = batch();
        let mut ms = measures();
        for (n, e) in [
            ("fsum", "sum(ms * 1.5)"),
            ("anyok", "max(ok)"),
            ("dms", "count_distinct(ms)"),
            ("fmin", "min(ms / 3.0)"),
        ] {
            ms.push((n.into(), e.into()));
        }
        let w = Window {
            column: "ts".into(),
            every_micros: 60_000_000,
        };
        let build = |ms: &[(String, String)]| {
            Aggregate::new(&["page".into()], Some(&w), ms, 100, &b.schema()).unwrap()
        };
        let finish = |mut a: Aggregate| {
            let mut out = Vec::new();
            a.finish(&mut out).unwrap();
            out
        };
        let mut whole = build(&ms);
        whole.push(b.clone(), &mut Vec::new()).unwrap();
        let want = finish(whole);

        // Split at every row: state after the first part, loaded into a fresh aggregate, then the rest.
        for at in 0..=b.num_rows() {
            let mut first = build(&ms);
            first.push(b.slice(0, at), &mut Vec::new()).unwrap();
            let state = first.save_state().unwrap().unwrap();
            let mut second = build(&ms);
            second.load_state(&state).unwrap();
            second
                .push(b.slice(at, b.num_rows() - at), &mut Vec::new())
                .unwrap();
            assert_eq!(finish(second), want, "split at {at}");
        }

        // A damaged or foreign state is an error, not a panic or a wrong answer.
        let mut a = build(&ms);
        a.push(b.clone(), &mut Vec::new()).unwrap();
        let state = a.save_state().unwrap().unwrap();
        for cut in [0, 5, 20, state.len() / 2, state.len() - 1] {
            assert!(
                build(&ms).load_state(&state[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let e = build(&ms[..3]).load_state(&state).unwrap_err();
        assert!(e.to_string().contains("different pipeline config"), "{e}");
        let mut used = build(&ms);
        used.push(b.clone(), &mut Vec::new()).unwrap();
        assert!(used.load_state(&state).is_err());
    }

    #[test]
    fn groups_by_window_then_keys_with_every_measure() {
        let b = batch();
        let w = Window {
            column: "ts".into(),
            every_micros: parse_every("1m").unwrap(),
        };
        let mut agg = Aggregate::new(
            &["page".to_string()],
            Some(&w),
            &measures(),
            100,
            &b.schema(),
        )
        .unwrap();
        let mut out = Vec::new();
        // Push in two pieces to exercise state across batches.
        agg.push(b.slice(0, 3), &mut out).unwrap();
        agg.push(b.slice(3, 3), &mut out).unwrap();
        let rejects = agg.take_rejects();
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].position, 5);
        assert!(rejects[0].reason.contains("window column `ts` is null"));
        agg.finish(&mut out).unwrap();
        let r = &out[0];
        assert_eq!(r.num_rows(), 4);
        let schema = r.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(&names[..4], ["window_start", "window_end", "page", "hits"]);
        // Order: 09:59 (null page), 10:00 /a, 10:00 /b, 10:01 /a.
        let page = r.column(2).as_string::<i32>();
        assert_eq!(
            (page.is_null(0), page.value(1), page.value(2), page.value(3)),
            (true, "/a", "/b", "/a")
        );
        let i = |c: usize, row: usize| r.column(c).as_primitive::<Int64Type>().value(row);
        assert_eq!((i(3, 1), i(4, 1), i(5, 1)), (2, 1, 40)); // 10:00 /a: rows 1 and 3 (ms 20, null)
        assert_eq!(r.column(6).as_primitive::<Float64Type>().value(1), 20.0);
        assert_eq!(r.column(8).as_string::<i32>().value(1), "u1");
        assert_eq!((i(9, 1), i(10, 1)), (2, 2));
        assert_eq!(
            (
                r.column(11).as_string::<i32>().value(1),
                r.column(12).as_string::<i32>().value(1)
            ),
            ("u1", "u2")
        );
        assert_eq!(i(13, 1), 1);
        assert_eq!(r.column(14).data_type(), &timestamp_type());
        let start = r
            .column(0)
            .as_primitive::<TimestampMicrosecondType>()
            .value(1);
        assert_eq!(
            start,
            crate::expr::parse_timestamp("2026-11-22T10:00:00Z").unwrap()
        );
        assert_eq!(
            r.column(1)
                .as_primitive::<TimestampMicrosecondType>()
                .value(1)
                - start,
            60_000_000
        );
    }

    #[test]
    fn overflow_limits_and_errors_are_clear() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![i64::MAX, 1]))],
        )
        .unwrap();
        let mut agg =
            Aggregate::new(&[], None, &[("s".into(), "sum(n)".into())], 10, &schema).unwrap();
        let e = agg
            .push(b.clone(), &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("overflows int64"), "{e}");
        let mut agg = Aggregate::new(
            &["n".into()],
            None,
            &[("c".into(), "count(*)".into())],
            1,
            &schema,
        )
        .unwrap();
        let e = agg
            .push(b.clone(), &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("`max_groups`"), "{e}");
        let bad = |m: &str| {
            Aggregate::new(&[], None, &[("x".into(), m.into())], 10, &schema)
                .unwrap_err()
                .to_string()
        };
        assert!(bad("n + 1").contains("aggregate call"));
        assert!(bad("median(n)").contains("not an aggregate"));
        assert!(bad("sum(n > 1)").contains("sum() needs numbers"));
        assert!(bad("count_distinct(nope)").contains("unknown column"));
        let w = Window {
            column: "n".into(),
            every_micros: 1,
        };
        assert!(
            Aggregate::new(
                &[],
                Some(&w),
                &[("c".into(), "count(*)".into())],
                10,
                &schema
            )
            .unwrap_err()
            .to_string()
            .contains("not a timestamp")
        );
        assert_eq!(parse_every("5m"), Ok(300_000_000));
        assert!(parse_every("5 minutes").is_err());
        assert!(parse_every("0s").is_err());
    }

    /// `f`: -0.0, 0.0, NaN (0/0, sign bit set), NaN, 1.5; `i`: 1, 2, 3, MAX, 5.
    fn floats() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("f", DataType::Float64, true),
            Field::new("i", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(vec![
                    -0.0,
                    0.0,
                    f64::from_bits(0xfff8_0000_0000_0000),
                    f64::NAN,
                    1.5,
                ])),
                Arc::new(Int64Array::from(vec![1, 2, 3, i64::MAX, 5])),
            ],
        )
        .unwrap()
    }

    fn run(
        group_by: &[String],
        measures: &[(&str, &str)],
        batches: Vec<RecordBatch>,
    ) -> (Vec<RecordBatch>, Vec<Reject>) {
        let schema = floats().schema();
        let ms: Vec<(String, String)> = measures
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        let mut agg = Aggregate::new(group_by, None, &ms, 100, &schema).unwrap();
        let mut out = Vec::new();
        for b in batches {
            agg.push(b, &mut out).unwrap();
        }
        agg.finish(&mut out).unwrap();
        (out, agg.take_rejects())
    }

    #[test]
    fn minus_zero_and_zero_are_one_group_and_every_nan_another() {
        let (out, _) = run(&["f".into()], &[("n", "count(*)")], vec![floats()]);
        let b = &out[0];
        let keys = b.column(0).as_primitive::<Float64Type>();
        let counts = b.column(1).as_primitive::<Int64Type>();
        let got: Vec<(String, i64)> = (0..b.num_rows())
            .map(|i| (keys.value(i).to_string(), counts.value(i)))
            .collect();
        // Sorted as SQL sorts them: NaN above every number.
        assert_eq!(got, [("0".into(), 2), ("1.5".into(), 1), ("NaN".into(), 2)]);
        let (out, _) = run(
            &[],
            &[
                ("d", "count_distinct(f)"),
                ("lo", "min(f)"),
                ("hi", "max(f)"),
            ],
            vec![floats()],
        );
        assert_eq!(out[0].column(0).as_primitive::<Int64Type>().value(0), 3);
        assert_eq!(out[0].column(1).as_primitive::<Float64Type>().value(0), 0.0);
        assert!(
            out[0]
                .column(2)
                .as_primitive::<Float64Type>()
                .value(0)
                .is_nan()
        );
    }

    #[test]
    fn a_global_aggregate_over_no_rows_is_one_row() {
        let (out, _) = run(
            &[],
            &[
                ("n", "count(*)"),
                ("c", "count(i)"),
                ("s", "sum(i)"),
                ("a", "avg(f)"),
                ("d", "count_distinct(i)"),
                ("m", "max(i)"),
            ],
            vec![],
        );
        assert_eq!(out.len(), 1);
        let b = &out[0];
        assert_eq!(b.num_rows(), 1);
        assert_eq!(b.column(0).as_primitive::<Int64Type>().value(0), 0);
        assert_eq!(b.column(1).as_primitive::<Int64Type>().value(0), 0);
        assert!(b.column(2).is_null(0));
        assert!(b.column(3).is_null(0));
        assert_eq!(b.column(4).as_primitive::<Int64Type>().value(0), 0);
        assert!(b.column(5).is_null(0));
        // Grouped, no rows is no groups.
        let (out, _) = run(&["i".into()], &[("n", "count(*)")], vec![]);
        assert!(out.is_empty());
    }

    #[test]
    fn a_row_a_measure_fails_on_is_a_reject_counted_in_no_measure() {
        let (out, rejects) = run(
            &[],
            &[("n", "count(*)"), ("s", "sum(i + 1)")],
            vec![floats()],
        );
        assert_eq!(out[0].column(0).as_primitive::<Int64Type>().value(0), 4);
        assert_eq!(
            out[0].column(1).as_primitive::<Int64Type>().value(0),
            2 + 3 + 4 + 6
        );
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].position, 4);
        assert!(
            rejects[0].reason.contains("sum(i + 1)")
                && rejects[0].reason.contains("9223372036854775807 + 1"),
            "{}",
            rejects[0].reason
        );
        assert!(String::from_utf8_lossy(&rejects[0].raw).contains("9223372036854775807"));
    }

    /// Issue 38: `first(CASE WHEN b THEN null END)` was refused ("first() cannot aggregate null
    /// values"). A measure over an all-null expression is null (0 for counts), as in SQL.
    #[test]
    fn measures_over_an_all_null_expression_are_null() {
        let schema = Arc::new(Schema::new(vec![Field::new("b", DataType::Boolean, true)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
            ]))],
        )
        .unwrap();
        let e = "CASE WHEN b THEN null END";
        let measures: Vec<(String, String)> = [
            "first",
            "last",
            "min",
            "max",
            "count",
            "count_distinct",
            "sum",
        ]
        .iter()
        .map(|f| (f.to_string(), format!("{f}({e})")))
        .collect();
        let mut agg = Aggregate::new(&[], None, &measures, 10, &schema).unwrap();
        let mut out = Vec::new();
        agg.push(batch, &mut out).unwrap();
        agg.finish(&mut out).unwrap();
        let row = &out[0];
        for (i, (name, _)) in measures.iter().enumerate() {
            let c = row.column(i);
            if name.starts_with("count") {
                assert_eq!(c.as_primitive::<Int64Type>().value(0), 0, "{name}");
            } else {
                assert!(c.is_null(0), "{name}");
            }
        }
    }

    /// Issue 27: an exact count_distinct over 6 million values took 230 MiB and nothing bounded
    /// it. Past `max_distinct_values` (over all groups) it is an error that names the way out;
    /// repeated values do not count, and approx_count_distinct has no such limit.
    #[test]
    fn count_distinct_keeps_at_most_its_limit_of_values() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("u", DataType::Int64, false),
        ]));
        let batch = |from: i64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(
                        (from..from + 500).map(|v| v % 2),
                    )),
                    Arc::new(Int64Array::from_iter_values(from..from + 500)),
                ],
            )
            .unwrap()
        };
        let make = |m: &str| {
            Aggregate::new(&["g".into()], None, &[("d".into(), m.into())], 10, &schema)
                .unwrap()
                .with_max_distinct_values(1000)
        };
        let mut agg = make("count_distinct(u)");
        let mut out = Vec::new();
        agg.push(batch(0), &mut out).unwrap();
        agg.push(batch(500), &mut out).unwrap();
        // The same values again: nothing new to keep.
        agg.push(batch(0), &mut out).unwrap();
        let e = agg.push(batch(1000), &mut out).unwrap_err().to_string();
        assert!(
            e.starts_with("count_distinct keeps more than 1000 distinct values (over all its groups), the limit set by `max_distinct_values`: use approx_count_distinct"),
            "{e}"
        );
        let mut approx = make("approx_count_distinct(u)");
        for from in (0..5000).step_by(500) {
            approx.push(batch(from), &mut out).unwrap();
        }
    }

    #[test]
    fn count_distinct_remembers_values_across_batches() {
        // Regression: a hasher made per batch missed values seen in earlier batches.
        let schema = Arc::new(Schema::new(vec![Field::new("u", DataType::Utf8, false)]));
        let mk = |v: Vec<&str>| {
            RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(v))]).unwrap()
        };
        let mut agg = Aggregate::new(
            &[],
            None,
            &[("d".into(), "count_distinct(u)".into())],
            10,
            &schema,
        )
        .unwrap();
        let mut out = Vec::new();
        for _ in 0..5 {
            agg.push(mk(vec!["a", "b", "c"]), &mut out).unwrap();
        }
        agg.finish(&mut out).unwrap();
        assert_eq!(out[0].column(0).as_primitive::<Int64Type>().value(0), 3);
    }

    #[test]
    fn approx_count_distinct_is_within_its_error_bound() {
        let schema = Arc::new(Schema::new(vec![Field::new("u", DataType::Int64, false)]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(
                (0..200_000).map(|i| i % 50_000),
            ))],
        )
        .unwrap();
        let mut agg = Aggregate::new(
            &[],
            None,
            &[
                ("a".into(), "approx_count_distinct(u)".into()),
                ("e".into(), "count_distinct(u)".into()),
            ],
            10,
            &schema,
        )
        .unwrap();
        let mut out = Vec::new();
        agg.push(b, &mut out).unwrap();
        agg.finish(&mut out).unwrap();
        let approx = out[0].column(0).as_primitive::<Int64Type>().value(0) as f64;
        let exact = out[0].column(1).as_primitive::<Int64Type>().value(0);
        assert_eq!(exact, 50_000);
        // 4 standard errors (1.6% each) is a bound this fixed-hash estimate must meet.
        assert!((approx - 50_000.0).abs() / 50_000.0 < 0.065, "{approx}");
    }
}
