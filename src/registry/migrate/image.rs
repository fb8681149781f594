//! The Docker image config and schema 2 manifest of a converted tag, built
//! from the v1 JSON of its images (pure; no I/O). The same input always
//! gives the same bytes, so a second run produces the same digests.

use serde_json::{Map, Value, json};

use super::layer::Converted;
use super::v1::Image;
use crate::registry::oci::{DOCKER_MANIFEST, Digest};

/// Media type of the image config.
pub(crate) const CONFIG_TYPE: &str = "application/vnd.docker.container.image.v1+json";
/// Media type of a gzip layer.
pub(crate) const LAYER_TYPE: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Keys of the v1 JSON that describe the v1 storage, not the image.
const V1_ONLY: [&str; 7] = [
    "id",
    "parent",
    "Size",
    "parent_id",
    "layer_id",
    "checksum",
    "throwaway",
];

/// The image config: the top image's v1 JSON without its v1-only keys,
/// with `architecture`/`os` (`amd64`/`linux` when v1 did not say, as
/// docker assumed), `rootfs` (the `diff_id`s, base first) and one history
/// entry per image (base first).
pub(crate) fn config(chain: &[(Image, Converted)]) -> Vec<u8> {
    let Some((top, _)) = chain.last() else {
        return b"{}".to_vec();
    };
    let mut c: Map<String, Value> = top
        .json
        .iter()
        .filter(|(k, _)| !V1_ONLY.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, default) in [("architecture", "amd64"), ("os", "linux")] {
        let missing = c.get(key).and_then(Value::as_str).is_none_or(str::is_empty);
        if missing {
            c.insert(key.to_owned(), Value::from(default));
        }
    }
    let diff_ids: Vec<Value> = chain
        .iter()
        .map(|(_, l)| Value::from(l.diff_id.as_str()))
        .collect();
    c.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": diff_ids}),
    );
    let history: Vec<Value> = chain.iter().map(|(i, _)| history(&i.json)).collect();
    c.insert("history".into(), Value::Array(history));
    serde_json::to_vec(&Value::Object(c)).unwrap_or_default()
}

fn history(j: &Map<String, Value>) -> Value {
    let mut h = Map::new();
    if let Some(v) = j.get("created") {
        h.insert("created".into(), v.clone());
    }
    if let Some(v) = j
        .get("author")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        h.insert("author".into(), v.clone());
    }
    let cmd = j
        .get("container_config")
        .and_then(|c| c.get("Cmd"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        });
    if let Some(cmd) = cmd.filter(|c| !c.is_empty()) {
        h.insert("created_by".into(), Value::from(cmd));
    }
    if let Some(v) = j
        .get("comment")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    {
        h.insert("comment".into(), v.clone());
    }
    Value::Object(h)
}

/// The schema 2 manifest of `config` (its digest and size) and the layers.
pub(crate) fn manifest(config: (&Digest, usize), layers: &[&Converted]) -> Vec<u8> {
    let layers: Vec<Value> = layers
        .iter()
        .map(|l| json!({"mediaType": LAYER_TYPE, "size": l.size, "digest": l.digest.as_str()}))
        .collect();
    let m = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": CONFIG_TYPE, "size": config.1, "digest": config.0.as_str()},
        "layers": layers,
    });
    serde_json::to_vec_pretty(&m).unwrap_or_default()
}
