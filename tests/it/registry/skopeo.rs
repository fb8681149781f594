//! skopeo (the containers/image client) pushes a multi-layer OCI image and
//! pulls it back byte for byte; `inspect` and `list-tags` agree with the
//! registry's own answers.

use super::image::oci_layout;
use super::{curl, files_under, skopeo, start};

#[test]
fn skopeo_round_trip_is_byte_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = start(dir.path());
    let src = dir.path().join("src");
    let image = oci_layout(&src, "v1", &[300_000, 70_000, 5, 1_500_000], 42);
    let src_ref = format!("oci:{}:v1", src.display());
    let remote = format!("docker://{}/skopeo/multi", reg.host);

    for tag in ["v1", "v2"] {
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            &src_ref,
            &format!("{remote}:{tag}"),
        ]);
    }

    // Back into a fresh layout.
    let dst = dir.path().join("dst");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("{remote}:v1"),
        &format!("oci:{}:v1", dst.display()),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dst.join("index.json")).expect("index.json"))
            .expect("json");
    assert_eq!(index["manifests"][0]["digest"], image.manifest.as_str());
    for d in image.blobs.iter().chain([&image.manifest]) {
        let rel = format!("blobs/sha256/{}", &d["sha256:".len()..]);
        assert_eq!(
            std::fs::read(src.join(&rel)).expect("source blob"),
            std::fs::read(dst.join(&rel)).unwrap_or_else(|e| panic!("pulled {rel}: {e}")),
            "{rel} differs"
        );
    }
    assert_eq!(
        files_under(&src.join("blobs")),
        files_under(&dst.join("blobs"))
    );

    // inspect agrees with the pushed manifest and the registry's headers.
    let inspect: serde_json::Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("{remote}:v1"),
    ]))
    .expect("inspect json");
    assert_eq!(inspect["Digest"], image.manifest.as_str());
    let layers: Vec<&str> = inspect["Layers"]
        .as_array()
        .expect("Layers")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert_eq!(
        layers,
        image.blobs[1..]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    let head = curl(&[
        "-I",
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &reg.url("/v2/skopeo/multi/manifests/v1"),
    ]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("docker-content-digest"),
        Some(image.manifest.as_str())
    );

    // list-tags agrees with tags/list.
    let tags: serde_json::Value =
        serde_json::from_slice(&skopeo(&["list-tags", "--tls-verify=false", &remote]))
            .expect("list-tags json");
    assert_eq!(tags["Tags"], serde_json::json!(["v1", "v2"]));
    let listed = curl(&[&reg.url("/v2/skopeo/multi/tags/list")]).json();
    assert_eq!(listed["tags"], tags["Tags"]);
    assert_eq!(listed["name"], "skopeo/multi");
}

also_on_s3!(skopeo_round_trip_is_byte_identical);
