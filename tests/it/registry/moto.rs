//! The moto S3 server the S3 variants of the tests share: started once per
//! test process on a free loopback port, with one bucket; each test gets a
//! key prefix of its own. moto is stopped by PID when the test process ends,
//! however it ends: it runs under a small `sh` that waits for its standard
//! input to close (which happens when this process exits) and then kills
//! moto's PID.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::ObjectStore;
use regconf::model;

/// How to install moto.
pub(crate) const INSTALL: &str = "pip install 'moto[server]'";

/// The bucket the tests share.
pub(crate) const BUCKET: &str = "regconf-test";

/// A moto server that lives while its handle does (or, for the shared one,
/// while the test process does).
pub(crate) struct Moto {
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
    /// The watchdog shell; closing its stdin stops moto.
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
}

/// Sends a bodiless request to moto and returns the status code.
pub(crate) fn status(port: u16, method: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

impl Moto {
    /// Starts a moto server with `bucket` created.
    pub(crate) fn start(bucket: &str) -> Moto {
        let probe = Command::new("python3")
            .args(["-c", "import moto.server"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e}); moto needs it: `{INSTALL}`"));
        assert!(
            probe.status.success(),
            "moto is not installed; install it with `{INSTALL}`"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // `python3 -m moto.server` so that `$!` is moto's own PID (the
        // `moto_server` script behind a pyenv shim is a wrapper).
        let mut child = Command::new("sh")
            .args([
                "-c",
                r#"python3 -m moto.server -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & m=$!; read _ignored; kill "$m"; wait "$m""#,
                "sh",
                &port.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto: {e}"));
        let stdin = child.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(30);
        while status(port, "GET", "/").is_none() {
            assert!(
                Instant::now() < deadline,
                "moto did not start on port {port} within 30s (`{INSTALL}`)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // moto accepts an unsigned bucket creation.
        assert_eq!(
            status(port, "PUT", &format!("/{bucket}")),
            Some(200),
            "moto did not create bucket `{bucket}`"
        );
        Moto {
            port,
            stdin: Mutex::new(stdin),
            child: Mutex::new(child),
        }
    }

    /// Stops moto (by its PID, from the watchdog) and waits for it.
    pub(crate) fn stop(&self) {
        drop(self.stdin.lock().expect("moto stdin").take());
        let _ = self.child.lock().expect("moto child").wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The moto server of this test process.
pub(crate) fn shared() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| Moto::start(BUCKET))
}

/// S3 settings for `bucket` on the moto at `port`, under `prefix`.
pub(crate) fn settings(port: u16, bucket: &str, prefix: &str) -> model::S3 {
    model::S3 {
        boto_bucket: Some(bucket.into()),
        storage_path: prefix.into(),
        s3_region: Some("us-east-1".into()),
        s3_access_key: Some("test".into()),
        s3_secret_key: Some("test".into()),
        s3_secure: false,
        s3_encrypt: true,
        boto_host: Some("127.0.0.1".into()),
        boto_port: Some(i64::from(port)),
        ..model::S3::default()
    }
}

/// S3 storage on the shared moto for the test directory `dir`: the prefix
/// is the directory's name, so a restart in the same directory finds the
/// same objects.
pub(crate) fn storage(dir: &Path) -> model::S3 {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("temp dir name")
        .trim_start_matches('.');
    settings(shared().port, BUCKET, &format!("/tests/{name}"))
}

/// Every key under the prefix of `s3`, relative to it, sorted.
pub(crate) fn keys(s3: &model::S3) -> Vec<String> {
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!(
            "http://127.0.0.1:{}",
            s3.boto_port.expect("moto port")
        ))
        .with_allow_http(true)
        .with_bucket_name(s3.boto_bucket.clone().expect("bucket"))
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .expect("s3 client");
    let prefix = s3.storage_path.trim_matches('/').to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut keys: Vec<String> = rt.block_on(async {
        let p = object_store::path::Path::from(prefix.as_str());
        store
            .list(Some(&p))
            .map_ok(|m| {
                m.location
                    .as_ref()
                    .strip_prefix(&format!("{prefix}/"))
                    .unwrap_or(m.location.as_ref())
                    .to_owned()
            })
            .try_collect()
            .await
            .expect("list moto bucket")
    });
    keys.sort();
    keys
}
