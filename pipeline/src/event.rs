//! `sluice event`: realistic event payloads for local objects, for replay and tests.
//!
//! The shapes follow the S3 User Guide's "Event message structure" (notification version 2.1) and
//! the SQS and SNS delivery formats; keys are form-encoded the way S3 encodes them.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

/// Characters S3 leaves unescaped in notification keys besides alphanumerics.
const S3_KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'*')
    .remove(b'/')
    .remove(b' ');

/// Encode a key as S3 notifications do: spaces become `+`, other specials `%XX`.
pub fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, S3_KEY)
        .to_string()
        .replace(' ', "+")
}

/// One S3 `ObjectCreated:Put` record (an empty `etag`: none, the content not named).
pub fn s3_record(bucket: &str, key: &str, size: u64, etag: &str) -> Value {
    let mut record = s3_record_with(bucket, key, size, etag);
    if etag.is_empty()
        && let Some(o) = record["s3"]["object"].as_object_mut()
    {
        o.remove("eTag");
    }
    record
}

fn s3_record_with(bucket: &str, key: &str, size: u64, etag: &str) -> Value {
    json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-22T12:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": { "principalId": "AWS:AIDAEXAMPLE" },
        "requestParameters": { "sourceIPAddress": "203.0.113.10" },
        "responseElements": { "x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD" },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "sluice-trigger",
            "bucket": { "name": bucket, "ownerIdentity": { "principalId": "A3NL1KOZZKExample" }, "arn": format!("arn:aws:s3:::{bucket}") },
            "object": { "key": encode_key(key), "size": size, "eTag": etag, "sequencer": "0055AED6DCD90281E5" }
        }
    })
}

/// A direct S3 notification.
pub fn s3_event(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

/// `message` (an S3 notification) as SNS sends it to a subscribed SQS queue without raw message
/// delivery: the envelope that is then the message's body.
pub fn sns_envelope(message: &Value) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:sluice-uploads",
        "Subject": "Amazon S3 Notification",
        "Message": message.to_string(),
        "Timestamp": "2026-11-22T12:00:00.123Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-east-1:123456789012:sluice-uploads:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55"
    })
}

/// `message` (an S3 notification) as SNS invokes a subscribed function with it.
pub fn sns_event(message: &Value) -> Value {
    let mut sns = sns_envelope(message);
    if let Some(o) = sns.as_object_mut() {
        // Lambda's SNS event spells these two as `…Url` and adds the attributes.
        for (from, to) in [
            ("SigningCertURL", "SigningCertUrl"),
            ("UnsubscribeURL", "UnsubscribeUrl"),
        ] {
            if let Some(v) = o.remove(from) {
                o.insert(to.into(), v);
            }
        }
        o.insert("MessageAttributes".into(), json!({}));
    }
    json!({ "Records": [{
        "EventVersion": "1.0",
        "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:sluice-uploads:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55",
        "EventSource": "aws:sns",
        "Sns": sns
    }]})
}

/// An S3 Batch Operations invocation of `schema` 1.0 (the bucket by ARN) or 2.0 (by name, with
/// the job's user arguments), one task per key (URL-encoded as in a manifest), as the Lambda
/// invoke operation sends it; task ids are `task-0`, `task-1`…
pub fn batch_ops_event(schema: &str, bucket: &str, keys: &[String]) -> Value {
    let tasks: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let mut task = json!({ "taskId": format!("task-{i}"), "s3Key": encode_key(k), "s3VersionId": null });
            if let Some(t) = task.as_object_mut() {
                if schema == "1.0" {
                    t.insert("s3BucketArn".into(), json!(format!("arn:aws:s3:::{bucket}")));
                } else {
                    t.insert("s3Bucket".into(), json!(bucket));
                }
            }
            task
        })
        .collect();
    let mut job = json!({ "id": "f3cc4f60-61f6-4a2b-8a21-d07600c373ce" });
    if schema != "1.0" {
        job["userArguments"] = json!({});
    }
    json!({
        "invocationSchemaVersion": schema,
        "invocationId": "YXNkbGZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo",
        "job": job,
        "tasks": tasks,
    })
}

/// A CloudWatch Logs subscription as it invokes a function directly (`awslogs.data`: the log
/// events' document, gzip, base64), built from `aws_lambda_events`' `LogData`: one log event
/// per message, a millisecond apart; with `control`, the CONTROL_MESSAGE the service sends to
/// check a new subscription instead.
pub fn cloudwatch_logs_event(
    group: &str,
    stream: &str,
    messages: &[String],
    control: bool,
) -> Value {
    use aws_lambda_events::event::cloudwatch_logs::{LogData, LogEntry};
    let entry = |i: usize, message: &str| {
        let mut e = LogEntry::default();
        e.id = format!(
            "3791233648017023721999983702106653680255643237583896{:04}",
            i % 10_000
        );
        e.timestamp = 1_795_372_800_000 + i as i64;
        e.message = message.to_string();
        e
    };
    let mut data = LogData::default();
    if control {
        data.owner = "CloudwatchLogs".into();
        data.message_type = "CONTROL_MESSAGE".into();
        data.log_events = vec![entry(
            0,
            "CWL CONTROL MESSAGE: Checking health of destination Lambda function.",
        )];
    } else {
        data.owner = "123456789012".into();
        data.log_group = group.into();
        data.log_stream = stream.into();
        data.subscription_filters = vec!["sluice".into()];
        data.message_type = "DATA_MESSAGE".into();
        data.log_events = messages
            .iter()
            .enumerate()
            .map(|(i, m)| entry(i, m))
            .collect();
    }
    // Gzip and padded base64, as CloudWatch Logs sends it. (The crate's own `AwsLogs` writer
    // leaves the padding off, which its reader, like AWS's clients, refuses.)
    use base64::Engine;
    let written = gzip(&serde_json::to_vec(&data).unwrap_or_default());
    json!({ "awslogs": { "data": base64::engine::general_purpose::STANDARD.encode(written) } })
}

/// `bytes` gzip-compressed, as CloudWatch Logs sends its documents.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes)
        .ok()
        .and_then(|()| gz.finish().ok())
        .unwrap_or_default()
}

/// A Firehose data-transformation invocation of `stream` (a Direct PUT delivery stream, or with
/// `source` the Kinesis stream it reads, whose records then carry their Kinesis metadata), one
/// record per payload, built from `aws_lambda_events`' `KinesisFirehoseEvent`: record ids in
/// Firehose's shape, arrivals a millisecond apart.
pub fn firehose_event(stream: &str, source: Option<&str>, payloads: &[Vec<u8>]) -> Value {
    use aws_lambda_events::event::firehose::{
        KinesisFirehoseEvent, KinesisFirehoseEventRecord, KinesisFirehoseRecordMetadata,
    };
    let arrival = |i: usize| {
        let ms = FIRST_ARRIVAL as i64 * 1000 + i as i64;
        aws_lambda_events::encodings::MillisecondTimestamp(
            chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default(),
        )
    };
    // The invocation's id, a UUID made of what it holds (the same batch, the same id).
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(stream.as_bytes());
    h.update(source.unwrap_or_default().as_bytes());
    for p in payloads {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let hex: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut ev = KinesisFirehoseEvent::default();
    ev.invocation_id = Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ));
    ev.delivery_stream_arn = Some(format!(
        "arn:aws:firehose:us-east-1:123456789012:deliverystream/{stream}"
    ));
    ev.source_kinesis_stream_arn =
        source.map(|s| format!("arn:aws:kinesis:us-east-1:123456789012:stream/{s}"));
    ev.region = Some("us-east-1".into());
    ev.records = payloads
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let mut r = KinesisFirehoseEventRecord::default();
            let sequence = kinesis_sequence(i as u64);
            r.record_id = Some(sequence.clone());
            r.approximate_arrival_timestamp = arrival(i);
            r.data.extend_from_slice(data);
            if source.is_some() {
                let mut m = KinesisFirehoseRecordMetadata::default();
                m.shard_id = Some("shardId-000000000000".into());
                m.partition_key = Some(format!("pk-{}", i % 4));
                m.sequence_number = Some(sequence);
                m.approximate_arrival_timestamp = arrival(i);
                r.kinesis_firehose_record_metadata = Some(m);
            }
            r
        })
        .collect();
    let mut v = serde_json::to_value(ev).unwrap_or(Value::Null);
    // Firehose sends arrival times as numbers; the crate writes them as strings.
    if let Some(records) = v.get_mut("records").and_then(Value::as_array_mut) {
        for r in records {
            for at in [
                "/approximateArrivalTimestamp",
                "/kinesisRecordMetadata/approximateArrivalTimestamp",
            ] {
                if let Some(t) = r.pointer_mut(at)
                    && let Some(ms) = t.as_str().and_then(|s| s.parse::<i64>().ok())
                {
                    *t = json!(ms);
                }
            }
        }
    }
    v
}

/// A DynamoDB Streams batch of `INSERT`s into `table` (a NEW_AND_OLD_IMAGES stream), one per
/// item (a JSON object), its key the item's `key` attribute, sequence numbers increasing.
pub fn dynamodb_event(table: &str, key: &str, items: &[Value]) -> Value {
    use crate::trigger::dynamodb::attribute;
    let records: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let image = match attribute(item) {
                Value::Object(mut m) => m.remove("M").unwrap_or(Value::Null),
                other => other,
            };
            let keys = json!({ key: attribute(item.get(key).unwrap_or(&Value::Null)) });
            json!({
                "eventID": format!("c4ca4238a0b923820dcc509a6f75849{i}"),
                "eventName": "INSERT",
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_795_372_800 + i as u64,
                    "Keys": keys,
                    "NewImage": image,
                    "SequenceNumber": format!("{}", 111_000_000_000_000_000_000u128 + i as u128),
                    "SizeBytes": item.to_string().len(),
                    "StreamViewType": "NEW_AND_OLD_IMAGES"
                },
                "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2026-11-22T00:00:00.000")
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The same notification delivered by SQS.
pub fn sqs_event(s3: &Value, message_id: &str) -> Value {
    json!({ "Records": [{
        "messageId": message_id,
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": s3.to_string(),
        "attributes": { "ApproximateReceiveCount": "1", "SentTimestamp": "1763812800000", "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1763812800001" },
        "messageAttributes": {},
        "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:sluice-uploads",
        "awsRegion": "us-east-1"
    }]})
}

/// A Kinesis stream batch: one record per payload, on `shardId-000000000000` of `stream`, with
/// increasing sequence numbers shaped like real ones (56 digits) and arrival times one ms apart.
/// Each payload is `(partition key, data)`; data is base64-encoded as Lambda delivers it.
pub fn kinesis_event(stream: &str, payloads: &[(String, Vec<u8>)]) -> Value {
    json!({ "Records": kinesis_records(stream, payloads, 0) })
}

/// The invocations of one Kinesis tumbling window of `seconds` over `payloads`, `per_invoke`
/// records each (at least one invocation, the last marked `isFinalInvokeForWindow`), as Lambda
/// sends them with `TumblingWindowInSeconds`: each with the window, the shard, and an empty state
/// (Lambda fills in what the previous invocation returned; replay carries it the same way).
pub fn kinesis_window_events(
    stream: &str,
    payloads: &[(String, Vec<u8>)],
    seconds: u64,
    per_invoke: usize,
) -> Vec<Value> {
    let seconds = seconds.max(1);
    let start = (FIRST_ARRIVAL as u64 / seconds) * seconds;
    let iso = |t: u64| {
        chrono::DateTime::from_timestamp(t as i64, 0)
            .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default()
    };
    let chunks: Vec<&[(String, Vec<u8>)]> = if payloads.is_empty() {
        vec![&[]]
    } else {
        payloads.chunks(per_invoke.max(1)).collect()
    };
    let n = chunks.len();
    let mut first = 0;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let records = kinesis_records(stream, chunk, first);
            first += chunk.len() as u64;
            json!({
                "Records": records,
                "window": { "start": iso(start), "end": iso(start + seconds) },
                "state": {},
                "shardId": "shardId-000000000000",
                "eventSourceARN": format!("arn:aws:kinesis:us-east-1:123456789012:stream/{stream}"),
                "isFinalInvokeForWindow": i + 1 == n,
                "isWindowTerminatedEarly": false
            })
        })
        .collect()
}

/// Arrival time of the first record of generated Kinesis events (2025-11-22T12:00:00Z).
const FIRST_ARRIVAL: f64 = 1_763_812_800.0;

fn kinesis_records(stream: &str, payloads: &[(String, Vec<u8>)], first: u64) -> Vec<Value> {
    use base64::Engine;
    payloads
        .iter()
        .enumerate()
        .map(|(i, (key, data))| {
            let i = first + i as u64;
            let seq = kinesis_sequence(i);
            json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": key,
                    "sequenceNumber": seq,
                    "data": base64::engine::general_purpose::STANDARD.encode(data),
                    "approximateArrivalTimestamp": FIRST_ARRIVAL + i as f64 / 1000.0
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:{seq}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/sluice",
                "awsRegion": "us-east-1",
                "eventSourceARN": format!("arn:aws:kinesis:us-east-1:123456789012:stream/{stream}")
            })
        })
        .collect()
}

/// The `n`th sequence number of the example shard (56 digits, increasing).
pub fn kinesis_sequence(n: u64) -> String {
    format!("4959033827149025660855969253836157109592157598913{:07}", n)
}

/// An SQS batch whose message bodies are records.
pub fn sqs_records_event(queue: &str, bodies: &[String]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            json!({
                "messageId": format!("00000000-0000-4000-8000-{:012}", i),
                "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
                "body": body,
                "attributes": { "ApproximateReceiveCount": "1", "SentTimestamp": (1_763_812_800_000u64 + i as u64).to_string(), "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1763812800001" },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:us-east-1:123456789012:{queue}"),
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}
