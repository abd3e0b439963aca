//! The pipeline's output schema against a table's: the schema a new table is created with, the
//! check that a batch fits the table, and the batch made into the table's own Arrow form.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, new_null_array};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::Error;

/// Most levels of nesting a column type may have (a struct in a list in a struct…).
const MAX_DEPTH: usize = 32;

/// How a table keeps timestamps: `timestamptz` (UTC instants, Iceberg's own), or, for a catalog
/// whose client cannot write that type (the `iceberg` crate's Glue catalog refuses it),
/// `timestamp` holding the UTC wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zones {
    /// Zoned timestamps stay `timestamptz`.
    Kept,
    /// Every timestamp is `timestamp`, in UTC.
    Utc,
}

/// The Arrow type Iceberg stores `ty` as: its integers widened to int or long, timestamps in
/// microseconds, strings and binaries in their plain form, dictionaries as their values; an
/// error names what Iceberg has no type for.
fn stored(ty: &DataType, depth: usize, zones: Zones) -> Result<DataType, String> {
    if depth > MAX_DEPTH {
        return Err(format!("is nested more than {MAX_DEPTH} deep"));
    }
    use DataType as T;
    Ok(match ty {
        T::Boolean | T::Int32 | T::Int64 | T::Float32 | T::Float64 | T::Date32 => ty.clone(),
        T::Int8 | T::Int16 | T::UInt8 | T::UInt16 => T::Int32,
        T::UInt32 | T::UInt64 => T::Int64,
        T::Float16 => T::Float32,
        T::Date64 => T::Date32,
        T::Timestamp(_, tz) => T::Timestamp(
            TimeUnit::Microsecond,
            tz.as_ref()
                .filter(|_| zones == Zones::Kept)
                .map(|_| Arc::from(iceberg::arrow::UTC_TIME_ZONE)),
        ),
        T::Time32(_) | T::Time64(_) => T::Time64(TimeUnit::Microsecond),
        T::Utf8 | T::LargeUtf8 | T::Utf8View => T::Utf8,
        T::Binary | T::LargeBinary | T::BinaryView => T::LargeBinary,
        T::FixedSizeBinary(n) => T::FixedSizeBinary(*n),
        T::Decimal128(p, s) if *p <= 38 => T::Decimal128(*p, *s),
        T::Dictionary(_, v) => stored(v, depth + 1, zones)?,
        T::List(f) | T::LargeList(f) | T::ListView(f) | T::LargeListView(f) => {
            T::List(Arc::new(field(f, depth + 1, zones)?))
        }
        T::Struct(fs) => T::Struct(
            fs.iter()
                .map(|f| field(f, depth + 1, zones))
                .collect::<Result<Vec<_>, _>>()?
                .into(),
        ),
        T::Map(f, sorted) => T::Map(Arc::new(field(f, depth + 1, zones)?), *sorted),
        other => {
            return Err(format!(
                "is {}, which an Iceberg table has no type for",
                sluice_processors::expr::a_type(other)
            ));
        }
    })
}

/// `f` as a table column: its stored type, optional (a later object may lack it), no metadata.
fn field(f: &Field, depth: usize, zones: Zones) -> Result<Field, String> {
    Ok(Field::new(
        f.name(),
        stored(f.data_type(), depth, zones)?,
        true,
    ))
}

/// The Iceberg schema a table made for `schema` has (field ids assigned in order).
pub(crate) fn table_schema(
    schema: &SchemaRef,
    zones: Zones,
) -> Result<iceberg::spec::Schema, String> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| field(f, 0, zones).map_err(|m| format!("column `{}` {m}", f.name())))
        .collect::<Result<Vec<_>, _>>()?;
    iceberg::arrow::arrow_schema_to_schema_auto_assign_ids(&Schema::new(fields))
        .map_err(|e| format!("making the table's schema: {e}"))
}

/// The columns of `schema` that table schema `table` has no column of that name for.
pub(crate) fn missing(table: &iceberg::spec::SchemaRef, schema: &SchemaRef) -> Vec<Field> {
    schema
        .fields()
        .iter()
        .filter(|f| table.field_by_name(f.name()).is_none())
        .map(|f| f.as_ref().clone())
        .collect()
}

/// The Iceberg type a new column for `f` gets (ids inside it are assigned by the commit).
pub(crate) fn column_type(f: &Field, zones: Zones) -> Result<iceberg::spec::Type, String> {
    let one = Arc::new(Schema::new(vec![f.clone()]));
    let s = table_schema(&one, zones)?;
    s.as_struct()
        .fields()
        .first()
        .map(|c| c.field_type.as_ref().clone())
        .ok_or_else(|| format!("column `{}` has no type", f.name()))
}

/// Whether rows of `schema` fit table `name` of schema `table`: every column the table has (by
/// name) at a type that converts to the table's without loss; an error names the first that
/// does not.
pub(crate) fn check(
    table: &iceberg::spec::SchemaRef,
    schema: &SchemaRef,
    name: &str,
) -> Result<(), Error> {
    let target = iceberg::arrow::schema_to_arrow_schema(table)
        .map_err(|e| Error::Internal(format!("table {name}'s schema in Arrow: {e}")))?;
    for f in schema.fields() {
        let Ok(t) = target.field_with_name(f.name()) else {
            return Err(Error::Data(format!(
                "column `{}` is not in table {name} (its columns are {})",
                f.name(),
                target
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let ours = stored(f.data_type(), 0, Zones::Kept)
            .map_err(|m| Error::Data(format!("column `{}` {m}", f.name())))?;
        if !fits(&ours, t.data_type()) {
            return Err(Error::Data(format!(
                "column `{}` is {} here and {} in table {name}; an incompatible change commits nothing",
                f.name(),
                sluice_processors::expr::a_type(f.data_type()),
                sluice_processors::expr::a_type(t.data_type()),
            )));
        }
    }
    Ok(())
}

/// Whether a value stored as `ours` goes into a column of type `theirs` without loss: the same
/// type (field names and ids aside), or a safe widening (int to long, float to double).
fn fits(ours: &DataType, theirs: &DataType) -> bool {
    use DataType as T;
    match (ours, theirs) {
        (T::Int32, T::Int64) | (T::Float32, T::Float64) => true,
        // An instant goes into a `timestamp` column as its UTC time (see [`Zones`]).
        (T::Timestamp(u1, a), T::Timestamp(u2, b)) => u1 == u2 && (a.is_some() || b.is_none()),
        (T::List(a), T::List(b) | T::LargeList(b)) => fits(a.data_type(), b.data_type()),
        (T::LargeBinary, T::LargeBinary | T::Binary) => true,
        (T::Struct(a), T::Struct(b)) => a.iter().all(|f| {
            b.iter()
                .find(|g| g.name() == f.name())
                .is_some_and(|g| fits(f.data_type(), g.data_type()))
        }),
        (T::Map(a, _), T::Map(b, _)) => fits(a.data_type(), b.data_type()),
        _ => ours == theirs,
    }
}

/// `batch` as the table's Arrow schema `target` (its field ids, its order): each column found
/// by name and cast to the table's type, a column the batch lacks all null.
pub(crate) fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, Error> {
    let schema = batch.schema();
    let opts = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for t in target.fields() {
        let col = match schema.index_of(t.name()) {
            Ok(i) => {
                let c = batch.column(i);
                if c.data_type() == t.data_type() {
                    c.clone()
                } else {
                    arrow_cast::cast_with_options(c, t.data_type(), &opts).map_err(|e| {
                        Error::Data(format!(
                            "column `{}` does not convert to the table's {}: {e}",
                            t.name(),
                            sluice_processors::expr::a_type(t.data_type())
                        ))
                    })?
                }
            }
            Err(_) => new_null_array(t.data_type(), batch.num_rows()),
        };
        columns.push(col);
    }
    RecordBatch::try_new(target.clone(), columns)
        .map_err(|e| Error::Data(format!("rows for the table: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, StringArray, TimestampMillisecondArray};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int32, false),
            Field::new("s", DataType::Utf8, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a"), None])),
                Arc::new(TimestampMillisecondArray::from(vec![1_000, 2_000]).with_timezone("UTC")),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn a_new_table_takes_every_column_optional_with_stored_types() {
        let s = table_schema(&batch().schema(), Zones::Kept).expect("schema");
        let names: Vec<_> = s
            .as_struct()
            .fields()
            .iter()
            .map(|f| (f.id, f.name.clone(), f.required))
            .collect();
        assert_eq!(
            names,
            vec![
                (1, "n".to_string(), false),
                (2, "s".to_string(), false),
                (3, "ts".to_string(), false)
            ]
        );
        let arrow = iceberg::arrow::schema_to_arrow_schema(&s).expect("arrow");
        assert_eq!(
            arrow.field(2).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
        );
        // For a catalog that cannot write timestamptz (Glue), UTC wall time in `timestamp`.
        let utc = table_schema(&batch().schema(), Zones::Utc).expect("schema");
        assert_eq!(
            utc.field_by_name("ts").map(|f| f.field_type.to_string()),
            Some("timestamp".to_string())
        );
    }

    #[test]
    fn rows_are_conformed_to_the_table_and_misfits_named() {
        let b = batch();
        let ice = Arc::new(table_schema(&b.schema(), Zones::Kept).expect("schema"));
        let target = Arc::new(iceberg::arrow::schema_to_arrow_schema(&ice).expect("arrow"));
        let out = conform(&b, &target).expect("conform");
        assert_eq!(out.schema(), target);
        let ts = out
            .column(2)
            .as_any()
            .downcast_ref::<arrow_array::TimestampMicrosecondArray>()
            .expect("µs");
        assert_eq!(ts.value(1), 2_000_000);
        check(&ice, &b.schema(), "a.t").expect("fits");

        // A column the table lacks, and a narrowing, are refused by name.
        let extra = Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, true)]));
        let e = check(&ice, &extra, "a.t").expect_err("extra column");
        assert!(
            e.to_string().contains("column `x` is not in table a.t"),
            "{e}"
        );
        let narrower = Arc::new(Schema::new(vec![Field::new("s", DataType::Int64, true)]));
        let e = check(&ice, &narrower, "a.t").expect_err("string to long");
        assert!(e.to_string().contains("column `s`"), "{e}");
        // Safe widening goes in.
        let long = Arc::new(
            table_schema(
                &Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)])),
                Zones::Kept,
            )
            .expect("schema"),
        );
        let int = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, true)]));
        check(&long, &int, "a.t").expect("int into long");
    }
}
