//! Google Cloud Storage through its JSON API, without credentials, as an
//! [`ObjectStore`]: for `storage: gcs` with `gs_endpoint` and neither HMAC
//! keys nor `oauth2` (an emulator such as fake-gcs-server, or a private
//! endpoint that authenticates by other means).
//!
//! Why a client of our own: object_store's GCS client writes through the
//! XML API (`PUT` of an object, XML multipart uploads, `x-goog-copy-source`),
//! which fake-gcs-server does not serve for writes; its JSON API it serves
//! in full. Being an [`ObjectStore`], it runs under the same objects driver
//! (staged parts, writer, lease, conformance suite) as S3 and Azure.
//!
//! Requests, all under `<endpoint>/storage/v1/b/<bucket>` (uploads under
//! `<endpoint>/upload/storage/v1/b/<bucket>`):
//!
//! * put: `uploadType=media`; a conditional put (`PutMode::Create`, the
//!   lease) is `uploadType=multipart` with `ifGenerationMatch=0`, because
//!   fake-gcs-server ignores preconditions on media uploads (GCS honours
//!   them on both).
//! * multipart upload: one resumable session (`upload.rs`).
//! * get: `alt=media` with a `Range` header; head: the object's metadata.
//! * list: `prefix`, `delimiter=/`, `startOffset`, `pageToken`.
//! * copy: `rewriteTo`, repeated with its `rewriteToken` until done.
//! * delete: `DELETE` of the object.
//!
//! This module must not send credentials or read them from anywhere, and
//! must not create buckets (a bucket belongs to a project; the operator
//! makes it, as for the other drivers).

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use ::object_store::path::Path;
use ::object_store::{
    Attributes, CopyMode, CopyOptions, Error, GetOptions, GetRange, GetResult, GetResultPayload,
    ListResult, MultipartUpload, ObjectMeta, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, Result,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

mod upload;

/// The name errors carry (`object_store::Error::Generic`'s `store`).
const STORE: &str = "GCS JSON API";

/// A bucket reached through the JSON API, with no credentials.
#[derive(Debug, Clone)]
pub(crate) struct GcsJson {
    http: reqwest::Client,
    /// The endpoint, e.g. `http://127.0.0.1:4443` (a path is kept).
    base: Url,
    bucket: String,
}

/// An object's metadata as the JSON API gives it (sizes and generations
/// are decimal strings there).
#[derive(Debug, Deserialize)]
struct Object {
    name: String,
    size: String,
    updated: String,
    etag: Option<String>,
    generation: Option<String>,
}

/// One page of `objects.list`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    #[serde(default)]
    items: Vec<Object>,
    #[serde(default)]
    prefixes: Vec<String>,
    next_page_token: Option<String>,
}

/// The answer of `objects.rewrite`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rewrite {
    done: bool,
    rewrite_token: Option<String>,
}

fn generic(message: impl Into<String>) -> Error {
    Error::Generic {
        store: STORE,
        source: message.into().into(),
    }
}

fn transport(e: reqwest::Error) -> Error {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    generic(text)
}

/// The error for a failed answer about `path`, from its status and body.
fn status_error(path: &str, status: StatusCode, body: &str) -> Error {
    let text = format!("{status}: {}", body.trim());
    let source = text.clone().into();
    let path = path.to_owned();
    match status.as_u16() {
        404 => Error::NotFound { path, source },
        412 => Error::Precondition { path, source },
        304 => Error::NotModified { path, source },
        401 => Error::Unauthenticated { path, source },
        403 => Error::PermissionDenied { path, source },
        _ => generic(format!("`{path}`: {text}")),
    }
}

/// Reads a failed answer into an error (its body, cut short, says why).
async fn failed(path: &str, r: reqwest::Response) -> Error {
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    let short: String = body.chars().take(500).collect();
    status_error(path, status, &short)
}

fn timestamp(text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| generic(format!("bad timestamp `{text}`: {e}")))
}

impl Object {
    fn meta(self) -> Result<ObjectMeta> {
        Ok(ObjectMeta {
            location: Path::parse(&self.name)?,
            last_modified: timestamp(&self.updated)?,
            size: self
                .size
                .parse()
                .map_err(|_| generic(format!("bad size `{}`", self.size)))?,
            e_tag: self.etag,
            version: self.generation,
        })
    }
}

/// The `Range` header value for `range`.
fn range_header(range: &GetRange) -> String {
    match range {
        GetRange::Bounded(r) => format!("bytes={}-{}", r.start, r.end.saturating_sub(1)),
        GetRange::Offset(o) => format!("bytes={o}-"),
        GetRange::Suffix(n) => format!("bytes=-{n}"),
    }
}

/// The byte range of `size` that `range` names, when it names one.
fn resolve(range: Option<&GetRange>, size: u64) -> Option<Range<u64>> {
    match range {
        None => Some(0..size),
        Some(GetRange::Bounded(r)) if r.start <= r.end && r.start <= size => {
            Some(r.start..r.end.min(size))
        }
        Some(GetRange::Offset(o)) if *o <= size => Some(*o..size),
        Some(GetRange::Suffix(n)) => Some(size.saturating_sub(*n)..size),
        _ => None,
    }
}

/// The total size in a `Content-Range: bytes a-b/total` header.
fn total_of(content_range: &str) -> Option<u64> {
    content_range.rsplit_once('/')?.1.trim().parse().ok()
}

impl GcsJson {
    /// A client for `bucket` at `endpoint` (`http(s)://HOST[:PORT][/PATH]`).
    pub(crate) fn new(endpoint: &str, bucket: &str) -> Result<Self> {
        let base = Url::parse(endpoint.trim_end_matches('/'))
            .map_err(|e| generic(format!("`{endpoint}` is not a URL: {e}")))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(generic(format!("`{endpoint}` is not an http(s) URL")));
        }
        // No whole-request timeout: a blob streamed to a slow client may
        // take long (as for the other drivers).
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .https_only(base.scheme() == "https")
            .build()
            .map_err(transport)?;
        Ok(Self {
            http,
            base,
            bucket: bucket.to_owned(),
        })
    }

    /// `<endpoint>/<root...>/b/<bucket>/o[/<name>][/<more>...]`, every
    /// part one path segment (a `/` in a name is escaped).
    fn url(&self, root: &[&str], name: Option<&str>, more: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty()
                .extend(root)
                .extend(["b", self.bucket.as_str(), "o"])
                .extend(name)
                .extend(more);
        }
        url
    }

    fn object_url(&self, name: &str) -> Url {
        self.url(&["storage", "v1"], Some(name), &[])
    }

    fn upload_url(&self) -> Url {
        self.url(&["upload", "storage", "v1"], None, &[])
    }

    async fn send(&self, path: &str, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let r = req.send().await.map_err(transport)?;
        if r.status().is_success() {
            Ok(r)
        } else {
            Err(failed(path, r).await)
        }
    }

    async fn json<T: for<'de> Deserialize<'de>>(r: reqwest::Response) -> Result<T> {
        let body = r.bytes().await.map_err(transport)?;
        serde_json::from_slice(&body).map_err(|e| generic(format!("unexpected answer: {e}")))
    }

    /// Whether the bucket exists (`buckets.get`): `NotFound` when not.
    pub(crate) async fn check_bucket(&self) -> Result<()> {
        let mut url = self.base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty()
                .extend(["storage", "v1", "b", self.bucket.as_str()]);
        }
        self.send(&self.bucket, self.http.get(url)).await?;
        Ok(())
    }

    async fn metadata(&self, location: &Path) -> Result<ObjectMeta> {
        let r = self
            .send(
                location.as_ref(),
                self.http.get(self.object_url(location.as_ref())),
            )
            .await?;
        Self::json::<Object>(r).await?.meta()
    }

    /// A one-request upload of `data` (`uploadType=media`).
    pub(super) async fn put_media(&self, location: &Path, data: Bytes) -> Result<PutResult> {
        let mut url = self.upload_url();
        url.query_pairs_mut()
            .append_pair("uploadType", "media")
            .append_pair("name", location.as_ref());
        let r = self
            .send(
                location.as_ref(),
                self.http
                    .post(url)
                    .header("content-type", "application/octet-stream")
                    .body(data),
            )
            .await?;
        put_result(r).await
    }

    /// An upload with a generation precondition (`0`: the object must not
    /// exist), as `uploadType=multipart`: metadata and data in one body.
    async fn put_if_generation(
        &self,
        location: &Path,
        data: Bytes,
        generation: &str,
    ) -> Result<PutResult> {
        let meta = serde_json::json!({ "name": location.as_ref() }).to_string();
        // A boundary that the data does not contain.
        let mut boundary = format!("regconf-{}", uuid::Uuid::new_v4().simple());
        while data
            .windows(boundary.len())
            .any(|w| w == boundary.as_bytes())
        {
            boundary = format!("regconf-{}", uuid::Uuid::new_v4().simple());
        }
        let mut body = Vec::with_capacity(data.len() + meta.len() + 256);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n\
                 --{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let mut url = self.upload_url();
        url.query_pairs_mut()
            .append_pair("uploadType", "multipart")
            .append_pair("ifGenerationMatch", generation);
        let r = self
            .send(
                location.as_ref(),
                self.http
                    .post(url)
                    .header(
                        "content-type",
                        format!("multipart/related; boundary={boundary}"),
                    )
                    .body(body),
            )
            .await?;
        put_result(r).await
    }

    /// Pages of `objects.list` under `prefix` (a string prefix), from
    /// `start` (inclusive) when given, with `/` as delimiter when asked.
    fn pages(
        &self,
        prefix: String,
        start: Option<String>,
        delimited: bool,
    ) -> BoxStream<'static, Result<Page>> {
        let this = self.clone();
        futures::stream::try_unfold(Some(None::<String>), move |token| {
            let this = this.clone();
            let prefix = prefix.clone();
            let start = start.clone();
            async move {
                let Some(token) = token else { return Ok(None) };
                let mut url = this.url(&["storage", "v1"], None, &[]);
                {
                    let mut q = url.query_pairs_mut();
                    q.append_pair("prefix", &prefix);
                    if delimited {
                        q.append_pair("delimiter", "/");
                    }
                    if let Some(s) = &start {
                        q.append_pair("startOffset", s);
                    }
                    if let Some(t) = &token {
                        q.append_pair("pageToken", t);
                    }
                    q.append_pair(
                        "fields",
                        "items(name,size,updated,etag,generation),prefixes,nextPageToken",
                    );
                }
                let r = this.send(&prefix, this.http.get(url)).await?;
                let page: Page = Self::json(r).await?;
                let next = page.next_page_token.clone().filter(|t| !t.is_empty());
                Ok(Some((page, next.map(Some))))
            }
        })
        .boxed()
    }
}

/// The `PutResult` of a finished upload (the object's metadata).
pub(super) async fn put_result(r: reqwest::Response) -> Result<PutResult> {
    let o: Object = GcsJson::json(r).await?;
    Ok(PutResult {
        e_tag: o.etag,
        version: o.generation,
        extensions: Default::default(),
    })
}

/// The key prefix that lists what is under `prefix` (object_store's
/// prefixes are whole path segments).
fn dir_prefix(prefix: Option<&Path>) -> String {
    match prefix.map(Path::as_ref) {
        None | Some("") => String::new(),
        Some(p) => format!("{p}/"),
    }
}

impl fmt::Display for GcsJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GcsJson({}, bucket {})", self.base, self.bucket)
    }
}

#[async_trait]
impl ::object_store::ObjectStore for GcsJson {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let data = Bytes::from(payload);
        match opts.mode {
            PutMode::Overwrite => self.put_media(location, data).await,
            PutMode::Create => match self.put_if_generation(location, data, "0").await {
                Err(Error::Precondition { path, source }) => {
                    Err(Error::AlreadyExists { path, source })
                }
                other => other,
            },
            PutMode::Update(v) => {
                let generation = v.version.ok_or_else(|| Error::Precondition {
                    path: location.to_string(),
                    source: "an update needs the object's generation".into(),
                })?;
                self.put_if_generation(location, data, &generation).await
            }
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Ok(Box::new(upload::Resumable::new(
            self.clone(),
            location.clone(),
        )))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.if_match.is_some()
            || options.if_none_match.is_some()
            || options.if_modified_since.is_some()
            || options.if_unmodified_since.is_some()
            || options.version.is_some()
        {
            return Err(Error::NotImplemented {
                operation: "get with preconditions or a version".into(),
                implementer: STORE.into(),
            });
        }
        let path = location.as_ref();
        let result = |meta: ObjectMeta, range: Range<u64>, payload| GetResult {
            payload: GetResultPayload::Stream(payload),
            meta,
            range,
            attributes: Attributes::default(),
            extensions: Default::default(),
        };
        if options.head {
            let meta = self.metadata(location).await?;
            let range = 0..meta.size;
            return Ok(result(meta, range, futures::stream::empty().boxed()));
        }
        let mut url = self.object_url(path);
        url.query_pairs_mut().append_pair("alt", "media");
        let mut req = self.http.get(url);
        if let Some(r) = &options.range {
            req = req.header("range", range_header(r));
        }
        let r = req.send().await.map_err(transport)?;
        if r.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            // GCS refuses any range of an empty object, and a range that
            // starts at the end; object_store allows the empty range there.
            let meta = self.metadata(location).await?;
            return match resolve(options.range.as_ref(), meta.size) {
                Some(range) if range.is_empty() => {
                    Ok(result(meta, range, futures::stream::empty().boxed()))
                }
                _ => Err(generic(format!("`{path}`: range not satisfiable"))),
            };
        }
        if !r.status().is_success() {
            return Err(failed(path, r).await);
        }
        let header = |name: &str| {
            r.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let size = match (r.status(), header("content-range")) {
            (StatusCode::PARTIAL_CONTENT, Some(cr)) => total_of(&cr),
            (StatusCode::PARTIAL_CONTENT, None) => None,
            _ => header("x-goog-stored-content-length")
                .and_then(|s| s.parse().ok())
                .or(r.content_length()),
        };
        let modified = header("last-modified")
            .and_then(|t| chrono::DateTime::parse_from_rfc2822(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        let meta = match (size, modified) {
            (Some(size), Some(last_modified)) => ObjectMeta {
                location: location.clone(),
                last_modified,
                size,
                e_tag: header("etag"),
                version: header("x-goog-generation"),
            },
            // Not in the headers: ask for the metadata.
            _ => self.metadata(location).await?,
        };
        let range = resolve(options.range.as_ref(), meta.size)
            .ok_or_else(|| generic(format!("`{path}`: range outside the object")))?;
        if r.status() == StatusCode::OK && range != (0..meta.size) {
            return Err(generic(format!("`{path}`: the server ignored the range")));
        }
        let stream = r.bytes_stream().map_err(transport).boxed();
        Ok(result(meta, range, stream))
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let this = self.clone();
        locations
            .map(move |location| {
                let this = this.clone();
                async move {
                    let location = location?;
                    let url = this.object_url(location.as_ref());
                    this.send(location.as_ref(), this.http.request(Method::DELETE, url))
                        .await?;
                    Ok(location)
                }
            })
            .buffered(8)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.pages(dir_prefix(prefix), None, false)
            .map_ok(|page| futures::stream::iter(page.items.into_iter().map(Object::meta)))
            .try_flatten()
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        // `startOffset` is inclusive; object_store's offset is not.
        let after = offset.clone();
        self.pages(dir_prefix(prefix), Some(offset.to_string()), false)
            .map_ok(|page| futures::stream::iter(page.items.into_iter().map(Object::meta)))
            .try_flatten()
            .try_filter(move |m| futures::future::ready(m.location > after))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut pages = self.pages(dir_prefix(prefix), None, true);
        let mut out = ListResult {
            common_prefixes: Vec::new(),
            objects: Vec::new(),
            extensions: Default::default(),
        };
        while let Some(page) = pages.try_next().await? {
            for p in page.prefixes {
                out.common_prefixes
                    .push(Path::parse(p.trim_end_matches('/'))?);
            }
            for o in page.items {
                out.objects.push(o.meta()?);
            }
        }
        Ok(out)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let mut token: Option<String> = None;
        loop {
            let mut url = self.url(
                &["storage", "v1"],
                Some(from.as_ref()),
                &["rewriteTo", "b", &self.bucket, "o", to.as_ref()],
            );
            {
                let mut q = url.query_pairs_mut();
                if options.mode == CopyMode::Create {
                    q.append_pair("ifGenerationMatch", "0");
                }
                if let Some(t) = &token {
                    q.append_pair("rewriteToken", t);
                }
            }
            let sent = self
                .send(
                    from.as_ref(),
                    self.http
                        .post(url)
                        .header("content-type", "application/json")
                        .body("{}"),
                )
                .await;
            let r = match sent {
                Err(Error::Precondition { source, .. }) => {
                    return Err(Error::AlreadyExists {
                        path: to.to_string(),
                        source,
                    });
                }
                other => other?,
            };
            let answer: Rewrite = Self::json(r).await?;
            if answer.done {
                return Ok(());
            }
            token = Some(
                answer
                    .rewrite_token
                    .ok_or_else(|| generic("a rewrite not done, without a token"))?,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_escaped_segment() {
        let c = GcsJson::new("http://127.0.0.1:9/", "b").unwrap();
        assert_eq!(
            c.object_url("a/b c:d").as_str(),
            "http://127.0.0.1:9/storage/v1/b/b/o/a%2Fb%20c:d"
        );
        let c = GcsJson::new("https://proxy.example/gcs", "b").unwrap();
        assert_eq!(
            c.upload_url().as_str(),
            "https://proxy.example/gcs/upload/storage/v1/b/b/o"
        );
    }

    #[test]
    fn ranges_and_sizes() {
        assert_eq!(range_header(&GetRange::Bounded(2..6)), "bytes=2-5");
        assert_eq!(range_header(&GetRange::Offset(7)), "bytes=7-");
        assert_eq!(range_header(&GetRange::Suffix(3)), "bytes=-3");
        assert_eq!(total_of("bytes 2-5/11"), Some(11));
        assert_eq!(resolve(Some(&GetRange::Offset(0)), 0), Some(0..0));
        assert_eq!(resolve(Some(&GetRange::Offset(4)), 3), None);
        assert_eq!(resolve(Some(&GetRange::Suffix(5)), 3), Some(0..3));
    }

    #[test]
    fn not_an_endpoint() {
        assert!(GcsJson::new("ftp://h", "b").is_err());
        assert!(GcsJson::new("nope", "b").is_err());
    }
}
