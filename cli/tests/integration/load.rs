//! Load: thousands of events through one `sluice replay`, every record accounted for (what went
//! in is what came out plus what was rejected, per event and in total) and memory bounded however
//! many events there are.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine;
use serde_json::Value;

use crate::bad_input::{CONFIG, lines_under};
use crate::support::*;

/// `sluice replay --json` of `events` against the scratch store, which must succeed: every
/// summary, and the peak RSS.
fn replay_all(s: &Scratch, events: &Path) -> (Vec<Value>, Option<u64>) {
    let (code, summaries, peak) = s.replay_watched(events);
    let failed = summaries.iter().find(|s| !s["error"].is_null());
    assert_eq!(code, Some(0), "{failed:?}");
    (summaries, peak)
}

/// Each summary accounts for its records (in = out + rejected; no filter here) and has no error;
/// the totals: (in, out, rejected).
fn accounted(summaries: &[Value]) -> (u64, u64, u64) {
    let n = |s: &Value, k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    summaries.iter().fold((0, 0, 0), |(i, o, r), s| {
        assert!(s["error"].is_null(), "{s}");
        assert_eq!(
            n(s, "records_in"),
            n(s, "records_out") + n(s, "rejected"),
            "{s}"
        );
        (
            i + n(s, "records_in"),
            o + n(s, "records_out"),
            r + n(s, "rejected"),
        )
    })
}

/// The `n` of every output line under `out/ok`, sorted.
fn numbers_out(s: &Scratch) -> Vec<u64> {
    let mut got: Vec<u64> = lines_under(s, "out/ok")
        .iter()
        .map(|l| {
            l.strip_prefix("{\"n\":")
                .and_then(|l| l.strip_suffix('}'))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("unexpected output line {l}"))
        })
        .collect();
    got.sort_unstable();
    got
}

#[test]
fn ten_thousand_s3_events_over_ten_thousand_objects_lose_no_record() {
    // 10 000 objects of three lines each; every tenth has a fourth line that is not JSON.
    let objects: Vec<(String, Vec<u8>)> = (0..10_000u64)
        .map(|i| {
            let mut body = String::new();
            for n in 3 * i..3 * i + 3 {
                writeln!(body, "{{\"n\":{n}}}").unwrap();
            }
            if i % 10 == 0 {
                writeln!(body, "not json {i}").unwrap();
            }
            (format!("logs/{i:05}.ndjson"), body.into_bytes())
        })
        .collect();
    let s = Scratch::new(CONFIG, "in", &[]);
    // One event per object, as S3 sends them: 10 000 lines of a .jsonl.
    let mut events = String::new();
    for (key, body) in &objects {
        let path = s.store.join("in").join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, body).unwrap();
        let record = sluice_pipeline::event::s3_record("in", key, body.len() as u64, "etag");
        writeln!(events, "{}", sluice_pipeline::event::s3_event(vec![record])).unwrap();
    }
    let file = s._dir.path().join("events.jsonl");
    std::fs::write(&file, events).unwrap();

    let (summaries, peak) = replay_all(&s, &file);
    assert_eq!(summaries.len(), 10_000);
    assert_eq!(accounted(&summaries), (31_000, 30_000, 1_000));
    assert!(
        summaries.iter().all(|s| s["objects"] == 1),
        "{:?}",
        summaries[0]
    );
    assert_eq!(numbers_out(&s), (0..30_000).collect::<Vec<u64>>());
    assert_eq!(lines_under(&s, "out/rejects").len(), 1_000);
    assert_bounded(peak);
}

/// A Kinesis batch as Lambda delivers it: `records` records from shard 0 whose data are `{"n":k}`
/// for k from `first` on, except every 1000th, which is not JSON.
fn kinesis_batch(first: u64, records: u64) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut e = String::from("{\"Records\":[");
    for k in first..first + records {
        let data = if k % 1000 == 999 {
            format!("not json {k}")
        } else {
            format!("{{\"n\":{k}}}")
        };
        let seq = format!("4959033827149025660855969253836157109592157{k:013}");
        if k > first {
            e.push(',');
        }
        write!(
            e,
            r#"{{"kinesis":{{"kinesisSchemaVersion":"1.0","partitionKey":"pk-{}","sequenceNumber":"{seq}","data":"{}","approximateArrivalTimestamp":1764000000.{:03}}},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"shardId-000000000000:{seq}","eventName":"aws:kinesis:record","invokeIdentityArn":"arn:aws:iam::123456789012:role/sluice","awsRegion":"us-east-1","eventSourceARN":"arn:aws:kinesis:us-east-1:123456789012:stream/load"}}"#,
            k % 16,
            b64.encode(data),
            k % 1000
        )
        .unwrap();
    }
    e.push_str("]}");
    e
}

#[cfg(feature = "kinesis")]
#[test]
fn a_hundred_kinesis_batches_of_ten_thousand_records_lose_no_record() {
    let s = Scratch::new(CONFIG, "in", &[]);
    // 100 batches in one .jsonl (~450 MB): replay reads one at a time.
    let file = s._dir.path().join("batches.jsonl");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        for b in 0..100 {
            writeln!(f, "{}", kinesis_batch(b * 10_000, 10_000)).unwrap();
        }
    }
    let (summaries, peak) = replay_all(&s, &file);
    assert_eq!(summaries.len(), 100);
    assert_eq!(accounted(&summaries), (1_000_000, 999_000, 1_000));
    assert!(
        summaries
            .iter()
            .all(|s| s["batch_item_failures"] == serde_json::json!([]))
    );
    let want: Vec<u64> = (0..1_000_000).filter(|k| k % 1000 != 999).collect();
    assert_eq!(numbers_out(&s), want);
    assert_eq!(lines_under(&s, "out/rejects").len(), 1_000);
    assert_bounded(peak);
}

/// Every file under `dir` (relative path → bytes), and the temporary ones apart.
fn tree(dir: &Path) -> (std::collections::BTreeMap<String, Vec<u8>>, Vec<String>) {
    let mut files = std::collections::BTreeMap::new();
    let mut temporary = Vec::new();
    for f in files_with_hidden(dir) {
        let rel = f.strip_prefix(dir).unwrap().display().to_string();
        if rel.contains(".sluice-tmp-") {
            temporary.push(rel);
        } else {
            files.insert(rel, std::fs::read(&f).unwrap());
        }
    }
    (files, temporary)
}

/// Every file under `dir`, hidden ones included.
fn files_with_hidden(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Issue 28: a process killed while writing left temporary files that nothing removed. Killed
/// (SIGKILL, no clean-up of its own) while its files are open, then run again over the same
/// outputs: exactly a clean run's files, and no temporary file.
#[test]
fn a_killed_run_leaves_nothing_after_the_next_run_over_the_same_outputs() {
    let data = incompressible_rows(20_000, 4);
    let run_into = |out: &Path| {
        let cfg = format!(
            "name = \"killed\"\n[input]\nformat = \"ndjson\"\nschema = {{ p = \"int64\", n = \"int64\", blob = \"string\" }}\n\
             [output]\nuri = \"{}\"\nformat = \"parquet\"\npartition_by = [\"p\"]\n",
            out.display()
        );
        Scratch::new(&cfg, "in", &[("big.ndjson".into(), data.clone())])
    };
    let dir = tempfile::tempdir().unwrap();
    let clean_out = dir.path().join("clean");
    let clean = run_into(&clean_out);
    assert_eq!(clean.replay()["records_out"], 20_000);
    let (want, temporary) = tree(&clean_out);
    assert_eq!((want.len(), temporary.len()), (4, 0), "{:?}", want.keys());

    let out = dir.path().join("killed");
    let s = run_into(&out);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "replay",
            s.config.to_str().unwrap(),
            s.event.to_str().unwrap(),
            "--store",
            s.store.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed the moment its files are being written.
    let started = std::time::Instant::now();
    while tree(&out).1.is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no file was ever being written"
        );
        if child.try_wait().unwrap().is_some() {
            panic!("the run ended before it could be killed while writing");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (_, left) = tree(&out);
    assert!(
        !left.is_empty(),
        "the kill left no temporary file to clean up"
    );

    let summary = s.replay();
    assert_eq!(summary["records_out"], 20_000, "{summary}");
    let (got, temporary) = tree(&out);
    assert_eq!(temporary, Vec::<String>::new(), "left behind: {left:?}");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    assert!(got == want, "the outputs differ from a clean run's");
}

/// Issue 28: a Kinesis batch's outputs were named by its first and last sequence numbers, so
/// the same batch delivered again one record longer (another batch size) wrote a second file
/// holding the first delivery's records again. Named by the first sequence number, the
/// redelivery replaces what the first delivery published.
#[test]
fn a_kinesis_batch_redelivered_one_record_longer_writes_no_record_twice() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = format!(
        "name = \"redelivered\"\n[input]\nformat = \"ndjson\"\nschema = {{ n = \"int64\", p = \"string\" }}\n\
         [output]\nuri = \"{}\"\nformat = \"ndjson\"\npartition_by = [\"p\"]\n",
        out.display()
    );
    let s = Scratch::new(&cfg, "in", &[]);
    let payloads = |n: u64| -> Vec<(String, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let p = ["a", "b", "c"][i as usize % 3];
                (
                    format!("k{i}"),
                    format!("{{\"n\":{i},\"p\":\"{p}\"}}").into_bytes(),
                )
            })
            .collect()
    };
    for n in [10, 11] {
        std::fs::write(
            &s.event,
            sluice_pipeline::event::kinesis_event("clicks", &payloads(n)).to_string(),
        )
        .unwrap();
        assert_eq!(s.replay()["records_out"], n);
    }
    let mut seen: Vec<i64> = ndjson_values(&out)
        .iter()
        .map(|v| v["n"].as_i64().unwrap())
        .collect();
    seen.sort();
    assert_eq!(seen, (0..11).collect::<Vec<i64>>());
}
