//! The fuzz targets' checks (`sluice_pipeline::fuzzing`) on stable Rust: over their seeds (the
//! fixtures), over every input the fuzzers ever failed on (`fuzz/regressions/<target>/`, kept
//! forever), and over a few hundred deterministic mutations of each seed — a short smoke run of
//! the fuzzers, part of every test run. The long runs are `cargo fuzz` (fuzz/README.md).

use std::path::{Path, PathBuf};

use sluice_pipeline::fuzzing;

use crate::support::{fixtures, root};

/// Files under `dir` (recursively), sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Inputs the fuzzers found failing for `target`: each must pass now.
fn regressions(target: &str) -> Vec<Vec<u8>> {
    files(&root().join("fuzz/regressions").join(target))
        .iter()
        .map(|p| read(p))
        .collect()
}

/// Deterministic damage to `seed`: `rounds` copies, each with bytes overwritten, cut, duplicated
/// or removed somewhere (xorshift; the same every run).
fn mutations(seed: &[u8], rounds: usize) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed.len() as u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let alphabet = b"{}[]\":,\\ \n\r\t0aZ-.e\x00\xff\xc3\x1f\x8b\x28\xb5\x2f\xfd";
    (0..rounds)
        .map(|round| {
            let mut t = seed.to_vec();
            if t.is_empty() {
                return vec![alphabet[round % alphabet.len()]];
            }
            let at = (next() % t.len() as u64) as usize;
            match round % 4 {
                0 => t[at] = alphabet[(next() % alphabet.len() as u64) as usize],
                1 => t.truncate(at),
                2 => {
                    let piece = t[at..(at + 16).min(t.len())].to_vec();
                    t.splice(at..at, piece);
                }
                _ => {
                    t.drain(at..(at + 1 + (next() % 8) as usize).min(t.len()));
                }
            }
            t
        })
        .collect()
}

/// `check` over the seeds, the regressions, and `rounds` mutations of each seed.
fn run(target: &str, seeds: Vec<Vec<u8>>, rounds: usize, check: fn(&[u8])) -> usize {
    let mut n = 0;
    for input in regressions(target).iter().chain(&seeds) {
        check(input);
        n += 1;
    }
    for seed in &seeds {
        for m in mutations(seed, rounds) {
            check(&m);
            n += 1;
        }
    }
    n
}

#[test]
fn fuzzed_events() {
    let mut seeds: Vec<Vec<u8>> = files(&fixtures().join("events"))
        .iter()
        .map(|p| read(p))
        .collect();
    let payloads: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("pk-{i}"), format!("{{\"n\":{i}}}\n").into_bytes()))
        .collect();
    let kinesis = sluice_pipeline::event::kinesis_event("clicks", &payloads);
    seeds.push(serde_json::to_vec(&kinesis).unwrap());
    seeds.push(serde_json::to_vec_pretty(&kinesis).unwrap());
    let n = run("event", seeds, 300, fuzzing::event);
    assert!(n > 3000, "{n}");
}

#[test]
fn fuzzed_decoders() {
    // Small pieces of every fixture object (the decoders run in 15 formats on each input).
    let seeds: Vec<Vec<u8>> = files(&fixtures().join("objects"))
        .iter()
        .map(|p| {
            let b = read(p);
            b[..b.len().min(1500)].to_vec()
        })
        .collect();
    assert!(seeds.len() >= 5, "fixture objects: {}", seeds.len());
    let n = run("decoders", seeds, 30, fuzzing::decoders);
    assert!(n > 150, "{n}");
}

#[test]
fn fuzzed_kpl() {
    let records: [(&str, &[u8]); 3] = [("a", b"{\"p\":1}"), ("bb", b""), ("a", b"\x00\xff")];
    let seeds = vec![sluice_pipeline::kpl::aggregate(&records)];
    let n = run("kpl", seeds, 2000, fuzzing::kpl);
    assert!(n >= 2001, "{n}");
}

#[test]
fn fuzzed_configs() {
    let seeds: Vec<Vec<u8>> = files(&root().join("examples"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "pipeline.toml"))
        .map(|p| read(&p))
        .collect();
    assert!(seeds.len() >= 10, "example configs: {}", seeds.len());
    let n = run("config", seeds, 40, fuzzing::config);
    assert!(n > 400, "{n}");
}

#[test]
fn fuzzed_expressions() {
    let seeds: Vec<Vec<u8>> = [
        "s <> 'view' OR n > 500",
        "date(t) = '2026-11-22' AND f BETWEEN 0.5 AND 1e3",
        "lower(s) LIKE 'a%' AND NOT b",
        "n / 0 + -n * 2 % 3",
        "coalesce(s, 'x') IN ('a', 'b') AND t IS NOT NULL",
        "CASE WHEN n > 1 THEN 'big' ELSE s END = 'big'",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let n = run("expression", seeds, 400, fuzzing::expression);
    assert!(n > 2400, "{n}");
}

#[test]
fn fuzzed_parquet() {
    use arrow_array::{Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let batch = RecordBatch::try_from_iter([
        (
            "n",
            Arc::new(Int64Array::from_iter_values(0..200)) as arrow_array::ArrayRef,
        ),
        (
            "s",
            Arc::new(StringArray::from_iter_values(
                (0..200).map(|i| format!("v{}", i % 7)),
            )),
        ),
    ])
    .unwrap();
    let mut file = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let n = run("parquet", vec![file], 300, fuzzing::parquet);
    assert!(n > 300, "{n}");
}

#[cfg(feature = "image")]
#[test]
fn fuzzed_images() {
    // The small fixtures (a mutated 12 MP photo takes too long in a debug build).
    let seeds: Vec<Vec<u8>> = files(&fixtures().join("images"))
        .iter()
        .map(|p| read(p))
        .filter(|b| b.len() < 64 << 10)
        .collect();
    assert!(seeds.len() >= 5, "small fixture images: {}", seeds.len());
    let n = run("image", seeds, 20, fuzzing::image);
    assert!(n > 100, "{n}");
}
