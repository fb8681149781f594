//! The distribution API over curl: chunked uploads, out-of-order chunks,
//! upload status, cross-repository mounts, ranges, pagination, deletes,
//! malformed digests, and the v1 extras.

use super::{curl, digest, file, push_blob, push_image, random_bytes, start};

#[test]
fn chunked_upload_status_mount_and_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let reg = start(d);
    let data = random_bytes(250_000, 7);
    let (a, rest) = data.split_at(100_000);
    let (b, c) = rest.split_at(100_000);
    let dg = digest(&data);

    let base = curl(&[&reg.url("/v2/")]);
    assert_eq!(base.status, 200);
    assert_eq!(
        base.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );

    let post = curl(&["-X", "POST", &reg.url("/v2/up/chunked/blobs/uploads/")]);
    assert_eq!(post.status, 202);
    assert_eq!(post.header("range"), Some("0-0"));
    let uuid = post
        .header("docker-upload-uuid")
        .expect("upload uuid")
        .to_owned();
    let location = post.header("location").expect("location").to_owned();
    assert!(location.ends_with(&uuid), "{location}");
    let loc = reg.url(&location);

    let fa = file(d, "a", a);
    let patch = curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "Content-Range: 0-99999",
        "--data-binary",
        &format!("@{fa}"),
        &loc,
    ]);
    assert_eq!(patch.status, 202, "{}", patch.text());
    assert_eq!(patch.header("range"), Some("0-99999"));

    // A chunk that does not start where the upload ends.
    let fb = file(d, "b", b);
    let skip = curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Range: 100005-200004",
        "--data-binary",
        &format!("@{fb}"),
        &loc,
    ]);
    assert_eq!(skip.status, 416, "{}", skip.text());
    assert_eq!(skip.error_code(), "BLOB_UPLOAD_INVALID");

    let status = curl(&[&loc]);
    assert_eq!(status.status, 204);
    assert_eq!(status.header("range"), Some("0-99999"));
    assert_eq!(status.header("docker-upload-uuid"), Some(uuid.as_str()));
    assert!(status.header("location").is_some());

    let patch = curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Range: 100000-199999",
        "--data-binary",
        &format!("@{fb}"),
        &loc,
    ]);
    assert_eq!(patch.status, 202);
    assert_eq!(patch.header("range"), Some("0-199999"));

    // The last chunk comes with the closing PUT.
    let fc = file(d, "c", c);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let put = curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Range: 200000-249999",
        "--data-binary",
        &format!("@{fc}"),
        &format!("{loc}{sep}digest={dg}"),
    ]);
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(put.header("docker-content-digest"), Some(dg.as_str()));
    assert_eq!(
        put.header("location"),
        Some(format!("/v2/up/chunked/blobs/{dg}").as_str())
    );
    // The upload is gone once finished.
    assert_eq!(curl(&[&loc]).status, 404);

    let got = curl(&[&reg.url(&format!("/v2/up/chunked/blobs/{dg}"))]);
    assert_eq!(got.status, 200);
    assert_eq!(got.body, data);
    let head = curl(&["-I", &reg.url(&format!("/v2/up/chunked/blobs/{dg}"))]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("250000"));
    assert_eq!(head.header("docker-content-digest"), Some(dg.as_str()));
    // On the wire: headers only, the connection then closes.
    let raw = super::raw_request(
        &reg,
        &format!("HEAD /v2/up/chunked/blobs/{dg} HTTP/1.1\r\nConnection: close\r\n\r\n"),
    );
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        raw.ends_with("\r\n\r\n"),
        "HEAD answered with a body: {raw}"
    );
    assert!(
        raw.to_ascii_lowercase().contains("content-length: 250000"),
        "{raw}"
    );

    let part = curl(&[
        "-H",
        "Range: bytes=1000-1999",
        &reg.url(&format!("/v2/up/chunked/blobs/{dg}")),
    ]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 1000-1999/250000"));
    assert_eq!(part.body, &data[1000..2000]);
    let beyond = curl(&[
        "-H",
        "Range: bytes=300000-",
        &reg.url(&format!("/v2/up/chunked/blobs/{dg}")),
    ]);
    assert_eq!(beyond.status, 416);

    // Mount into another repository; a source without the blob falls back
    // to a normal upload.
    let mount = curl(&[
        "-X",
        "POST",
        &reg.url(&format!(
            "/v2/up/other/blobs/uploads/?mount={dg}&from=up/chunked"
        )),
    ]);
    assert_eq!(mount.status, 201, "{}", mount.text());
    assert_eq!(
        mount.header("location"),
        Some(format!("/v2/up/other/blobs/{dg}").as_str())
    );
    assert_eq!(
        curl(&[&reg.url(&format!("/v2/up/other/blobs/{dg}"))]).body,
        data
    );
    let no_mount = curl(&[
        "-X",
        "POST",
        &reg.url(&format!(
            "/v2/up/third/blobs/uploads/?mount={dg}&from=up/nothing"
        )),
    ]);
    assert_eq!(no_mount.status, 202);
    assert!(no_mount.header("docker-upload-uuid").is_some());
    // Not visible in a repository it was never pushed or mounted to.
    assert_eq!(
        curl(&["-I", &reg.url(&format!("/v2/up/third/blobs/{dg}"))]).status,
        404
    );

    // Cancel an upload.
    let loc3 = reg.url(no_mount.header("location").expect("location"));
    assert_eq!(curl(&["-X", "DELETE", &loc3]).status, 204);
    assert_eq!(curl(&[&loc3]).status, 404);
}

#[test]
fn pagination_deletes_and_malformed_digests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let reg = start(d);
    let mut digests = Vec::new();
    for (i, tag) in ["t3", "t0", "t4", "t1", "t2"].iter().enumerate() {
        digests.push(push_image(&reg, d, "pg/img", tag, i as u64).1);
    }
    for repo in ["pg/a", "pg/b"] {
        push_image(&reg, d, repo, "x", 99);
    }

    // Tags: lexical order, n and last, Link until the end.
    let all = curl(&[&reg.url("/v2/pg/img/tags/list")]).json();
    assert_eq!(
        all["tags"],
        serde_json::json!(["t0", "t1", "t2", "t3", "t4"])
    );
    let mut seen = Vec::new();
    let mut next = "/v2/pg/img/tags/list?n=2".to_owned();
    loop {
        let page = curl(&[&reg.url(&next)]);
        assert_eq!(page.status, 200);
        for t in page.json()["tags"].as_array().expect("tags") {
            seen.push(t.as_str().expect("tag").to_owned());
        }
        match page.header("link") {
            Some(link) => {
                assert!(link.ends_with(">; rel=\"next\""), "{link}");
                next = link[1..link.find('>').expect("<...>")].to_owned();
            }
            None => break,
        }
    }
    assert_eq!(seen, ["t0", "t1", "t2", "t3", "t4"]);
    let first = curl(&[&reg.url("/v2/pg/img/tags/list?n=2")]);
    assert_eq!(
        first.header("link"),
        Some("</v2/pg/img/tags/list?n=2&last=t1>; rel=\"next\"")
    );
    assert_eq!(
        curl(&[&reg.url("/v2/pg/img/tags/list?n=2&last=t3")]).json()["tags"],
        serde_json::json!(["t4"])
    );
    assert_eq!(
        curl(&[&reg.url("/v2/pg/none/tags/list")]).error_code(),
        "NAME_UNKNOWN"
    );

    // Catalog.
    let cat = curl(&[&reg.url("/v2/_catalog")]).json();
    assert_eq!(
        cat["repositories"],
        serde_json::json!(["pg/a", "pg/b", "pg/img"])
    );
    let p1 = curl(&[&reg.url("/v2/_catalog?n=2")]);
    assert_eq!(
        p1.json()["repositories"],
        serde_json::json!(["pg/a", "pg/b"])
    );
    assert_eq!(
        p1.header("link"),
        Some("</v2/_catalog?n=2&last=pg/b>; rel=\"next\"")
    );
    let p2 = curl(&[&reg.url("/v2/_catalog?n=2&last=pg/b")]);
    assert_eq!(p2.json()["repositories"], serde_json::json!(["pg/img"]));
    assert_eq!(p2.header("link"), None);

    // Manifest by digest, then delete: its tags go with it.
    let m0 = &digests[1]; // tag t0
    let got = curl(&[&reg.url(&format!("/v2/pg/img/manifests/{m0}"))]);
    assert_eq!(got.status, 200);
    assert_eq!(
        got.header("content-type"),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    let del = curl(&[
        "-X",
        "DELETE",
        &reg.url(&format!("/v2/pg/img/manifests/{m0}")),
    ]);
    assert_eq!(del.status, 202);
    let gone = curl(&[&reg.url(&format!("/v2/pg/img/manifests/{m0}"))]);
    assert_eq!(gone.status, 404);
    assert_eq!(gone.error_code(), "MANIFEST_UNKNOWN");
    assert_eq!(curl(&[&reg.url("/v2/pg/img/manifests/t0")]).status, 404);
    assert_eq!(
        curl(&[&reg.url("/v2/pg/img/tags/list")]).json()["tags"],
        serde_json::json!(["t1", "t2", "t3", "t4"])
    );
    // Delete by tag removes only the tag.
    assert_eq!(
        curl(&["-X", "DELETE", &reg.url("/v2/pg/img/manifests/t1")]).status,
        202
    );
    assert_eq!(
        curl(&[&reg.url(&format!("/v2/pg/img/manifests/{}", digests[3]))]).status,
        200
    );

    // Blob delete.
    let blob = push_blob(&reg, d, "pg/img", b"delete me");
    let url = reg.url(&format!("/v2/pg/img/blobs/{blob}"));
    assert_eq!(curl(&[&url]).status, 200);
    assert_eq!(curl(&["-X", "DELETE", &url]).status, 202);
    let after = curl(&[&url]);
    assert_eq!(after.status, 404);
    assert_eq!(after.error_code(), "BLOB_UNKNOWN");
    assert_eq!(curl(&["-X", "DELETE", &url]).status, 404);

    // Malformed digests are client errors, never server errors.
    for (method, path) in [
        ("GET", "/v2/pg/img/blobs/sha256:totallywrong"),
        ("HEAD", "/v2/pg/img/blobs/sha256:totallywrong"),
        ("DELETE", "/v2/pg/img/blobs/sha256:totallywrong"),
        ("GET", "/v2/pg/img/manifests/sha256:totallywrong"),
        ("DELETE", "/v2/pg/img/manifests/sha256:totallywrong"),
        ("GET", "/v2/pg/img/referrers/sha256:totallywrong"),
        (
            "POST",
            "/v2/pg/img/blobs/uploads/?digest=sha256:totallywrong",
        ),
        ("GET", "/v2/pg/img/blobs/uploads/not-a-uuid"),
    ] {
        let r = if method == "HEAD" {
            curl(&["-I", &reg.url(path)])
        } else {
            curl(&["-X", method, &reg.url(path)])
        };
        assert!(
            r.status == 400 || r.status == 404,
            "{method} {path}: {} {}",
            r.status,
            r.text()
        );
    }
}

#[test]
fn v1_endpoints_follow_the_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = start(dir.path());
    let root = curl(&[&reg.url("/")]);
    assert_eq!(root.status, 200);
    assert_eq!(root.text(), "\"regconf test registry\"");
    for path in ["/_ping", "/v1/_ping"] {
        let ping = curl(&[&reg.url(path)]);
        assert_eq!(ping.status, 200);
        assert_eq!(ping.header("x-docker-registry-standalone"), Some("True"));
        assert_eq!(ping.header("x-docker-registry-config"), Some("test"));
        assert!(ping.header("x-docker-registry-version").is_some());
        let body = ping.json();
        assert!(body["versions"].is_object(), "{body}");
        assert!(body["host"].is_array(), "{body}");
    }

    // Without `debug`, `standalone` or `issue`.
    let other = tempfile::tempdir().expect("tempdir");
    let mut config = super::config(other.path());
    config.debug = false;
    config.standalone = false;
    config.issue = None;
    let plain = super::start_with(config);
    let ping = curl(&[&plain.url("/_ping")]);
    assert_eq!(ping.text(), "{}");
    assert_eq!(ping.header("x-docker-registry-standalone"), Some("False"));
    assert_eq!(ping.header("x-docker-registry-config"), None);
    assert_eq!(
        curl(&[&plain.url("/")]).text(),
        "\"docker-registry server\""
    );
}

also_on_s3!(
    chunked_upload_status_mount_and_range,
    pagination_deletes_and_malformed_digests,
    v1_endpoints_follow_the_configuration
);
