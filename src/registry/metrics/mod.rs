//! Prometheus metrics of `serve` (`metrics: {listen: HOST:PORT}`): the
//! families, what fills them, and the listener of their own that serves
//! them at `/metrics` in the Prometheus text format (version 0.0.4).
//!
//! Families (all prefixed `regconf_`, except the process's own):
//!
//! ```text
//! http_requests_total{method,route,status}   counter; route is the endpoint's
//!                                            pattern (`/v2/{name}/blobs/{digest}`)
//! http_request_duration_seconds{method,route} histogram, until the answer's head
//! http_request_bytes_total{route}            bytes of request bodies read
//! http_response_bytes_total{route}           bytes of answer bodies sent
//! uploads_in_progress                        upload sessions open in this process
//! storage_operations_total{driver,operation} every driver call
//! storage_errors_total{driver,operation}     failed ones ("not found" is an answer)
//! cache_lookups_total{cache,result}          manifest and blob-size caches, hit/miss
//! gc_runs_total{result}                      online collections, `ok` or `error`
//! gc_removed_bytes_total                     bytes they removed
//! gc_last_success_timestamp_seconds          when one last succeeded (Unix time)
//! process_resident_memory_bytes              RSS, from /proc/self/status
//! process_virtual_memory_bytes               VmSize, from /proc/self/status
//! ```
//!
//! Rooms: this file (the families, the scrape, the listener), `layer.rs`
//! (the HTTP middleware that counts requests) and `storage.rs` (a driver
//! wrapper that counts storage calls). Values that live elsewhere (upload
//! sessions, cache lookups, memory) are read at scrape time by a collector
//! rather than copied on every request.
//!
//! This module only observes: it must not change an answer, log per
//! request, or hold a label value chosen by a client (methods outside the
//! standard ones are `other`, unknown paths `unmatched`), so that the
//! number of series stays bounded whatever clients send.

mod layer;
mod storage;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::State as Extract;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::http::AppState;

pub(crate) use layer::layer;
pub(crate) use storage::Metered;

/// Labels of a request count.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: &'static str,
    status: u16,
}

/// Labels of a latency.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodRoute {
    method: &'static str,
    route: &'static str,
}

/// Labels of a byte count.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

/// Labels of a storage count.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageLabels {
    driver: String,
    operation: &'static str,
}

/// Labels of a gc run.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

type Latency = Family<MethodRoute, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s: cached manifest reads to large blob writes.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The metrics of one `serve` process.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    bytes_in: Family<RouteLabel, Counter>,
    bytes_out: Family<RouteLabel, Counter>,
    storage_ops: Family<StorageLabels, Counter>,
    storage_errors: Family<StorageLabels, Counter>,
    gc_runs: Family<ResultLabel, Counter>,
    gc_removed: Counter,
    gc_last_success: Gauge<f64, AtomicU64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Every family, registered, all at zero.
    pub(crate) fn new() -> Self {
        let mut m = Self {
            registry: Registry::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            storage_ops: Family::default(),
            storage_errors: Family::default(),
            gc_runs: Family::default(),
            gc_removed: Counter::default(),
            gc_last_success: Gauge::default(),
        };
        let r = m.registry.sub_registry_with_prefix("regconf");
        r.register(
            "http_requests",
            "HTTP requests answered, by method, route pattern and status",
            m.requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "Time until the answer's head was ready, by method and route pattern",
            Unit::Seconds,
            m.latency.clone(),
        );
        r.register_with_unit(
            "http_request",
            "Bytes of request bodies read, by route pattern",
            Unit::Bytes,
            m.bytes_in.clone(),
        );
        r.register_with_unit(
            "http_response",
            "Bytes of answer bodies sent, by route pattern",
            Unit::Bytes,
            m.bytes_out.clone(),
        );
        r.register(
            "storage_operations",
            "Calls to the storage driver, by driver and operation",
            m.storage_ops.clone(),
        );
        r.register(
            "storage_errors",
            "Failed calls to the storage driver (not counting `not found`), by driver and operation",
            m.storage_errors.clone(),
        );
        r.register(
            "gc_runs",
            "Garbage collections run by this process, by result (ok or error)",
            m.gc_runs.clone(),
        );
        r.register_with_unit(
            "gc_removed",
            "Bytes removed by garbage collections of this process",
            Unit::Bytes,
            m.gc_removed.clone(),
        );
        r.register(
            "gc_last_success_timestamp_seconds",
            "Unix time at which a garbage collection of this process last succeeded (0: never)",
            m.gc_last_success.clone(),
        );
        // Both results exist from the start, so that a rate over them works
        // before the first run.
        for result in ["ok", "error"] {
            drop(m.gc_runs.get_or_create(&ResultLabel { result }));
        }
        // The process families have standard names, without the prefix.
        m.registry.register_collector(Box::new(Process));
        m
    }

    /// Reads what the store knows (upload sessions, cache lookups) at each
    /// scrape. Called once, when the state is built.
    pub(crate) fn watch(&mut self, state: AppState) {
        self.registry
            .sub_registry_with_prefix("regconf")
            .register_collector(Box::new(StoreStats(state)));
    }

    /// Records the end of a garbage collection run: `removed_bytes` it
    /// removed, and whether it succeeded (then the time of the last success
    /// moves to now). For the online collector of `serve`.
    pub(crate) fn gc_finished(&self, removed_bytes: u64, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.gc_runs.get_or_create(&ResultLabel { result }).inc();
        self.gc_removed.inc_by(removed_bytes);
        if ok {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.gc_last_success.set(now);
        }
    }

    /// The text format of every family.
    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Upload sessions and cache lookups, read from the store at each scrape.
struct StoreStats(AppState);

impl std::fmt::Debug for StoreStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreStats")
    }
}

impl Collector for StoreStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let store = &self.0.store;
        let open = ConstGauge::new(i64::try_from(store.uploads_open()).unwrap_or(i64::MAX));
        open.encode(encoder.encode_descriptor(
            "uploads_in_progress",
            "Blob upload sessions open in this process.",
            None,
            open.metric_type(),
        )?)?;
        let mut family = encoder.encode_descriptor(
            "cache_lookups",
            "Lookups of the manifest and blob-size caches, by cache and result (hit or miss).",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (cache, hits, misses) in store.cache_lookups() {
            for (result, n) in [("hit", hits), ("miss", misses)] {
                let labels = [("cache", cache), ("result", result)];
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The process's memory, from `/proc/self/status` (Linux), at each scrape.
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
            return Ok(());
        };
        let kib = |field: &str| -> Option<i64> {
            let line = status.lines().find_map(|l| l.strip_prefix(field))?;
            line.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<i64>()
                .ok()
        };
        for (name, field, help) in [
            (
                "process_resident_memory_bytes",
                "VmRSS:",
                "Resident memory of the process, in bytes.",
            ),
            (
                "process_virtual_memory_bytes",
                "VmSize:",
                "Virtual memory of the process, in bytes.",
            ),
        ] {
            if let Some(k) = kib(field) {
                let g = ConstGauge::new(k.saturating_mul(1024));
                g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
            }
        }
        Ok(())
    }
}

/// `GET /metrics` of the metrics listener.
async fn scrape(Extract(metrics): Extract<Arc<Metrics>>) -> Response {
    match metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                ),
            )],
            text,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Serves `/metrics` on `listener` (plain HTTP; anything else is 404).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics);
    axum::serve(listener, app).await
}
