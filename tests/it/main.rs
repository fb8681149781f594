//! regconf's integration tests: one binary, one module per area.

mod common;

// resolution against the reference resolver's committed outputs
mod resolve;
