//! How flavors inherit: the merge keys of each section, read from the
//! composed document (for `regconf flavors` and `regconf explain`).
//!
//! A flavor inherits through the `<<` keys of its section, in PyYAML's
//! precedence (explicit keys first, then the sources of `<<` in order, each
//! with its own sources), and, under the implicit rule, from `common`. This
//! module only reads structure; values are the resolver's business.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::parse::{Document, Node, NodeKind, Ref};
use crate::config::resolve::{self, Inherit, Rule};
use crate::config::source::{Source, Span};
use crate::config::value::Key;
use crate::diagnostics::Diagnostic;

/// One section a flavor merges (`<<: *s3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parent {
    /// The anchor named by the alias (`s3`).
    pub(crate) anchor: String,
    /// The flavor whose section the anchor marks, if it marks one.
    pub(crate) flavor: Option<String>,
    /// The `<<` key.
    pub(crate) merge_key: Span,
}

/// One flavor and what it inherits from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flavor {
    /// Its name.
    pub(crate) name: String,
    /// The anchor on its section (`&s3`), if any.
    pub(crate) anchor: Option<String>,
    /// Where its name is written.
    pub(crate) at: Span,
    /// The sections its `<<` keys merge, in precedence order.
    pub(crate) parents: Vec<Parent>,
    /// Whether `common` is its implicit base (implicit rule).
    pub(crate) implicit_common: bool,
    /// The variable that supplies the whole section (`dev: _env:DEVCONF`).
    pub(crate) variable: Option<String>,
}

/// Every flavor of a file, in file order, and the rule that applies.
#[derive(Debug, Clone)]
pub(crate) struct Inheritance {
    /// The inheritance rule.
    pub(crate) rule: Rule,
    /// Whether `--inherit auto` chose it.
    pub(crate) rule_was_auto: bool,
    /// The flavors.
    pub(crate) flavors: Vec<Flavor>,
}

/// Reads how the flavors of `source` inherit.
pub(crate) fn inheritance(
    source: Arc<Source>,
    inherit: Inherit,
) -> Result<Inheritance, Vec<Diagnostic>> {
    let doc = crate::config::parse_source(source)?;
    let has_merge = resolve::has_merge_key(&doc);
    let top = resolve::top_level(&doc)?;
    let common_is_map = top
        .flat
        .entries
        .get(&Key::from("common"))
        .is_some_and(|e| matches!(e.value.node.kind, NodeKind::Map(_)));
    let (rule, rule_was_auto) = match inherit {
        Inherit::Explicit => (Rule::Explicit, false),
        Inherit::Implicit => (Rule::Implicit, false),
        Inherit::Auto if !has_merge && common_is_map => (Rule::Implicit, true),
        Inherit::Auto => (Rule::Explicit, true),
    };
    let sections = sections(&doc);
    let mut flavors = Vec::new();
    for (key, entry) in &top.flat.entries {
        let Some(name) = key.as_str() else { continue };
        let node = &entry.value.node;
        let variable = match &node.kind {
            NodeKind::Scalar { text, .. } => {
                crate::config::env::parse_ref(text).map(|r| r.name.to_owned())
            }
            _ => None,
        };
        let parents = node
            .merge_sources(Ref::is_merge_key)
            .into_iter()
            .map(|(merge_key, r)| Parent {
                anchor: r.node.anchor().map(str::to_owned).unwrap_or_default(),
                flavor: sections.get(&Arc::as_ptr(&r.node)).cloned(),
                merge_key,
            })
            .collect();
        flavors.push(Flavor {
            name: name.to_owned(),
            anchor: node.anchor().map(str::to_owned),
            at: entry.key_node.site(),
            parents,
            implicit_common: rule == Rule::Implicit && name != "common" && common_is_map,
            variable,
        });
    }
    Ok(Inheritance {
        rule,
        rule_was_auto,
        flavors,
    })
}

/// Section node → flavor name.
fn sections(doc: &Document) -> HashMap<*const Node, String> {
    let mut out = HashMap::new();
    if let Some(root) = &doc.root
        && let NodeKind::Map(pairs) = &root.node.kind
    {
        for (k, v) in pairs {
            if let Some((name, _)) = k.scalar() {
                out.entry(Arc::as_ptr(&v.node))
                    .or_insert_with(|| name.to_owned());
            }
        }
    }
    out
}

impl Inheritance {
    /// A flavor by name.
    pub(crate) fn get(&self, name: &str) -> Option<&Flavor> {
        self.flavors.iter().find(|f| f.name == name)
    }

    /// The chain a flavor inherits through, nearest first, following the
    /// first source of each `<<` (`prod`, `s3`, `common`); under the implicit
    /// rule `common` ends it.
    pub(crate) fn lineage(&self, name: &str) -> Vec<String> {
        let mut out = vec![name.to_owned()];
        let mut current = self.get(name);
        while let Some(f) = current {
            let next = f
                .parents
                .first()
                .map(|p| p.flavor.clone().unwrap_or_else(|| format!("*{}", p.anchor)));
            match next {
                Some(n) if !out.contains(&n) => {
                    current = self.get(&n);
                    out.push(n);
                }
                _ => break,
            }
        }
        if self.get(name).is_some_and(|f| f.implicit_common) && !out.iter().any(|n| n == "common") {
            out.push("common".to_owned());
        }
        out
    }
}

/// One place a top-level key of a flavor is written, in precedence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Definition {
    /// The section it is written in: a flavor's name, or `*anchor`.
    pub(crate) section: String,
    /// The value as written.
    pub(crate) value: Span,
}

/// Every place that writes `key` for `flavor`, the one that wins first:
/// the section itself, then each merged section in PyYAML's order, then
/// (implicit rule) `common`.
pub(crate) fn definitions(
    source: Arc<Source>,
    flavor: &str,
    key: &str,
    implicit: bool,
) -> Vec<Definition> {
    let Ok(doc) = crate::config::parse_source(source) else {
        return Vec::new();
    };
    let names = sections(&doc);
    let Some(root) = &doc.root else {
        return Vec::new();
    };
    let NodeKind::Map(pairs) = &root.node.kind else {
        return Vec::new();
    };
    let section = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k.scalar().is_some_and(|(t, _)| t == name))
            .map(|(_, v)| Arc::clone(&v.node))
    };
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<(String, Arc<Node>)> = Vec::new();
    if let Some(node) = section(flavor) {
        stack.push((flavor.to_owned(), node));
    }
    while let Some((name, node)) = stack.pop() {
        if !seen.insert(Arc::as_ptr(&node)) {
            continue;
        }
        if let NodeKind::Map(pairs) = &node.kind
            && let Some((_, v)) = pairs
                .iter()
                .rev()
                .find(|(k, _)| !k.is_merge_key() && k.scalar().is_some_and(|(t, _)| t == key))
        {
            out.push(Definition {
                section: name.clone(),
                value: v.site(),
            });
        }
        // Sources pushed in reverse, so the first is visited next.
        for (_, r) in node.merge_sources(Ref::is_merge_key).into_iter().rev() {
            let label = names
                .get(&Arc::as_ptr(&r.node))
                .cloned()
                .unwrap_or_else(|| {
                    format!(
                        "*{}",
                        r.node.anchor().map(str::to_owned).unwrap_or_default()
                    )
                });
            stack.push((label, Arc::clone(&r.node)));
        }
    }
    if implicit
        && flavor != "common"
        && let Some(common) = section("common")
        && seen.insert(Arc::as_ptr(&common))
        && let NodeKind::Map(pairs) = &common.kind
        && let Some((_, v)) = pairs
            .iter()
            .rev()
            .find(|(k, _)| k.scalar().is_some_and(|(t, _)| t == key))
    {
        out.push(Definition {
            section: "common".to_owned(),
            value: v.site(),
        });
    }
    out
}
