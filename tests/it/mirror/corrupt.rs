//! A corrupted upstream: an HTTP proxy in front of a real registry that
//! flips one byte in the middle of every blob body it passes (manifests
//! and everything else pass unchanged). One request per connection.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};

/// Starts the proxy towards `127.0.0.1:<upstream>`; returns its port.
pub(crate) fn start(upstream: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            std::thread::spawn(move || relay(client, upstream));
        }
    });
    port
}

fn relay(mut client: TcpStream, upstream: u16) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let first = text.lines().next().unwrap_or("").to_owned();
    let blob_get = first.starts_with("GET ") && first.contains("/blobs/sha256:");
    // The same request, asking the upstream to close after answering.
    let mut out = String::new();
    for (i, line) in text.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    if up.write_all(out.as_bytes()).is_err() {
        return;
    }
    let mut answer = Vec::new();
    let _ = up.read_to_end(&mut answer);
    if blob_get
        && answer.starts_with(b"HTTP/1.1 200")
        && let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n")
    {
        let body = at + 4;
        if answer.len() > body {
            let mid = body + (answer.len() - body) / 2;
            answer[mid] ^= 0x01;
        }
    }
    let _ = client.write_all(&answer);
}
