//! `validate`: every flavor of a file checked statically, and optionally one
//! flavor resolved in an environment.
//!
//! Without a flavor, each flavor is resolved as if no variable were set:
//! `_env:` values take their defaults, and the result goes through
//! [`typed::to_model`] in [`Mode::Static`]. One problem is reported once,
//! even when several flavors inherit it (the first flavor in file order
//! names it). A pass over the whole document adds the docker-registry
//! pitfalls the contract lists, as warnings:
//!
//! * duplicate keys (both positions; the last one wins);
//! * `_env:` strings inside lists (never resolved);
//! * `#` swallowing part of a value. Heuristic: a plain value followed on
//!   its line by a one-word comment glued to its `#` (`password: abc #123`)
//!   looks like a value cut short; a comment with a space after `#`, or of
//!   several words, is taken as meant. An `_env:` default holding ` #` is
//!   always reported, since its text is typed as YAML again;
//! * shallow merges: a nested mapping written in a section replaces the one
//!   its `<<` brought, dropping the keys only the base had;
//! * section names YAML types as non-strings (`yes:`, `1:`), which no flavor
//!   name can select;
//! * an unquoted `_env:X:` that breaks the whole file (a targeted message
//!   instead of the parser's);
//! * a value that looks like a variable with `_env:` forgotten
//!   (`_AWS_BUCKET`).
//!
//! The question is docker-registry 0.9.1's: would it accept the file and
//! use every value as meant? Errors are what it failed on or silently
//! misused; what `regconf serve` cannot run (drivers, module search back
//! ends, databases other than SQLite and PostgreSQL) is not the file's fault: `serve --check`
//! asks that, and `--flavor` mentions it as a note.
//!
//! With a flavor, that flavor is also resolved in the given environment
//! ([`super::load`]) and converted in [`Mode::Environment`], which opens
//! the files `serve` would read and reports set-but-empty variables; that
//! flavor alone decides the exit status: the errors of other flavors become
//! brief notes.
//!
//! Why it lives in the pipeline's room rather than beside the operator
//! questions in the `inspect` room: its readers (`regconf validate`, and any
//! command that wants the same verdict before it starts, as `serve` does
//! through [`typed`]) expect the checks the pipeline itself makes, and its
//! pitfall pass reads what only the pipeline may read, the parsed nodes
//! (duplicate keys, comments, plain scalars) and their construction, which
//! `inspect` is not allowed to touch. It must not print.

use std::sync::Arc;

use super::construct::{Builder, Flat};
use super::env::{self, Env, Given};
use super::origin::{EnvUse, KeyPath, Origin, Provenance};
use super::parse::{self, Node, NodeKind, Ref, Style};
use super::resolve::{self, Inherit, Resolved, Rule};
use super::source::{Source, Span};
use super::typed::{self, Mode, comment_cut};
use super::value::{HashMap, HashSet, Key, Map, Value};
use crate::diagnostics::{self, Diagnostic, Severity};

/// What to validate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options<'a> {
    /// Also resolve this flavor in `env`.
    pub flavor: Option<&'a str>,
    /// The inheritance rule.
    pub inherit: Inherit,
    /// The environment for `flavor`.
    pub env: &'a Env,
    /// `--set` overrides, applied to `flavor` once resolved.
    pub overrides: &'a [super::overrides::Override],
}

/// The result of a validation.
pub(crate) struct Report {
    /// Every problem, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
    /// How many flavors were checked.
    pub flavors: usize,
    /// What the static pass built, for the caller to drop (or, about to
    /// exit, to leave to the system: freeing it was a tenth of a 50 MB run).
    pub parsed: Parsed,
}

/// The parsed file and its flattened mappings (see [`Report::parsed`]).
#[derive(Default)]
pub(crate) struct Parsed {
    _held: Option<(parse::Document, Builder, Flats)>,
}

type Flats = (Arc<Flat>, Option<Arc<Flat>>);

/// Validates a text.
pub(crate) fn validate(source: Arc<Source>, opts: Options<'_>) -> Report {
    let mut out = Vec::new();
    let (flavors, parsed) = check(&source, opts, &mut out);
    let mut seen = HashSet::default();
    out.retain(|d| {
        let at = d.labels.first().map(|l| l.span.start);
        seen.insert((d.code, at, d.key_path.clone().filter(|_| at.is_none())))
    });
    diagnostics::sort(&mut out);
    Report {
        diagnostics: out,
        flavors,
        parsed,
    }
}

fn check(source: &Arc<Source>, opts: Options<'_>, out: &mut Vec<Diagnostic>) -> (usize, Parsed) {
    let doc = match super::parse_source(Arc::clone(source)) {
        Ok(doc) => doc,
        Err(diags) => {
            out.extend(diags.into_iter().map(|d| unquoted_env(d, source)));
            return (0, Parsed::default());
        }
    };
    let rule = match opts.inherit {
        Inherit::Explicit => Rule::Explicit,
        Inherit::Implicit => Rule::Implicit,
        Inherit::Auto if resolve::has_merge_key(&doc) => Rule::Explicit,
        Inherit::Auto => Rule::Implicit,
    };
    let resolve::TopLevel { flat, mut builder } = match resolve::top_level(&doc) {
        Ok(t) => t,
        Err(diags) => {
            out.extend(diags);
            return (0, Parsed::default());
        }
    };
    // what checking the whole file cost, as a resolution of its own starts
    let checked = builder.spent();
    let mut scan = Scan {
        source,
        builder: &mut builder,
        seen: HashSet::default(),
        out: Vec::new(),
    };
    if let Some(root) = &doc.root {
        scan.node(root, false);
    }
    out.append(&mut scan.out);
    for (key, entry) in &flat.entries {
        if key.as_str().is_none() && is_map(&entry.value) {
            out.push(
                Diagnostic::warning(
                    "regconf::flavor::non_string_name",
                    format!(
                        "YAML reads the section name `{}` as {}, so no flavor name selects it",
                        source.text()[entry.key_node.site().start..entry.key_node.site().end]
                            .trim(),
                        article_key(key)
                    ),
                )
                .with_source(source)
                .label(entry.key_node.site(), "not a string")
                .help(format!(
                    "quote the name: `'{}':`",
                    source.text()[entry.key_node.site().start..entry.key_node.site().end].trim()
                )),
            );
        }
    }
    let common = flat
        .entries
        .get(&Key::from("common"))
        .filter(|e| is_map(&e.value))
        .and_then(|e| builder.flatten(&e.value.node).ok());
    if rule == Rule::Implicit
        && let Some(e) = flat.entries.get(&Key::from("common"))
    {
        out.push(
                Diagnostic::advice(
                    "regconf::flavor::implicit_common",
                    format!(
                        "`common` is the base of every flavor in `{}`, as in docker-registry 0.6: the file has no merge key (`<<`)",
                        source.name()
                    ),
                )
                .with_source(source)
                .label(e.key_node.site(), "the base of every flavor")
                .help("a flavor's keys replace common's whole (shallowly); pass `--inherit explicit` for docker-registry 0.8+ behaviour"),
            );
    }
    let mut walker = Static {
        source,
        builder,
        defaults: HashMap::default(),
        out: Vec::new(),
        flavor: String::new(),
    };
    let mut count = 0;
    for (key, entry) in &flat.entries {
        let Some(name) = key.as_str() else { continue };
        if !is_map(&entry.value) {
            continue;
        }
        name.clone_into(&mut walker.flavor);
        let Ok(own) = walker.builder.flatten(&entry.value.node) else {
            continue;
        };
        count += 1;
        let mut config = Map::default();
        let mut provenance = Provenance::default();
        let mut path = Vec::new();
        if rule == Rule::Implicit
            && name != "common"
            && let Some(common) = &common
        {
            let base: Vec<_> = common
                .entries
                .iter()
                .filter(|(k, _)| !own.entries.contains_key(*k))
                .collect();
            for (k, e) in base {
                walker.entry(k, e, &mut path, &mut config, &mut provenance, true);
            }
        }
        walker.flat(&own, &mut path, &mut config, &mut provenance);
        let mut origin = provenance
            .get(&[Key::from("flavor")])
            .cloned()
            .unwrap_or_default();
        origin.injected = Some(super::origin::Injected::Flavor);
        provenance.insert(vec![Key::from("flavor")], origin);
        config.insert(Key::from("flavor"), Value::Str(name.to_owned()));
        let resolved = Resolved {
            flavor: name.to_owned(),
            rule,
            rule_was_auto: opts.inherit == Inherit::Auto,
            config,
            provenance,
        };
        walker
            .out
            .extend(typed::to_model(&resolved, source, Mode::Static).1);
    }
    if let Some(flavor) = opts.flavor {
        walker.out = elsewhere(walker.out, flavor);
    }
    out.append(&mut walker.out);
    let Some(flavor) = opts.flavor else {
        let held = Some((doc, walker.builder, (flat, common)));
        return (count, Parsed { _held: held });
    };
    // The flavor's resolution goes on from the static pass's flattened
    // mappings: a large file is checked and flattened once.
    let mut builder = walker.builder;
    builder.rewind(checked);
    drop(common);
    // With a flavor, its resolution in the environment comes first in the
    // list, so that its diagnostics win over the static ones at the same
    // place (the first of a kind at one place is kept).
    {
        let mut first = Vec::new();
        // the same nodes as the static pass: the file is parsed once
        let top = resolve::TopLevel { flat, builder };
        match resolve::resolve_in(
            doc,
            top,
            flavor,
            opts.inherit,
            opts.env,
            &super::readable_file,
        ) {
            Ok(mut resolved) => match super::overrides::apply(&mut resolved, opts.overrides) {
                Ok(()) => {
                    first.extend(typed::to_model(&resolved, source, Mode::Environment(opts.env)).1)
                }
                Err(diags) => first.extend(diags),
            },
            Err(diags) => first.extend(diags),
        }
        out.splice(0..0, first);
    }
    (count, Parsed::default())
}

/// With `--flavor F`, the static diagnostics: F's own stay when they are
/// about text written in the file, and are dropped when they are about an
/// `_env:` default or a note (its resolution in the environment has the
/// last word there); the errors of other flavors become brief notes
/// (message and place), so that F alone decides the exit status, and their
/// warnings and notes are dropped (F's output is about F; the notes also
/// assume every variable unset, which this environment may contradict).
fn elsewhere(diags: Vec<Diagnostic>, flavor: &str) -> Vec<Diagnostic> {
    diags
        .into_iter()
        .filter(|d| match d.flavor.as_deref() {
            Some(f) if f == flavor => d.severity > Severity::Advice && !at_env_reference(d),
            Some(_) => d.severity == Severity::Error,
            None => true,
        })
        .map(|mut d| {
            if d.flavor.as_deref().is_some_and(|f| f != flavor) {
                d.severity = Severity::Advice;
                d.labels.truncate(1);
                d.help = Some(format!(
                    "another flavor's problem, not `{flavor}`'s: `validate` without `--flavor` shows it in full"
                ));
            }
            d
        })
        .collect()
}

fn is_map(r: &Ref) -> bool {
    matches!(r.node.kind, NodeKind::Map(_)) && r.node.tag().is_none()
}

fn article_key(key: &Key) -> String {
    match key {
        Key::Bool(b) => format!("the boolean `{b}`"),
        Key::Int(i) => format!("the integer `{i}`"),
        Key::Null => "null".to_owned(),
        Key::Float(_) => "a float".to_owned(),
        _ => "a non-string".to_owned(),
    }
}

/// Replaces the parser's message for an unquoted `_env:NAME:` with one that
/// says what happened.
fn unquoted_env(d: Diagnostic, source: &Arc<Source>) -> Diagnostic {
    if d.code != "regconf::yaml::syntax" {
        return d;
    }
    let Some(at) = d.labels.first().map(|l| l.span.start) else {
        return d;
    };
    let re = regex::Regex::new(r#"(?:^|[\s\[{,])(_env:[^\s'"]*:)(?:\s|$)"#).expect("valid regex");
    let (line, _) = source.line_col(at);
    let text = source.text();
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    for l in [line, line.saturating_sub(1)] {
        if l == 0 || l > starts.len() {
            continue;
        }
        let start = starts[l - 1];
        let line_text = source.line_text(start);
        let code_part = line_text.split(" #").next().unwrap_or(line_text);
        if let Some(m) = re.captures(code_part).and_then(|c| c.get(1)) {
            let span = Span::new(start + m.start(), start + m.end());
            let written = m.as_str();
            return Diagnostic::error(
                "regconf::env::unquoted",
                format!(
                    "the unquoted `{written}` ends in `:`, which YAML reads as a mapping key: the whole file is invalid"
                ),
            )
            .with_source(source)
            .label(span, "quote this value")
            .help(format!(
                "write `'{written}'`; docker-registry failed to load the file in the same way"
            ));
        }
    }
    d
}

/// Whether the primary label of `d` points at an `_env:` reference.
fn at_env_reference(d: &Diagnostic) -> bool {
    let (Some(source), Some(label)) = (&d.source, d.labels.first()) else {
        return false;
    };
    source
        .text()
        .get(label.span.start..label.span.end)
        .is_some_and(|t| t.trim_start_matches(['\'', '"']).starts_with("_env:"))
}

/// The file-wide pass: pitfalls that belong to nodes, not flavors.
struct Scan<'a> {
    source: &'a Arc<Source>,
    builder: &'a mut Builder,
    seen: HashSet<(*const Node, bool)>,
    out: Vec<Diagnostic>,
}

impl Scan<'_> {
    fn node(&mut self, r: &Ref, in_list: bool) {
        // Only an anchored node can be reached twice (through its aliases);
        // the others need no entry in `seen` (a large file has millions).
        if (r.alias.is_some() || r.node.anchor().is_some())
            && !self.seen.insert((Arc::as_ptr(&r.node), in_list))
        {
            return;
        }
        match &r.node.kind {
            NodeKind::Scalar { text, style } => self.scalar(r, text, *style, in_list),
            NodeKind::Seq(items) => {
                for item in items {
                    self.node(item, true);
                }
            }
            NodeKind::Map(pairs) => {
                if r.node.tag().is_none() {
                    self.mapping(r);
                }
                for (k, v) in pairs {
                    // `<<: [*a, *b]` names mappings to merge; its sequence is
                    // not a list value, so `_env:` in those mappings resolves.
                    match &v.node.kind {
                        NodeKind::Seq(items) if k.is_plain_merge_key() => {
                            for item in items {
                                self.node(item, in_list);
                            }
                        }
                        _ => self.node(v, in_list),
                    }
                }
            }
        }
    }

    fn scalar(&mut self, r: &Ref, text: &str, style: Style, in_list: bool) {
        if r.alias.is_some() || r.node.tag().is_some() {
            return;
        }
        let span = r.node.span;
        if text.starts_with("_env:") && in_list {
            self.out.push(
                Diagnostic::warning(
                    "regconf::env::in_list",
                    format!("`{text}` is inside a list, where docker-registry never resolved `_env:`: the value is this text"),
                )
                .with_source(self.source)
                .label(span, "left as text")
                .help("put the whole list in the variable instead: `key: _env:NAME:[a, b]`"),
            );
        }
        if let Some(r) = env::parse_ref(text)
            && let Some(kept) = r.default.and_then(comment_cut)
        {
            self.out.push(
                    Diagnostic::warning(
                        "regconf::yaml::comment_in_value",
                        format!(
                            "the default of `{}` is typed as YAML, so ` #` starts a comment in it: the default is `{kept}`",
                            r.name
                        ),
                    )
                    .with_source(self.source)
                    .label(span, "comment inside")
                    .help("quote the default inside the value: `'_env:NAME:\"a #b\"'`"),
                );
        }
        if let Some(meant) = env::meant_reference(text) {
            let name = env::parse_ref(&meant).map_or("", |r| r.name).to_owned();
            self.out.push(
                Diagnostic::warning(
                    "regconf::env::missing_prefix",
                    format!("`{text}` looks like a variable, but without `_env:` docker-registry used this text as the value"),
                )
                .with_source(self.source)
                .label(span, format!("did you mean `{meant}`?"))
                .help(format!("write `{meant}` to read the variable `{name}`")),
            );
        }
        if style != Style::Plain || text.is_empty() {
            return;
        }
        // The line's end is looked for only after blanks and `#` (per
        // scalar, quadratic on a one-line flow mapping; a table lookup, slow).
        let after = &self.source.text()[span.end..];
        let blanks = after.len() - after.trim_start_matches([' ', '\t']).len();
        if blanks == 0 || !after[blanks..].starts_with('#') {
            return;
        }
        let line_end = span.end + after.find('\n').unwrap_or(after.len());
        let rest = &self.source.text()[span.end..line_end];
        let trimmed = &rest[blanks..];
        let Some(comment) = trimmed.strip_prefix('#') else {
            return;
        };
        let comment = comment.trim_end();
        if comment.is_empty()
            || comment.starts_with([' ', '\t', '#'])
            || comment.contains([' ', '\t'])
        {
            return;
        }
        let cut = Span::new(span.end + (rest.len() - trimmed.len()), line_end);
        self.out.push(
            Diagnostic::warning(
                "regconf::yaml::comment_in_value",
                format!("` #{comment}` starts a comment, so the value is `{text}`, not `{text} #{comment}`"),
            )
            .with_source(self.source)
            .label(span, "the value ends here")
            .label(cut, "this is a comment")
            .help(format!("quote the value if `#` belongs to it: `'{text} #{comment}'`")),
        );
    }

    fn mapping(&mut self, r: &Ref) {
        let Ok(flat) = self.builder.flatten(&r.node) else {
            return;
        };
        for dup in &flat.duplicates {
            self.out.push(
                Diagnostic::warning(
                    "regconf::yaml::duplicate_key",
                    format!(
                        "the key `{}` is written twice in one mapping; the last one wins",
                        dup.key.display()
                    ),
                )
                .with_source(self.source)
                .label(dup.second, "this one wins")
                .label(dup.first, "this one is ignored")
                .help("remove one of them"),
            );
        }
        if !flat.has_merge {
            return;
        }
        if !matches!(r.node.kind, NodeKind::Map(_)) {
            return;
        }
        let sources = r.node.merge_sources(Ref::is_plain_merge_key);
        for (key, entry) in &flat.entries {
            if entry.via.is_some() || !is_map(&entry.value) {
                continue;
            }
            for (merge_key, src) in &sources {
                if !is_map(src) {
                    continue;
                }
                let Ok(base) = self.builder.flatten(&src.node) else {
                    continue;
                };
                let Some(base_entry) = base.entries.get(key) else {
                    continue;
                };
                if !is_map(&base_entry.value) {
                    continue;
                }
                let (Ok(base_inner), Ok(own_inner)) = (
                    self.builder.flatten(&base_entry.value.node),
                    self.builder.flatten(&entry.value.node),
                ) else {
                    continue;
                };
                let dropped: Vec<String> = base_inner
                    .entries
                    .keys()
                    .filter(|k| !own_inner.entries.contains_key(*k))
                    .map(|k| format!("`{}`", k.display()))
                    .collect();
                if dropped.is_empty() {
                    continue;
                }
                let from = src
                    .node
                    .anchor()
                    .map_or_else(String::new, |a| format!(" from `&{a}`"));
                self.out.push(
                    Diagnostic::warning(
                        "regconf::merge::shallow",
                        format!(
                            "`{}` replaces the merged `{}`{from} whole, so {} {} dropped (merge keys are shallow)",
                            key.display(),
                            key.display(),
                            dropped.join(", "),
                            if dropped.len() == 1 { "is" } else { "are" }
                        ),
                    )
                    .with_source(self.source)
                    .label(entry.key_node.site(), "replaces the merged mapping")
                    .label(*merge_key, "merged here")
                    .help(format!(
                        "repeat the dropped keys under `{}`, or anchor the base's mapping and merge it there too",
                        key.display()
                    )),
                );
                break;
            }
        }
    }
}

/// Resolves flavors with every `_env:` at its default.
struct Static<'a> {
    source: &'a Arc<Source>,
    builder: Builder,
    defaults: HashMap<String, Result<Value, String>>,
    out: Vec<Diagnostic>,
    /// The flavor being resolved, named in its diagnostics.
    flavor: String,
}

impl Static<'_> {
    fn flat(&mut self, flat: &Flat, path: &mut KeyPath, out: &mut Map, prov: &mut Provenance) {
        for (k, e) in &flat.entries {
            self.entry(k, e, path, out, prov, false);
        }
    }

    fn entry(
        &mut self,
        key: &Key,
        e: &super::construct::Entry,
        path: &mut KeyPath,
        out: &mut Map,
        prov: &mut Provenance,
        implicit_common: bool,
    ) {
        path.push(key.clone());
        let mut origin = Origin {
            value_span: Some(e.value.site()),
            key_span: Some(e.key_node.site()),
            via: e.via.clone(),
            implicit_common,
            ..Origin::default()
        };
        let value = if is_map(&e.value) {
            match self.builder.flatten(&e.value.node) {
                Ok(inner) => {
                    let mut m = Map::default();
                    self.flat(&inner, path, &mut m, prov);
                    Some(Value::Map(m))
                }
                Err(_) => None,
            }
        } else if let NodeKind::Scalar { .. } = &e.value.node.kind {
            match self.builder.scalar(&e.value.node) {
                Ok(Value::Str(s)) if s.starts_with("_env:") => {
                    let r = env::parse_ref(&s).expect("checked prefix");
                    let given = r
                        .default
                        .map_or(Given::Unset, |d| Given::Default(d.to_owned()));
                    let typed = self.typed(given.text());
                    let var = EnvUse {
                        name: r.name.to_owned(),
                        given: given.clone(),
                        reference: e.value.site(),
                    };
                    match typed {
                        Ok(v) => {
                            origin.env = Some(var);
                            Some(v)
                        }
                        Err(message) => {
                            self.out.push(
                                Diagnostic::error(
                                    "regconf::env::invalid_yaml",
                                    format!("the default of `{}` is not valid YAML: {message}", r.name),
                                )
                                .with_source(self.source)
                                .in_flavor(&self.flavor)
                                .label(e.value.site(), format!("the default is `{}`", given.text()))
                                .help("docker-registry parsed the default as YAML; quote it inside the value"),
                            );
                            None
                        }
                    }
                }
                Ok(v) => Some(v),
                Err(_) => None,
            }
        } else {
            self.builder.value(&e.value).ok()
        };
        if let Some(v) = value {
            prov.insert(path.clone(), origin);
            out.insert(key.clone(), v);
        }
        path.pop();
    }

    /// Types a default's text as YAML (memoised).
    fn typed(&mut self, text: &str) -> Result<Value, String> {
        if let Some(v) = self.defaults.get(text) {
            return v.clone();
        }
        let result = match parse::parse(Source::new("default", text)) {
            Ok(doc) => match &doc.root {
                None => Ok(Value::Null),
                Some(root) => Builder::new().value(root).map_err(|e| e.message),
            },
            Err(parse::ParseError::Syntax { message, .. }) => Err(message),
            Err(_) => Err("it is not a single YAML document".to_owned()),
        };
        self.defaults.insert(text.to_owned(), result.clone());
        result
    }
}

/// Severity counts of a report.
pub(crate) fn counts(diags: &[Diagnostic]) -> (usize, usize) {
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diags
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    (errors, warnings)
}
