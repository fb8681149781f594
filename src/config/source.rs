//! Loaded text and positions in it.
//!
//! A [`Source`] is one text the core read (the configuration file, or the
//! value of an environment variable that was parsed as YAML). A [`Span`] is a
//! byte range in one source. Line and column are computed on demand, so the
//! parser stores two integers per position and nothing else.

use std::sync::Arc;

/// A text the core parsed, with a name for messages.
#[derive(Debug)]
pub struct Source {
    name: String,
    text: String,
    line_starts: Vec<usize>,
    /// Characters before every multiple of [`STRIDE`] bytes, so that a
    /// column costs at most `STRIDE` bytes of counting however long the
    /// line (one is empty for ASCII text, where bytes are characters).
    char_marks: Vec<usize>,
}

/// Bytes between two entries of `char_marks`.
const STRIDE: usize = 4096;

/// Whether a byte starts a character (is not a UTF-8 continuation byte).
fn starts_char(b: u8) -> bool {
    b & 0xC0 != 0x80
}

impl Source {
    /// Wraps `text`, shown to users as `name`.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<Source> {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let char_marks = if text.is_ascii() {
            Vec::new()
        } else {
            let mut marks = vec![0];
            let mut count = 0;
            for chunk in text.as_bytes().chunks(STRIDE) {
                count += chunk.iter().filter(|&&b| starts_char(b)).count();
                marks.push(count);
            }
            marks
        };
        Arc::new(Source {
            name: name.into(),
            text,
            line_starts,
            char_marks,
        })
    }

    /// The name shown in messages (a path, or `$NAME` for a variable).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Line (1-based) and column (1-based, in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_index(offset);
        let start = self.line_starts[line];
        let col = self.chars_before(offset) - self.chars_before(start);
        (line + 1, col + 1)
    }

    /// Characters in the text before byte `offset` (a character boundary).
    fn chars_before(&self, offset: usize) -> usize {
        if self.char_marks.is_empty() {
            return offset;
        }
        let mark = offset / STRIDE;
        let counted = self.text.as_bytes()[mark * STRIDE..offset]
            .iter()
            .filter(|&&b| starts_char(b))
            .count();
        self.char_marks[mark] + counted
    }

    /// The line (0-based) that holds byte `offset`.
    pub(crate) fn line_index(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.line_starts.partition_point(|&s| s <= offset) - 1
    }

    /// How many lines the text has (a final newline starts an empty one).
    pub(crate) fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// Where line `line` (0-based) starts, where its text ends (before
    /// `\r\n` or `\n`), and where the next line starts.
    pub(crate) fn line_bounds(&self, line: usize) -> (usize, usize, usize) {
        let start = self.line_starts[line];
        let next = self
            .line_starts
            .get(line + 1)
            .copied()
            .unwrap_or(self.text.len());
        let bytes = self.text.as_bytes();
        let mut end = next;
        if end > start && bytes[end - 1] == b'\n' {
            end -= 1;
            if end > start && bytes[end - 1] == b'\r' {
                end -= 1;
            }
        }
        (start, end, next)
    }

    /// The text of the line (without its newline) that holds `offset`.
    pub fn line_text(&self, offset: usize) -> &str {
        let (line, _) = self.line_col(offset);
        let start = self.line_starts[line - 1];
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&e| e - 1);
        self.text[start..end].trim_end_matches('\r')
    }
}

/// A byte range in a [`Source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end` (bytes).
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start,
            end: end.max(start),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the span covers no byte.
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// Converts the parser's character indices to byte offsets.
///
/// saphyr counts characters; miette and our spans count bytes. For ASCII
/// text (the usual case) the two are equal and no table is built.
pub(crate) struct CharIndex {
    table: Option<Vec<usize>>,
    len: usize,
}

impl CharIndex {
    pub(crate) fn new(text: &str) -> CharIndex {
        let table = (!text.is_ascii()).then(|| {
            let mut t: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
            t.push(text.len());
            t
        });
        CharIndex {
            table,
            len: text.len(),
        }
    }

    pub(crate) fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index.min(self.len),
            Some(t) => t.get(char_index).copied().unwrap_or(self.len),
        }
    }
}
