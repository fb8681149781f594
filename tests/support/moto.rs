//! A real S3 server for tests: moto's, on a free loopback port, with one
//! bucket. A missing moto fails the test with the install command; it
//! never skips.
//!
//! moto is stopped by PID when its handle is dropped or, for a handle that
//! lives in a `static` (never dropped), when the test process ends however
//! it ends: it runs under a small `sh` that waits for its standard input to
//! close (which happens when this process exits) and then kills moto's PID.

use std::net::TcpListener;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::http::status;

/// How to install moto.
pub(crate) const INSTALL: &str = "pip install 'moto[server]'";

/// A running moto server.
pub(crate) struct Moto {
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
    /// The watchdog shell's stdin; closing it stops moto.
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
}

impl Moto {
    /// Starts moto and creates `bucket` (an unsigned `PUT`, which moto
    /// accepts).
    pub(crate) fn start(bucket: &str) -> Moto {
        Self::start_logging(bucket, None)
    }

    /// Starts moto as [`Moto::start`] does, writing its request log (one
    /// line per request: method, path and query, status) to `log` when given.
    pub(crate) fn start_logging(bucket: &str, log: Option<&std::path::Path>) -> Moto {
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
                r#"python3 -m moto.server -H 127.0.0.1 -p "$1" >"$2" 2>&1 & m=$!; read _ignored; kill "$m"; wait "$m""#,
                "sh",
                &port.to_string(),
                &log.map_or_else(|| "/dev/null".to_owned(), |p| p.display().to_string()),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto ({INSTALL}): {e}"));
        let stdin = child.stdin.take();
        let moto = Moto {
            port,
            stdin: Mutex::new(stdin),
            child: Mutex::new(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while status(port, "GET", "/").is_none() {
            assert!(
                Instant::now() < deadline,
                "moto did not start on port {port} within 30s (`{INSTALL}`)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            status(port, "PUT", &format!("/{bucket}")),
            Some(200),
            "moto did not create bucket `{bucket}`"
        );
        moto
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
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
