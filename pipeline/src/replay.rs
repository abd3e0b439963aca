//! Local replay: run captured events through the very handler the Lambda runs.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::handler::{Handler, Summary};

/// One event to replay, with the name it is reported under.
#[derive(Debug, Clone)]
pub struct NamedEvent {
    /// File, or `file:line` for `.jsonl`.
    pub name: String,
    /// The payload, or why it could not be read.
    pub event: Result<Value, String>,
}

/// Expand event arguments: files, folders of `.json`/`.jsonl` files (sorted), and `.jsonl` files
/// (one event per line).
pub fn collect(args: &[PathBuf]) -> Result<Vec<NamedEvent>, String> {
    let mut out = Vec::new();
    for a in args {
        if a.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(a)
                .map_err(|e| format!("{}: {e}", a.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("json" | "jsonl")
                        )
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(format!(
                    "{}: no .json or .jsonl event files in this folder",
                    a.display()
                ));
            }
            for f in files {
                read_file(&f, &mut out)?;
            }
        } else {
            read_file(a, &mut out)?;
        }
    }
    Ok(out)
}

fn read_file(path: &Path, out: &mut Vec<NamedEvent>) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read the event file: {e}", path.display()))?;
    let name = path.display().to_string();
    if path.extension().and_then(|e| e.to_str()) == Some("jsonl") {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            out.push(NamedEvent {
                name: format!("{name}:{}", i + 1),
                event: serde_json::from_str(line).map_err(|e| format!("not JSON: {e}")),
            });
        }
    } else {
        out.push(NamedEvent {
            name,
            event: serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}")),
        });
    }
    Ok(())
}

/// Replay events one after another, collecting the summaries.
pub async fn replay(handler: &Handler, events: Vec<NamedEvent>) -> Vec<Summary> {
    let mut out = Vec::with_capacity(events.len());
    replay_each(handler, events, |_, _, s| out.push(s)).await;
    out
}

/// Replay events one after another, handing each summary to `done(index, total, summary)` as soon
/// as its event finishes (so long runs report as they go).
pub async fn replay_each(
    handler: &Handler,
    events: Vec<NamedEvent>,
    mut done: impl FnMut(usize, usize, Summary),
) {
    let total = events.len();
    for (i, e) in events.into_iter().enumerate() {
        let summary = match e.event {
            Ok(v) => {
                let (mut s, _) = handler.handle(&v).await;
                s.event = e.name;
                s
            }
            Err(err) => Summary {
                event: e.name,
                trigger: "unknown".into(),
                error: Some(err),
                ..Summary::default()
            },
        };
        done(i, total, summary);
    }
}

/// A human-readable line for one summary.
pub fn describe(s: &Summary) -> String {
    let mut line = format!(
        "{}: {} · {} object{} · {} skipped · {} in → {} out · {} rejected · {} ms",
        s.event,
        s.trigger,
        s.objects,
        if s.objects == 1 { "" } else { "s" },
        s.skipped,
        s.records_in,
        s.records_out,
        s.rejected,
        s.duration_ms
    );
    for o in &s.outputs {
        line.push_str(&format!("\n  wrote {o}"));
    }
    for k in &s.skips {
        line.push_str(&format!("\n  skipped {}: {}", k.source, k.reason));
    }
    if !s.batch_item_failures.is_empty() {
        line.push_str(&format!(
            "\n  batch item failures: {}",
            s.batch_item_failures.join(", ")
        ));
    }
    if let Some(e) = &s.error {
        line.push_str(&format!("\n  error: {e}"));
    }
    line
}
