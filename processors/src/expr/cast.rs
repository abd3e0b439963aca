//! `cast(x AS type)` and the implicit casts that make operands agree.
//!
//! Every cast is total: a value that does not convert is null, never an error and never a value
//! that only looks converted (`inf` from a float too large for float32, a fraction cut off). The
//! numeric rules are DuckDB's and PostgreSQL's: a float becomes an integer by rounding half to
//! even, text becomes a number after surrounding whitespace is trimmed (and may carry a fraction or
//! exponent, rounded half away from zero when an integer is asked for). Other pairs are Arrow's
//! `cast` in its safe mode.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{
    Array, ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, TimestampMicrosecondArray,
};
use arrow_schema::{ArrowError, DataType};

use crate::decode::timestamp::{self, EpochUnit};

/// Cast `a` to `to`; values that do not convert are null, and so are dates and timestamps
/// outside the years 1 to 9999 (`cast('-52026-11-22' AS date)` is null, not a date no reader
/// holds).
pub(crate) fn cast(a: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    let out = cast_any(a, to)?;
    Ok(match to {
        DataType::Date32 | DataType::Timestamp(..) => in_calendar(out)?,
        _ => out,
    })
}

/// Days since the epoch of 0001-01-01 and 9999-12-31.
const MIN_DAYS: i32 = -719_162;
const MAX_DAYS: i32 = 2_932_896;

/// Dates and timestamps outside the years 1 to 9999 as null.
pub(crate) fn in_calendar(a: ArrayRef) -> Result<ArrayRef, ArrowError> {
    use arrow_array::types::{Date32Type, TimestampMicrosecondType};
    // Outside the calendar, where a value is set (a null slot's contents mean nothing). Almost
    // every cast has none: then nothing is allocated.
    let outside: arrow_array::BooleanArray = match a.data_type() {
        DataType::Date32 => {
            let d = a.as_primitive::<Date32Type>();
            let out = |v: &i32| !(MIN_DAYS..=MAX_DAYS).contains(v);
            if !d.values().iter().any(out) {
                return Ok(a);
            }
            d.iter().map(|v| Some(v.is_some_and(|v| out(&v)))).collect()
        }
        DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, _) => {
            let t = a.as_primitive::<TimestampMicrosecondType>();
            let out = |v: &i64| timestamp::in_range(*v).is_none();
            if !t.values().iter().any(out) {
                return Ok(a);
            }
            t.iter().map(|v| Some(v.is_some_and(|v| out(&v)))).collect()
        }
        _ => return Ok(a),
    };
    arrow_select::nullif::nullif(&a, &outside)
}

fn cast_any(a: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    let from = a.data_type();
    if from == to {
        return Ok(a.clone());
    }
    Ok(match (from, to) {
        (DataType::Float64 | DataType::Float32, DataType::Int64 | DataType::Int32) => {
            let f = arrow_cast::cast(a, &DataType::Float64)?;
            let f = f.as_primitive::<Float64Type>();
            let ints: Int64Array = f.iter().map(|v| v.and_then(float_to_i64)).collect();
            narrow(ints, to)
        }
        (DataType::Float64, DataType::Float32) => {
            let f = a.as_primitive::<Float64Type>();
            let out: Float32Array = f.iter().map(|v| v.and_then(f64_to_f32)).collect();
            Arc::new(out)
        }
        (DataType::Utf8, DataType::Int64 | DataType::Int32) => {
            let s = a.as_string::<i32>();
            let ints: Int64Array = s.iter().map(|v| v.and_then(text_to_i64)).collect();
            narrow(ints, to)
        }
        (DataType::Utf8, DataType::Float64) => {
            let s = a.as_string::<i32>();
            let out: Float64Array = s.iter().map(|v| v.and_then(text_to_f64)).collect();
            Arc::new(out)
        }
        (DataType::Utf8, DataType::Boolean) => {
            let out: arrow_array::BooleanArray = a
                .as_string::<i32>()
                .iter()
                .map(|v| v.and_then(text_to_bool))
                .collect();
            Arc::new(out)
        }
        (DataType::Utf8, DataType::Float32) => {
            let s = a.as_string::<i32>();
            let out: Float32Array = s
                .iter()
                .map(|v| v.and_then(text_to_f64).and_then(f64_to_f32))
                .collect();
            Arc::new(out)
        }
        // Numbers and text become timestamps by the rule every decoder reads them by: epoch
        // seconds, milliseconds, microseconds or nanoseconds by magnitude, RFC 3339 text, and
        // null outside the years 1 to 9999.
        (DataType::Int64 | DataType::Int32, DataType::Timestamp(..)) => {
            let i = arrow_cast::cast(a, &DataType::Int64)?;
            let t: TimestampMicrosecondArray = i
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.and_then(|v| timestamp::epoch_int(v, EpochUnit::Auto)))
                .collect();
            arrow_cast::cast(&t.with_timezone("UTC"), to)?
        }
        (DataType::Float64 | DataType::Float32, DataType::Timestamp(..)) => {
            let f = arrow_cast::cast(a, &DataType::Float64)?;
            let t: TimestampMicrosecondArray = f
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.and_then(|v| timestamp::epoch_float(v, EpochUnit::Auto)))
                .collect();
            arrow_cast::cast(&t.with_timezone("UTC"), to)?
        }
        (DataType::Utf8, DataType::Timestamp(..)) => {
            let t: TimestampMicrosecondArray = a
                .as_string::<i32>()
                .iter()
                .map(|v| v.and_then(timestamp::parse_text))
                .collect();
            arrow_cast::cast(&t.with_timezone("UTC"), to)?
        }
        _ => arrow_cast::cast(a, to)?,
    })
}

/// Int64 values as `to` (Int64 or Int32), null where they do not fit.
fn narrow(ints: Int64Array, to: &DataType) -> ArrayRef {
    match to {
        DataType::Int32 => {
            let out: Int32Array = ints
                .iter()
                .map(|v| v.and_then(|v| i32::try_from(v).ok()))
                .collect();
            Arc::new(out)
        }
        _ => Arc::new(ints),
    }
}

/// A float as an integer, rounded half to even (as DuckDB and PostgreSQL cast); None when it
/// is NaN, infinite or out of range.
pub(crate) fn float_to_i64(v: f64) -> Option<i64> {
    let r = v.round_ties_even();
    // i64::MAX is not a float; 2^63 is the first value that does not fit.
    (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0)
        .contains(&r)
        .then_some(r as i64)
}

/// A float64 as float32, None when it is finite but beyond float32's range.
pub(crate) fn f64_to_f32(v: f64) -> Option<f32> {
    let f = v as f32;
    (f.is_finite() || !v.is_finite()).then_some(f)
}

/// Text as a bool, as DuckDB reads it: `true`, `t`, `yes`, `y`, `1` and `false`, `f`, `no`,
/// `n`, `0`, in any case and nothing else (Arrow's cast also took `tr`, `on`, `off` and
/// surrounding spaces).
pub(crate) fn text_to_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Text as a float: surrounding whitespace trimmed; `inf`, `infinity` and `nan` in any case.
pub(crate) fn text_to_f64(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok()
}

/// Text as an integer, as DuckDB reads it: surrounding whitespace trimmed, an optional sign,
/// digits (`_` allowed between them), `0x` hex, or a decimal number with a fraction or exponent
/// rounded half away from zero. None when it is none of these or does not fit.
pub(crate) fn text_to_i64(s: &str) -> Option<i64> {
    let t = s.trim();
    let (neg, body) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let b = body.as_bytes();
    if b.is_empty() {
        return None;
    }
    let signed = |m: i128| -> Option<i64> { i64::try_from(if neg { -m } else { m }).ok() };
    // Digits with single underscores between them (`1_000`, `0x1f_ff`).
    let grouped = |d: &str, digit: fn(&u8) -> bool| {
        !d.is_empty()
            && d.bytes().all(|c| digit(&c) || c == b'_')
            && !d.starts_with('_')
            && !d.ends_with('_')
            && !d.contains("__")
    };
    if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        // Hex carries no sign, as DuckDB reads it.
        if neg || t.starts_with('+') || !grouped(hex, u8::is_ascii_hexdigit) {
            return None;
        }
        let hex: String = hex.chars().filter(|c| *c != '_').collect();
        if hex.trim_start_matches('0').len() > 16 {
            return None;
        }
        return signed(i128::from(u64::from_str_radix(&hex, 16).ok()?));
    }
    if grouped(body, u8::is_ascii_digit) {
        let mut m: i128 = 0;
        for c in body.bytes().filter(u8::is_ascii_digit) {
            m = m.checked_mul(10)?.checked_add(i128::from(c - b'0'))?;
            if m > 1 << 64 {
                return None;
            }
        }
        return signed(m);
    }
    // A decimal: integer part, fraction, exponent.
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().ok()?),
        None => (body, 0),
    };
    let (int, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if int.is_empty() && frac.is_empty()
        || !(int.is_empty() || grouped(int, u8::is_ascii_digit))
        || !(frac.is_empty() || grouped(frac, u8::is_ascii_digit))
    {
        return None;
    }
    let (int, frac): (String, String) = (
        int.chars().filter(|c| *c != '_').collect(),
        frac.chars().filter(|c| *c != '_').collect(),
    );
    // The digits of int.frac as one integer scaled by 10^-frac.len(), then by 10^exp: the
    // whole part and the first dropped digit decide the result exactly.
    let all: String = format!("{int}{frac}");
    let all = all.trim_start_matches('0');
    let point = i64::from(exp) - frac.len() as i64;
    let whole_len = all.len() as i64 + point;
    if whole_len > 20 {
        return None;
    }
    let (whole, rest) = if whole_len <= 0 {
        ("", all)
    } else if point >= 0 {
        return signed(
            format!("{all}{}", "0".repeat(point as usize))
                .parse::<i128>()
                .ok()?,
        );
    } else {
        all.split_at(whole_len as usize)
    };
    let mut m: i128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let first_dropped = if whole_len < 0 {
        b'0'
    } else {
        rest.as_bytes().first().copied().unwrap_or(b'0')
    };
    if first_dropped >= b'5' {
        m += 1;
    }
    signed(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the differential test: text becomes a bool exactly where DuckDB's TRY_CAST
    /// reads one.
    #[test]
    fn text_to_bool_as_duckdb_reads_it() {
        for (t, want) in [
            ("true", Some(true)),
            ("T", Some(true)),
            ("yes", Some(true)),
            ("Y", Some(true)),
            ("1", Some(true)),
            ("false", Some(false)),
            ("F", Some(false)),
            ("no", Some(false)),
            ("n", Some(false)),
            ("0", Some(false)),
            ("tr", None),
            ("on", None),
            ("off", None),
            (" true", None),
            ("TRUE ", None),
            ("true1", None),
            ("10", None),
            ("", None),
        ] {
            assert_eq!(text_to_bool(t), want, "{t:?}");
        }
    }

    /// Issue 38: `cast('-52026-11-22' AS date)` gave the date -52026-11-22, written to NDJSON and
    /// Parquet as such, and a timestamp built from it likewise. Outside the years 1 to 9999 a cast
    /// gives null, like every other value that does not convert.
    #[test]
    fn casts_never_leave_the_calendar() {
        use arrow_array::StringArray;
        use arrow_array::types::{Date32Type, TimestampMicrosecondType};
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("-52026-11-22"),
            Some("2026-11-22"),
            Some("0001-01-01"),
            Some("9999-12-31"),
            Some("10000-01-01"),
            Some("0000-12-31"),
            None,
        ]));
        let dates = cast(&text, &DataType::Date32).unwrap();
        let d = dates.as_primitive::<Date32Type>();
        let valid: Vec<bool> = (0..d.len()).map(|i| d.is_valid(i)).collect();
        assert_eq!(valid, [false, true, true, true, false, false, false]);
        let ts_type = crate::expr::timestamp_type();
        let ts = cast(&dates, &ts_type).unwrap();
        let t = ts.as_primitive::<TimestampMicrosecondType>();
        let valid: Vec<bool> = (0..t.len()).map(|i| t.is_valid(i)).collect();
        assert_eq!(valid, [false, true, true, true, false, false, false]);
        let text_ts: ArrayRef = Arc::new(StringArray::from(vec![
            "-52026-11-22T00:00:00Z",
            "2026-11-22T00:00:00Z",
            "+10000-01-01T00:00:00Z",
        ]));
        let ts = cast(&text_ts, &ts_type).unwrap();
        assert_eq!(
            (ts.is_null(0), ts.is_null(1), ts.is_null(2)),
            (true, false, true)
        );
        // Dates alone are midnight, across the whole calendar (they were null outside 1677-2262,
        // where a nanosecond count ends).
        let bare = cast(&text, &ts_type).unwrap();
        let valid: Vec<bool> = (0..bare.len()).map(|i| bare.is_valid(i)).collect();
        assert_eq!(valid, [false, true, true, true, false, false, false]);
        // A date outside the calendar made some other way never comes back from a cast either.
        let far: ArrayRef = Arc::new(arrow_array::Date32Array::from(vec![-20_000_000, 0]));
        let back = cast(&far, &ts_type).unwrap();
        assert!(back.is_null(0) && back.is_valid(1));
    }

    #[test]
    fn text_to_integers_as_duckdb_reads_them() {
        let cases = [
            ("12", Some(12)),
            (" 12 ", Some(12)),
            ("+5", Some(5)),
            ("-7", Some(-7)),
            ("1_000", Some(1000)),
            ("1__0", None),
            ("1_0.5", Some(11)),
            ("_1", None),
            ("0x10", Some(16)),
            ("0x1fa_c", Some(0x1fac)),
            ("0xffffffffffffffff", None),
            ("-0x10", None),
            ("+0x10", None),
            ("1.5", Some(2)),
            ("2.5", Some(3)),
            ("-2.5", Some(-3)),
            ("-2.49", Some(-2)),
            ("0.5", Some(1)),
            (".5", Some(1)),
            ("5.", Some(5)),
            ("1e3", Some(1000)),
            (" 1.5e1 ", Some(15)),
            ("15e-1", Some(2)),
            ("1e-9", Some(0)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("1e30", None),
            ("12abc", None),
            ("", None),
            ("-", None),
            (".", None),
            ("1.2.3", None),
            ("--1", None),
        ];
        for (s, want) in cases {
            assert_eq!(text_to_i64(s), want, "{s:?}");
        }
    }

    #[test]
    fn floats_to_integers_round_half_to_even_and_never_saturate() {
        assert_eq!(float_to_i64(2.5), Some(2));
        assert_eq!(float_to_i64(3.5), Some(4));
        assert_eq!(float_to_i64(-0.5), Some(0));
        assert_eq!(float_to_i64(-2.7), Some(-3));
        assert_eq!(float_to_i64(f64::NAN), None);
        assert_eq!(float_to_i64(f64::INFINITY), None);
        assert_eq!(float_to_i64(9.3e18), None);
        assert_eq!(float_to_i64(-9_223_372_036_854_775_808.0), Some(i64::MIN));
        assert_eq!(f64_to_f32(1.0e308), None);
        assert_eq!(f64_to_f32(1.5), Some(1.5));
        assert!(f64_to_f32(f64::INFINITY).is_some_and(f32::is_infinite));
        assert!(f64_to_f32(f64::NAN).is_some_and(f32::is_nan));
        assert_eq!(text_to_f64(" nan ").map(f64::is_nan), Some(true));
        assert_eq!(text_to_f64("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(text_to_f64(" 2.5e1"), Some(25.0));
        assert_eq!(text_to_f64("1,5"), None);
    }
}
