//! Manifest endpoints (end-3, end-7, end-9): `GET`/`HEAD`, `PUT`, `DELETE`
//! of `/v2/<name>/manifests/<reference>`. Bytes are served exactly as they
//! were pushed, with the media type they were pushed with.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Code};
use super::{AppState, header_str, value};
use crate::registry::oci::{Invalid, Name, Reference};

/// Manifests larger than this are refused when no `limits.max_manifest_bytes`
/// applies (the spec asks registries to accept at least 4 MiB).
const MAX_MANIFEST: usize = 4 << 20;

/// A reference from a read or delete URL: a malformed digest is a 400, a
/// malformed tag simply names nothing.
fn lookup_reference(reference: &str) -> Result<Reference, ApiError> {
    Reference::parse(reference).map_err(|e| match e {
        Invalid::Tag(t) => ApiError::new(
            Code::ManifestUnknown,
            format!("manifest `{t}` is unknown to the repository"),
        ),
        other => other.into(),
    })
}

/// `GET`/`HEAD /v2/<name>/manifests/<reference>`.
pub(super) async fn get(
    state: &AppState,
    name: &Name,
    reference: &str,
    head: bool,
) -> Result<Response, ApiError> {
    let parsed = lookup_reference(reference)?;
    let m = match &state.mirror {
        Some(mirror) => {
            mirror
                .manifest(&state.store, name, &parsed, reference)
                .await?
        }
        None => state.store.manifest_get(name, &parsed, reference).await?,
    };
    let body = if head {
        Body::empty()
    } else {
        Body::from(m.bytes.clone())
    };
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, value(&m.media_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(m.bytes.len()));
    h.insert("docker-content-digest", value(m.digest.as_str()));
    h.insert(header::ETAG, value(&format!("\"{}\"", m.digest)));
    Ok(res)
}

/// `PUT /v2/<name>/manifests/<reference>`.
pub(super) async fn put(
    state: &AppState,
    name: &Name,
    reference: &str,
    req: &Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let parsed = Reference::parse(reference)?;
    let content_type = header_str(&req.headers, &header::CONTENT_TYPE).map(str::to_owned);
    let max = req
        .extensions
        .get::<crate::registry::limits::ManifestLimit>()
        .map_or(MAX_MANIFEST, |l| l.0);
    let declared =
        header_str(&req.headers, &header::CONTENT_LENGTH).and_then(|l| l.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max) {
        return Err(too_large(max));
    }
    let bytes = read_limited(body, max, declared.unwrap_or(0)).await?;
    let put = state
        .store
        .manifest_put(name, &parsed, content_type.as_deref(), bytes)
        .await?;
    let mut res = StatusCode::CREATED.into_response();
    let h = res.headers_mut();
    h.insert(
        header::LOCATION,
        value(&format!("/v2/{name}/manifests/{}", put.digest)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    h.insert("docker-content-digest", value(put.digest.as_str()));
    if let Some(s) = put.subject {
        h.insert("oci-subject", value(s.as_str()));
    }
    Ok(res)
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        Code::TooLarge,
        format!("manifest is larger than {max} bytes"),
    )
}

/// `DELETE /v2/<name>/manifests/<reference>`.
pub(super) async fn delete(
    state: &AppState,
    name: &Name,
    reference: &str,
) -> Result<Response, ApiError> {
    let parsed = lookup_reference(reference)?;
    state.store.manifest_delete(name, &parsed).await?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::CONTENT_LENGTH, HeaderValue::from(0))],
    )
        .into_response())
}

/// Reads a manifest body, refusing more than `max` bytes. `declared` (the
/// `Content-Length`, at most `max`) sizes the buffer once, so a body costs
/// its size rather than the doubling of a growing buffer.
async fn read_limited(body: Body, max: usize, declared: usize) -> Result<bytes::Bytes, ApiError> {
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::with_capacity(declared);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(Code::ManifestInvalid, format!("cannot read manifest: {e}"))
        })?;
        if buf.len() + chunk.len() > max {
            return Err(too_large(max));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
