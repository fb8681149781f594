//! The batched calls of [`Storage`](super::Storage) on local files: a
//! chunk of items per hop to the blocking pool, a few chunks at once.
//!
//! Garbage collection stats, moves and removes tens of thousands of small
//! files; one hop per file cost more than the file calls themselves (the
//! pool's threads waking each other). The file calls are the ones the
//! single-item methods make, minus what a batch makes redundant (a
//! trash folder created once, not tried per file). This module must not
//! know what the paths mean.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use futures::{StreamExt as _, stream};

use super::{Filesystem, Meta, StorageError};

/// Items per hop to the blocking pool.
const CHUNK: usize = 256;

/// Chunks in flight at once (file calls that wait for the disk overlap).
const IN_FLIGHT: usize = 4;

/// Runs `op` on each item on the blocking pool, [`CHUNK`] items per hop;
/// results in the order of `items`. An item whose path the driver refuses
/// keeps its error.
async fn chunked<T, R>(
    items: Vec<(String, Result<T, StorageError>)>,
    op: fn(&T) -> std::io::Result<R>,
    finish: Option<fn(&[T])>,
) -> Vec<Result<R, StorageError>>
where
    T: Send + 'static,
    R: Send + 'static,
{
    let mut chunks = Vec::with_capacity(items.len().div_ceil(CHUNK));
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(CHUNK).collect::<Vec<_>>());
    }
    stream::iter(chunks)
        .map(|chunk| async move {
            let n = chunk.len();
            let done = tokio::task::spawn_blocking(move || {
                let mut ok = Vec::with_capacity(chunk.len());
                let out: Vec<_> = chunk
                    .into_iter()
                    .map(|(path, item)| match item {
                        Ok(t) => {
                            let r = op(&t).map_err(|e| StorageError::io(&path, e));
                            ok.push(t);
                            r
                        }
                        Err(e) => Err(e),
                    })
                    .collect();
                if let Some(finish) = finish {
                    finish(&ok);
                }
                out
            })
            .await;
            match done {
                Ok(out) => out,
                Err(e) => (0..n)
                    .map(|_| {
                        Err(StorageError::io(
                            "(batch)",
                            std::io::Error::other(e.to_string()),
                        ))
                    })
                    .collect(),
            }
        })
        .buffered(IN_FLIGHT)
        .flat_map(stream::iter)
        .collect()
        .await
}

fn stat(path: &PathBuf) -> std::io::Result<Meta> {
    let m = fs::metadata(path)?;
    if m.is_dir() {
        return Err(ErrorKind::NotFound.into());
    }
    Ok(Meta {
        size: m.len(),
        modified: m.modified()?,
    })
}

/// A rename that creates the target's folder only when the rename says it
/// is missing (and the source is there): one call in the common case.
fn rename(pair: &(PathBuf, PathBuf)) -> std::io::Result<()> {
    let (src, dst) = pair;
    match fs::rename(src, dst) {
        Err(e) if e.kind() == ErrorKind::NotFound && src.exists() => {
            fs::create_dir_all(dst.parent().unwrap_or(Path::new(".")))?;
            fs::rename(src, dst)
        }
        other => other,
    }
}

/// Removes one file, and its folder when that leaves it empty (a folder
/// with anything else in it stays: `remove_dir` removes only empty ones,
/// atomically, so a file renamed into it meanwhile is never lost, and a
/// writer that finds the folder gone makes it again).
fn remove(path: &PathBuf) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        other => other?,
    }
    Ok(())
}

/// After a chunk of [`remove`]s: the folders they emptied go, each tried
/// once (a shared folder, like gc's trash, is not tried per file).
fn remove_parents(paths: &[PathBuf]) {
    let mut parents: Vec<&Path> = paths.iter().filter_map(|p| p.parent()).collect();
    parents.sort_unstable();
    parents.dedup();
    for p in parents {
        // Not empty, or gone already: both fine.
        let _ = fs::remove_dir(p);
    }
}

impl Filesystem {
    pub(super) async fn stat_each(&self, paths: &[String]) -> Vec<Result<Meta, StorageError>> {
        let items = paths.iter().map(|p| (p.clone(), self.full(p))).collect();
        chunked(items, stat, None).await
    }

    pub(super) async fn rename_volatile_each(
        &self,
        pairs: &[(String, String)],
    ) -> Vec<Result<(), StorageError>> {
        let items = pairs
            .iter()
            .map(|(from, to)| {
                let both = self.full(from).and_then(|f| self.full(to).map(|t| (f, t)));
                (from.clone(), both)
            })
            .collect();
        chunked(items, rename, None).await
    }

    pub(super) async fn delete_each(&self, paths: &[String]) -> Vec<StorageError> {
        let items = paths.iter().map(|p| (p.clone(), self.full(p))).collect();
        chunked(items, remove, Some(remove_parents))
            .await
            .into_iter()
            .filter_map(Result::err)
            .collect()
    }
}
