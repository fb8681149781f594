//! Pull-through mirroring (`mirroring.source`): what the store cannot
//! answer is fetched from the upstream registry, answered, and kept, so
//! that the next pull is local.
//!
//! * Manifests by digest are fetched once and never expire; their bytes are
//!   checked against the digest before anything is stored.
//! * A tag fetched from the upstream is trusted for `tags_cache_ttl`
//!   seconds, counted from when it was last fetched or confirmed (the tag
//!   object's modification time, so it holds across restarts and on
//!   shared storage). After that, the next request asks the upstream for
//!   the tag's digest with a `HEAD`: unchanged, the tag is confirmed;
//!   moved, the new manifest is fetched. When the upstream cannot be
//!   reached, what is stored is served.
//! * Blobs stream to the client while they are hashed and written with the
//!   driver's atomic writer, published only when the digest matched
//!   ([`blobs`]); concurrent pulls of one blob fetch it once.
//! * One-component names are `library/NAME` upstream, as on Docker Hub.
//!
//! Manifests fetched here are stored without the push path's check that
//! their blobs are present: a mirror holds a manifest before its layers,
//! which arrive when clients ask for them. What this module must not do:
//! answer HTTP (the `http` room shapes answers) or decide about pushes
//! beyond saying whether they are allowed.

mod blobs;
mod upstream;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

pub(crate) use blobs::Fetched;
use upstream::{Upstream, UpstreamError};

use super::changes::Touched;
use super::{Store, StoreError, StoredManifest};
use crate::model;
use crate::registry::layout;
use crate::registry::oci::{Digest, Hasher, Manifest, Name, Reference, Tag};

/// `tags_cache_ttl` when the flavor does not set it (the sample's default).
pub(crate) const DEFAULT_TAG_TTL: Duration = Duration::from_secs(172_800);

/// A pull-through mirror of one upstream registry.
pub(crate) struct Mirror {
    upstream: Upstream,
    tag_ttl: Duration,
    allow_push: bool,
    max_manifest: usize,
    inflight: blobs::InFlight,
}

impl Mirror {
    /// The mirror `config` asks for, or `None` when `source` is not set.
    pub(crate) fn new(
        config: &model::Mirroring,
        max_manifest: usize,
    ) -> Result<Option<Self>, reqwest::Error> {
        let Some(source) = config.source.as_deref().filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let credentials = match (&config.username, &config.password) {
            (Some(u), Some(p)) if !u.is_empty() => Some((u.clone(), p.clone())),
            _ => None,
        };
        let tag_ttl = config.tags_cache_ttl.map_or(DEFAULT_TAG_TTL, |s| {
            Duration::from_secs(s.max(0).unsigned_abs())
        });
        Ok(Some(Self {
            upstream: Upstream::new(source, credentials)?,
            tag_ttl,
            allow_push: config.allow_push,
            max_manifest,
            inflight: blobs::InFlight::default(),
        }))
    }

    /// The upstream's base URL.
    pub(crate) fn source(&self) -> &str {
        self.upstream.base()
    }

    /// Whether clients may push (`mirroring.allow_push`).
    pub(crate) fn allow_push(&self) -> bool {
        self.allow_push
    }

    /// A manifest by tag or digest: from the store while it is current,
    /// else from the upstream (and then stored).
    pub(crate) async fn manifest(
        &self,
        store: &Store,
        name: &Name,
        reference: &Reference,
        text: &str,
    ) -> Result<Arc<StoredManifest>, StoreError> {
        let tag = match reference {
            Reference::Digest(d) => {
                return match store.manifest_get(name, reference, text).await {
                    Err(StoreError::ManifestUnknown(_)) => {
                        self.fetch_manifest(store, name, text, None, Some(d)).await
                    }
                    other => other,
                };
            }
            Reference::Tag(t) => t,
        };
        let age = store.tag_age(name, tag).await?;
        if age.is_some_and(|a| a < self.tag_ttl) {
            return store.manifest_get(name, reference, text).await;
        }
        let Some(_) = age else {
            return self
                .fetch_manifest(store, name, text, Some(tag), None)
                .await;
        };
        // Stale: ask the upstream whether the tag moved.
        let upstream = match self
            .upstream
            .manifest(&upstream_name(name), text, true)
            .await
        {
            Ok(a) => a
                .header("docker-content-digest")
                .and_then(|d| Digest::parse(d).ok()),
            Err(e) => {
                tracing::warn!(
                    repository = %name, tag = %tag, error = %e,
                    "mirror: cannot re-check the tag upstream; serving the stored one"
                );
                return store.manifest_get(name, reference, text).await;
            }
        };
        let stored = store.manifest_get(name, reference, text).await?;
        if upstream.as_ref() == Some(&stored.digest) {
            store.confirm_tag(name, tag, &stored.digest).await?;
            return Ok(stored);
        }
        match self
            .fetch_manifest(store, name, text, Some(tag), None)
            .await
        {
            Ok(m) => Ok(m),
            Err(e) => {
                tracing::warn!(
                    repository = %name, tag = %tag, error = %e,
                    "mirror: cannot fetch the moved tag; serving the stored one"
                );
                Ok(stored)
            }
        }
    }

    /// Fetches a manifest from the upstream, checks its digest (`expected`
    /// for a digest reference; for a tag, the upstream's
    /// `Docker-Content-Digest` when it sends one) and stores it, pointing
    /// `tag` at it.
    async fn fetch_manifest(
        &self,
        store: &Store,
        name: &Name,
        text: &str,
        tag: Option<&Tag>,
        expected: Option<&Digest>,
    ) -> Result<Arc<StoredManifest>, StoreError> {
        let a = self
            .upstream
            .manifest(&upstream_name(name), text, false)
            .await
            .map_err(|e| self.error(e, || StoreError::ManifestUnknown(text.to_owned())))?;
        let content_type = a
            .header("content-type")
            .and_then(|c| c.split(';').next())
            .map(|c| c.trim().to_owned());
        let announced = a
            .header("docker-content-digest")
            .and_then(|d| Digest::parse(d).ok());
        if a.length().is_some_and(|l| l > self.max_manifest as u64) {
            return Err(self.failed(format!(
                "manifest `{text}` is larger than {} bytes",
                self.max_manifest
            )));
        }
        let bytes = read_limited(a.response, self.max_manifest)
            .await
            .map_err(|e| self.failed(format!("reading manifest `{text}`: {e}")))?;
        // A digest reference must match; so must what the upstream
        // announces, which catches a corrupted tag fetch too.
        for want in [expected, announced.as_ref()].into_iter().flatten() {
            let mut h = Hasher::new(want.algorithm());
            h.update(&bytes);
            let got = h.finish();
            if &got != want {
                return Err(self.failed(format!(
                    "manifest `{text}` has digest `{got}`, not `{want}`: nothing was stored"
                )));
            }
        }
        let digest = expected
            .cloned()
            .unwrap_or_else(|| Digest::sha256_of(&bytes));
        let m = Manifest::parse(&bytes, content_type.as_deref())
            .map_err(|e| self.failed(format!("manifest `{text}` cannot be used: {e}")))?;
        store
            .mirror_manifest(name, tag, &digest, &m.media_type, bytes.clone())
            .await?;
        Ok(Arc::new(StoredManifest {
            digest,
            media_type: m.media_type,
            bytes,
        }))
    }

    /// An upstream failure as a store error: `not_found` for a 404.
    fn error(&self, e: UpstreamError, not_found: impl FnOnce() -> StoreError) -> StoreError {
        match e {
            UpstreamError::NotFound => not_found(),
            UpstreamError::Failed(why) => self.failed(why),
        }
    }

    fn failed(&self, why: String) -> StoreError {
        StoreError::Upstream {
            upstream: self.upstream.base().to_owned(),
            why,
        }
    }
}

/// The repository's name at the upstream: one component means
/// `library/NAME`, as Docker Hub has it.
fn upstream_name(name: &Name) -> String {
    let n = name.as_str();
    if n.contains('/') {
        n.to_owned()
    } else {
        format!("library/{n}")
    }
}

/// Reads a response body of at most `max` bytes.
async fn read_limited(res: reqwest::Response, max: usize) -> Result<Bytes, String> {
    use futures::StreamExt as _;
    let mut stream = res.bytes_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        if buf.len() + chunk.len() > max {
            return Err(format!("larger than {max} bytes"));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

impl Store {
    /// How long ago tag `t` was written or confirmed; `None` when the
    /// repository does not have it.
    async fn tag_age(&self, name: &Name, t: &Tag) -> Result<Option<Duration>, StoreError> {
        match self.storage.stat(&layout::tag(name, t)).await {
            Ok(m) => Ok(Some(
                SystemTime::now()
                    .duration_since(m.modified)
                    .unwrap_or_default(),
            )),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Rewrites tag `t` (still pointing at `digest`), which restarts its
    /// time to live.
    async fn confirm_tag(&self, name: &Name, t: &Tag, digest: &Digest) -> Result<(), StoreError> {
        let _write = self.write_lock(name).await;
        self.storage
            .put_bytes(
                &layout::tag(name, t),
                Bytes::copy_from_slice(digest.as_str().as_bytes()),
            )
            .await?;
        Ok(())
    }

    /// A writer of a blob's content fetched from the upstream: nothing is
    /// visible at the blob's path until it commits (the driver's atomic
    /// write, as for any object written whole), and a cancelled one leaves
    /// no trace. The caller checks the digest before committing and links
    /// the blob after.
    async fn mirror_blob_writer(
        &self,
        digest: &Digest,
    ) -> Result<Box<dyn crate::registry::storage::Writer>, StoreError> {
        Ok(self
            .storage
            .writer(&layout::blob_data(digest), false)
            .await?)
    }

    /// Stores a manifest fetched from the upstream (already checked
    /// against `digest`): content, revision link, then the tag, in the
    /// order a push writes them.
    async fn mirror_manifest(
        &self,
        name: &Name,
        tag: Option<&Tag>,
        digest: &Digest,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<(), StoreError> {
        let _write = self.write_lock(name).await;
        self.storage
            .put_bytes(&layout::blob_data(digest), bytes)
            .await?;
        self.storage
            .put_bytes(
                &layout::revision_link(name, digest),
                Bytes::from(media_type.to_owned()),
            )
            .await?;
        if let Some(t) = tag {
            self.storage
                .put_bytes(
                    &layout::tag(name, t),
                    Bytes::copy_from_slice(digest.as_str().as_bytes()),
                )
                .await?;
        }
        self.manifests.drop_repository(name);
        let touched = tag.map_or_else(Touched::none, Touched::tag);
        self.index_added(name, touched).await;
        Ok(())
    }
}
