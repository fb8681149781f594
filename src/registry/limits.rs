//! Limits on what one client may ask of the registry (`limits:` in the
//! flavor), and the accept loop that enforces those that live below HTTP.
//!
//! | limit | where it is enforced |
//! |---|---|
//! | `max_connections` | [`serve`]: no more connections are accepted while this many are open |
//! | `max_connections_per_address` | [`serve`]: a client address over it has its longest-idle connection evicted, or the new one closed when none is idle |
//! | `min_body_bytes_per_sec` | request bodies ([`layer`], [`MinRate`]): checked at the end of each `idle_timeout_secs` period |
//! | `header_timeout_secs` | TLS handshake deadline; hyper's header read timeout, which also closes idle kept-alive connections |
//! | `max_header_bytes` | hyper's read buffer (HTTP/1.1; `431` beyond it), the HTTP/2 header list size, and [`layer`] (`431` for a head that arrived whole in one read) |
//! | `idle_timeout_secs` | request bodies ([`layer`]: a body that sends nothing for this long fails) and answers ([`WriteDeadline`]: a client that stops reading is dropped) |
//! | `max_manifest_bytes` | the manifest handler, through the [`ManifestLimit`] request extension |
//!
//! Derived from `max_connections`: an HTTP/2 connection carries at most
//! [`H2_MAX_STREAMS`] requests at once (so requests in flight, and the
//! buffers of their bodies, are at most that many per connection), and the
//! store keeps at most `UPLOADS_PER_CONNECTION` (16) upload sessions per
//! allowed connection (`429 TOOMANYREQUESTS` beyond).
//!
//! Plain connections speak HTTP/1.1 (registry clients do not use h2c, and
//! HTTP/1.1 is where the header timeout also covers a silent client); TLS
//! connections speak HTTP/2 or HTTP/1.1, as ALPN decides.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower_http::timeout::TimeoutBody;

use super::conns::{Conns, Tracked, client_of, drive, evicted};
use crate::model;

/// Requests in flight on one HTTP/2 connection (hyper's default is 200;
/// registry clients use a handful, and Go's and curl's clients open another
/// connection when a server allows fewer).
pub(crate) const H2_MAX_STREAMS: u32 = super::UPLOADS_PER_CONNECTION as u32;

/// The largest manifest the handler accepts, in bytes (a request
/// extension set by [`layer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ManifestLimit(pub usize);

/// Tells handlers the manifest limit and bounds pauses in request bodies.
pub(crate) async fn layer(
    State(limits): State<model::Limits>,
    req: Request,
    next: Next,
) -> Response {
    // hyper bounds its read buffer, but a head that arrives in one read
    // can still be larger: count it here too.
    let max_head = usize::try_from(limits.max_header_bytes).unwrap_or(usize::MAX);
    if head_size(&req) > max_head {
        return (
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            [(axum::http::header::CONNECTION, "close")],
        )
            .into_response();
    }
    let idle = Duration::from_secs(limits.idle_timeout_secs.max(1));
    let rate = limits.min_body_bytes_per_sec;
    let mut req = req.map(|b| Body::new(MinRate::new(TimeoutBody::new(idle, b), rate, idle)));
    req.extensions_mut().insert(ManifestLimit(
        usize::try_from(limits.max_manifest_bytes).unwrap_or(usize::MAX),
    ));
    next.run(req).await
}

pin_project_lite::pin_project! {
    /// A request body that fails when it delivers fewer than `rate` bytes a
    /// second on average over a period: checked when each period ends (a
    /// timer, so a body that sends nothing at all is caught too), then a
    /// new period starts. A body that has ended is never failed. Only time
    /// spent waiting for the client counts: while the handler is busy
    /// elsewhere (writing a chunk to slow storage) and does not ask for
    /// more, the period is extended by as much.
    pub(crate) struct MinRate<B> {
        #[pin]
        inner: B,
        rate: u64,
        period: Duration,
        got: u64,
        // When the last frame was handed over (the handler's time starts).
        handed: Option<tokio::time::Instant>,
        #[pin]
        deadline: tokio::time::Sleep,
    }
}

impl<B> MinRate<B> {
    /// `inner`, held to `rate` bytes a second (0: not held) over each
    /// `period`.
    pub(crate) fn new(inner: B, rate: u64, period: Duration) -> Self {
        Self {
            inner,
            rate,
            period,
            got: 0,
            handed: None,
            deadline: tokio::time::sleep(period),
        }
    }
}

/// Why a body was abandoned by [`MinRate`].
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived slower than {rate} bytes a second over {secs} s")]
pub(crate) struct TooSlow {
    rate: u64,
    secs: u64,
}

impl<B> hyper::body::Body for MinRate<B>
where
    B: hyper::body::Body,
    B::Error: Into<axum::BoxError>,
{
    type Data = B::Data;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<B::Data>, axum::BoxError>>> {
        use bytes::Buf as _;
        let mut this = self.project();
        if let Some(at) = this.handed.take() {
            let later = this.deadline.deadline() + at.elapsed();
            this.deadline.as_mut().reset(later);
        }
        let frame = match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    *this.got += d.remaining() as u64;
                }
                *this.handed = Some(tokio::time::Instant::now());
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        };
        if *this.rate > 0 && this.deadline.as_mut().poll(cx).is_ready() {
            let secs = this.period.as_secs().max(1);
            if *this.got < this.rate.saturating_mul(secs) {
                return Poll::Ready(Some(Err(Box::new(TooSlow {
                    rate: *this.rate,
                    secs,
                }))));
            }
            *this.got = 0;
            let next = tokio::time::Instant::now() + *this.period;
            this.deadline.as_mut().reset(next);
            // Registers the new deadline's wake-up.
            let _ = this.deadline.as_mut().poll(cx);
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Bytes of a request's head as HTTP/1.1 writes it: request line, and each
/// header as `name: value` with its line end.
fn head_size(req: &Request) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    req.headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + line
}

/// A connection whose writes fail once they have waited `timeout` for the
/// client to read. Reads pass through (their deadlines are hyper's header
/// timeout and [`layer`]'s body timeout).
pub(crate) struct WriteDeadline<T> {
    inner: T,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteDeadline<T> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: T, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            sleep: None,
        }
    }

    /// Called when a write is pending: arms the deadline, or fails when it
    /// has passed.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.timeout;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            )),
            Poll::Pending => Poll::Pending,
        }
    }

    fn track<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Pending => self.stalled(cx).map(Err),
            ready => {
                self.sleep = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.track(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.track(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.track(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.track(cx, r)
    }
}

/// Whether an `accept` error concerns one connection only (then the loop
/// goes on at once) rather than the process (then it pauses).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves `app` on `listener` until `shutdown` resolves, then waits for the
/// connections in flight to finish their requests.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: model::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let header_timeout = Duration::from_secs(limits.header_timeout_secs.max(1));
    let idle = Duration::from_secs(limits.idle_timeout_secs.max(1));
    let max_header = usize::try_from(limits.max_header_bytes)
        .unwrap_or(usize::MAX)
        .max(8192);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(max_header)
        .keep_alive(true);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_header).unwrap_or(u32::MAX))
        .max_concurrent_streams(H2_MAX_STREAMS)
        .keep_alive_interval(idle)
        .keep_alive_timeout(header_timeout);
    let http1 = Arc::new(http1);
    let http2 = Arc::new(http2);
    let max = limits.max_connections.clamp(1, u64::from(u32::MAX >> 3));
    let max = u32::try_from(max).unwrap_or(u32::MAX >> 3);
    let slots = Arc::new(tokio::sync::Semaphore::new(max as usize));
    let conns = Conns::new();
    let evict_batch = (max as usize / 8).clamp(1, 256);
    let per_address =
        usize::try_from(limits.max_connections_per_address.max(1)).unwrap_or(usize::MAX);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let service = TowerToHyperService::new(app);
    tokio::pin!(shutdown);
    'accept: loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // One address over its share: its longest-idle connection makes
        // room, or, with none idle, the new one is closed at once (before
        // it takes a slot).
        let client = client_of(peer.ip());
        if conns.count_of(client) >= per_address && conns.evict_idle_of(client, 1) == 0 {
            tracing::debug!(peer = %peer, "connection refused: too many from this address");
            drop(stream);
            continue;
        }
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(p) => p,
            // At the limit, the longest-idle connections make room for the
            // new one (a few at once, so that a queue of new connections
            // drains quickly); with none idle, it waits for a slot.
            Err(_) => loop {
                conns.evict_idle(evict_batch);
                tokio::select! {
                    p = Arc::clone(&slots).acquire_owned() => match p {
                        Ok(p) => break p,
                        Err(_) => break 'accept,
                    },
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    () = &mut shutdown => break 'accept,
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let (http1, http2, mut stopped) = (Arc::clone(&http1), Arc::clone(&http2), stopped.clone());
        let registration = conns.add(peer);
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = Arc::clone(&registration.conn);
            let service = Tracked::new(service, Arc::clone(&conn));
            let Some(tls) = tls else {
                let io = TokioIo::new(WriteDeadline::new(stream, idle));
                drive(http1.serve_connection(io, service), &conn, &mut stopped).await;
                return;
            };
            let handshake = tokio::time::timeout(header_timeout, tls.accept(stream));
            let stream = tokio::select! {
                r = handshake => match r {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                },
                () = evicted(&conn) => return,
                _ = stopped.wait_for(|s| *s) => return,
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            let io = TokioIo::new(WriteDeadline::new(stream, idle));
            if h2 {
                drive(http2.serve_connection(io, service), &conn, &mut stopped).await;
            } else {
                drive(http1.serve_connection(io, service), &conn, &mut stopped).await;
            }
        });
    }
    drop(listener);
    // In-flight requests finish; then every connection has given back its
    // slot.
    let _ = stop.send(true);
    let _ = slots.acquire_many(max).await;
    Ok(())
}
