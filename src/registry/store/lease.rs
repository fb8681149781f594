//! The cross-process half of a repository's write lock, for storage that
//! several `serve` processes share (object stores): a lease object
//! `_leases/<name>` created with a conditional write that fails when the
//! object exists (`Storage::create_new`: `If-None-Match: *` on S3). The
//! process that created it holds the repository; the others wait (polling,
//! with jitter) until it is deleted. In-process ordering stays with the
//! striped mutexes of `Store::write_lock`; a process takes the lease only
//! while holding its own mutex, so one process has at most one request
//! waiting on a given lease.
//!
//! A lease says until when it holds ([`LEASE`] after it was taken, by the
//! taker's clock). One found past that time (its holder crashed or was
//! killed) is deleted and taken over. The remaining window, written in
//! `storage/README.md`: a holder stalled longer than [`LEASE`] (a write to
//! the store taking minutes), or clocks apart by more than the slack, lets
//! a second process in while the first still writes; and two processes
//! taking over the same expired lease at once can both delete and one
//! re-create it in between (S3 has no conditional delete that
//! `object_store` exposes). Writes under a lease are a few small objects,
//! so seconds, not minutes.
//!
//! It does not know what the writes are; `Store::write_lock` calls it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::StoreError;
use crate::registry::oci::Name;
use crate::registry::storage::{Storage, StorageError};

/// How long a lease holds without being released.
pub(crate) const LEASE: Duration = Duration::from_secs(30);
/// Added to a lease before another process takes it over (clock skew).
const SLACK: Duration = Duration::from_secs(5);
/// Longest wait for a lease before the write fails (`503`-like storage
/// error): longer than a lease, so an abandoned one is always taken over.
const WAIT: Duration = Duration::from_secs(60);

/// Where the lease of `name` lives: outside `repositories/`, so listings
/// and the catalog never see it.
fn path(name: &Name) -> String {
    format!("_leases/{name}")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A held lease; released (deleted) by [`Lease::release`], or when
/// dropped.
pub(crate) struct Lease {
    storage: Arc<dyn Storage>,
    /// Empty once released.
    path: String,
}

impl Lease {
    /// Starts deleting the lease; the handle resolves when it is gone. If
    /// the delete fails, the lease runs out after [`LEASE`].
    pub(crate) fn release(mut self) -> Option<tokio::task::JoinHandle<()>> {
        let path = std::mem::take(&mut self.path);
        let storage = Arc::clone(&self.storage);
        // Called on the runtime (the store's futures).
        let rt = tokio::runtime::Handle::try_current().ok()?;
        Some(rt.spawn(async move {
            if let Err(e) = storage.delete_object(&path).await {
                tracing::warn!(error = %e, "cannot release a write lease; it runs out by itself");
            }
        }))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.path.is_empty() {
            let path = std::mem::take(&mut self.path);
            let _ = Lease {
                storage: Arc::clone(&self.storage),
                path,
            }
            .release();
        }
    }
}

/// Takes the lease of `name` on `storage`, waiting while another process
/// holds it.
pub(crate) async fn acquire(storage: &Arc<dyn Storage>, name: &Name) -> Result<Lease, StoreError> {
    let path = path(name);
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        let until = now_ms() + u64::try_from(LEASE.as_millis()).unwrap_or(30_000);
        let me = format!("{until} {}", uuid::Uuid::new_v4());
        if storage.create_new(&path, Bytes::from(me)).await? {
            // A release deletes the lease it created, and nobody can
            // create another while that one exists: it never deletes ours
            // (short of a delete retried by the client after it succeeded).
            return Ok(Lease {
                storage: Arc::clone(storage),
                path,
            });
        }
        match storage.get_bytes(&path).await {
            Ok(held) => {
                let until = std::str::from_utf8(&held)
                    .ok()
                    .and_then(|t| t.split(' ').next())
                    .and_then(|t| t.parse::<u64>().ok())
                    .unwrap_or(0);
                let slack = u64::try_from(SLACK.as_millis()).unwrap_or(5_000);
                if now_ms() > until.saturating_add(slack) {
                    tracing::warn!(repository = %name, "taking over an expired write lease (a process stopped while writing)");
                    storage.delete_object(&path).await?;
                    continue;
                }
            }
            // Released meanwhile: try again at once.
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        }
        if started.elapsed() > WAIT {
            return Err(StoreError::Storage(StorageError::Io {
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "another process holds this repository's write lease",
                ),
            }));
        }
        // Jitter, so that waiting processes do not poll in step.
        let jitter = Duration::from_millis(u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 8);
        tokio::time::sleep(pause + jitter).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
