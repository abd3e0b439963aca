//! Bytes → Arrow record batches, and rejects for what does not decode.
//!
//! A [`Decoder`] is fed an object's (decompressed) bytes in chunks of any size, as they arrive, and
//! emits bounded batches plus [`Reject`](crate::Reject)s with reasons. Memory is bounded by the batch
//! size and the longest allowed record, never by the object size.

pub mod aws;
pub mod csv;
#[cfg(feature = "json")]
mod fastjson;
#[cfg(feature = "json")]
pub mod jsondoc;
mod lines;
pub mod logs;
#[cfg(feature = "json")]
pub mod ndjson;
mod row;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

use crate::{Error, Reject};

/// What a decoder produced from the bytes pushed so far.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Complete batches, in input order.
    pub batches: Vec<RecordBatch>,
    /// Records that could not be decoded, in input order.
    pub rejects: Vec<Reject>,
}

/// Streaming bytes-to-batches decoding.
pub trait Decoder: Send {
    /// Consume `buf` (any amount; a record may span calls) and emit what is complete.
    fn decode(&mut self, buf: &[u8], out: &mut Decoded) -> Result<(), Error>;
    /// End of input: decode what is buffered. Called exactly once.
    fn finish(&mut self, out: &mut Decoded) -> Result<(), Error>;
    /// The schema of emitted batches, once known (declared, or inferred from the first records).
    fn schema(&self) -> Option<SchemaRef>;
}

#[cfg(feature = "json")]
fn fastjson_metadata() -> &'static str {
    fastjson::JSON_METADATA
}

#[cfg(not(feature = "json"))]
fn fastjson_metadata() -> &'static str {
    "sluice.json"
}

/// Build a schema from `(name, type name)` pairs as written in `[input] schema`. A dotted name such
/// as `geo.country` declares a field of a struct column (`geo`), which is decoded from a nested object.
pub fn schema_from_types<'a>(
    columns: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<SchemaRef, Error> {
    // (name, leaf type or children) in first-seen order.
    enum Node {
        Leaf(DataType, bool),
        Struct(Vec<(String, Node)>),
    }
    fn insert(
        nodes: &mut Vec<(String, Node)>,
        path: &[&str],
        dt: DataType,
        full: &str,
        json: bool,
    ) -> Result<(), Error> {
        let pos = nodes.iter().position(|(n, _)| n == path[0]);
        if path.len() == 1 {
            if pos.is_some() {
                return Err(Error::Schema(format!("column `{full}` is declared twice")));
            }
            nodes.push((path[0].to_string(), Node::Leaf(dt, json)));
            return Ok(());
        }
        let i = match pos {
            Some(i) => i,
            None => {
                nodes.push((path[0].to_string(), Node::Struct(Vec::new())));
                nodes.len() - 1
            }
        };
        match &mut nodes[i].1 {
            Node::Struct(children) => insert(children, &path[1..], dt, full, json),
            Node::Leaf(..) => Err(Error::Schema(format!(
                "`{}` is declared as a value and as a struct by `{full}`",
                path[0]
            ))),
        }
    }
    fn fields(nodes: Vec<(String, Node)>) -> Vec<Field> {
        nodes
            .into_iter()
            .map(|(name, n)| match n {
                Node::Leaf(dt, false) => Field::new(name, dt, true),
                Node::Leaf(dt, true) => Field::new(name, dt, true).with_metadata(
                    [(fastjson_metadata().to_string(), "true".to_string())]
                        .into_iter()
                        .collect::<std::collections::HashMap<String, String>>(),
                ),
                Node::Struct(children) => {
                    Field::new(name, DataType::Struct(Fields::from(fields(children))), true)
                }
            })
            .collect()
    }
    let mut nodes = Vec::new();
    for (name, ty) in columns {
        let dt = crate::expr::parse_type(ty).ok_or_else(|| {
            Error::Schema(format!(
                "column `{name}` has unknown type `{ty}`; valid types: {}",
                crate::expr::TYPE_NAMES
            ))
        })?;
        let path: Vec<&str> = name.split('.').collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(Error::Schema(format!(
                "column name `{name}` has an empty part"
            )));
        }
        insert(&mut nodes, &path, dt, name, ty.eq_ignore_ascii_case("json"))?;
    }
    Ok(std::sync::Arc::new(Schema::new(fields(nodes))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_names_declare_struct_fields() {
        let s = schema_from_types([
            ("ts", "timestamp"),
            ("geo.country", "string"),
            ("geo.lat", "float64"),
            ("n", "int64"),
        ])
        .unwrap();
        assert_eq!(s.fields().len(), 3);
        let DataType::Struct(children) = s.field(1).data_type() else {
            panic!("{s:?}")
        };
        assert_eq!(children.len(), 2);
        assert_eq!(children[1].data_type(), &DataType::Float64);
        assert!(schema_from_types([("a", "string"), ("a.b", "string")]).is_err());
        assert!(schema_from_types([("a", "string"), ("a", "int64")]).is_err());
        assert!(
            schema_from_types([("a", "blob")])
                .unwrap_err()
                .to_string()
                .contains("valid types")
        );
    }
}
