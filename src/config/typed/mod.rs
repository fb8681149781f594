//! Stage 4: a resolved flavor → the typed model ([`crate::model::Config`]).
//!
//! Input: a [`Resolved`] flavor (values and their [`Provenance`]). Output:
//! the model, plus a [`Diagnostic`] for every value the model could not use
//! as written: wrong types (labelled at the value, at the `<<` that brought
//! it, with the variable that gave it), strings where docker-registry tested
//! `is True`, YAML 1.1 surprises where a string is expected, unknown keys
//! (kept in `extra`, with a did-you-mean), missing driver settings, and what
//! `serve` cannot do (through [`Conv::capability`]: an error only in
//! [`Mode::Serve`], a note for `validate --flavor`, nothing statically).
//! Types are judged by what docker-registry 0.9.1's code accepted, not by
//! the sample's values. Nothing here reads the environment, and only in
//! [`Mode::Environment`] and [`Mode::Serve`] are files read: those `serve` opens at start
//! besides storage (the htpasswd file, the TLS certificate and key), see
//! [`files`].
//!
//! By concern: [`scalars`] (strings, numbers, switches, sections, unknown
//! keys), [`storage`] (the drivers), [`search`] (the search index),
//! [`security`] (`auth:`, `tls:`, `limits:`), [`operate`] (`readonly`,
//! `metrics:`), [`mirroring`], [`warnings`] (docker-registry pitfalls in the
//! environment)
//! and the key tables in [`keys`]; this file holds the conversion of the
//! whole flavor and the one way a typed-value diagnostic is built.
//!
//! [`Mode::Static`] is `validate` without `--flavor`: values from `_env:`
//! are their defaults, and a required value that only an unset variable can
//! give is advice, not an error.

mod files;
mod keys;
mod mirroring;
mod operate;
mod scalars;
mod search;
mod security;
mod storage;
mod warnings;

use std::sync::Arc;

use super::env::{Env, Given};
use super::origin::{Origin, Provenance, dotted};
use super::resolve::Resolved;
use super::source::{Source, Span};
use super::value::{Key, Map, StrKey, Value};
use crate::diagnostics::{Diagnostic, Severity};
use crate::model;
use keys::{LEVELS, TOP_KEYS, section_keys};
pub(crate) use scalars::to_json_value;
use storage::DRIVER_KEYS;
pub(crate) use warnings::comment_cut;

/// How the values were resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode<'e> {
    /// Every `_env:` took its default (static validation of every flavor).
    Static,
    /// Resolved against an actual environment (`validate --flavor`), which
    /// also expands `~` and `$VAR` in the paths of the files checked. What
    /// `serve` cannot run is a note here: docker-registry could.
    Environment(&'e Env),
    /// As [`Mode::Environment`], for `serve` and `serve --check`: what
    /// `serve` cannot run is an error.
    Serve(&'e Env),
}

impl<'e> Mode<'e> {
    /// The environment, unless static.
    pub(crate) fn env(self) -> Option<&'e Env> {
        match self {
            Mode::Static => None,
            Mode::Environment(env) | Mode::Serve(env) => Some(env),
        }
    }
}

/// Converts a resolved flavor to the model, reporting what does not fit.
pub(crate) fn to_model(
    resolved: &Resolved,
    file: &Arc<Source>,
    mode: Mode<'_>,
) -> (model::Config, Vec<Diagnostic>) {
    let mut c = Conv {
        root: &resolved.config,
        prov: &resolved.provenance,
        file,
        flavor: &resolved.flavor,
        mode,
        diags: Vec::new(),
        plugin: None,
    };
    let config = c.config(&resolved.config);
    if let Some(env) = mode.env() {
        c.env_pitfalls();
        for p in files::check(&config, env) {
            let path: Vec<Key> = p.key.split('.').map(Key::from).collect();
            c.report(p.code, p.severity, &path, p.message, "", p.help);
        }
    }
    (config, c.diags)
}

/// One mapping being read: its values, where it sits, and which keys were
/// read.
struct Sec<'m> {
    map: Option<&'m Map>,
    path: Vec<Key>,
    /// By position in `map`: whether the entry was read (a key read but
    /// absent needs no mark: only the map's keys are listed as unread).
    /// Marks rather than a set of names: `validate` reads a hundred keys
    /// of each of 200,000 flavors in a large file.
    used: Vec<bool>,
}

impl<'m> Sec<'m> {
    fn new(map: Option<&'m Map>, path: Vec<Key>) -> Sec<'m> {
        Sec {
            map,
            path,
            used: Vec::new(),
        }
    }

    /// Whether the entry at `index` of the map was read.
    fn was_read(&self, index: usize) -> bool {
        self.used.get(index).copied().unwrap_or(false)
    }

    fn path_of(&self, key: &str) -> Vec<Key> {
        let mut p = self.path.clone();
        p.push(Key::from(key));
        p
    }

    /// The value of `key`, `None` when absent or null.
    fn get(&mut self, key: &str) -> Option<&'m Value> {
        let map = self.map?;
        let (index, _, v) = map.get_full(&StrKey(key))?;
        if self.used.is_empty() {
            self.used = vec![false; map.len()];
        }
        self.used[index] = true;
        match v {
            Value::Null => None,
            v => Some(v),
        }
    }
}

struct Conv<'a> {
    root: &'a Map,
    prov: &'a Provenance,
    file: &'a Arc<Source>,
    flavor: &'a str,
    mode: Mode<'a>,
    diags: Vec<Diagnostic>,
    /// The storage driver, when it is a plugin regconf does not know.
    plugin: Option<String>,
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

    /// Reports a problem with the value at `path`, the one way a typed-value
    /// diagnostic is built: labelled at the value (or the `_env:` reference,
    /// naming the variable and what it gave) and at the `<<` that brought
    /// it, with `help` on what to do.
    pub(super) fn report(
        &mut self,
        code: &'static str,
        severity: Severity,
        path: &[Key],
        message: String,
        label: &str,
        help: impl Into<String>,
    ) {
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
        let mut d = self.inherited(d, via);
        message.push_str(&format!(" in flavor `{}`", self.flavor));
        d.message = message;
        let mut d = d.help(help);
        if model::is_secret(&dotted(path)) {
            self.mask_value(&mut d, path);
        }
        self.diags.push(d);
    }

    /// Masks, in `d`'s texts, every quoted form of the secret value at
    /// `path`: as resolved, as written, and as its variable gave it.
    fn mask_value(&self, d: &mut Diagnostic, path: &[Key]) {
        let mut texts: Vec<String> = Vec::new();
        if let Some(v) = super::value::at_path(self.root, path) {
            texts.push(scalars::shown(v));
        }
        texts.extend(self.written(path));
        if let Some(e) = self.prov.get(path).and_then(|o| o.env.as_ref()) {
            let given = e.given.text();
            texts.push(given.to_owned());
            texts.push(given.trim().to_owned());
            texts.push(given.escape_debug().to_string());
        }
        texts.retain(|t| !t.is_empty());
        // longer first, so that a text holding another is masked whole
        texts.sort_by_key(|t| std::cmp::Reverse(t.len()));
        let mask = |s: &str| {
            texts.iter().fold(s.to_owned(), |s, t| {
                s.replace(&format!("`{t}`"), &format!("`{}`", model::MASK))
                    .replace(&format!("'{t}'"), &format!("'{}'", model::MASK))
            })
        };
        d.message = mask(&d.message);
        for l in &mut d.labels {
            l.text = mask(&l.text);
        }
        d.help = d.help.as_deref().map(mask);
    }

    /// `d`, labelled also at the merge key through which the flavor
    /// inherits the value, if it does.
    fn inherited(&self, d: Diagnostic, via: Option<Span>) -> Diagnostic {
        match via {
            Some(merge) => d.label(
                merge,
                format!(
                    "flavor `{}` inherits it through this merge key",
                    self.flavor
                ),
            ),
            None => d,
        }
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
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
            self.report("regconf::value::loglevel",
                        Severity::Error,
                        &path,
                        format!("`loglevel` `{level}` is not a log level"),
                        "not a level", "use `debug`, `info`, `warning`, `error` or `critical`; docker-registry crashed at start on any other name");
        }
        let debug = self.truthy(&mut top, "debug").unwrap_or(false);
        let issue = self.string(&mut top, "issue");
        // both `is True` and truthiness: only a boolean means one thing
        let standalone = self
            .identity_switch(&mut top, "standalone", false)
            .unwrap_or(false);
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

        let mirroring = self.mirroring(&mut top);
        let cache = self.redis(&mut top, "cache");
        let cache_lru = self.redis(&mut top, "cache_lru");
        let mut s = self.section(&mut top, "email_exceptions");
        let mut email = model::EmailExceptions {
            smtp_host: self.string(&mut s, "smtp_host"),
            smtp_port: self.port(&mut s, "smtp_port"),
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
            // 0.9.1 tested it for truthiness before its type: `1` is on
            Some(Value::Int(i)) => Some(model::SmtpSecure::Enabled(*i != 0)),
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
            max_age: self.ranged(&mut s, "max_age", model::Cors::MAX_AGE, None),
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
                .ranged(
                    &mut s,
                    "max_age_secs",
                    model::UploadPurge::MAX_AGE_SECS,
                    Some(defaults.max_age_secs),
                )
                .unwrap_or(defaults.max_age_secs),
            interval_secs: self
                .ranged(
                    &mut s,
                    "interval_secs",
                    model::UploadPurge::INTERVAL_SECS,
                    Some(defaults.interval_secs),
                )
                .unwrap_or(defaults.interval_secs),
        };
        self.rest(&s, section_keys("upload_purge"), &[]);
        let mut s = self.section(&mut top, "gc");
        let defaults = model::Gc::default();
        let gc = model::Gc {
            interval_secs: self
                .ranged(
                    &mut s,
                    "interval_secs",
                    model::Gc::INTERVAL_SECS,
                    Some(defaults.interval_secs),
                )
                .unwrap_or(defaults.interval_secs),
            grace_secs: self
                .ranged(
                    &mut s,
                    "grace_secs",
                    model::Gc::GRACE_SECS,
                    Some(defaults.grace_secs),
                )
                .unwrap_or(defaults.grace_secs),
            untagged: self.truthy(&mut s, "untagged").unwrap_or(defaults.untagged),
        };
        self.rest(&s, section_keys("gc"), &[]);
        let (auth, tls, limits) = self.security(&mut top);
        let (readonly, metrics) = self.operate(&mut top);
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
            readonly,
            metrics,
            gc,
            extra,
        }
    }

    fn redis(&mut self, top: &mut Sec<'_>, key: &str) -> model::Redis {
        let mut s = self.section(top, key);
        let mut r = model::Redis {
            host: self.string(&mut s, "host"),
            port: self.port(&mut s, "port"),
            db: self
                .ranged(&mut s, "db", model::Redis::DB_RANGE, Some(0))
                .and_then(|n| i64::try_from(n).ok()),
            password: self.string(&mut s, "password"),
            extra: model::Extra::new(),
        };
        r.extra = self.rest(&s, section_keys(key), &[]);
        r
    }

    /// What `serve` cannot run, which docker-registry ran: an error for
    /// `serve`, a note for `validate --flavor`, nothing for a static
    /// `validate` (the file is not at fault).
    fn capability(
        &mut self,
        code: &'static str,
        path: &[Key],
        message: String,
        label: &str,
        help: String,
    ) {
        match self.mode {
            Mode::Static => {}
            Mode::Environment(_) => self.report(
                code,
                Severity::Advice,
                path,
                message,
                label,
                format!("{help}. A note about `regconf serve`, not an error of the file: docker-registry 0.9.1 ran it, and `regconf serve --check` tells whether serve can"),
            ),
            Mode::Serve(_) => self.report(code, Severity::Error, path, message, label, help),
        }
    }
}
