//! YAML 1.1 scalar typing, as PyYAML 3.11 did it for docker-registry.
//!
//! The parser hands over scalars as text with their style and tag; this
//! module decides what a scalar *is*: `yes` a boolean, `0755` the integer 493,
//! `1:30` the integer 90, `1e3` a string (a float needs a `.`), `2001-12-14` a
//! date. The patterns are PyYAML's implicit resolvers, tried in PyYAML's order
//! after dispatching on the first character. Quoted and block scalars are
//! always strings unless an explicit tag says otherwise.
//!
//! It must not know about files, flavors or `_env:`: the same typing applies to
//! the file and to every variable's value.

use std::sync::LazyLock;

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use num_bigint::BigInt;
use regex::Regex;

use super::value::Value;

/// The tag a plain scalar resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Implicit {
    /// `tag:yaml.org,2002:null`
    Null,
    /// `tag:yaml.org,2002:bool`
    Bool,
    /// `tag:yaml.org,2002:int`
    Int,
    /// `tag:yaml.org,2002:float`
    Float,
    /// `tag:yaml.org,2002:timestamp`
    Timestamp,
    /// `tag:yaml.org,2002:merge` (`<<`)
    Merge,
    /// `tag:yaml.org,2002:value` (`=`), which has no constructor
    ValueTag,
    /// `tag:yaml.org,2002:str`
    Str,
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static pattern")
}

static BOOL: LazyLock<Regex> = LazyLock::new(|| {
    re("^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
});
static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
    )
});
static INT: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
    )
});
static NULL: LazyLock<Regex> = LazyLock::new(|| re("^(?:~|null|Null|NULL|)$"));
static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
    )
});
static TIMESTAMP_PARTS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?P<year>[0-9][0-9][0-9][0-9])-(?P<month>[0-9][0-9]?)-(?P<day>[0-9][0-9]?)(?:(?:[Tt]|[ \t]+)(?P<hour>[0-9][0-9]?):(?P<minute>[0-9][0-9]):(?P<second>[0-9][0-9])(?:\.(?P<fraction>[0-9]*))?(?:[ \t]*(?P<tz>Z|(?P<tz_sign>[-+])(?P<tz_hour>[0-9][0-9]?)(?::(?P<tz_minute>[0-9][0-9]))?))?)?$",
    )
});

/// Resolves the tag of a plain (unquoted, untagged) scalar.
pub(crate) fn resolve_plain(text: &str) -> Implicit {
    // PyYAML keys its resolvers by first character and tries them in the
    // order they were registered; only the candidates for that character run.
    let Some(first) = text.chars().next() else {
        return Implicit::Null;
    };
    match first {
        'y' | 'Y' | 'n' | 'N' | 't' | 'T' | 'f' | 'F' | 'o' | 'O' => {
            if BOOL.is_match(text) {
                return Implicit::Bool;
            }
            if matches!(first, 'n' | 'N') && NULL.is_match(text) {
                return Implicit::Null;
            }
            Implicit::Str
        }
        '-' | '+' | '.' | '0'..='9' => {
            if FLOAT.is_match(text) {
                Implicit::Float
            } else if first != '.' && INT.is_match(text) {
                Implicit::Int
            } else if first.is_ascii_digit() && TIMESTAMP.is_match(text) {
                Implicit::Timestamp
            } else {
                Implicit::Str
            }
        }
        '~' if text == "~" => Implicit::Null,
        '<' if text == "<<" => Implicit::Merge,
        '=' if text == "=" => Implicit::ValueTag,
        _ => Implicit::Str,
    }
}

/// Why a scalar could not be constructed (PyYAML raised here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScalarError {
    /// The message, lowercase, user values in backticks.
    pub message: String,
}

fn err(message: String) -> ScalarError {
    ScalarError { message }
}

/// Builds the value of a scalar whose tag is known.
pub(crate) fn construct(tag: Implicit, text: &str) -> Result<Value, ScalarError> {
    match tag {
        Implicit::Null => Ok(Value::Null),
        Implicit::Str => Ok(Value::Str(text.to_owned())),
        Implicit::Bool => match text.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" => Ok(Value::Bool(true)),
            "no" | "false" | "off" => Ok(Value::Bool(false)),
            _ => Err(err(format!("`{text}` is not a boolean"))),
        },
        Implicit::Int => construct_int(text),
        Implicit::Float => construct_float(text),
        Implicit::Timestamp => construct_timestamp(text),
        Implicit::Merge => Err(err(
            "a merge key `<<` stands where a value belongs".to_owned()
        )),
        Implicit::ValueTag => Err(err(
            "a lone `=` is the YAML 1.1 value key and cannot be a value; quote it".to_owned(),
        )),
    }
}

/// Decodes `!!binary` text (whitespace ignored, as base64.decodebytes did).
pub(crate) fn construct_binary(text: &str) -> Result<Value, ScalarError> {
    if !text.is_ascii() {
        return Err(err(
            "`!!binary` value is not valid base64: it holds non-ASCII characters".to_owned(),
        ));
    }
    python_b64decode(text)
        .map(Value::Bytes)
        .map_err(|e| err(format!("`!!binary` value is not valid base64: {e}")))
}

/// Base64 decoding as Python's `base64.decodebytes` (PyYAML's `!!binary`)
/// did it: characters outside the alphabet are skipped, decoding stops at
/// complete padding, leftover bits are dropped, but the data must end on a
/// whole group (with its padding).
fn python_b64decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits, mut quad, mut pads) = (0u32, 0u32, 0usize, 0usize);
    let mut complete = false;
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                if quad >= 2 {
                    pads += 1;
                    if quad + pads >= 4 {
                        complete = true;
                        break;
                    }
                }
                continue;
            }
            _ => continue,
        };
        if pads > 0 {
            // data after a partial padding: Python restarts the count
            pads = 0;
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        quad = (quad + 1) % 4;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if !complete && quad != 0 {
        return Err(if quad == 1 {
            "the number of data characters is one more than a multiple of 4".to_owned()
        } else {
            "incorrect padding".to_owned()
        });
    }
    Ok(out)
}

fn int_value(n: BigInt) -> Value {
    i64::try_from(&n).map_or(Value::BigInt(n), Value::Int)
}

fn parse_radix(digits: &str, radix: u32, text: &str) -> Result<BigInt, ScalarError> {
    BigInt::parse_bytes(digits.as_bytes(), radix)
        .filter(|_| !digits.is_empty() && !digits.starts_with(['+', '-']))
        .ok_or_else(|| err(format!("`{text}` is not a valid base-{radix} integer")))
}

fn construct_int(text: &str) -> Result<Value, ScalarError> {
    let cleaned = text.replace('_', "");
    let (negative, body) = split_sign(&cleaned);
    if body.is_empty() {
        return Err(err(format!("`{text}` is not an integer")));
    }
    let magnitude = if body == "0" {
        BigInt::from(0)
    } else if let Some(bin) = body.strip_prefix("0b") {
        parse_radix(bin, 2, text)?
    } else if let Some(hex) = body.strip_prefix("0x") {
        parse_radix(hex, 16, text)?
    } else if body.starts_with('0') {
        parse_radix(body, 8, text)?
    } else if body.contains(':') {
        let mut total = BigInt::from(0);
        for part in body.split(':') {
            total = total * 60 + parse_radix(part, 10, text)?;
        }
        total
    } else {
        parse_radix(body, 10, text)?
    };
    Ok(int_value(if negative { -magnitude } else { magnitude }))
}

fn split_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

/// Parses a decimal float the way Python's `float()` does for the texts the
/// float pattern admits (`1.`, `.5`, `1.0e+3`).
fn python_float(s: &str) -> Option<f64> {
    let mut t = s.to_owned();
    if t.starts_with('.') {
        t.insert(0, '0');
    }
    if let Some(pos) = t.find('.') {
        let after = &t[pos + 1..];
        if after.is_empty() || after.starts_with(['e', 'E']) {
            t.insert(pos + 1, '0');
        }
    }
    t.parse::<f64>().ok()
}

fn construct_float(text: &str) -> Result<Value, ScalarError> {
    let cleaned = text.replace('_', "").to_ascii_lowercase();
    let (negative, body) = split_sign(&cleaned);
    let sign = if negative { -1.0 } else { 1.0 };
    let bad = || err(format!("`{text}` is not a valid float"));
    let value = if body == ".inf" {
        f64::INFINITY
    } else if body == ".nan" {
        return Ok(Value::Float(f64::NAN));
    } else if body.contains(':') {
        let mut total = 0.0;
        for part in body.split(':') {
            total = total * 60.0 + python_float(part).ok_or_else(bad)?;
        }
        total
    } else {
        python_float(body).ok_or_else(bad)?
    };
    Ok(Value::Float(sign * value))
}

fn construct_timestamp(text: &str) -> Result<Value, ScalarError> {
    let caps = TIMESTAMP_PARTS
        .captures(text)
        .ok_or_else(|| err(format!("`{text}` is not a valid timestamp")))?;
    let num = |name: &str| -> u32 {
        caps.name(name)
            .and_then(|m| m.as_str().parse().ok())
            .unwrap_or(0)
    };
    let (year, month, day) = (num("year"), num("month"), num("day"));
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)
        .filter(|_| year >= 1)
        .ok_or_else(|| err(format!("`{text}` is not a valid date")))?;
    if caps.name("hour").is_none() {
        return Ok(Value::Date(date));
    }
    let micro = caps.name("fraction").map_or(0, |f| {
        let mut digits: String = f.as_str().chars().take(6).collect();
        while digits.len() < 6 {
            digits.push('0');
        }
        digits.parse().unwrap_or(0)
    });
    let time = NaiveTime::from_hms_micro_opt(num("hour"), num("minute"), num("second"), micro)
        .ok_or_else(|| err(format!("`{text}` is not a valid time of day")))?;
    let mut stamp = NaiveDateTime::new(date, time);
    if let Some(sign) = caps.name("tz_sign") {
        let minutes = i64::from(num("tz_hour")) * 60 + i64::from(num("tz_minute"));
        if minutes >= 24 * 60 {
            return Err(err(format!("the time zone of `{text}` is out of range")));
        }
        // PyYAML 3.11 returned naive UTC: subtract the offset.
        let offset = TimeDelta::minutes(if sign.as_str() == "-" {
            -minutes
        } else {
            minutes
        });
        // Python's datetime holds years 1 to 9999 only: PyYAML refused a
        // timestamp that the offset carries outside them.
        stamp = stamp
            .checked_sub_signed(offset)
            .filter(|s| (1..=9999).contains(&s.year()))
            .ok_or_else(|| {
                err(format!(
                    "`{text}` is out of range: in UTC it falls outside the years 1 to 9999"
                ))
            })?;
    }
    Ok(Value::DateTime(stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> Value {
        construct(resolve_plain(text), text).unwrap()
    }

    #[test]
    fn yaml11_booleans_and_nulls() {
        assert_eq!(typed("yes"), Value::Bool(true));
        assert_eq!(typed("Off"), Value::Bool(false));
        assert_eq!(typed("y"), Value::Str("y".into()));
        assert_eq!(typed("tRue"), Value::Str("tRue".into()));
        assert_eq!(typed("~"), Value::Null);
        assert_eq!(typed(""), Value::Null);
        assert_eq!(typed("nUll"), Value::Str("nUll".into()));
    }

    #[test]
    fn yaml11_numbers() {
        assert_eq!(typed("0755"), Value::Int(493));
        assert_eq!(typed("1:30"), Value::Int(90));
        assert_eq!(typed("-1:30"), Value::Int(-90));
        assert_eq!(typed("190:20:30"), Value::Int(685_230));
        assert_eq!(typed("0x1F"), Value::Int(31));
        assert_eq!(typed("0b101"), Value::Int(5));
        assert_eq!(typed("1_000"), Value::Int(1000));
        assert_eq!(typed("09"), Value::Str("09".into()));
        assert_eq!(typed("0o17"), Value::Str("0o17".into()));
        assert_eq!(typed("1e3"), Value::Str("1e3".into()));
        assert_eq!(typed("1.0e+3"), Value::Float(1000.0));
        assert_eq!(typed("1."), Value::Float(1.0));
        assert_eq!(typed(".5"), Value::Float(0.5));
        assert_eq!(typed("+.5"), Value::Str("+.5".into()));
        assert_eq!(typed("-.Inf"), Value::Float(f64::NEG_INFINITY));
        assert!(construct(Implicit::Int, "0b_").is_err());
    }

    #[test]
    fn yaml11_timestamps() {
        assert_eq!(
            crate::config::render::to_json(&typed("2001-12-14 21:59:43.10 -5")),
            "\"2001-12-15T02:59:43.100000\""
        );
        assert!(matches!(typed("2001-12-14"), Value::Date(_)));
        assert!(construct(Implicit::Timestamp, "2001-13-45").is_err());
        // Python's base64: lenient with stray characters and leftover
        // bits, strict about whole groups
        assert_eq!(
            construct_binary("aGV=").unwrap(),
            Value::Bytes(b"he".to_vec())
        );
        assert_eq!(
            construct_binary("a G\nV=").unwrap(),
            Value::Bytes(b"he".to_vec())
        );
        assert!(construct_binary("aGV").is_err());
        assert!(construct_binary("4").is_err());
        assert!(construct(Implicit::Timestamp, "9999-12-31 23:59:59-01:00").is_err());
        assert!(construct(Implicit::Timestamp, "0001-01-01 00:00:00+01:00").is_err());
        assert!(construct(Implicit::Timestamp, "9999-12-31 22:59:59-01:00").is_ok());
    }
}
