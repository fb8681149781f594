//! A flavor written as another registry's configuration: [`distribution()`]
//! (the CNCF distribution registry's `config.yml`). Mirroring's `proxy:`
//! mapping belongs here too.
//!
//! Input is the typed model (`crate::model`) alone, never the pipeline's
//! values or positions; the one thing borrowed from the pipeline is how a
//! YAML string is quoted. Nothing here prints.

mod distribution;

pub(crate) use distribution::distribution;
