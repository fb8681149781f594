//! Key-by-key differences between two resolved flavors (for `regconf diff`):
//! two flavors of one file, or one flavor under two environments.
//!
//! Each side of a difference carries its origin in one line (where it is
//! written, the `<<` it came through, the variable or `--set` that gave it).
//! Secrets are compared as they are and shown masked unless asked not to.

use std::sync::Arc;

use indexmap::IndexMap;

use super::explain::{self, leaves};
use crate::config::env::Given;
use crate::config::origin::{Injected, Origin, dotted};
use crate::config::resolve::Resolved;
use crate::config::source::Source;
use crate::config::value::Value;
use crate::model::is_secret;

/// One side of a difference.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Side {
    /// The value (masked for secrets unless shown).
    pub(crate) value: Value,
    /// Where it came from, in one line.
    pub(crate) origin: String,
}

/// One key whose value differs (or that one side lacks).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    /// The dotted key.
    pub(crate) key: String,
    /// The left side, `None` when it lacks the key.
    pub(crate) left: Option<Side>,
    /// The right side.
    pub(crate) right: Option<Side>,
}

/// Compares two resolved flavors of `source`, leaf by leaf, in the left
/// side's key order (then keys only the right has).
pub(crate) fn diff(
    left: &Resolved,
    right: &Resolved,
    source: &Arc<Source>,
    show_secrets: bool,
) -> Vec<Change> {
    let collect = |r: &Resolved| {
        let mut out: IndexMap<String, (Vec<_>, Value)> = IndexMap::new();
        leaves(&r.config, &mut Vec::new(), &mut |p, v| {
            out.insert(dotted(p), (p.clone(), v.clone()));
        });
        out
    };
    let (l, r) = (collect(left), collect(right));
    let side = |res: &Resolved, path: &Vec<_>, v: &Value| Side {
        value: if show_secrets {
            v.clone()
        } else {
            explain::masked(path, v)
        },
        origin: summary(
            source,
            &res.provenance.get(path).cloned().unwrap_or_default(),
            show_secrets || !is_secret(&dotted(path)),
        ),
    };
    let mut keys: Vec<&String> = l.keys().collect();
    keys.extend(r.keys().filter(|k| !l.contains_key(*k)));
    keys.into_iter()
        .filter_map(|k| {
            let a = l.get(k);
            let b = r.get(k);
            if let (Some((_, x)), Some((_, y))) = (a, b)
                && x == y
            {
                return None;
            }
            Some(Change {
                key: k.clone(),
                left: a.map(|(p, v)| side(left, p, v)),
                right: b.map(|(p, v)| side(right, p, v)),
            })
        })
        .collect()
}

/// An origin in one line: `file:line:col through <<: *s3, <<: *common,
/// default of $STORAGE_PATH`.
pub(crate) fn summary(source: &Source, origin: &Origin, show_values: bool) -> String {
    if let Some(cli) = &origin.cli {
        return if show_values {
            format!("`{cli}`")
        } else {
            let key = cli.split_once('=').map_or(cli.as_str(), |(k, _)| k);
            format!("`{key}=********`")
        };
    }
    if origin.injected == Some(Injected::Flavor) {
        return "the selected flavor".to_owned();
    }
    let mut parts = Vec::new();
    let at = origin
        .env
        .as_ref()
        .map(|e| e.reference)
        .or(origin.value_span);
    if let Some(span) = at {
        let (line, col) = source.line_col(span.start);
        parts.push(format!("{}:{line}:{col}", source.name()));
    }
    if let Some(via) = &origin.via {
        let anchors: Vec<String> = via
            .iter()
            .map(|v| format!("`<<: *{}`", v.anchor.as_deref().unwrap_or("")))
            .collect();
        parts.push(format!("through {}", anchors.join(", ")));
    }
    if origin.implicit_common {
        parts.push("from `common`".to_owned());
    }
    if let Some(e) = &origin.env {
        parts.push(match &e.given {
            Given::Set(_) => format!("`${}` is set", e.name),
            Given::Default(_) => format!("default of `${}`", e.name),
            Given::Unset => format!("`${}` is unset", e.name),
        });
    }
    if let Some(v) = &origin.inside_variable {
        parts.push(format!("inside `${v}`"));
    }
    if origin.injected == Some(Injected::IndexEndpointStripped) {
        parts.push("`/` stripped".to_owned());
    }
    if parts.is_empty() {
        "unknown".to_owned()
    } else {
        parts.join(", ")
    }
}
