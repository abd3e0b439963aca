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
    // The filter refused the second record, shown as it came in.
    assert_eq!(
        rejects[0]["position"],
        serde_json::json!({"line": 2, "stage": "filter"})
    );
    assert_eq!(
        rejects[0]["raw"],
        "{\"n\":9223372036854775807,\"page\":\"/max\"}"
    );
    // With a stream column each record's rows are tagged and gathered: still traced.
    let tagged = dir.path().join("tagged");
    std::fs::write(
        &cfg,
        config(
            &tagged,
            "[[stage]]\ntype = \"select\"\ncolumns = { key = \"_partition_key\", next = \"n + 1\" }",
        ),
    )
    .unwrap();
    let o = sluice(&[
        "replay",
        cfg.to_str().unwrap(),
        event.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let traced = ndjson_values(&tagged.join("rejects"));
    assert_eq!(traced.len(), 1, "{traced:?}");
    assert_eq!(
        traced[0]["position"],
        serde_json::json!({"line": 2, "stage": "select"})
    );
    assert_eq!(traced[0]["raw"], rejects[0]["raw"]);
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

/// Replay one object `name` holding `body` through `input` and `stages`; every reject, in order.
fn rejects_of(input: &str, stages: &str, name: &str, body: &[u8]) -> Vec<serde_json::Value> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = format!(
        "name = \"lineage\"\n[input]\n{input}\n{stages}\n[output]\nuri = \"{}\"\nformat = \"ndjson\"\n\
         [rejects]\nuri = \"{}\"\n",
        out.join("rows").display(),
        out.join("rejects").display()
    );
    let s = Scratch::new(&cfg, "in", &[(name.into(), body.to_vec())]);
    let summary = s.replay();
    assert!(summary["error"].is_null(), "{summary}");
    ndjson_values(&out.join("rejects"))
}

/// [`rejects_of`]: each reject's `position` and `raw`.
fn refused(input: &str, stages: &str, name: &str, text: &str) -> Vec<(serde_json::Value, String)> {
    rejects_of(input, stages, name, text.as_bytes())
        .into_iter()
        .map(|r| {
            (
                r["position"].clone(),
                r["raw"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn a_row_a_stage_refuses_is_reported_as_the_line_it_was_read_from() {
    use serde_json::json;
    // Through a filter, to a select that overflows on one row: the reject is that row's input
    // line, as written, with its number in the object, in every line format.
    let stages = "[[stage]]\ntype = \"filter\"\nwhere = \"n >= 0\"\n\
                  [[stage]]\ntype = \"select\"\ncolumns = { page = \"page\", twice = \"n * 2\" }";
    let big = "{ \"n\" : 9223372036854775807 , \"page\":\"/big\" }";
    let ndjson = format!(
        "{{\"n\":-1,\"page\":\"/neg\"}}\n\n{{\"n\": 1, \"page\": \"/a\"}}\nnot json\n{big}\n{{\"n\":2,\"page\":\"/b\"}}\n"
    );
    let declared = "format = \"ndjson\"\nschema = { n = \"int64\", page = \"string\" }";
    for input in [declared, "format = \"ndjson\""] {
        let r = refused(input, stages, "a.ndjson", &ndjson);
        assert_eq!(r.len(), 2, "{input}: {r:?}");
        assert_eq!(r[0].0, json!({"line": 4}), "{input}");
        assert_eq!(
            r[1],
            (json!({"line": 5, "stage": "select"}), big.to_string()),
            "{input}"
        );
    }
    let quoted = "9223372036854775807,\"/big, \"\"q\"\"\"";
    let csv = format!("n,page\n-1,/neg\n1,/a\nx,/bad\n{quoted}\r\n2,/b\n");
    let r = refused(
        "format = \"csv\"\nschema = { n = \"int64\", page = \"string\" }",
        stages,
        "a.csv",
        &csv,
    );
    assert_eq!(r[0], (json!({"line": 4}), "x,/bad".to_string()));
    assert_eq!(
        r[1],
        (json!({"line": 5, "stage": "select"}), quoted.to_string())
    );
    // With the types inferred from the first records (held back until they are known).
    let r = refused(
        "format = \"csv\"",
        stages,
        "a.csv",
        &csv.replace("x,/bad\n", ""),
    );
    assert_eq!(
        r,
        [(json!({"line": 4, "stage": "select"}), quoted.to_string())]
    );
    let r = refused(
        "format = \"lines\"\npattern = '^(?P<n>-?\\d+) +(?P<page>\\S+)$'\nschema = { n = \"int64\" }",
        stages,
        "a.log",
        "-1 /neg\n1 /a\nnope\n9223372036854775807   /big\n2 /b\n",
    );
    assert_eq!(
        r,
        [
            (json!({"line": 3}), "nope".to_string()),
            (
                json!({"line": 4, "stage": "select"}),
                "9223372036854775807   /big".to_string()
            )
        ]
    );
    // An aggregate's row with no window, behind a filter.
    let r = refused(
        "format = \"ndjson\"\nschema = { n = \"int64\", ts = \"timestamp\" }",
        "[[stage]]\ntype = \"filter\"\nwhere = \"n > 0\"\n[[stage]]\ntype = \"aggregate\"\n\
         group_by = []\nwindow = { column = \"ts\", every = \"1h\" }\nmeasures = { hits = \"count(*)\" }",
        "w.ndjson",
        "{\"n\":0}\n{\"n\":1,\"ts\":\"2026-01-01T00:00:00Z\"}\n{\"n\":2,\"ts\":null}\n",
    );
    assert_eq!(
        r,
        [(
            json!({"line": 3, "stage": "aggregate"}),
            "{\"n\":2,\"ts\":null}".to_string()
        )]
    );
    // After an aggregate a row is no input line: it is shown as its values.
    let r = refused(
        "format = \"ndjson\"\nschema = { n = \"int64\" }",
        "[[stage]]\ntype = \"aggregate\"\ngroup_by = [\"n\"]\nmeasures = { hits = \"count(*)\" }\n\
         [[stage]]\ntype = \"select\"\ncolumns = { x = \"n * 2\" }",
        "g.ndjson",
        "{\"n\":1}\n{\"n\":9223372036854775807}\n",
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].0["stage"], "select");
    assert!(r[0].0["line"].is_null(), "{r:?}");
    assert!(r[0].1.contains("\"hits\":1"), "{r:?}");
}

/// Issue 38, item 5: beside the line as read, a traced reject carries the values the stage saw;
/// a document's record, a CloudWatch Logs event and a Kinesis record are traced too; a long line
/// is cut at a character, not in the middle of one.
#[test]
fn a_traced_reject_has_its_line_and_the_values_the_stage_saw() {
    use serde_json::json;
    let stages = "[[stage]]\ntype = \"select\"\ncolumns = { page = \"page\", twice = \"n * 2\" }";
    let schema = "schema = { n = \"int64\", page = \"string\" }";
    let big = "{ \"n\" : 9223372036854775807 , \"page\":\"/big\" }";
    let r = rejects_of(
        &format!("format = \"ndjson\"\n{schema}"),
        stages,
        "a.ndjson",
        format!("{{\"n\":1,\"page\":\"/a\"}}\n{big}\n").as_bytes(),
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["position"], json!({"line": 2, "stage": "select"}));
    assert_eq!(r[0]["raw"], big);
    assert_eq!(
        r[0]["values"],
        json!({"n": 9223372036854775807i64, "page": "/big"})
    );
    assert!(r[0]["reason"].as_str().unwrap().contains("n * 2"), "{r:?}");

    // A JSON document: the record (its tokens as written, without the line breaks between them).
    let doc = "{\"Records\": [\n  {\"n\": 1, \"page\": \"/a\"},\n  {\"n\": 9223372036854775807,\n   \"page\": \"/big\"}\n]}";
    let r = rejects_of(
        &format!("format = \"json\"\nrecords = \"Records\"\n{schema}"),
        stages,
        "d.json",
        doc.as_bytes(),
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["position"], json!({"line": 2, "stage": "select"}));
    assert_eq!(
        r[0]["raw"],
        "{\"n\": 9223372036854775807,   \"page\": \"/big\"}"
    );

    // A CloudWatch Logs payload: the log event.
    let cw = json!({"messageType": "DATA_MESSAGE", "owner": "1", "logGroup": "g", "logStream": "s",
        "subscriptionFilters": ["f"], "logEvents": [
            {"id": "e1", "timestamp": 1700000000000i64, "message": "fine"},
            {"id": "e2", "timestamp": 1700000000001i64, "message": "boom"}]});
    let r = rejects_of(
        "format = \"cloudwatch-logs\"",
        "[[stage]]\ntype = \"select\"\ncolumns = { m = \"message\", x = \"CASE WHEN message = 'boom' THEN 9223372036854775807 + 1 END\" }",
        "cw.json",
        cw.to_string().as_bytes(),
    );
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["position"], json!({"line": 1, "stage": "select"}));
    let event: serde_json::Value = serde_json::from_str(r[0]["raw"].as_str().unwrap()).unwrap();
    assert_eq!(event["id"], "e2", "{r:?}");
    assert_eq!(r[0]["values"]["message"], "boom", "{r:?}");

    // A line longer than the 4 KiB kept: cut before a two-byte character the limit would split,
    // so it is still text.
    let long = format!(
        "{{\"n\":9223372036854775807,\"page\":\"{}\"}}",
        "é".repeat(3000)
    );
    let r = rejects_of(
        &format!("format = \"ndjson\"\n{schema}"),
        stages,
        "l.ndjson",
        format!("{long}\n").as_bytes(),
    );
    assert_eq!(r.len(), 1, "{r:?}");
    let raw = r[0]["raw"].as_str().expect("text, not raw_base64");
    assert!(
        long.starts_with(raw) && raw.len() >= 4095 && raw.len() < 4096,
        "{}",
        raw.len()
    );
    assert_eq!(r[0]["truncated"], true);
    assert!(r[0]["raw_base64"].is_null());
}

/// Issue 38, item 5, on a stream: a row a stage refuses is the Kinesis record's line as read.
#[test]
fn a_kinesis_record_a_stage_refuses_is_reported_as_read() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    for streamed in [false, true] {
        let cols = if streamed {
            ", seq = \"_sequence\""
        } else {
            ""
        };
        let cfg = format!(
            "name = \"k\"\n[input]\nformat = \"ndjson\"\nschema = {{ n = \"int64\" }}\n\
             [[stage]]\ntype = \"select\"\ncolumns = {{ twice = \"n * 2\"{cols} }}\n\
             [output]\nuri = \"{}\"\nformat = \"ndjson\"\n[rejects]\nuri = \"{}\"\n",
            out.join(format!("rows-{streamed}")).display(),
            out.join(format!("rejects-{streamed}")).display()
        );
        let s = Scratch::new(&cfg, "in", &[]);
        let payloads: Vec<(String, Vec<u8>)> = [
            "{\"n\":1}",
            "{\"n\":2}\n{ \"n\": 9223372036854775807 }\n",
            "{\"n\":3}",
        ]
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("k{i}"), p.as_bytes().to_vec()))
        .collect();
        std::fs::write(
            &s.event,
            sluice_pipeline::event::kinesis_event("clicks", &payloads).to_string(),
        )
        .unwrap();
        let summary = s.replay();
        assert_eq!(summary["records_out"], 3, "{summary}");
        let r = ndjson_values(&out.join(format!("rejects-{streamed}")));
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0]["position"]["stage"], "select", "{r:?}");
        assert_eq!(r[0]["raw"], "{ \"n\": 9223372036854775807 }", "{r:?}");
        assert_eq!(r[0]["values"]["n"], 9223372036854775807i64, "{r:?}");
    }
}
