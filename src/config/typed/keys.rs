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
    "readonly",
    "metrics",
    "gc",
];

pub(super) const LEVELS: &[&str] = &[
    "debug", "info", "warning", "warn", "error", "critical", "fatal", "notset",
];

/// Keys of each nested section.
pub(super) fn section_keys(name: &str) -> &'static [&'static str] {
    match name {
        "mirroring" => &[
            "source",
            "source_index",
            "tags_cache_ttl",
            "username",
            "password",
            "allow_push",
        ],
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
        "metrics" => &["listen"],
        "limits" => &[
            "max_manifest_bytes",
            "max_header_bytes",
            "header_timeout_secs",
            "idle_timeout_secs",
            "max_connections",
            "max_connections_per_address",
            "min_body_bytes_per_sec",
        ],
        _ => &[],
    }
}

/// Top-level keys that older versions read and 0.9.1 ignores: the key and
/// what became of it.
pub(super) const OLD_KEYS: &[(&str, &str)] = &[
    (
        "secret_key",
        "docker-registry 0.5 and 0.6 read it as the web session key (0.6 refused to start without it); 0.9.1 ignores it",
    ),
    (
        "boto_secure",
        "docker-registry 0.6 and 0.7 read it to reach the object store over HTTPS; 0.9.1 ignores it and reads `s3_secure`",
    ),
    (
        "nodes",
        "the elliptics driver of docker-registry 0.6.3 to 0.6.5 read it; 0.9.1 ignores it and reads `elliptics_nodes`",
    ),
    (
        "groups",
        "the elliptics driver of docker-registry 0.6.3 to 0.6.5 read it; 0.9.1 ignores it and reads `elliptics_groups`",
    ),
    (
        "verbosity",
        "the elliptics driver of docker-registry 0.6.3 to 0.6.5 read it; 0.9.1 ignores it and reads `elliptics_verbosity`",
    ),
    (
        "logfile",
        "the elliptics driver of docker-registry 0.6.3 to 0.6.5 read it; 0.9.1 ignores it and reads `elliptics_logfile`",
    ),
    (
        "wait-timeout",
        "the elliptics driver of docker-registry 0.6.3 to 0.6.5 read it; 0.9.1 ignores it and reads `elliptics_wait_timeout`",
    ),
    (
        "check_timeout",
        "the elliptics driver of docker-registry 0.6.3 to 0.6.5 read it; 0.9.1 ignores it and reads `elliptics_check_timeout`",
    ),
    (
        "io-thread-num",
        "the elliptics driver of docker-registry 0.6.3 to 0.6.5 read it; 0.9.1 ignores it and reads `elliptics_io_thread_num`",
    ),
    (
        "net-thread-num",
        "the elliptics driver of docker-registry 0.6.3 to 0.6.5 read it; 0.9.1 ignores it and reads `elliptics_net_thread_num`",
    ),
    (
        "nonblocking_io_thread_num",
        "the elliptics driver of docker-registry 0.6.3 to 0.6.5 read it; 0.9.1 ignores it and reads `elliptics_nonblocking_io_thread_num`",
    ),
];

/// The section a key belongs in when it is written at the top level, where
/// no version of docker-registry read it.
pub(super) fn home_section(key: &str) -> Option<&'static str> {
    ["email_exceptions", "mirroring", "cors"]
        .into_iter()
        .find(|s| section_keys(s).contains(&key))
}

/// Settings docker-registry read only from the environment (its launcher
/// and loader), never from the file: a key of the same name is ignored.
pub(super) const ENV_ONLY: &[&str] = &[
    "gunicorn_workers",
    "gunicorn_graceful_timeout",
    "gunicorn_silent_timeout",
    "gunicorn_user",
    "gunicorn_group",
    "gunicorn_access_log_file",
    "gunicorn_error_log_file",
    "gunicorn_opts",
    "registry_host",
    "registry_port",
    "settings_flavor",
    "docker_registry_config",
    "new_relic_config_file",
    "new_relic_license_key",
    "new_relic_environment",
];
