//! The real `aws-sdk-s3` client against a local S3 endpoint (moto's server, started by
//! `scripts/test.sh`, which exports `SLUICE_TEST_S3_ENDPOINT` and test credentials).

use std::path::{Path, PathBuf};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use sluice_pipeline::event;
use sluice_pipeline::store::S3Store;

use crate::support::*;

/// The endpoint, or `None` (test skipped) when no server was started and none is required.
pub fn endpoint() -> Option<String> {
    match std::env::var("SLUICE_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            assert!(
                std::env::var_os("SLUICE_REQUIRE_S3").is_none(),
                "SLUICE_TEST_S3_ENDPOINT is not set; run the tests with scripts/test.sh, which starts moto"
            );
            eprintln!("skipped: no S3 endpoint (run scripts/test.sh to start moto)");
            None
        }
    }
}

pub async fn client(endpoint: &str) -> Client {
    S3Store::from_env(Some(endpoint))
        .await
        .client()
        .await
        .clone()
}

/// A bucket name unique to this test run.
pub fn bucket(name: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{}", std::process::id(), t % 1_000_000_000)
}

/// Buckets `{name}-in` and `{name}-out`, unique to this test run, created.
pub async fn in_out_buckets(c: &Client, name: &str) -> (String, String) {
    let (inb, outb) = (
        bucket(&format!("{name}-in")),
        bucket(&format!("{name}-out")),
    );
    c.create_bucket().bucket(&inb).send().await.unwrap();
    c.create_bucket().bucket(&outb).send().await.unwrap();
    (inb, outb)
}

pub async fn put(c: &Client, bucket: &str, key: &str, body: Vec<u8>) {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .expect("put_object");
}

/// How many multipart uploads are open in `bucket` (an aborted one is not).
pub async fn open_uploads(c: &Client, bucket: &str) -> usize {
    c.list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .uploads()
        .len()
}

pub async fn get(c: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let o = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get_object");
    o.body.collect().await.expect("body").into_bytes().to_vec()
}

pub async fn keys(c: &Client, bucket: &str) -> Vec<String> {
    let o = c
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("list");
    let mut k: Vec<String> = o
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    k.sort();
    k
}

/// The example pipeline writing to `output` instead of `analytics-out`.
pub fn config(dir: &std::path::Path, output: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(example_config())
        .unwrap()
        .replace("analytics-out", output);
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The example pipeline writing NDJSON under `s3://{output}/{prefix}` (rejects in the same
/// bucket), with `extra` lines added to its `[output]`.
pub fn ndjson_config(output: &str, prefix: &str, extra: &str) -> String {
    std::fs::read_to_string(example_config())
        .unwrap()
        .replace(
            "s3://analytics-out/clickstream/",
            &format!("s3://{output}/{prefix}"),
        )
        .replace("analytics-out", output)
        .replace(
            "format = \"parquet\"\ncompression = \"zstd\"\npartition_by = [\"day\"]",
            &format!("format = \"ndjson\"{extra}"),
        )
}

/// Generated clickstream line `n` with the example's fields, newline included.
pub fn clickstream_line(n: u64) -> String {
    format!(
        "{{\"ts\":\"2026-11-22T10:{:02}:{:02}Z\",\"user_id\":\"u{n:06}\",\"event_type\":\"click\",\"page\":\"/p/{}\",\"latency_ms\":{},\"bytes\":{},\"geo\":{{\"country\":\"DE\",\"city\":\"Berlin\"}}}}\n",
        n / 60 % 60,
        n % 60,
        n % 97,
        500 + n % 1000,
        n % 5000
    )
}

/// `dir/event.json`: an S3 event of `records`.
/// The notification S3 would send for `bucket/key` as it is now: its size and its real ETag,
/// which Sluice reads it at (`If-Match`).
pub async fn notified(c: &Client, bucket: &str, key: &str) -> serde_json::Value {
    let head = c
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("head_object");
    event::s3_record(
        bucket,
        key,
        head.content_length().unwrap_or(0) as u64,
        head.e_tag().unwrap_or_default().trim_matches('"'),
    )
}

pub fn write_event(dir: &Path, records: Vec<serde_json::Value>) -> PathBuf {
    let ev = dir.join("event.json");
    std::fs::write(&ev, serde_json::to_vec(&event::s3_event(records)).unwrap()).unwrap();
    ev
}

/// `sluice replay CONFIG EVENT --endpoint-url ENDPOINT --json`.
pub fn replay_at(cfg: &Path, ev: &Path, endpoint: &str) -> std::process::Output {
    sluice(&[
        "replay",
        cfg.to_str().unwrap(),
        ev.to_str().unwrap(),
        "--endpoint-url",
        endpoint,
        "--json",
    ])
}

/// `serve`'s store makes its client in the background while the runtime asks for the first
/// event: a lazy store's first requests, however many at once, share one client, and a store
/// warmed ahead reads and writes as one made up front.
#[tokio::test]
async fn a_lazily_made_client_serves_concurrent_first_requests() {
    use sluice_pipeline::store::{At, ObjectMeta, ObjectStore};
    use tokio::io::AsyncReadExt;
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;
    let b = bucket("lazy");
    c.create_bucket().bucket(&b).send().await.unwrap();
    for i in 0..8 {
        put(&c, &b, &format!("k{i}"), format!("body {i}").into_bytes()).await;
    }
    let lazy = std::sync::Arc::new(S3Store::lazy(Some(&ep)));
    let reads = (0..8).map(|i| {
        let (lazy, b) = (lazy.clone(), b.clone());
        tokio::spawn(async move {
            let mut r = lazy.get(&b, &format!("k{i}"), At::latest()).await.unwrap();
            let mut text = String::new();
            r.read_to_string(&mut text).await.unwrap();
            text
        })
    });
    let got: Vec<String> = futures::future::join_all(reads)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, (0..8).map(|i| format!("body {i}")).collect::<Vec<_>>());
    // One client for all of them: the same connection pool and config.
    let first = lazy.client().await as *const Client;
    assert_eq!(lazy.client().await as *const Client, first);

    let warmed = S3Store::lazy(Some(&ep));
    warmed.warm().await;
    sluice_pipeline::store::put(
        &warmed,
        &b,
        "w",
        ObjectMeta::typed("text/plain"),
        b"warm".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(warmed.size(&b, "w", At::latest()).await.unwrap(), 4);
}

#[tokio::test]
async fn replay_against_s3_matches_local_replay_byte_for_byte() {
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;
    let (inb, outb) = in_out_buckets(&c, "replay").await;
    let local = fixtures().join("objects/analytics-in");
    let mut records = Vec::new();
    for key in [
        "clickstream/2026/11/22/web+app events.ndjson",
        "clickstream/2026/11/23/café-東京.ndjson.gz",
    ] {
        let body = std::fs::read(local.join(key)).unwrap();
        put(&c, &inb, key, body).await;
        records.push(notified(&c, &inb, key).await);
    }
    records.push(event::s3_record(
        &inb,
        "clickstream/2026/11/26/gone.ndjson",
        5,
        "etag-2",
    ));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &outb);
    let ev = write_event(dir.path(), records);
    let o = replay_at(&cfg, &ev, &ep);
    // S3's NoSuchKey for the object deleted since its notification: skipped, said why.
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let s = &summaries(&o)[0];
    assert_eq!(s["objects"], 2);
    assert_eq!(s["skipped"], 1);
    assert_eq!(
        s["skips"][0]["source"],
        format!("s3://{inb}/clickstream/2026/11/26/gone.ndjson")
    );
    assert_eq!(
        s["skips"][0]["reason"],
        "no such object (deleted after the notification?)"
    );
    let written = keys(&c, &outb).await;
    assert_eq!(written.len(), 3, "{written:?}");

    // The same event replayed against local copies writes the same keys with the same bytes.
    let store = tempfile::tempdir().unwrap();
    for key in [
        "clickstream/2026/11/22/web+app events.ndjson",
        "clickstream/2026/11/23/café-東京.ndjson.gz",
    ] {
        let p = store.path().join(&inb).join(key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::copy(local.join(key), p).unwrap();
    }
    let o = sluice(&[
        "replay",
        cfg.to_str().unwrap(),
        ev.to_str().unwrap(),
        "--store",
        store.path().to_str().unwrap(),
        "--json",
    ]);
    // The missing object is skipped locally too: the same summary.
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(summaries(&o)[0]["skipped"], 1);
    for key in &written {
        let local_bytes = std::fs::read(store.path().join(&outb).join(key)).unwrap();
        assert_eq!(get(&c, &outb, key).await, local_bytes, "{key}");
    }
    let parquet = written
        .iter()
        .find(|k| k.contains("day=2026-11-23"))
        .unwrap();
    assert_eq!(parquet_rows(&get(&c, &outb, parquet).await).len(), 38);
}

#[tokio::test]
async fn outputs_are_encrypted_and_marked_and_never_read_back_by_their_pipeline() {
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;
    let (inb, outb) = in_out_buckets(&c, "sse").await;
    let key = "clickstream/2026/11/22/web+app events.ndjson";
    let body = std::fs::read(fixtures().join("objects/analytics-in").join(key)).unwrap();
    put(&c, &inb, key, body.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(config(dir.path(), &outb))
        .unwrap()
        .replace(
            "partition_by = [\"day\"]",
            "partition_by = [\"day\"]\nencryption = \"sse-kms\"\nkms_key_id = \"alias/sluice-test\"",
        );
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(&cfg, text).unwrap();
    let replay = |records: Vec<serde_json::Value>| {
        let o = replay_at(&cfg, &write_event(dir.path(), records), &ep);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        summaries(&o).remove(0)
    };
    let s = replay(vec![notified(&c, &inb, key).await]);
    assert_eq!(s["objects"], 1, "{s}");
    let written = keys(&c, &outb).await;
    // The outputs and the rejects file: every object the pipeline writes.
    assert!(
        written.iter().any(|k| k.contains("rejects/")),
        "{written:?}"
    );
    assert!(written.len() >= 2, "{written:?}");
    for k in &written {
        let head = c.head_object().bucket(&outb).key(k).send().await.unwrap();
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms),
            "{k}"
        );
        assert!(
            head.ssekms_key_id()
                .is_some_and(|id| id.contains("alias/sluice-test")),
            "{k}: {:?}",
            head.ssekms_key_id()
        );
        assert_eq!(
            head.metadata().and_then(|m| m.get("sluice-pipeline")),
            Some(&"clickstream".to_string()),
            "{k}"
        );
    }

    // An output copied back under the input's keys (CopyObject keeps its metadata) is not
    // processed again: the marker stops the loop even where the paths do not. An object another
    // pipeline wrote is input like any other (pipelines may chain).
    let output = written.iter().find(|k| !k.contains("rejects/")).unwrap();
    let copied = "clickstream/2026/11/30/copied.ndjson";
    c.copy_object()
        .bucket(&inb)
        .key(copied)
        .copy_source(format!("{outb}/{output}"))
        .send()
        .await
        .unwrap();
    let chained = "clickstream/2026/11/30/from-another-pipeline.ndjson";
    c.put_object()
        .bucket(&inb)
        .key(chained)
        .metadata("sluice-pipeline", "sessions")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let s = replay(vec![
        notified(&c, &inb, copied).await,
        notified(&c, &inb, chained).await,
    ]);
    assert_eq!(
        (s["objects"].as_u64(), s["skipped"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(s["skips"][0]["source"], format!("s3://{inb}/{copied}"));
    assert_eq!(
        s["skips"][0]["reason"],
        sluice_pipeline::own_output("clickstream")
    );
}

#[tokio::test]
async fn large_outputs_go_up_in_multipart_parts_and_memory_stays_bounded() {
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;
    let (inb, outb) = in_out_buckets(&c, "big").await;
    // ~40 MB of NDJSON: larger than several 8 MiB parts once written back out as NDJSON.
    let mut body = Vec::with_capacity(42 << 20);
    let mut n = 0u64;
    while body.len() < 40 << 20 {
        body.extend_from_slice(clickstream_line(n).as_bytes());
        n += 1;
    }
    let key = "clickstream/big/part-0000.ndjson";
    put(&c, &inb, key, body).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        ndjson_config(&outb, "big/", "\nencryption = \"sse-s3\""),
    )
    .unwrap();
    let ev = write_event(dir.path(), vec![notified(&c, &inb, key).await]);

    let (code, out, peak) = sluice_watched(
        &[
            "replay",
            cfg.to_str().unwrap(),
            ev.to_str().unwrap(),
            "--endpoint-url",
            &ep,
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(code, Some(0), "{out}");
    let s: serde_json::Value =
        serde_json::from_str(out.lines().next().unwrap_or_default()).unwrap();
    assert_eq!(s["records_out"].as_u64(), Some(n));
    let written = keys(&c, &outb).await;
    assert_eq!(written.len(), 1, "{written:?}");
    let out = get(&c, &outb, &written[0]).await;
    assert!(out.len() > 3 * (8 << 20), "output is {} bytes", out.len());
    assert_eq!(out.iter().filter(|b| **b == b'\n').count() as u64, n);
    assert_eq!(
        open_uploads(&c, &outb).await,
        0,
        "a multipart upload was left open"
    );
    // A multipart upload is encrypted and marked as a whole, as a single PutObject is.
    let head = c
        .head_object()
        .bucket(&outb)
        .key(&written[0])
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    assert_eq!(
        head.metadata().and_then(|m| m.get("sluice-pipeline")),
        Some(&"clickstream".to_string())
    );
    // Input and output are both 40+ MB; the process must not hold either whole.
    if let Some(peak) = peak {
        assert!(peak < 120 << 20, "peak RSS {} MiB", peak >> 20);
    }
}

#[tokio::test]
async fn parquet_objects_are_read_by_range_from_s3() {
    use arrow_array::{Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;
    let (inb, outb) = in_out_buckets(&c, "pq").await;
    let schema = Arc::new(arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("id", arrow_schema::DataType::Int64, false),
        arrow_schema::Field::new("page", arrow_schema::DataType::Utf8, true),
    ]));
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(500))
        .build();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).unwrap();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(0..5000)),
            Arc::new(StringArray::from_iter(
                (0..5000).map(|i| Some(format!("/p/{}", i % 10))),
            )),
        ],
    )
    .unwrap();
    w.write(&batch).unwrap();
    let body = w.into_inner().unwrap();
    let key = "tables/events/part-0.parquet";
    put(&c, &inb, key, body).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        format!("name = \"pq\"\n[input]\nformat = \"parquet\"\nkeys = [\"tables/**\"]\n[[stage]]\ntype = \"filter\"\nwhere = \"page = '/p/3'\"\n[output]\nuri = \"s3://{outb}/events/\"\n"),
    )
    .unwrap();
    let ev = write_event(dir.path(), vec![notified(&c, &inb, key).await]);
    let o = replay_at(&cfg, &ev, &ep);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let s = &summaries(&o)[0];
    assert_eq!(
        (s["records_in"].as_u64(), s["records_out"].as_u64()),
        (Some(5000), Some(500))
    );
    let written = keys(&c, &outb).await;
    let rows = parquet_rows(&get(&c, &outb, &written[0]).await);
    assert_eq!(rows.len(), 500);
    assert_eq!(rows[0], "{\"id\":3,\"page\":\"/p/3\"}");

    // Its own output copied back under its keys: refused by the size lookup that precedes the
    // ranged reads, and skipped with the guard's reason.
    let copied = "tables/events/copied.parquet";
    c.copy_object()
        .bucket(&inb)
        .key(copied)
        .copy_source(format!("{outb}/{}", written[0]))
        .send()
        .await
        .unwrap();
    let ev = write_event(dir.path(), vec![notified(&c, &inb, copied).await]);
    let o = replay_at(&cfg, &ev, &ep);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let s = &summaries(&o)[0];
    assert_eq!(s["skipped"], 1, "{s}");
    assert_eq!(s["skips"][0]["reason"], sluice_pipeline::own_output("pq"));
}

/// Issue 27, the memory budget against S3: with a 128 MB budget (16 MB for the files) the open
/// partitions' row groups are written out early and S3 parts sent once they reach 5 MiB, so
/// each object is a multipart upload of several parts; every row lands once, in its partition,
/// and no upload is left open.
#[tokio::test]
async fn partitioned_output_to_s3_within_a_small_memory_budget() {
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;
    let (inb, outb) = in_out_buckets(&c, "budget").await;
    const ROWS: u64 = 24_000;
    let data = incompressible_rows(ROWS, 4);
    put(&c, &inb, "wide/data.ndjson", data).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        format!(
            "name = \"budget\"\n[input]\nformat = \"ndjson\"\nkeys = [\"wide/**\"]\n\
             schema = {{ p = \"int64\", n = \"int64\", blob = \"string\" }}\n\
             [output]\nuri = \"s3://{outb}/out/\"\ncompression = \"none\"\npartition_by = [\"p\"]\n"
        ),
    )
    .unwrap();
    let ev = write_event(
        dir.path(),
        vec![notified(&c, &inb, "wide/data.ndjson").await],
    );
    let o = sluice(&[
        "replay",
        cfg.to_str().unwrap(),
        ev.to_str().unwrap(),
        "--endpoint-url",
        &ep,
        "--json",
        "--memory-mb",
        "128",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let summary = &summaries(&o)[0];
    assert_eq!(summary["records_out"], ROWS, "{summary}");
    let written = keys(&c, &outb).await;
    assert_eq!(written.len(), 4, "{written:?}");
    let (mut rows, mut row_groups) = (0, 0);
    for k in &written {
        let p: u64 = k
            .split("p=")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let bytes = get(&c, &outb, k).await;
        let meta = parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&bytes::Bytes::from(bytes.clone()))
            .unwrap();
        row_groups += meta.num_row_groups();
        for line in parquet_rows(&bytes) {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["n"].as_u64().unwrap() % 4, p, "{k}");
            rows += 1;
        }
    }
    assert_eq!(rows, ROWS);
    // Row groups written out early: 48 MB of rows through a 16 MB budget leave at most 16 MB
    // (and the floor) held, so files were relieved before the end, more than one of them. (Which
    // ones depends on how the writer counts what it holds: with a dictionary on every column each
    // partition was relieved; with none on the unique blobs, which are no smaller for one, a
    // partition may keep its one row group.)
    assert!(
        row_groups >= written.len() + 2,
        "{row_groups} row groups in {} files",
        written.len()
    );
    assert_eq!(open_uploads(&c, &outb).await, 0);
}

/// Issue 28: an object overwritten after its notification was read as the newer upload, whose
/// own notification then read it again: its rows written twice (under two names). A versioned
/// bucket's object is read at the notified version; an unversioned one, changed since (its ETag
/// no longer the notified one), is skipped as superseded, and the newer upload's notification
/// reads it once.
#[tokio::test]
async fn an_object_overwritten_after_its_notification_is_read_as_notified_or_skipped() {
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;
    let lines = |from: u64, n: u64| -> Vec<u8> {
        (from..from + n)
            .flat_map(|i| clickstream_line(i).into_bytes())
            .collect()
    };
    let key = "clickstream/overwritten.ndjson";
    let run = |outb: &str, records: Vec<serde_json::Value>| {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("pipeline.toml");
        std::fs::write(&cfg, ndjson_config(outb, "out/", "")).unwrap();
        let ev = write_event(dir.path(), records);
        let o = replay_at(&cfg, &ev, &ep);
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        summaries(&o).remove(0)
    };

    // Versioned: the notified version's 10 lines, not the 30 written over them.
    let (inb, outb) = in_out_buckets(&c, "versioned").await;
    c.put_bucket_versioning()
        .bucket(&inb)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let first = c
        .put_object()
        .bucket(&inb)
        .key(key)
        .body(ByteStream::from(lines(0, 10)))
        .send()
        .await
        .unwrap();
    let mut record = notified(&c, &inb, key).await;
    record["s3"]["object"]["versionId"] = first.version_id().unwrap().into();
    put(&c, &inb, key, lines(100, 30)).await;
    let s = run(&outb, vec![record]);
    assert_eq!(
        (s["objects"].as_u64(), s["records_in"].as_u64()),
        (Some(1), Some(10)),
        "{s}"
    );

    // Unversioned: skipped, with the reason; the newer upload's own notification reads it.
    let (inb, outb) = in_out_buckets(&c, "unversioned").await;
    put(&c, &inb, key, lines(0, 10)).await;
    let stale = notified(&c, &inb, key).await;
    put(&c, &inb, key, lines(100, 30)).await;
    let s = run(&outb, vec![stale.clone()]);
    assert_eq!(
        (s["skipped"].as_u64(), s["records_in"].as_u64()),
        (Some(1), Some(0)),
        "{s}"
    );
    assert_eq!(s["skips"][0]["reason"], sluice_pipeline::SUPERSEDED, "{s}");
    assert_eq!(s["outputs"], serde_json::json!([]), "{s}");
    let s = run(&outb, vec![stale, notified(&c, &inb, key).await]);
    assert_eq!(
        (
            s["objects"].as_u64(),
            s["skipped"].as_u64(),
            s["records_in"].as_u64()
        ),
        (Some(1), Some(1), Some(30)),
        "{s}"
    );
}

/// `sluice backfill` against moto: 5 000 objects the pipeline reads (and 500 it does not) under a
/// prefix; the manifest lists exactly the 5 000, URL-encoded; `--local` runs each as its Batch
/// Operations task, with progress; a second run writes the same outputs, byte for byte.
#[tokio::test]
async fn a_backfill_lists_exactly_what_the_pipeline_reads_and_runs_it_twice_the_same() {
    use futures::StreamExt;
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;
    let (inb, outb) = in_out_buckets(&c, "backfill").await;
    let mut keys: Vec<String> = (0..5_000)
        .map(|i| format!("clickstream/2026/11/{:02}/part {i:05}+x.ndjson", 1 + i % 28))
        .collect();
    let others: Vec<String> = (0..500)
        .map(|i| format!("clickstream/notes/{i}.txt"))
        .collect();
    futures::stream::iter(keys.iter().chain(&others).enumerate())
        .for_each_concurrent(32, |(i, k)| {
            let (c, inb) = (c.clone(), inb.clone());
            async move { put(&c, &inb, k, clickstream_line(i as u64).into_bytes()).await }
        })
        .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &outb);
    let manifest = format!("s3://{outb}/manifests/backfill.csv");
    let run = || {
        sluice(&[
            "backfill",
            cfg.to_str().unwrap(),
            &format!("s3://{inb}/clickstream/"),
            "--endpoint-url",
            &ep,
            "--manifest",
            &manifest,
            "--local",
            "--parallel",
            "8",
            "--json",
        ])
    };
    let o = run();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let report: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(report["objects"], 5_000, "{report}");
    assert_eq!(report["left_out"], 500);
    assert_eq!(report["succeeded"], 5_000);
    assert_eq!(report["invocations"], 5_000);
    assert!(
        stderr(&o).contains("backfill: 5000/5000 objects"),
        "{}",
        stderr(&o)
    );
    // The manifest: exactly the objects read, as Bucket,Key with the key URL-encoded.
    let csv = String::from_utf8(get(&c, &outb, "manifests/backfill.csv").await).unwrap();
    let mut listed: Vec<String> = csv
        .lines()
        .map(|l| {
            let (b, k) = l.split_once(',').unwrap();
            assert_eq!(b, inb);
            assert!(!k.contains(' ') && !k.contains('+'), "{k}");
            sluice_pipeline::trigger::decode_key(k).unwrap()
        })
        .collect();
    listed.sort();
    keys.sort();
    assert_eq!(listed, keys);
    // Every object written once (a Parquet file per object, by day), and again the same.
    let snapshot = |c: Client, outb: String| async move {
        let mut etags = Vec::new();
        let mut token = None;
        loop {
            let page = c
                .list_objects_v2()
                .bucket(&outb)
                .prefix("clickstream/")
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            for o in page.contents() {
                etags.push((
                    o.key().unwrap_or_default().to_string(),
                    o.e_tag().unwrap_or_default().to_string(),
                ));
            }
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        etags.sort();
        etags
    };
    let first = snapshot(c.clone(), outb.clone()).await;
    assert_eq!(first.len(), 5_000);
    let o = run();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(snapshot(c.clone(), outb.clone()).await, first);
    // Nothing last written before 2000: nothing to do.
    let o = sluice(&[
        "backfill",
        cfg.to_str().unwrap(),
        &format!("s3://{inb}/clickstream/"),
        "--endpoint-url",
        &ep,
        "--until",
        "2000-01-01",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (report["objects"].as_u64(), report["left_out"].as_u64()),
        (Some(0), Some(5_500))
    );
}
