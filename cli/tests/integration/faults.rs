//! Faults between the AWS SDK and S3: a small HTTP proxy in front of moto's server fails chosen
//! requests (an S3 error status, or the connection dropped without an answer) and forwards the
//! rest. The `sluice` binary talks to the proxy as its endpoint, so these are the SDK's real
//! retries and Sluice's real clean-up.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sluice_pipeline::event;

use crate::s3::{
    clickstream_line, client, endpoint, in_out_buckets, keys, ndjson_config, notified,
    open_uploads, put, replay_at, write_event,
};
use crate::support::*;

/// What the proxy does to a matching request.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Answer with this status and S3 error code, not forwarding the request.
    Status(u16, &'static str),
    /// Close the connection without answering.
    Reset,
    /// Take the request and never answer: the connection stays open until the client gives up.
    Stall,
    /// Kinesis PutRecords: refuse every n-th entry (the first, the (n+1)-th, …) with
    /// `ProvisionedThroughputExceededException`, forwarding only the others, as a shard over its
    /// write limit does.
    RefuseEvery(usize),
}

/// Requests whose method is `method` and whose target (or, for the JSON APIs, `X-Amz-Target`
/// operation) contains `target` get `fault`, the first `times` of them (`usize::MAX`: all).
struct Rule {
    method: &'static str,
    target: String,
    fault: Fault,
    times: usize,
    /// Matching requests let through before the faults begin.
    skip: usize,
}

impl Rule {
    fn new(method: &'static str, target: &str, fault: Fault, times: usize) -> Rule {
        Rule {
            method,
            target: target.to_string(),
            fault,
            times,
            skip: 0,
        }
    }

    /// The same rule, letting the first `n` matching requests through.
    fn after(mut self, n: usize) -> Rule {
        self.skip = n;
        self
    }

    /// The fault for this request, if it matches and has faults left (counting this one).
    fn take(&mut self, method: &str, target: &str, operation: &str) -> Option<Fault> {
        let matches = self.method == method
            && (target.contains(&self.target) || operation.contains(&self.target));
        if matches && self.skip > 0 {
            self.skip -= 1;
            return None;
        }
        (matches && self.times > 0).then(|| {
            self.times -= 1;
            self.fault
        })
    }
}

/// The proxy: its URL, its rule, and every request seen (`METHOD target operation`, with what it
/// got).
struct Proxy {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start(upstream: &str, rule: Rule) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let rule = Arc::new(Mutex::new(rule));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (r, s, up) = (rule.clone(), s.clone(), upstream.clone());
                std::thread::spawn(move || serve(conn, &up, &r, &s));
            }
        });
        Proxy { url, seen }
    }

    /// The requests seen whose line contains `part`.
    fn count(&self, part: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(part))
            .count()
    }
}

/// One request: its head (lines without their breaks) and raw body bytes (chunked or not, as
/// sent), or `None` at the end of the connection.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<(Vec<String>, Vec<u8>)> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    if header(&head, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        r.get_mut()
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .ok()?;
    }
    let mut body = Vec::new();
    if let Some(n) = header(&head, "content-length") {
        body.resize(n.parse().ok()?, 0);
        r.read_exact(&mut body).ok()?;
    } else if header(&head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        loop {
            let mut line = String::new();
            r.read_line(&mut line).ok()?;
            body.extend_from_slice(line.as_bytes());
            let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut t = String::new();
                    r.read_line(&mut t).ok()?;
                    body.extend_from_slice(t.as_bytes());
                    if t == "\r\n" || t.is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk);
        }
    }
    Some((head, body))
}

fn serve(conn: TcpStream, upstream: &str, rule: &Mutex<Rule>, seen: &Mutex<Vec<String>>) {
    // One request per connection: every answer closes it (the SDK opens another).
    let mut r = BufReader::new(conn);
    let Some((head, body)) = read_request(&mut r) else {
        return;
    };
    let mut parts = head[0].split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let operation = header(&head, "x-amz-target").unwrap_or_default();
    let fault = rule.lock().unwrap().take(method, target, &operation);
    let mut line = format!("{method} {target} {operation} → {fault:?}");
    if let Some(Fault::Stall) = fault {
        seen.lock().unwrap().push(line);
        // Until the client closes its end.
        let _ = std::io::copy(&mut r, &mut std::io::sink());
        return;
    }
    let client = r.get_mut();
    let answer: Option<Vec<u8>> = match fault {
        Some(Fault::Reset | Fault::Stall) => None,
        Some(Fault::Status(status, code)) => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the test proxy</Message><RequestId>proxy</RequestId></Error>"
            );
            Some(
                format!(
                    "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                    xml.len()
                )
                .into_bytes(),
            )
        }
        Some(Fault::RefuseEvery(n)) => {
            let (answer, note) = refuse_every(n, upstream, &head, &body);
            line.push_str(&note);
            Some(answer)
        }
        None => forward(upstream, &head, &body),
    };
    // Seen before answered: the client may finish, and the test count, as soon as it has the
    // answer (recorded after it, the last request was missing now and then under load).
    seen.lock().unwrap().push(line);
    if let Some(answer) = answer {
        let _ = client.write_all(&answer);
    }
    let _ = client.shutdown(Shutdown::Both);
}

/// The value of header `name` in a request head.
fn header(head: &[String], name: &str) -> Option<String> {
    head.iter().skip(1).find_map(|h| {
        let (k, v) = h.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The request sent upstream on a connection of its own, which the server closes after answering
/// (with `body` in place of what the head's length said): the raw answer, whole.
fn forward(upstream: &str, head: &[String], body: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).ok()?;
    let mut out = Vec::new();
    for h in head {
        let name = h.split(':').next().unwrap_or("").to_ascii_lowercase();
        if !matches!(name.as_str(), "connection" | "expect" | "content-length") {
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    if header(head, "transfer-encoding").is_none() {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(body);
    up.write_all(&out).ok()?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).ok()?;
    Some(answer)
}

/// A PutRecords call with every n-th entry refused: the others are forwarded, and the answer is
/// what Kinesis gives for a partial failure (200, `FailedRecordCount`, an error in the refused
/// entries' places). Also a note for the log: how many entries came and how many were refused.
fn refuse_every(n: usize, upstream: &str, head: &[String], body: &[u8]) -> (Vec<u8>, String) {
    let mut request: serde_json::Value = serde_json::from_slice(body).expect("a PutRecords body");
    let entries = request["Records"].as_array().cloned().unwrap_or_default();
    let refused = |i: usize| i.is_multiple_of(n);
    let kept: Vec<serde_json::Value> = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| !refused(*i))
        .map(|(_, e)| e.clone())
        .collect();
    let failed = entries.len() - kept.len();
    let mut accepted = Vec::new();
    if !kept.is_empty() {
        request["Records"] = kept.into();
        let raw =
            forward(upstream, head, &serde_json::to_vec(&request).unwrap()).expect("moto answers");
        let at = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP answer")
            + 4;
        let answer: serde_json::Value =
            serde_json::from_slice(&raw[at..]).expect("PutRecords answers JSON");
        accepted = answer["Records"].as_array().cloned().unwrap_or_default();
    }
    let mut accepted = accepted.into_iter();
    let records: Vec<serde_json::Value> = (0..entries.len())
        .map(|i| {
            if refused(i) {
                serde_json::json!({
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": "Rate exceeded for shard shardId-000000000000 (injected by the test proxy)."
                })
            } else {
                accepted.next().expect("an answer per forwarded entry")
            }
        })
        .collect();
    let json = serde_json::json!({ "FailedRecordCount": failed, "Records": records }).to_string();
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    (
        answer.into_bytes(),
        format!(" {} entries, {failed} refused", entries.len()),
    )
}

/// Input and output buckets, one object of `lines` generated clickstream lines in the input,
/// and the example pipeline writing NDJSON to the output: (input bucket, output bucket, key,
/// the folder holding `pipeline.toml` and `event.json`).
async fn setup(
    c: &aws_sdk_s3::Client,
    name: &str,
    lines: usize,
) -> (String, String, String, tempfile::TempDir) {
    let (inb, outb) = in_out_buckets(c, name).await;
    let body: Vec<u8> = (0..lines as u64)
        .flat_map(|n| clickstream_line(n).into_bytes())
        .collect();
    let key = format!("clickstream/faults/{name}.ndjson");
    put(c, &inb, &key, body.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pipeline.toml"),
        ndjson_config(&outb, "out/", ""),
    )
    .unwrap();
    write_event(dir.path(), vec![notified(c, &inb, &key).await]);
    (inb, outb, key, dir)
}

fn replay(dir: &std::path::Path, endpoint: &str) -> std::process::Output {
    replay_at(
        &dir.join("pipeline.toml"),
        &dir.join("event.json"),
        endpoint,
    )
}

#[tokio::test]
async fn reads_that_fail_are_retried_by_the_sdk_then_fail_cleanly() {
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;
    let (inb, outb, key, dir) = setup(&c, "get", 2000).await;
    let want = clean_run(&c, &ep, dir.path(), &outb).await;
    let object = key.replace(' ', "%20");
    // 503 SlowDown twice, then a dropped connection once: the SDK's retries get through, and
    // the output is the same object with the same bytes.
    for rule in [
        Rule::new("GET", &object, Fault::Status(503, "SlowDown"), 2),
        Rule::new("GET", &object, Fault::Reset, 1),
    ] {
        let p = Proxy::start(&ep, rule);
        let o = replay(dir.path(), &p.url);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        assert!(
            p.count(&format!("GET /{inb}")) >= 2,
            "{:?}",
            p.seen.lock().unwrap()
        );
        assert!(outputs(&c, &outb).await == want, "other objects or bytes");
        delete_outputs(&c, &outb).await;
    }
    // Failing every time: three attempts (the SDK's standard retry), then the object fails with
    // S3's error, retryable, and nothing is written.
    let p = Proxy::start(
        &ep,
        Rule::new(
            "GET",
            &object,
            Fault::Status(500, "InternalError"),
            usize::MAX,
        ),
    );
    let o = replay(dir.path(), &p.url);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let s = &summaries(&o)[0];
    let error = s["error"].as_str().unwrap_or_default();
    assert!(error.contains("InternalError"), "{s}");
    assert_eq!(
        p.count(" → Some(Status(500"),
        3,
        "{:?}",
        p.seen.lock().unwrap()
    );
    assert!(keys(&c, &outb).await.is_empty());
}

#[tokio::test]
async fn a_write_that_fails_mid_upload_leaves_no_object_and_no_open_upload() {
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;
    // ~20 MB of output: three multipart parts.
    let (_inb, outb, _key, dir) = setup(&c, "put", 90_000).await;
    for (method, target, what) in [
        // The second part fails every time it is sent.
        ("PUT", "partNumber=2", "part 2"),
        // Completing the upload fails.
        ("POST", "uploadId=", "the completion"),
    ] {
        let p = Proxy::start(
            &ep,
            Rule::new(
                method,
                target,
                Fault::Status(500, "InternalError"),
                usize::MAX,
            ),
        );
        let o = replay(dir.path(), &p.url);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", stdout(&o));
        assert!(
            p.count("?uploads") >= 1,
            "{what}: no multipart upload started"
        );
        assert!(
            p.count("DELETE ") >= 1,
            "{what}: the upload was not aborted"
        );
        let out: Vec<String> = keys(&c, &outb)
            .await
            .into_iter()
            .filter(|k| k.starts_with("out/"))
            .collect();
        assert!(out.is_empty(), "{what}: {out:?} visible");
        assert_eq!(
            open_uploads(&c, &outb).await,
            0,
            "{what}: an upload was left open"
        );
    }
    // A small object (one PutObject) failing: nothing visible either; a retry without the
    // fault writes it.
    let (_inb, outb, _key, dir) = setup(&c, "small", 200).await;
    let p = Proxy::start(
        &ep,
        Rule::new("PUT", "/out/", Fault::Status(503, "SlowDown"), usize::MAX),
    );
    let o = replay(dir.path(), &p.url);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert_eq!(p.count(" → Some(Status(503"), 3);
    assert!(keys(&c, &outb).await.iter().all(|k| !k.starts_with("out/")));
    let o = replay(dir.path(), &ep);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        keys(&c, &outb)
            .await
            .iter()
            .filter(|k| k.starts_with("out/"))
            .count(),
        1
    );
}

#[cfg(feature = "kinesis")]
#[tokio::test]
async fn put_records_partial_failures_send_again_only_the_refused_entries() {
    let Some(ep) = endpoint() else { return };
    let c = sluice_pipeline::kinesis::KinesisPutter::from_env(Some(&ep))
        .await
        .client()
        .await
        .clone();
    let out = crate::s3::bucket("refused");
    crate::kinesis::stream(&c, &out).await;
    // 1 200 rows: PutRecords calls of 500, 500 and 200.
    let payloads: Vec<(String, Vec<u8>)> = (0..1_200)
        .map(|i| (format!("pk-{i}"), format!("{{\"n\":{i}}}").into_bytes()))
        .collect();
    let event = event::kinesis_event("in", &payloads);
    let dir = tempfile::tempdir().unwrap();
    let event_path = dir.path().join("event.json");
    std::fs::write(&event_path, event.to_string()).unwrap();
    let config = dir.path().join("pipeline.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"refused\"\n[input]\nformat = \"ndjson\"\nschema = {{ n = \"int64\" }}\n[output]\nuri = \"kinesis://{out}\"\n"
        ),
    )
    .unwrap();
    let run = |url: &str| replay_at(&config, &event_path, url);

    // The first call has every third entry refused, and so has the retry of those: the third
    // call carries only what the second refused, and gets through.
    let p = Proxy::start(
        &ep,
        Rule::new("POST", "PutRecords", Fault::RefuseEvery(3), 2),
    );
    let o = run(&p.url);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let s = &summaries(&o)[0];
    assert_eq!(s["records_out"], 1_200, "{s}");
    assert_eq!(s["batch_item_failures"], serde_json::json!([]), "{s}");
    let calls: Vec<String> = p
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("PutRecords"))
        .cloned()
        .collect();
    assert_eq!(calls.len(), 5, "{calls:#?}");
    assert!(calls[0].ends_with("500 entries, 167 refused"), "{calls:#?}");
    assert!(calls[1].ends_with("167 entries, 56 refused"), "{calls:#?}");
    // Each row is on the stream exactly once.
    let mut got: Vec<String> = crate::kinesis::read_all(&c, &out)
        .await
        .iter()
        .map(|r| String::from_utf8(r.data().as_ref().to_vec()).unwrap())
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..1_200).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    want.sort();
    assert_eq!(got.len(), 1_200);
    assert_eq!(got, want);

    // Refused every time: six calls (the first and five retries, with backoff), then the batch
    // reports its first record as the failure point, for Lambda to deliver again from there.
    let p = Proxy::start(
        &ep,
        Rule::new("POST", "PutRecords", Fault::RefuseEvery(1), usize::MAX),
    );
    let o = run(&p.url);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let s = &summaries(&o)[0];
    let first = event["Records"][0]["kinesis"]["sequenceNumber"].clone();
    assert_eq!(s["batch_item_failures"], serde_json::json!([first]), "{s}");
    let error = s["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("ProvisionedThroughputExceededException"),
        "{s}"
    );
    assert_eq!(p.count("500 entries, 500 refused"), 6);
    assert_eq!(crate::kinesis::read_all(&c, &out).await.len(), 1_200);
}

/// Every object in `bucket` with its bytes, by key.
async fn outputs(c: &aws_sdk_s3::Client, bucket: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for k in keys(c, bucket).await {
        let bytes = crate::s3::get(c, bucket, &k).await;
        out.push((k, bytes));
    }
    out
}

/// The keys of [`outputs`].
fn names(outputs: &[(String, Vec<u8>)]) -> Vec<&str> {
    outputs.iter().map(|(k, _)| k.as_str()).collect()
}

/// A replay with no fault: it succeeds and writes one object; its outputs, then taken away so
/// the next run starts from an empty bucket.
async fn clean_run(
    c: &aws_sdk_s3::Client,
    ep: &str,
    dir: &std::path::Path,
    bucket: &str,
) -> Vec<(String, Vec<u8>)> {
    let o = replay(dir, ep);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let clean = outputs(c, bucket).await;
    assert_eq!(clean.len(), 1, "{:?}", names(&clean));
    delete_outputs(c, bucket).await;
    clean
}

async fn delete_outputs(c: &aws_sdk_s3::Client, bucket: &str) {
    for k in keys(c, bucket).await {
        c.delete_object()
            .bucket(bucket)
            .key(&k)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_failure_and_a_retry_leave_the_objects_a_clean_run_leaves() {
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;

    // An S3 upload whose output goes up in several parts: a clean run, then a run whose
    // second part fails (aborted, nothing visible) followed by the retry S3 would make, then
    // the same event once more. Same keys, same bytes each time.
    let (_inb, outb, _key, dir) = setup(&c, "again", 90_000).await;
    let clean = clean_run(&c, &ep, dir.path(), &outb).await;
    let p = Proxy::start(
        &ep,
        Rule::new(
            "PUT",
            "partNumber=2",
            Fault::Status(500, "InternalError"),
            usize::MAX,
        ),
    );
    let o = replay(dir.path(), &p.url);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(p.count("partNumber=2") >= 1);
    assert!(outputs(&c, &outb).await.is_empty());
    for _ in 0..2 {
        let o = replay(dir.path(), &ep);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(
            outputs(&c, &outb).await == clean,
            "the retry wrote other bytes"
        );
    }
    delete_outputs(&c, &outb).await;

    // A Kinesis batch whose output write fails on the first delivery (the SDK's three attempts
    // all answered 503): the batch reports its first record, and the delivery from there that
    // replay makes, as Lambda would, leaves what a clean run leaves.
    let payloads: Vec<(String, Vec<u8>)> = (0..3_000)
        .map(|n| (format!("pk-{}", n % 7), clickstream_line(n).into_bytes()))
        .collect();
    let event = event::kinesis_event("clicks", &payloads);
    std::fs::write(dir.path().join("event.json"), event.to_string()).unwrap();
    let run = |url: &str| {
        sluice(&[
            "replay",
            dir.path().join("pipeline.toml").to_str().unwrap(),
            dir.path().join("event.json").to_str().unwrap(),
            "--endpoint-url",
            url,
            "--json",
            "--max-retries",
            "1",
        ])
    };
    let o = run(&ep);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let clean = outputs(&c, &outb).await;
    assert_eq!(clean.len(), 1);
    delete_outputs(&c, &outb).await;
    let p = Proxy::start(
        &ep,
        Rule::new("PUT", "/out/", Fault::Status(503, "SlowDown"), 3),
    );
    let o = run(&p.url);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let s = summaries(&o);
    assert_eq!(s.len(), 2, "{s:?}");
    let first = event["Records"][0]["kinesis"]["sequenceNumber"].clone();
    assert_eq!(
        s[0]["batch_item_failures"],
        serde_json::json!([first]),
        "{}",
        s[0]
    );
    assert_eq!(
        s[1]["batch_item_failures"],
        serde_json::json!([]),
        "{}",
        s[1]
    );
    assert_eq!(p.count(" → Some(Status(503"), 3);
    assert!(
        outputs(&c, &outb).await == clean,
        "the redelivery wrote other bytes"
    );
}

/// Issue 27: a GET or PUT that never gets response headers hung `replay` for good, and `serve`
/// answered nothing after the deadline. With the function's timeout given (`--timeout 4`), the
/// stalled request fails at the deadline, the object fails with that reason, and nothing of it
/// is written (no object, no open upload).
#[tokio::test]
async fn a_stalled_request_fails_at_the_deadline_and_writes_nothing() {
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;
    let (_inb, outb, key, dir) = setup(&c, "stall", 2000).await;
    let object = key.replace(' ', "%20");
    for rule in [
        Rule::new("GET", &object, Fault::Stall, usize::MAX),
        Rule::new("PUT", &format!("/{outb}/"), Fault::Stall, usize::MAX),
    ] {
        let p = Proxy::start(&ep, rule);
        let t = std::time::Instant::now();
        let o = sluice(&[
            "replay",
            dir.path().join("pipeline.toml").to_str().unwrap(),
            dir.path().join("event.json").to_str().unwrap(),
            "--endpoint-url",
            &p.url,
            "--json",
            "--timeout",
            "4",
        ]);
        let took = t.elapsed();
        assert!(
            took < std::time::Duration::from_secs(10),
            "{took:?}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
        let summary: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        let error = summary["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("before the invocation's deadline"),
            "{summary}"
        );
        assert!(p.count("Stall") >= 1, "{:?}", p.seen.lock().unwrap());
        assert!(outputs(&c, &outb).await.is_empty());
        assert_eq!(open_uploads(&c, &outb).await, 0);
    }
}

/// Issue 27, under `serve` with a 5-second deadline: an SQS batch of good / stalled / good
/// answers before the deadline with the stalled message and the one not started as failures
/// (the first one's output is written); the same stalled object in a direct S3 event is an
/// invocation error before the deadline.
#[tokio::test]
async fn serve_answers_before_the_deadline_when_a_request_stalls() {
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;
    let (inb, outb, key, _dir) = setup(&c, "stall-serve", 200).await;
    let body: Vec<u8> = (0..200u64)
        .flat_map(|n| clickstream_line(n).into_bytes())
        .collect();
    let stuck = "clickstream/faults/stuck.ndjson";
    put(&c, &inb, stuck, body.clone()).await;
    let (good_record, stuck_record) = (
        notified(&c, &inb, &key).await,
        notified(&c, &inb, stuck).await,
    );
    let msg = |k: &str, id: &str| {
        let record = if k == stuck {
            &stuck_record
        } else {
            &good_record
        };
        let ev = event::s3_event(vec![record.clone()]);
        event::sqs_event(&ev, id)["Records"][0].clone()
    };
    let sqs = serde_json::json!({"Records": [msg(&key, "m-good"), msg(stuck, "m-stuck"), msg(&key, "m-after")]});
    let direct = event::s3_event(vec![notified(&c, &inb, stuck).await]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(&cfg, ndjson_config(&outb, "out/", "")).unwrap();
    let p = Proxy::start(&ep, Rule::new("GET", "stuck", Fault::Stall, usize::MAX));
    let events = [("req-sqs", sqs.to_string()), ("req-s3", direct.to_string())];
    let (answers, logs) = crate::serve::run_serve(&cfg, &p.url, &events, 5_000, 30);
    assert_eq!(answers.len(), 2, "{answers:?}\n{logs}");
    assert_eq!(
        (answers[0].0.as_str(), answers[0].1.as_str()),
        ("req-sqs", "response")
    );
    let r: serde_json::Value = serde_json::from_str(&answers[0].2).unwrap();
    assert_eq!(
        r,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "m-stuck"}, {"itemIdentifier": "m-after"}]}),
        "{logs}"
    );
    assert_eq!(
        (answers[1].0.as_str(), answers[1].1.as_str()),
        ("req-s3", "error")
    );
    assert!(answers[1].2.contains("deadline"), "{}", answers[1].2);
    // The good object's output was written (once: the message not started wrote nothing).
    assert_eq!(
        keys(&c, &outb).await.len(),
        1,
        "{:?}",
        keys(&c, &outb).await
    );
    assert_eq!(open_uploads(&c, &outb).await, 0);
}

/// Issue 28: a PUT failing on the second of three partitions left the first in S3 (and the
/// rejects file), while the summary said `outputs=[]`. A unit's files are sealed first and made
/// visible together: when one cannot be, those already visible are taken back.
#[tokio::test]
async fn a_put_failing_on_the_second_of_three_partitions_leaves_no_output() {
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;
    let (inb, outb) = in_out_buckets(&c, "atomic").await;
    let mut body: Vec<u8> = (0..300u64)
        .flat_map(|n| format!("{{\"k\":{},\"n\":{n}}}\n", n % 3).into_bytes())
        .collect();
    body.extend_from_slice(b"not json\n");
    put(&c, &inb, "in/a.ndjson", body.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pipeline.toml"),
        format!(
            "name = \"atomic\"\n[input]\nformat = \"ndjson\"\nschema = {{ k = \"int64\", n = \"int64\" }}\n\
             [output]\nuri = \"s3://{outb}/out/\"\nformat = \"ndjson\"\npartition_by = [\"k\"]\n\
             [rejects]\nuri = \"s3://{outb}/rejects/\"\n"
        ),
    )
    .unwrap();
    write_event(dir.path(), vec![notified(&c, &inb, "in/a.ndjson").await]);
    let p = Proxy::start(
        &ep,
        Rule::new(
            "PUT",
            &format!("/{outb}/"),
            Fault::Status(500, "InternalError"),
            usize::MAX,
        )
        .after(1),
    );
    let o = replay(dir.path(), &p.url);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let s = &summaries(&o)[0];
    assert_eq!(s["failed"], 1, "{s}");
    assert_eq!(s["outputs"], serde_json::json!([]), "{s}");
    // The first partition was published, then taken back when the second could not be.
    assert!(p.count(" → Some(Status(500") >= 1, "{:?}", p.seen);
    assert!(
        p.count(&format!("DELETE /{outb}/out/k%3D0/")) >= 1,
        "{:?}",
        p.seen
    );
    assert_eq!(keys(&c, &outb).await, Vec::<String>::new());
    assert_eq!(open_uploads(&c, &outb).await, 0);
    // Without the fault: the three partitions and the rejects file, all listed.
    let o = replay(dir.path(), &ep);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let s = &summaries(&o)[0];
    let written = keys(&c, &outb).await;
    assert_eq!(written.len(), 4, "{written:?}");
    assert_eq!(s["outputs"].as_array().unwrap().len(), 4, "{s}");
    for k in ["out/k=0/", "out/k=1/", "out/k=2/", "rejects/"] {
        assert!(written.iter().any(|w| w.starts_with(k)), "{k}: {written:?}");
    }
}

/// An Iceberg output over S3 (moto) with a local SQLite catalog: the table's new metadata file
/// cannot be written (every PUT of a `.metadata.json` fails), so the commit fails after the data
/// files are written. No row is visible, the object is failed (retried), and `sluice table
/// orphans` lists the data file; without the fault the retry commits it once, and a third
/// delivery adds nothing.
#[tokio::test]
async fn a_commit_that_fails_after_the_data_files_leaves_no_rows_and_lists_orphans() {
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;
    let (inb, outb) = in_out_buckets(&c, "table").await;
    let body: Vec<u8> = (0..40u64)
        .flat_map(|n| format!("{{\"k\":{},\"n\":{n}}}\n", n % 2).into_bytes())
        .collect();
    put(&c, &inb, "in/a.ndjson", body).await;
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.db");
    std::fs::write(
        dir.path().join("pipeline.toml"),
        format!(
            "name = \"tables\"\n[input]\nformat = \"ndjson\"\nschema = {{ k = \"int64\", n = \"int64\" }}\n\
             [output]\nuri = \"s3://{outb}/lake/\"\nformat = \"iceberg\"\ntable = \"db.t\"\n\
             catalog = \"sqlite:{}\"\npartition = [\"identity(k)\"]\n",
            catalog.display()
        ),
    )
    .unwrap();
    write_event(dir.path(), vec![notified(&c, &inb, "in/a.ndjson").await]);
    let config = dir.path().join("pipeline.toml");
    let table = |args: &[&str]| {
        let mut all = vec!["table"];
        all.extend_from_slice(args);
        all.extend_from_slice(&[config.to_str().unwrap(), "--endpoint-url", &ep, "--json"]);
        sluice(&all)
    };
    // The table is created (its first metadata file written) before the fault begins.
    let p = Proxy::start(
        &ep,
        Rule::new(
            "PUT",
            ".metadata.json",
            Fault::Status(503, "SlowDown"),
            usize::MAX,
        )
        .after(1),
    );
    let o = replay(dir.path(), &p.url);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let s = &summaries(&o)[0];
    assert_eq!(s["failed"], 1, "{s}");
    assert_eq!(s["records_out"], 0, "{s}");
    assert_eq!(s["error_class"], "retry_later", "{s}");
    let shown: serde_json::Value = serde_json::from_str(&stdout(&table(&["show"]))).unwrap();
    assert_eq!(shown["rows"], 0, "{shown}");
    assert_eq!(shown["snapshots"], serde_json::json!([]), "{shown}");
    // The two data files (one per k) are there, and nothing refers to them.
    let orphans: Vec<serde_json::Value> = stdout(&table(&["orphans"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let data: Vec<&str> = orphans
        .iter()
        .filter_map(|o| o["uri"].as_str())
        .filter(|u| u.contains("/data/"))
        .collect();
    assert_eq!(data.len(), 2, "{orphans:?}");
    assert!(
        data.iter()
            .all(|u| u.starts_with(&format!("s3://{outb}/lake/db/t/data/k="))),
        "{data:?}"
    );

    // Retried without the fault: committed once, the same files named again (not orphans now).
    let o = replay(dir.path(), &ep);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let shown: serde_json::Value = serde_json::from_str(&stdout(&table(&["show"]))).unwrap();
    assert_eq!(shown["rows"], 40, "{shown}");
    assert_eq!(shown["files"], 2, "{shown}");
    let orphans = stdout(&table(&["orphans"]));
    assert!(!orphans.contains("/data/"), "{orphans}");
    // Delivered a third time: already committed, nothing added.
    let o = replay(dir.path(), &ep);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let s = &summaries(&o)[0];
    assert_eq!(s["records_out"], 0, "{s}");
    assert!(
        s["skips"]
            .to_string()
            .contains("already committed to table db.t"),
        "{s}"
    );
    let shown: serde_json::Value = serde_json::from_str(&stdout(&table(&["show"]))).unwrap();
    assert_eq!(shown["snapshots"].as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(shown["rows"], 40, "{shown}");
}
