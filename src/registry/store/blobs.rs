//! Blobs of a repository: size, content, redirect, mount, delete, and the
//! link that makes a blob part of a repository. Blob content is immutable
//! (its path is its digest); a repository holds a blob through its link.
//! Removing unreferenced content is garbage collection's job, not this
//! module's.

use std::time::Duration;

use bytes::Bytes;

use super::{Store, StoreError};
use crate::registry::layout;
use crate::registry::oci::{Digest, Name};
use crate::registry::storage::ByteStream;

impl Store {
    /// Size of a blob of the repository.
    pub(crate) async fn blob_size(&self, name: &Name, digest: &Digest) -> Result<u64, StoreError> {
        if let Some(size) = self.blob_sizes.get(name, digest.as_str()) {
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
        let size = match self.storage.stat(&layout::blob_data(digest)).await {
            Ok(m) => m.size,
            Err(e) if e.is_not_found() => return Err(StoreError::BlobUnknown(digest.clone())),
            Err(e) => return Err(e.into()),
        };
        // Only fills if no delete happened since this read began.
        self.blob_sizes
            .fill(name, digest.as_str(), size, generation);
        Ok(size)
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
        // Not between a manifest push's check of this blob and its write.
        let _write = self.write_lock(name).await?;
        self.linked_on_storage(name, digest).await?;
        let deleted = self.storage.delete(&layout::layer_link(name, digest)).await;
        // Even after a failed delete: the link may be gone.
        self.blob_sizes.remove(name, digest.as_str());
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
            Ok(_) => {
                self.link_blob(name, digest).await?;
                Ok(true)
            }
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

    pub(super) async fn link_blob(&self, name: &Name, digest: &Digest) -> Result<(), StoreError> {
        let _write = self.write_lock(name).await?;
        let link = Bytes::copy_from_slice(digest.as_str().as_bytes());
        self.storage
            .put_bytes(&layout::layer_link(name, digest), link)
            .await?;
        Ok(())
    }
}
