//! Pull-through mirroring against real upstreams: the distribution registry
//! (Debian's `docker-registry`) started by the tests, anonymous, with
//! `auth: htpasswd` (Basic) or with `auth: token` and a token server
//! written here ([`token`]: RS256 JWTs carrying the signing certificate in
//! `x5c`, checked by distribution against its `rootcertbundle`). A proxy
//! that flips a byte of every blob ([`corrupt`]) stands for a corrupted
//! upstream. Clients are skopeo and curl/ureq; the mirror is `regconf
//! serve` on local storage or on S3 (moto).

mod config;
mod corrupt;
mod docker;
mod pull;
mod token;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regconf::model;

use crate::harness::free_port;
use crate::registry::{Registry, start_with};

const INSTALL_REGISTRY: &str = "apt-get install -y docker-registry";

/// How the upstream authenticates clients.
pub(crate) enum Auth {
    /// Anyone may pull and push.
    None,
    /// `auth: htpasswd` with one user.
    Basic { user: String, password: String },
    /// `auth: token` against this token server.
    Token(token::TokenServer),
}

/// A distribution registry started for a test, with its access log.
pub(crate) struct Upstream {
    pub(crate) port: u16,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    pub(crate) auth: Auth,
}

impl Upstream {
    /// Starts `docker-registry` on a free port with storage in `dir`.
    pub(crate) fn start(dir: &Path, auth: Auth) -> Upstream {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("data").display()
        );
        match &auth {
            Auth::None => {}
            Auth::Basic { user, password } => {
                let hash = bcrypt::hash(password, 4).unwrap();
                let file = dir.join("htpasswd");
                std::fs::write(&file, format!("{user}:{hash}\n")).unwrap();
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: mirror-test\n    path: {}\n",
                    file.display()
                ));
            }
            Auth::Token(t) => config.push_str(&t.distribution_config()),
        }
        let file = dir.join("config.yml");
        std::fs::write(&file, config).unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&file)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run docker-registry ({e}): `{INSTALL_REGISTRY}`"));
        let log = Arc::new(Mutex::new(String::new()));
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let up = Upstream {
            port,
            child: Some(child),
            log,
            auth,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while crate::support::http::status(port, "GET", "/v2/").is_none() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not start:\n{}",
                up.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        up
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its log so far (access log and messages).
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// How many `GET`s of `path` it answered with 200.
    pub(crate) fn gets(&self, path: &str) -> usize {
        let needle = format!("\"GET {path} HTTP/1.1\" 200");
        self.log().matches(&needle).count()
    }

    /// skopeo's `--dest-creds` for a push, when the upstream needs them.
    pub(crate) fn creds(&self) -> Option<String> {
        match &self.auth {
            Auth::None => None,
            Auth::Basic { user, password } => Some(format!("{user}:{password}")),
            Auth::Token(t) => Some(t.creds()),
        }
    }

    /// Pushes the OCI layout image `src:tag` as `repo:dest_tag` with skopeo.
    pub(crate) fn push(&self, src: &Path, tag: &str, repo: &str, dest_tag: &str) {
        let dest = format!("docker://127.0.0.1:{}/{repo}:{dest_tag}", self.port);
        let src = format!("oci:{}:{tag}", src.display());
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        let creds = self.creds();
        if let Some(c) = &creds {
            args.extend(["--dest-creds", c]);
        }
        args.extend([src.as_str(), dest.as_str()]);
        skopeo(&args);
    }

    /// Pushes a blob to an upstream without authentication: `POST`, then
    /// one `PUT` with the bytes (distribution has no single-request push).
    pub(crate) fn push_blob(&self, repo: &str, data: &[u8], d: &str) {
        let agent = crate::harness::agent();
        let r = agent
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.url()))
            .send_empty()
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let location = r.headers()["location"].to_str().unwrap().to_owned();
        let location = if location.starts_with('/') {
            format!("{}{location}", self.url())
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = agent
            .put(format!("{location}{sep}digest={d}"))
            .header("content-type", "application/octet-stream")
            .send(data)
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "blob push to the upstream");
    }

    /// Stops it (the mirror must then serve what it holds).
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) use crate::registry::skopeo;

/// Starts `regconf serve` mirroring `source`, with storage for `dir` (local
/// or S3, see `registry::Backend`).
pub(crate) fn mirror(dir: &Path, source: &str, f: impl FnOnce(&mut model::Mirroring)) -> Registry {
    // On S3 the key prefix is the directory's name: a unique one, so tests
    // running at once never share a prefix.
    std::fs::create_dir_all(dir).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("mirror-")
        .tempdir_in(dir)
        .unwrap()
        .keep();
    let mut c = crate::registry::config(&dir);
    c.mirroring.source = Some(source.to_owned());
    f(&mut c.mirroring);
    start_with(c)
}

/// Pulls `image` from `host` into a fresh OCI layout at `dst` with
/// skopeo; returns the layout's path.
pub(crate) fn pull(host: &str, image: &str, dst: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dst);
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{host}/{image}"),
        &format!("oci:{}:pulled", dst.display()),
    ]);
    dst.to_path_buf()
}

/// The manifest digest of the one image in an OCI layout.
pub(crate) fn layout_digest(dir: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_owned()
}

/// Every blob of `image` (in layout `src`) is byte for byte in `dst`.
pub(crate) fn assert_same_blobs(src: &Path, dst: &Path, image: &crate::registry::image::Image) {
    assert_eq!(layout_digest(dst), image.manifest);
    for d in image.blobs.iter().chain([&image.manifest]) {
        let rel = format!("blobs/sha256/{}", &d["sha256:".len()..]);
        assert_eq!(
            std::fs::read(src.join(&rel)).unwrap(),
            std::fs::read(dst.join(&rel)).unwrap_or_else(|e| panic!("pulled {rel}: {e}")),
            "{rel} differs"
        );
    }
}
