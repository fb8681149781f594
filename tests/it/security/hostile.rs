//! Random hostile requests and path traversal: no panic, bounded memory,
//! nothing written outside `storage_path`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{Rng, Server, agent, bytes, digest, files_under, manifest, push_blob, raw};
use crate::support::http::status_of;

/// Random hostile requests: the server never panics, answers `/v2/`
/// afterwards, keeps its memory bounded and never writes outside
/// `storage_path`.
#[test]
fn hostile_requests_and_path_traversal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server = Server::start(
        d,
        "f:\n  storage: local\n  storage_path: ./data/store\n  loglevel: error\n  limits:\n    header_timeout_secs: 2\n    idle_timeout_secs: 2\n",
    );
    let port = server.port;
    let a = agent();
    let outside = |d: &Path| -> Vec<_> {
        files_under(d)
            .into_iter()
            .filter(|p| !p.starts_with("data/store"))
            .collect()
    };
    let outside_before = outside(d);

    // Traversal through names, references, digests and upload ids.
    let up = a
        .post(server.url("/v2/ok/blobs/uploads/"))
        .send_empty()
        .unwrap();
    let loc = up.headers()["location"].to_str().unwrap().to_owned();
    let id = loc.rsplit('/').next().unwrap().to_owned();
    let traversal = [
        (
            "GET",
            "/v2/../../etc/passwd/manifests/latest".to_owned(),
            vec![400, 404],
        ),
        (
            "GET",
            "/v2/%2e%2e/%2e%2e/etc/tags/list".to_owned(),
            vec![400, 404],
        ),
        (
            "GET",
            "/v2/a/..%2f..%2f/manifests/x".to_owned(),
            vec![400, 404],
        ),
        (
            "PUT",
            "/v2/ok/manifests/..%2f..%2fescape".to_owned(),
            vec![400, 404],
        ),
        ("PUT", "/v2/ok/manifests/.._.._escape".to_owned(), vec![400]),
        (
            "GET",
            "/v2/ok/blobs/sha256:..%2f..%2f..%2fetc%2fpasswd".to_owned(),
            vec![400, 404],
        ),
        (
            "GET",
            format!("/v2/ok/blobs/sha256:../../{}", "0".repeat(58)),
            vec![400, 404],
        ),
        (
            "GET",
            "/v2/ok/blobs/uploads/..%2f..%2f_tmp".to_owned(),
            vec![404],
        ),
        (
            "PATCH",
            "/v2/ok/blobs/uploads/../../../../tmp/x".to_owned(),
            vec![400, 404, 405],
        ),
        (
            "PUT",
            format!(
                "/v2/ok/blobs/uploads/{id}/..?digest=sha256:{}",
                "a".repeat(64)
            ),
            vec![400, 404, 405],
        ),
        ("GET", format!("/v2/other/blobs/uploads/{id}"), vec![404]),
        ("GET", "/v2/ok%00/tags/list".to_owned(), vec![400, 404]),
        (
            "GET",
            "/v2/ok/tags/list?n=-1&last=../../..".to_owned(),
            vec![200, 400, 404],
        ),
        (
            "POST",
            "/v2/ok/blobs/uploads/?mount=sha256:../../x&from=../..".to_owned(),
            vec![202, 400],
        ),
        (
            "GET",
            format!("/v2/{}/tags/list", "a/".repeat(200) + "a"),
            vec![400, 404],
        ),
    ];
    for (method, path, want) in &traversal {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        let got = raw(port, req.as_bytes(), Duration::from_secs(10));
        let status = status_of(&got).unwrap_or(0);
        assert!(
            want.contains(&status),
            "{method} {path}: {status}\n{}",
            String::from_utf8_lossy(&got)
        );
    }
    // The upload is still there under its own repository, and works.
    let data = b"payload";
    let dd = digest(data);
    let r = a
        .put(server.url(&format!("{loc}?digest={dd}")))
        .send(&data[..])
        .unwrap();
    assert_eq!(r.status(), 201);

    // Randomised requests.
    let mut rng = Rng::from_clock("hostile requests");
    let methods = [
        "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "BREW",
        "G\0T", "",
    ];
    let paths = [
        "/v2/",
        "/v2/a/manifests/x",
        "/v2/a/blobs/uploads/",
        "/v2/_catalog?n=999999999999",
        "/v2/a/blobs/sha256:0",
        "/v1/search?q=%ff%fe",
        "/%00",
        "/v2/a/referrers/sha256:x",
        "//v2//",
        "/v2/a/blobs/uploads/00000000-0000-0000-0000-000000000000",
        "*",
        "http://evil/v2/",
        "/v2/a/tags/list?n=0&last=%00",
    ];
    let mut tried = 0;
    let start = Instant::now();
    while tried < 1500 && start.elapsed() < Duration::from_secs(60) {
        let method = methods[rng.below(methods.len() as u64) as usize];
        let mut path = paths[rng.below(paths.len() as u64) as usize].to_owned();
        match rng.below(6) {
            0 => path.push_str(&"/..".repeat(rng.below(50) as usize)),
            1 => path.push_str(&"%2e%2e%2f".repeat(rng.below(50) as usize)),
            2 => path.push_str(&"x".repeat(rng.below(10_000) as usize)),
            3 => {
                path = String::from_utf8_lossy(&bytes(rng.next(), 1 + rng.below(200) as usize))
                    .replace(['\r', '\n', ' '], "_")
            }
            _ => {}
        }
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        let body_len = rng.below(3000) as usize;
        match rng.below(8) {
            0 => req.push_str("Content-Length: 99999999999999999999\r\n"),
            1 => req.push_str("Content-Length: -5\r\n"),
            2 => req.push_str(&format!("Content-Length: {}\r\n", body_len + 100)),
            3 => req.push_str("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
            4 => req.push_str("Content-Range: bytes=99-1\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\n"),
            5 => req.push_str(&format!("X-Garbage: {}\r\n", String::from_utf8_lossy(&bytes(rng.next(), 100)).replace(['\r', '\n'], ""))),
            6 => req.push_str("Authorization: Basic !!!!\r\nRange: bytes=5-1,999999999999-\r\n"),
            _ => req.push_str(&format!("Content-Length: {body_len}\r\n")),
        }
        req.push_str("Connection: close\r\n\r\n");
        let mut wire = req.into_bytes();
        wire.extend_from_slice(&bytes(rng.next(), body_len));
        let got = raw(port, &wire, Duration::from_secs(5));
        if let Some(s) = status_of(&got) {
            assert!(
                s != 500,
                "500 for {}",
                String::from_utf8_lossy(&wire[..wire.len().min(300)])
            );
        }
        tried += 1;
    }
    // Many open connections, some sending a byte at a time.
    let mut idle: Vec<_> = (0..200)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    for (i, s) in idle.iter_mut().enumerate().take(50) {
        use std::io::Write;
        let _ = s.write_all(&b"PUT /v2/a/manifests/x HTTP/1.1\r\n"[..(i % 20) + 1]);
    }
    assert_eq!(a.get(server.url("/v2/")).call().unwrap().status(), 200);
    drop(idle);
    eprintln!(
        "hostile requests: {tried} random + {} traversal",
        traversal.len()
    );

    assert!(server.alive(), "the server died");
    assert_eq!(a.get(server.url("/v2/")).call().unwrap().status(), 200);
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
    let hwm = server.vm_hwm_kib();
    eprintln!("hostile requests: server VmHWM {hwm} KiB");
    assert!(hwm < 200 * 1024, "peak memory {hwm} KiB");
    // Nothing was written outside storage_path.
    assert_eq!(outside_before, outside(d));
    assert!(files_under(&d.join("data/store")).iter().all(|p| {
        let s = p.to_string_lossy();
        s.starts_with("blobs/")
            || s.starts_with("repositories/")
            || s.starts_with("_tmp/")
            // the change log and the metadata index (store/changes.rs, index.rs)
            || s.starts_with("_changes/")
            || s.starts_with("_index/")
    }));
}

/// Manifests against the OCI image-spec rules (issue 16): each wrong field
/// is a 400 `MANIFEST_INVALID` naming the field, and nothing is stored.
#[test]
fn manifest_fields_are_checked_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: error\n",
    );
    let a = agent();
    let base = server.url("");
    let layer = b"nine byte";
    let ld = digest(layer);
    let config = b"{}";
    let cd = digest(config);
    assert_eq!(push_blob(&a, &base, "fields", layer, &ld), 201);
    assert_eq!(push_blob(&a, &base, "fields", config, &cd), 201);
    let good = manifest((&cd, 2), &[(ld.clone(), 9)]);
    let tail = |extra: &str| format!("{},{extra}}}", good.strip_suffix('}').unwrap());
    let cases = [
        (
            manifest((&cd, 2), &[(ld.clone(), 999)]),
            "`layers[0].size` is 999",
        ),
        (manifest((&cd, 3), &[(ld.clone(), 9)]), "`config.size` is 3"),
        (
            tail(r#""annotations":{"a":[1,2]}"#),
            "`annotations.a` must be a string",
        ),
        (
            tail(r#""annotations":{"a":"b","a":"c"}"#),
            "duplicate key `a`",
        ),
        (
            tail(r#""schemaVersion":2"#),
            "duplicate key `schemaVersion`",
        ),
        (
            good.replace(",\"size\":9", ",\"size\":-9"),
            "`layers[0].size` must be a non-negative integer",
        ),
        (
            good.replace("\"application/vnd.oci.image.layer.v1.tar\"", "7"),
            "`layers[0].mediaType` must be a string",
        ),
        (
            tail(r#""artifactType":"not a type""#),
            "`artifactType` is not a media type",
        ),
    ];
    for (i, (m, want)) in cases.iter().enumerate() {
        let r = a
            .put(server.url(&format!("/v2/fields/manifests/c{i}")))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .send(m.as_bytes())
            .unwrap();
        let status = r.status().as_u16();
        let text = String::from_utf8(crate::harness::body(r)).unwrap();
        assert_eq!(status, 400, "{m}\n{text}");
        assert!(text.contains("MANIFEST_INVALID"), "{text}");
        assert!(text.contains(want), "{m}\nwant {want}\n{text}");
    }
    let r = a.get(server.url("/v2/fields/tags/list")).call().unwrap();
    let tags = String::from_utf8(crate::harness::body(r)).unwrap();
    assert!(!tags.contains("\"c"), "{tags}");
    let r = a
        .put(server.url("/v2/fields/manifests/good"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .send(good.as_bytes())
        .unwrap();
    assert_eq!(r.status(), 201);
}

/// `Range` on blob `GET` per RFC 9110, `PATCH` bodies against their
/// `Content-Range`, and a repeated `q` on `/v1/search` (issue 16).
#[test]
fn ranges_chunk_lengths_and_repeated_query() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("index.db");
    let server = Server::start(
        dir.path(),
        &format!(
            "f:\n  storage: local\n  storage_path: ./store\n  loglevel: error\n  search_backend: sqlalchemy\n  sqlalchemy_index_database: sqlite:///{}\n",
            db.display()
        ),
    );
    let a = agent();
    let base = server.url("");
    let data = b"nine byte";
    let d = digest(data);
    assert_eq!(push_blob(&a, &base, "ranges", data, &d), 201);
    let url = server.url(&format!("/v2/ranges/blobs/{d}"));
    for (range, status, content_range, want) in [
        ("bytes=0-1,3-4", 200, None, &data[..]),
        ("items=0-1", 200, None, &data[..]),
        ("bytes=abc", 200, None, &data[..]),
        ("bytes=5-4", 200, None, &data[..]),
        ("bytes=", 200, None, &data[..]),
        ("bytes=2-4", 206, Some("bytes 2-4/9"), &data[2..5]),
        ("bytes=-3", 206, Some("bytes 6-8/9"), &data[6..]),
        (
            "bytes=0-18446744073709551615",
            206,
            Some("bytes 0-8/9"),
            &data[..],
        ),
        (
            "bytes=0-184467440737095516150",
            206,
            Some("bytes 0-8/9"),
            &data[..],
        ),
        ("bytes=9-", 416, Some("bytes */9"), &b""[..]),
        (
            "bytes=18446744073709551615-",
            416,
            Some("bytes */9"),
            &b""[..],
        ),
        (
            "bytes=184467440737095516150-",
            416,
            Some("bytes */9"),
            &b""[..],
        ),
    ] {
        let r = a.get(&url).header("range", range).call().unwrap();
        assert_eq!(r.status().as_u16(), status, "{range}");
        assert_eq!(
            r.headers()
                .get("content-range")
                .map(|v| v.to_str().unwrap()),
            content_range,
            "{range}"
        );
        if status != 416 {
            assert_eq!(crate::harness::body(r), want, "{range}");
        }
    }

    // A chunked PATCH body longer than its Content-Range: 416, and the
    // upload keeps what the range named.
    let r = a
        .post(server.url("/v2/ranges/blobs/uploads/"))
        .send_empty()
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let t = Duration::from_secs(10);
    let patch = |range: &str, body: &[u8]| {
        let mut req = format!(
            "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Range: {range}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        req.extend_from_slice(b"\r\n0\r\n\r\n");
        let got = raw(server.port, &req, t);
        (
            status_of(&got),
            String::from_utf8_lossy(&got).to_ascii_lowercase(),
        )
    };
    let (status, got) = patch("0-3", data);
    assert_eq!(status, Some(416), "{got}");
    assert!(got.contains("\r\nrange: 0-3\r\n"), "{got}");
    assert!(got.contains("blob_upload_invalid"), "{got}");
    // Shorter than announced: refused the same way.
    let (status, got) = patch("4-20", b" by");
    assert_eq!(status, Some(416), "{got}");
    assert!(got.contains("\r\nrange: 0-6\r\n"), "{got}");
    let (status, got) = patch("7-8", b"te");
    assert_eq!(status, Some(202), "{got}");
    let r = a
        .put(server.url(&format!("{loc}?digest={d}")))
        .send_empty()
        .unwrap();
    assert_eq!(r.status(), 201);

    // Several `q`: the first counts, and the answer is JSON.
    let r = a.get(server.url("/v1/search?q=a&q=b")).call().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = serde_json::from_slice(&crate::harness::body(r)).unwrap();
    assert_eq!(v["query"], "a", "{v}");
}
