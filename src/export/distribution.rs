//! A flavor as a configuration of the CNCF distribution registry (for
//! `regconf export --to distribution`).
//!
//! Input: the typed model of one flavor ([`model::Config`]) and the address
//! to listen on. Output: distribution's `version: 0.1` YAML: storage
//! (`filesystem`, `s3`, `gcs`, `azure`, `swift`, `oss`), `http.addr`,
//! `log.level`, CORS as `http.headers`, the upload purge, `readonly` as
//! `storage.maintenance.readonly`, `tls:` as `http.tls`, `metrics:` as the
//! debug server's Prometheus endpoint (`http.debug`), `auth.htpasswd`,
//! `redis`, `proxy` (`remoteurl`, `username`, `password`, `ttl`) and
//! `reporting.bugsnag` where the flavor sets them, and a `#` comment for
//! each setting of the flavor that has no equivalent there. Secrets are
//! written as they are: the file is for a program to read.

use std::fmt::Write as _;

use crate::config::render::yaml_string;
use crate::diagnostics::Diagnostic;
use crate::model::{self, MASK, Storage, is_secret};

/// A YAML document being written, two spaces per level.
struct Out {
    text: String,
}

impl Out {
    fn line(&mut self, indent: usize, text: &str) {
        let _ = writeln!(self.text, "{:width$}{text}", "", width = indent * 2);
    }

    fn str(&mut self, indent: usize, key: &str, value: &str) {
        self.line(indent, &format!("{key}: {}", yaml_string(value)));
    }

    fn opt(&mut self, indent: usize, key: &str, value: Option<&str>) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.str(indent, key, v);
        }
    }

    fn raw(&mut self, indent: usize, key: &str, value: impl std::fmt::Display) {
        self.line(indent, &format!("{key}: {value}"));
    }

    fn list(&mut self, indent: usize, key: &str, items: &[String]) {
        let shown: Vec<String> = items.iter().map(|i| yaml_string(i)).collect();
        self.line(indent, &format!("{key}: [{}]", shown.join(", ")));
    }
}

/// A setting with no equivalent in distribution, and why.
struct Dropped {
    key: String,
    value: String,
    why: &'static str,
}

fn shown(key: &str, v: &str) -> String {
    if is_secret(key) && !v.is_empty() {
        MASK.to_owned()
    } else {
        v.to_owned()
    }
}

/// Writes the distribution configuration of `config`, listening on
/// `listen`.
pub(crate) fn distribution(config: &model::Config, listen: &str) -> Result<String, Diagnostic> {
    let mut o = Out {
        text: String::new(),
    };
    let mut dropped: Vec<Dropped> = Vec::new();
    let mut drop = |key: &str, value: String, why: &'static str| {
        dropped.push(Dropped {
            value: shown(key, &value),
            key: key.to_owned(),
            why,
        });
    };
    o.line(
        0,
        &format!(
            "# The CNCF distribution registry's configuration for flavor `{}`,",
            config.flavor
        ),
    );
    o.line(
        0,
        "# written by `regconf export --to distribution`. Run it with",
    );
    o.line(
        0,
        "# `registry serve FILE` (Debian: `docker-registry serve FILE`).",
    );
    o.raw(0, "version", "0.1");

    o.line(0, "log:");
    let level = config
        .loglevel
        .as_deref()
        .unwrap_or("info")
        .to_ascii_lowercase();
    let (level, note) = match level.as_str() {
        "debug" | "info" | "error" => (level.clone(), None),
        "warning" | "warn" => ("warn".to_owned(), None),
        "critical" => (
            "error".to_owned(),
            Some("distribution has no `critical` level; `error` is the nearest"),
        ),
        _ => (
            "info".to_owned(),
            Some("not a level distribution knows; `info` instead"),
        ),
    };
    match note {
        Some(n) => o.line(
            1,
            &format!(
                "level: {level}  # loglevel: {}: {n}",
                config.loglevel.as_deref().unwrap_or("")
            ),
        ),
        None => o.raw(1, "level", &level),
    }
    o.raw(1, "formatter", "text");

    o.line(0, "storage:");
    storage(&mut o, &config.storage, &mut drop)?;
    o.line(1, "delete:");
    o.raw(2, "enabled", "true");
    o.line(1, "redirect:");
    o.raw(2, "disable", !config.storage_redirect);
    o.line(1, "maintenance:");
    o.line(2, "uploadpurging:");
    if config.readonly {
        o.line(
            3,
            "enabled: false  # readonly: regconf purges nothing while read-only",
        );
    } else {
        o.raw(3, "enabled", "true");
    }
    o.raw(3, "age", format!("{}s", config.upload_purge.max_age_secs));
    o.raw(
        3,
        "interval",
        format!("{}s", config.upload_purge.interval_secs),
    );
    o.raw(3, "dryrun", "false");
    if config.readonly {
        o.line(2, "readonly:");
        o.raw(3, "enabled", "true");
    }
    let redis = config.cache.host.as_deref().filter(|h| !h.is_empty());
    if redis.is_some() {
        o.line(1, "cache:");
        o.raw(2, "blobdescriptor", "redis");
    }

    o.line(0, "http:");
    o.str(1, "addr", listen);
    o.line(1, "headers:");
    o.list(2, "X-Content-Type-Options", &["nosniff".to_owned()]);
    let cors = &config.cors;
    if !cors.origins.is_empty() {
        o.line(
            2,
            "# CORS: distribution adds these headers to every response; it does not",
        );
        o.line(
            2,
            "# match the request's origin or answer preflight requests on its own.",
        );
        o.list(2, "Access-Control-Allow-Origin", &cors.origins);
        if !cors.methods.is_empty() {
            o.list(2, "Access-Control-Allow-Methods", &cors.methods);
        }
        if !cors.headers.is_empty() {
            o.list(2, "Access-Control-Allow-Headers", &cors.headers);
        }
        if !cors.expose_headers.is_empty() {
            o.list(2, "Access-Control-Expose-Headers", &cors.expose_headers);
        }
        if cors.supports_credentials {
            o.list(2, "Access-Control-Allow-Credentials", &["true".to_owned()]);
        }
        if let Some(age) = cors.max_age {
            o.list(2, "Access-Control-Max-Age", &[age.to_string()]);
        }
        for (key, set) in [
            ("cors.send_wildcard", cors.send_wildcard),
            ("cors.always_send", cors.always_send),
            ("cors.automatic_options", cors.automatic_options),
            ("cors.vary_header", cors.vary_header),
        ] {
            if let Some(v) = set {
                drop(
                    key,
                    v.to_string(),
                    "headers are sent as written on every response",
                );
            }
        }
        if let Some(r) = &cors.resources {
            drop(
                "cors.resources",
                r.to_string(),
                "headers apply to every path",
            );
        }
    }

    operate(&mut o, config, &mut drop);

    if let Some(host) = redis {
        o.line(0, "redis:");
        let addr = match config.cache.port {
            Some(p) => format!("{host}:{p}"),
            None => format!("{host}:6379"),
        };
        o.str(1, "addr", &addr);
        o.opt(1, "password", config.cache.password.as_deref());
        o.raw(1, "db", config.cache.db.unwrap_or(0));
    }
    if let Some(source) = config.mirroring.source.as_deref().filter(|s| !s.is_empty()) {
        o.line(0, "proxy:");
        o.str(1, "remoteurl", source);
        if let Some(i) = config
            .mirroring
            .source_index
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            drop(
                "mirroring.source_index",
                i.to_owned(),
                "the v2 API has no index",
            );
        }
        o.opt(1, "username", config.mirroring.username.as_deref());
        o.opt(1, "password", config.mirroring.password.as_deref());
        // distribution's `proxy.ttl` is a Go duration; the sample's default
        // applies when the flavor does not say.
        let ttl = config.mirroring.tags_cache_ttl.unwrap_or(172_800).max(0);
        o.str(1, "ttl", &format!("{ttl}s"));
        if config.mirroring.allow_push {
            drop(
                "mirroring.allow_push",
                "true".to_owned(),
                "distribution's proxy never accepts pushes",
            );
        }
    }
    if let Storage::S3(s) = &config.storage
        && let Some(cf) = &s.cloudfront
        && let Some(base) = cf.base.as_deref().filter(|b| !b.is_empty())
    {
        o.line(0, "middleware:");
        o.line(1, "storage:");
        o.line(2, "- name: cloudfront");
        o.line(3, "options:");
        o.str(4, "baseurl", base);
        o.opt(4, "keypairid", cf.keyid.as_deref());
        o.line(4, "# privatekey must be the path of a PEM file");
        o.opt(4, "privatekey", cf.keysecret.as_deref());
    }
    if let Some(key) = config.bugsnag.as_deref().filter(|s| !s.is_empty()) {
        o.line(0, "reporting:");
        o.line(1, "bugsnag:");
        o.str(2, "apikey", key);
    }

    let set = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    if config.debug {
        drop(
            "debug",
            "true".into(),
            "distribution's debug server is `http.debug.addr`",
        );
    }
    if let Some(v) = set(&config.issue) {
        drop("issue", v, "the v2 API has no `GET /` text");
    }
    if config.standalone {
        drop(
            "standalone",
            "true".into(),
            "distribution never consults an index",
        );
    }
    if let Some(v) = set(&config.index_endpoint) {
        drop(
            "index_endpoint",
            v,
            "token authentication is `auth.token`, against a token server",
        );
    }
    if config.disable_token_auth {
        drop(
            "disable_token_auth",
            "true".into(),
            "without an `auth` section there is no token check",
        );
    }
    if let Some(v) = set(&config.privileged_key) {
        drop("privileged_key", v, "no signed-request check");
    }
    if let Some(v) = set(&config.nginx_x_accel_redirect) {
        drop("nginx_x_accel_redirect", v, "no `X-Accel-Redirect` answers");
    }
    if let Some(v) = set(&config.registry_endpoints) {
        drop(
            "registry_endpoints",
            v,
            "no `X-Docker-Endpoints` header in the v2 API",
        );
    }
    if let Some(v) = set(&config.search_backend) {
        drop(
            "search_backend",
            v,
            "no search API; `GET /v2/_catalog` lists repositories",
        );
    }
    if let Some(v) = set(&config.sqlalchemy_index_database) {
        drop("sqlalchemy_index_database", v, "no search index");
    }
    if let Some(v) = set(&config.cache_lru.host) {
        drop(
            "cache_lru.host",
            v,
            "distribution caches blob descriptors only (`redis`)",
        );
    }
    if let Some(v) = set(&config.email_exceptions.smtp_host) {
        drop(
            "email_exceptions.smtp_host",
            v,
            "no error mails; `notifications` sends events to endpoints",
        );
    }
    for (k, v) in &config.extra {
        if !v.is_null() {
            drop(
                k,
                v.to_string(),
                "not a docker-registry setting regconf knows",
            );
        }
    }

    if !dropped.is_empty() {
        o.line(0, "");
        o.line(
            0,
            &format!(
                "# Settings of flavor `{}` with no equivalent in distribution:",
                config.flavor
            ),
        );
        for d in &dropped {
            o.line(0, &format!("# {}: {} ({})", d.key, d.value, d.why));
        }
    }
    Ok(o.text)
}

/// `tls:` as `http.tls`, `metrics:` as distribution's debug server, and
/// `auth.htpasswd` as `auth.htpasswd`; written right after `http:`'s
/// headers. What they cannot say (read-only users, `limits:`) is dropped
/// with its reason.
fn operate(o: &mut Out, config: &model::Config, drop: &mut dyn FnMut(&str, String, &'static str)) {
    fn set(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|s| !s.is_empty())
    }
    if config.tls.enabled() {
        o.line(1, "tls:");
        o.opt(2, "certificate", set(&config.tls.certificate));
        o.opt(2, "key", set(&config.tls.key));
    }
    if let Some(addr) = set(&config.metrics.listen) {
        o.line(1, "debug:");
        o.line(
            2,
            "# distribution's debug server also serves expvar and pprof here",
        );
        o.str(2, "addr", addr);
        o.line(2, "prometheus:");
        o.raw(3, "enabled", "true");
        o.str(3, "path", "/metrics");
    }
    if let Some(path) = set(&config.auth.htpasswd) {
        o.line(0, "auth:");
        o.line(1, "htpasswd:");
        o.str(2, "realm", "regconf");
        o.str(2, "path", path);
        if !config.auth.readonly.is_empty() {
            drop(
                "auth.readonly",
                config.auth.readonly.join(", "),
                "distribution's htpasswd users may all push; it has no read-only users",
            );
        }
    }
    let d = model::Limits::default();
    let l = &config.limits;
    for (key, value, default) in [
        (
            "limits.max_manifest_bytes",
            l.max_manifest_bytes,
            d.max_manifest_bytes,
        ),
        (
            "limits.max_header_bytes",
            l.max_header_bytes,
            d.max_header_bytes,
        ),
        (
            "limits.header_timeout_secs",
            l.header_timeout_secs,
            d.header_timeout_secs,
        ),
        (
            "limits.idle_timeout_secs",
            l.idle_timeout_secs,
            d.idle_timeout_secs,
        ),
        (
            "limits.max_connections",
            l.max_connections,
            d.max_connections,
        ),
    ] {
        if value != default {
            drop(key, value.to_string(), "distribution has no such limit");
        }
    }
}

fn storage(
    o: &mut Out,
    storage: &Storage,
    drop: &mut dyn FnMut(&str, String, &'static str),
) -> Result<(), Diagnostic> {
    let root = |p: &str| {
        let t = p.trim_end_matches('/');
        if t.is_empty() {
            "/".to_owned()
        } else {
            t.to_owned()
        }
    };
    match storage {
        Storage::Local { storage_path } => {
            o.line(1, "filesystem:");
            o.str(2, "rootdirectory", storage_path);
        }
        Storage::S3(s) => {
            o.line(1, "s3:");
            o.opt(2, "accesskey", s.s3_access_key.as_deref());
            o.opt(2, "secretkey", s.s3_secret_key.as_deref());
            match s.s3_region.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => o.str(2, "region", r),
                None => o.line(
                    2,
                    "region: us-east-1  # s3_region is empty; distribution needs a region",
                ),
            }
            if let Some(host) = s.boto_host.as_deref().filter(|h| !h.is_empty()) {
                let scheme = if s.s3_secure { "https" } else { "http" };
                let endpoint = match s.boto_port {
                    Some(p) => format!("{scheme}://{host}:{p}"),
                    None => format!("{scheme}://{host}"),
                };
                o.str(2, "regionendpoint", &endpoint);
            }
            o.opt(2, "bucket", s.boto_bucket.as_deref());
            o.raw(2, "encrypt", s.s3_encrypt);
            o.raw(2, "secure", s.s3_secure);
            o.raw(2, "v4auth", true);
            o.str(2, "rootdirectory", &root(&s.storage_path));
            if !s.s3_use_sigv4 {
                drop(
                    "s3_use_sigv4",
                    "false".into(),
                    "distribution signs with v4: `v4auth`",
                );
            }
            if let Some(c) = s.boto_calling_format.as_deref().filter(|c| !c.is_empty()) {
                drop(
                    "boto_calling_format",
                    c.to_owned(),
                    "distribution uses path-style URLs with a `regionendpoint`",
                );
            }
            if let Some(d) = s.boto_debug {
                drop("boto_debug", d.to_string(), "use `log.level: debug`");
            }
            if let Some(p) = s.boto_proxy.as_deref().filter(|p| !p.is_empty()) {
                drop(
                    "boto_proxy",
                    p.to_owned(),
                    "distribution reads `HTTPS_PROXY` from its environment",
                );
            }
        }
        Storage::Gcs(g) => {
            o.line(1, "gcs:");
            o.opt(2, "bucket", g.boto_bucket.as_deref());
            o.str(2, "rootdirectory", &root(&g.storage_path));
            if g.gs_access_key.as_deref().is_some_and(|k| !k.is_empty()) {
                drop(
                    "gs_access_key",
                    g.gs_access_key.clone().unwrap_or_default(),
                    "distribution authenticates with a service account `keyfile`",
                );
                drop(
                    "gs_secret_key",
                    g.gs_secret_key.clone().unwrap_or_default(),
                    "distribution authenticates with a service account `keyfile`",
                );
            }
            if let Some(e) = g.gs_endpoint.as_deref().filter(|e| !e.is_empty()) {
                drop(
                    "gs_endpoint",
                    e.to_owned(),
                    "distribution's gcs driver always talks to Google's endpoint",
                );
            }
            if g.oauth2 {
                drop(
                    "oauth2",
                    "true".into(),
                    "distribution uses the default Google credentials without a `keyfile`",
                );
            }
        }
        Storage::Azure(a) => {
            o.line(1, "azure:");
            o.opt(2, "accountname", a.azure_storage_account_name.as_deref());
            o.opt(2, "accountkey", a.azure_storage_account_key.as_deref());
            o.str(2, "container", &a.azure_storage_container);
            if let Some(e) = a.azure_endpoint.as_deref().filter(|e| !e.is_empty()) {
                drop(
                    "azure_endpoint",
                    e.to_owned(),
                    "distribution's azure driver takes only a `realm`, the domain after the account name",
                );
            }
            if !a.azure_use_https {
                drop(
                    "azure_use_https",
                    "false".into(),
                    "distribution always uses HTTPS",
                );
            }
        }
        Storage::Swift(s) => {
            o.line(1, "swift:");
            o.opt(2, "authurl", s.swift_authurl.as_deref());
            o.opt(2, "username", s.swift_user.as_deref());
            o.opt(2, "password", s.swift_password.as_deref());
            o.opt(2, "tenant", s.swift_tenant_name.as_deref());
            o.opt(2, "region", s.swift_region_name.as_deref());
            o.str(2, "container", &s.swift_container);
            o.str(2, "rootdirectory", &root(&s.storage_path));
            o.raw(2, "authversion", s.swift_auth_version);
        }
        Storage::Oss(s) => {
            o.line(1, "oss:");
            o.opt(2, "accesskeyid", s.oss_accessid.as_deref());
            o.opt(2, "accesskeysecret", s.oss_accesskey.as_deref());
            o.opt(2, "endpoint", s.oss_host.as_deref());
            o.opt(2, "bucket", s.oss_bucket.as_deref());
            o.str(2, "rootdirectory", &root(&s.storage_path));
        }
        other => {
            return Err(Diagnostic::error(
                "regconf::export::no_equivalent",
                format!(
                    "distribution has no `{}` storage driver",
                    other.driver()
                ),
            )
            .help("export a flavor that stores in `local`, `s3`, `gcs`, `azureblob`, `swift` or `oss`"));
        }
    }
    Ok(())
}
