//! Uploads across restarts, expiry of abandoned uploads, concurrent pushes
//! of the same content and tag, and CORS.

use std::time::Duration;

use super::{config, curl, digest, file, push_image, random_bytes, start, start_with};

#[test]
fn upload_survives_restart_then_expires() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let data = random_bytes(200_000, 11);
    let dg = digest(&data);
    let (a, b) = data.split_at(120_000);
    let (fa, fb) = (file(d, "a", a), file(d, "b", b));

    // Half an upload, then a restart: the upload continues and its digest
    // is checked against what is on storage.
    let reg = start(d);
    let post = curl(&["-X", "POST", &reg.url("/v2/life/blobs/uploads/")]);
    let location = post.header("location").expect("location").to_owned();
    let r = curl(&[
        "-X",
        "PATCH",
        "--data-binary",
        &format!("@{fa}"),
        &reg.url(&location),
    ]);
    assert_eq!(r.status, 202);
    reg.stop();
    let reg = start(d);
    let status = curl(&[&reg.url(&location)]);
    assert_eq!(status.status, 204);
    assert_eq!(status.header("range"), Some("0-119999"));
    let r = curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Range: 120000-199999",
        "--data-binary",
        &format!("@{fb}"),
        &reg.url(&format!("{location}?digest={dg}")),
    ]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        curl(&[&reg.url(&format!("/v2/life/blobs/{dg}"))]).body,
        data
    );

    // An abandoned upload is purged at start once older than the limit...
    let post = curl(&["-X", "POST", &reg.url("/v2/life/blobs/uploads/")]);
    let abandoned = post.header("location").expect("location").to_owned();
    reg.stop();
    std::thread::sleep(Duration::from_millis(1100));
    let mut c = config(d);
    c.upload_purge.max_age_secs = 1;
    c.upload_purge.interval_secs = 1;
    let reg = start_with(c);
    assert_eq!(curl(&[&reg.url(&abandoned)]).status, 404);

    // ...and periodically while running.
    let post = curl(&["-X", "POST", &reg.url("/v2/life/blobs/uploads/")]);
    let fresh = post.header("location").expect("location").to_owned();
    assert_eq!(curl(&[&reg.url(&fresh)]).status, 204);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while curl(&[&reg.url(&fresh)]).status != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "upload was not purged"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn concurrent_pushes_of_same_blob_and_tag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let reg = start(d);
    let data = random_bytes(2_000_000, 5);
    let dg = digest(&data);
    let f = file(d, "blob", &data);
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                let r = curl(&[
                    "-X",
                    "POST",
                    "--data-binary",
                    &format!("@{f}"),
                    &reg.url(&format!("/v2/conc/blobs/uploads/?digest={dg}")),
                ]);
                assert_eq!(r.status, 201, "{}", r.text());
            });
        }
    });
    assert_eq!(
        curl(&[&reg.url(&format!("/v2/conc/blobs/{dg}"))]).body,
        data
    );

    // Several clients move one tag at once; it ends on one of their
    // manifests, whole.
    let pushed: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6u64)
            .map(|i| {
                let reg = &reg;
                s.spawn(move || {
                    let sub = d.join(format!("c{i}"));
                    std::fs::create_dir_all(&sub).expect("dir");
                    push_image(reg, &sub, "conc", "latest", 100 + i).1
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("push"))
            .collect()
    });
    let got = curl(&[&reg.url("/v2/conc/manifests/latest")]);
    assert_eq!(got.status, 200);
    let d_latest = got
        .header("docker-content-digest")
        .expect("digest")
        .to_owned();
    assert!(pushed.contains(&d_latest));
    assert_eq!(digest(&got.body), d_latest);
}

#[test]
fn cors_headers_follow_the_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.cors.origins = vec!["https://ui.example".into()];
    c.cors.methods = vec!["GET".into(), "HEAD".into()];
    c.cors.expose_headers = vec!["Docker-Content-Digest".into()];
    c.cors.supports_credentials = true;
    c.cors.max_age = Some(600);
    let reg = start_with(c);
    let pre = curl(&[
        "-X",
        "OPTIONS",
        "-H",
        "Origin: https://ui.example",
        "-H",
        "Access-Control-Request-Method: GET",
        &reg.url("/v2/"),
    ]);
    assert_eq!(pre.status, 200);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://ui.example")
    );
    assert_eq!(
        pre.header("access-control-allow-methods"),
        Some("GET, HEAD")
    );
    assert_eq!(pre.header("access-control-max-age"), Some("600"));
    assert_eq!(pre.header("access-control-allow-credentials"), Some("true"));
    let get = curl(&["-H", "Origin: https://ui.example", &reg.url("/v2/")]);
    assert_eq!(
        get.header("access-control-expose-headers"),
        Some("Docker-Content-Digest")
    );
    let other = curl(&["-H", "Origin: https://evil.example", &reg.url("/v2/")]);
    assert_eq!(other.header("access-control-allow-origin"), None);
}

also_on_s3!(
    upload_survives_restart_then_expires,
    concurrent_pushes_of_same_blob_and_tag,
    cors_headers_follow_the_configuration
);
