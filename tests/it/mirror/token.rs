//! A small token server for distribution's `auth: token`: anonymous
//! requests get `pull` on what they ask, requests with the one user's Basic
//! credentials get everything they ask. Tokens are RS256 JWTs signed by a
//! key whose self-signed certificate (made by `openssl`) is both in the
//! token's `x5c` header and in the registry's `rootcertbundle`, so
//! distribution really verifies them.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;

const USER: &str = "pusher";
const PASSWORD: &str = "push-secret";
const ISSUER: &str = "regconf-test-issuer";
const SERVICE: &str = "regconf-test-registry";

/// A token server on a free loopback port (a thread; it lives as long as
/// the test process, which is fine for a listener nobody else knows).
pub(crate) struct TokenServer {
    port: u16,
    cert: PathBuf,
    /// Tokens issued so far.
    pub(crate) issued: Arc<AtomicUsize>,
    /// Of those, tokens issued to the user's credentials.
    pub(crate) to_user: Arc<AtomicUsize>,
}

impl TokenServer {
    /// Makes a key and certificate in `dir` and starts serving.
    pub(crate) fn start(dir: &Path) -> TokenServer {
        std::fs::create_dir_all(dir).unwrap();
        let key = dir.join("signer.key");
        let cert = dir.join("signer.pem");
        crate::registry::run_ok(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key.display().to_string(),
                "-out",
                &cert.display().to_string(),
                "-subj",
                "/CN=regconf test token signer",
                "-days",
                "2",
            ],
            None,
            "apt-get install -y openssl",
        );
        let encoding =
            jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(&key).unwrap()).unwrap();
        let der = pem_body(&std::fs::read_to_string(&cert).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let issued = Arc::new(AtomicUsize::new(0));
        let count = issued.clone();
        let to_user = Arc::new(AtomicUsize::new(0));
        let user_count = to_user.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut authorized = false;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    let basic = base64::engine::general_purpose::STANDARD
                        .encode(format!("{USER}:{PASSWORD}"));
                    if h.to_ascii_lowercase().starts_with("authorization:")
                        && h.trim_end().ends_with(&format!("Basic {basic}"))
                    {
                        authorized = true;
                    }
                }
                let target = line.split(' ').nth(1).unwrap_or("");
                let token = token(&encoding, &der, target, authorized);
                count.fetch_add(1, Ordering::SeqCst);
                if authorized {
                    user_count.fetch_add(1, Ordering::SeqCst);
                }
                let body = serde_json::json!({
                    "token": token,
                    "expires_in": 300,
                })
                .to_string();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer {
            port,
            cert,
            issued,
            to_user,
        }
    }

    /// The `auth:` section of distribution's configuration.
    pub(crate) fn distribution_config(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.port,
            self.cert.display()
        )
    }

    /// `user:password` of the user that may push.
    pub(crate) fn creds(&self) -> String {
        format!("{USER}:{PASSWORD}")
    }

    /// The user and password, apart.
    pub(crate) fn user() -> (&'static str, &'static str) {
        (USER, PASSWORD)
    }
}

/// The DER bytes of a PEM certificate.
fn pem_body(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// A token granting the scopes `target` (`/token?service=..&scope=..`)
/// asks for: all of their actions when `authorized`, else only `pull`.
fn token(key: &jsonwebtoken::EncodingKey, der: &[u8], target: &str, authorized: bool) -> String {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let mut access = Vec::new();
    for pair in query.split('&') {
        let Some(scope) = pair.strip_prefix("scope=") else {
            continue;
        };
        let scope = percent_decode(scope);
        let mut parts = scope.splitn(3, ':');
        let (Some(kind), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let actions: Vec<&str> = actions
            .split(',')
            .filter(|a| authorized || *a == "pull")
            .collect();
        access.push(serde_json::json!({"type": kind, "name": name, "actions": actions}));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": if authorized { USER } else { "" },
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", access.len()),
        "access": access,
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5c = Some(vec![base64::engine::general_purpose::STANDARD.encode(der)]);
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
