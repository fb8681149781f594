//! htpasswd authentication (read-only and read-write users) and TLS, with
//! curl and skopeo.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;

use std::time::Duration;

use crate::harness::{Server, agent, body, bytes, digest, manifest, raw};
use crate::support::http::status_of;

use super::{ALICE, BOB, exchange, htpasswd, self_signed};

fn basic((user, pass): (&str, &str)) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
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

    // The start line names the scheme clients must use (read after the
    // requests above, so the log reader has caught up with it).
    assert!(
        server
            .log()
            .contains(&format!("listening on https://127.0.0.1:{}", server.port)),
        "{}",
        server.log()
    );

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

/// Log injection (issue 16): a user name holding `\n` and ESC, a path
/// holding `%0a` and a raw control byte in a header reach the log escaped;
/// no forged line, no raw control byte.
#[test]
fn logged_values_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    htpasswd(d);
    let server = Server::start(
        d,
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: info\n  auth:\n    htpasswd: ./htpasswd\n    readonly: [bob]\n",
    );
    let t = Duration::from_secs(10);
    // No `:` in it: Basic credentials end the user name at the first one.
    let forged = "FORGED INFO regconf request method=GET";
    let user = format!("evil\n{forged}\r\u{1b}[31mred\u{1b}]0;title\u{7}");
    let auth = basic((&user, "pw"));
    let req = format!(
        "GET /v2/%0a{}/tags/list HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n",
        forged.replace(' ', "%20")
    );
    assert_eq!(status_of(&raw(server.port, req.as_bytes(), t)), Some(401));
    // Bob may only read: his refused write is logged with its path.
    let req = format!(
        "DELETE /v2/a%0d%0a{}/manifests/x HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        forged.replace(' ', "%20"),
        basic(BOB)
    );
    assert_eq!(status_of(&raw(server.port, req.as_bytes(), t)), Some(403));
    std::thread::sleep(Duration::from_millis(300));
    let log = server.log();
    assert!(log.contains(r"evil\nFORGED"), "{log}");
    assert!(log.contains(r"\u{1b}[31mred"), "{log}");
    for line in log.lines() {
        assert!(!line.starts_with("FORGED"), "forged line: {line:?}\n{log}");
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "raw control character: {line:?}"
        );
    }
}

/// Login timing (issue 16): a wrong password for a user whose hash has
/// cost 10, for a user whose hash has cost 4, and for a user who does not
/// exist all take the same time, within 20%.
#[test]
fn login_time_reveals_neither_users_nor_costs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = format!(
        "slow:{}\nfast:{}\n",
        bcrypt::hash("slow-pw", 10).unwrap(),
        bcrypt::hash("fast-pw", 4).unwrap()
    );
    std::fs::write(d.join("htpasswd"), text).unwrap();
    let server = Server::start(
        d,
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: error\n  auth:\n    htpasswd: ./htpasswd\n",
    );
    let a = agent();
    // Each attempt from its own loopback address: repeated failures from
    // one address are slowed on purpose (`peers.rs`), which is not what is
    // measured here.
    let next = std::cell::Cell::new(0u32);
    let once = |user: &str| {
        let n = next.get();
        next.set(n + 1);
        let from = format!("127.0.{}.{}", 10 + n / 200, 1 + n % 200);
        let start = std::time::Instant::now();
        let req = format!(
            "GET /v2/ HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            basic((user, "wrong"))
        );
        let answer = exchange(&from, server.port, &req);
        assert_eq!(status_of(&answer), Some(401));
        start.elapsed()
    };
    // The server learns how long a cost-10 check takes now; then the three
    // take turns, so that a change in the machine's load hits them alike.
    for _ in 0..4 {
        once("slow");
    }
    let mut runs = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..7 {
        for (i, user) in ["slow", "fast", "nobody"].iter().enumerate() {
            runs[i].push(once(user));
        }
    }
    let [slow, fast, unknown] = runs.map(|mut r| {
        r.sort();
        r[r.len() / 2]
    });
    eprintln!("login timing: cost 10 {slow:?}, cost 4 {fast:?}, unknown user {unknown:?}");
    for (what, t) in [("cost 4", fast), ("unknown user", unknown)] {
        let ratio = t.as_secs_f64() / slow.as_secs_f64();
        assert!(
            (0.8..=1.2).contains(&ratio),
            "{what}: {t:?} against {slow:?} for cost 10"
        );
    }
    // The right password still works.
    let r = a
        .get(server.url("/v2/"))
        .header("authorization", basic(("fast", "fast-pw")))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
}
