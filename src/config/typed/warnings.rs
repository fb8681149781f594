//! Pitfalls of docker-registry's environment handling, reported as
//! warnings: a variable set but empty (its default no longer applies) and a
//! variable whose text YAML cuts at ` #`.

use std::collections::HashSet;

use super::Conv;
use crate::config::env::{self, Given};
use crate::config::origin::dotted;
use crate::diagnostics::Severity;

impl Conv<'_> {
    /// Variables that are set but empty (the default does not apply), and
    /// variables whose text holds a comment.
    pub(super) fn env_pitfalls(&mut self) {
        let mut seen = HashSet::new();
        let entries: Vec<_> = self
            .prov
            .iter()
            .filter_map(|(p, o)| Some((p.clone(), o.env.clone()?)))
            .collect();
        for (path, e) in entries {
            if !seen.insert(e.reference.start) {
                continue;
            }
            let Given::Set(value) = &e.given else {
                continue;
            };
            let written = self
                .file
                .text()
                .get(e.reference.start..e.reference.end)
                .unwrap_or("");
            let written = written.trim_matches(|c| c == '\'' || c == '"');
            let default = env::parse_ref(written).and_then(|r| r.default);
            if value.trim().is_empty() {
                if let Some(default) = default {
                    self.report("regconf::env::set_but_empty",
                            Severity::Warning,
                            &path,
                            format!("`{}` is set but empty, so `{}` is null, not the default `{default}`", e.name, dotted(&path)),
                            "set but empty", format!("unset `{}` to get the default; docker-registry used the default only for unset variables", e.name));
                }
            } else if let Some(kept) = comment_cut(value) {
                self.report("regconf::yaml::comment_in_value",
                        Severity::Warning,
                        &path,
                        format!("the value of `{}` holds ` #`, which YAML reads as a comment: `{}` is `{kept}`", e.name, dotted(&path)),
                        "comment inside", format!("quote the value inside the variable: `{}='\"...\"'`", e.name));
            }
        }
    }
}

/// If `text`, typed as a YAML plain scalar, loses a ` #...` comment, the
/// part that is kept.
pub(crate) fn comment_cut(text: &str) -> Option<String> {
    let t = text.trim_start();
    if t.starts_with(['\'', '"', '[', '{', '#']) {
        return None;
    }
    let bytes = t.as_bytes();
    (1..bytes.len())
        .find(|&i| bytes[i] == b'#' && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t'))
        .map(|i| t[..i].trim_end().to_owned())
}
