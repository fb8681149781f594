//! Uploads: start, append, status, finish (verify and publish the blob),
//! cancel, and the purge of abandoned uploads. An upload's bytes live on
//! storage; its hash state lives in the session map ([`super::sessions`])
//! and is used only while it is known to match those bytes (see the
//! store's Rationale).
//!
//! A blob sent whole (`PUT` with the body, or `POST ?digest=`, onto an
//! empty upload) is written straight to its place as the body arrives and
//! committed only once its digest is checked, instead of being appended
//! to the upload and then copied: on an object store one `PUT` instead of
//! a staged part, a copy and their deletes.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

use super::hashing::BackgroundHash;
use super::sessions::{Session, SessionEntry, SessionRef};
use super::{Body, Store, StoreError};
use crate::registry::layout;
use crate::registry::oci::{Algorithm, Digest, Hasher, Name};

impl Store {
    /// Starts an upload, unless as many as the store allows are open
    /// (uploads end when finished, cancelled or purged).
    pub(crate) async fn upload_start(&self, name: &Name) -> Result<Uuid, StoreError> {
        let id = Uuid::new_v4();
        // Counted before anything is written, so a refused start leaves
        // nothing behind.
        if !self
            .sessions
            .insert_new(id, SessionEntry::new(name, true), self.max_uploads)
        {
            return Err(StoreError::TooManyUploads(self.max_uploads));
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let started = self
            .storage
            .put_bytes(
                &layout::upload_started(name, id),
                Bytes::from(now.to_string()),
            )
            .await;
        if let Err(e) = started {
            self.sessions.remove(id);
            return Err(e.into());
        }
        Ok(id)
    }

    /// The session of upload `id` of `name`, recreated from storage after a
    /// restart.
    async fn session(&self, name: &Name, id: Uuid) -> Result<SessionRef, StoreError> {
        let unknown = || StoreError::UploadUnknown(id.to_string());
        let cached = self.sessions.get(id);
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
                    self.sessions.remove(id);
                }
                return Err(unknown());
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(s) = cached {
            return Ok(s);
        }
        Ok(self.sessions.insert(id, SessionEntry::new(name, false)))
    }

    /// Bytes on storage for an upload whose hash state is unknown.
    async fn stored_size(&self, name: &Name, id: Uuid) -> Result<u64, StoreError> {
        match self
            .storage
            .appended_size(&layout::upload_data(name, id))
            .await
        {
            Ok(size) => Ok(size),
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
            // From here on `size` is what storage holds (appends go there).
            s.size = stored;
        }
        Ok(stored)
    }

    /// The session of upload `id`, locked for a write, once it is known
    /// to be open and, when the request gives a `Content-Range`, to end
    /// where the chunk starts.
    async fn open_at(
        &self,
        name: &Name,
        id: Uuid,
        start: Option<u64>,
    ) -> Result<OwnedMutexGuard<Session>, StoreError> {
        let entry = self.session(name, id).await?;
        let mut s = entry.state.clone().lock_owned().await;
        if s.closed {
            return Err(StoreError::UploadUnknown(id.to_string()));
        }
        let size = self.current_size(name, &mut s, id).await?;
        match start {
            Some(start) if start != size => Err(StoreError::RangeInvalid { start, size }),
            _ => Ok(s),
        }
    }

    /// Bytes received so far.
    pub(crate) async fn upload_status(&self, name: &Name, id: Uuid) -> Result<u64, StoreError> {
        let _started = self.start_purge.read().await;
        let entry = self.session(name, id).await?;
        let mut s = entry.state.lock().await;
        if s.closed {
            return Err(StoreError::UploadUnknown(id.to_string()));
        }
        self.current_size(name, &mut s, id).await
    }

    /// Appends `body` to an upload. `range` (first and last byte, from
    /// `Content-Range`) must start where the upload ends and be as long as
    /// the body. Returns the new size.
    pub(crate) async fn upload_append(
        &self,
        name: &Name,
        id: Uuid,
        range: Option<(u64, u64)>,
        body: Body,
    ) -> Result<u64, StoreError> {
        let _started = self.start_purge.read().await;
        let mut s = self.open_at(name, id, range.map(|r| r.0)).await?;
        self.append(name, &mut s, id, range, body).await
    }

    /// Writes `body` at the end of the upload. With a `range`, a body
    /// longer than it is cut at the range's end and refused: the upload
    /// keeps the bytes the range named (and says so with its size), not
    /// what the client did not announce.
    async fn append(
        &self,
        name: &Name,
        s: &mut Session,
        id: Uuid,
        range: Option<(u64, u64)>,
        mut body: Body,
    ) -> Result<u64, StoreError> {
        let declared = range.map(|(first, last)| last - first + 1);
        let mut received = 0u64;
        let mut longer = false;
        // Until the chunk is committed the hash state may not match storage.
        let mut hasher = s.hasher.take().map(BackgroundHash::new);
        // `open_at` has just made `s.size` what storage holds.
        let mut w = self
            .storage
            .append_writer_at(&layout::upload_data(name, id), s.size)
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
            let mut chunk = chunk;
            if let Some(d) = declared
                && received + chunk.len() as u64 > d
            {
                // Fits: `d - received` is below this chunk's length.
                chunk.truncate((d - received) as usize);
                longer = true;
            }
            received += chunk.len() as u64;
            if let Some(h) = hasher.as_mut() {
                h.update(&chunk).await?;
            }
            if !chunk.is_empty() {
                w.write(chunk).await?;
            }
            if longer {
                break;
            }
        }
        let size = w.size();
        let hasher = match hasher {
            Some(h) => Some(h.finish().await?),
            None => None,
        };
        w.commit().await?;
        s.size = size;
        s.hasher = hasher;
        match (declared, range) {
            (Some(d), Some((first, last))) if longer || received != d => {
                Err(StoreError::ChunkLength {
                    first,
                    last,
                    longer,
                    size,
                })
            }
            _ => Ok(size),
        }
    }

    /// Finishes an upload: appends `body`, checks the digest and publishes
    /// the blob. On a mismatch the upload is discarded and nothing is stored.
    pub(crate) async fn upload_finish(
        &self,
        name: &Name,
        id: Uuid,
        digest: &Digest,
        range: Option<(u64, u64)>,
        body: Body,
    ) -> Result<u64, StoreError> {
        let _started = self.start_purge.read().await;
        let mut s = self.open_at(name, id, range.map(|r| r.0)).await?;
        let result = self.finish(name, &mut s, id, digest, range, body).await;
        match &result {
            // A client may retry a chunk after an I/O failure; anything else
            // ends the upload, and a bad digest must leave nothing behind.
            Err(StoreError::Storage(_)) => {}
            _ => {
                s.closed = true;
                self.sessions.remove(id);
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
        range: Option<(u64, u64)>,
        body: Body,
    ) -> Result<u64, StoreError> {
        if s.size == 0 && range.is_none() {
            return self.finish_whole(name, digest, body).await;
        }
        let size = self.append(name, s, id, range, body).await?;
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
        // The upload's folder is deleted whole afterwards (`upload_finish`).
        match self.storage.publish_appended(&data, &target).await {
            Ok(()) => {}
            // A zero-byte upload never created its data object.
            Err(e) if e.is_not_found() && size == 0 => {
                self.storage.put_bytes(&target, Bytes::new()).await?;
            }
            Err(e) => return Err(e.into()),
        }
        self.link_blob(name, digest, size).await?;
        Ok(size)
    }

    /// Finishes an empty upload with the whole blob in `body`: written to
    /// its place, hashed as it arrives, committed (made visible) only if
    /// the digest matches, else abandoned. The upload itself stays empty.
    async fn finish_whole(
        &self,
        name: &Name,
        digest: &Digest,
        mut body: Body,
    ) -> Result<u64, StoreError> {
        let mut hasher = BackgroundHash::new(Hasher::new(digest.algorithm()));
        let mut w = self
            .storage
            .writer(&layout::blob_data(digest), false)
            .await?;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = w.cancel().await;
                    return Err(StoreError::UploadInvalid(format!(
                        "request body ended early: {e}"
                    )));
                }
            };
            hasher.update(&chunk).await?;
            if !chunk.is_empty() {
                w.write(chunk).await?;
            }
        }
        let size = w.size();
        let actual = hasher.finish().await?.finish();
        if actual != *digest {
            let _ = w.cancel().await;
            return Err(StoreError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        w.commit().await?;
        self.link_blob(name, digest, size).await?;
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
    pub(crate) async fn upload_cancel(&self, name: &Name, id: Uuid) -> Result<(), StoreError> {
        let _started = self.start_purge.read().await;
        let entry = self.session(name, id).await?;
        let mut s = entry.state.lock().await;
        if s.closed {
            return Err(StoreError::UploadUnknown(id.to_string()));
        }
        s.closed = true;
        self.sessions.remove(id);
        self.storage.delete(&layout::upload(name, id)).await?;
        Ok(())
    }

    /// Removes uploads started more than `max_age` ago; returns how many.
    pub(crate) async fn purge_uploads(&self, max_age: Duration) -> Result<usize, StoreError> {
        let t = self.purge_uploads_sized(max_age, false).await?;
        Ok(usize::try_from(t.count).unwrap_or(usize::MAX))
    }

    /// As [`Store::purge_uploads`], counting the bytes too (for gc's
    /// report); with `dry_run` nothing is removed.
    pub(crate) async fn purge_uploads_sized(
        &self,
        max_age: Duration,
        dry_run: bool,
    ) -> Result<super::gc::Tally, StoreError> {
        let now = SystemTime::now();
        let mut purged = super::gc::Tally::default();
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
                    // This process is writing the marker of an upload it
                    // has just started (the folder appears first on local
                    // storage): not debris. The purge after a start runs
                    // beside new uploads.
                    Err(e) if e.is_not_found() && self.sessions.get(id).is_some() => continue,
                    // A directory without its marker is debris: remove it.
                    Err(e) if e.is_not_found() => SystemTime::UNIX_EPOCH,
                    Err(e) => return Err(e.into()),
                };
                if now.duration_since(started).unwrap_or_default() <= max_age {
                    continue;
                }
                let size = match self.storage.stat(&layout::upload_data(&name, id)).await {
                    Ok(m) => m.size,
                    Err(_) => 0,
                };
                if dry_run {
                    purged.count += 1;
                    purged.bytes += size;
                    continue;
                }
                // Held while the upload is deleted, so no chunk starts
                // meanwhile; a request waiting for it then finds it closed.
                let mut held = None;
                if let Some(entry) = self.sessions.get(id) {
                    let Ok(mut s) = entry.state.clone().try_lock_owned() else {
                        // A request is writing to it right now: it is not
                        // abandoned, whatever its age.
                        continue;
                    };
                    s.closed = true;
                    self.sessions.remove(id);
                    held = Some(s);
                }
                self.storage.delete(&layout::upload(&name, id)).await?;
                drop(held);
                purged.count += 1;
                purged.bytes += size;
            }
        }
        Ok(purged)
    }
}
