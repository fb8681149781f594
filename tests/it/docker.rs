//! The seed's own workflow with the real Docker client: `docker push`,
//! `/v1/search` and `docker search`, `docker pull` on a clean daemon,
//! `docker login` against htpasswd; and one push/pull round trip with podman.
//!
//! These tests and container_image.rs start their own `dockerd` (Debian's
//! `docker.io`, as root) with everything in a temporary folder: no iptables,
//! no bridge, its own socket, data and exec roots. Tests that run at the same
//! time share one daemon; the last one to finish stops it (SIGTERM, then
//! SIGKILL, its containerd too), also when a test fails. Images come from
//! `docker import` of a tarball the test writes, since nothing can be pulled
//! from the internet here. Loopback registries are insecure (plain HTTP) by
//! default for dockerd and are reached with `--tls-verify=false` by podman.
//!
//! A daemon that cannot start fails the test with its log: no silent skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::harness::Server;

/// Seconds any docker, podman or curl command may take.
const TOOL_TIMEOUT: &str = "300";

/// A `dockerd` started by the tests, with its files in a temporary folder.
pub(crate) struct Daemon {
    child: Mutex<Child>,
    dir: tempfile::TempDir,
    /// `unix://<dir>/docker.sock`, for `DOCKER_HOST`.
    pub(crate) host: String,
}

static DAEMON: Mutex<Weak<Daemon>> = Mutex::new(Weak::new());

impl Daemon {
    /// The running daemon, started if no test holds one now.
    pub(crate) fn shared() -> Arc<Daemon> {
        let mut slot = DAEMON.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = slot.upgrade() {
            return d;
        }
        let d = Arc::new(Daemon::start());
        *slot = Arc::downgrade(&d);
        d
    }

    fn start() -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("regconf-dockerd-")
            .tempdir()
            .unwrap();
        let p = dir.path();
        let sock = p.join("docker.sock");
        let log = std::fs::File::create(p.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .arg("--data-root")
            .arg(p.join("data"))
            .arg("--exec-root")
            .arg(p.join("exec"))
            .arg("--pidfile")
            .arg(p.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run dockerd ({e}): install Debian's docker.io \
                     (apt-get install docker.io; tests/run.sh does)"
                )
            });
        let daemon = Daemon {
            child: Mutex::new(child),
            host: format!("unix://{}", sock.display()),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = daemon.child.lock().unwrap().try_wait() {
                panic!(
                    "dockerd exited with {status} before it answered (it runs as root \
                     with --iptables=false --bridge=none); its log:\n{}",
                    daemon.log()
                );
            }
            if sock.exists() {
                let out = daemon.docker_cmd(None).args(["version"]).output().unwrap();
                if out.status.success() {
                    return daemon;
                }
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer on {} within 60 s; its log:\n{}",
                daemon.host,
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What the daemon logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// `docker` talking to this daemon, with a client configuration folder of
    /// its own (`DOCKER_CONFIG`) when given, so logins stay in the test.
    pub(crate) fn docker_cmd(&self, config: Option<&Path>) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.args([TOOL_TIMEOUT, "docker"])
            .env("DOCKER_HOST", &self.host)
            .stdin(Stdio::null());
        if let Some(c) = config {
            cmd.env("DOCKER_CONFIG", c);
        }
        cmd
    }

    /// Runs `docker ARGS` with the client configuration in `client`.
    pub(crate) fn docker(&self, client: &Path, args: &[&str]) -> Output {
        self.docker_cmd(Some(client))
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run docker ({e}): apt-get install docker.io"))
    }

    /// [`Daemon::docker`] that must succeed; returns stdout.
    pub(crate) fn docker_ok(&self, client: &Path, args: &[&str]) -> String {
        let out = self.docker(client, args);
        assert!(
            out.status.success(),
            "docker {} failed ({}):\n{}{}\n--- dockerd log (tail):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log(), 30)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !matches!(child.try_wait(), Ok(Some(_))) {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // dockerd started its own containerd; it stops it on SIGTERM, but
        // not when it was killed.
        let pidfile = self.dir.path().join("exec/containerd/containerd.pid");
        if let Ok(pid) = std::fs::read_to_string(pidfile) {
            let pid = pid.trim();
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        // dockerd leaves a bind mount of the host's network namespace
        // (exec/netns/default), and overlay mounts if it was killed; unmount
        // them, deepest first, so the folder can be removed.
        let mut mounts = mounts_under(self.dir.path());
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
    }
}

/// Mount points at or below `dir`, from /proc/self/mountinfo.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&format!("{dir}/")))
        .map(str::to_owned)
        .collect()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A tarball holding one file, `hello.txt`, with `content`, for
/// `docker import`.
pub(crate) fn rootfs_tarball(dir: &Path, content: &str) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello.txt"), content).unwrap();
    let tar = dir.join("rootfs.tar");
    let out = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    tar
}

/// Content unique to this test run, so a pull can only succeed from the
/// registry.
pub(crate) fn unique(what: &str) -> String {
    format!(
        "{what} {:?} {}\n",
        std::time::SystemTime::now(),
        std::process::id()
    )
}

/// `hello.txt` of `image`, read through `docker create` + `docker cp`.
pub(crate) fn file_in_image(d: &Daemon, client: &Path, image: &str) -> String {
    // The image has no program; a container that is only created needs none.
    let id = d.docker_ok(client, &["create", image, "/nothing"]);
    let id = id.trim();
    let dest = client.join("copied.txt");
    let _ = std::fs::remove_file(&dest);
    let out = d.docker(
        client,
        &["cp", &format!("{id}:/hello.txt"), dest.to_str().unwrap()],
    );
    d.docker_ok(client, &["rm", id]);
    assert!(out.status.success(), "docker cp: {out:?}");
    std::fs::read_to_string(dest).unwrap()
}

/// A registry whose search index and storage live in `dir`.
fn dev_config() -> &'static str {
    "f:\n  storage: local\n  storage_path: ./store\n  loglevel: info\n  \
     search_backend: sqlalchemy\n  sqlalchemy_index_database: sqlite:///./index.db\n"
}

fn curl(url: &str) -> String {
    let out = Command::new("timeout")
        .args([TOOL_TIMEOUT, "curl", "-sS", "--fail", url])
        .output()
        .expect("curl (apt-get install curl)");
    assert!(out.status.success(), "curl {url}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn docker_push_search_then_pull_on_a_clean_daemon() {
    let daemon = Daemon::shared();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), dev_config());
    let client = dir.path().join("client");
    std::fs::create_dir_all(&client).unwrap();
    let host = format!("127.0.0.1:{}", server.port);
    let content = unique("pushed by docker");
    let tar = rootfs_tarball(dir.path(), &content);
    let local = format!("regconf-test-local-{}:v1", server.port);
    let remote = format!("{host}/test");

    // The seed's steps: tag, push, search over HTTP and with the client.
    daemon.docker_ok(&client, &["import", tar.to_str().unwrap(), &local]);
    daemon.docker_ok(&client, &["tag", &local, &remote]);
    let out = daemon.docker_ok(&client, &["push", &remote]);
    assert!(out.contains("latest: digest: sha256:"), "{out}");
    let found: serde_json::Value =
        serde_json::from_str(&curl(&format!("http://{host}/v1/search?q=test"))).unwrap();
    assert_eq!(found["num_results"], 1, "{found}");
    assert_eq!(found["results"][0]["name"], "library/test", "{found}");
    let out = daemon.docker_ok(&client, &["search", &remote]);
    let names: Vec<&str> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["library/test"], "{out}");

    // "Another machine": the daemon forgets the image, then pulls it back.
    daemon.docker_ok(&client, &["rmi", &remote, &local]);
    let gone = daemon.docker(&client, &["image", "inspect", &remote]);
    assert!(!gone.status.success(), "the image is still there");
    let out = daemon.docker_ok(&client, &["pull", &remote]);
    assert!(
        out.contains("Downloaded newer image for"),
        "pull did not download: {out}"
    );
    assert_eq!(file_in_image(&daemon, &client, &remote), content);
    daemon.docker_ok(&client, &["rmi", &remote]);
    assert!(server.alive(), "{}", server.log());
}

#[test]
fn docker_login_against_htpasswd_then_push_and_pull() {
    let daemon = Daemon::shared();
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("right-pass", 5).unwrap();
    std::fs::write(dir.path().join("htpasswd"), format!("carol:{hash}\n")).unwrap();
    let server = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: info\n  \
         auth:\n    htpasswd: ./htpasswd\n",
    );
    let client = dir.path().join("client");
    std::fs::create_dir_all(&client).unwrap();
    let host = format!("127.0.0.1:{}", server.port);
    let content = unique("pushed after login");
    let tar = rootfs_tarball(dir.path(), &content);
    let remote = format!("{host}/team/app:1");
    daemon.docker_ok(&client, &["import", tar.to_str().unwrap(), &remote]);

    // Without credentials the push is refused.
    let out = daemon.docker(&client, &["push", &remote]);
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "push without login succeeded: {text}"
    );
    assert!(
        text.contains("no basic auth credentials") || text.contains("unauthorized"),
        "{text}"
    );

    let login = |pass: &str| {
        let mut child = daemon
            .docker_cmd(Some(&client))
            .args(["login", "-u", "carol", "--password-stdin", &host])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(pass.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = login("wrong-pass");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a wrong password was accepted");
    assert!(
        text.contains("401") || text.contains("nauthorized"),
        "{text}"
    );
    assert!(
        !client.join("config.json").exists()
            || !std::fs::read_to_string(client.join("config.json"))
                .unwrap()
                .contains(&host),
        "credentials were stored after a refused login"
    );
    let out = login("right-pass");
    assert!(
        out.status.success(),
        "login refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"));

    daemon.docker_ok(&client, &["push", &remote]);
    daemon.docker_ok(&client, &["rmi", &remote]);
    daemon.docker_ok(&client, &["pull", &remote]);
    assert_eq!(file_in_image(&daemon, &client, &remote), content);
    daemon.docker_ok(&client, &["rmi", &remote]);

    // After logout, reads are refused again.
    daemon.docker_ok(&client, &["logout", &host]);
    let out = daemon.docker(&client, &["pull", &remote]);
    assert!(!out.status.success(), "pull after logout succeeded");
}

#[test]
fn podman_push_then_pull_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), dev_config());
    let host = format!("127.0.0.1:{}", server.port);
    let content = unique("pushed by podman");
    let tar = rootfs_tarball(dir.path(), &content);
    let p = dir.path();
    // Logins (none here) stay in the test's folder.
    std::fs::write(p.join("auth.json"), "{}").unwrap();
    // Rootful, with its storage in the test's folder (vfs: no overlay mounts
    // to leave behind).
    let podman = |args: &[&str]| -> String {
        let out = Command::new("timeout")
            .args([TOOL_TIMEOUT, "podman"])
            .arg("--root")
            .arg(p.join("podman-root"))
            .arg("--runroot")
            .arg(p.join("podman-run"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .args(args)
            .env("REGISTRY_AUTH_FILE", p.join("auth.json"))
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run podman ({e}): apt-get install podman"));
        assert!(
            out.status.success(),
            "podman {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let remote = format!("{host}/podman/test:1");
    podman(&[
        "import",
        tar.to_str().unwrap(),
        "localhost/regconf-podman:1",
    ]);
    podman(&[
        "push",
        "--tls-verify=false",
        "localhost/regconf-podman:1",
        &remote,
    ]);
    podman(&["rmi", "localhost/regconf-podman:1"]);
    podman(&["pull", "--tls-verify=false", &remote]);
    let id = podman(&["create", &remote, "/nothing"]);
    let copied = p.join("copied.txt");
    podman(&[
        "cp",
        &format!("{}:/hello.txt", id.trim()),
        copied.to_str().unwrap(),
    ]);
    podman(&["rm", id.trim()]);
    assert_eq!(std::fs::read_to_string(copied).unwrap(), content);
    let tags = curl(&format!("http://{host}/v2/podman/test/tags/list"));
    assert!(tags.contains(r#""1""#), "{tags}");
}
