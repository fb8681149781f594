//! The typed configuration: what a resolved flavor means.
//!
//! This is the contract between the configuration core and everything that
//! acts on a configuration (the registry, `export`, `env`). It is plain data:
//! no I/O, no knowledge of files, spans or variables, and no dependency on
//! the rest of the crate. Where a value came from is kept beside it, in
//! `config::Provenance`, never in these types; `config::typed` builds a
//! [`Config`] from a resolved flavor and reports every value it could not
//! use.
//!
//! Doc comments on fields are written for operators: they become the
//! descriptions in the JSON Schema ([`schema`]). Field names are the keys as
//! written in a flavor, so the schema describes the file.
//!
//! Two kinds of switches, as docker-registry 0.9.1 tested them:
//! * *exactly true* keys (`standalone`, `disable_token_auth`, `s3_secure`,
//!   `s3_encrypt`, `s3_use_sigv4`, `gs_secure`, `oauth2`): the code compared
//!   with `is True`, so only the boolean `true` turns them on; the string
//!   `"true"` is off (and `validate` reports it);
//! * *truthy* keys (`debug`, `storage_redirect`, `azure_use_https`): any
//!   non-empty value is on; a value that is not a boolean is reported.

#![warn(missing_docs)]

pub mod certificate;
pub mod metrics;
pub mod schema;
pub mod security;
pub mod storage;

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use schemars::JsonSchema;
use serde::Serialize;

pub use metrics::Metrics;
pub use security::{Auth, LimitRanges, Limits, Tls};
pub use storage::{Azure, Elliptics, EllipticsRanges, Gcs, Glance, Oss, S3, Storage, Swift};

/// Keys the model does not type, with their values as JSON (unknown keys,
/// and keys that belong to another storage driver). Nothing is dropped.
pub type Extra = BTreeMap<String, serde_json::Value>;

/// One resolved flavor, as the registry runtime reads it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct Config {
    /// The selected flavor's name. docker-registry always set this to the
    /// selected flavor (`SETTINGS_FLAVOR`), whatever the file says; it is
    /// sent as `X-Docker-Registry-Config` when `debug` is on.
    pub flavor: String,
    /// Log level name: `debug`, `info`, `warning` (or `warn`), `error` or
    /// `critical`, any case. docker-registry crashed at start on any other
    /// value, or when the key was empty. Sample default: `info` (`debug` in
    /// `dev`).
    pub loglevel: Option<String>,
    /// When true, `/_ping` adds versions, host and launch details and the
    /// `X-Docker-Registry-Config` header. Any non-empty value counts as on.
    /// Default: `false` (`true` in `dev`).
    pub debug: bool,
    /// The body of `GET /`, sent JSON-encoded. Default:
    /// `'"docker-registry server"'`.
    pub issue: Option<String>,
    /// Standalone registries answer on their own, without an index service:
    /// the fake index routes (`/v1/users`, ...) are served and token checks
    /// are skipped. Only the boolean `true` counts (the string `"true"` is
    /// off). Default: `true`.
    pub standalone: bool,
    /// Base URL of the index used for token validation when not standalone;
    /// leading and trailing `/` are stripped. Default:
    /// `https://index.docker.io`.
    pub index_endpoint: Option<String>,
    /// Turns token checks off. Only the boolean `true` counts.
    pub disable_token_auth: bool,
    /// Path of an RSA public key that signs requests (`X-Signature`); the
    /// file must exist when this is set. Empty means none.
    pub privileged_key: Option<String>,
    /// When true, layer downloads are answered with a redirect to the
    /// storage backend's URL. Any non-empty value counts as on.
    pub storage_redirect: bool,
    /// Prefix for `X-Accel-Redirect` answers behind nginx (local storage
    /// only).
    pub nginx_x_accel_redirect: Option<String>,
    /// Value of `X-Docker-Endpoints`; default: the request's `Host`.
    pub registry_endpoints: Option<String>,
    /// The search index backend: `sqlalchemy`. When set, `/v1/search` is
    /// served. Empty means no search. Default: none (`sqlalchemy` in `dev`).
    pub search_backend: Option<String>,
    /// SQLAlchemy URL of the search index database. regconf serves SQLite
    /// URLs (`sqlite:////absolute/path.db` or `sqlite:///relative.db`, one
    /// index per process) and PostgreSQL URLs
    /// (`postgresql://user:password@host:port/db`, one index shared by every
    /// process; no TLS). Default: `sqlite:////tmp/docker-registry.db`.
    pub sqlalchemy_index_database: Option<String>,
    /// Pull-through mirroring of another registry (off while `source` is
    /// empty).
    pub mirroring: Mirroring,
    /// Redis cache for metadata (off while `host` is empty).
    pub cache: Redis,
    /// Redis LRU cache for small files, useful in front of remote storage
    /// (off while `host` is empty).
    pub cache_lru: Redis,
    /// Mail every unhandled error (off while `smtp_host` is empty).
    pub email_exceptions: EmailExceptions,
    /// Bugsnag API key for error reports; empty means off.
    pub bugsnag: Option<String>,
    /// Cross-origin resource sharing (off while `origins` is empty).
    pub cors: Cors,
    /// The storage driver and its settings.
    #[serde(flatten)]
    pub storage: Storage,
    /// Expiry of abandoned blob uploads (a regconf extension).
    pub upload_purge: UploadPurge,
    /// HTTP Basic authentication of `serve` (a regconf extension).
    pub auth: Auth,
    /// HTTPS for `serve` (a regconf extension).
    pub tls: Tls,
    /// Limits on what one client may ask of `serve` (a regconf extension).
    pub limits: Limits,
    /// Refuse every write (a regconf extension, like distribution's
    /// `storage.maintenance.readonly`): pushes and deletes are answered
    /// `405 UNSUPPORTED` saying the registry is read-only, reads work, and
    /// `serve` itself writes nothing to storage (no upload purge). For
    /// maintenance, or a replica of storage written elsewhere. Default:
    /// `false`.
    pub readonly: bool,
    /// Prometheus metrics on a listener of their own (a regconf
    /// extension; off while `listen` is empty).
    pub metrics: Metrics,
    /// Garbage collection while serving (a regconf extension).
    pub gc: Gc,
    /// Keys not typed above: unknown keys (reported by `regconf validate`)
    /// and keys of other storage drivers. They are kept, never dropped.
    #[serde(flatten)]
    pub extra: Extra,
}

/// How `serve` expires blob uploads that were started and never finished
/// (`upload_purge:` section, a regconf extension). Purging runs once at start
/// and then every `interval_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(default)]
pub struct UploadPurge {
    /// Uploads older than this many seconds are removed (default 604800,
    /// one week, as in distribution).
    pub max_age_secs: u64,
    /// Seconds between purges (default 3600).
    pub interval_secs: u64,
}

impl UploadPurge {
    /// Accepted `max_age_secs`: up to ten years.
    pub const MAX_AGE_SECS: RangeInclusive<u64> = 0..=10 * 365 * DAY;
    /// Accepted `interval_secs`: up to a year (0 purges every second).
    pub const INTERVAL_SECS: RangeInclusive<u64> = 0..=365 * DAY;
}

/// Seconds in a day.
const DAY: u64 = 24 * 3600;

/// Garbage collection run by `serve` on a schedule (`gc:` section, a
/// regconf extension; `regconf gc` runs it once). Off while `interval_secs`
/// is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(default)]
pub struct Gc {
    /// Seconds between runs; 0 (the default) means `serve` does not
    /// collect.
    pub interval_secs: u64,
    /// Blobs and manifests modified less than this many seconds before a
    /// run are never removed (default 3600).
    pub grace_secs: u64,
    /// Also delete manifests no tag reaches (default false).
    pub untagged: bool,
}

impl Gc {
    /// Accepted `interval_secs`: up to a year.
    pub const INTERVAL_SECS: RangeInclusive<u64> = 0..=365 * DAY;
    /// Accepted `grace_secs`: up to a year.
    pub const GRACE_SECS: RangeInclusive<u64> = 0..=365 * DAY;
}

impl Default for Gc {
    fn default() -> Self {
        Self {
            interval_secs: 0,
            grace_secs: 3600,
            untagged: false,
        }
    }
}

impl Default for UploadPurge {
    fn default() -> Self {
        Self {
            max_age_secs: 7 * 24 * 3600,
            interval_secs: 3600,
        }
    }
}

/// Pull-through mirroring (`mirroring:` section).
#[derive(Debug, Clone, PartialEq, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct Mirroring {
    /// URL of the registry to mirror (e.g. `https://registry-1.docker.io`);
    /// set means mirror mode.
    pub source: Option<String>,
    /// URL of the upstream index for index routes such as `/v1/search`
    /// (e.g. `https://index.docker.io`).
    pub source_index: Option<String>,
    /// Seconds a tag fetched from `source` is served without asking
    /// `source` again; after that the next pull re-checks its digest.
    /// Default: `172800` (two days). Manifests by digest never expire.
    pub tags_cache_ttl: Option<i64>,
    /// User name for `source` (a regconf extension): sent with HTTP Basic,
    /// or to the token service of a registry that asks for Bearer tokens.
    /// Set both `username` and `password`, or neither (anonymous).
    pub username: Option<String>,
    /// Password for `source` (a regconf extension; a secret).
    pub password: Option<String>,
    /// Whether clients may push to a mirror (a regconf extension). Off by
    /// default: pushes are refused with `UNSUPPORTED`, so that nothing
    /// local shadows the mirrored registry's content.
    pub allow_push: bool,
    /// Keys not typed above, kept as written.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A redis cache (`cache:` and `cache_lru:` sections); enabled when `host`
/// is set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct Redis {
    /// Redis host name; empty means the cache is off.
    pub host: Option<String>,
    /// Redis port (a number, or a string of digits).
    pub port: Option<i64>,
    /// Redis database number, 0 to 2147483647 (redis numbers databases
    /// with a C `int`). Default: `0`.
    pub db: Option<i64>,
    /// Redis password.
    pub password: Option<String>,
    /// Keys not typed above, kept as written.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Redis {
    /// The database numbers `db` accepts.
    pub const DB_RANGE: std::ops::RangeInclusive<u64> = 0..=i32::MAX as u64;
}

/// Error mails (`email_exceptions:` section); enabled when `smtp_host` is
/// set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct EmailExceptions {
    /// SMTP server; empty means no mails.
    pub smtp_host: Option<String>,
    /// SMTP port. Default: `25`.
    pub smtp_port: Option<i64>,
    /// SMTP user name.
    pub smtp_login: Option<String>,
    /// SMTP password.
    pub smtp_password: Option<String>,
    /// STARTTLS: `true`, a key file path, or `{keyfile, certfile}`.
    /// Default: `false`.
    pub smtp_secure: Option<SmtpSecure>,
    /// Sender address. Default: `docker-registry@localdomain.local`.
    pub from_addr: Option<String>,
    /// Recipient address. Default: `noise+dockerregistry@localdomain.local`.
    pub to_addr: Option<String>,
    /// Keys not typed above, kept as written.
    #[serde(flatten)]
    pub extra: Extra,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum SmtpSecure {
    /// `true`: STARTTLS with no client certificate; `false`: plain SMTP.
    Enabled(bool),
    /// STARTTLS with this key file.
    Keyfile(String),
    /// STARTTLS with a client key and certificate.
    Files {
        /// The client's private key file.
        keyfile: Option<String>,
        /// The client's certificate file.
        certfile: Option<String>,
    },
}

/// CORS settings (`cors:` section), passed to Flask-CORS by docker-registry;
/// enabled when `origins` is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(default)]
pub struct Cors {
    /// Allowed origins: `*`, one origin, or a list.
    pub origins: Vec<String>,
    /// Allowed methods (one string or a list).
    pub methods: Vec<String>,
    /// Allowed request headers. Default: `[Content-Type]`.
    pub headers: Vec<String>,
    /// Response headers exposed to the browser.
    pub expose_headers: Vec<String>,
    /// Sends `Access-Control-Allow-Credentials: true`.
    pub supports_credentials: bool,
    /// `Access-Control-Max-Age`, in seconds.
    pub max_age: Option<u64>,
    /// Answers `*` instead of the request's origin.
    pub send_wildcard: Option<bool>,
    /// Sends the headers even without an `Origin` in the request.
    pub always_send: Option<bool>,
    /// Answers `OPTIONS` requests automatically.
    pub automatic_options: Option<bool>,
    /// Adds `Vary: Origin`.
    pub vary_header: Option<bool>,
    /// Flask-CORS resource patterns, passed as written.
    pub resources: Option<serde_json::Value>,
    /// Keys not typed above, kept as written.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Cors {
    /// Accepted `max_age` (seconds a browser may keep a preflight answer).
    pub const MAX_AGE: RangeInclusive<u64> = 0..=i32::MAX as u64;
}

/// Settings that hold secrets (dotted key paths, as written in a flavor).
///
/// `explain`, `env` and `diff` print their values as [`MASK`] unless
/// `--show-secrets` is given, and `serve` masks them in its messages;
/// `render` and `export` print them, since their output feeds programs. The
/// list lives here, beside the fields it names, so that a new secret field is
/// added in one place; a key is also treated as a secret when its last part
/// names one (see [`is_secret`]).
pub const SECRET_KEYS: &[&str] = &[
    "s3_access_key",
    "s3_secret_key",
    "boto_proxy_pass",
    "gs_access_key",
    "gs_secret_key",
    "azure_storage_account_key",
    "swift_password",
    "oss_accesskey",
    "cloudfront.keysecret",
    "cache.password",
    "mirroring.password",
    "cache_lru.password",
    "email_exceptions.smtp_password",
    "smtp_password",
    "bugsnag",
];

/// How a masked secret is shown.
pub const MASK: &str = "********";

/// Whether `url` names a PostgreSQL database as SQLAlchemy wrote it:
/// `postgresql://`, `postgres://` or `postgresql+<driver>://`.
pub fn is_postgres_url(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        let dialect = scheme.split('+').next().unwrap_or_default();
        dialect.eq_ignore_ascii_case("postgresql") || dialect.eq_ignore_ascii_case("postgres")
    })
}

/// What `regconf serve` cannot use in the PostgreSQL URL `url`, read as
/// text (no connection): no user, no host, or TLS asked for (`sslmode`
/// other than `disable` or `prefer`; serve has no PostgreSQL TLS client).
pub fn postgres_url_problem(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let query = rest.split_once('?').map_or("", |(_, q)| q);
    let param = |key: &str| {
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    };
    let (user, host) = authority.rsplit_once('@').unwrap_or(("", authority));
    let user = user.split_once(':').map_or(user, |(u, _)| u);
    if user.is_empty() && param("user").is_none() {
        return Some("no user: write `postgresql://user:password@host:port/database`".to_owned());
    }
    if host.is_empty() && param("host").is_none() {
        return Some("no host: write `postgresql://user:password@host:port/database`".to_owned());
    }
    match param("sslmode") {
        None | Some("disable" | "prefer") => None,
        Some(mode) => Some(format!(
            "`sslmode={mode}` asks for TLS, which regconf's PostgreSQL client does not speak: use `sslmode=disable` (or `prefer`) with the database on loopback, a private network or a tunnel"
        )),
    }
}

/// The password in the user part of a URL (`scheme://user:password@host/…`,
/// as in `sqlalchemy_index_database`), if any: such a value is shown
/// masked as a secret key's is.
pub fn url_password(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.is_empty() || scheme.contains(char::is_whitespace) {
        return None;
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let (user, _) = authority.rsplit_once('@')?;
    let (_, password) = user.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// Whether the setting at a dotted key path holds a secret: it is listed in
/// [`SECRET_KEYS`], or its last part is a password, a secret, a token or an
/// access key by name (`password`, `*_password`, `*_secret*`, `*token*`,
/// `*accesskey*`, `*_key` under a listed driver).
pub fn is_secret(dotted: &str) -> bool {
    if SECRET_KEYS.contains(&dotted) {
        return true;
    }
    let last = dotted
        .rsplit('.')
        .next()
        .unwrap_or(dotted)
        .to_ascii_lowercase();
    last == "password"
        || last.ends_with("_password")
        || last.ends_with("_pass")
        || last.contains("secret")
        || last.contains("token") && !last.contains("auth")
        || last.contains("accesskey")
}
