//! Security of `regconf serve` and of the configuration side (issue 8):
//! htpasswd authentication with read-only and read-write users, TLS, the
//! limits, hostile requests, path traversal, and that a configuration can
//! neither run code nor make regconf open files it was not told to.
//! Loopback only; every test is bounded in time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::common::regconf;
use crate::harness::{Rng, Server, agent, body, bytes, digest, files_under, manifest, raw};
use crate::support::http::status_of;

const ALICE: (&str, &str) = ("alice", "alice-pw-9f3K");
const BOB: (&str, &str) = ("bob", "bob-pw-77Qz");

fn basic((user, pass): (&str, &str)) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn htpasswd(dir: &Path) {
    let mut text = String::from("# regconf test users\n");
    for (u, p) in [ALICE, BOB] {
        text.push_str(&format!("{u}:{}\n", bcrypt::hash(p, 5).unwrap()));
    }
    std::fs::write(dir.join("htpasswd"), text).unwrap();
}

/// A one-layer OCI image layout at `dir`, tagged `v1`.
fn oci_layout(dir: &Path, seed: u64) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let put = |data: &[u8]| {
        let d = digest(data);
        std::fs::write(dir.join("blobs/sha256").join(&d[7..]), data).unwrap();
        d
    };
    let layer = bytes(seed, 200_000);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let m = manifest((&put(config), config.len()), &[(put(&layer), layer.len())]);
    let md = put(m.as_bytes());
    std::fs::write(
        dir.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{md}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"v1"}}}}]}}"#,
            m.len()
        ),
    )
    .unwrap();
}

fn skopeo(args: &[&str]) -> std::process::Output {
    let mut all = vec!["--insecure-policy"];
    all.extend_from_slice(args);
    Command::new("skopeo")
        .args(&all)
        .output()
        .expect("skopeo (apt-get install skopeo)")
}

#[test]
fn auth_htpasswd_read_only_and_read_write_users() {
    let dir = tempfile::tempdir().unwrap();
    htpasswd(dir.path());
    let server = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: info\n  auth:\n    htpasswd: ./htpasswd\n    readonly: [bob]\n",
    );
    let a = agent();
    let base = server.url("");

    // No credentials, wrong ones, another scheme: 401 with the challenge.
    for auth in [
        None,
        Some(basic((ALICE.0, "wrong"))),
        Some(basic(("mallory", ALICE.1))),
        Some("Bearer abc".to_owned()),
    ] {
        let mut req = a.get(format!("{base}/v2/"));
        if let Some(h) = &auth {
            req = req.header("authorization", h);
        }
        let r = req.call().unwrap();
        assert_eq!(r.status(), 401, "{auth:?}");
        assert_eq!(
            r.headers()["www-authenticate"].to_str().unwrap(),
            "Basic realm=\"regconf\""
        );
        assert_eq!(
            r.headers()["docker-distribution-api-version"]
                .to_str()
                .unwrap(),
            "registry/2.0"
        );
        let text = String::from_utf8(body(r)).unwrap();
        assert!(text.contains(r#""code":"UNAUTHORIZED""#), "{text}");
    }
    // Every endpoint is behind it, reads included.
    for path in [
        "/v2/_catalog",
        "/v2/a/tags/list",
        "/",
        "/_ping",
        "/v1/search?q=a",
    ] {
        let r = a.get(format!("{base}{path}")).call().unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }

    // Both users may read.
    for user in [ALICE, BOB] {
        let r = a
            .get(format!("{base}/v2/"))
            .header("authorization", basic(user))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200, "{}", user.0);
    }
    // bob may not write, alice may.
    let layer = bytes(1, 10_000);
    let ld = digest(&layer);
    let post = |user, data: &[u8], d: &str| {
        a.post(format!("{base}/v2/team/app/blobs/uploads/?digest={d}"))
            .header("authorization", basic(user))
            .send(data)
            .unwrap()
    };
    let r = post(BOB, &layer, &ld);
    assert_eq!(r.status(), 403);
    assert!(
        String::from_utf8(body(r))
            .unwrap()
            .contains(r#""code":"DENIED""#)
    );
    assert_eq!(post(ALICE, &layer, &ld).status(), 201);
    let config = b"{}";
    let cd = digest(config);
    assert_eq!(post(ALICE, config, &cd).status(), 201);
    let m = manifest((&cd, 2), &[(ld.clone(), layer.len())]);
    let put = |user| {
        a.put(format!("{base}/v2/team/app/manifests/v1"))
            .header("authorization", basic(user))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .send(m.as_bytes())
            .unwrap()
            .status()
    };
    assert_eq!(put(BOB), 403);
    assert_eq!(put(ALICE), 201);
    let r = a
        .get(format!("{base}/v2/team/app/manifests/v1"))
        .header("authorization", basic(BOB))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(body(r), m.as_bytes());
    let r = a
        .delete(format!("{base}/v2/team/app/manifests/v1"))
        .header("authorization", basic(BOB))
        .call()
        .unwrap();
    assert_eq!(r.status(), 403);

    // skopeo with --creds: alice pushes, bob pulls, bob cannot push.
    let src = dir.path().join("src");
    oci_layout(&src, 7);
    let src_ref = format!("oci:{}:v1", src.display());
    let remote = format!("docker://127.0.0.1:{}/skopeo/img", server.port);
    let creds = |(u, p): (&str, &str)| format!("{u}:{p}");
    let out = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds(ALICE),
        &src_ref,
        &format!("{remote}:v1"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        &creds(BOB),
        &format!("{remote}:v1"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds(BOB),
        &src_ref,
        &format!("{remote}:v2"),
    ]);
    assert!(!out.status.success(), "a read-only user pushed");
    let out = skopeo(&["inspect", "--tls-verify=false", &format!("{remote}:v1")]);
    assert!(!out.status.success(), "anonymous inspect worked");

    // Secrets never reach the log; failures name the user.
    let log = server.log();
    for secret in [ALICE.1, BOB.1, "YWxpY2"] {
        assert!(!log.contains(secret), "`{secret}` in the log:\n{log}");
    }
    assert!(
        log.contains("authentication failed") && log.contains("user=alice"),
        "{log}"
    );
    assert!(log.contains("write refused to a read-only user"), "{log}");
}

/// A self-signed certificate for 127.0.0.1 and localhost: (cert, key) PEM.
fn self_signed(dir: &Path) -> (String, String) {
    let c =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    std::fs::write(dir.join("cert.pem"), c.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), c.signing_key.serialize_pem()).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

#[test]
fn tls_with_curl_and_skopeo() {
    let dir = tempfile::tempdir().unwrap();
    htpasswd(dir.path());
    let (_, key) = self_signed(dir.path());
    let server = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: debug\n  auth:\n    htpasswd: ./htpasswd\n  tls:\n    certificate: ./cert.pem\n    key: ./key.pem\n",
    );
    let url = format!("https://127.0.0.1:{}/v2/", server.port);
    let curl = |extra: &[&str]| {
        let mut args = vec![
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
            "--max-time",
            "20",
        ];
        args.extend_from_slice(extra);
        let out = Command::new("curl").args(&args).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let cacert = dir.path().join("cert.pem");
    let cacert = cacert.to_str().unwrap();
    assert_eq!(curl(&["--cacert", cacert, &url]), "401 2");
    let user = format!("{}:{}", ALICE.0, ALICE.1);
    assert_eq!(curl(&["--cacert", cacert, "-u", &user, &url]), "200 2");
    assert_eq!(
        curl(&["--http1.1", "--cacert", cacert, "-u", &user, &url]),
        "200 1.1"
    );
    // Without the CA, curl refuses the certificate; plain HTTP gets nothing.
    assert!(curl(&[&url]).starts_with("000"));
    assert!(curl(&[&format!("http://127.0.0.1:{}/v2/", server.port)]).starts_with("000"));

    // skopeo trusts the certificate from --dest-cert-dir.
    let certs = dir.path().join("certs.d");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(dir.path().join("cert.pem"), certs.join("ca.crt")).unwrap();
    let src = dir.path().join("src");
    oci_layout(&src, 9);
    let remote = format!("docker://127.0.0.1:{}/tls/img:v1", server.port);
    let out = skopeo(&[
        "copy",
        "--dest-cert-dir",
        certs.to_str().unwrap(),
        "--dest-creds",
        &user,
        &format!("oci:{}:v1", src.display()),
        &remote,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = skopeo(&[
        "inspect",
        "--cert-dir",
        certs.to_str().unwrap(),
        "--creds",
        &user,
        &remote,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing of the key reaches the log, even at debug level.
    let log = server.log();
    let key_body: String = key.lines().nth(1).unwrap().to_owned();
    assert!(!log.contains(&key_body), "key material in the log");
    assert!(!log.contains(ALICE.1));
}

fn validate(dir: &Path, yml: &str) -> String {
    std::fs::write(dir.join("v.yml"), yml).unwrap();
    let out = regconf(dir)
        .args(["validate", "v.yml", "--flavor", "f"])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn auth_tls_and_limits_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    htpasswd(d);
    self_signed(d);
    std::fs::write(d.join("md5"), "alice:$apr1$xyz$0123456789abcdefghijkl\n").unwrap();
    std::fs::write(d.join("notpem"), "hello\n").unwrap();
    let base = "f:\n  storage: local\n  storage_path: ./store\n";
    // All good: no diagnostics about these sections.
    let ok = validate(
        d,
        &format!(
            "{base}  auth: {{htpasswd: ./htpasswd, readonly: [bob]}}\n  tls: {{certificate: ./cert.pem, key: ./key.pem}}\n  limits: {{max_manifest_bytes: 1048576, max_connections: 8}}\n"
        ),
    );
    assert!(!ok.contains("regconf::"), "{ok}");
    let cases: &[(&str, &str)] = &[
        ("  auth: {htpasswd: ./missing}\n", "regconf::auth::htpasswd"),
        ("  auth: {htpasswd: ./md5}\n", "regconf::auth::htpasswd"),
        (
            "  auth: {htpasswd: ./htpasswd, readonly: [carol]}\n",
            "regconf::auth::readonly_unknown",
        ),
        (
            "  auth: {readonly: [bob]}\n",
            "regconf::auth::readonly_without_htpasswd",
        ),
        ("  auth: {htpasswd: [a, b]}\n", "regconf::type::mismatch"),
        (
            "  tls: {certificate: ./cert.pem}\n",
            "regconf::tls::incomplete",
        ),
        (
            "  tls: {certificate: ./notpem, key: ./key.pem}\n",
            "regconf::tls::file",
        ),
        (
            "  tls: {certificate: ./cert.pem, key: ./cert.pem}\n",
            "regconf::tls::file",
        ),
        (
            "  tls: {certificate: ./cert.pem, key: ./nokey.pem}\n",
            "regconf::tls::file",
        ),
        (
            "  limits: {max_header_bytes: 100}\n",
            "regconf::value::limit",
        ),
        ("  limits: {max_connections: 0}\n", "regconf::value::limit"),
        (
            "  limits: {idle_timeout_secs: soon}\n",
            "regconf::type::mismatch",
        ),
        ("  limits: {max_body: 1}\n", "regconf::key::unknown"),
    ];
    for (section, code) in cases {
        let out = validate(d, &format!("{base}{section}"));
        assert!(out.contains(code), "{section} → expected {code}:\n{out}");
        // The htpasswd hash and key material are never shown.
        assert!(
            !out.contains("$apr1$") && !out.contains("PRIVATE KEY-----\nM"),
            "{out}"
        );
    }
    // serve refuses to start on the same problems, naming the setting.
    let err = serve_refuses(d, &format!("{base}  limits: {{max_connections: 0}}\n"));
    assert!(
        err.contains("regconf::key::unknown") || err.contains("limits"),
        "{err}"
    );
    let err = serve_refuses(d, &format!("{base}  auth: {{htpasswd: ./md5}}\n"));
    assert!(
        err.contains("regconf::auth::htpasswd") && err.contains("line 1"),
        "{err}"
    );
    assert!(!err.contains("$apr1$"), "{err}");
}

#[test]
fn limits_headers_manifests_slow_and_idle_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: error\n  limits:\n    max_manifest_bytes: 2048\n    max_header_bytes: 8192\n    header_timeout_secs: 2\n    idle_timeout_secs: 2\n    max_connections: 64\n",
    );
    let port = server.port;
    let t = Duration::from_secs(10);
    // Headers over the limit: 431.
    let big = format!(
        "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(status_of(&raw(port, big.as_bytes(), t)), Some(431));
    // A manifest over the limit: 413, by Content-Length or by streaming.
    let m = format!(r#"{{"schemaVersion":2,"x":"{}"}}"#, "a".repeat(4000));
    let a = agent();
    let r = a
        .put(server.url("/v2/big/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .send(m.as_bytes())
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(String::from_utf8(body(r)).unwrap().contains("SIZE_INVALID"));
    let chunked = format!(
        "PUT /v2/big/manifests/v1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{m}\r\n0\r\n\r\n",
        m.len()
    );
    assert_eq!(status_of(&raw(port, chunked.as_bytes(), t)), Some(413));

    // A silent client, a client stuck in its headers, and an idle kept-alive
    // connection are all closed after the timeouts.
    for head in ["", "GET /v2/ HTTP/1.1\r\nHost: x\r\n"] {
        let start = Instant::now();
        let got = raw(port, head.as_bytes(), Duration::from_secs(15));
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(8),
            "{head:?} held the connection {took:?}"
        );
        assert!(
            status_of(&got).is_none_or(|s| s == 408),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let start = Instant::now();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert_eq!(status_of(&buf), Some(200));
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "idle keep-alive kept"
        );
    }
    // A body that stops sending: the upload fails after idle_timeout_secs,
    // and the server answers normally meanwhile.
    let r = a
        .post(server.url("/v2/slow/blobs/uploads/"))
        .send_empty()
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(
            format!("PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        s.write_all(&[7u8; 1000]).unwrap();
        let start = Instant::now();
        assert_eq!(a.get(server.url("/v2/")).call().unwrap().status(), 200);
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "slow body kept {:?}",
            start.elapsed()
        );
    }
    // Connections beyond max_connections wait; the server still answers
    // once they go.
    let held: Vec<_> = (0..100)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    let over = a
        .get(server.url("/v2/"))
        .config()
        .timeout_global(Some(Duration::from_millis(500)))
        .build()
        .call();
    assert!(
        over.is_err(),
        "a 101st connection was served while 100 were open"
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if a.get(server.url("/v2/"))
            .call()
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not recover from a connection flood"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.alive());
}

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
        s.starts_with("blobs/") || s.starts_with("repositories/") || s.starts_with("_tmp/")
    }));
}

/// Nothing in a configuration file or a variable makes regconf run a
/// program or open a file other than the configuration (and the privileged
/// key it is told about): checked under strace.
#[test]
fn config_cannot_run_code_or_open_other_files() {
    if Command::new("strace").arg("-V").output().is_err() {
        panic!("strace is needed (apt-get install strace)");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("secret.txt"), "top secret\n").unwrap();
    let yml = r#"
common: &c
  loglevel: _env:LOGLEVEL:info
  boto_bucket: _env:BUCKET:$(touch pwned-env)
  issue: !!python/object/apply:os.system ["touch pwned-python"]
  search_backend: !!python/name:os.system
  storage_path: !!binary aGVsbG8=
  privileged_key: ./key.pub
  secret: !include secret.txt
  other: <%= File.read("secret.txt") %>
  cmd: "`touch pwned-backtick`"
  ref: &r {a: *c}
f:
  <<: *c
  storage: local
  sqlalchemy_index_database: sqlite:////etc/passwd
  auth: {htpasswd: ""}
"#;
    std::fs::write(d.join("cfg.yml"), yml).unwrap();
    std::fs::write(d.join("key.pub"), "not read, only checked\n").unwrap();
    for args in [
        vec!["render", "cfg.yml", "--flavor", "f"],
        vec!["validate", "cfg.yml"],
        vec!["validate", "cfg.yml", "--flavor", "f"],
    ] {
        let out = Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-e",
                "trace=openat,open,execve,execveat,connect",
                "-o",
                "trace.txt",
            ])
            .arg(env!("CARGO_BIN_EXE_regconf"))
            .args(&args)
            .current_dir(d)
            .env_clear()
            .env("BUCKET", "$(touch pwned-var) `touch pwned-var2`")
            .env(
                "LOGLEVEL",
                "!!python/object/apply:os.system [\"touch pwned-level\"]",
            )
            .output()
            .unwrap();
        let trace = std::fs::read_to_string(d.join("trace.txt")).unwrap();
        let mut execs = 0;
        for line in trace.lines() {
            if line.contains("execve(") {
                execs += 1;
                assert!(
                    line.contains(env!("CARGO_BIN_EXE_regconf")),
                    "{args:?} ran {line}"
                );
            }
            assert!(!line.contains("connect("), "{args:?} connected: {line}");
            if let Some(rest) = line.split("open").nth(1) {
                let path = rest.split('"').nth(1).unwrap_or("");
                let allowed = path.starts_with("/proc/")
                    || path.starts_with("/sys/")
                    || path.starts_with("/etc/ld.so")
                    || path.starts_with("/lib")
                    || path.starts_with("/usr/lib")
                    || path.contains("/glibc-hwcaps/")
                    || path == "/dev/null"
                    || path == "/dev/urandom"
                    || path == "cfg.yml"
                    || path.ends_with("/cfg.yml");
                assert!(
                    allowed,
                    "{args:?} opened `{path}`: {line}\n(status {:?})",
                    out.status
                );
                assert!(
                    !path.contains("secret.txt") && !path.contains("passwd"),
                    "{line}"
                );
            }
        }
        assert_eq!(execs, 1, "{args:?}: only regconf itself is executed");
        for f in files_under(d) {
            assert!(
                !f.to_string_lossy().contains("pwned"),
                "{args:?} created {}",
                f.display()
            );
        }
    }
}

/// Runs `regconf serve` on `config` (flavor `f`) and returns its stderr,
/// checking that it refused to start.
fn serve_refuses(d: &std::path::Path, config: &str) -> String {
    std::fs::write(d.join("v.yml"), config).unwrap();
    let out = regconf(d)
        .args([
            "serve",
            "v.yml",
            "--flavor",
            "f",
            "--listen",
            &format!("127.0.0.1:{}", crate::harness::free_port()),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    err
}
