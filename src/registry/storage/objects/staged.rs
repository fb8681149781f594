//! How an object is stored: one plain object, or staged parts
//! `<key>/.parts/<offset>` (see "Appending: staged parts" in `mod.rs`), and
//! reading a range across them.

use std::ops::Range;
use std::time::{Duration, SystemTime};

use ::object_store::path::Path;
use ::object_store::{GetOptions, GetRange, ObjectStoreExt};
use futures::{StreamExt, TryStreamExt};

use super::{ObjectStorage, PARTS, corrupt, remote};
use crate::registry::storage::{ByteStream, StorageError};

/// One stored piece of an object: a key, where it starts, its size.
#[derive(Debug, Clone)]
pub(super) struct Segment {
    pub(super) key: Path,
    pub(super) start: u64,
    pub(super) size: u64,
}

/// An object as stored: one plain object or staged parts.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) segments: Vec<Segment>,
    pub(super) size: u64,
    pub(super) modified: SystemTime,
    /// Whether the object is staged parts (not a plain object).
    pub(super) staged: bool,
}

fn time(t: chrono::DateTime<chrono::Utc>) -> SystemTime {
    let ms = u64::try_from(t.timestamp_millis()).unwrap_or(0);
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

impl ObjectStorage {
    pub(super) fn parts_dir(key: &Path) -> Path {
        key.clone().join(PARTS)
    }

    pub(super) fn part_key(key: &Path, offset: u64) -> Path {
        Self::parts_dir(key).join(format!("{offset:020}").as_str())
    }

    /// How the object at `path` is stored; [`StorageError::NotFound`] when
    /// it is not.
    pub(super) async fn layout(&self, path: &str, key: &Path) -> Result<Layout, StorageError> {
        match self.store.head(key).await {
            Ok(m) => {
                return Ok(Layout {
                    size: m.size,
                    modified: time(m.last_modified),
                    segments: vec![Segment {
                        key: m.location,
                        start: 0,
                        size: m.size,
                    }],
                    staged: false,
                });
            }
            Err(::object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(remote(path, e)),
        }
        self.staged_layout(path, key).await
    }

    /// How the object at `path` is stored, looking only for staged parts
    /// (one listing).
    pub(super) async fn staged_layout(
        &self,
        path: &str,
        key: &Path,
    ) -> Result<Layout, StorageError> {
        let dir = Self::parts_dir(key);
        let mut parts: Vec<(u64, ::object_store::ObjectMeta)> = self
            .store
            .list(Some(&dir))
            .map_err(|e| remote(path, e))
            .try_filter_map(|m| async move {
                let offset = m.location.filename().and_then(|f| f.parse::<u64>().ok());
                Ok(offset.map(|o| (o, m)))
            })
            .try_collect()
            .await?;
        if parts.is_empty() {
            return Err(StorageError::NotFound(path.to_owned()));
        }
        parts.sort_by_key(|(o, _)| *o);
        let mut size = 0;
        let mut modified = SystemTime::UNIX_EPOCH;
        let mut segments = Vec::with_capacity(parts.len());
        for (offset, m) in parts {
            if offset != size {
                return Err(corrupt(
                    path,
                    "staged parts overlap or leave a gap (concurrent appends?)",
                ));
            }
            modified = modified.max(time(m.last_modified));
            segments.push(Segment {
                key: m.location,
                start: offset,
                size: m.size,
            });
            size += m.size;
        }
        Ok(Layout {
            segments,
            size,
            modified,
            staged: true,
        })
    }

    /// Streams `range` of the segments.
    pub(super) fn stream(
        &self,
        path: &str,
        segments: Vec<Segment>,
        range: Range<u64>,
    ) -> ByteStream {
        let store = self.store.clone();
        let owned = path.to_owned();
        futures::stream::iter(segments)
            .filter_map(move |s| {
                let from = range.start.max(s.start);
                let to = range.end.min(s.start + s.size);
                futures::future::ready((from < to).then(|| (s.key, from - s.start..to - s.start)))
            })
            .then(move |(key, r)| {
                let store = store.clone();
                let owned = owned.clone();
                async move {
                    let opts = GetOptions::default().with_range(Some(GetRange::Bounded(r)));
                    let got = store
                        .get_opts(&key, opts)
                        .await
                        .map_err(|e| remote(&owned, e))?;
                    let err_path = owned.clone();
                    Ok::<_, StorageError>(
                        got.into_stream()
                            .map_err(move |e| remote(&err_path, e))
                            .boxed(),
                    )
                }
            })
            .try_flatten()
            .boxed()
    }
}
