//! `--set KEY=VALUE`: command-line overrides, applied after the flavor is
//! resolved.
//!
//! Input: a [`Resolved`] flavor and the overrides in command-line order.
//! Output: the same flavor with each override layered on top, and each
//! overridden value recorded in the [`Provenance`](super::Provenance) as
//! coming from the command line ([`Origin::cli`]).
//!
//! The value is typed as docker-registry typed a variable's text, YAML 1.1
//! (`--set debug=yes` is the boolean `true`, `--set cache.port=0755` the
//! integer 493, `--set 'cors.origins=[a, b]'` a list). Keys are dotted paths
//! into nested sections (`cache.host`).
//!
//! ## Rationale
//!
//! The layering is figment's: the resolved flavor is a [`figment::Provider`]
//! ([`FlavorProvider`]), each override a `Serialized::global` provider merged
//! over it, so a mapping given to `--set` is merged key by key into the
//! section it names (figment's `merge`), and a later `--set` of the same key
//! wins. Only the paths that an override names are read back from figment;
//! everything else keeps the resolver's own values (figment has no dates,
//! binary values, big integers or non-string keys), so a render without
//! `--set` is untouched and one with `--set` differs only where asked.

use figment::value::{Dict, Empty, Num, Tag, Value as FValue};
use figment::{Figment, Metadata, Profile, Provider, providers::Serialized};

use super::construct::Builder;
use super::origin::{KeyPath, Origin};
use super::parse;
use super::resolve::Resolved;
use super::source::Source;
use super::value::{Key, Map, Value, at_path};
use crate::diagnostics::Diagnostic;

/// One `--set KEY=VALUE`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Override {
    /// The dotted key as given (`cache.host`).
    pub key: String,
    /// The text after `=`, as given.
    pub text: String,
    /// The text typed the YAML 1.1 way.
    pub value: Value,
}

impl Override {
    /// The key path.
    pub(crate) fn path(&self) -> KeyPath {
        self.key.split('.').map(Key::from).collect()
    }

    /// How the override is named in output: `--set cache.host=redis`.
    pub(crate) fn shown(&self) -> String {
        format!("--set {}={}", self.key, self.text)
    }
}

fn bad_set(message: String) -> Diagnostic {
    Diagnostic::error("regconf::cli::bad_set", message).help(
        "write `--set KEY=VALUE` with a dotted key (`--set cache.host=redis`); the value is typed as YAML (`--set debug=true`)",
    )
}

/// Parses one `KEY=VALUE` argument.
pub(crate) fn parse(arg: &str) -> Result<Override, Diagnostic> {
    let Some((key, text)) = arg.split_once('=') else {
        return Err(bad_set(format!("`--set {arg}` has no `=`")));
    };
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(bad_set(format!(
            "`--set {arg}` does not name a key: `{key}` has an empty part"
        )));
    }
    let source = Source::new(format!("--set {key}"), text);
    let doc = parse::parse(source).map_err(|e| {
        let detail = match e {
            parse::ParseError::Syntax { message, .. } => message,
            _ => "it is not one YAML value".to_owned(),
        };
        bad_set(format!(
            "the value of `--set {key}` is not valid YAML: {detail}"
        ))
    })?;
    let value = match &doc.root {
        None => Value::Null,
        Some(root) => Builder::new().value(root).map_err(|e| {
            bad_set(format!(
                "the value of `--set {key}` is not valid YAML: {}",
                e.message
            ))
        })?,
    };
    Ok(Override {
        key: key.to_owned(),
        text: text.to_owned(),
        value,
    })
}

/// Parses every `--set` argument, reporting each bad one.
pub(crate) fn parse_all(args: &[String]) -> Result<Vec<Override>, Vec<Diagnostic>> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for a in args {
        match parse(a) {
            Ok(o) => out.push(o),
            Err(d) => bad.push(d),
        }
    }
    if bad.is_empty() { Ok(out) } else { Err(bad) }
}

/// A resolved flavor as a figment provider (the base layer).
pub(crate) struct FlavorProvider<'a> {
    /// The flavor's name, for figment's metadata.
    pub flavor: &'a str,
    /// Its values.
    pub config: &'a Map,
}

impl Provider for FlavorProvider<'_> {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("flavor `{}`", self.flavor))
    }

    fn data(&self) -> Result<figment::value::Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(to_dict(self.config)))
    }
}

fn to_dict(map: &Map) -> Dict {
    map.iter()
        .map(|(k, v)| (k.display(), to_figment(v)))
        .collect()
}

/// A value as figment holds it (dates, binary values and big integers as
/// their text).
fn to_figment(v: &Value) -> FValue {
    let t = Tag::Default;
    match v {
        Value::Null => FValue::Empty(t, Empty::None),
        Value::Bool(b) => FValue::Bool(t, *b),
        Value::Int(i) => FValue::Num(t, Num::I64(*i)),
        Value::Float(f) => FValue::Num(t, Num::F64(*f)),
        Value::Str(s) => FValue::String(t, s.clone()),
        Value::Seq(items) => FValue::Array(t, items.iter().map(to_figment).collect()),
        Value::Set(keys) => {
            FValue::Array(t, keys.iter().map(|k| to_figment(&k.to_value())).collect())
        }
        Value::Map(m) => FValue::Dict(t, to_dict(m)),
        other => FValue::String(
            t,
            super::render::to_json(other).trim_matches('"').to_owned(),
        ),
    }
}

/// A figment value back as a resolver value; `like` is the value it
/// replaces, whose order and exact types are kept where figment agrees.
fn from_figment(v: &FValue, like: Option<&Value>) -> Value {
    if let Some(old) = like
        && to_figment(old) == *v
    {
        return old.clone();
    }
    match v {
        FValue::Empty(..) => Value::Null,
        FValue::Bool(_, b) => Value::Bool(*b),
        FValue::String(_, s) => Value::Str(s.clone()),
        FValue::Char(_, c) => Value::Str(c.to_string()),
        FValue::Num(_, n) => match n.to_i128().and_then(|i| i64::try_from(i).ok()) {
            Some(i) if !matches!(n, Num::F32(_) | Num::F64(_)) => Value::Int(i),
            _ => Value::Float(n.to_f64().unwrap_or(f64::NAN)),
        },
        FValue::Array(_, items) => {
            Value::Seq(items.iter().map(|i| from_figment(i, None)).collect())
        }
        FValue::Dict(_, d) => {
            let old = like.and_then(Value::as_map);
            let mut out = Map::default();
            // Keys the section already had keep their place.
            if let Some(old) = old {
                for (k, ov) in old {
                    if let Some(nv) = d.get(&k.display()) {
                        out.insert(k.clone(), from_figment(nv, Some(ov)));
                    }
                }
            }
            for (k, nv) in d {
                let key = Key::from(k.as_str());
                if !out.contains_key(&key)
                    && old.is_none_or(|o| !o.keys().any(|ok| ok.display() == *k))
                {
                    out.insert(key, from_figment(nv, None));
                }
            }
            Value::Map(out)
        }
    }
}

fn insert(map: &mut Map, path: &[Key], value: Value) {
    let (first, rest) = path.split_first().expect("a key path is never empty");
    if rest.is_empty() {
        map.insert(first.clone(), value);
        return;
    }
    let slot = map
        .entry(first.clone())
        .or_insert_with(|| Value::Map(Map::default()));
    if !matches!(slot, Value::Map(_)) {
        *slot = Value::Map(Map::default());
    }
    if let Value::Map(inner) = slot {
        insert(inner, rest, value);
    }
}

/// Applies `overrides` to a resolved flavor, in order (a later one wins).
pub(crate) fn apply(
    resolved: &mut Resolved,
    overrides: &[Override],
) -> Result<(), Vec<Diagnostic>> {
    if overrides.is_empty() {
        return Ok(());
    }
    let mut figment = Figment::from(FlavorProvider {
        flavor: &resolved.flavor,
        config: &resolved.config,
    });
    for o in overrides {
        figment = figment.merge(Serialized::global(&o.key, to_figment(&o.value)));
    }
    let mut problems = Vec::new();
    // The last override of a path decides; each path is read back once.
    let mut done: Vec<&str> = Vec::new();
    for o in overrides.iter().rev() {
        if done.contains(&o.key.as_str()) {
            continue;
        }
        done.push(&o.key);
        let path = o.path();
        let merged = match figment.find_value(&o.key) {
            Ok(v) => v,
            Err(e) => {
                problems.push(bad_set(format!(
                    "cannot apply `{}`: {}",
                    o.shown(),
                    e.to_string().to_lowercase()
                )));
                continue;
            }
        };
        let old = at_path(&resolved.config, &path).cloned();
        let value = from_figment(&merged, old.as_ref());
        let origin = Origin {
            cli: Some(o.shown()),
            ..Origin::default()
        };
        record(resolved, &path, &value, old.as_ref(), &origin);
        insert(&mut resolved.config, &path, value);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Records the command line as the origin of every value an override
/// changed (keys of a mapping that it left as they were keep their origin).
fn record(
    resolved: &mut Resolved,
    path: &KeyPath,
    value: &Value,
    old: Option<&Value>,
    origin: &Origin,
) {
    match (value, old.and_then(Value::as_map)) {
        (Value::Map(m), Some(old_map)) => {
            for (k, v) in m {
                let before = old_map.get(k);
                if before != Some(v) {
                    let mut p = path.clone();
                    p.push(k.clone());
                    record(resolved, &p, v, before, origin);
                }
            }
        }
        (Value::Map(m), None) => {
            resolved.provenance.remove_under(path);
            resolved.provenance.insert(path.clone(), origin.clone());
            for (k, v) in m {
                let mut p = path.clone();
                p.push(k.clone());
                record(resolved, &p, v, None, origin);
            }
        }
        _ => {
            resolved.provenance.remove_under(path);
            resolved.provenance.insert(path.clone(), origin.clone());
        }
    }
}
