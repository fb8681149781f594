//! Tag listing (end-8a/b) and the referrers API (end-12a/b).

use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::catalog::{Cut, json_page, paginate};
use super::error::ApiError;
use super::{AppState, query_param, value};
use crate::registry::oci::{Digest, Name, OCI_INDEX};

/// `GET /v2/<name>/tags/list[?n=&last=]`: from the metadata index after a
/// read of the change log (at most every half second); from storage when
/// the index does not know the repository (storage decides "unknown") or
/// failed.
pub(super) async fn list(state: &AppState, name: &Name, req: &Parts) -> Result<Response, ApiError> {
    let cut = Cut::of(req);
    let mut from_index = None;
    if let Some(index) = state.store.index() {
        if let Err(e) = state.store.refresh_index().await {
            tracing::warn!(error = %e, "metadata index refresh failed");
        }
        from_index = index
            .tags(name.as_str().to_owned(), cut.last.clone(), cut.fetch())
            .await;
    }
    let page = match from_index {
        Some(items) => cut.page(items),
        None => paginate(state.store.tags(name).await?, &cut),
    };
    Ok(json_page(
        &json!({ "name": name.as_str(), "tags": page.items }),
        &format!("/v2/{name}/tags/list"),
        page.next,
    ))
}

/// `GET /v2/<name>/referrers/<digest>[?artifactType=]`: an image index of
/// the manifests whose `subject` is the digest.
pub(super) async fn referrers(
    state: &AppState,
    name: &Name,
    digest: &str,
    req: &Parts,
) -> Result<Response, ApiError> {
    let digest = Digest::parse(digest)?;
    let filter = query_param(req.uri.query(), "artifactType").filter(|t| !t.is_empty());
    let manifests = state
        .store
        .referrers(name, &digest, filter.as_deref())
        .await?;
    let body = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    let mut res = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX))],
        body.to_string(),
    )
        .into_response();
    if filter.is_some() {
        res.headers_mut()
            .insert("oci-filters-applied", value("artifactType"));
    }
    Ok(res)
}
