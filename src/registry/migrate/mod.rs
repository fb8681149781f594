//! `regconf migrate-v1`: the images docker-registry 0.9 left in its
//! storage (the v1 layout), converted into Docker schema 2 images in a v2
//! store, tag by tag.
//!
//! Everything is written through the store's own write paths, as a push
//! would: each layer is an upload (verified against its digest by the
//! store, then published and linked), the config too, and the manifest
//! goes through `manifest_put` (which checks its blobs and writes
//! revision, tag and change-log entry, from which a `serve` process's
//! metadata index learns of it). So the result works on every
//! driver `serve` runs and is what a client pushing the same image would
//! have left. The v1 data is only read.
//!
//! Rooms: `v1.rs` reads the v1 layout, `layer.rs` converts one layer while
//! it streams (gzip, three SHA-256s), `image.rs` builds config and
//! manifest, `run.rs` drives the run; this file holds what the front end
//! sees (options, events, summary, errors). It reports through [`Event`]s
//! and a [`Summary`]; it must not print (the front end does).
//!
//! ## Decisions
//!
//! * Docker schema 2, not OCI: the v1 image JSON *is* the Docker image
//!   config, and schema 2 is what every Docker client since 1.10 (the
//!   clients of the people who ran docker-registry 0.9) and every current
//!   client (docker, podman, skopeo, containerd) pulls; OCI manifests need
//!   docker 17.x or newer.
//! * `library/<name>` becomes `<name>`: docker-registry put one-word names
//!   under `library/`, and the client that pulled `host/<name>` from it
//!   asks a v2 registry for `<name>` (search still shows `library/<name>`).
//! * A gzipped layer is stored as it was uploaded (its digest is of those
//!   bytes); a plain tar is compressed once at [`layer::GZIP_LEVEL`] with a
//!   gzip header without time or name, so the same tar always gives the
//!   same blob. bzip2/xz/zstd layers are reported (docker 1.x never sent
//!   them, and clients cannot pull them as schema 2 layers).
//! * Checksums: docker-registry 0.9 stored in `_checksum` the checksums it
//!   computed itself while the layer arrived: `sha256:` of the image JSON,
//!   a newline and the layer as stored. That one is recomputed during the
//!   conversion and a mismatch skips the tag. Older registries stored the
//!   client's `tarsum+sha256:` (a hash over tar headers and file contents);
//!   that is not recomputed, and such images (and those without any
//!   checksum) are listed in the summary as not verified.
//! * Resumable: after a layer's blob is published, a record of what it
//!   became (`_migrate_v1/images/<id>`) is written in the target storage.
//!   A later run uses the record instead of converting again (linking the
//!   blob into the repository the way a cross-repository mount does) and
//!   leaves a tag alone when it already points at the manifest it would
//!   write. Killed anywhere, a run leaves at worst a layer whose record is
//!   missing (converted again to the same bytes) or an upload the purge
//!   removes.

mod image;
mod layer;
mod run;
mod v1;

use std::sync::Arc;

use self::v1::V1;
use super::index::IndexError;
use super::layout;
use super::storage::{DriverError, Storage, StorageError};
use super::store::StoreError;

pub(crate) use self::run::run;

/// What to convert.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Read and check everything, write nothing.
    pub(crate) dry_run: bool,
    /// Only these repositories (v1 names, `library/x` or `x`); all if empty.
    pub(crate) repositories: Vec<String>,
}

/// Progress of a run, as it happens.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// The tags to go through.
    Tags(usize),
    /// A layer is being converted (v1 repository, image id, its size).
    Layer(String, String, u64),
    /// More bytes of v1 layers read.
    Read(u64),
    /// A tag is done.
    Tag(TagReport),
}

/// What happened to one tag.
#[derive(Debug, Clone)]
pub(crate) struct TagReport {
    /// The v1 repository (`library/ubuntu`).
    pub(crate) repository: String,
    /// The v2 repository it goes to (`ubuntu`).
    pub(crate) target: String,
    pub(crate) tag: String,
    pub(crate) outcome: Outcome,
}

/// See [`TagReport`].
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// Written now (or, in a dry run, would be).
    Converted {
        /// The manifest's digest.
        digest: String,
        /// Layers in the image.
        layers: usize,
    },
    /// The tag already pointed at this manifest.
    Unchanged {
        /// The manifest's digest.
        digest: String,
    },
    /// Not converted: `image` (the tag's image or an ancestor) is broken.
    Skipped {
        /// The image at fault (or the tag file's content).
        image: String,
        /// Why.
        reason: Broken,
    },
}

/// The totals of a run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    /// Every tag, in order.
    pub(crate) tags: Vec<TagReport>,
    /// Layers converted by this run.
    pub(crate) layers_converted: u64,
    /// Layers found converted by an earlier run.
    pub(crate) layers_reused: u64,
    /// Bytes of v1 layers read.
    pub(crate) bytes_read: u64,
    /// Bytes of layer blobs written (or, in a dry run, that would be).
    pub(crate) bytes_written: u64,
    /// Images converted whose v1 checksum could not be checked (a
    /// `tarsum` checksum only, or none), with the checksum.
    pub(crate) unverified: Vec<(String, String)>,
}

/// Why an image cannot be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Broken {
    #[error("the image is still being uploaded (`_inprogress` is present)")]
    InProgress,
    #[error("the image has no `json`")]
    MissingJson,
    #[error("the image's `json` is not a JSON object naming this id")]
    BadJson,
    #[error("the image has no `layer`")]
    MissingLayer,
    #[error("the ancestry does not match the parents: {0}")]
    Ancestry(String),
    #[error("checksum mismatch: stored `{stored}`, the json and layer give `{actual}`")]
    Checksum { stored: String, actual: String },
    #[error("the layer is compressed with {0}, which image layers cannot be")]
    Compression(&'static str),
    #[error("the layer is not a valid gzip stream: {0}")]
    CorruptLayer(String),
    #[error("the tag names `{0}`, which is not an image id")]
    BadId(String),
    #[error("`{0}` is not a valid v2 repository name")]
    BadName(String),
    #[error("`{0}` is not a valid v2 tag")]
    BadTag(String),
}

/// Why a run stopped (broken images do not stop it).
#[derive(Debug, thiserror::Error)]
pub(crate) enum MigrateError {
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("search backend `{0}` is not supported (only `sqlalchemy` is)")]
    SearchBackend(String),
}

impl From<StorageError> for MigrateError {
    fn from(e: StorageError) -> Self {
        Self::Store(StoreError::Storage(e))
    }
}

/// Where to send [`Event`]s.
pub(crate) type Events = Arc<dyn Fn(Event) + Send + Sync>;

/// The v2 name of v1 repository `repo`.
pub(crate) fn target_name(repo: &str) -> &str {
    repo.strip_prefix("library/").unwrap_or(repo)
}

/// Whether `storage` holds v1 images and no v2 repository (what `serve`
/// mentions at start).
pub(crate) async fn only_v1(storage: &Arc<dyn Storage>) -> Result<bool, StorageError> {
    if !V1::new(Arc::clone(storage)).has_images().await? {
        return Ok(false);
    }
    Ok(storage.list(layout::MIGRATE_V1).await?.is_empty()
        && storage.list("blobs").await?.is_empty())
}
