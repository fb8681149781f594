//! `regconf serve` as a process: it starts, answers, stops on SIGTERM, and
//! explains what keeps it from starting.

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{regconf, root, snapshot, transcript};
use crate::harness::free_port;

fn snap(name: &str, actual: &str) {
    snapshot(
        &root()
            .join("tests/snapshots/serve")
            .join(format!("{name}.txt")),
        actual,
    );
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    std::fs::write(dir.join(name), text).unwrap();
    name.to_owned()
}

fn run_to_end(cmd: &mut Command) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "serve did not stop by itself");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn serve_runs_the_bundled_dev_flavor_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let port = free_port();
    let mut child = regconf(dir.path())
        .args([
            "serve",
            "--flavor",
            "dev",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("STORAGE_PATH", &storage)
        .env(
            "SQLALCHEMY_INDEX_DATABASE",
            format!("sqlite:///{}/index.db", dir.path().display()),
        )
        .env("LOGLEVEL", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/v2/");
    let deadline = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        let out = Command::new("curl")
            .args(["-s", "-i", &url])
            .output()
            .unwrap();
        if out.status.success() {
            break String::from_utf8(out.stdout).unwrap();
        }
        assert!(Instant::now() < deadline, "serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        answer.contains("docker-distribution-api-version: registry/2.0"),
        "{answer}"
    );
    assert!(storage.is_dir(), "storage_path from STORAGE_PATH is used");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("flavor `dev` from `<bundled>/default.yml`"),
        "{log}"
    );
    assert!(log.contains("method=GET path=/v2/ status=200"), "{log}");
    assert!(log.contains("shutting down"), "{log}");
}

#[test]
fn serve_start_problems_are_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_to_end(regconf(dir.path()).args(["serve", "--listen", "nonsense"]));
    snap("listen-address", &transcript(&out));

    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let file = write(
        dir.path(),
        "ok.yml",
        "dev:\n  storage: local\n  storage_path: ./store\n",
    );
    let out = run_to_end(regconf(dir.path()).args([
        "serve",
        &file,
        "--listen",
        &format!("127.0.0.1:{port}"),
    ]));
    snap(
        "listen-busy",
        &transcript(&out).replace(&port.to_string(), "[PORT]"),
    );
    drop(busy);

    let file = write(
        dir.path(),
        "storage.yml",
        "dev:\n  storage: local\n  storage_path: /proc/regconf/store\n",
    );
    let out = run_to_end(regconf(dir.path()).args([
        "serve",
        &file,
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]));
    snap("storage", &transcript(&out));

    let file = write(
        dir.path(),
        "index.yml",
        "dev:\n  storage: local\n  storage_path: ./store\n  search_backend: sqlalchemy\n  sqlalchemy_index_database: sqlite:////proc/regconf/index.db\n",
    );
    let out = run_to_end(regconf(dir.path()).args([
        "serve",
        &file,
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]));
    snap("search-index", &transcript(&out));

    let file = write(
        dir.path(),
        "swift.yml",
        "dev:\n  storage: swift\n  swift_authurl: http://keystone\n",
    );
    let out = run_to_end(regconf(dir.path()).args([
        "serve",
        &file,
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
    ]));
    snap("unsupported-driver", &transcript(&out));
}
