//! The one renderer: diagnostics as terminal text or as JSON.
//!
//! Human output is miette's graphical report; colour and width are chosen by
//! the caller (tests pin no colour and 80 columns so output is exact text).
//! JSON output is regconf's own: one object per problem with file, line and
//! column, which miette's JSON handler does not give.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, SourceCode, SourceSpan};
use serde_json::json;

use super::Diagnostic;
use super::excerpt::Excerpt;

/// Lines of context shown around a label.
const CONTEXT_LINES: usize = 1;

/// A diagnostic as miette draws it: its labels point into an [`Excerpt`]
/// of the source instead of the source itself.
struct Drawn<'a> {
    diag: &'a Diagnostic,
    excerpt: Option<Excerpt>,
    labels: Vec<LabeledSpan>,
}

impl<'a> Drawn<'a> {
    fn new(diag: &'a Diagnostic) -> Drawn<'a> {
        let Some(source) = diag.source.as_deref().filter(|_| !diag.labels.is_empty()) else {
            return Drawn {
                diag,
                excerpt: None,
                labels: Vec::new(),
            };
        };
        let spans: Vec<_> = diag
            .labels
            .iter()
            .map(|l| Excerpt::narrow(source, l.span.start..l.span.end))
            .collect();
        let excerpt = Excerpt::new(source, &spans, CONTEXT_LINES);
        let labels = diag
            .labels
            .iter()
            .zip(&spans)
            .enumerate()
            .map(|(i, (l, s))| {
                let (a, b) = (excerpt.map(source, s.start), excerpt.map(source, s.end));
                let span = SourceSpan::new(a.into(), b.saturating_sub(a));
                let text = (!l.text.is_empty()).then(|| l.text.clone());
                if i == 0 {
                    LabeledSpan::new_primary_with_span(text, span)
                } else {
                    LabeledSpan::new_with_span(text, span)
                }
            })
            .collect();
        Drawn {
            diag,
            excerpt: Some(excerpt),
            labels,
        }
    }
}

impl fmt::Debug for Drawn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diag, f)
    }
}

impl fmt::Display for Drawn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.diag, f)
    }
}

impl std::error::Error for Drawn<'_> {}

impl miette::Diagnostic for Drawn<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        miette::Diagnostic::code(self.diag)
    }

    fn severity(&self) -> Option<miette::Severity> {
        miette::Diagnostic::severity(self.diag)
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        miette::Diagnostic::help(self.diag)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.excerpt.as_ref().map(|e| e as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.excerpt.as_ref()?;
        Some(Box::new(self.labels.iter().cloned()))
    }
}

/// How to draw human-readable reports.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Use ANSI colours.
    pub color: bool,
    /// Wrap at this many columns.
    pub width: usize,
}

impl Default for Style {
    fn default() -> Style {
        Style {
            color: false,
            width: 80,
        }
    }
}

/// Renders one diagnostic for a terminal.
pub fn human(diag: &Diagnostic, style: Style) -> String {
    let theme = if style.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(style.width)
        .with_context_lines(CONTEXT_LINES);
    let mut out = String::new();
    if handler.render_report(&mut out, &Drawn::new(diag)).is_err() {
        out = format!("{}: {}\n", diag.code, diag.message);
    }
    out
}

/// Renders diagnostics for a terminal, separated by blank lines.
pub fn human_all(diags: &[Diagnostic], style: Style) -> String {
    diags
        .iter()
        .map(|d| human(d, style))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Renders at most `cap` diagnostics in full, errors first chosen (so a
/// flood of warnings cannot hide one), drawn in their order; the rest are
/// summarised with a count per code. A report of 160,000 problems is read
/// by no one, and drawing them all took longer than finding them.
pub fn human_capped(diags: &[Diagnostic], style: Style, cap: usize) -> String {
    if diags.len() <= cap {
        return human_all(diags, style);
    }
    let mut drawn = vec![false; diags.len()];
    let mut left = cap;
    for pass in [true, false] {
        for (i, d) in diags.iter().enumerate() {
            if left > 0 && !drawn[i] && d.is_error() == pass {
                drawn[i] = true;
                left -= 1;
            }
        }
    }
    let shown: Vec<String> = diags
        .iter()
        .zip(&drawn)
        .filter(|&(_, &on)| on)
        .map(|(d, _)| human(d, style))
        .collect();
    // the codes of the others, in order of first appearance
    let mut codes: Vec<(&str, super::Severity, usize)> = Vec::new();
    for (d, _) in diags.iter().zip(&drawn).filter(|&(_, &on)| !on) {
        match codes.iter_mut().find(|(c, _, _)| *c == d.code) {
            Some(entry) => entry.2 += 1,
            None => codes.push((d.code, d.severity, 1)),
        }
    }
    let rest = diags.len() - cap;
    let mut summary = format!(
        "… and {} more not drawn ({cap} are, errors first; `--format json` lists every one):\n",
        thousands(rest)
    );
    for (code, severity, n) in codes {
        let kind = match severity {
            super::Severity::Error => "error",
            super::Severity::Warning => "warning",
            super::Severity::Advice => "advice",
        };
        let plural = if n == 1 || kind == "advice" { "" } else { "s" };
        summary.push_str(&format!("  {} {kind}{plural} {code}\n", thousands(n)));
    }
    let mut out = shown.join("\n");
    out.push('\n');
    out.push_str(&summary);
    out
}

/// `n` with a comma between groups of three digits.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One diagnostic as a JSON object.
pub fn json_value(diag: &Diagnostic) -> serde_json::Value {
    let (line, column) = diag.line_col().unzip();
    json!({
        "file": diag.source.as_ref().map(|s| s.name().to_owned()),
        "line": line,
        "column": column,
        "code": diag.code,
        "severity": match diag.severity {
            super::Severity::Error => "error",
            super::Severity::Warning => "warning",
            super::Severity::Advice => "advice",
        },
        "flavor": diag.flavor,
        "key": diag.key_path,
        "message": diag.message,
        "help": diag.help,
    })
}
