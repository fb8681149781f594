//! The hostile checks against the release binary (issue 16): what holds in
//! the debug build must hold where timing, inlining and memory differ. The
//! static release binary is the container image's (`scripts/build-image.sh`
//! builds it the same way into `target/image`), so it is built once for
//! both tests and reused while the sources do not change. A representative
//! subset of the hostile tests then runs again in a child of this test
//! binary, with `REGCONF_TEST_BIN` naming the release binary (every test
//! starts `regconf` through `common::regconf_bin`).
//!
//! `REGCONF_TEST_BIN=path cargo test --test it security::` runs all of
//! them against any binary.

use std::process::Command;
use std::time::Instant;

use crate::common::root;

/// Raw-socket hostility, headers, memory under hostile manifests, the
/// per-address cap, a trickled body and log injection.
const SUBSET: &[&str] = &[
    "security::hostile::hostile_requests_and_path_traversal",
    "security::hostile::ranges_chunk_lengths_and_repeated_query",
    "security::limits::a_large_head_in_one_write_is_refused",
    "security::memory::concurrent_4mib_manifests_cost_at_most_twice_their_size",
    "security::peers::one_address_over_its_cap_is_turned_away_while_another_is_served",
    "security::peers::a_trickled_body_is_cut_off",
    "security::auth_tls::logged_values_are_escaped",
];

const TARGET: &str = "x86_64-unknown-linux-gnu";

#[test]
fn hostile_checks_hold_for_the_release_binary() {
    if std::env::var_os("REGCONF_TEST_BIN").is_some() {
        return; // already the child run: not again inside it
    }
    // As scripts/build-image.sh builds it (same flags, same target dir):
    // nothing to do when the image test built it already.
    let started = Instant::now();
    let out = Command::new("cargo")
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            TARGET,
            "--bin",
            "regconf",
        ])
        .current_dir(root())
        .env("CARGO_TARGET_DIR", root().join("target/image"))
        .env("RUSTFLAGS", " -C target-feature=+crt-static")
        .output()
        .expect("cargo is needed");
    assert!(
        out.status.success(),
        "release build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = root().join(format!("target/image/{TARGET}/release/regconf"));
    eprintln!("release binary ready in {:?}", started.elapsed());

    let started = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(SUBSET)
        .args(["--exact", "--test-threads=2"])
        .env("REGCONF_TEST_BIN", &bin)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "against {}:\n{stdout}{}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // All of them ran: a renamed test must not drop out silently.
    let passed = stdout.lines().filter(|l| l.ends_with("... ok")).count();
    assert_eq!(passed, SUBSET.len(), "{stdout}");
    eprintln!(
        "{passed} hostile tests passed against the release binary in {:?}",
        started.elapsed()
    );
}
