//! `GET /v2/_catalog` (Docker API) and the `n`/`last` pagination shared
//! with the tag list: lexical order, `last` exclusive, a `Link` header with
//! `rel="next"` when the list was cut. Pages come from the metadata index
//! (`registry/index/`) by key, never from a full listing, unless the
//! index failed.

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

/// The request's `n` (page size) and `last` (exclusive start).
pub(super) struct Cut {
    pub(super) n: Option<usize>,
    pub(super) last: Option<String>,
}

impl Cut {
    /// Reads `n` and `last` from the request.
    pub(super) fn of(req: &Parts) -> Self {
        let query = req.uri.query();
        Cut {
            n: query_param(query, "n").and_then(|n| n.parse::<usize>().ok()),
            last: query_param(query, "last").map(|l| l.into_owned()),
        }
    }

    /// How many items to fetch: one more than the page, to know whether a
    /// next page exists.
    pub(super) fn fetch(&self) -> Option<usize> {
        self.n.map(|n| n.saturating_add(1))
    }

    /// Cuts a page from items after `last`, sorted, holding at least what
    /// [`Cut::fetch`] asked for when there is that much.
    pub(super) fn page(&self, mut items: Vec<String>) -> Page {
        let mut next = None;
        if let Some(n) = self.n
            && items.len() > n
        {
            items.truncate(n);
            if let Some(l) = items.last() {
                next = Some((n, l.clone()));
            }
        }
        Page { items, next }
    }
}

/// Cuts a page from `sorted` (all items) according to the request's `n`
/// and `last`.
pub(super) fn paginate(sorted: Vec<String>, cut: &Cut) -> Page {
    let mut items = sorted;
    if let Some(last) = cut.last.as_deref() {
        items.retain(|t| t.as_str() > last);
    }
    cut.page(items)
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

/// `GET /v2/_catalog[?n=&last=]`: from the metadata index after a read of
/// the change log (at most every half second), so a page costs its own
/// size; from a walk of storage if the index failed.
pub(super) async fn list(state: &AppState, req: &Parts) -> Result<Response, ApiError> {
    let cut = Cut::of(req);
    let mut from_index = None;
    if let Some(index) = state.store.index() {
        if let Err(e) = state.store.refresh_index().await {
            tracing::warn!(error = %e, "metadata index refresh failed");
        }
        from_index = index.catalog(cut.last.clone(), cut.fetch()).await;
    }
    let page = match from_index {
        Some(items) => cut.page(items),
        None => paginate(state.store.repositories().await?, &cut),
    };
    Ok(json_page(
        &json!({ "repositories": page.items }),
        "/v2/_catalog",
        page.next,
    ))
}
