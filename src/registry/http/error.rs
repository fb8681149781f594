//! OCI error answers: each code with its HTTP status, listed once, and the
//! `{"errors":[{"code","message","detail"}]}` body.
//!
//! Handlers return [`ApiError`]; store and validation errors convert into it
//! here, so the mapping from failure to status lives in one place. The body
//! is written only by [`oci_error`], which the authentication layer (it
//! answers before any handler) uses too. Internal failures (storage I/O)
//! are logged with their cause and answered with a generic 500 that does
//! not leak paths.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::registry::oci::Invalid;
use crate::registry::store::StoreError;

/// A registered OCI error code and its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// `BLOB_UNKNOWN` 404.
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID` 400.
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_INVALID` 416 (a chunk out of order).
    RangeInvalid,
    /// `BLOB_UPLOAD_UNKNOWN` 404.
    BlobUploadUnknown,
    /// `DIGEST_INVALID` 400.
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN` 400.
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID` 400.
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN` 404.
    ManifestUnknown,
    /// `NAME_INVALID` 400.
    NameInvalid,
    /// `NAME_UNKNOWN` 404.
    NameUnknown,
    /// `SIZE_INVALID` 413 (a manifest over the limit).
    TooLarge,
    /// `UNSUPPORTED` 405 (method not allowed on the endpoint).
    MethodNotAllowed,
    /// `UNSUPPORTED` 404 (no such endpoint).
    NotFound,
    /// `UNKNOWN` 500.
    Internal,
    /// `UNKNOWN` 507: storage is full; nothing of the request was kept.
    StorageFull,
    /// `TOOMANYREQUESTS` 429 (as many uploads as allowed are open).
    TooManyRequests,
    /// `UNKNOWN` 502: the mirrored registry failed (see `store::mirror`).
    BadGateway,
}

impl Code {
    fn parts(self) -> (StatusCode, &'static str) {
        match self {
            Self::BlobUnknown => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            Self::BlobUploadInvalid => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
            Self::RangeInvalid => (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID"),
            Self::BlobUploadUnknown => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            Self::DigestInvalid => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            Self::ManifestBlobUnknown => (StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN"),
            Self::ManifestInvalid => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            Self::ManifestUnknown => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            Self::NameInvalid => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            Self::NameUnknown => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            Self::NotFound => (StatusCode::NOT_FOUND, "UNSUPPORTED"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
            Self::StorageFull => (StatusCode::INSUFFICIENT_STORAGE, "UNKNOWN"),
            Self::TooManyRequests => (StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS"),
            Self::BadGateway => (StatusCode::BAD_GATEWAY, "UNKNOWN"),
        }
    }
}

/// An error answer. Boxed, so that `Result<_, ApiError>` stays small on
/// the success path.
#[derive(Debug)]
pub(crate) struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    code: Code,
    message: String,
    detail: Value,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with a message and no detail.
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            code,
            message: message.into(),
            detail: Value::Null,
            headers: Vec::new(),
        }))
    }

    /// Adds a response header.
    #[must_use]
    pub(crate) fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    /// The code (for tests).
    #[cfg(test)]
    pub(crate) fn code(&self) -> Code {
        self.0.code
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        let code = match e {
            Invalid::Name(_) => Code::NameInvalid,
            Invalid::Tag(_) => Code::ManifestInvalid,
            Invalid::Digest(_) => Code::DigestInvalid,
        };
        Self::new(code, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let code = match &e {
            StoreError::BlobUnknown(_) => Code::BlobUnknown,
            StoreError::UploadUnknown(_) => Code::BlobUploadUnknown,
            StoreError::UploadInvalid(_) => Code::BlobUploadInvalid,
            StoreError::RangeInvalid { size, .. } | StoreError::ChunkLength { size, .. } => {
                let range = format!("0-{}", size.saturating_sub(1));
                let mut err = Self::new(Code::RangeInvalid, e.to_string());
                if let Ok(v) = HeaderValue::from_str(&range) {
                    err = err.with_header(header::RANGE, v);
                }
                return err;
            }
            StoreError::DigestMismatch { .. } => Code::DigestInvalid,
            StoreError::ManifestUnknown(_) => Code::ManifestUnknown,
            StoreError::ManifestInvalid(_) => Code::ManifestInvalid,
            StoreError::ManifestBlobUnknown(d) => {
                let mut err = Self::new(Code::ManifestBlobUnknown, e.to_string());
                err.0.detail = json!({ "digest": d.as_str() });
                return err;
            }
            StoreError::NameUnknown(_) => Code::NameUnknown,
            StoreError::TooManyUploads(_) => Code::TooManyRequests,
            StoreError::Upstream { .. } => {
                tracing::warn!(error = %e, "mirror: upstream failure");
                Code::BadGateway
            }
            StoreError::Storage(crate::registry::storage::StorageError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::StorageFull =>
            {
                tracing::error!("storage is full: a write was refused and undone");
                return Self::new(
                    Code::StorageFull,
                    "storage is full: no space left on the registry's disk; nothing of this request was kept",
                );
            }
            StoreError::Storage(inner) => {
                tracing::error!(error = %inner, "storage failure");
                return Self::new(Code::Internal, "internal storage error");
            }
        };
        Self::new(code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let this = *self.0;
        let (status, code) = this.code.parts();
        let mut res = oci_error(status, code, &this.message, this.detail);
        for (k, v) in this.headers {
            res.headers_mut().insert(k, v);
        }
        res
    }
}

/// An OCI error answer: `status` with the JSON body
/// `{"errors":[{"code","message"}]}`, plus `"detail"` unless it is null.
/// The one place that writes this body; [`ApiError`] and the
/// authentication layer (`registry::auth`) answer through it.
pub(crate) fn oci_error(status: StatusCode, code: &str, message: &str, detail: Value) -> Response {
    let mut err = json!({ "code": code, "message": message });
    if !detail.is_null() {
        err["detail"] = detail;
    }
    let body = json!({ "errors": [err] }).to_string();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}
