//! What is wrong with a TLS certificate and key pair, judged from their PEM
//! text alone: validity dates, X.509 version, and whether the key is the
//! certificate's. Shared by `validate` (as diagnostics) and `serve` (which
//! refuses to start on an error and logs a warning), so both say the same.
//!
//! No I/O: callers read the files (with their own size and file-type
//! checks) and pass the bytes and the time to judge at. Nothing of the key
//! is ever put in a finding.
//!
//! Certificates are parsed with `x509-parser` (rusticata, pure Rust, no
//! unsafe in the parser): rustls and webpki validate chains but do not
//! expose a certificate's dates or version, and a v1 certificate is
//! refused by webpki with an error rustls reports as a key mismatch.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A certificate closer to its end than this gets a warning.
pub const EXPIRY_WARNING_SECS: i64 = 14 * 24 * 3600;

/// Which file a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFile {
    /// The certificate chain (`tls.certificate`).
    Certificate,
    /// The private key (`tls.key`).
    Key,
}

/// What kind of problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProblem {
    /// The file is not PEM of the expected kind (an error).
    Unreadable,
    /// The certificate is past its end date (an error).
    Expired,
    /// The certificate's start date is still to come (an error).
    NotYetValid,
    /// The certificate ends within [`EXPIRY_WARNING_SECS`] (a warning).
    ExpiresSoon,
    /// Not an X.509 v3 certificate (an error: TLS clients refuse it).
    Version,
    /// The key is not the certificate's (an error).
    KeyMismatch,
}

impl TlsProblem {
    /// Whether it stops `serve` (all but [`TlsProblem::ExpiresSoon`]).
    pub fn is_error(self) -> bool {
        self != Self::ExpiresSoon
    }
}

/// One problem with the pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFinding {
    /// The file it is about.
    pub file: TlsFile,
    /// Its kind.
    pub problem: TlsProblem,
    /// What is wrong, for operators (no key material).
    pub message: String,
}

/// A time as `2026-12-01 02:05:00 UTC`.
fn when(ts: i64) -> String {
    chrono::DateTime::from_timestamp(ts, 0).map_or_else(
        || ts.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Checks the certificate chain `cert_pem` (its first certificate, the
/// server's) and, when given, the key `key_pem` at `now` (seconds since
/// the epoch). `cert_path` and `key_path` name the files in messages.
pub fn check_pair(
    cert_pem: &[u8],
    cert_path: &str,
    key_pem: Option<(&[u8], &str)>,
    now: i64,
) -> Vec<TlsFinding> {
    let mut out = Vec::new();
    let finding = |file, problem, message| TlsFinding {
        file,
        problem,
        message,
    };
    let mut key_problem = None;
    let key = key_pem.map(|(pem, path)| (PrivateKeyDer::from_pem_slice(pem), path));
    if let Some((Err(_), path)) = &key {
        key_problem = Some(finding(
            TlsFile::Key,
            TlsProblem::Unreadable,
            format!("the TLS key `{path}` holds no PEM private key (PKCS#8, PKCS#1 or SEC1)"),
        ));
    }
    let certs: Vec<CertificateDer<'_>> =
        match CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>() {
            Ok(c) if !c.is_empty() => c,
            _ => {
                out.push(finding(
                    TlsFile::Certificate,
                    TlsProblem::Unreadable,
                    format!("the TLS certificate `{cert_path}` holds no PEM `CERTIFICATE`"),
                ));
                out.extend(key_problem);
                return out;
            }
        };
    out.extend(key_problem.take());
    let cert = match X509Certificate::from_der(&certs[0]) {
        Ok((_, c)) => c,
        Err(e) => {
            out.push(finding(
                TlsFile::Certificate,
                TlsProblem::Unreadable,
                format!("the TLS certificate `{cert_path}` is not an X.509 certificate: {e}"),
            ));
            return out;
        }
    };
    let version = cert.version().0 + 1;
    if version != 3 {
        out.push(finding(
            TlsFile::Certificate,
            TlsProblem::Version,
            format!(
                "the TLS certificate `{cert_path}` is an X.509 v{version} certificate: TLS \
                 clients (and rustls) accept only v3, the version that carries the names \
                 (subjectAltName) a client checks"
            ),
        ));
    }
    let (start, end) = (
        cert.validity().not_before.timestamp(),
        cert.validity().not_after.timestamp(),
    );
    if now < start {
        out.push(finding(
            TlsFile::Certificate,
            TlsProblem::NotYetValid,
            format!(
                "the TLS certificate `{cert_path}` is not valid yet: it starts on {}",
                when(start)
            ),
        ));
    } else if now > end {
        out.push(finding(
            TlsFile::Certificate,
            TlsProblem::Expired,
            format!("the TLS certificate `{cert_path}` expired on {}", when(end)),
        ));
    } else if end - now < EXPIRY_WARNING_SECS {
        out.push(finding(
            TlsFile::Certificate,
            TlsProblem::ExpiresSoon,
            format!(
                "the TLS certificate `{cert_path}` expires on {}, in {} days",
                when(end),
                (end - now) / 86_400
            ),
        ));
    }
    if let Some((Ok(key), key_path)) = key {
        // The public half of the key, as the certificate would carry it.
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let public = provider
            .key_provider
            .load_private_key(key)
            .ok()
            .and_then(|k| k.public_key().map(|p| p.into_owned()));
        match public {
            Some(p) if p.as_ref() != cert.public_key().raw => out.push(finding(
                TlsFile::Key,
                TlsProblem::KeyMismatch,
                format!(
                    "the TLS key `{key_path}` is not the key of the certificate `{cert_path}` \
                     (their public keys differ)"
                ),
            )),
            Some(_) => {}
            None => out.push(finding(
                TlsFile::Key,
                TlsProblem::KeyMismatch,
                format!(
                    "the TLS key `{key_path}` is of a kind rustls cannot sign with (RSA, ECDSA \
                     P-256/P-384/P-521 and Ed25519 work)"
                ),
            )),
        }
    }
    out
}
