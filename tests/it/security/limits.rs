//! The limits of `serve`: header and body sizes, slow and idle clients.

use std::time::{Duration, Instant};

use crate::harness::{Server, agent, body, raw};
use crate::support::http::status_of;

#[test]
fn limits_headers_manifests_slow_and_idle_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: error\n  limits:\n    max_manifest_bytes: 2048\n    max_header_bytes: 8192\n    header_timeout_secs: 2\n    idle_timeout_secs: 2\n    max_connections: 64\n",
    );
    let port = server.port;
    let t = Duration::from_secs(10);
    // Headers over the limit: 431.
    let big = format!(
        "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(status_of(&raw(port, big.as_bytes(), t)), Some(431));
    // A manifest over the limit: 413, by Content-Length or by streaming.
    let m = format!(r#"{{"schemaVersion":2,"x":"{}"}}"#, "a".repeat(4000));
    let a = agent();
    let r = a
        .put(server.url("/v2/big/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .send(m.as_bytes())
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(String::from_utf8(body(r)).unwrap().contains("SIZE_INVALID"));
    let chunked = format!(
        "PUT /v2/big/manifests/v1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{m}\r\n0\r\n\r\n",
        m.len()
    );
    assert_eq!(status_of(&raw(port, chunked.as_bytes(), t)), Some(413));

    // A silent client, a client stuck in its headers, and an idle kept-alive
    // connection are all closed after the timeouts.
    for head in ["", "GET /v2/ HTTP/1.1\r\nHost: x\r\n"] {
        let start = Instant::now();
        let got = raw(port, head.as_bytes(), Duration::from_secs(15));
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(8),
            "{head:?} held the connection {took:?}"
        );
        assert!(
            status_of(&got).is_none_or(|s| s == 408),
            "{}",
            String::from_utf8_lossy(&got)
        );
    }
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let start = Instant::now();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert_eq!(status_of(&buf), Some(200));
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "idle keep-alive kept"
        );
    }
    // A body that stops sending: the upload fails after idle_timeout_secs,
    // and the server answers normally meanwhile.
    let r = a
        .post(server.url("/v2/slow/blobs/uploads/"))
        .send_empty()
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(
            format!("PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        s.write_all(&[7u8; 1000]).unwrap();
        let start = Instant::now();
        assert_eq!(a.get(server.url("/v2/")).call().unwrap().status(), 200);
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "slow body kept {:?}",
            start.elapsed()
        );
    }
    // Connections beyond max_connections wait; the server still answers
    // once they go.
    let held: Vec<_> = (0..100)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    let over = a
        .get(server.url("/v2/"))
        .config()
        .timeout_global(Some(Duration::from_millis(500)))
        .build()
        .call();
    assert!(
        over.is_err(),
        "a 101st connection was served while 100 were open"
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if a.get(server.url("/v2/"))
            .call()
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not recover from a connection flood"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.alive());
}
