//! The storage driver of a flavor: one variant per driver, each with its keys.

/// Where the registry keeps blobs, manifests and tags (`storage:` key).
#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    /// `storage: local` (or `file`): files under `storage_path`.
    Local {
        /// Root directory (default `/tmp/registry`).
        storage_path: String,
    },
    /// `storage: s3` and the flavors built on it (`ceph-s3`, `cloudfronts3`).
    S3(S3),
    /// `storage: gcs`.
    Gcs(Gcs),
    /// `storage: azureblob`.
    Azure(Azure),
    /// `storage: swift` (validated and rendered; not served).
    Swift,
    /// `storage: glance` (validated and rendered; not served).
    Glance,
    /// `storage: elliptics` (validated and rendered; not served).
    Elliptics,
    /// Any other driver name.
    Other(String),
}

/// S3 and S3-compatible stores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct S3 {
    /// Bucket name (`boto_bucket`).
    pub bucket: Option<String>,
    /// Key prefix inside the bucket (`storage_path`).
    pub storage_path: String,
    /// Region (`s3_region`).
    pub region: Option<String>,
    /// Access key id (`s3_access_key`).
    pub access_key: Option<String>,
    /// Secret key (`s3_secret_key`).
    pub secret_key: Option<String>,
    /// Endpoint host (`boto_host`); AWS when unset.
    pub host: Option<String>,
    /// Endpoint port (`boto_port`).
    pub port: Option<u16>,
    /// HTTPS only when exactly `true` (`s3_secure`).
    pub secure: bool,
    /// Server-side encryption when exactly `true` (`s3_encrypt`).
    pub encrypt: bool,
}

/// Google Cloud Storage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gcs {
    /// Bucket name (`boto_bucket`).
    pub bucket: Option<String>,
    /// Key prefix (`storage_path`).
    pub storage_path: String,
}

/// Azure Blob Storage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Azure {
    /// Account name (`azure_storage_account_name`).
    pub account_name: Option<String>,
    /// Account key (`azure_storage_account_key`).
    pub account_key: Option<String>,
    /// Container (`azure_storage_container`, default `registry`).
    pub container: String,
    /// HTTPS when truthy (`azure_use_https`).
    pub use_https: bool,
}
