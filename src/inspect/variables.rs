//! The environment variables a flavor reads (for `regconf env`).
//!
//! Input: a file, a flavor and an environment. Output: one [`Variable`] per
//! `_env:` name the flavor resolves through: the keys that use it, its
//! default, its value now, the type its text gives, and whether it is
//! required. A variable is required when it has no default and, unset, it
//! leaves a setting empty that `serve` needs (the storage driver's bucket,
//! account, ...): the flavor is resolved once more without those variables
//! and the model conversion says which settings are missing, so the rule is
//! the model's, not a second copy of it.

use std::collections::BTreeSet;
use std::sync::Arc;

use indexmap::IndexMap;

use crate::config::env::{self, Env, Given};
use crate::config::origin::dotted;
use crate::config::resolve::{Inherit, Resolved};
use crate::config::source::{Source, Span};
use crate::config::typed::{self, Mode};
use crate::config::value::{Value, at_path};
use crate::diagnostics::Diagnostic;
use crate::model::{MASK, is_secret};

/// One variable a flavor reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Variable {
    /// Its name.
    pub(crate) name: String,
    /// The dotted keys that use it, in resolution order.
    pub(crate) keys: Vec<String>,
    /// The default written after the name (masked for secrets).
    pub(crate) default: Option<String>,
    /// Its value in the environment, if set (masked for secrets).
    pub(crate) value: Option<String>,
    /// The type of the value it gives now (`string`, `boolean`, `null`...).
    pub(crate) type_name: &'static str,
    /// No default, and `serve` needs what it gives.
    pub(crate) required: bool,
    /// Whether a key that uses it holds a secret.
    pub(crate) secret: bool,
    /// The first `_env:` string that names it.
    pub(crate) reference: Span,
}

impl Variable {
    /// Whether it is set in the environment.
    pub(crate) fn is_set(&self) -> bool {
        self.value.is_some()
    }
}

/// The variables `resolved` read, in order of first use.
pub(crate) fn variables(
    resolved: &Resolved,
    source: &Arc<Source>,
    inherit: Inherit,
    env: &Env,
    show_secrets: bool,
) -> Vec<Variable> {
    let mut by_name: IndexMap<String, Variable> = IndexMap::new();
    for (path, origin) in resolved.provenance.iter() {
        let Some(e) = &origin.env else { continue };
        // Keys inside a mapping that a variable supplied are listed under
        // the key that named the variable.
        if origin.inside_variable.is_some() {
            continue;
        }
        let key = dotted(path);
        let secret = is_secret(&key);
        let raw = &source.text()[e.reference.start..e.reference.end];
        let unquoted = raw.trim().trim_matches(|c| c == '"' || c == '\'');
        let default = env::parse_ref(unquoted).and_then(|r| r.default.map(str::to_owned));
        let type_name = at_path(&resolved.config, path).map_or("null", Value::type_name);
        let v = by_name.entry(e.name.clone()).or_insert_with(|| Variable {
            name: e.name.clone(),
            keys: Vec::new(),
            default,
            value: match &e.given {
                Given::Set(v) => Some(v.clone()),
                _ => None,
            },
            type_name,
            required: false,
            secret: false,
            reference: e.reference,
        });
        v.keys.push(key);
        v.secret |= secret;
    }
    let required = required_names(resolved, source, inherit, env, &by_name);
    by_name
        .into_values()
        .map(|mut v| {
            v.required = required.contains(&v.name);
            if v.secret && !show_secrets {
                let mask = |s: String| if s.is_empty() { s } else { MASK.to_owned() };
                v.value = v.value.map(mask);
                v.default = v.default.map(mask);
            }
            v
        })
        .collect()
}

/// The variables without a default whose absence leaves a setting missing
/// that the model requires.
fn required_names(
    resolved: &Resolved,
    source: &Arc<Source>,
    inherit: Inherit,
    env: &Env,
    vars: &IndexMap<String, Variable>,
) -> BTreeSet<String> {
    let no_default: BTreeSet<&str> = vars
        .values()
        .filter(|v| v.default.is_none())
        .map(|v| v.name.as_str())
        .collect();
    let without: Env = env
        .iter()
        .filter(|(k, _)| !no_default.contains(k))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let Ok(bare) = crate::config::load(Arc::clone(source), &resolved.flavor, inherit, &without)
    else {
        return BTreeSet::new();
    };
    let (_, diags) = typed::to_model(&bare, source, Mode::Environment(&without));
    let missing: Vec<&Diagnostic> = diags
        .iter()
        .filter(|d| d.code == "regconf::storage::missing_key")
        .collect();
    vars.values()
        .filter(|v| v.default.is_none())
        .filter(|v| {
            missing
                .iter()
                .any(|d| d.key_path.as_ref().is_some_and(|k| v.keys.contains(k)))
        })
        .map(|v| v.name.clone())
        .collect()
}
