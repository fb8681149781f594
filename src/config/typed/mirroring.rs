//! The `mirroring:` section: the sample's keys (`source`, `source_index`,
//! `tags_cache_ttl`) and regconf's extensions (`username`, `password`,
//! `allow_push`). Types and forms only: whether `source` answers is for
//! `serve` to find out, not for this module.

use super::keys::section_keys;
use super::{Conv, Sec};
use crate::diagnostics::Severity;
use crate::model;

impl Conv<'_> {
    /// Reads `mirroring:` and reports a `source` that is not an http(s)
    /// URL, half of a user name and password, and a `source_index` (the v1
    /// index has no meaning for a v2 mirror).
    pub(super) fn mirroring(&mut self, top: &mut Sec<'_>) -> model::Mirroring {
        let mut s = self.section(top, "mirroring");
        let mut m = model::Mirroring {
            source: self.string(&mut s, "source"),
            source_index: self.string(&mut s, "source_index"),
            tags_cache_ttl: self.int(&mut s, "tags_cache_ttl", true),
            username: self.string(&mut s, "username"),
            password: self.string(&mut s, "password"),
            allow_push: self.truthy(&mut s, "allow_push").unwrap_or(false),
            extra: model::Extra::new(),
        };
        m.extra = self.rest(&s, section_keys("mirroring"), &[]);
        let set = |o: &Option<String>| o.as_deref().is_some_and(|v| !v.is_empty());
        if let Some(url) = m.source.as_deref().filter(|u| !u.is_empty())
            && let Err(why) = check_url(url)
        {
            self.report(
                "regconf::mirroring::source_url",
                Severity::Error,
                &s.path_of("source"),
                format!("`mirroring.source` `{url}` is not a registry URL: {why}"),
                "not an http(s) URL",
                "write the upstream's base URL, such as `https://registry-1.docker.io`",
            );
        }
        for (have, missing) in [("username", "password"), ("password", "username")] {
            let (a, b) = if have == "username" {
                (&m.username, &m.password)
            } else {
                (&m.password, &m.username)
            };
            if set(a) && !set(b) {
                self.report(
                    "regconf::mirroring::credentials",
                    Severity::Error,
                    &s.path_of(have),
                    format!(
                        "`mirroring.{have}` is set but `mirroring.{missing}` is not: the upstream needs both, or neither for anonymous pulls"
                    ),
                    "half of the credentials",
                    format!("add `{missing}:` under `mirroring:`, or remove `{have}`"),
                );
            }
        }
        if set(&m.source_index) {
            self.report(
                "regconf::mirroring::source_index",
                Severity::Warning,
                &s.path_of("source_index"),
                "`mirroring.source_index` has no effect: it names a v1 index, and the v2 API the mirror speaks has none"
                    .to_owned(),
                "v1 only",
                "remove it; pulls go to `mirroring.source` alone",
            );
        }
        if let Some(ttl) = m.tags_cache_ttl
            && ttl < 0
        {
            self.report(
                "regconf::value::range",
                Severity::Error,
                &s.path_of("tags_cache_ttl"),
                format!("`mirroring.tags_cache_ttl` is {ttl}: seconds cannot be negative"),
                "negative",
                "write 0 to re-check every tag on each pull, or a number of seconds",
            );
            m.tags_cache_ttl = None;
        }
        m
    }
}

/// Why `url` is not an `http://` or `https://` URL with a host.
fn check_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("it must start with `https://` or `http://`")?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it holds a space or a control character");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("put credentials in `username` and `password`, not in the URL");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or("its IPv6 address has no `]`")?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err("it has no host");
    }
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err("its port is not a number from 0 to 65535");
    }
    if rest.contains(['?', '#']) {
        return Err("a registry's base URL has no query or fragment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn urls() {
        for ok in [
            "https://registry-1.docker.io",
            "http://127.0.0.1:5000",
            "http://127.0.0.1:5000/",
            "https://[::1]:443",
            "https://mirror.example/prefix",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "registry-1.docker.io",
            "ftp://x",
            "https://",
            "https://:5000",
            "http://a:b@host",
            "http://host:99999",
            "http://host:",
            "http://ho st",
            "http://host/?q",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
