//! The typed configuration: what a resolved flavor means.
//!
//! This is the contract between the configuration core and everything that
//! acts on a configuration (the registry, `export`, `env`). It is plain data:
//! no I/O, no knowledge of files, spans or variables. Where a value came from
//! is kept beside it, in `config::Provenance`, never in these types.
//!
//! Doc comments on fields are written for operators: they become the
//! descriptions in the JSON Schema.

pub mod storage;

pub use storage::Storage;

/// One resolved flavor, as the registry runtime reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The selected flavor's name.
    pub flavor: String,
    /// Log level name (`debug`, `info`, `warning`, `error`, `critical`).
    pub loglevel: Option<String>,
    /// Adds versions, host and launch details to `/_ping`.
    pub debug: bool,
    /// Body of `GET /`, JSON-encoded.
    pub issue: Option<String>,
    /// `X-Docker-Registry-Standalone` is `True` only when this is exactly `true`.
    pub standalone: bool,
    /// The storage driver and its settings.
    pub storage: Storage,
    /// Whether blob reads answer with a redirect to the object store.
    pub storage_redirect: bool,
    /// `/v1/search` is served when set (`sqlalchemy` is the supported backend).
    pub search_backend: Option<String>,
    /// SQLAlchemy URL of the search index (`sqlite:////abs/path`).
    pub sqlalchemy_index_database: Option<String>,
    /// Cross-origin resource sharing.
    pub cors: Cors,
    /// Expiry of abandoned blob uploads.
    pub upload_purge: UploadPurge,
}

/// How `serve` expires blob uploads that were started and never finished
/// (`upload_purge:` section). Purging runs once at start and then every
/// `interval_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadPurge {
    /// Uploads older than this many seconds are removed (default 604800,
    /// one week, as in distribution).
    pub max_age_secs: u64,
    /// Seconds between purges (default 3600).
    pub interval_secs: u64,
}

impl Default for UploadPurge {
    fn default() -> Self {
        Self {
            max_age_secs: 7 * 24 * 3600,
            interval_secs: 3600,
        }
    }
}

/// CORS settings (`cors:` section); enabled when `origins` is set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cors {
    /// Allowed origins (`*` or a list).
    pub origins: Vec<String>,
    /// Allowed methods.
    pub methods: Vec<String>,
    /// Allowed request headers.
    pub headers: Vec<String>,
    /// Response headers exposed to the browser.
    pub expose_headers: Vec<String>,
    /// `Access-Control-Allow-Credentials: true`.
    pub supports_credentials: bool,
    /// `Access-Control-Max-Age` in seconds.
    pub max_age: Option<u64>,
}
