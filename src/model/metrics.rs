//! What `serve` tells the people who operate it: Prometheus metrics on a
//! listener of their own (`metrics:`, a regconf extension; docker-registry
//! had none). Plain data, like the rest of the model.

use schemars::JsonSchema;
use serde::Serialize;

/// Prometheus metrics (`metrics:` section, a regconf extension). Off while
/// `listen` is empty. The metrics are served in the Prometheus text format
/// at `/metrics` on their own plain-HTTP listener, without authentication,
/// so that they can stay on loopback or an internal network while the
/// registry faces clients.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct Metrics {
    /// `HOST:PORT` of the metrics listener, for example `127.0.0.1:9090`
    /// or `[::1]:9090`; a host name is resolved at start. Empty means no
    /// metrics.
    pub listen: Option<String>,
}

impl Metrics {
    /// Whether metrics are served.
    pub fn enabled(&self) -> bool {
        self.listen.as_deref().is_some_and(|l| !l.is_empty())
    }
}

/// Why `text` is not a `HOST:PORT` address, if it is not: the port must be
/// a number up to 65535, the host a name, an IPv4 address or a bracketed
/// IPv6 address (`[::1]`). Nothing is resolved.
pub fn address_problem(text: &str) -> Option<&'static str> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Some("it has no `:PORT`");
    };
    if port.parse::<u16>().is_err() {
        return Some("the port is not a number from 0 to 65535");
    }
    if let Some(inner) = host.strip_prefix('[') {
        return match inner.strip_suffix(']') {
            Some(ip) if ip.parse::<std::net::Ipv6Addr>().is_ok() => None,
            _ => Some("the bracketed host is not an IPv6 address"),
        };
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_';
    if host.is_empty() {
        Some("it has no host (write `0.0.0.0` for every address)")
    } else if host.contains(':') {
        Some("an IPv6 host must be in brackets")
    } else if !host.chars().all(name_char) {
        Some("the host is not a name or an address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::address_problem;

    #[test]
    fn addresses() {
        for ok in ["127.0.0.1:9090", "[::1]:0", "localhost:65535", "0.0.0.0:9"] {
            assert_eq!(address_problem(ok), None, "{ok}");
        }
        for bad in [
            "9090",
            ":9090",
            "::1:9090",
            "[::g]:1",
            "a b:1",
            "host:70000",
            "host:",
        ] {
            assert!(address_problem(bad).is_some(), "{bad}");
        }
    }
}
