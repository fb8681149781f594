//! The configuration core.
