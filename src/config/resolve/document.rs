//! The file as a whole: composer and construction errors as diagnostics,
//! the top level checked to be one mapping of constructible values, and the
//! flavors' names. Nothing here selects a flavor or reads a variable.

use std::sync::Arc;

use crate::config::construct::{Builder, ConstructError, ConstructErrorKind, Flat};
use crate::config::parse::{self, Document, NodeKind, ParseError};
use crate::config::source::{Source, Span};
use crate::config::value::HashSet;
use crate::diagnostics::Diagnostic;

/// Converts a composer error into a diagnostic on `source`.
pub(crate) fn parse_diagnostic(err: &ParseError, source: &Arc<Source>) -> Diagnostic {
    match err {
        ParseError::Syntax { message, at } => Diagnostic::error(
            "regconf::yaml::syntax",
            format!("the file is not valid YAML: {message}"),
        )
        .with_source(source)
        .label(*at, "here")
        .help(syntax_help(message, source.line_text(at.start))),
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

/// How to fix a syntax error. Some texts docker-registry's reader accepted
/// are refused here (README, difference 10); their help says how to write
/// them so that both read them alike.
fn syntax_help(message: &str, line: &str) -> &'static str {
    if message.contains("invalid indentation in quoted scalar")
        || message.contains("invalid indentation in flow construct")
    {
        "indent the continuation lines further than the key they belong to (docker-registry \
         read them less indented; regconf does not)"
    } else if message.contains("may not precede any of `[{`") {
        "put a space after the `:` (`{key: [1]}`)"
    } else if message.contains("cannot start with '-'") {
        "quote the `-`: `\"-\"`"
    } else if message.contains("SEPARATOR") {
        "regconf refuses U+2028 and U+2029 (README, difference 10): replace it with a newline, \
         or write `\\L` or `\\P` inside double quotes"
    } else if message.contains("docker-registry's YAML reader") {
        "docker-registry's reader refused this too; the message says how to write it"
    } else if line.contains("_env:") {
        "an `_env:` value that ends in `:` or holds `: ` must be quoted: `'_env:NAME:'`"
    } else {
        "check the indentation and quoting on this line and the one before"
    }
}

/// Converts a construction error into a diagnostic on `source`.
pub(crate) fn construct_diagnostic(err: &ConstructError, source: &Arc<Source>) -> Diagnostic {
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
pub(crate) fn has_merge_key(doc: &Document) -> bool {
    let Some(root) = &doc.root else { return false };
    let mut seen = HashSet::default();
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
                    let is_merge = match (&k.node.kind, k.node.tag()) {
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
        && root.node.tag().is_none_or(|t| t == "tag:yaml.org,2002:map");
    let mut builder = Builder::new();
    let whole = builder
        .check(root)
        .map_err(|e| vec![construct_diagnostic(&e, source)])?;
    if !is_map {
        return Err(vec![
            Diagnostic::error(
                "regconf::flavor::top_not_mapping",
                format!("the top level of the file is a {whole}, not a mapping of flavors"),
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
pub(crate) fn flavor_names(flat: &Flat) -> Vec<String> {
    flat.entries
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect()
}

/// Whether the distance between two ASCII names is surely above `most`:
/// an edit changes the counts of at most two characters, so half the
/// difference of the names' character counts bounds the distance from
/// below. Cheaper than the distance by far (a file of 160,000 unknown keys
/// spent a third of `validate` in distances).
fn far_apart(a: &str, b: &str, most: usize) -> bool {
    if !a.is_ascii() || !b.is_ascii() {
        return false;
    }
    let mut counts = [0i32; 128];
    for &x in a.as_bytes() {
        counts[usize::from(x)] += 1;
    }
    for &x in b.as_bytes() {
        counts[usize::from(x)] -= 1;
    }
    let diff: u32 = counts.iter().map(|c| c.unsigned_abs()).sum();
    diff as usize > 2 * most
}

/// The closest name to `wanted` among `names`, if one is close enough.
pub(crate) fn did_you_mean<'a>(
    wanted: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let w = wanted.chars().count();
    names
        .into_iter()
        .filter_map(|n| {
            let c = n.chars().count();
            let most = (c.max(w) / 3).max(2);
            // the distance is at least the difference in length: names that
            // far apart need no distance computed (a flavor of many unknown
            // keys spent most of `validate` here)
            if c.abs_diff(w) > most || far_apart(wanted, n, most) {
                return None;
            }
            let d = strsim::damerau_levenshtein(wanted, n);
            (d <= most).then_some((d, n))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}
