//! The one rule every format reads timestamps by.
//!
//! Text is RFC 3339 / ISO 8601 (an offset is applied; none means UTC). A number is an epoch
//! count: seconds, milliseconds, microseconds or nanoseconds, told apart by its magnitude (below
//! 10^11 seconds, that is until the year 5138; below 10^14 milliseconds; below 10^17
//! microseconds; nanoseconds above), or in the unit the schema names (`timestamp(ms)`). A
//! fraction is allowed in every unit (`1700000000.5`); digits below a microsecond are dropped.
//! A timestamp outside 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999999Z is out of range: the
//! record is a reject, never a value that wraps or that no writer can print.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{DataType, Field, TimeUnit};

use crate::{Error, Reject};

/// 0001-01-01T00:00:00Z in microseconds since the epoch.
pub const MIN_MICROS: i64 = -62_135_596_800_000_000;
/// 9999-12-31T23:59:59.999999Z in microseconds since the epoch.
pub const MAX_MICROS: i64 = 253_402_300_799_999_999;

/// Field metadata naming the unit of a timestamp column's epoch numbers (`timestamp(ms)`).
pub const EPOCH_UNIT_METADATA: &str = "sluice.epoch_unit";

/// The unit of an epoch number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EpochUnit {
    /// By magnitude (the default).
    #[default]
    Auto,
    /// Seconds.
    Seconds,
    /// Milliseconds.
    Millis,
    /// Microseconds.
    Micros,
    /// Nanoseconds.
    Nanos,
}

impl EpochUnit {
    /// `s`, `ms`, `us` (or `µs`), `ns`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "s" => Self::Seconds,
            "ms" => Self::Millis,
            "us" | "µs" => Self::Micros,
            "ns" => Self::Nanos,
            _ => return None,
        })
    }

    /// The unit a timestamp field declares (its metadata), else [`EpochUnit::Auto`].
    pub fn of(field: &Field) -> Self {
        field
            .metadata()
            .get(EPOCH_UNIT_METADATA)
            .and_then(|u| Self::parse(u))
            .unwrap_or_default()
    }

    /// This unit, or for [`EpochUnit::Auto`] the one a count with this whole part is in.
    fn resolve(self, whole: i128) -> Self {
        match self {
            // unsigned_abs: a double far below -1.7e38 saturates to i128::MIN, whose abs overflows.
            Self::Auto => match whole.unsigned_abs() {
                w if w < 100_000_000_000 => Self::Seconds,
                w if w < 100_000_000_000_000 => Self::Millis,
                w if w < 100_000_000_000_000_000 => Self::Micros,
                _ => Self::Nanos,
            },
            u => u,
        }
    }

    /// Microseconds per count as a numerator over a denominator, and how many digits of a
    /// fraction still count (below a microsecond they are dropped). Call on a resolved unit.
    fn scale(self) -> (i128, i128, usize) {
        match self {
            Self::Seconds | Self::Auto => (1_000_000, 1, 6),
            Self::Millis => (1_000, 1, 3),
            Self::Micros => (1, 1, 0),
            Self::Nanos => (1, 1_000, 0),
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Auto => "",
            Self::Seconds => "s",
            Self::Millis => "ms",
            Self::Micros => "us",
            Self::Nanos => "ns",
        }
    }
}

impl std::fmt::Display for EpochUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text())
    }
}

/// `t` when it is within range.
pub(crate) fn in_range(t: i64) -> Option<i64> {
    (MIN_MICROS..=MAX_MICROS).contains(&t).then_some(t)
}

/// An epoch number written as text (`1700000000`, `-1.5`, `1700000000123`, `1.7e9`) as
/// microseconds since the epoch; None when it is not a number or out of range.
pub(crate) fn epoch_micros(s: &str, unit: EpochUnit) -> Option<i64> {
    let b = s.as_bytes();
    let (neg, body) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    let int_len = body.iter().take_while(|c| c.is_ascii_digit()).count();
    let (int, rest) = body.split_at(int_len);
    let (frac, rest) = match rest.split_first() {
        Some((b'.', r)) => {
            let n = r.iter().take_while(|c| c.is_ascii_digit()).count();
            r.split_at(n)
        }
        _ => (&rest[..0], rest),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !rest.is_empty() {
        // An exponent (1.7e9): read as a float, exact enough for any timestamp in range.
        if !matches!(rest[0], b'e' | b'E') {
            return None;
        }
        let v: f64 = s.parse().ok()?;
        return epoch_float(v, unit);
    }
    let digits = int.iter().skip_while(|c| **c == b'0').count();
    if digits > 22 {
        return None;
    }
    let whole: i128 = int.iter().fold(0i128, |a, d| a * 10 + i128::from(d - b'0'));
    let (per, over, keep) = unit.resolve(whole).scale();
    let mut f: i128 = 0;
    for k in 0..keep {
        f = f * 10 + frac.get(k).map_or(0, |d| i128::from(d - b'0'));
    }
    let micros = (whole * per + f) / over;
    let micros = if neg { -micros } else { micros };
    in_range(i64::try_from(micros).ok()?)
}

/// A timestamp written as text: RFC 3339 / ISO 8601, else an epoch number (by magnitude).
pub(crate) fn parse_text(s: &str) -> Option<i64> {
    super::fastjson::parse_timestamp_micros(s).or_else(|| epoch_micros(s.trim(), EpochUnit::Auto))
}

/// An integer epoch count as microseconds (unit by magnitude); None when out of range.
pub(crate) fn epoch_int(v: i64, unit: EpochUnit) -> Option<i64> {
    let (per, over, _) = unit.resolve(i128::from(v)).scale();
    in_range(i64::try_from(i128::from(v) * per / over).ok()?)
}

/// A float epoch count as microseconds (unit by magnitude); None when out of range or not finite.
pub(crate) fn epoch_float(v: f64, unit: EpochUnit) -> Option<i64> {
    if !v.is_finite() {
        return None;
    }
    let (per, over, _) = unit.resolve(v as i128).scale();
    let t = (v * per as f64 / over as f64).trunc();
    if !(-9.2e18..9.2e18).contains(&t) {
        return None;
    }
    in_range(t as i64)
}

/// Rows of `batch` (read from a file that carries its own types, such as Parquet) whose
/// timestamps are outside the years 1 to 9999, taken out as rejects: the rule every decoder
/// applies to what it reads. `first_row` is the 1-based number of the batch's first row in its
/// file. A batch with no timestamp columns is returned as it is.
pub fn refuse_out_of_range(
    batch: RecordBatch,
    first_row: u64,
) -> Result<(RecordBatch, Vec<Reject>), Error> {
    let ctx = |e| Error::arrow("checking timestamps", e);
    let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
    let mut bad: Option<Vec<Option<String>>> = None;
    for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
        if !matches!(field.data_type(), DataType::Timestamp(..)) {
            continue;
        }
        // Nanoseconds always fit; seconds and milliseconds may not fit microseconds at all.
        let as_micros = arrow_cast::cast_with_options(
            col,
            &micros,
            &arrow_cast::CastOptions {
                safe: true,
                ..Default::default()
            },
        )
        .map_err(ctx)?;
        let t = as_micros.as_primitive::<TimestampMicrosecondType>();
        for row in 0..batch.num_rows() {
            let out = col.is_valid(row) && (t.is_null(row) || in_range(t.value(row)).is_none());
            if out {
                let slot = bad.get_or_insert_with(|| vec![None; batch.num_rows()]);
                slot[row].get_or_insert_with(|| field.name().clone());
            }
        }
    }
    let Some(bad) = bad else {
        return Ok((batch, Vec::new()));
    };
    // The rows as JSON, with the timestamps as the counts they hold (they cannot be dates).
    let shown: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| match c.data_type() {
            DataType::Timestamp(..) => arrow_cast::cast(c, &DataType::Int64),
            _ => Ok(c.clone()),
        })
        .collect::<Result<_, _>>()
        .map_err(ctx)?;
    let shown_fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .zip(&shown)
        .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), true))
        .collect();
    let shown = RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(shown_fields)), shown)
        .map_err(ctx)?;
    let mut rejects = Vec::new();
    for (row, column) in bad.iter().enumerate() {
        if let Some(column) = column {
            rejects.push(Reject::new(
                first_row + row as u64,
                format!("column `{column}` holds a timestamp out of range: expects {EXPECTED}"),
                &crate::row_json(&shown, row),
            ));
        }
    }
    let keep: BooleanArray = bad.iter().map(|b| Some(b.is_none())).collect();
    let kept = arrow_select::filter::filter_record_batch(&batch, &keep).map_err(ctx)?;
    Ok((kept, rejects))
}

/// What a reject says a timestamp column expects.
pub(crate) const EXPECTED: &str = "a timestamp (RFC 3339, or an epoch number of seconds, milliseconds, microseconds or nanoseconds) from the year 1 to 9999";

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the differential test: `cast(-1e308 AS timestamp)` overflowed taking the
    /// magnitude of the saturated i128 (a panic in debug builds, a wrong unit in release).
    #[test]
    fn the_most_negative_numbers_are_nanoseconds_out_of_range_not_a_panic() {
        assert!(matches!(
            EpochUnit::Auto.resolve(i128::MIN),
            EpochUnit::Nanos
        ));
        for v in [-1e308, -3.5e38, f64::MIN, 1e308] {
            assert_eq!(epoch_float(v, EpochUnit::Auto), None, "{v}");
        }
        assert_eq!(epoch_int(i64::MIN, EpochUnit::Auto), Some(i64::MIN / 1000));
    }

    #[test]
    fn rows_with_timestamps_out_of_range_are_taken_out_as_rejects() {
        use arrow_array::{Int64Array, TimestampMillisecondArray};
        let schema = Arc::new(arrow_schema::Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3, 4])),
                Arc::new(TimestampMillisecondArray::from(vec![
                    Some(1_700_000_000_000),
                    Some(i64::MAX),
                    None,
                    Some(-62_135_596_800_001),
                ])),
            ],
        )
        .unwrap();
        let (kept, rejects) = refuse_out_of_range(batch, 11).unwrap();
        assert_eq!(kept.num_rows(), 2);
        assert_eq!(
            rejects.iter().map(|r| r.position).collect::<Vec<_>>(),
            [12, 14]
        );
        assert!(
            rejects[0].reason.contains("column `t`"),
            "{}",
            rejects[0].reason
        );
        let raw = String::from_utf8_lossy(&rejects[0].raw);
        assert_eq!(raw, format!("{{\"n\":2,\"t\":{}}}", i64::MAX));
    }

    #[test]
    fn epoch_numbers_by_magnitude_or_declared_unit() {
        let t = 1_700_000_000_000_000i64;
        for s in [
            "1700000000",
            "1700000000000",
            "1700000000000000",
            "1700000000000000000",
            "1700000000.0",
            "+1700000000",
        ] {
            assert_eq!(epoch_micros(s, EpochUnit::Auto), Some(t), "{s}");
        }
        assert_eq!(
            epoch_micros("1700000000.5", EpochUnit::Auto),
            Some(t + 500_000)
        );
        assert_eq!(
            epoch_micros("1700000000123.456", EpochUnit::Auto),
            Some(t + 123_456)
        );
        assert_eq!(epoch_micros("1.7e9", EpochUnit::Auto), Some(t));
        assert_eq!(epoch_micros("-1.5", EpochUnit::Auto), Some(-1_500_000));
        assert_eq!(epoch_micros("0", EpochUnit::Auto), Some(0));
        // A declared unit overrides the magnitude.
        assert_eq!(
            epoch_micros("1700000000", EpochUnit::Millis),
            Some(t / 1000)
        );
        assert_eq!(
            epoch_micros("1700000000", EpochUnit::Micros),
            Some(t / 1_000_000)
        );
        assert_eq!(
            epoch_micros("1700000000", EpochUnit::Nanos),
            Some(t / 1_000_000_000)
        );
        assert_eq!(epoch_micros("1700000000123", EpochUnit::Seconds), None);
        // The int64 extremes are nanoseconds (1677 and 2262); a larger count is out of range.
        assert_eq!(
            epoch_micros("9223372036854775807", EpochUnit::Auto),
            Some(9_223_372_036_854_775)
        );
        assert_eq!(
            epoch_micros("-9223372036854775808", EpochUnit::Auto),
            Some(-9_223_372_036_854_775)
        );
        assert_eq!(epoch_micros("253402300800", EpochUnit::Seconds), None);
        for s in [
            "10000000000000000000000",
            "1e300",
            "NaN",
            "",
            "-",
            ".",
            "1x",
            "12:00",
        ] {
            assert_eq!(epoch_micros(s, EpochUnit::Auto), None, "{s}");
        }
        // 10^11 and above are milliseconds unless the unit is declared.
        assert_eq!(
            epoch_micros("253402300799", EpochUnit::Auto),
            Some(253_402_300_799_000)
        );
        assert_eq!(
            epoch_micros("253402300799.999999", EpochUnit::Seconds),
            Some(MAX_MICROS)
        );
        assert_eq!(
            epoch_micros("-62135596800", EpochUnit::Auto),
            Some(MIN_MICROS)
        );
        assert_eq!(epoch_micros("-62135596801", EpochUnit::Auto), None);
    }
}
