//! Test support shared by the library's unit tests and the integration
//! tests: the moto S3 server, fake-gcs-server and PostgreSQL launchers and a raw HTTP
//! status helper, written once.
//!
//! Both crates include this folder as a module through `#[path]`
//! (`src/registry/mod.rs` under `#[cfg(test)]`, `tests/it/main.rs`). That
//! is the simplest way to share a hundred lines of test code between the
//! library and an integration test binary: no second `Cargo.toml`, no
//! workspace, no change to `Cargo.lock` or to how `cargo test` builds. A
//! dev-dependency crate would also work, but it is a package to maintain
//! for what is a pair of files, and it could not see the library's types
//! either. The price is a rule: these files use only `std` and each other
//! (`super::`), never `crate::` paths, because "crate" is a different crate
//! in each place that includes them. What only one side needs (the S3
//! settings of the integration tests, for example) stays on that side.

pub(crate) mod fake_gcs;
pub(crate) mod http;
pub(crate) mod moto;
pub(crate) mod postgres;
