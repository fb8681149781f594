//! Creating the Azure container at start, as distribution's azure driver
//! does: object_store reads and writes blobs but has no call for a
//! container, so a fresh account (or a fresh Azurite) would fail every
//! request with `ContainerNotFound`.
//!
//! One signed `PUT ?restype=container` (the Blob service's "Create
//! Container"), answered 201 (created) or 409 (it exists). This module must
//! not touch blobs: everything else goes through object_store.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::model;
use crate::registry::storage::DriverError;

/// The Blob service version the request is signed for (Azurite accepts it).
const VERSION: &str = "2021-08-06";

fn failed(message: String) -> DriverError {
    DriverError::Setup {
        driver: "azureblob",
        message,
    }
}

/// The account's blob service URL, as `build.rs` gives it to object_store.
fn account_url(c: &model::Azure, account: &str) -> String {
    match c.azure_endpoint.as_deref().map(str::trim) {
        Some(e) if !e.is_empty() => e.trim_end_matches('/').to_owned(),
        _ if c.azure_use_https => format!("https://{account}.blob.core.windows.net"),
        _ => format!("http://{account}.blob.core.windows.net"),
    }
}

/// The path part of `url` (`/devstoreaccount1` for Azurite's path-style
/// URLs, empty for `https://ACCOUNT.blob.core.windows.net`).
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("", |i| &rest[i..])
}

/// The SharedKey string to sign for a Create Container request: the verb,
/// eleven empty standard headers (a zero Content-Length is written empty),
/// the `x-ms-` headers, then the resource with its query.
fn string_to_sign(date: &str, account: &str, path: &str) -> String {
    format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{VERSION}\n/{account}{path}\nrestype:container"
    )
}

fn signature(key: &[u8], text: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    STANDARD.encode(aws_lc_rs::hmac::sign(&key, text.as_bytes()).as_ref())
}

/// An error with its causes, `: `-separated (reqwest's own message names
/// only the URL).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Creates the configured container unless it exists.
pub(crate) async fn ensure_container(c: &model::Azure) -> Result<(), DriverError> {
    let missing = |key| DriverError::Missing {
        driver: "azureblob",
        key,
    };
    let account = c
        .azure_storage_account_name
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(missing("azure_storage_account_name"))?;
    let key = c
        .azure_storage_account_key
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(missing("azure_storage_account_key"))?;
    let key = STANDARD
        .decode(key)
        .map_err(|_| failed("`azure_storage_account_key` is not base64".to_owned()))?;
    let container = match c.azure_storage_container.trim() {
        "" => "registry",
        c => c,
    };
    let base = account_url(c, account);
    let url = format!("{base}/{container}");
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let auth = format!(
        "SharedKey {account}:{}",
        signature(&key, &string_to_sign(&date, account, url_path(&url)))
    );
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .https_only(base.starts_with("https://"))
        .build()
        .map_err(|e| failed(format!("cannot build an HTTP client: {e}")))?;
    let answer = client
        .put(format!("{url}?restype=container"))
        .header("x-ms-date", &date)
        .header("x-ms-version", VERSION)
        .header("content-length", "0")
        .header("authorization", auth)
        .send()
        .await
        .map_err(|e| failed(format!("cannot reach `{base}`: {}", chain(&e))))?;
    match answer.status().as_u16() {
        201 | 409 => Ok(()),
        status => {
            let body = answer.text().await.unwrap_or_default();
            let code = body
                .split_once("<Code>")
                .and_then(|(_, r)| r.split_once("</Code>"))
                .map_or("", |(c, _)| c);
            Err(failed(format!(
                "cannot create container `{container}` at `{base}`: {status} {code}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_to_sign_follows_the_shared_key_layout() {
        let s = string_to_sign("Mon, 01 Dec 2026 00:00:00 GMT", "acct", "/acct/registry");
        let lines: Vec<&str> = s.split('\n').collect();
        assert_eq!(lines[0], "PUT");
        // eleven standard headers, all empty, then two x-ms- headers
        assert!(lines[1..12].iter().all(|l| l.is_empty()));
        assert_eq!(lines[12], "x-ms-date:Mon, 01 Dec 2026 00:00:00 GMT");
        assert_eq!(lines[13], "x-ms-version:2021-08-06");
        assert_eq!(lines[14], "/acct/acct/registry");
        assert_eq!(lines[15], "restype:container");
    }

    #[test]
    fn url_paths_keep_the_account_of_path_style_endpoints() {
        assert_eq!(
            url_path("http://127.0.0.1:10000/dev/registry"),
            "/dev/registry"
        );
        assert_eq!(
            url_path("https://a.blob.core.windows.net/registry"),
            "/registry"
        );
    }
}
