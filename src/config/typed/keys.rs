//! The keys the model knows: at the top level, in each nested section, and
//! the log levels docker-registry accepted.

/// Top-level keys the model types (besides the drivers' keys).
pub(super) const TOP_KEYS: &[&str] = &[
    "flavor",
    "loglevel",
    "debug",
    "issue",
    "standalone",
    "index_endpoint",
    "disable_token_auth",
    "privileged_key",
    "storage_redirect",
    "nginx_x_accel_redirect",
    "registry_endpoints",
    "search_backend",
    "sqlalchemy_index_database",
    "mirroring",
    "cache",
    "cache_lru",
    "email_exceptions",
    "bugsnag",
    "cors",
    "storage",
    "upload_purge",
    "auth",
    "tls",
    "limits",
    "gc",
];

pub(super) const LEVELS: &[&str] = &[
    "debug", "info", "warning", "warn", "error", "critical", "fatal", "notset",
];

/// Keys of each nested section.
pub(super) fn section_keys(name: &str) -> &'static [&'static str] {
    match name {
        "mirroring" => &["source", "source_index", "tags_cache_ttl"],
        "cache" | "cache_lru" => &["host", "port", "db", "password"],
        "email_exceptions" => &[
            "smtp_host",
            "smtp_port",
            "smtp_login",
            "smtp_password",
            "smtp_secure",
            "from_addr",
            "to_addr",
        ],
        "cors" => &[
            "origins",
            "methods",
            "headers",
            "expose_headers",
            "supports_credentials",
            "max_age",
            "send_wildcard",
            "always_send",
            "automatic_options",
            "vary_header",
            "resources",
        ],
        "cloudfront" => &["base", "keyid", "keysecret"],
        "upload_purge" => &["max_age_secs", "interval_secs"],
        "gc" => &["interval_secs", "grace_secs", "untagged"],
        "auth" => &["htpasswd", "readonly"],
        "tls" => &["certificate", "key"],
        "limits" => &[
            "max_manifest_bytes",
            "max_header_bytes",
            "header_timeout_secs",
            "idle_timeout_secs",
            "max_connections",
        ],
        _ => &[],
    }
}
