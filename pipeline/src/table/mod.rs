//! Apache Iceberg table outputs (`[output] format = "iceberg"`), through Apache's `iceberg`
//! crate: Sluice never writes a metadata file, manifest or snapshot itself.
//!
//! An invocation ([`Target::begin`]) loads the table once and learns which sources (S3 objects,
//! by version or ETag) its snapshots already hold; objects already there are skipped as already
//! committed. Each unit of work writes its rows as Parquet data files through a
//! [`TableWriter`] (the crate's writers, partitioned by the table's spec, rolled at
//! `target_file_bytes`, named deterministically after the unit's sources), into the table's
//! `data/` folder through Sluice's own object store ([`io`]). Nothing is visible in the table
//! until the end of the invocation, when every unit's files go into one snapshot (a fast
//! append, [`Session::commit`]) that records the sources it holds. A conflict (another
//! invocation committed first) is retried on the refreshed table, which is checked again for
//! the same sources, until the invocation's deadline; the data files are never written again.
//! A failure between writing the files and the commit leaves them as orphans, invisible.

mod io;
pub mod queue;
mod report;
mod rest;
mod schema;

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::RecordBatch;
use iceberg::spec::{DataFile, UnboundPartitionSpec};
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultLocationGenerator, FileNameGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::partitioning::unpartitioned_writer::UnpartitionedWriter;
use iceberg::{Catalog, CatalogBuilder, ErrorKind, NamespaceIdent, TableCreation, TableIdent};
use parquet::file::properties::WriterProperties;

pub use io::{StoreIo, StoreIoFactory};
pub use report::{Column, Orphan, QueueDepth, Snapshot, TableReport};

use crate::Error;
use crate::config::{CatalogSpec, Destination, TableSpec};
use crate::store::ObjectStore;

/// The snapshot summary property that lists the sources a snapshot holds (a JSON array).
pub const SOURCES_PROPERTY: &str = "sluice.sources";
/// The snapshot summary property naming the pipeline that committed it.
pub const PIPELINE_PROPERTY: &str = "sluice.pipeline";
/// The snapshot summary property naming the invocation that committed it (Lambda's request id;
/// `replay:EVENT` in a replay), to find its logs.
pub const INVOCATION_PROPERTY: &str = "sluice.invocation";

tokio::task_local! {
    /// The table session of the invocation being handled (see [`with_session`]).
    static SESSION: Arc<Session>;
    /// The id of the invocation being handled (see [`with_invocation`]).
    static INVOCATION: String;
}

/// Run `work` as the invocation `id`: a snapshot it commits records the id.
pub async fn with_invocation<F: std::future::Future>(id: String, work: F) -> F::Output {
    INVOCATION.scope(id, work).await
}

/// Run `work` with `session` as the invocation's table session: the units of work inside it
/// write their rows into its table.
pub(crate) async fn with_session<F: std::future::Future>(
    session: Option<Arc<Session>>,
    work: F,
) -> F::Output {
    match session {
        Some(s) => SESSION.scope(s, work).await,
        None => work.await,
    }
}

/// The current invocation's table session, if its output is a table.
pub(crate) fn session() -> Option<Arc<Session>> {
    SESSION.try_with(Arc::clone).ok()
}

/// Where a pipeline's table is, and its catalog once opened (kept for the invocations that
/// follow in the same process).
pub struct Target {
    spec: TableSpec,
    ident: TableIdent,
    /// The table's files' storage, or why the output cannot hold a table.
    io: Result<StoreIo, String>,
    /// The key prefix the table's folder is under (`prefix/namespace/name`).
    dir: String,
    /// The output's local folder, which a relative SQLite path is relative to.
    local: Option<std::path::PathBuf>,
    pipeline: String,
    /// The AWS endpoint the catalog's client talks to (Glue; replay's --endpoint-url), else the
    /// SDK's default for the environment.
    endpoint: Option<String>,
    catalog: tokio::sync::OnceCell<Arc<dyn Catalog>>,
    /// `commit = "queue"`: the queue the invocations' files are sent to.
    queue: Option<queue::Queue>,
    /// `sluice bench`: the SQLite file that stands in for the configured catalog.
    bench_catalog: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("table", &self.spec.ident())
            .finish()
    }
}

impl Target {
    /// The table of `spec`, its files under `dest` of `output`.
    pub(crate) fn new(
        spec: &TableSpec,
        dest: &Destination,
        output: &Arc<dyn ObjectStore>,
        pipeline: &str,
    ) -> Self {
        let resolved = crate::write::resolve(dest, output);
        let (io, prefix, local) = match resolved {
            Some((store, bucket, prefix)) => {
                let local = store.local_root().map(std::path::Path::to_path_buf);
                (StoreIo::new(store, &bucket), prefix, local)
            }
            None => (
                Err(format!("{dest} cannot hold a table")),
                String::new(),
                None,
            ),
        };
        let dir = format!("{prefix}{}/{}", spec.namespace.join("/"), spec.name);
        Target {
            spec: spec.clone(),
            ident: TableIdent::new(
                NamespaceIdent::from_vec(spec.namespace.clone()).unwrap_or_else(|_| {
                    NamespaceIdent::new(spec.namespace.first().cloned().unwrap_or_default())
                }),
                spec.name.clone(),
            ),
            io,
            dir,
            local,
            pipeline: pipeline.to_string(),
            endpoint: None,
            catalog: tokio::sync::OnceCell::new(),
            queue: match &spec.commit {
                crate::config::CommitMode::Queue(q) => Some(queue::Queue::new(q, None)),
                crate::config::CommitMode::Direct => None,
            },
            bench_catalog: None,
        }
    }

    /// The same table, its catalog's AWS client at `endpoint` (the one the stores use).
    pub(crate) fn with_endpoint(mut self, endpoint: Option<&str>) -> Self {
        self.endpoint = endpoint.map(str::to_string);
        if let crate::config::CommitMode::Queue(q) = &self.spec.commit {
            let fresh = queue::Queue::new(q, endpoint);
            let taken = self.queue.as_ref().is_some_and(queue::Queue::is_taken);
            self.queue = Some(if taken { fresh.taking() } else { fresh });
        }
        self
    }

    /// The same table for `sluice bench`: its catalog a SQLite file at `catalog` whatever the
    /// config names (a bench never creates or commits tables in Glue or a REST catalog), its
    /// commit messages taken, never sent (a committer must not be handed a scratch folder's
    /// files). Requests are priced for the configured catalog all the same.
    pub(crate) fn benched(mut self, catalog: &std::path::Path) -> Self {
        self.bench_catalog = Some(catalog.to_path_buf());
        self.queue = self.queue.take().map(queue::Queue::taking);
        self
    }

    /// `sluice bench`, after an invocation: the table dropped from the bench's catalog, so the
    /// next invocation (whose files are emptied) starts from none, as the first did.
    pub(crate) async fn forget(&self) {
        if self.bench_catalog.is_none() {
            return;
        }
        if let Ok(catalog) = self.catalog().await
            && catalog.table_exists(&self.ident).await.unwrap_or(false)
            && let Err(e) = catalog.drop_table(&self.ident).await
        {
            tracing::warn!(table = %self.name(), error = %e, "Cannot drop the bench's table.");
        }
    }

    /// Whether the invocations' files go to a queue for the committer (`commit = "queue"`).
    pub(crate) fn queued(&self) -> bool {
        self.queue.is_some()
    }

    /// `commit = "queue"`: how many messages wait in the queue and how many are being
    /// committed (SQS's approximate counts).
    pub async fn queue_depth(&self) -> Option<Result<(u64, u64), Error>> {
        Some(self.queue.as_ref()?.depth().await)
    }

    /// `namespace.name`.
    pub(crate) fn name(&self) -> String {
        self.spec.ident()
    }

    /// How the catalog's tables keep timestamps.
    fn zones(&self) -> schema::Zones {
        match self.spec.catalog {
            CatalogSpec::Glue => schema::Zones::Utc,
            _ => schema::Zones::Kept,
        }
    }

    fn io(&self) -> Result<&StoreIo, Error> {
        self.io.as_ref().map_err(|m| Error::Store {
            location: self.name(),
            message: m.clone(),
            retryable: false,
        })
    }

    /// A catalog error as Sluice's, for this table.
    fn error(&self, doing: &str, e: iceberg::Error) -> Error {
        Error::Store {
            location: format!("table {}", self.name()),
            message: format!("{doing}: {e}"),
            retryable: e.retryable() || e.kind() == ErrorKind::CatalogCommitConflicts,
        }
    }

    /// The catalog, opened on first use.
    async fn catalog(&self) -> Result<Arc<dyn Catalog>, Error> {
        self.catalog
            .get_or_try_init(|| self.open_catalog())
            .await
            .cloned()
    }

    async fn open_catalog(&self) -> Result<Arc<dyn Catalog>, Error> {
        let io = self.io()?.clone();
        let warehouse = io.uri(self.dir.rsplit_once('/').map_or("", |(p, _)| p));
        let bench = self.bench_catalog.clone().map(CatalogSpec::Sqlite);
        match bench.as_ref().unwrap_or(&self.spec.catalog) {
            CatalogSpec::Sqlite(path) => {
                let path = match (&self.local, path.is_relative()) {
                    (Some(root), true) => root.join(path),
                    _ => path.clone(),
                };
                let path = std::path::absolute(&path).unwrap_or(path);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| Error::Store {
                        location: path.display().to_string(),
                        message: format!("cannot make the catalog's folder: {e}"),
                        retryable: false,
                    })?;
                }
                let uri = format!("sqlite://{}?mode=rwc", path.display());
                let catalog = iceberg_catalog_sql::SqlCatalogBuilder::default()
                    .uri(uri)
                    .warehouse_location(warehouse)
                    .sql_bind_style(iceberg_catalog_sql::SqlBindStyle::QMark)
                    .with_storage_factory(Arc::new(StoreIoFactory::new(io)))
                    .load("sluice", HashMap::new())
                    .await
                    .map_err(|e| Error::Store {
                        location: format!("sqlite:{}", path.display()),
                        message: format!("opening the table catalog: {e}"),
                        retryable: e.retryable(),
                    })?;
                Ok(Arc::new(catalog))
            }
            CatalogSpec::Glue => {
                let mut props = HashMap::from([("warehouse".to_string(), warehouse)]);
                if let Some(url) = &self.endpoint {
                    props.insert("uri".to_string(), url.clone());
                }
                let catalog = iceberg_catalog_glue::GlueCatalogBuilder::default()
                    .with_storage_factory(Arc::new(StoreIoFactory::new(io)))
                    .load("sluice", props)
                    .await
                    .map_err(|e| Error::Store {
                        location: "glue".into(),
                        message: format!("opening the Glue Data Catalog: {e}"),
                        retryable: e.retryable(),
                    })?;
                Ok(Arc::new(catalog))
            }
            CatalogSpec::Rest(r) => {
                let signer = match &r.sigv4 {
                    Some(service) => {
                        let sdk = crate::aws::sdk_config(None).await;
                        Some(rest::Signer::new(service, &sdk).map_err(|m| Error::Store {
                            location: r.uri.clone(),
                            message: m,
                            retryable: false,
                        })?)
                    }
                    None => None,
                };
                // The server may put a table in another bucket (S3 Tables does): the store's
                // other buckets are the table's too.
                let factory = Arc::new(StoreIoFactory::new(io.any_bucket()));
                let catalog =
                    rest::RestCatalog::connect(&r.uri, r.warehouse.as_deref(), signer, factory)
                        .await
                        .map_err(|e| Error::Store {
                            location: r.uri.clone(),
                            message: format!("opening the REST catalog: {e}"),
                            retryable: e.retryable(),
                        })?;
                Ok(Arc::new(catalog))
            }
        }
    }

    /// An invocation's session: the table as it is now (if it exists) and the sources its
    /// snapshots hold.
    pub(crate) async fn begin(self: &Arc<Self>) -> Result<Arc<Session>, Error> {
        let catalog = self.catalog().await?;
        let table = self.load(&catalog).await?;
        let committed = table.as_ref().map(committed_sources).unwrap_or_default();
        Ok(Arc::new(Session {
            target: self.clone(),
            catalog,
            table: tokio::sync::Mutex::new(table),
            ranges: stream_ranges(&committed),
            committed,
        }))
    }

    /// The table, or `None` when it does not exist yet.
    async fn load(
        &self,
        catalog: &Arc<dyn Catalog>,
    ) -> Result<Option<iceberg::table::Table>, Error> {
        let exists = catalog
            .table_exists(&self.ident)
            .await
            .map_err(|e| self.error("looking the table up", e))?;
        if !exists {
            return Ok(None);
        }
        catalog
            .load_table(&self.ident)
            .await
            .map(Some)
            .map_err(|e| self.error("loading the table", e))
    }
}

/// How a snapshot names an S3 object it holds: `s3://bucket/key`, and `@` its version (else its
/// ETag) when the notification named one.
pub fn source_id(obj: &crate::trigger::ObjectRef) -> String {
    let at = obj.at();
    match at
        .version_id
        .or(at.etag.map(|e| e.trim_matches('"').to_string()))
    {
        Some(v) => format!("{}@{v}", obj.uri()),
        None => obj.uri(),
    }
}

/// How a snapshot names the Kinesis records it holds: `kinesis:{shard}#{first}..{last}`, the
/// sequence numbers of the first and last record of the batch.
pub fn stream_source(shard: &str, first: &str, last: &str) -> String {
    format!("kinesis:{shard}#{first}..{last}")
}

/// The shard and the first and last sequence numbers of a [`stream_source`].
pub(crate) fn stream_range(source: &str) -> Option<(&str, &str, &str)> {
    let (shard, range) = source.strip_prefix("kinesis:")?.rsplit_once('#')?;
    let (first, last) = range.split_once("..")?;
    Some((shard, first, last))
}

/// Sequence numbers in order: decimal strings of up to 128 digits, compared as numbers.
pub(crate) fn seq_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    (a.len(), a).cmp(&(b.len(), b))
}

/// The committed ranges of each shard, and their snapshots.
type Ranges = HashMap<String, Vec<(String, String, i64)>>;

fn stream_ranges(committed: &HashMap<String, i64>) -> Ranges {
    let mut out: Ranges = HashMap::new();
    for (source, snapshot) in committed {
        if let Some((shard, first, last)) = stream_range(source) {
            out.entry(shard.to_string()).or_default().push((
                first.to_string(),
                last.to_string(),
                *snapshot,
            ));
        }
    }
    out
}

/// The snapshot holding record `seq` of `shard`, if a committed range covers it.
fn covered(ranges: &Ranges, shard: &str, seq: &str) -> Option<i64> {
    ranges.get(shard)?.iter().find_map(|(first, last, snap)| {
        (seq_cmp(first, seq).is_le() && seq_cmp(seq, last).is_le()).then_some(*snap)
    })
}

/// The committed source `source` overlaps (the same object, or a range of the same shard that
/// shares a record with it), if any.
fn overlapping(
    committed: &HashMap<String, i64>,
    ranges: &Ranges,
    source: &str,
) -> Option<(String, i64)> {
    if let Some(snap) = committed.get(source) {
        return Some((source.to_string(), *snap));
    }
    let (shard, first, last) = stream_range(source)?;
    ranges
        .get(shard)?
        .iter()
        .find(|(f, l, _)| seq_cmp(f, last).is_le() && seq_cmp(first, l).is_le())
        .map(|(f, l, snap)| (stream_source(shard, f, l), *snap))
}

/// Every source recorded by the table's snapshots, with the snapshot that holds it.
fn committed_sources(table: &iceberg::table::Table) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for snap in table.metadata().snapshots() {
        let Some(list) = snap.summary().additional_properties.get(SOURCES_PROPERTY) else {
            continue;
        };
        if let Ok(sources) = serde_json::from_str::<Vec<String>>(list) {
            for s in sources {
                out.insert(s, snap.snapshot_id());
            }
        }
    }
    out
}

/// What one invocation does with its table.
pub(crate) struct Session {
    target: Arc<Target>,
    catalog: Arc<dyn Catalog>,
    /// The table as last loaded (created on first write when missing).
    table: tokio::sync::Mutex<Option<iceberg::table::Table>>,
    /// Sources already in the table when the invocation began, and their snapshots.
    committed: HashMap<String, i64>,
    /// Of those, the Kinesis ranges, by shard.
    ranges: Ranges,
}

/// The data files one unit of work wrote, and the sources (S3 objects, a Kinesis range) their
/// rows came from: committed whole or not at all.
#[derive(Debug, Default, Clone)]
pub struct Unit {
    /// The sources, as snapshots record them ([`source_id`], [`stream_source`]).
    pub sources: Vec<String>,
    /// The data files.
    pub files: Vec<DataFile>,
    /// The rows the files hold.
    pub rows: u64,
}

/// Files written by the units of an invocation, waiting for its commit.
#[derive(Debug, Default)]
pub struct Pending {
    /// Each unit's files and sources.
    pub units: Vec<Unit>,
}

impl Pending {
    /// Every unit's sources.
    pub fn sources(&self) -> Vec<String> {
        self.units
            .iter()
            .flat_map(|u| u.sources.iter().cloned())
            .collect()
    }

    /// Every unit's data files.
    pub fn files(&self) -> Vec<DataFile> {
        self.units
            .iter()
            .flat_map(|u| u.files.iter().cloned())
            .collect()
    }
}

impl Session {
    /// The table's name.
    pub(crate) fn name(&self) -> String {
        self.target.name()
    }

    /// Whether its files go to the committer's queue rather than into a commit of its own.
    pub(crate) fn queued(&self) -> bool {
        self.target.queued()
    }

    /// The snapshot that already holds `source`, if one does.
    pub(crate) fn committed(&self, source: &str) -> Option<i64> {
        self.committed.get(source).copied()
    }

    /// The snapshot that already holds Kinesis record `seq` of `shard`, if one does.
    pub(crate) fn committed_record(&self, shard: &str, seq: &str) -> Option<i64> {
        covered(&self.ranges, shard, seq)
    }

    /// The table, created from `schema` when it does not exist; an error names a column of
    /// `schema` the table cannot take.
    async fn table_for(
        &self,
        schema: &arrow_schema::SchemaRef,
    ) -> Result<iceberg::table::Table, Error> {
        let mut held = self.table.lock().await;
        let mut table = match held.take() {
            Some(t) => t,
            None => self.create(schema).await?,
        };
        if !schema::missing(table.metadata().current_schema(), schema).is_empty() {
            table = self.evolve(schema).await?;
        }
        *held = Some(table.clone());
        schema::check(table.metadata().current_schema(), schema, &self.name())?;
        Ok(table)
    }

    /// Add the columns of `schema` the table lacks (optional, so the rows already there read them
    /// as null), in a commit of their own before any data file is written with them. A conflict
    /// is retried on the refreshed table, where another invocation may have added them already.
    async fn evolve(
        &self,
        schema: &arrow_schema::SchemaRef,
    ) -> Result<iceberg::table::Table, Error> {
        let t = &self.target;
        let mut attempts_left = 100u32;
        loop {
            let Some(table) = t.load(&self.catalog).await? else {
                return Err(Error::Store {
                    location: format!("table {}", t.name()),
                    message: "the table disappeared while its schema was being changed".into(),
                    retryable: true,
                });
            };
            let missing = schema::missing(table.metadata().current_schema(), schema);
            if missing.is_empty() {
                return Ok(table);
            }
            let mut names = Vec::new();
            let tx = Transaction::new(&table);
            let mut update = tx.update_schema();
            for f in missing {
                let ty = schema::column_type(&f, t.zones()).map_err(Error::Data)?;
                names.push(f.name().clone());
                update = update.add_column(iceberg::transaction::AddColumn::optional(f.name(), ty));
            }
            let tx = update.apply(tx).map_err(|e| t.error("adding columns", e))?;
            let mut conflict = false;
            let done = Box::pin(tx.commit(self.catalog.as_ref()))
                .await
                .map_err(|e| {
                    conflict = e.kind() == ErrorKind::CatalogCommitConflicts;
                    t.error("adding columns", e)
                });
            match done {
                Ok(table) => {
                    tracing::info!(table = %t.name(), columns = ?names, "Added columns to the table.");
                    return Ok(table);
                }
                Err(e) if conflict => {
                    attempts_left = attempts_left.saturating_sub(1);
                    let past = match crate::store::request_deadline() {
                        Some(d) => std::time::Instant::now() >= d,
                        None => attempts_left == 0,
                    };
                    if past {
                        return Err(e);
                    }
                    tokio::time::sleep(jitter(std::time::Duration::from_millis(40))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Create the table (and its namespace) for `schema`; one another invocation created
    /// meanwhile is loaded instead.
    async fn create(
        &self,
        schema: &arrow_schema::SchemaRef,
    ) -> Result<iceberg::table::Table, Error> {
        let t = &self.target;
        let ns = t.ident.namespace();
        // Another invocation may create the namespace or the table at the same moment: whatever
        // the catalog calls the loser's error, the one that now exists is used.
        if let Err(e) = self.catalog.create_namespace(ns, HashMap::new()).await
            && !self.catalog.namespace_exists(ns).await.unwrap_or(false)
        {
            return Err(t.error("creating the namespace", e));
        }
        let ice = schema::table_schema(schema, t.zones()).map_err(Error::Data)?;
        let mut spec = UnboundPartitionSpec::builder();
        for p in &t.spec.partition {
            let Some(field) = ice.field_by_name(&p.column) else {
                return Err(Error::Data(format!(
                    "[output] partition names `{}`, which is not in the output",
                    p.column
                )));
            };
            let transform: iceberg::spec::Transform = p
                .transform
                .parse()
                .map_err(|e| Error::Data(format!("[output] partition: {e}")))?;
            let name = match transform {
                iceberg::spec::Transform::Identity => p.column.clone(),
                _ => format!(
                    "{}_{}",
                    p.column,
                    p.transform.split('[').next().unwrap_or_default()
                ),
            };
            spec = spec
                .add_partition_field(field.id, name, transform)
                .map_err(|e| Error::Data(format!("[output] partition: {e}")))?;
        }
        let location = t.io()?.uri(&t.dir);
        let creation = TableCreation::builder()
            .name(t.ident.name().to_string())
            .location(location)
            .schema(ice)
            .partition_spec(spec.build())
            .properties([
                (
                    "write.target-file-size-bytes".to_string(),
                    t.spec.target_file_bytes.to_string(),
                ),
                (
                    "created-by".to_string(),
                    format!("sluice {}", env!("CARGO_PKG_VERSION")),
                ),
                // Sluice retries a conflicting commit itself, after checking the refreshed
                // table for the same sources; the crate's own retry would re-apply without it.
                ("commit.retry.num-retries".to_string(), "0".to_string()),
            ])
            .build();
        match self.catalog.create_table(ns, creation).await {
            Ok(table) => Ok(table),
            Err(e) => match self.catalog.load_table(&t.ident).await {
                Ok(table) => Ok(table),
                Err(_) => Err(t.error("creating the table", e)),
            },
        }
    }

    /// Append `pending` in one snapshot that records its sources; a conflict is retried on the
    /// refreshed table until `deadline`. Returns the snapshot's id, or `None` when there was
    /// nothing to commit. When a refreshed table already holds one of the sources (another
    /// delivery of the same object committed meanwhile), nothing is committed and the error
    /// says so.
    pub(crate) async fn commit(&self, pending: Pending) -> Result<Appended, Error> {
        if pending.units.is_empty() {
            return Ok(Appended::default());
        }
        let t = &self.target;
        let sources = pending.sources();
        let files = pending.files();
        let mut properties = HashMap::from([(PIPELINE_PROPERTY.to_string(), t.pipeline.clone())]);
        if let Ok(id) = INVOCATION.try_with(Clone::clone) {
            properties.insert(INVOCATION_PROPERTY.to_string(), id);
        }
        let done = t
            .append(&self.catalog, properties, |current| {
                let Some(current) = current else {
                    // A source with no rows, and the table never created: nothing to record
                    // it in.
                    if files.is_empty() {
                        return Plan::Nothing;
                    }
                    return Plan::Refuse(Error::Store {
                        location: format!("table {}", t.name()),
                        message: "the table disappeared before the commit".into(),
                        retryable: true,
                    });
                };
                let already = committed_sources(current);
                let ranges = stream_ranges(&already);
                if let Some((s, snap)) = sources
                    .iter()
                    .find_map(|s| overlapping(&already, &ranges, s))
                {
                    return Plan::Refuse(Error::Store {
                        location: format!("table {}", t.name()),
                        message: format!(
                            "{s} was committed by another delivery meanwhile (snapshot {snap}); nothing of this one is committed, and a retry skips it"
                        ),
                        retryable: true,
                    });
                }
                Plan::Append {
                    files: files.clone(),
                    sources: sources.clone(),
                    extra: Vec::new(),
                }
            })
            .await?;
        if let Some(table) = &done.table {
            *self.table.lock().await = Some(table.clone());
        }
        Ok(done)
    }
}

/// What an append came to.
#[derive(Default)]
pub(crate) struct Appended {
    /// The new snapshot's id.
    pub snapshot: Option<i64>,
    /// The table after it; `None` when there was nothing to commit.
    pub table: Option<iceberg::table::Table>,
    /// Attempts that conflicted with another commit, and were tried again.
    pub conflicts: u32,
}

/// What an append puts in the table as it is now (see [`Target::append`]).
pub(crate) enum Plan {
    /// Nothing to commit.
    Nothing,
    /// These data files, in one snapshot recording these sources (and these other summary
    /// properties).
    Append {
        files: Vec<DataFile>,
        sources: Vec<String>,
        extra: Vec<(String, String)>,
    },
    /// Nothing, and this is why.
    Refuse(Error),
}

impl Target {
    /// Append to the table, in one snapshot, what `plan` makes of the table as it is now (or of
    /// its absence), with `properties` in the snapshot's summary beside the sources. A conflict
    /// (another commit came first) asks `plan` again of the refreshed table, until the
    /// invocation's deadline (without one, 100 times).
    pub(crate) async fn append(
        &self,
        catalog: &Arc<dyn Catalog>,
        mut properties: HashMap<String, String>,
        mut plan: impl FnMut(Option<&iceberg::table::Table>) -> Plan,
    ) -> Result<Appended, Error> {
        let mut wait = std::time::Duration::from_millis(20);
        let mut attempts_left = 100u32;
        let mut conflicts = 0;
        loop {
            // The table as it is now: created by this invocation, or refreshed after a conflict.
            let current = self.load(catalog).await?;
            let (files, mut sources) = match plan(current.as_ref()) {
                Plan::Nothing => {
                    return Ok(Appended {
                        conflicts,
                        ..Appended::default()
                    });
                }
                Plan::Refuse(e) => return Err(e),
                Plan::Append {
                    files,
                    sources,
                    extra,
                } => {
                    properties.extend(extra);
                    (files, sources)
                }
            };
            let Some(current) = current else {
                return Err(Error::Store {
                    location: format!("table {}", self.name()),
                    message: "there is no table to commit into".into(),
                    retryable: true,
                });
            };
            sources.sort();
            sources.dedup();
            properties.insert(
                SOURCES_PROPERTY.to_string(),
                serde_json::to_string(&sources).unwrap_or_default(),
            );
            let tx = Transaction::new(&current);
            let append = tx
                .fast_append()
                .add_data_files(files)
                .set_snapshot_properties(properties.clone());
            let tx = append
                .apply(tx)
                .map_err(|e| self.error("preparing the commit", e))?;
            // Only a conflict is retried here: a failed request was retried by the store's
            // client already, and the event's redelivery retries the rest.
            let mut conflict = false;
            let attempt = crate::store::bounded(&format!("table {}", self.name()), async {
                Box::pin(tx.commit(catalog.as_ref())).await.map_err(|e| {
                    conflict = e.kind() == ErrorKind::CatalogCommitConflicts;
                    self.error("committing", e)
                })
            })
            .await;
            match attempt {
                Ok(table) => {
                    return Ok(Appended {
                        snapshot: table.metadata().current_snapshot().map(|s| s.snapshot_id()),
                        table: Some(table),
                        conflicts,
                    });
                }
                Err(e) if conflict => {
                    conflicts += 1;
                    attempts_left = attempts_left.saturating_sub(1);
                    let past = match crate::store::request_deadline() {
                        Some(d) => std::time::Instant::now() + wait >= d,
                        None => attempts_left == 0,
                    };
                    if past {
                        return Err(e);
                    }
                    tracing::info!(table = %self.name(), error = %e, "Commit conflicted; retrying on the refreshed table.");
                    tokio::time::sleep(jitter(wait)).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// `d`, spread over [d/2, d) by the clock's nanoseconds, so writers that conflicted together do
/// not retry together.
fn jitter(d: std::time::Duration) -> std::time::Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos()) as u64;
    let half = d.as_nanos() as u64 / 2;
    std::time::Duration::from_nanos(half + nanos % half.max(1))
}

type Files = DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, Names>;

/// Data file names: `{base}-00000.parquet`, `{base}-00001.parquet`… counted per partition (each
/// partition's writer has its own copy), so a unit's files have the same names however the rows
/// were split: a redelivery overwrites the orphans of a failed commit instead of adding more.
#[derive(Debug)]
pub(crate) struct Names {
    base: String,
    next: std::sync::atomic::AtomicU64,
}

impl Clone for Names {
    fn clone(&self) -> Self {
        Names {
            base: self.base.clone(),
            next: std::sync::atomic::AtomicU64::new(
                self.next.load(std::sync::atomic::Ordering::Relaxed),
            ),
        }
    }
}

impl FileNameGenerator for Names {
    fn generate_file_name(&self) -> String {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}-{n:05}.parquet", self.base)
    }
}

enum Inner {
    Partitioned {
        splitter: Box<iceberg::arrow::RecordBatchPartitionSplitter>,
        writer: Box<FanoutWriter<Files>>,
    },
    Plain(Box<UnpartitionedWriter<Files>>),
}

/// The rows of one unit of work as data files of the invocation's table (not yet committed).
pub(crate) struct TableWriter {
    session: Arc<Session>,
    /// Names the files: `{base}-00000.parquet`, deterministic for the unit's sources.
    base: String,
    props: WriterProperties,
    open: Option<(arrow_schema::SchemaRef, Inner)>,
    /// The partitions written so far (each holds an open data file until the unit closes) and
    /// how many may be: `[output] max_open_partitions`.
    partitions: std::collections::HashSet<iceberg::spec::Struct>,
    max_partitions: usize,
}

impl TableWriter {
    /// A writer into `session`'s table, its files named after `base`, into at most
    /// `max_partitions` partitions.
    pub(crate) fn new(
        session: Arc<Session>,
        base: &str,
        props: WriterProperties,
        max_partitions: usize,
    ) -> Self {
        Self {
            session,
            base: base.to_string(),
            props,
            open: None,
            partitions: Default::default(),
            max_partitions,
        }
    }

    /// Write one batch (the table created from its schema first, when missing).
    pub(crate) async fn write(&mut self, batch: &RecordBatch) -> Result<(), Error> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.open.is_none() {
            // A column's dictionary is chosen from the first batch, as for plain Parquet outputs.
            let props = crate::write::with_dictionaries(self.props.clone(), batch);
            let started =
                Box::pin(start(&self.session, &self.base, &props, &batch.schema())).await?;
            self.open = Some(started);
        }
        let Some((target, inner)) = self.open.as_mut() else {
            return Ok(());
        };
        let rows = schema::conform(batch, target)?;
        let name = self.session.name();
        let fail = |e: iceberg::Error| Error::Store {
            location: format!("table {name}"),
            message: format!("writing a data file: {e}"),
            retryable: e.retryable(),
        };
        match inner {
            Inner::Plain(w) => w.write(rows).await.map_err(fail)?,
            Inner::Partitioned { splitter, writer } => {
                let parts = splitter
                    .split(&rows)
                    .map_err(|e| Error::Data(format!("partitioning rows for table {name}: {e}")))?;
                for (key, part) in parts {
                    if !self.partitions.contains(key.data()) {
                        // Each partition keeps a data file (and its row group) open: bounded.
                        if self.partitions.len() >= self.max_partitions {
                            return Err(Error::Processor(sluice_processors::Error::Limit {
                                what: format!(
                                    "the number of table partitions written for one unit of work ({})",
                                    self.partitions.len() + 1
                                ),
                                limit: self.max_partitions as u64,
                                setting: "output.max_open_partitions",
                            }));
                        }
                        self.partitions.insert(key.data().clone());
                    }
                    writer.write(key, part).await.map_err(fail)?;
                }
            }
        }
        Ok(())
    }
}

/// The writers of a unit's data files, for the table `schema` goes into (created when missing):
/// the table's schema in Arrow, and the writer (partitioned by the table's spec).
async fn start(
    session: &Arc<Session>,
    base: &str,
    props: &WriterProperties,
    schema: &arrow_schema::SchemaRef,
) -> Result<(arrow_schema::SchemaRef, Inner), Error> {
    let table = session.table_for(schema).await?;
    let name = session.name();
    let fail = |e: iceberg::Error| Error::Store {
        location: format!("table {name}"),
        message: format!("preparing data files: {e}"),
        retryable: e.retryable(),
    };
    let meta = table.metadata();
    let ice = meta.current_schema().clone();
    let target = Arc::new(iceberg::arrow::schema_to_arrow_schema(&ice).map_err(fail)?);
    let files = DataFileWriterBuilder::new(RollingFileWriterBuilder::new(
        ParquetWriterBuilder::new(props.clone(), ice.clone()),
        session.target.spec.target_file_bytes as usize,
        table.file_io().clone(),
        DefaultLocationGenerator::new(meta).map_err(fail)?,
        Names {
            base: base.to_string(),
            next: std::sync::atomic::AtomicU64::new(0),
        },
    ));
    let spec = meta.default_partition_spec().clone();
    let inner = if spec.is_unpartitioned() {
        Inner::Plain(Box::new(UnpartitionedWriter::new(files)))
    } else {
        let splitter = iceberg::arrow::RecordBatchPartitionSplitter::try_new_with_computed_values(
            ice.clone(),
            spec,
        )
        .map_err(fail)?;
        Inner::Partitioned {
            splitter: Box::new(splitter),
            writer: Box::new(FanoutWriter::new(files)),
        }
    };
    Ok((target, inner))
}

impl TableWriter {
    /// Close every file: the data files written, in name order (none when no row came).
    pub(crate) async fn close(self) -> Result<Vec<DataFile>, Error> {
        let Some((_, inner)) = self.open else {
            return Ok(Vec::new());
        };
        let name = self.session.name();
        let closed = match inner {
            Inner::Plain(w) => w.close().await,
            Inner::Partitioned { writer, .. } => writer.close().await,
        };
        let mut files = closed.map_err(|e| Error::Store {
            location: format!("table {name}"),
            message: format!("closing a data file: {e}"),
            retryable: e.retryable(),
        })?;
        files.sort_by(|a, b| a.file_path().cmp(b.file_path()));
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(seq_cmp("9", "10").is_lt());
        assert!(
            seq_cmp(
                "49590338271490256608559692538361571095921575989136588898",
                "49590338271490256608559692538361571095921575989136588899"
            )
            .is_lt()
        );
        assert!(seq_cmp("100", "100").is_eq());
    }

    #[test]
    fn committed_ranges_cover_their_records_and_overlaps_are_found() {
        let a = stream_source("shardId-000000000001", "100", "199");
        let committed = HashMap::from([(a.clone(), 7), ("s3://b/k@e".to_string(), 8)]);
        let ranges = stream_ranges(&committed);
        assert_eq!(covered(&ranges, "shardId-000000000001", "100"), Some(7));
        assert_eq!(covered(&ranges, "shardId-000000000001", "199"), Some(7));
        assert_eq!(covered(&ranges, "shardId-000000000001", "99"), None);
        assert_eq!(covered(&ranges, "shardId-000000000001", "1000"), None);
        assert_eq!(covered(&ranges, "shardId-000000000002", "150"), None);
        // A batch sharing a record with a committed one overlaps it; one after it does not.
        let later = stream_source("shardId-000000000001", "150", "250");
        assert_eq!(
            overlapping(&committed, &ranges, &later),
            Some((a.clone(), 7))
        );
        let after = stream_source("shardId-000000000001", "200", "250");
        assert_eq!(overlapping(&committed, &ranges, &after), None);
        assert_eq!(
            overlapping(&committed, &ranges, "s3://b/k@e"),
            Some(("s3://b/k@e".to_string(), 8))
        );
        assert_eq!(overlapping(&committed, &ranges, "s3://b/k@other"), None);
    }
}
