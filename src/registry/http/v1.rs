//! The v1 endpoints that docker-registry users still rely on: `GET /`,
//! `/_ping`, `/v1/_ping` and `/v1/search`. Bodies are written the way
//! Python's `json.dumps` wrote them (`", "` and `": "` separators, sorted
//! keys, ASCII escapes), so scripts that compared them keep working.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::{ApiError, Code};
use crate::registry::oci::python_json_string;

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// `GET /`: the JSON-encoded `issue` string.
pub(super) async fn root(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, JSON)],
        state.settings.issue_body.clone(),
    )
        .into_response()
}

/// `GET /_ping` and `GET /v1/_ping`.
pub(super) async fn ping(State(state): State<AppState>) -> Response {
    let s = &state.settings;
    let body = if s.debug {
        // docker-registry showed uname, argv and library versions.
        json!({
            "host": [
                std::env::consts::OS,
                hostname(),
                std::env::consts::ARCH,
            ],
            "launch": std::env::args().collect::<Vec<_>>(),
            "versions": { "regconf": env!("CARGO_PKG_VERSION") },
        })
        .to_string()
    } else {
        "{}".to_owned()
    };
    (
        [
            (header::CONTENT_TYPE, JSON),
            (
                header::HeaderName::from_static("x-docker-registry-version"),
                HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
            ),
            (
                header::HeaderName::from_static("x-docker-registry-standalone"),
                s.standalone.clone(),
            ),
        ],
        body,
    )
        .into_response()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// `GET /v1/search?q=<term>`. With several `q`, the first one counts, as
/// in docker-registry (Flask's `request.args.get`); the answer is JSON
/// whatever the query holds.
pub(super) async fn search(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let q = super::query_param(query.as_deref(), "q").unwrap_or_default();
    let Some(index) = &state.index else {
        return ApiError::new(
            Code::NotFound,
            "search is not enabled (`search_backend` is not set)",
        )
        .into_response();
    };
    if let Err(e) = state.store.refresh_index().await {
        // A stale answer is better than none.
        tracing::warn!(error = %e, "search index refresh failed");
    }
    let Some(names) = index.search(&q).await else {
        // Storage cannot answer a search at a bounded cost; say so.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, JSON)],
            "{\"error\": \"the search index is unavailable; retry later\"}",
        )
            .into_response();
    };
    let mut body = format!("{{\"num_results\": {}, \"query\": ", names.len());
    python_json_string(&q, &mut body);
    body.push_str(", \"results\": [");
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            body.push_str(", ");
        }
        body.push_str("{\"description\": \"\", \"name\": ");
        python_json_string(n, &mut body);
        body.push('}');
    }
    body.push_str("]}");
    (StatusCode::OK, [(header::CONTENT_TYPE, JSON)], body).into_response()
}
