//! `GET /v2/_catalog` (Docker API) and the `n`/`last` pagination shared
//! with the tag list: lexical order, `last` exclusive, a `Link` header with
//! `rel="next"` when the list was cut.

use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;
use super::{AppState, query_param, value};

/// One page of a sorted list, and the `last` of the next page if any.
pub(super) struct Page {
    pub(super) items: Vec<String>,
    pub(super) next: Option<(usize, String)>,
}

/// Cuts a page from `sorted` according to the request's `n` and `last`.
pub(super) fn paginate(sorted: Vec<String>, req: &Parts) -> Page {
    let query = req.uri.query();
    let n = query_param(query, "n").and_then(|n| n.parse::<usize>().ok());
    let last = query_param(query, "last");
    let mut items = sorted;
    if let Some(last) = last.as_deref() {
        items.retain(|t| t.as_str() > last);
    }
    let mut next = None;
    if let Some(n) = n
        && items.len() > n
    {
        items.truncate(n);
        if let Some(l) = items.last() {
            next = Some((n, l.clone()));
        }
    }
    Page { items, next }
}

/// A JSON answer with an optional `Link` to the next page of `base`.
pub(super) fn json_page(
    body: &serde_json::Value,
    base: &str,
    next: Option<(usize, String)>,
) -> Response {
    let mut res = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response();
    if let Some((n, last)) = next {
        res.headers_mut().insert(
            header::LINK,
            value(&format!("<{base}?n={n}&last={last}>; rel=\"next\"")),
        );
    }
    res
}

/// `GET /v2/_catalog[?n=&last=]`.
pub(super) async fn list(state: &AppState, req: &Parts) -> Result<Response, ApiError> {
    let page = paginate(state.store.repositories().await?, req);
    Ok(json_page(
        &json!({ "repositories": page.items }),
        "/v2/_catalog",
        page.next,
    ))
}
