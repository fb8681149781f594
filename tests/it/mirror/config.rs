//! The `mirroring:` section outside `serve`: `mirroring.password` is masked
//! like every secret, and `export --to distribution` writes the section as
//! distribution's `proxy:`.

use crate::common::{fixture, regconf, snapshot, transcript};

const FILE: &str = "mirroring-source_index.yml";

fn run(args: &[&str]) -> String {
    let out = regconf(&fixture("validate")).args(args).output().unwrap();
    assert!(out.status.success(), "{}", transcript(&out));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_mirror_password_is_a_masked_secret() {
    let masked = run(&["explain", "mirroring.password", FILE, "--flavor", "prod"]);
    assert!(masked.contains("********"), "{masked}");
    assert!(!masked.contains("s3cret"), "{masked}");
    let shown = run(&[
        "explain",
        "mirroring.password",
        FILE,
        "--flavor",
        "prod",
        "--show-secrets",
    ]);
    assert!(shown.contains("s3cret"), "{shown}");
}

#[test]
fn export_writes_the_section_as_proxy() {
    let out = regconf(&fixture("validate"))
        .args(["export", FILE, "--to", "distribution", "--flavor", "prod"])
        .output()
        .unwrap();
    snapshot(
        &crate::common::root().join("tests/snapshots/mirror/export-proxy.txt"),
        &transcript(&out),
    );
}
