//! Loaded text and positions in it.
//!
//! A [`Source`] is one text the core read (the configuration file, or the
//! value of an environment variable that was parsed as YAML). A [`Span`] is a
//! byte range in one source. Line and column are computed on demand, so the
//! parser stores two integers per position and nothing else.

use std::io::Read;
use std::path::Path;
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
    /// Lines the diagnostic renderer shows masked whole (the continuation
    /// lines of secret values), found by it on first need.
    masked_lines: std::sync::OnceLock<Vec<std::ops::Range<usize>>>,
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
            masked_lines: std::sync::OnceLock::new(),
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

    /// The renderer's cache of the lines it masks whole.
    pub(crate) fn masked_lines(&self) -> &std::sync::OnceLock<Vec<std::ops::Range<usize>>> {
        &self.masked_lines
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

/// The most a configuration file may hold: real ones hold kilobytes, and
/// the limit leaves room for generated files many times the size of any
/// seen (the 50 MB benchmark in `benches/hostile.sh` among them) while
/// keeping what a mistaken path can make regconf hold in memory bounded.
pub(crate) const CONFIG_LIMIT: u64 = 64 << 20;

/// Why a file was not read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// Opening or reading failed.
    Io(std::io::Error),
    /// The path names something that is not a regular file (the kind).
    NotRegular(&'static str),
    /// The file holds more than the limit (bytes).
    TooLarge(u64),
}

impl ReadError {
    /// The reason, lowercase, for a message after "cannot read `PATH`: ".
    pub(crate) fn reason(&self) -> String {
        match self {
            ReadError::Io(e) => match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_owned(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                std::io::ErrorKind::IsADirectory => "it is a directory".to_owned(),
                _ => {
                    let text = e.to_string();
                    text.split(" (os error")
                        .next()
                        .unwrap_or(&text)
                        .to_lowercase()
                }
            },
            ReadError::NotRegular(kind) => format!("it is {kind}, not a regular file"),
            ReadError::TooLarge(limit) => {
                format!("it holds more than {} (the limit)", size_text(*limit))
            }
        }
    }
}

/// A size in the largest binary unit that divides it.
pub(crate) fn size_text(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// Opens `path` for reading without waiting on a FIFO's writer, and refuses
/// what is not a regular file, judged on the opened handle (so the answer
/// holds for what is read, whatever the path names a moment later).
pub(crate) fn open_regular(path: &Path) -> Result<std::fs::File, ReadError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(ReadError::Io)?;
    let kind = file.metadata().map_err(ReadError::Io)?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    Err(ReadError::NotRegular(if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }))
}

/// Whether `path` opens for reading (without waiting on a FIFO's writer)
/// and is not a directory; nothing is read.
pub(crate) fn opens_for_reading(path: &Path) -> bool {
    match open_regular(path) {
        Ok(_) => true,
        Err(ReadError::NotRegular(kind)) => kind != "a directory",
        Err(_) => false,
    }
}

/// Reads the regular file `path`, at most `limit` bytes of it (a file that
/// grows past the limit while read is refused too).
pub(crate) fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let file = open_regular(path)?;
    let size = file.metadata().map_err(ReadError::Io)?.len();
    if size > limit {
        return Err(ReadError::TooLarge(limit));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge(limit));
    }
    Ok(bytes)
}
