//! The container registry (see issue: serve).
