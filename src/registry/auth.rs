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
//! Repeated failures wait before their check ([`super::throttle`]).
//!
//! The htpasswd file is looked at every [`RELOAD_INTERVAL`] (sooner when
//! an unknown user tries) and re-read when its modification time, size or
//! inode changed, through the same regular-file and size checks as at
//! start; the new set replaces the old whole, and remembered logins are
//! forgotten. A new version that cannot be used is logged, and the users
//! read before stay.
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

/// One reading of the htpasswd file, swapped whole when it is re-read.
struct Users {
    map: HashMap<String, User>,
    /// Checked for unknown users, so they take as long as known ones.
    dummy: String,
    /// The file's highest bcrypt cost (the dummy's).
    max_cost: u32,
}

impl Users {
    /// Builds the set, hashing a new dummy unless `reuse` has the cost
    /// needed. Runs bcrypt: call it off the async runtime.
    fn new(
        users: impl IntoIterator<Item = (String, String, bool)>,
        reuse: Option<(&str, u32)>,
    ) -> Self {
        let map: HashMap<String, User> = users
            .into_iter()
            .map(|(u, hash, readonly)| (u, User { hash, readonly }))
            .collect();
        // The dummy costs what the file's costliest hash costs.
        let max_cost = map
            .values()
            .filter_map(|u| cost_of(&u.hash))
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST)
            .clamp(4, 31);
        let dummy = match reuse {
            Some((d, c)) if c == max_cost => d.to_owned(),
            _ => bcrypt::hash(uuid::Uuid::new_v4().to_string(), max_cost).unwrap_or_default(),
        };
        Self {
            map,
            dummy,
            max_cost,
        }
    }
}

/// What identifies one version of the htpasswd file: modification time,
/// size and inode (a file replaced by a rename has a new one).
type Stamp = (Option<std::time::SystemTime>, u64, u64);

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    (meta.modified().ok(), meta.len(), meta.ino())
}

/// How often the htpasswd file is looked at (one `stat`) for changes.
pub(crate) const RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// How often, at most, a login by a user the file does not have makes it
/// look sooner (a user just added logs in at once).
const RELOAD_INTERVAL_UNKNOWN: Duration = Duration::from_millis(250);

/// The htpasswd file the users came from, to re-read it when it changes.
struct Source {
    /// As configured (for messages).
    path: String,
    /// With `~` and `$VAR` expanded.
    expanded: String,
    readonly: Vec<String>,
    /// When it was last looked at, and what it was then.
    state: Mutex<(Instant, Stamp)>,
    /// Held while a new version is read, so that one reader does it.
    reading: tokio::sync::Mutex<()>,
}

/// The users allowed in, and what each may do.
pub(crate) struct Authenticator {
    users: std::sync::RwLock<Arc<Users>>,
    /// SHA-256 of `user\0password` → (read-only, verified at).
    cache: Mutex<HashMap<[u8; 32], (bool, Instant)>>,
    /// Bounds concurrent bcrypt checks.
    checks: tokio::sync::Semaphore,
    /// How long a check at the highest cost takes, in µs: measured at
    /// start, then a moving average of the checks at that cost (so it
    /// follows the machine's load). A refused check is padded to this.
    slowest: std::sync::atomic::AtomicU64,
    /// Where the users came from; `None` for a fixed set.
    source: Option<Source>,
    /// Slows repeated failures.
    throttle: super::throttle::Throttle,
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
/// expanded, as for other paths `serve` opens): only a regular file of at
/// most 8 MiB.
fn read_htpasswd(
    path: &str,
    expanded: &str,
) -> Result<(Vec<model::security::HtpasswdUser>, Stamp), AuthError> {
    let (bytes, meta) = super::files::read_regular(expanded, super::files::HTPASSWD_LIMIT)
        .map_err(|source| AuthError::Read {
            path: path.to_owned(),
            source,
        })?;
    let users = model::security::parse_htpasswd(&String::from_utf8_lossy(&bytes)).map_err(
        |(line, message)| AuthError::Format {
            path: path.to_owned(),
            message: if line == 0 {
                message
            } else {
                format!("line {line} {message}")
            },
        },
    )?;
    Ok((users, stamp(&meta)))
}

fn entries(
    users: Vec<model::security::HtpasswdUser>,
    readonly: &[String],
) -> impl Iterator<Item = (String, String, bool)> {
    for r in readonly {
        if !users.iter().any(|u| &u.user == r) {
            tracing::warn!(user = %LogSafe(r), "`auth.readonly` names a user the htpasswd file does not have");
        }
    }
    let readonly = readonly.to_vec();
    users.into_iter().map(move |u| {
        let ro = readonly.contains(&u.user);
        (u.user, u.hash, ro)
    })
}

impl Authenticator {
    /// The authenticator for `auth`, or `None` when authentication is off.
    /// It runs bcrypt: call it off the async runtime.
    pub(crate) fn load(auth: &model::Auth) -> Result<Option<Arc<Self>>, AuthError> {
        let Some(path) = auth.htpasswd.as_deref().filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let expanded = shellexpand::full(path).map_or_else(|_| path.to_owned(), |p| p.into_owned());
        let (users, stamp) = read_htpasswd(path, &expanded)?;
        let mut a = Self::new(entries(users, &auth.readonly));
        a.source = Some(Source {
            path: path.to_owned(),
            expanded,
            readonly: auth.readonly.clone(),
            state: Mutex::new((Instant::now(), stamp)),
            reading: tokio::sync::Mutex::new(()),
        });
        Ok(Some(Arc::new(a)))
    }

    /// An authenticator for `(user, bcrypt hash, read-only)` entries. It
    /// runs bcrypt twice (the dummy hash and its timing): call it off the
    /// async runtime.
    pub(crate) fn new(users: impl IntoIterator<Item = (String, String, bool)>) -> Self {
        let users = Users::new(users, None);
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let started = Instant::now();
        let _ = bcrypt::verify("", &users.dummy);
        Self {
            users: std::sync::RwLock::new(Arc::new(users)),
            cache: Mutex::new(HashMap::new()),
            checks: tokio::sync::Semaphore::new(cpus),
            slowest: std::sync::atomic::AtomicU64::new(micros(started.elapsed())),
            source: None,
            throttle: super::throttle::Throttle::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (bool, Instant)>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn users(&self) -> Arc<Users> {
        Arc::clone(
            &self
                .users
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Re-reads the htpasswd file if it changed since it was last looked
    /// at, and that was at least `every` ago. A file that cannot be used
    /// (unreadable, not a regular file, too large, a bad line) is logged
    /// and the users read before stay.
    async fn refresh(&self, every: Duration) {
        let Some(src) = &self.source else { return };
        let Ok(_reading) = src.reading.try_lock() else {
            return; // another request is reading it
        };
        let old = {
            let mut state = src
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if state.0.elapsed() < every {
                return;
            }
            state.0 = Instant::now();
            state.1
        };
        let (path, expanded) = (src.path.clone(), src.expanded.clone());
        let readonly = src.readonly.clone();
        let current = self.users();
        let read = tokio::task::spawn_blocking(move || {
            let now = std::fs::metadata(&expanded).map(|m| stamp(&m)).ok()?;
            if now == old {
                return None;
            }
            // (Gone for now, as while an editor replaces it: `None` above,
            // looked at again at the next interval.)
            Some(
                read_htpasswd(&path, &expanded)
                    .map(|(users, stamp)| {
                        let reuse = Some((current.dummy.as_str(), current.max_cost));
                        let users = Users::new(entries(users, &readonly), reuse);
                        // A new highest cost: refused logins are padded to
                        // a check at it, measured now.
                        let slowest = (users.max_cost != current.max_cost).then(|| {
                            let started = Instant::now();
                            let _ = bcrypt::verify("", &users.dummy);
                            micros(started.elapsed())
                        });
                        (users, stamp, slowest)
                    })
                    .map_err(|e| (e, now)),
            )
        })
        .await
        .ok()
        .flatten();
        match read {
            None => {}
            Some(Ok((users, stamp, slowest))) => {
                if let Some(us) = slowest {
                    self.slowest.store(us, std::sync::atomic::Ordering::Relaxed);
                }
                tracing::info!(path = %LogSafe(&src.path), users = users.map.len(), "re-read the htpasswd file");
                *self
                    .users
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(users);
                // A removed user or a changed password is not trusted on.
                self.cache().clear();
                src.state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .1 = stamp;
            }
            Some(Err((e, now))) => {
                tracing::warn!(error = %LogSafe(&e.to_string()), "the htpasswd file changed but cannot be used; the users read before stay");
                // Not logged again until it changes again.
                src.state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .1 = now;
            }
        }
    }

    /// Checks the `Authorization` header of a request from `peer`.
    pub(crate) async fn check(
        &self,
        authorization: Option<&HeaderValue>,
        peer: Option<std::net::IpAddr>,
    ) -> Outcome {
        self.refresh(RELOAD_INTERVAL).await;
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return Outcome::Refused(None);
        };
        let mut key = Sha256::new();
        key.update(user.as_bytes());
        key.update([0]);
        key.update(password.as_bytes());
        let key: [u8; 32] = key.finalize().into();
        let mut users = self.users();
        if !users.map.contains_key(&user) {
            // Perhaps just added to the file.
            self.refresh(RELOAD_INTERVAL_UNKNOWN).await;
            users = self.users();
        }
        if let Some(&(readonly, at)) = self.cache().get(&key)
            && at.elapsed() < CACHE_TTL
            && users.map.contains_key(&user)
        {
            return Outcome::Allowed { user, readonly };
        }
        // Repeated failures wait before their check (holding no permit).
        let wait = self.throttle.delay(&user, peer);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let (hash, readonly, known) = match users.map.get(&user) {
            Some(u) => (u.hash.clone(), u.readonly, true),
            None => (users.dummy.clone(), false, false),
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
        if cost == Some(users.max_cost) {
            // Races between updates only lose a sample.
            let avg = self.slowest.load(Relaxed);
            self.slowest.store((avg * 7 + micros(took)) / 8, Relaxed);
        }
        // A cheaper hash must not answer sooner. The permit is released
        // already: the padding holds no CPU and no check slot.
        if !(ok && known) {
            self.throttle.failed(&user, peer);
            let slowest = Duration::from_micros(self.slowest.load(Relaxed));
            if let Some(rest) = slowest.checked_sub(took) {
                tokio::time::sleep(rest).await;
            }
            return Outcome::Refused(Some(user));
        }
        self.throttle.succeeded(&user, peer);
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
    // Load balancers check health without credentials (it says nothing
    // about the registry's content).
    if preflight || req.uri().path() == crate::registry::http::HEALTH_PATH {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<super::conns::Peer>()
        .map(|p| p.0.ip());
    match auth
        .check(req.headers().get(header::AUTHORIZATION), peer)
        .await
    {
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
        assert_eq!(a.check(None, None).await, Outcome::Refused(None));
        assert_eq!(
            a.check(Some(&header("alice", "secret")), None).await,
            Outcome::Allowed {
                user: "alice".into(),
                readonly: false
            }
        );
        // Cached the second time; still correct.
        assert_eq!(
            a.check(Some(&header("alice", "secret")), None).await,
            Outcome::Allowed {
                user: "alice".into(),
                readonly: false
            }
        );
        assert_eq!(
            a.check(Some(&header("alice", "Secret")), None).await,
            Outcome::Refused(Some("alice".into()))
        );
        assert_eq!(
            a.check(Some(&header("bob", "reader")), None).await,
            Outcome::Allowed {
                user: "bob".into(),
                readonly: true
            }
        );
        assert_eq!(
            a.check(Some(&header("carol", "secret")), None).await,
            Outcome::Refused(Some("carol".into()))
        );
        for bad in ["Bearer x", "Basic !!!", "Basic", "Basic Zm9v"] {
            assert!(
                matches!(
                    a.check(Some(&HeaderValue::from_static(bad)), None).await,
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
