//! What a human report shows of a source: the lines around the labels, each
//! long line cut to a window around what it points at, secret values masked.
//!
//! miette reads the text it shows from the start of the source and pads to a
//! label's column with a width argument, which panics past 65,535 columns;
//! reading from the start also makes a report per problem cost the size of
//! the file. So the renderer never hands miette a [`Source`]: it hands it an
//! [`Excerpt`], a few short lines built in time bounded by their own length,
//! which answers with the original line numbers and columns. This module
//! decides nothing about configuration beyond which key names hold secrets.

use std::ops::Range;

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

use crate::config::source::Source;

/// Lines longer than this many bytes are cut.
const LONGEST_LINE: usize = 160;
/// Bytes shown before the first point of interest of a cut line.
const BEFORE: usize = 40;
/// Bytes shown of a cut line in all.
const WINDOW: usize = 120;
/// A label over more lines than this is shown on its first line only.
const TALLEST_LABEL: usize = 12;
/// How far left of a cut line's window a secret's key is looked for.
const KEY_REACH: usize = 256;
/// What marks the cut ends of a line.
const ELLIPSIS: &str = "…";

/// One shown line: which bytes of the source it shows, and where.
#[derive(Debug)]
struct Shown {
    /// The line's index (0-based) in the source.
    line: usize,
    /// Where the line starts in the source.
    line_start: usize,
    /// The source bytes shown.
    orig: Range<usize>,
    /// Where those bytes are in the excerpt.
    at: usize,
}

/// Lines shown without a gap between them.
#[derive(Debug)]
struct Chunk {
    /// The excerpt's bytes.
    range: Range<usize>,
    /// The first line's index in the source.
    first_line: usize,
}

/// A short stand-in for a source, for miette to draw from.
#[derive(Debug)]
pub(crate) struct Excerpt {
    name: String,
    text: String,
    shown: Vec<Shown>,
    chunks: Vec<Chunk>,
}

impl Excerpt {
    /// The lines of `source` that the spans and their context (`context`
    /// lines either side) need; spans are narrowed first by [`Excerpt::narrow`].
    pub(crate) fn new(source: &Source, spans: &[Range<usize>], context: usize) -> Excerpt {
        let last = source.line_count() - 1;
        // line ranges wanted, and the points of interest on each line
        let mut wanted: Vec<Range<usize>> = Vec::new();
        let mut points: Vec<(usize, usize)> = Vec::new();
        for s in spans {
            let (a, b) = (source.line_index(s.start), source.line_index(s.end));
            wanted.push(a.saturating_sub(context)..(b + context).min(last) + 1);
            points.push((a, s.start));
            points.push((b, s.end));
        }
        wanted.sort_by_key(|r| r.start);
        points.sort_unstable();
        let mut merged: Vec<Range<usize>> = Vec::new();
        for r in wanted {
            match merged.last_mut() {
                Some(m) if r.start <= m.end => m.end = m.end.max(r.end),
                _ => merged.push(r),
            }
        }
        let mut excerpt = Excerpt {
            name: source.name().to_owned(),
            text: String::new(),
            shown: Vec::new(),
            chunks: Vec::new(),
        };
        for lines in merged {
            let begin = excerpt.text.len();
            // a line with nothing on it is cut at the column of the nearest
            // point of interest before it (or the first one after it)
            let first = points[points.partition_point(|&(l, _)| l < lines.start)];
            let mut column = first.1 - source.line_bounds(first.0).0;
            for line in lines.clone() {
                let here = points
                    .get(points.partition_point(|&(l, _)| l < line))
                    .filter(|&&(l, _)| l == line)
                    .map(|&(_, p)| p);
                let start = source.line_bounds(line).0;
                if let Some(p) = here {
                    column = p - start;
                }
                excerpt.push_line(source, line, start + column);
            }
            excerpt.chunks.push(Chunk {
                range: begin..excerpt.text.len(),
                first_line: lines.start,
            });
        }
        excerpt
    }

    /// A label's span as it is shown: a label over many lines keeps its
    /// first line only.
    pub(crate) fn narrow(source: &Source, span: Range<usize>) -> Range<usize> {
        let (a, b) = (source.line_index(span.start), source.line_index(span.end));
        if b - a <= TALLEST_LABEL {
            return span;
        }
        let (_, end, _) = source.line_bounds(a);
        span.start..end.max(span.start)
    }

    fn push_line(&mut self, source: &Source, line: usize, anchor: usize) {
        let text = source.text();
        let (start, end, next) = source.line_bounds(line);
        let (lo, hi) = if end - start <= LONGEST_LINE {
            (start, end)
        } else {
            let anchor = anchor.clamp(start, end);
            let lo = floor_char(text, anchor.saturating_sub(BEFORE).max(start));
            let hi = floor_char(text, (lo + WINDOW).min(end));
            (lo, hi.max(lo))
        };
        if lo > start {
            self.text.push_str(ELLIPSIS);
        }
        let at = self.text.len();
        let masked = if continues_secret(source, line) {
            // every byte but blanks, so positions hold
            text[lo..hi].replace(|c: char| !c.is_whitespace(), "*")
        } else {
            mask_secrets(text, start, lo..hi)
        };
        // a lone carriage return is a line break to miette, not to us
        let shown = masked.replace('\r', " ");
        self.text.push_str(&shown);
        if hi < end {
            self.text.push_str(ELLIPSIS);
        }
        if next > end {
            self.text.push('\n');
        }
        self.shown.push(Shown {
            line,
            line_start: start,
            orig: lo..hi,
            at,
        });
    }

    /// Where source byte `offset` is shown (clamped into its line's window).
    pub(crate) fn map(&self, source: &Source, offset: usize) -> usize {
        let line = source.line_index(offset);
        let i = self.shown.partition_point(|s| s.line < line);
        let Some(s) = self.shown.get(i).or_else(|| self.shown.last()) else {
            return 0;
        };
        if s.line != line {
            // not shown (cannot happen for the spans given to `new`)
            return if s.line > line {
                s.at
            } else {
                s.at + s.orig.len()
            };
        }
        s.at + offset.clamp(s.orig.start, s.orig.end) - s.orig.start
    }

    /// The source column (0-based, in bytes, as miette counts) of excerpt
    /// byte `at`.
    fn column(&self, at: usize) -> usize {
        let i = self.shown.partition_point(|s| s.at <= at).saturating_sub(1);
        self.shown.get(i).map_or(0, |s| {
            let inside = at.saturating_sub(s.at).min(s.orig.len());
            s.orig.start + inside - s.line_start
        })
    }
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The bytes `window` of the line starting at `line_start`, with the values
/// of secret keys replaced by `*` (byte for byte, so positions hold).
fn mask_secrets(text: &str, line_start: usize, window: Range<usize>) -> String {
    let from = floor_char(text, window.start.saturating_sub(KEY_REACH).max(line_start));
    let scan = &text[from..window.end];
    let mut out: Vec<u8> = text.as_bytes()[window.clone()].to_vec();
    let bytes = scan.as_bytes();
    for (i, _) in scan.match_indices(':') {
        // a key ends at a colon followed by a space or the end of the text
        if bytes.get(i + 1).is_some_and(|&b| b != b' ' && b != b'\t') {
            continue;
        }
        let key = key_before(&scan[..i]);
        if key.is_empty() || !crate::model::is_secret(key) {
            continue;
        }
        let value = unreferenced(scan, value_after(scan, i + 1));
        for p in value {
            let abs = from + p;
            if window.contains(&abs) {
                out[abs - window.start] = b'*';
            }
        }
    }
    // every replaced byte was part of a whole masked value, but a window
    // edge may split a character: make the text valid again
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Whether line `line` continues the value of a secret key written on a
/// line above (a block scalar `password: |`, or a quoted or plain scalar
/// folded over lines), so that it is masked whole.
fn continues_secret(source: &Source, line: usize) -> bool {
    let ranges = source
        .masked_lines()
        .get_or_init(|| continuation_lines(source));
    let i = ranges.partition_point(|r| r.end <= line);
    ranges.get(i).is_some_and(|r| r.contains(&line))
}

/// The lines, in one pass over the source, that follow a line whose secret
/// key has a value on it and are indented further than that key (or blank).
fn continuation_lines(source: &Source) -> Vec<Range<usize>> {
    let text = source.text();
    let mut out: Vec<Range<usize>> = Vec::new();
    // the column of the secret key whose value is being continued
    let mut open: Option<usize> = None;
    for line in 0..source.line_count() {
        let (start, end, _) = source.line_bounds(line);
        let content = &text[start..end];
        let indent = content.len() - content.trim_start_matches(' ').len();
        let rest = &content[indent..];
        let blank = rest.trim().is_empty();
        if let Some(col) = open {
            if blank || indent > col {
                match out.last_mut() {
                    Some(r) if r.end == line => r.end = line + 1,
                    _ => out.push(line..line + 1),
                }
                continue;
            }
            open = None;
        }
        if blank {
            continue;
        }
        // `- - key: value`: the key's column is after the dashes
        let mut col = indent;
        let mut rest = rest;
        while let Some(r) = rest.strip_prefix("- ") {
            let r2 = r.trim_start_matches(' ');
            col += rest.len() - r2.len();
            rest = r2;
        }
        let Some(colon) = rest
            .match_indices(':')
            .map(|(i, _)| i)
            .find(|&i| rest.as_bytes().get(i + 1).is_none_or(|&b| b == b' '))
        else {
            continue;
        };
        let key = rest[..colon].trim().trim_matches(|c| c == '"' || c == '\'');
        let value = rest[colon + 1..].trim();
        if !value.is_empty() && !value.starts_with('#') && crate::model::is_secret(key) {
            open = Some(col);
        }
    }
    out
}

/// The part of a secret's value that may hold the secret: all of it, but
/// for `_env:NAME[:default]`, whose variable name is no secret, the default.
fn unreferenced(scan: &str, value: Range<usize>) -> Range<usize> {
    let text = &scan[value.clone()];
    let quoted = text.starts_with(['"', '\'']);
    let inner = if quoted { &text[1..] } else { text };
    let Some(rest) = inner.strip_prefix("_env:") else {
        return value;
    };
    let name = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let name_end = value.start + usize::from(quoted) + "_env:".len() + name;
    let closed = quoted && text.len() > 1 && text.ends_with(&text[..1]);
    let end = if closed { value.end - 1 } else { value.end };
    (name_end + 1).min(end)..end
}

/// The key that ends where `before` ends, without quotes.
fn key_before(before: &str) -> &str {
    let trimmed = before.trim_end();
    // after the separator, whatever its width (U+2028 is whitespace of
    // three bytes: `+ 1` cut into it and panicked)
    let start = trimmed
        .char_indices()
        .rfind(|&(_, c)| c.is_whitespace() || matches!(c, '{' | ',' | '[' | '?'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    trimmed[start..].trim_matches(|c| c == '"' || c == '\'')
}

/// The byte range of the value that starts after position `from`.
fn value_after(scan: &str, from: usize) -> Range<usize> {
    let bytes = scan.as_bytes();
    let mut start = from;
    while bytes.get(start).is_some_and(|&b| b == b' ' || b == b'\t') {
        start += 1;
    }
    let end = match bytes.get(start) {
        Some(&q @ (b'"' | b'\'')) => scan[start + 1..]
            .find(q as char)
            .map_or(scan.len(), |i| start + i + 2),
        _ => {
            let rest = &scan[start..];
            let stop = rest
                .char_indices()
                .find(|&(i, c)| {
                    matches!(c, ',' | '}' | ']') || c == '#' && rest[..i].ends_with(' ')
                })
                .map_or(rest.len(), |(i, _)| i);
            start + rest[..stop].trim_end().len()
        }
    };
    start..end
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let (start, end) = (span.offset(), span.offset() + span.len());
        let chunk = self
            .chunks
            .iter()
            .find(|c| c.range.start <= start && end <= c.range.end)
            .ok_or(MietteError::OutOfBounds)?;
        let text = &self.text[chunk.range.clone()];
        let local = SourceSpan::new((start - chunk.range.start).into(), span.len());
        let inner = text.read_span(&local, context_lines_before, context_lines_after)?;
        let data_start = chunk.range.start + inner.span().offset();
        let column = if context_lines_before == 0 {
            self.column(start)
        } else {
            0
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            SourceSpan::new(data_start.into(), inner.span().len()),
            chunk.first_line + inner.line(),
            column,
            chunk.first_line + inner.line_count(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::key_before;

    #[test]
    fn a_key_after_a_wide_separator_is_cut_at_a_character_boundary() {
        assert_eq!(key_before("\u{2028}_"), "_");
        assert_eq!(key_before("a: {'k'"), "k");
        assert_eq!(key_before("key"), "key");
    }
}
