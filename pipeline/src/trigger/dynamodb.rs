//! DynamoDB's attribute-value JSON (`{"S": "x"}`, `{"N": "1.5"}`, `{"M": {…}}`, …), as DynamoDB
//! Streams records carry an item's `NewImage`, `OldImage` and `Keys`, made plain JSON: the
//! document a row is read from.
//!
//! - `S` is a string, `BOOL` a boolean, `NULL` null, `M` an object, `L` an array, `SS` an array
//!   of strings, `B` and `BS` base64 text as given.
//! - `N` (and each of `NS`) is a number when it is one exactly: an integer that fits 64 bits, or
//!   a decimal of at most 15 significant digits (which a double holds). DynamoDB keeps 38 digits;
//!   a number a double would round stays its text, so nothing is silently changed.
//! - An item nests at most 32 levels (DynamoDB's own limit); deeper, or a value that is not one
//!   of these types, is an error naming where, never a panic or a recursion as deep as the input.

use serde_json::{Map, Value};

use super::{Item, StreamRecord};

/// One DynamoDB Streams record as a stream record: its data one JSON document — the item as it
/// is now (`NewImage`; the keys alone when the stream carries no image, or the item is gone) with
/// `_event_name` (INSERT, MODIFY, REMOVE), `_keys`, `_ttl_delete` (a removal by Time to Live, not
/// by a writer) and, when the stream view carries it, `_old_image` — read by `[input] format =
/// "ndjson"`; its id the sequence number (where the shard resumes), its shard the table, its
/// arrival `ApproximateCreationDateTime`. A record that cannot be read is a reject under its
/// sequence number, with why.
pub(crate) fn record(r: &Value) -> Item {
    let d = r.get("dynamodb").unwrap_or(&Value::Null);
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let sequence = text(d.get("SequenceNumber"));
    // arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL: the table names the shard.
    let table = text(r.get("eventSourceARN"))
        .split("table/")
        .nth(1)
        .and_then(|t| t.split('/').next())
        .unwrap_or("dynamodb")
        .to_string();
    let arrival = d.get("ApproximateCreationDateTime").and_then(Value::as_f64);
    let data = document(r, d).map(|mut doc| {
        doc.push(b'\n');
        bytes::Bytes::from(doc)
    });
    Item::Record(StreamRecord::new(&sequence, &table, "", arrival, data))
}

fn document(r: &Value, d: &Value) -> Result<Vec<u8>, String> {
    let image = |k: &str| -> Result<Option<Value>, String> {
        match d.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => item(m).map(Some).map_err(|e| format!("{k}: {e}")),
            Some(other) => Err(format!("{k} is not an item: {other}")),
        }
    };
    let keys = image("Keys")?.unwrap_or_else(|| Value::Object(Map::new()));
    let mut doc = match image("NewImage")? {
        Some(Value::Object(m)) => m,
        _ => keys.as_object().cloned().unwrap_or_default(),
    };
    let name = r.get("eventName").and_then(Value::as_str).unwrap_or("");
    let ttl = r.pointer("/userIdentity/type").and_then(Value::as_str) == Some("Service")
        && r.pointer("/userIdentity/principalId")
            .and_then(Value::as_str)
            == Some("dynamodb.amazonaws.com");
    doc.insert("_event_name".into(), Value::from(name));
    doc.insert("_keys".into(), keys);
    doc.insert("_ttl_delete".into(), Value::Bool(ttl));
    if let Some(old) = image("OldImage")? {
        doc.insert("_old_image".into(), old);
    }
    serde_json::to_vec(&Value::Object(doc)).map_err(|e| e.to_string())
}

/// A plain JSON value as DynamoDB's attribute value (what `sluice event dynamodb` writes): a
/// string `S`, a number `N` (as its text), a boolean `BOOL`, null `NULL`, an object `M`, an
/// array `L`.
pub fn attribute(v: &Value) -> Value {
    match v {
        Value::String(s) => serde_json::json!({ "S": s }),
        Value::Number(n) => serde_json::json!({ "N": n.to_string() }),
        Value::Bool(b) => serde_json::json!({ "BOOL": b }),
        Value::Null => serde_json::json!({ "NULL": true }),
        Value::Object(m) => {
            let inner: Map<String, Value> =
                m.iter().map(|(k, v)| (k.clone(), attribute(v))).collect();
            serde_json::json!({ "M": inner })
        }
        Value::Array(a) => serde_json::json!({ "L": a.iter().map(attribute).collect::<Vec<_>>() }),
    }
}

/// DynamoDB's own limit on nested attributes.
pub const MAX_DEPTH: usize = 32;

/// An item (an image's or a record's keys' map of attribute values) as a JSON object.
pub fn item(attributes: &Map<String, Value>) -> Result<Value, String> {
    map(attributes, 0, "")
}

fn map(attributes: &Map<String, Value>, depth: usize, path: &str) -> Result<Value, String> {
    let mut out = Map::with_capacity(attributes.len());
    for (name, v) in attributes {
        let here = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        out.insert(name.clone(), value(v, depth, &here)?);
    }
    Ok(Value::Object(out))
}

/// One attribute value, `depth` levels down, at `path` (for errors).
fn value(v: &Value, depth: usize, path: &str) -> Result<Value, String> {
    if depth >= MAX_DEPTH {
        return Err(format!(
            "attribute {path} is nested deeper than {MAX_DEPTH} levels"
        ));
    }
    let Some((kind, inner)) = v
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next())
    else {
        return Err(format!(
            "attribute {path} is not a DynamoDB attribute value (one of S, N, B, BOOL, NULL, M, L, SS, NS, BS)"
        ));
    };
    let wrong = || format!("attribute {path}: `{kind}` holds {inner}");
    let text = || inner.as_str().ok_or_else(wrong);
    let list = || inner.as_array().ok_or_else(wrong);
    Ok(match kind.as_str() {
        "S" | "B" => Value::String(text()?.to_string()),
        "N" => number(text()?).ok_or_else(wrong)?,
        "BOOL" => Value::Bool(inner.as_bool().ok_or_else(wrong)?),
        "NULL" => Value::Null,
        "M" => map(inner.as_object().ok_or_else(wrong)?, depth + 1, path)?,
        "L" => Value::Array(
            list()?
                .iter()
                .enumerate()
                .map(|(i, e)| value(e, depth + 1, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        "SS" | "BS" => Value::Array(
            list()?
                .iter()
                .map(|e| e.as_str().map(|s| Value::String(s.to_string())))
                .collect::<Option<_>>()
                .ok_or_else(wrong)?,
        ),
        "NS" => Value::Array(
            list()?
                .iter()
                .map(|e| e.as_str().and_then(number))
                .collect::<Option<_>>()
                .ok_or_else(wrong)?,
        ),
        _ => {
            return Err(format!(
                "attribute {path}: `{kind}` is not a DynamoDB type (S, N, B, BOOL, NULL, M, L, SS, NS, BS)"
            ));
        }
    })
}

/// A DynamoDB number: exactly as a JSON number when one holds it, else its text; `None` when it
/// is not a number at all.
fn number(text: &str) -> Option<Value> {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(Value::from(i));
    }
    if let Ok(u) = t.parse::<u64>() {
        return Some(Value::from(u));
    }
    let f: f64 = t.parse().ok().filter(|f: &f64| f.is_finite())?;
    // Significant digits of the decimal: a double holds 15 exactly.
    let mantissa = t.split(['e', 'E']).next().unwrap_or(t);
    let digits = mantissa
        .trim_start_matches(['-', '+'])
        .replace('.', "")
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len();
    Some(if digits <= 15 {
        serde_json::Number::from_f64(f).map_or(Value::String(t.to_string()), Value::Number)
    } else {
        Value::String(t.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_type_reads_as_its_plain_json() {
        let image = json!({
            "id": {"S": "o-1001"},
            "total": {"N": "42.5"},
            "qty": {"N": "3"},
            "big": {"N": "123456789012345678901234567890"},
            "precise": {"N": "0.1234567890123456789"},
            "paid": {"BOOL": true},
            "note": {"NULL": true},
            "blob": {"B": "aGVsbG8="},
            "tags": {"SS": ["a", "b"]},
            "sizes": {"NS": ["1", "2.5"]},
            "blobs": {"BS": ["aGk="]},
            "lines": {"L": [{"M": {"sku": {"S": "x"}, "n": {"N": "-2"}}}, {"S": "free"}]},
        });
        let got = item(image.as_object().unwrap()).unwrap();
        assert_eq!(
            got,
            json!({
                "id": "o-1001", "total": 42.5, "qty": 3,
                "big": "123456789012345678901234567890", "precise": "0.1234567890123456789",
                "paid": true, "note": null, "blob": "aGVsbG8=", "tags": ["a", "b"],
                "sizes": [1, 2.5], "blobs": ["aGk="],
                "lines": [{"sku": "x", "n": -2}, "free"],
            })
        );
    }

    #[test]
    fn bad_and_deep_values_are_errors_that_say_where() {
        for (v, says) in [
            (
                json!({"a": {"Q": "x"}}),
                "attribute a: `Q` is not a DynamoDB type",
            ),
            (json!({"a": {"S": 1}}), "attribute a: `S` holds 1"),
            (json!({"a": {"N": "ten"}}), "attribute a: `N` holds \"ten\""),
            (
                json!({"a": {"S": "x", "N": "1"}}),
                "attribute a is not a DynamoDB attribute value",
            ),
            (
                json!({"a": {"L": [{"S": "x"}, 5]}}),
                "attribute a[1] is not",
            ),
            (
                json!({"a": {"M": {"b": {"NS": ["1", "x"]}}}}),
                "attribute a.b: `NS`",
            ),
        ] {
            let e = item(v.as_object().unwrap()).unwrap_err();
            assert!(e.contains(says), "{e} / {says}");
        }
        // Nested past DynamoDB's own limit: refused at the limit, not followed down.
        let mut deep = json!({"S": "leaf"});
        for _ in 0..100 {
            deep = json!({ "L": [deep] });
        }
        let e = item(json!({ "d": deep }).as_object().unwrap()).unwrap_err();
        assert!(e.contains("deeper than 32 levels"), "{e}");
    }
}
