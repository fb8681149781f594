//! The quiet manifest push, on shared storage while no removal is fenced
//! (`fence.rs`): the push itself (content when new, revision link, tag,
//! change-log entry) without the repository lease and without the checks
//! that only a concurrent garbage collector or delete makes necessary.
//! The full path, with both, is `manifests.rs`'s `manifest_put`.
//!
//! What it still checks before writing: every blob is linked in the
//! repository (from the link cache, whose bound is this process's, else
//! storage) with the size the manifest says, and every child manifest is
//! there (storage). What it skips, and why that is safe:
//!
//! * the lease: it orders a push against a `DELETE` of the manifest or of
//!   a blob in another process, and those raise the fence and wait until
//!   every quiet push that could not see it has returned;
//! * the check of the references against storage after the revision link
//!   and the re-assertion of the link after the tag (garbage collection's
//!   protocol, `gc/GC.md`): a collector raises the fence before its first
//!   removal, so its removals come after every quiet push that missed it;
//! * the content, when the revision link already existed (a conditional
//!   `PUT` says so): a manifest's content goes only with garbage
//!   collection, and none runs;
//! * the rewrite of an existing revision link that renews its age, for a
//!   push by tag (the tag keeps the manifest from an untagged collection;
//!   a push by digest still renews it).
//!
//! A push that takes longer than the fence's bound (its log read began
//! more than `fence::WAIT` before) falls back to those checks: before the
//! tag when it is late there, after it (undoing the tag and a new link if
//! a reference is gone) when only the tag's write was slow.
//!
//! This module must not change what a push means; the answers are the
//! full path's.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::cache::Global;
use super::fence::WAIT;
use super::manifests::check_size;
use super::{PutManifest, Store, StoreError};
use crate::registry::layout;
use crate::registry::oci::{Digest, Manifest, Name, Reference};

/// Time kept for the tag's write: a push later than `WAIT` less this at
/// the tag checks first.
const TAG_BUDGET: Duration = Duration::from_secs(1);

impl Store {
    /// Pushes `m` (`bytes`, `digest`) as `reference` on the quiet path,
    /// relying on a log read that began at `read` and saw no fence.
    pub(super) async fn put_quietly(
        &self,
        name: &Name,
        reference: &Reference,
        m: Manifest,
        digest: Digest,
        bytes: Bytes,
        read: Instant,
    ) -> Result<PutManifest, StoreError> {
        // This process's own writes of the repository stay in order.
        let _local = self.local_lock(name).await;
        for b in m.blobs.iter().filter(|b| !b.external) {
            let size = match self.linked_size(name, &b.digest).await {
                Err(StoreError::BlobUnknown(d)) => return Err(StoreError::ManifestBlobUnknown(d)),
                other => other?,
            };
            check_size(b, size)?;
        }
        self.children_present(name, &m).await?;
        let link = layout::revision_link(name, &digest);
        let media_type = Bytes::from(m.media_type.clone());
        let content = layout::blob_data(&digest);
        // A manifest this process has seen: the link first, which says
        // whether the content is there already; else the content first.
        let existed = if self.contents.get(&Global, digest.as_str()).is_some() {
            let existed = !self.storage.create_new(&link, media_type.clone()).await?;
            if !existed && let Err(e) = self.storage.put_bytes(&content, bytes.clone()).await {
                let _ = self.storage.delete(link.trim_end_matches("/link")).await;
                return Err(e.into());
            }
            existed
        } else {
            let since = self.contents.generation();
            self.storage.put_bytes(&content, bytes.clone()).await?;
            // What a digest names never changes: the next push or pull of
            // it need not read or write the content again.
            self.contents
                .fill(&Global, digest.as_str(), bytes.clone(), since);
            !self.storage.create_new(&link, media_type.clone()).await?
        };
        if existed && matches!(reference, Reference::Digest(_)) {
            // Its age starts again, as on the full path (`gc/GC.md`).
            self.storage.put_bytes(&link, media_type.clone()).await?;
        }
        let checked = read.elapsed() + TAG_BUDGET >= WAIT;
        if checked {
            if existed && matches!(reference, Reference::Tag(_)) {
                self.storage.put_bytes(&link, media_type.clone()).await?;
            }
            self.references_stored_or_unlink(name, &m, &link, existed)
                .await?;
        }
        self.write_referrer_and_tag(name, reference, &m, &digest, bytes.len())
            .await?;
        if checked || read.elapsed() >= WAIT {
            self.reassert_link(&link, media_type).await?;
        }
        if !checked
            && read.elapsed() >= WAIT
            && let Err(e) = self.references_stored(name, &m).await
        {
            self.undo_tag(name, reference, &digest).await;
            if !existed {
                let _ = self.storage.delete(link.trim_end_matches("/link")).await;
            }
            return Err(e);
        }
        self.manifest_written(name, reference, m, digest).await
    }

    /// The size of a blob linked in `name`, from the link cache when it
    /// has the link, without asking storage whether the data is still
    /// there (only garbage collection removes it, and it is fenced).
    async fn linked_size(&self, name: &Name, digest: &Digest) -> Result<u64, StoreError> {
        if let Some(size) = self.blob_sizes.get(name, digest.as_str()) {
            return Ok(size);
        }
        let since = self.link_generation();
        match self.storage.stat(&layout::layer_link(name, digest)).await {
            Err(e) if e.is_not_found() => return Err(StoreError::BlobUnknown(digest.clone())),
            other => {
                other?;
            }
        }
        let size = self.data_size(digest).await?;
        self.known_linked(name, digest, size, since);
        Ok(size)
    }

    /// Writes the revision link again if it is gone (a collector or a
    /// delete removed it after the push wrote it).
    pub(super) async fn reassert_link(
        &self,
        link: &str,
        media_type: Bytes,
    ) -> Result<(), StoreError> {
        match self.storage.stat(link).await {
            Err(e) if e.is_not_found() => self.storage.put_bytes(link, media_type).await?,
            other => {
                other?;
            }
        }
        Ok(())
    }

    /// Removes the tag a failed push wrote, if it still names `digest`.
    async fn undo_tag(&self, name: &Name, reference: &Reference, digest: &Digest) {
        if let Reference::Tag(t) = reference {
            let path = layout::tag(name, t);
            if let Ok(b) = self.storage.get_bytes(&path).await
                && b.trim_ascii() == digest.as_str().as_bytes()
            {
                let _ = self.storage.delete_object(&path).await;
            }
        }
    }
}
