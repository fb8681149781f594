//! The container image: `scripts/build-image.sh` builds it with the real
//! `docker build` (against the tests' own dockerd), and it runs as the seed
//! ran docker-registry's image: the bundled `dev` flavor on the port given
//! by REGISTRY_PORT, a mounted file through DOCKER_REGISTRY_CONFIG, images
//! in the /var/lib/registry volume, a non-root user, a HEALTHCHECK and a
//! clean stop on SIGTERM. Also `regconf healthcheck` on its own.
//!
//! The static release build takes minutes the first time; it goes to
//! `target/image` so later runs reuse it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{regconf, root};
use crate::docker::{Daemon, file_in_image, rootfs_tarball, unique};
use crate::harness::{Server, free_port};

/// The image must stay small.
const MAX_IMAGE_BYTES: u64 = 40 * 1000 * 1000;

/// Containers and the image of one test, removed when it ends (also on
/// failure); the daemon itself goes with its last user.
struct Cleanup<'a> {
    daemon: &'a Daemon,
    client: &'a Path,
    containers: Vec<String>,
    image: String,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = self.daemon.docker(self.client, &["rm", "-f", c]);
        }
        let _ = self.daemon.docker(self.client, &["rmi", "-f", &self.image]);
    }
}

fn wait_for_v2(port: u16, what: &str, logs: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .arg(format!("http://127.0.0.1:{port}/v2/"))
            .output()
            .expect("curl (apt-get install curl)");
        if out.stdout == b"200" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not answer on 127.0.0.1:{port} within 30 s; its logs:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn image_builds_offline_runs_as_the_seed_did_and_serves_push_and_pull() {
    let daemon = Daemon::shared();
    let dir = tempfile::tempdir().unwrap();
    let client = dir.path().join("client");
    std::fs::create_dir_all(&client).unwrap();
    let tag = format!("regconf-test:{}", std::process::id());
    let mut cleanup = Cleanup {
        daemon: &daemon,
        client: &client,
        containers: Vec::new(),
        image: tag.clone(),
    };

    // Build: the script, with `docker` as found and DOCKER_HOST choosing
    // our daemon.
    let started = Instant::now();
    let out = Command::new("timeout")
        .args(["1200", "bash", "scripts/build-image.sh", &tag])
        .current_dir(root())
        .env("DOCKER_HOST", &daemon.host)
        .env("DOCKER_CONFIG", &client)
        .env("CARGO_TARGET_DIR", root().join("target/image"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build-image.sh failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("image built in {:?}", started.elapsed());

    // Small, not root, the seed's defaults, a volume and a health check.
    let size: u64 = daemon
        .docker_ok(&client, &["image", "inspect", "-f", "{{.Size}}", &tag])
        .trim()
        .parse()
        .unwrap();
    assert!(size < MAX_IMAGE_BYTES, "image is {size} bytes");
    let config: serde_json::Value = serde_json::from_str(&daemon.docker_ok(
        &client,
        &["image", "inspect", "-f", "{{json .Config}}", &tag],
    ))
    .unwrap();
    assert_eq!(config["User"], "65532:65532", "{config}");
    let env: Vec<&str> = config["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for want in [
        "REGISTRY_HOST=0.0.0.0",
        "REGISTRY_PORT=5000",
        "SETTINGS_FLAVOR=dev",
        "STORAGE_PATH=/var/lib/registry",
    ] {
        assert!(env.contains(&want), "{want} not in {env:?}");
    }
    assert!(
        config["Volumes"].get("/var/lib/registry").is_some(),
        "{config}"
    );
    assert_eq!(
        config["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/usr/local/bin/regconf", "healthcheck"]),
        "{config}"
    );

    // Run it as acceptance point 4 says: host network, the port by variable.
    let port = free_port();
    let id = daemon
        .docker_ok(
            &client,
            &[
                "run",
                "-d",
                "--network",
                "host",
                "-e",
                &format!("REGISTRY_PORT={port}"),
                "-e",
                "REGISTRY_HOST=127.0.0.1",
                &tag,
            ],
        )
        .trim()
        .to_owned();
    cleanup.containers.push(id.clone());
    let logs = |id: &str| {
        let out = daemon.docker(&client, &["logs", id]);
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    wait_for_v2(port, "the container", || logs(&id));

    // Push, search, forget, pull.
    let host = format!("127.0.0.1:{port}");
    let content = unique("pushed to the image");
    let tar = rootfs_tarball(dir.path(), &content);
    let remote = format!("{host}/test");
    daemon.docker_ok(&client, &["import", tar.to_str().unwrap(), &remote]);
    daemon.docker_ok(&client, &["push", &remote]);
    let found = Command::new("curl")
        .args(["-sS", &format!("http://{host}/v1/search?q=test")])
        .output()
        .unwrap();
    let found = String::from_utf8_lossy(&found.stdout);
    assert!(found.contains(r#""name": "library/test""#), "{found}");
    daemon.docker_ok(&client, &["rmi", &remote]);
    daemon.docker_ok(&client, &["pull", &remote]);
    assert_eq!(file_in_image(&daemon, &client, &remote), content);
    daemon.docker_ok(&client, &["rmi", &remote]);

    // The images are in the volume, written by the non-root user.
    let out = daemon.docker(
        &client,
        &[
            "cp",
            &format!("{id}:/var/lib/registry/repositories/test/_manifests"),
            "-",
        ],
    );
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "no manifests in /var/lib/registry: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The health check runs the binary in the container.
    let out = daemon.docker_ok(
        &client,
        &["exec", &id, "/usr/local/bin/regconf", "healthcheck"],
    );
    assert!(out.starts_with("healthy: GET http://127.0.0.1:"), "{out}");

    // SIGTERM (docker stop) ends it cleanly and quickly.
    let stopping = Instant::now();
    daemon.docker_ok(&client, &["stop", "-t", "20", &id]);
    assert!(stopping.elapsed() < Duration::from_secs(15));
    let code = daemon.docker_ok(&client, &["inspect", "-f", "{{.State.ExitCode}}", &id]);
    assert_eq!(code.trim(), "0", "{}", logs(&id));

    // The seed's other line: a mounted file named by DOCKER_REGISTRY_CONFIG,
    // its flavor by SETTINGS_FLAVOR, its variables from `-e`.
    let conf = dir.path().join("registry-conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("config.yml"),
        "common: &common\n  loglevel: _env:LOGLEVEL:info\n  storage: local\n  \
         storage_path: _env:STORAGE_PATH:/nowhere\nmine:\n  <<: *common\n  \
         issue: _env:ISSUE:unset\n",
    )
    .unwrap();
    for p in [dir.path(), &conf] {
        chmod(p, "755");
    }
    chmod(&conf.join("config.yml"), "644");
    let port = free_port();
    let id = daemon
        .docker_ok(
            &client,
            &[
                "run",
                "-d",
                "--network",
                "host",
                "-v",
                &format!("{}:/registry-conf:ro", conf.display()),
                "-e",
                "DOCKER_REGISTRY_CONFIG=/registry-conf/config.yml",
                "-e",
                "SETTINGS_FLAVOR=mine",
                "-e",
                "ISSUE=from the mounted file",
                "-e",
                &format!("REGISTRY_PORT={port}"),
                "-e",
                "REGISTRY_HOST=127.0.0.1",
                &tag,
            ],
        )
        .trim()
        .to_owned();
    cleanup.containers.push(id.clone());
    wait_for_v2(port, "the container with a mounted file", || logs(&id));
    let out = Command::new("curl")
        .args(["-sS", &format!("http://127.0.0.1:{port}/")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "\"from the mounted file\"",
        "{}",
        logs(&id)
    );
}

fn chmod(path: &Path, mode: &str) {
    let ok = Command::new("chmod")
        .arg(mode)
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn healthcheck_says_whether_serve_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n",
    );
    // `0.0.0.0` (the image's REGISTRY_HOST) is asked on loopback.
    let out = regconf(dir.path())
        .arg("healthcheck")
        .env("REGISTRY_HOST", "0.0.0.0")
        .env("REGISTRY_PORT", server.port.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "healthy: GET http://127.0.0.1:{}/v2/ answered 200\n",
            server.port
        )
    );
    drop(server);
    let port = free_port();
    let out = regconf(dir.path())
        .args(["healthcheck", "--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("unhealthy: GET http://127.0.0.1:{port}/v2/: ")),
        "{err}"
    );
}
