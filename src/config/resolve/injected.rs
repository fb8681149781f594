//! What docker-registry's `_init()` did once the flavor was selected:
//! inject `flavor`, strip `/` from `index_endpoint`, and check that a truthy
//! `privileged_key` names a readable file (through the caller's function,
//! the one file access of resolution).

use std::sync::Arc;

use super::article;
use super::variables::Walker;
use crate::config::origin::{Injected, Origin};
use crate::config::source::Span;
use crate::config::value::{Key, Map, Value};
use crate::diagnostics::Diagnostic;

/// What `_init()` did after selecting the flavor.
pub(super) fn finish(
    walker: &mut Walker<'_>,
    config: &mut Map,
    file_exists: &dyn Fn(&str) -> bool,
) {
    let file = Arc::clone(walker.file());
    let flavor = walker.flavor;
    let site = |walker: &Walker<'_>, key: &str| -> Option<Span> {
        let o = walker.provenance.get(&[Key::from(key)])?;
        o.env.as_ref().map(|e| e.reference).or(o.value_span)
    };
    // A top-level key the loader refused, pointed at its value.
    let report = |walker: &mut Walker<'_>, code, key: &str, message: String, help: &str| {
        let mut d = Diagnostic::error(code, message)
            .with_source(&file)
            .in_flavor(flavor)
            .at_key(key)
            .help(help);
        if let Some(span) = site(walker, key) {
            d = d.label(span, "");
        }
        walker.problems.push(d);
    };
    let key = Key::from("privileged_key");
    if let Some(value) = config.get(&key)
        && (value.is_truthy() || matches!(value, Value::Map(_)))
    {
        {
            let problem = match value {
                Value::Str(path) if file_exists(path) => None,
                Value::Str(path) => Some(format!(
                    "the privileged key `{path}` is not a readable file"
                )),
                other => Some(format!(
                    "`privileged_key` must be the path of a file, not {}",
                    article(other.type_name())
                )),
            };
            if let Some(message) = problem {
                report(
                    walker,
                    "regconf::key::privileged_key_missing",
                    "privileged_key",
                    message,
                    "docker-registry opened this RSA public key at start; give the path of an existing file, or leave the key empty",
                );
            }
        }
    }
    let key = Key::from("index_endpoint");
    if let Some(value) = config.get(&key).cloned()
        && (value.is_truthy() || matches!(value, Value::Map(_)))
    {
        {
            match value {
                Value::Str(s) => {
                    let stripped = s.trim_matches('/').to_owned();
                    if stripped != s
                        && let Some(o) = walker.provenance.get_mut(std::slice::from_ref(&key))
                    {
                        o.injected = Some(Injected::IndexEndpointStripped);
                    }
                    config.insert(key, Value::Str(stripped));
                }
                Value::Bytes(b) => {
                    let start = b.iter().position(|&c| c != b'/').unwrap_or(b.len());
                    let end = b.iter().rposition(|&c| c != b'/').map_or(start, |e| e + 1);
                    config.insert(key, Value::Bytes(b[start..end.max(start)].to_vec()));
                }
                other => {
                    report(
                        walker,
                        "regconf::key::index_endpoint_type",
                        "index_endpoint",
                        format!(
                            "`index_endpoint` must be a URL string, not {}",
                            article(other.type_name())
                        ),
                        "quote the value: `index_endpoint: 'https://index.example.com'`",
                    );
                }
            }
        }
    }
    let key = Key::from("flavor");
    config.insert(key.clone(), Value::Str(flavor.to_owned()));
    let origin = Origin {
        injected: Some(Injected::Flavor),
        ..walker
            .provenance
            .get(std::slice::from_ref(&key))
            .cloned()
            .unwrap_or_default()
    };
    walker.provenance.insert(vec![key], origin);
}
