//! The store's per-process caches: one [`RepoCache`] type, used for blob
//! sizes and for manifests.
//!
//! A cache maps (repository, reference) to a value. Every write in a
//! repository bumps a generation counter and drops entries; a read only
//! fills the cache if no write happened since it started, so a stale entry
//! can never be inserted after the invalidation that should have removed
//! it. A cache built `enabled: false` (shared storage) remembers nothing.
//!
//! This is where a bound in bytes (instead of a count of entries) and a
//! cache shared between processes plug in: callers only use `get`,
//! `generation`, `fill`, `remove` and `drop_repository`. It must not do
//! I/O or know what the values mean.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::registry::oci::Name;

/// Most entries of one cache before it is emptied and starts again.
const CACHE_LIMIT: usize = 4096;

/// Where a read began, for [`RepoCache::fill`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Generation(u64);

/// A cache of values by repository and reference.
pub(super) struct RepoCache<V> {
    map: RwLock<HashMap<String, V>>,
    generation: AtomicU64,
    enabled: bool,
}

fn key(name: &Name, reference: &str) -> String {
    let mut k = String::with_capacity(name.as_str().len() + reference.len() + 1);
    k.push_str(name.as_str());
    k.push('\n');
    k.push_str(reference);
    k
}

impl<V: Clone> RepoCache<V> {
    /// An empty cache; a disabled one never holds anything.
    pub(super) fn new(enabled: bool) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            enabled,
        }
    }

    /// The cached value, if any.
    pub(super) fn get(&self, name: &Name, reference: &str) -> Option<V> {
        if !self.enabled {
            return None;
        }
        self.read().get(&key(name, reference)).cloned()
    }

    /// Marks the start of a read whose result may [`fill`](Self::fill)
    /// the cache.
    pub(super) fn generation(&self) -> Generation {
        Generation(self.generation.load(Ordering::Acquire))
    }

    /// Remembers `value`, unless a write happened since `since`.
    pub(super) fn fill(&self, name: &Name, reference: &str, value: V, since: Generation) {
        if !self.enabled {
            return;
        }
        let mut map = self.write();
        if self.generation.load(Ordering::Acquire) == since.0 {
            if map.len() >= CACHE_LIMIT {
                map.clear();
            }
            map.insert(key(name, reference), value);
        }
    }

    /// Forgets one entry after a write that affects it.
    pub(super) fn remove(&self, name: &Name, reference: &str) {
        let mut map = self.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(&key(name, reference));
    }

    /// Forgets every entry of `name` after a write in it.
    pub(super) fn drop_repository(&self, name: &Name) {
        let mut map = self.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let prefix = key(name, "");
        map.retain(|k, _| !k.starts_with(&prefix));
    }

    // A panic while holding the lock cannot leave the map inconsistent
    // (every operation on it is a single insert/remove/get/clear).
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, V>> {
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, V>> {
        self.map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
