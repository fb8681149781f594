//! The HTTP face of the registry: the axum router, the parsing of `/v2/`
//! paths, and the layers every answer passes through (access log, API
//! version header, CORS, `debug` header, and with `readonly` the refusal of
//! writes; see `operate.rs`, which also holds `/healthz`).
//!
//! Repository names contain `/`, and axum only allows a wildcard at the end
//! of a route, so everything under `/v2/` goes to one handler that splits
//! the raw (still percent-encoded) path from the right and validates each
//! part before a handler sees it. Handlers call the store and shape answers;
//! they must not build storage paths or touch the driver.
//!
//! On a mirror (`mirroring.source`), manifest and blob reads go through
//! `store::mirror`, and every other method on a repository is refused with
//! `UNSUPPORTED` unless `mirroring.allow_push` is on. Tag lists and the
//! catalog show what is stored locally.

mod blobs;
mod catalog;
pub(crate) mod error;
mod manifests;
mod operate;
mod tags;
mod uploads;
mod v1;

use crate::registry::LogSafe;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State as Extract};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use bytes::Bytes;
use futures::TryStreamExt;

use self::error::{ApiError, Code};
pub(crate) use self::operate::HEALTH_PATH;
use super::oci::Name;
use super::store::{self, Store};
use crate::model;

/// `Docker-Distribution-API-Version` on every answer.
const API_VERSION: HeaderValue = HeaderValue::from_static("registry/2.0");

/// What the handlers share.
pub(crate) struct State {
    /// The OCI store.
    pub(crate) store: Arc<Store>,
    /// The pull-through mirror, when `mirroring.source` is set.
    pub(crate) mirror: Option<store::mirror::Mirror>,
    /// Settings from the configuration, prepared once.
    pub(crate) settings: Settings,
    /// The metadata index, when `search_backend` is set (search is on).
    pub(crate) index: Option<Arc<super::index::Index>>,
    /// Whether the last health check failed (its changes are logged).
    pub(crate) unhealthy: std::sync::atomic::AtomicBool,
}

/// The configuration as the HTTP layer needs it.
pub(crate) struct Settings {
    /// Flavor name, for `X-Docker-Registry-Config`.
    pub(crate) flavor: HeaderValue,
    /// `debug`.
    pub(crate) debug: bool,
    /// `X-Docker-Registry-Standalone` value.
    pub(crate) standalone: HeaderValue,
    /// The body of `GET /`.
    pub(crate) issue_body: Bytes,
    /// CORS settings; inactive when `origins` is empty.
    pub(crate) cors: model::Cors,
    /// `storage_redirect`: blob `GET`s answer 307 to a signed URL of the
    /// store when the driver can issue one.
    pub(crate) storage_redirect: bool,
    /// `readonly`: every write is refused.
    pub(crate) readonly: bool,
}

impl Settings {
    /// Prepares the settings of `config`.
    pub(crate) fn new(config: &model::Config) -> Self {
        let mut issue = String::new();
        super::oci::python_json_string(
            config.issue.as_deref().unwrap_or("docker-registry server"),
            &mut issue,
        );
        Self {
            flavor: HeaderValue::from_str(&config.flavor)
                .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
            debug: config.debug,
            standalone: HeaderValue::from_static(if config.standalone { "True" } else { "False" }),
            issue_body: Bytes::from(issue),
            cors: config.cors.clone(),
            storage_redirect: config.storage_redirect,
            readonly: config.readonly,
        }
    }
}

/// Shared handler state.
pub(crate) type AppState = Arc<State>;

/// The registry's router.
pub(crate) fn router(state: AppState) -> Router {
    let mut app = Router::new()
        .route(HEALTH_PATH, get(operate::health))
        .route("/", get(v1::root))
        .route("/_ping", get(v1::ping))
        .route("/v1/_ping", get(v1::ping))
        .route("/v1/search", get(v1::search))
        .route("/v2", get(base))
        .route("/v2/", get(base))
        .route("/v2/{*rest}", any(dispatch))
        .fallback(|| async { ApiError::new(Code::NotFound, "unknown endpoint") });
    // Inside the access log, so that refused writes are logged.
    if state.settings.readonly {
        app = app.layer(middleware::from_fn(operate::refuse_writes));
    }
    app.layer(middleware::from_fn_with_state(state.clone(), common))
        .with_state(state)
}

/// The route pattern of `path`, for the metrics: the endpoint as the OCI
/// specification names it (`/v2/{name}/manifests/{reference}`), never the
/// path itself, so that the number of label values stays fixed.
pub(crate) fn route_pattern(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/_ping" => "/_ping",
        "/v1/_ping" => "/v1/_ping",
        "/v1/search" => "/v1/search",
        "/v2" | "/v2/" => "/v2/",
        HEALTH_PATH => HEALTH_PATH,
        _ => match path.strip_prefix("/v2/").map(parse_route) {
            Some(Ok(route)) => route.pattern(),
            _ => "unmatched",
        },
    }
}

/// end-1: the API version check.
async fn base() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        "{}",
    )
        .into_response()
}

/// A parsed `/v2/...` path.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Catalog,
    Tags(Name),
    Manifest(Name, &'a str),
    Blob(Name, &'a str),
    UploadStart(Name),
    Upload(Name, &'a str),
    Referrers(Name, &'a str),
}

impl Route<'_> {
    /// The endpoint's pattern, as the OCI specification writes it.
    fn pattern(&self) -> &'static str {
        match self {
            Route::Catalog => "/v2/_catalog",
            Route::Tags(_) => "/v2/{name}/tags/list",
            Route::Manifest(..) => "/v2/{name}/manifests/{reference}",
            Route::Blob(..) => "/v2/{name}/blobs/{digest}",
            Route::UploadStart(_) => "/v2/{name}/blobs/uploads/",
            Route::Upload(..) => "/v2/{name}/blobs/uploads/{reference}",
            Route::Referrers(..) => "/v2/{name}/referrers/{digest}",
        }
    }
}

/// Splits the part of the path after `/v2/` from the right; the repository
/// name is whatever precedes the endpoint's fixed segments.
fn parse_route(rest: &str) -> Result<Route<'_>, ApiError> {
    let unknown = || ApiError::new(Code::NotFound, "unknown endpoint");
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let name = |s: &str| Name::parse(s).map_err(ApiError::from);
    if let Some(n) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Ok(Route::UploadStart(name(n)?));
    }
    if let Some(n) = rest.strip_suffix("/tags/list") {
        return Ok(Route::Tags(name(n)?));
    }
    let (head, last) = rest.rsplit_once('/').ok_or_else(unknown)?;
    let (n, kind) = head.rsplit_once('/').ok_or_else(unknown)?;
    match kind {
        "manifests" => Ok(Route::Manifest(name(n)?, last)),
        "blobs" => Ok(Route::Blob(name(n)?, last)),
        "referrers" => Ok(Route::Referrers(name(n)?, last)),
        "uploads" => match n.strip_suffix("/blobs") {
            Some(n) => Ok(Route::Upload(name(n)?, last)),
            None => Err(unknown()),
        },
        _ => Err(unknown()),
    }
}

/// Every `/v2/<name>/...` request.
async fn dispatch(Extract(state): Extract<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let req = &parts;
    let path = req.uri.path();
    let rest = path.strip_prefix("/v2/").unwrap_or(path);
    let route = match parse_route(rest) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let method = req.method.clone();
    let not_allowed = || {
        ApiError::new(
            Code::MethodNotAllowed,
            format!("`{method}` is not allowed here"),
        )
    };
    if let Some(m) = &state.mirror
        && !m.allow_push()
        && !matches!(method, Method::GET | Method::HEAD)
        && route != Route::Catalog
    {
        return ApiError::new(
            Code::MethodNotAllowed,
            format!(
                "this registry is a pull-through mirror of `{}`: pushes and deletes are refused (set `mirroring.allow_push: true` to accept them)",
                m.source()
            ),
        )
        .into_response();
    }
    let r = match (route, &method) {
        (Route::Catalog, &Method::GET) => catalog::list(&state, req).await,
        (Route::Tags(n), &Method::GET) => tags::list(&state, &n, req).await,
        (Route::Referrers(n, d), &Method::GET) => tags::referrers(&state, &n, d, req).await,
        (Route::Manifest(n, r), &Method::GET) => manifests::get(&state, &n, r, false).await,
        (Route::Manifest(n, r), &Method::HEAD) => manifests::get(&state, &n, r, true).await,
        (Route::Manifest(n, r), &Method::PUT) => manifests::put(&state, &n, r, req, body).await,
        (Route::Manifest(n, r), &Method::DELETE) => manifests::delete(&state, &n, r).await,
        (Route::Blob(n, d), &Method::GET) => blobs::get(&state, &n, d, &req.headers, false).await,
        (Route::Blob(n, d), &Method::HEAD) => blobs::get(&state, &n, d, &req.headers, true).await,
        (Route::Blob(n, d), &Method::DELETE) => blobs::delete(&state, &n, d).await,
        (Route::UploadStart(n), &Method::POST) => uploads::start(&state, &n, req, body).await,
        (Route::Upload(n, id), &Method::GET) => uploads::status(&state, &n, id).await,
        (Route::Upload(n, id), &Method::PATCH) => uploads::patch(&state, &n, id, req, body).await,
        (Route::Upload(n, id), &Method::PUT) => uploads::put(&state, &n, id, req, body).await,
        (Route::Upload(n, id), &Method::DELETE) => uploads::cancel(&state, &n, id).await,
        _ => Err(not_allowed()),
    };
    r.unwrap_or_else(IntoResponse::into_response)
}

/// The value of query parameter `key`, percent-decoded.
fn query_param<'a>(query: Option<&'a str>, key: &str) -> Option<Cow<'a, str>> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let hex = |c: u8| {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// A request body as the store reads it.
fn body_stream(body: Body) -> store::Body {
    Box::pin(body.into_data_stream().map_err(std::io::Error::other))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A header value from text the registry produced itself.
fn value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Access log, API version header, CORS and the `debug` header.
async fn common(Extract(state): Extract<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    // Copy what the access log needs only when it will be written: this
    // runs on every request, including the hot manifest and blob reads.
    // Health checks come every few seconds from load balancers: not logged.
    let log = tracing::enabled!(tracing::Level::INFO) && req.uri().path() != HEALTH_PATH;
    let method = req.method().clone();
    let path = if log {
        req.uri().path().to_owned()
    } else {
        String::new()
    };
    let origin = req.headers().get(header::ORIGIN).cloned();
    let cors = &state.settings.cors;
    let preflight = method == Method::OPTIONS
        && origin.is_some()
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut res = if preflight && !cors.origins.is_empty() {
        preflight_response(cors, req.headers())
    } else {
        next.run(req).await
    };
    let h = res.headers_mut();
    h.insert("docker-distribution-api-version", API_VERSION);
    if state.settings.debug {
        h.insert("x-docker-registry-config", state.settings.flavor.clone());
    }
    if let Some(o) = origin {
        cors_headers(cors, &o, h);
    }
    if !log {
        return res;
    }
    // Content-Length is added by hyper later; the body knows its size now.
    let bytes = res
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| axum::body::HttpBody::size_hint(res.body()).exact())
        .unwrap_or(0);
    tracing::info!(
        method = %LogSafe(method.as_str()),
        path = %LogSafe(&path),
        status = res.status().as_u16(),
        bytes,
        duration_ms = start.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    res
}

fn origin_allowed(cors: &model::Cors, origin: &HeaderValue) -> bool {
    cors.origins
        .iter()
        .any(|o| o == "*" || origin.to_str().is_ok_and(|v| v == o))
}

fn cors_headers(cors: &model::Cors, origin: &HeaderValue, h: &mut HeaderMap) {
    if !origin_allowed(cors, origin) {
        return;
    }
    let wildcard = cors.origins.iter().any(|o| o == "*");
    if wildcard && !cors.supports_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if cors.supports_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if !cors.expose_headers.is_empty() {
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            value(&cors.expose_headers.join(", ")),
        );
    }
}

fn preflight_response(cors: &model::Cors, req: &HeaderMap) -> Response {
    let mut res = StatusCode::OK.into_response();
    let h = res.headers_mut();
    let methods = if cors.methods.is_empty() {
        "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS".to_owned()
    } else {
        cors.methods.join(", ")
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, value(&methods));
    if !cors.headers.is_empty() {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            value(&cors.headers.join(", ")),
        );
    } else if let Some(asked) = req.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    if let Some(age) = cors.max_age {
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let n = |s| Name::parse(s).unwrap();
        assert_eq!(parse_route("_catalog").unwrap(), Route::Catalog);
        assert_eq!(
            parse_route("a/b/manifests/latest").unwrap(),
            Route::Manifest(n("a/b"), "latest")
        );
        assert_eq!(
            parse_route("a/blobs/b/manifests/x").unwrap(),
            Route::Manifest(n("a/blobs/b"), "x")
        );
        assert_eq!(
            parse_route("a/blobs/uploads/").unwrap(),
            Route::UploadStart(n("a"))
        );
        assert_eq!(
            parse_route("a/blobs/uploads/123").unwrap(),
            Route::Upload(n("a"), "123")
        );
        assert_eq!(
            parse_route("a/blobs/uploads/blobs/sha256:x").unwrap(),
            Route::Blob(n("a/blobs/uploads"), "sha256:x")
        );
        assert_eq!(parse_route("a/tags/list").unwrap(), Route::Tags(n("a")));
        assert_eq!(
            parse_route("a/referrers/d").unwrap(),
            Route::Referrers(n("a"), "d")
        );
        for bad in [
            "../a/manifests/x",
            "%2e%2e/blobs/x",
            "A/tags/list",
            "a//b/tags/list",
        ] {
            assert_eq!(
                parse_route(bad).unwrap_err().code(),
                Code::NameInvalid,
                "{bad}"
            );
        }
        assert_eq!(parse_route("a").unwrap_err().code(), Code::NotFound);
        assert_eq!(
            route_pattern("/v2/a/b/manifests/latest"),
            "/v2/{name}/manifests/{reference}"
        );
        assert_eq!(route_pattern("/v2/"), "/v2/");
        assert_eq!(route_pattern("/v2/A/tags/list"), "unmatched");
        assert_eq!(route_pattern("/etc/passwd"), "unmatched");
        assert_eq!(parse_route("a/b/c").unwrap_err().code(), Code::NotFound);
    }

    #[test]
    fn queries() {
        let q = Some("n=2&last=a%3Ab&digest=sha256%3Aab&x");
        assert_eq!(query_param(q, "n").as_deref(), Some("2"));
        assert_eq!(query_param(q, "last").as_deref(), Some("a:b"));
        assert_eq!(query_param(q, "digest").as_deref(), Some("sha256:ab"));
        assert_eq!(query_param(q, "x").as_deref(), Some(""));
        assert_eq!(query_param(q, "y"), None);
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
