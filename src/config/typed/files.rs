//! The files a flavor names that `serve` opens at start, besides storage:
//! the htpasswd file of `auth:` and the certificate and key of `tls:`.
//!
//! Checked when a flavor is resolved in an environment (`validate
//! --flavor`, `serve`), where the paths are final; a static `validate` of
//! every flavor does not open them (they usually exist only where the
//! registry runs). Only these paths are opened, and only to read; nothing
//! of their content is shown (an htpasswd problem names the line, a key
//! problem names the file).

use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use std::path::Path;

use crate::config::Env;
use crate::config::source::read_capped;
use crate::diagnostics::Severity;
use crate::model;
use crate::model::certificate::{self, TlsFile, TlsFinding, TlsProblem};

/// A problem with a file: the setting naming it, a diagnostic code and
/// the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Problem {
    /// Dotted key path of the setting (`auth.htpasswd`, `tls.key`, ...).
    pub(super) key: &'static str,
    /// Diagnostic code.
    pub(super) code: &'static str,
    /// Error, or a warning (a certificate near its end).
    pub(super) severity: Severity,
    /// What is wrong.
    pub(super) message: String,
    /// What to do.
    pub(super) help: String,
}

/// The most a certificate chain or a key file may hold (a chain of a few
/// certificates is a few KiB).
const PEM_LIMIT: u64 = 1 << 20;
/// The most an htpasswd file may hold: a bcrypt line is about 70 bytes, so
/// over a hundred thousand users.
const HTPASSWD_LIMIT: u64 = 8 << 20;

fn read(path: &str, limit: u64, env: &Env) -> Result<Vec<u8>, String> {
    read_capped(Path::new(&env.expand_path(path)), limit)
        .map_err(|e| format!("cannot read `{path}`: {}", e.reason()))
}

/// Checks the files of `config`.
pub(super) fn check(config: &model::Config, env: &Env) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(path) = config.auth.htpasswd.as_deref().filter(|p| !p.is_empty()) {
        let problem = |message: String| {
            Problem {
            key: "auth.htpasswd",
            code: "regconf::auth::htpasswd",
            severity: Severity::Error,
            message,
            help: "write the file with `htpasswd -B -c FILE USER` (bcrypt); other hash kinds are refused".to_owned(),
        }
        };
        match read(path, HTPASSWD_LIMIT, env) {
            Err(m) => out.push(problem(format!("the htpasswd file: {m}"))),
            Ok(bytes) => match model::security::parse_htpasswd(&String::from_utf8_lossy(&bytes)) {
                Err((0, m)) => out.push(problem(format!("the htpasswd file `{path}` {m}"))),
                Err((line, m)) => {
                    out.push(problem(format!(
                        "the htpasswd file `{path}`: line {line} {m}"
                    )));
                }
                Ok(users) => {
                    for r in &config.auth.readonly {
                        if !users.iter().any(|u| &u.user == r) {
                            out.push(Problem {
                                key: "auth.readonly",
                                code: "regconf::auth::readonly_unknown",
                                severity: Severity::Error,
                                message: format!("`auth.readonly` names `{r}`, who is not in the htpasswd file `{path}`"),
                                help: "add the user to the file, or remove the name".to_owned(),
                            });
                        }
                    }
                }
            },
        }
    }
    let set = |o: &Option<String>| o.as_deref().filter(|s| !s.is_empty()).map(str::to_owned);
    let tls_problem = |key, message| Problem {
        key,
        code: "regconf::tls::file",
        severity: Severity::Error,
        message,
        help: "give PEM files: the certificate chain (server first) and its private key".to_owned(),
    };
    let key = set(&config.tls.key).and_then(|path| match read(&path, PEM_LIMIT, env) {
        Err(m) => {
            out.push(tls_problem("tls.key", format!("the TLS key: {m}")));
            None
        }
        Ok(pem) => Some((pem, path)),
    });
    let mut key_checked = false;
    if let Some(path) = set(&config.tls.certificate) {
        match read(&path, PEM_LIMIT, env) {
            Err(m) => out.push(tls_problem(
                "tls.certificate",
                format!("the TLS certificate: {m}"),
            )),
            Ok(pem) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                let key = key
                    .as_ref()
                    .map(|(pem, path)| (pem.as_slice(), path.as_str()));
                key_checked = true;
                for f in certificate::check_pair(&pem, &path, key, now) {
                    out.push(tls_finding(f));
                }
            }
        }
    }
    if let Some((pem, path)) = &key
        && !key_checked
        && PrivateKeyDer::from_pem_slice(pem).is_err()
    {
        out.push(tls_problem(
            "tls.key",
            format!("the TLS key `{path}` holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"),
        ));
    }
    out
}

/// A finding of [`certificate::check_pair`] as a problem of its setting.
fn tls_finding(f: TlsFinding) -> Problem {
    let key = match f.file {
        TlsFile::Certificate => "tls.certificate",
        TlsFile::Key => "tls.key",
    };
    let (code, help) = match f.problem {
        TlsProblem::Unreadable => (
            "regconf::tls::file",
            "give PEM files: the certificate chain (server first) and its private key",
        ),
        TlsProblem::Expired | TlsProblem::NotYetValid => (
            "regconf::tls::validity",
            "renew the certificate (or check this machine's clock); `serve` refuses to start with it",
        ),
        TlsProblem::ExpiresSoon => (
            "regconf::tls::expires_soon",
            "renew the certificate before that date: clients refuse it afterwards",
        ),
        TlsProblem::Version => (
            "regconf::tls::version",
            "reissue it as v3 with a subjectAltName (`openssl req -x509 -addext subjectAltName=DNS:host ...`)",
        ),
        TlsProblem::KeyMismatch => (
            "regconf::tls::key_mismatch",
            "give the private key the certificate was issued for",
        ),
    };
    Problem {
        key,
        code,
        severity: if f.problem.is_error() {
            Severity::Error
        } else {
            Severity::Warning
        },
        message: f.message,
        help: help.to_owned(),
    }
}
