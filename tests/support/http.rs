//! Raw HTTP status codes, for probing servers and reading answers written
//! by hand in tests (where an HTTP client would hide what was sent).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The status code of a raw HTTP answer (`HTTP/1.x 200 ...`), if it is one.
pub(crate) fn status_of(answer: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(answer.get(..answer.len().min(64))?).ok()?;
    let rest = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?;
    rest.get(..3)?.parse().ok()
}

/// Sends `method path` with `body` to 127.0.0.1:`port` and returns the
/// status code and the whole answer, head included; `None` when nothing (or
/// no HTTP) answers.
pub(crate) fn request(port: u16, method: &str, path: &str, body: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .ok()?;
    s.write_all(body).ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    Some((status_of(&out)?, out))
}

/// Sends a bodiless `method path` to 127.0.0.1:`port` and returns the
/// status code; `None` when nothing (or no HTTP) answers.
pub(crate) fn status(port: u16, method: &str, path: &str) -> Option<u16> {
    request(port, method, path, b"").map(|(status, _)| status)
}
