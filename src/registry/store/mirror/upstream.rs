//! The client of the mirrored registry (`mirroring.source`): manifest and
//! blob requests over the Docker Registry HTTP API V2, with the
//! authentication the upstream asks for in its `WWW-Authenticate`
//! challenge: none, HTTP Basic, or the Bearer token flow Docker Hub uses
//! (a token fetched from the challenge's `realm` for its `service` and
//! `scope`, cached until it expires).
//!
//! It speaks HTTP to the upstream only; it knows nothing of storage, and it
//! never follows what a client of this registry sent (names are the
//! already-validated repository names, mapped to the upstream's).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderValue};
use reqwest::{Method, StatusCode};

use crate::registry::oci::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};

/// Most time to open a connection to the upstream.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most time the upstream may stay silent while a request is open (per
/// read, so a large blob that keeps flowing is never cut).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most time a tag's re-check (a manifest `HEAD`) may take: when it runs
/// out, the stored tag is served, so a slow upstream costs a pull this
/// much at most.
pub(super) const RECHECK_TIMEOUT: Duration = Duration::from_secs(10);
/// A token whose lifetime the token service does not state lives this long
/// (the token specification's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Tokens are renewed this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(5);

/// The manifest types asked for: every type the registry stores.
fn accept() -> String {
    [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(", ")
}

/// Why a request to the upstream failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The upstream does not have it (404).
    #[error("not found at the upstream")]
    NotFound,
    /// The connection failed, timed out, or the upstream answered an
    /// error other than 404.
    #[error("{0}")]
    Failed(String),
}

/// What the upstream said about a manifest or blob.
pub(super) struct Answer {
    pub(super) response: reqwest::Response,
}

impl Answer {
    /// A header as text.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
    }

    /// `Content-Length`, when given.
    pub(super) fn length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }
}

/// How the upstream wants to be authenticated, learnt from its challenge.
#[derive(Debug, Clone)]
enum Scheme {
    /// No challenge seen yet, or none needed.
    None,
    /// HTTP Basic with the configured credentials.
    Basic,
    /// Tokens from the challenge's realm, one per scope (a request whose
    /// token is missing or expired meets the challenge again).
    Bearer,
}

/// A token and when it stops being used.
struct Token {
    value: String,
    until: Instant,
}

/// The upstream registry's client.
pub(crate) struct Upstream {
    base: String,
    client: reqwest::Client,
    credentials: Option<(String, String)>,
    scheme: Mutex<Scheme>,
    /// Tokens by scope.
    tokens: Mutex<HashMap<String, Token>>,
}

impl Upstream {
    /// A client of the registry at `base` (an `http(s)://` URL).
    pub(crate) fn new(
        base: &str,
        credentials: Option<(String, String)>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(IDLE_TIMEOUT)
            .user_agent(concat!("regconf/", env!("CARGO_PKG_VERSION"), " (mirror)"))
            .build()?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
            credentials,
            scheme: Mutex::new(Scheme::None),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// The upstream's base URL, for messages.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `GET` or `HEAD` of `/v2/<name>/manifests/<reference>`.
    pub(super) async fn manifest(
        &self,
        name: &str,
        reference: &str,
        head: bool,
    ) -> Result<Answer, UpstreamError> {
        let method = if head { Method::HEAD } else { Method::GET };
        self.send(method, name, &format!("manifests/{reference}"), true)
            .await
    }

    /// `GET` or `HEAD` of `/v2/<name>/blobs/<digest>` (redirects to
    /// storage are followed, as clients do).
    pub(super) async fn blob(
        &self,
        name: &str,
        digest: &str,
        head: bool,
    ) -> Result<Answer, UpstreamError> {
        let method = if head { Method::HEAD } else { Method::GET };
        self.send(method, name, &format!("blobs/{digest}"), false)
            .await
    }

    /// Sends a request with the credentials the upstream asked for,
    /// answering its challenge once.
    async fn send(
        &self,
        method: Method,
        name: &str,
        rest: &str,
        manifest: bool,
    ) -> Result<Answer, UpstreamError> {
        let url = format!("{}/v2/{name}/{rest}", self.base);
        let scope = format!("repository:{name}:pull");
        let mut answered = false;
        loop {
            let mut req = self.client.request(method.clone(), &url);
            if manifest {
                req = req.header(header::ACCEPT, accept());
                if method == Method::HEAD {
                    req = req.timeout(RECHECK_TIMEOUT);
                }
            }
            if let Some(auth) = self.authorization(&scope) {
                req = req.header(header::AUTHORIZATION, auth);
            }
            let response = req.send().await.map_err(|e| failed(&e))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !answered {
                answered = true;
                let challenge = response
                    .headers()
                    .get(header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                self.answer(challenge.as_deref(), &scope).await?;
                continue;
            }
            return match status {
                s if s.is_success() => Ok(Answer { response }),
                StatusCode::NOT_FOUND => Err(UpstreamError::NotFound),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    Err(UpstreamError::Failed(format!(
                        "the upstream refused access ({status}){}",
                        if self.credentials.is_some() {
                            " with the configured `mirroring.username`"
                        } else {
                            " to anonymous pulls: set `mirroring.username` and `mirroring.password`"
                        }
                    )))
                }
                s => Err(UpstreamError::Failed(format!("the upstream answered {s}"))),
            };
        }
    }

    /// The `Authorization` value for `scope`, when one is known.
    fn authorization(&self, scope: &str) -> Option<HeaderValue> {
        let scheme = self.scheme.lock().map(|s| s.clone()).ok()?;
        match scheme {
            Scheme::None => None,
            Scheme::Basic => self.basic(),
            Scheme::Bearer => {
                let tokens = self.tokens.lock().ok()?;
                let t = tokens.get(scope).filter(|t| t.until > Instant::now())?;
                HeaderValue::from_str(&format!("Bearer {}", t.value)).ok()
            }
        }
    }

    fn basic(&self) -> Option<HeaderValue> {
        use base64::Engine as _;
        let (u, p) = self.credentials.as_ref()?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        HeaderValue::from_str(&format!("Basic {b64}")).ok()
    }

    /// Learns the scheme from a challenge and, for Bearer, fetches a token.
    async fn answer(&self, challenge: Option<&str>, scope: &str) -> Result<(), UpstreamError> {
        let challenge = challenge.ok_or_else(|| {
            UpstreamError::Failed("the upstream answered 401 without a challenge".to_owned())
        })?;
        let (scheme, params) = parse_challenge(challenge);
        if scheme.eq_ignore_ascii_case("basic") {
            if self.credentials.is_none() {
                return Err(UpstreamError::Failed(
                    "the upstream asks for HTTP Basic credentials: set `mirroring.username` and `mirroring.password`"
                        .to_owned(),
                ));
            }
            if let Ok(mut s) = self.scheme.lock() {
                *s = Scheme::Basic;
            }
            return Ok(());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(UpstreamError::Failed(format!(
                "the upstream asks for the `{scheme}` authentication scheme, which the mirror does not speak"
            )));
        }
        let realm = params
            .get("realm")
            .ok_or_else(|| {
                UpstreamError::Failed("the upstream's Bearer challenge has no realm".to_owned())
            })?
            .clone();
        let service = params.get("service").cloned();
        // The upstream's own scope wins: it knows what it will check.
        let scope_asked = params.get("scope").map_or(scope, String::as_str);
        let token = self
            .fetch_token(&realm, service.as_deref(), scope_asked)
            .await?;
        if let Ok(mut s) = self.scheme.lock() {
            *s = Scheme::Bearer;
        }
        if let Ok(mut t) = self.tokens.lock() {
            t.retain(|_, t| t.until > Instant::now());
            t.insert(scope.to_owned(), token);
        }
        Ok(())
    }

    /// Fetches a token for `scope` from the token service at `realm`,
    /// with the configured credentials when there are any.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Token, UpstreamError> {
        let mut url = reqwest::Url::parse(realm).map_err(|e| {
            UpstreamError::Failed(format!("the token realm `{realm}` is not a URL: {e}"))
        })?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
        }
        let mut req = self.client.get(url);
        if let Some(b) = self.basic() {
            req = req.header(header::AUTHORIZATION, b);
        }
        let started = Instant::now();
        let res = req.send().await.map_err(|e| failed(&e))?;
        let status = res.status();
        if !status.is_success() {
            return Err(UpstreamError::Failed(format!(
                "the token service `{realm}` answered {status}"
            )));
        }
        let body = res.bytes().await.map_err(|e| failed(&e))?;
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            UpstreamError::Failed(format!("the token service's answer is not JSON: {e}"))
        })?;
        let value = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(serde_json::Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                UpstreamError::Failed("the token service's answer holds no token".to_owned())
            })?
            .to_owned();
        let lifetime = v
            .get("expires_in")
            .and_then(serde_json::Value::as_u64)
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        Ok(Token {
            value,
            until: started + lifetime.saturating_sub(TOKEN_MARGIN),
        })
    }
}

/// A transport failure, said without the URL's query.
fn failed(e: &reqwest::Error) -> UpstreamError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut msg = format!("{what}: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    UpstreamError::Failed(msg)
}

/// Splits a `WWW-Authenticate` value into its scheme and parameters
/// (`key="value"` or `key=token`, comma-separated; values may hold commas
/// inside quotes, as `scope` does).
pub(super) fn parse_challenge(v: &str) -> (String, HashMap<String, String>) {
    let v = v.trim();
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = chars.by_ref().take_while(|c| *c != ',').collect();
            value = value.trim().to_owned();
        }
        params.insert(key, value);
    }
    (scheme.to_owned(), params)
}

#[cfg(test)]
mod tests {
    use super::parse_challenge;

    #[test]
    fn challenges() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull,push""#,
        );
        assert_eq!(s, "Bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/alpine:pull,push");
        let (s, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(s, "Basic");
        assert_eq!(p["realm"], "Registry Realm");
        let (_, p) = parse_challenge(r#"Bearer realm=x, service = "a\"b""#);
        assert_eq!(p["realm"], "x");
        assert_eq!(p["service"], "a\"b");
        let (s, p) = parse_challenge("Basic");
        assert_eq!(s, "Basic");
        assert!(p.is_empty());
    }
}
