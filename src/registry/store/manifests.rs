//! Manifests, tags and referrers: read (through the manifest cache),
//! validate and write, delete. A manifest is checked (its blobs and child
//! manifests must be in the repository) before anything about it is
//! written; then content, revision link, referrer and tag are written in
//! that order, so that nothing points at what is not there yet. The
//! references are checked once more against storage right after the
//! revision link is written, and the link is re-asserted after the tag:
//! that is the push's half of the garbage collector's protocol
//! (`gc/GC.md`).
//!
//! Costs on shared storage: reads answer from the manifest cache until
//! another process's change of the repository arrives through the change
//! log, or for [`super::MEMBERSHIP_TTL`] when the log is not read recently
//! enough (a tag moved or a manifest deleted through another process is
//! served stale at most that long either way, see `mod.rs`), and a
//! manifest's bytes are read once per digest. A push checks what it can from the
//! caches first (sizes by digest; links another process may have deleted
//! since are left to the check against storage after the link is written,
//! which is what decides) and writes the revision link with a conditional
//! `PUT` that says whether it existed.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Value, json};

use super::cache::Global;
use super::changes::Touched;
use super::{PutManifest, Store, StoreError, StoredManifest, not_found_as};
use crate::registry::layout;
use crate::registry::oci::{
    Algorithm, Descriptor, Digest, Hasher, Manifest, ManifestError, Name, Reference, Tag,
};

impl Store {
    /// A manifest by tag or digest.
    pub(crate) async fn manifest_get(
        &self,
        name: &Name,
        reference: &Reference,
        reference_text: &str,
    ) -> Result<Arc<StoredManifest>, StoreError> {
        self.note_lookup();
        if let Some(m) = self.manifests.get(name, reference_text) {
            return Ok(m);
        }
        let generation = self.manifests.generation();
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
        let bytes = match self.contents.get(&Global, digest.as_str()) {
            Some(b) => b,
            None => {
                let since = self.contents.generation();
                let b = not_found_as(
                    self.storage.get_bytes(&layout::blob_data(&digest)).await,
                    unknown,
                )?;
                self.contents
                    .fill(&Global, digest.as_str(), b.clone(), since);
                b
            }
        };
        let m = Arc::new(StoredManifest {
            media_type: String::from_utf8_lossy(&media).trim().to_owned(),
            digest,
            bytes,
        });
        // Only fills if no write happened since this read began.
        self.manifests
            .fill(name, reference_text, m.clone(), generation);
        Ok(m)
    }

    /// Validates and stores a manifest, then points `reference` at it.
    pub(crate) async fn manifest_put(
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
        if let Some(read) = self.quiet_since().await {
            return self
                .put_quietly(name, reference, m, digest, bytes, read)
                .await;
        }
        // From the checks to the tag: nothing else writes the repository.
        let _write = self.write_lock(name).await?;
        for b in m.blobs.iter().filter(|b| !b.external) {
            // Shared storage: the size by digest only; whether the link is
            // (still) there is asked of storage after the revision link is
            // written, below, which a cache could not answer anyway.
            let stored = if self.shared {
                match self.blob_sizes.get(name, b.digest.as_str()) {
                    Some(size) => Ok(size),
                    None => self.data_size(&b.digest).await,
                }
            } else {
                self.blob_size(name, &b.digest).await
            };
            let stored = match stored {
                Err(StoreError::BlobUnknown(d)) => return Err(StoreError::ManifestBlobUnknown(d)),
                other => other?,
            };
            check_size(b, stored)?;
        }
        self.children_present(name, &m).await?;
        // Content first, then the link that makes it visible, then the tag.
        self.storage
            .put_bytes(&layout::blob_data(&digest), bytes.clone())
            .await?;
        let link = layout::revision_link(name, &digest);
        let media_type = Bytes::from(m.media_type.clone());
        // Created only if absent, which says whether it existed; an
        // existing link is written again all the same, so that its age
        // is the push's (garbage collection's re-check of untagged
        // revisions goes by it, see `gc/GC.md`).
        let existed = !self.storage.create_new(&link, media_type.clone()).await?;
        if existed {
            self.storage.put_bytes(&link, media_type.clone()).await?;
        }
        // Checked again, against storage, now that the link is written: a
        // garbage collector (in any process) either sees this link in its
        // re-check and keeps what it references, or has already moved a
        // referenced blob away and this push fails (see `gc/GC.md`).
        self.references_stored_or_unlink(name, &m, &link, existed)
            .await?;
        self.write_referrer_and_tag(name, reference, &m, &digest, bytes.len())
            .await?;
        // A collector that dropped this revision as untagged just before
        // the link was rewritten: put it back (see `gc/GC.md`).
        self.reassert_link(&link, media_type).await?;
        self.manifest_written(name, reference, m, digest).await
    }

    /// After a push's writes: drops what the caches knew of the
    /// repository, records the change, and says what was pushed.
    pub(super) async fn manifest_written(
        &self,
        name: &Name,
        reference: &Reference,
        m: Manifest,
        digest: Digest,
    ) -> Result<PutManifest, StoreError> {
        self.manifests.drop_repository(name);
        let touched = match reference {
            Reference::Tag(t) => Touched::tag(t),
            Reference::Digest(_) => Touched::none(),
        };
        self.index_added(name, touched).await;
        Ok(PutManifest {
            digest,
            subject: m.subject.map(|s| s.digest),
        })
    }

    /// [`Store::references_stored`], and when a reference is missing, the
    /// revision link `link` a push just created removed again (one that
    /// `existed` before the push stays).
    pub(super) async fn references_stored_or_unlink(
        &self,
        name: &Name,
        m: &Manifest,
        link: &str,
        existed: bool,
    ) -> Result<(), StoreError> {
        let checked = self.references_stored(name, m).await;
        if checked.is_err() && !existed {
            let _ = self.storage.delete(link.trim_end_matches("/link")).await;
        }
        checked
    }

    /// Whether every child manifest `m` names is in the repository with
    /// its content, of the size `m` says.
    pub(super) async fn children_present(
        &self,
        name: &Name,
        m: &Manifest,
    ) -> Result<(), StoreError> {
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
            match self.data_size(&c.digest).await {
                Err(StoreError::BlobUnknown(_)) => {
                    return Err(StoreError::ManifestBlobUnknown(c.digest.clone()));
                }
                Err(e) => return Err(e),
                Ok(size) => check_size(c, size)?,
            }
        }
        Ok(())
    }

    /// Writes the referrer entry (when `m` has a subject) and the tag
    /// (when pushed by tag) of a manifest of `len` bytes.
    pub(super) async fn write_referrer_and_tag(
        &self,
        name: &Name,
        reference: &Reference,
        m: &Manifest,
        digest: &Digest,
        len: usize,
    ) -> Result<(), StoreError> {
        if let Some(subject) = &m.subject {
            let mut d = json!({
                "mediaType": m.media_type,
                "digest": digest.as_str(),
                "size": len,
            });
            if let Some(t) = &m.artifact_type {
                d["artifactType"] = Value::from(t.clone());
            }
            if let Some(a) = &m.annotations {
                d["annotations"] = Value::Object(a.clone());
            }
            self.storage
                .put_bytes(
                    &layout::referrer(name, &subject.digest, digest),
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
        Ok(())
    }

    /// Deletes a tag, or a manifest with every tag pointing at it.
    pub(crate) async fn manifest_delete(
        &self,
        name: &Name,
        reference: &Reference,
    ) -> Result<(), StoreError> {
        let unknown = || StoreError::ManifestUnknown(reference.to_string());
        if let Reference::Digest(_) = reference {
            // A push skipping its checks must not be tagging it meanwhile.
            self.fence_for_delete().await?;
        }
        let _write = self.write_lock(name).await?;
        let digest = match reference {
            Reference::Tag(t) => {
                let path = layout::tag(name, t);
                not_found_as(self.storage.stat(&path).await, unknown)?;
                self.storage.delete_object(&path).await?;
                self.manifests.drop_repository(name);
                if let Some(index) = &self.index {
                    index
                        .set_tags(name.as_str().to_owned(), vec![], vec![t.to_string()])
                        .await;
                }
                self.log_change(name, false, Touched::tag(t)).await;
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
        let mut untagged = BTreeSet::new();
        for t in self.storage.list(&layout::tags(name)).await? {
            let Ok(tag) = Tag::parse(&t) else {
                continue;
            };
            let path = layout::tag(name, &tag);
            if let Ok(b) = self.storage.get_bytes(&path).await
                && b.trim_ascii() == digest.as_str().as_bytes()
            {
                self.storage.delete(&path).await?;
                untagged.insert(t);
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
        self.manifests.drop_repository(name);
        if let Some(index) = &self.index {
            let text = name.as_str().to_owned();
            index
                .set_tags(text.clone(), vec![], untagged.iter().cloned().collect())
                .await;
            let live = self.has_manifests(name).await?;
            // On an object store, a repository without manifests has no
            // `_manifests` left and leaves the catalog; a folder stays.
            let listed = live || self.in_catalog(name).await?;
            index.set_repository(text, listed.then_some(live)).await;
        }
        self.log_change(name, false, Touched::Tags(untagged)).await;
        Ok(())
    }

    /// Records in the index (if any) and the change log that `name` holds
    /// a manifest now, and that the `touched` tags exist.
    pub(super) async fn index_added(&self, name: &Name, touched: Touched) {
        if let Some(index) = &self.index {
            let text = name.as_str().to_owned();
            index.set_repository(text.clone(), Some(true)).await;
            if let Touched::Tags(tags) = &touched
                && !tags.is_empty()
            {
                index
                    .set_tags(text, tags.iter().cloned().collect(), vec![])
                    .await;
            }
        }
        self.log_change(name, true, touched).await;
    }

    /// Whether the repository is in the catalog: it has `_manifests`.
    pub(super) async fn in_catalog(&self, name: &Name) -> Result<bool, StoreError> {
        Ok(self
            .storage
            .list(&layout::repository(name))
            .await?
            .iter()
            .any(|c| c == layout::MANIFESTS_DIR))
    }

    /// Whether every blob and child `m` references is in the repository,
    /// asked of storage (not of the caches, which another process's
    /// garbage collector does not update).
    pub(super) async fn references_stored(
        &self,
        name: &Name,
        m: &Manifest,
    ) -> Result<(), StoreError> {
        let missing = |d: &Digest| StoreError::ManifestBlobUnknown(d.clone());
        for b in m.blobs.iter().filter(|b| !b.external) {
            let since = self.link_generation();
            not_found_as(
                self.storage
                    .stat(&layout::layer_link(name, &b.digest))
                    .await,
                || missing(&b.digest),
            )?;
            let meta = not_found_as(
                self.storage.stat(&layout::blob_data(&b.digest)).await,
                || missing(&b.digest),
            )?;
            check_size(b, meta.size)?;
            // Just seen in storage: a `HEAD` of it soon after costs nothing.
            self.known_linked(name, &b.digest, meta.size, since);
        }
        for c in &m.children {
            not_found_as(
                self.storage
                    .stat(&layout::revision_link(name, &c.digest))
                    .await,
                || missing(&c.digest),
            )?;
            not_found_as(
                self.storage.stat(&layout::blob_data(&c.digest)).await,
                || missing(&c.digest),
            )?;
        }
        Ok(())
    }

    pub(super) async fn has_manifests(&self, name: &Name) -> Result<bool, StoreError> {
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
    pub(crate) async fn tags(&self, name: &Name) -> Result<Vec<String>, StoreError> {
        if self
            .storage
            .list(&layout::repository(name))
            .await?
            .is_empty()
        {
            return Err(StoreError::NameUnknown(name.clone()));
        }
        self.stored_tags(name).await
    }

    /// The tags in storage, sorted (none if the repository has none).
    pub(super) async fn stored_tags(&self, name: &Name) -> Result<Vec<String>, StoreError> {
        let mut tags = self.storage.list(&layout::tags(name)).await?;
        tags.retain(|t| Tag::parse(t).is_ok());
        tags.sort_unstable();
        Ok(tags)
    }

    /// Descriptors of the manifests whose subject is `subject`, optionally
    /// only those of `artifact_type`, in a stable order.
    pub(crate) async fn referrers(
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
}

/// A descriptor's `size` must be the size of what it points at.
pub(super) fn check_size(d: &Descriptor, stored: u64) -> Result<(), StoreError> {
    if d.size == stored {
        return Ok(());
    }
    Err(StoreError::ManifestInvalid(format!(
        "`{}.size` is {} but `{}` has {stored} bytes",
        d.field, d.size, d.digest
    )))
}
