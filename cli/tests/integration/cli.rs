//! The `sluice` command line: exit codes, messages, replay inputs, idempotency.

use crate::support::*;

fn replay_json(event: &str, out: &std::path::Path) -> std::process::Output {
    let cfg = example_config();
    sluice(&[
        "replay",
        cfg.to_str().unwrap(),
        event,
        "--out",
        out.to_str().unwrap(),
        "--json",
    ])
}

#[test]
fn validate_prints_the_plan_and_refuses_bad_configs() {
    let cfg = example_config();
    let o = sluice(&["validate", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("→ day date, ts timestamp, user_id string"),
        "{}",
        stdout(&o)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("pipeline.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("latency_ms > 500\"", "latency > 500\"");
    std::fs::write(&bad, text).unwrap();
    let o = sluice(&["validate", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "{}:12: `stage[0].where`: unknown column `latency`",
            bad.display()
        )),
        "{err}"
    );
    assert!(err.contains("columns are: ts, user_id"), "{err}");

    let o = sluice(&["validate", "/no/such/pipeline.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot read the config"),
        "{}",
        stderr(&o)
    );

    let o = sluice(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Issue 27: a filter of 8 000 OR'ed terms, or `a + a + …` of that length, aborted `validate`
/// with a stack overflow (exit 134). The first works; the second is exit 2 with a message.
#[test]
fn validate_takes_long_filters_and_refuses_endless_chains_with_a_message() {
    let cfg = example_config();
    let text = std::fs::read_to_string(&cfg).unwrap();
    let was = "where = \"event_type <> 'view' OR latency_ms > 500\"";
    assert!(text.contains(was), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.toml");
    let ors: Vec<String> = (0..8000).map(|i| format!("latency_ms = {i}")).collect();
    let chain = format!("latency_ms{} > 500", " + latency_ms".repeat(8000));
    for (filter, code) in [(ors.join(" OR "), 0), (chain, 2)] {
        std::fs::write(&file, text.replace(was, &format!("where = \"{filter}\""))).unwrap();
        let o = sluice(&["validate", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
        if code == 2 {
            assert!(
                stderr(&o).contains("`stage[0].where`")
                    && stderr(&o).contains("more than 128 levels of operators"),
                "{}",
                stderr(&o)
            );
        }
    }
}

#[test]
fn replay_reports_each_failure_clearly_and_keeps_the_good_objects() {
    let out = tempfile::tempdir().unwrap();
    let o = replay_json("fixtures/events/s3-corrupt-gzip.json", out.path());
    assert_eq!(o.status.code(), Some(1));
    let s = &summaries(&o)[0];
    let err = s["error"].as_str().unwrap();
    assert!(
        err.contains("corrupt.ndjson.gz: the object is corrupt or truncated"),
        "{err}"
    );
    // The good object in the same event is processed and written.
    assert_eq!(s["objects"], 1);
    assert_eq!(s["records_out"], 26);
    // Nothing half-written is visible for the corrupt one.
    assert!(
        files(out.path())
            .iter()
            .all(|f| !f.to_string_lossy().contains("corrupt")),
        "{:?}",
        files(out.path())
    );

    // Gone since its notification: skipped with the reason (the default `on_missing = "skip"`),
    // or a failure when the pipeline says `on_missing = "fail"`.
    let o = replay_json("fixtures/events/s3-missing-object.json", out.path());
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let s = &summaries(&o)[0];
    assert_eq!(
        (s["objects"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(
        s["skips"][0]["source"],
        "s3://analytics-in/clickstream/2026/11/26/never-uploaded.ndjson"
    );
    assert_eq!(
        s["skips"][0]["reason"],
        "no such object: the local store has no file \
         fixtures/objects/analytics-in/clickstream/2026/11/26/never-uploaded.ndjson"
    );
    let strict = out.path().join("strict.toml");
    let text = std::fs::read_to_string(example_config()).unwrap();
    std::fs::write(
        &strict,
        text.replacen("[input]\n", "[input]\non_missing = \"fail\"\n", 1),
    )
    .unwrap();
    let o = sluice(&[
        "replay",
        strict.to_str().unwrap(),
        "fixtures/events/s3-missing-object.json",
        "--out",
        out.path().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        summaries(&o)[0]["error"]
            .as_str()
            .unwrap()
            .contains("never-uploaded.ndjson: no such object"),
        "{}",
        stdout(&o)
    );

    let o = replay_json("fixtures/events/s3-not-json.json", out.path());
    assert_eq!(o.status.code(), Some(1));
    let err = summaries(&o)[0]["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("none of its 3 records could be read as `ndjson`"),
        "{err}"
    );

    let o = replay_json("fixtures/events/not-s3.json", out.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        summaries(&o)[0]["error"]
            .as_str()
            .unwrap()
            .contains("eventSource `aws:codecommit` is not an S3 notification")
    );

    let o = replay_json("fixtures/events/s3-test-event.json", out.path());
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert_eq!(summaries(&o)[0]["skipped"], 1);
}

#[test]
fn replay_takes_folders_and_jsonl_and_prints_one_line_per_event() {
    let out = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = std::fs::read_to_string(fixtures().join("events/sqs-s3.json")).unwrap();
    let b = std::fs::read_to_string(fixtures().join("events/eventbridge-created.json")).unwrap();
    let compact = |s: &str| {
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(s).unwrap()).unwrap()
    };
    let jsonl = dir.path().join("events.jsonl");
    std::fs::write(
        &jsonl,
        format!("{}\n\n{}\nnot json\n", compact(&a), compact(&b)),
    )
    .unwrap();
    let o = replay_json(jsonl.to_str().unwrap(), out.path());
    let s = summaries(&o);
    assert_eq!(s.len(), 3, "{}", stdout(&o));
    assert_eq!(s[0]["event"], format!("{}:1", jsonl.display()));
    assert_eq!(
        (
            s[0]["trigger"].as_str(),
            s[0]["objects"].as_u64(),
            s[0]["skipped"].as_u64()
        ),
        (Some("sqs"), Some(1), Some(1))
    );
    assert_eq!(s[1]["event"], format!("{}:3", jsonl.display()));
    assert_eq!(s[1]["trigger"], "eventbridge");
    assert!(
        s[2]["error"]
            .as_str()
            .unwrap()
            .starts_with("the event is not JSON")
    );
    assert_eq!(o.status.code(), Some(1));

    let o = replay_json("fixtures/events", out.path());
    assert_eq!(
        summaries(&o).len(),
        std::fs::read_dir(fixtures().join("events"))
            .unwrap()
            .count()
    );
    let fields = [
        "event",
        "trigger",
        "objects",
        "skipped",
        "records_in",
        "records_out",
        "rejected",
        "outputs",
        "batch_item_failures",
        "duration_ms",
        "error",
    ];
    for s in summaries(&o) {
        for f in fields {
            assert!(s.get(f).is_some(), "{f} missing from {s}");
        }
    }
}

#[test]
fn replaying_twice_writes_identical_bytes() {
    let out = tempfile::tempdir().unwrap();
    let read_all = |d: &std::path::Path| -> Vec<(std::path::PathBuf, Vec<u8>)> {
        files(d)
            .into_iter()
            .map(|f| (f.clone(), std::fs::read(d.join(&f)).unwrap()))
            .collect()
    };
    assert_eq!(
        replay_json("examples/clickstream/events/s3-put.json", out.path())
            .status
            .code(),
        Some(0)
    );
    let first = read_all(out.path());
    assert_eq!(first.len(), 4);
    assert_eq!(
        replay_json("examples/clickstream/events/s3-put.json", out.path())
            .status
            .code(),
        Some(0)
    );
    assert_eq!(first, read_all(out.path()));
}

#[test]
fn event_s3_writes_a_replayable_notification() {
    let o = sluice(&[
        "event",
        "s3",
        "--bucket",
        "analytics-in",
        "--key",
        "clickstream/2026/11/22/web+app events.ndjson",
        "--sqs",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let ev: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let body: serde_json::Value =
        serde_json::from_str(ev["Records"][0]["body"].as_str().unwrap()).unwrap();
    let obj = &body["Records"][0]["s3"]["object"];
    assert_eq!(obj["key"], "clickstream/2026/11/22/web%2Bapp+events.ndjson");
    let size = std::fs::metadata(
        fixtures().join("objects/analytics-in/clickstream/2026/11/22/web+app events.ndjson"),
    )
    .unwrap()
    .len();
    assert_eq!(obj["size"].as_u64(), Some(size));
    // The ETag S3 gives these bytes uploaded in one PUT (their MD5, `md5sum`), so the event also
    // replays against a bucket holding them; a key the store lacks names no content.
    assert_eq!(obj["eTag"], "50b5494af7b353bee29a8bdf5abfa0d9");
    let absent = sluice(&[
        "event",
        "s3",
        "--bucket",
        "analytics-in",
        "--key",
        "no/such.ndjson",
    ]);
    let ev: serde_json::Value = serde_json::from_slice(&absent.stdout).unwrap();
    assert!(
        ev["Records"][0]["s3"]["object"].get("eTag").is_none(),
        "{ev}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ev.json");
    std::fs::write(&path, &o.stdout).unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = replay_json(path.to_str().unwrap(), out.path());
    assert_eq!(r.status.code(), Some(0), "{}", stdout(&r));
    assert_eq!(summaries(&r)[0]["records_out"], 26);
}

#[test]
fn replay_redelivers_a_failing_kinesis_batch_then_gives_it_up_like_lambda() {
    let dir = tempfile::tempdir().unwrap();
    let lines = dir.path().join("records.ndjson");
    std::fs::write(&lines, "{\"p\":\"a\"}\n{\"p\":\"b\"}\n").unwrap();
    let ev = sluice(&[
        "event",
        "kinesis",
        "--stream",
        "clicks",
        lines.to_str().unwrap(),
    ]);
    assert_eq!(ev.status.code(), Some(0), "{}", stderr(&ev));
    let event = dir.path().join("event.json");
    std::fs::write(&event, &ev.stdout).unwrap();
    // The output folder cannot be created (a file is in the way): every delivery fails at the
    // batch's first record.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "in the way").unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        format!(
            "name = \"t\"\n[input]\nformat = \"ndjson\"\nschema = {{ p = \"string\" }}\n[output]\nuri = \"{}\"\nformat = \"ndjson\"\n",
            blocked.join("out").display()
        ),
    )
    .unwrap();
    let failures = dir.path().join("on-failure.jsonl");
    let o = sluice(&[
        "replay",
        cfg.to_str().unwrap(),
        event.to_str().unwrap(),
        "--max-retries",
        "2",
        "--on-failure",
        failures.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let s = summaries(&o);
    assert_eq!(s.len(), 3, "{}", stdout(&o));
    assert_eq!(s[2]["event"], format!("{}#3", event.display()));
    assert!(stderr(&o).contains("gave up on 1 batch(es) or message(s) after 2 retries"));
    let given_up: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&failures).unwrap().trim()).unwrap();
    assert_eq!(
        given_up["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(given_up["KinesisBatchInfo"]["batchSize"], 2);
    assert_eq!(
        given_up["KinesisBatchInfo"]["streamArn"],
        "arn:aws:kinesis:us-east-1:123456789012:stream/clicks"
    );
}

#[test]
fn a_jsonl_of_window_invocations_replays_with_the_state_carried() {
    let dir = tempfile::tempdir().unwrap();
    let lines = dir.path().join("records.ndjson");
    let text: String = (0..7)
        .map(|i| format!("{{\"page\":\"/p{}\",\"ms\":{}}}\n", i % 2, i * 10))
        .collect();
    std::fs::write(&lines, text).unwrap();
    let cfg = dir.path().join("pipeline.toml");
    std::fs::write(
        &cfg,
        format!(
            "name = \"w\"\n[input]\nformat = \"ndjson\"\nschema = {{ page = \"string\", ms = \"int64\" }}\n\
             [[stage]]\ntype = \"aggregate\"\ngroup_by = [\"page\"]\nmeasures = {{ hits = \"count(*)\", total = \"sum(ms)\", first_ms = \"first(ms)\" }}\n\
             [output]\nuri = \"{}\"\nformat = \"ndjson\"\n",
            dir.path().join("out").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str], file: &str| {
        let ev = sluice(args);
        assert_eq!(ev.status.code(), Some(0), "{}", stderr(&ev));
        let path = dir.path().join(file);
        std::fs::write(&path, &ev.stdout).unwrap();
        let o = sluice(&[
            "replay",
            cfg.to_str().unwrap(),
            path.to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        summaries(&o)
    };
    let l = lines.to_str().unwrap();
    let window = run(
        &[
            "event",
            "kinesis",
            "--window-seconds",
            "60",
            "--per-invoke",
            "3",
            l,
        ],
        "w.jsonl",
    );
    let whole = run(&["event", "kinesis", l], "e.json");
    assert_eq!(window.len(), 3);
    assert!(window[0]["outputs"].as_array().unwrap().is_empty());
    assert!(
        window[0]["state"]["sluice:stage:0"].is_string(),
        "{}",
        window[0]
    );
    let out =
        |s: &serde_json::Value| std::fs::read_to_string(s["outputs"][0].as_str().unwrap()).unwrap();
    assert_eq!(out(&window[2]), out(&whole[0]));
    assert_eq!(
        out(&whole[0]),
        "{\"page\":\"/p0\",\"hits\":4,\"total\":120,\"first_ms\":0}\n{\"page\":\"/p1\",\"hits\":3,\"total\":90,\"first_ms\":10}\n"
    );
}

#[test]
fn bench_reports_each_invocation_and_refuses_bad_options() {
    let cfg = example_config();
    let cfg = cfg.to_str().unwrap();
    let events = "examples/clickstream/events";
    let o = sluice(&["bench", cfg, events, "--memory-mb", "64,512"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--memory-mb: 64 MB: Lambda's memory is between 128 and 10240 MB"));
    let o = sluice(&["bench", cfg, events, "--arch", "sparc"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("the architecture is arm64 or x86_64"));

    let o = sluice(&[
        "bench",
        cfg,
        events,
        "--iterations",
        "2",
        "--warmup",
        "0",
        "--cold-starts",
        "1",
        "--memory-mb",
        "1769,128",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    // The table, one line per size in order, the example's counts, and the method stated.
    assert!(
        text.contains("155 in, 99 out, 5 rejected per invocation"),
        "{text}"
    );
    let at_128 = text.find("   128 MB").expect("128 MB row");
    let at_1769 = text.find("  1769 MB").expect("1769 MB row");
    assert!(at_128 < at_1769);
    assert!(text.contains("from process start to ready (median of 1 fresh processes)"));
    assert!(text.contains("Estimated, not measured on Lambda"));
    assert_eq!(text.matches("cheapest").count(), 1, "{text}");
}

/// Issue 39: a newcomer's mistakes end in a message that names the problem and a non-zero exit,
/// never a panic and never a successful nothing: `serve` outside Lambda (it panicked, exit 101,
/// after printing "Ready for events."), the quick start run from another folder (it printed
/// `0 objects · 5 skipped` and exit 0), a store that is not there, missing and wrong arguments.
#[test]
fn mistakes_get_a_message_and_a_non_zero_exit_never_a_panic() {
    let elsewhere = tempfile::tempdir().unwrap();
    let cfg = example_config();
    let cfg = cfg.to_str().unwrap();
    let events = root().join("examples/clickstream/events");
    let events = events.to_str().unwrap();
    let empty = elsewhere.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let not_json = elsewhere.path().join("event.json");
    std::fs::write(&not_json, "{not json").unwrap();
    let lambda_env = [
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
    ];
    // (arguments, run in the checkout (else an empty folder), what it must say)
    let cases: Vec<(Vec<&str>, bool, &str)> = vec![
        (vec!["serve", cfg], true, "AWS_LAMBDA_RUNTIME_API"),
        (vec!["serve"], false, "sluice replay"),
        (
            vec!["replay", cfg, events],
            false,
            "fixtures/objects is not a folder",
        ),
        (
            vec![
                "bench",
                cfg,
                events,
                "--iterations",
                "1",
                "--warmup",
                "0",
                "--cold-starts",
                "0",
            ],
            false,
            "fixtures/objects is not a folder",
        ),
        (
            vec!["replay", cfg, events, "--store", "/nonexistent"],
            true,
            "/nonexistent is not a folder",
        ),
        (
            vec!["replay", cfg, "/no/such/event.json"],
            true,
            "/no/such/event.json",
        ),
        (vec!["replay", cfg], true, "EVENT"),
        (
            vec!["replay", "/no/such.toml", events],
            true,
            "cannot read the config",
        ),
        (
            vec!["replay", empty.to_str().unwrap(), events],
            true,
            "missing field",
        ),
        (vec!["validate", "/tmp"], true, "cannot read the config"),
        (vec!["validate"], true, "CONFIG"),
        (
            vec!["bench", cfg, events, "--store", "/nonexistent"],
            true,
            "/nonexistent is not a folder",
        ),
        (
            vec!["bench", cfg, not_json.to_str().unwrap()],
            true,
            "event.json",
        ),
        (
            vec!["search", "/no/such/index", "word"],
            true,
            "/no/such/index",
        ),
        (vec!["event", "s3", "--key", "k"], true, "--bucket"),
        (
            vec!["event", "kinesis", "/no/such/file"],
            true,
            "/no/such/file",
        ),
        (vec![], true, "Usage"),
    ];
    for (args, in_checkout, says) in cases {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.args(&args).current_dir(if in_checkout {
            root()
        } else {
            elsewhere.path().to_path_buf()
        });
        for v in lambda_env {
            cmd.env_remove(v);
        }
        let o = cmd.output().unwrap();
        let err = stdout(&o) + &stderr(&o);
        assert!(
            matches!(o.status.code(), Some(1 | 2)),
            "{args:?}: exit {:?}\n{err}",
            o.status.code()
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: wanted `{says}` in\n{err}");
    }
}

/// Issue 39: counts on failure are what happened. Two uploads where one fails printed `1 object`;
/// a Kinesis batch whose output fails printed `0 in` though 3 records came; a folder of events
/// ended `2 events replayed` and exit 1 without saying how many failed.
#[test]
fn counts_say_what_failed_and_what_was_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(store.join("in")).unwrap();
    std::fs::write(store.join("in/good.ndjson"), "{\"n\":1}\n").unwrap();
    std::fs::write(store.join("in/bad.ndjson.gz"), b"\x1f\x8b\x08\x00not gzip").unwrap();
    // The output folder cannot be made: a file is in its place.
    std::fs::write(dir.path().join("blocked"), "").unwrap();
    let config = |out: &str| {
        format!(
            "name = \"counts\"\n[input]\nformat = \"ndjson\"\nschema = {{ n = \"int64\" }}\n[output]\nuri = \"{out}\"\nformat = \"ndjson\"\n"
        )
    };
    let ok_cfg = dir.path().join("ok.toml");
    std::fs::write(
        &ok_cfg,
        config(&dir.path().join("out").display().to_string()),
    )
    .unwrap();
    let blocked_cfg = dir.path().join("blocked.toml");
    std::fs::write(
        &blocked_cfg,
        config(&dir.path().join("blocked/out").display().to_string()),
    )
    .unwrap();
    let events = dir.path().join("events");
    std::fs::create_dir_all(&events).unwrap();
    let uploads = sluice_pipeline::event::s3_event(vec![
        sluice_pipeline::event::s3_record("in", "good.ndjson", 8, "e1"),
        sluice_pipeline::event::s3_record("in", "bad.ndjson.gz", 12, "e2"),
    ]);
    std::fs::write(events.join("a-uploads.json"), uploads.to_string()).unwrap();
    let lines: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| ("k".to_string(), format!("{{\"n\":{i}}}").into_bytes()))
        .collect();
    let kinesis = sluice_pipeline::event::kinesis_event("s", &lines);
    std::fs::write(events.join("b-kinesis.json"), kinesis.to_string()).unwrap();
    let run = |cfg: &std::path::Path, json: bool| {
        let mut args = vec![
            "replay",
            cfg.to_str().unwrap(),
            events.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ];
        if json {
            args.push("--json");
        }
        sluice(&args)
    };
    let o = run(&ok_cfg, true);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let s = summaries(&o);
    assert_eq!(
        (
            s[0]["objects"].as_u64(),
            s[0]["failed"].as_u64(),
            s[0]["delivered"].as_u64()
        ),
        (Some(1), Some(1), Some(0)),
        "{}",
        s[0]
    );
    assert_eq!(
        (s[1]["delivered"].as_u64(), s[1]["records_in"].as_u64()),
        (Some(3), Some(3))
    );
    let o = run(&ok_cfg, false);
    let text = stdout(&o);
    assert!(
        text.contains("s3 · 1 object · 1 failed · 0 skipped"),
        "{text}"
    );
    assert!(text.contains("2 events replayed, 1 failed"), "{text}");
    // The batch's output cannot be written: nothing in, but 3 records delivered, and reported.
    let o = run(&blocked_cfg, true);
    let s = summaries(&o);
    assert_eq!(
        (s[1]["delivered"].as_u64(), s[1]["records_in"].as_u64()),
        (Some(3), Some(0)),
        "{}",
        s[1]
    );
    assert_eq!(
        s[1]["batch_item_failures"].as_array().map(Vec::len),
        Some(1),
        "{}",
        s[1]
    );
    let o = run(&blocked_cfg, false);
    assert!(
        stdout(&o).contains("kinesis · 0 objects · 0 skipped · 3 records delivered · 0 in"),
        "{}",
        stdout(&o)
    );
}

/// `sluice bench` of a table output, committed directly, through a queue, and with Glue as
/// its catalog: every invocation writes into a new table (the one before is dropped with the
/// scratch folder's files; the second invocation used to find the first's table in the
/// catalog and its files gone), the catalog is a SQLite file of the bench's whatever the config
/// names (no Glue call: none can be made here), and a queue's messages are sized and priced
/// (SQS in the bill), never sent: the queue named does not resolve, so a send would fail.
#[test]
fn bench_runs_table_outputs_offline_and_sends_no_commit_message() {
    let example =
        std::fs::read_to_string(root().join("examples/clickstream-table/pipeline.toml")).unwrap();
    let queued = example.replace(
        "partition = [\"identity(day)\"]",
        "partition = [\"identity(day)\"]\ncommit = \"queue\"\nqueue = \"https://sqs.invalid/000000000000/commits\"",
    );
    let glue = example.replace("catalog = \"sqlite:catalog.db\"", "catalog = \"glue\"");
    assert!(queued.contains("commit = \"queue\"") && glue.contains("\"glue\""));
    let events = root().join("examples/clickstream/events");
    let store = root().join("fixtures/objects");
    for (name, config) in [("direct", &example), ("queue", &queued), ("glue", &glue)] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("pipeline.toml");
        std::fs::write(&cfg, config).unwrap();
        let o = sluice(&[
            "bench",
            cfg.to_str().unwrap(),
            events.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
            "--iterations",
            "3",
            "--warmup",
            "1",
            "--cold-starts",
            "0",
            "--json",
        ]);
        let report: serde_json::Value = serde_json::from_str(&stdout(&o))
            .unwrap_or_else(|e| panic!("{name}: {e}: {}{}", stdout(&o), stderr(&o)));
        assert!(o.status.success(), "{name}: {report}");
        assert_eq!(
            (report["invocations"].as_u64(), report["failed"].as_u64()),
            (Some(3), Some(0)),
            "{name}"
        );
        assert_eq!(report["records_out_per_invocation"], 99.0, "{name}");
        let requests = &report["bill"]["requests"];
        let (sqs, catalog) = (requests["sqs"].as_u64(), requests["catalog"].as_u64());
        match name {
            // One catalog request per queued invocation (loading the table), not a commit's two.
            "queue" => assert!(sqs >= Some(3) && catalog == Some(3), "{requests}"),
            _ => assert!(sqs == Some(0) && catalog == Some(6), "{name}: {requests}"),
        }
    }
}
