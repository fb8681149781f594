//! The storage driver interface: bytes at paths, nothing about OCI.
//!
//! A driver stores opaque objects under relative, `/`-separated paths. The
//! OCI store above it (`store/`) decides which paths exist and what they
//! mean; a driver must not interpret them. The trait is deliberately small
//! (in the spirit of distribution's `StorageDriver`) so that object-store
//! drivers (S3, GCS, Azure through `object_store`) can be added beside
//! `filesystem` without touching the store or the HTTP layer.
//!
//! Paths handed to a driver are built only from validated OCI values, but
//! drivers still refuse `..`, empty and absolute components (defence in
//! depth; see [`check_path`]).
//!
//! Methods return boxed futures rather than `async fn` so that the trait
//! stays usable as `dyn Storage`.
//!
//! Rooms: this file (the trait, errors, `from_config`, helpers every driver
//! shares), `filesystem.rs`, `objects/` (object stores: client building in
//! `build.rs`, apart from the I/O) and `conformance.rs` (the suite every
//! driver passes; test-only). See `README.md` beside this file.

pub(crate) mod filesystem;
pub(crate) mod objects;

use std::ops::Range;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::model;

/// A stream of an object's bytes.
pub(crate) type ByteStream = BoxStream<'static, Result<Bytes, StorageError>>;

/// What a driver knows about a stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Size in bytes.
    pub(crate) size: u64,
    /// Last modification.
    pub(crate) modified: SystemTime,
}

/// Errors of a storage driver.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Nothing is stored at the path.
    #[error("no object at `{0}`")]
    NotFound(String),
    /// The path is not one a driver accepts.
    #[error("invalid storage path `{0}`")]
    InvalidPath(String),
    /// The requested range is outside the object.
    #[error("range {start}..{end} is outside `{path}` of size {size}")]
    InvalidRange {
        /// The object.
        path: String,
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// The object's size.
        size: u64,
    },
    /// An I/O failure of the backend.
    #[error("storage i/o on `{path}`: {source}")]
    Io {
        /// The object.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A request to an object store failed.
    #[error("object store request for `{path}` failed: {source}")]
    Remote {
        /// The object.
        path: String,
        /// The cause.
        source: Box<object_store::Error>,
    },
}

impl StorageError {
    /// Wraps an I/O error, turning "not found" into [`StorageError::NotFound`].
    pub(crate) fn io(path: &str, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            Self::NotFound(path.to_owned())
        } else {
            Self::Io {
                path: path.to_owned(),
                source,
            }
        }
    }

    /// Whether the error means "nothing there".
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound(_))
    }
}

/// A storage backend. All paths are relative and `/`-separated.
pub(crate) trait Storage: Send + Sync + 'static {
    /// Size and modification time of the object at `path`;
    /// [`StorageError::NotFound`] when there is none.
    fn stat<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Meta, StorageError>>;

    /// The whole content of a small object (links, tags, manifests). Callers
    /// must not use this for blobs, which can be arbitrarily large.
    fn get_bytes<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>>;

    /// Streams the object at `path`, or `range` of it (which must lie within
    /// the object, else [`StorageError::InvalidRange`]), with its size.
    fn get<'a>(
        &'a self,
        path: &'a str,
        range: Option<Range<u64>>,
    ) -> BoxFuture<'a, Result<ByteStream, StorageError>>;

    /// Stores `data` at `path`, replacing what was there. Atomic: readers
    /// see either the old content or all of the new, never a mix, and the
    /// content is durable when the future resolves.
    fn put_bytes<'a>(
        &'a self,
        path: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), StorageError>>;

    /// A writer for `path`. With `append` false, the content becomes
    /// visible at `path` only on [`Writer::commit`], atomically. With
    /// `append` true the object is continued from its current size (created
    /// when missing) and may be partially visible before commit; this is
    /// the resumable-upload case, where the path is private to one upload.
    fn writer<'a>(
        &'a self,
        path: &'a str,
        append: bool,
    ) -> BoxFuture<'a, Result<Box<dyn Writer>, StorageError>>;

    /// Names of the direct children of the "directory" `path`, unsorted;
    /// empty when there are none.
    fn list<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Vec<String>, StorageError>>;

    /// The names [`Storage::list`] gives for `path` that sort after
    /// `after`, sorted. Object stores answer it with one listing that
    /// starts after that key (S3's `start-after`), so a log of small objects
    /// with increasing names costs one request per read of what is new.
    fn list_after<'a>(
        &'a self,
        path: &'a str,
        after: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, StorageError>> {
        async move {
            let mut names: Vec<String> = self
                .list(path)
                .await?
                .into_iter()
                .filter(|n| n.as_str() > after)
                .collect();
            names.sort_unstable();
            Ok(names)
        }
        .boxed()
    }

    /// Removes the object or the whole subtree at `path`; missing is not an
    /// error.
    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>>;

    /// Removes the one object at `path` (not a subtree); missing is not an
    /// error. For objects the caller knows are plain (a lease, a link, a
    /// tag): object stores then send one request instead of a listing and
    /// a delete.
    fn delete_object<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        self.delete(path)
    }

    /// The size of an object written only by appending writers (an upload's
    /// data), [`StorageError::NotFound`] when there is none. Object stores
    /// answer it with one listing of the staged parts (no `HEAD` for a
    /// plain object, which such an object never is).
    fn appended_size<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        async move { Ok(self.stat(path).await?.size) }.boxed()
    }

    /// As [`Storage::writer`] with `append`, for an object written only
    /// by appending writers whose size the caller has just read with
    /// [`Storage::appended_size`] (`0` when there was none): object stores
    /// then need not look again.
    fn append_writer_at<'a>(
        &'a self,
        path: &'a str,
        size: u64,
    ) -> BoxFuture<'a, Result<Box<dyn Writer>, StorageError>> {
        let _ = size;
        self.writer(path, true)
    }

    /// Makes `to` hold the content of `from`, an object written only by
    /// appending writers, replacing `to` atomically as [`Storage::rename`]
    /// does; `from` may be left behind for the caller to delete (an
    /// upload's folder goes whole). Object stores then list the staged
    /// parts once and copy them, deleting nothing.
    fn publish_appended<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        self.rename(from, to)
    }

    /// Moves the object at `from` to `to`, replacing `to`, atomically (a
    /// reader of `to` sees the old or the new object). Used to publish a
    /// finished upload as a blob.
    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), StorageError>>;

    /// As [`Storage::rename`], atomic but without waiting for the move to
    /// be durable (no directory `fsync`): for moves whose loss in a crash
    /// is harmless, such as garbage collection's trash, which it undoes
    /// anyway. Drivers without such a distinction just rename.
    fn rename_volatile<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        self.rename(from, to)
    }

    /// [`Storage::stat`] of each of `paths`, results in the same order.
    /// The batched calls below exist for garbage collection, which touches
    /// tens of thousands of objects: the filesystem does a chunk of them
    /// per hop to the blocking pool instead of one, object stores delete a
    /// thousand keys per request. The defaults do one call per item, a
    /// bounded number at once.
    fn stat_each<'a>(
        &'a self,
        paths: &'a [String],
    ) -> BoxFuture<'a, Vec<Result<Meta, StorageError>>> {
        each(paths, move |p| self.stat(p))
    }

    /// [`Storage::rename_volatile`] of each `(from, to)` pair, results in
    /// the same order.
    fn rename_volatile_each<'a>(
        &'a self,
        pairs: &'a [(String, String)],
    ) -> BoxFuture<'a, Vec<Result<(), StorageError>>> {
        each(pairs, move |(from, to)| self.rename_volatile(from, to))
    }

    /// Removes the objects at `paths` (objects, not subtrees as
    /// [`Storage::delete`] may); missing ones are not an error. On local
    /// storage an object's folder goes too when that leaves it empty.
    /// Returns the failures, each naming its path; empty when all went.
    fn delete_each<'a>(&'a self, paths: &'a [String]) -> BoxFuture<'a, Vec<StorageError>> {
        async move {
            each(paths, move |p| self.delete(p))
                .await
                .into_iter()
                .filter_map(Result::err)
                .collect()
        }
        .boxed()
    }

    /// A URL at which a client can `GET` the object at `path` directly for
    /// `expires`, when the backend can issue one (object stores with
    /// signing credentials); `None` otherwise. Used for `storage_redirect`.
    fn redirect_url<'a>(
        &'a self,
        path: &'a str,
        expires: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, StorageError>> {
        let _ = (path, expires);
        async { Ok(None) }.boxed()
    }

    /// Stores `data` at `path` only if no object is there, atomically
    /// against other processes; `Ok(false)` when one is. Needed only by
    /// [`Storage::shared`] drivers (the store's cross-process write lease);
    /// the default, for a storage this process alone writes, checks then
    /// writes.
    fn create_new<'a>(
        &'a self,
        path: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        async move {
            match self.stat(path).await {
                Ok(_) => Ok(false),
                Err(e) if e.is_not_found() => self.put_bytes(path, data).await.map(|()| true),
                Err(e) => Err(e),
            }
        }
        .boxed()
    }

    /// Whether other processes may write the same storage concurrently
    /// (several `serve` processes on one bucket). The store then trusts
    /// what it remembers of links and tags only briefly and checks an
    /// upload's hash state against storage (see `store/`).
    fn shared(&self) -> bool {
        false
    }
}

/// Calls of the batched methods' defaults kept in flight at once.
const EACH_IN_FLIGHT: usize = 32;

/// Runs `op` on each of `items`, [`EACH_IN_FLIGHT`] at once; results in
/// the order of `items`.
fn each<'a, T: Sync, R: Send + 'a>(
    items: &'a [T],
    op: impl Fn(&'a T) -> BoxFuture<'a, Result<R, StorageError>> + Send + 'a,
) -> BoxFuture<'a, Vec<Result<R, StorageError>>> {
    use futures::StreamExt as _;
    futures::stream::iter(items)
        .map(op)
        .buffered(EACH_IN_FLIGHT)
        .collect()
        .boxed()
}

/// Writes one object; see [`Storage::writer`].
pub(crate) trait Writer: Send {
    /// Appends `data`.
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), StorageError>>;

    /// Bytes in the object so far (including what an appending writer
    /// found there).
    fn size(&self) -> u64;

    /// Makes everything written durable and (for a non-appending writer)
    /// visible at the writer's path.
    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>>;

    /// Abandons the write; a non-appending writer leaves no trace.
    fn cancel(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>>;
}

/// Why a driver could not be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A driver regconf validates but does not serve.
    #[error("storage driver `{0}` is not supported by `serve`")]
    Unsupported(String),
    /// A setting the driver cannot work without.
    #[error("`storage: {driver}` needs `{key}`")]
    Missing {
        /// The driver.
        driver: &'static str,
        /// The missing key.
        key: &'static str,
    },
    /// A driver that would have to find credentials on its own (for `gcs`,
    /// the cloud's metadata server) without being asked to.
    #[error(
        "`storage: {driver}` has no credentials: set {keys}, or `{opt_in}` to use the cloud's own credentials (a service account file, or the metadata server)"
    )]
    NoCredentials {
        /// The driver.
        driver: &'static str,
        /// The settings that give credentials.
        keys: &'static str,
        /// The switch that allows ambient credentials.
        opt_in: &'static str,
    },
    /// A setup request at start (creating the Azure container) failed.
    #[error("cannot set up `{driver}` storage: {message}")]
    Setup {
        /// The driver.
        driver: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The object-store client refused the settings.
    #[error("cannot set up `{driver}` storage: {source}")]
    Client {
        /// The driver.
        driver: &'static str,
        /// The cause.
        source: Box<object_store::Error>,
    },
    /// The local root could not be created.
    #[error("cannot use storage path `{path}`: {source}")]
    Root {
        /// The expanded path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// The drivers `serve` runs (as written in `storage:`); the list lives in the
/// model so that `validate` can tell which flavors `serve` will refuse.
pub(crate) use crate::model::storage::SERVED_DRIVERS;

/// Builds the driver the configuration asks for.
pub(crate) fn from_config(
    storage: &model::Storage,
) -> Result<std::sync::Arc<dyn Storage>, DriverError> {
    if let model::Storage::Local { storage_path } = storage {
        // the path is final: `serve` expanded `~` and `$VAR` from the
        // environment the flavor was resolved in (the registry reads none)
        let fs = filesystem::Filesystem::new(storage_path.as_ref())?;
        return Ok(std::sync::Arc::new(fs));
    }
    match objects::from_config(storage) {
        Some(built) => built,
        None => Err(DriverError::Unsupported(storage.driver().to_owned())),
    }
}

/// What a driver needs done once before it serves: the Azure container is
/// created when missing; the bucket of a keyless `gcs` flavor (JSON API) is
/// checked. Other drivers need nothing.
pub(crate) async fn prepare(storage: &model::Storage) -> Result<(), DriverError> {
    match storage {
        model::Storage::Azure(c) => objects::azure::ensure_container(c).await,
        model::Storage::Gcs(c) => objects::check_gcs_bucket(c).await,
        _ => Ok(()),
    }
}

/// The bytes of an object of `size` bytes that a `get` of `range` reads
/// (all of them for `None`); `InvalidRange` when `range` is not within it.
pub(crate) fn checked_range(
    path: &str,
    range: Option<Range<u64>>,
    size: u64,
) -> Result<Range<u64>, StorageError> {
    let range = range.unwrap_or(0..size);
    if range.start > range.end || range.end > size {
        return Err(StorageError::InvalidRange {
            path: path.to_owned(),
            start: range.start,
            end: range.end,
            size,
        });
    }
    Ok(range)
}

/// Moves bytes from the front of `data` into `batch` until the batch holds
/// `limit` bytes (allocating exactly `limit` on first use); returns whether
/// the batch is full. Writers and the upload hasher batch their input so.
pub(crate) fn fill_batch(batch: &mut Vec<u8>, data: &mut &[u8], limit: usize) -> bool {
    if batch.capacity() == 0 {
        batch.reserve_exact(limit);
    }
    let n = data.len().min(limit.saturating_sub(batch.len()));
    batch.extend_from_slice(&data[..n]);
    *data = &data[n..];
    batch.len() >= limit
}

/// Refuses paths that could leave the driver's root: empty, absolute, or
/// with empty, `.` or `..` components, or with a backslash or NUL.
pub(crate) fn check_path(path: &str) -> Result<(), StorageError> {
    let bad = path.is_empty()
        || path.contains(['\\', '\0'])
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        Err(StorageError::InvalidPath(path.to_owned()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod conformance;
