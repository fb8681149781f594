//! Scalar conversions: strings (with YAML 1.1 surprises kept as written),
//! integers, switches, lists of strings, nested sections, and the keys
//! nothing read (kept in `extra`, reported when unknown). Each problem is
//! reported through [`Conv::report`]; nothing here decides a default.

use std::ops::RangeInclusive;

use super::keys::{ENV_ONLY, OLD_KEYS, home_section};
use super::{Conv, Sec};
use crate::config::origin::dotted;
use crate::config::resolve::did_you_mean;
use crate::config::value::{Key, Value};
use crate::diagnostics::{Diagnostic, Severity};
use crate::model;

/// How a value is shown in a message.
pub(super) fn shown(v: &Value) -> String {
    let text = match v {
        Value::Str(s) => s.clone(),
        other => crate::config::render::to_json(other),
    };
    let short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        format!("{short}...")
    } else {
        short
    }
}

pub(super) fn article(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Int(_) | Value::BigInt(_) => format!("the integer `{}`", shown(v)),
        Value::Float(_) => format!("the float `{}`", shown(v)),
        Value::Bool(_) => format!("the boolean `{}`", shown(v)),
        Value::Str(_) => format!("the string `{}`", shown(v)),
        other => {
            let t = other.type_name();
            if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
                format!("an {t}")
            } else {
                format!("a {t}")
            }
        }
    }
}

/// A value as JSON, for `extra` maps.
pub(crate) fn to_json_value(v: &Value) -> serde_json::Value {
    serde_json::from_str(&crate::config::render::to_json(v)).unwrap_or(serde_json::Value::Null)
}

impl Conv<'_> {
    pub(super) fn mismatch(
        &mut self,
        sec: &Sec<'_>,
        key: &str,
        expected: &str,
        v: &Value,
        help: &str,
    ) {
        let path = sec.path_of(key);
        self.report(
            "regconf::type::mismatch",
            Severity::Error,
            &path,
            format!("`{}` must be {expected}, not {}", dotted(&path), article(v)),
            &format!("expected {expected}"),
            help.to_owned(),
        );
    }

    /// The text as written for the value at `path` (the scalar in the file
    /// or the variable's text), if known.
    pub(super) fn written(&self, path: &[Key]) -> Option<String> {
        let o = self.prov.get(path)?;
        if let Some(e) = &o.env {
            if o.inside_variable.is_none() {
                return Some(e.given.text().trim().to_owned());
            }
            return None;
        }
        let span = o.value_span?;
        let text = self.file.text().get(span.start..span.end)?;
        Some(text.trim().to_owned())
    }

    /// A string setting. YAML 1.1 scalars typed as something else (`no`,
    /// `on`, `0755`, `1:30`) are accepted as written, with a warning.
    pub(super) fn string(&mut self, sec: &mut Sec<'_>, key: &str) -> Option<String> {
        let v = sec.get(key)?;
        match v {
            Value::Str(s) => {
                if is_placeholder(s) {
                    let path = sec.path_of(key);
                    self.report(
                        "regconf::value::placeholder",
                        Severity::Error,
                        &path,
                        format!("`{}` is the placeholder `{s}` of a sample file: docker-registry used it as the value", dotted(&path)),
                        "a placeholder",
                        "write the real value, or `_env:NAME` to read it from a variable",
                    );
                }
                Some(s.clone())
            }
            Value::Bool(_)
            | Value::Int(_)
            | Value::BigInt(_)
            | Value::Float(_)
            | Value::Date(_)
            | Value::DateTime(_) => {
                let path = sec.path_of(key);
                let written = self.written(&path).unwrap_or_else(|| shown(v));
                self.report("regconf::yaml::not_a_string",
                        Severity::Warning,
                        &path,
                        format!(
                            "`{}` is meant to be a string, but YAML 1.1 reads `{written}` as {}",
                            dotted(&path),
                            article(v)
                        ),
                        "not a string", format!(
                        "quote it (`'{written}'`); docker-registry saw {}, regconf uses the text as written",
                        article(v)
                    ));
                Some(written)
            }
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            other => {
                self.mismatch(
                    sec,
                    key,
                    "a string",
                    other,
                    "write one value, quoted if in doubt",
                );
                None
            }
        }
    }

    /// An integer setting; `lenient` accepts a string of digits, as
    /// `int(value)` did.
    pub(super) fn int(&mut self, sec: &mut Sec<'_>, key: &str, lenient: bool) -> Option<i64> {
        let v = sec.get(key)?;
        match v {
            Value::Int(i) => return Some(*i),
            Value::Str(s) if lenient => {
                if let Ok(i) = s.trim().parse::<i64>() {
                    return Some(i);
                }
            }
            _ => {}
        }
        self.mismatch(sec, key, "an integer", v, "write a whole number, unquoted");
        None
    }

    /// A whole number in `range` (a string of digits too, as `int(value)`
    /// read it). Out of the range, however large, is a `code` diagnostic
    /// that gives the range; `default` is named in the help when there is one.
    pub(super) fn ranged(
        &mut self,
        sec: &mut Sec<'_>,
        key: &str,
        range: RangeInclusive<u64>,
        default: Option<u64>,
    ) -> Option<u64> {
        self.ranged_as(sec, key, range, default, "regconf::value::range")
    }

    /// A TCP port (0 to 65535; a string of digits too).
    pub(super) fn port(&mut self, sec: &mut Sec<'_>, key: &str) -> Option<i64> {
        self.ranged(sec, key, 0..=65535, None)
            .and_then(|p| i64::try_from(p).ok())
    }

    /// [`Conv::ranged`] with the diagnostic code `code`.
    pub(super) fn ranged_as(
        &mut self,
        sec: &mut Sec<'_>,
        key: &str,
        range: RangeInclusive<u64>,
        default: Option<u64>,
        code: &'static str,
    ) -> Option<u64> {
        let v = sec.get(key)?;
        let written = match v {
            Value::Int(i) => i.to_string(),
            Value::BigInt(i) => i.to_string(),
            Value::Str(s) if is_whole_number(s.trim()) => s.trim().to_owned(),
            _ => {
                self.mismatch(sec, key, "an integer", v, "write a whole number, unquoted");
                return None;
            }
        };
        if let Ok(n) = written.trim_start_matches('+').parse::<u64>()
            && range.contains(&n)
        {
            return Some(n);
        }
        let path = sec.path_of(key);
        let help = match default {
            Some(d) => format!(
                "write a number from {} to {}, or leave it out for the default, {d}",
                range.start(),
                range.end()
            ),
            None => format!("write a number from {} to {}", range.start(), range.end()),
        };
        self.report(
            code,
            Severity::Error,
            &path,
            format!(
                "`{}` must be from {} to {}, not `{}`",
                dotted(&path),
                range.start(),
                range.end(),
                shown(v)
            ),
            "out of range",
            help,
        );
        None
    }

    /// An integer Python also took as a boolean (`True` is 1), as boto's
    /// `debug` level did.
    pub(super) fn int_or_bool(&mut self, sec: &mut Sec<'_>, key: &str) -> Option<i64> {
        match sec.get(key)? {
            Value::Bool(b) => Some(i64::from(*b)),
            _ => self.int(sec, key, true),
        }
    }

    /// A version number as python-swiftclient compared it: `2`, `2.0`,
    /// `'2'` or `'2.0'` are the same version.
    pub(super) fn version(&mut self, sec: &mut Sec<'_>, key: &str) -> Option<i64> {
        let v = sec.get(key)?;
        let number = match v {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if n.fract() == 0.0 && (0.0..=9.0).contains(&n) => Some(n as i64),
            _ => {
                self.mismatch(sec, key, "a version number", v, "write `1`, `2` or `3`");
                None
            }
        }
    }

    /// A switch docker-registry tested with `is True`: anything but `true`
    /// is off, which is what the user meant only when the value reads as
    /// off (`0`, `'false'`).
    pub(super) fn exactly_true(&mut self, sec: &mut Sec<'_>, key: &str) -> Option<bool> {
        self.identity_switch(sec, key, true)
    }

    /// [`Conv::exactly_true`]; `off_as_meant` is false for a switch also
    /// tested for truthiness elsewhere (`standalone`), where `'false'` is
    /// on as well as off.
    pub(super) fn identity_switch(
        &mut self,
        sec: &mut Sec<'_>,
        key: &str,
        off_as_meant: bool,
    ) -> Option<bool> {
        let v = sec.get(key)?;
        if let Value::Bool(b) = v {
            return Some(*b);
        }
        if off_as_meant && reads_as_off(v) {
            return Some(false);
        }
        let path = sec.path_of(key);
        self.report("regconf::type::not_exactly_true",
                Severity::Error,
                &path,
                format!(
                    "`{}` must be `true` or `false`, not {}: docker-registry tested `is True`, so this is off",
                    dotted(&path),
                    article(v)
                ),
                "not a boolean", "write `true` or `false`, unquoted");
        Some(false)
    }

    /// A switch docker-registry tested for truthiness: numbers and the
    /// empty string are used as meant (`0` off); any other string is on, an
    /// error when it reads as off (`'false'`), a warning otherwise.
    pub(super) fn truthy(&mut self, sec: &mut Sec<'_>, key: &str) -> Option<bool> {
        let v = sec.get(key)?;
        match v {
            Value::Bool(b) => return Some(*b),
            Value::Int(_) | Value::BigInt(_) | Value::Float(_) => return Some(v.is_truthy()),
            // an empty string is off, as meant
            Value::Str(s) if s.is_empty() => return Some(false),
            _ => {}
        }
        let path = sec.path_of(key);
        let on = if v.is_truthy() { "on" } else { "off" };
        let severity = if matches!(v, Value::Str(_)) && !reads_as_off(v) {
            Severity::Warning
        } else {
            Severity::Error
        };
        self.report(
            "regconf::type::not_boolean",
            severity,
            &path,
            format!(
                "`{}` must be `true` or `false`, not {}, which docker-registry took as {on}",
                dotted(&path),
                article(v)
            ),
            "not a boolean",
            "write `true` or `false`, unquoted (the string `\"false\"` is on)",
        );
        Some(v.is_truthy())
    }

    /// One string or a list of strings.
    pub(super) fn strings(&mut self, sec: &mut Sec<'_>, key: &str) -> Vec<String> {
        let Some(v) = sec.get(key) else {
            return Vec::new();
        };
        match v {
            Value::Str(s) => vec![s.clone()],
            Value::Seq(items) if items.iter().all(|i| matches!(i, Value::Str(_))) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            other => {
                self.mismatch(
                    sec,
                    key,
                    "a string or a list of strings",
                    other,
                    "write `value` or `[a, b]`",
                );
                Vec::new()
            }
        }
    }

    /// A nested section: a mapping, or absent.
    pub(super) fn section<'m>(&mut self, sec: &mut Sec<'m>, key: &str) -> Sec<'m> {
        let path = sec.path_of(key);
        match sec.get(key) {
            None => Sec::new(None, path),
            Some(Value::Map(m)) => Sec::new(Some(m), path),
            Some(other) => {
                self.mismatch(
                    sec,
                    key,
                    "a mapping",
                    other,
                    "indent the settings under the key",
                );
                Sec::new(None, path)
            }
        }
    }

    /// Keys of `sec` nothing read: kept in `extra`; those in no table are
    /// reported.
    pub(super) fn rest(&mut self, sec: &Sec<'_>, known: &[&str], silent: &[&str]) -> model::Extra {
        let mut extra = model::Extra::new();
        let Some(map) = sec.map else {
            return extra;
        };
        for (i, (k, v)) in map.iter().enumerate() {
            if sec.was_read(i) {
                continue;
            }
            let name = k.display();
            extra.insert(name.clone(), to_json_value(v));
            if k.as_str()
                .is_some_and(|s| silent.contains(&s) || known.contains(&s))
            {
                continue;
            }
            let mut path = sec.path.clone();
            path.push(k.clone());
            if sec.path.is_empty() && self.old_or_misplaced(&path, &name) {
                continue;
            }
            let near = did_you_mean(&name, known.iter().chain(silent).copied());
            let (origin, via) = self.origin(&path);
            let mut d = Diagnostic::warning(
                "regconf::key::unknown",
                format!(
                    "unknown key `{}` in flavor `{}`",
                    dotted(&path),
                    self.flavor
                ),
            )
            .with_source(self.file)
            .in_flavor(self.flavor)
            .at_key(dotted(&path));
            let label = near.map_or_else(
                || "not a setting".to_owned(),
                |n| format!("did you mean `{n}`?"),
            );
            if let Some(span) =
                origin.and_then(|o| o.key_span.or(o.env.as_ref().map(|e| e.reference)))
            {
                d = d.label(span, label);
            }
            d = self.inherited(d, via);
            // With a plugin driver, an unknown top-level key is most likely
            // one of its settings: a note, not a warning.
            if let Some(plugin) = self.plugin.clone().filter(|_| sec.path.is_empty()) {
                d.severity = Severity::Advice;
                d.message.push_str(&format!(
                    ", perhaps a setting of the `{plugin}` plugin driver"
                ));
                self.push(d.help(format!(
                    "regconf does not know the settings of `{plugin}`; docker-registry handed the plugin the whole flavor"
                )));
                continue;
            }
            d = match near {
                Some(n) => d.help(format!(
                    "did you mean `{n}`? docker-registry ignored unknown keys"
                )),
                None => {
                    d.help("docker-registry ignored unknown keys; remove it or check the spelling")
                }
            };
            self.push(d);
        }
        extra
    }
}

impl Conv<'_> {
    /// A top-level key of an older version, of the environment, or of a
    /// section: reported (a note, or a warning with the fix), and `true`.
    fn old_or_misplaced(&mut self, path: &[Key], name: &str) -> bool {
        if let Some((_, what)) = OLD_KEYS.iter().find(|(k, _)| *k == name) {
            self.report(
                "regconf::key::old_version",
                Severity::Advice,
                path,
                format!("`{name}` is a key of an older docker-registry"),
                "ignored by 0.9.1",
                format!("{what}; remove it once no older version reads this file"),
            );
            return true;
        }
        if ENV_ONLY.contains(&name.to_ascii_lowercase().as_str()) {
            let var = name.to_ascii_uppercase();
            self.report(
                "regconf::key::environment_only",
                Severity::Warning,
                path,
                format!("`{name}` has no effect here: docker-registry read `{var}` only from the environment"),
                "not read from the file",
                format!("set the variable instead: `{var}=...` in the registry's environment"),
            );
            return true;
        }
        if let Some(section) = home_section(name) {
            self.report(
                "regconf::key::misplaced",
                Severity::Warning,
                path,
                format!("`{name}` belongs under `{section}:`; at the top level no version of docker-registry read it"),
                "not read here",
                format!("indent it under `{section}:`, where docker-registry read it"),
            );
            return true;
        }
        false
    }
}

/// Whether `s` is a sample file's placeholder (`REPLACEME`), left unfilled.
fn is_placeholder(s: &str) -> bool {
    let s = s.trim();
    ["REPLACEME", "REPLACE_ME", "CHANGEME", "CHANGE_ME"]
        .iter()
        .any(|p| s.eq_ignore_ascii_case(p))
}

/// Whether a value that is not a boolean reads as off to a person: zero,
/// or a string such as `false`, `no`, `off` or `0`.
fn reads_as_off(v: &Value) -> bool {
    match v {
        Value::Int(i) => *i == 0,
        Value::Float(f) => *f == 0.0,
        Value::Str(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "false" | "no" | "off" | "0" | "n" | "none" | "null" | ""
        ),
        _ => false,
    }
}

/// Whether `s` is an optionally signed run of decimal digits.
fn is_whole_number(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}
