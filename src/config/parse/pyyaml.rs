//! Where saphyr and PyYAML (docker-registry 0.9.1's reader) part: the text
//! rewritten before saphyr reads it, and checks and corrections on what it
//! composed, so that regconf reads what docker-registry read and refuses
//! what it refused (README, "How regconf reads a file" and difference 10).
//!
//! It must not type scalars or look at flavors; it only knows YAML text.

use std::borrow::Cow;
use std::sync::Arc;

use saphyr_parser::ScalarStyle;

use super::{Node, NodeKind, ParseError, Ref, Style};
use crate::config::source::Span;

/// The text as saphyr is given it. PyYAML (docker-registry's reader) and
/// saphyr part on a few characters; each is rewritten here to one that saphyr
/// reads as PyYAML read the original, keeping every byte offset:
/// NEL (U+0085, two bytes) is a line break for PyYAML and becomes `\r\n`
/// (two bytes, one break for both); a byte-order mark inside the text is an
/// ordinary character for PyYAML and becomes a private-use character absent
/// from the text (three bytes each way), turned back in scalar values.
/// Characters PyYAML refused anywhere are refused here.
pub(super) struct Prepared<'a> {
    text: Cow<'a, str>,
    /// The character standing for U+FEFF, when the text has one.
    pub(super) bom: Option<char>,
}

impl Prepared<'_> {
    pub(super) fn text(&self) -> &str {
        &self.text
    }
}

/// Characters PyYAML 3.11's reader refused (outside its printable set; the
/// characters beyond the BMP it also refused are accepted: difference 4).
pub(super) fn refused_char(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{7f}'..='\u{84}' | '\u{86}'..='\u{9f}' | '\u{fffe}' | '\u{ffff}')
}

pub(super) fn prepare(text: &str) -> Result<Prepared<'_>, ParseError> {
    let special = |(i, c): (usize, char)| {
        c == '\u{85}'
            || (c == '\u{feff}' && i > 0)
            || matches!(c, '\u{2028}' | '\u{2029}')
            || refused_char(c)
    };
    // Most files are ASCII without control characters: a byte test says
    // so without decoding characters (a pass over the whole text).
    let plain = |b: &u8| matches!(*b, b'\t' | b'\n' | b'\r' | b' '..=b'~');
    if text.as_bytes().iter().all(plain) || !text.char_indices().any(special) {
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
pub(super) fn anchor_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

pub(super) fn written_name(text: &str, at: usize) -> &str {
    let rest = text.get(at + 1..).unwrap_or("");
    let len = rest
        .find(|c: char| c.is_whitespace() || ",[]{}".contains(c))
        .unwrap_or(rest.len());
    &rest[..len]
}

/// PyYAML wanted a space, not `[` or `{`, right after an anchor's name.
pub(super) fn opens_flow_after(text: &str, at: usize, name: &str) -> bool {
    text[at + 1 + name.len()..].starts_with(['[', '{'])
}

pub(super) fn anchor_refused(name: &str, at: Span) -> ParseError {
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
pub(super) fn check_anchor_name(text: &str, at: usize) -> Result<(), ParseError> {
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
pub(super) fn pyyaml_anchor(
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
pub(super) fn carry_scalar(text: &str, anchor_end: usize, carry: &str, value: &str) -> String {
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
pub(super) fn chomp_at_eof(text: &str, span: Span, value: &mut String) {
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
pub(super) fn question_key(text: &str, r: &Ref, flow: bool) -> Result<Option<Ref>, ParseError> {
    let node = &r.node;
    let NodeKind::Scalar {
        text: value,
        style: Style::Plain,
    } = &node.kind
    else {
        return Ok(None);
    };
    if !flow || node.tag().is_some() || node.anchor().is_some() {
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
        node: Arc::new(Node::new(
            NodeKind::Scalar {
                text: rest.to_owned(),
                style: Style::Plain,
            },
            None,
            Span::new(node.span.start + 1, node.span.end.max(node.span.start + 1)),
            None,
        )),
        alias: None,
    }))
}

/// A one-pair mapping `{key: null}` (PyYAML's reading of `[?key]`).
pub(super) fn single_pair(key: Ref, span: Span) -> Ref {
    let null = Ref {
        node: Arc::new(Node::new(
            NodeKind::Scalar {
                text: String::new(),
                style: Style::Plain,
            },
            None,
            Span::new(span.end, span.end),
            None,
        )),
        alias: None,
    };
    Ref {
        node: Arc::new(Node::new(
            NodeKind::Map(vec![(key, null)]),
            None,
            span,
            None,
        )),
        alias: None,
    }
}

/// Where a node's content starts, after its anchor and tag.
pub(super) fn after_properties(text: &str, start: usize) -> usize {
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
pub(super) fn check_tag_end(text: &str, start: usize) -> Result<(), ParseError> {
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
pub(super) fn check_empty_key(text: &str, key: &Ref) -> Result<(), ParseError> {
    let node = &key.node;
    let empty =
        matches!(&node.kind, NodeKind::Scalar { text, style: Style::Plain } if text.is_empty());
    if !empty || node.tag().is_some() || node.anchor().is_some() || key.alias.is_some() {
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
pub(super) fn check_tabs(text: &str, protected: &mut [Span]) -> Result<(), ParseError> {
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
pub(super) fn check_leading_document_end(text: &str) -> Result<(), ParseError> {
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
pub(super) fn check_flow_key_line(text: &str, key: &Ref) -> Result<(), ParseError> {
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
