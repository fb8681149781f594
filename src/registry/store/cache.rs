//! The store's per-process caches: one [`RepoCache`] type, used for blob
//! sizes and for manifests.
//!
//! A cache maps (repository, reference) to a value. Every write in a
//! repository bumps a generation counter and drops entries; a read only
//! fills the cache if no write happened since it started, so a stale entry
//! can never be inserted after the invalidation that should have removed
//! it. A cache built `enabled: false` remembers nothing.
//!
//! On shared storage the writes of other processes reach this process
//! through the change log (`changes.rs`), whose reader drops the entries
//! they affect. A cache of what may change there (a repository's links,
//! its tags) is built with a time to live and a [`LogClock`]
//! ([`RepoCache::with_ttl`]): an entry is answered while it is younger
//! than the time to live, or, while the clock says the log was read
//! recently enough ([`LogClock::fresh`]), while it is younger than
//! [`super::MEMBERSHIP_CAP`]. Either way another process's write can go
//! unseen only for a bounded time (the argument: `../mod.rs`). What a digest names never changes (a blob's size,
//! a manifest's bytes); such entries are kept under [`Global`], the scope
//! of no repository, without a time to live.
//!
//! Each cache is bounded in bytes: a weigher given at construction says
//! what an entry costs (its key plus what the value holds); a fill that
//! would pass the budget first evicts entries (in no particular order)
//! until a quarter of the budget is free, and a value larger than an
//! eighth of the budget is not cached at all. A cache shared between
//! processes would plug in here: callers only use `get`, `generation`,
//! `fill`, `remove`, `drop_repository` and `clear`. It must not do I/O or know
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

/// When the last read of the change log that completed had started: a
/// cache answers entries older than its time to live only while that is
/// less than the bound ago. Shared by the caches and the log's reader.
pub(super) struct LogClock {
    /// What the stored instants count from.
    base: Instant,
    /// Nanoseconds from `base` to the start of the last completed read,
    /// plus one; 0 before the first.
    started: AtomicU64,
    /// How long after a read started its result is trusted.
    bound: Duration,
}

impl LogClock {
    /// A clock that was never read, trusting a read for `bound`.
    pub(super) fn new(bound: Duration) -> Self {
        Self {
            base: Instant::now(),
            started: AtomicU64::new(0),
            bound,
        }
    }

    /// Records that a read of the log which started at `started` has
    /// completed (every entry it found has been applied).
    pub(super) fn completed(&self, started: Instant) {
        let nanos = started.saturating_duration_since(self.base).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1;
        self.started.fetch_max(nanos, Ordering::AcqRel);
    }

    /// Whether the last completed read started less than the bound ago:
    /// every change logged before that start has been applied.
    pub(super) fn fresh(&self) -> bool {
        match self.started.load(Ordering::Acquire) {
            0 => false,
            n => {
                let started = self.base + Duration::from_nanos(n - 1);
                started.elapsed() < self.bound
            }
        }
    }
}

/// A cache of values by repository and reference.
pub(super) struct RepoCache<V> {
    map: RwLock<Entries<V>>,
    generation: AtomicU64,
    enabled: bool,
    /// Entries older than this are not answered (unless `log` is fresh).
    ttl: Option<Duration>,
    /// With a time to live: the change log's reader, and how old an entry
    /// may be answered while it is fresh.
    log: Option<(std::sync::Arc<LogClock>, Duration)>,
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
            log: None,
            budget,
            weigh,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The same cache, answering only entries younger than `ttl` (when
    /// given), or younger than `cap` while `log` is fresh.
    pub(super) fn with_ttl(
        mut self,
        ttl: Option<Duration>,
        log: std::sync::Arc<LogClock>,
        cap: Duration,
    ) -> Self {
        self.ttl = ttl;
        self.log = Some((log, cap));
        self
    }

    /// Whether an entry filled (its read begun) at `filled` is answered.
    fn valid(&self, filled: Instant) -> bool {
        let Some(ttl) = self.ttl else { return true };
        let age = filled.elapsed();
        age < ttl
            || self
                .log
                .as_ref()
                .is_some_and(|(clock, cap)| age < *cap && clock.fresh())
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
            .filter(|(_, _, filled)| self.valid(*filled))
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

    /// Forgets every entry (a change whose repositories are not named).
    pub(super) fn clear(&self) {
        let mut e = self.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        e.map.clear();
        e.bytes = 0;
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
        let log = std::sync::Arc::new(LogClock::new(Duration::from_millis(50)));
        let c: RepoCache<u64> = RepoCache::new(true, 1 << 10, |_| 0).with_ttl(
            Some(Duration::from_millis(50)),
            log,
            Duration::from_secs(60),
        );
        let name = Name::parse("a").unwrap();
        let g = c.generation();
        c.fill(&name, "x", 1, g);
        c.fill(&Global, "x", 2, g);
        assert_eq!(c.get(&name, "x"), Some(1));
        assert_eq!(c.get(&Global, "x"), Some(2), "scopes are apart");
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&name, "x"), None, "expired: the log was never read");
    }

    /// The validity rule: past its time to live, an entry is answered only
    /// while the last completed read of the log started less than the
    /// bound ago; a read that fails or stalls (never completes) lets the
    /// entry expire as if there were no log.
    #[test]
    fn past_the_time_to_live_only_a_recent_log_read_keeps_an_entry() {
        let bound = Duration::from_millis(80);
        let log = std::sync::Arc::new(LogClock::new(bound));
        let c: RepoCache<u64> = RepoCache::new(true, 1 << 10, |_| 0).with_ttl(
            Some(bound),
            log.clone(),
            Duration::from_secs(60),
        );
        let name = Name::parse("a").unwrap();
        let g = c.generation();
        c.fill(&name, "x", 1, g);
        // Reads complete every 20 ms: the entry outlives its time to live.
        for _ in 0..10 {
            log.completed(Instant::now());
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(c.get(&name, "x"), Some(1), "kept while the log is read");
        // A read started now that has not completed does not count, and
        // an older start recorded late does not move the clock back.
        let stalled = Instant::now();
        std::thread::sleep(bound);
        log.completed(stalled - bound);
        assert!(!log.fresh());
        assert_eq!(
            c.get(&name, "x"),
            None,
            "the log stopped: the entry expired"
        );
        // A change found by a read drops the entry; a fill whose read
        // began before the drop is refused.
        log.completed(Instant::now());
        let g = c.generation();
        c.fill(&name, "x", 1, c.generation());
        c.drop_repository(&name);
        c.fill(&name, "x", 1, g);
        assert_eq!(c.get(&name, "x"), None);
        // Past the cap, even a fresh log does not keep an entry.
        let capped: RepoCache<u64> = RepoCache::new(true, 1 << 10, |_| 0).with_ttl(
            Some(Duration::from_millis(10)),
            log.clone(),
            Duration::from_millis(30),
        );
        capped.fill(&name, "x", 1, capped.generation());
        std::thread::sleep(Duration::from_millis(40));
        log.completed(Instant::now());
        assert_eq!(capped.get(&name, "x"), None, "older than the cap");
    }
}
