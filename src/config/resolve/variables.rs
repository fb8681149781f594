//! The walk over the selected flavor's entries: each `_env:` string
//! replaced by its variable's value or default, typed as YAML, a mapping
//! that a variable supplies resolved in turn, and where each value came from
//! recorded. Nothing here selects the flavor or injects keys.

use std::sync::Arc;

use super::{construct_diagnostic, parse_diagnostic};
use crate::config::construct::{Builder, ConstructError, Entry, Flat};
use crate::config::env::{self, Env, Given};
use crate::config::origin::{EnvUse, KeyPath, Origin, Provenance};
use crate::config::parse::{self, Document, NodeKind, ParseError, Ref};
use crate::config::source::{Source, Span};
use crate::config::value::{Key, Map, Value};
use crate::diagnostics::Diagnostic;

/// A text whose nodes a walk reads: the file, or a variable's value.
pub(super) struct Text {
    pub(super) doc: Document,
    pub(super) builder: Builder,
    /// For a variable's text: the variable and the `_env:` in the file.
    pub(super) variable: Option<EnvUse>,
}

/// One entry to walk, with the text its nodes belong to.
pub(super) struct Item {
    pub(super) key: Key,
    pub(super) entry: Entry,
    pub(super) text: usize,
    pub(super) implicit_common: bool,
}

pub(super) struct Walker<'a> {
    pub(super) env: &'a Env,
    pub(super) flavor: &'a str,
    pub(super) texts: Vec<Text>,
    pub(super) provenance: Provenance,
    pub(super) problems: Vec<Diagnostic>,
    /// The variables whose mappings are being walked, outermost first: a
    /// variable met again inside its own value is a cycle, not a deeper walk.
    pub(super) expanding: Vec<String>,
}

/// How deep a value may be when a variable's mapping starts inside it. The
/// walk recurses once per level and one text nests at most
/// [`parse::MAX_DEPTH`] deep, so a resolved value stays under twice that.
const MAX_VARIABLE_DEPTH: usize = parse::MAX_DEPTH;

impl Walker<'_> {
    pub(super) fn file(&self) -> &Arc<Source> {
        &self.texts[0].doc.source
    }

    /// The span in the file to point at for a node of text `t`.
    pub(super) fn file_site(&self, t: usize, span: Span) -> Span {
        match &self.texts[t].variable {
            None => span,
            Some(var) => var.reference,
        }
    }

    pub(super) fn items(&mut self, t: usize, flat: &Flat) -> Vec<Item> {
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

    pub(super) fn flatten(&mut self, t: usize, r: &Ref) -> Option<Arc<Flat>> {
        match self.texts[t].builder.flatten(&r.node) {
            Ok(f) => Some(f),
            Err(e) => {
                let d = self.construct_problem(t, &e);
                self.problems.push(d);
                None
            }
        }
    }

    pub(super) fn construct_problem(&self, t: usize, e: &ConstructError) -> Diagnostic {
        match &self.texts[t].variable {
            None => construct_diagnostic(e, self.file()),
            Some(var) => variable_problem(var, self.file(), &e.message),
        }
    }

    /// Walks the entries of one mapping into `out`.
    pub(super) fn walk(&mut self, items: Vec<Item>, path: &mut KeyPath) -> Map {
        let mut out = Map::with_capacity_and_hasher(items.len(), Default::default());
        for item in items {
            path.push(item.key.clone());
            if let Some(v) = self.walk_value(&item, path) {
                out.insert(item.key, v);
            }
            path.pop();
        }
        out
    }

    pub(super) fn origin_of(&self, item: &Item) -> Origin {
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

    pub(super) fn walk_value(&mut self, item: &Item, path: &mut KeyPath) -> Option<Value> {
        let t = item.text;
        let r = &item.entry.value;
        let mut origin = self.origin_of(item);
        let value = match &r.node.kind {
            NodeKind::Map(_) if r.node.tag().is_none() => {
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
    pub(super) fn variable_value(
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
        if matches!(root.node.kind, NodeKind::Map(_)) && root.node.tag().is_none() {
            let flat = self.flatten(t, &root)?;
            let var = self.texts[t].variable.as_ref().expect("a variable's text");
            if let Some(d) = self.nesting_problem(var, path.len()) {
                self.problems.push(d);
                return None;
            }
            let name = var.name.clone();
            let items = self.items(t, &flat);
            origin.inside_variable = None;
            self.expanding.push(name);
            let map = self.walk(items, path);
            self.expanding.pop();
            return Some(Value::Map(map));
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

impl Walker<'_> {
    /// A variable whose mapping would be walked inside itself (docker-registry
    /// recursed until Python gave up), or starting deeper than
    /// [`MAX_VARIABLE_DEPTH`].
    fn nesting_problem(&self, var: &EnvUse, depth: usize) -> Option<Diagnostic> {
        let (code, message, help) = if let Some(at) =
            self.expanding.iter().position(|n| *n == var.name)
        {
            let chain: Vec<String> = self.expanding[at..]
                .iter()
                .chain(std::iter::once(&var.name))
                .map(|n| format!("`{n}`"))
                .collect();
            (
                "regconf::env::cycle",
                format!(
                    "`{}` is used inside its own value: {}",
                    var.name,
                    chain.join(" → ")
                ),
                "a variable's value is read as YAML and its `_env:` values are filled in turn; docker-registry 0.9.1 failed on this loop (maximum recursion depth exceeded). Break it by giving one of these variables a value that does not name the next",
            )
        } else if depth >= MAX_VARIABLE_DEPTH {
            (
                "regconf::env::too_deep",
                format!(
                    "the mapping in `{}` would start {depth} levels deep, past the limit of {MAX_VARIABLE_DEPTH}",
                    var.name
                ),
                "each variable whose value is a mapping is filled in turn, inside the value that reads it; nest the variables less deeply",
            )
        } else {
            return None;
        };
        Some(
            Diagnostic::error(code, message)
                .with_source(self.file())
                .label(var.reference, "the value that leads there")
                .help(help),
        )
    }
}

pub(super) fn variable_problem(var: &EnvUse, file: &Arc<Source>, detail: &str) -> Diagnostic {
    let (what, text) = match &var.given {
        Given::Set(v) => ("the value of", v.as_str()),
        Given::Default(d) => ("the default of", d.as_str()),
        Given::Unset => ("the value of", ""),
    };
    let text = if secret_reference(var, file) {
        crate::model::MASK.to_owned()
    } else {
        text.escape_debug().to_string()
    };
    Diagnostic::error(
        "regconf::env::invalid_yaml",
        format!("{what} `{}` is not valid YAML: {detail}", var.name),
    )
    .with_source(file)
    .label(var.reference, format!("`{}` is `{text}`", var.name))
    .help("docker-registry parsed each variable's text as YAML; quote it in the variable (`'[GET'`) if it is meant as a string")
}

/// Whether the variable is read by a secret key (`password: _env:P`), or is
/// named like a secret itself, so that its text must not be shown.
fn secret_reference(var: &EnvUse, file: &Source) -> bool {
    let line_start = file.text()[..var.reference.start.min(file.text().len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let before = file
        .text()
        .get(line_start..var.reference.start)
        .unwrap_or("")
        .trim_end();
    let key = before.strip_suffix(':').unwrap_or("").trim_end();
    let key = key
        .rsplit(|c: char| c.is_whitespace() || matches!(c, '{' | ',' | '[' | '?'))
        .next()
        .unwrap_or("")
        .trim_matches(|c| c == '"' || c == '\'');
    crate::model::is_secret(key) || crate::model::is_secret(&var.name)
}
