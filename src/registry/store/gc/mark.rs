//! The mark: which manifests are kept, and every digest they reference.
//!
//! Per repository: the roots are every manifest (or, with `untagged`, the
//! targets of the tags); from a kept manifest, its children (image
//! indexes), its config and layers, and the referrers (manifests whose
//! `subject` it is) are kept too. With `untagged`, a manifest no root
//! reaches is kept anyway while its revision link is younger than the
//! grace (the children of an index are pushed before the index); the rest
//! become candidates for deletion. This module reads only; it must not
//! write or delete.

use std::collections::{HashMap, HashSet};

use futures::{StreamExt as _, stream};

use super::{GcReport, Key, Marked, Run, key};
use crate::registry::layout;
use crate::registry::oci::{Algorithm, Digest, Manifest, Name, Tag};
use crate::registry::store::StoreError;

/// An untagged manifest the sweep may delete.
pub(crate) struct Untagged {
    pub(crate) name: Name,
    pub(crate) digest: Digest,
}

/// The algorithms whose digests the store keeps.
pub(super) const ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

/// Digests named by the entries of `dir` (each entry a hex name).
pub(super) async fn digests_in(
    run: &Run<'_>,
    dir: &str,
    alg: Algorithm,
) -> Result<Vec<Digest>, StoreError> {
    let names = run.store.storage.list(dir).await?;
    Ok(names
        .iter()
        .filter_map(|h| Digest::parse(&format!("{}:{h}", alg.as_str())).ok())
        .collect())
}

/// The manifests of a repository, by their revision links.
pub(super) async fn revisions(run: &Run<'_>, name: &Name) -> Result<Vec<Digest>, StoreError> {
    let mut out = Vec::new();
    for alg in ALGORITHMS {
        out.extend(digests_in(run, &layout::revisions(name, alg), alg).await?);
    }
    Ok(out)
}

/// The digests a repository's tags point at.
pub(super) async fn tag_targets(run: &Run<'_>, name: &Name) -> Result<Vec<Digest>, StoreError> {
    let mut out = Vec::new();
    for t in run.store.storage.list(&layout::tags(name)).await? {
        let Ok(tag) = Tag::parse(&t) else {
            continue;
        };
        match run.store.storage.get_bytes(&layout::tag(name, &tag)).await {
            Ok(raw) => {
                if let Some(d) = std::str::from_utf8(&raw)
                    .ok()
                    .and_then(|s| Digest::parse(s.trim()).ok())
                {
                    out.push(d);
                }
            }
            // Deleted since the listing.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The content of a manifest, wherever it is now (its blob path, or the
/// trash while a run has doomed it); `None` when it is in neither.
pub(super) async fn manifest_content(
    run: &Run<'_>,
    d: &Digest,
) -> Result<Option<Manifest>, StoreError> {
    let mut raw = None;
    for path in [layout::blob_data(d), super::sweep::trash_path(d)] {
        match run.store.storage.get_bytes(&path).await {
            Ok(b) => {
                raw = Some(b);
                break;
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let Some(raw) = raw else {
        return Ok(None);
    };
    // It was accepted by a push, so it parses; if it does not, what it
    // references is unknown, and nothing may be swept.
    Manifest::parse(&raw, None)
        .map(Some)
        .map_err(|e| StoreError::ManifestInvalid(format!("cannot read stored manifest `{d}`: {e}")))
}

impl Run<'_> {
    /// Marks every repository; returns the marked digests.
    pub(super) async fn mark(&self, report: &mut GcReport) -> Result<Marked, StoreError> {
        let mut marked = Marked {
            all: HashSet::new(),
            manifests: HashSet::new(),
            untagged: Vec::new(),
        };
        for repo in self.store.walk().await?.manifests {
            let Ok(name) = Name::parse(&repo) else {
                continue;
            };
            self.mark_repository(name, &mut marked, report).await?;
        }
        Ok(marked)
    }

    async fn mark_repository(
        &self,
        name: Name,
        marked: &mut Marked,
        report: &mut GcReport,
    ) -> Result<(), StoreError> {
        let revisions = revisions(self, &name).await?;
        let mut queue = if self.options.untagged {
            tag_targets(self, &name).await?
        } else {
            revisions.clone()
        };
        // Kept in this repository (with `untagged`, a manifest may be kept
        // in one repository and deleted from another).
        let mut kept: HashSet<Key> = HashSet::new();
        let mut subjects: Option<Vec<Digest>> = None;
        let mut expanded: HashSet<Key> = HashSet::new();
        let mut young_checked: HashMap<Key, bool> = HashMap::new();
        loop {
            while !queue.is_empty() {
                // A batch of manifests to read, read concurrently.
                let mut batch = Vec::new();
                while let Some(d) = queue.pop() {
                    let k = key(&d);
                    if !kept.insert(k) {
                        continue;
                    }
                    marked.all.insert(k);
                    let first = marked.manifests.insert(k);
                    // Without `untagged` every revision is a root anyway, so
                    // a manifest read in another repository is not re-read.
                    if first || self.options.untagged {
                        batch.push(d);
                    }
                }
                report.manifests_read += batch.len() as u64;
                let mut reads = stream::iter(batch)
                    .map(|d| async move { (manifest_content(self, &d).await, d) })
                    .buffer_unordered(super::CONCURRENCY);
                while let Some((m, d)) = reads.next().await {
                    let Some(m) = m? else {
                        tracing::warn!(repository = %name, digest = %d, "gc: a linked manifest has no content");
                        continue;
                    };
                    for b in m.blobs.iter().filter(|b| !b.external) {
                        marked.all.insert(key(&b.digest));
                    }
                    queue.extend(m.children.into_iter().map(|c| c.digest));
                }
            }
            // Referrers of kept manifests are kept (signatures, SBOMs).
            let subjects = match &mut subjects {
                Some(s) => s,
                None => {
                    let mut s = Vec::new();
                    for alg in ALGORITHMS {
                        let dir =
                            format!("{}/_referrers/{}", layout::repository(&name), alg.as_str());
                        s.extend(digests_in(self, &dir, alg).await?);
                    }
                    subjects.insert(s)
                }
            };
            for s in subjects.iter() {
                let k = key(s);
                if kept.contains(&k) && expanded.insert(k) {
                    for entry in self
                        .store
                        .storage
                        .list(&layout::referrers(&name, s))
                        .await?
                    {
                        if let Some(d) = entry
                            .split_once('-')
                            .and_then(|(alg, hex)| Digest::parse(&format!("{alg}:{hex}")).ok())
                        {
                            queue.push(d);
                        }
                    }
                }
            }
            if queue.is_empty() && self.options.untagged {
                // Untagged but young: kept, with all it reaches.
                for d in &revisions {
                    let k = key(d);
                    if kept.contains(&k) {
                        continue;
                    }
                    let young = match young_checked.get(&k) {
                        Some(y) => *y,
                        None => {
                            let y = self.revision_young(&name, d).await?;
                            young_checked.insert(k, y);
                            if y {
                                report.kept_back.manifests.add(0);
                            }
                            y
                        }
                    };
                    if young {
                        queue.push(d.clone());
                    }
                }
            }
            if queue.is_empty() {
                break;
            }
        }
        if self.options.untagged {
            for d in revisions {
                if !kept.contains(&key(&d)) {
                    marked.untagged.push(Untagged {
                        name: name.clone(),
                        digest: d,
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether the revision link of `d` in `name` is within the grace
    /// (a missing link counts as young: it is not ours to delete).
    pub(super) async fn revision_young(&self, name: &Name, d: &Digest) -> Result<bool, StoreError> {
        match self
            .store
            .storage
            .stat(&layout::revision_link(name, d))
            .await
        {
            Ok(m) => Ok(self.young(m.modified)),
            Err(e) if e.is_not_found() => Ok(true),
            Err(e) => Err(e.into()),
        }
    }
}
