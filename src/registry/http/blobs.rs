//! Blob reads and deletes (end-2, end-10): `GET`/`HEAD` with `Range`
//! support, and `DELETE`. Bodies stream from storage; they are never
//! buffered whole. With `storage_redirect` and a driver that can sign URLs
//! (the object stores), `GET` answers 307 to a time-limited URL of the
//! blob in the store instead; `HEAD` is always answered here. On a mirror,
//! a blob the repository lacks is fetched (see `store::mirror`): its first
//! `GET` streams from the upstream, `HEAD` asks the upstream for its size.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Code};
use super::{AppState, header_str, value};
use crate::registry::oci::{Digest, Name};
use crate::registry::store::mirror::Fetched;

/// `GET`/`HEAD /v2/<name>/blobs/<digest>`.
pub(super) async fn get(
    state: &AppState,
    name: &Name,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, ApiError> {
    let digest = Digest::parse(digest)?;
    let size = match &state.mirror {
        None => state.store.blob_size(name, &digest).await?,
        Some(m) if head => {
            let size = m.blob_size(&state.store, name, &digest).await?;
            return Ok(blob_answer(StatusCode::OK, Body::empty(), size, &digest));
        }
        Some(m) => match m.blob(&state.store, name, &digest).await? {
            Fetched::Stored(size) => size,
            // The first pull: the whole blob, whatever `Range` asked (RFC
            // 9110 lets a server ignore it), as it arrives.
            Fetched::Streaming { len, body } => {
                let mut res = (StatusCode::OK, Body::from_stream(body)).into_response();
                let h = res.headers_mut();
                if let Some(len) = len {
                    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
                }
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                h.insert("docker-content-digest", value(digest.as_str()));
                return Ok(res);
            }
        },
    };
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
    let range = match header_str(headers, &header::RANGE).map(|r| (r, parse_range(r, size))) {
        None | Some((_, Ranged::Whole)) => None,
        Some((_, Ranged::Part(r))) => Some(r),
        Some((r, Ranged::Unsatisfiable)) => {
            return Err(ApiError::new(
                Code::RangeInvalid,
                format!("range `{}` cannot be satisfied", r.escape_default()),
            )
            .with_header(header::CONTENT_RANGE, value(&format!("bytes */{size}"))));
        }
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
    let mut res = blob_answer(status, body, len, &digest);
    if let Some(r) = range {
        res.headers_mut().insert(
            header::CONTENT_RANGE,
            value(&format!("bytes {}-{}/{size}", r.start, r.end - 1)),
        );
    }
    Ok(res)
}

/// A blob answer's headers around `body` of `len` bytes.
fn blob_answer(status: StatusCode, body: Body, len: u64, digest: &Digest) -> Response {
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
    res
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

/// What a `Range` header asks of a blob of `size` bytes (RFC 9110, 14.2).
#[derive(Debug, PartialEq, Eq)]
enum Ranged {
    /// Answer 200 with the whole blob: no range the registry serves (a
    /// unit other than `bytes`, several ranges, a malformed or invalid
    /// range-spec; RFC 9110 lets a server ignore those).
    Whole,
    /// Answer 206 with this half-open interval.
    Part(std::ops::Range<u64>),
    /// Answer 416: a valid single range that lies past the end.
    Unsatisfiable,
}

/// Reads a `Range` header for a blob of `size` bytes. Positions are
/// digits of any length; past `u64::MAX` they saturate, so 20 and 21
/// digits give the same answer.
fn parse_range(spec: &str, size: u64) -> Ranged {
    let spec = spec.trim();
    let Some((unit, set)) = spec.split_once('=') else {
        return Ranged::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return Ranged::Whole;
    }
    let Some((a, b)) = set.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| {
            s.bytes().fold(0u64, |n, c| {
                n.saturating_mul(10).saturating_add(u64::from(c - b'0'))
            })
        })
    };
    match (a, b) {
        ("", suffix) => match number(suffix) {
            None => Ranged::Whole,
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if size == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Part(size.saturating_sub(n)..size),
        },
        (first, last) => {
            let Some(first) = number(first) else {
                return Ranged::Whole;
            };
            let last = if last.is_empty() {
                None
            } else {
                match number(last) {
                    Some(l) if l >= first => Some(l),
                    // A last position before the first is an invalid spec.
                    _ => return Ranged::Whole,
                }
            };
            if first >= size {
                return Ranged::Unsatisfiable;
            }
            let end = last.map_or(size, |l| l.saturating_add(1).min(size));
            Ranged::Part(first..end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        use super::Ranged::{Part, Unsatisfiable, Whole};
        assert_eq!(parse_range("bytes=0-9", 100), Part(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Part(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Part(90..100));
        assert_eq!(parse_range("bytes=-1000", 100), Part(0..100));
        assert_eq!(parse_range("bytes=50-500", 100), Part(50..100));
        assert_eq!(parse_range("Bytes = 1-1", 100), Part(1..2));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-4", 100), Whole);
        assert_eq!(parse_range("bytes=0-1,3-4", 100), Whole);
        assert_eq!(parse_range("items=0-1", 100), Whole);
        assert_eq!(parse_range("bytes=a-b", 100), Whole);
        assert_eq!(parse_range("bytes=1", 100), Whole);
        assert_eq!(parse_range("bytes 0-1", 100), Whole);
        assert_eq!(parse_range("bytes=+1-2", 100), Whole);
        assert_eq!(
            parse_range("bytes=0-18446744073709551615", 100),
            Part(0..100)
        );
        assert_eq!(
            parse_range("bytes=0-184467440737095516150", 100),
            Part(0..100)
        );
        assert_eq!(
            parse_range("bytes=18446744073709551615-", 100),
            Unsatisfiable
        );
        assert_eq!(
            parse_range("bytes=184467440737095516150-", 100),
            Unsatisfiable
        );
    }
}
