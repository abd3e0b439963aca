//! `sluice serve` speaking the Lambda Runtime API: a minimal Runtime API endpoint on loopback hands
//! out events and records what the function answers, the way Lambda's does.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sluice_pipeline::event;

use crate::s3::{client, config, endpoint, in_out_buckets, put};
use crate::support::*;

#[derive(Default)]
struct State {
    queue: Vec<(String, String)>,
    answers: Vec<(String, String, String)>,
    /// Each invocation's deadline, this many milliseconds after it is handed out.
    deadline_ms: u128,
    /// The deadline of each invocation handed out, and the ids answered after theirs.
    deadlines: std::collections::HashMap<String, std::time::Instant>,
    late: Vec<String>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<(String, String, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((method, path, body))
}

fn serve_conn(stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut w = stream.try_clone().expect("clone");
    let mut r = BufReader::new(stream);
    while let Some((method, path, body)) = read_request(&mut r) {
        if method == "GET" && path.ends_with("/invocation/next") {
            let next = loop {
                if let Some(e) = state.lock().unwrap().queue.pop() {
                    break e;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            };
            let (id, ev) = next;
            {
                let mut st = state.lock().unwrap();
                let at = std::time::Instant::now()
                    + std::time::Duration::from_millis(st.deadline_ms as u64);
                st.deadlines.insert(id.clone(), at);
            }
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + state.lock().unwrap().deadline_ms;
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {id}\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:sluice\r\nLambda-Runtime-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1\r\nContent-Length: {}\r\n\r\n{ev}",
                ev.len()
            );
        } else {
            let kind = if path.ends_with("/response") {
                "response"
            } else {
                "error"
            };
            let id = path.split('/').nth(4).unwrap_or("").to_string();
            let mut st = state.lock().unwrap();
            if st
                .deadlines
                .get(&id)
                .is_some_and(|d| std::time::Instant::now() > *d)
            {
                st.late.push(id.clone());
            }
            st.answers.push((
                id,
                kind.to_string(),
                String::from_utf8_lossy(&body).into_owned(),
            ));
            drop(st);
            let _ = write!(
                w,
                "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{{\"status\":\"OK\"}}"
            );
        }
    }
}

/// `sluice serve` with `cfg` and S3 at `endpoint`, handed `events` (request id, body) in order
/// by a Runtime API whose invocations have `deadline_ms` each, until all are answered or `wait_s`
/// seconds pass: the answers (request id, `response` or `error`, body) and the function's logs.
/// Every answer must come before its invocation's deadline.
pub(crate) fn run_serve(
    cfg: &std::path::Path,
    endpoint: &str,
    events: &[(&str, String)],
    deadline_ms: u128,
    wait_s: u64,
) -> (Vec<(String, String, String)>, String) {
    let state = Arc::new(Mutex::new(State {
        // Popped from the end.
        queue: events
            .iter()
            .rev()
            .map(|(id, ev)| (id.to_string(), ev.clone()))
            .collect(),
        deadline_ms,
        ..State::default()
    }));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let st = state.clone();
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            let st = st.clone();
            std::thread::spawn(move || serve_conn(s, st));
        }
    });
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("serve")
        .env("SLUICE_CONFIG", cfg)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "sluice")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_ENDPOINT_URL", endpoint)
        // Credentials the logs must never show (moto takes any), at the default log level.
        .env("AWS_ACCESS_KEY_ID", "AKIASLUICENEVERLOGGED")
        .env("AWS_SECRET_ACCESS_KEY", "sluice/secret+never/logged")
        .env("AWS_SESSION_TOKEN", "sluice-session-token-never-logged")
        .env_remove("SLUICE_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while state.lock().unwrap().answers.len() < events.len() && t0.elapsed().as_secs() < wait_s {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let logs =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let answers = std::mem::take(&mut state.lock().unwrap().answers);
    let late = std::mem::take(&mut state.lock().unwrap().late);
    assert!(
        late.is_empty(),
        "answered after the deadline: {late:?}\n{logs}"
    );
    (answers, logs)
}

#[tokio::test]
async fn serve_answers_invocations_and_reports_failures_the_lambda_way() {
    let Some(ep) = endpoint() else { return };
    let c = client(&ep).await;
    let (inb, outb) = in_out_buckets(&c, "serve").await;
    let key = "clickstream/2026/11/22/web+app events.ndjson";
    let body = std::fs::read(fixtures().join("objects/analytics-in").join(key)).unwrap();
    put(&c, &inb, key, body).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &outb);

    let good = event::s3_event(vec![crate::s3::notified(&c, &inb, key).await]);
    // An object that cannot be read: a gzip header and then nonsense.
    let broken = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03not deflate at all".to_vec();
    put(&c, &inb, "clickstream/broken.ndjson.gz", broken).await;
    let missing = event::s3_event(vec![
        crate::s3::notified(&c, &inb, "clickstream/broken.ndjson.gz").await,
    ]);
    let sqs_mixed = serde_json::json!({"Records": [
        event::sqs_event(&good, "msg-ok")["Records"][0].clone(),
        event::sqs_event(&missing, "msg-missing")["Records"][0].clone(),
    ]});
    // A Kinesis batch goes through the raw-bytes path (no JSON tree of the event).
    let raw = std::fs::read(fixtures().join("objects/analytics-in").join(key)).unwrap();
    let lines: Vec<(String, Vec<u8>)> = raw
        .split(|b| *b == b'\n')
        .take(3)
        .map(|l| ("k".to_string(), l.to_vec()))
        .collect();
    let kinesis = event::kinesis_event("clicks", &lines);
    // Handed out in order: good, then missing, then the SQS batch, then the Kinesis batch.
    let events = [
        ("req-1", good.to_string()),
        ("req-2", missing.to_string()),
        ("req-3", sqs_mixed.to_string()),
        ("req-4", kinesis.to_string()),
    ];
    let (answers, logs) = run_serve(&cfg, &ep, &events, 60_000, 60);
    assert_eq!(answers.len(), 4, "{answers:?}\n{logs}");

    assert_eq!(
        (answers[0].0.as_str(), answers[0].1.as_str()),
        ("req-1", "response")
    );
    let r: serde_json::Value = serde_json::from_str(&answers[0].2).unwrap();
    assert_eq!(
        (
            r["objects"].as_u64(),
            r["records_out"].as_u64(),
            r["rejected"].as_u64()
        ),
        (Some(1), Some(26), Some(5))
    );

    assert_eq!(
        (answers[1].0.as_str(), answers[1].1.as_str()),
        ("req-2", "error")
    );
    let e: serde_json::Value = serde_json::from_str(&answers[1].2).unwrap();
    // The class of the failure (issue 28): a corrupt object fails the same way on every retry.
    assert_eq!(e["errorType"], "Sluice.BadInput");
    assert!(
        e["errorMessage"]
            .as_str()
            .unwrap()
            .contains("clickstream/broken.ndjson.gz"),
        "{e}"
    );

    assert_eq!(
        (answers[2].0.as_str(), answers[2].1.as_str()),
        ("req-3", "response")
    );
    let r: serde_json::Value = serde_json::from_str(&answers[2].2).unwrap();
    assert_eq!(
        r,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "msg-missing"}]})
    );

    assert_eq!(
        (answers[3].0.as_str(), answers[3].1.as_str()),
        ("req-4", "response")
    );
    let r: serde_json::Value = serde_json::from_str(&answers[3].2).unwrap();
    assert_eq!(r, serde_json::json!({"batchItemFailures": []}));
    let batch = logs
        .lines()
        .find(|l| l.contains("Processed batch."))
        .unwrap_or_else(|| panic!("{logs}"));
    let v: serde_json::Value = serde_json::from_str(batch).unwrap();
    assert_eq!(v["records_in"], 3, "{batch}");
    assert_eq!(v["requestId"], "req-4", "{batch}");

    // Structured JSON logs, one flat line per event, the invocation's ids on each.
    let line = logs
        .lines()
        .find(|l| l.contains("Processed object."))
        .unwrap_or_else(|| panic!("{logs}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["records_out"], 26, "{line}");
    assert_eq!(v["level"], "INFO", "{line}");
    assert!(
        v["requestId"]
            .as_str()
            .is_some_and(|r| r.starts_with("req-")),
        "{line}"
    );
    // A failure's line says what a retry would do.
    let failed = logs
        .lines()
        .find(|l| l.contains("Object failed."))
        .unwrap_or_else(|| panic!("{logs}"));
    let v: serde_json::Value = serde_json::from_str(failed).unwrap();
    assert_eq!(
        (v["class"].as_str(), v["requestId"].as_str()),
        (Some("bad_input"), Some("req-2")),
        "{failed}"
    );
    // And one metrics line per invocation.
    let metrics = logs.lines().filter(|l| l.contains("\"_aws\"")).count();
    assert_eq!(metrics, answers.len(), "{logs}");

    // No credentials and no record contents in the logs: not the good records, not the rejected
    // ones (their raw bytes go to the rejects object), not the Kinesis records' data.
    for secret in [
        "AKIASLUICENEVERLOGGED",
        "sluice/secret+never/logged",
        "sluice-session-token-never-logged",
    ] {
        assert!(!logs.contains(secret), "{secret} is in the logs:\n{logs}");
    }
    let mut checked = 0;
    for record in String::from_utf8_lossy(&raw).lines() {
        let record = record.trim();
        if record.len() < 12 {
            continue;
        }
        let escaped = serde_json::to_string(record).unwrap();
        let escaped = escaped.trim_matches('"');
        assert!(
            !logs.contains(record) && !logs.contains(escaped),
            "a record is in the logs: {record}\n{logs}"
        );
        // Nor any of its values: the session ids are unique to the records.
        if let Some(at) = record.find("\"session_id\":\"") {
            let id = &record[at + 14..at + 22];
            assert!(!logs.contains(id), "{id} is in the logs:\n{logs}");
        }
        checked += 1;
    }
    assert!(checked >= 26, "{checked}");
}
