//! The dependency rule of `src/lib.rs`, checked: the registry sees the
//! configuration only through the typed model, and the model depends on
//! nothing else in the crate.

use std::path::Path;

use crate::common::root;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn offenders(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&root().join("src").join(dir), &mut files);
    assert!(!files.is_empty(), "no sources under src/{dir}");
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if forbidden.iter().any(|f| line.contains(f)) {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_registry_sees_only_the_model() {
    let bad = offenders(
        "registry",
        &[
            "crate::config",
            "crate::cli",
            "crate::diagnostics",
            "super::super::config",
        ],
    );
    assert!(
        bad.is_empty(),
        "the registry reaches past the model:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_model_depends_on_nothing_in_the_crate() {
    let bad = offenders(
        "model",
        &[
            "crate::config",
            "crate::cli",
            "crate::diagnostics",
            "crate::registry",
        ],
    );
    assert!(
        bad.is_empty(),
        "the model depends on other modules:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_config_core_does_not_print_or_read_the_process_environment() {
    let bad = offenders(
        "config",
        &[
            "println!",
            "eprintln!",
            "std::env::var",
            "std::io::stdout",
            "std::io::stderr",
        ],
    );
    // the one place that reads the process environment, by design
    let bad: Vec<_> = bad
        .into_iter()
        .filter(|l| !l.contains("vars_os()"))
        .collect();
    assert!(
        bad.is_empty(),
        "the config core prints or reads the environment:\n{}",
        bad.join("\n")
    );
}
