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

use std::collections::HashSet;
use std::sync::Arc;

use super::construct::{Builder, ConstructError, ConstructErrorKind, Entry, Flat};
use super::env::{self, Env, Given};
use super::origin::{EnvUse, Injected, KeyPath, Origin, Provenance};
use super::parse::{self, Document, NodeKind, ParseError, Ref};
use super::source::{Source, Span};
use super::value::{Key, Map, Value};
use crate::diagnostics::Diagnostic;

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

/// Converts a composer error into a diagnostic on `source`.
pub fn parse_diagnostic(err: &ParseError, source: &Arc<Source>) -> Diagnostic {
    match err {
        ParseError::Syntax { message, at } => Diagnostic::error(
            "regconf::yaml::syntax",
            format!("the file is not valid YAML: {message}"),
        )
        .with_source(source)
        .label(*at, "here")
        .help(if source.line_text(at.start).contains("_env:") {
            "an `_env:` value that ends in `:` or holds `: ` must be quoted: `'_env:NAME:'`"
        } else {
            "check the indentation and quoting on this line and the one before"
        }),
        ParseError::MultipleDocuments { at } => Diagnostic::error(
            "regconf::yaml::multiple_documents",
            "the file holds more than one YAML document",
        )
        .with_source(source)
        .label(*at, "a second document starts here")
        .help("docker-registry read exactly one document; remove the `---` and what follows, or merge them"),
        ParseError::UndefinedAlias { at } => Diagnostic::error(
            "regconf::yaml::undefined_alias",
            "this alias names an anchor that is not defined before it",
        )
        .with_source(source)
        .label(*at, "unknown anchor")
        .help("define the anchor (`&name`) above its first use (`*name`)"),
        ParseError::DuplicateAnchor {
            name,
            first,
            second,
        } => Diagnostic::error(
            "regconf::yaml::duplicate_anchor",
            format!("the anchor `&{name}` is defined twice"),
        )
        .with_source(source)
        .label(*second, "defined again here")
        .label(*first, "first defined here")
        .help("give each anchor its own name"),
        ParseError::TooDeep { at } => Diagnostic::error(
            "regconf::yaml::too_deep",
            format!("lists and mappings nest more than {} levels deep", parse::MAX_DEPTH),
        )
        .with_source(source)
        .label(*at, "too deep from here")
        .help("a configuration needs a few levels; flatten this structure"),
        ParseError::RecursiveAlias { at, anchor } => Diagnostic::error(
            "regconf::yaml::recursive_alias",
            "this alias refers to the node that contains it",
        )
        .with_source(source)
        .label(*at, "used inside its own anchor")
        .label(*anchor, "anchor defined here")
        .help("a node cannot include itself; copy the values instead"),
    }
}

/// Converts a construction error into a diagnostic on `source`.
pub fn construct_diagnostic(err: &ConstructError, source: &Arc<Source>) -> Diagnostic {
    let (code, help) = match err.kind {
        ConstructErrorKind::Scalar => (
            "regconf::yaml::bad_scalar",
            "quote the value if it is meant as a string",
        ),
        ConstructErrorKind::UnknownTag => (
            "regconf::yaml::unknown_tag",
            "docker-registry's YAML loader knew only the standard `!!` tags; remove the tag",
        ),
        ConstructErrorKind::PythonTag => (
            "regconf::yaml::python_tag",
            "remove the tag; regconf never constructs Python objects",
        ),
        ConstructErrorKind::MergeNotMapping => (
            "regconf::merge::not_a_mapping",
            "write `<<: *anchor` or `<<: [*a, *b]`, where each anchor names a mapping",
        ),
        ConstructErrorKind::UnhashableKey => (
            "regconf::yaml::unhashable_key",
            "use a string, number or boolean as the key",
        ),
        ConstructErrorKind::TooLarge => (
            "regconf::yaml::too_large",
            "the aliases nest too deeply to expand; write the values out",
        ),
    };
    let mut d = Diagnostic::error(code, err.message.clone())
        .with_source(source)
        .label(err.at, err.label.clone())
        .help(help);
    if let Some(related) = err.related {
        d = d.label(related, "merged here");
    }
    d
}

/// Whether any mapping in the document has a merge key.
pub fn has_merge_key(doc: &Document) -> bool {
    let Some(root) = &doc.root else { return false };
    let mut seen = HashSet::new();
    let mut stack = vec![Arc::clone(&root.node)];
    while let Some(node) = stack.pop() {
        if !seen.insert(Arc::as_ptr(&node)) {
            continue;
        }
        match &node.kind {
            NodeKind::Scalar { .. } => {}
            NodeKind::Seq(items) => stack.extend(items.iter().map(|r| Arc::clone(&r.node))),
            NodeKind::Map(pairs) => {
                for (k, v) in pairs {
                    let is_merge = match (&k.node.kind, &k.node.tag) {
                        (NodeKind::Scalar { text, style }, None) => {
                            *style == parse::Style::Plain && text == "<<"
                        }
                        (NodeKind::Scalar { .. }, Some(t)) => t == "tag:yaml.org,2002:merge",
                        _ => false,
                    };
                    if is_merge {
                        return true;
                    }
                    stack.push(Arc::clone(&k.node));
                    stack.push(Arc::clone(&v.node));
                }
            }
        }
    }
    false
}

/// The top level of a file, checked to be a mapping and flattened.
pub struct TopLevel {
    /// The file's flattened top-level mapping.
    pub flat: Arc<Flat>,
    /// The builder that made it (reused for the flavor's values).
    pub builder: Builder,
}

/// Checks that the file is one mapping and that every value in it can be
/// constructed, as PyYAML did when it loaded the whole file.
pub fn top_level(doc: &Document) -> Result<TopLevel, Vec<Diagnostic>> {
    let source = &doc.source;
    let Some(root) = &doc.root else {
        return Err(vec![
            Diagnostic::error("regconf::flavor::empty_file", "the file is empty")
                .with_source(source)
                .help("start from the bundled file: `regconf init`"),
        ]);
    };
    let is_map = matches!(root.node.kind, NodeKind::Map(_))
        && root
            .node
            .tag
            .as_deref()
            .is_none_or(|t| t == "tag:yaml.org,2002:map");
    let mut builder = Builder::new();
    let whole = builder
        .value(root)
        .map_err(|e| vec![construct_diagnostic(&e, source)])?;
    if !is_map {
        return Err(vec![
            Diagnostic::error(
                "regconf::flavor::top_not_mapping",
                format!(
                    "the top level of the file is a {}, not a mapping of flavors",
                    whole.type_name()
                ),
            )
            .with_source(source)
            .label(
                Span::new(root.node.span.start, first_line_end(source, root.node.span)),
                "",
            )
            .help("write one section per flavor: `dev:`, `prod:`, each a mapping of settings"),
        ]);
    }
    let flat = builder
        .flatten(&root.node)
        .map_err(|e| vec![construct_diagnostic(&e, source)])?;
    Ok(TopLevel { flat, builder })
}

fn first_line_end(source: &Source, span: Span) -> usize {
    let text = &source.text()[span.start..span.end];
    span.start + text.find('\n').unwrap_or(text.len())
}

/// The names of the flavors (top-level string keys), in file order.
pub fn flavor_names(flat: &Flat) -> Vec<String> {
    flat.entries
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect()
}

/// The closest name to `wanted` among `names`, if one is close enough.
pub fn did_you_mean<'a>(wanted: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names
        .into_iter()
        .map(|n| (strsim::damerau_levenshtein(wanted, n), n))
        .filter(|(d, n)| *d <= (n.chars().count().max(wanted.chars().count()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// A text whose nodes a walk reads: the file, or a variable's value.
struct Text {
    doc: Document,
    builder: Builder,
    /// For a variable's text: the variable and the `_env:` in the file.
    variable: Option<EnvUse>,
}

/// One entry to walk, with the text its nodes belong to.
struct Item {
    key: Key,
    entry: Entry,
    text: usize,
    implicit_common: bool,
}

struct Walker<'a> {
    env: &'a Env,
    flavor: &'a str,
    texts: Vec<Text>,
    provenance: Provenance,
    problems: Vec<Diagnostic>,
}

impl Walker<'_> {
    fn file(&self) -> &Arc<Source> {
        &self.texts[0].doc.source
    }

    /// The span in the file to point at for a node of text `t`.
    fn file_site(&self, t: usize, span: Span) -> Span {
        match &self.texts[t].variable {
            None => span,
            Some(var) => var.reference,
        }
    }

    fn items(&mut self, t: usize, flat: &Flat) -> Vec<Item> {
        flat.entries
            .iter()
            .map(|(k, e)| Item {
                key: k.clone(),
                entry: e.clone(),
                text: t,
                implicit_common: false,
            })
            .collect()
    }

    fn flatten(&mut self, t: usize, r: &Ref) -> Option<Arc<Flat>> {
        match self.texts[t].builder.flatten(&r.node) {
            Ok(f) => Some(f),
            Err(e) => {
                let d = self.construct_problem(t, &e);
                self.problems.push(d);
                None
            }
        }
    }

    fn construct_problem(&self, t: usize, e: &ConstructError) -> Diagnostic {
        match &self.texts[t].variable {
            None => construct_diagnostic(e, self.file()),
            Some(var) => variable_problem(var, self.file(), &e.message),
        }
    }

    /// Walks the entries of one mapping into `out`.
    fn walk(&mut self, items: Vec<Item>, path: &mut KeyPath) -> Map {
        let mut out = Map::with_capacity(items.len());
        for item in items {
            path.push(item.key.clone());
            if let Some(v) = self.walk_value(&item, path) {
                out.insert(item.key, v);
            }
            path.pop();
        }
        out
    }

    fn origin_of(&self, item: &Item) -> Origin {
        let in_file = self.texts[item.text].variable.is_none();
        Origin {
            value_span: in_file.then(|| item.entry.value.site()),
            key_span: in_file.then(|| item.entry.key_node.site()),
            via: item.entry.via.clone(),
            env: self.texts[item.text].variable.clone(),
            inside_variable: self.texts[item.text]
                .variable
                .as_ref()
                .map(|v| v.name.clone()),
            implicit_common: item.implicit_common,
            injected: None,
            cli: None,
        }
    }

    fn walk_value(&mut self, item: &Item, path: &mut KeyPath) -> Option<Value> {
        let t = item.text;
        let r = &item.entry.value;
        let mut origin = self.origin_of(item);
        let value = match &r.node.kind {
            NodeKind::Map(_) if r.node.tag.is_none() => {
                let flat = self.flatten(t, r)?;
                let items = self.items(t, &flat);
                self.provenance.insert(path.clone(), origin);
                return Some(Value::Map(self.walk(items, path)));
            }
            NodeKind::Scalar { .. } => match self.texts[t].builder.scalar(&r.node) {
                Ok(Value::Str(s)) if s.starts_with("_env:") => {
                    let site = self.file_site(t, r.site());
                    let reference = env::parse_ref(&s).expect("checked prefix");
                    let given = env::lookup(&reference, self.env);
                    let var = EnvUse {
                        name: reference.name.to_owned(),
                        given,
                        reference: site,
                    };
                    origin.env = Some(var.clone());
                    let value = self.variable_value(var, path, &mut origin)?;
                    self.provenance.insert(path.clone(), origin);
                    return Some(value);
                }
                other => other,
            },
            _ => self.texts[t].builder.value(r),
        };
        match value {
            Ok(v) => {
                self.provenance.insert(path.clone(), origin);
                Some(v)
            }
            Err(e) => {
                let d = self.construct_problem(t, &e);
                self.problems.push(d);
                None
            }
        }
    }

    /// Types a variable's text; a mapping is walked in turn.
    fn variable_value(
        &mut self,
        var: EnvUse,
        path: &mut KeyPath,
        origin: &mut Origin,
    ) -> Option<Value> {
        let source = Source::new(format!("${}", var.name), var.given.text());
        let doc = match parse::parse(source) {
            Ok(doc) => doc,
            Err(e) => {
                let detail = match &e {
                    ParseError::Syntax { message, .. } => message.clone(),
                    ParseError::MultipleDocuments { .. } => {
                        "it holds more than one YAML document".to_owned()
                    }
                    other => parse_diagnostic(other, self.file()).message,
                };
                self.problems
                    .push(variable_problem(&var, self.file(), &detail));
                return None;
            }
        };
        let Some(root) = doc.root.clone() else {
            return Some(Value::Null);
        };
        self.texts.push(Text {
            doc,
            builder: Builder::new(),
            variable: Some(var),
        });
        let t = self.texts.len() - 1;
        if matches!(root.node.kind, NodeKind::Map(_)) && root.node.tag.is_none() {
            let flat = self.flatten(t, &root)?;
            let items = self.items(t, &flat);
            origin.inside_variable = None;
            return Some(Value::Map(self.walk(items, path)));
        }
        match self.texts[t].builder.value(&root) {
            Ok(v) => Some(v),
            Err(e) => {
                let d = self.construct_problem(t, &e);
                self.problems.push(d);
                None
            }
        }
    }
}

fn variable_problem(var: &EnvUse, file: &Arc<Source>, detail: &str) -> Diagnostic {
    let (what, text) = match &var.given {
        Given::Set(v) => ("the value of", v.as_str()),
        Given::Default(d) => ("the default of", d.as_str()),
        Given::Unset => ("the value of", ""),
    };
    Diagnostic::error(
        "regconf::env::invalid_yaml",
        format!("{what} `{}` is not valid YAML: {detail}", var.name),
    )
    .with_source(file)
    .label(var.reference, format!("`{}` is `{}`", var.name, text.escape_debug()))
    .help("docker-registry parsed each variable's text as YAML; quote it in the variable (`'[GET'`) if it is meant as a string")
}

/// Resolves `flavor` in `doc`.
///
/// `file_exists` answers the privileged key's existence check.
pub fn resolve(
    doc: Document,
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
    let TopLevel { flat, builder } = top_level(&doc)?;
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
    };
    let Some(items) = section_items(&mut walker, &section, &source) else {
        return Err(walker.problems);
    };
    let mut items = items;
    if rule == Rule::Implicit
        && flavor != "common"
        && let Some(common) = flat.entries.get(&Key::from("common"))
        && matches!(common.value.node.kind, NodeKind::Map(_))
        && common.value.node.tag.is_none()
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

/// What `_init()` did after selecting the flavor.
fn finish(walker: &mut Walker<'_>, config: &mut Map, file_exists: &dyn Fn(&str) -> bool) {
    let file = Arc::clone(walker.file());
    let flavor = walker.flavor;
    let site = |walker: &Walker<'_>, key: &str| -> Option<Span> {
        let o = walker.provenance.get(&[Key::from(key)])?;
        o.env.as_ref().map(|e| e.reference).or(o.value_span)
    };
    let key = Key::from("privileged_key");
    if let Some(value) = config.get(&key)
        && (value.is_truthy() || matches!(value, Value::Map(_)))
    {
        {
            let problem = match value {
                Value::Str(path) if file_exists(path) => None,
                Value::Str(path) => Some(format!(
                    "the privileged key `{path}` is not a readable file"
                )),
                other => Some(format!(
                    "`privileged_key` must be the path of a file, not {}",
                    article(other.type_name())
                )),
            };
            if let Some(message) = problem {
                let mut d = Diagnostic::error("regconf::key::privileged_key_missing", message)
                    .with_source(&file)
                    .in_flavor(flavor)
                    .at_key("privileged_key")
                    .help("docker-registry opened this RSA public key at start; give the path of an existing file, or leave the key empty");
                if let Some(span) = site(walker, "privileged_key") {
                    d = d.label(span, "");
                }
                walker.problems.push(d);
            }
        }
    }
    let key = Key::from("index_endpoint");
    if let Some(value) = config.get(&key).cloned()
        && (value.is_truthy() || matches!(value, Value::Map(_)))
    {
        {
            match value {
                Value::Str(s) => {
                    let stripped = s.trim_matches('/').to_owned();
                    if stripped != s
                        && let Some(o) = walker.provenance.get_mut(std::slice::from_ref(&key))
                    {
                        o.injected = Some(Injected::IndexEndpointStripped);
                    }
                    config.insert(key, Value::Str(stripped));
                }
                Value::Bytes(b) => {
                    let start = b.iter().position(|&c| c != b'/').unwrap_or(b.len());
                    let end = b.iter().rposition(|&c| c != b'/').map_or(start, |e| e + 1);
                    config.insert(key, Value::Bytes(b[start..end.max(start)].to_vec()));
                }
                other => {
                    let mut d = Diagnostic::error(
                        "regconf::key::index_endpoint_type",
                        format!(
                            "`index_endpoint` must be a URL string, not {}",
                            article(other.type_name())
                        ),
                    )
                    .with_source(&file)
                    .in_flavor(flavor)
                    .at_key("index_endpoint")
                    .help("quote the value: `index_endpoint: 'https://index.example.com'`");
                    if let Some(span) = site(walker, "index_endpoint") {
                        d = d.label(span, "");
                    }
                    walker.problems.push(d);
                }
            }
        }
    }
    let key = Key::from("flavor");
    config.insert(key.clone(), Value::Str(flavor.to_owned()));
    let origin = Origin {
        injected: Some(Injected::Flavor),
        ..walker
            .provenance
            .get(std::slice::from_ref(&key))
            .cloned()
            .unwrap_or_default()
    };
    walker.provenance.insert(vec![key], origin);
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
    if matches!(node.kind, NodeKind::Map(_)) && node.tag.is_none() {
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
        Some(r) if matches!(r.node.kind, NodeKind::Map(_)) && r.node.tag.is_none() => r.clone(),
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

fn article(type_name: &str) -> String {
    match type_name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_name}"),
        _ if type_name == "null" => "null".to_owned(),
        _ => format!("a {type_name}"),
    }
}
