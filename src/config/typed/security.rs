//! The sections `serve` adds to the format: `auth:`, `tls:` and `limits:`,
//! and the paths it expands (`~`, `$VAR`). Types and ranges only: the files
//! themselves are checked in [`files`](super::files).

use std::ops::RangeInclusive;

use super::keys::section_keys;
use super::{Conv, Mode, Sec};
use crate::config::origin::dotted;
use crate::config::value::Key;
use crate::diagnostics::Severity;
use crate::model;

impl Conv<'_> {
    /// `auth:`, `tls:` and `limits:` (regconf extensions for `serve`).
    /// Types and ranges only: the files are checked by `validate --flavor`
    /// and loaded by `serve`.
    pub(super) fn security(
        &mut self,
        top: &mut Sec<'_>,
    ) -> (model::Auth, model::Tls, model::Limits) {
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
            self.report(
                "regconf::auth::readonly_without_htpasswd",
                Severity::Warning,
                &s.path_of("readonly"),
                "`auth.readonly` has no effect without `auth.htpasswd`: every client may write"
                    .to_owned(),
                "no htpasswd file",
                "set `auth.htpasswd` to an htpasswd file of bcrypt hashes (`htpasswd -B`)",
            );
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
                self.report(
                    "regconf::tls::incomplete",
                    Severity::Error,
                    &s.path_of(have),
                    format!("`tls.{have}` is set but `tls.{missing}` is not: TLS needs both"),
                    "only half of TLS",
                    format!(
                        "add `{missing}: /path/to/file.pem` under `tls:`, or remove the section"
                    ),
                );
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
        let mut limit = |c: &mut Self, key: &str, default: u64, range: RangeInclusive<u64>| {
            c.ranged_as(&mut s, key, range, Some(default), "regconf::value::limit")
                .unwrap_or(default)
        };
        let r = model::Limits::RANGES;
        let limits = model::Limits {
            max_manifest_bytes: limit(
                self,
                "max_manifest_bytes",
                d.max_manifest_bytes,
                r.max_manifest_bytes,
            ),
            max_header_bytes: limit(
                self,
                "max_header_bytes",
                d.max_header_bytes,
                r.max_header_bytes,
            ),
            header_timeout_secs: limit(
                self,
                "header_timeout_secs",
                d.header_timeout_secs,
                r.header_timeout_secs,
            ),
            idle_timeout_secs: limit(
                self,
                "idle_timeout_secs",
                d.idle_timeout_secs,
                r.idle_timeout_secs,
            ),
            max_connections: limit(
                self,
                "max_connections",
                d.max_connections,
                r.max_connections,
            ),
            max_connections_per_address: limit(
                self,
                "max_connections_per_address",
                d.max_connections_per_address,
                r.max_connections_per_address,
            ),
            min_body_bytes_per_sec: limit(
                self,
                "min_body_bytes_per_sec",
                d.min_body_bytes_per_sec,
                r.min_body_bytes_per_sec,
            ),
        };
        self.rest(&s, section_keys("limits"), &[]);
        (auth, tls, limits)
    }

    /// Advice when a path the registry opens relies on `~`/`$VAR` expansion;
    /// in an environment, an error when it names a variable that is unset
    /// there (the registry would create its files under a folder named
    /// `$NAME`).
    pub(super) fn expansion(&mut self, path: &[Key], value: &str) {
        if let Mode::Environment(env) = self.mode
            && let Some(name) = env.unset_in_path(value)
        {
            self.report(
                "regconf::path::unset_variable",
                Severity::Error,
                path,
                format!(
                    "`{}` is `{value}`, but `{name}` is not set in this environment",
                    dotted(path)
                ),
                "unset variable",
                format!("set `{name}` (or give it in `--env-file`), or write the path without it"),
            );
            return;
        }
        if value.starts_with('~') || value.contains('$') {
            self.report("regconf::path::expanded",
                    Severity::Advice,
                    path,
                    format!("`{}` uses `~` or `$VAR` in `{value}`: regconf expands it when serving, docker-registry used it literally", dotted(path)),
                    "expanded at use", "write an absolute path if the file must also work with docker-registry");
        }
    }
}
