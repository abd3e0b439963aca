//! The handler end to end over a scratch folder: formats, Parquet ranges, stream batches,
//! deadlines, aggregates.

use super::records::JOIN_BYTES;
use super::*;
use crate::read::decompress::tests::zst;
use crate::store::FsStore;
use std::io::Write;

fn plan(text: &str) -> Plan {
    Plan::from_str(std::path::Path::new("t.toml"), text).unwrap()
}

#[tokio::test]
async fn infers_the_schema_and_writes_to_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    let obj = dir.path().join("in/b/data/x.ndjson.zst");
    std::fs::create_dir_all(obj.parent().unwrap()).unwrap();
    let body = b"{\"ts\":\"2026-11-22T10:00:00Z\",\"n\":5,\"tags\":[\"a\"]}\n{\"ts\":\"2026-11-23T10:00:00Z\",\"n\":50,\"tags\":[]}\n{\"ts\":\"2026-11-23T11:00:00Z\",\"n\":\"many\"}\n";
    std::fs::write(&obj, zst(body).await).unwrap();
    let out = dir.path().join("out");
    let p = plan(&format!(
        "name = \"t\"\n[input]\nformat = \"ndjson\"\nbatch_rows = 2\n[[stage]]\ntype = \"filter\"\nwhere = \"n > 1\"\n[[stage]]\ntype = \"select\"\ncolumns = {{ day = \"date(ts)\", n = \"n\" }}\n[output]\nuri = \"{}\"\nformat = \"ndjson\"\ncompression = \"gzip\"\npartition_by = [\"day\"]\n[rejects]\nuri = \"{}\"\n",
        out.display(),
        dir.path().join("rejects").display()
    ));
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path().join("in")));
    let h = Handler::new(p, store.clone(), store);
    let ev = crate::event::s3_event(vec![crate::event::s3_record(
        "b",
        "data/x.ndjson.zst",
        10,
        "e",
    )]);
    let (s, _) = h.handle(&ev).await.into_parts();
    assert_eq!(s.error, None);
    assert_eq!((s.records_in, s.records_out, s.rejected), (3, 2, 1));
    assert_eq!(s.outputs.len(), 3, "{:?}", s.outputs);
    let day23 = s
        .outputs
        .iter()
        .find(|o| o.contains("day=2026-11-23"))
        .unwrap();
    assert!(day23.ends_with(".ndjson.gz"), "{day23}");
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(day23).unwrap()),
        &mut text,
    )
    .unwrap();
    assert_eq!(text, "{\"n\":50}\n");
    let rejects = std::fs::read_to_string(s.outputs.last().unwrap()).unwrap();
    assert!(
        rejects.contains("\"line\":3") && rejects.contains("'n'") && rejects.contains("many"),
        "{rejects}"
    );
}

/// A Parquet file of `rows` rows in row groups of 100: id, page, ms, and a wide unused column.
pub(crate) fn parquet_file(rows: usize) -> Vec<u8> {
    use arrow_array::{Int64Array, RecordBatch, StringArray};
    let schema = Arc::new(arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("id", arrow_schema::DataType::Int64, false),
        arrow_schema::Field::new("page", arrow_schema::DataType::Utf8, true),
        arrow_schema::Field::new("ms", arrow_schema::DataType::Int64, true),
        arrow_schema::Field::new("blob", arrow_schema::DataType::Utf8, true),
    ]));
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(100))
        .build();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).unwrap();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            Arc::new(StringArray::from_iter(
                (0..rows).map(|i| Some(format!("/p/{}", i % 7))),
            )),
            Arc::new(Int64Array::from_iter(
                (0..rows).map(|i| (i % 5 != 0).then_some(i as i64 * 3)),
            )),
            Arc::new(StringArray::from_iter(
                (0..rows).map(|i| Some("x".repeat(100 + i % 3))),
            )),
        ],
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.into_inner().unwrap()
}

#[tokio::test]
async fn parquet_input_is_read_by_row_group_with_only_the_needed_columns() {
    let dir = tempfile::tempdir().unwrap();
    let obj = dir.path().join("b/t/part-0.parquet");
    std::fs::create_dir_all(obj.parent().unwrap()).unwrap();
    std::fs::write(&obj, parquet_file(1000)).unwrap();
    std::fs::write(
        dir.path().join("b/t/bad.parquet"),
        b"PAR1 this is not parquet",
    )
    .unwrap();
    let p = plan(
        "name = \"t\"\n[input]\nformat = \"parquet\"\nbatch_rows = 64\n[[stage]]\ntype = \"filter\"\nwhere = \"ms > 2000\"\n[[stage]]\ntype = \"select\"\ncolumns = { id = \"id\", page = \"upper(page)\" }\n[output]\nuri = \"s3://o/p/\"\nformat = \"ndjson\"\n",
    );
    assert_eq!(
        p.projection(),
        Some(vec!["ms".to_string(), "id".to_string(), "page".to_string()])
    );
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
    let h = Handler::new(p, store.clone(), store.clone());
    let ev = crate::event::s3_event(vec![
        crate::event::s3_record("b", "t/part-0.parquet", 1, "e"),
        crate::event::s3_record("b", "t/bad.parquet", 1, "e"),
    ]);
    let (s, _) = h.handle(&ev).await.into_parts();
    assert_eq!(s.records_in, 1000);
    // ms = 3i > 2000 and i % 5 != 0: i in 667..1000 without multiples of 5.
    let want = (667..1000).filter(|i| i % 5 != 0).count() as u64;
    assert_eq!(s.records_out, want);
    let text = std::fs::read_to_string(&s.outputs[0]).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        "{\"id\":667,\"page\":\"/P/2\"}"
    );
    let err = s.error.unwrap();
    assert!(
        err.contains("t/bad.parquet") && err.contains("not a readable Parquet file"),
        "{err}"
    );

    // A column the file lacks is named.
    let p = plan(
        "name = \"t\"\n[input]\nformat = \"parquet\"\n[[stage]]\ntype = \"select\"\ncolumns = { x = \"nope\" }\n[output]\nuri = \"s3://o/q/\"\n",
    );
    let h = Handler::new(p, store.clone(), store.clone());
    let (s, _) = h
        .handle(&crate::event::s3_event(vec![crate::event::s3_record(
            "b",
            "t/part-0.parquet",
            1,
            "e",
        )]))
        .await
        .into_parts();
    assert!(
        s.error
            .unwrap()
            .contains("reads column `nope`, which this Parquet file does not have")
    );
}

#[tokio::test]
async fn stream_batches_decode_every_record_and_fail_whole_at_the_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = { p = \"string\", n = \"int64\" }\n[[stage]]\ntype = \"aggregate\"\ngroup_by = [\"p\"]\nmeasures = { c = \"count(*)\", s = \"sum(n)\" }\n[output]\nuri = \"s3://o/agg/\"\nformat = \"ndjson\"\n[rejects]\nuri = \"s3://o/rejects/\"\n";
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
    let h = Handler::new(plan(cfg), store.clone(), store.clone());
    let agg = crate::kpl::aggregate(&[
        ("k", b"{\"p\":\"x\",\"n\":2}"),
        ("k", b"{\"p\":\"y\",\"n\":3}"),
    ]);
    let payloads = vec![
        ("a".to_string(), b"{\"p\":\"x\",\"n\":1}".to_vec()),
        ("b".to_string(), agg),
        ("c".to_string(), b"not json".to_vec()),
        // gzip, as CloudWatch Logs subscriptions and many producers send it
        ("d".to_string(), {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(b"{\"p\":\"x\",\"n\":10}\n").unwrap();
            e.finish().unwrap()
        }),
    ];
    let ev = crate::event::kinesis_event("s", &payloads);
    let (s, per_item) = h.handle(&ev).await.into_parts();
    assert!(per_item);
    assert_eq!(s.trigger.to_string(), "kinesis");
    assert_eq!(s.error, None);
    assert_eq!((s.records_in, s.records_out, s.rejected), (5, 2, 1));
    // Named by the first record: a redelivery of another size replaces it.
    let first = crate::event::kinesis_sequence(0);
    assert!(
        s.outputs[0].ends_with(&format!("/agg/shardId-000000000000-{first}.ndjson")),
        "{:?}",
        s.outputs
    );
    assert_eq!(
        std::fs::read_to_string(&s.outputs[0]).unwrap(),
        "{\"p\":\"x\",\"c\":3,\"s\":13}\n{\"p\":\"y\",\"c\":1,\"s\":3}\n"
    );
    assert_eq!(
        s.lambda_response(true),
        serde_json::json!({ "batchItemFailures": [] })
    );

    // The output cannot be written (a file where its folder must go): nothing is written and
    // the shard must resume at the batch's first record; SQS retries every message.
    std::fs::remove_dir_all(dir.path().join("o")).unwrap();
    std::fs::write(dir.path().join("o"), b"in the way").unwrap();
    let (s, _) = h.handle(&ev).await.into_parts();
    assert!(s.error.is_some());
    assert_eq!(s.batch_item_failures, vec![first.clone()]);
    assert_eq!(
        s.lambda_response(true),
        serde_json::json!({ "batchItemFailures": [{ "itemIdentifier": first }] })
    );
    let sqs = crate::event::sqs_records_event("q", &["{\"p\":\"x\",\"n\":1}".into(), "{}".into()]);
    let (s, per_item) = h.handle(&sqs).await.into_parts();
    assert!(per_item);
    assert_eq!(s.trigger.to_string(), "sqs");
    assert_eq!(s.batch_item_failures.len(), 2);
}

#[tokio::test]
async fn records_decoded_in_place_give_what_copied_records_give() {
    // The fast event path decodes runs of plain records where their data lie; the general
    // path copies each record. A batch that breaks the runs every way: several lines in one
    // record, a line break at the end or not, an empty record, a KPL aggregate, gzip, bad
    // JSON, bad base64, and a run longer than one decoder block.
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
    let cfg = "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = { p = \"string\", n = \"int64\" }\n[[stage]]\ntype = \"aggregate\"\ngroup_by = [\"p\"]\nmeasures = { c = \"count(*)\", s = \"sum(n)\" }\n[output]\nuri = \"s3://o/agg/\"\nformat = \"ndjson\"\n[rejects]\nuri = \"s3://o/rejects/\"\n";
    let h = Handler::new(plan(cfg), store.clone(), store.clone());
    let gz = |t: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(t).unwrap();
        e.finish().unwrap()
    };
    let long: String = (0..JOIN_BYTES / 16 + 10)
        .map(|i| format!("{{\"p\":\"z\",\"n\":{}}}\n", i % 10))
        .collect();
    let payloads: Vec<(String, Vec<u8>)> = [
        b"{\"p\":\"x\",\"n\":1}".to_vec(),
        b"{\"p\":\"x\",\"n\":2}\n{\"p\":\"y\",\"n\":3}".to_vec(),
        b"{\"p\":\"y\",\"n\":4}\n".to_vec(),
        Vec::new(),
        crate::kpl::aggregate(&[
            ("k", b"{\"p\":\"x\",\"n\":5}"),
            ("k", b"{\"p\":\"y\",\"n\":6}"),
        ]),
        b"{\"p\":\"x\",\"n\":7}".to_vec(),
        gz(b"{\"p\":\"x\",\"n\":8}\n"),
        b"not json".to_vec(),
        b"BASE64".to_vec(),
        long.clone().into_bytes(),
        b"{\"p\":\"y\",\"n\":9}".to_vec(),
    ]
    .into_iter()
    .map(|d| ("k".to_string(), d))
    .collect();
    let ev = crate::event::kinesis_event("s", &payloads);
    let text = serde_json::to_string(&ev)
        .unwrap()
        .replacen("\"QkFTRTY0\"", "\"QkFTRTY0!\"", 1);
    let ev: Value = serde_json::from_str(&text).unwrap();
    assert!(crate::fastevent::kinesis(text.as_bytes()).is_some());
    let z: i64 = (0..JOIN_BYTES / 16 + 10).map(|i| (i % 10) as i64).sum();
    let want = format!(
        "{{\"p\":\"x\",\"c\":5,\"s\":23}}\n{{\"p\":\"y\",\"c\":4,\"s\":22}}\n{{\"p\":\"z\",\"c\":{},\"s\":{z}}}\n",
        JOIN_BYTES / 16 + 10
    );
    let mut seen = Vec::new();
    for fast in [false, true] {
        let (s, _) = if fast {
            h.handle_bytes(text.as_bytes(), None).await
        } else {
            h.handle(&ev).await
        }
        .into_parts();
        assert_eq!(s.error, None);
        assert_eq!(s.rejected, 2, "fast: {fast}");
        assert_eq!(std::fs::read_to_string(&s.outputs[0]).unwrap(), want);
        let rejects = std::fs::read_to_string(&s.outputs[1]).unwrap();
        assert!(rejects.contains("not base64"), "{rejects}");
        assert!(rejects.contains("not json"), "{rejects}");
        seen.push((s.records_in, s.records_out, rejects));
    }
    assert_eq!(seen[0], seen[1]);
}

#[tokio::test]
async fn stream_columns_name_the_record_every_row_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
    // Two rows in one record: two lines for NDJSON, an array for JSON documents.
    let event = |two: &dyn Fn(&str, &str) -> String| {
        let agg = crate::kpl::aggregate(&[
            ("u1", two("x", "").as_bytes()),
            ("skip", two("dropped", "").as_bytes()),
            ("u3", two("y", "z").as_bytes()),
        ]);
        crate::event::kinesis_event(
            "s",
            &[
                ("a".to_string(), two("w", "w2").into_bytes()),
                ("b".to_string(), agg),
            ],
        )
    };
    let lines = |a: &str, b: &str| {
        let mut t = format!("{{\"p\":\"{a}\"}}");
        if !b.is_empty() {
            t.push_str(&format!("\n{{\"p\":\"{b}\"}}"));
        }
        t
    };
    let array = |a: &str, b: &str| {
        let mut t = format!("[{{\"p\":\"{a}\"}}");
        if !b.is_empty() {
            t.push_str(&format!(",{{\"p\":\"{b}\"}}"));
        }
        t + "]"
    };
    let s0 = crate::event::kinesis_sequence(0);
    let s1 = crate::event::kinesis_sequence(1);
    let row = |p: &str, seq: &str, sub: i64, pk: &str, at: &str| {
        format!(
            "{{\"p\":\"{p}\",\"_shard\":\"shardId-000000000000\",\"_sequence\":\"{seq}\",\"_subsequence\":{sub},\"_partition_key\":\"{pk}\",\"_arrival\":\"{at}\"}}\n"
        )
    };
    let want = [
        row("w", &s0, 0, "a", "2025-11-22T12:00:00Z"),
        row("w2", &s0, 0, "a", "2025-11-22T12:00:00Z"),
        row("x", &s1, 0, "u1", "2025-11-22T12:00:00.001Z"),
        row("y", &s1, 2, "u3", "2025-11-22T12:00:00.001Z"),
        row("z", &s1, 2, "u3", "2025-11-22T12:00:00.001Z"),
    ]
    .concat();
    // A line format (one decoder over the batch) and a document format (one per record), with
    // batches small enough that rows of several records are gathered into one.
    type Two<'a> = &'a dyn Fn(&str, &str) -> String;
    let formats: [(&str, Two<'_>); 2] = [("ndjson", &lines), ("json", &array)];
    for (n, (format, two)) in formats.into_iter().enumerate() {
        let ev = event(two);
        let cfg = format!(
            "name = \"t\"\n[input]\nformat = \"{format}\"\nbatch_rows = 2\nschema = {{ p = \"string\" }}\n\
         [[stage]]\ntype = \"filter\"\nwhere = \"_partition_key <> 'skip'\"\n\
         [[stage]]\ntype = \"select\"\ncolumns = {{ p = \"p\", _shard = \"_shard\", _sequence = \"_sequence\", _subsequence = \"_subsequence\", _partition_key = \"_partition_key\", _arrival = \"_arrival\" }}\n\
         [output]\nuri = \"s3://o/{n}/\"\nformat = \"ndjson\"\n"
        );
        let h = Handler::new(plan(&cfg), store.clone(), store.clone());
        let (s, _) = h.handle(&ev).await.into_parts();
        assert_eq!(s.error, None, "{format}");
        assert_eq!((s.records_in, s.records_out), (6, 5), "{format}");
        let got = std::fs::read_to_string(&s.outputs[0]).unwrap();
        assert_eq!(got, want, "{format}");
    }
    // Without a stage naming them, the columns are not added.
    let cfg = "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = { p = \"string\" }\n[output]\nuri = \"s3://o/plain/\"\nformat = \"ndjson\"\n";
    let (s, _) = Handler::new(plan(cfg), store.clone(), store.clone())
        .handle(&event(&lines))
        .await
        .into_parts();
    let got = std::fs::read_to_string(&s.outputs[0]).unwrap();
    assert!(got.starts_with("{\"p\":\"w\"}\n"), "{got}");
}

/// A handler over a scratch folder whose records take `ms` each in a stage of the user's
/// (one-row batches, so every record reaches it as it is decoded), with `reserve_ms` as its
/// deadline reserve; and a Kinesis batch of `n` records of a full decode block each (so each
/// is decoded, and reaches the slow stage, before the next record's deadline check).
fn slow_handler(
    dir: &std::path::Path,
    ms: u64,
    reserve_ms: u64,
    n: usize,
) -> (Handler, Value, String) {
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir));
    let cfg = format!(
        "name = \"t\"\n[input]\nformat = \"ndjson\"\nbatch_rows = 1\nschema = {{ p = \"string\" }}\n[output]\nuri = \"s3://o/d/\"\nformat = \"ndjson\"\ndeadline_reserve_ms = {reserve_ms}\n"
    );
    let h = Handler::new(plan(&cfg), store.clone(), store).with_stage(crate::testing::probe(
        move |_| {
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok(())
        },
    ));
    let pad = "x".repeat(JOIN_BYTES);
    let payloads: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let line = format!("{{\"p\":\"r{i}\",\"pad\":\"{pad}\"}}");
            ("k".to_string(), line.into_bytes())
        })
        .collect();
    (h, crate::event::kinesis_event("s", &payloads), pad)
}

#[tokio::test]
async fn a_near_deadline_stops_at_a_record_boundary_and_reports_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (h, ev, pad) = slow_handler(dir.path(), 1000, 1600, 4);
    // 4 s left: requests must be done 800 ms before the deadline (a fifth of it), and the
    // records stop 1.6 s before that, at 1.6 s. The first record ends at 1 s, the second at
    // 2 s, so the batch stops before the third, with two written well before the deadline.
    let deadline = Instant::now() + std::time::Duration::from_millis(4000);
    let (s, per_item) = h.handle_until(&ev, Some(deadline)).await.into_parts();
    assert!(per_item);
    assert_eq!(s.error, None);
    assert_eq!((s.records_in, s.records_out), (2, 2));
    assert_eq!(
        s.batch_item_failures,
        vec![crate::event::kinesis_sequence(2)]
    );
    assert_eq!(
        std::fs::read_to_string(&s.outputs[0]).unwrap(),
        "{\"p\":\"r0\"}\n{\"p\":\"r1\"}\n"
    );
    // SQS: every message not processed is reported.
    let bodies: Vec<String> = (0..3)
        .map(|i| format!("{{\"p\":\"m{i}\",\"pad\":\"{pad}\"}}"))
        .collect();
    let sqs = crate::event::sqs_records_event("q", &bodies);
    let deadline = Instant::now() + std::time::Duration::from_millis(4000);
    let (s, _) = h.handle_until(&sqs, Some(deadline)).await.into_parts();
    let ids: Vec<String> = sqs["Records"].as_array().unwrap()[2..]
        .iter()
        .map(|r| r["messageId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(s.batch_item_failures, ids);
    // Already past it: answered at once, nothing counted as done, and the shard resumes at
    // the first record.
    let (s, per_item) = h.handle_until(&ev, Some(Instant::now())).await.into_parts();
    assert!(per_item);
    assert_eq!(s.records_in, 0);
    assert!(
        s.error
            .is_some_and(|e| e.contains("deadline came before it finished"))
    );
    assert_eq!(
        s.batch_item_failures,
        vec![crate::event::kinesis_sequence(0)]
    );
}

/// Issue 27: a reserve longer than the function's timeout (20 s of a 2 s invocation) used to
/// stop every invocation before its first record, forever. It is clamped to half the time
/// left, so the batch makes progress.
#[tokio::test]
async fn a_reserve_longer_than_the_time_left_still_makes_progress() {
    let dir = tempfile::tempdir().unwrap();
    let (h, ev, _) = slow_handler(dir.path(), 900, 20_000, 3);
    // 2 s left, requests done by 1.6 s: the stop comes halfway to that, at 800 ms; the first
    // record takes 900 ms.
    let deadline = Instant::now() + std::time::Duration::from_millis(2000);
    let (s, _) = h.handle_until(&ev, Some(deadline)).await.into_parts();
    assert_eq!(s.error, None);
    assert_eq!((s.records_in, s.records_out), (1, 1));
    assert_eq!(
        s.batch_item_failures,
        vec![crate::event::kinesis_sequence(1)]
    );
}

#[tokio::test]
async fn cloudwatch_logs_subscriptions_on_kinesis_give_one_row_per_log_event() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
    let cfg = "name = \"t\"\n[input]\nformat = \"cloudwatch-logs\"\n\
           [[stage]]\ntype = \"select\"\ncolumns = { logGroup = \"logGroup\", id = \"id\", timestamp = \"timestamp\", message = \"message\", _partition_key = \"_partition_key\" }\n\
           [output]\nuri = \"s3://o/cwl/\"\nformat = \"ndjson\"\n[rejects]\nuri = \"s3://o/rej/\"\n";
    let h = Handler::new(plan(cfg), store.clone(), store.clone());
    let gz = |doc: &str| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(doc.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    // What a subscription filter puts on the stream: first a health check, then the data.
    let control = r#"{"messageType":"CONTROL_MESSAGE","owner":"CloudwatchLogs","logGroup":"","logStream":"","subscriptionFilters":[],"logEvents":[{"id":"","timestamp":1795372800000,"message":"CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]}"#;
    let data = r#"{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"/aws/lambda/orders","logStream":"2026/11/22/[$LATEST]0f1e","subscriptionFilters":["to-kinesis"],"logEvents":[{"id":"37912336480170237219999837021066536802556432375838965760","timestamp":1795372801000,"message":"START RequestId: 7c1a Version: $LATEST\n"},{"id":"37912336480192537965198367644208072520829080737344946177","timestamp":1795372801001,"message":"{\"level\":\"error\",\"msg\":\"payment declined\"}\n"}]}"#;
    let ev = crate::event::kinesis_event(
        "logs",
        &[
            ("ctl".to_string(), gz(control)),
            ("orders".to_string(), gz(data)),
        ],
    );
    let (s, _) = h.handle(&ev).await.into_parts();
    assert_eq!(s.error, None);
    assert_eq!((s.records_in, s.records_out, s.rejected), (2, 2, 0));
    let got = std::fs::read_to_string(&s.outputs[0]).unwrap();
    assert_eq!(
        got,
        "{\"logGroup\":\"/aws/lambda/orders\",\"id\":\"37912336480170237219999837021066536802556432375838965760\",\"timestamp\":\"2026-11-22T18:40:01Z\",\"message\":\"START RequestId: 7c1a Version: $LATEST\\n\",\"_partition_key\":\"orders\"}\n\
     {\"logGroup\":\"/aws/lambda/orders\",\"id\":\"37912336480192537965198367644208072520829080737344946177\",\"timestamp\":\"2026-11-22T18:40:01.001Z\",\"message\":\"{\\\"level\\\":\\\"error\\\",\\\"msg\\\":\\\"payment declined\\\"}\\n\",\"_partition_key\":\"orders\"}\n"
    );
}

#[tokio::test]
async fn a_record_that_is_not_a_document_is_a_reject_not_a_blocked_shard() {
    // Regression: with a document format, one record without the records array failed the
    // whole batch, so Lambda would redeliver it forever.
    let dir = tempfile::tempdir().unwrap();
    let cfg = "name = \"t\"\n[input]\nformat = \"json\"\nrecords = \"items\"\nschema = { n = \"int64\" }\n[output]\nuri = \"s3://o/rows/\"\nformat = \"ndjson\"\n[rejects]\nuri = \"s3://o/rejects/\"\n";
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
    let h = Handler::new(plan(cfg), store.clone(), store);
    let payloads: Vec<(String, Vec<u8>)> = [
        &b"{\"items\":[{\"n\":1},{\"n\":2}]}"[..],
        b"{\"other\":true}",
        b"{\"items\":[{\"n\":3}]}",
    ]
    .iter()
    .map(|d| ("k".to_string(), d.to_vec()))
    .collect();
    let (s, _) = h
        .handle(&crate::event::kinesis_event("s", &payloads))
        .await
        .into_parts();
    assert_eq!(s.error, None);
    assert!(s.batch_item_failures.is_empty());
    assert_eq!((s.records_out, s.rejected), (3, 1));
    assert_eq!(
        std::fs::read_to_string(&s.outputs[0]).unwrap(),
        "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"
    );
    let rejects = std::fs::read_to_string(&s.outputs[1]).unwrap();
    assert!(rejects.contains("no array at `items`"), "{rejects}");
    assert!(
        rejects.contains(&crate::event::kinesis_sequence(1)),
        "{rejects}"
    );
}

#[tokio::test]
async fn an_aggregate_spans_the_invocation_and_fails_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    for (k, body) in [
        ("a.ndjson", "{\"p\":\"x\",\"n\":1}\n{\"p\":\"y\",\"n\":2}\n"),
        ("b.ndjson", "{\"p\":\"x\",\"n\":5}\n"),
    ] {
        let path = dir.path().join("b").join(k);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let p = plan(
        "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = { p = \"string\", n = \"int64\" }\n[[stage]]\ntype = \"aggregate\"\ngroup_by = [\"p\"]\nmeasures = { c = \"count(*)\", s = \"sum(n)\" }\n[output]\nuri = \"s3://o/agg/\"\nformat = \"ndjson\"\n",
    );
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
    let h = Handler::new(p, store.clone(), store.clone());
    let two = crate::event::s3_event(vec![
        crate::event::s3_record("b", "a.ndjson", 1, "e1"),
        crate::event::s3_record("b", "b.ndjson", 1, "e2"),
    ]);
    let (s, _) = h.handle(&two).await.into_parts();
    assert_eq!(s.error, None);
    assert_eq!((s.objects, s.records_in, s.records_out), (2, 3, 2));
    assert_eq!(s.outputs.len(), 1);
    assert!(
        s.outputs[0].contains("/agg/a-and-1-more-"),
        "{:?}",
        s.outputs
    );
    assert_eq!(
        std::fs::read_to_string(&s.outputs[0]).unwrap(),
        "{\"p\":\"x\",\"c\":2,\"s\":6}\n{\"p\":\"y\",\"c\":1,\"s\":2}\n"
    );

    // Through SQS, with one object missing: nothing is written and every message is retried.
    let sqs = serde_json::json!({"Records": [
        crate::event::sqs_event(&crate::event::s3_event(vec![crate::event::s3_record("b", "a.ndjson", 1, "e1")]), "m1")["Records"][0].clone(),
        crate::event::sqs_event(&crate::event::s3_event(vec![crate::event::s3_record("b", "gone.ndjson", 1, "e3")]), "m2")["Records"][0].clone(),
    ]});
    std::fs::remove_dir_all(dir.path().join("o")).unwrap();
    let (s, is_sqs) = h.handle(&sqs).await.into_parts();
    assert!(is_sqs);
    assert_eq!(
        s.batch_item_failures,
        vec!["m1".to_string(), "m2".to_string()]
    );
    assert!(s.error.unwrap().contains("gone.ndjson: no such object"));
    assert!(!dir.path().join("o").exists());
}

#[tokio::test]
async fn a_type_error_against_an_inferred_schema_fails_the_object_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let obj = dir.path().join("b/k.ndjson");
    std::fs::create_dir_all(obj.parent().unwrap()).unwrap();
    std::fs::write(&obj, b"{\"n\":\"text\"}\n").unwrap();
    let p = plan(
        "name = \"t\"\n[input]\nformat = \"ndjson\"\n[[stage]]\ntype = \"filter\"\nwhere = \"n > 1\"\n[output]\nuri = \"s3://o/p/\"\n",
    );
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
    let h = Handler::new(p, store.clone(), store);
    let (s, _) = h
        .handle(&crate::event::s3_event(vec![crate::event::s3_record(
            "b", "k.ndjson", 1, "e",
        )]))
        .await
        .into_parts();
    let err = s.error.unwrap();
    assert!(
        err.contains("s3://b/k.ndjson") && err.contains("cannot apply `>` to string and int64"),
        "{err}"
    );
    assert!(!dir.path().join("o").exists());
}

/// An SQS-batched event of `n` small NDJSON objects `in/part-{i}.ndjson` under `dir/in/b/`
/// (three rows each, `k` 0 or 1), one message per object (`m{i}`).
fn small_objects(dir: &std::path::Path, n: usize) -> serde_json::Value {
    let folder = dir.join("in/b/in");
    std::fs::create_dir_all(&folder).unwrap();
    let mut records = Vec::new();
    for i in 0..n {
        let key = format!("in/part-{i:05}.ndjson");
        let body: String = (0..3)
            .map(|j| format!("{{\"id\":{},\"k\":{}}}\n", i * 3 + j, j % 2))
            .collect();
        std::fs::write(dir.join("in/b").join(&key), body.as_bytes()).unwrap();
        let s3 = crate::event::s3_event(vec![crate::event::s3_record("b", &key, 0, "")]);
        let msg = crate::event::sqs_event(&s3, &format!("m{i}"));
        records.push(msg["Records"][0].clone());
    }
    serde_json::json!({ "Records": records })
}

#[tokio::test]
async fn per_invocation_gathers_thousands_of_small_objects_into_one_file_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let ev = small_objects(dir.path(), 2_000);
    let out = dir.path().join("out");
    let p = plan(&format!(
        "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = {{ id = \"int64\", k = \"int64\" }}\n\
         [output]\nuri = \"{}\"\npartition_by = [\"k\"]\nper = \"invocation\"\n",
        out.display()
    ));
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path().join("in")));
    let h = Handler::new(p, store.clone(), store);
    let (s, _) = h.handle(&ev).await.into_parts();
    assert_eq!(s.error, None);
    assert_eq!(
        (s.objects, s.records_in, s.records_out),
        (2_000, 6_000, 6_000)
    );
    assert_eq!(s.outputs.len(), 2, "{:?}", s.outputs);
    assert!(s.outputs.iter().all(|o| o.ends_with(".parquet")));
    // The same objects again: the same two names (derived from all of them), the same bytes.
    let before: Vec<Vec<u8>> = s
        .outputs
        .iter()
        .map(|o| std::fs::read(o).unwrap())
        .collect();
    let (again, _) = h.handle(&ev).await.into_parts();
    assert_eq!(again.outputs, s.outputs);
    let after: Vec<Vec<u8>> = again
        .outputs
        .iter()
        .map(|o| std::fs::read(o).unwrap())
        .collect();
    assert!(before == after, "a redelivery wrote different bytes");
}

#[tokio::test]
async fn per_invocation_leaves_a_bad_object_out_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ev = small_objects(dir.path(), 5);
    // The third object is gzip magic and then garbage: it cannot be read, its neighbours can.
    std::fs::write(
        dir.path().join("in/b/in/part-00002.ndjson"),
        b"\x1f\x8b\x08\x00garbage",
    )
    .unwrap();
    let out = dir.path().join("out");
    let p = plan(&format!(
        "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = {{ id = \"int64\", k = \"int64\" }}\n\
         [output]\nuri = \"{}\"\nper = \"invocation\"\n",
        out.display()
    ));
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path().join("in")));
    let h = Handler::new(p, store.clone(), store);
    let (s, _) = h.handle(&ev).await.into_parts();
    assert_eq!((s.objects, s.failed_objects), (4, 1), "{s:?}");
    assert_eq!(s.batch_item_failures, vec!["m2".to_string()]);
    assert_eq!(s.records_out, 12);
    assert_eq!(s.outputs.len(), 1, "{:?}", s.outputs);
    assert!(
        s.error
            .as_deref()
            .unwrap_or_default()
            .contains("part-00002"),
        "{:?}",
        s.error
    );
}

#[cfg(feature = "iceberg")]
#[tokio::test]
async fn per_invocation_into_a_table_commits_one_file_per_partition_in_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let ev = small_objects(dir.path(), 2_000);
    let out = dir.path().join("out");
    let p = plan(&format!(
        "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = {{ id = \"int64\", k = \"int64\" }}\n\
         [output]\nuri = \"{}\"\nformat = \"iceberg\"\ntable = \"raw.small\"\npartition = [\"identity(k)\"]\n\
         per = \"invocation\"\n",
        out.display()
    ));
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path().join("in")));
    let h = Handler::new(p, store.clone(), store);
    // As the Lambda runtime runs it: the snapshot records the invocation's request id.
    let (s, _) = crate::table::with_invocation("8f5a-req".into(), h.handle(&ev))
        .await
        .into_parts();
    assert_eq!(s.error, None);
    assert_eq!((s.objects, s.records_out), (2_000, 6_000));
    assert_eq!(s.outputs.len(), 2, "{:?}", s.outputs);
    let report = h.table().unwrap().report().await.unwrap();
    assert_eq!((report.rows, report.files), (6_000, 2));
    assert_eq!(report.snapshots.len(), 1);
    assert_eq!(report.snapshots[0].sources.len(), 2_000);
    assert_eq!(report.snapshots[0].invocation.as_deref(), Some("8f5a-req"));
    // Delivered again: every object already committed, nothing written.
    let (again, _) = h.handle(&ev).await.into_parts();
    assert_eq!(
        (again.objects, again.records_out, again.skipped),
        (0, 0, 2_000)
    );
    assert_eq!(
        h.table().unwrap().report().await.unwrap().snapshots.len(),
        1
    );
}

#[cfg(feature = "iceberg")]
#[tokio::test]
async fn a_table_output_keeps_to_max_open_partitions_and_commits_nothing_past_it() {
    // Five objects of three rows; with identity(id) each row is a partition of its own.
    let run = |per: &'static str, max: usize, table: &'static str| async move {
        let dir = tempfile::tempdir().unwrap();
        let ev = small_objects(dir.path(), 5);
        let p = plan(&format!(
            "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = {{ id = \"int64\", k = \"int64\" }}\n\
             [output]\nuri = \"{}\"\nformat = \"iceberg\"\ntable = \"raw.{table}\"\n\
             partition = [\"identity(id)\"]\nper = \"{per}\"\nmax_open_partitions = {max}\n",
            dir.path().join("out").display()
        ));
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path().join("in")));
        let h = Handler::new(p, store.clone(), store);
        let (s, _) = h.handle(&ev).await.into_parts();
        let report = h.table().unwrap().report().await.unwrap();
        (s, report.rows, report.snapshots.len(), dir)
    };
    let limit = |s: &Summary| {
        let e = s.error.clone().unwrap_or_default();
        assert!(
            e.contains("`output.max_open_partitions`") && e.contains("limit of"),
            "{s:?}"
        );
    };
    // Each object alone within the limit: all of them, one snapshot.
    let (s, rows, snaps, _d) = run("object", 4, "a").await;
    assert_eq!(
        (s.error.as_deref(), s.objects, rows, snaps),
        (None, 5, 15, 1)
    );
    // Each object alone past it: every object fails by that limit, nothing is committed.
    let (s, rows, snaps, _d) = run("object", 2, "b").await;
    limit(&s);
    assert_eq!((s.objects, s.failed_objects, rows, snaps), (0, 5, 0, 0));
    assert_eq!(s.batch_item_failures.len(), 5);
    // Gathered per invocation, the objects that take the unit past the limit are left out
    // (reported for redelivery, where they come in smaller batches); the rest is committed.
    let (s, rows, snaps, _d) = run("invocation", 4, "c").await;
    limit(&s);
    assert_eq!(
        (s.objects, s.failed_objects, rows, snaps),
        (1, 4, 3, 1),
        "{s:?}"
    );
    assert_eq!(s.batch_item_failures, vec!["m1", "m2", "m3", "m4"]);
}

/// A library user hands the handler `aws_lambda_events`' typed event, and reads its typed answer.
#[tokio::test]
async fn a_typed_event_in_and_a_typed_answer_out() {
    use crate::aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
    let dir = tempfile::tempdir().unwrap();
    let ev: SqsEvent = serde_json::from_value(small_objects(dir.path(), 3)).unwrap();
    // The second object is unreadable: its message is the one answered as failed.
    std::fs::write(
        dir.path().join("in/b/in/part-00001.ndjson"),
        b"\x1f\x8b\x08\x00garbage",
    )
    .unwrap();
    let p = plan(&format!(
        "name = \"t\"\n[input]\nformat = \"ndjson\"\n[output]\nuri = \"{}\"\n",
        dir.path().join("out").display()
    ));
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path().join("in")));
    let h = Handler::new(p, store.clone(), store);
    let outcome = h.handle_event(&ev).await;
    let answer: SqsBatchResponse = serde_json::from_value(outcome.lambda_response()).unwrap();
    let failed: Vec<&str> = answer
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m1"]);
    let (s, _) = outcome.into_parts();
    assert_eq!((s.objects, s.failed_objects, s.records_out), (2, 1, 6));
}

/// A CloudWatch Logs subscription invoking the function directly: one row per log event, the
/// health check skipped, a gzip bomb one reject within the inflate bound, and a pipeline that
/// does not read `cloudwatch-logs` told so.
#[tokio::test]
async fn cloudwatch_logs_delivered_directly_give_one_row_per_log_event() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
    let cfg = "name = \"t\"\n[input]\nformat = \"cloudwatch-logs\"\n\
           [[stage]]\ntype = \"select\"\ncolumns = { group = \"logGroup\", message = \"message\" }\n\
           [output]\nuri = \"s3://o/cwl/\"\nformat = \"ndjson\"\n[rejects]\nuri = \"s3://o/rej/\"\n";
    let h = Handler::new(plan(cfg), store.clone(), store.clone());
    let messages = [
        "START RequestId: 7c1a".to_string(),
        "{\"level\":\"error\"}".to_string(),
    ];
    let ev = crate::event::cloudwatch_logs_event("/aws/lambda/orders", "s", &messages, false);
    let (s, per_item) = h.handle(&ev).await.into_parts();
    assert_eq!(
        (s.trigger.to_string(), per_item),
        ("cwlogs".to_string(), false)
    );
    assert_eq!(s.error, None);
    assert_eq!((s.records_in, s.records_out, s.rejected), (2, 2, 0));
    let got = std::fs::read_to_string(&s.outputs[0]).unwrap();
    assert_eq!(
        got,
        "{\"group\":\"/aws/lambda/orders\",\"message\":\"START RequestId: 7c1a\"}\n\
         {\"group\":\"/aws/lambda/orders\",\"message\":\"{\\\"level\\\":\\\"error\\\"}\"}\n"
    );
    // The same payload again: the same output name (a redelivery overwrites).
    let (again, _) = h.handle(&ev).await.into_parts();
    assert_eq!(again.outputs, s.outputs);
    // The health check of a new subscription: nothing written, nothing failed.
    let control = crate::event::cloudwatch_logs_event("", "", &[], true);
    let (s, _) = h.handle(&control).await.into_parts();
    assert_eq!((s.error, s.records_out, s.rejected), (None, 0, 0));
    // 65 MiB of spaces in a few hundred KiB: inflated no further than the bound, one reject.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..65 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
    let (s, _) = h
        .handle(&serde_json::json!({ "awslogs": { "data": bomb } }))
        .await
        .into_parts();
    assert_eq!((s.records_out, s.rejected), (0, 1), "{s:?}");
    // Not base64: the event's error.
    let (s, _) = h
        .handle(&serde_json::json!({ "awslogs": { "data": "%%%" } }))
        .await
        .into_parts();
    assert!(s.error.unwrap().contains("not base64"));
    // A pipeline reading another format is told what to set.
    let ndjson = Handler::new(
        plan("name = \"t\"\n[input]\nformat = \"ndjson\"\n[output]\nuri = \"s3://o/x/\"\n"),
        store.clone(),
        store,
    );
    let (s, _) = ndjson.handle(&ev).await.into_parts();
    assert!(
        s.error.unwrap().contains("format = \"cloudwatch-logs\""),
        "a pipeline of another format"
    );
}

/// An SQS FIFO batch keeps its order: past the first failed message nothing of the batch (by
/// default) or of its message group (`[input] fifo = "group"`) is processed, and all of it is
/// reported failed, in order.
#[tokio::test]
async fn a_fifo_batch_stops_at_its_first_failure_or_its_groups() {
    for (fifo, groups, processed, failures) in [
        ("batch", ["g"; 5], 2, vec!["m2", "m3", "m4"]),
        ("group", ["a", "b", "a", "b", "a"], 3, vec!["m2", "m4"]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut ev = small_objects(dir.path(), 5);
        for (r, g) in ev["Records"].as_array_mut().unwrap().iter_mut().zip(groups) {
            r["eventSourceARN"] = "arn:aws:sqs:us-east-1:123456789012:uploads.fifo".into();
            r["attributes"]["MessageGroupId"] = g.into();
        }
        // The third message's object cannot be read.
        std::fs::write(
            dir.path().join("in/b/in/part-00002.ndjson"),
            b"\x1f\x8b\x08\x00garbage",
        )
        .unwrap();
        let p = plan(&format!(
            "name = \"t\"\n[input]\nformat = \"ndjson\"\nfifo = \"{fifo}\"\n[output]\nuri = \"{}\"\n",
            dir.path().join("out").display()
        ));
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path().join("in")));
        let h = Handler::new(p, store.clone(), store);
        let (s, per_item) = h.handle(&ev).await.into_parts();
        assert!(per_item);
        assert_eq!(s.objects, processed, "{fifo}: {s:?}");
        assert_eq!(s.batch_item_failures, failures, "{fifo}");
        assert_eq!(
            s.outputs.len(),
            processed as usize,
            "{fifo}: nothing written past it"
        );
        assert!(
            s.error.as_deref().unwrap_or_default().contains("FIFO"),
            "{fifo}: {:?}",
            s.error
        );
    }
}

/// A DynamoDB Streams batch: one row per change from its image, its answer a
/// DynamoDbEventResponse; a pipeline that does not read JSON documents fails the batch from its
/// first record, as a shard resumes.
#[tokio::test]
async fn dynamodb_stream_records_are_rows_of_their_images() {
    use crate::aws_lambda_events::event::streams::DynamoDbEventResponse;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
    let items = [
        serde_json::json!({"id": "a", "n": 1.5, "tags": ["x"]}),
        serde_json::json!({"id": "b", "n": 2.5, "tags": []}),
    ];
    let ev = crate::event::dynamodb_event("orders", "id", &items);
    let cfg = "name = \"t\"\n[input]\nformat = \"ndjson\"\n[[stage]]\ntype = \"select\"\n\
               columns = { id = \"id\", n = \"n\", change = \"_event_name\", seq = \"_sequence\" }\n\
               [output]\nuri = \"s3://o/d/\"\nformat = \"ndjson\"\n";
    let h = Handler::new(plan(cfg), store.clone(), store.clone());
    let outcome = h.handle(&ev).await;
    let answer: DynamoDbEventResponse = serde_json::from_value(outcome.lambda_response()).unwrap();
    assert!(answer.batch_item_failures.is_empty());
    let (s, _) = outcome.into_parts();
    assert_eq!(s.trigger.to_string(), "dynamodb");
    assert_eq!((s.error, s.records_out), (None, 2));
    let got = std::fs::read_to_string(&s.outputs[0]).unwrap();
    assert_eq!(
        got,
        "{\"id\":\"a\",\"n\":1.5,\"change\":\"INSERT\",\"seq\":\"111000000000000000000\"}\n\
         {\"id\":\"b\",\"n\":2.5,\"change\":\"INSERT\",\"seq\":\"111000000000000000001\"}\n"
    );
    let csv = Handler::new(
        plan("name = \"t\"\n[input]\nformat = \"csv\"\n[output]\nuri = \"s3://o/x/\"\n"),
        store.clone(),
        store,
    );
    let (s, _) = csv.handle(&ev).await.into_parts();
    assert!(s.error.unwrap().contains("format = \"ndjson\""));
    assert_eq!(s.batch_item_failures, ["111000000000000000000"]);
}

#[tokio::test]
async fn with_stream_columns_the_schema_is_still_inferred_over_the_batch() {
    // One line per record and no declared schema: a field the first record lacks is still a
    // column (before, with stream columns, the schema came from the first record alone and
    // later fields were dropped).
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
    let ev = crate::event::kinesis_event(
        "s",
        &[
            ("k1".to_string(), br#"{"a":1}"#.to_vec()),
            ("k2".to_string(), br#"{"a":2,"b":"x"}"#.to_vec()),
        ],
    );
    let cfg = "name = \"t\"\n[input]\nformat = \"ndjson\"\n[[stage]]\ntype = \"filter\"\nwhere = \"_partition_key <> 'skip'\"\n[output]\nuri = \"s3://o/p/\"\nformat = \"ndjson\"\n";
    let (s, _) = Handler::new(plan(cfg), store.clone(), store)
        .handle(&ev)
        .await
        .into_parts();
    assert_eq!(s.error, None);
    let got = std::fs::read_to_string(&s.outputs[0]).unwrap();
    assert_eq!(
        got,
        "{\"a\":1,\"_partition_key\":\"k1\"}\n{\"a\":2,\"b\":\"x\",\"_partition_key\":\"k2\"}\n"
    );
}

/// Parquet outputs give a dictionary only to the columns whose values repeat: read back, the
/// unique column is written plainly and the repeating one through its dictionary, and every
/// value is there.
#[tokio::test]
async fn parquet_outputs_give_dictionaries_to_the_columns_that_repeat() {
    use parquet::basic::Encoding;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempfile::tempdir().unwrap();
    let obj = dir.path().join("b/in/x.ndjson");
    std::fs::create_dir_all(obj.parent().unwrap()).unwrap();
    let body: String = (0..3000)
        .map(|i| format!("{{\"id\":\"id-{i:05}\",\"page\":\"/p/{}\"}}\n", i % 5))
        .collect();
    std::fs::write(&obj, body).unwrap();
    let p = plan(
        "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = { id = \"string\", page = \"string\" }\n[output]\nuri = \"s3://b/out/\"\n",
    );
    let store: Arc<dyn ObjectStore> = Arc::new(FsStore::new(dir.path()));
    let h = Handler::new(p, store.clone(), store);
    let ev = crate::event::s3_event(vec![crate::event::s3_record("b", "in/x.ndjson", 1, "e")]);
    let (s, _) = h.handle(&ev).await.into_parts();
    assert_eq!(s.error, None);
    assert_eq!(s.records_out, 3000);
    let file = std::fs::File::open(&s.outputs[0]).unwrap();
    let reader = SerializedFileReader::new(file).unwrap();
    let meta = reader.metadata();
    let chunk = |name: &str| {
        let rg = meta.row_group(0);
        (0..rg.num_columns())
            .map(|c| rg.column(c))
            .find(|c| c.column_path().string() == name)
            .unwrap()
            .clone()
    };
    let (id, page) = (chunk("id"), chunk("page"));
    assert!(id.dictionary_page_offset().is_none());
    assert!(!id.encodings().any(|e| e == Encoding::RLE_DICTIONARY));
    assert!(page.dictionary_page_offset().is_some());
    assert!(page.encodings().any(|e| e == Encoding::RLE_DICTIONARY));
    let rows: usize = reader.get_row_iter(None).unwrap().count();
    assert_eq!(rows, 3000);
}
