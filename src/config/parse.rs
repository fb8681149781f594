//! Stage 1: YAML text → a tree of nodes that keep their positions.
//!
//! This is a composer over saphyr-parser's event stream. It builds nodes
//! (scalars with their raw text, style and tag; sequences; mappings as lists of
//! pairs), shares anchored nodes between their aliases, and records where each
//! node and each alias stands. It gives no meaning to anything: typing, merge
//! keys and `_env:` come later. It refuses what PyYAML's composer refused
//! (undefined and duplicate anchors, several documents) and what would make
//! later stages loop (recursive aliases).

use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as PSpan};

use super::source::{CharIndex, Source, Span};
use super::value::HashMap;

mod pyyaml;

use pyyaml::{
    Prepared, after_properties, anchor_refused, carry_scalar, check_anchor_name, check_empty_key,
    check_flow_key_line, check_leading_document_end, check_tabs, check_tag_end, chomp_at_eof,
    prepare, pyyaml_anchor, question_key, single_pair,
};

/// The deepest nesting of lists and mappings accepted. Configuration files
/// nest a few levels; the limit keeps hostile input from exhausting the stack
/// of every later stage, which recurse over nesting.
pub(crate) const MAX_DEPTH: usize = 256;

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unquoted: typed by the YAML 1.1 rules.
    Plain,
    /// Quoted or a block scalar: a string unless tagged.
    Quoted,
}

/// A node of the composed document.
///
/// A large file holds millions of nodes, so a node is kept small: the tag
/// and the anchor, which few nodes have, share one optional box.
#[derive(Debug)]
pub struct Node {
    /// What the node holds.
    pub kind: NodeKind,
    /// Where the node is written (for collections: from the first property
    /// or indicator to the end of the collection).
    pub span: Span,
    props: Option<Box<Props>>,
}

/// The properties of a node that has any.
#[derive(Debug)]
struct Props {
    tag: Option<String>,
    anchor: Option<String>,
}

impl Node {
    /// A node; `tag` is expanded (`tag:yaml.org,2002:str`).
    pub(crate) fn new(
        kind: NodeKind,
        tag: Option<String>,
        span: Span,
        anchor: Option<String>,
    ) -> Node {
        let props = (tag.is_some() || anchor.is_some()).then(|| Box::new(Props { tag, anchor }));
        Node { kind, span, props }
    }

    /// The explicit tag, expanded (`tag:yaml.org,2002:str`), if any.
    pub fn tag(&self) -> Option<&str> {
        self.props.as_ref()?.tag.as_deref()
    }

    /// The anchor name (`&common`), if the node has one.
    pub fn anchor(&self) -> Option<&str> {
        self.props.as_ref()?.anchor.as_deref()
    }
}

impl Drop for Node {
    // Aliases chain nodes together (`f2: <<: *f1`, `f1: <<: *f0`, …); the
    // default drop would recurse once per link, so children are released
    // from an explicit stack instead.
    fn drop(&mut self) {
        let mut stack = Vec::new();
        take_children(&mut self.kind, &mut stack);
        while let Some(child) = stack.pop() {
            if let Ok(mut node) = Arc::try_unwrap(child) {
                take_children(&mut node.kind, &mut stack);
            }
        }
    }
}

fn take_children(kind: &mut NodeKind, out: &mut Vec<Arc<Node>>) {
    match kind {
        NodeKind::Scalar { .. } => {}
        NodeKind::Seq(items) => out.extend(std::mem::take(items).into_iter().map(|r| r.node)),
        NodeKind::Map(pairs) => {
            for (k, v) in std::mem::take(pairs) {
                out.push(k.node);
                out.push(v.node);
            }
        }
    }
}

/// The content of a [`Node`].
#[derive(Debug)]
pub enum NodeKind {
    /// A scalar with its text as written (after unescaping).
    Scalar {
        /// The text.
        text: String,
        /// Plain or quoted.
        style: Style,
    },
    /// A sequence.
    Seq(Vec<Ref>),
    /// A mapping, pairs in file order (duplicates kept).
    Map(Vec<(Ref, Ref)>),
}

/// A use of a node: the node itself, and the alias (`*name`) that used it, if
/// it was used through one.
#[derive(Debug, Clone)]
pub struct Ref {
    /// The node.
    pub node: Arc<Node>,
    /// Where the alias stands, when the node was reached through one
    /// (boxed: few uses are aliases, and a large file holds millions of
    /// uses).
    pub alias: Option<Box<Span>>,
}

impl Ref {
    /// The position to point at for this use: the alias if there is one.
    pub fn site(&self) -> Span {
        self.alias.as_deref().copied().unwrap_or(self.node.span)
    }

    /// The scalar text, if this is an untagged or tagged scalar.
    pub fn scalar(&self) -> Option<(&str, Style)> {
        match &self.node.kind {
            NodeKind::Scalar { text, style } => Some((text, *style)),
            _ => None,
        }
    }

    /// Whether this is a merge key: a plain `<<`, or any scalar tagged
    /// `!!merge`.
    pub(crate) fn is_merge_key(&self) -> bool {
        match (&self.node.kind, self.node.tag()) {
            (NodeKind::Scalar { text, style }, None) => *style == Style::Plain && text == "<<",
            (NodeKind::Scalar { .. }, Some(t)) => t == "tag:yaml.org,2002:merge",
            _ => false,
        }
    }

    /// Whether this is a plain, untagged `<<`.
    pub(crate) fn is_plain_merge_key(&self) -> bool {
        self.node.tag().is_none() && self.is_merge_key()
    }
}

impl Node {
    /// The mappings this mapping node merges, with the merge key of each;
    /// `is_merge_key` says which keys count.
    pub(crate) fn merge_sources(&self, is_merge_key: fn(&Ref) -> bool) -> Vec<(Span, Ref)> {
        let NodeKind::Map(pairs) = &self.kind else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in pairs.iter().filter(|(k, _)| is_merge_key(k)) {
            match &v.node.kind {
                NodeKind::Map(_) => out.push((k.node.span, v.clone())),
                NodeKind::Seq(items) => {
                    out.extend(items.iter().map(|i| (k.node.span, i.clone())));
                }
                NodeKind::Scalar { .. } => {}
            }
        }
        out
    }
}

/// What can go wrong while reading YAML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// The text is not YAML.
    Syntax {
        /// The parser's description.
        message: String,
        /// Where it stopped.
        at: Span,
    },
    /// More than one document in one text.
    MultipleDocuments {
        /// The start of the second document.
        at: Span,
    },
    /// `*name` with no `&name` before it.
    UndefinedAlias {
        /// The alias.
        at: Span,
    },
    /// `&name` defined twice.
    DuplicateAnchor {
        /// The name.
        name: String,
        /// The first definition.
        first: Span,
        /// The second one.
        second: Span,
    },
    /// Collections nested deeper than [`MAX_DEPTH`].
    TooDeep {
        /// The collection that goes one level too deep.
        at: Span,
    },
    /// `*name` inside the node that `&name` anchors.
    RecursiveAlias {
        /// The alias.
        at: Span,
        /// The anchored node.
        anchor: Span,
    },
}

/// A composed text: its source and its one document (`None` when empty).
/// A clone shares the nodes.
#[derive(Debug, Clone)]
pub struct Document {
    /// The text and its name.
    pub source: Arc<Source>,
    /// The root node; `None` for an empty text (comments only, or nothing).
    pub root: Option<Ref>,
}

enum Frame {
    Seq {
        items: Vec<Ref>,
        start: usize,
        anchor: usize,
        tag: Option<String>,
        flow: bool,
    },
    Map {
        pairs: Vec<(Ref, Ref)>,
        key: Option<Ref>,
        start: usize,
        anchor: usize,
        tag: Option<String>,
        flow: bool,
    },
}

impl Frame {
    fn flow(&self) -> bool {
        match self {
            Frame::Seq { flow, .. } | Frame::Map { flow, .. } => *flow,
        }
    }
}

struct Composer<'a> {
    source: &'a Source,
    /// The text as saphyr reads it (see [`prepare`]).
    prepared: &'a Prepared<'a>,
    /// Quoted and block scalars, where tabs are content (see [`check_tabs`]).
    protected: Vec<Span>,
    chars: CharIndex,
    anchors: HashMap<usize, Arc<Node>>,
    open_anchors: HashMap<usize, usize>,
    anchor_names: HashMap<String, Span>,
}

fn expand_tag(tag: &saphyr_parser::Tag) -> Option<String> {
    let full = format!("{}{}", tag.handle, tag.suffix);
    // `!` alone is the non-specific tag: PyYAML typed such scalars as usual.
    (full != "!").then_some(full)
}

impl Composer<'_> {
    fn span(&self, s: &PSpan) -> Span {
        Span::new(
            self.chars.byte(s.start.index()),
            self.chars.byte(s.end.index()),
        )
    }

    /// Reads the anchor name written at the start of a node's properties.
    fn anchor_name(&self, start: usize) -> Option<(String, Span)> {
        let text = self.source.text();
        let mut i = start;
        for _ in 0..2 {
            let rest = text.get(i..)?;
            if let Some(name) = rest.strip_prefix('&') {
                let len = name
                    .find(|c: char| c.is_whitespace() || ",[]{}".contains(c))
                    .unwrap_or(name.len());
                return Some((name[..len].to_owned(), Span::new(i, i + 1 + len)));
            }
            if rest.starts_with('!') {
                let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
                let skip = rest[len..].find(|c: char| !c.is_whitespace()).unwrap_or(0);
                i += len + skip;
                continue;
            }
            return None;
        }
        None
    }

    fn open_anchor(&mut self, id: usize, start: usize) -> Result<Option<String>, ParseError> {
        if id == 0 {
            return Ok(None);
        }
        self.open_anchors.insert(id, start);
        match self.anchor_name(start) {
            Some((name, span)) => {
                check_anchor_name(self.source.text(), span.start)?;
                self.register_anchor(&name, span)?;
                Ok(Some(name))
            }
            None => Ok(None),
        }
    }

    fn register_anchor(&mut self, name: &str, span: Span) -> Result<(), ParseError> {
        if let Some(first) = self.anchor_names.get(name) {
            return Err(ParseError::DuplicateAnchor {
                name: name.to_owned(),
                first: *first,
                second: span,
            });
        }
        self.anchor_names.insert(name.to_owned(), span);
        Ok(())
    }

    fn close_anchor(&mut self, id: usize, node: &Arc<Node>) {
        if id != 0 {
            self.open_anchors.remove(&id);
            self.anchors.insert(id, Arc::clone(node));
        }
    }
}

/// Composes `source` into a [`Document`].
pub(crate) fn parse(source: Arc<Source>) -> Result<Document, ParseError> {
    let root = {
        let prepared = prepare(source.text())?;
        let mut composer = Composer {
            source: &source,
            chars: CharIndex::new(prepared.text()),
            prepared: &prepared,
            protected: Vec::new(),
            anchors: HashMap::default(),
            open_anchors: HashMap::default(),
            anchor_names: HashMap::default(),
        };
        compose(&mut composer)?
    };
    Ok(Document { source, root })
}

fn compose(c: &mut Composer<'_>) -> Result<Option<Ref>, ParseError> {
    let text = c.source.text();
    check_leading_document_end(c.prepared.text())?;
    let mut parser = Parser::new_from_str(c.prepared.text());
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Ref> = None;
    let mut documents = 0usize;
    while let Some(event) = parser.next_event() {
        let (event, pspan) = event.map_err(|e| {
            let at = c.chars.byte(e.marker().index());
            // saphyr reports an undefined alias itself, as a syntax error.
            if e.info().contains("unknown anchor") && text[at..].starts_with('*') {
                let len = text[at..]
                    .find(|ch: char| ch.is_whitespace() || ",[]{}".contains(ch))
                    .unwrap_or(text.len() - at);
                return ParseError::UndefinedAlias {
                    at: Span::new(at, at + len),
                };
            }
            ParseError::Syntax {
                message: e.info().to_owned(),
                at: Span::new(at, at),
            }
        })?;
        let span = c.span(&pspan);
        let finished: Ref = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(ParseError::MultipleDocuments { at: span });
                }
                continue;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => continue,
            Event::Alias(id) => {
                check_anchor_name(text, span.start)?;
                match c.anchors.get(&id) {
                    Some(node) => Ref {
                        node: Arc::clone(node),
                        alias: Some(Box::new(span)),
                    },
                    None => {
                        // `d: &d {a: 1, <<: *d}`: PyYAML removed the merge
                        // key before following it, so merging a mapping
                        // into itself changed nothing.
                        if let Some(Frame::Map {
                            anchor,
                            key: Some(key),
                            ..
                        }) = stack.last()
                            && *anchor == id
                            && key.is_merge_key()
                        {
                            // Merging an empty mapping keeps the `<<` in
                            // the file (it decides `--inherit auto`).
                            Ref {
                                node: Arc::new(Node::new(
                                    NodeKind::Map(Vec::new()),
                                    None,
                                    span,
                                    None,
                                )),
                                alias: Some(Box::new(span)),
                            }
                        } else {
                            return Err(match c.open_anchors.get(&id) {
                                Some(&start) => ParseError::RecursiveAlias {
                                    at: span,
                                    anchor: Span::new(start, start + 1),
                                },
                                None => ParseError::UndefinedAlias { at: span },
                            });
                        }
                    }
                }
            }
            Event::Scalar(value, style, anchor, mut tag) => {
                let flow = stack.last().is_some_and(Frame::flow);
                let mut text_value = value.into_owned();
                if let Some(mark) = c.prepared.bom
                    && text_value.contains(mark)
                {
                    text_value = text_value.replace(mark, "\u{feff}");
                }
                let mut name = None;
                if anchor != 0 {
                    c.open_anchors.insert(anchor, span.start);
                    if let Some((written, at)) = c.anchor_name(span.start) {
                        let (kept, carry) = pyyaml_anchor(&written, at, style, flow)?;
                        c.register_anchor(&kept, at)?;
                        if let Some(carry) = carry {
                            if tag.is_some() && text[span.start..].starts_with('&') {
                                // `&x:y !t`: PyYAML read the tag as text of
                                // the plain scalar `:y !t`.
                                if !text_value.is_empty() {
                                    return Err(anchor_refused(&written, at));
                                }
                                let line = &text[at.end..];
                                let line = &line[..line.find(['\n', '\r']).unwrap_or(line.len())];
                                let line = &line[..line.find(" #").unwrap_or(line.len())];
                                text_value = format!("{carry}{}", line.trim_end());
                                tag = None;
                            } else {
                                text_value = carry_scalar(text, at.end, &carry, &text_value);
                            }
                        }
                        name = Some(kept);
                    }
                }
                if tag.is_some() {
                    check_tag_end(text, span.start)?;
                }
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::Literal | ScalarStyle::Folded => {
                        c.protected.push(span);
                        chomp_at_eof(c.prepared.text(), span, &mut text_value);
                        Style::Quoted
                    }
                    _ => {
                        // saphyr's span may run on over the blanks after the
                        // closing quote, where a tab is not content.
                        // It starts at the properties, where a tab is not
                        // content either.
                        let written = &text[span.start..span.end];
                        let start = written
                            .find(['"', '\''])
                            .map_or(span.start, |i| span.start + i);
                        let end = written
                            .rfind(['"', '\''])
                            .map_or(span.end, |i| span.start + i + 1);
                        c.protected.push(Span::new(start, end.max(start)));
                        Style::Quoted
                    }
                };
                // the scanner's buffer keeps room to grow (about 128 bytes
                // for a short value): a 50 MB file holds millions of these
                text_value.shrink_to_fit();
                let node = Arc::new(Node::new(
                    NodeKind::Scalar {
                        text: text_value,
                        style,
                    },
                    tag.as_deref().and_then(expand_tag),
                    span,
                    name,
                ));
                c.close_anchor(anchor, &node);
                let r = Ref { node, alias: None };
                match question_key(text, &r, flow)? {
                    Some(key) => match stack.last_mut() {
                        Some(Frame::Seq { .. }) => single_pair(key, span),
                        Some(Frame::Map { key: None, .. }) => key,
                        _ => {
                            return Err(ParseError::Syntax {
                                message: "docker-registry's YAML reader (PyYAML) read `?` \
                                          here as a key indicator and refused it as a value; \
                                          quote the value: `\"?…\"`"
                                    .to_owned(),
                                at: Span::new(span.start, span.start + 1),
                            });
                        }
                    },
                    None => r,
                }
            }
            Event::SequenceStart(anchor, tag) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError::TooDeep { at: span });
                }
                c.open_anchor(anchor, span.start)?;
                if tag.is_some() {
                    check_tag_end(text, span.start)?;
                }
                let flow = stack.last().is_some_and(Frame::flow)
                    || text[after_properties(text, span.start)..].starts_with('[');
                stack.push(Frame::Seq {
                    items: Vec::new(),
                    start: span.start,
                    anchor,
                    tag: tag
                        .as_deref()
                        .and_then(expand_tag)
                        .filter(|t| t != "tag:yaml.org,2002:seq"),
                    flow,
                });
                continue;
            }
            Event::MappingStart(anchor, tag) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(ParseError::TooDeep { at: span });
                }
                c.open_anchor(anchor, span.start)?;
                if tag.is_some() {
                    check_tag_end(text, span.start)?;
                }
                let flow = stack.last().is_some_and(Frame::flow)
                    || text[after_properties(text, span.start)..].starts_with('{');
                stack.push(Frame::Map {
                    pairs: Vec::new(),
                    key: None,
                    start: span.start,
                    anchor,
                    // `!!map` on a mapping is what it would be anyway.
                    tag: tag
                        .as_deref()
                        .and_then(expand_tag)
                        .filter(|t| t != "tag:yaml.org,2002:map"),
                    flow,
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let frame = stack.pop().expect("parser balances collections");
                let (kind, start, anchor, tag) = match frame {
                    Frame::Seq {
                        items,
                        start,
                        anchor,
                        tag,
                        ..
                    } => (NodeKind::Seq(items), start, anchor, tag),
                    Frame::Map {
                        pairs,
                        start,
                        anchor,
                        tag,
                        ..
                    } => (NodeKind::Map(pairs), start, anchor, tag),
                };
                let name = c.anchor_name(start).map(|(n, _)| n).filter(|_| anchor != 0);
                let end = span.end.max(start);
                let node = Arc::new(Node::new(
                    kind,
                    tag,
                    Span::new(start, trim_end(text, start, end)),
                    name,
                ));
                c.close_anchor(anchor, &node);
                Ref { node, alias: None }
            }
        };
        match stack.last_mut() {
            None => root = Some(finished),
            Some(Frame::Seq { items, .. }) => items.push(finished),
            Some(Frame::Map {
                pairs, key, flow, ..
            }) => match key.take() {
                None => {
                    check_empty_key(text, &finished)?;
                    *key = Some(finished);
                }
                Some(k) => {
                    if *flow {
                        check_flow_key_line(c.prepared.text(), &k)?;
                    }
                    pairs.push((k, finished));
                }
            },
        }
    }
    check_tabs(c.prepared.text(), &mut c.protected)?;
    // An empty document (`---` alone) is a null scalar; PyYAML gave None for
    // both that and an empty stream.
    Ok(root.filter(|r| {
        !matches!(&r.node.kind, NodeKind::Scalar { text, style: Style::Plain } if text.is_empty() && r.node.tag().is_none())
    }))
}

/// Collections end where the next token starts; trim trailing blank space
/// and comments so labels cover only the collection.
fn trim_end(text: &str, start: usize, end: usize) -> usize {
    let slice = &text[start..end.min(text.len())];
    let mut cut = slice.len();
    for line in slice.lines().rev() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            cut = cut.saturating_sub(line.len() + 1);
        } else {
            break;
        }
    }
    start + slice[..cut.min(slice.len())].trim_end().len()
}
