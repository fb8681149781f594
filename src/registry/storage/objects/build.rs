//! Building an [`ObjectStorage`] from the configuration: `storage: s3`,
//! `gcs` and `azureblob`. This module only turns settings into a client;
//! it does no I/O on objects (that is `mod.rs`, `staged.rs`, `writer.rs`).
//!
//! Credentials come only from the configuration: builders are created with
//! `new()`, never `from_env()`, so `AWS_*`/`AZURE_*`/`GOOGLE_*` variables of
//! the process are not picked up behind the user's back.

use std::sync::Arc;
use std::time::Duration;

use ::object_store::ClientOptions;

use super::ObjectStorage;
use super::gcs_json::GcsJson;
use crate::model;
use crate::registry::storage::{DriverError, Storage};

/// Client options for every backend: a short connect timeout, and no
/// whole-request timeout (a blob streamed to a slow client may take long).
fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout_disabled()
}

fn non_empty(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

impl ObjectStorage {
    /// `storage: s3` (and `cloudfronts3`, Ceph, moto, MinIO...).
    pub(crate) fn s3(c: &model::S3) -> Result<Self, DriverError> {
        let s3 = Arc::new(
            s3_builder(c)?
                .build()
                .map_err(|source| DriverError::Client {
                    driver: "s3",
                    source: Box::new(source),
                })?,
        );
        Ok(Self::new(s3.clone(), Some(s3), &c.storage_path))
    }

    /// `storage: gcs`. With HMAC keys (`gs_access_key`/`gs_secret_key`)
    /// it talks to GCS's S3-compatible XML API, as boto did; with
    /// `oauth2: true` it uses the JSON API with Google's application
    /// default credentials (a service account file or the metadata server),
    /// the equivalent of the original OAuth plugin. With neither but a
    /// `gs_endpoint`, it speaks the JSON API to that endpoint without
    /// credentials (`gcs_json`: fake-gcs-server, or a private endpoint).
    /// With none of these it refuses: a keyless client would go looking for
    /// the metadata server, a request off this machine nobody asked for.
    /// `gs_endpoint` replaces `storage.googleapis.com`.
    pub(crate) fn gcs(c: &model::Gcs) -> Result<Self, DriverError> {
        let bucket = non_empty(c.boto_bucket.as_ref()).ok_or(DriverError::Missing {
            driver: "gcs",
            key: "boto_bucket",
        })?;
        let client = |source| DriverError::Client {
            driver: "gcs",
            source: Box::new(source),
        };
        let endpoint = non_empty(c.gs_endpoint.as_ref());
        let plain_http = endpoint.is_some_and(|e| e.starts_with("http://"));
        if !c.oauth2 {
            let missing = |key| DriverError::Missing { driver: "gcs", key };
            return match (
                non_empty(c.gs_access_key.as_ref()),
                non_empty(c.gs_secret_key.as_ref()),
            ) {
                (Some(key), Some(secret)) => {
                    let scheme = if c.gs_secure { "https" } else { "http" };
                    let endpoint = endpoint.map_or_else(
                        || format!("{scheme}://storage.googleapis.com"),
                        str::to_owned,
                    );
                    let allow_http = endpoint.starts_with("http://");
                    let s3 = ::object_store::aws::AmazonS3Builder::new()
                        .with_bucket_name(bucket)
                        .with_region("auto")
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false)
                        .with_access_key_id(key)
                        .with_secret_access_key(secret)
                        .with_client_options(client_options(allow_http))
                        .build()
                        .map_err(client)?;
                    let s3 = Arc::new(s3);
                    Ok(Self::new(s3.clone(), Some(s3), &c.storage_path))
                }
                (Some(_), None) => Err(missing("gs_secret_key")),
                (None, Some(_)) => Err(missing("gs_access_key")),
                // No credentials at all: only to an endpoint the operator
                // named (an emulator, a private endpoint), never to
                // Google's (or its metadata server).
                (None, None) => {
                    let (endpoint, bucket) = gcs_json_target(c).ok_or(DriverError::NoCredentials {
                        driver: "gcs",
                        keys: "`gs_access_key` and `gs_secret_key` (or `gs_endpoint` alone, for a \
                               server that takes no credentials)",
                        opt_in: "oauth2: true",
                    })?;
                    let gcs = GcsJson::new(endpoint, bucket).map_err(client)?;
                    Ok(Self::new(Arc::new(gcs), None, &c.storage_path))
                }
            };
        }
        let mut b = ::object_store::gcp::GoogleCloudStorageBuilder::new()
            .with_bucket_name(bucket)
            .with_client_options(client_options(plain_http));
        if let Some(endpoint) = endpoint {
            b = b.with_base_url(endpoint);
        }
        let gcs = Arc::new(b.build().map_err(client)?);
        Ok(Self::new(gcs.clone(), Some(gcs), &c.storage_path))
    }

    /// `storage: azureblob`: the container of an account, with its key.
    pub(crate) fn azure(c: &model::Azure) -> Result<Self, DriverError> {
        let account =
            non_empty(c.azure_storage_account_name.as_ref()).ok_or(DriverError::Missing {
                driver: "azureblob",
                key: "azure_storage_account_name",
            })?;
        let key = non_empty(c.azure_storage_account_key.as_ref()).ok_or(DriverError::Missing {
            driver: "azureblob",
            key: "azure_storage_account_key",
        })?;
        let container = match c.azure_storage_container.trim() {
            "" => "registry",
            c => c,
        };
        let mut b = ::object_store::azure::MicrosoftAzureBuilder::new()
            .with_account(account)
            .with_access_key(key)
            .with_container_name(container);
        if let Some(endpoint) = non_empty(c.azure_endpoint.as_ref()) {
            // The endpoint names the account's blob service; its scheme, not
            // `azure_use_https`, decides plain HTTP (Azurite speaks HTTP).
            let http = endpoint.starts_with("http://");
            b = b
                .with_endpoint(endpoint.to_owned())
                .with_client_options(client_options(http))
                .with_allow_http(http);
        } else if !c.azure_use_https {
            b = b
                .with_endpoint(format!("http://{account}.blob.core.windows.net"))
                .with_client_options(client_options(true))
                .with_allow_http(true);
        } else {
            b = b.with_client_options(client_options(false));
        }
        let az = Arc::new(b.build().map_err(|source| DriverError::Client {
            driver: "azureblob",
            source: Box::new(source),
        })?);
        Ok(Self::new(az.clone(), Some(az), ""))
    }
}

/// The S3 client's settings for `c`, not yet built (the tests read its
/// endpoint and scheme without any request). HTTPS unless `s3_secure` is
/// false (the model's default is decided by the configuration: true unless
/// the endpoint is on loopback).
pub(super) fn s3_builder(
    c: &model::S3,
) -> Result<::object_store::aws::AmazonS3Builder, DriverError> {
    use ::object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};

    let bucket = non_empty(c.boto_bucket.as_ref()).ok_or(DriverError::Missing {
        driver: "s3",
        key: "boto_bucket",
    })?;
    let region = non_empty(c.s3_region.as_ref()).unwrap_or("us-east-1");
    let scheme = if c.s3_secure { "https" } else { "http" };
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region)
        .with_client_options(client_options(!c.s3_secure));
    b = match non_empty(c.boto_host.as_ref()) {
        // Another S3-compatible store: path-style (as boto's
        // OrdinaryCallingFormat), since virtual hosts need DNS.
        Some(host) => {
            let endpoint = match c.boto_port {
                Some(port) => format!("{scheme}://{host}:{port}"),
                None => format!("{scheme}://{host}"),
            };
            b.with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false)
                .with_allow_http(!c.s3_secure)
        }
        None if !c.s3_secure => b
            .with_endpoint(format!("http://{bucket}.s3.{region}.amazonaws.com"))
            .with_virtual_hosted_style_request(true)
            .with_allow_http(true),
        None => b.with_virtual_hosted_style_request(true),
    };
    match (
        non_empty(c.s3_access_key.as_ref()),
        non_empty(c.s3_secret_key.as_ref()),
    ) {
        (Some(k), Some(s)) => {
            b = b.with_access_key_id(k).with_secret_access_key(s);
        }
        (Some(_), None) => {
            return Err(DriverError::Missing {
                driver: "s3",
                key: "s3_secret_key",
            });
        }
        (None, Some(_)) => {
            return Err(DriverError::Missing {
                driver: "s3",
                key: "s3_access_key",
            });
        }
        // No keys: the instance's role (metadata service), as boto did.
        (None, None) => {}
    }
    if c.s3_encrypt {
        // SSE-S3; the key type is not exported, so it is named by text.
        let key: AmazonS3ConfigKey =
            "aws_server_side_encryption"
                .parse()
                .map_err(|e| DriverError::Client {
                    driver: "s3",
                    source: Box::new(e),
                })?;
        b = b.with_config(key, "AES256");
    }
    if let Some(proxy) = non_empty(c.boto_proxy.as_ref()) {
        let auth = match (
            non_empty(c.boto_proxy_user.as_ref()),
            non_empty(c.boto_proxy_pass.as_ref()),
        ) {
            (Some(u), Some(p)) => format!("{u}:{p}@"),
            (Some(u), None) => format!("{u}@"),
            _ => String::new(),
        };
        let port = c
            .boto_proxy_port
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        b = b.with_proxy_url(format!("http://{auth}{proxy}{port}"));
    }
    Ok(b)
}

/// The endpoint and bucket of a `gcs` flavor that speaks the JSON API
/// without credentials (`gs_endpoint` and a bucket, no HMAC key, no
/// `oauth2`); `None` for every other flavor.
fn gcs_json_target(c: &model::Gcs) -> Option<(&str, &str)> {
    let keyless = non_empty(c.gs_access_key.as_ref()).is_none()
        && non_empty(c.gs_secret_key.as_ref()).is_none();
    if c.oauth2 || !keyless {
        return None;
    }
    Some((
        non_empty(c.gs_endpoint.as_ref())?,
        non_empty(c.boto_bucket.as_ref())?,
    ))
}

/// Checks, before serving, that the bucket of a keyless `gcs` flavor
/// exists at its endpoint (fake-gcs-server starts with none; every request
/// would otherwise fail with a bare "not found"). Other flavors: nothing.
pub(in crate::registry::storage) async fn check_gcs_bucket(
    c: &model::Gcs,
) -> Result<(), DriverError> {
    let Some((endpoint, bucket)) = gcs_json_target(c) else {
        return Ok(());
    };
    let setup = |message| DriverError::Setup {
        driver: "gcs",
        message,
    };
    let client = GcsJson::new(endpoint, bucket).map_err(|e| setup(e.to_string()))?;
    client.check_bucket().await.map_err(|e| match e {
        ::object_store::Error::NotFound { .. } => setup(format!(
            "bucket `{bucket}` does not exist at `{endpoint}` (create it first)"
        )),
        e => setup(format!(
            "cannot reach bucket `{bucket}` at `{endpoint}`: {e}"
        )),
    })
}

/// Builds the object-store driver for `storage`, or `None` for drivers
/// that are not object stores.
pub(in crate::registry::storage) fn from_config(
    storage: &model::Storage,
) -> Option<Result<Arc<dyn Storage>, DriverError>> {
    let built = match storage {
        model::Storage::S3(c) => ObjectStorage::s3(c),
        model::Storage::Gcs(c) => ObjectStorage::gcs(c),
        model::Storage::Azure(c) => ObjectStorage::azure(c),
        _ => return None,
    };
    Some(built.map(|s| Arc::new(s) as Arc<dyn Storage>))
}
