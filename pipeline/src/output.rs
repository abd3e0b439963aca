//! Writing results: Parquet or NDJSON files (Hive-partitioned when asked), and NDJSON rejects.
//!
//! Files are streamed to the store as they are encoded: Parquet row groups are closed at
//! `max_row_group_bytes`, so an output of any size needs one row group of memory per open file,
//! and S3 outputs go up in multipart parts. Names are deterministic functions of the source object,
//! so a retried invocation overwrites instead of duplicating.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{RecordBatch, UInt32Array};
use arrow_schema::SchemaRef;
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::async_writer::AsyncFileWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use sha2::{Digest, Sha256};
use sluice_processors::Reject;

use crate::Error;
use crate::config::{Destination, OutputConfig, OutputFormat};
use crate::kinesis::{RecordPutter, StreamWriter};
use crate::store::{FsStore, ObjectMeta, ObjectStore, ObjectWriter, Staged};

/// What Hive escapes in partition values.
const HIVE: &AsciiSet = &CONTROLS
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'\'')
    .add(b'*')
    .add(b'/')
    .add(b':')
    .add(b'=')
    .add(b'?')
    .add(b'\\')
    .add(b'{')
    .add(b'[')
    .add(b']')
    .add(b'^');

/// Hive's folder name for null partition values.
pub const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// The extension of a rejects file, which no output file has.
pub const REJECTS_EXT: &str = "rejects.ndjson";

/// Longest partition value kept whole in a folder name, in bytes once escaped. A longer value is
/// cut at a character boundary and ends in `~` and a digest of the whole value, so two long
/// values stay apart and the folder name stays well inside every limit (255 bytes per name on
/// local disks, 1 024 per S3 key).
pub const MAX_PARTITION_VALUE_BYTES: usize = 128;

/// A partition value as it appears in its folder name: Hive-escaped; the literal text of
/// [`NULL_PARTITION`] escaped further (`%5F_HIVE_DEFAULT_PARTITION__`), so it never lands beside
/// the nulls; cut with a digest past [`MAX_PARTITION_VALUE_BYTES`].
fn partition_value(v: &str, path: &mut String) {
    let escaped: String = if v == NULL_PARTITION {
        format!("%5F{}", &v[1..])
    } else {
        utf8_percent_encode(v, HIVE).collect()
    };
    if escaped.len() <= MAX_PARTITION_VALUE_BYTES {
        path.push_str(&escaped);
        return;
    }
    // Whole characters, each escaped, while they fit before `~` and the 16-digit digest.
    let budget = MAX_PARTITION_VALUE_BYTES - 17;
    let mut used = 0;
    let mut one = [0u8; 4];
    for c in v.chars() {
        let part: String = utf8_percent_encode(c.encode_utf8(&mut one), HIVE).collect();
        if used + part.len() > budget {
            break;
        }
        used += part.len();
        path.push_str(&part);
    }
    path.push('~');
    path.push_str(&digest(&[v]));
}

/// The deterministic base name of everything written for one source object:
/// `{file stem}-{16 hex digits of sha256(bucket, key, version or etag)}`.
pub fn base_name(bucket: &str, key: &str, version: Option<&str>) -> String {
    named(key, &digest(&[bucket, key, version.unwrap_or("")]))
}

/// The base name of an invocation's single output (an aggregate over all its objects): the first
/// object's stem, how many others there were, and a digest of every (bucket, key, version).
pub fn invocation_name<'a>(
    objects: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a str>)>,
) -> String {
    let objects: Vec<_> = objects.into_iter().collect();
    match objects.as_slice() {
        [] => digest(&[]),
        [(b, k, v)] => base_name(b, k, *v),
        [(_, first, _), rest @ ..] => {
            let parts: Vec<&str> = objects
                .iter()
                .flat_map(|(b, k, v)| [*b, *k, v.unwrap_or("")])
                .collect();
            named(
                first,
                &format!("and-{}-more-{}", rest.len(), digest(&parts)),
            )
        }
    }
}

/// The base name of a Kinesis batch's outputs: `{shard}-{first sequence}`. Not its last: Lambda
/// may deliver a failed batch again with more records or fewer (another batch size, a bisected
/// batch), and the redelivery must replace what the first delivery published, not add a second
/// file holding the same records. Parts that are not plain ids are replaced by a digest.
pub fn stream_name(shard: &str, first: &str) -> String {
    plain_name(&[shard, first])
}

/// The base name of a Kinesis tumbling window's result: `{shard}-window-{start}` (the start in
/// compact ISO 8601, `20261122T120000Z`), so the window's last invocation, redelivered, overwrites.
pub fn window_name(shard: &str, start: &str) -> String {
    let compact: String = start.chars().filter(|c| *c != '-' && *c != ':').collect();
    plain_name(&[shard, "window", &compact])
}

/// `parts` joined by `-` when each is a plain id (at most 128 of `[A-Za-z0-9_-]`), else
/// `batch-{digest}`.
fn plain_name(parts: &[&str]) -> String {
    let plain = |p: &str| {
        !p.is_empty()
            && p.len() <= 128
            && p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    };
    if parts.iter().all(|p| plain(p)) {
        parts.join("-")
    } else {
        format!("batch-{}", digest(parts))
    }
}

/// 16 hex digits of sha256 over length-prefixed parts (so `("ab","c")` and `("a","bc")` differ).
fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `{stem of key's file name}-{suffix}`: letters and digits kept, runs of anything else one `-`.
fn named(key: &str, suffix: &str) -> String {
    let file = key.rsplit('/').next().unwrap_or(key);
    let stem = file.split('.').next().unwrap_or(file);
    let mut clean = String::new();
    for c in stem.chars() {
        if c.is_alphanumeric() || c == '_' {
            clean.push(c);
        } else if !clean.is_empty() && !clean.ends_with('-') {
            clean.push('-');
        }
        if clean.chars().count() >= 64 {
            break;
        }
    }
    let clean = clean.trim_end_matches('-');
    if clean.is_empty() {
        suffix.to_string()
    } else {
        format!("{clean}-{suffix}")
    }
}

/// Resolve a destination to the store that holds it, its bucket and key prefix (`None` for a
/// stream, which is not a store).
pub fn resolve(
    dest: &Destination,
    object_store: &Arc<dyn ObjectStore>,
) -> Option<(Arc<dyn ObjectStore>, String, String)> {
    match dest {
        Destination::S3 { bucket, prefix } => {
            Some((object_store.clone(), bucket.clone(), prefix.clone()))
        }
        Destination::Dir(path) => {
            Some((Arc::new(FsStore::flat(path)), String::new(), String::new()))
        }
        Destination::Kinesis { .. } => None,
    }
}

/// Adapts an [`ObjectWriter`] to Parquet's async writer.
struct PqSink {
    inner: Box<dyn ObjectWriter>,
    /// What `inner` holds in memory after the last write (for the budget).
    held: Arc<std::sync::atomic::AtomicUsize>,
    /// Set while the budget relieves this file: after the row group is written, send what
    /// the store holds too.
    pressed: Arc<std::sync::atomic::AtomicBool>,
}

fn external(e: Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileWriter for PqSink {
    fn write(&mut self, bs: Bytes) -> BoxFuture<'_, parquet::errors::Result<()>> {
        use std::sync::atomic::Ordering;
        async move {
            self.inner.write(bs).await.map_err(external)?;
            if self.pressed.swap(false, Ordering::Relaxed) {
                self.inner.flush_part().await.map_err(external)?;
            }
            self.held.store(self.inner.buffered(), Ordering::Relaxed);
            Ok(())
        }
        .boxed()
    }
    /// The Parquet file is whole: sealed, not yet visible (published with the rest of its
    /// unit's outputs).
    fn complete(&mut self) -> BoxFuture<'_, parquet::errors::Result<()>> {
        self.inner.seal().map(|r| r.map_err(external)).boxed()
    }
}

enum FileWriter {
    Parquet(Box<AsyncArrowWriter<PqSink>>),
    Ndjson {
        sink: Box<dyn ObjectWriter>,
        gzip: Option<Box<flate2::write::GzEncoder<Vec<u8>>>>,
    },
}

struct OpenFile {
    writer: FileWriter,
    key: String,
    /// What the store holds of a Parquet file's bytes (see [`PqSink`]).
    held: Arc<std::sync::atomic::AtomicUsize>,
    pressed: Arc<std::sync::atomic::AtomicBool>,
}

impl OpenFile {
    /// Bytes this file holds in memory: a Parquet row group in progress, an NDJSON file's gzip
    /// block, and what the store has not sent yet.
    fn held(&self) -> usize {
        use std::sync::atomic::Ordering;
        match &self.writer {
            FileWriter::Parquet(w) => w.memory_size() + self.held.load(Ordering::Relaxed),
            FileWriter::Ndjson { sink, gzip } => {
                sink.buffered() + gzip.as_ref().map_or(0, |g| g.get_ref().len())
            }
        }
    }

    /// Free what can be freed: close a Parquet row group, send what the store holds.
    async fn relieve(&mut self) -> Result<(), Error> {
        use std::sync::atomic::Ordering;
        match &mut self.writer {
            FileWriter::Parquet(w) => {
                self.pressed.store(true, Ordering::Relaxed);
                w.flush().await?;
                self.pressed.store(false, Ordering::Relaxed);
                Ok(())
            }
            FileWriter::Ndjson { sink, .. } => sink.flush_part().await,
        }
    }
}

/// Under memory pressure, a file holding less than this (256 KiB) is left as it is (see
/// [`Outputs::with_memory`]).
pub const RELIEF_FLOOR_BYTES: usize = 256 << 10;

/// Parquet's `Content-Type`.
pub const PARQUET_TYPE: &str = "application/vnd.apache.parquet";

/// One batch as a small zstd Parquet file in memory (index and catalog files).
pub fn parquet_file(batch: &RecordBatch) -> Result<Vec<u8>, Error> {
    let props = WriterProperties::builder()
        .set_compression(PqCompression::ZSTD(ZstdLevel::default()))
        .build();
    let mut buf = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))
        .map_err(|e| Error::Io(format!("writing Parquet: {e}")))?;
    w.write(batch)
        .and_then(|()| w.close().map(|_| ()))
        .map_err(|e| Error::Io(format!("writing Parquet: {e}")))?;
    Ok(buf)
}

/// The output files of one source object.
pub struct Outputs {
    config: OutputConfig,
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
    base: String,
    files: HashMap<String, OpenFile>,
    order: Vec<String>,
    props: Option<WriterProperties>,
    /// A `kinesis://` output: rows go to the stream, or why they cannot.
    stream: Option<Result<StreamWriter, String>>,
    /// Whole objects written (image renditions, index files), staged.
    blobs: Vec<Staged>,
    /// The term index of the rows written, when the pipeline ends with an index stage.
    index: Option<IndexSink>,
    /// Per-column statistics of the rows written, for the catalog.
    stats: Option<sluice_processors::stats::ColumnStats>,
    /// Most bytes the open files may hold in memory together (see [`Self::with_memory`]).
    memory: Option<usize>,
}

/// Rows written are also indexed: `{output}/_index/terms/{base}.parquet` and `_index/docs/`.
struct IndexSink {
    builder: sluice_processors::index::TermIndexBuilder,
    text: String,
    id: Option<String>,
    source: String,
    rows: u64,
}

impl IndexSink {
    fn add(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        use arrow_array::Array;
        let text_col = |name: &str| -> Result<Option<arrow_array::StringArray>, Error> {
            let Some(c) = batch.column_by_name(name) else {
                return Ok(None);
            };
            let c = arrow_cast::cast(c, &arrow_schema::DataType::Utf8).map_err(|e| {
                Error::Processor(sluice_processors::Error::arrow(
                    "the index's text column",
                    e,
                ))
            })?;
            Ok(c.as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .cloned())
        };
        let Some(text) = text_col(&self.text)? else {
            return Err(Error::Io(format!(
                "the index stage's text column `{}` is not in the rows",
                self.text
            )));
        };
        let ids = match &self.id {
            Some(c) => text_col(c)?,
            None => None,
        };
        for i in 0..batch.num_rows() {
            let row = self.rows + i as u64;
            if text.is_null(i) {
                continue;
            }
            let doc = match &ids {
                Some(ids) if !ids.is_null(i) => ids.value(i).to_string(),
                _ => format!("{}#{}", self.source, row + 1),
            };
            self.builder.add(&doc, &self.text, text.value(i));
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }
}

impl Outputs {
    /// Outputs named after `base` (see [`base_name`]) under `dest`; a `kinesis://` destination
    /// puts its rows with `putter`.
    pub fn new(
        config: &OutputConfig,
        dest: &Destination,
        object_store: &Arc<dyn ObjectStore>,
        putter: Option<&Arc<dyn RecordPutter>>,
        base: String,
    ) -> Self {
        let (store, bucket, prefix) = resolve(dest, object_store)
            .unwrap_or_else(|| (object_store.clone(), String::new(), String::new()));
        let stream = match dest {
            Destination::Kinesis { stream } => Some(match putter {
                Some(p) => Ok(StreamWriter::new(
                    p.clone(),
                    stream,
                    config.partition_key.as_deref(),
                )),
                None => Err(format!(
                    "{dest}: no Kinesis client (sluice needs its `kinesis` feature for kinesis:// outputs)"
                )),
            }),
            _ => None,
        };
        Self {
            config: config.clone(),
            store,
            bucket,
            prefix,
            base,
            files: HashMap::new(),
            order: Vec::new(),
            props: None,
            stream,
            blobs: Vec::new(),
            index: None,
            stats: None,
            memory: None,
        }
    }

    /// Hold at most `bytes` in memory across the open files (row groups in progress, S3 parts
    /// being gathered): past it, the file holding the most writes out its row group (and its
    /// part, once S3's 5 MiB minimum is met), then the next, until under it. Without this, each
    /// of 64 partitions may hold a 32 MiB row group.
    pub fn with_memory(mut self, bytes: usize) -> Self {
        self.memory = Some(bytes);
        self
    }

    /// Bring what the open files hold under the budget, largest first. Once over it, files are
    /// relieved until they hold three quarters of it, so the next batches do not each relieve
    /// one file again (64 files: one pass over them per batch at most).
    async fn relieve(&mut self) -> Result<(), Error> {
        let Some(budget) = self.memory else {
            return Ok(());
        };
        let mut held: Vec<(usize, &String)> =
            self.files.iter().map(|(p, f)| (f.held(), p)).collect();
        let mut total: usize = held.iter().map(|(h, _)| h).sum();
        if total <= budget {
            return Ok(());
        }
        held.sort_unstable_by_key(|h| std::cmp::Reverse(h.0));
        // A file holding less than this is not worth a row group of its own: closing it frees
        // little (a writer's own overhead stays) and leaves a file of many tiny row groups, each
        // with metadata kept to the end. So each open file may hold up to this beyond the budget.
        let floor = RELIEF_FLOOR_BYTES;
        let mut order = Vec::new();
        for (h, part) in held {
            if total <= budget / 4 * 3 || h < floor {
                break;
            }
            total -= h;
            order.push(part.clone());
        }
        for part in order {
            if let Some(f) = self.files.get_mut(&part) {
                f.relieve().await?;
            }
        }
        Ok(())
    }

    /// Also keep per-column statistics of the rows written (see [`Self::column_stats`]).
    pub fn with_stats(mut self) -> Self {
        self.stats = Some(Default::default());
        self
    }

    /// Minimum, maximum and null count of each column written so far (empty unless
    /// [`Self::with_stats`]).
    pub fn column_stats(&self) -> Vec<sluice_processors::stats::ColumnStat> {
        self.stats.as_ref().map(|s| s.finish()).unwrap_or_default()
    }

    /// Also index the rows written: column `text` of each row, as document `id` (a column) or
    /// `{source}#{row}`.
    pub fn with_index(mut self, spec: &crate::config::IndexSpec, source: String) -> Self {
        self.index = Some(IndexSink {
            builder: sluice_processors::index::TermIndexBuilder::new(
                sluice_processors::tokenize::Tokenizer::new(&spec.stop_words),
            ),
            text: spec.text.clone().unwrap_or_default(),
            id: spec.id.clone(),
            source,
            rows: 0,
        });
        self
    }

    /// Write the term index of what was written (if there is one): two Parquet files named
    /// after this unit of work's base, so a retry replaces them.
    async fn write_index(&mut self) -> Result<(), Error> {
        let Some(sink) = self.index.take() else {
            return Ok(());
        };
        if sink.builder.documents() == 0 {
            return Ok(());
        }
        let (terms, docs) = sink.builder.finish().map_err(|e| {
            Error::Processor(sluice_processors::Error::arrow(
                "building the term index",
                e,
            ))
        })?;
        for (dir, batch) in [("terms", terms), ("docs", docs)] {
            let key = format!("_index/{dir}/{}.parquet", self.base);
            self.write_blob(&key, ObjectMeta::typed(PARQUET_TYPE), parquet_file(&batch)?)
                .await?;
        }
        Ok(())
    }

    /// Rows the output could not take (a stream record over its limits), since the last call.
    pub fn take_rejects(&mut self) -> Vec<sluice_processors::Reject> {
        match &mut self.stream {
            Some(Ok(w)) => w.take_rejects(),
            _ => Vec::new(),
        }
    }

    fn ext(&self) -> &'static str {
        match (self.config.format, self.config.compression.as_deref()) {
            (OutputFormat::Parquet, _) => "parquet",
            (OutputFormat::Ndjson, Some("gzip")) => "ndjson.gz",
            (OutputFormat::Ndjson, _) => "ndjson",
        }
    }

    fn properties(&mut self) -> WriterProperties {
        if let Some(p) = &self.props {
            return p.clone();
        }
        let compression = match self.config.compression.as_deref() {
            Some("none") => PqCompression::UNCOMPRESSED,
            Some("snappy") => PqCompression::SNAPPY,
            _ => PqCompression::ZSTD(ZstdLevel::default()),
        };
        let p = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_bytes(Some(self.config.max_row_group_bytes))
            .set_max_row_group_row_count(Some(1 << 20))
            .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")))
            .build();
        self.props = Some(p.clone());
        p
    }

    async fn open(&mut self, part: &str, schema: SchemaRef) -> Result<(), Error> {
        if self.files.contains_key(part) {
            return Ok(());
        }
        if self.files.len() >= self.config.max_open_partitions {
            return Err(Error::Processor(sluice_processors::Error::Limit {
                what: format!(
                    "the number of partitions written for one object ({})",
                    self.files.len() + 1
                ),
                limit: self.config.max_open_partitions as u64,
                setting: "output.max_open_partitions",
            }));
        }
        let key = format!("{}{}{}.{}", self.prefix, part, self.base, self.ext());
        let content_type = match self.config.format {
            OutputFormat::Parquet => PARQUET_TYPE,
            OutputFormat::Ndjson => "application/x-ndjson",
        };
        let sink = self
            .store
            .create(&self.bucket, &key, ObjectMeta::typed(content_type))
            .await?;
        let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let pressed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = match self.config.format {
            OutputFormat::Parquet => {
                let props = self.properties();
                let sink = PqSink {
                    inner: sink,
                    held: held.clone(),
                    pressed: pressed.clone(),
                };
                let w = AsyncArrowWriter::try_new(sink, schema, Some(props))?;
                FileWriter::Parquet(Box::new(w))
            }
            OutputFormat::Ndjson => {
                let gzip = (self.config.compression.as_deref() == Some("gzip")).then(|| {
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default())
                });
                FileWriter::Ndjson {
                    sink,
                    gzip: gzip.map(Box::new),
                }
            }
        };
        self.files.insert(
            part.to_string(),
            OpenFile {
                writer,
                key,
                held,
                pressed,
            },
        );
        self.order.push(part.to_string());
        Ok(())
    }

    /// Write one batch (split by partition when configured).
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if let Some(ix) = &mut self.index {
            ix.add(batch)?;
        }
        if let Some(st) = &mut self.stats {
            st.add(batch)
                .map_err(|e| Error::Io(format!("column statistics: {e}")))?;
        }
        match &mut self.stream {
            Some(Ok(w)) => return w.write(batch).await,
            Some(Err(e)) => return Err(Error::Io(e.clone())),
            None => {}
        }
        if self.config.partition_by.is_empty() {
            self.write_part("", batch).await?;
            return self.relieve().await;
        }
        let (groups, data) = split(batch, &self.config.partition_by)?;
        for (part, idx) in groups {
            let rows = arrow_select::take::take_record_batch(&data, &UInt32Array::from(idx))
                .map_err(|e| {
                    Error::Processor(sluice_processors::Error::arrow("partitioning", e))
                })?;
            self.write_part(&part, &rows).await?;
        }
        self.relieve().await
    }

    async fn write_part(&mut self, part: &str, batch: &RecordBatch) -> Result<(), Error> {
        self.open(part, batch.schema()).await?;
        let Some(f) = self.files.get_mut(part) else {
            return Ok(());
        };
        match &mut f.writer {
            FileWriter::Parquet(w) => w.write(batch).await?,
            FileWriter::Ndjson { sink, gzip } => {
                let bytes = sluice_processors::json::ndjson(batch).map_err(|e| {
                    Error::Processor(sluice_processors::Error::arrow("writing NDJSON", e))
                })?;
                let out = match gzip {
                    Some(gz) => {
                        use std::io::Write;
                        gz.write_all(&bytes).map_err(|e| Error::Io(e.to_string()))?;
                        std::mem::take(gz.get_mut())
                    }
                    None => bytes,
                };
                if !out.is_empty() {
                    sink.write(Bytes::from(out)).await?;
                }
            }
        }
        Ok(())
    }

    /// Write one whole object (an image rendition) at `rel_key` under the output, staged with the
    /// unit's other outputs; its location. Its name is its own, so a retry overwrites it.
    pub async fn write_blob(
        &mut self,
        rel_key: &str,
        meta: ObjectMeta<'_>,
        bytes: Vec<u8>,
    ) -> Result<String, Error> {
        if self.stream.is_some() {
            return Err(Error::Io(
                "a kinesis:// output takes rows, not files; write renditions to s3:// or a folder"
                    .into(),
            ));
        }
        let key = format!("{}{}", self.prefix, rel_key);
        let mut w = self.store.create(&self.bucket, &key, meta).await?;
        if let Err(e) = w.write(Bytes::from(bytes)).await {
            w.abort().await;
            return Err(e);
        }
        let staged = Staged::seal(w, self.store.clone(), &self.bucket, &key).await?;
        let location = staged.location();
        self.blobs.push(staged);
        Ok(location)
    }

    /// Close every file, sealed but not yet visible: the unit publishes them with its rejects
    /// ([`Staging::publish`]). A `kinesis://` output's records are sent by now: they are
    /// `sent`, not staged.
    pub async fn stage(mut self) -> Result<Staging, Error> {
        if let Some(Ok(mut w)) = self.stream.take() {
            w.flush().await?;
            let mut st = Staging::default();
            if w.sent() > 0 {
                st.sent
                    .push(format!("{} ({} records)", w.location(), w.sent()));
            }
            return Ok(st);
        }
        if let Err(e) = self.write_index().await {
            self.abort().await;
            return Err(e);
        }
        let mut staged = std::mem::take(&mut self.blobs);
        for part in std::mem::take(&mut self.order) {
            let Some(f) = self.files.remove(&part) else {
                continue;
            };
            match close_file(f, &self.store, &self.bucket).await {
                Ok(s) => staged.push(s),
                Err(e) => {
                    crate::store::discard(staged).await;
                    self.abort().await;
                    return Err(e);
                }
            }
        }
        Ok(Staging {
            files: staged,
            sent: Vec::new(),
        })
    }

    /// Drop every file without making any visible.
    pub async fn abort(mut self) {
        for (_, f) in self.files.drain() {
            abort_file(f).await;
        }
        crate::store::discard(std::mem::take(&mut self.blobs)).await;
    }
}

/// A unit of work's outputs, written and sealed, not yet visible: its files (and rejects), or
/// what a stream output has already sent.
#[derive(Default)]
pub struct Staging {
    files: Vec<Staged>,
    sent: Vec<String>,
}

impl Staging {
    /// Add `other`'s outputs after these.
    pub fn extend(&mut self, other: Staging) {
        self.files.extend(other.files);
        self.sent.extend(other.sent);
    }

    /// Add one staged file (a rejects file).
    pub fn push(&mut self, file: Staged) {
        self.files.push(file);
    }

    /// Make every file visible, all or none ([`crate::store::publish`]): every location, the
    /// records a stream output sent first.
    pub async fn publish(self) -> Result<Vec<String>, Error> {
        let mut out = self.sent;
        out.extend(crate::store::publish(self.files).await?);
        Ok(out)
    }

    /// Drop every staged file.
    pub async fn discard(self) {
        crate::store::discard(self.files).await;
    }
}

/// A file's writer closed (a Parquet footer written), sealed in the store.
async fn close_file(
    f: OpenFile,
    store: &Arc<dyn ObjectStore>,
    bucket: &str,
) -> Result<Staged, Error> {
    let sink = match f.writer {
        FileWriter::Parquet(mut w) => {
            if let Err(e) = w.finish().await {
                w.into_inner().inner.abort().await;
                return Err(e.into());
            }
            w.into_inner().inner
        }
        FileWriter::Ndjson { mut sink, gzip } => {
            if let Some(gz) = gzip {
                let rest = match gz.finish() {
                    Ok(r) => r,
                    Err(e) => {
                        sink.abort().await;
                        return Err(Error::Io(e.to_string()));
                    }
                };
                if !rest.is_empty()
                    && let Err(e) = sink.write(Bytes::from(rest)).await
                {
                    sink.abort().await;
                    return Err(e);
                }
            }
            sink
        }
    };
    Staged::seal(sink, store.clone(), bucket, &f.key).await
}

async fn abort_file(f: OpenFile) {
    match f.writer {
        FileWriter::Parquet(w) => w.into_inner().inner.abort().await,
        FileWriter::Ndjson { mut sink, .. } => sink.abort().await,
    }
}

/// A partition's folder path (`day=2026-11-22/`) and the rows that belong in it.
type PartitionRows = (String, Vec<u32>);

/// Group rows by the Hive path of their partition values; returns the groups in first-seen order
/// and the batch without the partition columns.
fn split(
    batch: &RecordBatch,
    columns: &[String],
) -> Result<(Vec<PartitionRows>, RecordBatch), Error> {
    let schema = batch.schema();
    let mut idx = Vec::with_capacity(columns.len());
    for c in columns {
        let i = schema.index_of(c).map_err(|_| {
            Error::Processor(sluice_processors::Error::Schema(format!(
                "partition column `{c}` is not in the output; columns are: {}",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        })?;
        idx.push(i);
    }
    let opts = arrow_cast::display::FormatOptions::default();
    // -0.0 and 0.0 are one SQL value, so one folder (`x=0.0`); every NaN is `x=NaN`.
    let values: Vec<_> = idx
        .iter()
        .map(|&i| sluice_processors::expr::canonical_float_array(batch.column(i)))
        .collect();
    let formatters = values
        .iter()
        .map(|c| arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Processor(sluice_processors::Error::arrow("partitioning", e)))?;
    let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut path = String::new();
    for row in 0..batch.num_rows() {
        path.clear();
        for (n, (col, fmt)) in columns.iter().zip(&formatters).enumerate() {
            path.push_str(col);
            path.push('=');
            if batch.column(idx[n]).is_null(row) {
                path.push_str(NULL_PARTITION);
            } else {
                partition_value(&fmt.value(row).to_string(), &mut path);
            }
            path.push('/');
        }
        match seen.get(&path) {
            Some(&g) => groups[g].1.push(row as u32),
            None => {
                seen.insert(path.clone(), groups.len());
                groups.push((path.clone(), vec![row as u32]));
            }
        }
    }
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|i| !idx.contains(i))
        .collect();
    let data = batch
        .project(&keep)
        .map_err(|e| Error::Processor(sluice_processors::Error::arrow("partitioning", e)))?;
    Ok((groups, data))
}

use arrow_array::Array;

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
            serde_json::to_writer(&mut buf, &line).map_err(|e| Error::Io(e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names_are_deterministic_and_distinct() {
        let a = base_name("b", "logs/2026/a.ndjson.gz", Some("v1"));
        assert_eq!(a, base_name("b", "logs/2026/a.ndjson.gz", Some("v1")));
        assert!(a.starts_with("a-") && a.len() == 2 + 16, "{a}");
        assert_ne!(a, base_name("b", "logs/2026/a.ndjson.gz", Some("v2")));
        assert_ne!(a, base_name("b", "logs/2027/a.ndjson.gz", Some("v1")));
        assert_ne!(base_name("ab", "c", None), base_name("a", "bc", None));
        assert!(base_name("b", "dir/.hidden", None).len() == 16);
        assert!(
            base_name("b", "x/web+app events (2).ndjson", None).starts_with("web-app-events-2-")
        );
    }

    /// Issue 27: a 5 000-character value failed its object ("File name too long"), and the
    /// literal text `__HIVE_DEFAULT_PARTITION__` shared the nulls' folder.
    #[test]
    fn long_values_are_cut_with_a_digest_and_the_null_name_is_escaped() {
        use arrow_array::StringArray;
        use arrow_schema::{DataType, Field, Schema};
        let long_a = "a".repeat(5000);
        let long_b = format!("{}b", "a".repeat(4999));
        let uni = "é/".repeat(100);
        let schema = Arc::new(Schema::new(vec![
            Field::new("p", DataType::Utf8, true),
            Field::new("n", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![
                    Some(long_a.as_str()),
                    Some(long_b.as_str()),
                    Some(NULL_PARTITION),
                    None,
                    Some(uni.as_str()),
                    Some("short"),
                ])),
                Arc::new(StringArray::from(vec!["x"; 6])),
            ],
        )
        .unwrap();
        let (groups, _) = split(&batch, &["p".to_string()]).unwrap();
        let paths: Vec<&str> = groups.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths.len(), 6, "{paths:?}");
        for p in &paths {
            let value = &p["p=".len()..p.len() - 1];
            assert!(value.len() <= MAX_PARTITION_VALUE_BYTES, "{p}");
            assert!(!value.contains('/'), "{p}");
        }
        assert_ne!(paths[0], paths[1]);
        assert!(paths[0].starts_with("p=aaaa") && paths[0].contains('~'));
        assert_eq!(paths[2], "p=%5F_HIVE_DEFAULT_PARTITION__/");
        assert_eq!(paths[3], format!("p={NULL_PARTITION}/"));
        // A cut never splits an escape: what is left before the digest decodes.
        let cut = paths[4]["p=".len()..].split('~').next().unwrap();
        let decoded = percent_encoding::percent_decode_str(cut)
            .decode_utf8()
            .unwrap();
        assert!(uni.starts_with(decoded.as_ref()), "{cut}");
        assert_eq!(paths[5], "p=short/");
    }

    #[test]
    fn minus_zero_and_zero_are_one_partition_and_every_nan_another() {
        use arrow_array::{Float64Array, Int64Array};
        use arrow_schema::{DataType, Field, Schema};
        let schema = Arc::new(Schema::new(vec![
            Field::new("f", DataType::Float64, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Float64Array::from(vec![
                    Some(-0.0),
                    Some(0.0),
                    Some(f64::NAN),
                    Some(f64::from_bits(0xfff8_0000_0000_0000)),
                    None,
                ])),
                Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5])),
            ],
        )
        .unwrap();
        let (groups, data) = split(&batch, &["f".to_string()]).unwrap();
        assert_eq!(
            groups,
            [
                ("f=0.0/".to_string(), vec![0, 1]),
                ("f=NaN/".to_string(), vec![2, 3]),
                (format!("f={NULL_PARTITION}/"), vec![4]),
            ]
        );
        assert_eq!(data.num_columns(), 1);
    }
}
