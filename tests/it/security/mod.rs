//! Security of `regconf serve` and of the configuration side (issue 8):
//! htpasswd authentication with read-only and read-write users, TLS, the
//! limits, hostile requests, path traversal, and that a configuration can
//! neither run code nor make regconf open files it was not told to.
//! Loopback only; every test is bounded in time.
//!
//! One file per concern: `auth_tls` (logins, roles, TLS), `limits`
//! (headers, bodies, slow and idle clients), `hostile` (random hostile
//! requests, path traversal), `settings` (the `auth:`, `tls:` and `limits:`
//! settings checked, and what a configuration cannot make regconf do),
//! `memory` (hostile manifests and the manifest cache, issue 16).
//! The helpers they share are here.

mod auth_tls;
mod certs;
mod hostile;
mod limits;
mod memory;
mod peers;
mod release;
mod settings;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

pub(super) const ALICE: (&str, &str) = ("alice", "alice-pw-9f3K");
pub(super) const BOB: (&str, &str) = ("bob", "bob-pw-77Qz");

pub(super) fn htpasswd(dir: &Path) {
    let mut text = String::from("# regconf test users\n");
    for (u, p) in [ALICE, BOB] {
        text.push_str(&format!("{u}:{}\n", bcrypt::hash(p, 5).unwrap()));
    }
    std::fs::write(dir.join("htpasswd"), text).unwrap();
}

/// A self-signed certificate for 127.0.0.1 and localhost: (cert, key) PEM.
pub(super) fn self_signed(dir: &Path) -> (String, String) {
    let c =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    std::fs::write(dir.join("cert.pem"), c.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), c.signing_key.serialize_pem()).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

/// A connection to `port` on 127.0.0.1 from the loopback address `from`
/// (127.0.0.0/8 is all loopback: distinct clients for the server).
pub(super) fn connect_from(from: &str, port: u16) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let local: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
    s.bind(&local.into()).unwrap();
    let server: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    s.connect(&server.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

/// Sends `req` from `from` and reads the answer until the server closes.
pub(super) fn exchange(from: &str, port: u16, req: &str) -> Vec<u8> {
    let mut s = connect_from(from, port);
    let _ = s.write_all(req.as_bytes());
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}
