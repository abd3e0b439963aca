//! Bytes → Arrow record batches, and rejects for what does not decode.
//!
//! A [`Decoder`] is fed an object's (decompressed) bytes in chunks of any size, as they arrive, and
//! emits bounded batches plus [`Reject`](crate::Reject)s with reasons. Memory is bounded by the batch
//! size and the longest allowed record, never by the object size.

#[cfg(feature = "json")]
pub mod ndjson;

use arrow_array::RecordBatch;
use arrow_schema::{Field, Schema, SchemaRef};

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

/// Build a schema from `(name, type name)` pairs as written in `[input] schema`.
pub fn schema_from_types<'a>(columns: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<SchemaRef, Error> {
    let mut fields = Vec::new();
    for (name, ty) in columns {
        let dt = crate::expr::parse_type(ty).ok_or_else(|| {
            Error::Schema(format!("column `{name}` has unknown type `{ty}`; valid types: {}", crate::expr::TYPE_NAMES))
        })?;
        fields.push(Field::new(name, dt, true));
    }
    Ok(std::sync::Arc::new(Schema::new(fields)))
}
