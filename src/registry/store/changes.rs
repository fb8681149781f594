//! The change log of shared storage: how a process learns, at a constant
//! number of requests, which repositories other processes on the same
//! bucket gained or lost, so its search index follows theirs.
//!
//! Writing: a manifest `PUT` appends `+<name>`, a `DELETE` that leaves the
//! repository without manifests appends `-<name>`, each as one small object
//! `_changes/<nanoseconds, 20 digits>-<random>` (one `PUT`). Reading
//! ([`Store::refresh_index`]): one listing of the objects named after the
//! previous read's start minus [`WINDOW`] (S3's `start-after`), a `GET` of
//! each one not seen yet, and one look at each named repository in storage
//! (its manifests, not the log, decide whether it is listed: two changes of
//! one repository from two processes may arrive in either order). An idle
//! process therefore costs one `LIST` per refresh whatever the number of
//! repositories, and a change costs each reader two or three requests once.
//!
//! The bound: a change object that becomes visible more than [`WINDOW`]
//! after the time in its name (a writer stalled that long between taking
//! the time and its `PUT`, or a clock that far behind) is not seen by the
//! others until they restart (every start rebuilds the index from
//! storage). Objects older than [`KEEP`] are deleted by whichever process
//! compacts first (every tenth idle refresh).
//!
//! This module must not decide what a repository holds (that is
//! `manifests.rs`), and is used only when the driver is shared.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{Store, StoreError};
use crate::registry::layout;
use crate::registry::oci::Name;

/// How far back each read looks again, for changes written late.
pub(crate) const WINDOW: Duration = Duration::from_secs(30);

/// How often a search may read the log: a push through another process is
/// found by a search that comes this long after it, at most.
pub(crate) const ON_QUERY: Duration = Duration::from_millis(500);

/// How long change objects are kept.
pub(crate) const KEEP: Duration = Duration::from_secs(3600);

/// What a reader remembers between reads.
#[derive(Default)]
pub(super) struct Cursor {
    /// Wall-clock nanoseconds when the last read started (or the index was
    /// built from storage); `None` before the first.
    since: Option<u128>,
    /// Names read within the window, so a re-listed change is not applied
    /// twice.
    seen: BTreeSet<String>,
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The 20-digit time prefix of a change name.
fn stamp(nanos: u128) -> String {
    format!("{nanos:020}")
}

impl Store {
    /// Appends a change of `name`'s membership to the log (shared storage
    /// only). A failure is logged: the push itself succeeded, and the
    /// other processes find the repository at their next start.
    pub(super) async fn log_change(&self, name: &Name, added: bool) {
        if !self.shared || self.index.is_none() {
            return;
        }
        self.write_change(name, added).await;
    }

    async fn write_change(&self, name: &Name, added: bool) {
        let key = format!(
            "{}/{}-{}",
            layout::CHANGES,
            stamp(now_nanos()),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let body = format!("{}{}", if added { '+' } else { '-' }, name.as_str());
        if let Err(e) = self.storage.put_bytes(&key, Bytes::from(body)).await {
            tracing::warn!(error = %e, "cannot record a repository change for other processes");
        }
    }

    /// Garbage collection removed manifests of `name`: when none is left,
    /// the repository leaves this process's search index and, on shared
    /// storage, the others' (through the log, written even by a process
    /// without an index, such as `regconf gc`).
    pub(super) async fn forget_if_empty(&self, name: &Name) -> Result<(), StoreError> {
        if self.has_manifests(name).await? {
            return Ok(());
        }
        if let Some(index) = &self.index {
            index.remove(name.as_str().to_owned()).await;
        }
        if self.shared && self.index.is_none() {
            self.write_change(name, false).await;
        } else {
            self.log_change(name, false).await;
        }
        Ok(())
    }

    /// Records that the index was just built from storage: later reads of
    /// the log start from here.
    pub(crate) async fn index_rebuilt_at(&self, started: SystemTime) {
        let nanos = started
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.changes.lock().await.since = Some(nanos);
    }

    /// Reads what changed since the last read and applies it to the index.
    pub(super) async fn apply_changes(&self) -> Result<(), StoreError> {
        let Some(index) = &self.index else {
            return Ok(());
        };
        let mut cursor = self.changes.lock().await;
        let started = now_nanos();
        let since = cursor.since.unwrap_or(started);
        let from = stamp(since.saturating_sub(WINDOW.as_nanos()));
        cursor.seen.retain(|n| n.as_str() > from.as_str());
        let names = self.storage.list_after(layout::CHANGES, &from).await?;
        let mut repos = BTreeMap::new();
        for n in names {
            if cursor.seen.contains(&n) {
                continue;
            }
            let path = format!("{}/{n}", layout::CHANGES);
            match self.storage.get_bytes(&path).await {
                Ok(b) => {
                    if let Some(repo) = std::str::from_utf8(&b)
                        .ok()
                        .and_then(|t| t.get(1..))
                        .and_then(|r| Name::parse(r).ok())
                    {
                        repos.insert(repo.as_str().to_owned(), repo);
                    }
                }
                // compacted by another process meanwhile: older than KEEP
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            cursor.seen.insert(n);
        }
        for (text, name) in repos {
            if self.has_manifests(&name).await? {
                index.add(text).await;
            } else {
                index.remove(text).await;
            }
        }
        cursor.since = Some(started);
        Ok(())
    }

    /// Deletes change objects older than [`KEEP`]: one listing from the
    /// start of the log, then a `DELETE` per old object.
    pub(crate) async fn compact_changes(&self) -> Result<usize, StoreError> {
        if !self.shared || self.index.is_none() {
            return Ok(0);
        }
        let cutoff = stamp(now_nanos().saturating_sub(KEEP.as_nanos()));
        let mut removed = 0;
        for n in self.storage.list_after(layout::CHANGES, "").await? {
            if n.as_str() >= cutoff.as_str() {
                break;
            }
            self.storage
                .delete(&format!("{}/{n}", layout::CHANGES))
                .await?;
            removed += 1;
        }
        Ok(removed)
    }
}
