//! `regconf export --to distribution`: exact text for each storage driver,
//! and the export loaded by the real distribution registry (Debian's
//! `docker-registry`), on disk, on S3 (moto), and read-only with metrics.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{regconf, snapshot, transcript};
use crate::harness::free_port;
use crate::operator::{run, samples, snap_path};

#[test]
fn export_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    snapshot(
        &snap_path("export-bundled-dev"),
        &run(
            tmp.path(),
            &["export", "--to", "distribution", "--flavor", "dev"],
            &[],
        ),
    );
    let s3_env = [
        ("AWS_BUCKET", "images"),
        ("AWS_REGION", "eu-west-1"),
        ("CORS_ORIGINS", "[https://ui.example]"),
        ("CORS_METHODS", "[GET, HEAD]"),
        ("MIRROR_SOURCE", "https://registry-1.docker.io"),
        ("CACHE_REDIS_HOST", "redis"),
        ("CACHE_REDIS_PORT", "6379"),
    ];
    snapshot(
        &snap_path("export-bundled-prod"),
        &run(
            tmp.path(),
            &["export", "--to", "distribution", "--flavor", "prod"],
            &s3_env,
        ),
    );
    snapshot(
        &snap_path("export-bundled-glance"),
        &run(
            tmp.path(),
            &["export", "--to", "distribution", "--flavor", "glance"],
            &[],
        ),
    );
    // Endpoints are regconf's own: distribution has no place for them, so
    // each is named in a comment instead of vanishing.
    let endpoints = tmp.path().join("endpoints.yml");
    std::fs::write(
        &endpoints,
        "gcs:\n  storage: gcs\n  boto_bucket: images\n  gs_endpoint: http://127.0.0.1:4443\n\
         azure:\n  storage: azureblob\n  azure_storage_account_name: acct\n  \
         azure_storage_account_key: a2V5\n  \
         azure_endpoint: http://127.0.0.1:10000/acct\n",
    )
    .unwrap();
    for flavor in ["gcs", "azure"] {
        snapshot(
            &snap_path(&format!("export-{flavor}-endpoint")),
            &run(
                tmp.path(),
                &[
                    "export",
                    "endpoints.yml",
                    "--to",
                    "distribution",
                    "--flavor",
                    flavor,
                ],
                &[],
            ),
        );
    }
    for (name, file, flavor) in [
        ("export-09-gcs", "style-0.9.yml", "gcs"),
        ("export-09-azureblob", "style-0.9.yml", "azureblob"),
        ("export-06-dev", "style-0.6.yml", "dev"),
        ("export-seed-prod", "style-seed.yml", "prod"),
    ] {
        snapshot(
            &snap_path(name),
            &run(
                &samples(),
                &["export", file, "--to", "distribution", "--flavor", flavor],
                &[
                    ("GCS_BUCKET", "images"),
                    ("AZURE_STORAGE_ACCOUNT_NAME", "acct"),
                    ("AZURE_STORAGE_ACCOUNT_KEY", "a2V5"),
                    ("AWS_S3_BUCKET", "images"),
                ],
            ),
        );
    }
}

fn has(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `method path` on 127.0.0.1:port: the status code and the answer's text.
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
    let (status, answer) = crate::support::http::request(port, method, path, body)?;
    Some((status, String::from_utf8_lossy(&answer).into_owned()))
}

/// A child process killed (by its PID) when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(port: u16, path: &str, child: &mut Child) -> (u16, String) {
    let start = Instant::now();
    loop {
        if let Some(r) = http(port, "GET", path, b"") {
            return r;
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("the server exited ({status}) before answering:\n{err}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no answer on port {port} in 30s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `docker-registry serve FILE` on a free port; `GET /v2/` must answer
/// 200. Returns the port and the process.
fn serve_distribution(config: &Path) -> (u16, Child) {
    let port = free_port();
    let mut child = Child(
        Command::new("docker-registry")
            .arg("serve")
            .arg(config)
            .env_clear()
            .env("REGISTRY_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker-registry starts"),
    );
    // Drain its log so that it never blocks on a full pipe.
    let err = child.0.stderr.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(err).lines() {});
    let (status, text) = wait_for(port, "/v2/", &mut child);
    assert_eq!(status, 200, "GET /v2/ answered:\n{text}");
    (port, child)
}

/// Pushes one blob through distribution (monolithic upload) and reads it
/// back, so the storage settings are exercised, not only parsed.
fn push_blob(port: u16) {
    let data = b"regconf export check";
    let digest = format!("sha256:{}", sha256_hex(data));
    let (status, text) = http(port, "POST", "/v2/regconf/check/blobs/uploads/", b"").unwrap();
    assert_eq!(status, 202, "upload start:\n{text}");
    let location = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .unwrap()
        .trim()
        .to_owned();
    let path = location
        .split_once("//")
        .map_or(location.as_str(), |(_, r)| &r[r.find('/').unwrap()..]);
    let sep = if path.contains('?') { '&' } else { '?' };
    let (status, text) = http(port, "PUT", &format!("{path}{sep}digest={digest}"), data).unwrap();
    assert_eq!(status, 201, "upload:\n{text}");
    let (status, text) = http(
        port,
        "GET",
        &format!("/v2/regconf/check/blobs/{digest}"),
        b"",
    )
    .unwrap();
    assert_eq!(status, 200, "blob read back:\n{text}");
    assert!(text.ends_with("regconf export check"));
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn export(dir: &Path, flavor: &str, env: &[(&str, &str)]) -> PathBuf {
    let mut cmd = regconf(dir);
    cmd.args(["export", "--to", "distribution", "--flavor", flavor]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", transcript(&out));
    let path = dir.join(format!("{flavor}-distribution.yml"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

#[test]
fn export_of_dev_runs_in_distribution() {
    assert!(
        has("docker-registry"),
        "docker-registry is not installed: `apt-get install docker-registry` (tests/run.sh does it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let root_dir = tmp.path().join("images");
    let config = export(
        tmp.path(),
        "dev",
        &[("STORAGE_PATH", root_dir.to_str().unwrap())],
    );
    let (port, _child) = serve_distribution(&config);
    push_blob(port);
    assert!(root_dir.join("docker/registry/v2/blobs").is_dir());
}

#[test]
fn export_of_an_s3_flavor_runs_in_distribution_against_moto() {
    assert!(
        has("docker-registry"),
        "docker-registry is not installed: `apt-get install docker-registry` (tests/run.sh does it)"
    );
    // moto's S3 server on a free port, with the bucket created; stopped when
    // dropped
    let moto = crate::registry::moto::Moto::start("exported");
    let moto_port = moto.port;
    let tmp = tempfile::tempdir().unwrap();
    let port = moto_port.to_string();
    let config = export(
        tmp.path(),
        "prod",
        &[
            ("AWS_BUCKET", "exported"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_HOST", "127.0.0.1"),
            ("AWS_PORT", &port),
            ("AWS_SECURE", "false"),
            ("AWS_ENCRYPT", "false"),
            ("AWS_KEY", "testing"),
            ("AWS_SECRET", "testing"),
        ],
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains(&format!("regionendpoint: http://127.0.0.1:{port}")),
        "{text}"
    );
    let (port, _child) = serve_distribution(&config);
    push_blob(port);
}

/// The operating sections of issue 13 (`readonly`, `metrics`, `tls`,
/// `auth`, `limits`), as exact text.
#[test]
fn export_maps_readonly_metrics_tls_and_htpasswd() {
    let tmp = tempfile::tempdir().unwrap();
    crate::security::htpasswd(tmp.path());
    crate::security::self_signed(tmp.path()); // writes cert.pem and key.pem
    std::fs::write(
        tmp.path().join("config.yml"),
        "f:\n  storage: local\n  storage_path: /var/lib/registry\n  readonly: true\n  metrics:\n    listen: 127.0.0.1:9090\n  auth:\n    htpasswd: ./htpasswd\n    readonly: [bob]\n  tls:\n    certificate: ./cert.pem\n    key: ./key.pem\n  limits:\n    max_connections: 64\n",
    )
    .unwrap();
    snapshot(
        &snap_path("export-operate"),
        &run(
            tmp.path(),
            &["export", "--to", "distribution", "--flavor", "f"],
            &[],
        ),
    );
}

/// distribution runs the export of `readonly` and `metrics`: writes are
/// refused, reads answer, and its debug server serves Prometheus metrics.
#[test]
fn export_of_readonly_and_metrics_runs_in_distribution() {
    assert!(
        has("docker-registry"),
        "docker-registry is not installed: `apt-get install docker-registry` (tests/run.sh does it)"
    );
    let tmp = tempfile::tempdir().unwrap();
    let metrics = free_port();
    std::fs::write(
        tmp.path().join("config.yml"),
        format!(
            "f:\n  storage: local\n  storage_path: ./images\n  readonly: true\n  metrics:\n    listen: 127.0.0.1:{metrics}\n"
        ),
    )
    .unwrap();
    let config = export(tmp.path(), "f", &[]);
    let (port, _child) = serve_distribution(&config);
    let (status, text) = http(port, "POST", "/v2/regconf/check/blobs/uploads/", b"").unwrap();
    assert_eq!(status, 405, "a write to a read-only distribution:\n{text}");
    let (status, text) = http(metrics, "GET", "/metrics", b"").unwrap();
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("# TYPE "), "{text}");
}
