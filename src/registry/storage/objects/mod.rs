//! Object-store drivers: S3 and S3-compatible stores, Google Cloud Storage
//! and Azure Blob Storage, through the `object_store` crate (and its
//! in-memory store for tests), and GCS's JSON API without credentials
//! through an `ObjectStore` of our own (`gcs_json/`).
//!
//! Objects are keys under the configured prefix (`storage_path`). Every
//! operation of [`Storage`] maps onto whole-object requests, which object
//! stores make atomic per key:
//!
//! * `put_bytes` is one `PUT`; a non-appending [`Writer`] buffers up to
//!   [`PART_SIZE`] and then switches to a multipart upload, which becomes
//!   visible only when it is completed, so readers never see half an object.
//!   At most [`MAX_CONCURRENCY`] parts are in flight, so a writer holds at
//!   most `(MAX_CONCURRENCY + 1) * PART_SIZE` bytes whatever the blob size.
//! * Reads stream (`GET` with a byte range), never collecting a blob.
//! * `rename` is a server-side copy then a delete (object stores have no
//!   rename); the target is replaced atomically, the source disappears
//!   after.
//!
//! ## Appending: staged parts
//!
//! Object stores cannot append, and `object_store` cannot resume a
//! multipart upload by id, yet an OCI chunked upload is a series of
//! requests, possibly to different `serve` processes behind a load
//! balancer. So an appended object is stored as *staged parts*: each
//! appending writer writes one new object `<path>/.parts/<offset>` (the
//! offset zero-padded to 20 digits), and the object at `<path>` is the
//! concatenation of its parts in offset order. `stat`, `get`, `get_bytes`,
//! `delete` and `rename` understand this shape; `rename` composes the parts
//! into one object (a server-side copy when there is one part, which is the
//! common case of a single `PATCH`; a streaming copy otherwise). Because the
//! state of an upload lives entirely in the bucket, a `PATCH` may go to one
//! process and the `PUT` to another. Two processes appending to the *same*
//! upload at the same moment are not supported (OCI clients never do this);
//! the parts would overlap and reads report the upload as corrupt.
//!
//! A `stat` of a missing plain object costs a `HEAD` and a `LIST` (to look
//! for staged parts). The component `.parts` is reserved: paths containing
//! it are refused.
//!
//! Rooms: `mod.rs` maps [`Storage`] onto requests; `staged.rs` knows how an
//! object is stored (plain or staged parts) and reads across parts;
//! `writer.rs` writes one object; `build.rs` builds clients from the
//! configuration (credentials only from it, never from the environment);
//! `gcs_json/` is the GCS JSON-API client; `azure.rs` creates the Azure
//! container; `tests.rs` runs the conformance suite.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use ::object_store::path::Path;
use ::object_store::signer::Signer;
use ::object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};

use super::{ByteStream, Meta, Storage, StorageError, Writer, check_path, checked_range};

/// Size of one multipart part: S3's minimum for all but the last, so a
/// writer holds as little as S3 allows; 5 MiB parts still allow objects of
/// 50 GB within S3's 10 000 parts.
pub(crate) const PART_SIZE: usize = 5 << 20;

/// Parts uploaded at once by one writer.
pub(crate) const MAX_CONCURRENCY: usize = 2;

/// Largest object composed by a server-side copy (S3's `CopyObject` limit);
/// larger ones are copied by streaming.
const SINGLE_COPY_LIMIT: u64 = 5 << 30;

/// The reserved directory of staged parts.
const PARTS: &str = ".parts";

/// Copies kept in flight by [`Storage::rename_volatile_each`].
const EACH_IN_FLIGHT: usize = 32;

/// How long a redirect URL stays valid.
pub(crate) const REDIRECT_TTL: Duration = Duration::from_secs(20 * 60);

/// A bucket (or container) of an object store, under a key prefix.
#[derive(Debug, Clone)]
pub(crate) struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    signer: Option<Arc<dyn Signer>>,
    /// Prefix without leading or trailing `/`; empty for none.
    prefix: String,
}

/// Maps an `object_store` error, turning "not found" into
/// [`StorageError::NotFound`].
fn remote(path: &str, e: ::object_store::Error) -> StorageError {
    match e {
        ::object_store::Error::NotFound { .. } => StorageError::NotFound(path.to_owned()),
        e => StorageError::Remote {
            path: path.to_owned(),
            source: Box::new(e),
        },
    }
}

fn corrupt(path: &str, message: &str) -> StorageError {
    StorageError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(message.to_owned()),
    }
}

impl ObjectStorage {
    /// Wraps `store`; keys are `prefix/<path>` (`prefix` may have leading
    /// and trailing `/`, or be empty). `signer` issues redirect URLs.
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        signer: Option<Arc<dyn Signer>>,
        prefix: &str,
    ) -> Self {
        let prefix = prefix
            .split('/')
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        Self {
            store,
            signer,
            prefix,
        }
    }

    /// The key of `path`; refuses unsafe paths and the reserved component.
    fn key(&self, path: &str) -> Result<Path, StorageError> {
        check_path(path)?;
        if path.split('/').any(|c| c == PARTS) {
            return Err(StorageError::InvalidPath(path.to_owned()));
        }
        let full = if self.prefix.is_empty() {
            path.to_owned()
        } else {
            format!("{}/{path}", self.prefix)
        };
        Path::parse(full).map_err(|_| StorageError::InvalidPath(path.to_owned()))
    }

    /// Deletes everything under `key/`, and `key` itself when `and_key`:
    /// one listing and one bulk delete (per thousand keys).
    async fn delete_tree(&self, path: &str, key: &Path, and_key: bool) -> Result<(), StorageError> {
        let itself = and_key.then(|| Ok(key.clone()));
        let paths = self
            .store
            .list(Some(key))
            .map_ok(|m| m.location)
            .chain(futures::stream::iter(itself))
            .boxed();
        let mut deleted = self.store.delete_stream(paths);
        while let Some(r) = deleted.next().await {
            match r {
                Ok(_) | Err(::object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(remote(path, e)),
            }
        }
        Ok(())
    }

    /// Writes the object laid out as `l` (at `from`) to `dst` (at `to`):
    /// a server-side copy of a single piece, else a streaming copy.
    async fn compose(
        &self,
        from: &str,
        to: &str,
        l: staged::Layout,
        dst: &Path,
    ) -> Result<(), StorageError> {
        match l.segments.as_slice() {
            [one] if one.size <= SINGLE_COPY_LIMIT => {
                self.store
                    .copy(&one.key, dst)
                    .await
                    .map_err(|e| remote(from, e))?;
            }
            _ => {
                let mut w = self.new_writer(to, dst.clone(), 0, false);
                let mut s = self.stream(from, l.segments, 0..l.size);
                while let Some(chunk) = s.try_next().await? {
                    w.write(chunk).await?;
                }
                w.commit().await?;
            }
        }
        Ok(())
    }

    async fn delete_key(&self, path: &str, key: &Path) -> Result<(), StorageError> {
        match self.store.delete(key).await {
            Ok(()) | Err(::object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(remote(path, e)),
        }
    }
}

impl Storage for ObjectStorage {
    fn stat<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Meta, StorageError>> {
        async move {
            let key = self.key(path)?;
            let l = self.layout(path, &key).await?;
            Ok(Meta {
                size: l.size,
                modified: l.modified,
            })
        }
        .boxed()
    }

    fn get_bytes<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        async move {
            let key = self.key(path)?;
            // The common case, a plain object, in one request.
            match self.store.get(&key).await {
                Ok(r) => return r.bytes().await.map_err(|e| remote(path, e)),
                Err(::object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(remote(path, e)),
            }
            let l = self.layout(path, &key).await?;
            let chunks: Vec<Bytes> = self
                .stream(path, l.segments, 0..l.size)
                .try_collect()
                .await?;
            Ok(Bytes::from(chunks.concat()))
        }
        .boxed()
    }

    fn get<'a>(
        &'a self,
        path: &'a str,
        range: Option<Range<u64>>,
    ) -> BoxFuture<'a, Result<ByteStream, StorageError>> {
        async move {
            let key = self.key(path)?;
            // The common case, a plain object (a blob), in one request
            // whose answer carries the size.
            let opts = GetOptions::default().with_range(range.clone().map(GetRange::Bounded));
            if let Ok(got) = self.store.get_opts(&key, opts).await {
                checked_range(path, range, got.meta.size)?;
                let owned = path.to_owned();
                return Ok(got
                    .into_stream()
                    .map_err(move |e| remote(&owned, e))
                    .boxed());
            }
            // Staged parts, a range the store refused (empty, past the
            // end), a failure: the general path says which.
            let l = self.layout(path, &key).await?;
            let range = checked_range(path, range, l.size)?;
            Ok(self.stream(path, l.segments, range))
        }
        .boxed()
    }

    fn put_bytes<'a>(
        &'a self,
        path: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        async move {
            let key = self.key(path)?;
            self.store
                .put(&key, PutPayload::from(data))
                .await
                .map_err(|e| remote(path, e))?;
            Ok(())
        }
        .boxed()
    }

    fn writer<'a>(
        &'a self,
        path: &'a str,
        append: bool,
    ) -> BoxFuture<'a, Result<Box<dyn Writer>, StorageError>> {
        async move {
            let key = self.key(path)?;
            if !append {
                return Ok(self.new_writer(path, key, 0, false));
            }
            let size = match self.layout(path, &key).await {
                Ok(l) if l.staged => l.size,
                // A plain object becomes the first staged part.
                Ok(l) => {
                    self.store
                        .copy(&key, &Self::part_key(&key, 0))
                        .await
                        .map_err(|e| remote(path, e))?;
                    self.delete_key(path, &key).await?;
                    l.size
                }
                Err(e) if e.is_not_found() => 0,
                Err(e) => return Err(e),
            };
            let target = Self::part_key(&key, size);
            Ok(self.new_writer(path, target, size, true))
        }
        .boxed()
    }

    fn list_after<'a>(
        &'a self,
        path: &'a str,
        after: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, StorageError>> {
        async move {
            let key = self.key(path)?;
            let offset = Path::from(format!("{key}/{after}"));
            let mut names: Vec<String> = self
                .store
                .list_with_offset(Some(&key), &offset)
                .map_ok(|m| m.location)
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| remote(path, e))?
                .iter()
                // the child of `path` each key is in, as `list` names it
                .filter_map(|p| {
                    let rest = p.as_ref().strip_prefix(key.as_ref())?.strip_prefix('/')?;
                    rest.split('/').next().map(str::to_owned)
                })
                .filter(|n| n.as_str() > after && n != PARTS)
                .collect();
            names.sort_unstable();
            names.dedup();
            Ok(names)
        }
        .boxed()
    }

    fn list<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Vec<String>, StorageError>> {
        async move {
            let key = self.key(path)?;
            let r = self
                .store
                .list_with_delimiter(Some(&key))
                .await
                .map_err(|e| remote(path, e));
            let r = match r {
                Err(e) if e.is_not_found() => return Ok(Vec::new()),
                other => other?,
            };
            let mut names: Vec<String> = r
                .common_prefixes
                .iter()
                .chain(r.objects.iter().map(|m| &m.location))
                .filter_map(|p| p.filename().map(str::to_owned))
                .filter(|n| n != PARTS)
                .collect();
            names.sort_unstable();
            names.dedup();
            Ok(names)
        }
        .boxed()
    }

    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        async move {
            let key = self.key(path)?;
            self.delete_tree(path, &key, true).await
        }
        .boxed()
    }

    fn delete_object<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        async move {
            let key = self.key(path)?;
            self.delete_key(path, &key).await
        }
        .boxed()
    }

    fn appended_size<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        async move {
            let key = self.key(path)?;
            Ok(self.staged_layout(path, &key).await?.size)
        }
        .boxed()
    }

    fn append_writer_at<'a>(
        &'a self,
        path: &'a str,
        size: u64,
    ) -> BoxFuture<'a, Result<Box<dyn Writer>, StorageError>> {
        async move {
            let key = self.key(path)?;
            let target = Self::part_key(&key, size);
            Ok(self.new_writer(path, target, size, true))
        }
        .boxed()
    }

    fn publish_appended<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        async move {
            let src = self.key(from)?;
            let dst = self.key(to)?;
            let l = self.staged_layout(from, &src).await?;
            self.compose(from, to, l, &dst).await
        }
        .boxed()
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        async move {
            let src = self.key(from)?;
            let dst = self.key(to)?;
            let l = self.layout(from, &src).await?;
            let staged = l.staged;
            self.compose(from, to, l, &dst).await?;
            if staged {
                self.delete_tree(from, &src, false).await
            } else {
                self.delete_key(from, &src).await
            }
        }
        .boxed()
    }

    fn redirect_url<'a>(
        &'a self,
        path: &'a str,
        expires: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, StorageError>> {
        async move {
            let Some(signer) = &self.signer else {
                return Ok(None);
            };
            let key = self.key(path)?;
            let url = signer
                .signed_url(::object_store::signer::Method::GET, &key, expires)
                .await
                .map_err(|e| remote(path, e))?;
            Ok(Some(url.to_string()))
        }
        .boxed()
    }

    fn delete_each<'a>(&'a self, paths: &'a [String]) -> BoxFuture<'a, Vec<StorageError>> {
        async move {
            let mut errors = Vec::new();
            let mut keys = Vec::with_capacity(paths.len());
            for p in paths {
                match self.key(p) {
                    Ok(k) => keys.push(Ok(k)),
                    Err(e) => errors.push(e),
                }
            }
            // `DeleteObjects`: a thousand keys per request (S3 answers a
            // missing key as deleted).
            let label = format!("{} objects", keys.len());
            let mut deleted = self
                .store
                .delete_stream(futures::stream::iter(keys).boxed());
            while let Some(r) = deleted.next().await {
                match r {
                    Ok(_) | Err(::object_store::Error::NotFound { .. }) => {}
                    Err(e) => errors.push(remote(&label, e)),
                }
            }
            errors
        }
        .boxed()
    }

    fn rename_volatile_each<'a>(
        &'a self,
        pairs: &'a [(String, String)],
    ) -> BoxFuture<'a, Vec<Result<(), StorageError>>> {
        async move {
            // A server-side copy each (the sources are plain objects, as
            // blob data always is; anything else takes `rename`), then the
            // sources deleted in bulk.
            let copies: Vec<Result<bool, StorageError>> = futures::stream::iter(0..pairs.len())
                .map(|i| async move {
                    let (from, to) = &pairs[i];
                    let (src, dst) = (self.key(from)?, self.key(to)?);
                    match self.store.copy(&src, &dst).await {
                        Ok(()) => Ok(true),
                        Err(::object_store::Error::NotFound { .. }) => {
                            self.rename(from, to).await.map(|()| false)
                        }
                        Err(e) => Err(remote(from, e)),
                    }
                })
                .buffered(EACH_IN_FLIGHT)
                .collect()
                .await;
            let copied: Vec<String> = pairs
                .iter()
                .zip(&copies)
                .filter(|(_, c)| matches!(c, Ok(true)))
                .map(|((from, _), _)| from.clone())
                .collect();
            if !self.delete_each(&copied).await.is_empty() {
                // Which failed is not told per key: ask again one by one
                // (deleting what is gone already costs nothing more).
                let mut out = Vec::with_capacity(pairs.len());
                for ((from, _), c) in pairs.iter().zip(copies) {
                    out.push(match c {
                        Ok(true) => match self.key(from) {
                            Ok(k) => self.delete_key(from, &k).await,
                            Err(e) => Err(e),
                        },
                        other => other.map(|_| ()),
                    });
                }
                return out;
            }
            copies.into_iter().map(|c| c.map(|_| ())).collect()
        }
        .boxed()
    }

    fn shared(&self) -> bool {
        true
    }

    fn create_new<'a>(
        &'a self,
        path: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        async move {
            let key = self.key(path)?;
            // `If-None-Match: *` on S3 (and GCS's S3 API), generation 0 on
            // GCS, `If-None-Match` on Azure: the store decides, not us.
            let opts = ::object_store::PutOptions {
                mode: ::object_store::PutMode::Create,
                ..Default::default()
            };
            match self
                .store
                .put_opts(&key, PutPayload::from(data), opts)
                .await
            {
                Ok(_) => Ok(true),
                Err(::object_store::Error::AlreadyExists { .. }) => Ok(false),
                Err(e) => Err(remote(path, e)),
            }
        }
        .boxed()
    }
}

pub(super) mod azure;
mod build;
mod gcs_json;
mod staged;
mod writer;

pub(super) use build::{check_gcs_bucket, from_config};

#[cfg(test)]
mod tests;
