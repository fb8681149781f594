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
    // Beyond max_connections, idle connections make room for new ones
    // (issue 16): a client is served at once while 100 are held open.
    let held: Vec<_> = (0..100)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let r = a
        .get(server.url("/v2/"))
        .config()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .call()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "served after {:?} with 100 idle connections open",
        start.elapsed()
    );
    drop(held);
    assert!(server.alive());
}

/// Upload sessions are counted against the limits (issue 16): 16 per
/// allowed connection, then `429 TOOMANYREQUESTS` until one ends.
#[test]
fn open_uploads_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: error\n  limits:\n    max_connections: 2\n",
    );
    let a = agent();
    let start = || {
        a.post(server.url("/v2/many/blobs/uploads/"))
            .send_empty()
            .unwrap()
    };
    let mut first = None;
    for _ in 0..32 {
        let r = start();
        assert_eq!(r.status(), 202);
        first.get_or_insert_with(|| r.headers()["location"].to_str().unwrap().to_owned());
    }
    let r = start();
    assert_eq!(r.status(), 429);
    let text = String::from_utf8(body(r)).unwrap();
    assert!(text.contains("TOOMANYREQUESTS"), "{text}");
    // Nothing was left on storage for the refused one.
    let uploads = std::fs::read_dir(dir.path().join("store/repositories/many/_uploads"))
        .unwrap()
        .count();
    assert_eq!(uploads, 32);
    let r = a.delete(server.url(&first.unwrap())).call().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(start().status(), 202);
}

/// An HTTP/2 connection announces at most 16 concurrent streams (issue 16;
/// hyper's default was 200).
#[test]
fn http2_streams_per_connection_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    super::self_signed(dir.path());
    let server = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: error\n  tls:\n    certificate: ./cert.pem\n    key: ./key.pem\n",
    );
    // Speak the HTTP/2 preface through openssl and read the server's
    // SETTINGS frame (curl does not print it).
    use std::io::{Read, Write};
    let mut child = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-alpn", "h2", "-connect"])
        .arg(format!("127.0.0.1:{}", server.port))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl");
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    stdin.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let _ = child.kill();
    let mut got = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut got).unwrap();
    let _ = child.wait();
    drop(stdin);
    // The first frame is the server's SETTINGS: (id u16, value u32) pairs.
    assert!(got.len() >= 9 && got[3] == 4, "{got:?}");
    let len = usize::from(got[0]) << 16 | usize::from(got[1]) << 8 | usize::from(got[2]);
    let settings: Vec<(u16, u32)> = got[9..9 + len]
        .chunks(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    // SETTINGS_MAX_CONCURRENT_STREAMS is 0x3.
    assert!(settings.contains(&(3, 16)), "{settings:?}");
}

/// A head over `max_header_bytes` sent in one write is refused too (issue
/// 16: 114,593 bytes passed the 64 KiB default).
#[test]
fn a_large_head_in_one_write_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: error\n",
    );
    let t = Duration::from_secs(10);
    let head = |n: usize| {
        format!(
            "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "a".repeat(n)
        )
    };
    let big = head(114_593);
    assert_eq!(status_of(&raw(server.port, big.as_bytes(), t)), Some(431));
    assert_eq!(
        status_of(&raw(server.port, head(60_000).as_bytes(), t)),
        Some(200)
    );
    assert!(server.alive());
}

/// Connection exhaustion (issue 16): while an attacker holds 2,000 idle
/// sockets and keeps opening new ones, a normal client's requests are each
/// answered within 1 s (they waited 10-35 s before).
#[test]
fn a_client_is_served_while_idle_sockets_exhaust_the_limit() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: error\n  limits:\n    max_connections: 256\n",
    );
    let port = server.port;
    let mut held: Vec<_> = (0..2000)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    assert!(held.len() > 1500, "only {} sockets opened", held.len());
    let stop = AtomicBool::new(false);
    let worst = std::thread::scope(|s| {
        // The attacker reconnects, about a thousand times a second (on this
        // shared machine a tighter loop mostly takes the server's CPU): each
        // new socket replaces an old one.
        s.spawn(|| {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1));
                if let Ok(c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                    let n = held.len();
                    held[i % n] = c;
                    i += 1;
                }
            }
        });
        // Measured once the attacker holds its sockets and churns (the
        // kernel's accept queue, full at first, drops SYNs for a moment).
        std::thread::sleep(Duration::from_secs(1));
        let a = agent();
        let mut worst = Duration::ZERO;
        for _ in 0..20 {
            let start = Instant::now();
            let r = a
                .get(server.url("/v2/"))
                .config()
                .timeout_global(Some(Duration::from_secs(40)))
                .build()
                .call();
            let took = start.elapsed();
            assert_eq!(
                r.map(|r| r.status().as_u16()).ok(),
                Some(200),
                "after {took:?}"
            );
            worst = worst.max(took);
            std::thread::sleep(Duration::from_millis(100));
        }
        stop.store(true, Ordering::Relaxed);
        worst
    });
    eprintln!("connection exhaustion: slowest of 20 requests {worst:?}");
    assert!(worst < Duration::from_secs(1), "a request took {worst:?}");
    assert!(server.alive());
}
