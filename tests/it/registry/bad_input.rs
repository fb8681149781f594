//! Bad input stores nothing and gets the right OCI error: invalid names
//! (including `..` and `%2e%2e`), wrong digests, truncated bodies,
//! malformed manifests, manifests whose blobs are missing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::{curl, digest, file, files_under, push_blob, put_manifest, random_bytes, start};

#[test]
fn invalid_names_touch_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = start(dir.path());
    let before = files_under(&reg.root);
    let data = file(dir.path(), "data", b"payload");
    let d = digest(b"payload");
    for name in [
        "..",
        "%2e%2e",
        "a/..",
        "../../etc",
        "a/%2e%2e/b",
        "a/%2F/b",
        "Upper",
        "a//b",
        "-a",
        "a_",
        "_uploads",
    ] {
        for (method, path) in [
            ("POST", format!("/v2/{name}/blobs/uploads/?digest={d}")),
            ("POST", format!("/v2/{name}/blobs/uploads/")),
            ("PUT", format!("/v2/{name}/manifests/latest")),
            ("GET", format!("/v2/{name}/tags/list")),
            ("GET", format!("/v2/{name}/blobs/{d}")),
        ] {
            let r = curl(&[
                "-X",
                method,
                "--data-binary",
                &format!("@{data}"),
                &reg.url(&path),
            ]);
            assert!(
                r.status == 400 || r.status == 404,
                "{method} {path}: {} {}",
                r.status,
                r.text()
            );
            if r.status == 400 {
                assert_eq!(r.error_code(), "NAME_INVALID", "{method} {path}");
            }
        }
    }
    assert_eq!(
        files_under(&reg.root),
        before,
        "invalid names created files"
    );
    assert!(!dir.path().join("etc").exists());
}

#[test]
fn wrong_digest_and_truncated_body_store_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = start(dir.path());
    let data = random_bytes(100_000, 3);
    let right = digest(&data);
    let wrong = digest(b"something else");
    let f = file(dir.path(), "data", &data);

    // Monolithic upload with the wrong digest.
    let r = curl(&[
        "-X",
        "POST",
        "--data-binary",
        &format!("@{f}"),
        &reg.url(&format!("/v2/bad/repo/blobs/uploads/?digest={wrong}")),
    ]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "DIGEST_INVALID");
    for d in [&right, &wrong] {
        assert_eq!(
            curl(&["-I", &reg.url(&format!("/v2/bad/repo/blobs/{d}"))]).status,
            404
        );
    }

    // Chunked upload closed with the wrong digest.
    let post = curl(&["-X", "POST", &reg.url("/v2/bad/repo/blobs/uploads/")]);
    let loc = reg.url(post.header("location").expect("location"));
    let r = curl(&["-X", "PATCH", "--data-binary", &format!("@{f}"), &loc]);
    assert_eq!(r.status, 202);
    let r = curl(&["-X", "PUT", &format!("{loc}?digest={wrong}")]);
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "DIGEST_INVALID");
    assert_eq!(curl(&[&loc]).status, 404, "a failed upload must be gone");

    // A body that ends before its Content-Length.
    let mut s = TcpStream::connect(&reg.host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "POST /v2/bad/repo/blobs/uploads/?digest={right} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        reg.host,
        data.len()
    )
    .expect("send headers");
    s.write_all(&data[..data.len() / 2]).expect("send half");
    s.shutdown(std::net::Shutdown::Write).expect("half close");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    assert_eq!(
        curl(&["-I", &reg.url(&format!("/v2/bad/repo/blobs/{right}"))]).status,
        404
    );

    // Nothing reached the blob store, and no upload is left behind.
    let blobs: Vec<String> = files_under(&reg.root)
        .into_iter()
        .filter(|p| p.starts_with("blobs/") || p.contains("_uploads") || p.contains("_layers"))
        .collect();
    assert!(blobs.is_empty(), "{blobs:?}");
}

#[test]
fn bad_manifests_store_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let reg = start(d);
    let config = push_blob(&reg, d, "man/repo", b"{}");
    let missing = digest(b"never pushed");

    let check = |body: &[u8], reference: &str, status: u16, code: &str| {
        let r = put_manifest(&reg, d, "man/repo", reference, body);
        assert_eq!(r.status, status, "{}", r.text());
        assert_eq!(r.error_code(), code);
        let md = digest(body);
        assert_eq!(
            curl(&[&reg.url(&format!("/v2/man/repo/manifests/{md}"))]).status,
            404
        );
        assert_eq!(
            curl(&[&reg.url("/v2/man/repo/manifests/latest")]).status,
            404
        );
    };

    check(b"{not json", "latest", 400, "MANIFEST_INVALID");
    check(
        br#"{"schemaVersion":2,"layers":"no"}"#,
        "latest",
        400,
        "MANIFEST_INVALID",
    );
    check(
        br#"{"schemaVersion":2,"mediaType":"application/x-other","layers":[]}"#,
        "latest",
        400,
        "MANIFEST_INVALID",
    );
    let with_missing_layer = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{missing}","size":12}}]}}"#
    );
    check(
        with_missing_layer.as_bytes(),
        "latest",
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );
    let index_missing_child = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{missing}","size":12}}]}}"#
    );
    check(
        index_missing_child.as_bytes(),
        "latest",
        400,
        "MANIFEST_BLOB_UNKNOWN",
    );

    // A valid manifest under a digest that is not its own.
    let good = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[]}}"#
    );
    check(good.as_bytes(), &missing, 400, "DIGEST_INVALID");
    // An invalid tag.
    check(good.as_bytes(), "-bad", 400, "MANIFEST_INVALID");

    // None of it left a manifest behind.
    let stored: Vec<String> = files_under(&reg.root)
        .into_iter()
        .filter(|p| p.contains("_manifests"))
        .collect();
    assert!(stored.is_empty(), "{stored:?}");

    // And the valid one is accepted under its own digest.
    let r = put_manifest(
        &reg,
        d,
        "man/repo",
        &digest(good.as_bytes()),
        good.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

also_on_s3!(
    invalid_names_touch_nothing,
    wrong_digest_and_truncated_body_store_nothing,
    bad_manifests_store_nothing
);
