//! regconf's integration tests: one binary, one module per area.

mod common;

// test support shared with the library's tests (moto, raw HTTP status)
#[path = "../support/mod.rs"]
mod support;

// `regconf serve` as a child process, for reliability and security
mod harness;

// resolution against the reference resolver's committed outputs
mod resolve;

// the command line, as exact text
mod cli;

// random and mutated input: no panic, no hang
mod fuzz;

// the registry, driven by skopeo, oras and curl
mod registry;

// pull-through mirroring against real upstreams (distribution with token
// and htpasswd auth, a token server, a corrupting proxy)
mod mirror;

// `regconf validate`: diagnostics per code, samples, acceptance points
mod validate;

// issue 19: `validate` and `serve --check` on files written as users wrote them
mod real_world;

// the committed JSON Schemas and `regconf schema`
mod schema;

// explain, env, diff, flavors, init, --set, secrets masked
mod operator;

// export to distribution's format, loaded by distribution itself
mod export;

// regconf serve as a process
mod serve;

// the seed's workflow with the real docker and podman clients (own dockerd)
mod docker;

// the container image built by scripts/build-image.sh, and `healthcheck`
mod container_image;

// `migrate-v1`: a v1 store written by the tests, converted, then pulled
mod migrate;

// the dependency rule between modules
mod architecture;

// crash safety, full disk, load (issue 8)
mod reliability;

// authentication, TLS, limits, hostile input, the config side (issue 8),
// one file per concern under security/
mod security;

// operating serve: metrics, health check, read-only mode (issue 13)
mod operate;

// hostile configuration files and environments: no signal, no hang (issue 12)
mod hostile_config;

// numbers' ranges, `--env-file` problems, the registry's paths (issue 12)
mod hostile_values;
