//! Stage 3 helpers: the environment snapshot and `_env:` references.
//!
//! The environment is read once, at start, into an [`Env`]; the core never
//! reads the process environment itself, so tests hand it their own and
//! nothing changes between two reads of one variable. This module only parses
//! `_env:NAME[:DEFAULT]`, looks the variable up, and recognises a reference
//! whose prefix was forgotten (`_AWS_BUCKET`); typing the text is the
//! YAML stage's work and walking the configuration is `resolve`'s.

use std::collections::BTreeMap;

/// A snapshot of environment variables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl Env {
    /// An empty environment.
    pub fn new() -> Env {
        Env::default()
    }

    /// The process environment, read once. Variables whose name or value is
    /// not UTF-8 are left out.
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// Sets a variable (builder style).
    #[must_use]
    pub fn with(mut self, name: &str, value: &str) -> Env {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Sets a variable.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), value.into());
    }

    /// A variable's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// `path` with `~` and `$VAR`/`${VAR}` expanded from this snapshot (`~`
    /// is its `HOME`), as `serve` opens it; a path naming an unset
    /// variable is used as written.
    pub(crate) fn expand_path(&self, path: &str) -> String {
        let lookup = |name: &str| Ok::<_, std::convert::Infallible>(self.get(name));
        shellexpand::full_with_context(path, || self.get("HOME"), lookup)
            .map_or_else(|_| path.to_owned(), std::borrow::Cow::into_owned)
    }

    /// The first variable `path` names (`$NAME`, `${NAME}`) that is not set
    /// in this snapshot, if any.
    pub(crate) fn unset_in_path(&self, path: &str) -> Option<String> {
        let lookup = |name: &str| self.get(name).map(Some).ok_or(());
        shellexpand::full_with_context(path, || self.get("HOME"), lookup)
            .err()
            .map(|e| e.var_name)
    }

    /// All variables, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl FromIterator<(String, String)> for Env {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Env {
        Env {
            vars: iter.into_iter().collect(),
        }
    }
}

/// A parsed `_env:NAME[:DEFAULT]` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvRef<'a> {
    /// The variable's name (may be empty, may contain spaces).
    pub name: &'a str,
    /// Everything after the second `:`, colons included; `None` when the
    /// string has no second `:`.
    pub default: Option<&'a str>,
}

/// Parses a string value that starts with `_env:` (case-sensitive, at
/// offset 0), splitting on the first two `:` as docker-registry did.
pub(crate) fn parse_ref(s: &str) -> Option<EnvRef<'_>> {
    let rest = s.strip_prefix("_env:")?;
    Some(match rest.split_once(':') {
        Some((name, default)) => EnvRef {
            name,
            default: Some(default),
        },
        None => EnvRef {
            name: rest,
            default: None,
        },
    })
}

/// Where the text of an `_env:` value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Given {
    /// The variable was set (to this text, possibly empty).
    Set(String),
    /// The variable was unset and the default applied.
    Default(String),
    /// The variable was unset and there was no default (the value is null).
    Unset,
}

impl Given {
    /// The text that is YAML-typed: the value, the default, or nothing.
    pub fn text(&self) -> &str {
        match self {
            Given::Set(s) | Given::Default(s) => s,
            Given::Unset => "",
        }
    }
}

/// Looks an `_env:` reference up in `env`.
pub(crate) fn lookup(r: &EnvRef<'_>, env: &Env) -> Given {
    match env.get(r.name) {
        Some(v) => Given::Set(v.to_owned()),
        None => match r.default {
            Some(d) => Given::Default(d.to_owned()),
            None => Given::Unset,
        },
    }
}

/// The `_env:` reference a value surely meant, if it looks like one with
/// the prefix forgotten or misspelt: `_AWS_BUCKET` (a `_` and capitals),
/// `env:AWS_BUCKET`, `_ENV:AWS_BUCKET`.
pub(crate) fn meant_reference(text: &str) -> Option<String> {
    let (rest, capitals_only) = if let Some(r) = ["env:", "ENV:", "_ENV:", "Env:", "_Env:"]
        .iter()
        .find_map(|p| text.strip_prefix(p))
    {
        (r, false)
    } else {
        (text.strip_prefix('_')?, true)
    };
    let (name, default) = match rest.split_once(':') {
        Some((n, d)) => (n, Some(d)),
        None => (rest, None),
    };
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !starts_well || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    // `_NAME` is taken for a forgotten prefix only in capitals, as
    // variables are written
    if capitals_only
        && (name.len() < 3
            || !name.starts_with(|c: char| c.is_ascii_uppercase())
            || !name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
    {
        return None;
    }
    Some(match default {
        Some(d) => format!("_env:{name}:{d}"),
        None => format!("_env:{name}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_the_first_two_colons() {
        let r = parse_ref("_env:DB:sqlite:////tmp/x.db").unwrap();
        assert_eq!(r.name, "DB");
        assert_eq!(r.default, Some("sqlite:////tmp/x.db"));
        assert_eq!(parse_ref("_env::x").unwrap().name, "");
        assert_eq!(parse_ref("_env:A").unwrap().default, None);
        assert_eq!(parse_ref("_ENV:A"), None);
        assert_eq!(parse_ref(" _env:A"), None);
    }

    #[test]
    fn set_but_empty_is_not_the_default() {
        let env = Env::new().with("A", "");
        let r = parse_ref("_env:A:dflt").unwrap();
        assert_eq!(lookup(&r, &env), Given::Set(String::new()));
        assert_eq!(lookup(&r, &Env::new()), Given::Default("dflt".into()));
    }

    #[test]
    fn a_forgotten_prefix_is_recognised() {
        use super::meant_reference as m;
        assert_eq!(m("_AWS_BUCKET").as_deref(), Some("_env:AWS_BUCKET"));
        assert_eq!(
            m("_AWS_BUCKET:images").as_deref(),
            Some("_env:AWS_BUCKET:images")
        );
        assert_eq!(m("env:AWS_BUCKET").as_deref(), Some("_env:AWS_BUCKET"));
        assert_eq!(m("_ENV:loglevel").as_deref(), Some("_env:loglevel"));
        for meant_as_text in [
            "_env:AWS_BUCKET",
            "_private",
            "_A",
            "_x_Y",
            "plain",
            "_AWS BUCKET",
            "_",
        ] {
            assert_eq!(m(meant_as_text), None, "{meant_as_text}");
        }
    }
}
