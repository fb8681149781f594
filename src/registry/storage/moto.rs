//! A real S3 server for driver tests: moto's, on a free loopback port, with
//! one bucket, stopped (by PID) when dropped. Test-only. A missing moto
//! fails the test with the install command; it never skips.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to install what [`Moto::start`] needs.
pub(crate) const INSTALL: &str = "pip install 'moto[server]'";

/// A running moto server.
pub(crate) struct Moto {
    /// `http://127.0.0.1:<port>`.
    pub(crate) endpoint: String,
    /// Its port.
    pub(crate) port: u16,
    child: Child,
}

/// Sends a bodiless request and returns the status code.
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
    let text = String::from_utf8_lossy(&out);
    text.split_whitespace().nth(1)?.parse().ok()
}

impl Moto {
    /// Starts moto and creates `bucket` (an unsigned `PUT`, which moto
    /// accepts).
    pub(crate) fn start(bucket: &str) -> Moto {
        let probe = Command::new("python3")
            .args(["-c", "import moto.server"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3: {e}; moto needs it ({INSTALL})"));
        assert!(
            probe.status.success(),
            "moto is not installed; install it with `{INSTALL}`"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // `python3 -m` so that the PID is moto's own (`moto_server` behind
        // a pyenv shim would be a wrapper).
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto ({INSTALL}): {e}"));
        let mut moto = Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while status(port, "GET", "/").is_none() {
            if let Ok(Some(st)) = moto.child.try_wait() {
                panic!("moto exited at start ({st}); is it installed? `{INSTALL}`");
            }
            assert!(Instant::now() < deadline, "moto did not start in 30s");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            status(port, "PUT", &format!("/{bucket}")),
            Some(200),
            "moto did not create bucket `{bucket}`"
        );
        moto
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
