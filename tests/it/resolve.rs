//! `render --format json` against the reference resolver's committed outputs
//! (tests/fixtures), and YAML output read back by regconf.

use std::sync::Arc;

use regconf::config::{self, Inherit, Source, render};
use regconf::diagnostics::report;

use crate::common::{env_from_json, fixture, read_json, root, snapshot};

fn inherit(name: &str) -> Inherit {
    match name {
        "explicit" => Inherit::Explicit,
        "implicit" => Inherit::Implicit,
        _ => Inherit::Auto,
    }
}

/// Resolves and returns the canonical JSON envelope regconf gives, plus the
/// diagnostics text on error.
fn run(
    source: Arc<Source>,
    flavor: &str,
    inh: Inherit,
    env: &config::Env,
) -> (serde_json::Value, String) {
    match config::load(source, flavor, inh, env) {
        Ok(resolved) => {
            let json = render::map_to_json(&resolved.config);
            let config: serde_json::Value = crate::common::parse_python_json(&json)
                .unwrap_or_else(|e| panic!("regconf printed invalid JSON ({e}): {json}"));
            // YAML output must read back to the same values.
            let yaml = render::map_to_yaml(&resolved.config);
            let back = read_back(&yaml);
            assert_eq!(back, json, "YAML output does not read back:\n{yaml}");
            (
                serde_json::json!({"status": "ok", "config": config}),
                String::new(),
            )
        }
        Err(diags) => {
            assert!(!diags.is_empty());
            let text = report::human_all(&diags, report::Style::default());
            (serde_json::json!({"status": "error"}), text)
        }
    }
}

fn read_back(yaml: &str) -> String {
    let doc =
        config::parse_source(Source::new("rendered.yml", yaml)).expect("rendered YAML parses");
    let root = doc.root.expect("rendered YAML is not empty");
    let value = config::construct::Builder::new()
        .value(&root)
        .expect("rendered YAML constructs");
    render::to_json(&value)
}

/// Reference outputs use Python's float repr for NaN/Infinity, which
/// serde_json cannot read; compare through text where that matters.
fn same(expected: &serde_json::Value, actual: &serde_json::Value) -> bool {
    if expected.get("status").and_then(|s| s.as_str()) == Some("error") {
        return actual.get("status").and_then(|s| s.as_str()) == Some("error");
    }
    expected == actual
}

#[test]
fn samples_match_the_reference_resolver() {
    let envs = read_json(&fixture("envs.json"));
    let mut checked = 0;
    let mut failures = Vec::new();
    // Our own samples in the three styles docker-registry's users wrote, and
    // the bundled file; `file` is the path from the repository root.
    for stem in ["style-0.9", "style-0.6", "style-seed", "bundled-default"] {
        let spec = read_json(&fixture(&format!("samples/{stem}.json")));
        let file = spec["file"].as_str().unwrap();
        let text = std::fs::read_to_string(root().join(file))
            .unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
        let source = Source::new(file, text);
        for case in spec["cases"].as_array().unwrap() {
            let flavor = case["flavor"].as_str().unwrap();
            let env_name = case["env"].as_str().unwrap();
            let env = env_from_json(&envs[env_name]);
            let (actual, _) = run(Arc::clone(&source), flavor, Inherit::Auto, &env);
            if !same(&case["expected"], &actual) {
                failures.push(format!(
                    "{file} --flavor {flavor} under `{env_name}`:\n  expected {}\n  regconf  {}",
                    case["expected"], actual
                ));
            }
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} sample cases");
    assert!(
        failures.is_empty(),
        "{} of {checked} differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn edge_cases_match_the_reference_or_the_documented_difference() {
    let dir = fixture("cases");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".case.json").map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 40, "only {} edge cases", names.len());
    let mut failures = Vec::new();
    for name in &names {
        let case = read_json(&dir.join(format!("{name}.case.json")));
        let text = std::fs::read_to_string(dir.join(format!("{name}.yml"))).unwrap();
        let source = Source::new(format!("{name}.yml"), text);
        let env = env_from_json(&case["env"]);
        let flavor = case["flavor"].as_str().unwrap_or("dev");
        let inh = inherit(case["inherit"].as_str().unwrap_or("auto"));
        let (actual, diagnostics) = run(source, flavor, inh, &env);
        let expected = case.get("regconf").unwrap_or(&case["expected"]);
        if !same(expected, &actual) {
            failures.push(format!(
                "{name}:\n  expected {expected}\n  regconf  {actual}\n{diagnostics}"
            ));
            continue;
        }
        if !diagnostics.is_empty() {
            snapshot(&dir.join(format!("{name}.stderr")), &diagnostics);
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
