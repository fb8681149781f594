//! The local driver: objects are files under a root directory.
//!
//! Atomicity comes from the usual recipe: write a temporary file in
//! `<root>/_tmp/`, `fsync` it, `rename` it over the target, `fsync` the
//! target's directory. Temporary files live in their own directory so that
//! listings of real directories never see them, and so that leftovers of a
//! crash can be swept at start.
//!
//! Blocking file calls run on tokio's blocking pool; reads and writes move
//! data in chunks of up to 1 MiB (`CHUNK`), so a blob is never held whole in
//! memory. This module must not know what the paths mean.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use super::{ByteStream, DriverError, Meta, Storage, StorageError, Writer, check_path};

/// Read and write granularity. Large enough to keep the number of blocking
/// calls (and syscalls) per blob low, small enough to bound memory.
const CHUNK: usize = 1 << 20;

/// Temporary files older than this are leftovers of a crash (when another
/// process may be using the root; see [`Filesystem::new`]).
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Held (locked) by the process using the root, in [`TMP_DIR`].
const LOCK_FILE: &str = ".lock";

/// Directory of in-flight temporary files, relative to the root.
const TMP_DIR: &str = "_tmp";

/// Files under one root directory.
#[derive(Debug, Clone)]
pub struct Filesystem {
    root: PathBuf,
}

impl Filesystem {
    /// Uses (and creates) `root`; removes leftover temporary files: all of
    /// them when this process is the only one using the root (it holds the
    /// root's lock, kept until exit, so a crash releases it), else those
    /// older than [`STALE_TEMP`].
    pub fn new(root: &str) -> Result<Self, DriverError> {
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
                    || e
                    .metadata()
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
    fs::create_dir_all(parent)?;
    if let Err(e) = fs::rename(temp, target) {
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
            let range = range.unwrap_or(0..size);
            if range.start > range.end || range.end > size {
                return Err(StorageError::InvalidRange {
                    path: path.to_owned(),
                    start: range.start,
                    end: range.end,
                    size,
                });
            }
            let owned = path.to_owned();
            let state = (Some(file), range.start, range.end, true);
            let stream = futures::stream::try_unfold(state, move |(file, pos, end, first)| {
                let owned = owned.clone();
                async move {
                    let Some(mut file) = file else {
                        return Ok(None);
                    };
                    if pos >= end {
                        return Ok(None);
                    }
                    let want = usize::try_from(end - pos).unwrap_or(CHUNK).min(CHUNK);
                    let (file, buf) = blocking(&owned, move || {
                        if first && pos > 0 {
                            file.seek(SeekFrom::Start(pos))?;
                        }
                        let mut buf = BytesMut::zeroed(want);
                        let mut filled = 0;
                        while filled < want {
                            match file.read(&mut buf[filled..])? {
                                0 => break,
                                n => filled += n,
                            }
                        }
                        if filled == 0 {
                            return Err(std::io::ErrorKind::UnexpectedEof.into());
                        }
                        buf.truncate(filled);
                        Ok((file, buf.freeze()))
                    })
                    .await?;
                    let next = pos + buf.len() as u64;
                    Ok(Some((buf, (Some(file), next, end, false))))
                }
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
                    fs::create_dir_all(parent)?;
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
                buf: BytesMut::new(),
                size,
                start: size,
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
                for e in fs::read_dir(full)? {
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

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        async move {
            let src = self.full(from)?;
            let dst = self.full(to)?;
            blocking(from, move || {
                let parent = dst.parent().unwrap_or(Path::new("."));
                fs::create_dir_all(parent)?;
                fs::rename(&src, &dst)?;
                sync_dir(parent)
            })
            .await
        }
        .boxed()
    }
}

/// Buffers small writes into [`CHUNK`]-sized blocking writes.
struct FsWriter {
    path: String,
    file: Option<fs::File>,
    target: PathBuf,
    /// Set for non-appending writers: where the bytes go until commit.
    temp: Option<PathBuf>,
    buf: BytesMut,
    size: u64,
    /// Size of an appended file before this writer: a failed write (a full
    /// disk) cuts the file back to it, so the upload is as it was before
    /// the request and its space is given back.
    start: u64,
}

impl FsWriter {
    async fn flush(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let data = self.buf.split().freeze();
        let mut file = self
            .file
            .take()
            .ok_or_else(|| StorageError::io(&self.path, std::io::Error::other("writer closed")))?;
        let start = self.temp.is_none().then_some(self.start);
        let file = blocking(&self.path, move || match file.write_all(&data) {
            Ok(()) => Ok(file),
            Err(e) => {
                if let Some(start) = start {
                    let _ = file.set_len(start);
                }
                Err(e)
            }
        })
        .await?;
        self.file = Some(file);
        Ok(())
    }
}

impl Writer for FsWriter {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), StorageError>> {
        async move {
            self.size += data.len() as u64;
            self.buf.extend_from_slice(&data);
            if self.buf.len() >= CHUNK {
                self.flush().await?;
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
            let file = self.file.take();
            let temp = self.temp.take();
            let target = self.target.clone();
            blocking(&self.path, move || {
                if let Some(f) = file {
                    f.sync_all()?;
                }
                match temp {
                    Some(t) => publish(&t, &target),
                    None => Ok(()),
                }
            })
            .await
        }
        .boxed()
    }

    fn cancel(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        async move {
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
mod tests {
    #[tokio::test]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let fs = super::Filesystem::new(dir.path().to_str().unwrap()).unwrap();
        crate::registry::storage::conformance::run(&fs).await;
    }
}
