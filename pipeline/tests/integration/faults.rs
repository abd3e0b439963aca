//! Faults between the AWS SDK and S3: a small HTTP proxy in front of moto's server fails chosen
//! requests (an S3 error status, or the connection dropped without an answer) and forwards the
//! rest. The `sluice` binary talks to the proxy as its endpoint, so these are the SDK's real
//! retries and Sluice's real clean-up.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sluice_pipeline::event;

use crate::s3::{
    clickstream_line, client, endpoint, in_out_buckets, keys, ndjson_config, open_uploads, put,
    replay_at, write_event,
};
use crate::support::*;

/// What the proxy does to a matching request.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Answer with this status and S3 error code, not forwarding the request.
    Status(u16, &'static str),
    /// Close the connection without answering.
    Reset,
}

/// Requests whose method is `method` and whose target contains `target` get `fault`, the first
/// `times` of them (`usize::MAX`: all).
struct Rule {
    method: &'static str,
    target: String,
    fault: Fault,
    times: usize,
}

/// The proxy: its URL, the rules, and every request seen (`METHOD target`, with what it got).
struct Proxy {
    url: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    fn start(upstream: &str, rules: Vec<Rule>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let rules = Arc::new(Mutex::new(rules));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (r, s) = (rules.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (r, s, up) = (r.clone(), s.clone(), upstream.clone());
                std::thread::spawn(move || serve(conn, &up, &r, &s));
            }
        });
        Proxy { url, rules, seen }
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

    fn clear(&self) {
        self.rules.lock().unwrap().clear();
        self.seen.lock().unwrap().clear();
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
    let header = |name: &str| {
        head.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    if header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        r.get_mut()
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .ok()?;
    }
    let mut body = Vec::new();
    if let Some(n) = header("content-length") {
        body.resize(n.parse().ok()?, 0);
        r.read_exact(&mut body).ok()?;
    } else if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
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

fn serve(conn: TcpStream, upstream: &str, rules: &Mutex<Vec<Rule>>, seen: &Mutex<Vec<String>>) {
    // One request per connection: every answer closes it (the SDK opens another).
    let mut r = BufReader::new(conn);
    let Some((head, body)) = read_request(&mut r) else {
        return;
    };
    let mut parts = head[0].split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let fault = {
        let mut rules = rules.lock().unwrap();
        rules
            .iter_mut()
            .find(|x| x.method == method && target.contains(&x.target) && x.times > 0)
            .map(|x| {
                x.times = x.times.saturating_sub(1);
                x.fault
            })
    };
    seen.lock()
        .unwrap()
        .push(format!("{method} {target} → {fault:?}"));
    let client = r.get_mut();
    match fault {
        Some(Fault::Reset) => {}
        Some(Fault::Status(status, code)) => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the test proxy</Message><RequestId>proxy</RequestId></Error>"
            );
            let answer = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
            let _ = client.write_all(answer.as_bytes());
        }
        None => {
            // Forwarded as sent, on a connection of its own that the server closes after
            // answering; the answer is relayed whole.
            let Ok(mut up) = TcpStream::connect(upstream) else {
                return;
            };
            let mut out = Vec::new();
            for h in &head {
                let name = h.split(':').next().unwrap_or("").to_ascii_lowercase();
                if name != "connection" && name != "expect" {
                    out.extend_from_slice(h.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            }
            out.extend_from_slice(b"Connection: close\r\n\r\n");
            out.extend_from_slice(&body);
            if up.write_all(&out).is_ok() {
                let mut answer = Vec::new();
                let _ = up.read_to_end(&mut answer);
                let _ = client.write_all(&answer);
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
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
    write_event(
        dir.path(),
        vec![event::s3_record(&inb, &key, body.len() as u64, "e")],
    );
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
    let want = {
        let o = replay(dir.path(), &ep);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = keys(&c, &outb).await;
        assert_eq!(out.len(), 1, "{out:?}");
        let bytes = crate::s3::get(&c, &outb, &out[0]).await;
        c.delete_object()
            .bucket(&outb)
            .key(&out[0])
            .send()
            .await
            .unwrap();
        (out, bytes)
    };
    let object = key.replace(' ', "%20");
    // 503 SlowDown twice, then a dropped connection once: the SDK's retries get through, and
    // the output is the same object with the same bytes.
    for rules in [
        vec![Rule {
            method: "GET",
            target: object.clone(),
            fault: Fault::Status(503, "SlowDown"),
            times: 2,
        }],
        vec![Rule {
            method: "GET",
            target: object.clone(),
            fault: Fault::Reset,
            times: 1,
        }],
    ] {
        let p = Proxy::start(&ep, rules);
        let o = replay(dir.path(), &p.url);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        assert!(
            p.count(&format!("GET /{inb}")) >= 2,
            "{:?}",
            p.seen.lock().unwrap()
        );
        assert_eq!(keys(&c, &outb).await, want.0);
        assert_eq!(crate::s3::get(&c, &outb, &want.0[0]).await, want.1);
        c.delete_object()
            .bucket(&outb)
            .key(&want.0[0])
            .send()
            .await
            .unwrap();
    }
    // Failing every time: three attempts (the SDK's standard retry), then the object fails with
    // S3's error, retryable, and nothing is written.
    let p = Proxy::start(
        &ep,
        vec![Rule {
            method: "GET",
            target: object.clone(),
            fault: Fault::Status(500, "InternalError"),
            times: usize::MAX,
        }],
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
    p.clear();
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
            vec![Rule {
                method,
                target: target.into(),
                fault: Fault::Status(500, "InternalError"),
                times: usize::MAX,
            }],
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
        vec![Rule {
            method: "PUT",
            target: "/out/".into(),
            fault: Fault::Status(503, "SlowDown"),
            times: usize::MAX,
        }],
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
