//! The command line as users see it: exact stdout, stderr and exit status.

use std::path::Path;

use crate::common::{fixture, regconf, root, snapshot, transcript};

fn snap(name: &str, actual: &str) {
    snapshot(
        &root()
            .join("tests/snapshots/cli")
            .join(format!("{name}.txt")),
        actual,
    );
}

fn sample(dir: &Path, file: &str) -> String {
    let to = dir.join(file);
    std::fs::copy(fixture("samples").join(file), &to).unwrap();
    file.to_owned()
}

#[test]
fn render_without_a_file_uses_the_bundled_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = regconf(dir.path())
        .args(["render", "--format", "json"])
        .output()
        .unwrap();
    snap("render-bundled-dev-json", &transcript(&out));
    let out = regconf(dir.path())
        .args(["render", "--flavor", "prod"])
        .env("AWS_BUCKET", "images")
        .env("AWS_SECURE", "no")
        .output()
        .unwrap();
    snap("render-bundled-prod-yaml", &transcript(&out));
}

#[test]
fn render_picks_file_and_flavor_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = sample(dir.path(), "style-0.9.yml");
    // DOCKER_REGISTRY_CONFIG is relative to the current directory.
    let out = regconf(dir.path())
        .args(["render", "--format", "json"])
        .env("DOCKER_REGISTRY_CONFIG", &file)
        .env("SETTINGS_FLAVOR", "test")
        .output()
        .unwrap();
    snap("render-env-file-and-flavor", &transcript(&out));
    // ./config.yml is next in line.
    std::fs::write(dir.path().join("config.yml"), "dev:\n  storage: local\n").unwrap();
    let out = regconf(dir.path()).args(["render"]).output().unwrap();
    assert_eq!(
        transcript(&out),
        "status: 0\n--- stdout\nstorage: local\nflavor: dev\n--- stderr\n"
    );
}

#[test]
fn render_says_when_common_is_the_implicit_base() {
    let dir = tempfile::tempdir().unwrap();
    let file = sample(dir.path(), "style-seed.yml");
    let out = regconf(dir.path())
        .args(["render", &file, "--flavor", "prod"])
        .env("AWS_S3_BUCKET", "images")
        .output()
        .unwrap();
    snap("render-implicit-common", &transcript(&out));
    let out = regconf(dir.path())
        .args(["render", &file, "--flavor", "prod", "--inherit", "explicit"])
        .output()
        .unwrap();
    snap("render-explicit-forced", &transcript(&out));
}

#[test]
fn render_errors_are_diagnostics_with_exit_status_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = sample(dir.path(), "style-0.9.yml");
    let out = regconf(dir.path())
        .args(["render", &file, "--flavor", "prdo"])
        .output()
        .unwrap();
    snap("render-missing-flavor", &transcript(&out));
    let out = regconf(dir.path())
        .args(["render", &file, "--flavor", ""])
        .output()
        .unwrap();
    snap("render-empty-flavor", &transcript(&out));
    let out = regconf(dir.path())
        .args(["render", "nowhere.yml"])
        .output()
        .unwrap();
    snap("render-missing-file", &transcript(&out));
    let out = regconf(dir.path())
        .args(["render", &file, "--flavor", "dev"])
        .env("CORS_METHODS", "[GET")
        .env("PRIVILEGED_KEY", "/nonexistent/key.pem")
        .output()
        .unwrap();
    snap("render-bad-variable-and-key", &transcript(&out));
}

#[test]
fn render_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = regconf(dir.path())
        .args(["render", "--format", "toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = regconf(dir.path())
        .args(["render", "--help"])
        .output()
        .unwrap();
    snap("render-help", &transcript(&out));
}

/// `regconf gc` on a store it cannot read whole: a stored manifest that is
/// not JSON stops the run before anything is removed (exit 1, one
/// diagnostic); the `gc:` keys are range-checked like the other
/// extension sections.
#[test]
fn gc_refuses_to_sweep_what_it_cannot_mark() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("gc.yml"),
        "dev:\n  storage: local\n  storage_path: ./store\n  gc: {interval_secs: 60, grace_secs: 0, untagged: true}\nbad:\n  storage: local\n  gc: {grace_secs: 99999999999, colour: red}\n",
    )
    .unwrap();
    let hex = "ab".repeat(32);
    let store = dir.path().join("store");
    let link = store.join(format!(
        "repositories/gc/x/_manifests/revisions/sha256/{hex}"
    ));
    std::fs::create_dir_all(&link).unwrap();
    std::fs::write(
        link.join("link"),
        "application/vnd.oci.image.manifest.v1+json",
    )
    .unwrap();
    let blob = store.join(format!("blobs/sha256/ab/{hex}"));
    std::fs::create_dir_all(&blob).unwrap();
    std::fs::write(blob.join("data"), "not a manifest").unwrap();
    let other = store.join(format!("blobs/sha256/cd/{}", "cd".repeat(32)));
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("data"), "unreferenced").unwrap();
    let out = regconf(dir.path()).args(["gc", "gc.yml"]).output().unwrap();
    snap("gc-unreadable-manifest", &transcript(&out));
    assert!(other.join("data").exists(), "removed while the mark failed");
    let out = regconf(dir.path())
        .args(["validate", "gc.yml", "--flavor", "bad"])
        .output()
        .unwrap();
    snap("gc-section-ranges", &transcript(&out));
}
