//! `azureblob` against a real Blob service on loopback, Azurite: push and
//! pull with skopeo, a chunked upload with curl, the container created at
//! start. (`gcs` is in `gcs.rs`.)

use std::path::Path;

use regconf::model;

use super::image::{oci_layout, push_chunked};
use super::{azurite, curl, files_under, skopeo, start_with};

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
