//! The fuzz targets' checks (`sluice_pipeline::fuzzing`) on stable Rust: over their seeds (the
//! fixtures), over every input the fuzzers ever failed on (`fuzz/regressions/<target>/`, kept
//! forever), and over a few hundred deterministic mutations of each seed — a short smoke run of
//! the fuzzers, part of every test run. The long runs are `cargo fuzz` (fuzz/README.md).

use std::path::Path;

use sluice_pipeline::fuzzing;

use crate::support::{files, fixtures, root};

/// Every file under `dir`, read (none when it does not exist).
fn read_all(dir: &Path) -> Vec<Vec<u8>> {
    files(dir)
        .iter()
        .map(|p| std::fs::read(dir.join(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

/// `check` over every input the fuzzers found failing for `target` (each must pass now), the
/// seeds, and `rounds` mutations of each seed.
fn run(target: &str, seeds: &[Vec<u8>], rounds: usize, check: fn(&[u8])) {
    for input in read_all(&root().join("fuzz/regressions").join(target))
        .iter()
        .chain(seeds)
    {
        check(input);
    }
    for seed in seeds {
        for m in fuzzing::mutations(seed, rounds) {
            check(&m);
        }
    }
}

#[test]
fn fuzzed_events() {
    let mut seeds = read_all(&fixtures().join("events"));
    assert!(seeds.len() >= 10, "fixture events: {}", seeds.len());
    let payloads: Vec<(String, Vec<u8>)> = (0..4)
        .map(|i| (format!("pk-{i}"), format!("{{\"n\":{i}}}\n").into_bytes()))
        .collect();
    let kinesis = sluice_pipeline::event::kinesis_event("clicks", &payloads);
    for text in [
        serde_json::to_vec(&kinesis).unwrap(),
        serde_json::to_vec_pretty(&kinesis).unwrap(),
    ] {
        // The check compares the two readers only where the fast one reads: it must, here.
        assert!(sluice_pipeline::fastevent::kinesis(&text).is_some());
        seeds.push(text);
    }
    run("event", &seeds, 300, fuzzing::event);
}

#[test]
fn fuzzed_decoders() {
    // Small pieces of every fixture object (the decoders run in 15 formats on each input).
    let seeds: Vec<Vec<u8>> = read_all(&fixtures().join("objects"))
        .into_iter()
        .map(|mut b| {
            b.truncate(1500);
            b
        })
        .collect();
    assert!(seeds.len() >= 5, "fixture objects: {}", seeds.len());
    run("decoders", &seeds, 30, fuzzing::decoders);
}

#[test]
fn fuzzed_kpl() {
    let records: [(&str, &[u8]); 3] = [("a", b"{\"p\":1}"), ("bb", b""), ("a", b"\x00\xff")];
    let seed = sluice_pipeline::kpl::aggregate(&records);
    let back = sluice_pipeline::kpl::deaggregate(&seed).unwrap();
    assert_eq!(back.len(), 3);
    run("kpl", &[seed], 2000, fuzzing::kpl);
}

#[test]
fn fuzzed_configs() {
    let examples = root().join("examples");
    let seeds: Vec<Vec<u8>> = files(&examples)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "pipeline.toml"))
        .map(|p| {
            let path = examples.join(&p);
            // Seeds that load, so their mutations reach past the first error.
            sluice_pipeline::Plan::load(&path).unwrap_or_else(|e| panic!("{e}"));
            std::fs::read(path).unwrap()
        })
        .collect();
    assert!(seeds.len() >= 10, "example configs: {}", seeds.len());
    run("config", &seeds, 40, fuzzing::config);
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
    .map(|s| {
        // Seeds that check, so their mutations reach evaluation.
        fuzzing::compile(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        s.as_bytes().to_vec()
    })
    .collect();
    run("expression", &seeds, 400, fuzzing::expression);
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
    assert_eq!(fuzzing::parquet_rows(&file).unwrap(), 200);
    // A corrupt footer (its length, then its magic) is an error, not a panic or a guess.
    let n = file.len();
    let mut bad_len = file.clone();
    bad_len[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(fuzzing::parquet_rows(&bad_len).is_err());
    assert!(fuzzing::parquet_rows(&file[..n - 1]).is_err());
    run("parquet", &[file], 300, fuzzing::parquet);
}

#[test]
fn fuzzed_images() {
    // The small fixtures (a mutated 12 MP photo takes too long in a debug build).
    let seeds: Vec<Vec<u8>> = read_all(&fixtures().join("images"))
        .into_iter()
        .filter(|b| b.len() < 64 << 10)
        .collect();
    assert!(seeds.len() >= 5, "small fixture images: {}", seeds.len());
    run("image", &seeds, 20, fuzzing::image);
}
