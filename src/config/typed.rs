//! Stage 4: a resolved flavor → the typed model ([`crate::model::Config`]).
//!
//! Input: a [`Resolved`] flavor (values and their [`Provenance`]). Output:
//! the model, plus a [`Diagnostic`] for every value the model could not use
//! as written: wrong types (labelled at the value, at the `<<` that brought
//! it, with the variable that gave it), strings where docker-registry tested
//! `is True`, YAML 1.1 surprises where a string is expected, unknown keys
//! (kept in `extra`, with a did-you-mean), missing driver settings, and what
//! `serve` cannot do. Nothing here reads the environment, and only in
//! [`Mode::Environment`] are files read: those `serve` opens at start
//! besides storage (the htpasswd file, the TLS certificate and key), see
//! [`files`].
//!
//! [`Mode::Static`] is `validate` without `--flavor`: values from `_env:`
//! are their defaults, and a required value that only an unset variable can
//! give is advice, not an error.

pub mod files;

use std::collections::HashSet;
use std::sync::Arc;

use super::env::{self, Given};
use super::origin::{Origin, Provenance, dotted};
use super::resolve::{Resolved, did_you_mean};
use super::source::{Source, Span};
use super::value::{Key, Map, Value};
use crate::diagnostics::{Diagnostic, Severity};
use crate::model::{self, Storage};

/// How the values were resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every `_env:` took its default (static validation of every flavor).
    Static,
    /// Resolved against an actual environment (`--flavor`, `serve`).
    Environment,
}

/// Top-level keys the model types (besides the drivers' keys).
pub const TOP_KEYS: &[&str] = &[
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
];

/// Keys of the storage drivers; a key of another driver than the selected
/// one is kept in `extra` without a report.
pub const DRIVER_KEYS: &[&str] = &[
    "storage_path",
    "boto_bucket",
    "boto_host",
    "boto_port",
    "boto_debug",
    "boto_proxy",
    "boto_proxy_port",
    "boto_proxy_user",
    "boto_proxy_pass",
    "boto_calling_format",
    "s3_secure",
    "s3_access_key",
    "s3_secret_key",
    "s3_region",
    "s3_encrypt",
    "s3_use_sigv4",
    "s3_bucket",
    "cloudfront",
    "gs_secure",
    "gs_access_key",
    "gs_secret_key",
    "oauth2",
    "swift_authurl",
    "swift_user",
    "swift_password",
    "swift_tenant_name",
    "swift_region_name",
    "swift_container",
    "swift_auth_version",
    "swift_object_storage_url",
    "storage_alternate",
    "azure_storage_account_name",
    "azure_storage_account_key",
    "azure_storage_container",
    "azure_use_https",
    "elliptics_nodes",
    "elliptics_wait_timeout",
    "elliptics_check_timeout",
    "elliptics_io_thread_num",
    "elliptics_net_thread_num",
    "elliptics_nonblocking_io_thread_num",
    "elliptics_groups",
    "elliptics_verbosity",
    "elliptics_logfile",
    "elliptics_namespace",
    "elliptics_addr_family",
    "oss_host",
    "oss_bucket",
    "oss_accessid",
    "oss_accesskey",
];

/// The storage driver names docker-registry 0.9.1 and its plugins knew.
pub const DRIVERS: &[&str] = &[
    "local",
    "file",
    "s3",
    "cloudfronts3",
    "gcs",
    "azureblob",
    "swift",
    "glance",
    "elliptics",
    "oss",
];

const LEVELS: &[&str] = &[
    "debug", "info", "warning", "warn", "error", "critical", "fatal", "notset",
];

/// Keys of each nested section.
fn section_keys(name: &str) -> &'static [&'static str] {
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

/// Converts a resolved flavor to the model, reporting what does not fit.
pub fn to_model(
    resolved: &Resolved,
    file: &Arc<Source>,
    mode: Mode,
) -> (model::Config, Vec<Diagnostic>) {
    let mut c = Conv {
        prov: &resolved.provenance,
        file,
        flavor: &resolved.flavor,
        mode,
        diags: Vec::new(),
    };
    let config = c.config(&resolved.config);
    if mode == Mode::Environment {
        c.env_pitfalls();
        for p in files::check(&config) {
            let path: Vec<Key> = p.key.split('.').map(Key::from).collect();
            let d = c
                .at(p.code, Severity::Error, &path, p.message, "")
                .help(p.help);
            c.push(d);
        }
    }
    (config, c.diags)
}

/// One mapping being read: its values, where it sits, and which keys were
/// read.
struct Sec<'m> {
    map: Option<&'m Map>,
    path: Vec<Key>,
    used: HashSet<String>,
}

impl<'m> Sec<'m> {
    fn new(map: Option<&'m Map>, path: Vec<Key>) -> Sec<'m> {
        Sec {
            map,
            path,
            used: HashSet::new(),
        }
    }

    fn path_of(&self, key: &str) -> Vec<Key> {
        let mut p = self.path.clone();
        p.push(Key::from(key));
        p
    }

    /// The value of `key`, `None` when absent or null.
    fn get(&mut self, key: &str) -> Option<&'m Value> {
        self.used.insert(key.to_owned());
        match self.map?.get(&Key::from(key)) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }
}

struct Conv<'a> {
    prov: &'a Provenance,
    file: &'a Arc<Source>,
    flavor: &'a str,
    mode: Mode,
    diags: Vec<Diagnostic>,
}

/// How a value is shown in a message.
fn shown(v: &Value) -> String {
    let text = match v {
        Value::Str(s) => s.clone(),
        other => super::render::to_json(other),
    };
    let short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        format!("{short}...")
    } else {
        short
    }
}

fn article(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Int(_) | Value::BigInt(_) => format!("the integer `{}`", shown(v)),
        Value::Float(_) => format!("the float `{}`", shown(v)),
        Value::Bool(_) => format!("the boolean `{}`", shown(v)),
        Value::Str(_) => format!("the string `{}`", shown(v)),
        other => {
            let t = other.type_name();
            if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
                format!("an {t}")
            } else {
                format!("a {t}")
            }
        }
    }
}

/// A value as JSON, for `extra` maps.
pub fn to_json_value(v: &Value) -> serde_json::Value {
    serde_json::from_str(&super::render::to_json(v)).unwrap_or(serde_json::Value::Null)
}

impl Conv<'_> {
    /// The origin of `path`, and the nearest `via` along it.
    fn origin(&self, path: &[Key]) -> (Option<&Origin>, Option<Span>) {
        let origin = self.prov.get(path);
        let mut via = None;
        for n in (1..=path.len()).rev() {
            if let Some(v) = self.prov.get(&path[..n]).and_then(|o| o.via.as_ref()) {
                via = Some(v.merge_key);
                break;
            }
        }
        (origin, via)
    }

    /// A diagnostic about the value at `path`, labelled at the value (or
    /// the `_env:` reference), at the `<<` that brought it, naming the
    /// variable.
    fn at(
        &self,
        code: &'static str,
        severity: Severity,
        path: &[Key],
        message: String,
        label: &str,
    ) -> Diagnostic {
        let (origin, via) = self.origin(path);
        let mut message = message;
        let mut d = Diagnostic::error(code, String::new())
            .with_source(self.file)
            .in_flavor(self.flavor)
            .at_key(dotted(path));
        d.severity = severity;
        if let Some(o) = origin {
            let primary = o.env.as_ref().map(|e| e.reference).or(o.value_span);
            let label = match &o.env {
                Some(e) => {
                    let what = match &e.given {
                        Given::Set(v) => format!("`{}` is `{}`", e.name, v.escape_debug()),
                        Given::Default(dv) => {
                            format!("`{}` is not set; its default is `{}`", e.name, dv)
                        }
                        Given::Unset => format!("`{}` is not set", e.name),
                    };
                    if let Given::Set(v) = &e.given {
                        message.push_str(&format!(" (from `{}`=`{}`)", e.name, v.escape_debug()));
                    }
                    if label.is_empty() {
                        what
                    } else {
                        format!("{label}: {what}")
                    }
                }
                None => label.to_owned(),
            };
            if let Some(span) = primary {
                d = d.label(span, label);
            }
        }
        if let Some(merge) = via {
            d = d.label(
                merge,
                format!(
                    "flavor `{}` inherits it through this merge key",
                    self.flavor
                ),
            );
        }
        message.push_str(&format!(" in flavor `{}`", self.flavor));
        d.message = message;
        d
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn mismatch(&mut self, sec: &Sec<'_>, key: &str, expected: &str, v: &Value, help: &str) {
        let path = sec.path_of(key);
        let d = self
            .at(
                "regconf::type::mismatch",
                Severity::Error,
                &path,
                format!("`{}` must be {expected}, not {}", dotted(&path), article(v)),
                &format!("expected {expected}"),
            )
            .help(help.to_owned());
        self.push(d);
    }

    /// The text as written for the value at `path` (the scalar in the file
    /// or the variable's text), if known.
    fn written(&self, path: &[Key]) -> Option<String> {
        let o = self.prov.get(path)?;
        if let Some(e) = &o.env {
            if o.inside_variable.is_none() {
                return Some(e.given.text().trim().to_owned());
            }
            return None;
        }
        let span = o.value_span?;
        let text = self.file.text().get(span.start..span.end)?;
        Some(text.trim().to_owned())
    }

    /// A string setting. YAML 1.1 scalars typed as something else (`no`,
    /// `on`, `0755`, `1:30`) are accepted as written, with a warning.
    fn string(&mut self, sec: &mut Sec<'_>, key: &str) -> Option<String> {
        let v = sec.get(key)?;
        let path = sec.path_of(key);
        match v {
            Value::Str(s) => Some(s.clone()),
            Value::Bool(_)
            | Value::Int(_)
            | Value::BigInt(_)
            | Value::Float(_)
            | Value::Date(_)
            | Value::DateTime(_) => {
                let written = self.written(&path).unwrap_or_else(|| shown(v));
                let d = self
                    .at(
                        "regconf::yaml::not_a_string",
                        Severity::Warning,
                        &path,
                        format!(
                            "`{}` is meant to be a string, but YAML 1.1 reads `{written}` as {}",
                            dotted(&path),
                            article(v)
                        ),
                        "not a string",
                    )
                    .help(format!(
                        "quote it (`'{written}'`); docker-registry saw {}, regconf uses the text as written",
                        article(v)
                    ));
                self.push(d);
                Some(written)
            }
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            other => {
                self.mismatch(
                    sec,
                    key,
                    "a string",
                    other,
                    "write one value, quoted if in doubt",
                );
                None
            }
        }
    }

    /// An integer setting; `lenient` accepts a string of digits, as
    /// `int(value)` did.
    fn int(&mut self, sec: &mut Sec<'_>, key: &str, lenient: bool) -> Option<i64> {
        let v = sec.get(key)?;
        match v {
            Value::Int(i) => return Some(*i),
            Value::Str(s) if lenient => {
                if let Ok(i) = s.trim().parse::<i64>() {
                    return Some(i);
                }
            }
            _ => {}
        }
        self.mismatch(sec, key, "an integer", v, "write a whole number, unquoted");
        None
    }

    fn uint(&mut self, sec: &mut Sec<'_>, key: &str) -> Option<u64> {
        let i = self.int(sec, key, true)?;
        match u64::try_from(i) {
            Ok(u) => Some(u),
            Err(_) => {
                let v = Value::Int(i);
                self.mismatch(
                    sec,
                    key,
                    "a positive integer",
                    &v,
                    "write a number of seconds",
                );
                None
            }
        }
    }

    /// A switch docker-registry tested with `is True`.
    fn exactly_true(&mut self, sec: &mut Sec<'_>, key: &str) -> Option<bool> {
        let v = sec.get(key)?;
        if let Value::Bool(b) = v {
            return Some(*b);
        }
        let path = sec.path_of(key);
        let d = self
            .at(
                "regconf::type::not_exactly_true",
                Severity::Error,
                &path,
                format!(
                    "`{}` must be `true` or `false`, not {}: docker-registry tested `is True`, so this is off",
                    dotted(&path),
                    article(v)
                ),
                "not a boolean",
            )
            .help("write `true` or `false`, unquoted");
        self.push(d);
        Some(false)
    }

    /// A switch docker-registry tested for truthiness.
    fn truthy(&mut self, sec: &mut Sec<'_>, key: &str) -> Option<bool> {
        let v = sec.get(key)?;
        if let Value::Bool(b) = v {
            return Some(*b);
        }
        let path = sec.path_of(key);
        let on = if v.is_truthy() { "on" } else { "off" };
        let d = self
            .at(
                "regconf::type::not_boolean",
                Severity::Error,
                &path,
                format!(
                    "`{}` must be `true` or `false`, not {}, which docker-registry took as {on}",
                    dotted(&path),
                    article(v)
                ),
                "not a boolean",
            )
            .help("write `true` or `false`, unquoted (the string `\"false\"` is on)");
        self.push(d);
        Some(v.is_truthy())
    }

    /// One string or a list of strings.
    fn strings(&mut self, sec: &mut Sec<'_>, key: &str) -> Vec<String> {
        let Some(v) = sec.get(key) else {
            return Vec::new();
        };
        match v {
            Value::Str(s) => vec![s.clone()],
            Value::Seq(items) if items.iter().all(|i| matches!(i, Value::Str(_))) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            other => {
                self.mismatch(
                    sec,
                    key,
                    "a string or a list of strings",
                    other,
                    "write `value` or `[a, b]`",
                );
                Vec::new()
            }
        }
    }

    /// A nested section: a mapping, or absent.
    fn section<'m>(&mut self, sec: &mut Sec<'m>, key: &str) -> Sec<'m> {
        let path = sec.path_of(key);
        match sec.get(key) {
            None => Sec::new(None, path),
            Some(Value::Map(m)) => Sec::new(Some(m), path),
            Some(other) => {
                self.mismatch(
                    sec,
                    key,
                    "a mapping",
                    other,
                    "indent the settings under the key",
                );
                Sec::new(None, path)
            }
        }
    }

    /// Keys of `sec` nothing read: kept in `extra`; those in no table are
    /// reported.
    fn rest(&mut self, sec: &Sec<'_>, known: &[&str], silent: &[&str]) -> model::Extra {
        let mut extra = model::Extra::new();
        let Some(map) = sec.map else {
            return extra;
        };
        for (k, v) in map {
            let name = k.display();
            if k.as_str().is_some_and(|s| sec.used.contains(s)) {
                continue;
            }
            extra.insert(name.clone(), to_json_value(v));
            if k.as_str()
                .is_some_and(|s| silent.contains(&s) || known.contains(&s))
            {
                continue;
            }
            let mut path = sec.path.clone();
            path.push(k.clone());
            let near = did_you_mean(&name, known.iter().chain(silent).copied());
            let (origin, via) = self.origin(&path);
            let mut d = Diagnostic::warning(
                "regconf::key::unknown",
                format!(
                    "unknown key `{}` in flavor `{}`",
                    dotted(&path),
                    self.flavor
                ),
            )
            .with_source(self.file)
            .in_flavor(self.flavor)
            .at_key(dotted(&path));
            let label = near.map_or_else(
                || "not a setting".to_owned(),
                |n| format!("did you mean `{n}`?"),
            );
            if let Some(span) =
                origin.and_then(|o| o.key_span.or(o.env.as_ref().map(|e| e.reference)))
            {
                d = d.label(span, label);
            }
            if let Some(merge) = via {
                d = d.label(
                    merge,
                    format!(
                        "flavor `{}` inherits it through this merge key",
                        self.flavor
                    ),
                );
            }
            d = match near {
                Some(n) => d.help(format!(
                    "did you mean `{n}`? docker-registry ignored unknown keys"
                )),
                None => {
                    d.help("docker-registry ignored unknown keys; remove it or check the spelling")
                }
            };
            self.push(d);
        }
        extra
    }

    fn config(&mut self, map: &Map) -> model::Config {
        let mut top = Sec::new(Some(map), Vec::new());
        let flavor = self.flavor.to_owned();
        top.get("flavor");
        let loglevel = self.string(&mut top, "loglevel");
        if let Some(level) = &loglevel
            && !LEVELS.contains(&level.to_ascii_lowercase().as_str())
        {
            let path = top.path_of("loglevel");
            let d = self
                    .at(
                        "regconf::value::loglevel",
                        Severity::Error,
                        &path,
                        format!("`loglevel` `{level}` is not a log level"),
                        "not a level",
                    )
                    .help("use `debug`, `info`, `warning`, `error` or `critical`; docker-registry crashed at start on any other name");
            self.push(d);
        }
        let debug = self.truthy(&mut top, "debug").unwrap_or(false);
        let issue = self.string(&mut top, "issue");
        let standalone = self.exactly_true(&mut top, "standalone").unwrap_or(false);
        let index_endpoint = self.string(&mut top, "index_endpoint");
        let disable_token_auth = self
            .exactly_true(&mut top, "disable_token_auth")
            .unwrap_or(false);
        let privileged_key = self.string(&mut top, "privileged_key");
        let storage_redirect = self.truthy(&mut top, "storage_redirect").unwrap_or(false);
        let nginx_x_accel_redirect = self.string(&mut top, "nginx_x_accel_redirect");
        let registry_endpoints = self.string(&mut top, "registry_endpoints");
        let search_backend = self
            .string(&mut top, "search_backend")
            .filter(|s| !s.is_empty());
        let sqlalchemy_index_database = self.string(&mut top, "sqlalchemy_index_database");
        self.search(
            &top,
            search_backend.as_deref(),
            sqlalchemy_index_database.as_deref(),
        );

        let mut s = self.section(&mut top, "mirroring");
        let mirroring = model::Mirroring {
            source: self.string(&mut s, "source"),
            source_index: self.string(&mut s, "source_index"),
            tags_cache_ttl: self.int(&mut s, "tags_cache_ttl", false),
            extra: model::Extra::new(),
        };
        let mirroring = model::Mirroring {
            extra: self.rest(&s, section_keys("mirroring"), &[]),
            ..mirroring
        };
        let cache = self.redis(&mut top, "cache");
        let cache_lru = self.redis(&mut top, "cache_lru");
        let mut s = self.section(&mut top, "email_exceptions");
        let mut email = model::EmailExceptions {
            smtp_host: self.string(&mut s, "smtp_host"),
            smtp_port: self.int(&mut s, "smtp_port", true),
            smtp_login: self.string(&mut s, "smtp_login"),
            smtp_password: self.string(&mut s, "smtp_password"),
            smtp_secure: None,
            from_addr: self.string(&mut s, "from_addr"),
            to_addr: self.string(&mut s, "to_addr"),
            extra: model::Extra::new(),
        };
        email.smtp_secure = match s.get("smtp_secure") {
            None => None,
            Some(Value::Bool(b)) => Some(model::SmtpSecure::Enabled(*b)),
            Some(Value::Str(k)) => Some(model::SmtpSecure::Keyfile(k.clone())),
            Some(Value::Map(_)) => {
                let mut f = self.section(&mut s, "smtp_secure");
                let files = model::SmtpSecure::Files {
                    keyfile: self.string(&mut f, "keyfile"),
                    certfile: self.string(&mut f, "certfile"),
                };
                self.rest(&f, &["keyfile", "certfile"], &[]);
                Some(files)
            }
            Some(other) => {
                self.mismatch(
                    &s,
                    "smtp_secure",
                    "`true`, `false`, a key file or `{keyfile, certfile}`",
                    other,
                    "write `false` for plain SMTP",
                );
                None
            }
        };
        email.extra = self.rest(&s, section_keys("email_exceptions"), &[]);
        let bugsnag = self.string(&mut top, "bugsnag");
        let mut s = self.section(&mut top, "cors");
        let mut cors = model::Cors {
            origins: self.strings(&mut s, "origins"),
            methods: self.strings(&mut s, "methods"),
            headers: self.strings(&mut s, "headers"),
            expose_headers: self.strings(&mut s, "expose_headers"),
            supports_credentials: self.truthy(&mut s, "supports_credentials").unwrap_or(false),
            max_age: self.uint(&mut s, "max_age"),
            send_wildcard: self.truthy(&mut s, "send_wildcard"),
            always_send: self.truthy(&mut s, "always_send"),
            automatic_options: self.truthy(&mut s, "automatic_options"),
            vary_header: self.truthy(&mut s, "vary_header"),
            resources: s.get("resources").map(to_json_value),
            extra: model::Extra::new(),
        };
        cors.extra = self.rest(&s, section_keys("cors"), &[]);
        let mut s = self.section(&mut top, "upload_purge");
        let defaults = model::UploadPurge::default();
        let upload_purge = model::UploadPurge {
            max_age_secs: self
                .uint(&mut s, "max_age_secs")
                .unwrap_or(defaults.max_age_secs),
            interval_secs: self
                .uint(&mut s, "interval_secs")
                .unwrap_or(defaults.interval_secs),
        };
        self.rest(&s, section_keys("upload_purge"), &[]);
        let (auth, tls, limits) = self.security(&mut top);
        let storage = self.storage(&mut top);
        let extra = self.rest(&top, TOP_KEYS, DRIVER_KEYS);
        model::Config {
            flavor,
            loglevel,
            debug,
            issue,
            standalone,
            index_endpoint,
            disable_token_auth,
            privileged_key,
            storage_redirect,
            nginx_x_accel_redirect,
            registry_endpoints,
            search_backend,
            sqlalchemy_index_database,
            mirroring,
            cache,
            cache_lru,
            email_exceptions: email,
            bugsnag,
            cors,
            storage,
            upload_purge,
            auth,
            tls,
            limits,
            extra,
        }
    }

    /// `auth:`, `tls:` and `limits:` (regconf extensions for `serve`).
    /// Types and ranges only: the files are checked by `validate --flavor`
    /// and loaded by `serve`.
    fn security(&mut self, top: &mut Sec<'_>) -> (model::Auth, model::Tls, model::Limits) {
        let mut s = self.section(top, "auth");
        let auth = model::Auth {
            htpasswd: self.string(&mut s, "htpasswd"),
            readonly: self.strings(&mut s, "readonly"),
        };
        self.rest(&s, section_keys("auth"), &[]);
        if let Some(p) = &auth.htpasswd {
            self.expansion(&s.path_of("htpasswd"), p);
        }
        if !auth.enabled() && !auth.readonly.is_empty() {
            let d = self
                .at(
                    "regconf::auth::readonly_without_htpasswd",
                    Severity::Warning,
                    &s.path_of("readonly"),
                    "`auth.readonly` has no effect without `auth.htpasswd`: every client may write"
                        .to_owned(),
                    "no htpasswd file",
                )
                .help("set `auth.htpasswd` to an htpasswd file of bcrypt hashes (`htpasswd -B`)");
            self.push(d);
        }
        let mut s = self.section(top, "tls");
        let tls = model::Tls {
            certificate: self.string(&mut s, "certificate"),
            key: self.string(&mut s, "key"),
        };
        self.rest(&s, section_keys("tls"), &[]);
        let set = |o: &Option<String>| o.as_deref().is_some_and(|v| !v.is_empty());
        for (have, missing) in [("certificate", "key"), ("key", "certificate")] {
            let (a, b) = if have == "certificate" {
                (&tls.certificate, &tls.key)
            } else {
                (&tls.key, &tls.certificate)
            };
            if set(a) && !set(b) {
                let d = self
                    .at(
                        "regconf::tls::incomplete",
                        Severity::Error,
                        &s.path_of(have),
                        format!("`tls.{have}` is set but `tls.{missing}` is not: TLS needs both"),
                        "only half of TLS",
                    )
                    .help(format!(
                        "add `{missing}: /path/to/file.pem` under `tls:`, or remove the section"
                    ));
                self.push(d);
            }
        }
        for key in ["certificate", "key"] {
            let v = if key == "key" {
                &tls.key
            } else {
                &tls.certificate
            };
            if let Some(p) = v {
                self.expansion(&s.path_of(key), p);
            }
        }
        let mut s = self.section(top, "limits");
        let d = model::Limits::default();
        let mut limit = |c: &mut Self, key: &str, default: u64, least: u64| {
            let v = c.uint(&mut s, key)?;
            if v < least {
                let path = s.path_of(key);
                let diag = c
                    .at(
                        "regconf::value::limit",
                        Severity::Error,
                        &path,
                        format!("`limits.{key}` must be at least {least}, not {v}"),
                        "too small",
                    )
                    .help(format!("leave it out for the default, {default}"));
                c.push(diag);
                return None;
            }
            Some(v)
        };
        let limits = model::Limits {
            max_manifest_bytes: limit(self, "max_manifest_bytes", d.max_manifest_bytes, 1024)
                .unwrap_or(d.max_manifest_bytes),
            max_header_bytes: limit(self, "max_header_bytes", d.max_header_bytes, 8192)
                .unwrap_or(d.max_header_bytes),
            header_timeout_secs: limit(self, "header_timeout_secs", d.header_timeout_secs, 1)
                .unwrap_or(d.header_timeout_secs),
            idle_timeout_secs: limit(self, "idle_timeout_secs", d.idle_timeout_secs, 1)
                .unwrap_or(d.idle_timeout_secs),
            max_connections: limit(self, "max_connections", d.max_connections, 1)
                .unwrap_or(d.max_connections),
        };
        self.rest(&s, section_keys("limits"), &[]);
        (auth, tls, limits)
    }

    fn redis(&mut self, top: &mut Sec<'_>, key: &str) -> model::Redis {
        let mut s = self.section(top, key);
        let mut r = model::Redis {
            host: self.string(&mut s, "host"),
            port: self.int(&mut s, "port", true),
            db: self.int(&mut s, "db", true),
            password: self.string(&mut s, "password"),
            extra: model::Extra::new(),
        };
        r.extra = self.rest(&s, section_keys(key), &[]);
        r
    }

    /// The search index: `sqlalchemy` over SQLite is what `serve` runs.
    fn search(&mut self, top: &Sec<'_>, backend: Option<&str>, database: Option<&str>) {
        let Some(backend) = backend else { return };
        let severity = match self.mode {
            Mode::Static => Severity::Warning,
            Mode::Environment => Severity::Error,
        };
        if !backend.eq_ignore_ascii_case("sqlalchemy") {
            let d = self
                .at(
                    "regconf::serve::search_backend",
                    severity,
                    &top.path_of("search_backend"),
                    format!("`search_backend` `{backend}` cannot be served: regconf's search index is `sqlalchemy`"),
                    "not `sqlalchemy`",
                )
                .help("write `search_backend: sqlalchemy`, or leave it empty for no /v1/search");
            self.push(d);
            return;
        }
        let db = database.unwrap_or("");
        if !db.starts_with("sqlite://") {
            let d = self
                .at(
                    "regconf::serve::search_database",
                    severity,
                    &top.path_of("sqlalchemy_index_database"),
                    format!(
                        "the search database `{db}` is not a SQLite URL; regconf serves only SQLite"
                    ),
                    "not `sqlite://...`",
                )
                .help("write `sqlite:////absolute/path.db` (four slashes for an absolute path)");
            self.push(d);
        } else {
            let path = db.trim_start_matches("sqlite:///");
            self.expansion(&top.path_of("sqlalchemy_index_database"), path);
        }
    }

    /// Advice when a path the registry opens relies on `~`/`$VAR` expansion.
    fn expansion(&mut self, path: &[Key], value: &str) {
        if value.starts_with('~') || value.contains('$') {
            let d = self
                .at(
                    "regconf::path::expanded",
                    Severity::Advice,
                    path,
                    format!("`{}` uses `~` or `$VAR` in `{value}`: regconf expands it when serving, docker-registry used it literally", dotted(path)),
                    "expanded at use",
                )
                .help("write an absolute path if the file must also work with docker-registry");
            self.push(d);
        }
    }

    /// A required driver setting: missing, null, or from an unset variable.
    fn require(&mut self, sec: &Sec<'_>, key: &str, present: bool, driver: &str, why: &str) {
        if present {
            return;
        }
        let path = sec.path_of(key);
        let origin = self.prov.get(&path);
        let var = origin.and_then(|o| o.env.as_ref());
        let d = match (var, self.mode) {
            (Some(e), Mode::Static) if e.given == Given::Unset => self
                .at(
                    "regconf::env::required_unset",
                    Severity::Advice,
                    &path,
                    format!("`{key}` comes from `{}`, which has no default: set it, or the `{driver}` driver cannot start ({why})", e.name),
                    "required",
                )
                .help(format!("set `{}` when using this flavor, or write a default: `_env:{}:VALUE`", e.name, e.name)),
            _ => {
                let storage = sec.path_of("storage");
                let mut d = self.at(
                    "regconf::storage::missing_key",
                    Severity::Error,
                    if origin.is_some() { &path } else { &storage },
                    format!("the `{driver}` driver needs `{key}` ({why})"),
                    if origin.is_some() { "empty" } else { "this driver" },
                );
                d = d.help(format!("add `{key}: ...` to the flavor, or `{key}: _env:NAME` to read it from a variable"));
                d
            }
        };
        self.push(d);
    }

    fn storage(&mut self, top: &mut Sec<'_>) -> Storage {
        let name = self
            .string(top, "storage")
            .unwrap_or_else(|| "local".to_owned());
        let lower = name.to_ascii_lowercase();
        let path_default = |d: &str| d.to_owned();
        let storage = match lower.as_str() {
            "local" | "file" => {
                let storage_path = self
                    .string(top, "storage_path")
                    .unwrap_or_else(|| path_default("/tmp/registry"));
                self.expansion(&top.path_of("storage_path"), &storage_path);
                Storage::Local { storage_path }
            }
            "s3" | "cloudfronts3" => {
                let mut s = model::S3 {
                    boto_bucket: self.string(top, "boto_bucket").filter(|s| !s.is_empty()),
                    storage_path: self
                        .string(top, "storage_path")
                        .unwrap_or_else(|| path_default("/registry")),
                    s3_region: self.string(top, "s3_region"),
                    s3_access_key: self.string(top, "s3_access_key"),
                    s3_secret_key: self.string(top, "s3_secret_key"),
                    s3_secure: self.exactly_true(top, "s3_secure").unwrap_or(false),
                    s3_encrypt: self.exactly_true(top, "s3_encrypt").unwrap_or(false),
                    s3_use_sigv4: self.exactly_true(top, "s3_use_sigv4").unwrap_or(false),
                    s3_bucket: self.string(top, "s3_bucket"),
                    boto_host: self.string(top, "boto_host"),
                    boto_port: self.int(top, "boto_port", true),
                    boto_debug: self.int(top, "boto_debug", true),
                    boto_proxy: self.string(top, "boto_proxy"),
                    boto_proxy_port: self.int(top, "boto_proxy_port", true),
                    boto_proxy_user: self.string(top, "boto_proxy_user"),
                    boto_proxy_pass: self.string(top, "boto_proxy_pass"),
                    boto_calling_format: self.string(top, "boto_calling_format"),
                    cloudfront: None,
                };
                let mut cf = self.section(top, "cloudfront");
                if cf.map.is_some() {
                    s.cloudfront = Some(model::storage::Cloudfront {
                        base: self.string(&mut cf, "base"),
                        keyid: self.string(&mut cf, "keyid"),
                        keysecret: self.string(&mut cf, "keysecret"),
                    });
                    self.rest(&cf, section_keys("cloudfront"), &[]);
                }
                self.require(
                    top,
                    "boto_bucket",
                    s.boto_bucket.is_some(),
                    "s3",
                    "it needs a bucket",
                );
                Storage::S3(s)
            }
            "gcs" => {
                let g = model::Gcs {
                    boto_bucket: self.string(top, "boto_bucket").filter(|s| !s.is_empty()),
                    storage_path: self
                        .string(top, "storage_path")
                        .unwrap_or_else(|| path_default("/registry")),
                    gs_secure: self.exactly_true(top, "gs_secure").unwrap_or(false),
                    gs_access_key: self.string(top, "gs_access_key"),
                    gs_secret_key: self.string(top, "gs_secret_key"),
                    oauth2: self.exactly_true(top, "oauth2").unwrap_or(false),
                };
                self.require(
                    top,
                    "boto_bucket",
                    g.boto_bucket.is_some(),
                    "gcs",
                    "it needs a bucket",
                );
                Storage::Gcs(g)
            }
            "azureblob" => {
                let a = model::Azure {
                    azure_storage_account_name: self
                        .string(top, "azure_storage_account_name")
                        .filter(|s| !s.is_empty()),
                    azure_storage_account_key: self
                        .string(top, "azure_storage_account_key")
                        .filter(|s| !s.is_empty()),
                    azure_storage_container: self
                        .string(top, "azure_storage_container")
                        .unwrap_or_else(|| path_default("registry")),
                    azure_use_https: self.truthy(top, "azure_use_https").unwrap_or(false),
                };
                self.require(
                    top,
                    "azure_storage_account_name",
                    a.azure_storage_account_name.is_some(),
                    "azureblob",
                    "it needs an account",
                );
                self.require(
                    top,
                    "azure_storage_account_key",
                    a.azure_storage_account_key.is_some(),
                    "azureblob",
                    "it needs the account's key",
                );
                Storage::Azure(a)
            }
            "swift" => {
                let s = model::Swift {
                    storage_path: self
                        .string(top, "storage_path")
                        .unwrap_or_else(|| path_default("/registry")),
                    swift_authurl: self.string(top, "swift_authurl").filter(|s| !s.is_empty()),
                    swift_container: self
                        .string(top, "swift_container")
                        .unwrap_or_else(|| path_default("dev_container")),
                    swift_user: self.string(top, "swift_user"),
                    swift_password: self.string(top, "swift_password"),
                    swift_tenant_name: self.string(top, "swift_tenant_name"),
                    swift_region_name: self.string(top, "swift_region_name"),
                    swift_auth_version: self.int(top, "swift_auth_version", true).unwrap_or(2),
                    swift_object_storage_url: self.string(top, "swift_object_storage_url"),
                };
                self.require(
                    top,
                    "swift_authurl",
                    s.swift_authurl.is_some(),
                    "swift",
                    "it authenticates through Keystone",
                );
                Storage::Swift(s)
            }
            "glance" => Storage::Glance(model::Glance {
                storage_alternate: self
                    .string(top, "storage_alternate")
                    .unwrap_or_else(|| path_default("file")),
                storage_path: self
                    .string(top, "storage_path")
                    .unwrap_or_else(|| path_default("/tmp/registry")),
            }),
            "elliptics" => Storage::Elliptics(self.elliptics(top)),
            "oss" => Storage::Oss(model::Oss {
                storage_path: self
                    .string(top, "storage_path")
                    .unwrap_or_else(|| path_default("/registry/")),
                oss_host: self.string(top, "oss_host"),
                oss_bucket: self.string(top, "oss_bucket"),
                oss_accessid: self.string(top, "oss_accessid"),
                oss_accesskey: self.string(top, "oss_accesskey"),
            }),
            _ => {
                let near = did_you_mean(&lower, DRIVERS.iter().copied());
                let d = self
                    .at(
                        "regconf::storage::unknown_driver",
                        Severity::Error,
                        &top.path_of("storage"),
                        format!("unknown storage driver `{name}`"),
                        &near.map_or_else(
                            || "unknown driver".to_owned(),
                            |n| format!("did you mean `{n}`?"),
                        ),
                    )
                    .help(format!(
                        "the drivers are: {}",
                        DRIVERS
                            .iter()
                            .map(|d| format!("`{d}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                self.push(d);
                return Storage::Other(name);
            }
        };
        if self.mode == Mode::Environment
            && !model::storage::SERVED_DRIVERS.contains(&storage.driver())
        {
            let served = model::storage::SERVED_DRIVERS
                .iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let d = self
                .at(
                    "regconf::serve::unsupported_driver",
                    Severity::Error,
                    &top.path_of("storage"),
                    format!(
                        "`regconf serve` cannot use the `{}` driver",
                        storage.driver()
                    ),
                    "not served",
                )
                .help(format!(
                    "`regconf serve` runs {served}; `render` and `validate` accept every driver"
                ));
            self.push(d);
        }
        storage
    }

    fn elliptics(&mut self, top: &mut Sec<'_>) -> model::Elliptics {
        let nodes = match top.get("elliptics_nodes") {
            None => Vec::new(),
            Some(Value::Str(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Seq(items)) => items.iter().map(shown).collect(),
            Some(other) => {
                self.mismatch(
                    top,
                    "elliptics_nodes",
                    "a list or a string of nodes",
                    other,
                    "write `[host:1025:2, ...]`",
                );
                Vec::new()
            }
        };
        self.require(
            top,
            "elliptics_nodes",
            !nodes.is_empty(),
            "elliptics",
            "it needs nodes to connect to",
        );
        let groups = match top.get("elliptics_groups") {
            None => vec![1],
            Some(Value::Seq(items)) if items.iter().all(|i| matches!(i, Value::Int(_))) => items
                .iter()
                .filter_map(|i| {
                    if let Value::Int(n) = i {
                        Some(*n)
                    } else {
                        None
                    }
                })
                .collect(),
            Some(Value::Str(s)) => {
                let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
                match inner
                    .split(',')
                    .map(|p| p.trim().parse::<i64>())
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(g) => g,
                    Err(_) => {
                        let v = Value::Str(s.clone());
                        self.mismatch(
                            top,
                            "elliptics_groups",
                            "a list of group numbers",
                            &v,
                            "write `[1, 2]`",
                        );
                        vec![1]
                    }
                }
            }
            Some(other) => {
                self.mismatch(
                    top,
                    "elliptics_groups",
                    "a list of group numbers",
                    other,
                    "write `[1, 2]`",
                );
                vec![1]
            }
        };
        let verbosity = match top.get("elliptics_verbosity") {
            None => "error".to_owned(),
            Some(Value::Str(s)) => s.clone(),
            Some(Value::Int(n)) => {
                let path = top.path_of("elliptics_verbosity");
                let d = self
                    .at(
                        "regconf::value::verbosity_number",
                        Severity::Warning,
                        &path,
                        format!("`elliptics_verbosity` is the number `{n}`, not a level name; regconf accepts it as level `{n}`, but the elliptics driver called `.lower()` on it and would crash"),
                        "a number",
                    )
                    .help("write a level name such as `error`, `info` or `debug`");
                self.push(d);
                n.to_string()
            }
            Some(other) => {
                self.mismatch(
                    top,
                    "elliptics_verbosity",
                    "a log level name",
                    other,
                    "write `error`, `info` or `debug`",
                );
                "error".to_owned()
            }
        };
        model::Elliptics {
            elliptics_nodes: nodes,
            elliptics_wait_timeout: self.int(top, "elliptics_wait_timeout", false).unwrap_or(60),
            elliptics_check_timeout: self
                .int(top, "elliptics_check_timeout", false)
                .unwrap_or(60),
            elliptics_io_thread_num: self.int(top, "elliptics_io_thread_num", false).unwrap_or(2),
            elliptics_net_thread_num: self
                .int(top, "elliptics_net_thread_num", false)
                .unwrap_or(2),
            elliptics_nonblocking_io_thread_num: self
                .int(top, "elliptics_nonblocking_io_thread_num", false)
                .unwrap_or(2),
            elliptics_groups: groups,
            elliptics_verbosity: verbosity,
            elliptics_logfile: self
                .string(top, "elliptics_logfile")
                .unwrap_or_else(|| "/dev/stderr".to_owned()),
            elliptics_namespace: self
                .string(top, "elliptics_namespace")
                .unwrap_or_else(|| "DOCKER".to_owned()),
            elliptics_addr_family: self.int(top, "elliptics_addr_family", false),
        }
    }

    /// Variables that are set but empty (the default does not apply), and
    /// variables whose text holds a comment.
    fn env_pitfalls(&mut self) {
        let mut seen = HashSet::new();
        let entries: Vec<_> = self
            .prov
            .iter()
            .filter_map(|(p, o)| Some((p.clone(), o.env.clone()?)))
            .collect();
        for (path, e) in entries {
            if !seen.insert(e.reference.start) {
                continue;
            }
            let Given::Set(value) = &e.given else {
                continue;
            };
            let written = self
                .file
                .text()
                .get(e.reference.start..e.reference.end)
                .unwrap_or("");
            let written = written.trim_matches(|c| c == '\'' || c == '"');
            let default = env::parse_ref(written).and_then(|r| r.default);
            if value.trim().is_empty() {
                if let Some(default) = default {
                    let d = self
                        .at(
                            "regconf::env::set_but_empty",
                            Severity::Warning,
                            &path,
                            format!("`{}` is set but empty, so `{}` is null, not the default `{default}`", e.name, dotted(&path)),
                            "set but empty",
                        )
                        .help(format!("unset `{}` to get the default; docker-registry used the default only for unset variables", e.name));
                    self.push(d);
                }
            } else if let Some(kept) = comment_cut(value) {
                let d = self
                    .at(
                        "regconf::yaml::comment_in_value",
                        Severity::Warning,
                        &path,
                        format!("the value of `{}` holds ` #`, which YAML reads as a comment: `{}` is `{kept}`", e.name, dotted(&path)),
                        "comment inside",
                    )
                    .help(format!("quote the value inside the variable: `{}='\"...\"'`", e.name));
                self.push(d);
            }
        }
    }
}

/// If `text`, typed as a YAML plain scalar, loses a ` #...` comment, the
/// part that is kept.
pub fn comment_cut(text: &str) -> Option<String> {
    let t = text.trim_start();
    if t.starts_with(['\'', '"', '[', '{', '#']) {
        return None;
    }
    let bytes = t.as_bytes();
    (1..bytes.len())
        .find(|&i| bytes[i] == b'#' && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t'))
        .map(|i| t[..i].trim_end().to_owned())
}
