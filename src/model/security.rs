//! What `serve` needs to face a network: who may use it (`auth:`), how the
//! connection is encrypted (`tls:`) and how much a client may ask of it
//! (`limits:`). All three sections are regconf extensions; docker-registry
//! had none of them.

use schemars::JsonSchema;
use serde::Serialize;
use std::ops::RangeInclusive;

/// HTTP Basic authentication against an htpasswd file (`auth:` section, a
/// regconf extension). Off while `htpasswd` is empty. When on, every
/// request needs a user of the file, `/v2/` included (clients probe it to
/// learn that they must log in); a request without valid credentials gets
/// `401` with `WWW-Authenticate: Basic realm="regconf"`.
///
/// Roles are kept out of the htpasswd file so that the file stays what the
/// `htpasswd` tool writes: a user can pull and push unless listed in
/// `readonly`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct Auth {
    /// Path of an htpasswd file of bcrypt hashes, one `user:$2y$...` per
    /// line, as `htpasswd -B` writes them (other hash kinds are refused).
    /// `serve` re-reads it when it changes (it looks every 2 s); a new
    /// version that cannot be used is logged and the users before stay.
    pub htpasswd: Option<String>,
    /// Users of the htpasswd file who may only read (pull, list tags and
    /// repositories, search); writes (push, delete) are answered `403
    /// DENIED`. Every other user of the file may read and write.
    pub readonly: Vec<String>,
}

impl Auth {
    /// Whether authentication is on.
    pub fn enabled(&self) -> bool {
        self.htpasswd.as_deref().is_some_and(|p| !p.is_empty())
    }
}

/// TLS for `serve` (`tls:` section, a regconf extension): both paths set
/// means the registry speaks HTTPS only. Off while both are empty.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct Tls {
    /// Path of the PEM certificate chain, the server's certificate first.
    pub certificate: Option<String>,
    /// Path of the PEM private key (PKCS#8, PKCS#1 or SEC1) of the
    /// certificate. Its content is never logged or printed.
    pub key: Option<String>,
}

impl Tls {
    /// Whether TLS is configured (either path set; `validate` reports a
    /// missing half).
    pub fn enabled(&self) -> bool {
        let set = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
        set(&self.certificate) || set(&self.key)
    }
}

/// What one client may ask of `serve` (`limits:` section, a regconf
/// extension). The defaults are safe for a registry facing a network; raise
/// them for unusual clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(default)]
pub struct Limits {
    /// Largest manifest accepted, in bytes; larger pushes get `413
    /// SIZE_INVALID`. Default 4194304 (4 MiB, the least the OCI
    /// specification asks registries to accept).
    pub max_manifest_bytes: u64,
    /// Largest request line plus headers, in bytes (at least 8192); larger
    /// requests get `431`. Default 65536.
    pub max_header_bytes: u64,
    /// Seconds a client has to send a request's line and headers, counted
    /// from the connection (or the previous answer on a kept-alive
    /// connection), and to finish a TLS handshake. Idle connections are
    /// closed after it. Default 30.
    pub header_timeout_secs: u64,
    /// Seconds a request body (a blob chunk, a manifest) may pause without
    /// sending a byte before the request is abandoned, and seconds an answer
    /// may wait for a client that stopped reading. There is no limit on a
    /// transfer that keeps moving, so large layers are never cut off.
    /// Default 60.
    pub idle_timeout_secs: u64,
    /// Most connections served at once; further clients wait to be
    /// accepted. Default 1024.
    pub max_connections: u64,
    /// Most connections open at once from one client address (an IPv4
    /// address, or an IPv6 /64). Beyond it, the address's longest-idle
    /// connection makes room for the new one; when none of them is idle,
    /// the new connection is closed at once. Other addresses are not
    /// affected. Default 256.
    pub max_connections_per_address: u64,
    /// Least average speed of a request body, in bytes per second, over
    /// each period of `idle_timeout_secs`: a body slower than this (a
    /// client trickling a byte at a time) is abandoned at the end of the
    /// period. 0 turns the check off. Default 1024.
    pub min_body_bytes_per_sec: u64,
}

/// The values each limit accepts: `validate` refuses others, and `serve`
/// relies on them (a connection count tokio's semaphore takes, timeouts
/// that a clock instant can be moved by without overflowing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitRanges {
    /// `max_manifest_bytes`: 1 KiB to 1 GiB (a manifest is held in memory).
    pub max_manifest_bytes: RangeInclusive<u64>,
    /// `max_header_bytes`: 8 KiB (hyper's least) to 16 MiB.
    pub max_header_bytes: RangeInclusive<u64>,
    /// `header_timeout_secs`: 1 second to a day.
    pub header_timeout_secs: RangeInclusive<u64>,
    /// `idle_timeout_secs`: 1 second to a day.
    pub idle_timeout_secs: RangeInclusive<u64>,
    /// `max_connections`: 1 to 1,048,576.
    pub max_connections: RangeInclusive<u64>,
    /// `max_connections_per_address`: 1 to 1,048,576.
    pub max_connections_per_address: RangeInclusive<u64>,
    /// `min_body_bytes_per_sec`: 0 (off) to 1 GiB.
    pub min_body_bytes_per_sec: RangeInclusive<u64>,
}

impl Limits {
    /// The values each limit accepts.
    pub const RANGES: LimitRanges = LimitRanges {
        max_manifest_bytes: 1024..=1 << 30,
        max_header_bytes: 8192..=16 << 20,
        header_timeout_secs: 1..=86_400,
        idle_timeout_secs: 1..=86_400,
        max_connections: 1..=1 << 20,
        max_connections_per_address: 1..=1 << 20,
        min_body_bytes_per_sec: 0..=1 << 30,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_manifest_bytes: 4 << 20,
            max_header_bytes: 64 << 10,
            header_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: 1024,
            max_connections_per_address: 256,
            min_body_bytes_per_sec: 1024,
        }
    }
}

/// One user of an htpasswd file: the name and the bcrypt hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtpasswdUser {
    /// The user name.
    pub user: String,
    /// The bcrypt hash (`$2a$`, `$2b$`, `$2x$` or `$2y$`).
    pub hash: String,
}

/// Parses the text of an htpasswd file: `user:hash` lines, blank lines and
/// `#` comments skipped. Every hash must be bcrypt; the error names the
/// line (1-based) and never the hash.
pub fn parse_htpasswd(text: &str) -> Result<Vec<HtpasswdUser>, (usize, String)> {
    let mut users: Vec<HtpasswdUser> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            return Err((n, "is not `user:hash`".to_owned()));
        };
        if user.is_empty() {
            return Err((n, "has an empty user name".to_owned()));
        }
        let hash = hash.trim();
        let bcrypt = ["$2a$", "$2b$", "$2x$", "$2y$"]
            .iter()
            .any(|p| hash.starts_with(p))
            && hash.len() == 60;
        if !bcrypt {
            return Err((
                n,
                format!("has a hash for `{user}` that is not bcrypt (write it with `htpasswd -B`)"),
            ));
        }
        if users.iter().any(|u| u.user == user) {
            return Err((n, format!("repeats the user `{user}`")));
        }
        users.push(HtpasswdUser {
            user: user.to_owned(),
            hash: hash.to_owned(),
        });
    }
    if users.is_empty() {
        return Err((0, "has no users".to_owned()));
    }
    Ok(users)
}
