//! Slows repeated failed logins, without letting anyone lock a real user
//! out.
//!
//! Failures are counted per (user, client address) and per client address
//! (IPv4 addresses whole, IPv6 by their /64, which one client usually
//! holds whole). Never per user alone: an attacker who can slow down every
//! login of `alice` has locked `alice` out. So `alice` logging in from her
//! own address is never slowed by someone else's failures, wherever they
//! come from; an address that guesses is slowed for every user it tries.
//!
//! | counter | free failures | then waits | at most |
//! |---|---|---|---|
//! | (user, address) | [`PAIR.free`](PAIR) | 250 ms, doubling | 8 s |
//! | address | [`ADDRESS.free`](ADDRESS) (an office behind one NAT mistypes too) | 100 ms, doubling | 8 s |
//!
//! A login waits for the larger of its two delays before its bcrypt check
//! (it holds no check slot while it waits). A counter is forgotten
//! [`FORGET_AFTER`] after its last failure; a successful login clears its
//! (user, address) counter. Memory is bounded: at most [`MAX_ENTRIES`]
//! counters of each kind; when full, forgotten ones go first, then the
//! stalest.
//!
//! It does not decide anything else: the caller checks the password and
//! reports the result.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How one counter turns failures into a delay.
pub(crate) struct Rule {
    /// Failures that cost nothing.
    pub(crate) free: u32,
    /// The delay after the first failure beyond `free`; it doubles with each
    /// further one.
    pub(crate) first: Duration,
    /// The longest delay.
    pub(crate) most: Duration,
}

impl Rule {
    fn delay(&self, failures: u32) -> Duration {
        if failures < self.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free).min(16);
        self.first.saturating_mul(1 << doublings).min(self.most)
    }
}

/// Per (user, address).
pub(crate) const PAIR: Rule = Rule {
    free: 3,
    first: Duration::from_millis(250),
    most: Duration::from_secs(8),
};
/// Per address, whatever the user.
pub(crate) const ADDRESS: Rule = Rule {
    free: 20,
    first: Duration::from_millis(100),
    most: Duration::from_secs(8),
};
/// A counter with no failure for this long is forgotten.
pub(crate) const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Most counters kept of each kind.
pub(crate) const MAX_ENTRIES: usize = 16_384;

/// The address a client is counted under.
fn client(addr: Option<IpAddr>) -> Option<IpAddr> {
    addr.map(super::conns::client_of)
}

/// Failures and when the last one was.
type Count = (u32, Instant);

#[derive(Default)]
struct Counters {
    pairs: HashMap<(String, Option<IpAddr>), Count>,
    addresses: HashMap<Option<IpAddr>, Count>,
}

/// The failure counters of one authenticator.
#[derive(Default)]
pub(crate) struct Throttle {
    counters: Mutex<Counters>,
}

fn current(c: Option<&Count>) -> u32 {
    match c {
        Some(&(n, at)) if at.elapsed() < FORGET_AFTER => n,
        _ => 0,
    }
}

fn bump<K: std::hash::Hash + Eq + Clone>(map: &mut HashMap<K, Count>, key: &K) {
    if map.len() >= MAX_ENTRIES && !map.contains_key(key) {
        map.retain(|_, (_, at)| at.elapsed() < FORGET_AFTER);
        if map.len() >= MAX_ENTRIES
            && let Some(stalest) = map
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
        {
            map.remove(&stalest);
        }
    }
    let n = current(map.get(key)).saturating_add(1);
    map.insert(key.clone(), (n, Instant::now()));
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        // Whole inserts and removals: a panic cannot leave them half-done.
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How long a login of `user` from `addr` waits before it is checked.
    pub(crate) fn delay(&self, user: &str, addr: Option<IpAddr>) -> Duration {
        let addr = client(addr);
        let c = self.lock();
        let pair = current(c.pairs.get(&(user.to_owned(), addr)));
        let address = current(c.addresses.get(&addr));
        PAIR.delay(pair).max(ADDRESS.delay(address))
    }

    /// Counts a refused login.
    pub(crate) fn failed(&self, user: &str, addr: Option<IpAddr>) {
        let addr = client(addr);
        let mut c = self.lock();
        bump(&mut c.pairs, &(user.to_owned(), addr));
        bump(&mut c.addresses, &addr);
    }

    /// Clears the (user, address) counter after a successful login.
    pub(crate) fn succeeded(&self, user: &str, addr: Option<IpAddr>) {
        let addr = client(addr);
        let mut c = self.lock();
        if !c.pairs.is_empty() {
            c.pairs.remove(&(user.to_owned(), addr));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn delays_grow_per_pair_and_address_never_per_user() {
        let t = Throttle::default();
        let attacker = ip("10.0.0.66");
        let mut seen = Vec::new();
        for _ in 0..8 {
            seen.push(t.delay("alice", attacker).as_millis());
            t.failed("alice", attacker);
        }
        assert_eq!(seen, [0, 0, 0, 250, 500, 1000, 2000, 4000]);
        for _ in 0..10 {
            t.failed("alice", attacker);
        }
        assert_eq!(t.delay("alice", attacker), PAIR.most, "bounded");
        // Alice from her own address: not slowed at all.
        assert_eq!(t.delay("alice", ip("10.0.0.7")), Duration::ZERO);
        // The attacker trying another user: its address has 18 failures,
        // still under the address's free ones.
        assert_eq!(t.delay("bob", attacker), Duration::ZERO);
        for _ in 0..3 {
            t.failed("carol", attacker);
        }
        assert_eq!(t.delay("bob", attacker), Duration::from_millis(200));
        // A success clears the pair, not the address.
        t.succeeded("alice", attacker);
        assert_eq!(t.delay("alice", attacker), Duration::from_millis(200));
        // IPv6 counts by /64; IPv4-mapped addresses as IPv4.
        for _ in 0..3 {
            t.failed("dan", ip("2001:db8:1:2::5"));
        }
        assert_eq!(t.delay("dan", ip("2001:db8:1:2:ffff::9")), PAIR.first);
        assert_eq!(t.delay("dan", ip("2001:db8:1:3::5")), Duration::ZERO);
        assert_eq!(
            t.delay("bob", ip("::ffff:10.0.0.66")),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn memory_is_bounded() {
        let t = Throttle::default();
        for i in 0..(MAX_ENTRIES + 100) {
            t.failed(&format!("u{i}"), ip("10.1.1.1"));
        }
        assert_eq!(t.lock().pairs.len(), MAX_ENTRIES);
    }
}
