//! Stages 3 and 4: select the flavor and resolve `_env:` values, as
//! docker-registry 0.9.1's loader and `Config` object did.
//!
//! Input: a composed [`Document`]. Output: the effective configuration of one
//! flavor (a [`Map`]) and its [`Provenance`]. The rules (contract sections
//! 2.1 to 2.4): the flavor's section is chosen by name; `_env:` strings are
//! replaced, inside nested mappings but not inside lists, by the variable's
//! value or the default, YAML-typed; a mapping that a variable supplies is
//! resolved in turn; `flavor` is injected, `index_endpoint` stripped of `/`,
//! and a truthy `privileged_key` must name an existing file.
//!
//! Every problem found is reported, not only the first. This module must not
//! print, read the process environment, or open any file but the privileged
//! key's existence check (done through the caller's function).
//!
//! By concern: [`document`] checks the file as a whole (one mapping, every
//! value constructible) and names its flavors; this file selects the
//! flavor's section; [`variables`] walks it, resolving `_env:` values;
//! [`injected`] does what docker-registry's loader added afterwards.

mod document;
mod injected;
mod variables;

use std::sync::Arc;

use super::construct::{Builder, Entry};
use super::env::{self, Env};
use super::origin::{EnvUse, Provenance};
use super::parse::{self, Document, NodeKind, ParseError};
use super::source::Source;
use super::value::{Key, Map, Value};
use crate::diagnostics::Diagnostic;

pub use document::{TopLevel, top_level};
pub(crate) use document::{
    construct_diagnostic, did_you_mean, flavor_names, has_merge_key, parse_diagnostic,
};
use injected::finish;
use variables::{Item, Text, Walker, variable_problem};

/// Which inheritance rule to apply (deliberate difference 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Inherit {
    /// Implicit when the file has no merge key anywhere and has a `common`
    /// mapping; explicit otherwise.
    #[default]
    Auto,
    /// Only merge keys share settings (docker-registry 0.8 and later).
    Explicit,
    /// `common` is also the shallow base of every flavor (0.6 and 0.7).
    Implicit,
}

/// The rule that was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Merge keys only.
    Explicit,
    /// `common` under every flavor.
    Implicit,
}

/// The effective configuration of one flavor.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The selected flavor.
    pub flavor: String,
    /// The rule that applied.
    pub rule: Rule,
    /// Whether `--inherit auto` chose the rule.
    pub rule_was_auto: bool,
    /// The configuration, as docker-registry's runtime saw it.
    pub config: Map,
    /// Where each value came from.
    pub provenance: Provenance,
}

/// Resolves `flavor` in `doc`.
///
/// `file_exists` answers the privileged key's existence check.
pub(crate) fn resolve(
    doc: Document,
    flavor: &str,
    inherit: Inherit,
    env: &Env,
    file_exists: &dyn Fn(&str) -> bool,
) -> Result<Resolved, Vec<Diagnostic>> {
    if flavor.is_empty() {
        return Err(vec![
            Diagnostic::error("regconf::flavor::none_selected", "no flavor selected").help(
                "pass `--flavor NAME` or set `SETTINGS_FLAVOR`; an empty flavor is not allowed",
            ),
        ]);
    }
    let top = top_level(&doc)?;
    resolve_in(doc, top, flavor, inherit, env, file_exists)
}

/// [`resolve`] with the file's top level already checked and flattened
/// (`validate --flavor` hands over its static pass's, so that a large
/// file is neither checked nor flattened twice).
pub(crate) fn resolve_in(
    doc: Document,
    top: TopLevel,
    flavor: &str,
    inherit: Inherit,
    env: &Env,
    file_exists: &dyn Fn(&str) -> bool,
) -> Result<Resolved, Vec<Diagnostic>> {
    let source = Arc::clone(&doc.source);
    if flavor.is_empty() {
        return Err(vec![
            Diagnostic::error("regconf::flavor::none_selected", "no flavor selected").help(
                "pass `--flavor NAME` or set `SETTINGS_FLAVOR`; an empty flavor is not allowed",
            ),
        ]);
    }
    let no_merge_key = inherit == Inherit::Auto && !has_merge_key(&doc);
    let TopLevel { flat, builder } = top;
    let (rule, rule_was_auto) = match inherit {
        Inherit::Explicit => (Rule::Explicit, false),
        Inherit::Implicit => (Rule::Implicit, false),
        // `common` becomes the base only when there is one to build on.
        Inherit::Auto => match flat.entries.get(&Key::from("common")) {
            Some(common) if no_merge_key && matches!(common.value.node.kind, NodeKind::Map(_)) => {
                (Rule::Implicit, true)
            }
            _ => (Rule::Explicit, true),
        },
    };
    let names = flavor_names(&flat);
    let Some(section) = flat.entries.get(&Key::from(flavor)).cloned() else {
        let mut d = Diagnostic::error(
            "regconf::flavor::missing",
            format!("flavor `{flavor}` is not in `{}`", source.name()),
        )
        .with_source(&source);
        let listed = names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        d = match did_you_mean(flavor, names.iter().map(String::as_str)) {
            Some(near) => {
                let span = flat.entries[&Key::from(near)].key_node.site();
                d.label(span, format!("did you mean `{near}`?"))
                    .help(format!("did you mean `{near}`? the flavors are: {listed}"))
            }
            None => d.help(format!("the flavors are: {listed}")),
        };
        return Err(vec![d]);
    };
    let mut walker = Walker {
        env,
        flavor,
        texts: vec![Text {
            doc,
            builder,
            variable: None,
        }],
        provenance: Provenance::default(),
        problems: Vec::new(),
        expanding: Vec::new(),
    };
    let Some(items) = section_items(&mut walker, &section, &source) else {
        return Err(walker.problems);
    };
    let mut items = items;
    if rule == Rule::Implicit
        && flavor != "common"
        && let Some(common) = flat.entries.get(&Key::from("common"))
        && matches!(common.value.node.kind, NodeKind::Map(_))
        && common.value.node.tag().is_none()
        && let Some(common_flat) = walker.flatten(0, &common.value)
    {
        let mut base = walker.items(0, &common_flat);
        for b in &mut base {
            b.implicit_common = true;
        }
        let mut merged: indexmap::IndexMap<Key, Item> =
            base.into_iter().map(|i| (i.key.clone(), i)).collect();
        for item in items {
            merged.insert(item.key.clone(), item);
        }
        items = merged.into_values().collect();
    }
    let mut config = walker.walk(items, &mut Vec::new());
    finish(&mut walker, &mut config, file_exists);
    if walker.problems.is_empty() {
        Ok(Resolved {
            flavor: flavor.to_owned(),
            rule,
            rule_was_auto,
            config,
            provenance: walker.provenance,
        })
    } else {
        for p in &mut walker.problems {
            if p.flavor.is_none() {
                p.flavor = Some(flavor.to_owned());
            }
        }
        Err(walker.problems)
    }
}

/// The entries of the selected flavor's section: a mapping in the file, or
/// a mapping that an `_env:` reference supplies (`dev: _env:DEVCONF`).
fn section_items(
    walker: &mut Walker<'_>,
    section: &Entry,
    source: &Arc<Source>,
) -> Option<Vec<Item>> {
    let flavor = walker.flavor;
    let node = &section.value.node;
    if matches!(node.kind, NodeKind::Map(_)) && node.tag().is_none() {
        let flat = walker.flatten(0, &section.value)?;
        return Some(walker.items(0, &flat));
    }
    let not_mapping = |what: &str| {
        Diagnostic::error(
            "regconf::flavor::not_a_mapping",
            format!("flavor `{flavor}` is {what}, not a mapping"),
        )
        .with_source(source)
        .label(section.value.site(), "")
        .label(section.key_node.site(), "this flavor")
        .help("a flavor section holds settings as `key: value` lines, indented under its name")
        .in_flavor(flavor)
    };
    let value = match &node.kind {
        NodeKind::Scalar { .. } => walker.texts[0].builder.scalar(node),
        _ => walker.texts[0].builder.value(&section.value),
    };
    let value = match value {
        Ok(v) => v,
        Err(e) => {
            let d = walker.construct_problem(0, &e);
            walker.problems.push(d);
            return None;
        }
    };
    let Value::Str(text) = &value else {
        walker
            .problems
            .push(not_mapping(&article(value.type_name())));
        return None;
    };
    let Some(reference) = env::parse_ref(text) else {
        walker.problems.push(not_mapping("a string"));
        return None;
    };
    let given = env::lookup(&reference, walker.env);
    let var = EnvUse {
        name: reference.name.to_owned(),
        given,
        reference: section.value.site(),
    };
    let var_source = Source::new(format!("${}", var.name), var.given.text());
    let doc = match parse::parse(var_source) {
        Ok(doc) => doc,
        Err(e) => {
            let detail = match &e {
                ParseError::Syntax { message, .. } => message.clone(),
                _ => "it is not a single YAML document".to_owned(),
            };
            walker
                .problems
                .push(variable_problem(&var, source, &detail));
            return None;
        }
    };
    let root = match &doc.root {
        Some(r) if matches!(r.node.kind, NodeKind::Map(_)) && r.node.tag().is_none() => r.clone(),
        Some(r) => {
            let mut b = Builder::new();
            let what = b
                .value(r)
                .map_or_else(|_| "not a mapping".to_owned(), |v| article(v.type_name()));
            walker
                .problems
                .push(
                    not_mapping(&format!("{what} (from `{}`)", var.name)).help(format!(
                        "set `{}` to a YAML mapping such as `{{storage: local}}`",
                        var.name
                    )),
                );
            return None;
        }
        None => {
            walker
                .problems
                .push(not_mapping(&format!("null (from `{}`)", var.name)));
            return None;
        }
    };
    walker.texts.push(Text {
        doc,
        builder: Builder::new(),
        variable: Some(var),
    });
    let t = walker.texts.len() - 1;
    let flat = walker.flatten(t, &root)?;
    Some(walker.items(t, &flat))
}

pub(super) fn article(type_name: &str) -> String {
    match type_name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_name}"),
        _ if type_name == "null" => "null".to_owned(),
        _ => format!("a {type_name}"),
    }
}
