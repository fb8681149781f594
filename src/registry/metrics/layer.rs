//! The middleware that counts requests: outermost on the main listener, so
//! that answers of the authentication and limits layers (401, 431, ...)
//! are counted too. It reads the method, the path's route pattern and the
//! status, times the request until its answer's head is ready, and wraps
//! both bodies to count their bytes as they pass (sizes are forwarded, so
//! `Content-Length` stays as the handler set it).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;

use super::{MethodRoute, Metrics, RequestLabels, RouteLabel};
use crate::registry::http::route_pattern;

/// The label of a method: the standard ones by name, any other `other`
/// (a client may send any token as a method).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts, times and measures every request of the main listener.
pub(crate) async fn layer(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = route_pattern(req.uri().path());
    let inbound = m.bytes_in.get_or_create_owned(&RouteLabel { route });
    let req = req.map(|b| {
        Body::new(Counted {
            inner: b,
            counter: inbound,
        })
    });
    let res = next.run(req).await;
    m.latency
        .get_or_create(&MethodRoute { method, route })
        .observe(start.elapsed().as_secs_f64());
    let status = res.status().as_u16();
    m.requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status,
        })
        .inc();
    let outbound = m.bytes_out.get_or_create_owned(&RouteLabel { route });
    res.map(|b| {
        Body::new(Counted {
            inner: b,
            counter: outbound,
        })
    })
}

/// A body that adds the length of each data frame to a counter.
struct Counted {
    inner: Body,
    counter: Counter,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.counter.inc_by(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
