//! How problems are described: one [`Diagnostic`] type for every layer.
//!
//! Each layer (parsing, flavors, variables, the model, the registry's start)
//! reports problems as `Diagnostic`s with a stable code
//! (`regconf::<area>::<name>`), a severity, a message, labelled spans in a
//! [`Source`], and help. [`report`] is the one renderer that turns them into
//! text (miette's graphical handler) or JSON. This module holds no
//! configuration logic.
//!
//! Message style: lowercase, no trailing period, user values in backticks,
//! the origin last.

mod excerpt;
pub mod report;

use std::fmt;
use std::sync::Arc;

use crate::config::source::{Source, Span};

/// Every code regconf can emit, stable across releases (each has a snapshot
/// test in `tests/it/validate.rs`).
pub const CODES: &[&str] = &[
    "regconf::cli::bad_set",
    "regconf::auth::htpasswd",
    "regconf::auth::readonly_unknown",
    "regconf::auth::readonly_without_htpasswd",
    "regconf::env::cycle",
    "regconf::env::in_list",
    "regconf::env::invalid_yaml",
    "regconf::env::missing_prefix",
    "regconf::env::required_unset",
    "regconf::env::set_but_empty",
    "regconf::env::too_deep",
    "regconf::env::unquoted",
    "regconf::explain::unknown_key",
    "regconf::export::no_equivalent",
    "regconf::file::env_file",
    "regconf::file::exists",
    "regconf::file::not_utf8",
    "regconf::file::too_large",
    "regconf::file::unreadable",
    "regconf::file::unwritable",
    "regconf::flavor::empty_file",
    "regconf::flavor::implicit_common",
    "regconf::flavor::missing",
    "regconf::flavor::non_string_name",
    "regconf::flavor::none_selected",
    "regconf::flavor::not_a_mapping",
    "regconf::flavor::top_not_mapping",
    "regconf::key::environment_only",
    "regconf::gc::failed",
    "regconf::key::index_endpoint_type",
    "regconf::key::misplaced",
    "regconf::key::old_version",
    "regconf::key::privileged_key_missing",
    "regconf::key::unknown",
    "regconf::merge::not_a_mapping",
    "regconf::merge::shallow",
    "regconf::migrate::failed",
    "regconf::mirroring::credentials",
    "regconf::mirroring::source_index",
    "regconf::mirroring::source_url",
    "regconf::path::expanded",
    "regconf::path::unset_variable",
    "regconf::serve::listen",
    "regconf::serve::listen_address",
    "regconf::serve::search_backend",
    "regconf::serve::search_database",
    "regconf::serve::search_index",
    "regconf::serve::start",
    "regconf::serve::storage",
    "regconf::search::backend_name",
    "regconf::search::database_url",
    "regconf::search::missing_database",
    "regconf::serve::unsupported_driver",
    "regconf::storage::missing_key",
    "regconf::storage::endpoint",
    "regconf::storage::azure_key",
    "regconf::storage::plain_http",
    "regconf::storage::unknown_driver",
    "regconf::tls::expires_soon",
    "regconf::tls::file",
    "regconf::tls::incomplete",
    "regconf::tls::key_mismatch",
    "regconf::tls::validity",
    "regconf::tls::version",
    "regconf::type::mismatch",
    "regconf::type::not_boolean",
    "regconf::type::not_exactly_true",
    "regconf::value::limit",
    "regconf::value::loglevel",
    "regconf::value::placeholder",
    "regconf::value::range",
    "regconf::value::verbosity_number",
    "regconf::yaml::bad_scalar",
    "regconf::yaml::comment_in_value",
    "regconf::yaml::duplicate_anchor",
    "regconf::yaml::duplicate_key",
    "regconf::yaml::multiple_documents",
    "regconf::yaml::not_a_string",
    "regconf::yaml::python_tag",
    "regconf::yaml::recursive_alias",
    "regconf::yaml::syntax",
    "regconf::yaml::too_deep",
    "regconf::yaml::too_large",
    "regconf::yaml::undefined_alias",
    "regconf::yaml::unhashable_key",
    "regconf::yaml::unknown_tag",
];

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A note: nothing is wrong, but something is worth knowing.
    Advice,
    /// Worth knowing; the file works.
    Warning,
    /// The file does not work as written.
    Error,
}

/// A label on a span of the diagnostic's source.
#[derive(Debug, Clone)]
pub struct Label {
    /// The span.
    pub span: Span,
    /// The text shown beside it.
    pub text: String,
}

/// One problem, with everything needed to show it.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Stable code, `regconf::<area>::<name>`.
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// The text the labels point into.
    pub source: Option<Arc<Source>>,
    /// Labels; the first is the primary one.
    pub labels: Vec<Label>,
    /// How to fix it.
    pub help: Option<String>,
    /// The flavor the problem was found in, if it belongs to one.
    pub flavor: Option<String>,
    /// The dotted key path, if the problem belongs to a key.
    pub key_path: Option<String>,
}

impl Diagnostic {
    /// A new error.
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            source: None,
            labels: Vec::new(),
            help: None,
            flavor: None,
            key_path: None,
        }
    }

    /// A new warning.
    pub fn warning(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    /// A new advice (a note).
    pub fn advice(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Advice,
            ..Diagnostic::error(code, message)
        }
    }

    /// Sets the source the labels refer to.
    #[must_use]
    pub fn with_source(mut self, source: &Arc<Source>) -> Diagnostic {
        self.source = Some(Arc::clone(source));
        self
    }

    /// Adds a label.
    #[must_use]
    pub fn label(mut self, span: Span, text: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            text: text.into(),
        });
        self
    }

    /// Sets the help text.
    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Sets the flavor.
    #[must_use]
    pub fn in_flavor(mut self, flavor: &str) -> Diagnostic {
        self.flavor = Some(flavor.to_owned());
        self
    }

    /// Sets the key path.
    #[must_use]
    pub fn at_key(mut self, path: impl Into<String>) -> Diagnostic {
        self.key_path = Some(path.into());
        self
    }

    /// Line and column (1-based) of the primary label, if any.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        let source = self.source.as_ref()?;
        let label = self.labels.first()?;
        Some(source.line_col(label.span.start))
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Code, severity and help; the source and labels are drawn through an
/// excerpt by [`report::human`], never read from the source directly.
impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Advice => miette::Severity::Advice,
            Severity::Warning => miette::Severity::Warning,
            Severity::Error => miette::Severity::Error,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
}

/// Sorts diagnostics by source position (diagnostics without one last),
/// errors before warnings at the same place.
pub(crate) fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| {
        (
            d.labels.first().map_or(usize::MAX, |l| l.span.start),
            std::cmp::Reverse(d.severity),
        )
    });
}
