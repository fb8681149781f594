//! The local driver: objects are files under a root directory.
//!
//! Atomicity comes from the usual recipe: write a temporary file in
//! `<root>/_tmp/`, `fsync` it, `rename` it over the target, `fsync` the
//! target's directory. A directory created on the way (a new repository, a
//! new blob's fan-out folder) has its own entry `fsync`ed in its parent
//! ([`create_dirs`]): without that, a power loss can forget the new
//! directory, and with it the renamed file inside, although the rename's
//! `fsync` returned. Temporary files live in their own directory so that
//! listings of real directories never see them, and so that leftovers of a
//! crash can be swept at start.
//!
//! Blocking file calls run on tokio's blocking pool. Blobs move in chunks
//! (256 KiB read, 1 MiB written), so a blob is never held whole in memory,
//! and each stream keeps one chunk of work in flight on the pool while the
//! network handles the previous one: a read runs one chunk ahead of the
//! client, a write one chunk behind, and an upload is flushed to disk in
//! the background as it arrives (see [`FsWriter`]). The batched calls
//! (garbage collection's stats, moves and removals) do a chunk of files
//! per hop (`batch.rs`). This module must not know what the paths mean.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use tokio::task::JoinHandle;

mod batch;

use super::{
    ByteStream, DriverError, Meta, Storage, StorageError, Writer, check_path, checked_range,
    fill_batch,
};

/// Write granularity. Large enough to keep the number of blocking calls
/// (and syscalls) per blob low, small enough to bound memory.
const CHUNK: usize = 1 << 20;

/// Most bytes per `write` system call: a chunk is written in pieces of
/// this size. On Linux with large page-cache folios (ext4 since 6.x), one
/// 1 MiB `write` asks for a 1 MiB folio, whose allocation may compact
/// memory when the page cache fills RAM; it cost about four times the
/// kernel time of 256 KiB writes per GiB in `benches/mirror.sh`.
const WRITE_PIECE: usize = 256 << 10;

/// A write of at least this many bytes goes to disk as it came, without
/// being copied into the writer's buffer (large chunks of a network body,
/// as the mirror passes on).
const SHARED_MIN: usize = 64 << 10;

/// Read granularity. A blob `GET` holds at most two of these (the chunk
/// being sent and the next, read ahead meanwhile), so sixteen clients
/// reading 1 MiB blobs cost 8 MiB, not 32.
const READ_CHUNK: usize = 256 << 10;

/// While an upload streams in, the data written so far is flushed to disk
/// in the background every this many bytes, so the disk works while the
/// network does and the `fsync` at commit finds little left to write.
const SYNC_EVERY: u64 = 32 << 20;

/// Temporary files older than this are leftovers of a crash (when another
/// process may be using the root; see [`Filesystem::new`]).
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Held (locked) by the process using the root, in [`TMP_DIR`].
const LOCK_FILE: &str = ".lock";

/// Directory of in-flight temporary files, relative to the root.
const TMP_DIR: &str = "_tmp";

/// Files under one root directory.
#[derive(Debug, Clone)]
pub(crate) struct Filesystem {
    root: PathBuf,
}

impl Filesystem {
    /// Uses (and creates) `root`; removes leftover temporary files: all of
    /// them when this process is the only one using the root (it holds the
    /// root's lock, kept until exit, so a crash releases it), else those
    /// older than [`STALE_TEMP`].
    pub(crate) fn new(root: &str) -> Result<Self, DriverError> {
        let root_err = |source| DriverError::Root {
            path: root.to_owned(),
            source,
        };
        let root = PathBuf::from(root);
        fs::create_dir_all(root.join(TMP_DIR)).map_err(root_err)?;
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join(TMP_DIR).join(LOCK_FILE));
        let alone = match lock {
            Ok(f) if f.try_lock().is_ok() => {
                // Held for the life of the process; the kernel releases it
                // at exit, however the process ends.
                std::mem::forget(f);
                true
            }
            _ => false,
        };
        if let Ok(entries) = fs::read_dir(root.join(TMP_DIR)) {
            let now = SystemTime::now();
            for e in entries.flatten() {
                if e.file_name() == LOCK_FILE {
                    continue;
                }
                let old = alone
                    || e.metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|m| now.duration_since(m).ok())
                        .is_some_and(|age| age > STALE_TEMP);
                if old {
                    // Best effort: a leftover that cannot be removed is harmless.
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(Self { root })
    }

    fn full(&self, path: &str) -> Result<PathBuf, StorageError> {
        check_path(path)?;
        Ok(self.root.join(path))
    }

    fn temp(&self) -> PathBuf {
        self.root
            .join(TMP_DIR)
            .join(uuid::Uuid::new_v4().simple().to_string())
    }
}

/// Runs blocking file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    path: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, StorageError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| StorageError::io(path, e)),
        Err(e) => Err(StorageError::io(path, std::io::Error::other(e))),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Creates `dir` and its missing ancestors, and `fsync`s the parent of each
/// directory it created, so that their entries are on disk before anything
/// placed inside them is reported durable. Nothing is synced when `dir`
/// exists already (the common case costs one `stat`).
fn create_dirs(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.exists() {
        missing.push(at);
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    fs::create_dir_all(dir)?;
    // Deepest first: each created directory's parent holds its entry (the
    // last parent is the ancestor that existed).
    for d in missing {
        if let Some(parent) = d.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Writes `data` to a fresh temporary file and renames it to `target`.
fn atomic_write(temp: &Path, target: &Path, data: &[u8]) -> std::io::Result<()> {
    let written = fs::File::create(temp).and_then(|mut f| {
        f.write_all(data)?;
        f.sync_all()
    });
    if let Err(e) = written {
        // A full disk must not keep the space of what failed to fit.
        let _ = fs::remove_file(temp);
        return Err(e);
    }
    publish(temp, target)
}

/// Renames `temp` to `target`, creating the parent, and makes it durable.
fn publish(temp: &Path, target: &Path) -> std::io::Result<()> {
    let parent = target.parent().unwrap_or(Path::new("."));
    let mut renamed = Ok(());
    // A folder removed between its creation and the rename (garbage
    // collection removing a link's folder as a push writes it) is made
    // again; twice is enough for any interleaving of one removal.
    for _ in 0..3 {
        create_dirs(parent)?;
        renamed = fs::rename(temp, target);
        match &renamed {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && temp.exists() => continue,
            _ => break,
        }
    }
    if let Err(e) = renamed {
        let _ = fs::remove_file(temp);
        return Err(e);
    }
    sync_dir(parent)
}

impl Storage for Filesystem {
    fn stat<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Meta, StorageError>> {
        async move {
            let full = self.full(path)?;
            blocking(path, move || {
                let m = fs::metadata(full)?;
                if m.is_dir() {
                    return Err(std::io::ErrorKind::NotFound.into());
                }
                Ok(Meta {
                    size: m.len(),
                    modified: m.modified()?,
                })
            })
            .await
        }
        .boxed()
    }

    fn get_bytes<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        async move {
            let full = self.full(path)?;
            blocking(path, move || fs::read(full).map(Bytes::from)).await
        }
        .boxed()
    }

    fn get<'a>(
        &'a self,
        path: &'a str,
        range: Option<Range<u64>>,
    ) -> BoxFuture<'a, Result<ByteStream, StorageError>> {
        async move {
            let full = self.full(path)?;
            let (file, size) = blocking(path, move || {
                let f = fs::File::open(full)?;
                let size = f.metadata()?.len();
                Ok((f, size))
            })
            .await?;
            let range = checked_range(path, range, size)?;
            let owned = path.to_owned();
            let reader = Reader {
                path: owned,
                file: Some(file),
                pos: range.start,
                end: range.end,
                seek: range.start > 0,
                ahead: None,
            };
            let stream = futures::stream::try_unfold(reader, |mut r| async move {
                let chunk = r.next().await?;
                Ok(chunk.map(|c| (c, r)))
            });
            Ok(stream.boxed())
        }
        .boxed()
    }

    fn put_bytes<'a>(
        &'a self,
        path: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        async move {
            let full = self.full(path)?;
            let temp = self.temp();
            blocking(path, move || atomic_write(&temp, &full, &data)).await
        }
        .boxed()
    }

    fn writer<'a>(
        &'a self,
        path: &'a str,
        append: bool,
    ) -> BoxFuture<'a, Result<Box<dyn Writer>, StorageError>> {
        async move {
            let target = self.full(path)?;
            let temp = (!append).then(|| self.temp());
            let open_at = temp.clone().unwrap_or_else(|| target.clone());
            let (file, size) = blocking(path, move || {
                if let Some(parent) = open_at.parent() {
                    create_dirs(parent)?;
                }
                let f = fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&open_at)?;
                let size = f.metadata()?.len();
                Ok((f, size))
            })
            .await?;
            let w: Box<dyn Writer> = Box::new(FsWriter {
                path: path.to_owned(),
                file: Some(file),
                target,
                temp,
                buf: Vec::new(),
                spare: Vec::new(),
                size,
                start: size,
                writing: None,
                syncing: None,
                unsynced: 0,
            });
            Ok(w)
        }
        .boxed()
    }

    fn list<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Vec<String>, StorageError>> {
        async move {
            let full = self.full(path)?;
            let r = blocking(path, move || {
                let mut out = Vec::new();
                // A file has no children (as on object stores): docker-registry's
                // v1 files sit among the repository directories.
                let dir = match fs::read_dir(full) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(out),
                    other => other?,
                };
                for e in dir {
                    if let Ok(name) = e?.file_name().into_string() {
                        out.push(name);
                    }
                }
                Ok(out)
            })
            .await;
            match r {
                Err(e) if e.is_not_found() => Ok(Vec::new()),
                other => other,
            }
        }
        .boxed()
    }

    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        async move {
            let full = self.full(path)?;
            let r = blocking(path, move || {
                let m = fs::symlink_metadata(&full)?;
                if m.is_dir() {
                    fs::remove_dir_all(&full)
                } else {
                    fs::remove_file(&full)
                }
            })
            .await;
            match r {
                Err(e) if e.is_not_found() => Ok(()),
                other => other,
            }
        }
        .boxed()
    }

    fn stat_each<'a>(
        &'a self,
        paths: &'a [String],
    ) -> BoxFuture<'a, Vec<Result<Meta, StorageError>>> {
        Filesystem::stat_each(self, paths).boxed()
    }

    fn rename_volatile_each<'a>(
        &'a self,
        pairs: &'a [(String, String)],
    ) -> BoxFuture<'a, Vec<Result<(), StorageError>>> {
        Filesystem::rename_volatile_each(self, pairs).boxed()
    }

    fn delete_each<'a>(&'a self, paths: &'a [String]) -> BoxFuture<'a, Vec<StorageError>> {
        Filesystem::delete_each(self, paths).boxed()
    }

    fn rename_volatile<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        async move {
            let src = self.full(from)?;
            let dst = self.full(to)?;
            blocking(from, move || {
                let parent = dst.parent().unwrap_or(Path::new("."));
                fs::create_dir_all(parent)?;
                fs::rename(&src, &dst)
            })
            .await
        }
        .boxed()
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        async move {
            let src = self.full(from)?;
            let dst = self.full(to)?;
            blocking(from, move || {
                let parent = dst.parent().unwrap_or(Path::new("."));
                create_dirs(parent)?;
                fs::rename(&src, &dst)?;
                sync_dir(parent)
            })
            .await
        }
        .boxed()
    }
}

/// Reads a range of a file on the blocking pool in [`READ_CHUNK`]s, one
/// chunk ahead of the consumer: the next chunk is read while the last one
/// is being sent.
struct Reader {
    path: String,
    /// `None` while a read owns it, and after the last read was started.
    file: Option<fs::File>,
    /// Where the next read starts.
    pos: u64,
    end: u64,
    /// The file position is not `pos` yet (a range not starting at 0).
    seek: bool,
    ahead: Option<JoinHandle<std::io::Result<(fs::File, Bytes)>>>,
}

impl Reader {
    fn read_ahead(&mut self) {
        if self.pos >= self.end {
            return;
        }
        let Some(mut file) = self.file.take() else {
            return;
        };
        let want = usize::try_from(self.end - self.pos)
            .unwrap_or(READ_CHUNK)
            .min(READ_CHUNK);
        let seek = std::mem::take(&mut self.seek).then_some(self.pos);
        self.pos += want as u64;
        // Allocated here, on a runtime thread, where it is also freed once
        // sent: buffers allocated on the many blocking-pool threads stay
        // cached in each thread's heap, and memory grows with the pool.
        let mut buf = Vec::with_capacity(want);
        self.ahead = Some(tokio::task::spawn_blocking(move || {
            if let Some(at) = seek {
                file.seek(SeekFrom::Start(at))?;
            }
            // Into spare capacity: the buffer is never zeroed first.
            (&mut file).take(want as u64).read_to_end(&mut buf)?;
            if buf.is_empty() {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok((file, Bytes::from(buf)))
        }));
    }

    async fn next(&mut self) -> Result<Option<Bytes>, StorageError> {
        if self.ahead.is_none() {
            self.read_ahead();
        }
        let Some(read) = self.ahead.take() else {
            return Ok(None);
        };
        let (file, chunk) = joined(&self.path, read).await?;
        self.file = Some(file);
        self.read_ahead();
        Ok(Some(chunk))
    }
}

/// The result of blocking work started earlier.
async fn joined<T>(path: &str, task: JoinHandle<std::io::Result<T>>) -> Result<T, StorageError> {
    match task.await {
        Ok(r) => r.map_err(|e| StorageError::io(path, e)),
        Err(e) => Err(StorageError::io(path, std::io::Error::other(e))),
    }
}

/// Gathers small writes into [`CHUNK`]-sized blocking writes (one of at
/// least [`SHARED_MIN`] bytes is written as it came), one in flight
/// while the next chunk fills, and starts flushing to disk every
/// [`SYNC_EVERY`] bytes without waiting for it; [`Writer::commit`] waits
/// for everything and `fsync`s.
struct FsWriter {
    path: String,
    /// `None` while a write owns it (or after a failed write).
    file: Option<fs::File>,
    target: PathBuf,
    /// Set for non-appending writers: where the bytes go until commit.
    temp: Option<PathBuf>,
    buf: Vec<u8>,
    /// The buffer of the last write, reused for the next chunk.
    spare: Vec<u8>,
    size: u64,
    /// Size of the object when the writer opened it: a failed append is
    /// cut back to it, so a chunk that did not fit (a full disk) leaves
    /// neither bytes nor used space behind.
    start: u64,
    /// The write in flight; it hands back the file and its buffer.
    writing: Option<PendingWrite>,
    /// The background flush in flight, on a second handle of the file.
    syncing: Option<JoinHandle<std::io::Result<()>>>,
    unsynced: u64,
}

/// A chunk being written on the blocking pool: it hands back the file and
/// (when it was the writer's own) the chunk's buffer for reuse.
type PendingWrite = JoinHandle<std::io::Result<(fs::File, Option<Vec<u8>>)>>;

/// What a blocking write writes: the writer's buffer, or a caller's large
/// chunk as it came.
enum Chunk {
    Owned(Vec<u8>),
    Shared(Bytes),
}

impl FsWriter {
    /// What to do to the file when a write or flush of it failed: cut an
    /// appended object back to where this writer started (a temporary file
    /// goes whole, on drop).
    fn undo(&self) -> impl FnOnce(&fs::File) + Send + 'static {
        let start = self.temp.is_none().then_some(self.start);
        move |f| {
            if let Some(start) = start {
                // Best effort: the error being reported matters more.
                let _ = f.set_len(start);
            }
        }
    }

    /// Waits for the write in flight, taking the file back.
    async fn settle(&mut self) -> Result<(), StorageError> {
        if let Some(w) = self.writing.take() {
            let (file, buf) = joined(&self.path, w).await?;
            if let Some(mut buf) = buf {
                buf.clear();
                self.spare = buf;
            }
            self.file = Some(file);
        }
        Ok(())
    }

    /// Hands the buffered bytes to a blocking write, after the previous one.
    async fn flush(&mut self) -> Result<(), StorageError> {
        self.settle().await?;
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = std::mem::take(&mut self.spare);
        let data = std::mem::replace(&mut self.buf, next);
        self.submit(Chunk::Owned(data)).await
    }

    /// Hands `data` to a blocking write, after the previous one.
    async fn submit(&mut self, data: Chunk) -> Result<(), StorageError> {
        self.settle().await?;
        let mut file = self
            .file
            .take()
            .ok_or_else(|| StorageError::io(&self.path, std::io::Error::other("writer closed")))?;
        let bytes = match &data {
            Chunk::Owned(v) => v.len(),
            Chunk::Shared(b) => b.len(),
        };
        self.unsynced += bytes as u64;
        if self.unsynced >= SYNC_EVERY && self.syncing.as_ref().is_none_or(JoinHandle::is_finished)
        {
            // An error of an earlier flush is found again by commit's fsync.
            self.unsynced = 0;
            let handle = file
                .try_clone()
                .map_err(|e| StorageError::io(&self.path, e))?;
            self.syncing = Some(tokio::task::spawn_blocking(move || handle.sync_data()));
        }
        let undo = self.undo();
        self.writing = Some(tokio::task::spawn_blocking(move || {
            let bytes: &[u8] = match &data {
                Chunk::Owned(v) => v,
                Chunk::Shared(b) => b,
            };
            for piece in bytes.chunks(WRITE_PIECE) {
                if let Err(e) = file.write_all(piece) {
                    undo(&file);
                    return Err(e);
                }
            }
            match data {
                Chunk::Owned(v) => Ok((file, Some(v))),
                Chunk::Shared(_) => Ok((file, None)),
            }
        }));
        Ok(())
    }
}

impl Writer for FsWriter {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), StorageError>> {
        async move {
            self.size += data.len() as u64;
            if data.len() >= SHARED_MIN {
                // What is buffered goes first, so the order holds.
                self.flush().await?;
                return self.submit(Chunk::Shared(data)).await;
            }
            let mut rest = &data[..];
            while !rest.is_empty() {
                if fill_batch(&mut self.buf, &mut rest, CHUNK) {
                    self.flush().await?;
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        async move {
            self.flush().await?;
            self.settle().await?;
            // A failed background flush must fail the commit: its error is
            // reported once, and the `fsync` below may not see it again.
            let flushed = match self.syncing.take() {
                Some(s) => s.await.unwrap_or_else(|e| Err(std::io::Error::other(e))),
                None => Ok(()),
            };
            let file = self.file.take();
            let temp = self.temp.take();
            let target = self.target.clone();
            let created = self.start == 0 && self.temp.is_none();
            let undo = self.undo();
            blocking(&self.path, move || {
                if let Some(f) = file
                    && let Err(e) = flushed.and_then(|()| f.sync_all())
                {
                    undo(&f);
                    return Err(e);
                }
                match temp {
                    Some(t) => publish(&t, &target),
                    // An appended file's own entry, when this writer made it.
                    None if created => sync_dir(target.parent().unwrap_or(Path::new("."))),
                    None => Ok(()),
                }
            })
            .await
        }
        .boxed()
    }

    fn cancel(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        async move {
            // Let the writes in flight end before the file goes.
            let _ = self.settle().await;
            if let Some(s) = self.syncing.take() {
                let _ = s.await;
            }
            self.file = None;
            if let Some(t) = self.temp.take() {
                blocking(&self.path, move || fs::remove_file(t)).await?;
            }
            Ok(())
        }
        .boxed()
    }
}

impl Drop for FsWriter {
    /// A writer dropped mid-way (a client hung up) leaves no temporary file.
    fn drop(&mut self) {
        if let Some(t) = self.temp.take() {
            let _ = fs::remove_file(t);
        }
    }
}

#[cfg(test)]
mod tests;
