//! Shared helpers: paths, running the binary, reading outputs back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arrow_array::RecordBatch;

/// The workspace root. Cargo's runtime CARGO_MANIFEST_DIR first: the build cache is shared by
/// clones at different paths (CI's and a working copy), and cargo reuses a test binary built in
/// the other clone, whose compile-time path points there.
pub fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

pub fn fixtures() -> PathBuf {
    root().join("fixtures")
}

pub fn example_config() -> PathBuf {
    root().join("examples/clickstream/pipeline.toml")
}

/// Run `sluice ARGS` from the workspace root.
pub fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run sluice")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Parse `--json` summary lines.
pub fn summaries(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `rows` NDJSON lines `{"p": n % partitions, "n": n, "blob": 2 000 hex digits}`, the digits from
/// xorshift so no encoder or compressor can shrink them (memory tests need bytes that stay big).
pub fn incompressible_rows(rows: u64, partitions: u64) -> Vec<u8> {
    use std::io::Write;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut data = Vec::with_capacity(rows as usize * 2_040);
    for n in 0..rows {
        write!(data, "{{\"p\":{},\"n\":{n},\"blob\":\"", n % partitions).expect("vec");
        for _ in 0..125 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            write!(data, "{state:016x}").expect("vec");
        }
        data.extend_from_slice(b"\"}\n");
    }
    data
}

/// Rows of a Parquet file as NDJSON lines.
pub fn parquet_rows(bytes: &[u8]) -> Vec<String> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::copy_from_slice(bytes),
    )
    .expect("parquet footer")
    .build()
    .expect("parquet reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    batches_to_lines(&batches)
}

/// Rows as JSON lines, as Sluice writes NDJSON (infinities and NaN spelled out, not `null`).
pub fn batches_to_lines(batches: &[RecordBatch]) -> Vec<String> {
    let mut lines = Vec::new();
    for b in batches {
        let text = sluice_processors::json::ndjson(b).expect("json");
        lines.extend(
            String::from_utf8(text)
                .expect("utf8")
                .lines()
                .map(str::to_string),
        );
    }
    lines
}

/// Every file under `dir`, relative, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).expect("under base").to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Rows of every Parquet file under `dir` (none if it does not exist), as JSON values.
pub fn parquet_values(dir: &Path) -> Vec<serde_json::Value> {
    files(dir)
        .iter()
        .flat_map(|p| parquet_rows(&std::fs::read(dir.join(p)).expect("read")))
        .map(|l| serde_json::from_str(&l).expect("json row"))
        .collect()
}

/// Every line of every file under `dir` (e.g. NDJSON outputs or rejects), file by file.
pub fn lines_in(dir: &Path) -> Vec<String> {
    files(dir)
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(dir.join(f))
                .expect("read")
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every NDJSON line under `dir`, parsed.
pub fn ndjson_values(dir: &Path) -> Vec<serde_json::Value> {
    lines_in(dir)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A scratch folder: `objects` stored at `store/{bucket}/{key}`, an S3 event naming them
/// (`event.json`, with their sizes), and `pipeline.toml`.
pub struct Scratch {
    /// Holds the folder until the test ends.
    pub _dir: tempfile::TempDir,
    pub store: PathBuf,
    pub event: PathBuf,
    pub config: PathBuf,
}

impl Scratch {
    pub fn new(config: &str, bucket: &str, objects: &[(String, Vec<u8>)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store");
        std::fs::create_dir_all(&store).expect("mkdir store");
        let mut records = Vec::new();
        for (key, bytes) in objects {
            let p = store.join(bucket).join(key);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, bytes).expect("write");
            records.push(sluice_pipeline::event::s3_record(
                bucket,
                key,
                bytes.len() as u64,
                "etag",
            ));
        }
        let event = dir.path().join("event.json");
        std::fs::write(
            &event,
            sluice_pipeline::event::s3_event(records).to_string(),
        )
        .expect("write event");
        let cfg = dir.path().join("pipeline.toml");
        std::fs::write(&cfg, config).expect("write config");
        Scratch {
            _dir: dir,
            store,
            event,
            config: cfg,
        }
    }

    /// The arguments of `sluice replay --json` of `events` against the store.
    fn replay_args<'a>(&'a self, events: &'a Path) -> [&'a str; 6] {
        [
            "replay",
            self.config.to_str().expect("utf8"),
            events.to_str().expect("utf8"),
            "--store",
            self.store.to_str().expect("utf8"),
            "--json",
        ]
    }

    /// `sluice replay --json` of the event against the store.
    pub fn run(&self) -> Output {
        sluice(&self.replay_args(&self.event))
    }

    /// `sluice replay --json` of `events` against the store, watched for its peak memory (see
    /// [`sluice_watched`]): (exit code, every summary, peak RSS).
    pub fn replay_watched(
        &self,
        events: &Path,
    ) -> (Option<i32>, Vec<serde_json::Value>, Option<u64>) {
        self.replay_watched_with(events, &[])
    }

    /// [`Scratch::replay_watched`] with `extra` arguments (`--memory-mb 256`, say).
    pub fn replay_watched_with(
        &self,
        events: &Path,
        extra: &[&str],
    ) -> (Option<i32>, Vec<serde_json::Value>, Option<u64>) {
        let mut args = self.replay_args(events).to_vec();
        args.extend_from_slice(extra);
        let (code, out, peak) = sluice_watched(&args, self._dir.path());
        let summaries = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        (code, summaries, peak)
    }

    /// [`Scratch::run`], which must succeed: its summary.
    pub fn replay(&self) -> serde_json::Value {
        let o = self.run();
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        summaries(&o).remove(0)
    }
}

/// `sluice ARGS` watched for its peak memory (VmHWM): (exit code, stdout, peak RSS). Output goes
/// to files in `dir`, not pipes: nothing reads a pipe while the child is watched, and the summaries
/// of a long replay are more than a pipe holds (the child would block forever).
pub fn sluice_watched(args: &[&str], dir: &Path) -> (Option<i32>, String, Option<u64>) {
    let out_path = dir.join("sluice.stdout");
    let err_path = dir.join("sluice.stderr");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("run sluice");
    let peak = peak_rss_while_running(child.id());
    let status = child.wait().expect("wait for sluice");
    let out = std::fs::read_to_string(&out_path).expect("stdout");
    let err = std::fs::read_to_string(&err_path).expect("stderr");
    if out.trim().is_empty() {
        panic!("sluice {args:?} printed nothing: {err}");
    }
    (status.code(), out, peak)
}

/// A peak within a 128 MB function (the debug binary alone is ~40 MiB).
/// On Linux the peak must have been measured: a watcher that never saw sluice running is a
/// broken watcher, not a bounded run.
pub fn assert_bounded(peak: Option<u64>) {
    assert!(
        peak.is_some() || !cfg!(target_os = "linux"),
        "the run's peak memory was never sampled"
    );
    if let Some(peak) = peak {
        eprintln!("peak RSS {} MiB", peak >> 20);
        assert!(peak < 128 << 20, "peak RSS {} MiB", peak >> 20);
    }
}

/// Highest VmHWM seen in /proc while the process runs (Linux), in bytes.
///
/// Only samples taken once the child runs the sluice binary count. `spawn` returns as soon as
/// the kernel releases a vfork'ed parent, which it does in `exec` *before* it swaps the child's
/// memory for the new program's: a sample in that window reads the test harness's own VmHWM
/// (CI once saw 1174 MiB for a run that peaks at 37). The command name changes only after the
/// swap, so a sample counts when the name is sluice's. Sampled every 5 ms: a run that peaks and
/// exits between two samples is under-measured, never over.
pub fn peak_rss_while_running(pid: u32) -> Option<u64> {
    let mut peak = None;
    while let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        if status.contains("State:\tZ") {
            break;
        }
        if sampled_program(&status) == Some("sluice") {
            let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:"));
            if let Some(kb) = hwm.and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
            {
                peak = Some(peak.unwrap_or(0).max(kb * 1024));
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    peak
}

/// The command name in a /proc status (`Name:`), which exec sets to the program's file name.
fn sampled_program(status: &str) -> Option<&str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Name:"))
        .map(str::trim)
}
