//! Where each value of a resolved flavor came from.
//!
//! Provenance is a side table (key path → [`Origin`]) kept beside the plain
//! configuration, so the typed model and the registry never see positions.
//! `explain` and `validate` read it to point at the line that matters: where
//! a value was written, which `<<` keys brought it, and which variable or
//! default gave it.

use std::sync::Arc;

use indexmap::IndexMap;

use super::construct::Via;
use super::env::Given;
use super::source::Span;
use super::value::{Hasher, Key};

/// A path of keys from the flavor's top (`["cache", "port"]`).
pub(crate) type KeyPath = Vec<Key>;

/// Formats a key path the way operators write it: `cache.port`.
pub(crate) fn dotted(path: &[Key]) -> String {
    path.iter().map(Key::display).collect::<Vec<_>>().join(".")
}

/// The origin of one value.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// Where the value is written in the file (`None` for values that exist
    /// only inside a variable's text, or that regconf injected).
    pub value_span: Option<Span>,
    /// Where its key is written in the file.
    pub key_span: Option<Span>,
    /// The `<<` keys it came through, nearest first.
    pub via: Option<Arc<Via>>,
    /// The `_env:` reference that produced it, if any.
    pub env: Option<EnvUse>,
    /// The variable whose YAML text holds this value (for keys nested in a
    /// mapping that a variable supplied).
    pub inside_variable: Option<String>,
    /// Brought in from `common` by the implicit rule (`--inherit implicit`).
    pub implicit_common: bool,
    /// Set by the loader rather than by the file.
    pub injected: Option<Injected>,
    /// Set on the command line: the `--set KEY=VALUE` that gave it.
    pub cli: Option<String>,
}

/// One `_env:` reference and what answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvUse {
    /// The variable's name.
    pub name: String,
    /// The value, the default, or nothing.
    pub given: Given,
    /// The `_env:` string in the file.
    pub reference: Span,
}

/// Values the loader writes, as docker-registry's `_init()` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// `flavor`: always the selected flavor's name.
    Flavor,
    /// `index_endpoint` with all leading and trailing `/` stripped.
    IndexEndpointStripped,
}

/// Key path → origin, for every key of a resolved flavor.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    origins: IndexMap<KeyPath, Origin, Hasher>,
}

impl Provenance {
    /// Records an origin.
    pub fn insert(&mut self, path: KeyPath, origin: Origin) {
        self.origins.insert(path, origin);
    }

    /// The origin of a path.
    pub fn get(&self, path: &[Key]) -> Option<&Origin> {
        self.origins.get(path)
    }

    /// The origin of a dotted path of string keys.
    pub fn get_dotted(&self, dotted: &str) -> Option<&Origin> {
        let path: KeyPath = dotted.split('.').map(Key::from).collect();
        self.origins.get(&path)
    }

    /// Every recorded path, in resolution order.
    pub fn iter(&self) -> impl Iterator<Item = (&KeyPath, &Origin)> {
        self.origins.iter()
    }

    /// Forgets the origins of every path strictly inside `prefix` (the
    /// keys of a mapping that was replaced).
    pub fn remove_under(&mut self, prefix: &[Key]) {
        self.origins
            .retain(|p, _| !(p.len() > prefix.len() && p.starts_with(prefix)));
    }

    /// Mutable access to one origin.
    pub fn get_mut(&mut self, path: &[Key]) -> Option<&mut Origin> {
        self.origins.get_mut(path)
    }
}
