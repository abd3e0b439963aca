//! `sluice backfill`: the objects already in a bucket, processed as an S3 Batch Operations job
//! would process them — listed (those the pipeline reads, optionally by when they were last
//! written), written as the job's CSV manifest, and, run here, each one an invocation of the
//! handler with the task Batch Operations would send, `TemporaryFailure`s retried as it retries
//! them.

use std::sync::Arc;
use std::time::SystemTime;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::Error;
use crate::run::Handler;
use crate::store::ObjectStore;

/// Characters a manifest leaves as they are in a key besides alphanumerics: RFC 3986's
/// unreserved ones and the path separator (a space is `%20`, a plus `%2B`).
const MANIFEST_KEY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// An object to backfill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its bucket.
    pub bucket: String,
    /// Its key.
    pub key: String,
    /// When it was last written, where the store tells.
    pub modified: Option<SystemTime>,
}

/// What a listing found.
#[derive(Debug, Default)]
pub struct Listing {
    /// The objects the pipeline reads, in key order.
    pub objects: Vec<Listed>,
    /// Objects under the prefix left out because the pipeline does not read them (its `[input]
    /// keys`, or its own outputs), or because they were written outside `--since`/`--until`.
    pub left_out: u64,
}

/// The objects under `prefix` of `bucket` that `handler`'s pipeline reads, last written in
/// `[since, until)` when given (an object whose store gives no time is kept only when neither
/// is given).
pub async fn list(
    handler: &Handler,
    store: &dyn ObjectStore,
    bucket: &str,
    prefix: &str,
    since: Option<SystemTime>,
    until: Option<SystemTime>,
) -> Result<Listing, Error> {
    let mut out = Listing::default();
    for (key, modified) in store.list_dated(bucket, prefix).await? {
        let in_time = match modified {
            Some(t) => since.is_none_or(|s| t >= s) && until.is_none_or(|u| t < u),
            None => since.is_none() && until.is_none(),
        };
        if in_time && handler.reads(bucket, &key) {
            out.objects.push(Listed {
                bucket: bucket.to_string(),
                key,
                modified,
            });
        } else {
            out.left_out += 1;
        }
    }
    Ok(out)
}

/// `2026-11-01` (midnight UTC) or an RFC 3339 time, for `--since` and `--until`.
pub fn parse_time(text: &str) -> Result<SystemTime, String> {
    let t = chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| format!("`{text}` is not a date (2026-11-01) or an RFC 3339 time"))?;
    Ok(t.into())
}

/// A key as a Batch Operations CSV manifest gives it: URL-encoded.
pub fn manifest_key(key: &str) -> String {
    utf8_percent_encode(key, MANIFEST_KEY).to_string()
}

/// The job's manifest: `bucket,key` lines in Batch Operations' CSV format
/// (`S3BatchOperations_CSV_20180820`, fields `Bucket`, `Key`).
pub fn manifest(objects: &[Listed]) -> String {
    let mut csv = String::with_capacity(objects.len() * 64);
    for o in objects {
        csv.push_str(&o.bucket);
        csv.push(',');
        csv.push_str(&manifest_key(&o.key));
        csv.push('\n');
    }
    csv
}

/// How one object of a local backfill ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// `s3://bucket/key`.
    pub source: String,
    /// The last answer's `resultCode`: `Succeeded`, `TemporaryFailure` or `PermanentFailure`.
    pub code: String,
    /// Its `resultString`.
    pub reason: String,
    /// Invocations it took (1 + retries).
    pub invocations: u32,
}

/// Each object through `handler` as its own invocation with the task Batch Operations sends
/// (schema 2.0), `parallel` at a time, a `TemporaryFailure` retried up to `max_retries` times;
/// `progress(done, total)` after each object. In the listing's order.
pub async fn run_local(
    handler: Arc<Handler>,
    objects: &[Listed],
    parallel: usize,
    max_retries: u32,
    mut progress: impl FnMut(usize, usize),
) -> Vec<Done> {
    use futures::StreamExt;
    let total = objects.len();
    let mut results: Vec<Option<Done>> = vec![None; total];
    let mut runs = futures::stream::iter(objects.iter().enumerate().map(|(i, o)| {
        let handler = handler.clone();
        async move { (i, one(&handler, o, max_retries).await) }
    }))
    .buffer_unordered(parallel.max(1));
    let mut finished = 0;
    while let Some((i, done)) = runs.next().await {
        results[i] = Some(done);
        finished += 1;
        progress(finished, total);
    }
    results.into_iter().flatten().collect()
}

async fn one(handler: &Handler, o: &Listed, max_retries: u32) -> Done {
    let event = crate::event::batch_ops_event("2.0", &o.bucket, std::slice::from_ref(&o.key));
    let mut invocations = 0;
    loop {
        invocations += 1;
        let answer = handler.handle(&event).await.lambda_response();
        let result = answer.pointer("/results/0").cloned().unwrap_or(Value::Null);
        let text = |k: &str| {
            result
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let code = text("resultCode");
        if code == "TemporaryFailure" && invocations <= max_retries {
            continue;
        }
        return Done {
            source: format!("s3://{}/{}", o.bucket, o.key),
            code: if code.is_empty() {
                "PermanentFailure".into()
            } else {
                code
            },
            reason: text("resultString"),
            invocations,
        };
    }
}

/// The AWS CLI command that creates the Batch Operations job for a manifest at
/// `s3://bucket/key`, with what only the user knows left as `ACCOUNT_ID`, `FUNCTION_ARN`,
/// `ROLE_ARN` (the template's `BatchOperationsRoleArn` output) and `MANIFEST_ETAG`.
pub fn create_job_command(
    manifest_bucket: &str,
    manifest_key: &str,
    report_prefix: &str,
) -> String {
    format!(
        "aws s3control create-job --account-id ACCOUNT_ID --no-confirmation-required --priority 10 \\\n  \
         --role-arn ROLE_ARN \\\n  \
         --operation '{{\"LambdaInvoke\":{{\"FunctionArn\":\"FUNCTION_ARN\",\"InvocationSchemaVersion\":\"2.0\"}}}}' \\\n  \
         --manifest '{{\"Spec\":{{\"Format\":\"S3BatchOperations_CSV_20180820\",\"Fields\":[\"Bucket\",\"Key\"]}},\
         \"Location\":{{\"ObjectArn\":\"arn:aws:s3:::{manifest_bucket}/{manifest_key}\",\"ETag\":\"MANIFEST_ETAG\"}}}}' \\\n  \
         --report '{{\"Bucket\":\"arn:aws:s3:::{manifest_bucket}\",\"Prefix\":\"{report_prefix}\",\
         \"Format\":\"Report_CSV_20180820\",\"Enabled\":true,\"ReportScope\":\"FailedTasksOnly\"}}'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_keys_are_url_encoded_and_decode_back() {
        for key in [
            "a b+c/ü.json",
            "dt=2026-11-22/_SUCCESS",
            "plain/key.ndjson",
            "%41",
        ] {
            let m = manifest_key(key);
            assert!(
                !m.contains(' ') && !m.contains('+') && !m.contains(','),
                "{m}"
            );
            assert_eq!(crate::trigger::decode_key(&m).unwrap(), key);
        }
        let csv = manifest(&[Listed {
            bucket: "b".into(),
            key: "x y,z".into(),
            modified: None,
        }]);
        assert_eq!(csv, "b,x%20y%2Cz\n");
    }
}
