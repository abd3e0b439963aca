//! `[output] commit = "queue"`: an invocation writes its data files, then sends one message
//! describing them (their paths, sizes, row counts, column statistics and partition values, and
//! the sources each unit's rows came from) to an SQS queue; the committer — the same function,
//! triggered by that queue — folds a batch of messages into one snapshot.
//!
//! Exactly once, by source identity, as direct commits are: a unit whose sources a snapshot
//! already holds (a redelivered writer's second message, a committer killed after its commit and
//! before its answer) is dropped and reported; a unit that shares only some of its sources with
//! the table (a Kinesis range that overlaps a committed one, files gathered over objects that
//! were committed apart) can be neither committed nor dropped without losing or doubling rows:
//! its message is refused with the reason, and returns until the queue's redrive policy moves
//! it to the dead-letter queue. When the commit itself fails, every message of the batch is
//! reported as a batch item failure, so all of them return.
//!
//! A Kinesis writer claims its range before it sends ([`Claim`]): a later delivery of the same
//! records leaves them out and sends the claim's message again, so whatever became of a send,
//! no second message crosses the first.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use iceberg::spec::{DataFile, TableMetadata};
use serde::{Deserialize, Serialize};

use super::{Plan, Session, Target, Unit, committed_sources, overlapping, stream_ranges};
use crate::Error;

/// A commit message's `sluice` field: what it is, and the version of its layout.
pub const KIND: &str = "commit/1";

/// A body past this many bytes keeps its units in an object beside the table's metadata, and
/// the message points to it (SQS takes up to 256 KiB; the rest is room for attributes).
const MAX_BODY: usize = 240 << 10;

/// The snapshot summary property listing the writers' invocations whose messages a
/// committer's snapshot holds.
pub const WRITERS_PROPERTY: &str = "sluice.writers";

/// One invocation's data files, as the committer receives them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    /// [`KIND`].
    pub sluice: String,
    /// The table, `namespace.name`.
    pub table: String,
    /// The pipeline that wrote the files.
    pub pipeline: String,
    /// The writer's invocation (Lambda's request id), when known.
    #[serde(default)]
    pub invocation: Option<String>,
    /// When the message was sent, in milliseconds since the epoch (time to visibility).
    pub sent_ms: u64,
    /// The table schema and partition spec the files were written with.
    pub schema_id: i32,
    /// The partition spec the files' partition values are of.
    pub spec_id: i32,
    /// Every unit's sources: a message whose sources are all committed is dropped without
    /// reading `units_at`. Empty when even they do not fit: `units_at` names them then.
    pub sources: Vec<String>,
    /// The units, when they fit in the message.
    #[serde(default)]
    pub units: Vec<QueuedUnit>,
    /// Otherwise the object (a JSON array of units, or the whole message when it is a
    /// claim) that holds them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units_at: Option<String>,
    /// A Kinesis writer's claim: the object holding this whole message, written before it was
    /// sent, named by shard and range ([`Claim`]); the committer removes it once the message is
    /// committed or dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
}

/// Where a table's claims are, under its location: `{CLAIMS}/{shard}/{first}..{last}.json`.
const CLAIMS: &str = "metadata/sluice-queued-kinesis";

/// A Kinesis writer's claim on the records of one shard from `first` to `last`: the object
/// holding the message that queues them, written before the message is sent. A later delivery
/// of those records (the send failed, or its answer was lost, and Lambda's retry brought the
/// same records, half of them, or more) leaves them out and sends the claim's message again,
/// so the committer never sees two messages whose files share records: a range that crossed a
/// queued one could be neither committed (doubling the shared records) nor dropped (losing
/// the others).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Claim {
    pub first: String,
    pub last: String,
    /// The object's URI.
    pub uri: String,
}

impl Claim {
    /// Whether record `seq` of the claim's shard is one it holds.
    pub(crate) fn covers(&self, seq: &str) -> bool {
        use std::cmp::Ordering::Greater;
        super::seq_cmp(&self.first, seq) != Greater && super::seq_cmp(seq, &self.last) != Greater
    }

    /// Whether it holds any record from `first` to `last`.
    pub(crate) fn overlaps(&self, first: &str, last: &str) -> bool {
        use std::cmp::Ordering::Greater;
        super::seq_cmp(&self.first, last) != Greater && super::seq_cmp(first, &self.last) != Greater
    }
}

/// The claim object of a message under the table at `location`, when its sources are Kinesis
/// ranges of one shard (an S3 object is its own identity: a redelivery names it whole).
fn claim_path(location: &str, sources: &[String]) -> Option<String> {
    use std::cmp::Ordering::{Greater, Less};
    let mut range: Option<(&str, &str, &str)> = None;
    for s in sources {
        let (shard, first, last) = super::stream_range(s)?;
        range = Some(match range {
            None => (shard, first, last),
            Some((sh, _, _)) if sh != shard => return None,
            Some((sh, lo, hi)) => (
                sh,
                if super::seq_cmp(first, lo) == Less {
                    first
                } else {
                    lo
                },
                if super::seq_cmp(last, hi) == Greater {
                    last
                } else {
                    hi
                },
            ),
        });
    }
    let (shard, first, last) = range?;
    // Names from the event go into a key: a shard id and sequence numbers as Kinesis makes
    // them, or no claim (a key of `..` or `/` could land outside the claims' folder).
    let shard_ok = !shard.is_empty()
        && shard.len() <= 128
        && shard
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !shard_ok || !sequence_like(first) || !sequence_like(last) {
        return None;
    }
    Some(format!(
        "{}/{CLAIMS}/{shard}/{first}..{last}.json",
        location.trim_end_matches('/')
    ))
}

/// The shard and range a claim's key (`…/metadata/sluice-queued-kinesis/SHARD/FIRST..LAST.json`)
/// names.
pub(crate) fn claimed_range(key: &str) -> Option<(&str, &str, &str)> {
    let (_, rest) = key.split_once(&format!("/{CLAIMS}/"))?;
    let (shard, name) = rest.split_once('/')?;
    let (first, last) = name.strip_suffix(".json")?.split_once("..")?;
    (sequence_like(first) && sequence_like(last)).then_some((shard, first, last))
}

/// Whether `s` reads as a Kinesis sequence number: decimal digits, at most 128.
fn sequence_like(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The claim a key under a shard's claims folder (`prefix`) names.
fn claim_of(prefix: &str, key: &str) -> Option<(String, String)> {
    let name = key.strip_prefix(prefix)?.strip_suffix(".json")?;
    let (first, last) = name.split_once("..")?;
    (sequence_like(first) && sequence_like(last)).then(|| (first.to_string(), last.to_string()))
}

/// What an object beside the metadata holds: a message's units, or (a claim) the message.
#[derive(Deserialize)]
#[serde(untagged)]
enum HeldUnits {
    Units(Vec<QueuedUnit>),
    Message(Box<Message>),
}

/// One unit of work's files and sources, in a message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueuedUnit {
    /// As snapshots record them.
    pub sources: Vec<String>,
    /// The rows its files hold.
    pub rows: u64,
    /// Each data file in Iceberg's JSON (`serialize_data_file_to_json`).
    pub files: Vec<serde_json::Value>,
}

/// Whether a message body is a commit message (so an SQS batch of them is the committer's).
pub fn is_commit(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Marker<'a> {
        #[serde(borrow)]
        sluice: Option<&'a str>,
    }
    serde_json::from_slice::<Marker<'_>>(body)
        .ok()
        .and_then(|m| m.sluice)
        .is_some_and(|k| k.starts_with("commit/"))
}

impl Message {
    /// A message's body, read: the error says what is wrong with it.
    pub fn parse(body: &[u8]) -> Result<Message, String> {
        let m: Message = serde_json::from_slice(body)
            .map_err(|e| format!("not a Sluice commit message: {e}"))?;
        if m.sluice != KIND {
            return Err(format!(
                "a commit message of layout `{}`, which this sluice does not read (it reads {KIND})",
                m.sluice
            ));
        }
        Ok(m)
    }
}

/// The SQS queue of commit messages, its client made on first use.
pub(crate) struct Queue {
    /// As configured: a URL or a name.
    name: String,
    client: crate::aws::LazyClient<aws_sdk_sqs::Client>,
    url: tokio::sync::OnceCell<String>,
    /// `sluice bench`: messages are taken (sized, priced) and never sent, as a bench takes
    /// Kinesis records: a real committer must not be fed a scratch folder's files.
    taken: bool,
}

fn make_client(shared: &aws_config::SdkConfig, _: Option<&str>) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(shared)
}

impl Queue {
    pub(crate) fn new(name: &str, endpoint: Option<&str>) -> Self {
        Queue {
            name: name.to_string(),
            client: crate::aws::LazyClient::lazy(endpoint, make_client),
            url: Default::default(),
            taken: false,
        }
    }

    /// Whether its messages are taken instead of sent.
    pub(crate) fn is_taken(&self) -> bool {
        self.taken
    }

    /// This queue, its messages taken instead of sent ([`Queue::taken`]).
    pub(crate) fn taking(self) -> Self {
        Queue {
            taken: true,
            ..self
        }
    }

    fn error(&self, doing: &str, e: impl std::fmt::Display, retryable: bool) -> Error {
        Error::Store {
            location: format!("sqs queue {}", self.name),
            message: format!("{doing}: {e}"),
            retryable,
        }
    }

    /// The queue's URL: as configured, or asked of SQS by name once.
    async fn url(&self) -> Result<&str, Error> {
        self.url
            .get_or_try_init(|| async {
                if self.name.starts_with("https://") || self.name.starts_with("http://") {
                    return Ok(self.name.clone());
                }
                let client = self.client.get().await;
                let asked = client.get_queue_url().queue_name(&self.name).send().await;
                match asked {
                    Ok(out) => out.queue_url.ok_or_else(|| {
                        self.error("finding the queue", "no URL in SQS's answer", true)
                    }),
                    Err(e) => {
                        let missing = e
                            .as_service_error()
                            .is_some_and(|s| s.is_queue_does_not_exist());
                        Err(self.error(
                            "finding the queue",
                            aws_sdk_sqs::error::DisplayErrorContext(&e),
                            !missing,
                        ))
                    }
                }
            })
            .await
            .map(String::as_str)
    }

    /// Send `body`. A FIFO queue (`….fifo`) gets the table as the message group (one committer
    /// at a time per table) and a digest of the sources as the deduplication id (a writer that
    /// sends the same sources twice within five minutes is deduplicated by SQS itself).
    async fn send(&self, body: String, table: &str, sources: &[String]) -> Result<(), Error> {
        if self.taken {
            return Ok(());
        }
        let url = self.url().await?;
        let client = self.client.get().await;
        let mut req = client.send_message().queue_url(url).message_body(body);
        if url.ends_with(".fifo") {
            req = req
                .message_group_id(table)
                .message_deduplication_id(digest(sources));
        }
        crate::store::bounded(&format!("sqs queue {}", self.name), async {
            req.send().await.map(|_| ()).map_err(|e| {
                self.error(
                    "sending the commit message",
                    aws_sdk_sqs::error::DisplayErrorContext(&e),
                    true,
                )
            })
        })
        .await
    }

    /// How many messages wait in the queue (visible) and are being committed (in flight).
    pub(crate) async fn depth(&self) -> Result<(u64, u64), Error> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let url = self.url().await?;
        let out = self
            .client
            .get()
            .await
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| {
                self.error(
                    "reading the queue's depth",
                    aws_sdk_sqs::error::DisplayErrorContext(&e),
                    true,
                )
            })?;
        let get = |a: A| {
            out.attributes()
                .and_then(|m| m.get(&a))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((
            get(A::ApproximateNumberOfMessages),
            get(A::ApproximateNumberOfMessagesNotVisible),
        ))
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The message describing `pending`'s units, written with the table's `meta`.
pub(crate) fn message(
    meta: &TableMetadata,
    table: &str,
    pipeline: &str,
    invocation: Option<String>,
    units: Vec<Unit>,
) -> Result<Message, Error> {
    let fail =
        |e: iceberg::Error| Error::Data(format!("describing a data file of table {table}: {e}"));
    let schema = meta.current_schema();
    let spec = meta.default_partition_spec();
    let partition_type = spec.partition_type(schema).map_err(fail)?;
    let mut queued = Vec::with_capacity(units.len());
    let mut sources = Vec::new();
    for u in units {
        let mut files = Vec::with_capacity(u.files.len());
        for f in u.files {
            let json = iceberg::spec::serialize_data_file_to_json(
                f,
                &partition_type,
                meta.format_version(),
            )
            .map_err(fail)?;
            files.push(serde_json::from_str(&json).map_err(|e| Error::Data(e.to_string()))?);
        }
        sources.extend(u.sources.iter().cloned());
        queued.push(QueuedUnit {
            sources: u.sources,
            rows: u.rows,
            files,
        });
    }
    Ok(Message {
        sluice: KIND.to_string(),
        table: table.to_string(),
        pipeline: pipeline.to_string(),
        invocation,
        sent_ms: now_ms(),
        schema_id: meta.current_schema_id(),
        spec_id: spec.spec_id(),
        sources,
        units: queued,
        units_at: None,
        claim: None,
    })
}

/// A message's units' data files, read back against the table's `meta`.
fn data_files(
    meta: &TableMetadata,
    m: &Message,
    units: &[QueuedUnit],
) -> Result<Vec<Vec<DataFile>>, String> {
    let schema = meta
        .schema_by_id(m.schema_id)
        .ok_or_else(|| format!("the table has no schema {}", m.schema_id))?;
    let spec = meta
        .partition_spec_by_id(m.spec_id)
        .ok_or_else(|| format!("the table has no partition spec {}", m.spec_id))?;
    let partition_type = spec
        .partition_type(schema)
        .map_err(|e| format!("partition spec {}: {e}", m.spec_id))?;
    // Writers write under the table's location: a file anywhere else (another table's, which
    // expiring this table's snapshots would then delete) or a delete file is not committed.
    let home = format!("{}/", meta.location().trim_end_matches('/'));
    units
        .iter()
        .map(|u| {
            u.files
                .iter()
                .map(|f| {
                    let d = iceberg::spec::deserialize_data_file_from_json(
                        &f.to_string(),
                        m.spec_id,
                        &partition_type,
                        schema,
                    )
                    .map_err(|e| format!("a data file it names cannot be read: {e}"))?;
                    let path = d.file_path();
                    if !path.starts_with(&home) || path.contains("/../") {
                        return Err(format!(
                            "it names {path}, which is not under the table's location {home}"
                        ));
                    }
                    if d.content_type() != iceberg::spec::DataContentType::Data {
                        return Err(format!("it names {path}, which is not a data file"));
                    }
                    Ok(d)
                })
                .collect()
        })
        .collect()
}

impl Session {
    /// Send `pending` to the queue as one message (its units in an object beside the table's
    /// metadata when they do not fit). Nothing is sent for sources with no rows into a table
    /// that does not exist yet.
    ///
    /// Returns the message's size in bytes (0 when none was sent).
    pub(crate) async fn enqueue(&self, pending: super::Pending) -> Result<u64, Error> {
        let t = &self.target;
        let Some(queue) = &t.queue else {
            return Err(Error::Data(
                "the table's commits go through no queue".into(),
            ));
        };
        let Some(table) = self.table.lock().await.clone() else {
            if pending.units.iter().all(|u| u.files.is_empty()) {
                return Ok(0);
            }
            return Err(Error::Store {
                location: format!("table {}", t.name()),
                message: "the table disappeared before its files were queued".into(),
                retryable: true,
            });
        };
        let invocation = super::INVOCATION.try_with(Clone::clone).ok();
        let mut m = message(
            table.metadata(),
            &t.name(),
            &t.pipeline,
            invocation,
            pending.units,
        )?;
        let sources = m.sources.clone();
        let location = table.metadata().location();
        let write = |path: String, bytes: Vec<u8>| {
            let io = table.file_io().clone();
            async move {
                let out = io
                    .new_output(&path)
                    .map_err(|e| t.error("queuing the files", e))?;
                out.write(bytes.into())
                    .await
                    .map_err(|e| t.error("writing the queued files' description", e))
            }
        };
        // A Kinesis range is claimed before it is sent: a retry finds the claim whatever became
        // of the send.
        let claim = claim_path(location, &sources);
        if let Some(path) = &claim {
            m.claim = Some(path.clone());
            let whole = serde_json::to_vec(&m).map_err(|e| Error::Data(e.to_string()))?;
            write(path.clone(), whole).await?;
        }
        // Named after the message's sources, so a redelivered writer overwrites its own.
        let path = claim.clone().unwrap_or_else(|| {
            format!(
                "{}/metadata/sluice-queued-{}.json",
                location.trim_end_matches('/'),
                &digest(&sources)[..32]
            )
        });
        let (body, object) = fit(m, &path)?;
        if let Some(units) = object
            && claim.is_none()
        {
            write(path, units).await?;
        }
        let bytes = body.len() as u64;
        queue.send(body, &t.name(), &sources).await?;
        Ok(bytes)
    }

    /// The claims on Kinesis `shard`'s records that wait in the queue for this table (their
    /// messages not yet committed, or never sent), oldest first.
    pub(crate) async fn claims(&self, shard: &str) -> Result<Vec<Claim>, Error> {
        let Some(table) = self.table.lock().await.clone() else {
            return Ok(Vec::new());
        };
        // A shard no claim can be made for (its name cannot be a key) has none.
        if claim_path("", &[super::stream_source(shard, "0", "0")]).is_none() {
            return Ok(Vec::new());
        }
        let t = &self.target;
        let io = t.io()?;
        let folder = format!(
            "{}/{CLAIMS}/{shard}/",
            table.metadata().location().trim_end_matches('/')
        );
        let (bucket, prefix) = io
            .locate(&folder)
            .map_err(|e| t.error("finding the queued claims", e))?;
        let store = io
            .store()
            .map_err(|e| t.error("listing the queued claims", e))?;
        let mut claims: Vec<Claim> = store
            .list(bucket, prefix)
            .await?
            .into_iter()
            .filter_map(|key| {
                let (first, last) = claim_of(prefix, &key)?;
                Some(Claim {
                    first,
                    last,
                    uri: io.uri_in(bucket, &key),
                })
            })
            .collect();
        claims.sort_by(|a, b| super::seq_cmp(&a.first, &b.first));
        Ok(claims)
    }

    /// Send the message `claim` holds again (the committer drops it if it has the first).
    pub(crate) async fn resend(&self, claim: &Claim) -> Result<(), Error> {
        let t = &self.target;
        let (Some(queue), Some(table)) = (&t.queue, self.table.lock().await.clone()) else {
            return Ok(());
        };
        let read = async { table.file_io().new_input(&claim.uri)?.read().await };
        let bytes = read
            .await
            .map_err(|e| t.error(&format!("reading the claim {}", claim.uri), e))?;
        let m: Message = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Data(format!("the claim {} is not a message: {e}", claim.uri)))?;
        let sources = m.sources.clone();
        let (body, _) = fit(m, &claim.uri)?;
        queue.send(body, &t.name(), &sources).await
    }
}

/// A hex SHA-256 of `sources`, each ended by a NUL.
fn digest(sources: &[String]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for s in sources {
        h.update(s.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The body of message `m`, and what to write to the object at `path` when it does not fit in
/// [`MAX_BODY`]: its units go there (`units_at`), and when even its sources do not fit, the
/// body names none (the object's units do; see [`Message::sources`]).
fn fit(mut m: Message, path: &str) -> Result<(String, Option<Vec<u8>>), Error> {
    let json = |m: &Message| serde_json::to_string(m).map_err(|e| Error::Data(e.to_string()));
    let body = json(&m)?;
    if body.len() <= MAX_BODY {
        return Ok((body, None));
    }
    let units = serde_json::to_vec(&m.units).map_err(|e| Error::Data(e.to_string()))?;
    m.units.clear();
    m.units_at = Some(path.to_string());
    let mut body = json(&m)?;
    if body.len() > MAX_BODY {
        // Thousands of sources (an SQS batch of 10 000 uploads): the committer reads the object
        // to tell whether they are committed, so it is then kept (`sluice table orphans`
        // removes it later).
        m.sources.clear();
        body = json(&m)?;
    }
    Ok((body, Some(units)))
}

/// A commit message as the committer received it.
pub(crate) struct Queued {
    /// The SQS message id (what a batch item failure names).
    pub id: String,
    pub message: Message,
}

/// What a committer's batch came to.
#[derive(Debug, Default)]
pub(crate) struct Folded {
    /// The snapshot holding the messages committed, if one was made.
    pub snapshot: Option<i64>,
    /// The messages committed (some of their units may have been dropped): id, rows, files.
    pub committed: Vec<(String, u64, Vec<String>)>,
    /// Units dropped, their sources already in the table: the message id, and why.
    pub dropped: Vec<(String, String)>,
    /// Messages refused (returned to the queue): id, why.
    pub refused: Vec<(String, String)>,
    /// Commit attempts that conflicted and were tried again.
    pub conflicts: u32,
    /// For each committed message (up to 100), milliseconds from its sending to the commit.
    pub visible_ms: Vec<f64>,
}

/// Sources as a reason names them: all of a few, else the first two and how many.
fn named(sources: &[String]) -> String {
    match sources {
        [] => "no source".into(),
        [a] => a.clone(),
        [a, b] => format!("{a}, {b}"),
        [a, b, rest @ ..] => format!("{a}, {b} and {} more", rest.len()),
    }
}

/// How a unit stands against the table and the units taken before it.
enum Standing {
    New,
    /// Every source is held: by this snapshot (or by a message earlier in the batch: `None`).
    Held(Option<i64>),
    /// Some sources are held, some not.
    Split(String),
}

fn standing(
    unit: &QueuedUnit,
    already: &HashMap<String, i64>,
    ranges: &super::Ranges,
    taken: &HashSet<String>,
    taken_ranges: &super::Ranges,
) -> Standing {
    let mut held = 0;
    let mut snapshot = None;
    let mut first_held = None;
    for s in &unit.sources {
        let hit = overlapping(already, ranges, s)
            .map(|(c, snap)| (c, Some(snap)))
            .or_else(|| {
                taken.contains(s).then(|| (s.clone(), None)).or_else(|| {
                    overlapping(&HashMap::new(), taken_ranges, s).map(|(c, _)| (c, None))
                })
            });
        if let Some((covering, snap)) = hit {
            // A Kinesis range is held only when a committed range covers it whole.
            let whole = match (super::stream_range(s), super::stream_range(&covering)) {
                (Some((_, f, l)), Some((_, cf, cl))) => {
                    super::seq_cmp(cf, f).is_le() && super::seq_cmp(l, cl).is_le()
                }
                _ => true,
            };
            if !whole {
                return Standing::Split(format!(
                    "{s} overlaps {covering}, committed already, without lying inside it: committing it would double the records they share, dropping it would lose the rest"
                ));
            }
            held += 1;
            snapshot = snapshot.or(snap);
            first_held.get_or_insert(covering);
        }
    }
    match held {
        0 => Standing::New,
        n if n == unit.sources.len() => Standing::Held(snapshot),
        _ => Standing::Split(format!(
            "its rows came from {} sources together, of which {} ({}…) are committed already: committing it would double their rows, dropping it would lose the others'",
            unit.sources.len(),
            held,
            first_held.unwrap_or_default()
        )),
    }
}

/// A message ready to be committed: its id, itself, its units and each unit's data files.
type Ready = (String, Message, Vec<QueuedUnit>, Vec<Vec<DataFile>>);

impl Target {
    /// The committer: fold `messages` into one snapshot of the table.
    pub(crate) async fn fold(self: &Arc<Self>, messages: Vec<Queued>) -> Result<Folded, Error> {
        let catalog = self.catalog().await?;
        let Some(table) = self.load(&catalog).await? else {
            return Err(Error::Store {
                location: format!("table {}", self.name()),
                message:
                    "the table does not exist (yet): its writers create it before queuing files"
                        .into(),
                retryable: true,
            });
        };
        let mut folded = Folded::default();
        // Each message's units and their data files, read once (schemas and specs are never
        // taken out of a table's metadata).
        let already = committed_sources(&table);
        let ranges = stream_ranges(&already);
        let mut ready: Vec<Ready> = Vec::new();
        // Claims of messages dropped before their units were read, removed at the end.
        let mut stale: Vec<String> = Vec::new();
        for q in messages {
            if q.message.table != self.name() {
                folded.refused.push((
                    q.id,
                    format!(
                        "a commit message for table {}, and this pipeline commits into {}",
                        q.message.table,
                        self.name()
                    ),
                ));
                continue;
            }
            let all_held = !q.message.sources.is_empty()
                && q.message
                    .sources
                    .iter()
                    .all(|s| overlapping(&already, &ranges, s).is_some());
            let units = match &q.message.units_at {
                Some(path) if !all_held => {
                    let read = async {
                        let input = table.file_io().new_input(path)?;
                        input.read().await
                    };
                    match read.await {
                        Ok(bytes) => match serde_json::from_slice::<HeldUnits>(&bytes) {
                            Ok(HeldUnits::Units(u)) => u,
                            Ok(HeldUnits::Message(m)) => m.units,
                            Err(e) => {
                                folded
                                    .refused
                                    .push((q.id, format!("{path} is not a list of units: {e}")));
                                continue;
                            }
                        },
                        // Gone for good (a kept object is removed only once its message
                        // is committed): this message cannot be, and the batch's others can.
                        Err(e) if !e.retryable() => {
                            folded.refused.push((
                                q.id,
                                format!("its files' description {path} cannot be read: {e}"),
                            ));
                            continue;
                        }
                        Err(e) => return Err(self.error(&format!("reading {path}"), e)),
                    }
                }
                Some(_) => Vec::new(),
                None => q.message.units.clone(),
            };
            if all_held && units.is_empty() {
                folded.dropped.push((
                    q.id,
                    format!("already committed: {}", named(&q.message.sources)),
                ));
                stale.extend(q.message.claim);
                continue;
            }
            match data_files(table.metadata(), &q.message, &units) {
                Ok(files) => ready.push((q.id, q.message, units, files)),
                Err(why) => folded.refused.push((q.id, why)),
            }
        }
        let mut writers = Vec::new();
        let mut committed = Vec::new();
        let mut dropped = Vec::new();
        let mut refused = Vec::new();
        let mut properties =
            HashMap::from([(super::PIPELINE_PROPERTY.to_string(), self.pipeline.clone())]);
        if let Ok(id) = super::INVOCATION.try_with(Clone::clone) {
            properties.insert(super::INVOCATION_PROPERTY.to_string(), id);
        }
        let done = self
            .append(&catalog, properties, |current| {
                writers.clear();
                committed.clear();
                dropped.clear();
                refused.clear();
                let already = current.map(committed_sources).unwrap_or_default();
                let ranges = stream_ranges(&already);
                let mut taken = HashSet::new();
                let mut taken_ranges = super::Ranges::new();
                let mut files = Vec::new();
                let mut sources = Vec::new();
                for (id, m, units, unit_files) in &ready {
                    let mut take = Vec::new();
                    let mut split = None;
                    for (u, f) in units.iter().zip(unit_files) {
                        match standing(u, &already, &ranges, &taken, &taken_ranges) {
                            Standing::New => take.push((u, f)),
                            Standing::Held(snap) => dropped.push((
                                id.clone(),
                                match snap {
                                    Some(s) => format!(
                                        "{} already committed (snapshot {s})",
                                        named(&u.sources)
                                    ),
                                    None => format!(
                                        "{} in an earlier message of this batch",
                                        named(&u.sources)
                                    ),
                                },
                            )),
                            Standing::Split(why) => {
                                split = Some(why);
                                break;
                            }
                        }
                    }
                    if let Some(why) = split {
                        refused.push((id.clone(), why));
                        continue;
                    }
                    if take.is_empty() {
                        continue;
                    }
                    let mut rows = 0;
                    let mut paths = Vec::new();
                    for (u, f) in take {
                        for s in &u.sources {
                            taken.insert(s.clone());
                            if let Some((shard, first, last)) = super::stream_range(s) {
                                taken_ranges.entry(shard.to_string()).or_default().push((
                                    first.to_string(),
                                    last.to_string(),
                                    0,
                                ));
                            }
                        }
                        sources.extend(u.sources.iter().cloned());
                        rows += u.rows;
                        paths.extend(f.iter().map(|d| d.file_path().to_string()));
                        files.extend(f.iter().cloned());
                    }
                    if let Some(w) = &m.invocation {
                        writers.push(w.clone());
                    }
                    committed.push((id.clone(), rows, paths));
                }
                if sources.is_empty() {
                    return Plan::Nothing;
                }
                writers.sort();
                writers.dedup();
                Plan::Append {
                    files,
                    sources,
                    extra: vec![(
                        WRITERS_PROPERTY.to_string(),
                        serde_json::to_string(&writers).unwrap_or_default(),
                    )],
                }
            })
            .await;
        let done = done?;
        folded.snapshot = done.snapshot;
        folded.conflicts = done.conflicts;
        if done.snapshot.is_some() {
            let now = now_ms();
            let sent: HashMap<&str, u64> = ready
                .iter()
                .map(|(id, m, _, _)| (id.as_str(), m.sent_ms))
                .collect();
            folded.visible_ms = committed
                .iter()
                .filter_map(|(id, _, _)| sent.get(id.as_str()))
                .take(100)
                .map(|&at| now.saturating_sub(at) as f64)
                .collect();
        }
        folded.committed = committed;
        folded.dropped.extend(dropped);
        folded.refused.extend(refused);
        // The objects that held the units of committed messages are not needed again: a
        // redelivery of such a message finds all its sources committed and never reads them —
        // unless its sources were in the object too, which it then still needs.
        // A refused message keeps its object, to be read when it is tried again.
        // A claim goes once its message is committed or dropped: its records are the table's.
        let refused: HashSet<&str> = folded.refused.iter().map(|(id, _)| id.as_str()).collect();
        let mut gone: Vec<&str> = stale.iter().map(String::as_str).collect();
        for (id, m, _, _) in &ready {
            if refused.contains(id.as_str()) {
                continue;
            }
            if let Some(path) = &m.units_at
                && !m.sources.is_empty()
            {
                gone.push(path);
            }
            gone.extend(m.claim.as_deref());
        }
        // Only what writers put beside the metadata: a message naming any other file (a data
        // file of the table, say) gets nothing deleted.
        let ours = format!(
            "{}/metadata/sluice-queued-",
            table.metadata().location().trim_end_matches('/')
        );
        gone.retain(|path| {
            let fine = path.starts_with(&ours) && !path.contains("/../");
            if !fine {
                tracing::warn!(
                    path,
                    "A queued message names a file the committer does not remove."
                );
            }
            fine
        });
        gone.sort_unstable();
        gone.dedup();
        // (The table's files are reached through the same storage at any version of it.)
        for path in gone {
            if let Err(e) = table.file_io().delete(path).await {
                tracing::warn!(path, error = %e, "Cannot remove a queued files' description.");
            }
        }
        Ok(folded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::stream_source;

    fn unit(sources: &[&str]) -> QueuedUnit {
        QueuedUnit {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            rows: 1,
            files: Vec::new(),
        }
    }

    fn stands(
        u: &QueuedUnit,
        committed: &[(&str, i64)],
        taken: &[&str],
    ) -> Result<Option<Option<i64>>, String> {
        let already: HashMap<String, i64> =
            committed.iter().map(|(s, n)| (s.to_string(), *n)).collect();
        let taken: HashSet<String> = taken.iter().map(|s| s.to_string()).collect();
        let taken_map: HashMap<String, i64> = taken.iter().map(|s| (s.clone(), 0)).collect();
        match standing(
            u,
            &already,
            &stream_ranges(&already),
            &taken,
            &stream_ranges(&taken_map),
        ) {
            Standing::New => Ok(None),
            Standing::Held(s) => Ok(Some(s)),
            Standing::Split(why) => Err(why),
        }
    }

    #[test]
    fn a_kinesis_message_is_claimed_by_shard_and_range() {
        let shard = "shardId-000000000003";
        let loc = "s3://b/lake/raw/t/";
        let one = [stream_source(shard, "100", "199")];
        let path = claim_path(loc, &one).unwrap();
        assert_eq!(
            path,
            "s3://b/lake/raw/t/metadata/sluice-queued-kinesis/shardId-000000000003/100..199.json"
        );
        // Several ranges of one shard: from the lowest first to the highest last, compared as
        // numbers (99 < 100).
        let two = [
            stream_source(shard, "100", "199"),
            stream_source(shard, "99", "99"),
        ];
        assert!(claim_path(loc, &two).unwrap().ends_with("/99..199.json"));
        // S3 objects, and ranges of two shards, are not claimed.
        assert_eq!(claim_path(loc, &["s3://b/k@e".to_string()]), None);
        let mixed = [
            stream_source(shard, "1", "2"),
            stream_source("shardId-000000000004", "3", "4"),
        ];
        assert_eq!(claim_path(loc, &mixed), None);
        // Names from a hostile event never make a key outside the claims' folder.
        for (shard, first) in [
            ("../../x", "1"),
            ("a/b", "1"),
            ("", "1"),
            ("s", "../1"),
            ("s", "1e3"),
        ] {
            let src = [stream_source(shard, first, "9")];
            assert_eq!(claim_path(loc, &src), None, "{shard} {first}");
        }
        let prefix = "lake/raw/t/metadata/sluice-queued-kinesis/shardId-000000000003/";
        assert_eq!(
            claim_of(prefix, &format!("{prefix}100..199.json")),
            Some(("100".to_string(), "199".to_string()))
        );
        assert_eq!(
            claimed_range(&format!("{prefix}100..199.json")),
            Some(("shardId-000000000003", "100", "199"))
        );
        assert_eq!(
            claimed_range("lake/raw/t/metadata/sluice-queued-0a1b.json"),
            None
        );
        for junk in [
            "x..199.json",
            "100..199.json.tmp",
            "100-199.json",
            "..5.json",
        ] {
            assert_eq!(claim_of(prefix, &format!("{prefix}{junk}")), None, "{junk}");
        }
        let c = Claim {
            first: "100".into(),
            last: "199".into(),
            uri: path,
        };
        assert!(c.covers("100") && c.covers("150") && c.covers("199"));
        assert!(!c.covers("99") && !c.covers("200") && !c.covers("1000"));
        assert!(c.overlaps("50", "100") && c.overlaps("199", "300") && c.overlaps("120", "130"));
        assert!(!c.overlaps("200", "300") && !c.overlaps("1", "99"));
    }

    #[test]
    fn an_object_beside_the_metadata_holds_units_or_a_whole_message() {
        let units = vec![unit(&["s3://b/a@1"])];
        let list = serde_json::to_vec(&units).unwrap();
        assert!(matches!(
            serde_json::from_slice::<HeldUnits>(&list),
            Ok(HeldUnits::Units(u)) if u == units
        ));
        let m = Message {
            sluice: KIND.into(),
            table: "raw.t".into(),
            pipeline: "p".into(),
            invocation: None,
            sent_ms: 1,
            schema_id: 0,
            spec_id: 0,
            sources: vec!["kinesis:s#1..2".into()],
            units: units.clone(),
            units_at: None,
            claim: Some("s3://b/t/metadata/sluice-queued-kinesis/s/1..2.json".into()),
        };
        let whole = serde_json::to_vec(&m).unwrap();
        assert!(matches!(
            serde_json::from_slice::<HeldUnits>(&whole),
            Ok(HeldUnits::Message(got)) if got.units == units && got.claim == m.claim
        ));
        assert!(serde_json::from_slice::<HeldUnits>(b"{\"x\": 1}").is_err());
    }

    #[test]
    fn a_unit_is_new_held_or_split_by_its_sources() {
        let a = "s3://b/a@1";
        let b = "s3://b/b@1";
        assert_eq!(stands(&unit(&[a, b]), &[], &[]), Ok(None));
        assert_eq!(
            stands(&unit(&[a, b]), &[(a, 7), (b, 8)], &[]),
            Ok(Some(Some(7)))
        );
        // Held by a message earlier in the same batch.
        assert_eq!(stands(&unit(&[a]), &[], &[a]), Ok(Some(None)));
        // Another version of the object is another source.
        assert_eq!(stands(&unit(&["s3://b/a@2"]), &[(a, 7)], &[]), Ok(None));
        // Gathered over two objects, one of them committed apart: neither way is right.
        let e = stands(&unit(&[a, b]), &[(a, 7)], &[]).expect_err("split");
        assert!(e.contains("2 sources together, of which 1"), "{e}");
        let e = stands(&unit(&[a, b]), &[], &[b]).expect_err("split in the batch");
        assert!(e.contains("s3://b/b@1"), "{e}");
    }

    #[test]
    fn a_kinesis_range_is_held_only_inside_a_committed_one() {
        let shard = "shardId-000000000001";
        let whole = stream_source(shard, "100", "199");
        let inside = stream_source(shard, "120", "180");
        let across = stream_source(shard, "150", "250");
        let after = stream_source(shard, "200", "250");
        let other = stream_source("shardId-000000000002", "100", "199");
        let committed = [(whole.as_str(), 5)];
        assert_eq!(
            stands(&unit(&[&inside]), &committed, &[]),
            Ok(Some(Some(5)))
        );
        assert_eq!(stands(&unit(&[&whole]), &committed, &[]), Ok(Some(Some(5))));
        assert_eq!(stands(&unit(&[&after]), &committed, &[]), Ok(None));
        assert_eq!(stands(&unit(&[&other]), &committed, &[]), Ok(None));
        let e = stands(&unit(&[&across]), &committed, &[]).expect_err("overlap");
        assert!(e.contains("without lying inside it"), "{e}");
        // The same within a batch.
        let e = stands(&unit(&[&across]), &[], &[&whole]).expect_err("overlap in the batch");
        assert!(e.contains("without lying inside it"), "{e}");
        assert_eq!(stands(&unit(&[&inside]), &[], &[&whole]), Ok(Some(None)));
    }

    #[test]
    fn a_message_too_long_for_sqs_keeps_its_units_and_then_its_sources_in_an_object() {
        let message = |sources: usize, files: usize| {
            Message {
            sluice: KIND.into(),
            table: "db.t".into(),
            pipeline: "p".into(),
            invocation: None,
            sent_ms: 1,
            schema_id: 0,
            spec_id: 0,
            sources: (0..sources)
                .map(|i| format!("s3://bucket/uploads/2026/12/07/object-{i:06}.ndjson@0123456789abcdef0123456789abcdef"))
                .collect(),
            units: vec![QueuedUnit {
                sources: vec!["s3://bucket/k@e".into()],
                rows: 1,
                files: vec![serde_json::json!({"file_path": "x".repeat(1000)}); files],
            }],
            units_at: None,
            claim: None,
        }
        };
        // Small: all in the body.
        let (body, object) = fit(message(3, 2), "s3://t/metadata/q.json").unwrap();
        assert!(object.is_none());
        assert_eq!(Message::parse(body.as_bytes()).unwrap(), message(3, 2));
        // 400 files: the units go to the object, the sources stay (a redelivery is dropped
        // without reading it).
        let (body, object) = fit(message(3, 400), "s3://t/metadata/q.json").unwrap();
        assert!(body.len() <= MAX_BODY);
        let m = Message::parse(body.as_bytes()).unwrap();
        assert_eq!((m.units.len(), m.sources.len()), (0, 3));
        assert_eq!(m.units_at.as_deref(), Some("s3://t/metadata/q.json"));
        let units: Vec<QueuedUnit> = serde_json::from_slice(&object.unwrap()).unwrap();
        assert_eq!(units, message(3, 400).units);
        // 10 000 sources (an SQS batch of uploads gathered): they do not fit either.
        let (body, object) = fit(message(10_000, 1), "s3://t/metadata/q.json").unwrap();
        assert!(body.len() <= MAX_BODY, "{}", body.len());
        let m = Message::parse(body.as_bytes()).unwrap();
        assert!(m.sources.is_empty() && m.units.is_empty() && m.units_at.is_some());
        assert!(object.is_some());
        // Their digest (FIFO deduplication, the object's name) is of the sources, all of them.
        assert_ne!(digest(&message(10_000, 1).sources), digest(&[]));
    }

    #[test]
    fn a_reason_names_a_few_sources_and_counts_the_rest() {
        let s = |n: usize| (0..n).map(|i| format!("s3://b/{i}")).collect::<Vec<_>>();
        assert_eq!(named(&s(1)), "s3://b/0");
        assert_eq!(named(&s(2)), "s3://b/0, s3://b/1");
        assert_eq!(named(&s(10_000)), "s3://b/0, s3://b/1 and 9998 more");
    }

    #[test]
    fn commit_messages_are_told_from_other_bodies_and_read_strictly() {
        let m = Message {
            sluice: KIND.into(),
            table: "db.t".into(),
            pipeline: "p".into(),
            invocation: Some("req-1".into()),
            sent_ms: 1,
            schema_id: 0,
            spec_id: 0,
            sources: vec!["s3://b/a@1".into()],
            units: vec![unit(&["s3://b/a@1"])],
            units_at: None,
            claim: None,
        };
        let body = serde_json::to_vec(&m).unwrap();
        assert!(is_commit(&body));
        assert_eq!(Message::parse(&body), Ok(m.clone()));
        for other in [
            &b"{\"page\":\"/\"}"[..],
            b"not json",
            b"{\"sluice\":5}",
            b"[]",
            b"",
        ] {
            assert!(!is_commit(other), "{}", String::from_utf8_lossy(other));
        }
        let later = serde_json::to_vec(&Message {
            sluice: "commit/2".into(),
            ..m.clone()
        })
        .unwrap();
        assert!(is_commit(&later));
        let e = Message::parse(&later).unwrap_err();
        assert!(
            e.contains("`commit/2`, which this sluice does not read"),
            "{e}"
        );
        let e = Message::parse(br#"{"sluice":"commit/1","table":"db.t"}"#).unwrap_err();
        assert!(e.contains("missing field"), "{e}");
    }
}
