//! Questions operators ask of a resolved flavor, answered as data for the
//! command line to print: [`explain`] (the chain behind a value),
//! [`variables`] (what a flavor reads), [`diff`] (two flavors, or one flavor
//! under two environments) and [`flavors`] (how they inherit).
//!
//! Everything here reads what the pipeline in `crate::config` produced (a
//! [`Resolved`](crate::config::Resolved) flavor, its provenance, the composed
//! document) and asks the pipeline's entry points for more. It must not parse
//! or type YAML itself, print, or read the process environment.

pub(crate) mod diff;
pub(crate) mod explain;
pub(crate) mod flavors;
pub(crate) mod variables;
