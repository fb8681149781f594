//! `regconf serve` as a child process for the reliability and security
//! tests: start on a free loopback port, talk raw HTTP or through `ureq`,
//! read its memory high-water mark, kill it.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::regconf;

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `regconf serve`.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Writes `config` (one flavor, `f`) to `dir/config.yml` and serves it;
    /// waits until the port answers HTTP (or TLS, with `tls`).
    pub fn start(dir: &Path, config: &str) -> Self {
        Self::start_with(dir, config, &[])
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with(dir: &Path, config: &str, env: &[(&str, &str)]) -> Self {
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let port = free_port();
        let mut cmd = regconf(dir);
        cmd.args([
            "serve",
            "config.yml",
            "--flavor",
            "f",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    let mut l = log.lock().unwrap();
                    // Keep memory of the test bounded under load.
                    if l.len() < 4 << 20 {
                        l.push_str(&line);
                        l.push('\n');
                    }
                }
            });
        }
        let server = Self { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = server.child_status() {
                panic!("serve exited with {s}:\n{}", server.log());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not start:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn child_status(&self) -> std::io::Result<Option<std::process::ExitStatus>> {
        // try_wait needs &mut; read /proc instead to keep &self.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()));
        match stat {
            Ok(s) if s.contains(") Z ") => Ok(Some(std::process::ExitStatus::default())),
            Ok(_) => Ok(None),
            Err(_) => Ok(Some(std::process::ExitStatus::default())),
        }
    }

    /// Whether the process is still running (not a zombie).
    pub fn alive(&self) -> bool {
        matches!(self.child_status(), Ok(None))
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// `VmHWM` (peak resident memory) of the server, in KiB.
    pub fn vm_hwm_kib(&self) -> u64 {
        status_field(self.child.id(), "VmHWM:")
    }

    /// `VmRSS` (current resident memory) of the server, in KiB.
    pub fn vm_rss_kib(&self) -> u64 {
        status_field(self.child.id(), "VmRSS:")
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and wait (at most 30 s) for a clean exit; returns its code.
    pub fn stop(&mut self) -> Option<i32> {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            if Instant::now() > deadline {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_field(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One raw exchange: writes `request`, reads until the server closes or
/// `timeout` passes; returns what arrived (possibly nothing).
pub fn raw(port: u16, request: &[u8], timeout: Duration) -> Vec<u8> {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return Vec::new();
    };
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        if out.len() > 1 << 20 {
            break;
        }
    }
    out
}

/// An HTTP agent that reports statuses instead of failing on them.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A small pseudo-random generator for choosing what to do.
pub struct Rng(pub u64);

impl Rng {
    /// Seeded from the clock (the seed is printed, to replay a failure).
    pub fn from_clock(what: &str) -> Self {
        let seed = std::env::var("REGCONF_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{what}: seed {seed} (REGCONF_TEST_SEED={seed} replays it)");
        Self(seed | 1)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// `sha256:<hex>` of `data` (with the system's `sha256sum`, which is fast
/// even when the tests are not optimised).
pub fn digest(data: &[u8]) -> String {
    let mut child = std::process::Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", &text[..64])
}

/// Pushes a blob in one request (`POST ?digest=`); returns the status.
pub fn push_blob(agent: &ureq::Agent, base: &str, repo: &str, data: &[u8], d: &str) -> u16 {
    match agent
        .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
        .header("content-type", "application/octet-stream")
        .send(data)
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// An image manifest with one config and `layers` (digest, size).
pub fn manifest(config: (&str, usize), layers: &[(String, usize)]) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, s)| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{s}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]}}"#,
        config.0,
        config.1,
        layers.join(",")
    )
}

/// Reads a whole body (no size limit).
pub fn body(mut r: ureq::http::Response<ureq::Body>) -> Vec<u8> {
    r.body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .unwrap_or_default()
}

/// Every file under `dir`, relative.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}
