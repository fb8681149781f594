//! The sweep, in the order `GC.md` explains: untagged manifests lose their
//! revision links, unreferenced blob data moves to the trash, links to it
//! go; then the re-check finds manifests pushed meanwhile and puts back
//! what they need; only then is the trash emptied. Everything removed
//! before the re-check is recorded, so it can be put back.

use std::collections::HashSet;

use bytes::Bytes;
use futures::{StreamExt as _, stream};

use super::mark::{ALGORITHMS, digests_in, manifest_content, revisions, tag_targets};
use super::{CONCURRENCY, GC_DIR, GcReport, Key, Marked, Run, key};
use crate::registry::layout;
use crate::registry::oci::{Digest, Name};
use crate::registry::store::StoreError;

/// `_layers` links removed under one hold of their repository's write lock
/// (a push to that repository waits for at most this many removals).
const LINKS_PER_LOCK: usize = 512;

/// Repositories whose links are removed at once.
const REPOSITORIES_AT_ONCE: usize = 4;

/// Where a doomed blob waits for the re-check.
pub(crate) fn trash_path(d: &Digest) -> String {
    format!("{GC_DIR}/trash/{}-{}", d.algorithm().as_str(), d.hex())
}

/// Where a run lists the small objects it removed before the re-check,
/// so that a run that dies half-way can be undone by the next.
fn journal_path() -> String {
    format!("{GC_DIR}/journal")
}

/// A small object (revision link, referrer entry, `_layers` link) removed
/// by this run, with what puts it back.
#[derive(Clone)]
struct Record {
    /// The digest whose rescue puts it back.
    key: Key,
    name: Name,
    path: String,
    body: Bytes,
}

/// What this run removed before the re-check.
#[derive(Default)]
pub(super) struct Doomed {
    records: Vec<Record>,
    /// Revisions dropped (for the re-check's look at tags).
    revisions: HashSet<Key>,
    /// Blob data moved to the trash, with sizes.
    blobs: Vec<(Digest, u64)>,
    /// Keys of `blobs`.
    blob_keys: HashSet<Key>,
}

impl Doomed {
    /// The journal's text: one `path hex(body)` line per record.
    fn journal(&self) -> Bytes {
        let mut out = String::new();
        for r in &self.records {
            out.push_str(&r.path);
            out.push(' ');
            out.push_str(&hex::encode(&r.body));
            out.push('\n');
        }
        Bytes::from(out)
    }
}

impl Run<'_> {
    /// Removes (or, dry, counts) untagged manifests, unreferenced blob data
    /// and the links to it; everything but the blob data (which waits in the
    /// trash) is recorded in the journal first.
    pub(super) async fn doom(
        &self,
        marked: &Marked,
        report: &mut GcReport,
    ) -> Result<Doomed, StoreError> {
        let mut doomed = Doomed::default();
        // Untagged manifests: decided and recorded under each repository's
        // write lock, then removed.
        let mut pending = Vec::new();
        for u in &marked.untagged {
            match self.revision_records(&u.name, &u.digest, report).await {
                Ok(Some(r)) => pending.push((u, r)),
                Ok(None) => {}
                Err(e) => report
                    .errors
                    .push(format!("manifest `{}` of `{}`: {e}", u.digest, u.name)),
            }
        }
        if !self.options.dry_run && !pending.is_empty() {
            doomed.records.extend(
                pending
                    .iter()
                    .flat_map(|(_, r)| r.iter().map(Record::clone)),
            );
            self.write_journal(&doomed).await?;
            for (u, records) in &pending {
                let write = self.store.write_lock(&u.name).await;
                for r in records {
                    let target = r.path.strip_suffix("/link").unwrap_or(&r.path);
                    if let Err(e) = self.store.storage.delete(target).await {
                        report.errors.push(format!("`{}`: {e}", r.path));
                    }
                }
                self.store.manifests.drop_repository(&u.name);
                doomed.revisions.insert(key(&u.digest));
                drop(write);
                self.store.revisions_changed(&u.name).await;
            }
        }
        let young = self.doom_blobs(marked, &mut doomed, report).await?;
        if !self.options.dry_run && !doomed.blobs.is_empty() {
            // Other processes may answer from links to that data: they drop
            // what they cached of links and sizes on reading this.
            self.store.log_blob_data_removed().await;
        }
        // `_layers` links of the doomed blobs, and old ones to missing data.
        let mut links = Vec::new();
        for repo in self.store.walk().await?.layers {
            let Ok(name) = Name::parse(&repo) else {
                continue;
            };
            for alg in ALGORITHMS {
                let dir = format!(
                    "{}/{}/{}",
                    layout::repository(&name),
                    layout::LAYERS_DIR,
                    alg.as_str()
                );
                for d in digests_in(self, &dir, alg).await? {
                    let k = key(&d);
                    if marked.all.contains(&k) || young.contains(&k) {
                        continue;
                    }
                    if doomed.blob_keys.contains(&k) || self.orphan_link(&name, &d).await? {
                        report.removed.layer_links.add(0);
                        links.push(Record {
                            key: k,
                            path: layout::layer_link(&name, &d),
                            body: Bytes::copy_from_slice(d.as_str().as_bytes()),
                            name: name.clone(),
                        });
                    }
                }
            }
        }
        if self.options.dry_run || links.is_empty() {
            return Ok(doomed);
        }
        let first = doomed.records.len();
        doomed.records.extend(links);
        self.write_journal(&doomed).await?;
        // A batch per repository (they were listed so), under its write
        // lock; a few repositories at once (their folders are apart).
        let links = &doomed.records[first..];
        // (As index ranges: a stream of borrowed slices trips the
        // compiler's lifetime inference in the spawned online collector.)
        let mut batches = Vec::new();
        let mut at = 0;
        for batch in links.chunk_by(|a, b| a.name == b.name) {
            for part in batch.chunks(LINKS_PER_LOCK) {
                batches.push(at..at + part.len());
                at += part.len();
            }
        }
        let mut removals = stream::iter(batches)
            .map(|range| async move {
                let part = &links[range];
                let name = &part[0].name;
                let _write = self.store.write_lock(name).await;
                let paths: Vec<String> = part.iter().map(|r| r.path.clone()).collect();
                let errors = self.store.storage.delete_each(&paths).await;
                for r in part {
                    if let Some(digest) = std::str::from_utf8(&r.body)
                        .ok()
                        .and_then(|b| Digest::parse(b).ok())
                    {
                        self.store.blob_sizes.remove(name, digest.as_str());
                    }
                }
                errors
            })
            .buffer_unordered(REPOSITORIES_AT_ONCE);
        while let Some(errors) = removals.next().await {
            for e in errors {
                report.errors.push(format!("link: {e}"));
            }
        }
        drop(removals);
        // One change-log entry per repository, for other processes' caches.
        let mut names: Vec<&Name> = links.iter().map(|r| &r.name).collect();
        names.dedup();
        for name in names {
            self.store.log_layers(name).await;
        }
        Ok(doomed)
    }

    /// Moves unreferenced blob data older than the grace to the trash;
    /// returns the keys of the unreferenced ones kept back.
    async fn doom_blobs(
        &self,
        marked: &Marked,
        doomed: &mut Doomed,
        report: &mut GcReport,
    ) -> Result<HashSet<Key>, StoreError> {
        let mut young = HashSet::new();
        for alg in ALGORITHMS {
            let root = format!("blobs/{}", alg.as_str());
            let prefixes = self.store.storage.list(&root).await?;
            // The unreferenced, listed one prefix folder at a time.
            let mut listed = stream::iter(prefixes)
                .map(|p| {
                    let dir = format!("{root}/{p}");
                    async move { digests_in(self, &dir, alg).await }
                })
                .buffer_unordered(CONCURRENCY);
            let mut unmarked = Vec::new();
            while let Some(digests) = listed.next().await {
                for d in digests? {
                    if !marked.all.contains(&key(&d)) {
                        unmarked.push(d);
                    }
                }
            }
            drop(listed);
            let paths: Vec<String> = unmarked.iter().map(layout::blob_data).collect();
            let stats = self.store.storage.stat_each(&paths).await;
            let mut old = Vec::new();
            for (d, r) in unmarked.into_iter().zip(stats) {
                let meta = match r {
                    Ok(m) => m,
                    // An empty folder left by an earlier run.
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e.into()),
                };
                if self.young(meta.modified) {
                    report.kept_back.blobs.add(meta.size);
                    young.insert(key(&d));
                } else {
                    old.push((d, meta.size));
                }
            }
            let moved = if self.options.dry_run {
                old.iter().map(|_| Ok(())).collect()
            } else {
                let pairs: Vec<(String, String)> = old
                    .iter()
                    .map(|(d, _)| (layout::blob_data(d), trash_path(d)))
                    .collect();
                self.store.storage.rename_volatile_each(&pairs).await
            };
            for ((d, size), r) in old.into_iter().zip(moved) {
                match r {
                    Ok(()) => {
                        report.removed.blobs.add(size);
                        doomed.blob_keys.insert(key(&d));
                        doomed.blobs.push((d, size));
                    }
                    // Gone meanwhile (another collector): nothing to do.
                    Err(e) if e.is_not_found() => {}
                    Err(e) => report.errors.push(format!("blob `{d}`: {e}")),
                }
            }
        }
        Ok(young)
    }

    async fn write_journal(&self, doomed: &Doomed) -> Result<(), StoreError> {
        Ok(self
            .store
            .storage
            .put_bytes(&journal_path(), doomed.journal())
            .await?)
    }

    /// A link older than the grace whose blob data is missing.
    async fn orphan_link(&self, name: &Name, d: &Digest) -> Result<bool, StoreError> {
        match self.store.storage.stat(&layout::blob_data(d)).await {
            Ok(_) => return Ok(false),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        match self.store.storage.stat(&layout::layer_link(name, d)).await {
            Ok(m) => Ok(!self.young(m.modified)),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// What removing an untagged manifest's revision removes (its link and
    /// its referrer entry), unless its link became young since the mark
    /// (a push of the same manifest rewrites it); `None` then.
    async fn revision_records(
        &self,
        name: &Name,
        d: &Digest,
        report: &mut GcReport,
    ) -> Result<Option<Vec<Record>>, StoreError> {
        if self.revision_young(name, d).await? {
            report.kept_back.manifests.add(0);
            return Ok(None);
        }
        let link = layout::revision_link(name, d);
        let media_type = match self.store.storage.get_bytes(&link).await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = match self.store.storage.stat(&layout::blob_data(d)).await {
            Ok(m) => m.size,
            Err(_) => 0,
        };
        let k = key(d);
        let mut out = vec![Record {
            key: k,
            name: name.clone(),
            path: link,
            body: media_type,
        }];
        if let Some(m) = manifest_content(self, d).await?
            && let Some(s) = m.subject
        {
            let path = layout::referrer(name, &s.digest, d);
            if let Ok(body) = self.store.storage.get_bytes(&path).await {
                out.push(Record {
                    key: k,
                    name: name.clone(),
                    path,
                    body,
                });
            }
        }
        report.removed.manifests.add(size);
        Ok(Some(out))
    }

    /// The re-check: the digests that manifests committed since the mark
    /// reach (revision links not marked, and tags pointing at dropped
    /// revisions). What of the doomed is among them goes back.
    pub(super) async fn recheck(
        &self,
        kept: &HashSet<Key>,
        doomed: &Doomed,
    ) -> Result<HashSet<Key>, StoreError> {
        let mut rescued: HashSet<Key> = HashSet::new();
        let mut queue: Vec<Digest> = Vec::new();
        for repo in self.store.walk().await?.manifests {
            let Ok(name) = Name::parse(&repo) else {
                continue;
            };
            for d in revisions(self, &name).await? {
                if !kept.contains(&key(&d)) {
                    queue.push(d);
                }
            }
            if !doomed.revisions.is_empty() {
                for d in tag_targets(self, &name).await? {
                    if doomed.revisions.contains(&key(&d)) {
                        queue.push(d);
                    }
                }
            }
        }
        while let Some(d) = queue.pop() {
            if !rescued.insert(key(&d)) {
                continue;
            }
            if let Some(m) = manifest_content(self, &d).await? {
                for b in m.blobs.iter().filter(|b| !b.external) {
                    rescued.insert(key(&b.digest));
                }
                queue.extend(m.children.into_iter().map(|c| c.digest));
            }
        }
        Ok(rescued)
    }

    /// Puts back what the re-check rescued, empties the rest of the trash
    /// and removes the journal.
    pub(super) async fn restore_and_empty(
        &self,
        doomed: &Doomed,
        rescued: &HashSet<Key>,
        report: &mut GcReport,
    ) {
        for r in doomed.records.iter().filter(|r| rescued.contains(&r.key)) {
            let write = self.store.write_lock(&r.name).await;
            match self.store.storage.put_bytes(&r.path, r.body.clone()).await {
                Ok(()) => report.restored += 1,
                Err(e) => report.errors.push(format!("restoring `{}`: {e}", r.path)),
            }
            drop(write);
            if r.path.contains("/_manifests/revisions/") {
                self.store.revisions_changed(&r.name).await;
            }
        }
        // The rescued go back one by one (few, and each must look whether a
        // new upload put the blob there already); the rest of the trash
        // goes in bulk.
        let mut trash = Vec::new();
        for (d, size) in &doomed.blobs {
            if !rescued.contains(&key(d)) {
                trash.push(trash_path(d));
                continue;
            }
            match self.put_back(d).await {
                Ok(()) => {
                    report.restored += 1;
                    report.removed.blobs.count -= 1;
                    report.removed.blobs.bytes -= size;
                }
                Err(e) => report.errors.push(format!("blob `{d}`: {e}")),
            }
        }
        for e in self.store.storage.delete_each(&trash).await {
            report.errors.push(format!("trash: {e}"));
        }
        if let Err(e) = self.store.storage.delete(&journal_path()).await {
            report.errors.push(format!("gc journal: {e}"));
        }
    }

    /// Moves a doomed blob back from the trash, unless a new upload of it
    /// has already put it there.
    async fn put_back(&self, d: &Digest) -> Result<(), StoreError> {
        let data = layout::blob_data(d);
        let trash = trash_path(d);
        match self.store.storage.stat(&data).await {
            Ok(_) => Ok(self.store.storage.delete(&trash).await?),
            Err(e) if e.is_not_found() => match self.store.storage.rename(&trash, &data).await {
                // Put back (or emptied) already, by a run that took over.
                Err(e) if e.is_not_found() => Ok(()),
                other => Ok(other?),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Undoes what a run that died half-way left: puts back the journal's
    /// objects and every blob in the trash; returns how many.
    pub(super) async fn recover(&self) -> Result<u64, StoreError> {
        let mut n = 0;
        match self.store.storage.get_bytes(&journal_path()).await {
            Ok(text) => {
                for line in String::from_utf8_lossy(&text).lines() {
                    let Some((path, body)) = line.split_once(' ') else {
                        continue;
                    };
                    let (Ok(body), Ok(())) = (
                        hex::decode(body),
                        crate::registry::storage::check_path(path),
                    ) else {
                        continue;
                    };
                    if let Err(e) = self.store.storage.stat(path).await {
                        if !e.is_not_found() {
                            return Err(e.into());
                        }
                        self.store
                            .storage
                            .put_bytes(path, Bytes::from(body))
                            .await?;
                        n += 1;
                    }
                }
                self.store.storage.delete(&journal_path()).await?;
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        for entry in self.store.storage.list(&format!("{GC_DIR}/trash")).await? {
            let Some(d) = entry
                .split_once('-')
                .and_then(|(alg, hex)| Digest::parse(&format!("{alg}:{hex}")).ok())
            else {
                continue;
            };
            self.put_back(&d).await?;
            n += 1;
        }
        Ok(n)
    }
}
