//! Garbage collection: removes what no kept manifest references, while
//! `serve` processes keep writing the same storage.
//!
//! The design (the order of marking, dooming, re-checking and deleting,
//! and why a racing push either survives whole or fails with
//! `MANIFEST_BLOB_UNKNOWN`) is written down in `GC.md` beside this file;
//! read it before changing the order of anything here.
//!
//! Rooms:
//!
//! ```text
//! mod.rs    options, the report, the run (phases in order), trash recovery
//! mark.rs   the mark: tags -> manifests -> children, blobs, referrers; untagged decisions
//! sweep.rs  dooming (blobs to the trash, links away), the re-check, restore, emptying the trash
//! lease.rs  the lease object that lets one process at a time collect on shared storage
//! ```
//!
//! This module must not print or know about the configuration file: the
//! front end (`regconf gc`) and the online runner in `serve` read the
//! [`GcReport`] it returns. Memory is bounded by the referenced digests
//! (32 bytes each, see [`Key`]) plus the candidates for removal; storage is
//! listed once over manifests and once over blobs (plus the re-check's
//! listing of revisions, names only).

mod lease;
mod mark;
mod sweep;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{Store, StoreError};
use crate::registry::oci::Digest;

pub(crate) use lease::Lease;

/// Where gc keeps its own objects (the lease, the trash), beside `blobs/`
/// and `repositories/`.
pub(crate) const GC_DIR: &str = "_gc";

/// Storage requests a run keeps in flight at once (object stores answer
/// each in milliseconds; a filesystem overlaps its `fsync`s).
pub(crate) const CONCURRENCY: usize = 32;

/// A digest as gc remembers it: the first 256 bits of its hash (all of a
/// sha256, a prefix of a sha512; the chance of two stored digests sharing
/// one is negligible).
pub(crate) type Key = [u8; 32];

/// The key of `d`.
pub(crate) fn key(d: &Digest) -> Key {
    let mut k = [0u8; 32];
    // Digest hex is validated lowercase hex of at least 64 characters.
    let _ = hex::decode_to_slice(&d.hex()[..64], &mut k);
    k
}

/// How to collect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOptions {
    /// Objects modified less than this long before the run started are
    /// never removed.
    pub grace: Duration,
    /// Delete manifests no tag reaches (with their revision links).
    pub untagged: bool,
    /// Remove nothing; report what would be removed.
    pub dry_run: bool,
    /// Uploads started longer ago than this are removed.
    pub upload_max_age: Duration,
}

/// A count of objects and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Objects.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

/// Removed (or, with `dry_run`, removable) objects per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Kinds {
    /// Blob data (layers, configs, and the content of manifests).
    pub blobs: Tally,
    /// Untagged manifests (revision links; their content is counted under
    /// `blobs` when it goes).
    pub manifests: Tally,
    /// `_layers` links whose blob data is gone.
    pub layer_links: Tally,
    /// Upload folders past the purge age.
    pub uploads: Tally,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Nothing was removed: the numbers say what would have been.
    pub dry_run: bool,
    /// Removed (or removable) per kind.
    pub removed: Kinds,
    /// Not referenced, but younger than the grace period.
    pub kept_back: Kinds,
    /// Blobs and links put back because a push referenced them during the
    /// run (see `GC.md`).
    pub restored: u64,
    /// Manifests read while marking.
    pub manifests_read: u64,
    /// Problems met; the run exits with an error when there are any.
    pub errors: Vec<String>,
}

/// What the store's caller asks of gc besides the options.
pub(crate) struct Run<'a> {
    pub(crate) store: &'a Store,
    pub(crate) options: GcOptions,
    /// When the run started: the grace counts back from here.
    pub(crate) started: SystemTime,
    /// The lease this run holds, renewed between phases.
    pub(crate) lease: Option<&'a Lease>,
}

impl Run<'_> {
    /// The newest modification time an object may have to be removed.
    fn cutoff(&self) -> SystemTime {
        self.started
            .checked_sub(self.options.grace)
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// Whether an object modified at `modified` is within the grace.
    fn young(&self, modified: SystemTime) -> bool {
        modified > self.cutoff()
    }
}

impl Store {
    /// Collects garbage once (see the module docs and `GC.md`), holding
    /// `lease` (taken by the caller; renewed between phases).
    pub(crate) async fn gc(&self, options: GcOptions, lease: Option<&Lease>) -> GcReport {
        let run = Run {
            store: self,
            options,
            started: SystemTime::now(),
            lease,
        };
        let mut report = GcReport {
            dry_run: options.dry_run,
            ..GcReport::default()
        };
        if let Err(e) = run.phases(&mut report).await {
            report.errors.push(e.to_string());
        }
        report
    }
}

impl Run<'_> {
    async fn phases(&self, report: &mut GcReport) -> Result<(), StoreError> {
        if !self.options.dry_run {
            // A run that died between dooming and emptying left blobs in
            // the trash; put them back before deciding anything anew.
            report.restored += self.recover().await?;
        }
        let t = std::time::Instant::now();
        let marked = self.mark(report).await?;
        tracing::debug!(elapsed = ?t.elapsed(), marked = marked.all.len(), "gc: marked");
        // Marking can take long on a large store: make sure no other
        // collector took over meanwhile before removing anything.
        self.renew().await?;
        if self.options.dry_run {
            self.doom(&marked, report).await?;
            self.uploads(report).await;
            return Ok(());
        }
        // On shared storage, pushes elsewhere learn through the fence that
        // they must not skip their checks while this run removes things
        // (`../fence.rs`).
        let fence = self.store.raise_gc_fence().await?;
        let removed = self.remove(&marked, fence.as_ref(), report).await;
        if let Some(fence) = fence {
            // What other processes remember of the links just removed is
            // too old to be used by the time they see the fence lowered.
            tokio::time::sleep(super::MEMBERSHIP_TTL).await;
            self.store.lower_fence(fence).await;
        }
        removed?;
        self.uploads(report).await;
        Ok(())
    }

    /// Doom, re-check, put back and empty, under `fence` (if any).
    async fn remove(
        &self,
        marked: &Marked,
        fence: Option<&super::fence::GcFence>,
        report: &mut GcReport,
    ) -> Result<(), StoreError> {
        let t = std::time::Instant::now();
        let doomed = self.doom(marked, report).await?;
        tracing::debug!(elapsed = ?t.elapsed(), "gc: doomed");
        let t = std::time::Instant::now();
        let rescued = self.recheck(&marked.manifests, &doomed).await?;
        tracing::debug!(elapsed = ?t.elapsed(), "gc: re-checked");
        if fence.is_some_and(|f| !f.holds()) {
            // The fence could not be renewed: a push may be skipping its
            // checks now, so nothing is emptied; everything goes back as
            // after a run that died.
            report.restored += self.recover().await?;
            return Err(StoreError::Storage(
                crate::registry::storage::StorageError::Io {
                    path: format!("{GC_DIR}/lease"),
                    source: std::io::Error::other(
                        "the gc fence could not be renewed; the trash was put back",
                    ),
                },
            ));
        }
        let t = std::time::Instant::now();
        self.restore_and_empty(&doomed, &rescued, report).await;
        tracing::debug!(elapsed = ?t.elapsed(), "gc: emptied the trash");
        Ok(())
    }

    async fn renew(&self) -> Result<(), StoreError> {
        match self.lease {
            Some(lease) if !lease.acquire(self.store).await? => Err(StoreError::Storage(
                crate::registry::storage::StorageError::Io {
                    path: format!("{GC_DIR}/lease"),
                    source: std::io::Error::other("another collector took the gc lease over"),
                },
            )),
            _ => Ok(()),
        }
    }

    async fn uploads(&self, report: &mut GcReport) {
        match self
            .store
            .purge_uploads_sized(self.options.upload_max_age, self.options.dry_run)
            .await
        {
            Ok(t) => report.removed.uploads = t,
            Err(e) => report.errors.push(format!("upload purge: {e}")),
        }
    }
}

/// The marked digests: everything a kept manifest references, the kept
/// manifests themselves, and (separately) the manifests, for the re-check.
pub(crate) struct Marked {
    /// Every referenced digest (blobs and manifests).
    pub(crate) all: HashSet<Key>,
    /// The kept manifests.
    pub(crate) manifests: HashSet<Key>,
    /// With `untagged`: the manifests to delete, per repository.
    pub(crate) untagged: Vec<mark::Untagged>,
}
