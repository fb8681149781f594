//! The one renderer: diagnostics as terminal text or as JSON.
//!
//! Human output is miette's graphical report; colour and width are chosen by
//! the caller (tests pin no colour and 80 columns so output is exact text).
//! JSON output is regconf's own: one object per problem with file, line and
//! column, which miette's JSON handler does not give.

use miette::{GraphicalReportHandler, GraphicalTheme};
use serde_json::json;

use super::Diagnostic;

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
        .with_context_lines(1);
    let mut out = String::new();
    if handler.render_report(&mut out, diag).is_err() {
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
