//! regconf: validate, render and serve docker-registry style configuration.
//!
//! # Architecture
//!
//! ```text
//! cli ─┬─► inspect ──► config ──► model
//!      ├─► export ──────────────► model   (quoting YAML strings as config does)
//!      ├─► config
//!      └─► registry ────────────► model
//! cli, config, inspect, export ──► diagnostics
//! model depends on nothing in the crate.
//! ```
//!
//! * [`config`]: the configuration core, a pipeline: parse with positions →
//!   flavors and merge keys → `_env:` variables → typed model → validate →
//!   render. It depends on nothing but `model` and `diagnostics`.
//! * `inspect`: the questions operators ask of a resolved flavor (explain,
//!   variables, diff, flavors); it reads the pipeline's output, never parses.
//! * `export`: a flavor as another registry's configuration, from the typed
//!   model alone.
//! * [`model`]: the typed configuration, plain data.
//! * [`diagnostics`]: how problems are described and shown.
//! * [`registry`]: the container registry `serve` runs; it sees the
//!   configuration only through [`model`].
//! * [`cli`]: the command-line front end, the only place that prints.
//!
//! `tests/it/architecture.rs` checks these rules.

pub mod cli;
pub mod config;
pub mod diagnostics;
pub(crate) mod export;
pub(crate) mod inspect;
pub mod model;
pub mod registry;
