//! Where the store keeps things: the storage paths of blobs, links, tags,
//! uploads and referrer entries.
//!
//! Every path is built here and only here, from validated [`Name`],
//! [`Tag`] and [`Digest`] values, so no request text can reach a driver
//! unchecked. Repository-scoped metadata lives under names that start with
//! `_`, which the repository-name grammar cannot produce, so a repository
//! called `a/_manifests` cannot exist to collide with `a`'s metadata.
//!
//! ```text
//! blobs/<alg>/<hex[..2]>/<hex>/data                      content, shared by all repositories
//! repositories/<name>/_layers/<alg>/<hex>/link           blob is part of <name>
//! repositories/<name>/_manifests/revisions/<alg>/<hex>/link   manifest in <name>; holds its media type
//! repositories/<name>/_manifests/tags/<tag>              holds the tagged digest
//! repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex> descriptor of a manifest whose subject is <alg>:<hex>
//! repositories/<name>/_uploads/<uuid>/{startedat,data}   an upload in progress
//! _changes/<nanos>-<random>                              a repository's manifests or tags changed (store/changes.rs)
//! _changes-floor                                         the log is complete after this time
//! _index/index.db                                        local storage: the metadata index (registry/index/)
//! _migrate_v1/images/<v1 id>                              what `migrate-v1` made of a v1 layer
//! ```

use uuid::Uuid;

use super::oci::{Algorithm, Digest, Name, Tag};

/// Root of all repositories.
pub(crate) const REPOSITORIES: &str = "repositories";

/// Marker directory of a repository that has had a manifest.
pub(crate) const MANIFESTS_DIR: &str = "_manifests";

/// The change log: one small object per change of a repository's
/// manifests or tags, named `<nanoseconds since 1970, 20 digits>-<random>`
/// (see `store/changes.rs`).
pub(crate) const CHANGES: &str = "_changes";

/// The time (nanoseconds) before which change objects may have been
/// compacted away: an index whose saved position is older is rebuilt.
pub(crate) const CHANGES_FLOOR: &str = "_changes-floor";

/// Local storage: the folder of the persistent metadata index
/// (`registry/index/`); never listed by the store.
pub(crate) const INDEX_DIR: &str = "_index";
/// Directory of a repository's blob links.
pub(crate) const LAYERS_DIR: &str = "_layers";

/// Marker directory of uploads.
pub(crate) const UPLOADS_DIR: &str = "_uploads";

/// What `/healthz` asks storage about: an object that never exists, so the
/// probe is one `stat` (one `HEAD` on an object store) whose "not found"
/// means storage answered.
pub(crate) const HEALTH_PROBE: &str = "_healthz";
/// Root of `migrate-v1`'s records (beside `blobs/` and `repositories/`,
/// under a name no v1 or v2 path uses).
pub(crate) const MIGRATE_V1: &str = "_migrate_v1";

/// The record of what `migrate-v1` made of the v1 layer of image `id`
/// (an id `migrate` checked to be 64 lower-case hex digits).
pub(crate) fn migrated_v1_image(id: &str) -> String {
    format!("{MIGRATE_V1}/images/{id}")
}

/// Content of a blob.
pub(crate) fn blob_data(d: &Digest) -> String {
    let hex = d.hex();
    format!("blobs/{}/{}/{hex}/data", d.algorithm().as_str(), &hex[..2])
}

/// A repository's directory.
pub(crate) fn repository(name: &Name) -> String {
    format!("{REPOSITORIES}/{name}")
}

/// The link that makes a blob part of a repository.
pub(crate) fn layer_link(name: &Name, d: &Digest) -> String {
    format!(
        "{REPOSITORIES}/{name}/{LAYERS_DIR}/{}/{}/link",
        d.algorithm().as_str(),
        d.hex()
    )
}

/// The link that makes a manifest part of a repository.
pub(crate) fn revision_link(name: &Name, d: &Digest) -> String {
    format!(
        "{REPOSITORIES}/{name}/{MANIFESTS_DIR}/revisions/{}/{}/link",
        d.algorithm().as_str(),
        d.hex()
    )
}

/// Directory of one algorithm's revisions.
pub(crate) fn revisions(name: &Name, alg: Algorithm) -> String {
    format!(
        "{REPOSITORIES}/{name}/{MANIFESTS_DIR}/revisions/{}",
        alg.as_str()
    )
}

/// Directory of a repository's tags.
pub(crate) fn tags(name: &Name) -> String {
    format!("{REPOSITORIES}/{name}/{MANIFESTS_DIR}/tags")
}

/// One tag.
pub(crate) fn tag(name: &Name, t: &Tag) -> String {
    format!("{REPOSITORIES}/{name}/{MANIFESTS_DIR}/tags/{t}")
}

/// Directory of the referrers of `subject`.
pub(crate) fn referrers(name: &Name, subject: &Digest) -> String {
    format!(
        "{REPOSITORIES}/{name}/_referrers/{}/{}",
        subject.algorithm().as_str(),
        subject.hex()
    )
}

/// The entry saying `referrer` refers to `subject`.
pub(crate) fn referrer(name: &Name, subject: &Digest, referrer: &Digest) -> String {
    format!(
        "{}/{}-{}",
        referrers(name, subject),
        referrer.algorithm().as_str(),
        referrer.hex()
    )
}

/// Directory of a repository's uploads.
pub(crate) fn uploads(name: &str) -> String {
    format!("{REPOSITORIES}/{name}/{UPLOADS_DIR}")
}

/// Directory of one upload.
pub(crate) fn upload(name: &Name, id: Uuid) -> String {
    format!("{REPOSITORIES}/{name}/{UPLOADS_DIR}/{}", id.simple())
}

/// When an upload started (its modification time is what counts).
pub(crate) fn upload_started(name: &Name, id: Uuid) -> String {
    format!("{}/startedat", upload(name, id))
}

/// The bytes of an upload so far.
pub(crate) fn upload_data(name: &Name, id: Uuid) -> String {
    format!("{}/data", upload(name, id))
}
