//! The JSON Schemas of the configuration, generated from the model.
//!
//! Two schemas, committed under `schemas/` and printed by `regconf schema`:
//! * [`flavor`]: one resolved flavor ([`Config`](super::Config)), as
//!   `regconf render --format json` prints it;
//! * [`file`]: a whole configuration file, a mapping of flavor names to
//!   flavors, where every setting may also be an `_env:NAME[:DEFAULT]`
//!   string (or null, which reads as absent). Editors use it through
//!   yaml-language-server: `# yaml-language-server: $schema=...`.
//!
//! Both are draft 2020-12. Unknown keys are allowed by the schemas (they are
//! kept, and `regconf validate` reports them), and so is the merge key `<<`.

use schemars::schema_for;
use serde_json::{Map, Value, json};

use super::Config;

/// File name of the flavor schema under `schemas/`.
pub const FLAVOR_FILE: &str = "regconf-flavor.schema.json";
/// File name of the file schema under `schemas/`.
pub const FILE_FILE: &str = "regconf-file.schema.json";

/// The schema of one resolved flavor. A key whose value is null reads as
/// absent (docker-registry kept such keys), so every setting may be null.
pub fn flavor() -> Value {
    let mut schema = generated();
    if let Some(Value::Object(defs)) = schema.get_mut("$defs") {
        for def in defs.values_mut() {
            widen(def, false);
        }
    }
    widen(&mut schema, false);
    schema
}

/// The schema schemars derives from the model, with a title.
fn generated() -> Value {
    let mut schema = schema_for!(Config).to_value();
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("title".into(), json!("regconf flavor"));
        obj.insert(
            "description".into(),
            json!(
                "One resolved flavor of a docker-registry style configuration, as `regconf render --format json` prints it."
            ),
        );
    }
    schema
}

/// The schema of a whole configuration file.
pub fn file() -> Value {
    let mut flavor = generated();
    let obj = flavor.as_object_mut().expect("a schema object");
    let defs = obj.remove("$defs").unwrap_or_else(|| json!({}));
    obj.remove("$schema");
    obj.remove("title");
    let mut defs = match defs {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    for def in defs.values_mut() {
        widen(def, true);
    }
    widen(&mut flavor, true);
    defs.insert("Flavor".into(), flavor);
    defs.insert(
        "EnvRef".into(),
        json!({
            "description": "`_env:NAME` or `_env:NAME:DEFAULT`: the value of the environment variable NAME when it is set (even to an empty string), else DEFAULT, typed as YAML.",
            "type": "string",
            "pattern": "^_env:"
        }),
    );
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "regconf configuration file",
        "description": "A docker-registry style configuration file: one section per flavor (`common`, `dev`, `prod`, ...), sharing settings through anchors and merge keys (`<<: *name`). Any setting, and a whole section, may be an `_env:NAME[:DEFAULT]` string.",
        "type": "object",
        "additionalProperties": {
            "anyOf": [
                { "$ref": "#/$defs/Flavor" },
                { "$ref": "#/$defs/EnvRef" }
            ]
        },
        "$defs": defs
    })
}

/// Lets every property of an object schema be null, and with `env` an
/// `_env:` string too.
fn widen(schema: &mut Value, env: bool) {
    let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for prop in props.values_mut() {
        let mut inner = std::mem::take(prop);
        let mut outer = Map::new();
        if let Some(obj) = inner.as_object_mut() {
            for key in ["description", "default", "examples"] {
                if let Some(v) = obj.remove(key) {
                    outer.insert(key.to_owned(), v);
                }
            }
        }
        let any_of = if env {
            json!([inner, { "$ref": "#/$defs/EnvRef" }, { "type": "null" }])
        } else {
            json!([inner, { "type": "null" }])
        };
        outer.insert("anyOf".into(), any_of);
        *prop = Value::Object(outer);
    }
}

/// A schema as the text committed under `schemas/` and printed by
/// `regconf schema`: pretty JSON and a final newline.
pub fn to_text(schema: &Value) -> String {
    serde_json::to_string_pretty(schema).expect("a schema serialises") + "\n"
}
