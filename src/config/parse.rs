//! Stage 1: YAML text → a tree of nodes that keep their positions.
//!
//! This is a composer over saphyr-parser's event stream. It builds nodes
//! (scalars with their raw text, style and tag; sequences; mappings as lists of
//! pairs), shares anchored nodes between their aliases, and records where each
//! node and each alias stands. It gives no meaning to anything: typing, merge
//! keys and `_env:` come later. It refuses what PyYAML's composer refused
//! (undefined and duplicate anchors, several documents) and what would make
//! later stages loop (recursive aliases).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span as PSpan};

use super::source::{CharIndex, Source, Span};

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
#[derive(Debug)]
pub struct Node {
    /// What the node holds.
    pub kind: NodeKind,
    /// The explicit tag, expanded (`tag:yaml.org,2002:str`), if any.
    pub tag: Option<String>,
    /// Where the node is written (for collections: from the first property
    /// or indicator to the end of the collection).
    pub span: Span,
    /// The anchor name (`&common`), if the node has one.
    pub anchor: Option<String>,
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
    /// Where the alias stands, when the node was reached through one.
    pub alias: Option<Span>,
}

impl Ref {
    /// The position to point at for this use: the alias if there is one.
    pub fn site(&self) -> Span {
        self.alias.unwrap_or(self.node.span)
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
        match (&self.node.kind, &self.node.tag) {
            (NodeKind::Scalar { text, style }, None) => *style == Style::Plain && text == "<<",
            (NodeKind::Scalar { .. }, Some(t)) => t == "tag:yaml.org,2002:merge",
            _ => false,
        }
    }

    /// Whether this is a plain, untagged `<<`.
    pub(crate) fn is_plain_merge_key(&self) -> bool {
        self.node.tag.is_none() && self.is_merge_key()
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
#[derive(Debug)]
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
            anchors: HashMap::new(),
            open_anchors: HashMap::new(),
            anchor_names: HashMap::new(),
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
                        alias: Some(span),
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
                                node: Arc::new(Node {
                                    kind: NodeKind::Map(Vec::new()),
                                    tag: None,
                                    span,
                                    anchor: None,
                                }),
                                alias: Some(span),
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
                let node = Arc::new(Node {
                    kind: NodeKind::Scalar {
                        text: text_value,
                        style,
                    },
                    tag: tag.as_deref().and_then(expand_tag),
                    span,
                    anchor: name,
                });
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
                let node = Arc::new(Node {
                    kind,
                    tag,
                    span: Span::new(start, trim_end(text, start, end)),
                    anchor: name,
                });
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
        !matches!(&r.node.kind, NodeKind::Scalar { text, style: Style::Plain } if text.is_empty() && r.node.tag.is_none())
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

/// The text as saphyr is given it. PyYAML (docker-registry's reader) and
/// saphyr part on a few characters; each is rewritten here to one that saphyr
/// reads as PyYAML read the original, keeping every byte offset:
/// NEL (U+0085, two bytes) is a line break for PyYAML and becomes `\r\n`
/// (two bytes, one break for both); a byte-order mark inside the text is an
/// ordinary character for PyYAML and becomes a private-use character absent
/// from the text (three bytes each way), turned back in scalar values.
/// Characters PyYAML refused anywhere are refused here.
struct Prepared<'a> {
    text: Cow<'a, str>,
    /// The character standing for U+FEFF, when the text has one.
    bom: Option<char>,
}

impl Prepared<'_> {
    fn text(&self) -> &str {
        &self.text
    }
}

/// Characters PyYAML 3.11's reader refused (outside its printable set; the
/// characters beyond the BMP it also refused are accepted: difference 4).
fn refused_char(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}')
}

fn prepare(text: &str) -> Result<Prepared<'_>, ParseError> {
    let special = |(i, c): (usize, char)| {
        c == '\u{85}'
            || (c == '\u{feff}' && i > 0)
            || matches!(c, '\u{2028}' | '\u{2029}')
            || refused_char(c)
    };
    if !text.char_indices().any(special) {
        return Ok(Prepared {
            text: Cow::Borrowed(text),
            bom: None,
        });
    }
    let bom = text
        .char_indices()
        .any(|(i, c)| c == '\u{feff}' && i > 0)
        .then(|| ('\u{e000}'..='\u{f8ff}').find(|m| !text.contains(*m)))
        .flatten();
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        let at = Span::new(i, i + c.len_utf8());
        match c {
            '\u{85}' => out.push_str("\r\n"),
            '\u{feff}' if i > 0 => match bom {
                Some(mark) => out.push(mark),
                None => out.push(c),
            },
            '\u{2028}' | '\u{2029}' => {
                let name = if c == '\u{2028}' {
                    "LINE SEPARATOR"
                } else {
                    "PARAGRAPH SEPARATOR"
                };
                return Err(ParseError::Syntax {
                    message: format!(
                        "the character U+{:04X} ({name}) is not accepted: docker-registry's YAML \
                         reader read it as a line break, with rules of its own; write an \
                         ordinary line break instead",
                        u32::from(c)
                    ),
                    at,
                });
            }
            c if refused_char(c) => {
                return Err(ParseError::Syntax {
                    message: format!(
                        "the control character U+{:04X} is not allowed: docker-registry's YAML \
                         reader (PyYAML) refused it anywhere in the file; remove it, or write \
                         it as an escape inside double quotes (`\"\\x{:02X}\"`)",
                        u32::from(c),
                        u32::from(c) & 0xff
                    ),
                    at,
                });
            }
            c => out.push(c),
        }
    }
    Ok(Prepared {
        text: Cow::Owned(out),
        bom,
    })
}

/// Whether PyYAML accepted `c` in an anchor or alias name.
fn anchor_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn written_name(text: &str, at: usize) -> &str {
    let rest = text.get(at + 1..).unwrap_or("");
    let len = rest
        .find(|c: char| c.is_whitespace() || ",[]{}".contains(c))
        .unwrap_or(rest.len());
    &rest[..len]
}

/// PyYAML wanted a space, not `[` or `{`, right after an anchor's name.
fn opens_flow_after(text: &str, at: usize, name: &str) -> bool {
    text[at + 1 + name.len()..].starts_with(['[', '{'])
}

fn anchor_refused(name: &str, at: Span) -> ParseError {
    let bad = name.chars().find(|c| !anchor_char(*c));
    ParseError::Syntax {
        message: match bad {
            None if !name.is_empty() => format!(
                "the anchor `&{name}` runs into the next character: docker-registry's YAML \
                 reader (PyYAML) wanted a space after an anchor's name; add one"
            ),
            Some(c) => format!(
                "the anchor name `{name}` holds `{c}`: docker-registry's YAML reader (PyYAML) \
                 allowed only ASCII letters, digits, `-` and `_` in anchor names; rename the \
                 anchor and its aliases"
            ),
            None => "an anchor or alias needs a name".to_owned(),
        },
        at,
    }
}

/// Refuses an anchor (`&name`) or alias (`*name`) at `at` whose name PyYAML
/// refused.
fn check_anchor_name(text: &str, at: usize) -> Result<(), ParseError> {
    if !text[at..].starts_with(['&', '*']) {
        return Ok(());
    }
    let name = written_name(text, at);
    if !name.is_empty() && name.chars().all(anchor_char) && !opens_flow_after(text, at, name) {
        return Ok(());
    }
    Err(anchor_refused(name, Span::new(at, at + 1 + name.len())))
}

/// The anchor name PyYAML read from `written` (the name saphyr read) on a
/// scalar, and the text PyYAML read as the start of the scalar instead: its
/// names end at the first character outside [`anchor_char`], and after
/// `&x:y 1` or `&x?y 1` the scalar is `:y 1` or `?y 1`.
fn pyyaml_anchor(
    written: &str,
    at: Span,
    style: ScalarStyle,
    flow: bool,
) -> Result<(String, Option<String>), ParseError> {
    match written.find(|c| !anchor_char(c)) {
        None if !written.is_empty() => Ok((written.to_owned(), None)),
        // In a flow collection PyYAML read that `:` or `?` as an indicator.
        Some(k)
            if k > 0
                && !flow
                && style == ScalarStyle::Plain
                && written[k..].starts_with([':', '?'])
                && written.len() > k + 1 =>
        {
            Ok((written[..k].to_owned(), Some(written[k..].to_owned())))
        }
        _ => Err(anchor_refused(
            written,
            Span::new(at.start, at.start + 1 + written.len()),
        )),
    }
}

/// The plain scalar PyYAML read when an anchor's name ended early: the rest
/// of the name, the spaces after it, then the value saphyr read (folded onto
/// the same line when it starts on the next one).
fn carry_scalar(text: &str, anchor_end: usize, carry: &str, value: &str) -> String {
    if value.is_empty() {
        return carry.to_owned();
    }
    let rest = &text[anchor_end..];
    let spaces = rest.len() - rest.trim_start_matches(' ').len();
    if rest[spaces..].starts_with(['\n', '\r']) {
        format!("{carry} {value}")
    } else {
        format!("{carry}{}{value}", &rest[..spaces])
    }
}

/// A literal or folded block scalar that runs to the end of a text without a
/// final line break: PyYAML read its last line (text, or spaces reaching the
/// block's indentation) as content with no line break after it, where saphyr
/// adds one.
fn chomp_at_eof(text: &str, span: Span, value: &mut String) {
    if text.ends_with(['\n', '\r']) || !text.get(span.end..).unwrap_or("").trim().is_empty() {
        return;
    }
    // saphyr's span starts at the properties or header when there are
    // any, else at the first content line.
    let header = text[span.start..].starts_with(['&', '!', '|', '>']);
    let line_start = text[..span.start].rfind(['\n', '\r']).map_or(0, |i| i + 1);
    let Some(indent) = text[line_start..]
        .split(['\n', '\r'])
        .skip(usize::from(header))
        .find(|line| !line.trim_start_matches(' ').is_empty())
        .map(|line| line.len() - line.trim_start_matches(' ').len())
    else {
        return;
    };
    let last_line = text.rsplit(['\n', '\r']).next().unwrap_or("");
    let content = !last_line.trim().is_empty() || last_line.len() >= indent;
    if content && value.ends_with('\n') {
        value.pop();
    }
}

/// In a flow collection PyYAML read `?` as the key indicator even with no
/// space after it: `[?q]` is `[{q: null}]`, `{?q: 1}` is `{q: 1}`. Returns
/// the key node PyYAML read when `r` is such a scalar.
fn question_key(text: &str, r: &Ref, flow: bool) -> Result<Option<Ref>, ParseError> {
    let node = &r.node;
    let NodeKind::Scalar {
        text: value,
        style: Style::Plain,
    } = &node.kind
    else {
        return Ok(None);
    };
    if !flow || node.tag.is_some() || node.anchor.is_some() {
        return Ok(None);
    }
    let written = &text[node.span.start..node.span.end.min(text.len())];
    if written.starts_with(['|', '>']) && value.starts_with(['|', '>']) {
        return Err(ParseError::Syntax {
            message: "docker-registry's YAML reader (PyYAML) refused `|` and `>` at the start \
                      of a value inside `[...]` or `{...}`; quote the value"
                .to_owned(),
            at: Span::new(node.span.start, node.span.start + 1),
        });
    }
    if value.get(1..).is_some_and(|v| v.contains('?'))
        && let Some(j) = written.get(1..).and_then(|w| w.find('?'))
    {
        let at = node.span.start + 1 + j;
        return Err(ParseError::Syntax {
            message: "docker-registry's YAML reader (PyYAML) ended a value inside `[...]` or \
                      `{...}` at `?` and refused the rest; quote the value"
                .to_owned(),
            at: Span::new(at, at + 1),
        });
    }
    if value.starts_with(':') && text[node.span.start..].starts_with(':') {
        return Err(ParseError::Syntax {
            message: "docker-registry's YAML reader (PyYAML) read this `:` as the value \
                      indicator, with no key before it, and refused it; quote the value"
                .to_owned(),
            at: Span::new(node.span.start, node.span.start + 1),
        });
    }
    if !value.starts_with('?') || !text[node.span.start..].starts_with('?') {
        return Ok(None);
    }
    let rest = &value[1..];
    if rest.starts_with(|c: char| "\"'&*!|>%@`[{".contains(c)) {
        return Err(ParseError::Syntax {
            message: "docker-registry's YAML reader (PyYAML) read this `?` as a key indicator; \
                      put a space after it, or quote the whole value"
                .to_owned(),
            at: Span::new(node.span.start, node.span.start + 1),
        });
    }
    Ok(Some(Ref {
        node: Arc::new(Node {
            kind: NodeKind::Scalar {
                text: rest.to_owned(),
                style: Style::Plain,
            },
            tag: None,
            span: Span::new(node.span.start + 1, node.span.end.max(node.span.start + 1)),
            anchor: None,
        }),
        alias: None,
    }))
}

/// A one-pair mapping `{key: null}` (PyYAML's reading of `[?key]`).
fn single_pair(key: Ref, span: Span) -> Ref {
    let null = Ref {
        node: Arc::new(Node {
            kind: NodeKind::Scalar {
                text: String::new(),
                style: Style::Plain,
            },
            tag: None,
            span: Span::new(span.end, span.end),
            anchor: None,
        }),
        alias: None,
    };
    Ref {
        node: Arc::new(Node {
            kind: NodeKind::Map(vec![(key, null)]),
            tag: None,
            span,
            anchor: None,
        }),
        alias: None,
    }
}

/// Where a node's content starts, after its anchor and tag.
fn after_properties(text: &str, start: usize) -> usize {
    let mut i = start;
    for _ in 0..2 {
        let rest = &text[i..];
        if !rest.starts_with(['&', '!']) {
            break;
        }
        let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let len = rest[..len]
            .find(|c: char| ",[]{}".contains(c) && rest.starts_with('&'))
            .unwrap_or(len);
        i += len;
        i += text[i..].len() - text[i..].trim_start().len();
    }
    i
}

/// PyYAML read a tag up to the next space, flow indicators included:
/// `[!!str, b]` has the tag `!!str,`, which it refused.
fn check_tag_end(text: &str, start: usize) -> Result<(), ParseError> {
    let mut i = start;
    for _ in 0..2 {
        let rest = &text[i..];
        if rest.starts_with('&') {
            let len = rest
                .find(|c: char| c.is_whitespace() || ",[]{}".contains(c))
                .unwrap_or(rest.len());
            i += len;
        } else if rest.starts_with('!') {
            let len = rest
                .find(|c: char| c.is_whitespace() || ",[]{}".contains(c))
                .unwrap_or(rest.len());
            if rest[len..].starts_with([',', '[', ']', '{', '}']) {
                return Err(ParseError::Syntax {
                    message: format!(
                        "docker-registry's YAML reader (PyYAML) read the tag here as `{}`, \
                         with the `{}` after it, and refused it; put a space after the tag",
                        &rest[..=len],
                        &rest[len..=len]
                    ),
                    at: Span::new(i, i + len + 1),
                });
            }
            i += len;
        } else {
            break;
        }
        i += text[i..].len() - text[i..].trim_start().len();
    }
    Ok(())
}

/// PyYAML refused a mapping entry with no key before its `:` (`: 1`); an
/// explicit empty key (`?` alone) it read as null.
fn check_empty_key(text: &str, key: &Ref) -> Result<(), ParseError> {
    let node = &key.node;
    let empty =
        matches!(&node.kind, NodeKind::Scalar { text, style: Style::Plain } if text.is_empty());
    if !empty || node.tag.is_some() || node.anchor.is_some() || key.alias.is_some() {
        return Ok(());
    }
    let at = node.span.start;
    if !text[at..].starts_with(':') || text[..at].trim_end().ends_with('?') {
        return Ok(());
    }
    Err(ParseError::Syntax {
        message: "this `:` has no key before it: docker-registry's YAML reader (PyYAML) refused \
                  an empty key; write the key before the `:`"
            .to_owned(),
        at: Span::new(at, at + 1),
    })
}

/// PyYAML refused a tab anywhere but inside quoted and block scalars and
/// comments (as indentation, before or after a value, inside a plain
/// scalar). `protected` holds the quoted and block scalars.
fn check_tabs(text: &str, protected: &mut [Span]) -> Result<(), ParseError> {
    if !text.contains('\t') {
        return Ok(());
    }
    protected.sort_by_key(|s| s.start);
    let bytes = text.as_bytes();
    let mut p = 0;
    let mut in_comment = false;
    let mut prev = b'\n';
    for (i, &b) in bytes.iter().enumerate() {
        while p < protected.len() && protected[p].end <= i {
            p += 1;
        }
        let inside = p < protected.len() && protected[p].start <= i;
        if b == b'\n' || b == b'\r' {
            in_comment = false;
        } else if !inside && !in_comment {
            if b == b'#' && matches!(prev, b' ' | b'\t' | b'\n' | b'\r') {
                in_comment = true;
            } else if b == b'\t' {
                return Err(ParseError::Syntax {
                    message: "a tab here: docker-registry's YAML reader (PyYAML) refused tabs \
                              outside quoted values, block scalars and comments; use spaces, \
                              or quote the value"
                        .to_owned(),
                    at: Span::new(i, i + 1),
                });
            }
        }
        prev = b;
    }
    Ok(())
}

/// PyYAML refused a stream whose first token is the document end marker
/// `...` (the text `...` alone, as a variable's value, say): it expected a
/// node first.
fn check_leading_document_end(text: &str) -> Result<(), ParseError> {
    let mut offset = 0;
    for line in text.split_inclusive(['\n', '\r']) {
        let content = line.trim_end_matches(['\n', '\r']);
        let trimmed = content.trim_start_matches(' ');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            offset += line.len();
            continue;
        }
        let marker = content
            .strip_prefix("...")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']));
        if marker {
            return Err(ParseError::Syntax {
                message: "the text starts with the document end marker `...`, which \
                          docker-registry's YAML reader (PyYAML) refused before any value; \
                          quote it (`'...'`) or remove it"
                    .to_owned(),
                at: Span::new(offset, offset + 3),
            });
        }
        return Ok(());
    }
    Ok(())
}

/// In a flow mapping PyYAML wanted the `:` on the line where an implicit key
/// ends (`{a⏎: 1}` it refused); after an explicit `? key` the `:` may follow
/// on a later line.
fn check_flow_key_line(text: &str, key: &Ref) -> Result<(), ParseError> {
    let site = key.site();
    if text[..site.start].trim_end().ends_with('?') {
        return Ok(());
    }
    let after = &text[site.end.min(text.len())..];
    // Look no further than the entry's end: a set (`{a, b}`) has no `:`.
    let Some(colon) = after
        .find([':', ',', '}', ']'])
        .filter(|&i| after[i..].starts_with(':'))
    else {
        return Ok(());
    };
    match after[..colon].find(['\n', '\r']) {
        Some(_) if after[..colon].trim().is_empty() => Err(ParseError::Syntax {
            message: "docker-registry's YAML reader (PyYAML) wanted this `:` on the line of its \
                      key; move it up"
                .to_owned(),
            at: Span::new(site.end + colon, site.end + colon + 1),
        }),
        _ => Ok(()),
    }
}
