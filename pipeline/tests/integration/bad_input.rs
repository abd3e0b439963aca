//! Hostile input in one object after another: each gets a reject or an error with its reason, the
//! good data around it is still processed, and memory stays bounded whatever the sizes.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::s3::peak_rss_while_running;
use crate::support::*;

const CONFIG: &str = r#"name = "bad"
[input]
format = "ndjson"
schema = { n = "int64" }
[output]
uri = "s3://out/ok/"
format = "ndjson"
[rejects]
uri = "s3://out/rejects/"
"#;

/// `sluice replay` of the scratch event, watched for its peak memory: (summary, peak RSS).
fn replay_watched(s: &Scratch) -> (serde_json::Value, Option<u64>) {
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "replay",
            s.config.to_str().unwrap(),
            s.event.to_str().unwrap(),
            "--store",
            s.store.to_str().unwrap(),
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let peak = peak_rss_while_running(child.id());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    (summaries(&o).remove(0), peak)
}

#[test]
fn giant_lines_and_decompression_bombs_are_rejects_in_bounded_memory() {
    // A 100 MB single line between good lines, plain.
    let mut giant = b"{\"n\":1}\n{\"s\":\"".to_vec();
    giant.resize(giant.len() + (100 << 20), b'a');
    giant.extend_from_slice(b"\"}\n{\"n\":2}\n");
    // A zstd bomb: 256 MiB of NUL bytes (no line break: one enormous line) from a few KB, between
    // good lines.
    let bomb = {
        let mut e = zstd::stream::Encoder::new(Vec::new(), 19).unwrap();
        e.write_all(b"{\"n\":3}\n").unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..256 {
            e.write_all(&zeros).unwrap();
        }
        e.write_all(b"\n{\"n\":4}\n").unwrap();
        e.finish().unwrap()
    };
    assert!(bomb.len() < 64 << 10, "the bomb is {} bytes", bomb.len());
    // A gzip bomb of repeated bad lines: a million rejects' worth from ~100 KB; rejects are
    // counted, their files bounded.
    let gz_lines = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(b"{\"n\":5}\n").unwrap();
        for _ in 0..1_000_000 {
            e.write_all(b"{\"n\":\"x\"}\n").unwrap();
        }
        e.finish().unwrap()
    };
    let s = Scratch::new(
        CONFIG,
        "in",
        &[
            ("giant.ndjson".to_string(), giant),
            ("bomb.ndjson.zst".to_string(), bomb),
            ("lines.ndjson.gz".to_string(), gz_lines),
        ],
    );
    let (summary, peak) = replay_watched(&s);
    assert_eq!(summary["objects"], 3, "{summary}");
    assert_eq!(summary["records_out"], 5, "{summary}");
    assert_eq!(summary["rejected"], 2 + 1_000_000, "{summary}");
    let lines_under = |dir: &str| -> Vec<String> {
        let dir = s.store.join(dir);
        files(&dir)
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(dir.join(f))
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let mut got = lines_under("out/ok");
    got.sort();
    assert_eq!(
        got,
        [
            "{\"n\":1}",
            "{\"n\":2}",
            "{\"n\":3}",
            "{\"n\":4}",
            "{\"n\":5}"
        ]
    );
    // Each giant line is one reject naming the limit, its raw bytes cut short.
    let rejects: Vec<serde_json::Value> = lines_under("out/rejects")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let long: Vec<&serde_json::Value> = rejects
        .iter()
        .filter(|r| {
            r["reason"]
                .as_str()
                .unwrap_or("")
                .contains("max_line_bytes")
        })
        .collect();
    assert_eq!(long.len(), 2, "{:?}", &rejects[..rejects.len().min(3)]);
    for r in long {
        let raw = r["raw"].as_str().or(r["raw_base64"].as_str()).unwrap_or("");
        assert!(raw.len() <= 8 << 10, "a reject kept {} bytes", raw.len());
    }
    // Nothing held whole: not the 100 MB line, not the 256 MiB one, not a million rejects (the
    // debug binary alone is ~40 MiB; this run peaks near 90).
    if let Some(peak) = peak {
        eprintln!("peak RSS {} MiB", peak >> 20);
        assert!(peak < 128 << 20, "peak RSS {} MiB", peak >> 20);
    }
}
