//! regconf: validate, render and serve docker-registry style configuration.
//!
//! # Architecture
//!
//! ```text
//! cli ──► config ──► model          registry ──► model
//!  │        └──────► diagnostics
//!  └──► diagnostics, registry
//! model depends on nothing in the crate.
//! ```
//!
//! * [`config`]: the configuration core, a pipeline: parse with positions →
//!   flavors and merge keys → `_env:` variables → typed model → validate →
//!   render.
//! * [`model`]: the typed configuration, plain data.
//! * [`diagnostics`]: how problems are described and shown.
//! * [`registry`]: the container registry `serve` runs; it sees the
//!   configuration only through [`model`].
//! * [`cli`]: the command-line front end, the only place that prints.

pub mod cli;
pub mod config;
pub mod diagnostics;
pub mod model;
pub mod registry;
