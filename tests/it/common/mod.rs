//! Shared test harness: paths, fixtures, the regconf binary.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use regconf::config::Env;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture path.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_python_json(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

/// Parses JSON as Python's `json.dumps` writes it: bare `NaN`, `Infinity`
/// and `-Infinity` become the strings `"<NaN>"`, `"<Infinity>"` and
/// `"<-Infinity>"` so that serde_json can compare them.
pub fn parse_python_json(text: &str) -> serde_json::Result<serde_json::Value> {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let mut matched = false;
        for token in ["-Infinity", "Infinity", "NaN"] {
            if rest.starts_with(token) {
                out.push_str(&format!("\"<{token}>\""));
                rest = &rest[token.len()..];
                matched = true;
                break;
            }
        }
        if matched {
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    serde_json::from_str(&out)
}

/// An environment snapshot from a JSON object of strings.
pub fn env_from_json(v: &serde_json::Value) -> Env {
    v.as_object()
        .expect("env is an object")
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().expect("env values are strings").to_owned(),
            )
        })
        .collect()
}

/// The regconf binary, with a cleared environment and no colour.
pub fn regconf(dir: &Path) -> Command {
    let mut cmd = Command::new(regconf_bin());
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .env("COLUMNS", "80");
    cmd
}

/// The binary under test: cargo's debug build, or the one named by
/// `REGCONF_TEST_BIN` (the release binary, see `security/release.rs`).
pub fn regconf_bin() -> std::path::PathBuf {
    std::env::var_os("REGCONF_TEST_BIN")
        .map_or_else(|| env!("CARGO_BIN_EXE_regconf").into(), Into::into)
}

/// Exit status, stdout and stderr as one text block, for exact comparison.
pub fn transcript(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}--- stderr\n{}",
        out.status
            .code()
            .map_or("signal".to_owned(), |c| c.to_string()),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Compares `actual` with the snapshot file at `path`; with `REGCONF_BLESS`
/// set, rewrites the file instead.
pub fn snapshot(path: &Path, actual: &str) {
    if std::env::var_os("REGCONF_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "missing snapshot {}; run with REGCONF_BLESS=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        expected,
        actual,
        "snapshot {} differs (REGCONF_BLESS=1 rewrites it)",
        path.display()
    );
}
