//! Operating `serve` (issue 13, acceptance point 3): `/metrics` on its own
//! listener, read by Prometheus's own parser (Python's `prometheus_client`)
//! with counters that move as requests are made; `/healthz` (200, then 503
//! when storage stops answering, never logged, no credentials needed); and
//! `readonly: true`, which refuses every write method and changes nothing
//! on storage.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{regconf, snapshot, transcript};
use crate::harness::{Server, agent, body, digest, files_under, free_port, manifest, push_blob};

/// One sample of a scrape: name and sorted labels → value.
type Samples = BTreeMap<String, f64>;

/// Parses a scrape with `prometheus_client.parser.text_string_to_metric_families`
/// (the reference parser; it raises on any malformed line) into samples keyed
/// `name{k="v",...}` with the labels sorted, and the families' types.
fn parse(text: &str) -> (Samples, BTreeMap<String, String>) {
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
samples, types = {}, {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    types[fam.name] = fam.type
    for s in fam.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        samples["%s{%s}" % (s.name, labels)] = s.value
print(json.dumps({"samples": samples, "types": types}))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with prometheus_client: pip install prometheus-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let samples = v["samples"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect();
    let types = v["types"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    (samples, types)
}

/// `GET /metrics` of the metrics listener on `port`, parsed.
fn scrape(port: u16) -> (Samples, BTreeMap<String, String>) {
    let r = agent()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    parse(&String::from_utf8(body(r)).unwrap())
}

fn value(s: &Samples, key: &str) -> f64 {
    s.get(key).copied().unwrap_or(0.0)
}

/// How much `key` moved between two scrapes.
fn moved(before: &Samples, after: &Samples, key: &str) -> f64 {
    value(after, key) - value(before, key)
}

#[test]
fn metrics_are_prometheus_text_and_move_with_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mport = free_port();
    let s = Server::start(
        dir.path(),
        &format!(
            "f:\n  storage: local\n  storage_path: ./store\n  loglevel: info\n  metrics:\n    listen: 127.0.0.1:{mport}\n"
        ),
    );
    let (before, _) = scrape(mport);
    assert!(
        value(&before, "process_resident_memory_bytes{}") > 1e6,
        "{before:?}"
    );
    assert_eq!(value(&before, r#"regconf_gc_runs_total{result="ok"}"#), 0.0);
    assert_eq!(
        value(&before, "regconf_gc_last_success_timestamp_seconds{}"),
        0.0
    );

    // Requests: three probes, an image pushed and pulled, an unknown tag,
    // a hostile method and path, and one upload left open.
    let a = agent();
    let base = s.url("");
    for _ in 0..3 {
        assert_eq!(a.get(s.url("/v2/")).call().unwrap().status(), 200);
    }
    let layer = crate::harness::bytes(7, 100_000);
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let (ld, cd) = (digest(&layer), digest(&config));
    assert_eq!(push_blob(&a, &base, "m/app", &layer, &ld), 201);
    assert_eq!(push_blob(&a, &base, "m/app", &config, &cd), 201);
    let m = manifest((&cd, config.len()), &[(ld.clone(), layer.len())]);
    let r = a
        .put(s.url("/v2/m/app/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .send(m.as_bytes())
        .unwrap();
    assert_eq!(r.status(), 201);
    for _ in 0..2 {
        let r = a
            .get(s.url("/v2/m/app/manifests/v1"))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .call()
            .unwrap();
        assert_eq!(body(r), m.as_bytes());
    }
    let r = a
        .get(s.url(&format!("/v2/m/app/blobs/{ld}")))
        .call()
        .unwrap();
    assert_eq!(body(r), layer);
    assert_eq!(
        a.get(s.url("/v2/m/app/manifests/nope"))
            .call()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        a.post(s.url("/v2/m/app/blobs/uploads/"))
            .send_empty()
            .unwrap()
            .status(),
        202
    );
    let hostile = crate::support::http::status(s.port, "BREW", "/v2/%0a/../x");
    assert!(hostile.is_some());

    let (after, types) = scrape(mport);
    for (family, kind) in [
        ("regconf_http_requests", "counter"),
        ("regconf_http_request_duration_seconds", "histogram"),
        ("regconf_http_request_bytes", "counter"),
        ("regconf_http_response_bytes", "counter"),
        ("regconf_uploads_in_progress", "gauge"),
        ("regconf_storage_operations", "counter"),
        ("regconf_storage_errors", "counter"),
        ("regconf_cache_lookups", "counter"),
        ("regconf_gc_runs", "counter"),
        ("regconf_gc_removed_bytes", "counter"),
        ("regconf_gc_last_success_timestamp_seconds", "gauge"),
        ("process_resident_memory_bytes", "gauge"),
    ] {
        assert_eq!(
            types.get(family).map(String::as_str),
            Some(kind),
            "{family}: {types:?}"
        );
    }
    let req = |method: &str, route: &str, status: u16| {
        format!(
            r#"regconf_http_requests_total{{method="{method}",route="{route}",status="{status}"}}"#
        )
    };
    assert_eq!(moved(&before, &after, &req("GET", "/v2/", 200)), 3.0);
    assert_eq!(
        moved(
            &before,
            &after,
            &req("POST", "/v2/{name}/blobs/uploads/", 201)
        ),
        2.0
    );
    assert_eq!(
        moved(
            &before,
            &after,
            &req("POST", "/v2/{name}/blobs/uploads/", 202)
        ),
        1.0
    );
    assert_eq!(
        moved(
            &before,
            &after,
            &req("PUT", "/v2/{name}/manifests/{reference}", 201)
        ),
        1.0
    );
    assert_eq!(
        moved(
            &before,
            &after,
            &req("GET", "/v2/{name}/manifests/{reference}", 200)
        ),
        2.0
    );
    assert_eq!(
        moved(
            &before,
            &after,
            &req("GET", "/v2/{name}/manifests/{reference}", 404)
        ),
        1.0
    );
    assert_eq!(
        moved(
            &before,
            &after,
            &req("GET", "/v2/{name}/blobs/{digest}", 200)
        ),
        1.0
    );
    // A client's method and path never become label values.
    assert!(
        after
            .keys()
            .all(|k| !k.contains("BREW") && !k.contains("m/app")),
        "{after:?}"
    );
    assert_eq!(
        moved(&before, &after, &req("other", "unmatched", 404))
            + moved(&before, &after, &req("other", "unmatched", 400)),
        1.0,
        "{after:?}"
    );
    assert_eq!(
        moved(
            &before,
            &after,
            r#"regconf_http_request_duration_seconds_count{method="GET",route="/v2/"}"#
        ),
        3.0
    );
    let sent = (layer.len() + config.len()) as f64;
    assert_eq!(
        moved(
            &before,
            &after,
            r#"regconf_http_request_bytes_total{route="/v2/{name}/blobs/uploads/"}"#
        ),
        sent
    );
    assert_eq!(
        moved(
            &before,
            &after,
            r#"regconf_http_request_bytes_total{route="/v2/{name}/manifests/{reference}"}"#
        ),
        m.len() as f64
    );
    assert_eq!(
        moved(
            &before,
            &after,
            r#"regconf_http_response_bytes_total{route="/v2/{name}/blobs/{digest}"}"#
        ),
        layer.len() as f64
    );
    assert_eq!(value(&after, "regconf_uploads_in_progress{}"), 1.0);
    assert!(
        moved(
            &before,
            &after,
            r#"regconf_cache_lookups_total{cache="manifests",result="hit"}"#
        ) >= 1.0,
        "{after:?}"
    );
    assert!(
        moved(
            &before,
            &after,
            r#"regconf_storage_operations_total{driver="local",operation="commit"}"#
        ) >= 2.0,
        "{after:?}"
    );
    assert!(
        moved(
            &before,
            &after,
            r#"regconf_storage_operations_total{driver="local",operation="write"}"#
        ) >= 2.0,
        "{after:?}"
    );
    assert_eq!(
        moved(
            &before,
            &after,
            r#"regconf_storage_errors_total{driver="local",operation="stat"}"#
        ),
        0.0
    );
    // The scrape itself is not a request of the registry.
    assert!(after.keys().all(|k| !k.contains("/metrics")), "{after:?}");
}

/// Runs `regconf serve` on `port` with `args`, in `dir`, until the port answers.
fn spawn(dir: &Path, port: u16, args: &[&str]) -> std::process::Child {
    let listen = format!("127.0.0.1:{port}");
    let mut child = regconf(dir)
        .args(["serve", "config.yml", "--flavor", "f", "--listen", &listen])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..1500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        assert!(child.try_wait().unwrap().is_none(), "serve exited");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("serve did not start");
}

#[test]
fn metrics_listen_can_be_set_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yml"),
        "f:\n  storage: local\n  storage_path: ./store\n",
    )
    .unwrap();
    let (port, mport) = (free_port(), free_port());
    let mut child = spawn(
        dir.path(),
        port,
        &["--set", &format!("metrics.listen=127.0.0.1:{mport}")],
    );
    assert_eq!(crate::support::http::status(port, "GET", "/v2/"), Some(200));
    let (samples, _) = scrape(mport);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        value(
            &samples,
            r#"regconf_http_requests_total{method="GET",route="/v2/",status="200"}"#
        ),
        1.0
    );
    // Off by default: no listener beside the registry's.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yml"),
        "f:\n  storage: local\n  storage_path: ./store\n",
    )
    .unwrap();
    let s = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n",
    );
    assert!(!s.log().contains("metrics on"), "{}", s.log());
}

fn snap(name: &str, text: &str) {
    snapshot(
        &crate::common::root().join(format!("tests/snapshots/operate/{name}.txt")),
        text,
    );
}

#[test]
fn metrics_listen_problems_are_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yml"),
        "f:\n  storage: local\n  storage_path: ./store\n  readonly: 'yes'\n  metrics:\n    listen: '9090'\n",
    )
    .unwrap();
    let out = regconf(dir.path())
        .args(["validate", "config.yml", "--flavor", "f"])
        .output()
        .unwrap();
    snap("metrics-listen-address", &transcript(&out));
    // The registry's own port: the second listener cannot bind it.
    let port = free_port();
    std::fs::write(
        dir.path().join("config.yml"),
        format!("f:\n  storage: local\n  storage_path: ./store\n  metrics:\n    listen: 127.0.0.1:{port}\n"),
    )
    .unwrap();
    let out = regconf(dir.path())
        .args([
            "serve",
            "config.yml",
            "--flavor",
            "f",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    let text = transcript(&out).replace(&port.to_string(), "PORT");
    snap("metrics-listen-busy", &text);
}

#[test]
fn healthz_answers_without_credentials_and_is_not_logged() {
    let dir = tempfile::tempdir().unwrap();
    crate::security::htpasswd(dir.path());
    let mport = free_port();
    let s = Server::start(
        dir.path(),
        &format!(
            "f:\n  storage: local\n  storage_path: ./store\n  loglevel: info\n  auth:\n    htpasswd: ./htpasswd\n  metrics:\n    listen: 127.0.0.1:{mport}\n"
        ),
    );
    let a = agent();
    let r = a.get(s.url("/healthz")).call().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(body(r), b"ok\n");
    // Everything else still needs credentials.
    assert_eq!(a.get(s.url("/v2/")).call().unwrap().status(), 401);
    assert_eq!(a.get(s.url("/v2/_catalog")).call().unwrap().status(), 401);

    // Storage stops answering. `chmod 000` would not do: the tests run as
    // root, whom permission bits do not stop (CAP_DAC_OVERRIDE). A regular
    // file in place of the storage folder makes every path under it fail
    // with ENOTDIR, for root as well.
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::rename(&store, dir.path().join("store.away")).unwrap();
    std::fs::write(&store, b"not a folder").unwrap();
    for _ in 0..2 {
        let r = a.get(s.url("/healthz")).call().unwrap();
        assert_eq!(r.status(), 503);
        assert_eq!(body(r), b"storage unavailable\n");
    }
    // Each failed probe is a storage error of the driver.
    let (samples, _) = scrape(mport);
    let stat = r#"regconf_storage_errors_total{driver="local",operation="stat"}"#;
    assert_eq!(value(&samples, stat), 2.0, "{samples:?}");
    let healthz = r#"regconf_http_requests_total{method="GET",route="/healthz",status="503"}"#;
    assert_eq!(value(&samples, healthz), 2.0, "{samples:?}");
    std::fs::remove_file(&store).unwrap();
    std::fs::rename(dir.path().join("store.away"), &store).unwrap();
    for _ in 0..3 {
        assert_eq!(a.get(s.url("/healthz")).call().unwrap().status(), 200);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = s.log();
    assert!(
        !log.contains("/healthz"),
        "a health check was logged:\n{log}"
    );
    // A change of state is logged once each way, not each check.
    assert_eq!(log.matches("health check failing").count(), 1, "{log}");
    assert_eq!(
        log.matches("health check passing again").count(),
        1,
        "{log}"
    );
    // The other requests are still logged.
    assert!(log.contains("request without credentials"), "{log}");
}

/// Every write, as a client would send it, on the paths of the API.
const WRITES: &[(&str, &str)] = &[
    ("POST", "/v2/r/blobs/uploads/"),
    (
        "POST",
        "/v2/r/blobs/uploads/?mount=sha256:0000000000000000000000000000000000000000000000000000000000000000&from=other",
    ),
    (
        "PATCH",
        "/v2/r/blobs/uploads/3b8f6e2a-0000-4000-8000-000000000000",
    ),
    (
        "PUT",
        "/v2/r/blobs/uploads/3b8f6e2a-0000-4000-8000-000000000000?digest=sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ),
    (
        "DELETE",
        "/v2/r/blobs/uploads/3b8f6e2a-0000-4000-8000-000000000000",
    ),
    ("PUT", "/v2/r/manifests/t"),
    ("DELETE", "/v2/r/manifests/t"),
    (
        "DELETE",
        "/v2/r/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ),
    ("PUT", "/v1/repositories/r/tags/t"),
    ("DELETE", "/v1/repositories/r/"),
];

#[test]
fn readonly_refuses_every_write_and_serves_reads() {
    let dir = tempfile::tempdir().unwrap();
    let layer = crate::harness::bytes(11, 50_000);
    let config = br#"{"os":"linux"}"#.to_vec();
    let (ld, cd) = (digest(&layer), digest(&config));
    let m = manifest((&cd, config.len()), &[(ld.clone(), layer.len())]);
    let conf = "f:\n  storage: local\n  storage_path: ./store\n  loglevel: info\n";
    {
        let s = Server::start(dir.path(), conf);
        let a = agent();
        assert_eq!(push_blob(&a, &s.url(""), "r", &layer, &ld), 201);
        assert_eq!(push_blob(&a, &s.url(""), "r", &config, &cd), 201);
        let r = a
            .put(s.url("/v2/r/manifests/t"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .send(m.as_bytes())
            .unwrap();
        assert_eq!(r.status(), 201);
        // An upload left open: a read-only registry does not purge it.
        assert_eq!(
            a.post(s.url("/v2/r/blobs/uploads/"))
                .send_empty()
                .unwrap()
                .status(),
            202
        );
    }
    let store = dir.path().join("store");
    let files = |d: &Path| {
        let mut f = files_under(d);
        f.sort();
        f.into_iter()
            .map(|p| (std::fs::read(d.join(&p)).unwrap(), p))
            .collect::<Vec<_>>()
    };
    let before = files(&store);
    let s = Server::start(
        dir.path(),
        &format!(
            "{conf}  readonly: true\n  upload_purge:\n    max_age_secs: 0\n    interval_secs: 0\n  mirroring:\n    source: http://127.0.0.1:9\n"
        ),
    );
    let a = agent();
    for (method, path) in WRITES {
        let r = a
            .run(
                ureq::http::Request::builder()
                    .method(*method)
                    .uri(s.url(path))
                    .body(b"{}".to_vec())
                    .unwrap(),
            )
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", s.log()));
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(
            r.headers()["allow"],
            "GET, HEAD, OPTIONS",
            "{method} {path}"
        );
        let v: serde_json::Value = serde_json::from_slice(&body(r)).unwrap();
        assert_eq!(v["errors"][0]["code"], "UNSUPPORTED", "{method} {path}");
        let msg = v["errors"][0]["message"].as_str().unwrap();
        assert!(
            msg.contains("the registry is read-only"),
            "{method} {path}: {msg}"
        );
    }
    // A large chunk is not read just to refuse it: the connection closes.
    let mut req = b"PATCH /v2/r/blobs/uploads/3b8f6e2a-0000-4000-8000-000000000000 HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n".to_vec();
    req.extend(std::iter::repeat_n(b'x', 200_000));
    let answer = String::from_utf8_lossy(&crate::harness::raw(
        s.port,
        &req,
        std::time::Duration::from_secs(10),
    ))
    .into_owned();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    // Reads work.
    let r = a
        .get(s.url("/v2/r/manifests/t"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(body(r), m.as_bytes());
    assert_eq!(
        body(a.get(s.url(&format!("/v2/r/blobs/{ld}"))).call().unwrap()),
        layer
    );
    assert_eq!(
        a.head(s.url(&format!("/v2/r/blobs/{cd}")))
            .call()
            .unwrap()
            .status(),
        200
    );
    let tags = body(a.get(s.url("/v2/r/tags/list")).call().unwrap());
    assert_eq!(tags, br#"{"name":"r","tags":["t"]}"#);
    assert_eq!(a.get(s.url("/v2/_catalog")).call().unwrap().status(), 200);
    assert_eq!(a.get(s.url("/healthz")).call().unwrap().status(), 200);
    // The mirror is off: what is not stored is unknown, never fetched (and
    // stored) from the upstream.
    let missing = a
        .get(s.url("/v2/library/other/manifests/latest"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .call()
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(
        s.log()
            .contains("read-only: the pull-through mirror is off"),
        "{}",
        s.log()
    );
    // A purge every second would have removed the open upload by now.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(
        files(&store),
        before,
        "a read-only registry changed storage"
    );
    assert!(s.log().contains("status=405"), "{}", s.log());
    assert!(
        s.log().contains("read-only: every write is refused"),
        "{}",
        s.log()
    );
}

#[test]
fn healthz_on_s3_follows_the_object_store() {
    let moto = crate::support::moto::Moto::start("health");
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &format!(
            "f:\n  storage: s3\n  boto_bucket: health\n  storage_path: /h\n  s3_region: us-east-1\n  s3_access_key: test\n  s3_secret_key: test\n  s3_secure: false\n  boto_host: 127.0.0.1\n  boto_port: {}\n  loglevel: info\n",
            moto.port
        ),
    );
    let a = agent();
    assert_eq!(a.get(s.url("/healthz")).call().unwrap().status(), 200);
    // The object store goes away: the probe gives up after its 5 s.
    moto.stop();
    let r = a.get(s.url("/healthz")).call().unwrap();
    assert_eq!(r.status(), 503);
    // The log is read from the process's stderr by a thread: give it time.
    for _ in 0..100 {
        if s.log().contains("health check failing") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the failing health check was not logged:\n{}", s.log());
}
