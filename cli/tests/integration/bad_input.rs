//! Hostile input in one object after another: each gets a reject or an error with its reason, the
//! good data around it is still processed, and memory stays bounded whatever the sizes.

use crate::support::*;
use std::io::Write;

pub const CONFIG: &str = r#"name = "bad"
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
    let (code, summary, peak) = replay_watched_code(s);
    assert_eq!(code, Some(0), "{summary}");
    (summary, peak)
}

/// As [`replay_watched`], with the exit code and whatever the run's summary says.
fn replay_watched_code(s: &Scratch) -> (Option<i32>, serde_json::Value, Option<u64>) {
    let (code, mut summaries, peak) = s.replay_watched(&s.event);
    (code, summaries.remove(0), peak)
}

/// Every line of every file under `dir` of the scratch store.
pub fn lines_under(s: &Scratch, dir: &str) -> Vec<String> {
    lines_in(&s.store.join(dir))
}

/// A gzip member whose data is `prefix` and then `mib` MiB of zeros, from about 1 KB per MiB: one
/// deflate block of 1 MiB of zeros, ended on a byte boundary, repeated. Each block refers back
/// only into its own zeros, so the repeats are a valid stream. (Its trailer's CRC is left zero:
/// a reader that refuses the bomb never reaches it.)
fn gzip_bomb(prefix: &[u8], mib: usize) -> Vec<u8> {
    fn block(data: &[u8]) -> Vec<u8> {
        let mut c = flate2::Compress::new(flate2::Compression::best(), false);
        let mut out = Vec::with_capacity(data.len() / 100 + 1024);
        loop {
            let at = c.total_in() as usize;
            out.reserve(4096);
            c.compress_vec(&data[at..], &mut out, flate2::FlushCompress::Sync)
                .unwrap();
            if c.total_in() as usize == data.len() && out.capacity() > out.len() {
                return out;
            }
        }
    }
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    gz.extend(block(prefix));
    let zeros = block(&vec![0u8; 1 << 20]);
    for _ in 0..mib {
        gz.extend_from_slice(&zeros);
    }
    // A final, empty fixed-Huffman block, then CRC-32 (left zero) and the size mod 2^32.
    gz.extend_from_slice(&[0x03, 0x00, 0, 0, 0, 0]);
    let size = (prefix.len() + (mib << 20)) as u32;
    gz.extend_from_slice(&size.to_le_bytes());
    gz
}

#[test]
fn a_gzip_bomb_is_refused_after_bounded_work_and_the_other_objects_still_processed() {
    // 1 GiB of zeros from ~1 MB, after a good line.
    let bomb = gzip_bomb(b"{\"n\":1}\n", 1024);
    assert!(bomb.len() < 2 << 20, "the bomb is {} bytes", bomb.len());
    // An ordinary compressed object beside it.
    let fine = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for i in 0..20_000 {
            writeln!(e, "{{\"n\":{i}}}").unwrap();
        }
        e.finish().unwrap()
    };
    let s = Scratch::new(
        CONFIG,
        "in",
        &[
            ("a-bomb.ndjson.gz".to_string(), bomb),
            ("b-fine.ndjson.gz".to_string(), fine),
            ("c-plain.ndjson".to_string(), b"{\"n\":-1}\n".to_vec()),
        ],
    );
    let (code, summary, peak) = replay_watched_code(&s);
    assert_eq!(code, Some(1), "{summary}");
    let error = summary["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("a-bomb.ndjson.gz") && error.contains("decompression bomb"),
        "{summary}"
    );
    assert!(error.contains("max_inflate_ratio"), "{summary}");
    // The objects after it were still read and written whole.
    let out = lines_under(&s, "out/ok");
    assert_eq!(out.len(), 20_000 + 1, "{summary}");
    assert!(out.contains(&"{\"n\":-1}".to_string()));
    assert!(out.contains(&"{\"n\":19999}".to_string()));
    assert_bounded(peak);
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
    let mut got = lines_under(&s, "out/ok");
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
    let rejects: Vec<serde_json::Value> = lines_under(&s, "out/rejects")
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
    // Nothing held whole: not the 100 MB line, not the 256 MiB one, not a million rejects (this
    // run peaks near 90 MiB).
    assert_bounded(peak);
}

#[test]
fn hostile_keys_are_refused_in_a_10_000_record_event_and_every_other_object_is_read() {
    // 10 000 S3 records (Lambda's S3 events carry one; an SQS or replayed batch can carry many):
    // 9 996 small objects and 4 keys that must never be opened.
    let mut objects: Vec<(String, Vec<u8>)> = (0..9_995)
        .map(|i| {
            (
                format!("logs/{i:05}.ndjson"),
                format!("{{\"n\":{i}}}\n").into_bytes(),
            )
        })
        .collect();
    objects.push(("logs/keep.ndjson".into(), b"{\"n\":-1}\n".to_vec()));
    let s = Scratch::new(CONFIG, "in", &objects);
    // The hostile records: `..` segments (plain and URL-encoded, as S3 events encode keys), a NUL
    // byte, and a key past S3's 1024-byte limit. A file sits where `../..` would lead.
    let outside = s.store.parent().unwrap().join("secret.ndjson");
    std::fs::write(&outside, "{\"n\":1000000}\n").unwrap();
    let mut event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&s.event).unwrap()).unwrap();
    let records = event["Records"].as_array_mut().unwrap();
    // The last record (an ordinary key) stays last, after the hostile ones.
    let keep = records.pop().unwrap();
    let template = keep.clone();
    let long = format!("logs/{}.ndjson", "a".repeat(4000));
    for raw in [
        "../../secret.ndjson",
        "logs/%2E%2E/%2E%2E/%2E%2E/secret.ndjson",
        "logs/nul%00.ndjson",
        long.as_str(),
    ] {
        let mut r = template.clone();
        r["s3"]["object"]["key"] = raw.into();
        records.push(r);
    }
    records.push(keep);
    assert_eq!(records.len(), 10_000);
    std::fs::write(&s.event, event.to_string()).unwrap();

    let (code, summary, peak) = replay_watched_code(&s);
    // The hostile keys fail the invocation (S3 would retry, then dead-letter the event) with their
    // reasons; nothing outside the store was read.
    assert_eq!(code, Some(1), "{summary}");
    let error = summary["error"].as_str().unwrap_or_default();
    assert!(error.contains("refused"), "{error}");
    let mut got: Vec<i64> = lines_under(&s, "out/ok")
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                .as_i64()
                .unwrap()
        })
        .collect();
    got.sort();
    let mut want: Vec<i64> = (0..9_995).collect();
    want.insert(0, -1);
    assert_eq!(got.len(), want.len(), "{summary}");
    assert_eq!(got, want);
    assert!(!got.contains(&1_000_000));
    assert_eq!(
        std::fs::read_to_string(&outside).unwrap(),
        "{\"n\":1000000}\n"
    );
    assert_eq!(summary["objects"], 9_996, "{summary}");
    assert_bounded(peak);
}

#[test]
fn corrupt_parquet_objects_fail_with_their_reason_and_the_good_one_is_read() {
    let good = parquet_of_n(1000);
    let n = good.len();
    // The footer's length pointing past the start of the file.
    let mut bad_len = good.clone();
    bad_len[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    // The closing magic gone.
    let mut bad_magic = good.clone();
    bad_magic[n - 4..].copy_from_slice(b"PAR0");
    // Cut off halfway.
    let cut = good[..n / 2].to_vec();
    // Footer intact, the metadata itself garbled.
    let meta_len = u32::from_le_bytes(good[n - 8..n - 4].try_into().unwrap()) as usize;
    let mut bad_meta = good.clone();
    for b in &mut bad_meta[n - 8 - meta_len..n - 8] {
        *b = 0xff;
    }
    let config = CONFIG.replace(
        "format = \"ndjson\"\nschema = { n = \"int64\" }",
        "format = \"parquet\"",
    );
    assert!(config.contains("format = \"parquet\""), "{config}");
    let s = Scratch::new(
        &config,
        "in",
        &[
            ("a-bad-len.parquet".to_string(), bad_len),
            ("b-bad-magic.parquet".to_string(), bad_magic),
            ("c-cut.parquet".to_string(), cut),
            ("d-bad-meta.parquet".to_string(), bad_meta),
            ("e-good.parquet".to_string(), good),
        ],
    );
    let (code, summary, _) = replay_watched_code(&s);
    assert_eq!(code, Some(1), "{summary}");
    let error = summary["error"].as_str().unwrap_or_default();
    for name in ["a-bad-len", "b-bad-magic", "c-cut"] {
        assert!(error.contains(name), "{name} not in {error}");
    }
    // Every corrupt one is an object failure; the good one is read whole, and nothing of a
    // corrupt one is written.
    let out = files(&s.store.join("out/ok"));
    assert_eq!(out.len(), 1, "{out:?} {summary}");
    assert!(out[0].to_string_lossy().starts_with("e-good"), "{out:?}");
    let lines = std::fs::read_to_string(s.store.join("out/ok").join(&out[0])).unwrap();
    assert_eq!(lines.lines().count(), 1000);
    assert_eq!(summary["records_out"], 1000, "{summary}");
    assert_eq!(summary["objects"], 1, "{summary}");
}

/// Issue 27: a footer declaring 10 000 nested groups overflowed the reader's stack and aborted
/// the process (exit 134), and every other object of the invocation with it.
#[test]
fn a_parquet_schema_nested_ten_thousand_deep_fails_its_object_not_the_process() {
    let good = parquet_of_n(10);
    let deep = deep_parquet(10_000);
    assert!(deep.len() < 120_000, "{}", deep.len());
    let config = CONFIG.replace(
        "format = \"ndjson\"\nschema = { n = \"int64\" }",
        "format = \"parquet\"",
    );
    let s = Scratch::new(
        &config,
        "in",
        &[
            ("a-deep.parquet".to_string(), deep),
            ("b-good.parquet".to_string(), good),
        ],
    );
    let (code, summary, _) = replay_watched_code(&s);
    assert_eq!(code, Some(1), "{summary}");
    let error = summary["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("s3://in/a-deep.parquet: not a readable Parquet file")
            && error.contains("its schema nests groups more than 64 levels deep"),
        "{error}"
    );
    assert_eq!(summary["objects"], 1, "{summary}");
    assert_eq!(summary["records_out"], 10, "{summary}");
}

/// A Parquet file of one int64 column `n`, 0 to `rows` - 1.
fn parquet_of_n(rows: i64) -> Vec<u8> {
    use arrow_array::{Int64Array, RecordBatch};
    use std::sync::Arc;
    let batch = RecordBatch::try_from_iter([(
        "n",
        Arc::new(Int64Array::from_iter_values(0..rows)) as arrow_array::ArrayRef,
    )])
    .unwrap();
    let mut file = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    file
}

/// A Parquet file of `depth` nested groups around one leaf column: `PAR1`, a Thrift compact
/// `FileMetaData` (version, the schema's flat element list, num_rows 0, no row groups), its
/// length and `PAR1`.
fn deep_parquet(depth: usize) -> Vec<u8> {
    fn varint(mut v: u64, b: &mut Vec<u8>) {
        while v >= 0x80 {
            b.push((v as u8) | 0x80);
            v >>= 7;
        }
        b.push(v as u8);
    }
    let mut meta = vec![0x15, 0x02]; // field 1 (version): i32 1
    meta.extend([0x19, 0xfc]); // field 2 (schema): list of structs, size follows
    varint(depth as u64 + 2, &mut meta);
    for _ in 0..=depth {
        // name "g", repetition REQUIRED (field 3, i32 0) except the root, num_children 1
        meta.extend([0x35, 0x00, 0x18, 0x01, b'g', 0x15, 0x02, 0x00]);
    }
    // The leaf: type INT64 (field 1, i32 2), repetition REQUIRED (field 3), name "n".
    meta.extend([0x15, 0x04, 0x25, 0x00, 0x18, 0x01, b'n', 0x00]);
    meta.extend([0x16, 0x00]); // field 3 (num_rows): i64 0
    meta.extend([0x19, 0x0c]); // field 4 (row_groups): empty list of structs
    meta.push(0x00);
    let mut file = b"PAR1".to_vec();
    file.extend(&meta);
    file.extend((meta.len() as u32).to_le_bytes());
    file.extend(b"PAR1");
    file
}

/// Issue 27, the memory budget: each open partition buffered a row group of up to 32 MiB, so 64
/// partitions could take 2 GB (200 MB of incompressible rows over 64 partitions peaked at
/// 310 MiB, over a 256 MB function). With `--memory-mb 256` the files share an eighth of it,
/// the fullest writing out its row group first, and the run stays under 256 MiB, every row in
/// its partition.
#[test]
fn partitioned_output_stays_within_the_memory_budget() {
    const ROWS: u64 = 96_000;
    let data = incompressible_rows(ROWS, 64);
    assert!(data.len() > 180 << 20, "{}", data.len());
    let config = CONFIG
        .replace(
            "schema = { n = \"int64\" }",
            "schema = { p = \"int64\", n = \"int64\", blob = \"string\" }",
        )
        .replace(
            "format = \"ndjson\"\n[rejects]",
            "compression = \"none\"\npartition_by = [\"p\"]\n[rejects]",
        )
        .replace(
            "uri = \"s3://out/ok/\"\nformat = \"ndjson\"",
            "uri = \"s3://out/ok/\"",
        );
    assert!(config.contains("partition_by"), "{config}");
    let s = Scratch::new(&config, "in", &[("wide.ndjson".to_string(), data)]);
    let (code, mut summaries, peak) = s.replay_watched_with(&s.event, &["--memory-mb", "256"]);
    assert_eq!(code, Some(0), "{summaries:?}");
    let summary = summaries.remove(0);
    assert_eq!(summary["records_out"], ROWS, "{summary}");
    assert_eq!(
        summary["outputs"].as_array().map(Vec::len),
        Some(64),
        "{summary}"
    );
    let peak = peak.expect("peak RSS");
    eprintln!("peak RSS {} MiB", peak >> 20);
    assert!(peak < 256 << 20, "peak RSS {} MiB", peak >> 20);
    // Every row is in the partition its p names.
    let mut rows = 0;
    for f in files(&s.store.join("out/ok")) {
        let path = s.store.join("out/ok").join(&f);
        let p: u64 = f.to_string_lossy().split('/').next().unwrap()["p=".len()..]
            .parse()
            .unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 8192).unwrap();
        for b in reader {
            let b = b.unwrap();
            let n = b.column_by_name("n").unwrap();
            let n = n
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .unwrap();
            assert!(n.values().iter().all(|n| (*n as u64) % 64 == p));
            rows += b.num_rows();
        }
    }
    assert_eq!(rows as u64, ROWS);
}

/// Issue 27: with no schema, one NDJSON line of 30 000 keys took 1.2 GB (a batch of builders per
/// column) and a CSV of 25 000 columns 1 GB. The wide lines are rejects with the reason, the
/// others are read; the wide CSV fails with a message to declare the schema; memory stays small.
#[test]
fn inferring_a_schema_from_very_wide_records_is_bounded() {
    let wide: String = (0..30_000)
        .map(|i| format!("\"k{i}\":{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut ndjson = String::from("{\"n\":1}\n");
    for _ in 0..50 {
        ndjson.push_str(&format!("{{{wide}}}\n"));
    }
    ndjson.push_str("{\"n\":2}\n");
    let header: Vec<String> = (0..25_000).map(|i| format!("c{i}")).collect();
    let row: Vec<String> = (0..25_000).map(|i| i.to_string()).collect();
    let mut csv = header.join(",") + "\n";
    for _ in 0..20 {
        csv.push_str(&(row.join(",") + "\n"));
    }
    let inferred = CONFIG.replace("schema = { n = \"int64\" }\n", "");
    let s = Scratch::new(
        &inferred,
        "in",
        &[("wide.ndjson".to_string(), ndjson.into_bytes())],
    );
    let (summary, peak) = replay_watched(&s);
    assert_eq!(
        (
            summary["records_out"].as_u64(),
            summary["rejected"].as_u64()
        ),
        (Some(2), Some(50)),
        "{summary}"
    );
    let rejects = lines_under(&s, "out/rejects");
    assert!(
        rejects[0].contains("has 30000 fields, more than [input] max_inferred_columns (1000)"),
        "{}",
        rejects[0]
    );
    assert_bounded(peak);
    let csv_config = inferred.replace(
        "format = \"ndjson\"\n[output]",
        "format = \"csv\"\n[output]",
    );
    assert!(csv_config.contains("format = \"csv\""), "{csv_config}");
    let s = Scratch::new(
        &csv_config,
        "in",
        &[("wide.csv".to_string(), csv.into_bytes())],
    );
    let (code, summary, peak) = replay_watched_code(&s);
    assert_eq!(code, Some(1), "{summary}");
    assert!(
        summary["error"]
            .as_str()
            .unwrap_or_default()
            .contains("the CSV has 25000 columns, more than [input] max_inferred_columns (1000)"),
        "{summary}"
    );
    assert_bounded(peak);
}

/// The memory watcher measures sluice, not the test harness: CI once read the harness's own
/// high-water mark (1174 MiB) for a run that peaks at 37, in the moment `spawn` has returned and
/// the child's exec has not yet swapped its memory. Here the harness holds 400 MiB while it
/// watches small runs; each must be measured, and small. (The window is a race: this catches
/// it only when the child is descheduled there, as under CI's load.)
#[test]
fn the_memory_watcher_measures_the_run_not_the_harness() {
    let ballast = vec![1u8; 400 << 20];
    let s = Scratch::new(
        CONFIG,
        "in",
        &[("a.ndjson".to_string(), b"{\"n\":1}\n".to_vec())],
    );
    for _ in 0..10 {
        let (_, peak) = replay_watched(&s);
        assert_bounded(peak);
    }
    assert_eq!(
        ballast.iter().map(|b| *b as usize).sum::<usize>(),
        400 << 20
    );
}
