//! The dependency rules of `src/lib.rs`, checked: the registry sees the
//! configuration only through the typed model; the model depends on nothing
//! else in the crate; the config core is the pipeline alone, depending on no
//! room that reads it; `inspect` and `export` read the pipeline's output and
//! never parse; and no source file grows past 700 lines.

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
            "crate::inspect",
            "crate::export",
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
            "crate::inspect",
            "crate::export",
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

#[test]
fn the_config_core_depends_on_no_room_that_reads_it() {
    let bad = offenders(
        "config",
        &[
            "crate::inspect",
            "crate::export",
            "crate::cli",
            "crate::registry",
        ],
    );
    assert!(
        bad.is_empty(),
        "the config core reaches out of the pipeline:\n{}",
        bad.join("\n")
    );
}

/// What reading YAML yourself looks like: the parser, the composer's entry
/// point, construction and YAML 1.1 typing. `inspect` may call the
/// pipeline's entry points (`config::load`, `config::parse_source`) and read
/// what they return, nodes included.
const PARSING: &[&str] = &[
    "saphyr",
    "parse::parse(",
    "construct::",
    "Builder",
    "yaml11",
];

/// What only the command line may do.
const PRINTING: &[&str] = &[
    "println!",
    "eprintln!",
    "std::io::stdout",
    "std::io::stderr",
    "std::env::var",
];

#[test]
fn inspect_reads_the_pipeline_output_and_never_parses_or_prints() {
    let forbidden: Vec<&str> = [
        PARSING,
        PRINTING,
        &["crate::cli", "crate::registry", "crate::export"],
    ]
    .concat();
    let bad = offenders("inspect", &forbidden);
    assert!(
        bad.is_empty(),
        "inspect parses, prints or reaches past the pipeline:\n{}",
        bad.join("\n")
    );
}

#[test]
fn export_reads_only_the_model() {
    let forbidden: Vec<&str> = [
        PARSING,
        PRINTING,
        &[
            "crate::config",
            "crate::inspect",
            "crate::cli",
            "crate::registry",
        ],
    ]
    .concat();
    // the one thing borrowed from the pipeline: how a YAML string is quoted
    let bad: Vec<_> = offenders("export", &forbidden)
        .into_iter()
        .filter(|l| !l.contains("use crate::config::render::yaml_string;"))
        .collect();
    assert!(
        bad.is_empty(),
        "export reaches past the model:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_source_file_is_longer_than_700_lines() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("tests"), &mut files);
    let long: Vec<_> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 700).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these along their concerns:\n{}",
        long.join("\n")
    );
}
