//! The store's per-process caches: one [`RepoCache`] type, used for blob
//! sizes and for manifests.
//!
//! A cache maps (repository, reference) to a value. Every write in a
//! repository bumps a generation counter and drops entries; a read only
//! fills the cache if no write happened since it started, so a stale entry
//! can never be inserted after the invalidation that should have removed
//! it. A cache built `enabled: false` remembers nothing.
//!
//! On shared storage the writes of other processes bump nothing here, so
//! a cache of what may change there (a repository's links, its tags) is
//! built with a time to live ([`RepoCache::with_ttl`]): an entry older
//! than that is not answered, which bounds how long another process's
//! write can go unseen. What a digest names never changes (a blob's size,
//! a manifest's bytes); such entries are kept under [`Global`], the scope
//! of no repository, without a time to live.
//!
//! Each cache is bounded in bytes: a weigher given at construction says
//! what an entry costs (its key plus what the value holds); a fill that
//! would pass the budget first evicts entries (in no particular order)
//! until a quarter of the budget is free, and a value larger than an
//! eighth of the budget is not cached at all. A cache shared between
//! processes would plug in here: callers only use `get`, `generation`,
//! `fill`, `remove` and `drop_repository`. It must not do I/O or know
//! what the values mean beyond their weight.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::registry::oci::Name;

/// What an entry costs beyond its key and value: the map's slot, the
/// key's `String`, the allocator's rounding.
const ENTRY_OVERHEAD: usize = 64;

/// The entries (value, weight, when filled) and their total weight.
struct Entries<V> {
    map: HashMap<String, (V, usize, Instant)>,
    bytes: usize,
}

/// What the entries of a cache are grouped by: a repository, or
/// [`Global`].
pub(super) trait Scope {
    /// The group's key prefix; never contains `\n`.
    fn scope(&self) -> &str;
}

impl Scope for Name {
    fn scope(&self) -> &str {
        self.as_str()
    }
}

/// The scope of no repository (a repository name is never empty).
pub(super) struct Global;

impl Scope for Global {
    fn scope(&self) -> &str {
        ""
    }
}

/// Where a read began (the generation, the time), for
/// [`RepoCache::fill`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Generation(u64, Instant);

/// A cache of values by repository and reference.
pub(super) struct RepoCache<V> {
    map: RwLock<Entries<V>>,
    generation: AtomicU64,
    enabled: bool,
    /// Entries older than this are not answered.
    ttl: Option<Duration>,
    /// Most bytes the entries may weigh together.
    budget: usize,
    /// Bytes a value holds (beyond `size_of::<V>()`).
    weigh: fn(&V) -> usize,
    /// Lookups that found a value, and lookups that did not (while
    /// enabled), for the metrics.
    hits: AtomicU64,
    misses: AtomicU64,
}

fn key(name: &(impl Scope + ?Sized), reference: &str) -> String {
    let name = name.scope();
    let mut k = String::with_capacity(name.len() + reference.len() + 1);
    k.push_str(name);
    k.push('\n');
    k.push_str(reference);
    k
}

impl<V: Clone> RepoCache<V> {
    /// An empty cache of at most `budget` bytes, `weigh` saying what a
    /// value holds; a disabled one never holds anything.
    pub(super) fn new(enabled: bool, budget: usize, weigh: fn(&V) -> usize) -> Self {
        Self {
            map: RwLock::new(Entries {
                map: HashMap::new(),
                bytes: 0,
            }),
            generation: AtomicU64::new(0),
            enabled,
            ttl: None,
            budget,
            weigh,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The same cache, answering only entries younger than `ttl` (when
    /// given).
    pub(super) fn with_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Bytes the entries weigh together.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.read().bytes
    }

    /// The cached value, if any.
    pub(super) fn get(&self, name: &(impl Scope + ?Sized), reference: &str) -> Option<V> {
        if !self.enabled {
            return None;
        }
        let found = self
            .read()
            .map
            .get(&key(name, reference))
            .filter(|(_, _, filled)| self.ttl.is_none_or(|ttl| filled.elapsed() < ttl))
            .map(|(v, _, _)| v.clone());
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Lookups so far that found a value, and that did not.
    pub(super) fn lookups(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Marks the start of a read whose result may [`fill`](Self::fill)
    /// the cache.
    pub(super) fn generation(&self) -> Generation {
        Generation(self.generation.load(Ordering::Acquire), Instant::now())
    }

    /// Remembers `value`, unless a write happened since `since`, which
    /// must be taken before the read of `value` began: with a time to
    /// live, the entry's age counts from then, so a slow read does not
    /// stretch the bound.
    pub(super) fn fill(
        &self,
        name: &(impl Scope + ?Sized),
        reference: &str,
        value: V,
        since: Generation,
    ) {
        if !self.enabled {
            return;
        }
        let k = key(name, reference);
        let weight = k.len() + std::mem::size_of::<V>() + (self.weigh)(&value) + ENTRY_OVERHEAD;
        if weight > self.budget / 8 {
            return;
        }
        let mut e = self.write();
        if self.generation.load(Ordering::Acquire) != since.0 {
            return;
        }
        if e.bytes + weight > self.budget {
            // Make room for more than this one entry, so that a full cache
            // does not sweep on every fill.
            let target = self.budget - self.budget / 4;
            let mut evict = Vec::new();
            let mut left = e.bytes;
            for (k, (_, w, _)) in &e.map {
                if left + weight <= target {
                    break;
                }
                left -= w;
                evict.push(k.clone());
            }
            for k in evict {
                e.remove(&k);
            }
        }
        e.remove(&k);
        e.bytes += weight;
        // The age counts from when the read began (see above).
        let filled = since.1;
        e.map.insert(k, (value, weight, filled));
    }

    /// Forgets one entry after a write that affects it.
    pub(super) fn remove(&self, name: &(impl Scope + ?Sized), reference: &str) {
        let mut e = self.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        e.remove(&key(name, reference));
    }

    /// Forgets every entry of `name` after a write in it.
    pub(super) fn drop_repository(&self, name: &Name) {
        let mut e = self.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let prefix = key(name, "");
        let mut freed = 0;
        e.map.retain(|k, (_, w, _)| {
            let keep = !k.starts_with(&prefix);
            if !keep {
                freed += *w;
            }
            keep
        });
        e.bytes -= freed;
    }

    // A panic while holding the lock cannot leave the map inconsistent
    // (no operation on it can panic between changing `map` and `bytes`).
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries<V>> {
        self.map
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries<V>> {
        self.map
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<V> Entries<V> {
    fn remove(&mut self, k: &str) {
        if let Some((_, w, _)) = self.map.remove(k) {
            self.bytes -= w;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_bytes() {
        let c: RepoCache<Vec<u8>> = RepoCache::new(true, 64 << 10, Vec::len);
        let name = Name::parse("a").unwrap();
        for i in 0..200 {
            let g = c.generation();
            c.fill(&name, &i.to_string(), vec![0; 4000], g);
            assert!(c.bytes() <= 64 << 10);
        }
        assert!(c.get(&name, "199").is_some());
        // Too large for the cache: not kept.
        let g = c.generation();
        c.fill(&name, "big", vec![0; 9000], g);
        assert!(c.get(&name, "big").is_none());
        c.drop_repository(&name);
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn entries_expire_after_their_time_to_live() {
        let c: RepoCache<u64> =
            RepoCache::new(true, 1 << 10, |_| 0).with_ttl(Some(Duration::from_millis(50)));
        let name = Name::parse("a").unwrap();
        let g = c.generation();
        c.fill(&name, "x", 1, g);
        c.fill(&Global, "x", 2, g);
        assert_eq!(c.get(&name, "x"), Some(1));
        assert_eq!(c.get(&Global, "x"), Some(2), "scopes are apart");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&name, "x"), None, "expired");
    }
}
