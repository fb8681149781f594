//! Why a key of a resolved flavor has its value: the chain that produced it,
//! most specific first (for `regconf explain`).
//!
//! Input: a [`Resolved`] flavor (after `--set` overrides) and its file.
//! Output: one [`Explanation`] per key: the value; the `--set` that gave it;
//! where it was written, with the line; each `<<` it came through; the
//! `_env:` variable and whether its value or its default answered; a note
//! when YAML 1.1 typing changed the text; and the other sections that write
//! the key but lose. Secrets are masked here, unless asked not to, so no
//! printer can leak them by mistake.

use std::sync::Arc;

use super::flavors::{self, Inheritance};
use crate::config::env::{self, Given};
use crate::config::origin::{Injected, KeyPath, Origin, dotted};
use crate::config::render;
use crate::config::resolve::{Inherit, Resolved, Rule, did_you_mean};
use crate::config::source::{Source, Span};
use crate::config::value::{Key, Map, Value, at_path};
use crate::diagnostics::Diagnostic;
use crate::model::{MASK, is_secret};

/// A place in the file, ready to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Site {
    /// The file's name.
    pub(crate) file: String,
    /// Line, 1-based.
    pub(crate) line: usize,
    /// Column, 1-based.
    pub(crate) column: usize,
    /// The line's text (a secret written in it is masked).
    pub(crate) text: String,
}

impl Site {
    fn new(source: &Source, span: Span) -> Site {
        let (line, column) = source.line_col(span.start);
        Site {
            file: source.name().to_owned(),
            line,
            column,
            text: source.line_text(span.start).to_owned(),
        }
    }

    /// `file:line:col`.
    pub(crate) fn location(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One `<<` a value came through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Merge {
    /// The section holding the `<<` key (a flavor, or `*anchor`).
    pub(crate) from: String,
    /// The anchor it names.
    pub(crate) anchor: String,
    /// Where the `<<` key is.
    pub(crate) at: Site,
}

/// The `_env:` reference that gave a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Variable {
    /// The variable's name.
    pub(crate) name: String,
    /// Set, default or unset (texts masked for secrets).
    pub(crate) given: Given,
    /// The default written after the name, if any (masked for secrets).
    pub(crate) default: Option<String>,
    /// Where the `_env:` string is.
    pub(crate) at: Site,
}

/// Why one key has its value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Explanation {
    /// The dotted key.
    pub(crate) key: String,
    /// The value (a secret's is [`MASK`] unless shown).
    pub(crate) value: Value,
    /// Whether the key holds a secret.
    pub(crate) secret: bool,
    /// The `--set KEY=VALUE` that gave it.
    pub(crate) cli: Option<String>,
    /// Set by the loader (`flavor`, a stripped `index_endpoint`).
    pub(crate) injected: Option<Injected>,
    /// Where it is written in the file.
    pub(crate) written: Option<Site>,
    /// The section it is written in.
    pub(crate) section: Option<String>,
    /// The `<<` keys it came through, from the flavor towards where it is
    /// written.
    pub(crate) merges: Vec<Merge>,
    /// Brought from `common` by the implicit rule.
    pub(crate) implicit_common: bool,
    /// The variable that gave it.
    pub(crate) variable: Option<Variable>,
    /// The variable whose YAML text holds it (a key inside a mapping that a
    /// variable supplied).
    pub(crate) inside_variable: Option<String>,
    /// The text YAML 1.1 typed, when typing changed it (`0755`, `no`).
    pub(crate) typed_from: Option<String>,
    /// Other sections that write this key and lose, in precedence order.
    pub(crate) overridden: Vec<(String, Site)>,
}

/// Explains one dotted key, or every key (leaves, in order) when `key` is
/// `None`.
pub(crate) fn explain(
    resolved: &Resolved,
    source: &Arc<Source>,
    key: Option<&str>,
    show_secrets: bool,
) -> Result<Vec<Explanation>, Diagnostic> {
    let inheritance = flavors::inheritance(Arc::clone(source), Inherit::Auto).ok();
    let ctx = Ctx {
        resolved,
        source,
        show_secrets,
        inheritance: inheritance.as_ref(),
    };
    match key {
        None => {
            let mut out = Vec::new();
            leaves(&resolved.config, &mut Vec::new(), &mut |p, v| {
                out.push(ctx.one(p, v));
            });
            Ok(out)
        }
        Some(k) => {
            let path: KeyPath = k.split('.').map(Key::from).collect();
            match at_path(&resolved.config, &path) {
                Some(v) => Ok(vec![ctx.one(&path, v)]),
                None => Err(unknown_key(resolved, k)),
            }
        }
    }
}

/// The chain of flavors `flavor` inherits through (`prod`, `s3`, `common`).
pub(crate) fn lineage(source: &Arc<Source>, resolved: &Resolved) -> Vec<String> {
    let inherit = match resolved.rule {
        Rule::Explicit => Inherit::Explicit,
        Rule::Implicit => Inherit::Implicit,
    };
    flavors::inheritance(Arc::clone(source), inherit)
        .map(|i| i.lineage(&resolved.flavor))
        .unwrap_or_else(|_| vec![resolved.flavor.clone()])
}

fn unknown_key(resolved: &Resolved, key: &str) -> Diagnostic {
    let mut all = Vec::new();
    leaves(&resolved.config, &mut Vec::new(), &mut |p, _| {
        all.push(dotted(p))
    });
    for k in resolved.config.keys() {
        all.push(k.display());
    }
    let d = Diagnostic::error(
        "regconf::explain::unknown_key",
        format!("flavor `{}` has no key `{key}`", resolved.flavor),
    )
    .in_flavor(&resolved.flavor);
    match did_you_mean(key, all.iter().map(String::as_str)) {
        Some(near) => d.help(format!(
            "did you mean `{near}`? `regconf explain --flavor {}` lists every key",
            resolved.flavor
        )),
        None => d.help(format!(
            "`regconf explain --flavor {}` lists every key",
            resolved.flavor
        )),
    }
}

/// Calls `f` on every leaf (a value that is not a non-empty mapping).
pub(crate) fn leaves(map: &Map, path: &mut KeyPath, f: &mut dyn FnMut(&KeyPath, &Value)) {
    for (k, v) in map {
        path.push(k.clone());
        match v {
            Value::Map(m) if !m.is_empty() => leaves(m, path, f),
            _ => f(path, v),
        }
        path.pop();
    }
}

/// A value with its secrets masked (`path` is where it sits).
pub(crate) fn masked(path: &KeyPath, value: &Value) -> Value {
    match value {
        Value::Map(m) => Value::Map(
            m.iter()
                .map(|(k, v)| {
                    let mut p = path.clone();
                    p.push(k.clone());
                    (k.clone(), masked(&p, v))
                })
                .collect(),
        ),
        v if is_secret(&dotted(path)) && v.is_truthy() => Value::Str(MASK.to_owned()),
        // a URL holding a password: the password only
        Value::Str(s) if crate::model::url_password(s).is_some() => {
            let pw = crate::model::url_password(s).unwrap_or_default();
            Value::Str(s.replacen(&format!(":{pw}@"), &format!(":{MASK}@"), 1))
        }
        v => v.clone(),
    }
}

struct Ctx<'a> {
    resolved: &'a Resolved,
    source: &'a Arc<Source>,
    show_secrets: bool,
    inheritance: Option<&'a Inheritance>,
}

impl Ctx<'_> {
    fn one(&self, path: &KeyPath, value: &Value) -> Explanation {
        let key = dotted(path);
        let secret = is_secret(&key)
            || matches!(value, Value::Str(s) if crate::model::url_password(s).is_some());
        let hide = secret && !self.show_secrets;
        let origin = self
            .resolved
            .provenance
            .get(path)
            .cloned()
            .unwrap_or_default();
        let mask_text = |t: &str| {
            if hide && !t.is_empty() {
                MASK.to_owned()
            } else {
                t.to_owned()
            }
        };
        let site = |span: Span| {
            let mut site = Site::new(self.source, span);
            if hide {
                site.text = mask_line(&site.text, &self.source.text()[span.start..span.end]);
            }
            site
        };
        let written = origin.value_span.map(site);
        let variable = origin.env.as_ref().map(|e| {
            let raw = &self.source.text()[e.reference.start..e.reference.end];
            let unquoted = raw.trim().trim_matches(|c| c == '"' || c == '\'');
            let default = env::parse_ref(unquoted).and_then(|r| r.default.map(str::to_owned));
            Variable {
                name: e.name.clone(),
                given: match &e.given {
                    Given::Set(v) => Given::Set(mask_text(v)),
                    Given::Default(d) => Given::Default(mask_text(d)),
                    Given::Unset => Given::Unset,
                },
                default: default.map(|d| mask_text(&d)),
                at: site(e.reference),
            }
        });
        let typed_from = if hide {
            None
        } else {
            typed_from(&key, &origin, self.source, value)
        };
        let merges = self.merges(path, &origin);
        let section = if origin.value_span.is_some() || origin.env.is_some() {
            Some(merges.last().map_or_else(
                || {
                    if origin.implicit_common {
                        "common".to_owned()
                    } else {
                        self.resolved.flavor.clone()
                    }
                },
                |m| self.anchor_label(&m.anchor),
            ))
        } else {
            None
        };
        let overridden = if path.len() == 1 && origin.cli.is_none() {
            let implicit = self.resolved.rule == Rule::Implicit;
            flavors::definitions(
                Arc::clone(self.source),
                &self.resolved.flavor,
                &key,
                implicit,
            )
            .into_iter()
            .skip(1)
            .map(|d| (d.section, site(d.value)))
            .collect()
        } else {
            Vec::new()
        };
        Explanation {
            value: if hide {
                masked(path, value)
            } else {
                value.clone()
            },
            key,
            secret,
            cli: origin.cli.clone(),
            injected: origin.injected,
            written,
            section,
            merges,
            implicit_common: origin.implicit_common,
            variable,
            inside_variable: origin.inside_variable.clone(),
            typed_from,
            overridden,
        }
    }

    fn anchor_label(&self, anchor: &str) -> String {
        self.inheritance
            .and_then(|i| {
                i.flavors
                    .iter()
                    .find(|f| f.anchor.as_deref() == Some(anchor))
            })
            .map_or_else(|| format!("*{anchor}"), |f| f.name.clone())
    }

    /// The `<<` chain of a key, or of the nearest enclosing key that has one.
    fn merges(&self, path: &KeyPath, origin: &Origin) -> Vec<Merge> {
        let mut via = origin.via.clone();
        let mut len = path.len();
        while via.is_none() && len > 1 && origin.cli.is_none() {
            len -= 1;
            via = self
                .resolved
                .provenance
                .get(&path[..len])
                .and_then(|o| o.via.clone());
        }
        let Some(via) = via else { return Vec::new() };
        let mut from = if origin.implicit_common {
            "common".to_owned()
        } else {
            self.resolved.flavor.clone()
        };
        let mut out = Vec::new();
        for step in via.iter() {
            let anchor = step.anchor.clone().unwrap_or_default();
            out.push(Merge {
                from: from.clone(),
                anchor: anchor.clone(),
                at: Site::new(self.source, step.merge_key),
            });
            from = self.anchor_label(&anchor);
        }
        out
    }
}

/// A line of the file with the secret written at `raw` masked: the whole
/// value, or the default of an `_env:` reference.
fn mask_line(line: &str, raw: &str) -> String {
    let unquoted = raw.trim().trim_matches(|c| c == '"' || c == '\'');
    let secret = match env::parse_ref(unquoted) {
        Some(r) => r.default.unwrap_or(""),
        None => unquoted,
    };
    if secret.is_empty() || raw.contains('\n') {
        line.to_owned()
    } else {
        line.replace(secret, MASK)
    }
}

/// The text YAML 1.1 typed, when typing changed how it reads: `0755` → 493,
/// `no` → false, `1:30` → 90, a date.
fn typed_from(key: &str, origin: &Origin, source: &Source, value: &Value) -> Option<String> {
    let text = match (&origin.env, origin.value_span) {
        _ if origin.cli.is_some() => {
            let cli = origin.cli.as_deref().unwrap_or_default();
            cli.strip_prefix(&format!("--set {key}="))?.to_owned()
        }
        (Some(e), _) => match &e.given {
            Given::Unset => return None,
            g => g.text().to_owned(),
        },
        (None, Some(span)) => source.text()[span.start..span.end].to_owned(),
        (None, None) => return None,
    };
    let t = text.trim();
    let changed = match value {
        Value::Bool(_) => !matches!(t, "true" | "false"),
        Value::Int(_) | Value::BigInt(_) => render::to_json(value) != t,
        Value::Float(_) => t.contains(':') || t.contains('_'),
        Value::Null => !matches!(t, "" | "~" | "null"),
        Value::Date(_) | Value::DateTime(_) => true,
        _ => false,
    };
    changed.then(|| t.to_owned())
}
