//! The open connections of `serve` as the accept loop sees them: which
//! are idle, so that at `max_connections` a new connection takes the place
//! of the longest-idle one instead of waiting behind it.
//!
//! A connection is idle while no request is in progress on it: before its
//! first request (a silent client, a slow TLS handshake), between two
//! (kept alive), or while a request head is still arriving (slowloris). A
//! request is in progress from the moment hyper hands it to the service
//! until its answer's body has been written or dropped ([`Tracked`],
//! [`Guarded`]). An idle connection asked to make room is dropped at once;
//! one that became busy meanwhile ignores the request.
//!
//! Connections are also counted per client address (IPv4 whole, IPv6 by
//! its /64), so that `limits::serve` can hold one address to its share
//! ([`Conns::count_of`], [`Conns::evict_idle_of`]); each request carries
//! its connection's [`Peer`] address as an extension.
//!
//! This module knows nothing of routes or limits; `limits::serve` decides
//! when to evict.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use hyper_util::server::graceful::GracefulConnection;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Notify, watch};

/// The client address of the connection a request came on (a request
/// extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer(pub(crate) SocketAddr);

/// The address a client is counted under: IPv4 whole (IPv4-mapped IPv6
/// as IPv4), IPv6 by its /64, which one client usually holds whole.
pub(crate) fn client_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// One open connection.
pub(crate) struct Conn {
    /// The client's address.
    peer: SocketAddr,
    /// Requests in progress.
    busy: AtomicUsize,
    /// When it last became idle (or opened), in ms since [`Conns`]'s epoch.
    idle_since: AtomicU64,
    /// Set by [`Conns::evict_idle`].
    evict: Notify,
    epoch: Instant,
}

impl Conn {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Every open connection.
pub(crate) struct Conns {
    epoch: Instant,
    next: AtomicU64,
    open: Mutex<Open>,
}

/// The open connections, by id and counted by client.
#[derive(Default)]
struct Open {
    by_id: HashMap<u64, Arc<Conn>>,
    per_client: HashMap<IpAddr, usize>,
}

/// A connection's entry in [`Conns`]; removed when dropped.
pub(crate) struct Registration {
    conns: Arc<Conns>,
    id: u64,
    /// The connection.
    pub(crate) conn: Arc<Conn>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut open = self.conns.lock();
        if let Some(c) = open.by_id.remove(&self.id) {
            let client = client_of(c.peer.ip());
            if let Some(n) = open.per_client.get_mut(&client) {
                *n -= 1;
                if *n == 0 {
                    open.per_client.remove(&client);
                }
            }
        }
    }
}

impl Conns {
    /// No connections yet.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            open: Mutex::new(Open::default()),
        })
    }

    /// Registers a new (idle) connection from `peer`.
    pub(crate) fn add(self: &Arc<Self>, peer: SocketAddr) -> Registration {
        let conn = Arc::new(Conn {
            peer,
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            evict: Notify::new(),
            epoch: self.epoch,
        });
        conn.idle_since.store(conn.now(), Ordering::Release);
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut open = self.lock();
        open.by_id.insert(id, Arc::clone(&conn));
        *open.per_client.entry(client_of(peer.ip())).or_default() += 1;
        drop(open);
        Registration {
            conns: Arc::clone(self),
            id,
            conn,
        }
    }

    /// Asks up to `n` idle connections, the longest idle first, to close;
    /// returns how many were asked.
    pub(crate) fn evict_idle(&self, n: usize) -> usize {
        self.evict(n, |_| true)
    }

    /// Open connections of `client` (as [`client_of`] gives it).
    pub(crate) fn count_of(&self, client: IpAddr) -> usize {
        self.lock().per_client.get(&client).copied().unwrap_or(0)
    }

    /// As [`Conns::evict_idle`], among the connections of `client` only.
    pub(crate) fn evict_idle_of(&self, client: IpAddr, n: usize) -> usize {
        self.evict(n, |c| client_of(c.peer.ip()) == client)
    }

    fn evict(&self, n: usize, pick: impl Fn(&Conn) -> bool) -> usize {
        let mut idle: Vec<(u64, Arc<Conn>)> = self
            .lock()
            .by_id
            .values()
            .filter(|c| c.busy.load(Ordering::Acquire) == 0 && pick(c))
            .map(|c| (c.idle_since.load(Ordering::Acquire), Arc::clone(c)))
            .collect();
        idle.sort_unstable_by_key(|(since, _)| *since);
        idle.truncate(n);
        for (_, c) in &idle {
            c.evict.notify_one();
        }
        idle.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // Single inserts and removals: a panic cannot leave it half-done.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Resolves when `conn` is asked to make room while idle.
pub(crate) async fn evicted(conn: &Conn) {
    loop {
        conn.evict.notified().await;
        if conn.busy.load(Ordering::Acquire) == 0 {
            return;
        }
    }
}

/// Serves `http` until it ends, until it is evicted while idle (then it is
/// dropped, closing the socket), or until `stop` (then in-flight requests
/// finish first).
pub(crate) async fn drive<C: GracefulConnection>(
    http: C,
    conn: &Conn,
    stop: &mut watch::Receiver<bool>,
) {
    tokio::pin!(http);
    tokio::select! {
        _ = http.as_mut() => return,
        () = evicted(conn) => return,
        _ = stop.wait_for(|s| *s) => {}
    }
    http.as_mut().graceful_shutdown();
    let _ = http.await;
}

/// A request in progress on a connection; counted until dropped.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(conn: Arc<Conn>) -> Self {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Self(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle_since.store(self.0.now(), Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The router as hyper calls it, counting requests in progress on `conn`.
pub(crate) struct Tracked {
    inner: TowerToHyperService<Router>,
    conn: Arc<Conn>,
}

impl Tracked {
    /// `inner` serving `conn`.
    pub(crate) fn new(inner: TowerToHyperService<Router>, conn: Arc<Conn>) -> Self {
        Self { inner, conn }
    }
}

type Request = hyper::Request<hyper::body::Incoming>;

impl hyper::service::Service<Request> for Tracked {
    type Response = hyper::Response<Guarded>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: Request) -> Self::Future {
        req.extensions_mut().insert(Peer(self.conn.peer));
        let busy = Busy::new(Arc::clone(&self.conn));
        let answer = self.inner.call(req);
        Box::pin(async move {
            let res = answer.await?;
            Ok(res.map(|body| Guarded { body, _busy: busy }))
        })
    }
}

/// An answer's body that keeps its request counted until it is done.
pub(crate) struct Guarded {
    body: axum::body::Body,
    _busy: Busy,
}

impl hyper::body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
