//! The object stores that are not S3, each against a real server on
//! loopback: `azureblob` against Azurite (push and pull with skopeo, a
//! chunked upload with curl, the container created at start), and `gcs`
//! through its HMAC (XML API) path with `gs_endpoint` on moto, the
//! S3-compatible server the other tests use. A `gcs` flavor without
//! credentials is refused before any request, so no test (and no operator
//! who did not ask) reaches for the cloud's metadata server.

use std::path::Path;

use regconf::model;

use super::image::oci_layout;
use super::{Registry, azurite, curl, digest, file, files_under, moto, skopeo, start_with};

/// A container name of the test's own (lowercase letters and digits, as
/// Azure wants), from the temporary directory's name.
fn container_of(dir: &Path) -> String {
    let name: String = dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("dir name")
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("t{}", name.to_ascii_lowercase())
}

/// Pushes `data` in three PATCH requests and a closing PUT; returns the
/// digest.
fn push_chunked(reg: &Registry, dir: &Path, repo: &str, data: &[u8]) -> String {
    let post = curl(&[
        "-X",
        "POST",
        &reg.url(&format!("/v2/{repo}/blobs/uploads/")),
    ]);
    assert_eq!(post.status, 202, "{}", post.text());
    let loc = reg.url(post.header("location").expect("location"));
    let third = data.len() / 3;
    let mut start = 0;
    for (i, chunk) in [&data[..third], &data[third..2 * third], &data[2 * third..]]
        .into_iter()
        .enumerate()
    {
        let f = file(dir, &format!("chunk{i}"), chunk);
        let end = start + chunk.len() - 1;
        let patch = curl(&[
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            &format!("Content-Range: {start}-{end}"),
            "--data-binary",
            &format!("@{f}"),
            &loc,
        ]);
        assert_eq!(patch.status, 202, "chunk {i}: {}", patch.text());
        start = end + 1;
    }
    let d = digest(data);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let put = curl(&["-X", "PUT", &format!("{loc}{sep}digest={d}")]);
    assert_eq!(put.status, 201, "{}", put.text());
    d
}

#[test]
fn skopeo_and_chunked_uploads_work_on_azurite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let container = container_of(d);
    let mut c = super::config(d);
    c.storage = model::Storage::Azure(azurite::settings(&container));
    c.loglevel = Some("warning".into());
    // The container does not exist yet: `serve` creates it at start.
    let reg = start_with(c.clone());

    // A 9 MB layer takes the multipart path (5 MiB parts).
    let src = d.join("src");
    let image = oci_layout(&src, "v1", &[300_000, 9_000_000, 5], 11);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/azure/app:v1", reg.host),
    ]);
    let data = super::random_bytes(700_000, 3);
    let chunked = push_chunked(&reg, d, "azure/app", &data);
    drop(reg);

    // A second start finds the container there, and everything in it.
    let reg = start_with(c);
    let dst = d.join("dst");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/azure/app:v1", reg.host),
        &format!("oci:{}:v1", dst.display()),
    ]);
    image.assert_pulled_identical(&src, &dst);
    let got = curl(&[&reg.url(&format!("/v2/azure/app/blobs/{chunked}"))]);
    assert_eq!(got.status, 200);
    assert!(got.body == data, "the chunked blob came back different");

    // The blobs are in the container, under the registry's layout.
    let stored = files_under(&reg.root);
    for dg in image.blobs.iter().chain([&chunked]) {
        let hex = &dg["sha256:".len()..];
        assert!(
            stored
                .iter()
                .any(|k| k.contains(hex) && k.ends_with("/data")),
            "{dg} is not stored in the container: {stored:?}"
        );
    }
}

#[test]
fn gcs_hmac_keys_reach_the_endpoint_written_in_gs_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let moto = moto::shared();
    let mut c = super::config(d);
    c.storage = model::Storage::Gcs(model::Gcs {
        boto_bucket: Some(moto::BUCKET.into()),
        storage_path: format!("/gcs/{}", container_of(d)),
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
fn a_gcs_flavor_without_credentials_is_refused_before_any_request() {
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
        "`storage: gcs` has no credentials: set `gs_access_key` and `gs_secret_key`, or \
         `oauth2: true` to use the cloud's own credentials (a service account file, or the \
         metadata server)"
    );
    // Refused from the settings alone: no connection was tried.
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}
