//! `sluice table show` and `sluice table orphans`: a table as its catalog has it (schema,
//! partition spec, snapshots with the sources each holds, files and rows), and the files under
//! its folder that no snapshot or metadata refers to.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use iceberg::spec::ManifestList;
use serde::Serialize;

use super::{INVOCATION_PROPERTY, PIPELINE_PROPERTY, SOURCES_PROPERTY, Target};
use crate::Error;
use crate::config::CatalogSpec;

/// A table as its catalog has it.
#[derive(Debug, Serialize)]
pub struct TableReport {
    /// `namespace.name`.
    pub table: String,
    /// The catalog (`sqlite:…`).
    pub catalog: String,
    /// False when the table has not been created yet (nothing committed).
    pub exists: bool,
    /// The table's root URI.
    pub location: Option<String>,
    /// The current schema.
    pub columns: Vec<Column>,
    /// The default partition spec: `identity(day)`, `bucket[16](user_id)`.
    pub partition: Vec<String>,
    /// Every snapshot, oldest first.
    pub snapshots: Vec<Snapshot>,
    /// Data files in the current snapshot.
    pub files: u64,
    /// Rows in the current snapshot.
    pub rows: u64,
    /// `commit = "queue"`: the messages waiting for the committer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueDepth>,
}

/// Files queued for the committer and not committed yet, as the queue's depth tells them.
#[derive(Debug, Serialize)]
pub struct QueueDepth {
    /// The queue, as configured.
    pub queue: String,
    /// Messages waiting (each one invocation's files; SQS's approximate count).
    pub waiting: Option<u64>,
    /// Messages being committed now (received by the committer, not yet deleted).
    pub committing: Option<u64>,
    /// Why the depth could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One column of a table's schema.
#[derive(Debug, Serialize)]
pub struct Column {
    /// The field id.
    pub id: i32,
    /// Its name.
    pub name: String,
    /// Its Iceberg type.
    #[serde(rename = "type")]
    pub ty: String,
    /// Whether it may not be null.
    pub required: bool,
}

/// One snapshot.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// Its id.
    pub id: i64,
    /// When it was committed (RFC 3339, UTC).
    pub committed_at: String,
    /// The same, in milliseconds since the epoch.
    pub timestamp_ms: u64,
    /// `append`, `overwrite`…
    pub operation: String,
    /// The pipeline that committed it, when Sluice did.
    pub pipeline: Option<String>,
    /// The invocation that committed it (Lambda's request id), when Sluice did.
    pub invocation: Option<String>,
    /// The sources its rows came from, as recorded by Sluice.
    pub sources: Vec<String>,
    /// A committer's snapshot: the writers' invocations whose queued files it holds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub writers: Vec<String>,
    /// Data files and rows it added.
    pub added_files: u64,
    /// Rows it added.
    pub added_rows: u64,
}

/// A file under the table's folder that the table does not refer to.
#[derive(Debug, Serialize)]
pub struct Orphan {
    /// Its URI.
    pub uri: String,
    /// Seconds since it was last written, when the store tells.
    pub age_s: Option<u64>,
    /// Whether it was deleted.
    pub deleted: bool,
    /// Why it was kept whatever its age: a commit message may still need it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<&'static str>,
}

/// How long SQS keeps a message at most (its retention, and a dead-letter queue's): a commit
/// message may name a data file or a units object until then.
const SQS_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);

fn count(summary: &iceberg::spec::Summary, key: &str) -> u64 {
    summary
        .additional_properties
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Target {
    /// The table as its catalog has it now.
    pub async fn report(&self) -> Result<TableReport, Error> {
        let catalog = self.catalog().await?;
        let mut report = TableReport {
            table: self.name(),
            catalog: self.spec.catalog.to_string(),
            exists: false,
            location: None,
            columns: Vec::new(),
            partition: Vec::new(),
            snapshots: Vec::new(),
            files: 0,
            rows: 0,
            queue: None,
        };
        if let (crate::config::CommitMode::Queue(q), Some(depth)) =
            (&self.spec.commit, self.queue_depth().await)
        {
            report.queue = Some(match depth {
                Ok((waiting, committing)) => QueueDepth {
                    queue: q.clone(),
                    waiting: Some(waiting),
                    committing: Some(committing),
                    error: None,
                },
                Err(e) => QueueDepth {
                    queue: q.clone(),
                    waiting: None,
                    committing: None,
                    error: Some(e.to_string()),
                },
            });
        }
        let Some(table) = self.load(&catalog).await? else {
            return Ok(report);
        };
        let meta = table.metadata();
        let schema = meta.current_schema();
        report.exists = true;
        report.location = Some(meta.location().to_string());
        report.columns = schema
            .as_struct()
            .fields()
            .iter()
            .map(|f| Column {
                id: f.id,
                name: f.name.clone(),
                ty: f.field_type.to_string(),
                required: f.required,
            })
            .collect();
        report.partition = meta
            .default_partition_spec()
            .fields()
            .iter()
            .map(|p| {
                let column = schema
                    .name_by_field_id(p.source_id)
                    .unwrap_or("?")
                    .to_string();
                format!("{}({column})", p.transform)
            })
            .collect();
        let mut snaps: Vec<_> = meta.snapshots().collect();
        snaps.sort_by_key(|s| (s.timestamp_ms(), s.snapshot_id()));
        for s in snaps {
            let summary = s.summary();
            let props = &summary.additional_properties;
            report.snapshots.push(Snapshot {
                id: s.snapshot_id(),
                committed_at: chrono::DateTime::from_timestamp_millis(s.timestamp_ms())
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                    .unwrap_or_default(),
                timestamp_ms: u64::try_from(s.timestamp_ms()).unwrap_or(0),
                writers: props
                    .get(super::queue::WRITERS_PROPERTY)
                    .and_then(|l| serde_json::from_str(l).ok())
                    .unwrap_or_default(),
                operation: summary.operation.as_str().to_string(),
                pipeline: props.get(PIPELINE_PROPERTY).cloned(),
                invocation: props.get(INVOCATION_PROPERTY).cloned(),
                sources: props
                    .get(SOURCES_PROPERTY)
                    .and_then(|l| serde_json::from_str(l).ok())
                    .unwrap_or_default(),
                added_files: count(summary, "added-data-files"),
                added_rows: count(summary, "added-records"),
            });
        }
        if let Some(s) = meta.current_snapshot() {
            report.files = count(s.summary(), "total-data-files");
            report.rows = count(s.summary(), "total-records");
        }
        Ok(report)
    }

    /// The files under the table's folder that neither its metadata nor any of its snapshots
    /// refers to (written by an invocation whose commit failed, or being written now), with
    /// their age; with `delete`, those older than `older_than` are deleted.
    pub async fn orphans(&self, older_than: Duration, delete: bool) -> Result<Vec<Orphan>, Error> {
        let mut io = self.io()?.clone();
        if matches!(self.spec.catalog, CatalogSpec::Rest(_)) {
            io = io.any_bucket();
        }
        let catalog = self.catalog().await?;
        let mut referenced: HashSet<String> = HashSet::new();
        // The table's folder: where its metadata says it is (a REST catalog chooses), else
        // where the pipeline would create it.
        let mut place = (io.bucket().to_string(), format!("{}/", self.dir));
        let mut already = std::collections::HashMap::new();
        if let Some(table) = self.load(&catalog).await? {
            already = super::committed_sources(&table);
            let meta = table.metadata();
            if let Ok((bucket, key)) = io.locate(meta.location()) {
                place = (
                    bucket.to_string(),
                    format!("{}/", key.trim_end_matches('/')),
                );
            }
            let file_io = table.file_io();
            let fail = |what: &str, e: iceberg::Error| self.error(what, e);
            if let Some(loc) = table.metadata_location() {
                referenced.insert(loc.to_string());
            }
            for m in meta.metadata_log() {
                referenced.insert(m.metadata_file.clone());
            }
            for s in meta.snapshots() {
                referenced.insert(s.manifest_list().to_string());
                let bytes = file_io
                    .new_input(s.manifest_list())
                    .map_err(|e| fail("reading a manifest list", e))?
                    .read()
                    .await
                    .map_err(|e| fail("reading a manifest list", e))?;
                let list = ManifestList::parse_with_version(&bytes, meta.format_version())
                    .map_err(|e| fail("reading a manifest list", e))?;
                for mf in list.entries() {
                    referenced.insert(mf.manifest_path.clone());
                    let manifest = mf
                        .load_manifest(file_io)
                        .await
                        .map_err(|e| fail("reading a manifest", e))?;
                    for entry in manifest.entries() {
                        referenced.insert(entry.data_file().file_path().to_string());
                    }
                }
            }
        }
        // As keys: catalogs and readers write `file:/abs` or `file:///abs` for one file.
        let (bucket, prefix) = place;
        let referenced: HashSet<&str> = referenced
            .iter()
            .filter_map(|r| io.locate(r).ok())
            .filter(|(b, _)| *b == bucket)
            .map(|(_, k)| k)
            .collect();
        let store = io.store().map_err(|e| Error::Internal(e.to_string()))?;
        let now = SystemTime::now();
        let mut out = Vec::new();
        let ranges = super::stream_ranges(&already);
        for (key, when) in store.list_dated(&bucket, &prefix).await? {
            if referenced.contains(key.as_str()) {
                continue;
            }
            let uri = io.uri_in(&bucket, &key);
            let age = when.and_then(|w| now.duration_since(w).ok());
            // With a commit queue, what is not in the table yet may be in a message still on
            // its way: a Kinesis writer's claim goes once the table holds its records (until
            // then a redelivery needs it, to leave them out), any other file (data files, a
            // message's units) once no message can still name it.
            let kept = match super::queue::claimed_range(&key) {
                Some((shard, first, last)) => {
                    let source = super::stream_source(shard, first, last);
                    super::overlapping(&already, &ranges, &source)
                        .is_none()
                        .then_some("a claim on Kinesis records the table does not hold yet")
                }
                None if self.queued() && age.is_none_or(|a| a < SQS_RETENTION) => {
                    Some("a queued message may still name it (SQS keeps a message up to 14 days)")
                }
                None => None,
            };
            let deleted = if delete && kept.is_none() && age.is_some_and(|a| a >= older_than) {
                store.delete(&bucket, &key).await?;
                true
            } else {
                false
            };
            out.push(Orphan {
                uri,
                age_s: age.map(|a| a.as_secs()),
                deleted,
                kept,
            });
        }
        Ok(out)
    }
}
