//! Reading docker-registry 0.9's v1 layout from a storage driver: the
//! repositories and their tags, and each image's JSON, ancestry, checksums
//! and upload mark. It only reads; it must not write, and it knows nothing
//! of the v2 store.
//!
//! ```text
//! images/<id>/{json,layer,ancestry,_checksum,_inprogress}
//! repositories/<namespace>/<repo>/tag_<tag>      the image id
//! repositories/<namespace>/<repo>/tag<tag>_json  tag metadata (not used)
//! ```
//!
//! Every id read from storage (a tag's content, an ancestry entry, a
//! parent) is checked to be 64 lower-case hex digits before it is used in
//! a path.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::Broken;
use crate::registry::storage::{ByteStream, Storage, StorageError};

/// A v1 image id: 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ImageId(String);

impl ImageId {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        (s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(s.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ImageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One v1 tag: its repository (as v1 named it) and the image it names.
#[derive(Debug, Clone)]
pub(crate) struct V1Tag {
    /// `<namespace>/<repo>` (`library/ubuntu` for one-word names).
    pub(crate) repository: String,
    pub(crate) tag: String,
    /// The tag file's content, trimmed (checked later).
    pub(crate) image: String,
}

/// One image's metadata.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    pub(crate) id: ImageId,
    /// The JSON file's bytes, exactly (the v1 checksum covers them).
    pub(crate) json_bytes: Bytes,
    pub(crate) json: Map<String, Value>,
    /// The checksums docker-registry stored (`sha256:…`, `tarsum+…:…`).
    pub(crate) checksums: Vec<String>,
}

/// The v1 data of one storage.
pub(crate) struct V1 {
    storage: Arc<dyn Storage>,
}

fn image_path(id: &ImageId, file: &str) -> String {
    format!("images/{id}/{file}")
}

/// Whether a storage listing name is a plain path component.
fn plain(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

impl V1 {
    pub(crate) fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }

    /// Whether the storage holds any v1 image.
    pub(crate) async fn has_images(&self) -> Result<bool, StorageError> {
        Ok(!self.storage.list("images").await?.is_empty())
    }

    /// Every tag of every repository, sorted by repository and tag.
    pub(crate) async fn tags(&self) -> Result<Vec<V1Tag>, StorageError> {
        let mut out = Vec::new();
        for ns in self.storage.list("repositories").await? {
            if !plain(&ns) || ns.starts_with('_') {
                continue;
            }
            for repo in self.storage.list(&format!("repositories/{ns}")).await? {
                if !plain(&repo) || repo.starts_with('_') {
                    continue;
                }
                let dir = format!("repositories/{ns}/{repo}");
                let files: BTreeSet<String> = self.storage.list(&dir).await?.into_iter().collect();
                for f in &files {
                    let Some(tag) = f.strip_prefix("tag_") else {
                        continue;
                    };
                    // `tag<t>_json` is tag `t`'s metadata; for a tag
                    // starting with `_` it reads like `tag_…_json`.
                    if let Some(meta_of) = tag.strip_suffix("_json")
                        && files.contains(&format!("tag__{meta_of}"))
                    {
                        continue;
                    }
                    if !plain(tag) {
                        continue;
                    }
                    let raw = self.storage.get_bytes(&format!("{dir}/{f}")).await?;
                    out.push(V1Tag {
                        repository: format!("{ns}/{repo}"),
                        tag: tag.to_owned(),
                        image: String::from_utf8_lossy(&raw).trim().to_owned(),
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.repository, &a.tag).cmp(&(&b.repository, &b.tag)));
        Ok(out)
    }

    async fn optional(&self, path: &str) -> Result<Option<Bytes>, StorageError> {
        match self.storage.get_bytes(path).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An image's metadata, checked: not being uploaded, JSON present and
    /// naming this id.
    pub(crate) async fn image(&self, id: &ImageId) -> Result<Result<Image, Broken>, StorageError> {
        if self
            .optional(&image_path(id, "_inprogress"))
            .await?
            .is_some()
        {
            return Ok(Err(Broken::InProgress));
        }
        let Some(json_bytes) = self.optional(&image_path(id, "json")).await? else {
            return Ok(Err(Broken::MissingJson));
        };
        let json = match serde_json::from_slice::<Value>(&json_bytes) {
            Ok(Value::Object(m)) => m,
            _ => return Ok(Err(Broken::BadJson)),
        };
        if json.get("id").and_then(Value::as_str) != Some(id.as_str()) {
            return Ok(Err(Broken::BadJson));
        }
        let checksums = match self.optional(&image_path(id, "_checksum")).await? {
            None => Vec::new(),
            // 0.9 writes a JSON list; older versions one plain string.
            Some(raw) => match serde_json::from_slice::<Vec<String>>(&raw) {
                Ok(list) => list,
                Err(_) => vec![String::from_utf8_lossy(&raw).trim().to_owned()],
            },
        };
        Ok(Ok(Image {
            id: id.clone(),
            json_bytes,
            json,
            checksums,
        }))
    }

    /// The image's stored ancestry (this image first).
    pub(crate) async fn ancestry(
        &self,
        id: &ImageId,
    ) -> Result<Result<Vec<ImageId>, Broken>, StorageError> {
        let Some(raw) = self.optional(&image_path(id, "ancestry")).await? else {
            return Ok(Err(Broken::Ancestry("the ancestry file is missing".into())));
        };
        let Ok(list) = serde_json::from_slice::<Vec<String>>(&raw) else {
            return Ok(Err(Broken::Ancestry(
                "the ancestry file is not a JSON list of ids".into(),
            )));
        };
        let mut out = Vec::with_capacity(list.len());
        for s in &list {
            match ImageId::parse(s) {
                Some(i) => out.push(i),
                None => {
                    return Ok(Err(Broken::Ancestry(format!(
                        "the ancestry names `{s}`, which is not an image id"
                    ))));
                }
            }
        }
        Ok(Ok(out))
    }

    /// Size of the image's layer, or `None` when there is none.
    pub(crate) async fn layer_size(&self, id: &ImageId) -> Result<Option<u64>, StorageError> {
        match self.storage.stat(&image_path(id, "layer")).await {
            Ok(m) => Ok(Some(m.size)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Streams the image's layer as stored.
    pub(crate) async fn layer(&self, id: &ImageId) -> Result<ByteStream, StorageError> {
        self.storage.get(&image_path(id, "layer"), None).await
    }
}
