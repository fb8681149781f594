//! Blobs of a repository: size, content, redirect, mount, delete, and the
//! link that makes a blob part of a repository. Blob content is immutable
//! (its path is its digest); a repository holds a blob through its link.
//! Removing unreferenced content is garbage collection's job, not this
//! module's.
//!
//! Costs on shared storage: a blob's size is asked of storage once per
//! digest (it never changes; [`Global`] cache), its link in a repository
//! once, then again only after another process's change of the
//! repository's links arrives through the change log, or when the log was
//! not read recently enough (see `mod.rs`); a `GET` is one ranged request
//! to the blob's data. A blob `DELETE` appends to the change log.

use std::time::Duration;

use bytes::Bytes;

use super::cache::Global;
use super::{Store, StoreError};
use crate::registry::layout;
use crate::registry::oci::{Digest, Name};
use crate::registry::storage::ByteStream;

impl Store {
    /// Size of a blob of the repository.
    pub(crate) async fn blob_size(&self, name: &Name, digest: &Digest) -> Result<u64, StoreError> {
        self.note_lookup();
        // On shared storage, while the change log is followed, a `gc` that
        // removed blob data has told this process so (the log's `BlobData`
        // entry drops the caches), within the bound.
        let followed = self.shared && self.log_clock.fresh();
        if let Some(size) = self.blob_sizes.get(name, digest.as_str()) {
            if followed {
                return Ok(size);
            }
            // A separate `regconf gc` process may have removed the data
            // since the entry was filled, and it cannot drop this process's
            // entries: one stat (cheaper than the miss's link read and
            // stat) keeps a `HEAD` from answering 200 for a removed blob.
            return match self.storage.stat(&layout::blob_data(digest)).await {
                Ok(_) => Ok(size),
                Err(e) if e.is_not_found() => {
                    self.blob_sizes.remove(name, digest.as_str());
                    Err(StoreError::BlobUnknown(digest.clone()))
                }
                Err(e) => Err(e.into()),
            };
        }
        let generation = self.blob_sizes.generation();
        self.linked_on_storage(name, digest).await?;
        let size = self.data_size(digest).await?;
        // Only fills if no delete happened since this read began.
        self.blob_sizes
            .fill(name, digest.as_str(), size, generation);
        Ok(size)
    }

    /// Size of a blob's data, in whatever repository (on shared storage
    /// remembered by digest: the data behind a digest never changes;
    /// whether it is still there is the link's and the caller's business).
    pub(super) async fn data_size(&self, digest: &Digest) -> Result<u64, StoreError> {
        if let Some(size) = self.data_sizes.get(&Global, digest.as_str()) {
            return Ok(size);
        }
        let generation = self.data_sizes.generation();
        let size = match self.storage.stat(&layout::blob_data(digest)).await {
            Ok(m) => m.size,
            Err(e) if e.is_not_found() => return Err(StoreError::BlobUnknown(digest.clone())),
            Err(e) => return Err(e.into()),
        };
        self.data_sizes
            .fill(&Global, digest.as_str(), size, generation);
        Ok(size)
    }

    /// Remembers that `name` links `digest`, whose data has `size` bytes,
    /// as just checked or written (`since` taken before).
    pub(super) fn known_linked(
        &self,
        name: &Name,
        digest: &Digest,
        size: u64,
        since: (super::cache::Generation, super::cache::Generation),
    ) {
        self.blob_sizes.fill(name, digest.as_str(), size, since.0);
        self.data_sizes
            .fill(&Global, digest.as_str(), size, since.1);
    }

    /// Where a read that may end in [`Store::known_linked`] begins.
    pub(super) fn link_generation(&self) -> (super::cache::Generation, super::cache::Generation) {
        (self.blob_sizes.generation(), self.data_sizes.generation())
    }

    /// Streams a blob (or `range` of it, which the caller has checked
    /// against [`Store::blob_size`]).
    pub(crate) async fn blob_read(
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
    pub(crate) async fn blob_redirect(
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
    pub(crate) async fn blob_delete(&self, name: &Name, digest: &Digest) -> Result<(), StoreError> {
        // Not between a manifest push's check of this blob and its write:
        // the lease orders pushes that check, the fence those that do not.
        self.fence_for_delete().await?;
        let write = self.write_lock(name).await?;
        self.linked_on_storage(name, digest).await?;
        let deleted = self
            .storage
            .delete_object(&layout::layer_link(name, digest))
            .await;
        // Even after a failed delete: the link may be gone.
        self.blob_sizes.remove(name, digest.as_str());
        drop(write);
        // For other processes' caches; also after a failed delete.
        self.log_layers(name).await;
        deleted?;
        Ok(())
    }

    /// Makes a blob of `from` part of `name`; `false` when `from` lacks it.
    pub(crate) async fn blob_mount(
        &self,
        name: &Name,
        digest: &Digest,
        from: &Name,
    ) -> Result<bool, StoreError> {
        match self.blob_size(from, digest).await {
            Ok(size) => match self.link_blob(name, digest, size).await {
                Ok(()) => Ok(true),
                // Its data went meanwhile: the client uploads it.
                Err(StoreError::BlobUnknown(_)) => Ok(false),
                Err(e) => Err(e),
            },
            Err(StoreError::BlobUnknown(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn linked_on_storage(&self, name: &Name, digest: &Digest) -> Result<(), StoreError> {
        match self.storage.stat(&layout::layer_link(name, digest)).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Err(StoreError::BlobUnknown(digest.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes a blob of `size` bytes, whose data is in place, part of
    /// `name`. Only this process's lock is taken, not the lease: adding
    /// a link is one atomic write whose outcome depends on nothing read,
    /// so whichever order it lands in with another process's write of the
    /// repository, the result is one that order gives serially (a blob
    /// `DELETE` checks then deletes under the lease; a link added between
    /// the two is deleted as if added just before).
    pub(super) async fn link_blob(
        &self,
        name: &Name,
        digest: &Digest,
        size: u64,
    ) -> Result<(), StoreError> {
        let _write = self.local_lock(name).await;
        let since = self.link_generation();
        let quiet = self.fences_clear_since();
        let link = Bytes::copy_from_slice(digest.as_str().as_bytes());
        let path = layout::layer_link(name, digest);
        self.storage.put_bytes(&path, link).await?;
        // Shared storage: a collector may have moved the data to its trash
        // after it was checked and before the link landed, too late to see
        // the link; a link left so would outlive the data, and a quiet
        // manifest push trusts links (`quiet.rs`). So the data is looked at
        // again, unless no collector can have started removing meanwhile
        // (`fence.rs`: the log read that saw no fence is recent enough).
        if self.shared && quiet.is_none_or(|t| t.elapsed() >= super::fence::WAIT) {
            match self.storage.stat(&layout::blob_data(digest)).await {
                Err(e) if e.is_not_found() => {
                    let _ = self.storage.delete_object(&path).await;
                    self.blob_sizes.remove(name, digest.as_str());
                    return Err(StoreError::BlobUnknown(digest.clone()));
                }
                other => {
                    other?;
                }
            }
        }
        self.known_linked(name, digest, size, since);
        Ok(())
    }
}
