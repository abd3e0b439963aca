//! Kinesis end to end against a real endpoint (moto's server, started by `scripts/test.sh`): records
//! put on a stream (plain and KPL-aggregated) are read back with GetRecords, turned into the event
//! Lambda would deliver, replayed by the `sluice` binary, and the rows it puts on a second stream
//! are read back.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use base64::Engine;
use sluice_pipeline::kinesis::KinesisPutter;

use crate::s3::{bucket, endpoint};
use crate::support::*;

pub async fn stream(c: &Client, name: &str) -> String {
    c.create_stream()
        .stream_name(name)
        .shard_count(1)
        .send()
        .await
        .expect("create_stream");
    let d = c
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .expect("describe_stream_summary");
    d.stream_description_summary()
        .expect("summary")
        .stream_arn()
        .to_string()
}

/// Every record of the stream's only shard, oldest first.
pub async fn read_all(c: &Client, name: &str) -> Vec<aws_sdk_kinesis::types::Record> {
    let shards = c
        .list_shards()
        .stream_name(name)
        .send()
        .await
        .expect("list_shards");
    let shard = shards.shards()[0].shard_id().to_string();
    let it = c
        .get_shard_iterator()
        .stream_name(name)
        .shard_id(&shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("get_shard_iterator");
    let r = c
        .get_records()
        .shard_iterator(it.shard_iterator().expect("iterator"))
        .send()
        .await
        .expect("get_records");
    r.records().to_vec()
}

#[tokio::test]
async fn a_stream_read_back_replays_through_sluice_onto_another_stream() {
    let Some(ep) = endpoint() else { return };
    let c = KinesisPutter::from_env(Some(&ep))
        .await
        .client()
        .await
        .clone();
    let input = bucket("in");
    let output = bucket("out");
    let arn = stream(&c, &input).await;
    stream(&c, &output).await;

    // Two plain records (one of them two lines), one KPL aggregate of three user records, one
    // record that is not JSON, one whose row has an empty partition key.
    let agg = sluice_pipeline::kpl::aggregate(&[
        ("kpl-a", b"{\"user\":\"ann\",\"n\":3}"),
        ("kpl-b", b"{\"user\":\"bob\",\"n\":0}"),
        ("kpl-c", b"{\"user\":\"cat\",\"n\":5}"),
    ]);
    let payloads: Vec<(&str, Vec<u8>)> = vec![
        ("p1", b"{\"user\":\"ann\",\"n\":1}".to_vec()),
        (
            "p2",
            b"{\"user\":\"dan\",\"n\":2}\n{\"user\":\"eve\",\"n\":4}\n".to_vec(),
        ),
        ("agg", agg),
        ("bad", b"not json".to_vec()),
        ("p3", b"{ \"user\": \"\", \"n\": 6 }".to_vec()),
    ];
    let mut req = c.put_records().stream_name(&input);
    for (key, data) in &payloads {
        req = req.records(
            PutRecordsRequestEntry::builder()
                .partition_key(*key)
                .data(Blob::new(data.clone()))
                .build()
                .unwrap(),
        );
    }
    let put = req.send().await.expect("put_records");
    assert_eq!(put.failed_record_count(), Some(0));

    // The event Lambda's event source mapping would build from what the shard returns.
    let got = read_all(&c, &input).await;
    assert_eq!(got.len(), 5);
    let records: Vec<serde_json::Value> = got
        .iter()
        .map(|r| {
            let at = r
                .approximate_arrival_timestamp()
                .map(|t| t.as_secs_f64())
                .unwrap_or(0.0);
            serde_json::json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key(),
                    "sequenceNumber": r.sequence_number(),
                    "data": base64::engine::general_purpose::STANDARD.encode(r.data().as_ref()),
                    "approximateArrivalTimestamp": at,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:{}", r.sequence_number()),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/sluice",
                "awsRegion": "us-east-1",
                "eventSourceARN": arn,
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        serde_json::to_vec(&serde_json::json!({ "Records": records })).unwrap(),
    )
    .unwrap();
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            r#"name = "stream-to-stream"
[input]
format = "ndjson"
schema = {{ user = "string", n = "int64" }}

[[stage]]
type = "filter"
where = "n > 0"

[[stage]]
type = "select"
columns = {{ user = "user", n = "n", seq = "_sequence", sub = "_subsequence", key = "_partition_key" }}

[output]
uri = "kinesis://{output}"
partition_key = "user"

[rejects]
uri = "{}"
"#,
            dir.path().join("rejects").display()
        ),
    )
    .unwrap();
    let o = sluice(&[
        "replay",
        config.to_str().unwrap(),
        event.to_str().unwrap(),
        "--endpoint-url",
        &ep,
        "--json",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let s = &summaries(&o)[0];
    assert_eq!(s["records_in"], 8, "{s}");
    assert_eq!(s["records_out"], 5, "{s}");
    assert_eq!(s["rejected"], 2, "{s}");
    assert_eq!(s["batch_item_failures"], serde_json::json!([]), "{s}");
    assert_eq!(
        s["outputs"][0],
        format!("kinesis://{output} (5 records)"),
        "{s}"
    );

    // What the second stream holds: the kept rows, in order, keyed by user.
    let seq = |i: usize| got[i].sequence_number().to_string();
    let out: Vec<(String, String)> = read_all(&c, &output)
        .await
        .iter()
        .map(|r| {
            (
                r.partition_key().unwrap_or_default().to_string(),
                String::from_utf8(r.data().as_ref().to_vec()).unwrap(),
            )
        })
        .collect();
    let row = |user: &str, n: i64, i: usize, sub: i64, key: &str| {
        (
            user.to_string(),
            format!(
                "{{\"user\":\"{user}\",\"n\":{n},\"seq\":\"{}\",\"sub\":{sub},\"key\":\"{key}\"}}\n",
                seq(i)
            ),
        )
    };
    assert_eq!(
        out,
        vec![
            row("ann", 1, 0, 0, "p1"),
            row("dan", 2, 1, 0, "p2"),
            row("eve", 4, 1, 0, "p2"),
            row("ann", 3, 2, 0, "kpl-a"),
            row("cat", 5, 2, 2, "kpl-c"),
        ]
    );
    let rejects = files(&dir.path().join("rejects"));
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    // The row the output refused (its key is empty) is its input record as read, with the values
    // the output was given.
    let refused = ndjson_values(&dir.path().join("rejects"));
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(refused[0]["raw"], "not json", "{refused:?}");
    let r = &refused[1];
    assert_eq!(r["position"]["stage"], "output", "{r}");
    assert_eq!(r["raw"], "{ \"user\": \"\", \"n\": 6 }", "{r}");
    assert_eq!(
        r["values"],
        serde_json::json!({"user": "", "n": 6, "seq": seq(4), "sub": 0, "key": "p3"}),
        "{r}"
    );
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("partition key is null or empty"),
        "{r}"
    );
}
