//! The fence: how a manifest push on shared storage learns, without a
//! request of its own, that nothing destructive can happen to the
//! repository while it writes, so it may skip the lease and the checks
//! that exist only for a concurrent delete or garbage collector.
//!
//! Whoever is about to remove something another push may still be
//! relying on (garbage collection's doom step, a blob `DELETE`, a manifest
//! `DELETE` by digest) first *raises* the fence: one change-log entry
//! `!fence <raiser> <until>` (`changes.rs`), then waits [`WAIT`] before its
//! first removal. A push reads the log (the read the metadata index does
//! anyway; at most one per [`FRESH`] per process), and takes the quiet
//! path only when that read saw no fence in force and began less than
//! [`WAIT`] before the push's last write returned.
//!
//! Why that is enough: a read that did not see the entry listed the log
//! before the entry's `PUT` completed, so the raiser's first removal comes
//! at least [`WAIT`] after the read began, and the quiet push's writes had
//! all returned by then. A push that overruns the bound falls back to the
//! checks after its writes (`manifests.rs`), which are safe without the
//! fence. A raiser acts only while at least [`SLACK`] of its fence is
//! left, so clocks up to that far apart do not open a gap; an entry holds
//! for [`HOLD`], less than the log's look-back, and is written again
//! while needed, so a process that has just started finds it too; the
//! log's own bound (an entry visible more than 30 s after the time in its
//! name is missed, `changes.rs`) applies to fence entries as well. The design,
//! and what it costs, is in `../storage/README.md`.
//!
//! This module must not decide what is removed; it only says when a
//! removal may start and whether a push may go without the checks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::{Store, StoreError};
use crate::registry::layout;
use crate::registry::storage::Storage;

/// How long a raiser waits after its entry is written before it removes
/// anything; a quiet push must have finished its writes within this long
/// of the start of the log read it relies on.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// How old the last log read may be for a push to rely on it without
/// reading again.
pub(crate) const FRESH: Duration = Duration::from_secs(1);

/// How long one fence entry holds. Shorter than the log's look-back
/// (`changes::WINDOW`), so a process that starts reading the log while a
/// fence is in force always lists an entry that holds it: a raiser that
/// needs the fence longer writes a new entry before half of it is gone
/// (deletes through the API on their next delete, a gc run every
/// [`RENEW`]).
const HOLD: Duration = Duration::from_secs(20);

/// How often a gc run writes its fence again.
const RENEW: Duration = Duration::from_secs(5);

/// A raiser acts only while this much of its fence is left: clocks up to
/// this far apart still agree that it holds (as the repository lease's
/// slack, `lease.rs`).
const SLACK: Duration = Duration::from_secs(5);

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The body of a fence entry.
fn encode(raiser: &str, until: u128) -> String {
    format!("!fence {raiser} {until}\n")
}

/// A fence entry's raiser and end (wall-clock nanoseconds; 0 lowers it).
pub(super) fn decode(body: &[u8]) -> Option<(String, u128)> {
    let text = std::str::from_utf8(body).ok()?.strip_prefix("!fence ")?;
    let (raiser, until) = text.trim_end().split_once(' ')?;
    Some((raiser.to_owned(), until.parse().ok()?))
}

/// What this process knows of the fences.
pub(super) struct Fences {
    /// This process's name as a raiser.
    id: String,
    state: std::sync::Mutex<State>,
    /// One raise at a time in this process.
    raising: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    /// Fences of other processes (and of this process's gc runs, which
    /// raise under names of their own): raiser → until.
    raised: HashMap<String, u128>,
    /// This process's fence for API deletes: until, and when it is in
    /// force (its wait over).
    own: Option<(u128, Instant)>,
    /// When the last completed read of the log began.
    read_started: Option<Instant>,
}

impl Default for Fences {
    fn default() -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            state: std::sync::Mutex::default(),
            raising: tokio::sync::Mutex::default(),
        }
    }
}

impl Fences {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fence entry read from the log.
    pub(super) fn saw(&self, raiser: String, until: u128) {
        let mut s = self.state();
        if until == 0 {
            s.raised.remove(&raiser);
        } else {
            s.raised.insert(raiser, until);
        }
    }

    /// A read of the log that began at `started` is complete.
    pub(super) fn read_done(&self, started: Instant) {
        let mut s = self.state();
        if s.read_started.is_none_or(|t| t < started) {
            s.read_started = Some(started);
        }
        let now = now_nanos();
        s.raised.retain(|_, until| *until > now);
    }

    /// When the last log read began, if it saw no fence in force (and this
    /// process holds none).
    fn clear_since(&self) -> Option<Instant> {
        let s = self.state();
        let now = now_nanos();
        if s.raised.values().any(|u| *u > now) || s.own.is_some_and(|(u, _)| u > now) {
            return None;
        }
        s.read_started
    }
}

/// A fence raised by a garbage collection run; lowered by
/// [`Store::lower_fence`].
pub(crate) struct GcFence {
    raiser: String,
    /// Until when the last entry written holds (wall-clock nanoseconds).
    held: Arc<AtomicU64>,
    renewer: tokio::task::JoinHandle<()>,
}

impl GcFence {
    /// Whether the run may go on removing: its fence holds for at least
    /// [`SLACK`] more (a renewal that failed for long makes it stop).
    pub(crate) fn holds(&self) -> bool {
        left(u128::from(self.held.load(Ordering::Acquire)), now_nanos()) >= SLACK
    }
}

impl Drop for GcFence {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Time from `now` to `until` (nanoseconds), zero when past.
fn left(until: u128, now: u128) -> Duration {
    Duration::from_nanos(nanos_u64(until.saturating_sub(now)))
}

fn nanos_u64(n: u128) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Store {
    /// Whether the fence matters: shared storage, and a store that writes
    /// and reads the change log.
    fn fenced(&self) -> bool {
        self.shared && self.logs_changes
    }

    /// For a manifest push: the start of a log read that saw no fence,
    /// recent enough to go without the lease and the checks, reading the
    /// log first when the last read is older than [`FRESH`]. `None`: take
    /// the full path.
    pub(super) async fn quiet_since(&self) -> Option<Instant> {
        if !self.fenced() || self.index.is_none() {
            return None;
        }
        let fresh = |f: &Fences| f.clear_since().filter(|t| t.elapsed() < FRESH);
        if let Some(t) = fresh(&self.fences) {
            return Some(t);
        }
        if let Err(e) = self.catch_up(Duration::ZERO, false).await {
            tracing::debug!(error = %e, "cannot read the change log; the push takes the full path");
            return None;
        }
        fresh(&self.fences)
    }

    /// The start of the last log read, when it saw no fence and is at
    /// most [`FRESH`] old; never reads the log itself.
    pub(super) fn fences_clear_since(&self) -> Option<Instant> {
        if !self.fenced() {
            return None;
        }
        self.fences.clear_since().filter(|t| t.elapsed() < FRESH)
    }

    /// Before a removal through the API (a blob, a manifest by digest):
    /// makes sure this process's fence is in force with at least half of
    /// [`HOLD`] left, raising or renewing it, and waiting [`WAIT`] after a
    /// raise.
    pub(super) async fn fence_for_delete(&self) -> Result<(), StoreError> {
        if !self.fenced() {
            return Ok(());
        }
        let _one = self.fences.raising.lock().await;
        let now = now_nanos();
        let own = self.fences.state().own;
        if let Some((until, ready)) = own
            && left(until, now) >= HOLD / 2
        {
            tokio::time::sleep_until(ready.into()).await;
            return Ok(());
        }
        let until = now + HOLD.as_nanos();
        self.write_fence(&self.fences.id, until).await?;
        // A renewal of a fence still in force needs no wait: pushes
        // already see the entry it extends.
        let ready = match own {
            Some((old, ready)) if left(old, now_nanos()) >= SLACK => ready,
            _ => Instant::now() + WAIT,
        };
        self.fences.state().own = Some((until, ready));
        tokio::time::sleep_until(ready.into()).await;
        Ok(())
    }

    /// Raises a fence for a garbage collection run, renewed every
    /// [`RENEW`] until lowered, and waits [`WAIT`]; `None` where fences do
    /// not matter.
    pub(crate) async fn raise_gc_fence(&self) -> Result<Option<GcFence>, StoreError> {
        if !self.fenced() {
            return Ok(None);
        }
        let raiser = format!("{}-gc-{}", self.fences.id, uuid::Uuid::new_v4().simple());
        let until = now_nanos() + HOLD.as_nanos();
        self.write_fence(&raiser, until).await?;
        self.fences.saw(raiser.clone(), until);
        let held = Arc::new(AtomicU64::new(nanos_u64(until)));
        let renewer = {
            let (storage, fences) = (Arc::clone(&self.storage), Arc::clone(&self.fences));
            let (raiser, held) = (raiser.clone(), Arc::clone(&held));
            // Its entries are read back by this process's own log reads
            // as anyone's: they say what it knows already.
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RENEW).await;
                    let until = now_nanos() + HOLD.as_nanos();
                    match put_entry(storage.as_ref(), &entry_id(), &raiser, until).await {
                        Ok(()) => {
                            fences.saw(raiser.clone(), until);
                            held.store(nanos_u64(until), Ordering::Release);
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot renew the gc fence"),
                    }
                }
            })
        };
        tokio::time::sleep(WAIT).await;
        Ok(Some(GcFence {
            raiser,
            held,
            renewer,
        }))
    }

    /// Lowers a garbage collection run's fence (one log entry; a failure
    /// leaves the fence to expire).
    pub(crate) async fn lower_fence(&self, fence: GcFence) {
        fence.renewer.abort();
        self.fences.saw(fence.raiser.clone(), 0);
        if let Err(e) = self.write_fence(&fence.raiser, 0).await {
            tracing::warn!(error = %e, "cannot lower the gc fence; it expires by itself");
        }
    }

    /// Writes a fence entry, as one of this process's own changes.
    async fn write_fence(&self, raiser: &str, until: u128) -> Result<(), StoreError> {
        let id = entry_id();
        self.own_changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.clone());
        put_entry(self.storage.as_ref(), &id, raiser, until).await
    }
}

/// A change-log name: the time, then randomness (as `changes.rs` names).
fn entry_id() -> String {
    format!(
        "{:020}-{}",
        now_nanos(),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

async fn put_entry(
    storage: &dyn Storage,
    id: &str,
    raiser: &str,
    until: u128,
) -> Result<(), StoreError> {
    let key = format!("{}/{id}", layout::CHANGES);
    storage
        .put_bytes(&key, Bytes::from(encode(raiser, until)))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_are_not_repository_changes() {
        let body = encode("abc-gc-1", 42);
        assert_eq!(decode(body.as_bytes()), Some(("abc-gc-1".into(), 42)));
        assert_eq!(decode(b"+a/b\nv1\n"), None);
    }

    #[test]
    fn a_fence_in_force_stops_the_quiet_path_until_lowered() {
        let f = Fences::default();
        assert_eq!(f.clear_since(), None, "no read yet");
        let t = Instant::now();
        f.read_done(t);
        assert_eq!(f.clear_since(), Some(t));
        f.saw("other".into(), now_nanos() + 60_000_000_000);
        assert_eq!(f.clear_since(), None);
        f.saw("other".into(), 0);
        assert_eq!(f.clear_since(), Some(t));
        // An expired fence no longer counts.
        f.saw("late".into(), now_nanos() - 1);
        assert_eq!(f.clear_since(), Some(t));
    }
}
