//! What the main listener does for operators rather than clients:
//! `GET /healthz` for load balancers, and the refusal of every write when
//! the registry is read-only (`readonly: true`).
//!
//! `/healthz` needs no credentials (the authentication layer lets it
//! through) and is never written to the access log: load balancers ask
//! every few seconds. It asks storage one cheap question (see
//! [`Store::probe`](crate::registry::store::Store::probe)); it must not
//! walk repositories or touch the search index.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Request, State as Extract};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, Code};
use crate::registry::auth::is_read;

/// The path of the health check.
pub(crate) const HEALTH_PATH: &str = "/healthz";

/// Longest the storage probe may take before the registry is called
/// unhealthy (an object store that stopped answering).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /healthz`: `200 ok` when storage answers the probe, `503`
/// otherwise. A change of state is logged once (a warning when storage
/// stops answering, then a note when it is back), never each request.
pub(crate) async fn health(Extract(state): Extract<AppState>) -> Response {
    let probe = tokio::time::timeout(PROBE_TIMEOUT, state.store.probe()).await;
    let failure = match probe {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!(
            "storage did not answer within {} s",
            PROBE_TIMEOUT.as_secs()
        )),
    };
    let healthy = failure.is_none();
    if state.unhealthy.swap(!healthy, Ordering::Relaxed) == healthy {
        match &failure {
            Some(why) => {
                tracing::warn!(error = %why, "health check failing: storage does not answer")
            }
            None => tracing::info!("health check passing again: storage answers"),
        }
    }
    let (status, body) = if healthy {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "storage unavailable\n")
    };
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// Most bytes of a refused request's body read (and dropped) so that its
/// connection can carry the next request; beyond, the connection closes.
const DRAIN_LIMIT: usize = 64 << 10;

/// With `readonly: true`: every method that is not a read (`GET`, `HEAD`,
/// `OPTIONS`) is answered `405 UNSUPPORTED`, on every path, before any
/// handler or storage is reached.
pub(crate) async fn refuse_writes(req: Request, next: Next) -> Response {
    if is_read(req.method()) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    // An HTTP/1 connection whose request body was left unread cannot carry
    // another request: read a small body to the end, else say `close` so
    // that the client does not send its next request into a closing
    // connection (a large blob chunk is not read just to refuse it).
    let drained = axum::body::to_bytes(body, DRAIN_LIMIT).await.is_ok();
    let mut res = ApiError::new(
        Code::MethodNotAllowed,
        "the registry is read-only: pushes and deletes are refused (`readonly: true`)",
    )
    .into_response();
    let h = res.headers_mut();
    // A 405 names the methods that are allowed.
    h.insert(
        header::ALLOW,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    if !drained && parts.version < axum::http::Version::HTTP_2 {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}
