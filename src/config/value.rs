//! The values a configuration holds once YAML has typed them.
//!
//! These are the types PyYAML 3.11 produced for docker-registry: null, bool,
//! arbitrary-precision int, float, str, bytes (`!!binary`), date, naive
//! datetime, list, mapping (keys of any scalar type) and set. Nothing here
//! knows about files or flavors.

use chrono::{NaiveDate, NaiveDateTime};
use std::hash::Hash;

use indexmap::{Equivalent, IndexMap};
use num_bigint::BigInt;

/// A typed YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null`, an empty value.
    Null,
    /// `true`, `yes`, `on` and their opposites.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A larger integer (Python ints are unbounded).
    BigInt(BigInt),
    /// A float (`1.5`, `.inf`, `1:30.5`).
    Float(f64),
    /// A string.
    Str(String),
    /// Bytes from `!!binary`.
    Bytes(Vec<u8>),
    /// A date (`2001-12-14`).
    Date(NaiveDate),
    /// A datetime, naive (zones are converted to UTC, as PyYAML 3.11 did).
    DateTime(NaiveDateTime),
    /// A list.
    Seq(Vec<Value>),
    /// A mapping, in insertion order.
    Map(Map),
    /// A set (`!!set`), in insertion order.
    Set(Vec<Key>),
}

/// A mapping from scalar keys to values, in the order keys first appeared.
pub type Map = IndexMap<Key, Value, Hasher>;

/// The hasher of the core's tables (mappings, flattened mappings,
/// provenance, memos keyed by node). A 50 MB file is millions of lookups
/// and inserts, and std's SipHash was a tenth of `validate`'s time;
/// foldhash is several times faster on short keys and still seeded per
/// process, so a file cannot choose keys that collide.
pub(crate) type Hasher = foldhash::fast::RandomState;

/// A hash map with the core's [`Hasher`].
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, Hasher>;

/// A hash set with the core's [`Hasher`].
pub(crate) type HashSet<T> = std::collections::HashSet<T, Hasher>;

/// A mapping key: any hashable scalar.
///
/// Unlike Python, `1`, `1.0` and `true` are three different keys
/// (deliberate difference 6 of the contract).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// `~:`
    Null,
    /// `true:`
    Bool(bool),
    /// `1:`
    Int(i64),
    /// A large integer key.
    BigInt(BigInt),
    /// `1.0:` (compared by bits).
    Float(u64),
    /// An ordinary string key.
    Str(String),
    /// A `!!binary` key.
    Bytes(Vec<u8>),
    /// A date key.
    Date(NaiveDate),
    /// A datetime key.
    DateTime(NaiveDateTime),
}

// Written out rather than derived so that [`StrKey`] can hash exactly as
// `Key::Str` does: a string key is then looked up without building a
// `Key` (and its `String`) for it.
impl Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Key::Null => state.write_u8(0),
            Key::Bool(b) => {
                state.write_u8(1);
                b.hash(state);
            }
            Key::Int(i) => {
                state.write_u8(2);
                i.hash(state);
            }
            Key::BigInt(i) => {
                state.write_u8(3);
                i.hash(state);
            }
            Key::Float(bits) => {
                state.write_u8(4);
                bits.hash(state);
            }
            Key::Str(s) => StrKey(s).hash(state),
            Key::Bytes(b) => {
                state.write_u8(6);
                b.hash(state);
            }
            Key::Date(d) => {
                state.write_u8(7);
                d.hash(state);
            }
            Key::DateTime(d) => {
                state.write_u8(8);
                d.hash(state);
            }
        }
    }
}

/// A string key borrowed: looks up `Key::Str` entries of a [`Map`] (or any
/// table keyed by [`Key`]) without allocating.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StrKey<'a>(pub &'a str);

impl Hash for StrKey<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u8(5);
        self.0.hash(state);
    }
}

impl Equivalent<Key> for StrKey<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        key.as_str() == Some(self.0)
    }
}

impl Key {
    /// The key as a value.
    pub fn to_value(&self) -> Value {
        match self {
            Key::Null => Value::Null,
            Key::Bool(b) => Value::Bool(*b),
            Key::Int(i) => Value::Int(*i),
            Key::BigInt(i) => Value::BigInt(i.clone()),
            Key::Float(bits) => Value::Float(f64::from_bits(*bits)),
            Key::Str(s) => Value::Str(s.clone()),
            Key::Bytes(b) => Value::Bytes(b.clone()),
            Key::Date(d) => Value::Date(*d),
            Key::DateTime(d) => Value::DateTime(*d),
        }
    }

    /// The key as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Key::Str(s) => Some(s),
            _ => None,
        }
    }

    /// How the key is written in JSON output and in dotted key paths.
    pub fn display(&self) -> String {
        crate::config::render::json_key(self)
    }
}

impl From<&str> for Key {
    fn from(s: &str) -> Key {
        Key::Str(s.to_owned())
    }
}

impl Value {
    /// The key form of a scalar value; `None` for lists, mappings and sets,
    /// which cannot be keys.
    pub fn to_key(&self) -> Option<Key> {
        Some(match self {
            Value::Null => Key::Null,
            Value::Bool(b) => Key::Bool(*b),
            Value::Int(i) => Key::Int(*i),
            Value::BigInt(i) => Key::BigInt(i.clone()),
            Value::Float(f) => Key::Float(f.to_bits()),
            Value::Str(s) => Key::Str(s.clone()),
            Value::Bytes(b) => Key::Bytes(b.clone()),
            Value::Date(d) => Key::Date(*d),
            Value::DateTime(d) => Key::DateTime(*d),
            Value::Seq(_) | Value::Map(_) | Value::Set(_) => return None,
        })
    }

    /// Python truthiness, as docker-registry's `if cfg.x:` tested it.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::BigInt(_) => true,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::Bytes(b) => !b.is_empty(),
            Value::Date(_) | Value::DateTime(_) => true,
            Value::Seq(v) => !v.is_empty(),
            Value::Map(m) => !m.is_empty(),
            Value::Set(s) => !s.is_empty(),
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The mapping, if this is one.
    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The type name operators see in messages (YAML terms, not Rust's).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::BigInt(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bytes(_) => "binary",
            Value::Date(_) => "date",
            Value::DateTime(_) => "timestamp",
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
            Value::Set(_) => "set",
        }
    }

    /// Looks a string key up in a mapping value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_map()?.get(&StrKey(key))
    }

    /// The key form of a scalar value, taking it (no copy of a string's
    /// text); `Err` gives back lists, mappings and sets, which cannot be
    /// keys.
    pub(crate) fn into_key(self) -> Result<Key, Value> {
        Ok(match self {
            Value::Null => Key::Null,
            Value::Bool(b) => Key::Bool(b),
            Value::Int(i) => Key::Int(i),
            Value::BigInt(i) => Key::BigInt(i),
            Value::Float(f) => Key::Float(f.to_bits()),
            Value::Str(s) => Key::Str(s),
            Value::Bytes(b) => Key::Bytes(b),
            Value::Date(d) => Key::Date(d),
            Value::DateTime(d) => Key::DateTime(d),
            other @ (Value::Seq(_) | Value::Map(_) | Value::Set(_)) => return Err(other),
        })
    }
}

/// The value at a key path into nested mappings (`cache.host`), if every
/// step is there.
pub(crate) fn at_path<'m>(map: &'m Map, path: &[Key]) -> Option<&'m Value> {
    let (first, rest) = path.split_first()?;
    let v = map.get(first)?;
    if rest.is_empty() {
        Some(v)
    } else {
        at_path(v.as_map()?, rest)
    }
}
