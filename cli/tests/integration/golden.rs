//! Golden replays: every event in `fixtures/events/` goes through the handler with the clickstream
//! example pipeline, and every `examples/<name>/events/*.json` through its own example's pipeline;
//! the summary, the Lambda answer and every written file (Parquet read back as rows; what Firehose
//! would deliver of a transformation's answer, as replay writes it) must equal
//! `fixtures/golden/<case>.txt`. `UPDATE_GOLDEN=1` rewrites the expectations.

use std::path::Path;
use std::sync::Arc;

use sluice_pipeline::Pipeline;
use sluice_pipeline::store::FsStore;

use crate::support::*;

async fn render(config: &Path, event_path: &Path) -> String {
    let pipeline = Pipeline::load(config).expect("example config");
    let out = tempfile::tempdir().expect("tempdir");
    let handler = pipeline.handler(
        Arc::new(FsStore::new(fixtures().join("objects"))),
        Arc::new(FsStore::new(out.path())),
    );
    let event: serde_json::Value =
        serde_json::from_slice(&std::fs::read(event_path).expect("event")).expect("json");
    let (mut summary, sqs) = handler.handle(&event).await.into_parts();
    // What Firehose would deliver of a transformation's answer, as replay writes it.
    sluice_pipeline::replay::deliver_firehose(&handler, &event, &mut summary).await;
    summary.duration_ms = 0;
    summary.commit_ms = summary.commit_ms.map(|_| 0.0);
    let prefix = format!("{}/", out.path().display());
    summary.outputs = summary
        .outputs
        .iter()
        .map(|o| o.replace(&prefix, "OUT/"))
        .collect();
    let mut text = serde_json::to_string_pretty(&summary).expect("summary");
    text.push_str(&format!(
        "\nlambda response: {}\n",
        summary.lambda_response(sqs)
    ));
    // A missing object's reason names the file the store looked for, under this checkout.
    let text = text.replace(
        &format!("{}/", fixtures().join("objects").display()),
        "FIXTURES/objects/",
    );
    let mut text = text;
    // An Iceberg table's metadata (and its SQLite catalog) holds snapshot ids, times and UUIDs:
    // counted here, read back by pyiceberg in scripts/check_table.py. Its data files are rows.
    let (meta, files): (Vec<_>, Vec<_>) = files(out.path()).into_iter().partition(|f| {
        f.components().any(|c| c.as_os_str() == "metadata") || f.ends_with("catalog.db")
    });
    if !meta.is_empty() {
        text.push_str(&format!(
            "
== table metadata and catalog: {} files
",
            meta.len()
        ));
    }
    for f in files {
        let bytes = std::fs::read(out.path().join(&f)).expect("read output");
        text.push_str(&format!("\n== OUT/{}\n", f.display()));
        let lines = if f.extension().is_some_and(|e| e == "parquet") {
            parquet_rows(&bytes)
        } else {
            String::from_utf8_lossy(&bytes)
                .lines()
                .map(str::to_string)
                .collect()
        };
        for l in lines {
            text.push_str(&l);
            text.push('\n');
        }
    }
    text
}

#[tokio::test]
async fn every_fixture_event_matches_its_golden_output() {
    // (case name, config, event)
    let mut cases = Vec::new();
    for e in std::fs::read_dir(fixtures().join("events")).expect("fixtures/events") {
        let ev = e.expect("entry").path();
        let name = ev.file_stem().expect("name").to_string_lossy().into_owned();
        cases.push((name, example_config(), ev));
    }
    for e in std::fs::read_dir(root().join("examples")).expect("examples") {
        let dir = e.expect("entry").path();
        let (cfg, evs) = (dir.join("pipeline.toml"), dir.join("events"));
        if !cfg.exists() || !evs.is_dir() {
            continue;
        }
        for ev in std::fs::read_dir(&evs).expect("events") {
            let ev = ev.expect("entry").path();
            let name = format!(
                "example-{}-{}",
                dir.file_name().expect("dir").to_string_lossy(),
                ev.file_stem().expect("name").to_string_lossy()
            );
            cases.push((name, cfg.clone(), ev));
        }
    }
    cases.sort();
    assert!(cases.len() >= 18, "{} cases", cases.len());
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let golden_dir = fixtures().join("golden");
    let mut mismatches = Vec::new();
    for (name, cfg, ev) in &cases {
        let got = render(cfg, ev).await;
        let path = golden_dir.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&golden_dir).expect("golden dir");
            std::fs::write(&path, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1", path.display()));
        if want != got {
            let actual = golden_dir.join("actual");
            std::fs::create_dir_all(&actual).expect("actual dir");
            std::fs::write(actual.join(format!("{name}.txt")), &got).expect("write actual");
            mismatches.push(name);
        }
    }
    assert!(
        mismatches.is_empty(),
        "golden mismatches (see fixtures/golden/actual/): {mismatches:?}"
    );
}
