use super::files::split;
use super::*;

#[test]
fn base_names_are_deterministic_and_distinct() {
    let a = base_name("b", "logs/2026/a.ndjson.gz", Some("v1"));
    assert_eq!(a, base_name("b", "logs/2026/a.ndjson.gz", Some("v1")));
    assert!(a.starts_with("a-") && a.len() == 2 + 16, "{a}");
    assert_ne!(a, base_name("b", "logs/2026/a.ndjson.gz", Some("v2")));
    assert_ne!(a, base_name("b", "logs/2027/a.ndjson.gz", Some("v1")));
    assert_ne!(base_name("ab", "c", None), base_name("a", "bc", None));
    assert!(base_name("b", "dir/.hidden", None).len() == 16);
    assert!(base_name("b", "x/web+app events (2).ndjson", None).starts_with("web-app-events-2-"));
}

/// Issue 27: a 5 000-character value failed its object ("File name too long"), and the
/// literal text `__HIVE_DEFAULT_PARTITION__` shared the nulls' folder.
#[test]
fn long_values_are_cut_with_a_digest_and_the_null_name_is_escaped() {
    use arrow_array::StringArray;
    use arrow_schema::{DataType, Field, Schema};
    let long_a = "a".repeat(5000);
    let long_b = format!("{}b", "a".repeat(4999));
    let uni = "é/".repeat(100);
    let schema = Arc::new(Schema::new(vec![
        Field::new("p", DataType::Utf8, true),
        Field::new("n", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec![
                Some(long_a.as_str()),
                Some(long_b.as_str()),
                Some(NULL_PARTITION),
                None,
                Some(uni.as_str()),
                Some("short"),
            ])),
            Arc::new(StringArray::from(vec!["x"; 6])),
        ],
    )
    .unwrap();
    let (groups, _) = split(&batch, &["p".to_string()]).unwrap();
    let paths: Vec<&str> = groups.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(paths.len(), 6, "{paths:?}");
    for p in &paths {
        let value = &p["p=".len()..p.len() - 1];
        assert!(value.len() <= MAX_PARTITION_VALUE_BYTES, "{p}");
        assert!(!value.contains('/'), "{p}");
    }
    assert_ne!(paths[0], paths[1]);
    assert!(paths[0].starts_with("p=aaaa") && paths[0].contains('~'));
    assert_eq!(paths[2], "p=%5F_HIVE_DEFAULT_PARTITION__/");
    assert_eq!(paths[3], format!("p={NULL_PARTITION}/"));
    // A cut never splits an escape: what is left before the digest decodes.
    let cut = paths[4]["p=".len()..].split('~').next().unwrap();
    let decoded = percent_encoding::percent_decode_str(cut)
        .decode_utf8()
        .unwrap();
    assert!(uni.starts_with(decoded.as_ref()), "{cut}");
    assert_eq!(paths[5], "p=short/");
}

#[test]
fn minus_zero_and_zero_are_one_partition_and_every_nan_another() {
    use arrow_array::{Float64Array, Int64Array};
    use arrow_schema::{DataType, Field, Schema};
    let schema = Arc::new(Schema::new(vec![
        Field::new("f", DataType::Float64, true),
        Field::new("n", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Float64Array::from(vec![
                Some(-0.0),
                Some(0.0),
                Some(f64::NAN),
                Some(f64::from_bits(0xfff8_0000_0000_0000)),
                None,
            ])),
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
        ],
    )
    .unwrap();
    let (groups, data) = split(&batch, &["f".to_string()]).unwrap();
    assert_eq!(
        groups,
        [
            ("f=0.0/".to_string(), vec![0, 1]),
            ("f=NaN/".to_string(), vec![2, 3]),
            (format!("f={NULL_PARTITION}/"), vec![4]),
        ]
    );
    assert_eq!(data.num_columns(), 1);
}

#[test]
fn a_column_gets_a_dictionary_when_its_values_repeat_enough_to_be_smaller_so() {
    use arrow_array::{BooleanArray, Float64Array, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    let n = 5000;
    let schema = Arc::new(Schema::new(vec![
        Field::new("unique_ids", DataType::Utf8, true),
        Field::new("pages", DataType::Utf8, true),
        Field::new("ts", DataType::Int64, true),
        Field::new("status", DataType::Int64, true),
        Field::new("ratio", DataType::Float64, true),
        Field::new("all_null", DataType::Int64, true),
        Field::new("flag", DataType::Boolean, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("u{i:06}")),
            )),
            Arc::new(StringArray::from_iter(
                (0..n).map(|i| (i % 9 != 0).then(|| format!("/page/{}", i % 7))),
            )),
            Arc::new(Int64Array::from_iter_values(
                (0..n as i64).map(|i| 1_764_000_000_000_000 + i * 997),
            )),
            Arc::new(Int64Array::from_iter_values(
                (0..n as i64).map(|i| [200, 200, 301, 404, 500][i as usize % 5]),
            )),
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| i as f64 / 7.0),
            )),
            Arc::new(Int64Array::from(vec![None; n])),
            Arc::new(BooleanArray::from_iter((0..n).map(|i| Some(i % 2 == 0)))),
        ],
    )
    .unwrap();
    let choices = dictionary_choices(&batch);
    assert_eq!(
        choices,
        [
            ("unique_ids".to_string(), false),
            ("pages".to_string(), true),
            ("ts".to_string(), false),
            ("status".to_string(), true),
            ("ratio".to_string(), false),
        ],
        "all-null and boolean columns keep Parquet's default"
    );
    // Decided on the first rows of a sliced batch, and not at all on a small first batch.
    let sliced = batch.slice(1000, 4000);
    assert_eq!(dictionary_choices(&sliced), choices);
    assert!(dictionary_choices(&batch.slice(0, 1000)).is_empty());
}
