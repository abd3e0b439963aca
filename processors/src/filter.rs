//! The `filter` stage: keep the rows where a boolean expression is true.
//!
//! Rows where the predicate is false or null are dropped. Nothing is buffered: each pushed batch
//! yields at most one batch, and a batch with no surviving rows yields none.

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_schema::{DataType, SchemaRef};

use crate::expr::Compiled;
use crate::{Error, Kept, Reject, Stage, StageFactory};

/// A compiled filter.
#[derive(Debug)]
pub struct Filter {
    predicate: Compiled,
    schema: SchemaRef,
    rows_seen: u64,
    rejects: Vec<Reject>,
    /// The last push's mask of kept rows.
    kept: Option<arrow_array::BooleanArray>,
}

impl Filter {
    /// Compile `predicate` against `schema`; it must be a boolean expression.
    pub fn new(predicate: &str, schema: &SchemaRef) -> Result<Self, Error> {
        let predicate = Compiled::new(predicate, schema)?;
        if !matches!(predicate.data_type(), DataType::Boolean | DataType::Null) {
            return Err(Error::Expr {
                expr: predicate.text().to_string(),
                offset: 0,
                message: format!(
                    "a filter needs a true/false condition, but this is {}; compare it, e.g. `x > 0` or `x IS NOT NULL`",
                    crate::expr::a_type(predicate.data_type())
                ),
            });
        }
        Ok(Self {
            predicate,
            schema: schema.clone(),
            rows_seen: 0,
            rejects: Vec::new(),
            kept: None,
        })
    }
}

impl Stage for Filter {
    fn name(&self) -> &'static str {
        "filter"
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn push(&mut self, batch: RecordBatch, out: &mut Vec<RecordBatch>) -> Result<(), Error> {
        // A row the predicate fails on (an overflow, say) is a reject, and not kept.
        let (mask, errors) = self.predicate.evaluate_rows(&batch);
        if !errors.is_empty() {
            self.rejects
                .extend(crate::row_rejects("filter", &batch, self.rows_seen, errors));
        }
        self.rows_seen += batch.num_rows() as u64;
        let mask =
            arrow_cast::cast(&mask, &DataType::Boolean).map_err(|e| Error::arrow("filter", e))?;
        let mask = mask.as_boolean();
        let kept = arrow_select::filter::filter_record_batch(&batch, mask)
            .map_err(|e| Error::arrow("filter", e))?;
        if kept.num_rows() > 0 {
            out.push(kept);
        }
        self.kept = Some(mask.clone());
        Ok(())
    }
    fn take_rejects(&mut self) -> Vec<Reject> {
        std::mem::take(&mut self.rejects)
    }
    fn kept(&self) -> Kept {
        self.kept.clone().map_or(Kept::Unknown, Kept::Mask)
    }
}

/// Builds [`Filter`]s from a predicate's text.
#[derive(Debug, Clone)]
pub struct FilterFactory {
    predicate: String,
}

impl FilterFactory {
    /// A factory for `where = predicate`.
    pub fn new(predicate: impl Into<String>) -> Self {
        Self {
            predicate: predicate.into(),
        }
    }
}

impl StageFactory for FilterFactory {
    fn name(&self) -> &'static str {
        "filter"
    }
    fn build(&self, input: &SchemaRef) -> Result<Box<dyn Stage>, Error> {
        Ok(Box::new(Filter::new(&self.predicate, input)?))
    }
}

/// Shared by tests in this crate.
#[cfg(test)]
pub(crate) fn sample() -> RecordBatch {
    use arrow_array::{
        BooleanArray, Float64Array, Int64Array, StringArray, StructArray, TimestampMicrosecondArray,
    };
    use arrow_schema::{Field, Fields, Schema};
    use std::sync::Arc;
    let ts = |s| crate::expr::parse_timestamp(s).expect("valid");
    let geo_fields = Fields::from(vec![
        Field::new("lat", DataType::Float64, true),
        Field::new("cc", DataType::Utf8, true),
    ]);
    let geo = StructArray::new(
        geo_fields.clone(),
        vec![
            Arc::new(Float64Array::from(vec![
                Some(52.5),
                Some(0.0),
                None,
                Some(-33.9),
            ])),
            Arc::new(StringArray::from(vec![
                Some("DE"),
                Some("GH"),
                Some("XX"),
                Some("ZA"),
            ])),
        ],
        Some(vec![true, true, false, true].into()),
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("page", DataType::Utf8, true),
        Field::new("event_type", DataType::Utf8, true),
        Field::new("latency_ms", DataType::Int64, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new("ts", crate::expr::timestamp_type(), true),
        Field::new("geo", DataType::Struct(geo_fields), true),
        Field::new("odd name", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec![
                Some("/"),
                Some("/Cart"),
                None,
                Some("/pay"),
            ])),
            Arc::new(StringArray::from(vec![
                Some("view"),
                Some("click"),
                Some("view"),
                Some("buy"),
            ])),
            Arc::new(Int64Array::from(vec![Some(120), Some(900), Some(0), None])),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
            ])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    ts("2026-11-22T10:00:00Z"),
                    ts("2026-11-22T10:59:59Z"),
                    ts("2026-11-21T23:00:00Z"),
                    ts("2026-11-23T00:00:00Z"),
                ])
                .with_timezone("UTC"),
            ),
            Arc::new(geo),
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some("b"),
                Some("c"),
                Some("d"),
            ])),
        ],
    )
    .expect("valid sample")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(predicate: &str) -> Vec<Option<String>> {
        let batch = sample();
        let mut f = Filter::new(predicate, &batch.schema()).unwrap_or_else(|e| panic!("{e}"));
        let mut out = Vec::new();
        f.push(batch, &mut out).unwrap();
        out.iter()
            .flat_map(|b| {
                b.column(6)
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn names(s: &str) -> Vec<Option<String>> {
        s.chars().map(|c| Some(c.to_string())).collect()
    }

    #[test]
    fn evaluates_the_grammar() {
        let cases = [
            ("event_type <> 'view' OR latency_ms > 500", "bd"),
            ("latency_ms > 100", "ab"),
            ("latency_ms IS NULL", "d"),
            ("NOT (latency_ms > 100)", "c"),
            ("page IN ('/', '/pay')", "ad"),
            ("page NOT IN ('/', '/pay')", "b"),
            ("latency_ms BETWEEN 100 AND 900", "ab"),
            ("latency_ms NOT BETWEEN 100 AND 899", "bc"),
            ("page LIKE '/%a%'", "bd"),
            ("page LIKE '/c%'", ""),
            ("page ILIKE '/c%'", "b"),
            ("page NOT LIKE '/%'", ""),
            ("ok", "ad"),
            ("ok = false OR ok IS NULL", "bc"),
            ("geo.lat > 0", "a"),
            ("geo.cc = 'XX'", ""),
            ("geo IS NULL", "c"),
            ("\"odd name\" = 'c'", "c"),
            ("latency_ms * 2 + 1 = 241", "a"),
            ("latency_ms / 0 IS NULL", "abcd"),
            ("latency_ms % 7 = 120 % 7", "a"),
            ("-latency_ms < -500", "b"),
            ("latency_ms / 1000.0 > 0.5", "b"),
            (
                "CASE WHEN latency_ms > 500 THEN 'slow' WHEN latency_ms >= 0 THEN 'fast' ELSE 'unknown' END = 'fast'",
                "ac",
            ),
            ("CASE WHEN latency_ms > 500 THEN 1 END IS NULL", "acd"),
            ("lower(page) = '/cart' AND upper(event_type) = 'CLICK'", "b"),
            ("length(page) = 4 AND trim('  x ') = 'x'", "d"),
            ("starts_with(page, '/p') OR ends_with(page, 'art')", "bd"),
            ("contains(event_type, 'i')", "abc"),
            ("regexp_match(page, '^/[a-z]+$')", "d"),
            ("coalesce(page, 'none') = 'none'", "c"),
            ("coalesce(latency_ms, -1) < 0", "d"),
            ("cast(latency_ms AS string) = '900'", "b"),
            (
                "cast('12' AS int64) = 12 AND cast(latency_ms AS float64) > 899.5",
                "b",
            ),
            ("date(ts) = '2026-11-22'", "ab"),
            ("date(ts) = date('2026-11-22T05:00:00Z')", "ab"),
            ("hour(ts) = 10", "ab"),
            (
                "date_trunc('hour', ts) = timestamp '2026-11-22T10:00:00Z'",
                "ab",
            ),
            (
                "ts >= '2026-11-22T00:00:00Z' AND ts < timestamp '2026-11-23T00:00:00Z'",
                "ab",
            ),
            ("abs(latency_ms - 1000) = 100", "b"),
            ("round(geo.lat / 10) = 5 OR round(geo.lat, 1) = -33.9", "ad"),
            ("page || ':' || event_type = '/Cart:click'", "b"),
            ("latency_ms || 'ms' = '120ms'", "a"),
            ("(page || 'x') IS NULL", "c"),
            ("null", ""),
            ("true", "abcd"),
        ];
        for (p, want) in cases {
            assert_eq!(kept(p), names(want), "{p}");
        }
    }

    /// Issue 27: a filter of 8 000 OR'ed terms, or `a + a + …` of that length, overflowed the
    /// stack and aborted `validate` and `serve`. Long OR/AND chains and IN lists now work as
    /// balanced trees, and operator chains past the limit are an error. A debug build takes
    /// ~20 KiB of stack per level of evaluation: 128 levels fit in 4 MiB (the binary's threads
    /// have 8 MiB; a release build needs a fraction of this).
    #[test]
    fn long_expressions_work_or_are_refused_without_overflowing_the_stack() {
        let run = || {
            let ors: Vec<String> = (0..8000).map(|i| format!("latency_ms = {i}")).collect();
            assert_eq!(kept(&ors.join(" OR ")), names("abc"));
            let ands: Vec<String> = (0..8000)
                .map(|i| format!("latency_ms <> {}", i + 1000))
                .collect();
            assert_eq!(kept(&ands.join(" AND ")), names("abc"));
            let list: Vec<String> = (0..8000).map(|i| i.to_string()).collect();
            assert_eq!(
                kept(&format!("latency_ms IN ({})", list.join(", "))),
                names("abc")
            );
            // A chain just inside the limit is evaluated, left to right.
            let sum = format!("latency_ms{} = 120 + 120", " + 1".repeat(120));
            assert_eq!(kept(&sum), names("a"));
            // Past it: a message, at `validate`.
            let schema = sample().schema();
            for long in [
                format!("latency_ms{} > 0", " + latency_ms".repeat(8000)),
                format!("page{} = 'x'", " || page".repeat(8000)),
                (0..60).fold("latency_ms".to_string(), |s, _| {
                    format!("({s} + 1 + 1 + 1 + 1 + 1)")
                }) + " > 0",
            ] {
                let e = Filter::new(&long, &schema)
                    .map(|_| ())
                    .unwrap_err()
                    .to_string();
                assert!(
                    e.contains("levels of operators") || e.contains("nests deeper"),
                    "{e}"
                );
            }
            // OR chains nested in parentheses: each level is balanced.
            let inner: Vec<String> = (0..200).map(|i| format!("latency_ms = {i}")).collect();
            let nested = format!("{}{}{}", "(".repeat(30), inner.join(" OR "), ")".repeat(30));
            assert_eq!(kept(&nested), names("ac"));
        };
        std::thread::Builder::new()
            .stack_size(4 << 20)
            .spawn(run)
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn type_errors_are_found_before_running() {
        let schema = sample().schema();
        let err = |p: &str| Filter::new(p, &schema).unwrap_err().to_string();
        assert!(
            err("latency_ms > '500'").contains("cannot apply `>` to int64 and string"),
            "{}",
            err("latency_ms > '500'")
        );
        assert!(err("latency_ms").contains("needs a true/false condition"));
        assert!(err("pgae = '/'").contains("unknown column `pgae`"));
        assert!(err("Page = '/'").contains("did you mean `page`"));
        assert!(err("page AND ok").contains("AND needs a true/false value, found string"));
        assert!(err("lower(latency_ms) = 'x'").contains("lower needs a string"));
        assert!(err("nope(page)").contains("unknown function `nope`"));
        assert!(err("sum(latency_ms) > 1").contains("aggregate"));
        assert!(err("page.x = 1").contains("not a struct"));
        assert!(err("regexp_match(page, '(')").contains("is not a valid regular expression"));
        assert!(err("cast(page AS blob) = 1").contains("unknown type `blob`"));
        assert!(err("page + 1 = 2").contains("cannot apply `+`"));
    }
}
