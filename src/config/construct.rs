//! Stage 2: nodes → typed values, with merge keys flattened.
//!
//! A [`Builder`] turns the nodes of one [`Document`](super::parse::Document)
//! into [`Value`]s: scalars are typed by [`yaml11`](super::yaml11) or by their
//! explicit tag, and every mapping is flattened first ([`Builder::flatten`]),
//! exactly as PyYAML's `flatten_mapping` did: entries brought by `<<` come
//! first, explicit keys override them wherever `<<` stands, the earlier
//! source of `<<: [*a, *b]` wins, and the merge is shallow. Each entry keeps
//! where it was written and the chain of `<<` keys it came through.
//!
//! It must not resolve `_env:` or select flavors; that is the next stage.

use std::sync::Arc;

use indexmap::IndexMap;

use super::parse::{Node, NodeKind, Ref, Style};
use super::source::Span;
use super::value::{HashMap, Hasher, Key, Map, Value};
use super::yaml11::{self, Implicit};

const TAG_PREFIX: &str = "tag:yaml.org,2002:";

/// The most values one text may expand to through aliases. Beyond this an
/// "alias bomb" is refused instead of exhausting memory.
pub(crate) const MAX_VALUES: usize = 2_000_000;

/// The deepest nesting a value may reach once aliases are expanded.
pub(crate) const MAX_VALUE_DEPTH: usize = 1024;

/// Why a node could not become a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstructError {
    /// What went wrong (lowercase, user values in backticks).
    pub message: String,
    /// Where.
    pub at: Span,
    /// Which rule was broken.
    pub kind: ConstructErrorKind,
    /// A second position worth showing (the `<<` whose source is wrong).
    pub related: Option<Span>,
    /// Text for the primary label (may be empty).
    pub label: String,
}

/// The kinds of [`ConstructError`], one diagnostic code each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConstructErrorKind {
    /// A scalar's text does not fit its type (`0b_`, `2001-13-45`, `!!int x`).
    Scalar,
    /// A tag with no constructor (`!foo`).
    UnknownTag,
    /// A `!!python/*` tag (refused: it would run code in docker-registry).
    PythonTag,
    /// `<<` given something other than a mapping or a list of mappings.
    MergeNotMapping,
    /// A list or mapping used as a mapping key.
    UnhashableKey,
    /// Aliases expand to too many values.
    TooLarge,
}

/// One entry of a flattened mapping.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The key node (where the key is written).
    pub key_node: Ref,
    /// The value node.
    pub value: Ref,
    /// The `<<` keys this entry came through, nearest first; `None` for an
    /// entry written in the mapping itself.
    pub via: Option<Arc<Via>>,
}

/// One step of a merge chain: the `<<` key, and the alias it named.
#[derive(Debug)]
pub struct Via {
    /// The `<<` key.
    pub merge_key: Span,
    /// The source it merged (`*common`), where it stands.
    pub source: Span,
    /// The anchor name of the merged mapping, if it has one.
    pub anchor: Option<String>,
    /// The next step, towards where the entry was written.
    pub next: Option<Arc<Via>>,
}

impl Drop for Via {
    // A chain as long as the longest merge chain would otherwise be dropped
    // recursively, one stack frame per link.
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(link) = next {
            match Arc::try_unwrap(link) {
                Ok(mut v) => next = v.next.take(),
                Err(_) => break,
            }
        }
    }
}

impl Via {
    /// The steps, nearest first.
    pub(crate) fn iter(self: &Arc<Via>) -> impl Iterator<Item = &Via> {
        std::iter::successors(Some(self.as_ref()), |v| v.next.as_deref())
    }
}

/// A duplicate key in one mapping: the last one wins, both are remembered.
#[derive(Debug, Clone)]
pub struct Duplicate {
    /// The key.
    pub key: Key,
    /// The earlier occurrence.
    pub first: Span,
    /// The later one, which wins.
    pub second: Span,
}

/// A mapping after merge keys: one entry per key, in first-seen order.
#[derive(Debug, Default)]
pub struct Flat {
    /// The entries.
    pub entries: IndexMap<Key, Entry, Hasher>,
    /// Keys written twice in this mapping itself.
    pub duplicates: Vec<Duplicate>,
    /// Whether the mapping has a `<<` key.
    pub has_merge: bool,
    /// The values of keys that a later duplicate overrides: PyYAML still
    /// constructed them, so an invalid one made the whole file invalid.
    pub(crate) overridden: Vec<Ref>,
}

/// Builds values from the nodes of one document, remembering flattened
/// mappings so that a chain of 10,000 flavors costs linear time.
#[derive(Default)]
pub struct Builder {
    flat: HashMap<*const Node, Arc<Flat>>,
    budget_used: usize,
}

fn tag_suffix(tag: &str) -> Option<&str> {
    tag.strip_prefix(TAG_PREFIX)
}

impl Builder {
    /// A new builder.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// How much of the budget of values has been spent.
    pub(crate) fn spent(&self) -> usize {
        self.budget_used
    }

    /// Sets the budget spent back to `spent` (an earlier [`Builder::spent`]):
    /// the memo of flattened mappings stays.
    pub(crate) fn rewind(&mut self, spent: usize) {
        self.budget_used = spent;
    }

    fn spend(&mut self, at: Span) -> Result<(), ConstructError> {
        self.budget_used += 1;
        if self.budget_used > MAX_VALUES {
            return Err(ConstructError {
                message: format!(
                    "aliases expand to more than {MAX_VALUES} values (an alias bomb?)"
                ),
                at,
                kind: ConstructErrorKind::TooLarge,
                related: None,
                label: String::new(),
            });
        }
        Ok(())
    }

    /// Types a scalar node.
    pub(crate) fn scalar(&mut self, node: &Node) -> Result<Value, ConstructError> {
        let NodeKind::Scalar { text, style } = &node.kind else {
            unreachable!("scalar() is called on scalars");
        };
        let fail = |message: String, kind| ConstructError {
            message,
            at: node.span,
            kind,
            related: None,
            label: String::new(),
        };
        let implicit = match (node.tag(), style) {
            (None, Style::Plain) => yaml11::resolve_plain(text),
            (None, Style::Quoted) => Implicit::Str,
            (Some(tag), _) => match tag_suffix(tag) {
                Some("str") => Implicit::Str,
                Some("null") => Implicit::Null,
                Some("bool") => Implicit::Bool,
                Some("int") => Implicit::Int,
                Some("float") => Implicit::Float,
                Some("timestamp") => Implicit::Timestamp,
                Some("binary") => {
                    return yaml11::construct_binary(text)
                        .map_err(|e| fail(e.message, ConstructErrorKind::Scalar));
                }
                _ => return Err(unknown_tag(tag, node.span)),
            },
        };
        yaml11::construct(implicit, text).map_err(|e| fail(e.message, ConstructErrorKind::Scalar))
    }

    /// Types a key node; lists and mappings cannot be keys.
    pub(crate) fn key(&mut self, r: &Ref) -> Result<Key, ConstructError> {
        let value = match &r.node.kind {
            // PyYAML turned the YAML 1.1 value key `=` into the string "=".
            NodeKind::Scalar {
                text,
                style: Style::Plain,
            } if r.node.tag().is_none() && text == "=" => Value::Str(text.clone()),
            NodeKind::Scalar { .. } => self.scalar(&r.node)?,
            _ => Value::Null,
        };
        match (&r.node.kind, value.into_key()) {
            (NodeKind::Scalar { .. }, Ok(key)) => Ok(key),
            _ => Err(ConstructError {
                message: "a list or mapping cannot be a mapping key".to_owned(),
                at: r.site(),
                kind: ConstructErrorKind::UnhashableKey,
                related: None,
                label: String::new(),
            }),
        }
    }

    /// Whether a key node is the merge key `<<` (plain, or tagged `!!merge`).
    fn is_merge(key: &Ref) -> bool {
        match (&key.node.kind, key.node.tag()) {
            (NodeKind::Scalar { text, style }, None) => *style == Style::Plain && text == "<<",
            (NodeKind::Scalar { .. }, Some(tag)) => tag_suffix(tag) == Some("merge"),
            _ => false,
        }
    }

    /// The mappings one `<<` pair merges, in the order PyYAML applied them
    /// (later ones win); an error when it names something else.
    fn merge_sources<'a>(
        key_ref: &Ref,
        value_ref: &'a Ref,
    ) -> Result<Vec<&'a Ref>, ConstructError> {
        match &value_ref.node.kind {
            NodeKind::Map(_) => Ok(vec![value_ref]),
            NodeKind::Seq(items) => {
                if let Some(bad) = items
                    .iter()
                    .find(|i| !matches!(i.node.kind, NodeKind::Map(_)))
                {
                    return Err(merge_error(bad, key_ref.node.span));
                }
                // PyYAML reversed the list so that earlier sources, inserted
                // later, win.
                Ok(items.iter().rev().collect())
            }
            NodeKind::Scalar { .. } => Err(merge_error(value_ref, key_ref.node.span)),
        }
    }

    /// Flattens a mapping node (PyYAML `flatten_mapping`), memoised per node.
    ///
    /// Chains of merges are followed with an explicit stack rather than by
    /// recursion, so a chain of 100,000 flavors cannot overflow the stack.
    pub(crate) fn flatten(&mut self, node: &Arc<Node>) -> Result<Arc<Flat>, ConstructError> {
        if let Some(done) = self.flat.get(&Arc::as_ptr(node)) {
            return Ok(Arc::clone(done));
        }
        let mut stack = vec![Arc::clone(node)];
        while let Some(top) = stack.last().cloned() {
            if self.flat.contains_key(&Arc::as_ptr(&top)) {
                stack.pop();
                continue;
            }
            let NodeKind::Map(pairs) = &top.kind else {
                unreachable!("flatten() is called on mappings");
            };
            let mut pending = Vec::new();
            for (key_ref, value_ref) in pairs.iter().filter(|(k, _)| Self::is_merge(k)) {
                for source in Self::merge_sources(key_ref, value_ref)? {
                    if !self.flat.contains_key(&Arc::as_ptr(&source.node)) {
                        pending.push(Arc::clone(&source.node));
                    }
                }
            }
            if pending.is_empty() {
                stack.pop();
                self.flatten_one(&top)?;
            } else {
                stack.extend(pending);
            }
        }
        Ok(Arc::clone(&self.flat[&Arc::as_ptr(node)]))
    }

    /// Flattens one mapping whose merge sources are already flattened.
    fn flatten_one(&mut self, node: &Arc<Node>) -> Result<(), ConstructError> {
        let ptr = Arc::as_ptr(node);
        let NodeKind::Map(pairs) = &node.kind else {
            unreachable!("flatten() is called on mappings");
        };
        let mut explicit: IndexMap<Key, Entry, Hasher> =
            IndexMap::with_capacity_and_hasher(pairs.len(), Hasher::default());
        let mut duplicates = Vec::new();
        let mut overridden = Vec::new();
        let mut has_merge = false;
        // The explicit keys first: a merged entry they override needs only
        // its place in the order, not a `Via` of its own (a chain of
        // flavors that each set the same keys would build one per key and
        // link, and drop it at once).
        for (key_ref, value_ref) in pairs {
            if Self::is_merge(key_ref) {
                has_merge = true;
                // its sources were checked by `flatten`, in file order
                continue;
            }
            let key = self.key(key_ref)?;
            let entry = Entry {
                key_node: key_ref.clone(),
                value: value_ref.clone(),
                via: None,
            };
            if let Some(previous) = explicit.insert(key.clone(), entry) {
                overridden.push(previous.value.clone());
                duplicates.push(Duplicate {
                    key,
                    first: previous.key_node.site(),
                    second: key_ref.site(),
                });
            }
        }
        // Merged entries come first; explicit ones override them but an
        // overridden key keeps its first position, as a Python dict does.
        let mut entries: IndexMap<Key, Entry, Hasher> = IndexMap::default();
        if has_merge {
            for (key_ref, value_ref) in pairs.iter().filter(|(k, _)| Self::is_merge(k)) {
                for source in Self::merge_sources(key_ref, value_ref)? {
                    let flat = Arc::clone(&self.flat[&Arc::as_ptr(&source.node)]);
                    entries.reserve(flat.entries.len());
                    // entries that came the same way share the step that
                    // brings them here
                    let mut last: Option<(Option<*const Via>, Arc<Via>)> = None;
                    for (key, entry) in &flat.entries {
                        if let Some(i) = entries.get_index_of(key) {
                            if explicit.contains_key(key) {
                                continue;
                            }
                            // a later source of `<<: [*a, *b]` (applied
                            // first) is replaced in its place
                            let step = Self::step(&mut last, key_ref, source, entry);
                            entries[i] = Entry {
                                key_node: entry.key_node.clone(),
                                value: entry.value.clone(),
                                via: Some(step),
                            };
                            continue;
                        }
                        if let Some(own) = explicit.get(key) {
                            entries.insert(key.clone(), own.clone());
                            continue;
                        }
                        let step = Self::step(&mut last, key_ref, source, entry);
                        entries.insert(
                            key.clone(),
                            Entry {
                                key_node: entry.key_node.clone(),
                                value: entry.value.clone(),
                                via: Some(step),
                            },
                        );
                    }
                }
            }
        }
        if entries.is_empty() {
            entries = explicit;
        } else {
            for (key, entry) in explicit {
                entries.insert(key, entry);
            }
        }
        let flat = Arc::new(Flat {
            entries,
            duplicates,
            has_merge,
            overridden,
        });
        self.flat.insert(ptr, flat);
        Ok(())
    }

    /// The `<<` step that brings `entry` from `source`: the previous
    /// entry's step when it came the same way, else a new one.
    fn step(
        last: &mut Option<(Option<*const Via>, Arc<Via>)>,
        merge_key: &Ref,
        source: &Ref,
        entry: &Entry,
    ) -> Arc<Via> {
        let next = entry.via.as_ref().map(Arc::as_ptr);
        if let Some((prev, step)) = last
            && *prev == next
        {
            return Arc::clone(step);
        }
        let step = Arc::new(Via {
            merge_key: merge_key.node.span,
            source: source.site(),
            anchor: source.node.anchor().map(str::to_owned),
            next: entry.via.clone(),
        });
        *last = Some((next, Arc::clone(&step)));
        step
    }

    /// Builds the whole value of a node (lists, mappings and sets included).
    pub fn value(&mut self, r: &Ref) -> Result<Value, ConstructError> {
        self.value_at(r, 0)
    }

    /// Checks that the whole value of a node can be built, as
    /// [`Builder::value`] would, and returns its type name. Untagged lists
    /// and mappings are walked without building them, and strings are not
    /// copied, so checking a large file never holds a second copy of it;
    /// the walk spends the same budget as building would (an alias bomb is
    /// refused here too).
    pub(crate) fn check(&mut self, r: &Ref) -> Result<&'static str, ConstructError> {
        let plain_map = matches!(r.node.kind, NodeKind::Map(_))
            && r.node
                .tag()
                .is_none_or(|t| tag_suffix(t).unwrap_or(t) == "map");
        if !plain_map {
            return self.value(r).map(|v| v.type_name());
        }
        self.check_at(r, 0)?;
        Ok("mapping")
    }

    /// [`Builder::value_at`] without the value.
    fn check_at(&mut self, r: &Ref, depth: usize) -> Result<(), ConstructError> {
        let node = &r.node;
        match (&node.kind, node.tag()) {
            (NodeKind::Scalar { text, style }, None) => {
                self.enter(r, depth)?;
                // only a scalar typed as something other than a string
                // (or null) can fail to construct
                if *style == Style::Quoted
                    || matches!(yaml11::resolve_plain(text), Implicit::Str | Implicit::Null)
                {
                    return Ok(());
                }
                self.scalar(node).map(drop)
            }
            (NodeKind::Seq(items), None) => {
                self.enter(r, depth)?;
                for item in items {
                    self.check_at(item, depth + 1)?;
                }
                Ok(())
            }
            (NodeKind::Map(_), tag) if tag.is_none_or(|t| tag_suffix(t) == Some("map")) => {
                self.enter(r, depth)?;
                let flat = self.flatten(node)?;
                for lost in &flat.overridden {
                    self.check_at(lost, depth + 1)?;
                }
                for entry in flat.entries.values() {
                    self.check_at(&entry.value, depth + 1)?;
                }
                Ok(())
            }
            _ => self.value_at(r, depth).map(drop),
        }
    }

    /// Spends one value of the budget on `r`, at nesting `depth`.
    fn enter(&mut self, r: &Ref, depth: usize) -> Result<(), ConstructError> {
        self.spend(r.site())?;
        // Each alias can add a nesting's worth of depth; bound the total so
        // that neither this recursion nor a later one can exhaust the stack.
        if depth > MAX_VALUE_DEPTH {
            return Err(ConstructError {
                message: format!("aliases nest values more than {MAX_VALUE_DEPTH} levels deep"),
                at: r.site(),
                kind: ConstructErrorKind::TooLarge,
                related: None,
                label: String::new(),
            });
        }
        Ok(())
    }

    fn value_at(&mut self, r: &Ref, depth: usize) -> Result<Value, ConstructError> {
        self.enter(r, depth)?;
        let node = &r.node;
        let tag = node.tag();
        match &node.kind {
            NodeKind::Scalar { .. } => self.scalar(node),
            NodeKind::Seq(items) => match tag.map(|t| tag_suffix(t).unwrap_or(t)) {
                None | Some("seq") => {
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        out.push(self.value_at(item, depth + 1)?);
                    }
                    Ok(Value::Seq(out))
                }
                Some("omap" | "pairs") => {
                    let mut out = Vec::with_capacity(items.len());
                    for item in items {
                        let NodeKind::Map(pairs) = &item.node.kind else {
                            return Err(pairs_error(item));
                        };
                        if pairs.len() != 1 {
                            return Err(pairs_error(item));
                        }
                        let (k, v) = &pairs[0];
                        out.push(Value::Seq(vec![
                            self.value_at(k, depth + 1)?,
                            self.value_at(v, depth + 1)?,
                        ]));
                    }
                    Ok(Value::Seq(out))
                }
                Some(_) => Err(unknown_tag(tag.unwrap_or_default(), node.span)),
            },
            NodeKind::Map(_) => match tag.map(|t| tag_suffix(t).unwrap_or(t)) {
                None | Some("map") => {
                    let flat = self.flatten(node)?;
                    for lost in &flat.overridden {
                        self.value_at(lost, depth + 1)?;
                    }
                    let mut map =
                        Map::with_capacity_and_hasher(flat.entries.len(), Default::default());
                    for (key, entry) in &flat.entries {
                        map.insert(key.clone(), self.value_at(&entry.value, depth + 1)?);
                    }
                    Ok(Value::Map(map))
                }
                Some("set") => {
                    let flat = self.flatten(node)?;
                    Ok(Value::Set(flat.entries.keys().cloned().collect()))
                }
                Some(_) => Err(unknown_tag(tag.unwrap_or_default(), node.span)),
            },
        }
    }
}

fn unknown_tag(tag: &str, at: Span) -> ConstructError {
    let shown = tag
        .strip_prefix(TAG_PREFIX)
        .map_or_else(|| tag.to_owned(), |s| format!("!!{s}"));
    if shown.starts_with("!!python/") || tag.starts_with("tag:yaml.org,2002:python/") {
        return ConstructError {
            message: format!(
                "the tag `{shown}` is refused: docker-registry would have run code here"
            ),
            at,
            kind: ConstructErrorKind::PythonTag,
            related: None,
            label: String::new(),
        };
    }
    ConstructError {
        message: format!("unknown tag `{shown}`"),
        at,
        kind: ConstructErrorKind::UnknownTag,
        related: None,
        label: String::new(),
    }
}

fn merge_error(bad: &Ref, merge_key: Span) -> ConstructError {
    let what = match &bad.node.kind {
        NodeKind::Scalar { .. } => "a scalar",
        NodeKind::Seq(_) => "a list",
        NodeKind::Map(_) => "a mapping",
    };
    ConstructError {
        message: format!(
            "a merge key `<<` needs a mapping or a list of mappings, but found {what}"
        ),
        at: bad.site(),
        label: format!("this is {what}"),
        kind: ConstructErrorKind::MergeNotMapping,
        related: Some(merge_key),
    }
}

fn pairs_error(item: &Ref) -> ConstructError {
    ConstructError {
        message: "each entry of an ordered map must be a mapping of one key".to_owned(),
        at: item.site(),
        kind: ConstructErrorKind::Scalar,
        related: None,
        label: String::new(),
    }
}
