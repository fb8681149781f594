//! The last stage: a resolved configuration as text.
//!
//! JSON is canonical, as the contract defines it: keys sorted, `,`/`:`
//! separators, integers and floats kept apart (`1000` vs `1000.0`, floats
//! written as Python's `repr` wrote them), timestamps as ISO 8601, non-string
//! keys written JSON-style, bytes as UTF-8 text or `base64:…`.
//!
//! YAML is block style and reads back under YAML 1.1 to the same values:
//! every string that a YAML 1.1 reader would type as something else (`yes`,
//! `0755`, `1:30`, `2001-12-14`, `~`) is quoted.
//!
//! Nothing here changes a value; rendering is the only thing it does.

use std::fmt::Write as _;

use base64::Engine;

use super::value::{Key, Map, Value};
use super::yaml11::{self, Implicit};

/// A float as Python's `repr` writes it (`1000.0`, `1e+16`, `1.5e-05`).
pub(crate) fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` has an exponent");
    let exp: i32 = exp.parse().expect("integer exponent");
    let (sign, mantissa) = mantissa
        .strip_prefix('-')
        .map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let point = exp as usize + 1;
            let (int, frac) = if digits.len() > point {
                (digits[..point].to_owned(), digits[point..].to_owned())
            } else {
                (format!("{digits:0<point$}"), "0".to_owned())
            };
            format!("{sign}{int}.{frac}")
        } else {
            let zeros = "0".repeat((-exp - 1) as usize);
            format!("{sign}0.{zeros}{digits}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{rest}e{esign}{:02}", exp.abs())
    }
}

fn json_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        python_float(f)
    }
}

fn bytes_text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(b)
        ),
    }
}

fn iso_datetime(d: &chrono::NaiveDateTime) -> String {
    use chrono::Timelike;
    let base = d.format("%Y-%m-%dT%H:%M:%S").to_string();
    match d.nanosecond() / 1000 {
        0 => base,
        micro => format!("{base}.{micro:06}"),
    }
}

/// A key as JSON writes it: strings as they are, others JSON-style.
pub(crate) fn json_key(key: &Key) -> String {
    match key {
        Key::Null => "null".to_owned(),
        Key::Bool(b) => b.to_string(),
        Key::Int(i) => i.to_string(),
        Key::BigInt(i) => i.to_string(),
        Key::Float(bits) => json_float(f64::from_bits(*bits)),
        Key::Str(s) => s.clone(),
        Key::Bytes(b) => bytes_text(b),
        Key::Date(d) => d.format("%Y-%m-%d").to_string(),
        Key::DateTime(d) => iso_datetime(d),
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).expect("strings serialize"));
}

fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::BigInt(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&json_float(*f)),
        Value::Str(s) => json_string(s, out),
        Value::Bytes(b) => json_string(&bytes_text(b), out),
        Value::Date(d) => json_string(&d.format("%Y-%m-%d").to_string(), out),
        Value::DateTime(d) => json_string(&iso_datetime(d), out),
        Value::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Set(keys) => {
            let mut items: Vec<Value> = keys.iter().map(Key::to_value).collect();
            items.sort_by(|a, b| match (a, b) {
                (Value::Str(x), Value::Str(y)) => x.cmp(y),
                _ => to_json(a).cmp(&to_json(b)),
            });
            write_json(&Value::Seq(items), out);
        }
        Value::Map(map) => write_json_map(map, out),
    }
}

fn write_json_map(map: &Map, out: &mut String) {
    // Keys that render alike (`1` and "1") collapse, the later one winning,
    // as they did in the reference's dict.
    let mut entries: indexmap::IndexMap<String, &Value> = indexmap::IndexMap::new();
    for (k, v) in map {
        let key = json_key(k);
        entries.shift_remove(&key);
        entries.insert(key, v);
    }
    entries.sort_keys();
    out.push('{');
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(k, out);
        out.push(':');
        write_json(v, out);
    }
    out.push('}');
}

/// A value as canonical JSON (no trailing newline).
pub fn to_json(value: &Value) -> String {
    let mut out = String::new();
    write_json(value, &mut out);
    out
}

/// A mapping as canonical JSON (no trailing newline).
pub fn map_to_json(map: &Map) -> String {
    let mut out = String::new();
    write_json_map(map, &mut out);
    out
}

/// Whether a string can be written plain and still read back as the same
/// string under YAML 1.1.
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    (first.is_alphanumeric() || "_/.$(".contains(first))
        && s.chars()
            .all(|c| c.is_alphanumeric() || "_-./+@$()=~:, ".contains(c))
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(", ")
        && yaml11::resolve_plain(s) == Implicit::Str
        // numbers in YAML 1.2 (`1e3`) are quoted too, for other readers
        && s.parse::<f64>().is_err()
}

/// A string as a YAML scalar that reads back as the same string under YAML
/// 1.1 (plain when it can be, double-quoted otherwise).
pub(crate) fn yaml_string(s: &str) -> String {
    if plain_ok(s) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn yaml_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.to_owned();
    }
    let s = python_float(f);
    // YAML 1.1 needs a `.` in every float: `1e+16` would read as a string.
    match s.split_once('e') {
        Some((m, e)) if !m.contains('.') => format!("{m}.0e{e}"),
        _ => s,
    }
}

fn yaml_scalar(value: &Value) -> Option<String> {
    Some(match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(i) => i.to_string(),
        Value::Float(f) => yaml_float(*f),
        Value::Str(s) => yaml_string(s),
        Value::Bytes(b) => format!(
            "!!binary \"{}\"",
            base64::engine::general_purpose::STANDARD.encode(b)
        ),
        Value::Date(d) => d.format("%Y-%m-%d").to_string(),
        Value::DateTime(d) => {
            use chrono::Timelike;
            let base = d.format("%Y-%m-%d %H:%M:%S").to_string();
            match d.nanosecond() / 1000 {
                0 => base,
                micro => format!("{base}.{micro:06}"),
            }
        }
        Value::Seq(v) if v.is_empty() => "[]".to_owned(),
        Value::Map(m) if m.is_empty() => "{}".to_owned(),
        Value::Set(s) if s.is_empty() => "!!set {}".to_owned(),
        Value::Seq(_) | Value::Map(_) | Value::Set(_) => return None,
    })
}

fn yaml_key(key: &Key) -> String {
    match key {
        Key::Null => "~".to_owned(),
        other => yaml_scalar(&other.to_value()).expect("keys are scalars"),
    }
}

fn write_yaml(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Map(map) => {
            for (k, v) in map {
                let _ = write!(out, "{pad}{}:", yaml_key(k));
                write_yaml_child(v, indent, out);
            }
        }
        Value::Set(keys) => {
            for k in keys {
                let _ = writeln!(out, "{pad}{}: null", yaml_key(k));
            }
        }
        Value::Seq(items) => {
            for item in items {
                let _ = write!(out, "{pad}-");
                write_yaml_child(item, indent, out);
            }
        }
        scalar => {
            let _ = writeln!(out, "{pad}{}", yaml_scalar(scalar).unwrap_or_default());
        }
    }
}

fn write_yaml_child(value: &Value, indent: usize, out: &mut String) {
    match yaml_scalar(value) {
        Some(s) => {
            let _ = writeln!(out, " {s}");
        }
        None => {
            if matches!(value, Value::Set(_)) {
                out.push_str(" !!set");
            }
            out.push('\n');
            write_yaml(value, indent + 2, out);
        }
    }
}

/// A mapping as block YAML that YAML 1.1 reads back to the same values.
pub fn map_to_yaml(map: &Map) -> String {
    if map.is_empty() {
        return "{}\n".to_owned();
    }
    let mut out = String::new();
    write_yaml(&Value::Map(map.clone()), 0, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_python_repr() {
        assert_eq!(python_float(1000.0), "1000.0");
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(python_float(1.5e-5), "1.5e-05");
        assert_eq!(python_float(0.0001), "0.0001");
        assert_eq!(python_float(-0.0), "-0.0");
        assert_eq!(python_float(685_230.15), "685230.15");
        assert_eq!(
            python_float(1.234_567_890_123_456_8e17),
            "1.2345678901234568e+17"
        );
        assert_eq!(yaml_float(1e16), "1.0e+16");
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        for s in [
            "yes",
            "0755",
            "1:30",
            "2001-12-14",
            "~",
            "",
            "null",
            "<<",
            "=",
            "a: b",
            "1e+3",
        ] {
            assert!(yaml_string(s).starts_with('"'), "{s}");
        }
        assert_eq!(yaml_string("info"), "info");
        assert_eq!(yaml_string("/tmp/registry"), "/tmp/registry");
        assert_eq!(yaml_string("1e3"), "\"1e3\"");
    }
}
