//! Rows as JSON lines, written so that Sluice reads them back as the same values.
//!
//! arrow-json writes a float that is not finite as `null`, so an NDJSON output (or a Kinesis
//! record, or a reject's values) lost `1.0 / 0.0` without a word while Parquet kept it. Here
//! infinities and NaN are written as the decoders read them — the strings `"Infinity"`,
//! `"-Infinity"` and `"NaN"`, as PostgreSQL, DuckDB and Spark spell them — and every other value
//! exactly as arrow-json writes it.

use std::sync::{Arc, LazyLock};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type};
use arrow_array::{Array, RecordBatch};
use arrow_json::writer::{EncoderFactory, EncoderOptions, NullableEncoder, make_encoder};
use arrow_json::{Encoder, LineDelimitedWriter, WriterBuilder};
use arrow_schema::{ArrowError, DataType, FieldRef};

/// `batch` as JSON lines, each ending in `\n`.
pub fn ndjson(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let mut w: LineDelimitedWriter<Vec<u8>> = WriterBuilder::new()
        .with_encoder_factory(Arc::new(NonFinite))
        .build(Vec::new());
    w.write(batch)?;
    w.finish()?;
    Ok(w.into_inner())
}

/// arrow-json's own options, without this factory: the encoder finite values go to.
static PLAIN: LazyLock<EncoderOptions> = LazyLock::new(EncoderOptions::default);

#[derive(Debug)]
struct NonFinite;

impl EncoderFactory for NonFinite {
    fn make_default_encoder<'a>(
        &self,
        field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let value: Box<dyn Fn(usize) -> f64 + 'a> = match array.data_type() {
            DataType::Float64 => {
                let a = array.as_primitive::<Float64Type>();
                Box::new(move |i| a.value(i))
            }
            DataType::Float32 => {
                let a = array.as_primitive::<Float32Type>();
                Box::new(move |i| f64::from(a.value(i)))
            }
            _ => return Ok(None),
        };
        let plain = make_encoder(field, array, &PLAIN)?;
        let nulls = array.logical_nulls();
        Ok(Some(NullableEncoder::new(
            Box::new(FloatEncoder { value, plain }),
            nulls,
        )))
    }
}

struct FloatEncoder<'a> {
    value: Box<dyn Fn(usize) -> f64 + 'a>,
    plain: NullableEncoder<'a>,
}

impl Encoder for FloatEncoder<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let v = (self.value)(idx);
        if v.is_nan() {
            out.extend_from_slice(b"\"NaN\"");
        } else if v == f64::INFINITY {
            out.extend_from_slice(b"\"Infinity\"");
        } else if v == f64::NEG_INFINITY {
            out.extend_from_slice(b"\"-Infinity\"");
        } else {
            self.plain.encode(idx, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float32Array, Float64Array, Int64Array};
    use arrow_schema::{Field, Schema};

    #[test]
    fn non_finite_floats_are_written_as_the_decoders_read_them() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("f", DataType::Float64, true),
            Field::new("g", DataType::Float32, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Float64Array::from(vec![
                    Some(f64::INFINITY),
                    Some(f64::NEG_INFINITY),
                    Some(f64::NAN),
                    Some(1.5),
                    Some(-0.0),
                    Some(1e300),
                    None,
                ])),
                Arc::new(Float32Array::from(vec![
                    Some(f32::INFINITY),
                    Some(f32::NEG_INFINITY),
                    Some(f32::NAN),
                    Some(0.1),
                    None,
                    Some(2.0),
                    Some(3.0),
                ])),
                Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5, 6, 7])),
            ],
        )
        .unwrap();
        let text = String::from_utf8(ndjson(&batch).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], r#"{"f":"Infinity","g":"Infinity","n":1}"#);
        assert_eq!(lines[1], r#"{"f":"-Infinity","g":"-Infinity","n":2}"#);
        assert_eq!(lines[2], r#"{"f":"NaN","g":"NaN","n":3}"#);
        // Finite values and nulls exactly as arrow-json writes them.
        let mut plain = arrow_json::LineDelimitedWriter::new(Vec::new());
        plain.write(&batch.slice(3, 4)).unwrap();
        plain.finish().unwrap();
        assert_eq!(
            lines[3..].join("\n") + "\n",
            String::from_utf8(plain.into_inner()).unwrap()
        );
        // And they read back as the same values.
        let mut d = crate::decode::ndjson::NdjsonDecoder::builder()
            .with_schema(schema)
            .build();
        let mut out = crate::decode::Decoded::default();
        crate::decode::Decoder::decode(&mut d, text.as_bytes(), &mut out).unwrap();
        crate::decode::Decoder::finish(&mut d, &mut out).unwrap();
        assert!(out.rejects.is_empty(), "{:?}", out.rejects);
        let back = arrow_select::concat::concat_batches(&batch.schema(), &out.batches).unwrap();
        let (a, b) = (
            back.column(0).as_primitive::<Float64Type>(),
            batch.column(0).as_primitive::<Float64Type>(),
        );
        for i in 0..7 {
            assert_eq!(a.is_null(i), b.is_null(i));
            if !a.is_null(i) {
                assert_eq!(a.value(i).to_bits(), b.value(i).to_bits(), "row {i}");
            }
        }
        let g = back.column(1).as_primitive::<Float32Type>();
        assert!(g.value(0).is_infinite() && g.value(2).is_nan() && g.value(3) == 0.1);
    }
}
