//! The configuration core: a pipeline from a file to a resolved flavor.
//!
//! Stages, one module each, in order:
//!
//! 1. [`parse`]: YAML text → nodes with positions (saphyr-parser events).
//! 2. [`construct`]: nodes → typed values ([`yaml11`] typing), merge keys
//!    flattened with PyYAML's precedence.
//! 3. [`resolve`]: flavor selection, `_env:` variables ([`env`]), what
//!    docker-registry's loader injected; [`origin`] records where each value
//!    came from.
//! 4. [`typed`]: the typed model (`crate::model`); [`validate`] checks every
//!    flavor of a file; [`render`] writes a flavor out.
//! 5. `--set` [`overrides`] (layered with figment) after the flavor is
//!    resolved.
//!
//! The questions operators ask of a resolved flavor live in the `inspect`
//! room, other registries' formats in `export`: this room is the pipeline
//! and the typed model conversion only, and depends on neither of them, nor
//! on the command line or the registry.
//!
//! The environment arrives as an [`Env`] snapshot: nothing here reads the
//! process environment or prints.

pub mod construct;
pub(crate) mod env;
pub(crate) mod origin;
pub(crate) mod overrides;
pub(crate) mod parse;
pub mod render;
pub mod resolve;
pub(crate) mod source;
pub(crate) mod typed;
pub(crate) mod validate;
pub(crate) mod value;
pub(crate) mod yaml11;

use std::path::Path;
use std::sync::Arc;

pub use env::Env;
pub use origin::Provenance;
pub use resolve::{Inherit, Resolved, Rule};
pub use source::{Source, Span};
pub use value::{Key, Map, Value};

use crate::diagnostics::Diagnostic;

/// Parses a text into a document, as a diagnostic on failure.
pub fn parse_source(source: Arc<Source>) -> Result<parse::Document, Vec<Diagnostic>> {
    let keep = Arc::clone(&source);
    parse::parse(source).map_err(|e| vec![resolve::parse_diagnostic(&e, &keep)])
}

/// Parses and resolves one flavor of a text.
pub fn load(
    source: Arc<Source>,
    flavor: &str,
    inherit: Inherit,
    env: &Env,
) -> Result<Resolved, Vec<Diagnostic>> {
    let doc = parse_source(source)?;
    resolve::resolve(doc, flavor, inherit, env, &readable_file)
}

/// Whether `path` opens for reading as a file (what `open(path, 'rb')`
/// accepted in docker-registry: a directory does not; `/dev/null` does).
/// Opened without waiting for a FIFO's writer, and never read, so neither
/// a FIFO nor `/dev/zero` can hold regconf up.
pub(crate) fn readable_file(path: &str) -> bool {
    source::opens_for_reading(Path::new(path))
}
