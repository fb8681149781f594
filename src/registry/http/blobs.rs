//! Blob reads and deletes (end-2, end-10): `GET`/`HEAD` with `Range`
//! support, and `DELETE`. Bodies stream from storage; they are never
//! buffered whole. With `storage_redirect` and a driver that can sign URLs
//! (the object stores), `GET` answers 307 to a time-limited URL of the
//! blob in the store instead; `HEAD` is always answered here.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Code};
use super::{AppState, header_str, value};
use crate::registry::oci::{Digest, Name};

/// `GET`/`HEAD /v2/<name>/blobs/<digest>`.
pub(super) async fn get(
    state: &AppState,
    name: &Name,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, ApiError> {
    let digest = Digest::parse(digest)?;
    let size = state.store.blob_size(name, &digest).await?;
    if state.settings.storage_redirect
        && !head
        && let Some(url) = state
            .store
            .blob_redirect(&digest, crate::registry::storage::objects::REDIRECT_TTL)
            .await?
    {
        // `storage_redirect`: the client fetches the bytes from the store.
        let mut res = StatusCode::TEMPORARY_REDIRECT.into_response();
        let h = res.headers_mut();
        h.insert(header::LOCATION, value(&url));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        h.insert("docker-content-digest", value(digest.as_str()));
        return Ok(res);
    }
    let range = match header_str(headers, &header::RANGE) {
        Some(r) => Some(parse_range(r, size).ok_or_else(|| {
            ApiError::new(
                Code::RangeInvalid,
                format!("range `{r}` cannot be satisfied"),
            )
            .with_header(header::CONTENT_RANGE, value(&format!("bytes */{size}")))
        })?),
        None => None,
    };
    let (status, len) = match &range {
        Some(r) => (StatusCode::PARTIAL_CONTENT, r.end - r.start),
        None => (StatusCode::OK, size),
    };
    let body = if head || len == 0 {
        Body::empty()
    } else {
        Body::from_stream(state.store.blob_read(&digest, range.clone()).await?)
    };
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert("docker-content-digest", value(digest.as_str()));
    h.insert(header::ETAG, value(&format!("\"{digest}\"")));
    if let Some(r) = range {
        h.insert(
            header::CONTENT_RANGE,
            value(&format!("bytes {}-{}/{size}", r.start, r.end - 1)),
        );
    }
    Ok(res)
}

/// `DELETE /v2/<name>/blobs/<digest>`.
pub(super) async fn delete(
    state: &AppState,
    name: &Name,
    digest: &str,
) -> Result<Response, ApiError> {
    let digest = Digest::parse(digest)?;
    state.store.blob_delete(name, &digest).await?;
    Ok((
        StatusCode::ACCEPTED,
        [
            (header::CONTENT_LENGTH, HeaderValue::from(0)),
            (
                header::HeaderName::from_static("docker-content-digest"),
                value(digest.as_str()),
            ),
        ],
    )
        .into_response())
}

/// A single `bytes=` range as a half-open interval within `size`.
fn parse_range(spec: &str, size: u64) -> Option<std::ops::Range<u64>> {
    let spec = spec.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            if n == 0 {
                return None;
            }
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().ok()?, size),
        (a, b) => {
            let last: u64 = b.parse().ok()?;
            (a.parse().ok()?, last.saturating_add(1).min(size))
        }
    };
    (start < end && start < size).then_some(start..end)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Some(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Some(90..100));
        assert_eq!(parse_range("bytes=50-500", 100), Some(50..100));
        assert_eq!(parse_range("bytes=100-", 100), None);
        assert_eq!(parse_range("bytes=5-4", 100), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
