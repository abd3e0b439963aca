//! The filesystem store: `s3://bucket/key` is `ROOT/bucket/key`.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt;

use super::{ByteReader, ObjectMeta, ObjectStore, ObjectWriter};
use crate::Error;

/// Objects as files under a root folder. No bucket or key can reach outside the root.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
    /// Ignore the bucket: `key` is `ROOT/key` (for `[output] uri` that is a local folder).
    flat: bool,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Marks the name of a file being written (renamed into place when complete).
const TMP_MARK: &str = ".sluice-tmp-";

impl FsStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            flat: false,
        }
    }

    /// A store where every key is a path under `root`, whatever the bucket.
    pub fn flat(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            flat: true,
        }
    }

    /// The folder of `bucket` (the root itself when flat), refusing a name that is not a plain
    /// folder name.
    fn bucket_dir(&self, bucket: &str) -> Result<PathBuf, Error> {
        if self.flat {
            return Ok(self.root.clone());
        }
        if bucket.is_empty()
            || bucket.contains(['/', '\\', '\0'])
            || bucket == "."
            || bucket == ".."
        {
            return Err(Error::Store {
                location: format!("s3://{bucket}/"),
                message: "refused: the bucket name cannot be used as a folder name".into(),
                retryable: false,
            });
        }
        Ok(self.root.join(bucket))
    }

    /// Why `bucket/key` is not there: the file it would be, or (an error of the run, not of the
    /// object) a store folder that does not exist at all, named absolutely, as a store run from
    /// the wrong folder (the default `fixtures/objects` is relative) has none.
    fn missing(&self, bucket: &str, key: &str, path: &Path) -> Error {
        if !self.root.is_dir() {
            let abs = std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone());
            return Error::Store {
                location: format!("s3://{bucket}/{key}"),
                message: format!(
                    "the local store {} is not a folder (it holds s3://bucket/key as FOLDER/bucket/key); \
                     name it with --store, or run from the folder that holds it",
                    abs.display()
                ),
                retryable: false,
            };
        }
        Error::Missing {
            location: format!("s3://{bucket}/{key}"),
            looked_for: Some(path.display().to_string()),
        }
    }

    /// The file for `bucket/key`, refusing anything that would leave the root.
    pub fn path(&self, bucket: &str, key: &str) -> Result<PathBuf, Error> {
        let bad = |why: &str| Error::Store {
            location: format!("s3://{bucket}/{key}"),
            message: format!("refused: {why}"),
            retryable: false,
        };
        if key.contains('\0') {
            return Err(bad("the key contains a NUL byte"));
        }
        let mut p = self
            .bucket_dir(bucket)
            .map_err(|_| bad("the bucket name cannot be used as a folder name"))?;
        let mut any = false;
        for seg in key.split('/') {
            if seg.is_empty() {
                continue;
            }
            if seg == "." || seg == ".." {
                return Err(bad(
                    "the key has a `.` or `..` segment, which would leave the store folder",
                ));
            }
            let sp = Path::new(seg);
            if sp.components().count() != 1
                || !matches!(sp.components().next(), Some(Component::Normal(_)))
            {
                return Err(bad("the key has a segment that is not a plain file name"));
            }
            p.push(seg);
            any = true;
        }
        if !any {
            return Err(bad("the key is empty"));
        }
        Ok(p)
    }
}

impl ObjectStore for FsStore {
    /// A folder keeps one content per key: `_at` is not checked.
    fn get<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        _at: &'a super::At,
    ) -> BoxFuture<'a, Result<ByteReader, Error>> {
        async move {
            let path = self.path(bucket, key)?;
            let missing = || self.missing(bucket, key, &path);
            match std::fs::File::open(&path) {
                Ok(f) => {
                    if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
                        return Err(missing());
                    }
                    Ok(Box::pin(LocalFile(f)) as ByteReader)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing()),
                Err(e) => Err(Error::Store {
                    location: path.display().to_string(),
                    message: e.to_string(),
                    retryable: false,
                }),
            }
        }
        .boxed()
    }

    fn create<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        _meta: ObjectMeta<'a>,
    ) -> BoxFuture<'a, Result<Box<dyn ObjectWriter>, Error>> {
        async move {
            let path = self.path(bucket, key)?;
            let io = |e: std::io::Error| Error::Store {
                location: path.display().to_string(),
                message: e.to_string(),
                retryable: false,
            };
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir).await.map_err(io)?;
            }
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            remove_leftovers(&path).await;
            let tmp = path.with_file_name(format!(
                ".{name}{TMP_MARK}{}-{}-{}",
                std::process::id(),
                process_token(),
                TMP_SEQ.fetch_add(1, Ordering::Relaxed)
            ));
            let file = tokio::fs::File::create(&tmp).await.map_err(io)?;
            Ok(Box::new(FsWriter {
                file: Some(file),
                tmp,
                path,
                written: 0,
                published: false,
            }) as Box<dyn ObjectWriter>)
        }
        .boxed()
    }

    fn size<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        _at: &'a super::At,
    ) -> BoxFuture<'a, Result<u64, Error>> {
        async move {
            let path = self.path(bucket, key)?;
            match tokio::fs::metadata(&path).await {
                Ok(m) if m.is_file() => Ok(m.len()),
                _ => Err(self.missing(bucket, key, &path)),
            }
        }
        .boxed()
    }

    fn get_range<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        _at: &'a super::At,
        range: std::ops::Range<u64>,
    ) -> BoxFuture<'a, Result<Bytes, Error>> {
        async move {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            let path = self.path(bucket, key)?;
            let io = |e: std::io::Error| Error::Store {
                location: format!("s3://{bucket}/{key}"),
                message: format!("reading bytes {}..{}: {e}", range.start, range.end),
                retryable: false,
            };
            let mut f = tokio::fs::File::open(&path).await.map_err(io)?;
            f.seek(std::io::SeekFrom::Start(range.start))
                .await
                .map_err(io)?;
            let mut buf = vec![0; range.end.saturating_sub(range.start) as usize];
            f.read_exact(&mut buf).await.map_err(io)?;
            Ok(Bytes::from(buf))
        }
        .boxed()
    }

    fn location(&self, bucket: &str, key: &str) -> String {
        // No key: the folder itself (an index to search, say), not `s3://bucket/`.
        if key.trim_matches('/').is_empty()
            && let Ok(dir) = self.bucket_dir(bucket)
        {
            return dir.display().to_string();
        }
        self.path(bucket, key)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| format!("s3://{bucket}/{key}"))
    }

    fn root_uri(&self, bucket: &str) -> Option<String> {
        let dir = std::path::absolute(self.bucket_dir(bucket).ok()?).ok()?;
        let dir = dir.to_str()?.trim_end_matches('/');
        Some(format!("file://{dir}/"))
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn list<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, Error>> {
        async move {
            let listed = self.list_dated(bucket, prefix).await?;
            Ok(listed.into_iter().map(|(k, _)| k).collect())
        }
        .boxed()
    }

    fn list_dated<'a>(
        &'a self,
        bucket: &'a str,
        prefix: &'a str,
    ) -> BoxFuture<'a, Result<Vec<super::Dated>, Error>> {
        async move {
            // Keys are paths relative to the bucket's folder, with `/`; only the prefix's own
            // folder is walked.
            let base = self.bucket_dir(bucket)?;
            let start = match prefix.rfind('/').map(|i| &prefix[..i]) {
                Some(dir) if !dir.trim_matches('/').is_empty() => self.path(bucket, dir)?,
                _ => base.clone(),
            };
            let base2 = base.clone();
            let mut keys = tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                let mut todo = vec![start];
                while let Some(dir) = todo.pop() {
                    let Ok(rd) = std::fs::read_dir(&dir) else {
                        continue;
                    };
                    for e in rd.flatten() {
                        let p = e.path();
                        if p.is_dir() {
                            todo.push(p);
                        } else if let Ok(rel) = p.strip_prefix(&base2) {
                            let key = rel
                                .components()
                                .map(|c| c.as_os_str().to_string_lossy())
                                .collect::<Vec<_>>()
                                .join("/");
                            let when = e.metadata().and_then(|m| m.modified()).ok();
                            out.push((key, when));
                        }
                    }
                }
                out
            })
            .await
            .map_err(|e| Error::Io(format!("listing {}: {e}", base.display())))?;
            keys.retain(|(k, _)| k.starts_with(prefix) && !k.contains(TMP_MARK));
            keys.sort();
            Ok(keys)
        }
        .boxed()
    }

    fn delete<'a>(&'a self, bucket: &'a str, key: &'a str) -> BoxFuture<'a, Result<(), Error>> {
        async move {
            let path = self.path(bucket, key)?;
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::Store {
                    location: path.display().to_string(),
                    message: e.to_string(),
                    retryable: false,
                }),
            }
        }
        .boxed()
    }
}

/// A token of this process, in its temporary files' names: a file with this process's id but
/// another token is a former process's (a container's first process has the same id every time).
fn process_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let local = 0u8;
        let place = &local as *const u8 as u64;
        format!("{:x}", nanos ^ place.rotate_left(29))
    })
}

/// Whether the process `pid` still runs; where that cannot be told (no `/proc`), it may.
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// Remove what a killed process left in the folder of `path`, the first time this process writes
/// there: temporary files (`.{name}.sluice-tmp-{pid}-{token}-{n}`) whose process is gone, or
/// that carry this process's id but not its token (a former process with the same id). A live
/// writer's file — this process's own, or another running process's — is left alone.
async fn remove_leftovers(path: &Path) {
    static SWEPT: std::sync::Mutex<Option<std::collections::HashSet<PathBuf>>> =
        std::sync::Mutex::new(None);
    let Some(dir) = path.parent() else { return };
    {
        let Ok(mut swept) = SWEPT.lock() else { return };
        if !swept
            .get_or_insert_with(Default::default)
            .insert(dir.to_path_buf())
        {
            return;
        }
    }
    let Ok(mut rd) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(e)) = rd.next_entry().await {
        let file = e.file_name();
        let Some(rest) = file
            .to_str()
            .and_then(|f| f.split_once(TMP_MARK))
            .filter(|(name, _)| name.starts_with('.'))
            .map(|(_, rest)| rest)
        else {
            continue;
        };
        let mut parts = rest.split('-');
        let Some(pid) = parts.next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let stale = if pid == std::process::id() {
            // Not a file of ours (a name without our token): a former process's.
            parts.next() != Some(process_token())
        } else {
            !alive(pid)
        };
        if stale {
            let _ = tokio::fs::remove_file(e.path()).await;
        }
    }
}

/// A local file read in place: the kernel copies straight into the caller's buffer. `tokio::fs`
/// would hand each read to a blocking thread and copy it once more; reads of a local file are
/// short enough to make on the calling task (this store serves replay and benchmarks, not the
/// Lambda loop, which reads S3).
struct LocalFile(std::fs::File);

impl tokio::io::AsyncRead for LocalFile {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::io::Read;
        let n = loop {
            match self.0.read(buf.initialize_unfilled()) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        buf.advance(n);
        std::task::Poll::Ready(Ok(()))
    }
}

/// Writes to a temporary file beside the target and renames it into place on completion.
struct FsWriter {
    /// Open until sealed.
    file: Option<tokio::fs::File>,
    tmp: PathBuf,
    path: PathBuf,
    written: u64,
    /// Renamed into place (or aborted): nothing of it to clean up.
    published: bool,
}

impl FsWriter {
    fn err(&self, e: std::io::Error) -> Error {
        Error::Store {
            location: self.path.display().to_string(),
            message: e.to_string(),
            retryable: false,
        }
    }
}

impl ObjectWriter for FsWriter {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), Error>> {
        async move {
            let Some(f) = self.file.as_mut() else {
                return Err(self.err(std::io::Error::other("writer already closed")));
            };
            if let Err(e) = f.write_all(&data).await {
                return Err(self.err(e));
            }
            self.written += data.len() as u64;
            Ok(())
        }
        .boxed()
    }

    fn seal(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        async move {
            if let Some(mut f) = self.file.take()
                && let Err(e) = f.flush().await
            {
                return Err(self.err(e));
            }
            Ok(())
        }
        .boxed()
    }

    fn complete(&mut self) -> BoxFuture<'_, Result<u64, Error>> {
        async move {
            if self.published {
                return Err(self.err(std::io::Error::other("writer already closed")));
            }
            self.seal().await?;
            if let Err(e) = tokio::fs::rename(&self.tmp, &self.path).await {
                return Err(self.err(e));
            }
            self.published = true;
            Ok(self.written)
        }
        .boxed()
    }

    fn abort(&mut self) -> BoxFuture<'_, ()> {
        async move {
            self.file = None;
            if !self.published {
                self.published = true;
                let _ = tokio::fs::remove_file(&self.tmp).await;
            }
        }
        .boxed()
    }
}

impl Drop for FsWriter {
    fn drop(&mut self) {
        if !self.published {
            // Neither completed nor aborted: leave nothing half-written behind.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leftover sweep raced with this process's own writers: a temporary file of a live
    /// writer in the same folder (objects written concurrently) could be taken for a former
    /// process's when judged by its time. Judged by the process token, it never is.
    #[tokio::test]
    async fn the_sweep_keeps_this_process_files_and_removes_a_former_same_id_process_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path());
        let folder = dir.path().join("b/swept");
        std::fs::create_dir_all(&folder).unwrap();
        let pid = std::process::id();
        let ours = folder.join(format!(".x{TMP_MARK}{pid}-{}-99", process_token()));
        let former = folder.join(format!(".x{TMP_MARK}{pid}-0-1"));
        let dead = folder.join(format!(".x{TMP_MARK}{}-1-1", u32::MAX - 1));
        for f in [&ours, &former, &dead] {
            std::fs::write(f, b"partial").unwrap();
        }
        let mut w = s
            .create("b", "swept/y", ObjectMeta::typed("x"))
            .await
            .unwrap();
        assert!(ours.exists(), "a live writer's file was removed");
        assert!(!former.exists() && !dead.exists());
        w.abort().await;
    }

    #[test]
    fn no_key_leaves_the_root() {
        let s = FsStore::new("/data");
        assert_eq!(
            s.path("b", "a/b c/d.json").unwrap(),
            PathBuf::from("/data/b/a/b c/d.json")
        );
        assert_eq!(
            s.path("b", "/lead//double").unwrap(),
            PathBuf::from("/data/b/lead/double")
        );
        for (b, k) in [
            ("b", "../x"),
            ("b", "a/../../x"),
            ("..", "x"),
            ("b/c", "x"),
            ("b", "a/./x"),
            ("b", ""),
            ("b", "a\0b"),
            ("", "x"),
        ] {
            assert!(s.path(b, k).is_err(), "{b} {k}");
        }
    }

    #[tokio::test]
    async fn lists_the_keys_under_a_prefix_but_not_files_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path());
        for key in [
            "ix/_index/terms/a.parquet",
            "ix/_index/terms/b.parquet",
            "ix/_index/docs/a.parquet",
            "other/x",
        ] {
            crate::store::put(&s, "b", key, ObjectMeta::typed("x"), b"1".to_vec())
                .await
                .unwrap();
        }
        crate::store::put(
            &s,
            "c",
            "ix/_index/terms/z.parquet",
            ObjectMeta::typed("x"),
            Vec::new(),
        )
        .await
        .unwrap();
        // One being written: not listed.
        let _w = s
            .create("b", "ix/_index/terms/c.parquet", ObjectMeta::typed("x"))
            .await
            .unwrap();
        assert_eq!(
            s.list("b", "ix/_index/terms/").await.unwrap(),
            ["ix/_index/terms/a.parquet", "ix/_index/terms/b.parquet"]
        );
        assert_eq!(
            s.list("b", "ix/_index/terms/b").await.unwrap(),
            ["ix/_index/terms/b.parquet"]
        );
        assert_eq!(s.list("b", "").await.unwrap().len(), 4);
        assert!(s.list("b", "nothing/here/").await.unwrap().is_empty());
        assert!(s.list("..", "").await.is_err());
        let flat = FsStore::flat(dir.path().join("b/ix"));
        assert_eq!(
            flat.list("", "_index/docs/").await.unwrap(),
            ["_index/docs/a.parquet"]
        );
    }

    #[tokio::test]
    async fn writes_appear_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path());
        let mut w = s
            .create("b", "out/x.txt", ObjectMeta::typed("text/plain"))
            .await
            .unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        assert!(!dir.path().join("b/out/x.txt").exists());
        w.write(Bytes::from_static(b"world")).await.unwrap();
        assert_eq!(w.complete().await.unwrap(), 11);
        assert_eq!(
            std::fs::read(dir.path().join("b/out/x.txt")).unwrap(),
            b"hello world"
        );
        let mut w = s
            .create("b", "out/y.txt", ObjectMeta::typed("text/plain"))
            .await
            .unwrap();
        w.write(Bytes::from_static(b"partial")).await.unwrap();
        w.abort().await;
        let names: Vec<_> = std::fs::read_dir(dir.path().join("b/out"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.txt")]);
        let err = match s.get("b", "missing", super::super::At::latest()).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("found a missing object"),
        };
        assert!(err.contains("no such object"), "{err}");
    }
}
