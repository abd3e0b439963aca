//! SQL semantics end to end through `sluice replay`: an expression that fails on one row (an
//! overflow) makes that row a reject with the expression and the value in its reason, and never
//! fails its object or its Kinesis batch.

use crate::support::*;

/// A local-output config over `{n, page}` records with `stages`, writing NDJSON under `out`
/// and its rejects under `out/rejects`.
fn config(out: &std::path::Path, stages: &str) -> String {
    format!(
        "name = \"sem\"\n[input]\nformat = \"ndjson\"\nschema = {{ n = \"int64\", page = \"string\" }}\n\
         {stages}\n[output]\nuri = \"{}\"\nformat = \"ndjson\"\n[rejects]\nuri = \"{}\"\n",
        out.join("rows").display(),
        out.join("rejects").display()
    )
}

const RECORDS: &str = "{\"n\":1,\"page\":\"/a\"}\n{\"n\":9223372036854775807,\"page\":\"/max\"}\n{\"n\":3,\"page\":\"/c\"}\n";

#[test]
fn a_kinesis_batch_with_one_overflowing_record_rejects_it_and_writes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.ndjson");
    std::fs::write(&records, RECORDS).unwrap();
    let ev = sluice(&["event", "kinesis", records.to_str().unwrap()]);
    assert_eq!(ev.status.code(), Some(0), "{}", stderr(&ev));
    let event = dir.path().join("event.json");
    std::fs::write(&event, &ev.stdout).unwrap();
    let out = dir.path().join("out");
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        config(
            &out,
            "[[stage]]\ntype = \"filter\"\nwhere = \"n + 1 > 0\"\n[[stage]]\ntype = \"select\"\ncolumns = { page = \"page\", next = \"n + 1\" }",
        ),
    )
    .unwrap();
    // Delivered twice, as Lambda would redeliver: the same answer each time, never a failure.
    for _ in 0..2 {
        let o = sluice(&[
            "replay",
            cfg.to_str().unwrap(),
            event.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        let s = &summaries(&o)[0];
        assert_eq!(s["trigger"], "kinesis");
        assert_eq!(s["records_in"], 3, "{s}");
        assert_eq!(s["records_out"], 2, "{s}");
        assert_eq!(s["rejected"], 1, "{s}");
        assert_eq!(s["batch_item_failures"], serde_json::json!([]), "{s}");
        assert!(s["error"].is_null(), "{s}");
    }
    let rows = ndjson_values(&out.join("rows"));
    assert_eq!(
        rows,
        [
            serde_json::json!({"page": "/a", "next": 2}),
            serde_json::json!({"page": "/c", "next": 4})
        ]
    );
    let rejects = ndjson_values(&out.join("rejects"));
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    // The filter refused the second row it was given.
    assert_eq!(
        rejects[0]["position"],
        serde_json::json!({"stage": "filter", "row": 2})
    );
    let reason = rejects[0]["reason"].as_str().unwrap();
    assert!(reason.contains("n + 1"), "{reason}");
    assert!(reason.contains("9223372036854775807 + 1"), "{reason}");
    assert!(
        rejects[0]["raw"]
            .as_str()
            .unwrap()
            .contains("9223372036854775807"),
        "{rejects:?}"
    );
}

#[test]
fn an_object_whose_rows_all_overflow_succeeds_with_every_row_rejected() {
    // Every record was read: a stage refusing them is not "the wrong format", so the object
    // succeeds (with no rows) instead of failing and being retried forever.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let s = Scratch::new(
        &config(
            &out,
            "[[stage]]\ntype = \"select\"\ncolumns = { twice = \"n * 9223372036854775807\" }",
        ),
        "in",
        &[(
            "all.ndjson".into(),
            b"{\"n\":2}\n{\"n\":-3}\n{\"n\":4}\n".to_vec(),
        )],
    );
    let summary = s.replay();
    assert!(summary["error"].is_null(), "{summary}");
    assert_eq!(summary["records_in"], 3, "{summary}");
    assert_eq!(summary["records_out"], 0, "{summary}");
    assert_eq!(summary["rejected"], 3, "{summary}");
}

#[test]
fn a_global_aggregate_over_no_rows_writes_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let s = Scratch::new(
        &config(
            &out,
            "[[stage]]\ntype = \"filter\"\nwhere = \"n > 100\"\n[[stage]]\ntype = \"aggregate\"\ngroup_by = []\nmeasures = { hits = \"count(*)\", total = \"sum(n)\", top = \"max(page)\" }",
        ),
        "in",
        &[(
            "small.ndjson".into(),
            RECORDS.replace("9223372036854775807", "5").into_bytes(),
        )],
    );
    let summary = s.replay();
    assert!(summary["error"].is_null(), "{summary}");
    assert_eq!(
        ndjson_values(&out.join("rows")),
        // (NDJSON output leaves null values out.)
        [serde_json::json!({"hits": 0})]
    );
    // An empty object is an empty table too: with the schema declared, one row all the same.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let s = Scratch::new(
        &config(
            &out,
            "[[stage]]\ntype = \"aggregate\"\ngroup_by = []\nmeasures = { hits = \"count(*)\", total = \"sum(n)\" }",
        ),
        "in",
        &[("empty.ndjson".into(), Vec::new())],
    );
    let summary = s.replay();
    assert!(summary["error"].is_null(), "{summary}");
    assert_eq!(
        ndjson_values(&out.join("rows")),
        [serde_json::json!({"hits": 0})]
    );
}

/// The rows `sluice replay` writes for one object of `format` holding `body`, with `extra` input
/// settings, selecting `ts`: (rows, rejects).
fn timestamps_of(
    format: &str,
    extra: &str,
    ty: &str,
    body: &str,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = format!(
        "name = \"ts\"\n[input]\nformat = \"{format}\"\n{extra}\nschema = {{ ts = \"{ty}\" }}\n\
         [[stage]]\ntype = \"select\"\ncolumns = {{ ts = \"ts\" }}\n\
         [output]\nuri = \"{}\"\nformat = \"ndjson\"\n[rejects]\nuri = \"{}\"\n",
        out.join("rows").display(),
        out.join("rejects").display()
    );
    let s = Scratch::new(&cfg, "in", &[("t.txt".into(), body.as_bytes().to_vec())]);
    let summary = s.replay();
    assert!(summary["error"].is_null(), "{format}: {summary}");
    (
        ndjson_values(&out.join("rows")),
        ndjson_values(&out.join("rejects")),
    )
}

#[test]
fn every_format_reads_a_timestamp_by_one_rule() {
    // The same instants as RFC 3339, epoch seconds, milliseconds, microseconds, nanoseconds, a
    // fraction and a quoted number; then two that are out of range.
    let values = [
        "\"2023-11-14T22:13:20Z\"",
        "1700000000",
        "1700000000000",
        "1700000000000000",
        "1700000000000000000",
        "1700000000.5",
        "\"1700000000\"",
        "\"2023-11-15T00:13:20+02:00\"",
        "1e30",
        "\"10000-01-01T00:00:00Z\"",
    ];
    let want = [
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20.500Z",
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20Z",
    ];
    let ndjson: String = values.iter().map(|v| format!("{{\"ts\":{v}}}\n")).collect();
    let text: String = values
        .iter()
        .map(|v| format!("{}\n", v.trim_matches('"')))
        .collect();
    for (format, extra, body) in [
        ("ndjson", "", ndjson),
        ("csv", "header = true", format!("ts\n{text}")),
        ("lines", "pattern = '^(?P<ts>\\S+)$'", text.clone()),
    ] {
        let (rows, rejects) = timestamps_of(format, extra, "timestamp", &body);
        let got: Vec<&str> = rows.iter().map(|r| r["ts"].as_str().unwrap()).collect();
        assert_eq!(got, want, "{format}");
        assert_eq!(rejects.len(), 2, "{format}: {rejects:?}");
        for r in &rejects {
            let reason = r["reason"].as_str().unwrap();
            assert!(
                reason.contains("from the year 1 to 9999"),
                "{format}: {reason}"
            );
        }
    }
}

/// A declared unit counts in every format that takes a schema (issue 38: `lines` read
/// `timestamp(ms)` by magnitude, so 5000 was 01:23:20, not 5 ms after the epoch).
#[test]
fn a_declared_epoch_unit_overrides_the_magnitude() {
    for (format, extra, body) in [
        (
            "ndjson",
            "",
            "{\"ts\":1700000000}\n{\"ts\":\"2023-11-14T22:13:20Z\"}\n{\"ts\":5000}\n",
        ),
        (
            "json",
            "",
            "[{\"ts\":1700000000},{\"ts\":\"2023-11-14T22:13:20Z\"},{\"ts\":5000}]",
        ),
        (
            "csv",
            "header = true",
            "ts\n1700000000\n2023-11-14T22:13:20Z\n5000\n",
        ),
        (
            "lines",
            "pattern = '^(?P<ts>\\S+)$'",
            "1700000000\n2023-11-14T22:13:20Z\n5000\n",
        ),
    ] {
        let (rows, rejects) = timestamps_of(format, extra, "timestamp(ms)", body);
        assert!(rejects.is_empty(), "{format}: {rejects:?}");
        let got: Vec<&str> = rows.iter().map(|r| r["ts"].as_str().unwrap()).collect();
        assert_eq!(
            got,
            [
                "1970-01-20T16:13:20Z",
                "2023-11-14T22:13:20Z",
                "1970-01-01T00:00:05Z"
            ],
            "{format}"
        );
    }
}

#[test]
fn a_float32_beyond_its_range_is_a_reject() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = format!(
        "name = \"f\"\n[input]\nformat = \"ndjson\"\nschema = {{ x = \"float32\" }}\n\
         [output]\nuri = \"{}\"\nformat = \"ndjson\"\n[rejects]\nuri = \"{}\"\n",
        out.join("rows").display(),
        out.join("rejects").display()
    );
    let s = Scratch::new(
        &cfg,
        "in",
        &[(
            "f.ndjson".into(),
            b"{\"x\":1.5}\n{\"x\":1e39}\n{\"x\":-3.4e38}\n{\"x\":\"NaN\"}\n".to_vec(),
        )],
    );
    let summary = s.replay();
    assert_eq!(summary["rejected"], 1, "{summary}");
    assert_eq!(summary["records_out"], 3, "{summary}");
    let rejects = ndjson_values(&out.join("rejects"));
    assert!(rejects[0]["raw"].as_str().unwrap().contains("1e39"));
}

#[test]
fn a_stray_quote_in_a_csv_fails_the_object_instead_of_swallowing_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = format!(
        "name = \"c\"\n[input]\nformat = \"csv\"\nschema = {{ k = \"string\", n = \"int64\" }}\n\
         [output]\nuri = \"{}\"\nformat = \"ndjson\"\n[rejects]\nuri = \"{}\"\n",
        out.join("rows").display(),
        out.join("rejects").display()
    );
    let mut body = String::from("k,n\n\"oops,1\n");
    for i in 0..10_000 {
        body.push_str(&format!("r{i},{i}\n"));
    }
    let s = Scratch::new(
        &cfg,
        "in",
        &[
            ("bad.csv".into(), body.into_bytes()),
            ("good.csv".into(), b"k,n\na,1\nb,2\n".to_vec()),
        ],
    );
    let o = s.run();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let summary = &summaries(&o)[0];
    let error = summary["error"].as_str().unwrap();
    assert!(
        error.contains("bad.csv")
            && error.contains("opened in the record on line 2 is never closed"),
        "{error}"
    );
    // The good object of the same event is written whole; nothing of the bad one is.
    let rows = ndjson_values(&out.join("rows"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(!out.join("rejects").exists() || ndjson_values(&out.join("rejects")).is_empty());
}

#[test]
fn a_parquet_timestamp_out_of_range_is_a_reject_and_no_output_carries_an_error_text() {
    use arrow_array::{RecordBatch, TimestampMicrosecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new(
        "ts",
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    )]));
    let ts = TimestampMicrosecondArray::from(vec![1_700_000_000_000_000, i64::MAX, i64::MIN + 1])
        .with_timezone("UTC");
    let batch = RecordBatch::try_new(schema.clone(), vec![std::sync::Arc::new(ts)]).unwrap();
    let mut file = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut file, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = format!(
        "name = \"p\"\n[input]\nformat = \"parquet\"\n\
         [[stage]]\ntype = \"select\"\ncolumns = {{ ts = \"ts\", text = \"cast(ts AS string)\", day = \"date(ts)\" }}\n\
         [output]\nuri = \"{}\"\nformat = \"ndjson\"\n[rejects]\nuri = \"{}\"\n",
        out.join("rows").display(),
        out.join("rejects").display()
    );
    let s = Scratch::new(&cfg, "in", &[("t.parquet".into(), file)]);
    let summary = s.replay();
    assert!(summary["error"].is_null(), "{summary}");
    assert_eq!(summary["records_out"], 1, "{summary}");
    assert_eq!(summary["rejected"], 2, "{summary}");
    let rows = lines_in(&out.join("rows"));
    assert_eq!(
        rows,
        [
            "{\"ts\":\"2023-11-14T22:13:20Z\",\"text\":\"2023-11-14T22:13:20Z\",\"day\":\"2023-11-14\"}"
        ]
    );
    let rejects = lines_in(&out.join("rejects"));
    assert!(rejects.iter().all(|r| !r.contains("ERROR")), "{rejects:?}");
    let first: serde_json::Value = serde_json::from_str(&rejects[0]).unwrap();
    assert_eq!(first["position"], serde_json::json!({"line": 2}));
    assert!(first["reason"].as_str().unwrap().contains("out of range"));
}

/// Issue 39: NDJSON output wrote inf and NaN as `null` without a word, while Parquet kept them.
/// Every float a select makes, through every output format and read back by Sluice, is the
/// same value, bit for bit.
#[test]
fn every_float_round_trips_through_every_output_format() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = b"{\"x\":1.0,\"y\":0.0}\n{\"x\":-1.0,\"y\":0.0}\n{\"x\":0.0,\"y\":0.0}\n\
{\"x\":0.1,\"y\":3.0}\n{\"x\":-0.0,\"y\":1.0}\n{\"x\":1e308,\"y\":1e-10}\n{\"x\":null,\"y\":1.0}\n";
    let want: Vec<Option<u64>> = vec![
        Some(f64::INFINITY.to_bits()),
        Some(f64::NEG_INFINITY.to_bits()),
        None, // NaN: any NaN; checked below
        Some((0.1f64 / 3.0).to_bits()),
        Some((-0.0f64).to_bits()),
        Some(f64::INFINITY.to_bits()),
        None,
    ];
    let floats = |values: &[serde_json::Value]| -> Vec<Option<f64>> {
        values
            .iter()
            .map(|v| match &v["f"] {
                serde_json::Value::Null => None,
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::String(s) => Some(match s.as_str() {
                    "Infinity" => f64::INFINITY,
                    "-Infinity" => f64::NEG_INFINITY,
                    "NaN" => f64::NAN,
                    other => panic!("{other}"),
                }),
                other => panic!("{other}"),
            })
            .collect()
    };
    let check = |got: Vec<Option<f64>>, how: &str| {
        assert_eq!(got.len(), want.len(), "{how}: {got:?}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            match (i, g) {
                (2, Some(g)) => assert!(g.is_nan(), "{how} row {i}: {g}"),
                (6, None) => {}
                (_, Some(g)) => assert_eq!(Some(g.to_bits()), *w, "{how} row {i}: {g}"),
                (_, None) => panic!("{how} row {i}: null"),
            }
        }
    };
    for format in ["ndjson", "parquet"] {
        let rows = out.join(format);
        let cfg = format!(
            "name = \"fl\"\n[input]\nformat = \"ndjson\"\nschema = {{ x = \"float64\", y = \"float64\" }}\n\
             [[stage]]\ntype = \"select\"\ncolumns = {{ f = \"x / y\" }}\n\
             [output]\nuri = \"{}\"\nformat = \"{format}\"\n",
            rows.display()
        );
        let s = Scratch::new(&cfg, "in", &[("f.ndjson".into(), input.to_vec())]);
        assert_eq!(s.replay()["records_out"], 7);
        let written = if format == "ndjson" {
            ndjson_values(&rows)
        } else {
            parquet_values(&rows)
        };
        check(floats(&written), format);
        // Read back by Sluice: the NDJSON output as input, through to Parquet.
        if format == "ndjson" {
            let text = lines_in(&rows).join("\n") + "\n";
            assert!(
                text.contains("\"Infinity\"") && text.contains("\"NaN\""),
                "{text}"
            );
            let back = out.join("back");
            let cfg = format!(
                "name = \"back\"\n[input]\nformat = \"ndjson\"\nschema = {{ f = \"float64\" }}\n\
                 [output]\nuri = \"{}\"\n",
                back.display()
            );
            let s = Scratch::new(&cfg, "in", &[("back.ndjson".into(), text.into_bytes())]);
            let summary = s.replay();
            assert_eq!(
                (
                    summary["records_out"].as_u64(),
                    summary["rejected"].as_u64()
                ),
                (Some(7), Some(0))
            );
            check(floats(&parquet_values(&back)), "ndjson read back");
        }
    }
}

/// Issue 38: duplicate keys in a JSON object are documented (the first wins) and now tested, in
/// NDJSON with and without a schema and in JSON documents.
#[test]
fn the_first_of_duplicate_json_keys_wins() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for (format, schema, body) in [
        (
            "ndjson",
            "schema = { a = \"int64\", s = \"string\" }",
            "{\"a\":1,\"s\":\"x\",\"a\":2,\"s\":\"y\"}\n",
        ),
        ("ndjson", "", "{\"a\":1,\"s\":\"x\",\"a\":2,\"s\":\"y\"}\n"),
        (
            "json",
            "schema = { a = \"int64\", s = \"string\" }",
            "[{\"a\":1,\"s\":\"x\",\"a\":2,\"s\":\"y\"}]",
        ),
        ("json", "", "[{\"a\":1,\"s\":\"x\",\"a\":2,\"s\":\"y\"}]"),
    ] {
        let rows = out.join(format!("{format}-{}", schema.len()));
        let cfg = format!(
            "name = \"dup\"\n[input]\nformat = \"{format}\"\n{schema}\n[output]\nuri = \"{}\"\nformat = \"ndjson\"\n",
            rows.display()
        );
        let s = Scratch::new(&cfg, "in", &[("d.json".into(), body.as_bytes().to_vec())]);
        let summary = s.replay();
        assert_eq!(summary["records_out"], 1, "{format} {schema}: {summary}");
        let got = ndjson_values(&rows);
        assert_eq!(got[0]["a"], 1, "{format} {schema}: {got:?}");
        assert_eq!(got[0]["s"], "x", "{format} {schema}: {got:?}");
    }
}
