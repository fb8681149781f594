//! Blob uploads (end-4a/b, end-5, end-6, end-11, end-13): start (plain,
//! monolithic or cross-repository mount), chunks, status, finish, cancel.
//!
//! Upload locations are relative (`/v2/<name>/blobs/uploads/<uuid>`), which
//! every client resolves against the registry it talks to.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::error::{ApiError, Code};
use super::{AppState, body_stream, header_str, query_param, value};
use crate::registry::oci::{Digest, Name};

fn upload_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id)
        .map_err(|_| ApiError::new(Code::BlobUploadUnknown, format!("upload `{id}` is unknown")))
}

/// The answer naming an upload in progress.
fn in_progress(status: StatusCode, name: &Name, id: Uuid, size: u64) -> Response {
    let mut res = status.into_response();
    let h = res.headers_mut();
    h.insert(
        header::LOCATION,
        value(&format!("/v2/{name}/blobs/uploads/{}", id.hyphenated())),
    );
    h.insert(
        header::RANGE,
        value(&format!("0-{}", size.saturating_sub(1))),
    );
    h.insert("docker-upload-uuid", value(&id.hyphenated().to_string()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    res
}

/// The answer naming a finished blob.
fn created(name: &Name, digest: &Digest) -> Response {
    let mut res = StatusCode::CREATED.into_response();
    let h = res.headers_mut();
    h.insert(
        header::LOCATION,
        value(&format!("/v2/{name}/blobs/{digest}")),
    );
    h.insert("docker-content-digest", value(digest.as_str()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    res
}

/// `POST /v2/<name>/blobs/uploads/`.
pub(super) async fn start(
    state: &AppState,
    name: &Name,
    req: &Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let query = req.uri.query();
    if let (Some(mount), Some(from)) = (query_param(query, "mount"), query_param(query, "from")) {
        let digest = Digest::parse(&mount)?;
        // An unusable `from` is no reason to fail: fall back to an upload.
        if let Ok(from) = Name::parse(&from)
            && state.store.blob_mount(name, &digest, &from).await?
        {
            return Ok(created(name, &digest));
        }
    }
    let digest = query_param(query, "digest")
        .map(|d| Digest::parse(&d))
        .transpose()?;
    let id = state.store.upload_start(name).await?;
    match digest {
        Some(digest) => {
            let body = body_stream(body);
            let finished = state
                .store
                .upload_finish(name, id, &digest, None, body)
                .await;
            if let Err(e) = finished {
                // The client never learned this upload's location, so it
                // cannot resume it: nothing of it may stay (a full disk
                // keeps a chunked upload for a retry, not this one).
                let _ = state.store.upload_cancel(name, id).await;
                return Err(e.into());
            }
            Ok(created(name, &digest))
        }
        None => Ok(in_progress(StatusCode::ACCEPTED, name, id, 0)),
    }
}

/// `GET <location>`: how much has arrived.
pub(super) async fn status(state: &AppState, name: &Name, id: &str) -> Result<Response, ApiError> {
    let id = upload_id(id)?;
    let size = state.store.upload_status(name, id).await?;
    Ok(in_progress(StatusCode::NO_CONTENT, name, id, size))
}

/// The first and last byte of a `Content-Range: <start>-<end>` chunk,
/// checked against `Content-Length` (a chunked body is checked by the store
/// as it arrives).
fn chunk_range(req: &Parts) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(raw) = header_str(&req.headers, &header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::new(
            Code::RangeInvalid,
            format!("invalid `Content-Range` `{raw}`"),
        )
    };
    let spec = raw.trim();
    let spec = spec
        .strip_prefix("bytes=")
        .or_else(|| spec.strip_prefix("bytes "))
        .unwrap_or(spec);
    let spec = spec.split('/').next().unwrap_or(spec);
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let end: u64 = b.trim().parse().map_err(|_| bad())?;
    if end < start {
        return Err(bad());
    }
    if let Some(len) =
        header_str(&req.headers, &header::CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok())
        && len != end - start + 1
    {
        return Err(bad());
    }
    Ok(Some((start, end)))
}

/// `PATCH <location>`: one chunk (or a streamed upload without a range).
pub(super) async fn patch(
    state: &AppState,
    name: &Name,
    id: &str,
    req: &Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let id = upload_id(id)?;
    let range = chunk_range(req)?;
    let body = body_stream(body);
    let size = state.store.upload_append(name, id, range, body).await?;
    Ok(in_progress(StatusCode::ACCEPTED, name, id, size))
}

/// `PUT <location>?digest=<d>`: the optional last chunk, then the blob.
pub(super) async fn put(
    state: &AppState,
    name: &Name,
    id: &str,
    req: &Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let id = upload_id(id)?;
    let digest = query_param(req.uri.query(), "digest")
        .ok_or_else(|| ApiError::new(Code::DigestInvalid, "missing `digest` parameter"))?;
    let digest = Digest::parse(&digest)?;
    // A zero-length last chunk may still carry a range; only check real ones.
    let has_body = header_str(&req.headers, &header::CONTENT_LENGTH).is_none_or(|l| l != "0");
    let range = if has_body { chunk_range(req)? } else { None };
    let body = body_stream(body);
    state
        .store
        .upload_finish(name, id, &digest, range, body)
        .await?;
    Ok(created(name, &digest))
}

/// `DELETE <location>`.
pub(super) async fn cancel(state: &AppState, name: &Name, id: &str) -> Result<Response, ApiError> {
    let id = upload_id(id)?;
    state.store.upload_cancel(name, id).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(header::CONTENT_LENGTH, HeaderValue::from(0))],
    )
        .into_response())
}
