//! Object-store drivers: S3 and S3-compatible stores, Google Cloud Storage
//! and Azure Blob Storage, through the `object_store` crate (and its
//! in-memory store for tests).
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
//! Credentials come only from the configuration: builders are created with
//! `new()`, never `from_env()`, so `AWS_*`/`AZURE_*`/`GOOGLE_*` variables of
//! the process are not picked up behind the user's back.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ::object_store::path::Path;
use ::object_store::signer::Signer;
use ::object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart,
};
use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};

use super::{ByteStream, DriverError, Meta, Storage, StorageError, Writer, check_path};
use crate::model;

/// Size of one multipart part: S3's minimum for all but the last, so a
/// writer holds as little as S3 allows; 5 MiB parts still allow objects of
/// 50 GB within S3's 10 000 parts.
pub const PART_SIZE: usize = 5 << 20;

/// Parts uploaded at once by one writer.
pub const MAX_CONCURRENCY: usize = 2;

/// Largest object composed by a server-side copy (S3's `CopyObject` limit);
/// larger ones are copied by streaming.
const SINGLE_COPY_LIMIT: u64 = 5 << 30;

/// The reserved directory of staged parts.
const PARTS: &str = ".parts";

/// How long a redirect URL stays valid.
pub const REDIRECT_TTL: Duration = Duration::from_secs(20 * 60);

/// A bucket (or container) of an object store, under a key prefix.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    signer: Option<Arc<dyn Signer>>,
    /// Prefix without leading or trailing `/`; empty for none.
    prefix: String,
}

/// One stored piece of an object: a key, where it starts, its size.
#[derive(Debug, Clone)]
struct Segment {
    key: Path,
    start: u64,
    size: u64,
}

/// An object as stored: one plain object or staged parts.
#[derive(Debug)]
struct Layout {
    segments: Vec<Segment>,
    size: u64,
    modified: SystemTime,
    /// Whether the object is staged parts (not a plain object).
    staged: bool,
}

fn time(t: chrono::DateTime<chrono::Utc>) -> SystemTime {
    let ms = u64::try_from(t.timestamp_millis()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
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

/// Client options for every backend: a short connect timeout, and no
/// whole-request timeout (a blob streamed to a slow client may take long).
fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout_disabled()
}

fn non_empty(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

impl ObjectStorage {
    /// Wraps `store`; keys are `prefix/<path>` (`prefix` may have leading
    /// and trailing `/`, or be empty). `signer` issues redirect URLs.
    pub fn new(store: Arc<dyn ObjectStore>, signer: Option<Arc<dyn Signer>>, prefix: &str) -> Self {
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

    /// `storage: s3` (and `cloudfronts3`, Ceph, moto, MinIO...).
    pub fn s3(c: &model::S3) -> Result<Self, DriverError> {
        use ::object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
        let bucket = non_empty(c.boto_bucket.as_ref()).ok_or(DriverError::Missing {
            driver: "s3",
            key: "boto_bucket",
        })?;
        let region = non_empty(c.s3_region.as_ref()).unwrap_or("us-east-1");
        let scheme = if c.s3_secure { "https" } else { "http" };
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(region)
            .with_client_options(client_options(!c.s3_secure));
        b = match non_empty(c.boto_host.as_ref()) {
            // Another S3-compatible store: path-style (as boto's
            // OrdinaryCallingFormat), since virtual hosts need DNS.
            Some(host) => {
                let endpoint = match c.boto_port {
                    Some(port) => format!("{scheme}://{host}:{port}"),
                    None => format!("{scheme}://{host}"),
                };
                b.with_endpoint(endpoint)
                    .with_virtual_hosted_style_request(false)
                    .with_allow_http(!c.s3_secure)
            }
            None if !c.s3_secure => b
                .with_endpoint(format!("http://{bucket}.s3.{region}.amazonaws.com"))
                .with_virtual_hosted_style_request(true)
                .with_allow_http(true),
            None => b.with_virtual_hosted_style_request(true),
        };
        match (
            non_empty(c.s3_access_key.as_ref()),
            non_empty(c.s3_secret_key.as_ref()),
        ) {
            (Some(k), Some(s)) => {
                b = b.with_access_key_id(k).with_secret_access_key(s);
            }
            (Some(_), None) => {
                return Err(DriverError::Missing {
                    driver: "s3",
                    key: "s3_secret_key",
                });
            }
            (None, Some(_)) => {
                return Err(DriverError::Missing {
                    driver: "s3",
                    key: "s3_access_key",
                });
            }
            // No keys: the instance's role (metadata service), as boto did.
            (None, None) => {}
        }
        if c.s3_encrypt {
            // SSE-S3; the key type is not exported, so it is named by text.
            let key: AmazonS3ConfigKey =
                "aws_server_side_encryption"
                    .parse()
                    .map_err(|e| DriverError::Client {
                        driver: "s3",
                        source: Box::new(e),
                    })?;
            b = b.with_config(key, "AES256");
        }
        if let Some(proxy) = non_empty(c.boto_proxy.as_ref()) {
            let auth = match (
                non_empty(c.boto_proxy_user.as_ref()),
                non_empty(c.boto_proxy_pass.as_ref()),
            ) {
                (Some(u), Some(p)) => format!("{u}:{p}@"),
                (Some(u), None) => format!("{u}@"),
                _ => String::new(),
            };
            let port = c
                .boto_proxy_port
                .map(|p| format!(":{p}"))
                .unwrap_or_default();
            b = b.with_proxy_url(format!("http://{auth}{proxy}{port}"));
        }
        let s3 = Arc::new(b.build().map_err(|source| DriverError::Client {
            driver: "s3",
            source: Box::new(source),
        })?);
        Ok(Self::new(s3.clone(), Some(s3), &c.storage_path))
    }

    /// `storage: gcs`. With HMAC keys (`gs_access_key`/`gs_secret_key`)
    /// it talks to GCS's S3-compatible XML API, as boto did; with
    /// `oauth2: true` (or no keys) it uses the JSON API with Google's
    /// application default credentials (a service account file or the
    /// metadata server), the equivalent of the original OAuth plugin.
    pub fn gcs(c: &model::Gcs) -> Result<Self, DriverError> {
        let bucket = non_empty(c.boto_bucket.as_ref()).ok_or(DriverError::Missing {
            driver: "gcs",
            key: "boto_bucket",
        })?;
        let client = |source| DriverError::Client {
            driver: "gcs",
            source: Box::new(source),
        };
        let keys = (
            non_empty(c.gs_access_key.as_ref()),
            non_empty(c.gs_secret_key.as_ref()),
        );
        if let (false, Some(key), Some(secret)) = (c.oauth2, keys.0, keys.1) {
            let scheme = if c.gs_secure { "https" } else { "http" };
            let s3 = ::object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region("auto")
                .with_endpoint(format!("{scheme}://storage.googleapis.com"))
                .with_virtual_hosted_style_request(false)
                .with_access_key_id(key)
                .with_secret_access_key(secret)
                .with_client_options(client_options(!c.gs_secure))
                .build()
                .map_err(client)?;
            let s3 = Arc::new(s3);
            return Ok(Self::new(s3.clone(), Some(s3), &c.storage_path));
        }
        let gcs = ::object_store::gcp::GoogleCloudStorageBuilder::new()
            .with_bucket_name(bucket)
            .with_client_options(client_options(false))
            .build()
            .map_err(client)?;
        let gcs = Arc::new(gcs);
        Ok(Self::new(gcs.clone(), Some(gcs), &c.storage_path))
    }

    /// `storage: azureblob`: the container of an account, with its key.
    pub fn azure(c: &model::Azure) -> Result<Self, DriverError> {
        let account =
            non_empty(c.azure_storage_account_name.as_ref()).ok_or(DriverError::Missing {
                driver: "azureblob",
                key: "azure_storage_account_name",
            })?;
        let key = non_empty(c.azure_storage_account_key.as_ref()).ok_or(DriverError::Missing {
            driver: "azureblob",
            key: "azure_storage_account_key",
        })?;
        let container = match c.azure_storage_container.trim() {
            "" => "registry",
            c => c,
        };
        let mut b = ::object_store::azure::MicrosoftAzureBuilder::new()
            .with_account(account)
            .with_access_key(key)
            .with_container_name(container)
            .with_client_options(client_options(!c.azure_use_https));
        if !c.azure_use_https {
            b = b
                .with_endpoint(format!("http://{account}.blob.core.windows.net"))
                .with_allow_http(true);
        }
        let az = Arc::new(b.build().map_err(|source| DriverError::Client {
            driver: "azureblob",
            source: Box::new(source),
        })?);
        Ok(Self::new(az.clone(), Some(az), ""))
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

    fn parts_dir(key: &Path) -> Path {
        key.clone().join(PARTS)
    }

    fn part_key(key: &Path, offset: u64) -> Path {
        Self::parts_dir(key).join(format!("{offset:020}").as_str())
    }

    /// How the object at `path` is stored; [`StorageError::NotFound`] when
    /// it is not.
    async fn layout(&self, path: &str, key: &Path) -> Result<Layout, StorageError> {
        match self.store.head(key).await {
            Ok(m) => {
                return Ok(Layout {
                    size: m.size,
                    modified: time(m.last_modified),
                    segments: vec![Segment {
                        key: m.location,
                        start: 0,
                        size: m.size,
                    }],
                    staged: false,
                });
            }
            Err(::object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(remote(path, e)),
        }
        let dir = Self::parts_dir(key);
        let mut parts: Vec<(u64, ::object_store::ObjectMeta)> = self
            .store
            .list(Some(&dir))
            .map_err(|e| remote(path, e))
            .try_filter_map(|m| async move {
                let offset = m.location.filename().and_then(|f| f.parse::<u64>().ok());
                Ok(offset.map(|o| (o, m)))
            })
            .try_collect()
            .await?;
        if parts.is_empty() {
            return Err(StorageError::NotFound(path.to_owned()));
        }
        parts.sort_by_key(|(o, _)| *o);
        let mut size = 0;
        let mut modified = SystemTime::UNIX_EPOCH;
        let mut segments = Vec::with_capacity(parts.len());
        for (offset, m) in parts {
            if offset != size {
                return Err(corrupt(
                    path,
                    "staged parts overlap or leave a gap (concurrent appends?)",
                ));
            }
            modified = modified.max(time(m.last_modified));
            segments.push(Segment {
                key: m.location,
                start: offset,
                size: m.size,
            });
            size += m.size;
        }
        Ok(Layout {
            segments,
            size,
            modified,
            staged: true,
        })
    }

    /// Streams `range` of the segments.
    fn stream(&self, path: &str, segments: Vec<Segment>, range: Range<u64>) -> ByteStream {
        let store = self.store.clone();
        let owned = path.to_owned();
        futures::stream::iter(segments)
            .filter_map(move |s| {
                let from = range.start.max(s.start);
                let to = range.end.min(s.start + s.size);
                futures::future::ready((from < to).then(|| (s.key, from - s.start..to - s.start)))
            })
            .then(move |(key, r)| {
                let store = store.clone();
                let owned = owned.clone();
                async move {
                    let opts = GetOptions::default().with_range(Some(GetRange::Bounded(r)));
                    let got = store
                        .get_opts(&key, opts)
                        .await
                        .map_err(|e| remote(&owned, e))?;
                    let err_path = owned.clone();
                    Ok::<_, StorageError>(
                        got.into_stream()
                            .map_err(move |e| remote(&err_path, e))
                            .boxed(),
                    )
                }
            })
            .try_flatten()
            .boxed()
    }

    /// Deletes everything under `key/` (not `key` itself).
    async fn delete_tree(&self, path: &str, key: &Path) -> Result<(), StorageError> {
        let paths = self.store.list(Some(key)).map_ok(|m| m.location).boxed();
        let mut deleted = self.store.delete_stream(paths);
        while let Some(r) = deleted.next().await {
            match r {
                Ok(_) | Err(::object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(remote(path, e)),
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

    fn new_writer(&self, path: &str, target: Path, base: u64, append: bool) -> ObjectWriter {
        ObjectWriter {
            store: self.store.clone(),
            path: path.to_owned(),
            target,
            buf: BytesMut::new(),
            upload: None,
            size: base,
            written: 0,
            append,
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
            let l = self.layout(path, &key).await?;
            let range = range.unwrap_or(0..l.size);
            if range.start > range.end || range.end > l.size {
                return Err(StorageError::InvalidRange {
                    path: path.to_owned(),
                    start: range.start,
                    end: range.end,
                    size: l.size,
                });
            }
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
                let w: Box<dyn Writer> = Box::new(self.new_writer(path, key, 0, false));
                return Ok(w);
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
            let w: Box<dyn Writer> = Box::new(self.new_writer(path, target, size, true));
            Ok(w)
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
            self.delete_tree(path, &key).await?;
            self.delete_key(path, &key).await
        }
        .boxed()
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        async move {
            let src = self.key(from)?;
            let dst = self.key(to)?;
            let l = self.layout(from, &src).await?;
            match l.segments.as_slice() {
                [one] if one.size <= SINGLE_COPY_LIMIT => {
                    self.store
                        .copy(&one.key, &dst)
                        .await
                        .map_err(|e| remote(from, e))?;
                }
                _ => {
                    let mut w: Box<dyn Writer> =
                        Box::new(self.new_writer(to, dst.clone(), 0, false));
                    let mut s = self.stream(from, l.segments, 0..l.size);
                    while let Some(chunk) = s.try_next().await? {
                        w.write(chunk).await?;
                    }
                    w.commit().await?;
                }
            }
            if l.staged {
                self.delete_tree(from, &src).await
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

    fn shared(&self) -> bool {
        true
    }
}

/// Writes one object: a single `PUT` when it stays under [`PART_SIZE`],
/// else a multipart upload with bounded parts in flight.
struct ObjectWriter {
    store: Arc<dyn ObjectStore>,
    path: String,
    /// The object, or the staged part, being written.
    target: Path,
    /// Bytes not yet handed to an upload.
    buf: BytesMut,
    upload: Option<WriteMultipart>,
    /// Size of the whole object (staged parts before this one included).
    size: u64,
    /// Bytes written through this writer.
    written: u64,
    /// An appending writer writes a staged part; an empty one is skipped.
    append: bool,
}

impl Writer for ObjectWriter {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), StorageError>> {
        async move {
            self.size += data.len() as u64;
            self.written += data.len() as u64;
            if let Some(up) = self.upload.as_mut() {
                up.wait_for_capacity(MAX_CONCURRENCY)
                    .await
                    .map_err(|e| remote(&self.path, e))?;
                up.put(data);
                return Ok(());
            }
            self.buf.extend_from_slice(&data);
            if self.buf.len() >= PART_SIZE {
                let up = self
                    .store
                    .put_multipart(&self.target)
                    .await
                    .map_err(|e| remote(&self.path, e))?;
                let mut up = WriteMultipart::new_with_chunk_size(up, PART_SIZE);
                up.put(self.buf.split().freeze());
                // Give the buffer's memory back; later data goes straight
                // to the upload.
                self.buf = BytesMut::new();
                self.upload = Some(up);
            }
            Ok(())
        }
        .boxed()
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        async move {
            if let Some(up) = self.upload.take() {
                up.finish().await.map_err(|e| remote(&self.path, e))?;
            } else if !(self.append && self.written == 0) {
                let data = self.buf.split().freeze();
                self.store
                    .put(&self.target, PutPayload::from(data))
                    .await
                    .map_err(|e| remote(&self.path, e))?;
            }
            Ok(())
        }
        .boxed()
    }

    fn cancel(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        async move {
            if let Some(up) = self.upload.take() {
                up.abort().await.map_err(|e| remote(&self.path, e))?;
            }
            Ok(())
        }
        .boxed()
    }
}

impl Drop for ObjectWriter {
    /// A writer dropped mid-way (a client hung up) aborts its multipart
    /// upload, so the store does not keep the parts.
    fn drop(&mut self) {
        if let Some(up) = self.upload.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = up.abort().await;
            });
        }
    }
}

/// Builds the object-store driver for `storage`, or `None` for drivers
/// that are not object stores.
pub(super) fn from_config(
    storage: &model::Storage,
) -> Option<Result<Arc<dyn Storage>, DriverError>> {
    let built = match storage {
        model::Storage::S3(c) => ObjectStorage::s3(c),
        model::Storage::Gcs(c) => ObjectStorage::gcs(c),
        model::Storage::Azure(c) => ObjectStorage::azure(c),
        _ => return None,
    };
    Some(built.map(|s| Arc::new(s) as Arc<dyn Storage>))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance_in_memory() {
        let mem = Arc::new(::object_store::memory::InMemory::new());
        let s = ObjectStorage::new(mem, None, "/registry/");
        crate::registry::storage::conformance::run(&s).await;
    }

    fn moto_config(moto: &crate::registry::storage::moto::Moto, prefix: &str) -> model::S3 {
        model::S3 {
            boto_bucket: Some("conformance".into()),
            storage_path: prefix.into(),
            boto_host: Some("127.0.0.1".into()),
            boto_port: Some(i64::from(moto.port)),
            s3_access_key: Some("test".into()),
            s3_secret_key: Some("test".into()),
            s3_secure: false,
            s3_encrypt: true,
            ..model::S3::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_s3_on_moto() {
        let moto = tokio::task::spawn_blocking(|| {
            crate::registry::storage::moto::Moto::start("conformance")
        })
        .await
        .unwrap();
        let s = ObjectStorage::s3(&moto_config(&moto, "/registry")).unwrap();
        crate::registry::storage::conformance::run(&s).await;

        // Staged parts, a multipart part and a presigned URL on a real server.
        let s = ObjectStorage::s3(&moto_config(&moto, "other")).unwrap();
        let big = Bytes::from(vec![3u8; PART_SIZE + 10]);
        for chunk in [big.clone(), Bytes::from_static(b"tail")] {
            let mut w = s.writer("up/data", true).await.unwrap();
            w.write(chunk).await.unwrap();
            w.commit().await.unwrap();
        }
        assert_eq!(s.stat("up/data").await.unwrap().size, PART_SIZE as u64 + 14);
        s.rename("up/data", "blob").await.unwrap();
        let got: Vec<Bytes> = s
            .get("blob", Some(PART_SIZE as u64..PART_SIZE as u64 + 14))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got.concat(), [&[3u8; 10][..], b"tail"].concat());
        assert!(s.list("up").await.unwrap().is_empty());
        let url = s
            .redirect_url("blob", Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert!(
            url.starts_with(&format!("{}/conformance/other/blob?", moto.endpoint)),
            "{url}"
        );
    }

    #[tokio::test]
    async fn staged_parts_compose() {
        let mem = Arc::new(::object_store::memory::InMemory::new());
        let s = ObjectStorage::new(mem.clone(), None, "p");
        for chunk in [&b"ab"[..], b"", b"cde", b"f"] {
            let mut w = s.writer("u/data", true).await.unwrap();
            w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
            w.commit().await.unwrap();
        }
        assert_eq!(s.stat("u/data").await.unwrap().size, 6);
        assert_eq!(s.list("u").await.unwrap(), ["data"]);
        assert!(s.list("u/data").await.unwrap().is_empty());
        let got: Vec<Bytes> = s
            .get("u/data", Some(1..5))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(got.concat(), b"bcde");
        s.rename("u/data", "b/data").await.unwrap();
        assert_eq!(&s.get_bytes("b/data").await.unwrap()[..], b"abcdef");
        let left: Vec<_> = mem.list(None).try_collect().await.unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(matches!(
            s.stat("x/.parts/1").await,
            Err(StorageError::InvalidPath(_))
        ));
    }

    #[test]
    fn builders_need_their_keys() {
        let e = ObjectStorage::s3(&model::S3::default()).unwrap_err();
        assert_eq!(e.to_string(), "`storage: s3` needs `boto_bucket`");
        let e = ObjectStorage::s3(&model::S3 {
            boto_bucket: Some("b".into()),
            s3_access_key: Some("k".into()),
            ..model::S3::default()
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "`storage: s3` needs `s3_secret_key`");
        let e = ObjectStorage::azure(&model::Azure::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`storage: azureblob` needs `azure_storage_account_name`"
        );
        let s3 = ObjectStorage::s3(&model::S3 {
            boto_bucket: Some("b".into()),
            storage_path: "/registry/".into(),
            boto_host: Some("127.0.0.1".into()),
            boto_port: Some(9),
            s3_access_key: Some("k".into()),
            s3_secret_key: Some("s".into()),
            ..model::S3::default()
        })
        .unwrap();
        assert_eq!(s3.prefix, "registry");
    }
}
