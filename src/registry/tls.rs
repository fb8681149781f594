//! HTTPS for `serve` (`tls:` in the flavor): rustls with the aws-lc-rs
//! provider (the one `object_store` already builds), TLS 1.2 and 1.3, ALPN
//! `h2` and `http/1.1`, no client certificates.
//!
//! The certificate chain and key are read once, at start (regular files of
//! at most 1 MiB, as `validate` reads them), and judged as `validate` judges
//! them (`model::certificate`): expired, not yet valid, not v3 or a key
//! that is not the certificate's stops the start; a certificate within 14
//! days of its end is logged as a warning. The key's content is never
//! logged or shown (errors name the path and what is wrong).

use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::model;

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read the TLS {what} `{path}`: {source}")]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The path as configured.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A file's content is not usable.
    #[error("the TLS {what} `{path}` {message}")]
    Invalid {
        /// `certificate` or `key`.
        what: &'static str,
        /// The path as configured.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Only one of the two paths is set.
    #[error("TLS needs both `tls.certificate` and `tls.key`")]
    Incomplete,
}

fn read(what: &'static str, path: &str) -> Result<Vec<u8>, TlsError> {
    let expanded = shellexpand::full(path).map_or_else(|_| path.to_owned(), |p| p.into_owned());
    super::files::read_regular(&expanded, super::files::PEM_LIMIT)
        .map(|(bytes, _)| bytes)
        .map_err(|source| TlsError::Read {
            what,
            path: path.to_owned(),
            source,
        })
}

/// The rustls configuration for `tls`, or `None` when TLS is off.
pub(crate) fn server_config(tls: &model::Tls) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    if !tls.enabled() {
        return Ok(None);
    }
    let (Some(cert_path), Some(key_path)) = (
        tls.certificate.as_deref().filter(|s| !s.is_empty()),
        tls.key.as_deref().filter(|s| !s.is_empty()),
    ) else {
        return Err(TlsError::Incomplete);
    };
    let invalid = |what, path: &str, message: String| TlsError::Invalid {
        what,
        path: path.to_owned(),
        message,
    };
    let pem = read("certificate", cert_path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid("certificate", cert_path, format!("is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            "certificate",
            cert_path,
            "holds no `CERTIFICATE` block".to_owned(),
        ));
    }
    let cert_pem = pem;
    let pem = read("key", key_path)?;
    // Dates, version and key match, as `validate` judges them: an error
    // stops the start, a warning (near expiry) is logged.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    for f in model::certificate::check_pair(&cert_pem, cert_path, Some((&pem, key_path)), now) {
        if !f.problem.is_error() {
            tracing::warn!("{}", f.message);
            continue;
        }
        let (what, path) = match f.file {
            model::certificate::TlsFile::Certificate => ("certificate", cert_path),
            model::certificate::TlsFile::Key => ("key", key_path),
        };
        // The message names the file already; keep only what is wrong.
        let message = f
            .message
            .split_once(&format!("`{path}` "))
            .map_or(f.message.clone(), |(_, m)| m.to_owned());
        return Err(invalid(what, path, message));
    }
    // The pem error does not quote the key; nothing of it is shown.
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        invalid(
            "key",
            key_path,
            "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".to_owned(),
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("certificate", cert_path, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            invalid(
                "key",
                key_path,
                format!("does not fit the certificate `{cert_path}`: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}

/// The acceptor for `tls`, or `None` when TLS is off.
pub(crate) fn acceptor(tls: &model::Tls) -> Result<Option<TlsAcceptor>, TlsError> {
    Ok(server_config(tls)?.map(TlsAcceptor::from))
}
