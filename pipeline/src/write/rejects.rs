//! The rejects file: one NDJSON line per record refused, with its reason and where it came from.

use std::sync::Arc;

use bytes::Bytes;
use sluice_processors::Reject;

use super::resolve;
use crate::Error;
use crate::config::Destination;
use crate::store::{ObjectMeta, ObjectStore, ObjectWriter, Staged};

/// The extension of a rejects file, which no output file has.
pub const REJECTS_EXT: &str = "rejects.ndjson";

/// One line of a rejects file: `{source, position, reason, raw}`; bytes that are not UTF-8 are
/// given as `raw_base64` instead of `raw`.
#[derive(serde::Serialize)]
struct RejectLine<'a> {
    source: &'a str,
    position: Position,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
    /// A stage's reject traced to its input line: the row's values as that stage saw them.
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<serde_json::Value>,
}

/// `{"line": n}` for a record of the source; for a row a stage refused, `{"line": n, "stage":
/// "select"}` with the source line it was decoded from, or `{"stage": "select", "row": n}` (the
/// nth row that stage was given) when it has none (Parquet, documents, after an aggregate).
#[derive(serde::Serialize)]
struct Position {
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stage: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    row: Option<u64>,
}

/// Rejected records of one source object, written as NDJSON when the first one arrives.
pub struct Rejects {
    dest: Option<(Arc<dyn ObjectStore>, String, String)>,
    source: String,
    base: String,
    /// The rejects file being written, and its key.
    sink: Option<(Box<dyn ObjectWriter>, String)>,
    /// How many were recorded.
    pub count: u64,
}

impl Rejects {
    /// Rejects of `source` (its `s3://` URI), named after `base`.
    pub fn new(
        dest: Option<&Destination>,
        object_store: &Arc<dyn ObjectStore>,
        source: String,
        base: String,
    ) -> Self {
        Self {
            dest: dest.and_then(|d| resolve(d, object_store)),
            source,
            base,
            sink: None,
            count: 0,
        }
    }

    /// Record some rejects.
    pub async fn write(&mut self, rejects: &[Reject]) -> Result<(), Error> {
        if rejects.is_empty() {
            return Ok(());
        }
        self.count += rejects.len() as u64;
        let Some((store, bucket, prefix)) = &self.dest else {
            for r in rejects.iter().take(3) {
                tracing::warn!(source = %self.source, line = r.line.unwrap_or(r.position), stage = r.stage.unwrap_or("decode"), reason = %r.reason, "Rejected a record.");
            }
            return Ok(());
        };
        if self.sink.is_none() {
            // `.rejects.ndjson`: never the name of an output file (`{base}.parquet`,
            // `{base}.ndjson`, `{base}.ndjson.gz`), wherever the two locations are.
            let key = format!("{prefix}{}.{REJECTS_EXT}", self.base);
            let w = store
                .create(bucket, &key, ObjectMeta::typed("application/x-ndjson"))
                .await?;
            self.sink = Some((w, key));
        }
        let mut buf = Vec::new();
        for r in rejects {
            let text = std::str::from_utf8(&r.raw).ok();
            let line = RejectLine {
                source: &self.source,
                position: match (r.stage, r.line) {
                    (None, _) => Position {
                        line: Some(r.position),
                        stage: None,
                        row: None,
                    },
                    // Traced to the input line it was decoded from.
                    (Some(stage), Some(line)) => Position {
                        line: Some(line),
                        stage: Some(stage),
                        row: None,
                    },
                    (Some(stage), None) => Position {
                        line: None,
                        stage: Some(stage),
                        row: Some(r.position),
                    },
                },
                reason: &r.reason,
                raw: text,
                raw_base64: match text {
                    Some(_) => None,
                    None => {
                        use base64::Engine;
                        Some(base64::engine::general_purpose::STANDARD.encode(&r.raw))
                    }
                },
                truncated: r.truncated,
                // An object (cut at 4 KiB it is no longer one: then its text).
                values: r.values.as_ref().map(|v| {
                    serde_json::from_slice(v).unwrap_or_else(|_| {
                        serde_json::Value::String(String::from_utf8_lossy(v).into_owned())
                    })
                }),
            };
            serde_json::to_writer(&mut buf, &line).map_err(|e| Error::Internal(e.to_string()))?;
            buf.push(b'\n');
        }
        if let Some((w, _)) = self.sink.as_mut() {
            w.write(Bytes::from(buf)).await?;
        }
        Ok(())
    }

    /// The rejects file written and sealed, not yet visible (published with the unit's outputs);
    /// `None` when there were no rejects to write.
    pub async fn stage(mut self) -> Result<Option<Staged>, Error> {
        let (Some((w, key)), Some((store, bucket, _))) = (self.sink.take(), self.dest.as_ref())
        else {
            return Ok(None);
        };
        Staged::seal(w, store.clone(), bucket, &key).await.map(Some)
    }

    /// Drop the rejects file without making it visible.
    pub async fn abort(mut self) {
        if let Some((mut w, _)) = self.sink.take() {
            w.abort().await;
        }
    }
}
