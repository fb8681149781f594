//! `storage: gcs` against servers on loopback, both ways it can talk:
//!
//! * the JSON API without credentials (`gs_endpoint` alone) on
//!   fake-gcs-server (`tests/support/fake_gcs.rs`, started once per test
//!   process with one bucket; each test has a prefix of its own): push and
//!   pull with skopeo, byte-identical, a layer big enough for a resumable
//!   upload of several parts, and a chunked upload with curl;
//! * the HMAC keys (GCS's S3-compatible XML API) with `gs_endpoint` on
//!   moto, the S3 server the other tests use.
//!
//! A `gcs` flavor with no credentials and no endpoint is refused before
//! any request, so no test (and no operator who did not ask) reaches for
//! the cloud's metadata server.

use std::path::Path;
use std::sync::OnceLock;

use regconf::model;

use super::image::round_trip_across_restart;
use super::{Root, curl, files_under, moto, start_with};
use crate::support::fake_gcs::FakeGcs;

/// The bucket the tests share on the emulator.
const BUCKET: &str = "regconf-test";

/// The fake-gcs-server of this test process, with [`BUCKET`].
fn shared() -> &'static FakeGcs {
    static SERVER: OnceLock<FakeGcs> = OnceLock::new();
    SERVER.get_or_init(|| {
        let s = FakeGcs::start();
        s.create_bucket(BUCKET);
        s
    })
}

/// A prefix of the test's own, from its temporary directory's name.
fn prefix_of(dir: &Path) -> String {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("dir name")
        .trim_start_matches('.');
    format!("/tests/{name}")
}

/// Where [`start_with`] finds the objects of a `gcs` registry: on moto
/// when it has HMAC keys (the tests point `gs_endpoint` at moto then),
/// else on the shared fake-gcs-server.
pub(crate) fn root(g: &model::Gcs) -> Root {
    if g.gs_access_key.is_none() {
        return Root::Gcs(Box::new(g.clone()));
    }
    let port = g
        .gs_endpoint
        .as_deref()
        .and_then(|e| e.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .expect("tests point gs_endpoint at moto");
    let bucket = g.boto_bucket.as_deref().expect("bucket");
    Root::Bucket(Box::new(moto::settings(port, bucket, &g.storage_path)))
}

/// Every object name under the prefix of `g` on fake-gcs-server, relative
/// to it, sorted (listed through the JSON API with curl).
pub(crate) fn keys(g: &model::Gcs) -> Vec<String> {
    let prefix = format!("{}/", g.storage_path.trim_matches('/'));
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let url = format!(
            "{}/storage/v1/b/{BUCKET}/o?prefix={prefix}&pageToken={token}",
            shared().endpoint()
        );
        let r = curl(&[&url]);
        assert_eq!(r.status, 200, "{}", r.text());
        let page: serde_json::Value = serde_json::from_slice(&r.body).expect("a JSON listing");
        for item in page["items"].as_array().into_iter().flatten() {
            let name = item["name"].as_str().expect("a name");
            out.push(name.strip_prefix(&prefix).unwrap_or(name).to_owned());
        }
        match page["nextPageToken"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_owned(),
            _ => break,
        }
    }
    out.sort();
    out
}

#[test]
fn skopeo_and_chunked_uploads_work_on_fake_gcs_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut c = super::config(d);
    // As an operator writes it: a bucket and an endpoint, no credentials.
    c.storage = model::Storage::Gcs(model::Gcs {
        boto_bucket: Some(BUCKET.into()),
        storage_path: prefix_of(d),
        gs_endpoint: Some(shared().endpoint()),
        ..model::Gcs::default()
    });
    c.loglevel = Some("warning".into());
    // A 12 MB layer is written through a resumable upload of three parts
    // (5 MiB each, the last one short); a second process finds everything
    // in the bucket, and no staged part or upload is left behind.
    let stored = round_trip_across_restart(&c, d, "gcs/app", &[300_000, 12_000_000, 5], 13);
    assert!(
        !stored.iter().any(|k| k.contains("/.parts/")),
        "staged parts left: {stored:?}"
    );
}

/// A keyless flavor whose bucket is not on the endpoint is refused at
/// start, naming both (fake-gcs-server starts with no bucket at all).
#[test]
fn a_missing_bucket_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = super::config(dir.path());
    let endpoint = shared().endpoint();
    c.storage = model::Storage::Gcs(model::Gcs {
        boto_bucket: Some("nobody-made-this".into()),
        storage_path: "/registry".into(),
        gs_endpoint: Some(endpoint.clone()),
        ..model::Gcs::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let err = rt
        .block_on(regconf::registry::bind(
            &c,
            regconf::registry::ServeOptions {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            },
        ))
        .err()
        .expect("a flavor without its bucket was served");
    assert_eq!(
        err.to_string(),
        format!(
            "cannot set up `gcs` storage: bucket `nobody-made-this` does not exist at \
             `{endpoint}` (create it first)"
        )
    );
}

#[test]
fn hmac_keys_reach_the_endpoint_written_in_gs_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let moto = moto::shared();
    let mut c = super::config(d);
    c.storage = model::Storage::Gcs(model::Gcs {
        boto_bucket: Some(moto::BUCKET.into()),
        storage_path: format!("/gcs{}", prefix_of(d)),
        gs_access_key: Some("test".into()),
        gs_secret_key: Some("test".into()),
        gs_endpoint: Some(moto.endpoint()),
        ..model::Gcs::default()
    });
    c.loglevel = Some("warning".into());
    let reg = start_with(c);
    let data = super::random_bytes(200_000, 5);
    let dg = super::push_blob(&reg, d, "gcs/app", &data);
    let got = curl(&[&reg.url(&format!("/v2/gcs/app/blobs/{dg}"))]);
    assert_eq!(got.status, 200);
    assert!(got.body == data, "the blob came back different");
    let hex = &dg["sha256:".len()..];
    assert!(
        files_under(&reg.root)
            .iter()
            .any(|k| k.contains(hex) && k.ends_with("/data")),
        "{dg} is not in the bucket behind gs_endpoint"
    );
}

#[test]
fn a_flavor_without_credentials_or_endpoint_is_refused_before_any_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = super::config(dir.path());
    c.storage = model::Storage::Gcs(model::Gcs {
        boto_bucket: Some("images".into()),
        storage_path: "/registry".into(),
        ..model::Gcs::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = std::time::Instant::now();
    let err = rt
        .block_on(regconf::registry::bind(
            &c,
            regconf::registry::ServeOptions {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            },
        ))
        .err()
        .expect("a keyless gcs flavor was served");
    assert_eq!(
        err.to_string(),
        "`storage: gcs` has no credentials: set `gs_access_key` and `gs_secret_key` (or \
         `gs_endpoint` alone, for a server that takes no credentials), or `oauth2: true` to use the cloud's own credentials (a service account file, or the \
         metadata server)"
    );
    // Refused from the settings alone: no connection was tried.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
