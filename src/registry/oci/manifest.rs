//! Reading a pushed manifest: the OCI image-spec rules for the fields the
//! registry relies on, checked without building a tree of every value.
//!
//! Two passes over the bytes, both bounded in memory by the input:
//!
//! 1. [`check_shape`] walks the whole document once, keeping nothing but
//!    the keys of the objects on the current path: it refuses nesting
//!    deeper than [`MAX_DEPTH`], more than [`MAX_ELEMENTS`] values and
//!    duplicate keys in any object.
//! 2. Typed structs read the fields the registry inspects; everything else
//!    stays a borrowed [`RawValue`] (a slice of the input) or is skipped.
//!
//! Errors name the field (`layers[2].size`). This module must not do I/O:
//! whether the blobs exist, and their sizes, is the store's check.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{DOCKER_LIST, DOCKER_MANIFEST, Digest, OCI_INDEX, OCI_MANIFEST, is_manifest_type};

/// Deepest nesting of arrays and objects accepted. Real manifests nest
/// four levels (index → descriptor → platform → features).
pub(crate) const MAX_DEPTH: usize = 32;

/// Most JSON values (scalars, arrays, objects) in one manifest. A 4 MiB
/// index of 20,000 platform descriptors has about 160,000; a document of
/// a million bare numbers is no manifest. This also bounds the key lists
/// the duplicate check keeps.
pub(crate) const MAX_ELEMENTS: usize = 1 << 18;

/// A content descriptor as it appears inside a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Descriptor {
    /// Where it sits in the manifest (`layers[3]`), for error messages.
    pub(crate) field: String,
    /// `mediaType`.
    pub(crate) media_type: String,
    /// `digest`.
    pub(crate) digest: Digest,
    /// `size`.
    pub(crate) size: u64,
    /// Whether the descriptor has `urls` (a non-distributable layer that
    /// the registry is not expected to hold).
    pub(crate) external: bool,
}

/// The facts about a manifest the registry needs to accept and serve it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Manifest {
    /// The effective media type (field, else request `Content-Type`).
    pub(crate) media_type: String,
    /// Blobs it references (config and layers) for image manifests.
    pub(crate) blobs: Vec<Descriptor>,
    /// Child manifests for indexes and manifest lists.
    pub(crate) children: Vec<Descriptor>,
    /// `subject`, when present.
    pub(crate) subject: Option<Descriptor>,
    /// `artifactType`, else the config's media type (referrers API rule).
    pub(crate) artifact_type: Option<String>,
    /// `annotations` (string to string), for the referrers index: filled
    /// only when the manifest has a `subject`.
    pub(crate) annotations: Option<Map<String, Value>>,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ManifestError {
    /// Not valid JSON or not the expected shape.
    #[error("{0}")]
    Invalid(String),
    /// A media type the registry does not serve.
    #[error("unsupported manifest media type `{0}`")]
    Unsupported(String),
}

fn invalid(m: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(m.into())
}

/// The top-level fields the registry reads; the rest is skipped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Top<'a> {
    #[serde(borrow)]
    schema_version: Option<&'a RawValue>,
    #[serde(borrow)]
    media_type: Option<&'a RawValue>,
    #[serde(borrow)]
    artifact_type: Option<&'a RawValue>,
    #[serde(borrow)]
    config: Option<&'a RawValue>,
    #[serde(borrow)]
    layers: Option<&'a RawValue>,
    #[serde(borrow)]
    manifests: Option<&'a RawValue>,
    #[serde(borrow)]
    subject: Option<&'a RawValue>,
    #[serde(borrow)]
    annotations: Option<&'a RawValue>,
}

/// The fields of a descriptor the image spec gives a type.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor<'a> {
    #[serde(borrow)]
    media_type: Option<&'a RawValue>,
    #[serde(borrow)]
    digest: Option<&'a RawValue>,
    #[serde(borrow)]
    size: Option<&'a RawValue>,
    #[serde(borrow)]
    urls: Option<&'a RawValue>,
    #[serde(borrow)]
    annotations: Option<&'a RawValue>,
    #[serde(borrow)]
    artifact_type: Option<&'a RawValue>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    #[serde(borrow)]
    platform: Option<&'a RawValue>,
}

impl Manifest {
    /// Reads a manifest's structure. `content_type` is the request header,
    /// used when the manifest carries no `mediaType` of its own.
    pub(crate) fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Self, ManifestError> {
        check_shape(bytes)?;
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return Err(invalid("manifest is not a json object"));
        }
        let top: Top<'_> = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("manifest is not valid json: {e}")))?;
        if top.schema_version.map(|v| v.get()) != Some("2") {
            return Err(invalid("`schemaVersion` must be 2"));
        }
        let field = top
            .media_type
            .map(|v| media_type_of(v, "mediaType"))
            .transpose()?;
        // Parameters such as `; charset=utf-8` are not part of the type.
        let header = content_type
            .map(|c| c.split(';').next().unwrap_or("").trim())
            .filter(|c| !c.is_empty());
        let media_type = match (field, header) {
            (Some(f), _) => f,
            (None, Some(h)) if is_manifest_type(h) => h.to_owned(),
            // Neither says: OCI allows omitting `mediaType`, so go by shape.
            (None, _) if top.manifests.is_some() => OCI_INDEX.to_owned(),
            (None, _) if top.config.is_some() => OCI_MANIFEST.to_owned(),
            (None, _) => return Err(invalid("manifest has no `mediaType`")),
        };
        let mut m = Self {
            media_type,
            blobs: Vec::new(),
            children: Vec::new(),
            subject: None,
            artifact_type: top
                .artifact_type
                .map(|v| media_type_of(v, "artifactType"))
                .transpose()?,
            annotations: top
                .annotations
                .map(|v| string_map(v, "annotations", top.subject.is_some()))
                .transpose()?,
        };
        match m.media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => {
                let config = descriptor(
                    top.config.ok_or_else(|| invalid("missing `config`"))?,
                    "config",
                )?;
                let layers = array(
                    top.layers.ok_or_else(|| invalid("missing `layers`"))?,
                    "layers",
                )?;
                if m.artifact_type.is_none() {
                    m.artifact_type = Some(config.media_type.clone());
                }
                m.blobs.push(config);
                for (i, l) in layers.into_iter().enumerate() {
                    m.blobs.push(descriptor(l, &format!("layers[{i}]"))?);
                }
            }
            OCI_INDEX | DOCKER_LIST => {
                let list = array(
                    top.manifests
                        .ok_or_else(|| invalid("missing `manifests`"))?,
                    "manifests",
                )?;
                for (i, c) in list.into_iter().enumerate() {
                    m.children.push(descriptor(c, &format!("manifests[{i}]"))?);
                }
            }
            other => return Err(ManifestError::Unsupported(other.to_owned())),
        }
        if let Some(s) = top.subject {
            m.subject = Some(descriptor(s, "subject")?);
        }
        Ok(m)
    }
}

fn descriptor(v: &RawValue, field: &str) -> Result<Descriptor, ManifestError> {
    if !v.get().starts_with('{') {
        return Err(invalid(format!("`{field}` must be an object")));
    }
    let d: RawDescriptor<'_> = serde_json::from_str(v.get())
        .map_err(|e| invalid(format!("`{field}` is not a descriptor: {e}")))?;
    let sub = |name: &str| format!("{field}.{name}");
    let media_type = media_type_of(
        d.media_type
            .ok_or_else(|| invalid(format!("`{}` is missing", sub("mediaType"))))?,
        &sub("mediaType"),
    )?;
    let text = string(
        d.digest
            .ok_or_else(|| invalid(format!("`{}` is missing", sub("digest"))))?,
        &sub("digest"),
    )?;
    let digest = Digest::parse(&text).map_err(|e| invalid(format!("`{}`: {e}", sub("digest"))))?;
    let size = d
        .size
        .ok_or_else(|| invalid(format!("`{}` is missing", sub("size"))))?;
    let size: u64 = serde_json::from_str(size.get())
        .map_err(|_| invalid(format!("`{}` must be a non-negative integer", sub("size"))))?;
    let mut external = false;
    if let Some(urls) = d.urls {
        let urls = array(urls, &sub("urls"))?;
        for (i, u) in urls.iter().enumerate() {
            string(u, &format!("{}[{i}]", sub("urls")))?;
        }
        external = !urls.is_empty();
    }
    if let Some(a) = d.annotations {
        string_map(a, &sub("annotations"), false)?;
    }
    if let Some(t) = d.artifact_type {
        media_type_of(t, &sub("artifactType"))?;
    }
    if let Some(data) = d.data {
        string(data, &sub("data"))?;
    }
    if let Some(p) = d.platform
        && !p.get().starts_with('{')
    {
        return Err(invalid(format!("`{}` must be an object", sub("platform"))));
    }
    Ok(Descriptor {
        field: field.to_owned(),
        media_type,
        digest,
        size,
        external,
    })
}

fn string(v: &RawValue, field: &str) -> Result<String, ManifestError> {
    serde_json::from_str(v.get()).map_err(|_| invalid(format!("`{field}` must be a string")))
}

fn array<'a>(v: &'a RawValue, field: &str) -> Result<Vec<&'a RawValue>, ManifestError> {
    if !v.get().starts_with('[') {
        return Err(invalid(format!("`{field}` must be an array")));
    }
    serde_json::from_str(v.get()).map_err(|_| invalid(format!("`{field}` must be an array")))
}

/// A media type as RFC 6838 writes one: `type/subtype`, each a restricted
/// name (no parameters: the image spec's descriptors carry none).
fn media_type_of(v: &RawValue, field: &str) -> Result<String, ManifestError> {
    let s = string(v, field)?;
    let restricted = |p: &str| {
        let b = p.as_bytes();
        !b.is_empty()
            && b.len() <= 127
            && b[0].is_ascii_alphanumeric()
            && b.iter()
                .all(|&c| c.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&c))
    };
    match s.split_once('/') {
        Some((t, sub)) if restricted(t) && restricted(sub) => Ok(s),
        _ => Err(invalid(format!(
            "`{field}` is not a media type: `{}`",
            shown(&s)
        ))),
    }
}

/// An object whose values are all strings (annotations, labels); the map
/// itself only when `keep` (the referrers index needs it), so a large
/// one is not copied just to be checked.
fn string_map(v: &RawValue, field: &str, keep: bool) -> Result<Map<String, Value>, ManifestError> {
    struct Strings<'f>(&'f str, bool);
    impl<'de> Visitor<'de> for Strings<'_> {
        type Value = Map<String, Value>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "`{}` to be an object of strings", self.0)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Map::new();
            while let Some(k) = map.next_key_seed(Key)? {
                let raw: &RawValue = map.next_value()?;
                if !is_string(raw) {
                    return Err(de::Error::custom(format!(
                        "`{}.{}` must be a string",
                        self.0,
                        shown(&k)
                    )));
                }
                if self.1 {
                    let s: String = serde_json::from_str(raw.get()).map_err(de::Error::custom)?;
                    out.insert(k.into_owned(), Value::String(s));
                }
            }
            Ok(out)
        }
    }
    if !v.get().starts_with('{') {
        return Err(invalid(format!("`{field}` must be an object of strings")));
    }
    let mut de = serde_json::Deserializer::from_str(v.get());
    de::Deserializer::deserialize_map(&mut de, Strings(field, keep)).map_err(|e| {
        // serde_json appends a position; the field name says enough.
        let text = e.to_string();
        let text = text.split(" at line ").next().unwrap_or(&text).to_owned();
        invalid(text)
    })
}

/// Whether `v` is a JSON string, without copying it.
fn is_string(v: &RawValue) -> bool {
    struct Str;
    impl Visitor<'_> for Str {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_str(v.get());
    de::Deserializer::deserialize_str(&mut de, Str).is_ok()
}

/// A user value for a message: at most 64 characters, control characters
/// escaped.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(64).flat_map(char::escape_default).collect();
    if s.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

/// Walks the document once: nesting, number of values and duplicate keys
/// (pass 1 of the module docs).
fn check_shape(bytes: &[u8]) -> Result<(), ManifestError> {
    let count = Cell::new(0usize);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Shape {
        depth: 0,
        count: &count,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end())
    .map_err(|e| invalid(format!("manifest is not valid json: {e}")))
}

#[derive(Clone, Copy)]
struct Shape<'c> {
    depth: usize,
    count: &'c Cell<usize>,
}

impl Shape<'_> {
    fn value<E: de::Error>(self) -> Result<(), E> {
        let n = self.count.get() + 1;
        if n > MAX_ELEMENTS {
            return Err(E::custom(format!(
                "more than {MAX_ELEMENTS} values in the manifest"
            )));
        }
        self.count.set(n);
        Ok(())
    }

    fn nested<E: de::Error>(self) -> Result<Self, E> {
        self.value()?;
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(Self {
            depth: self.depth + 1,
            count: self.count,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Shape<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

impl<'de> Visitor<'de> for Shape<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a json value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.value()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.value()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.value()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.value()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.value()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.value()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.nested()?;
        let mut keys: Vec<Cow<'de, str>> = Vec::new();
        while let Some(k) = map.next_key_seed(Key)? {
            inner.value()?;
            keys.push(k);
            map.next_value_seed(inner)?;
        }
        keys.sort_unstable();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(de::Error::custom(format!(
                "duplicate key `{}`",
                shown(&w[0])
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(d: &Digest, size: &str) -> String {
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{size}}}"#
        )
    }

    fn image(layer: &str, extra: &str) -> String {
        let d = Digest::sha256_of(b"x");
        format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{d}","size":1}},"layers":[{layer}]{extra}}}"#
        )
    }

    fn error(text: &str) -> String {
        match Manifest::parse(text.as_bytes(), None) {
            Err(ManifestError::Invalid(m)) => m,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn manifest_shapes() {
        let d = Digest::sha256_of(b"x");
        let m = image(
            &desc(&d, "1"),
            &format!(
                r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":1}},"annotations":{{"a":"b"}}"#
            ),
        );
        let p = Manifest::parse(m.as_bytes(), None).unwrap();
        assert_eq!(p.media_type, OCI_MANIFEST);
        assert_eq!(
            p.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert!(p.subject.is_some());
        assert_eq!(p.blobs[1].field, "layers[0]");
        assert_eq!(p.annotations.unwrap()["a"], "b");
        let plain = image("", r#","annotations":{"a":"b"}"#);
        assert_eq!(
            Manifest::parse(plain.as_bytes(), None).unwrap().annotations,
            Some(Map::new())
        );
        assert!(Manifest::parse(b"{", None).is_err());
        assert!(Manifest::parse(br#"{"schemaVersion":2,"mediaType":"x/y"}"#, None).is_err());
        assert!(Manifest::parse(br#"{"schemaVersion":1}"#, None).is_err());
        assert!(Manifest::parse(b"[2]", None).is_err());
    }

    #[test]
    fn fields_are_named() {
        let d = Digest::sha256_of(b"x");
        for (text, want) in [
            (
                image(&desc(&d, "-1"), ""),
                "`layers[0].size` must be a non-negative integer",
            ),
            (
                image(&desc(&d, "1.5"), ""),
                "`layers[0].size` must be a non-negative integer",
            ),
            (
                image(&desc(&d, "\"9\""), ""),
                "`layers[0].size` must be a non-negative integer",
            ),
            (image("1", ""), "`layers[0]` must be an object"),
            (
                image("", r#","annotations":{"a":[1,2]}"#),
                "`annotations.a` must be a string",
            ),
            (
                image("", r#","annotations":[]"#),
                "`annotations` must be an object of strings",
            ),
            (image("", r#","layers":[]"#), "duplicate key `layers`"),
            (image("", r#","x":{"k":1,"k":2}"#), "duplicate key `k`"),
            (
                image(
                    &desc(&d, "1").replace("application/vnd.oci.image.layer.v1.tar", "tar"),
                    "",
                ),
                "`layers[0].mediaType` is not a media type: `tar`",
            ),
            (
                image(
                    &desc(&d, "1").replace("\"digest\":\"", "\"digest\":\"x"),
                    "",
                ),
                "`layers[0].digest`",
            ),
            (
                image(&desc(&d, "1").replace("}", r#","urls":[1]}"#), ""),
                "`layers[0].urls[0]` must be a string",
            ),
        ] {
            let got = error(&text);
            assert!(got.contains(want), "{text}\n{got}");
        }
    }

    #[test]
    fn bounded_shape() {
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        assert!(error(&deep).contains("nesting deeper than"));
        let many = format!(
            r#"{{"schemaVersion":2,"annotations":{{"a":[{}0]}}}}"#,
            "0,".repeat(MAX_ELEMENTS)
        );
        assert!(error(&many).contains("values in the manifest"));
    }
}
