//! The committed JSON Schemas: up to date with the model, printed exactly by
//! `regconf schema`, and right about the bundled file.

use regconf::config::{self, Source, render};
use regconf::model::schema;

use crate::common::{regconf, root, snapshot};

#[test]
fn committed_schemas_are_up_to_date() {
    let dir = root().join("schemas");
    snapshot(
        &dir.join(schema::FILE_FILE),
        &schema::to_text(&schema::file()),
    );
    snapshot(
        &dir.join(schema::FLAVOR_FILE),
        &schema::to_text(&schema::flavor()),
    );
}

#[test]
fn schema_command_prints_the_committed_files() {
    let dir = root().join("schemas");
    for (args, file) in [
        (&["schema"][..], schema::FILE_FILE),
        (&["schema", "--file"][..], schema::FILE_FILE),
        (&["schema", "--flavor"][..], schema::FLAVOR_FILE),
    ] {
        let out = regconf(&root()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let committed = std::fs::read_to_string(dir.join(file)).unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            committed,
            "{args:?}"
        );
    }
}

/// A file as JSON, through regconf's own loader (merge keys flattened,
/// `_env:` strings kept).
fn file_as_json(name: &str, text: &str) -> serde_json::Value {
    let doc = config::parse_source(Source::new(name, text)).unwrap();
    let top = config::resolve::top_level(&doc).unwrap_or_else(|_| panic!("{name} loads"));
    let mut builder = top.builder;
    let value = builder.value(doc.root.as_ref().unwrap()).unwrap();
    serde_json::from_str(&render::to_json(&value)).unwrap()
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema::file()).expect("the file schema compiles")
}

#[test]
fn file_schema_accepts_every_bundled_flavor() {
    let bundled = std::fs::read_to_string(root().join("flavors/default.yml")).unwrap();
    let value = file_as_json("default.yml", &bundled);
    let v = validator();
    let errors: Vec<_> = v
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(value.as_object().unwrap().len() > 10);
    // each flavor, resolved, fits the flavor schema
    let flavor_schema = jsonschema::validator_for(&schema::flavor()).unwrap();
    for name in value.as_object().unwrap().keys() {
        let resolved = config::load(
            Source::new("default.yml", bundled.clone()),
            name,
            config::Inherit::Auto,
            &config::Env::new(),
        )
        .unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&render::map_to_json(&resolved.config)).unwrap();
        let errors: Vec<_> = flavor_schema
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

#[test]
fn file_schema_rejects_a_wrong_type() {
    let v = validator();
    for text in [
        "dev:\n    debug: [yes]\n",
        "dev:\n    cache:\n        port: {a: 1}\n",
        "prod:\n    storage: s3\n    s3_encrypt: 'true'\n",
        "dev: 5\n",
    ] {
        let value = file_as_json("bad.yml", text);
        assert!(!v.is_valid(&value), "accepted: {text}");
    }
    let ok = file_as_json(
        "ok.yml",
        "prod:\n    storage: s3\n    s3_encrypt: _env:ENC:true\n    cache: ~\n",
    );
    assert!(v.is_valid(&ok));
}

#[test]
fn bundled_file_names_the_schema() {
    let bundled = std::fs::read_to_string(root().join("flavors/default.yml")).unwrap();
    let first = bundled.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "# yaml-language-server: $schema=../schemas/{}",
            schema::FILE_FILE
        )
    );
}
