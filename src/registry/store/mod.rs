//! OCI semantics over a storage driver: blobs, uploads, manifests, tags and
//! referrers.
//!
//! The store decides what is visible when. Blobs are verified against their
//! digest while they stream in and published with one atomic rename; a
//! manifest is checked (its blobs and child manifests must be in the
//! repository) before anything about it is written; a tag is one small
//! object replaced atomically. The store knows nothing of HTTP: request
//! bodies arrive as byte streams, answers leave as values and
//! [`StoreError`]s.
//!
//! ## Rooms
//!
//! ```text
//! mod.rs        Store, StoreError, repository listing, metadata index refresh
//! blobs.rs      size, read, redirect, mount, delete, links
//! uploads.rs    chunked and monolithic uploads, purge of abandoned ones
//! manifests.rs  manifests, tags, referrers
//! quiet.rs      the manifest push without lease and checks while no
//!               removal is fenced (shared storage)
//! fence.rs      the fence that removals raise, read from the change log
//! hashing.rs    the background hasher of upload bodies
//! sessions.rs   the upload session map (`Sessions`)
//! cache.rs      the per-process caches (`RepoCache`: blob sizes, manifests;
//!               on shared storage kept valid by the change log, with a
//!               time to live as the fallback, or by digest)
//! changes.rs    the change log (repositories and tags changed) and the
//!               metadata index's start, catch-up and rebuild
//! mirror/       pull-through mirroring: the upstream client, manifests and
//!               tags fetched and kept, blobs streamed while stored
//! gc/           garbage collection: mark, sweep, the lease (design in GC.md)
//! ```
//!
//! gc and the mirror sit beside the write paths, not inside them: gc walks
//! what `mod.rs` lists and removes through its trash and journal; a mirror
//! fills the store as a push does (blob content published whole and
//! verified, then linked; manifests, links and tags under the same
//! repository write lock), but writes a fetched blob's content with one
//! atomic write instead of an upload session. A cache shared between processes goes into
//! `cache.rs`.
//!
//! ## Rationale
//!
//! * Upload sessions keep their hash state in memory so a chunked upload is
//!   hashed once, as it arrives. The state is dropped (and the data is
//!   re-hashed at the end) whenever it may be out of step with the bytes on
//!   storage: after a restart, after a chunk that failed half-way, or when
//!   the client names another algorithm.
//! * Manifest reads are cached (reference → bytes), because manifest `GET`
//!   is the hottest path of a registry; so are blob sizes (repository and
//!   digest → size, for `HEAD` and `GET` of blobs and the checks of a
//!   manifest push), which saves two `stat`s per request. Blob content is
//!   immutable (its path is its digest), so only `DELETE` of a blob drops
//!   an entry. Each cache has a generation counter that every write
//!   affecting it bumps (see `cache.rs`); a read only fills the cache if no
//!   such write happened since it started, so a stale entry can never be
//!   inserted after the invalidation that should have removed it. On
//!   local storage the caches assume this process is the only writer; on
//!   shared storage see the last point.
//! * Every write in a repository is linearizable: manifest `PUT` (its
//!   checks of blobs and children included), manifest and tag `DELETE`,
//!   blob `DELETE` and the link that adds a blob take the repository's
//!   write lock ([`Store::write_lock`]) for their whole run, so concurrent
//!   writes end in a state some serial order gives (the link takes only
//!   this process's half of it: one write whose outcome depends on
//!   nothing read, see `blobs.rs`). Reads take no lock:
//!   each object they read is written atomically. The locks are striped
//!   (a fixed array, the name's hash picks one), so their memory does not
//!   grow with the number of repositories; two repositories sharing a
//!   stripe only wait for each other. They order the writes of this
//!   process; on shared storage, a write also holds the repository's lease
//!   (`lease.rs`: an object created only if absent), which orders
//!   processes among themselves (its limits: `storage/README.md`).
//! * When the driver says its storage is shared with other processes
//!   ([`Storage::shared`]: object stores, where several `serve` processes
//!   run on one bucket), what another process may change (the manifest
//!   cache: tags, revision links; the blob-size cache: a repository's
//!   `_layers` links) is kept valid through the change log (`changes.rs`):
//!   every write that changes them appends an entry naming the
//!   repository (blob `DELETE` and `gc` too), and a process whose
//!   requests looked up links or tags in the last [`ACTIVE_FOR`] reads
//!   the log every [`changes::FOLLOW_EVERY`] in the background; each entry of
//!   another process drops that repository's entries at once (bumping the
//!   cache's generation, so a read begun before cannot fill a stale
//!   value). The rule (`cache.rs`): an entry is answered while it is
//!   younger than [`MEMBERSHIP_TTL`] (1 s), or while the last *completed*
//!   read of the log *started* less than 1 s ago (and the entry is younger
//!   than [`MEMBERSHIP_CAP`]). Why a change through process A is seen by
//!   process B at most 1 s after A answered: A appends the entry before
//!   it answers; an entry B answers at time `t` either was read from
//!   storage after `t - 1 s` (the time to live), or B completed a log read
//!   that started after `t - 1 s`, whose listing (strongly consistent)
//!   holds every entry written before it started; so for `t` at least
//!   1 s after A's entry, that read found it and dropped the stale entry
//!   before completing, and no read begun before the drop could fill it
//!   again. A read that fails, hangs or is slow moves nothing, so the
//!   entries fall back to the time to live: never staler than the bound.
//!   What the log can miss (a writer that dies between its write and its
//!   entry, or fails to write the entry three times; an entry that shows
//!   up more than [`changes::WINDOW`] after the time in its name, or
//!   clocks that far apart) is trusted at most [`MEMBERSHIP_CAP`] (60 s).
//!   This process's own writes drop the entries at once. What a digest names
//!   never changes and is kept without a time to live: the size of a
//!   blob's data and a manifest's bytes (`Global` entries, `cache.rs`);
//!   whether they are still there is decided by the links (and `gc`'s
//!   log entry on removing blob data drops both caches of blobs), and a
//!   manifest push checks against storage all the same (`manifests.rs`). An
//!   upload's hash state is used only while the stored size still matches
//!   it (another process may have appended), and an upload is checked to
//!   still exist before each request.
//! * On every driver, a per-process metadata index (catalog, tags, search;
//!   `../index/`) follows other processes and commands through a change
//!   log in storage (a shared PostgreSQL one is written by all of them and
//!   reads no log) ([`Store::refresh_index`], `changes.rs`), which the
//!   write paths append to when the store was made
//!   [`with_change_log`](Store::with_change_log) (`serve`, `gc`,
//!   `migrate-v1`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;

use super::index::Index;
use super::layout;
use super::oci::{Digest, Name};
use super::storage::{Storage, StorageError};

mod blobs;
mod cache;
mod changes;
mod fence;
pub(crate) mod gc;
mod hashing;
mod lease;
mod manifests;
pub(crate) mod mirror;
mod quiet;
mod sessions;
mod uploads;

use cache::RepoCache;
use sessions::Sessions;

/// Most bytes the manifest cache holds (stated in the README).
pub(crate) const MANIFEST_CACHE_BYTES: usize = 64 << 20;

/// Most bytes the blob-size cache holds (about 50,000 entries).
const BLOB_SIZE_CACHE_BYTES: usize = 8 << 20;

/// On shared storage, how long this process trusts what it read of a
/// repository's membership (a blob's `_layers` link, a manifest's revision
/// link) and of its tags without a recent read of the change log, and how
/// recent that read must be (when it started) to trust them longer: a
/// delete or a tag move through another process is seen here within this
/// time (stated in `storage/README.md`).
pub(crate) const MEMBERSHIP_TTL: Duration = Duration::from_secs(1);

/// On shared storage, the longest this process answers an entry of the
/// membership caches while it follows the change log: a backstop for a
/// change the log never got (its writer died between the write and the
/// log entry, or could not write the entry), stated in `storage/README.md`.
pub(crate) const MEMBERSHIP_CAP: Duration = Duration::from_secs(60);

/// How long after its last lookup of links or tags a process keeps
/// reading the change log every [`changes::FOLLOW_EVERY`].
pub(crate) const ACTIVE_FOR: Duration = Duration::from_secs(60);

/// Most bytes the cache of manifest bytes by digest holds (shared storage).
const CONTENT_CACHE_BYTES: usize = 16 << 20;

/// A request body as the store reads it.
pub(crate) type Body = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Why a store operation failed; `http::error` maps each to an OCI code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The blob is not in the repository.
    #[error("blob `{0}` is unknown to the repository")]
    BlobUnknown(Digest),
    /// No such upload in the repository.
    #[error("upload `{0}` is unknown")]
    UploadUnknown(String),
    /// The upload cannot continue as asked.
    #[error("{0}")]
    UploadInvalid(String),
    /// A chunk does not start where the upload ends.
    #[error("chunk starts at {start} but the upload has {size} bytes")]
    RangeInvalid {
        /// Where the chunk claimed to start.
        start: u64,
        /// Bytes in the upload so far.
        size: u64,
    },
    /// A chunk's body is not as long as its `Content-Range` says.
    #[error(
        "the body is {} than `Content-Range` `{first}-{last}` says; the upload keeps {size} bytes",
        if *longer { "longer" } else { "shorter" }
    )]
    ChunkLength {
        /// First byte the range named.
        first: u64,
        /// Last byte the range named.
        last: u64,
        /// Whether the body was longer (else shorter).
        longer: bool,
        /// Bytes in the upload now.
        size: u64,
    },
    /// As many uploads as allowed are open.
    #[error(
        "{0} uploads are open, the most this registry allows; finish or cancel one, or retry later"
    )]
    TooManyUploads(usize),
    /// The content does not have the digest the client named.
    #[error("content digest `{actual}` does not match `{expected}`")]
    DigestMismatch {
        /// What the client said.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// The manifest is not in the repository.
    #[error("manifest `{0}` is unknown to the repository")]
    ManifestUnknown(String),
    /// The manifest cannot be accepted.
    #[error("{0}")]
    ManifestInvalid(String),
    /// A blob or child manifest the manifest references is missing.
    #[error("manifest references `{0}`, which is not in the repository")]
    ManifestBlobUnknown(Digest),
    /// No such repository.
    #[error("repository `{0}` is unknown")]
    NameUnknown(Name),
    /// The storage driver failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The mirrored registry could not give what the store lacks.
    #[error("the upstream `{upstream}` failed: {why}")]
    Upstream {
        /// The upstream's base URL.
        upstream: String,
        /// What went wrong.
        why: String,
    },
}

/// A manifest as stored and served: bytes exactly as pushed.
#[derive(Debug, Clone)]
pub(crate) struct StoredManifest {
    /// Digest of `bytes`.
    pub(crate) digest: Digest,
    /// Media type it was pushed with.
    pub(crate) media_type: String,
    /// The bytes.
    pub(crate) bytes: Bytes,
}

/// What a manifest push produced.
#[derive(Debug, Clone)]
pub(crate) struct PutManifest {
    /// Digest of the stored bytes.
    pub(crate) digest: Digest,
    /// The manifest's `subject`, for the `OCI-Subject` header.
    pub(crate) subject: Option<Digest>,
}

/// A repository's write lock as held: this process's mutex and, on shared
/// storage, the lease that orders other processes. On drop the lease's
/// release starts, and its handle stays under the mutex for the next
/// holder in this process to wait for.
pub(super) struct WriteGuard<'a> {
    lease: Option<lease::Lease>,
    local: tokio::sync::MutexGuard<'a, Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            *self.local = lease.release();
        }
    }
}

/// The OCI store.
pub(crate) struct Store {
    storage: Arc<dyn Storage>,
    index: Option<Arc<Index>>,
    /// Upload sessions of this process.
    sessions: Sessions,
    /// Manifests by repository and tag or digest.
    manifests: RepoCache<Arc<StoredManifest>>,
    /// Sizes of blobs linked into repositories.
    blob_sizes: RepoCache<u64>,
    /// Sizes of blob data by digest, in no repository (shared storage).
    data_sizes: RepoCache<u64>,
    /// Manifest bytes by digest, in no repository (shared storage).
    contents: RepoCache<bytes::Bytes>,
    /// Other processes write the same storage (see Rationale).
    shared: bool,
    /// Where this process is in the change log.
    changes: tokio::sync::Mutex<changes::Cursor>,
    /// When the last read of the change log that completed had started
    /// (the membership caches trust their entries by it).
    log_clock: Arc<cache::LogClock>,
    /// When a request last looked up a repository's links or tags (see
    /// [`Store::follows_log`]).
    last_lookup: std::sync::Mutex<Option<std::time::Instant>>,
    /// Held for writing while the purge of expired uploads that follows a
    /// start runs in the background; requests on existing uploads wait for
    /// it (read), so an expired upload is never served, and every other
    /// request is answered at once.
    start_purge: Arc<tokio::sync::RwLock<()>>,
    /// Whether writes append to the change log (`with_change_log`).
    logs_changes: bool,
    /// Change entries this process wrote, within the window (see
    /// `changes.rs`): its index already has them.
    own_changes: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// The fences of removals, as far as this process knows (`fence.rs`).
    fences: Arc<fence::Fences>,
    /// Most upload sessions open at once.
    max_uploads: usize,
    /// Per-repository write locks, striped (see Rationale).
    /// Each holds the release of the last lease taken under it, still in
    /// flight (see [`WriteGuard`]).
    write_locks: Box<[tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>]>,
}

/// Stripes of the repository write locks.
const WRITE_LOCK_STRIPES: usize = 256;

/// The write-lock stripe of repository `name`.
fn stripe(name: &Name) -> usize {
    use std::hash::{BuildHasher as _, BuildHasherDefault};
    let h = BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(name.as_str());
    // The remainder is below the stripe count, so it fits a usize.
    (h % WRITE_LOCK_STRIPES as u64) as usize
}

impl Store {
    /// A store over `storage`, keeping `index` (if any) current, with at
    /// most `max_uploads` uploads open at once.
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        index: Option<Arc<Index>>,
        max_uploads: usize,
    ) -> Self {
        let shared = storage.shared();
        let ttl = shared.then_some(MEMBERSHIP_TTL);
        let log_clock = Arc::new(cache::LogClock::new(MEMBERSHIP_TTL));
        Self {
            index,
            sessions: Sessions::default(),
            manifests: RepoCache::new(true, MANIFEST_CACHE_BYTES, |m: &Arc<StoredManifest>| {
                m.bytes.len()
            })
            .with_ttl(ttl, log_clock.clone(), MEMBERSHIP_CAP),
            blob_sizes: RepoCache::new(true, BLOB_SIZE_CACHE_BYTES, |_| 0).with_ttl(
                ttl,
                log_clock.clone(),
                MEMBERSHIP_CAP,
            ),
            data_sizes: RepoCache::new(shared, BLOB_SIZE_CACHE_BYTES, |_| 0),
            contents: RepoCache::new(shared, CONTENT_CACHE_BYTES, bytes::Bytes::len),
            shared,
            storage,
            changes: tokio::sync::Mutex::new(changes::Cursor::default()),
            log_clock,
            last_lookup: std::sync::Mutex::new(None),
            start_purge: Arc::default(),
            logs_changes: false,
            own_changes: std::sync::Mutex::default(),
            fences: Arc::default(),
            max_uploads,
            write_locks: (0..WRITE_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
        }
    }

    /// The write lock of repository `name`; every write path in it holds
    /// this for its whole run. Never take two at once.
    pub(super) async fn write_lock(&self, name: &Name) -> Result<WriteGuard<'_>, StoreError> {
        let mut local = self.write_locks[stripe(name)].lock().await;
        // The previous holder's lease is being released: wait for it, so
        // that the next lease is created at once instead of polled for.
        if let Some(release) = local.take() {
            let _ = release.await;
        }
        // Other processes on the same storage: their writes wait too.
        let lease = if self.shared {
            Some(lease::acquire(&self.storage, name).await?)
        } else {
            None
        };
        Ok(WriteGuard { lease, local })
    }

    /// Whether storage answers: one cheap request (a `stat` of an object
    /// that never exists, [`layout::HEALTH_PROBE`]); "not found" is an
    /// answer. For `/healthz`.
    pub(crate) async fn probe(&self) -> Result<(), StorageError> {
        match self.storage.stat(layout::HEALTH_PROBE).await {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// Upload sessions this process holds open (for the metrics).
    pub(crate) fn uploads_open(&self) -> usize {
        self.sessions.len()
    }

    /// Lookups of the manifest cache and of the blob-size cache so far,
    /// each as (hits, misses), for the metrics.
    pub(crate) fn cache_lookups(&self) -> [(&'static str, u64, u64); 2] {
        let (mh, mm) = self.manifests.lookups();
        let (bh, bm) = self.blob_sizes.lookups();
        [("manifests", mh, mm), ("blob_sizes", bh, bm)]
    }

    /// Brings the index up to date with what other processes and commands
    /// wrote: one read of the change log (`changes.rs`), at most every
    /// [`changes::ON_QUERY`]. For search, catalog and tags/list.
    pub(crate) async fn refresh_index(&self) -> Result<(), StoreError> {
        self.catch_up(changes::ON_QUERY, true).await
    }

    /// Notes that a request looked up links or tags (what the change log
    /// keeps valid).
    pub(super) fn note_lookup(&self) {
        if self.shared {
            *self
                .last_lookup
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(std::time::Instant::now());
        }
    }

    /// Whether the change log is worth reading every
    /// [`changes::FOLLOW_EVERY`]: on shared storage, while requests looked
    /// up links or tags in the last [`ACTIVE_FOR`] (their cached answers
    /// stay valid only while the log is read, see Rationale). Otherwise
    /// the log is read at the idle rate.
    fn follows_log(&self) -> bool {
        self.last_lookup
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|t| t.elapsed() < ACTIVE_FOR)
    }

    /// Reads the change log (when the last read is older than half of
    /// [`changes::FOLLOW_EVERY`]), for a process that
    /// [`follows_log`](Self::follows_log).
    async fn follow_log(&self) -> Result<(), StoreError> {
        self.catch_up(changes::FOLLOW_EVERY / 2, false).await
    }

    /// The metadata index, if this store keeps one.
    pub(crate) fn index(&self) -> Option<&Index> {
        self.index.as_deref()
    }

    /// Makes every write of this store append to the change log
    /// (`changes.rs`): `serve`, `gc` and `migrate-v1` do, so that an index
    /// (of any process, running or not) learns what they changed.
    pub(crate) fn with_change_log(mut self) -> Self {
        self.logs_changes = true;
        self
    }

    /// Purges expired uploads in the background (a walk of every
    /// repository, which a start should not wait for); until it is done,
    /// requests on existing uploads wait.
    pub(crate) fn purge_uploads_after_start(self: &Arc<Self>, max_age: Duration) {
        let Ok(gate) = Arc::clone(&self.start_purge).try_write_owned() else {
            return;
        };
        let store = Arc::clone(self);
        tokio::spawn(async move {
            let _gate = gate;
            match store.purge_uploads(max_age).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "removed expired uploads"),
                Err(e) => tracing::warn!(error = %e, "upload purge failed"),
            }
        });
    }

    /// This process's write stripe of `name` alone, without the lease of
    /// shared storage: orders an index update from the change log after
    /// the writes of this process (see `changes.rs`).
    pub(super) async fn local_lock(
        &self,
        name: &Name,
    ) -> tokio::sync::MutexGuard<'_, Option<tokio::task::JoinHandle<()>>> {
        self.write_locks[stripe(name)].lock().await
    }

    /// All repositories that have had a manifest, sorted.
    pub(crate) async fn repositories(&self) -> Result<Vec<String>, StoreError> {
        let mut r = self.walk().await?.manifests;
        r.sort_unstable();
        Ok(r)
    }

    /// Finds repository directories under `repositories/`.
    async fn walk(&self) -> Result<Walk, StoreError> {
        let mut found = Walk::default();
        let mut pending = vec![String::new()];
        while let Some(prefix) = pending.pop() {
            let dir = if prefix.is_empty() {
                layout::REPOSITORIES.to_owned()
            } else {
                format!("{}/{prefix}", layout::REPOSITORIES)
            };
            for child in self.storage.list(&dir).await? {
                if child == layout::MANIFESTS_DIR {
                    found.manifests.push(prefix.clone());
                } else if child == layout::UPLOADS_DIR {
                    found.uploads.push(prefix.clone());
                } else if child == layout::LAYERS_DIR {
                    found.layers.push(prefix.clone());
                } else if !child.starts_with('_') {
                    pending.push(if prefix.is_empty() {
                        child
                    } else {
                        format!("{prefix}/{child}")
                    });
                }
            }
        }
        Ok(found)
    }
}

#[derive(Default)]
struct Walk {
    manifests: Vec<String>,
    uploads: Vec<String>,
    /// Repositories with `_layers` links (on an object store, a repository
    /// whose manifests were all deleted has no `_manifests` any more).
    layers: Vec<String>,
}

pub(super) fn not_found_as<T>(
    r: Result<T, StorageError>,
    f: impl FnOnce() -> StoreError,
) -> Result<T, StoreError> {
    match r {
        Err(e) if e.is_not_found() => Err(f()),
        other => Ok(other?),
    }
}
