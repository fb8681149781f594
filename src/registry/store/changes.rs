//! The change log of storage: how a process learns, at a constant number of
//! requests, which repositories and tags other processes and commands
//! changed, so its metadata index (`../index/`) follows them, and how an
//! index that was down catches up at start instead of being rebuilt. A
//! shared index (PostgreSQL) is written by every process itself and reads
//! no log: [`Store::build_shared_index`] builds it once if it is new, and
//! [`Store::catch_up`] only rewrites the repositories whose index writes
//! failed.
//!
//! Writing ([`Store::log_change`]): every write that changes a repository's
//! catalog membership or tags (manifest `PUT`, manifest or tag `DELETE`, a
//! mirrored manifest, `gc` removing revisions, `migrate-v1`) appends one
//! small object `_changes/<nanoseconds, 20 digits>-<random>` (one `PUT`),
//! on local storage as on object stores, holding
//! `<+|-><name>\n` then one line per tag that changed (or `*` for "all of
//! them"). An entry without a newline (written by an older version) means
//! "all of them" too. Two kinds serve the caches of other processes only
//! (`cache.rs`), not the index: `-<name>\n!layers\n`, the repository lost
//! `_layers` links (a blob `DELETE`; `gc`, one entry per repository per
//! run), and `*\n!blobs\n`, blob data was removed (`gc`, before it removes
//! the links to it); older readers ignore both, and they are written on
//! shared storage only (on local storage no cache follows the log).
//! Stores that do not write the log (unit tests) leave it alone.
//!
//! Reading ([`Store::catch_up`]): one listing of the objects named after
//! the previous read's start minus [`WINDOW`] (S3's `start-after`), a `GET`
//! of each one not seen yet (this process's own are skipped), and for each
//! named repository one look at storage: whether it still has `_manifests`
//! (catalog), whether it has revisions (search), and each named tag's
//! existence (storage, not the order of the log, decides; two changes of
//! one repository from two processes may arrive in either order). The
//! repository's local write stripe is held meanwhile, so a write of this
//! process cannot slip between the look and the index update. The position
//! is saved in the index, so the next start resumes from there. Each entry
//! read also drops, at once, what it makes stale in this process's caches
//! of links and tags, and a read that completes tells the caches when it
//! started (the rule that bounds staleness by it: `mod.rs`).
//!
//! Bounds: a request that reads the log (search, catalog, tags/list) does
//! so when the last read is older than [`ON_QUERY`], so a change through
//! another process is seen within that. A `serve` on shared storage whose
//! requests look up links or tags reads it every [`FOLLOW_EVERY`] in the
//! background; otherwise once a minute. A change object that becomes
//! visible more than [`WINDOW`] after the time in its name (a writer
//! stalled that long, or a clock that far behind) is missed until the
//! index is rebuilt, as is a change whose writer died between its storage
//! write and its log entry. Objects older than [`KEEP`] are deleted by
//! whichever process compacts first, which first writes the cut-off to
//! [`layout::CHANGES_FLOOR`]: an index whose saved position is older than
//! that is rebuilt at start.
//!
//! This module must not decide what a repository holds (that is
//! `manifests.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};

use super::{Store, StoreError};
use crate::registry::index::{BuildClaim, RepoState};
use crate::registry::layout;
use crate::registry::oci::{Name, Tag};

/// How far back each read looks again, for changes written late.
pub(crate) const WINDOW: Duration = Duration::from_secs(30);

/// How often a request may read the log: a change through another process
/// is found by a search, catalog or tags/list that comes this long after
/// it, at most.
pub(crate) const ON_QUERY: Duration = Duration::from_millis(500);

/// How often a process whose requests look up links or tags reads the log
/// in the background (`Store::follows_log`): half the membership bound, so
/// a read may take up to the other half before the caches fall back to
/// their time to live.
pub(crate) const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// The line of a repository's entry that says only its `_layers` links
/// changed (not a valid tag, so an older reader ignores it).
const LAYERS_LINE: &str = "!layers";

/// The body of the entry that says blob data was removed from the store
/// (its first line names no repository, so an older reader ignores it).
const BLOB_DATA_ENTRY: &str = "*\n!blobs\n";

/// How long change objects are kept.
pub(crate) const KEEP: Duration = Duration::from_secs(24 * 3600);

/// Repositories read at once by a rebuild.
const REBUILD_CONCURRENCY: usize = 16;

/// What a reader remembers between reads.
#[derive(Default)]
pub(super) struct Cursor {
    /// Wall-clock nanoseconds when the last read started (or the index was
    /// built from storage); `None` before the first.
    since: Option<u128>,
    /// Names read within the window, so a re-listed change is not applied
    /// twice.
    seen: BTreeSet<String>,
    /// When the last read was.
    read_at: Option<std::time::Instant>,
    /// When the last read for a query (or at start, or while idle) was:
    /// the background reads of a process following the log do not count
    /// for queries, since one may have applied a repository's state in the
    /// middle of a burst of writes that a query right after the burst
    /// expects to see (it reads again, as before there were such reads).
    query_read_at: Option<std::time::Instant>,
    /// When the position was last saved in the index.
    saved_at: Option<std::time::Instant>,
}

/// How often a read that found nothing new saves its position (a process
/// following the log reads it twice a second; the saved position only
/// needs to be recent for the next start).
const SAVE_EVERY: Duration = Duration::from_secs(10);

/// What a change says about a repository's tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Touched {
    /// These tags.
    Tags(BTreeSet<String>),
    /// Any of them.
    All,
}

impl Touched {
    fn merge(&mut self, other: Touched) {
        match (&mut *self, other) {
            (Touched::All, _) => {}
            (_, Touched::All) => *self = Touched::All,
            (Touched::Tags(a), Touched::Tags(b)) => a.extend(b),
        }
    }

    /// No tag.
    pub(crate) fn none() -> Self {
        Touched::Tags(BTreeSet::new())
    }

    /// One tag.
    pub(crate) fn tag(t: &Tag) -> Self {
        Touched::Tags(BTreeSet::from([t.to_string()]))
    }
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

/// What a change entry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// The repository's catalog membership or these tags changed
    /// (manifests, tags).
    Repository(Name, Touched),
    /// The repository lost `_layers` links (a blob `DELETE`, `gc`).
    Layers(Name),
    /// Blob data was removed from the store (`gc`): a link of any
    /// repository may now name data that is gone.
    BlobData,
}

/// The body of a change entry of repository `name`'s manifests or tags.
fn encode(name: &Name, added: bool, touched: &Touched) -> String {
    let mut body = format!("{}{}\n", if added { '+' } else { '-' }, name.as_str());
    match touched {
        Touched::All => body.push_str("*\n"),
        Touched::Tags(tags) => {
            for t in tags {
                body.push_str(t);
                body.push('\n');
            }
        }
    }
    body
}

/// Reads a change entry; `None` if it is of no kind this version knows.
fn decode(body: &[u8]) -> Option<Change> {
    let text = std::str::from_utf8(body).ok()?;
    if text == BLOB_DATA_ENTRY {
        return Some(Change::BlobData);
    }
    let Some((first, rest)) = text.split_once('\n') else {
        // An older version's entry: the repository only.
        return Some(Change::Repository(
            Name::parse(text.get(1..)?).ok()?,
            Touched::All,
        ));
    };
    let name = Name::parse(first.get(1..)?).ok()?;
    let mut tags = BTreeSet::new();
    for line in rest.lines() {
        if line == "*" {
            return Some(Change::Repository(name, Touched::All));
        }
        if line == LAYERS_LINE {
            return Some(Change::Layers(name));
        }
        if let Ok(t) = Tag::parse(line) {
            tags.insert(t.to_string());
        }
    }
    Some(Change::Repository(name, Touched::Tags(tags)))
}

impl Store {
    /// Appends a change of `name` to the log (when this store writes it).
    /// A failure is logged: the write itself succeeded, and the other
    /// processes find it when their index is next rebuilt (and their
    /// caches drop what it changed after `MEMBERSHIP_CAP` at most).
    pub(super) async fn log_change(&self, name: &Name, added: bool, touched: Touched) {
        self.append_change(encode(name, added, &touched)).await;
    }

    /// Appends that `name` lost `_layers` links (one entry for any number).
    /// Only on shared storage: the entry is for other processes' caches,
    /// which on local storage do not follow the log.
    pub(super) async fn log_layers(&self, name: &Name) {
        if self.shared {
            self.append_change(format!("-{}\n{LAYERS_LINE}\n", name.as_str()))
                .await;
        }
    }

    /// Appends that blob data was removed from the store, and forgets
    /// what this process knew of links and data sizes (`gc`, before it
    /// removes the links to that data). The entry only on shared storage,
    /// as [`Store::log_layers`].
    pub(super) async fn log_blob_data_removed(&self) {
        self.blob_sizes.clear();
        self.data_sizes.clear();
        if self.shared {
            self.append_change(BLOB_DATA_ENTRY.to_owned()).await;
        }
    }

    /// Writes one entry. A reader lists from its last read's start minus
    /// [`WINDOW`], by the time in the names: an entry whose `PUT` took
    /// longer than half of that is written again under a new name (the
    /// first may be listed by no one), as is one that failed, up to three
    /// times in all.
    async fn append_change(&self, body: String) {
        if !self.logs_changes {
            return;
        }
        for attempt in 1..=3 {
            let began = std::time::Instant::now();
            let id = format!(
                "{}-{}",
                stamp(now_nanos()),
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            );
            let key = format!("{}/{id}", layout::CHANGES);
            self.own_changes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(id);
            match self
                .storage
                .put_bytes(&key, Bytes::from(body.clone()))
                .await
            {
                Ok(()) if began.elapsed() < WINDOW / 2 => return,
                Ok(()) => tracing::warn!(
                    attempt,
                    seconds = began.elapsed().as_secs(),
                    "a change-log entry took long to write; writing it again"
                ),
                Err(e) => tracing::warn!(
                    attempt,
                    error = %e,
                    "cannot record a repository change for other processes"
                ),
            }
        }
    }

    /// Brings the index up to date at start: from the saved log position
    /// when it has one the log still covers, else rebuilt from storage.
    pub(crate) async fn open_index(&self) -> Result<(), StoreError> {
        let Some(index) = &self.index else {
            return Ok(());
        };
        if index.is_shared() {
            // Built once, by the process that claims it (see
            // `build_shared_index`); then used as it is.
            return Ok(());
        }
        if let Some(since) = index.saved_position() {
            let floor = match self.storage.get_bytes(layout::CHANGES_FLOOR).await {
                Ok(b) => std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| s.trim().parse::<u128>().ok())
                    .unwrap_or(0),
                Err(e) if e.is_not_found() => 0,
                Err(e) => return Err(e.into()),
            };
            if floor <= since.saturating_sub(WINDOW.as_nanos()) {
                self.changes.lock().await.since = Some(since);
                return self.catch_up(Duration::ZERO, true).await;
            }
            tracing::warn!(
                index = index.label(),
                "the change log was compacted past the index's position; rebuilding the index from storage"
            );
        }
        let started = std::time::Instant::now();
        self.rebuild_index().await?;
        tracing::debug!(
            index = index.label(),
            seconds = started.elapsed().as_secs_f32(),
            "built the metadata index from storage"
        );
        Ok(())
    }

    /// Builds a new shared index from storage, with the `claim` that says
    /// this process is the one to build it (`registry::state` takes it).
    pub(crate) async fn build_shared_index(&self, claim: BuildClaim) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let repos = self.stored_repositories().await?;
        if claim.finish(repos).await {
            tracing::info!(
                seconds = started.elapsed().as_secs_f32(),
                "built the shared metadata index from storage"
            );
        }
        Ok(())
    }

    /// Rebuilds the index from storage (every repository and tag).
    pub(crate) async fn rebuild_index(&self) -> Result<(), StoreError> {
        let Some(index) = &self.index else {
            return Ok(());
        };
        let mut cursor = self.changes.lock().await;
        let started = now_nanos();
        let repos = self.stored_repositories().await?;
        index.rebuild(repos, started).await;
        cursor.since = Some(started);
        cursor.read_at = Some(std::time::Instant::now());
        cursor.query_read_at = cursor.read_at;
        Ok(())
    }

    /// Every repository of storage with its tags, for a rebuild.
    async fn stored_repositories(&self) -> Result<Vec<RepoState>, StoreError> {
        let names: Vec<Name> = self
            .repositories()
            .await?
            .iter()
            .filter_map(|r| Name::parse(r).ok())
            .collect();
        futures::stream::iter(names)
            .map(|name| async move {
                let live = self.has_manifests(&name).await?;
                let tags = self.stored_tags(&name).await?;
                Ok::<_, StoreError>(RepoState {
                    name: name.as_str().to_owned(),
                    live,
                    tags,
                })
            })
            .buffered(REBUILD_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Reads what changed since the last read and applies it to the index,
    /// unless the last read is younger than `max_age`. Concurrent callers
    /// wait for one read rather than start several.
    ///
    /// Each entry found drops what it invalidates from the caches at once
    /// (`invalidate`); only a read that completes moves the caches' clock
    /// (`Store::log_clock`) to its start, so a read that fails or never
    /// ends leaves the caches to their time to live.
    /// `query`: for a query (search, catalog, tags/list), at start or
    /// while idle, which only a read of the same kind spares (see
    /// `Cursor::query_read_at`); else a background read of a process
    /// following the log, which any read spares.
    ///
    /// A shared index (PostgreSQL) is written by every writer: a query reads
    /// no log, only writes again from storage the repositories whose index
    /// writes failed; a background read (or a push's) still reads the log,
    /// for the caches and the fences, without applying it to the index.
    pub(crate) async fn catch_up(&self, max_age: Duration, query: bool) -> Result<(), StoreError> {
        if let Some(index) = &self.index
            && index.is_shared()
        {
            for name in index.take_failed() {
                let Ok(name) = Name::parse(&name) else {
                    continue;
                };
                if let Err(e) = self.apply(&name, Touched::All).await {
                    tracing::warn!(repository = %name, error = %e, "cannot update the metadata index");
                }
            }
            // Its queries need no log: every writer writes the index.
            if query {
                return Ok(());
            }
        }
        let mut cursor = self.changes.lock().await;
        let last = if query {
            cursor.query_read_at
        } else {
            cursor.read_at
        };
        if last.is_some_and(|t| t.elapsed() < max_age) {
            return Ok(());
        }
        let began = std::time::Instant::now();
        let started = now_nanos();
        let since = cursor.since.unwrap_or(started);
        let from = stamp(since.saturating_sub(WINDOW.as_nanos()));
        cursor.seen.retain(|n| n.as_str() > from.as_str());
        self.own_changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|n| n.as_str() > from.as_str());
        let names = self.storage.list_after(layout::CHANGES, &from).await?;
        let mut repos: BTreeMap<String, (Name, Touched)> = BTreeMap::new();
        let mut read = Vec::new();
        for n in names {
            let own = self
                .own_changes
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(&n);
            if own || cursor.seen.contains(&n) {
                continue;
            }
            let path = format!("{}/{n}", layout::CHANGES);
            match self.storage.get_bytes(&path).await {
                Ok(b) => {
                    if let Some((raiser, until)) = super::fence::decode(&b) {
                        self.fences.saw(raiser, until);
                    }
                    let change = decode(&b);
                    if let Some(c) = &change {
                        self.invalidate(c);
                    }
                    if let Some(Change::Repository(name, touched)) = change {
                        match repos.entry(name.as_str().to_owned()) {
                            std::collections::btree_map::Entry::Occupied(mut e) => {
                                e.get_mut().1.merge(touched);
                            }
                            std::collections::btree_map::Entry::Vacant(e) => {
                                e.insert((name, touched));
                            }
                        }
                    }
                }
                // compacted by another process meanwhile: older than KEEP
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            read.push(n);
        }
        // The caches were told: a failure to update the index below does
        // not hold them back (the next read reads these entries again).
        self.log_clock.completed(began);
        // A shared index has every writer's changes already.
        if !self.index.as_ref().is_some_and(|i| i.is_shared()) {
            for (_, (name, touched)) in repos {
                self.apply(&name, touched).await?;
            }
        }
        let found = !read.is_empty();
        cursor.seen.extend(read);
        cursor.since = Some(started);
        cursor.read_at = Some(std::time::Instant::now());
        self.fences.read_done(began);
        if query {
            cursor.query_read_at = cursor.read_at;
        }
        if let Some(index) = &self.index
            && (found || cursor.saved_at.is_none_or(|t| t.elapsed() >= SAVE_EVERY))
        {
            index.save_position(started).await;
            cursor.saved_at = Some(std::time::Instant::now());
        }
        Ok(())
    }

    /// Drops from this process's caches what another process's change
    /// may have made stale.
    fn invalidate(&self, change: &Change) {
        match change {
            Change::Repository(name, _) => self.manifests.drop_repository(name),
            Change::Layers(name) => self.blob_sizes.drop_repository(name),
            Change::BlobData => {
                self.blob_sizes.clear();
                self.data_sizes.clear();
            }
        }
    }

    /// Runs for as long as `serve` does: reads the log every
    /// [`FOLLOW_EVERY`] while this process [`follows_log`](Store::follows_log)
    /// (which keeps its caches of links and tags valid), else every
    /// `idle_every` (so the index's saved position stays recent), and,
    /// with `compact`, compacts the log every ten of those.
    pub(crate) async fn keep_current(
        self: std::sync::Arc<Self>,
        idle_every: Duration,
        compact: bool,
    ) {
        let mut tick = tokio::time::interval(FOLLOW_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the index was just brought up to date at start
        let mut last_read = std::time::Instant::now();
        let mut compacted = std::time::Instant::now();
        // Warned about a failed read since the last one that worked (a
        // storage outage is told once, not twice a second).
        let mut warned = false;
        loop {
            tick.tick().await;
            if self.follows_log() {
                last_read = std::time::Instant::now();
                match self.follow_log().await {
                    Ok(()) => warned = false,
                    Err(e) if !warned => {
                        warned = true;
                        tracing::warn!(error = %e, "change log read failed; other processes' changes are seen after 1 s until it works");
                    }
                    Err(_) => {}
                }
            } else if last_read.elapsed() >= idle_every {
                last_read = std::time::Instant::now();
                if let Err(e) = self.refresh_index().await {
                    tracing::warn!(error = %e, "metadata index refresh failed");
                }
            }
            if compact && compacted.elapsed() >= 10 * idle_every {
                compacted = std::time::Instant::now();
                match self.compact_changes().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(removed = n, "compacted the change log"),
                    Err(e) => tracing::warn!(error = %e, "change log compaction failed"),
                }
            }
        }
    }

    /// Records that `name` gained or lost revisions outside a manifest
    /// write (`gc`): in the change log, and in this process's index
    /// (whose reads skip this process's own entries). Failures are logged.
    pub(super) async fn revisions_changed(&self, name: &Name) {
        self.log_change(name, false, Touched::none()).await;
        if let Err(e) = self.apply(name, Touched::none()).await {
            tracing::warn!(repository = %name, error = %e, "cannot update the metadata index");
        }
    }

    /// Asks storage about `name` and the `touched` tags and records the
    /// answer in the index, holding the repository's local write stripe.
    async fn apply(&self, name: &Name, touched: Touched) -> Result<(), StoreError> {
        let Some(index) = &self.index else {
            return Ok(());
        };
        let _local = self.local_lock(name).await;
        let text = name.as_str().to_owned();
        let children = self.storage.list(&layout::repository(name)).await?;
        if !children.iter().any(|c| c == layout::MANIFESTS_DIR) {
            index.set_repository(text, None).await;
            return Ok(());
        }
        let live = self.has_manifests(name).await?;
        index.set_repository(text.clone(), Some(live)).await;
        match touched {
            Touched::All => {
                let tags = self.stored_tags(name).await?;
                index.replace_tags(text, tags).await;
            }
            Touched::Tags(tags) => {
                let (mut present, mut absent) = (Vec::new(), Vec::new());
                for t in tags {
                    let Ok(tag) = Tag::parse(&t) else { continue };
                    match self.storage.stat(&layout::tag(name, &tag)).await {
                        Ok(_) => present.push(t),
                        Err(e) if e.is_not_found() => absent.push(t),
                        Err(e) => return Err(e.into()),
                    }
                }
                index.set_tags(text, present, absent).await;
            }
        }
        Ok(())
    }

    /// Deletes change objects older than [`KEEP`]: the cut-off goes to
    /// [`layout::CHANGES_FLOOR`] first (see the module docs), then one
    /// listing from the start of the log and a `DELETE` per old object.
    pub(crate) async fn compact_changes(&self) -> Result<usize, StoreError> {
        if !self.logs_changes {
            return Ok(0);
        }
        let cutoff_nanos = now_nanos().saturating_sub(KEEP.as_nanos());
        let cutoff = stamp(cutoff_nanos);
        let names = self.storage.list_after(layout::CHANGES, "").await?;
        if names.first().is_none_or(|n| n.as_str() >= cutoff.as_str()) {
            return Ok(0);
        }
        self.storage
            .put_bytes(layout::CHANGES_FLOOR, Bytes::from(cutoff_nanos.to_string()))
            .await?;
        let mut removed = 0;
        for n in names {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_old_ones_mean_all_tags() {
        let name = Name::parse("a/b").unwrap();
        let t = Tag::parse("v1").unwrap();
        let body = encode(&name, true, &Touched::tag(&t));
        assert_eq!(body, "+a/b\nv1\n");
        assert_eq!(
            decode(body.as_bytes()),
            Some(Change::Repository(name.clone(), Touched::tag(&t)))
        );
        assert_eq!(
            decode(encode(&name, false, &Touched::All).as_bytes()),
            Some(Change::Repository(name.clone(), Touched::All))
        );
        assert_eq!(
            decode(b"-a/b"),
            Some(Change::Repository(name.clone(), Touched::All))
        );
        assert_eq!(decode(b"+UPPER\n"), None);
        assert_eq!(decode(b"-a/b\n!layers\n"), Some(Change::Layers(name)));
        assert_eq!(decode(BLOB_DATA_ENTRY.as_bytes()), Some(Change::BlobData));
        // What an older reader makes of the new kinds: the layers line is
        // no tag, and the blob-data entry names no repository.
        assert!(Tag::parse(LAYERS_LINE).is_err());
        assert!(Name::parse("").is_err());
    }
}
