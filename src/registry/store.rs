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
//!   an entry. Every write in a repository bumps a
//!   generation counter and drops that repository's entries; a read only
//!   fills the cache if no write happened since it started, so a stale
//!   entry can never be inserted after the invalidation that should have
//!   removed it. The cache assumes this process is the only writer of its
//!   storage.
//! * When the driver says its storage is shared with other processes
//!   ([`Storage::shared`]: object stores, where several `serve` processes
//!   run on one bucket), nothing remembered between requests is trusted:
//!   the manifest cache is off, an upload's hash state is used only while
//!   the stored size still matches it (another process may have appended),
//!   an upload is checked to still exist before each request, and the
//!   search index is refreshed from storage ([`Store::refresh_index`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use uuid::Uuid;

use super::index::Index;
use super::layout;
use super::oci::{Algorithm, Digest, Hasher, Manifest, ManifestError, Name, Reference};
use super::storage::{ByteStream, Storage, StorageError};

/// A request body as the store reads it.
pub type Body = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// Most cached manifests before the cache is emptied and starts again.
const CACHE_LIMIT: usize = 4096;

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
}

/// A manifest as stored and served: bytes exactly as pushed.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// Digest of `bytes`.
    pub digest: Digest,
    /// Media type it was pushed with.
    pub media_type: String,
    /// The bytes.
    pub bytes: Bytes,
}

/// What a manifest push produced.
#[derive(Debug, Clone)]
pub struct PutManifest {
    /// Digest of the stored bytes.
    pub digest: Digest,
    /// The manifest's `subject`, for the `OCI-Subject` header.
    pub subject: Option<Digest>,
}

/// An upload in progress. The repository sits outside the lock so that
/// checking it never waits for a chunk being written.
struct SessionEntry {
    name: Name,
    state: tokio::sync::Mutex<Session>,
}

/// The mutable part of an upload.
struct Session {
    /// Bytes received; meaningful only while `hasher` is `Some`.
    size: u64,
    /// Hash of the first `size` bytes; `None` when unknown (see Rationale).
    hasher: Option<Hasher>,
    /// Set when the upload has been finished or cancelled.
    closed: bool,
}

type SessionRef = Arc<SessionEntry>;

/// The OCI store.
pub struct Store {
    storage: Arc<dyn Storage>,
    index: Option<Arc<Index>>,
    sessions: Mutex<HashMap<Uuid, SessionRef>>,
    cache: RwLock<HashMap<String, Arc<StoredManifest>>>,
    /// Sizes of blobs linked into repositories, by [`cache_key`].
    blobs: RwLock<HashMap<String, u64>>,
    generation: AtomicU64,
    /// Other processes write the same storage (see Rationale).
    shared: bool,
    /// When the search index was last rebuilt from storage.
    refreshed: tokio::sync::Mutex<Option<std::time::Instant>>,
}

fn cache_key(name: &Name, reference: &str) -> String {
    let mut k = String::with_capacity(name.as_str().len() + reference.len() + 1);
    k.push_str(name.as_str());
    k.push('\n');
    k.push_str(reference);
    k
}

impl Store {
    /// A store over `storage`, keeping `index` (if any) current.
    pub fn new(storage: Arc<dyn Storage>, index: Option<Arc<Index>>) -> Self {
        Self {
            index,
            sessions: Mutex::new(HashMap::new()),
            cache: RwLock::new(HashMap::new()),
            blobs: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            shared: storage.shared(),
            storage,
            refreshed: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether other processes may write this store's storage.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Records that the search index was just rebuilt from storage.
    pub async fn index_rebuilt(&self) {
        *self.refreshed.lock().await = Some(std::time::Instant::now());
    }

    /// Rebuilds the search index from storage when it was last rebuilt
    /// more than `max_age` ago (or never). This is how a process sees
    /// repositories pushed through other processes on shared storage.
    /// Concurrent callers wait for one rebuild rather than start several.
    pub async fn refresh_index(&self, max_age: Duration) -> Result<(), StoreError> {
        let Some(index) = &self.index else {
            return Ok(());
        };
        let mut last = self.refreshed.lock().await;
        if last.is_some_and(|t| t.elapsed() < max_age) {
            return Ok(());
        }
        let repos = self.repositories_with_manifests().await?;
        if let Err(e) = index.rebuild(repos).await {
            tracing::warn!(error = %e, "search index refresh failed");
        }
        *last = Some(std::time::Instant::now());
        Ok(())
    }

    // ---------------------------------------------------------------- blobs

    /// Size of a blob of the repository.
    pub async fn blob_size(&self, name: &Name, digest: &Digest) -> Result<u64, StoreError> {
        let key = cache_key(name, digest.as_str());
        if !self.shared
            && let Some(&size) = read_lock(&self.blobs).get(&key)
        {
            return Ok(size);
        }
        let generation = self.generation.load(Ordering::Acquire);
        self.linked_on_storage(name, digest).await?;
        let size = match self.storage.stat(&layout::blob_data(digest)).await {
            Ok(m) => m.size,
            Err(e) if e.is_not_found() => return Err(StoreError::BlobUnknown(digest.clone())),
            Err(e) => return Err(e.into()),
        };
        let mut blobs = write_lock(&self.blobs);
        // Only fill if no delete happened since this read began.
        if !self.shared && self.generation.load(Ordering::Acquire) == generation {
            if blobs.len() >= CACHE_LIMIT {
                blobs.clear();
            }
            blobs.insert(key, size);
        }
        Ok(size)
    }

    /// Streams a blob (or `range` of it, which the caller has checked
    /// against [`Store::blob_size`]).
    pub async fn blob_read(
        &self,
        digest: &Digest,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ByteStream, StoreError> {
        match self.storage.get(&layout::blob_data(digest), range).await {
            Err(e) if e.is_not_found() => Err(StoreError::BlobUnknown(digest.clone())),
            other => Ok(other?),
        }
    }

    /// A URL where the client can fetch the blob directly (for
    /// `storage_redirect`), when the driver can issue one.
    pub async fn blob_redirect(
        &self,
        digest: &Digest,
        expires: Duration,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .storage
            .redirect_url(&layout::blob_data(digest), expires)
            .await?)
    }

    /// Removes a blob from the repository (the content stays for others).
    pub async fn blob_delete(&self, name: &Name, digest: &Digest) -> Result<(), StoreError> {
        self.linked_on_storage(name, digest).await?;
        let deleted = self.storage.delete(&layout::layer_link(name, digest)).await;
        // Even after a failed delete: the link may be gone.
        let mut blobs = write_lock(&self.blobs);
        self.generation.fetch_add(1, Ordering::AcqRel);
        blobs.remove(&cache_key(name, digest.as_str()));
        drop(blobs);
        deleted?;
        Ok(())
    }

    /// Makes a blob of `from` part of `name`; `false` when `from` lacks it.
    pub async fn blob_mount(
        &self,
        name: &Name,
        digest: &Digest,
        from: &Name,
    ) -> Result<bool, StoreError> {
        match self.blob_size(from, digest).await {
            Ok(_) => {
                self.link_blob(name, digest).await?;
                Ok(true)
            }
            Err(StoreError::BlobUnknown(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the blob is part of the repository (the blob-size cache
    /// answers for blobs read since start).
    async fn linked(&self, name: &Name, digest: &Digest) -> Result<(), StoreError> {
        if !self.shared && read_lock(&self.blobs).contains_key(&cache_key(name, digest.as_str())) {
            return Ok(());
        }
        self.linked_on_storage(name, digest).await
    }

    async fn linked_on_storage(&self, name: &Name, digest: &Digest) -> Result<(), StoreError> {
        match self.storage.stat(&layout::layer_link(name, digest)).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Err(StoreError::BlobUnknown(digest.clone())),
            Err(e) => Err(e.into()),
        }
    }

    async fn link_blob(&self, name: &Name, digest: &Digest) -> Result<(), StoreError> {
        let link = Bytes::copy_from_slice(digest.as_str().as_bytes());
        self.storage
            .put_bytes(&layout::layer_link(name, digest), link)
            .await?;
        Ok(())
    }

    // -------------------------------------------------------------- uploads

    /// Starts an upload.
    pub async fn upload_start(&self, name: &Name) -> Result<Uuid, StoreError> {
        let id = Uuid::new_v4();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        self.storage
            .put_bytes(
                &layout::upload_started(name, id),
                Bytes::from(now.to_string()),
            )
            .await?;
        let session = Session {
            size: 0,
            hasher: Some(Hasher::new(Algorithm::Sha256)),
            closed: false,
        };
        let entry = SessionEntry {
            name: name.clone(),
            state: tokio::sync::Mutex::new(session),
        };
        self.sessions_lock().insert(id, Arc::new(entry));
        Ok(id)
    }

    fn sessions_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, SessionRef>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every operation on it is a single insert/remove/get).
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session of upload `id` of `name`, recreated from storage after a
    /// restart.
    async fn session(&self, name: &Name, id: Uuid) -> Result<SessionRef, StoreError> {
        let unknown = || StoreError::UploadUnknown(id.to_string());
        let cached = self.sessions_lock().get(&id).cloned();
        if let Some(s) = &cached {
            // The id alone is not enough: it must be used under its own
            // repository.
            if s.name != *name {
                return Err(unknown());
            }
            if !self.shared {
                return Ok(s.clone());
            }
        }
        // On shared storage another process may have finished or cancelled
        // the upload: storage decides whether it still exists.
        match self.storage.stat(&layout::upload_started(name, id)).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                if cached.is_some() {
                    self.sessions_lock().remove(&id);
                }
                return Err(unknown());
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(s) = cached {
            return Ok(s);
        }
        let s = Arc::new(SessionEntry {
            name: name.clone(),
            state: tokio::sync::Mutex::new(Session {
                size: 0,
                hasher: None,
                closed: false,
            }),
        });
        Ok(self.sessions_lock().entry(id).or_insert(s).clone())
    }

    /// Bytes on storage for an upload whose hash state is unknown.
    async fn stored_size(&self, name: &Name, id: Uuid) -> Result<u64, StoreError> {
        match self.storage.stat(&layout::upload_data(name, id)).await {
            Ok(m) => Ok(m.size),
            Err(e) if e.is_not_found() => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    async fn current_size(
        &self,
        name: &Name,
        s: &mut Session,
        id: Uuid,
    ) -> Result<u64, StoreError> {
        if s.hasher.is_some() && !self.shared {
            return Ok(s.size);
        }
        let stored = self.stored_size(name, id).await?;
        if stored != s.size {
            // Another process appended: the hash state is out of step.
            s.hasher = None;
        }
        Ok(stored)
    }

    /// Checks that an upload is still open and, when the request gives a
    /// `Content-Range`, that it starts where the upload ends.
    async fn check_start(
        &self,
        name: &Name,
        s: &mut Session,
        id: Uuid,
        start: Option<u64>,
    ) -> Result<(), StoreError> {
        if s.closed {
            return Err(StoreError::UploadUnknown(id.to_string()));
        }
        let size = self.current_size(name, s, id).await?;
        match start {
            Some(start) if start != size => Err(StoreError::RangeInvalid { start, size }),
            _ => Ok(()),
        }
    }

    /// Bytes received so far.
    pub async fn upload_status(&self, name: &Name, id: Uuid) -> Result<u64, StoreError> {
        let entry = self.session(name, id).await?;
        let mut s = entry.state.lock().await;
        if s.closed {
            return Err(StoreError::UploadUnknown(id.to_string()));
        }
        self.current_size(name, &mut s, id).await
    }

    /// Appends `body` to an upload. `start`, from `Content-Range`, must be
    /// where the upload ends. Returns the new size.
    pub async fn upload_append(
        &self,
        name: &Name,
        id: Uuid,
        start: Option<u64>,
        body: Body,
    ) -> Result<u64, StoreError> {
        let entry = self.session(name, id).await?;
        let mut s = entry.state.lock().await;
        self.check_start(name, &mut s, id, start).await?;
        self.append(name, &mut s, id, body).await
    }

    async fn append(
        &self,
        name: &Name,
        s: &mut Session,
        id: Uuid,
        mut body: Body,
    ) -> Result<u64, StoreError> {
        // Until the chunk is committed the hash state may not match storage.
        let mut hasher = s.hasher.take().map(BackgroundHash::new);
        let mut w = self
            .storage
            .writer(&layout::upload_data(name, id), true)
            .await?;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    w.commit().await?;
                    return Err(StoreError::UploadInvalid(format!(
                        "request body ended early: {e}"
                    )));
                }
            };
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk).await?;
            }
            w.write(chunk).await?;
        }
        let size = w.size();
        let hasher = match hasher {
            Some(h) => Some(h.finish().await?),
            None => None,
        };
        w.commit().await?;
        s.size = size;
        s.hasher = hasher;
        Ok(size)
    }

    /// Finishes an upload: appends `body`, checks the digest and publishes
    /// the blob. On a mismatch the upload is discarded and nothing is stored.
    pub async fn upload_finish(
        &self,
        name: &Name,
        id: Uuid,
        digest: &Digest,
        start: Option<u64>,
        body: Body,
    ) -> Result<u64, StoreError> {
        let entry = self.session(name, id).await?;
        let mut s = entry.state.lock().await;
        self.check_start(name, &mut s, id, start).await?;
        let result = self.finish(name, &mut s, id, digest, body).await;
        match &result {
            // A client may retry a chunk after an I/O failure; anything else
            // ends the upload, and a bad digest must leave nothing behind.
            Err(StoreError::Storage(_)) => {}
            _ => {
                s.closed = true;
                self.sessions_lock().remove(&id);
                self.storage.delete(&layout::upload(name, id)).await?;
            }
        }
        result
    }

    async fn finish(
        &self,
        name: &Name,
        s: &mut Session,
        id: Uuid,
        digest: &Digest,
        body: Body,
    ) -> Result<u64, StoreError> {
        let size = self.append(name, s, id, body).await?;
        let data = layout::upload_data(name, id);
        let actual = match s.hasher.take() {
            Some(h) if h.algorithm() == digest.algorithm() => h.finish(),
            _ => self.rehash(&data, digest.algorithm()).await?,
        };
        if actual != *digest {
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        let target = layout::blob_data(digest);
        match self.storage.rename(&data, &target).await {
            Ok(()) => {}
            // A zero-byte upload never created its data object.
            Err(e) if e.is_not_found() && size == 0 => {
                self.storage.put_bytes(&target, Bytes::new()).await?;
            }
            Err(e) => return Err(e.into()),
        }
        self.link_blob(name, digest).await?;
        Ok(size)
    }

    async fn rehash(&self, path: &str, alg: Algorithm) -> Result<Digest, StoreError> {
        let mut h = Hasher::new(alg);
        match self.storage.get(path, None).await {
            Ok(mut stream) => {
                while let Some(chunk) = stream.try_next().await? {
                    h.update(&chunk);
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        Ok(h.finish())
    }

    /// Abandons an upload.
    pub async fn upload_cancel(&self, name: &Name, id: Uuid) -> Result<(), StoreError> {
        let entry = self.session(name, id).await?;
        let mut s = entry.state.lock().await;
        if s.closed {
            return Err(StoreError::UploadUnknown(id.to_string()));
        }
        s.closed = true;
        self.sessions_lock().remove(&id);
        self.storage.delete(&layout::upload(name, id)).await?;
        Ok(())
    }

    /// Removes uploads started more than `max_age` ago; returns how many.
    pub async fn purge_uploads(&self, max_age: Duration) -> Result<usize, StoreError> {
        let now = SystemTime::now();
        let mut purged = 0;
        for repo in self.walk().await?.uploads {
            let Ok(name) = Name::parse(&repo) else {
                continue;
            };
            for entry in self.storage.list(&layout::uploads(&repo)).await? {
                let Ok(id) = Uuid::parse_str(&entry) else {
                    continue;
                };
                let started = match self.storage.stat(&layout::upload_started(&name, id)).await {
                    Ok(m) => m.modified,
                    // A directory without its marker is debris: remove it.
                    Err(e) if e.is_not_found() => SystemTime::UNIX_EPOCH,
                    Err(e) => return Err(e.into()),
                };
                if now.duration_since(started).unwrap_or_default() > max_age {
                    if let Some(s) = self.sessions_lock().remove(&id)
                        && let Ok(mut s) = s.state.try_lock()
                    {
                        s.closed = true;
                    }
                    self.storage.delete(&layout::upload(&name, id)).await?;
                    purged += 1;
                }
            }
        }
        Ok(purged)
    }

    // ------------------------------------------------------------ manifests

    /// A manifest by tag or digest.
    pub async fn manifest_get(
        &self,
        name: &Name,
        reference: &Reference,
        reference_text: &str,
    ) -> Result<Arc<StoredManifest>, StoreError> {
        let key = cache_key(name, reference_text);
        if !self.shared
            && let Some(m) = self.cache_read().get(&key)
        {
            return Ok(m.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let unknown = || StoreError::ManifestUnknown(reference_text.to_owned());
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => {
                let raw =
                    not_found_as(self.storage.get_bytes(&layout::tag(name, t)).await, unknown)?;
                std::str::from_utf8(&raw)
                    .ok()
                    .and_then(|s| Digest::parse(s.trim()).ok())
                    .ok_or_else(unknown)?
            }
        };
        let media = not_found_as(
            self.storage
                .get_bytes(&layout::revision_link(name, &digest))
                .await,
            unknown,
        )?;
        let bytes = not_found_as(
            self.storage.get_bytes(&layout::blob_data(&digest)).await,
            unknown,
        )?;
        let m = Arc::new(StoredManifest {
            media_type: String::from_utf8_lossy(&media).trim().to_owned(),
            digest,
            bytes,
        });
        let mut cache = self.cache_write();
        // Only fill if no write happened since this read began.
        if !self.shared && self.generation.load(Ordering::Acquire) == generation {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key, m.clone());
        }
        Ok(m)
    }

    fn cache_read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<StoredManifest>>> {
        read_lock(&self.cache)
    }

    fn cache_write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<StoredManifest>>> {
        write_lock(&self.cache)
    }

    /// Drops cached manifests of `name` after a write there.
    fn invalidate(&self, name: &Name) {
        let mut cache = self.cache_write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let prefix = cache_key(name, "");
        cache.retain(|k, _| !k.starts_with(&prefix));
    }

    /// Validates and stores a manifest, then points `reference` at it.
    pub async fn manifest_put(
        &self,
        name: &Name,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<PutManifest, StoreError> {
        let m = Manifest::parse(&bytes, content_type).map_err(|e| match e {
            ManifestError::Invalid(m) => StoreError::ManifestInvalid(m),
            e @ ManifestError::Unsupported(_) => StoreError::ManifestInvalid(e.to_string()),
        })?;
        let digest = match reference {
            Reference::Digest(expected) => {
                let mut h = Hasher::new(expected.algorithm());
                h.update(&bytes);
                let actual = h.finish();
                if actual != *expected {
                    return Err(StoreError::DigestMismatch {
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            Reference::Tag(_) => Digest::sha256_of(&bytes),
        };
        for b in m.blobs.iter().filter(|b| !b.external) {
            match self.linked(name, &b.digest).await {
                Err(StoreError::BlobUnknown(d)) => return Err(StoreError::ManifestBlobUnknown(d)),
                other => other?,
            }
        }
        for c in &m.children {
            match self
                .storage
                .stat(&layout::revision_link(name, &c.digest))
                .await
            {
                Err(e) if e.is_not_found() => {
                    return Err(StoreError::ManifestBlobUnknown(c.digest.clone()));
                }
                other => {
                    other?;
                }
            }
        }
        // Content first, then the link that makes it visible, then the tag.
        self.storage
            .put_bytes(&layout::blob_data(&digest), bytes.clone())
            .await?;
        self.storage
            .put_bytes(
                &layout::revision_link(name, &digest),
                Bytes::from(m.media_type.clone()),
            )
            .await?;
        if let Some(subject) = &m.subject {
            let mut d = json!({
                "mediaType": m.media_type,
                "digest": digest.as_str(),
                "size": bytes.len(),
            });
            if let Some(t) = &m.artifact_type {
                d["artifactType"] = Value::from(t.clone());
            }
            if let Some(a) = &m.annotations {
                d["annotations"] = a.clone();
            }
            self.storage
                .put_bytes(
                    &layout::referrer(name, &subject.digest, &digest),
                    Bytes::from(d.to_string()),
                )
                .await?;
        }
        if let Reference::Tag(t) = reference {
            self.storage
                .put_bytes(
                    &layout::tag(name, t),
                    Bytes::copy_from_slice(digest.as_str().as_bytes()),
                )
                .await?;
        }
        self.invalidate(name);
        if let Some(index) = &self.index {
            index.add(name.as_str().to_owned()).await;
        }
        Ok(PutManifest {
            digest,
            subject: m.subject.map(|s| s.digest),
        })
    }

    /// Deletes a tag, or a manifest with every tag pointing at it.
    pub async fn manifest_delete(
        &self,
        name: &Name,
        reference: &Reference,
    ) -> Result<(), StoreError> {
        let unknown = || StoreError::ManifestUnknown(reference.to_string());
        let digest = match reference {
            Reference::Tag(t) => {
                let path = layout::tag(name, t);
                not_found_as(self.storage.stat(&path).await, unknown)?;
                self.storage.delete(&path).await?;
                self.invalidate(name);
                return Ok(());
            }
            Reference::Digest(d) => d,
        };
        let link = layout::revision_link(name, digest);
        not_found_as(self.storage.stat(&link).await, unknown)?;
        let subject = match self.storage.get_bytes(&layout::blob_data(digest)).await {
            Ok(b) => Manifest::parse(&b, None).ok().and_then(|m| m.subject),
            Err(_) => None,
        };
        for t in self.storage.list(&layout::tags(name)).await? {
            let Ok(tag) = super::oci::Tag::parse(&t) else {
                continue;
            };
            let path = layout::tag(name, &tag);
            if let Ok(b) = self.storage.get_bytes(&path).await
                && b.trim_ascii() == digest.as_str().as_bytes()
            {
                self.storage.delete(&path).await?;
            }
        }
        // The revision directory, not just its link, so listings stay clean.
        let dir = link.trim_end_matches("/link").to_owned();
        self.storage.delete(&dir).await?;
        if let Some(s) = subject {
            self.storage
                .delete(&layout::referrer(name, &s.digest, digest))
                .await?;
        }
        self.invalidate(name);
        if let Some(index) = &self.index
            && !self.has_manifests(name).await?
        {
            index.remove(name.as_str().to_owned()).await;
        }
        Ok(())
    }

    async fn has_manifests(&self, name: &Name) -> Result<bool, StoreError> {
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            if !self
                .storage
                .list(&layout::revisions(name, alg))
                .await?
                .is_empty()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The repository's tags, sorted.
    pub async fn tags(&self, name: &Name) -> Result<Vec<String>, StoreError> {
        if self
            .storage
            .list(&layout::repository(name))
            .await?
            .is_empty()
        {
            return Err(StoreError::NameUnknown(name.clone()));
        }
        let mut tags = self.storage.list(&layout::tags(name)).await?;
        tags.retain(|t| super::oci::Tag::parse(t).is_ok());
        tags.sort_unstable();
        Ok(tags)
    }

    /// Descriptors of the manifests whose subject is `subject`, optionally
    /// only those of `artifact_type`, in a stable order.
    pub async fn referrers(
        &self,
        name: &Name,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Value>, StoreError> {
        let dir = layout::referrers(name, subject);
        let mut entries = self.storage.list(&dir).await?;
        entries.sort_unstable();
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let Ok(raw) = self.storage.get_bytes(&format!("{dir}/{e}")).await else {
                continue;
            };
            let Ok(d) = serde_json::from_slice::<Value>(&raw) else {
                continue;
            };
            if artifact_type
                .is_none_or(|t| d.get("artifactType").and_then(Value::as_str) == Some(t))
            {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// All repositories that have had a manifest, sorted.
    pub async fn repositories(&self) -> Result<Vec<String>, StoreError> {
        let mut r = self.walk().await?.manifests;
        r.sort_unstable();
        Ok(r)
    }

    /// Repositories that currently hold at least one manifest (what the
    /// search index lists), sorted.
    pub async fn repositories_with_manifests(&self) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for r in self.repositories().await? {
            if let Ok(name) = Name::parse(&r)
                && self.has_manifests(&name).await?
            {
                out.push(r);
            }
        }
        Ok(out)
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

/// Bytes of a request body hashed per blocking task.
const HASH_BATCH: usize = 1 << 20;

/// Hashes a body on the blocking pool, a batch at a time, while the caller
/// goes on receiving and writing: every byte is hashed once, as it streams
/// in, and on two cores the hash no longer holds up the network. Batches
/// are copies in two reused buffers (holding the body's own chunks would
/// keep the connection's read buffers alive).
struct BackgroundHash {
    idle: Option<Hasher>,
    busy: Option<tokio::task::JoinHandle<(Hasher, Vec<u8>)>>,
    batch: Vec<u8>,
    spare: Vec<u8>,
}

impl BackgroundHash {
    fn new(h: Hasher) -> Self {
        Self {
            idle: Some(h),
            busy: None,
            batch: Vec::new(),
            spare: Vec::new(),
        }
    }

    async fn settle(&mut self) -> Result<(), StoreError> {
        if let Some(task) = self.busy.take() {
            let (h, mut buf) = task
                .await
                .map_err(|e| StorageError::io("upload hash", std::io::Error::other(e)))?;
            buf.clear();
            self.spare = buf;
            self.idle = Some(h);
        }
        Ok(())
    }

    async fn update(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        while !data.is_empty() {
            if self.batch.capacity() == 0 {
                self.batch.reserve_exact(HASH_BATCH);
            }
            let n = data.len().min(HASH_BATCH.saturating_sub(self.batch.len()));
            self.batch.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.batch.len() >= HASH_BATCH {
                self.settle().await?;
                let next = std::mem::take(&mut self.spare);
                let batch = std::mem::replace(&mut self.batch, next);
                if let Some(mut h) = self.idle.take() {
                    self.busy = Some(tokio::task::spawn_blocking(move || {
                        h.update(&batch);
                        (h, batch)
                    }));
                }
            }
        }
        Ok(())
    }

    /// The hash of everything given, the last (partial) batch hashed here.
    async fn finish(mut self) -> Result<Hasher, StoreError> {
        self.settle().await?;
        let mut h = self.idle.take().ok_or_else(|| {
            StorageError::io("upload hash", std::io::Error::other("hash state lost"))
        })?;
        h.update(&self.batch);
        Ok(h)
    }
}

#[derive(Default)]
struct Walk {
    manifests: Vec<String>,
    uploads: Vec<String>,
}

// A panic while holding a cache lock cannot leave the map inconsistent
// (every operation on it is a single insert/remove/get/clear).
fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn not_found_as<T>(
    r: Result<T, StorageError>,
    f: impl FnOnce() -> StoreError,
) -> Result<T, StoreError> {
    match r {
        Err(e) if e.is_not_found() => Err(f()),
        other => Ok(other?),
    }
}
