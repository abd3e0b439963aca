//! Parquet and NDJSON output files: split by partition, streamed to the store (row groups closed
//! at a size, S3 multipart parts), within a memory budget, sealed and staged at the end.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{RecordBatch, UInt32Array};
use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use parquet::arrow::AsyncArrowWriter;
use parquet::arrow::async_writer::AsyncFileWriter;
use parquet::basic::{Compression as PqCompression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

use super::index::IndexSink;
use super::names::*;
use super::resolve;
use super::staging::Staging;
use crate::Error;
use crate::config::{Destination, Encoding, FileSpec, ParquetCodec};
use crate::kinesis::{RecordPutter, StreamWriter};
use crate::store::{ObjectMeta, ObjectStore, ObjectWriter, Staged};

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

/// The output files of one source object.
pub struct Outputs {
    config: FileSpec,
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) bucket: String,
    pub(super) prefix: String,
    pub(super) base: String,
    files: HashMap<String, OpenFile>,
    order: Vec<String>,
    props: Option<WriterProperties>,
    /// A `kinesis://` output: rows go to the stream, or why they cannot.
    stream: Option<Result<StreamWriter, String>>,
    /// Whole objects written (image renditions, index files), staged.
    pub(super) blobs: Vec<Staged>,
    /// The term index of the rows written, when the pipeline ends with an index stage.
    pub(super) index: Option<IndexSink>,
    /// Per-column statistics of the rows written, for the catalog.
    stats: Option<sluice_processors::stats::ColumnStats>,
    /// Most bytes the open files may hold in memory together (see [`Self::with_memory`]).
    memory: Option<usize>,
    /// An Iceberg output: rows go to data files of the invocation's table, or why they cannot.
    #[cfg(feature = "iceberg")]
    table: Option<Result<crate::table::TableWriter, String>>,
}

impl Outputs {
    /// Outputs named after `base` (see [`base_name`]) under `dest`; a `kinesis://` destination
    /// puts its rows with `putter`.
    pub fn new(
        config: &FileSpec,
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
        #[allow(unused_mut)]
        let mut outputs = Self {
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
            #[cfg(feature = "iceberg")]
            table: None,
        };
        #[cfg(feature = "iceberg")]
        if let Some(spec) = &config.table {
            let props = outputs.properties();
            outputs.table = Some(match crate::table::session() {
                Some(s) => Ok(crate::table::TableWriter::new(
                    s,
                    &outputs.base,
                    props,
                    config.max_open_partitions,
                )),
                None => Err(format!(
                    "table {}: rows reached the output outside an invocation's table session",
                    spec.ident()
                )),
            });
        }
        outputs
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

    /// Rows the output could not take (a stream record over its limits), since the last call.
    pub fn take_rejects(&mut self) -> Vec<sluice_processors::Reject> {
        match &mut self.stream {
            Some(Ok(w)) => w.take_rejects(),
            _ => Vec::new(),
        }
    }

    /// The writer settings of this output's files; a data file's dictionaries are then chosen
    /// per column from its first batch ([`super::dictionary_choices`]).
    fn properties(&mut self) -> WriterProperties {
        if let Some(p) = &self.props {
            return p.clone();
        }
        let compression = match self.config.encoding {
            Encoding::Parquet(ParquetCodec::None) => PqCompression::UNCOMPRESSED,
            Encoding::Parquet(ParquetCodec::Snappy) => PqCompression::SNAPPY,
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

    /// Open `part`'s file for `first`, the first batch it gets, unless open already.
    async fn open(&mut self, part: &str, first: &RecordBatch) -> Result<(), Error> {
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
        let encoding = self.config.encoding;
        let key = format!(
            "{}{}{}.{}",
            self.prefix,
            part,
            self.base,
            encoding.extension()
        );
        let content_type = encoding.content_type();
        let sink = self
            .store
            .create(&self.bucket, &key, ObjectMeta::typed(content_type))
            .await?;
        let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let pressed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = match encoding {
            Encoding::Parquet(_) => {
                let props = super::with_dictionaries(self.properties(), first);
                let sink = PqSink {
                    inner: sink,
                    held: held.clone(),
                    pressed: pressed.clone(),
                };
                let w = AsyncArrowWriter::try_new(sink, first.schema(), Some(props))?;
                FileWriter::Parquet(Box::new(w))
            }
            Encoding::Ndjson { gzip } => {
                let gzip = gzip.then(|| {
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
                .map_err(|e| Error::Internal(format!("column statistics: {e}")))?;
        }
        match &mut self.stream {
            Some(Ok(w)) => return w.write(batch).await,
            Some(Err(e)) => return Err(Error::Data(e.clone())),
            None => {}
        }
        #[cfg(feature = "iceberg")]
        match &mut self.table {
            Some(Ok(w)) => return w.write(batch).await,
            Some(Err(e)) => return Err(Error::Internal(e.clone())),
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
        self.open(part, batch).await?;
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
                        gz.write_all(&bytes)
                            .map_err(|e| Error::Internal(e.to_string()))?;
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
            return Err(Error::Data(
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
        #[cfg(feature = "iceberg")]
        if let Some(Ok(w)) = self.table.take() {
            // Data files of the table, visible as objects but not in the table until the
            // invocation commits them.
            let table_files = w.close().await?;
            return Ok(Staging {
                table_files,
                ..Staging::default()
            });
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
            ..Staging::default()
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
                        return Err(Error::Internal(format!("finishing the gzip stream: {e}")));
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
pub(super) fn split(
    batch: &RecordBatch,
    columns: &[String],
) -> Result<(Vec<PartitionRows>, RecordBatch), Error> {
    let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut path = String::new();
    let data = partition_rows(batch, columns, |row, values| {
        path.clear();
        for (col, v) in columns.iter().zip(values) {
            path.push_str(col);
            path.push('=');
            match v {
                None => path.push_str(NULL_PARTITION),
                Some(v) => partition_value(v, &mut path),
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
    })?;
    Ok((groups, data))
}

/// Each row's values of the partition `columns` (`None` for a null), handed to `each(row,
/// values)` in order, as they name partitions (-0.0 and 0.0 are one SQL value, so one partition,
/// `0.0`; every NaN is `NaN`); returns the batch without the partition columns.
pub(crate) fn partition_rows(
    batch: &RecordBatch,
    columns: &[String],
    mut each: impl FnMut(usize, &[Option<String>]),
) -> Result<RecordBatch, Error> {
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
    let values: Vec<_> = idx
        .iter()
        .map(|&i| sluice_processors::expr::canonical_float_array(batch.column(i)))
        .collect();
    let formatters = values
        .iter()
        .map(|c| arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &opts))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Processor(sluice_processors::Error::arrow("partitioning", e)))?;
    let mut row_values: Vec<Option<String>> = vec![None; columns.len()];
    for row in 0..batch.num_rows() {
        for (n, fmt) in formatters.iter().enumerate() {
            row_values[n] =
                (!batch.column(idx[n]).is_null(row)).then(|| fmt.value(row).to_string());
        }
        each(row, &row_values);
    }
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|i| !idx.contains(i))
        .collect();
    batch
        .project(&keep)
        .map_err(|e| Error::Processor(sluice_processors::Error::arrow("partitioning", e)))
}

use arrow_array::Array;
