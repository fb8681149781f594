//! `regconf validate`: one exact-text snapshot per diagnostic code, the JSON
//! form, our three sample files (tests/fixtures/samples), and the acceptance points of issue 3.

use std::path::{Path, PathBuf};
use std::process::Command;

use regconf::diagnostics::CODES;

use crate::common::{fixture, regconf, snapshot, transcript};

/// One case: fixture stem, extra arguments, environment.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

const fn case(name: &'static str) -> Case {
    Case {
        name,
        args: &[],
        env: &[],
    }
}

/// One case per diagnostic code; the fixture is `<name>.yml`.
const CASES: &[Case] = &[
    case("env-in_list"),
    case("env-invalid_yaml"),
    case("env-missing_prefix"),
    case("env-required_unset"),
    Case {
        name: "env-set_but_empty",
        args: &["--flavor", "dev"],
        env: &[("LOGLEVEL", "")],
    },
    case("env-unquoted"),
    Case {
        name: "file-env_file",
        args: &["--flavor", "dev", "--env-file", "file-env_file.env"],
        env: &[],
    },
    case("flavor-empty_file"),
    case("flavor-implicit_common"),
    Case {
        name: "flavor-missing",
        args: &["--flavor", "prdo"],
        env: &[],
    },
    case("flavor-non_string_name"),
    Case {
        name: "flavor-none_selected",
        args: &["--flavor", ""],
        env: &[],
    },
    Case {
        name: "flavor-not_a_mapping",
        args: &["--flavor", "dev"],
        env: &[],
    },
    case("flavor-top_not_mapping"),
    Case {
        name: "key-index_endpoint_type",
        args: &["--flavor", "dev"],
        env: &[],
    },
    Case {
        name: "key-privileged_key_missing",
        args: &["--flavor", "dev"],
        env: &[],
    },
    case("key-environment_only"),
    case("key-misplaced"),
    case("key-old_version"),
    case("key-unknown"),
    case("merge-not_a_mapping"),
    case("merge-shallow"),
    case("mirroring-credentials"),
    case("mirroring-source_index"),
    case("mirroring-source_url"),
    case("path-expanded"),
    Case {
        name: "path-unset_variable",
        args: &["--flavor", "dev"],
        env: &[],
    },
    case("search-backend_name"),
    case("search-database_url"),
    case("search-missing_database"),
    Case {
        name: "serve-search_backend",
        args: &["--flavor", "dev"],
        env: &[],
    },
    Case {
        name: "serve-search_database",
        args: &["--flavor", "dev"],
        env: &[],
    },
    Case {
        name: "serve-unsupported_driver",
        args: &["--flavor", "prod"],
        env: &[],
    },
    case("storage-azure_key"),
    case("storage-endpoint"),
    case("storage-missing_key"),
    case("storage-unknown_driver"),
    Case {
        name: "type-mismatch",
        args: &["--flavor", "dev"],
        env: &[],
    },
    case("type-not_boolean"),
    case("type-not_exactly_true"),
    case("value-loglevel"),
    case("value-placeholder"),
    case("value-verbosity_number"),
    case("yaml-bad_scalar"),
    case("yaml-comment_in_value"),
    case("yaml-duplicate_anchor"),
    case("yaml-duplicate_key"),
    case("yaml-multiple_documents"),
    case("yaml-not_a_string"),
    case("yaml-python_tag"),
    case("yaml-recursive_alias"),
    case("yaml-syntax"),
    case("yaml-too_deep"),
    case("yaml-too_large"),
    case("yaml-undefined_alias"),
    case("yaml-unhashable_key"),
    case("yaml-unknown_tag"),
];

fn dir() -> PathBuf {
    fixture("validate")
}

fn snap(name: &str) -> PathBuf {
    dir().join("snapshots").join(format!("{name}.txt"))
}

fn validate(dir: &Path, file: &str, args: &[&str]) -> Command {
    let mut cmd = regconf(dir);
    cmd.arg("validate").arg(file).args(args);
    cmd
}

fn run_case(c: &Case) -> String {
    let mut cmd = validate(&dir(), &format!("{}.yml", c.name), c.args);
    for (k, v) in c.env {
        cmd.env(k, v);
    }
    transcript(&cmd.output().expect("regconf runs"))
}

#[test]
fn one_snapshot_per_code() {
    for c in CASES {
        snapshot(&snap(c.name), &run_case(c));
    }
}

#[test]
fn file_problems() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("latin1.yml"), b"dev:\n    issue: caf\xe9\n").unwrap();
    let out = validate(tmp.path(), "latin1.yml", &[]).output().unwrap();
    snapshot(&snap("file-not_utf8"), &transcript(&out));
    let out = validate(tmp.path(), "missing.yml", &[]).output().unwrap();
    snapshot(&snap("file-unreadable"), &transcript(&out));
}

/// Codes `regconf serve` emits at start-up, not yet covered by a snapshot.
/// Whoever adds their tests removes them from here.
/// Codes no test can provoke from outside: `start` is the failure to create
/// the async runtime or of the accept loop itself.
const AWAITING_SNAPSHOT: &[&str] = &["regconf::serve::start"];

/// Every code appears in a snapshot or a test under `tests/`.
#[test]
fn every_code_has_a_snapshot() {
    let mut all = String::new();
    let mut stack = vec![crate::common::root().join("tests")];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.ends_with("it/validate.rs") {
            continue;
        } else if let Ok(text) = std::fs::read_to_string(&p) {
            all.push_str(&text);
        }
    }
    let missing: Vec<_> = CODES
        .iter()
        .filter(|c| !all.contains(*c) && !AWAITING_SNAPSHOT.contains(c))
        .collect();
    assert!(missing.is_empty(), "codes without a snapshot: {missing:?}");
}

#[test]
fn codes_lists_every_code_in_the_source() {
    let re = regex::Regex::new(r#""(regconf::[a-z_0-9]+::[a-z_0-9]+)""#).unwrap();
    let mut stack = vec![crate::common::root().join("src")];
    let mut found = std::collections::BTreeSet::new();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            found.extend(re.captures_iter(&text).map(|c| c[1].to_owned()));
        }
    }
    let listed: std::collections::BTreeSet<_> = CODES.iter().map(|c| (*c).to_owned()).collect();
    assert_eq!(found, listed, "diagnostics::CODES is out of date");
}

#[test]
fn json_form() {
    let out = validate(&dir(), "key-unknown.yml", &["--format", "json"])
        .output()
        .unwrap();
    snapshot(&snap("json-key-unknown"), &transcript(&out));
    let out = validate(
        &dir(),
        "type-mismatch.yml",
        &["--flavor", "dev", "--format", "json"],
    )
    .output()
    .unwrap();
    snapshot(&snap("json-type-mismatch"), &transcript(&out));
}

fn samples() -> PathBuf {
    fixture("samples")
}

#[test]
fn reference_samples() {
    for stem in ["style-0.9", "style-0.6", "style-seed"] {
        let out = validate(&samples(), &format!("{stem}.yml"), &[])
            .output()
            .unwrap();
        snapshot(&snap(&format!("sample-{stem}")), &transcript(&out));
    }
}

#[test]
fn sample_09_is_valid_with_the_elliptics_warning() {
    let out = validate(&samples(), "style-0.9.yml", &["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let diags: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(diags.iter().all(|d| d["severity"] != "error"));
    let warnings: Vec<_> = diags
        .iter()
        .filter(|d| d["severity"] == "warning")
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["code"], "regconf::value::verbosity_number");
    assert_eq!(warnings[0]["key"], "elliptics_verbosity");
    assert_eq!(warnings[0]["line"], 198);
    // --strict turns that warning into an error
    let out = validate(&samples(), "style-0.9.yml", &["--strict"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn typo_is_reported_at_its_line_and_column() {
    let out = validate(&dir(), "key-unknown.yml", &["--format", "json"])
        .output()
        .unwrap();
    let diags: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let d = &diags[0];
    assert_eq!(d["code"], "regconf::key::unknown");
    assert_eq!(
        (d["line"].as_u64(), d["column"].as_u64()),
        (Some(3), Some(5))
    );
    assert!(
        d["help"]
            .as_str()
            .unwrap()
            .contains("did you mean `storage_path`")
    );
    let text = transcript(&validate(&dir(), "key-unknown.yml", &[]).output().unwrap());
    assert!(text.contains("did you mean `storage_path`?"), "{text}");
}

#[test]
fn inherited_type_error_labels_the_value_and_the_merge_key() {
    let out = validate(&dir(), "type-mismatch.yml", &["--flavor", "dev"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stderr).unwrap();
    // the value, written in `common` (line 3), and dev's `<<` (line 8)
    assert!(text.contains("type-mismatch.yml:3:12]"), "{text}");
    assert!(
        text.contains("flavor `dev` inherits it through this merge key"),
        "{text}"
    );
    assert!(text.contains(" 8 │     <<: *local"), "{text}");
}

#[test]
fn variable_name_and_value_are_shown() {
    let out = validate(&dir(), "type-not_boolean.yml", &["--flavor", "dev"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("c.yml"),
        "dev:\n    cache:\n        port: _env:PORT:6379\n",
    )
    .unwrap();
    let out = validate(tmp.path(), "c.yml", &["--flavor", "dev"])
        .env("PORT", "six")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(text.contains("`PORT` is `six`"), "{text}");
    assert!(text.contains("(from `PORT`=`six`)"), "{text}");
}

#[test]
fn env_file_is_layered_over_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("c.yml"),
        "prod:\n    storage: local\n    loglevel: _env:LOGLEVEL:info\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join("e.env"), "# comment\nLOGLEVEL=loud\n").unwrap();
    let out = validate(
        tmp.path(),
        "c.yml",
        &[
            "--flavor",
            "prod",
            "--env-file",
            "e.env",
            "--format",
            "json",
        ],
    )
    .env("LOGLEVEL", "info")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let diags: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(diags[0]["code"], "regconf::value::loglevel");
}

#[test]
fn bundled_file_is_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let out = regconf(tmp.path())
        .args(["validate", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let out = regconf(tmp.path())
        .args(["validate", "--flavor", "dev"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
}

#[test]
fn usage_errors_exit_2() {
    let out = regconf(&dir())
        .args(["validate", "--format", "xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
