//! The registry, driven over loopback by real clients: skopeo, the `oras`
//! Python SDK, and curl. Nothing is mocked.
//!
//! Every test starts its own `regconf serve` process on
//! `127.0.0.1:<random port>` with storage in a temporary directory
//! ([`start`], [`start_with`]), from a configuration file written as an
//! operator would write it.
//! External tools must be installed (`apt-get install -y skopeo curl`,
//! `pip install oras`, `pip install 'moto[server]'`); a missing tool fails
//! the test with a message saying how to install it, it never skips. Every
//! external command runs under a time limit.
//!
//! The client tests run twice: as written, on local storage, and once more
//! on the S3 driver against a moto server ([`also_on_s3!`] adds a `s3`
//! module of wrappers to a test file; [`config`] then hands out an S3
//! storage whose key prefix is derived from the test's directory).

use std::cell::Cell;

/// Which storage [`config`] gives the registry of the current test thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// Files under the test's directory.
    Local,
    /// The shared moto server, under a prefix of its own.
    S3,
}

thread_local! {
    static BACKEND: Cell<Backend> = const { Cell::new(Backend::Local) };
}

/// Runs `test` with [`config`] handing out S3 storage on moto.
pub(crate) fn on_s3(test: fn()) {
    BACKEND.set(Backend::S3);
    test();
    BACKEND.set(Backend::Local);
}

/// Adds a module `s3` with one test per named test of the file, running it
/// unchanged with the registry on the S3 driver.
macro_rules! also_on_s3 {
    ($($test:ident),+ $(,)?) => {
        mod s3 {
            $(
                #[test]
                fn $test() {
                    crate::registry::on_s3(super::$test);
                }
            )+
        }
    };
}

mod api;
mod azure;
pub(crate) mod azurite;
mod bad_input;
mod fence;
mod fleet;
mod gc;
mod gc_race;
mod gcs;
pub(crate) mod image;
pub(crate) use image::skopeo;
mod lifecycle;
mod metadata;
pub(crate) mod moto;
mod objects;
mod oras;
mod postgres;
mod search;
mod skopeo;
mod staleness;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use regconf::model;
use sha2::Digest as _;

/// Seconds any external command may take.
const TOOL_TIMEOUT: u64 = 180;

/// A `regconf serve` process on a free loopback port.
pub(crate) struct Registry {
    /// `127.0.0.1:<port>`.
    pub(crate) host: String,
    /// Where its storage is; see [`files_under`].
    pub(crate) root: Root,
    child: Option<Child>,
    /// Holds the configuration file while the server runs.
    _config: Option<tempfile::TempDir>,
}

impl Registry {
    /// `http://127.0.0.1:<port>` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.host)
    }

    /// A registry running elsewhere at `host`, for the helpers that take a
    /// [`Registry`]; its storage is not known here and it is not stopped.
    pub(crate) fn external(host: String) -> Registry {
        Registry {
            host,
            root: Root::Local(PathBuf::new()),
            child: None,
            _config: None,
        }
    }

    /// The same registry as an [`external`](Registry::external) handle.
    pub(crate) fn as_registry(&self) -> Registry {
        Registry::external(self.host.clone())
    }

    /// Peak resident memory of the server process so far (`VmHWM`), in KiB.
    pub(crate) fn peak_rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("a process started here").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .expect("/proc/<pid>/status of the registry");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status")
    }

    /// Stops the server with SIGTERM (requests in flight finish) and waits.
    pub(crate) fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The storage of a test registry.
#[derive(Debug, Clone)]
pub(crate) enum Root {
    /// A local directory.
    Local(PathBuf),
    /// A key prefix in the moto bucket.
    Bucket(Box<model::S3>),
    /// A container on the shared Azurite.
    Container(Box<model::Azure>),
    /// A key prefix in the bucket of the shared fake-gcs-server.
    Gcs(Box<model::Gcs>),
}

/// What [`files_under`] can list: a directory, or a registry's storage.
pub(crate) trait Listable {
    /// Every stored file (object), relative to the root, sorted.
    fn files(&self) -> Vec<String>;
}

impl Listable for Path {
    fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(rel) = p.strip_prefix(self) {
                    out.push(rel.display().to_string());
                }
            }
        }
        out.sort();
        out
    }
}

impl Listable for PathBuf {
    fn files(&self) -> Vec<String> {
        self.as_path().files()
    }
}

impl Listable for Root {
    fn files(&self) -> Vec<String> {
        match self {
            Root::Local(p) => p.files(),
            Root::Bucket(s3) => moto::keys(s3),
            Root::Container(a) => azurite::keys(a),
            Root::Gcs(g) => gcs::keys(g),
        }
    }
}

/// Storage for a test registry in `dir` on the current [`Backend`]: the
/// same `dir` always gives the same storage (restarts find their data).
pub(crate) fn storage(dir: &Path) -> model::Storage {
    match BACKEND.get() {
        Backend::Local => model::Storage::Local {
            storage_path: dir.join("storage").display().to_string(),
        },
        Backend::S3 => model::Storage::S3(moto::storage(dir)),
    }
}

/// The configuration the tests serve: local storage under `dir/storage`
/// (or S3 on moto, see [`Backend`]), the search index at `dir/index.db`.
pub(crate) fn config(dir: &Path) -> model::Config {
    let db = dir.join("index.db");
    model::Config {
        flavor: "test".into(),
        loglevel: Some("info".into()),
        debug: true,
        issue: Some("regconf test registry".into()),
        standalone: true,
        storage: storage(dir),
        storage_redirect: false,
        search_backend: Some("sqlalchemy".into()),
        sqlalchemy_index_database: Some(format!("sqlite:///{}", db.display())),
        cors: model::Cors::default(),
        upload_purge: model::UploadPurge::default(),
        ..model::Config::default()
    }
}

/// A string as YAML (JSON strings are YAML double-quoted scalars).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// The flavor `test` of a configuration file that serves `c`: the keys the
/// tests set, written as an operator would.
fn flavor_yaml(c: &model::Config) -> String {
    let mut y = format!("{}:\n", c.flavor);
    let mut line = |k: &str, v: String| y.push_str(&format!("    {k}: {v}\n"));
    if let Some(l) = &c.loglevel {
        line("loglevel", q(l));
    }
    line("debug", c.debug.to_string());
    if let Some(i) = &c.issue {
        line("issue", q(i));
    }
    line("standalone", c.standalone.to_string());
    line("storage_redirect", c.storage_redirect.to_string());
    if let Some(b) = &c.search_backend {
        line("search_backend", q(b));
    }
    if let Some(d) = &c.sqlalchemy_index_database {
        line("sqlalchemy_index_database", q(d));
    }
    match &c.storage {
        model::Storage::Local { storage_path } => {
            line("storage", "local".into());
            line("storage_path", q(storage_path));
        }
        model::Storage::S3(s3) => {
            line("storage", "s3".into());
            line("storage_path", q(&s3.storage_path));
            let opt = |o: &Option<String>| o.as_deref().map_or("null".to_owned(), q);
            line("boto_bucket", opt(&s3.boto_bucket));
            line("s3_region", opt(&s3.s3_region));
            line("s3_access_key", opt(&s3.s3_access_key));
            line("s3_secret_key", opt(&s3.s3_secret_key));
            line("boto_host", opt(&s3.boto_host));
            line(
                "boto_port",
                s3.boto_port.map_or("null".to_owned(), |p| p.to_string()),
            );
            line("s3_secure", s3.s3_secure.to_string());
            line("s3_encrypt", s3.s3_encrypt.to_string());
        }
        model::Storage::Azure(a) => {
            let opt = |o: &Option<String>| o.as_deref().map_or("null".to_owned(), q);
            line("storage", "azureblob".into());
            line(
                "azure_storage_account_name",
                opt(&a.azure_storage_account_name),
            );
            line(
                "azure_storage_account_key",
                opt(&a.azure_storage_account_key),
            );
            line("azure_storage_container", q(&a.azure_storage_container));
            line("azure_endpoint", opt(&a.azure_endpoint));
        }
        model::Storage::Gcs(g) => {
            let opt = |o: &Option<String>| o.as_deref().map_or("null".to_owned(), q);
            line("storage", "gcs".into());
            line("storage_path", q(&g.storage_path));
            line("boto_bucket", opt(&g.boto_bucket));
            line("gs_access_key", opt(&g.gs_access_key));
            line("gs_secret_key", opt(&g.gs_secret_key));
            line("gs_endpoint", opt(&g.gs_endpoint));
        }
        other => panic!("tests use local, s3 or azureblob storage, not {other:?}"),
    }
    let p = &c.upload_purge;
    line(
        "upload_purge",
        format!(
            "{{max_age_secs: {}, interval_secs: {}}}",
            p.max_age_secs, p.interval_secs
        ),
    );
    if c.gc != model::Gc::default() {
        let g = &c.gc;
        line(
            "gc",
            format!(
                "{{interval_secs: {}, grace_secs: {}, untagged: {}}}",
                g.interval_secs, g.grace_secs, g.untagged
            ),
        );
    }
    let m = &c.mirroring;
    if let Some(source) = &m.source {
        y.push_str("    mirroring:\n");
        y.push_str(&format!("        source: {}\n", q(source)));
        if let Some(ttl) = m.tags_cache_ttl {
            y.push_str(&format!("        tags_cache_ttl: {ttl}\n"));
        }
        if let (Some(u), Some(p)) = (&m.username, &m.password) {
            y.push_str(&format!("        username: {}\n", q(u)));
            y.push_str(&format!("        password: {}\n", q(p)));
        }
        y.push_str(&format!("        allow_push: {}\n", m.allow_push));
    }
    let cors = &c.cors;
    if !cors.origins.is_empty() {
        let list = |v: &[String]| {
            format!(
                "[{}]",
                v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
            )
        };
        y.push_str("    cors:\n");
        y.push_str(&format!("        origins: {}\n", list(&cors.origins)));
        y.push_str(&format!("        methods: {}\n", list(&cors.methods)));
        y.push_str(&format!("        headers: {}\n", list(&cors.headers)));
        y.push_str(&format!(
            "        expose_headers: {}\n",
            list(&cors.expose_headers)
        ));
        y.push_str(&format!(
            "        supports_credentials: {}\n",
            cors.supports_credentials
        ));
        if let Some(age) = cors.max_age {
            y.push_str(&format!("        max_age: {age}\n"));
        }
    }
    y
}

/// Starts `regconf serve` for `config` on a free loopback port: the
/// configuration is written as a file (beside the storage, or in the
/// system's temporary directory) and served as an operator would.
pub(crate) fn start_with(config: model::Config) -> Registry {
    let root = match &config.storage {
        model::Storage::Local { storage_path } => Root::Local(PathBuf::from(storage_path)),
        model::Storage::S3(s3) => Root::Bucket(Box::new(s3.clone())),
        model::Storage::Azure(a) => Root::Container(Box::new(a.clone())),
        model::Storage::Gcs(g) => gcs::root(g),
        other => panic!("tests use local, s3 or azureblob storage, not {other:?}"),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("registry.yml");
    std::fs::write(&file, flavor_yaml(&config)).expect("write the configuration");
    for _attempt in 0..3 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_regconf"))
            .arg("serve")
            .arg(&file)
            .args([
                "--flavor",
                &config.flavor,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run regconf serve");
        // Generous: a start builds the search index from storage, which on
        // a loaded machine with a thousand repositories on moto takes a while.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                // Another process took the port between our check and its
                // bind: try another one; any other failure is the test's.
                if status.code() == Some(1) {
                    break;
                }
                panic!("regconf serve exited with {status} (see its output above)");
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Registry {
                    host: format!("127.0.0.1:{port}"),
                    root,
                    child: Some(child),
                    _config: Some(dir),
                };
            }
            assert!(Instant::now() < deadline, "regconf serve did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    panic!("regconf serve did not start (see its output above)");
}

/// Writes `config` as the configuration file `registry.yml` in `dir`
/// (flavor `config.flavor`), as [`start_with`] serves it; returns its path.
pub(crate) fn config_file(config: &model::Config, dir: &Path) -> PathBuf {
    let file = dir.join("registry.yml");
    std::fs::write(&file, flavor_yaml(config)).expect("write the configuration");
    file
}

/// Starts a registry with [`config`] for `dir`.
pub(crate) fn start(dir: &Path) -> Registry {
    start_with(config(dir))
}

/// Runs `program args` under a time limit, failing clearly when the
/// program is not installed.
pub(crate) fn run(program: &str, args: &[&str], cwd: Option<&Path>, install: &str) -> Output {
    // A command given its own, longer `--max-time` (curl) keeps it: the
    // outer limit is only there for tools that hang.
    let own = args
        .windows(2)
        .filter(|w| w[0] == "--max-time")
        .filter_map(|w| w[1].parse::<u64>().ok())
        .next_back();
    let limit = own.map_or(TOOL_TIMEOUT, |s| s + 30).max(TOOL_TIMEOUT);
    let mut cmd = Command::new("timeout");
    cmd.arg(limit.to_string()).arg(program).args(args);
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run `timeout` (coreutils): {e}"));
    // `timeout` exits 127 when the program does not exist.
    assert!(
        out.status.code() != Some(127),
        "`{program}` is not installed; install it with `{install}`"
    );
    assert!(
        out.status.code() != Some(124),
        "`{program} {}` timed out after {limit}s",
        args.join(" ")
    );
    out
}

/// Like [`run`], and fails unless the command succeeded.
pub(crate) fn run_ok(program: &str, args: &[&str], cwd: Option<&Path>, install: &str) -> Vec<u8> {
    let out = run(program, args, cwd, install);
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// An HTTP answer as curl saw it.
#[derive(Debug)]
pub(crate) struct Reply {
    /// Status code.
    pub(crate) status: u16,
    /// Headers of the final answer, names lower-cased.
    pub(crate) headers: Vec<(String, String)>,
    /// Body bytes.
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The first header called `name` (lower-case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not json ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The OCI error code of an error body.
    pub(crate) fn error_code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an OCI error body: {}", self.text()))
            .to_owned()
    }
}

/// Runs curl with `args` (method, URL, headers, data) and returns the final
/// answer. Paths are sent as written (`--path-as-is`).
pub(crate) fn curl(args: &[&str]) -> Reply {
    let dir = tempfile::tempdir().expect("tempdir");
    let hdr = dir.path().join("headers");
    let body = dir.path().join("body");
    let mut all = vec![
        "-sS",
        "--max-time",
        "60",
        "--path-as-is",
        "-H",
        "Expect:",
        "-D",
        hdr.to_str().expect("utf-8 temp path"),
        "-o",
        body.to_str().expect("utf-8 temp path"),
    ];
    all.extend_from_slice(args);
    run_ok("curl", &all, None, "apt-get install -y curl");
    let raw = std::fs::read_to_string(&hdr).expect("curl wrote headers");
    let last = raw
        .split("\r\n\r\n")
        .filter(|b| b.starts_with("HTTP/"))
        .last()
        .unwrap_or_else(|| panic!("no http answer in {raw:?}"));
    let mut lines = last.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {last:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

/// `sha256:<hex>` of `data`.
pub(crate) fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Deterministic pseudo-random bytes (xorshift), distinct per `seed`.
pub(crate) fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `data` to a file in `dir` and returns its path as text.
pub(crate) fn file(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).expect("write test file");
    p.display().to_string()
}

/// Uploads `data` as a blob of `repo` in one request; returns its digest.
pub(crate) fn push_blob(reg: &Registry, dir: &Path, repo: &str, data: &[u8]) -> String {
    let d = digest(data);
    let f = file(dir, &d.replace(':', "-"), data);
    let r = curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{f}"),
        &reg.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")),
    ]);
    assert_eq!(r.status, 201, "{}", r.text());
    d
}

/// Pushes a small image (config plus one layer) as `repo:tag` with curl;
/// returns the manifest bytes and digest.
pub(crate) fn push_image(
    reg: &Registry,
    dir: &Path,
    repo: &str,
    tag: &str,
    seed: u64,
) -> (Vec<u8>, String) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
    let layer = random_bytes(1000 + usize::try_from(seed % 100).unwrap_or(0), seed);
    let cd = push_blob(reg, dir, repo, config.as_bytes());
    let ld = push_blob(reg, dir, repo, &layer);
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let md = digest(manifest.as_bytes());
    let r = put_manifest(reg, dir, repo, tag, manifest.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("docker-content-digest"), Some(md.as_str()));
    (manifest.into_bytes(), md)
}

/// `PUT /v2/<repo>/manifests/<reference>` with an OCI manifest type.
pub(crate) fn put_manifest(
    reg: &Registry,
    dir: &Path,
    repo: &str,
    reference: &str,
    body: &[u8],
) -> Reply {
    let f = file(dir, "manifest.json", body);
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &format!("@{f}"),
        &reg.url(&format!("/v2/{repo}/manifests/{reference}")),
    ])
}

/// Every file under `root` (a directory or a registry's storage),
/// relative, sorted.
pub(crate) fn files_under<T: Listable + ?Sized>(root: &T) -> Vec<String> {
    root.files()
}

/// Sends `head` (request line and headers, with `Host` added) over a fresh
/// connection and returns everything the server sent until it closed.
pub(crate) fn raw_request(reg: &Registry, head: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&reg.host).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let (line, rest) = head.split_once("\r\n").expect("request line");
    write!(s, "{line}\r\nHost: {}\r\n{rest}", reg.host).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
