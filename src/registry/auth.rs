//! HTTP Basic authentication against an htpasswd file of bcrypt hashes
//! (`auth:` in the flavor).
//!
//! * No or wrong credentials: `401 UNAUTHORIZED` with
//!   `WWW-Authenticate: Basic realm="regconf"`, on every path, `/v2/`
//!   included (clients probe `/v2/` to learn that they must log in).
//! * A user listed in `readonly` asking to write (any method but `GET`,
//!   `HEAD` and `OPTIONS`): `403 DENIED`.
//!
//! bcrypt is slow on purpose (tens of milliseconds per check), and clients
//! send their credentials with every request; a successful check is
//! therefore remembered for [`CACHE_TTL`] under a SHA-256 of the user and
//! password (never the password itself), and at most as many checks as
//! there are CPUs run at once, on the blocking pool, so that a flood of bad
//! passwords cannot starve the runtime. Unknown users are checked against a
//! dummy hash of the file's highest cost, and every refused check lasts at
//! least as long as one check at that cost (a moving average), so that
//! timing reveals neither which users exist nor their hash costs.
//!
//! Passwords and hashes are never logged; failed attempts are logged with
//! the user name.

use super::LogSafe;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use super::http::error::oci_error;
use crate::model;

/// How long a verified user and password is trusted without bcrypt.
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(300);

/// Most remembered credentials; the cache is emptied when full.
const CACHE_LIMIT: usize = 4096;

/// Why the htpasswd file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file cannot be read.
    #[error("cannot read the htpasswd file `{path}`: {source}")]
    Read {
        /// The path as configured.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not an htpasswd file of bcrypt hashes.
    #[error("the htpasswd file `{path}` {message}")]
    Format {
        /// The path as configured.
        path: String,
        /// What is wrong, with the line.
        message: String,
    },
}

struct User {
    hash: String,
    readonly: bool,
}

/// The users allowed in, and what each may do.
pub(crate) struct Authenticator {
    users: HashMap<String, User>,
    /// SHA-256 of `user\0password` → (read-only, verified at).
    cache: Mutex<HashMap<[u8; 32], (bool, Instant)>>,
    /// Bounds concurrent bcrypt checks.
    checks: tokio::sync::Semaphore,
    /// Checked for unknown users, so they take as long as known ones.
    dummy: String,
    /// The file's highest bcrypt cost (the dummy's).
    max_cost: u32,
    /// How long a check at `max_cost` takes, in µs: measured at start, then
    /// a moving average of the checks at that cost (so it follows the
    /// machine's load). A refused check is padded to this.
    slowest: std::sync::atomic::AtomicU64,
}

/// The cost of a bcrypt hash (`$2b$12$...`), if it says.
fn cost_of(hash: &str) -> Option<u32> {
    hash.get(4..6).and_then(|c| c.parse().ok())
}

/// What a request's credentials amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// No (usable) credentials, or wrong ones; the user named, if any.
    Refused(Option<String>),
    /// A user of the file.
    Allowed {
        /// The user.
        user: String,
        /// Listed in `readonly`.
        readonly: bool,
    },
}

/// Reads and parses the htpasswd file `path` (with `~` and `$VAR`
/// expanded, as for other paths `serve` opens).
pub(crate) fn read_htpasswd(path: &str) -> Result<Vec<model::security::HtpasswdUser>, AuthError> {
    let expanded = shellexpand::full(path).map_or_else(|_| path.to_owned(), |p| p.into_owned());
    let (bytes, _) = super::files::read_regular(&expanded, super::files::HTPASSWD_LIMIT)
        .map_err(|source| AuthError::Read {
            path: path.to_owned(),
            source,
        })?;
    let text = String::from_utf8_lossy(&bytes);
    model::security::parse_htpasswd(&text).map_err(|(line, message)| AuthError::Format {
        path: path.to_owned(),
        message: if line == 0 {
            message
        } else {
            format!("line {line} {message}")
        },
    })
}

impl Authenticator {
    /// The authenticator for `auth`, or `None` when authentication is off.
    pub(crate) fn load(auth: &model::Auth) -> Result<Option<Arc<Self>>, AuthError> {
        let Some(path) = auth.htpasswd.as_deref().filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let users = read_htpasswd(path)?;
        for r in &auth.readonly {
            if !users.iter().any(|u| &u.user == r) {
                tracing::warn!(user = %LogSafe(r), "`auth.readonly` names a user the htpasswd file does not have");
            }
        }
        Ok(Some(Arc::new(Self::new(users.into_iter().map(|u| {
            let readonly = auth.readonly.contains(&u.user);
            (u.user, u.hash, readonly)
        })))))
    }

    /// An authenticator for `(user, bcrypt hash, read-only)` entries. It
    /// runs bcrypt twice (the dummy hash and its timing): call it off the
    /// async runtime.
    pub(crate) fn new(users: impl IntoIterator<Item = (String, String, bool)>) -> Self {
        let users: HashMap<String, User> = users
            .into_iter()
            .map(|(u, hash, readonly)| (u, User { hash, readonly }))
            .collect();
        // The dummy costs what the file's costliest hash costs.
        let cost = users
            .values()
            .filter_map(|u| cost_of(&u.hash))
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST)
            .clamp(4, 31);
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let dummy = bcrypt::hash(uuid::Uuid::new_v4().to_string(), cost).unwrap_or_default();
        let started = Instant::now();
        let _ = bcrypt::verify("", &dummy);
        Self {
            users,
            cache: Mutex::new(HashMap::new()),
            checks: tokio::sync::Semaphore::new(cpus),
            dummy,
            max_cost: cost,
            slowest: std::sync::atomic::AtomicU64::new(micros(started.elapsed())),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (bool, Instant)>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks the `Authorization` header of a request.
    pub(crate) async fn check(&self, authorization: Option<&HeaderValue>) -> Outcome {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return Outcome::Refused(None);
        };
        let mut key = Sha256::new();
        key.update(user.as_bytes());
        key.update([0]);
        key.update(password.as_bytes());
        let key: [u8; 32] = key.finalize().into();
        if let Some(&(readonly, at)) = self.cache().get(&key)
            && at.elapsed() < CACHE_TTL
            && self.users.contains_key(&user)
        {
            return Outcome::Allowed { user, readonly };
        }
        let (hash, readonly, known) = match self.users.get(&user) {
            Some(u) => (u.hash.clone(), u.readonly, true),
            None => (self.dummy.clone(), false, false),
        };
        let cost = cost_of(&hash);
        let ok = {
            let Ok(_permit) = self.checks.acquire().await else {
                return Outcome::Refused(Some(user));
            };
            let started = Instant::now();
            let ok = tokio::task::spawn_blocking(move || {
                bcrypt::verify(password, &hash).unwrap_or(false)
            })
            .await
            .unwrap_or(false);
            (ok, started.elapsed())
        };
        let (ok, took) = ok;
        use std::sync::atomic::Ordering::Relaxed;
        if cost == Some(self.max_cost) {
            // Races between updates only lose a sample.
            let avg = self.slowest.load(Relaxed);
            self.slowest.store((avg * 7 + micros(took)) / 8, Relaxed);
        }
        // A cheaper hash must not answer sooner. The permit is released
        // already: the padding holds no CPU and no check slot.
        if !(ok && known) {
            let slowest = Duration::from_micros(self.slowest.load(Relaxed));
            if let Some(rest) = slowest.checked_sub(took) {
                tokio::time::sleep(rest).await;
            }
            return Outcome::Refused(Some(user));
        }
        let mut cache = self.cache();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, (readonly, Instant::now()));
        Outcome::Allowed { user, readonly }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `Basic base64(user:password)` → (user, password).
fn basic_credentials(v: &HeaderValue) -> Option<(String, String)> {
    let v = v.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Whether a request only reads.
pub(crate) fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let mut res = oci_error(status, code, message, serde_json::Value::Null);
    // Docker recognises a v2 registry by this header, on the 401 too.
    res.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    res
}

/// The `401` answer.
pub(crate) fn unauthorized() -> Response {
    let mut res = error_response(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required",
    );
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"regconf\""),
    );
    res
}

/// The middleware: lets a request through only with credentials that allow
/// it.
pub(crate) async fn layer(
    State(auth): State<Arc<Authenticator>>,
    req: Request,
    next: Next,
) -> Response {
    // CORS preflights carry no credentials by design; they reach no handler.
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        return next.run(req).await;
    }
    match auth.check(req.headers().get(header::AUTHORIZATION)).await {
        Outcome::Allowed { readonly, user } => {
            if readonly && !is_read(req.method()) {
                tracing::warn!(user = %LogSafe(&user), method = %LogSafe(req.method().as_str()), path = %LogSafe(req.uri().path()), "write refused to a read-only user");
                return error_response(StatusCode::FORBIDDEN, "DENIED", "this user may only read");
            }
            next.run(req).await
        }
        Outcome::Refused(user) => {
            if let Some(user) = user {
                tracing::warn!(user = %LogSafe(&user), method = %LogSafe(req.method().as_str()), path = %LogSafe(req.uri().path()), "authentication failed");
            } else {
                tracing::info!(method = %LogSafe(req.method().as_str()), path = %LogSafe(req.uri().path()), status = 401, "request without credentials");
            }
            unauthorized()
        }
    }
}

/// What `serve` says loudly at start when it faces a network without
/// authentication, or sends passwords there in clear text; `None` on a
/// loopback address.
pub(crate) fn exposure_warning(
    listen: std::net::SocketAddr,
    auth: bool,
    tls: bool,
) -> Option<String> {
    if listen.ip().to_canonical().is_loopback() {
        return None;
    }
    if !auth {
        Some(format!(
            "listening on {listen}, which is not a loopback address, WITHOUT AUTHENTICATION: \
             anyone who can reach it can push, overwrite and delete images; set `auth.htpasswd` \
             (and `tls`) in the flavor, or listen on 127.0.0.1"
        ))
    } else if !tls {
        Some(format!(
            "listening on {listen}, which is not a loopback address, with authentication but \
             WITHOUT TLS: passwords cross the network in clear text; set `tls.certificate` and `tls.key`"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_when_facing_a_network() {
        let at = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        for quiet in [
            "127.0.0.1:5000",
            "127.9.0.1:1",
            "[::1]:5000",
            "[::ffff:127.0.0.1]:5000",
        ] {
            assert_eq!(exposure_warning(at(quiet), false, false), None, "{quiet}");
        }
        let w = exposure_warning(at("0.0.0.0:5000"), false, false).unwrap();
        assert!(w.contains("WITHOUT AUTHENTICATION"), "{w}");
        let w = exposure_warning(at("[::]:5000"), true, false).unwrap();
        assert!(w.contains("WITHOUT TLS"), "{w}");
        assert_eq!(exposure_warning(at("10.0.0.1:443"), true, true), None);
    }

    fn header(user: &str, pass: &str) -> HeaderValue {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        HeaderValue::from_str(&format!("Basic {b}")).unwrap()
    }

    #[tokio::test]
    async fn checks_bcrypt_and_roles() {
        let rw = bcrypt::hash("secret", 4).unwrap();
        let ro = bcrypt::hash("reader", 4).unwrap();
        let a = Authenticator::new([
            ("alice".to_owned(), rw, false),
            ("bob".to_owned(), ro, true),
        ]);
        assert_eq!(a.check(None).await, Outcome::Refused(None));
        assert_eq!(
            a.check(Some(&header("alice", "secret"))).await,
            Outcome::Allowed {
                user: "alice".into(),
                readonly: false
            }
        );
        // Cached the second time; still correct.
        assert_eq!(
            a.check(Some(&header("alice", "secret"))).await,
            Outcome::Allowed {
                user: "alice".into(),
                readonly: false
            }
        );
        assert_eq!(
            a.check(Some(&header("alice", "Secret"))).await,
            Outcome::Refused(Some("alice".into()))
        );
        assert_eq!(
            a.check(Some(&header("bob", "reader"))).await,
            Outcome::Allowed {
                user: "bob".into(),
                readonly: true
            }
        );
        assert_eq!(
            a.check(Some(&header("carol", "secret"))).await,
            Outcome::Refused(Some("carol".into()))
        );
        for bad in ["Bearer x", "Basic !!!", "Basic", "Basic Zm9v"] {
            assert!(
                matches!(
                    a.check(Some(&HeaderValue::from_static(bad))).await,
                    Outcome::Refused(_)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn htpasswd_files() {
        let h = bcrypt::hash("x", 4).unwrap();
        let ok = format!("# users\nalice:{h}\n\nbob:{h}\r\n");
        let users = model::security::parse_htpasswd(&ok).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users[1].user, "bob");
        let md5 = "alice:$apr1$abc$defghijklmnopqrstuvw/\n";
        let e = model::security::parse_htpasswd(md5).unwrap_err();
        assert_eq!(e.0, 1);
        assert!(e.1.contains("not bcrypt"), "{}", e.1);
        assert!(!e.1.contains("$apr1"), "the hash is not shown");
        assert_eq!(model::security::parse_htpasswd("").unwrap_err().0, 0);
        assert!(model::security::parse_htpasswd(&format!("a:{h}\na:{h}")).is_err());
        assert!(model::security::parse_htpasswd("nocolon").is_err());
    }
}
