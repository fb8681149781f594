//! `azureblob` against a real Blob service on loopback, Azurite: push and
//! pull with skopeo, a chunked upload with curl, the container created at
//! start. (`gcs` is in `gcs.rs`.)

use std::path::Path;

use regconf::model;

use super::azurite;
use super::image::round_trip_across_restart;

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
    // The container does not exist yet: the first `serve` creates it, and
    // a second start finds it there. A 9 MB layer takes the multipart
    // path (5 MiB parts).
    round_trip_across_restart(&c, d, "azure/app", &[300_000, 9_000_000, 5], 11);
}
