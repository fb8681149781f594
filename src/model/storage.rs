//! The storage driver of a flavor: one variant per driver, each with its keys.
//!
//! In a flavor the driver is named by `storage:` and its settings are keys
//! beside it (`storage: s3` with `boto_bucket: ...`). [`Storage`] is
//! serialised that way (flattened into the flavor), and its schema says which
//! keys go with which driver.

use std::borrow::Cow;
use std::ops::RangeInclusive;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::ser::{Error as _, SerializeMap};
use serde::{Serialize, Serializer};

/// Where the registry keeps images (`storage:` key, any case). Default:
/// `local`.
#[derive(Debug, Clone, PartialEq)]
pub enum Storage {
    /// `storage: local` (or `file`): files under `storage_path`.
    Local {
        /// Root directory. Default: `/tmp/registry`. regconf expands `~` and
        /// `$VAR` in it when serving.
        storage_path: String,
    },
    /// `storage: s3` (also `cloudfronts3`), and S3-compatible stores such as
    /// Ceph's Object Gateway.
    S3(S3),
    /// `storage: gcs`: Google Cloud Storage.
    Gcs(Gcs),
    /// `storage: azureblob`: Azure Blob Storage.
    Azure(Azure),
    /// `storage: swift`: OpenStack Swift (validated and rendered; not served).
    Swift(Swift),
    /// `storage: glance`: OpenStack Glance (validated and rendered; not
    /// served).
    Glance(Glance),
    /// `storage: elliptics` (validated and rendered; not served).
    Elliptics(Elliptics),
    /// `storage: oss`: Aliyun OSS (validated and rendered; not served).
    Oss(Oss),
    /// Any other driver name (docker-registry imported it as a module).
    Other(String),
}

impl Default for Storage {
    fn default() -> Storage {
        Storage::Local {
            storage_path: "/tmp/registry".to_owned(),
        }
    }
}

/// The drivers `regconf serve` runs, as written in `storage:`; the registry
/// builds exactly these and refuses the others at start.
pub const SERVED_DRIVERS: &[&str] = &["local", "s3", "gcs", "azureblob"];

impl Storage {
    /// The driver's name as written in `storage:` (`local`, `s3`, ...).
    pub fn driver(&self) -> &str {
        match self {
            Storage::Local { .. } => "local",
            Storage::S3(_) => "s3",
            Storage::Gcs(_) => "gcs",
            Storage::Azure(_) => "azureblob",
            Storage::Swift(_) => "swift",
            Storage::Glance(_) => "glance",
            Storage::Elliptics(_) => "elliptics",
            Storage::Oss(_) => "oss",
            Storage::Other(name) => name,
        }
    }
}

/// The keys of `storage: local` (used for the schema; the variant holds
/// them directly).
#[derive(JsonSchema)]
#[allow(dead_code, reason = "only its schema is used")]
struct Local {
    /// Root directory of the stored images. Default: `/tmp/registry`.
    /// regconf expands `~` and `$VAR` in it when serving.
    storage_path: Option<String>,
}

/// S3 and S3-compatible stores (`storage: s3`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(default)]
pub struct S3 {
    /// Bucket name (required).
    pub boto_bucket: Option<String>,
    /// Key prefix inside the bucket. Default: `/registry`.
    pub storage_path: String,
    /// AWS region (`us-east-1`, ...). Empty: boto's default connection.
    pub s3_region: Option<String>,
    /// Access key id.
    pub s3_access_key: Option<String>,
    /// Secret access key.
    pub s3_secret_key: Option<String>,
    /// HTTPS to the store. Only the boolean `true` counts. When absent:
    /// `true`, unless `boto_host` is on loopback (`127.0.0.1`, `::1`,
    /// `localhost`), then `false` (docker-registry made an absent key plain
    /// HTTP). The sample's `ceph-s3` flavor writes `false`.
    pub s3_secure: bool,
    /// Server-side encryption of stored objects. Only the boolean `true`
    /// counts. Default: `true` (`false` for Ceph).
    pub s3_encrypt: bool,
    /// Signature version 4. Only the boolean `true` counts.
    pub s3_use_sigv4: bool,
    /// Kept for older files; docker-registry 0.9.1 never read it (the bucket
    /// is `boto_bucket`).
    pub s3_bucket: Option<String>,
    /// Endpoint host of another S3-compatible store; empty means AWS.
    pub boto_host: Option<String>,
    /// Endpoint port.
    pub boto_port: Option<i64>,
    /// boto's debug level (`0` quiet).
    pub boto_debug: Option<i64>,
    /// HTTP proxy host.
    pub boto_proxy: Option<String>,
    /// HTTP proxy port.
    pub boto_proxy_port: Option<i64>,
    /// HTTP proxy user.
    pub boto_proxy_user: Option<String>,
    /// HTTP proxy password.
    pub boto_proxy_pass: Option<String>,
    /// boto calling format class (e.g.
    /// `boto.s3.connection.OrdinaryCallingFormat` for path-style URLs).
    pub boto_calling_format: Option<String>,
    /// CloudFront signed URLs for layer downloads (`cloudfronts3`).
    pub cloudfront: Option<Cloudfront>,
}

/// CloudFront settings (`cloudfront:` section).
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(default)]
pub struct Cloudfront {
    /// Base URL of the distribution.
    pub base: Option<String>,
    /// Key pair id.
    pub keyid: Option<String>,
    /// Private key: a file path or the PEM text.
    pub keysecret: Option<String>,
}

/// Google Cloud Storage (`storage: gcs`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(default)]
pub struct Gcs {
    /// Bucket name (required).
    pub boto_bucket: Option<String>,
    /// Key prefix inside the bucket. Default: `/registry`.
    pub storage_path: String,
    /// HTTPS to the store. Only the boolean `true` counts. When absent:
    /// `true` (docker-registry made an absent key plain HTTP).
    pub gs_secure: bool,
    /// HMAC access key (not needed with `oauth2`).
    pub gs_access_key: Option<String>,
    /// HMAC secret (not needed with `oauth2`).
    pub gs_secret_key: Option<String>,
    /// OAuth 2.0 instead of HMAC keys; the client id and secret come from
    /// `OAUTH2_CLIENT_ID` and `OAUTH2_CLIENT_SECRET`. Only the boolean `true`
    /// counts.
    pub oauth2: bool,
    /// Base URL of the storage service instead of
    /// `https://storage.googleapis.com` (a regconf extension), for a
    /// private endpoint or an emulator: `http(s)://HOST[:PORT]`. With
    /// neither HMAC keys nor `oauth2`, regconf speaks GCS's JSON API to it
    /// without credentials (an emulator such as fake-gcs-server).
    pub gs_endpoint: Option<String>,
}

/// Azure Blob Storage (`storage: azureblob`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(default)]
pub struct Azure {
    /// Storage account name (required).
    pub azure_storage_account_name: Option<String>,
    /// Storage account key (required).
    pub azure_storage_account_key: Option<String>,
    /// Container. Default: `registry`.
    pub azure_storage_container: String,
    /// HTTPS to the store. Any non-empty value counts as on. Default: `true`.
    pub azure_use_https: bool,
    /// The account's blob service URL instead of
    /// `https://ACCOUNT.blob.core.windows.net` (a regconf extension), for a
    /// sovereign cloud (`https://ACCOUNT.blob.core.chinacloudapi.cn`) or the
    /// Azurite emulator (`http://127.0.0.1:10000/devstoreaccount1`). Its
    /// scheme decides HTTP or HTTPS.
    pub azure_endpoint: Option<String>,
}

/// OpenStack Swift with Keystone authentication (`storage: swift`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(default)]
pub struct Swift {
    /// Key prefix in the container. Default: `/registry`.
    pub storage_path: String,
    /// Keystone URL (required).
    pub swift_authurl: Option<String>,
    /// Container. Default: `dev_container`.
    pub swift_container: String,
    /// User name.
    pub swift_user: Option<String>,
    /// Password.
    pub swift_password: Option<String>,
    /// Tenant (project) name.
    pub swift_tenant_name: Option<String>,
    /// Region name.
    pub swift_region_name: Option<String>,
    /// Keystone API version. Default: `2`.
    pub swift_auth_version: i64,
    /// Object storage URL, instead of the one Keystone lists.
    pub swift_object_storage_url: Option<String>,
}

/// OpenStack Glance for images (`storage: glance`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(default)]
pub struct Glance {
    /// Driver for tags and metadata (`file` or `swift`). Default: `file`.
    pub storage_alternate: String,
    /// Root of the alternate driver. Default: `/tmp/registry`.
    pub storage_path: String,
}

/// Elliptics distributed storage (`storage: elliptics`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(default)]
pub struct Elliptics {
    /// Nodes as `host:port:family` (required): a list, or one string
    /// separated by spaces.
    pub elliptics_nodes: Vec<String>,
    /// Seconds to wait for an operation, 1 to 86400. Default: `60`.
    pub elliptics_wait_timeout: i64,
    /// Seconds between route checks, 1 to 86400. Default: `60`.
    pub elliptics_check_timeout: i64,
    /// I/O threads, 1 to 1024. Default: `2`.
    pub elliptics_io_thread_num: i64,
    /// Network threads, 1 to 1024. Default: `2`.
    pub elliptics_net_thread_num: i64,
    /// Non-blocking I/O threads, 1 to 1024. Default: `2`.
    pub elliptics_nonblocking_io_thread_num: i64,
    /// Groups to write to (ids 0 to 4294967295): a list of numbers, or a
    /// string such as `"[1,2]"`.
    /// Default: `[1]`.
    pub elliptics_groups: Vec<i64>,
    /// Log level name (`error`, `info`, `notice`, `debug`). A number (the
    /// 0.9.1 sample's `4`) is accepted with a warning. Default: `error`.
    #[schemars(schema_with = "level_schema")]
    pub elliptics_verbosity: String,
    /// Log file. Default: `/dev/stderr`.
    pub elliptics_logfile: String,
    /// Namespace. Default: `DOCKER`.
    pub elliptics_namespace: String,
    /// Address family (in the 0.9.1 sample; not read by the driver).
    pub elliptics_addr_family: Option<i64>,
}

/// The values each elliptics setting accepts: `validate` refuses others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EllipticsRanges {
    /// `elliptics_wait_timeout` and `elliptics_check_timeout`: 1 second to
    /// a day.
    pub timeout: RangeInclusive<u64>,
    /// The three `*_thread_num`: 1 to 1,024 threads.
    pub threads: RangeInclusive<u64>,
    /// Each of `elliptics_groups`: a group id, 0 to 2^32-1 (elliptics ids
    /// are 32-bit).
    pub group: RangeInclusive<u64>,
}

impl Elliptics {
    /// The values each setting accepts.
    pub const RANGES: EllipticsRanges = EllipticsRanges {
        timeout: 1..=86_400,
        threads: 1..=1024,
        group: 0..=u32::MAX as u64,
    };
}

/// A log level name, or a number (accepted with a warning).
fn level_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["string", "integer"] })
}

/// Aliyun OSS (`storage: oss`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(default)]
pub struct Oss {
    /// Key prefix. Default: `/registry/`.
    pub storage_path: String,
    /// Endpoint. Default: `oss.aliyuncs.com`.
    pub oss_host: Option<String>,
    /// Bucket.
    pub oss_bucket: Option<String>,
    /// Access id.
    pub oss_accessid: Option<String>,
    /// Access key.
    pub oss_accesskey: Option<String>,
}

impl Serialize for Storage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let keys = match self {
            Storage::Local { storage_path } => serde_json::json!({ "storage_path": storage_path }),
            Storage::S3(s) => serde_json::to_value(s).map_err(S::Error::custom)?,
            Storage::Gcs(s) => serde_json::to_value(s).map_err(S::Error::custom)?,
            Storage::Azure(s) => serde_json::to_value(s).map_err(S::Error::custom)?,
            Storage::Swift(s) => serde_json::to_value(s).map_err(S::Error::custom)?,
            Storage::Glance(s) => serde_json::to_value(s).map_err(S::Error::custom)?,
            Storage::Elliptics(s) => serde_json::to_value(s).map_err(S::Error::custom)?,
            Storage::Oss(s) => serde_json::to_value(s).map_err(S::Error::custom)?,
            Storage::Other(_) => serde_json::json!({}),
        };
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("storage", self.driver())?;
        if let serde_json::Value::Object(keys) = keys {
            for (k, v) in keys {
                map.serialize_entry(&k, &v)?;
            }
        }
        map.end()
    }
}

/// Driver names and the schema of their keys, for [`Storage`]'s schema.
fn drivers(generator: &mut SchemaGenerator) -> Vec<(&'static [&'static str], Schema)> {
    vec![
        (&["local", "file"], generator.subschema_for::<Local>()),
        (&["s3", "cloudfronts3"], generator.subschema_for::<S3>()),
        (&["gcs"], generator.subschema_for::<Gcs>()),
        (&["azureblob"], generator.subschema_for::<Azure>()),
        (&["swift"], generator.subschema_for::<Swift>()),
        (&["glance"], generator.subschema_for::<Glance>()),
        (&["elliptics"], generator.subschema_for::<Elliptics>()),
        (&["oss"], generator.subschema_for::<Oss>()),
    ]
}

impl JsonSchema for Storage {
    fn schema_name() -> Cow<'static, str> {
        "Storage".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut names = Vec::new();
        let mut rules = Vec::new();
        for (aliases, keys) in drivers(generator) {
            names.extend(aliases.iter().copied());
            rules.push(json_schema!({
                "if": {
                    "properties": { "storage": { "enum": aliases } },
                    "required": ["storage"]
                },
                "then": keys
            }));
        }
        json_schema!({
            "type": "object",
            "properties": {
                "storage": {
                    "description": "The storage driver: `local` (default), `s3`, `gcs`, `azureblob`, `swift`, `glance`, `elliptics` or `oss`. Its settings are the keys beside it.",
                    "type": "string",
                    "examples": names,
                    "default": "local"
                }
            },
            "allOf": rules
        })
    }
}
