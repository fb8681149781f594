//! What one client address may do to others (issue 16): a per-address
//! connection cap, a least body speed, failed logins slowed per address
//! and per (user, address) but never per user alone, and an htpasswd file
//! re-read while `serve` runs. Distinct clients are distinct loopback
//! addresses (127.0.0.0/8 is all loopback): sockets bound to 127.0.0.2,
//! 127.0.0.3, ... before they connect to the server on 127.0.0.1.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::harness::Server;
use crate::support::http::status_of;

use super::{ALICE, BOB, connect_from, exchange, htpasswd};

/// Whether the server closed `s` (end of file, or reset) without a byte;
/// waits up to 5 s.
fn closed(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Longer than the server's interval between looks at the htpasswd file.
const RELOAD_WAIT: Duration = Duration::from_millis(2500);

fn get_v2(auth: Option<(&str, &str)>) -> String {
    let auth = auth.map_or(String::new(), |(u, p)| {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        format!("Authorization: Basic {b}\r\n")
    });
    format!("GET /v2/ HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n")
}

#[test]
fn one_address_over_its_cap_is_turned_away_while_another_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: error\n  limits:\n    max_connections_per_address: 4\n    idle_timeout_secs: 30\n",
    );
    let port = server.port;
    // Four idle connections from 127.0.0.2, then a fifth: the oldest idle
    // one makes room.
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| {
            let s = connect_from("127.0.0.2", port);
            std::thread::sleep(Duration::from_millis(100));
            s
        })
        .collect();
    let _fifth = connect_from("127.0.0.2", port);
    assert!(
        closed(&mut idle[0]),
        "the longest-idle connection stays open"
    );
    drop(idle);
    drop(_fifth);
    std::thread::sleep(Duration::from_millis(300));
    // Four busy connections (a manifest body that never comes): a fifth
    // from the same address is closed at once, unanswered.
    let busy: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = connect_from("127.0.0.2", port);
            s.write_all(b"PUT /v2/a/manifests/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 100\r\n\r\n{")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let turned_away = exchange("127.0.0.2", port, &get_v2(None));
    assert!(
        turned_away.is_empty(),
        "answered: {}",
        String::from_utf8_lossy(&turned_away)
    );
    // Another address is served, at once.
    let start = Instant::now();
    assert_eq!(
        status_of(&exchange("127.0.0.3", port, &get_v2(None))),
        Some(200)
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(busy);
    // Once the busy ones are gone, the address is served again.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        status_of(&exchange("127.0.0.2", port, &get_v2(None))),
        Some(200)
    );
    assert!(server.alive());
}

/// A body trickled at one byte a second never pauses long enough for
/// `idle_timeout_secs`, but falls under `min_body_bytes_per_sec`: it is
/// cut off at the end of the first period (it was open after 70 s).
#[test]
fn a_trickled_body_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: error\n  limits:\n    idle_timeout_secs: 2\n    min_body_bytes_per_sec: 64\n",
    );
    let mut s = connect_from("127.0.0.2", server.port);
    s.write_all(b"PUT /v2/a/manifests/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 1000\r\n\r\n")
        .unwrap();
    let start = Instant::now();
    let mut cut = None;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_millis(500));
        if s.write_all(b" ").and_then(|()| s.flush()).is_err() {
            cut = Some(start.elapsed());
            break;
        }
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        let r = s.read(&mut buf);
        s.set_nonblocking(false).unwrap();
        if r.is_ok() {
            cut = Some(start.elapsed());
            break;
        }
    }
    let cut = cut.expect("the trickled body was still accepted after 15 s");
    eprintln!("trickled body cut off after {cut:?}");
    assert!(cut < Duration::from_secs(8), "{cut:?}");
    // A body that moves at a normal speed is unaffected.
    let m = r#"{"schemaVersion":2}"#;
    let req = format!(
        "PUT /v2/a/manifests/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{m}",
        m.len()
    );
    let answer = exchange("127.0.0.3", server.port, &req);
    assert!(
        status_of(&answer).is_some_and(|s| s != 408 && s < 500),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(server.alive());
}

/// Repeated failures from one address for one user wait longer and
/// longer (bounded); the same user from another address logs in at once,
/// so an attacker cannot lock a user out.
#[test]
fn failed_logins_are_slowed_per_address_never_per_user() {
    let dir = tempfile::tempdir().unwrap();
    htpasswd(dir.path());
    let server = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: error\n  auth:\n    htpasswd: ./htpasswd\n",
    );
    let port = server.port;
    let timed = |from: &str, who: (&str, &str)| {
        let start = Instant::now();
        let status = status_of(&exchange(from, port, &get_v2(Some(who))));
        (status, start.elapsed())
    };
    let wrong = (ALICE.0, "guess");
    // Three free failures, then 250 ms, 500 ms, 1 s, 2 s.
    for _ in 0..6 {
        assert_eq!(timed("127.0.0.2", wrong).0, Some(401));
    }
    let (status, slowed) = timed("127.0.0.2", wrong);
    assert_eq!(status, Some(401));
    assert!(slowed >= Duration::from_secs(2), "{slowed:?}");
    // Alice, from her own address, while the attack goes on.
    let (status, own) = timed("127.0.0.3", ALICE);
    assert_eq!(status, Some(200));
    // Bob, from his (the attacker's failures are not his address's).
    let (status, bob) = timed("127.0.0.4", BOB);
    assert_eq!(status, Some(200));
    eprintln!("login throttle: 7th failure {slowed:?}; alice elsewhere {own:?}, bob {bob:?}");
    assert!(
        own < slowed / 2 && bob < slowed / 2,
        "{own:?} {bob:?} {slowed:?}"
    );
}

/// A user added to the htpasswd file while `serve` runs logs in without a
/// restart; a broken file keeps the users read before (and says so); a
/// removed user is refused, cached credentials or not.
#[test]
fn the_htpasswd_file_is_re_read_when_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    htpasswd(d);
    let server = Server::start(
        d,
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: info\n  auth:\n    htpasswd: ./htpasswd\n",
    );
    let port = server.port;
    let login = |who: (&str, &str)| status_of(&exchange("127.0.0.2", port, &get_v2(Some(who))));
    let carol = ("carol", "carol-pw-1");
    assert_eq!(login(carol), Some(401));
    assert_eq!(login(BOB), Some(200));
    let original = std::fs::read_to_string(d.join("htpasswd")).unwrap();
    let added = format!("{original}carol:{}\n", bcrypt::hash(carol.1, 5).unwrap());
    std::fs::write(d.join("htpasswd"), &added).unwrap();
    // Looked at again within a few seconds (sooner for an unknown user).
    let waited = Instant::now();
    while login(carol) != Some(200) {
        assert!(
            waited.elapsed() < Duration::from_secs(6),
            "carol never got in"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A broken file: the users stay, the log says why.
    std::fs::write(d.join("htpasswd"), "carol:not-bcrypt\n").unwrap();
    std::thread::sleep(RELOAD_WAIT);
    assert_eq!(login(ALICE), Some(200));
    assert_eq!(login(carol), Some(200));
    let log = server.log();
    assert!(
        log.contains("cannot be used; the users read before stay"),
        "{log}"
    );
    assert!(!log.contains("not-bcrypt"), "{log}");
    // A FIFO in its place is refused, not waited on.
    std::fs::remove_file(d.join("htpasswd")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(d.join("htpasswd"))
        .status()
        .unwrap();
    assert!(made.success());
    std::thread::sleep(RELOAD_WAIT);
    assert_eq!(login(ALICE), Some(200));
    // Bob removed: refused, although his login was cached.
    std::fs::remove_file(d.join("htpasswd")).unwrap();
    let without_bob: String = added
        .lines()
        .filter(|l| !l.starts_with("bob:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(d.join("htpasswd"), without_bob).unwrap();
    let waited = Instant::now();
    while login(BOB) != Some(401) {
        assert!(
            waited.elapsed() < Duration::from_secs(6),
            "bob still gets in"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(login(carol), Some(200));
    assert!(server.log().contains("re-read the htpasswd file"));
    assert!(server.alive());
}
