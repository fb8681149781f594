//! The container registry `regconf serve` runs: OCI Distribution v1.1 and
//! Docker Registry HTTP API V2, plus the v1 endpoints (`/_ping`,
//! `/v1/search`, `GET /`) that docker-registry configurations still expect.
//!
//! It reads the configuration only through [`crate::model`]; it must not use
//! `config`, `cli` or `diagnostics`, and it does not print (it logs through
//! `tracing`; the front end installs the subscriber, see `init_logging`).
//!
//! Layers, each depending only on the ones below it:
//!
//! ```text
//! serve     listener, connection limits, TLS, authentication  (mod.rs, limits.rs, conns.rs,
//!           and metrics, counted around all of it              tls.rs, auth.rs, metrics/)
//! http      routes, OCI error answers, access log, CORS       (http/)
//! store     OCI meaning: blobs, uploads, manifests, tags,      (store/, layout.rs)
//!           upload sessions, caches, pull-through mirroring
//!           (store/mirror/); gc will be a room of its own there
//! storage   bytes at paths, one driver per backend             (storage/: filesystem.rs,
//!           objects/ with client building apart from I/O)
//! oci       names, tags, digests, manifest shapes (pure)       (oci.rs)
//! index     the persistent metadata index: SQLite per          (index/: sqlite.rs,
//!           process or PostgreSQL shared; catalog, tags/list,  postgres.rs)
//!           search pages
//! migrate   `migrate-v1`: docker-registry's v1 images written  (migrate/)
//!           into the store through its push paths
//! ```
//!
//! Doors: only [`bind`], [`Server`], [`ServeOptions`], [`RegistryError`]
//! (with [`DriverError`]) and [`check_driver`] are public, for the
//! integration tests; `cli` also uses the `pub(crate)` logging helpers.
//! Everything else is `pub(crate)` or private. The error types carried by
//! `RegistryError`'s variants stay nominally `pub` because a public enum
//! may not hold less visible types, but they are not exported.

mod auth;
mod conns;
mod files;
mod http;
mod index;
mod layout;
mod limits;
mod metrics;
pub(crate) mod migrate;
mod oci;
pub(crate) mod storage;
mod store;
mod throttle;
mod tls;

/// Test support shared with the integration tests (the moto launcher).
#[cfg(test)]
#[path = "../../tests/support/mod.rs"]
mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::model;

/// The error a refused storage driver gives (see [`check_driver`]).
pub use index::IndexError;
pub use storage::DriverError;

/// Garbage collection's options and report (for `regconf gc`).
pub use store::gc::{GcOptions, GcReport, Kinds, Tally};

use http::router;

/// An idle process reads the change log this often (requests read it at
/// most every half second, see `store/changes.rs`).
pub(crate) const SEARCH_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// How to run the server (what the configuration file does not say).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (`--listen`, `REGISTRY_HOST`/`REGISTRY_PORT`,
    /// else `127.0.0.1:5000`, decided by the caller).
    pub listen: SocketAddr,
}

/// Why the registry could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The storage driver could not be built.
    #[error(transparent)]
    Storage(#[from] storage::DriverError),
    /// The search index could not be opened.
    #[error(transparent)]
    Index(#[from] index::IndexError),
    /// A search backend other than `sqlalchemy`.
    #[error("search backend `{0}` is not supported (only `sqlalchemy` is)")]
    SearchBackend(String),
    /// Reading storage at start failed.
    #[error("cannot read storage at start: {0}")]
    Startup(#[from] store::StoreError),
    /// The listening socket could not be opened.
    #[error("cannot listen on `{addr}`: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The htpasswd file of `auth:` cannot be used.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The certificate or key of `tls:` cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The metrics listener of `metrics.listen` could not be opened.
    #[error("cannot serve metrics on `{addr}`: {source}")]
    MetricsBind {
        /// The address as configured.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The client of the mirrored registry could not be built.
    #[error("cannot set up mirroring: {0}")]
    Mirror(String),
    /// The server failed while running.
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    /// Garbage collection could not use the storage (the lease).
    #[error("garbage collection cannot use the storage: {0}")]
    Gc(store::StoreError),
    /// Another process is collecting garbage on the same storage.
    #[error(
        "another process is collecting garbage on this storage (its lease expires at {until}, seconds since 1970)"
    )]
    GcBusy {
        /// When the other process's lease expires.
        until: u64,
    },
}

/// The `tracing` filter for the configured `loglevel` (docker-registry's
/// Python names; `critical` has no tracing equivalent and maps to `error`).
pub(crate) fn log_filter(config: &model::Config) -> &'static str {
    match config
        .loglevel
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("debug") => "debug",
        Some("warning" | "warn") => "warn",
        Some("error" | "critical") => "error",
        _ => "info",
    }
}

/// A value from a request (user name, path, header) as it may appear in a
/// log line: control characters (`\n`, `\r`, ESC, ...), Unicode's
/// direction overrides and the backslash itself are escaped, so a client
/// can neither forge a log line nor send a terminal escape through the
/// log. Every attacker-controlled value is logged through this.
pub(crate) struct LogSafe<'a>(pub(crate) &'a str);

impl std::fmt::Display for LogSafe<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if c.is_control()
                    || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
                {
                    write!(f, "\\u{{{:x}}}", u32::from(c))?;
                }
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Installs a global log subscriber with [`log_filter`], unless one is
/// installed already. Meant for the front end, which owns the output.
pub(crate) fn init_logging(config: &model::Config) {
    let filter = tracing_subscriber::EnvFilter::new(log_filter(config));
    // An existing subscriber (tests, an embedding program) wins.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Refuses a storage driver `serve` does not run (`swift`, `glance`,
/// `elliptics`, `oss`, any other name) without touching storage, with
/// `RegistryError::Storage(DriverError::Unsupported(driver))`, the error
/// [`bind`] also returns for them; the front end points its diagnostic at
/// the `storage:` line.
pub fn check_driver(storage: &model::Storage) -> Result<(), RegistryError> {
    let driver = storage.driver();
    if storage::SERVED_DRIVERS.contains(&driver) {
        Ok(())
    } else {
        Err(storage::DriverError::Unsupported(driver.to_owned()).into())
    }
}

/// Upload sessions open at once, per connection `max_connections` allows:
/// a client pushing an image opens a few (one per layer in flight).
pub(crate) const UPLOADS_PER_CONNECTION: u64 = 16;

/// Most upload sessions open at once: [`UPLOADS_PER_CONNECTION`] per
/// allowed connection (16,384 with the defaults), so the session map is
/// bounded by the limits rather than by the purge interval.
fn max_uploads(limits: &model::Limits) -> usize {
    usize::try_from(
        limits
            .max_connections
            .max(1)
            .saturating_mul(UPLOADS_PER_CONNECTION),
    )
    .unwrap_or(usize::MAX)
}

/// Builds storage, index and store for `config`, starts the purge of
/// expired uploads in the background (unless read-only; requests on
/// uploads wait for it, others do not) and opens the metadata index
/// (caught up from the change log, or rebuilt). With `metrics`, the
/// storage driver's calls are counted there.
pub(crate) async fn state(
    config: &model::Config,
    metrics: Option<&metrics::Metrics>,
) -> Result<http::AppState, RegistryError> {
    check_driver(&config.storage)?;
    let mut driver = storage::from_config(&config.storage)?;
    if let Some(m) = metrics {
        driver = metrics::Metered::wrap(driver, config.storage.driver(), m);
    }
    // Read-only: nothing is created in storage either.
    if !config.readonly {
        storage::prepare(&config.storage).await?;
    }
    let search_url = index::search_url(config).map_err(RegistryError::SearchBackend)?;
    // The metadata index, whether search is on or not: catalog and tag
    // pages come from it (see `index`).
    // A configured index that cannot even be opened is the operator's to
    // fix (refused, as before; a PostgreSQL server that cannot be reached
    // too); a damaged SQLite file is rebuilt (see `index`).
    if let Some(url) = search_url {
        index::check_url(url)?;
    }
    let location = index::locate(&config.storage, search_url, config.readonly)?;
    let identity = index::identity(&config.storage);
    let index = Arc::new(index::Index::open(location, identity).await?);
    if matches!(config.storage, model::Storage::Local { .. }) && config.storage_redirect {
        tracing::warn!("`storage_redirect` has no effect with local storage");
    }
    if migrate::only_v1(&driver)
        .await
        .map_err(store::StoreError::from)?
    {
        tracing::warn!(
            "this storage holds docker-registry v1 images and no v2 images, which today's clients cannot pull; convert them with `regconf migrate-v1 --flavor {}`",
            config.flavor
        );
    }
    let mut store = store::Store::new(driver, Some(index.clone()), max_uploads(&config.limits));
    if !config.readonly {
        store = store.with_change_log();
    }
    let store = Arc::new(store);
    // A mirror stores what it fetches, which read-only forbids: it is off.
    let mirroring = config
        .mirroring
        .source
        .as_deref()
        .is_some_and(|s| !s.is_empty());
    let mirror = if config.readonly && mirroring {
        tracing::warn!(
            "read-only: the pull-through mirror is off (it would store what it fetches); only what is stored is served"
        );
        None
    } else {
        store::mirror::Mirror::new(
            &config.mirroring,
            usize::try_from(config.limits.max_manifest_bytes).unwrap_or(usize::MAX),
        )
        .map_err(|e| RegistryError::Mirror(e.to_string()))?
    };
    if let Some(m) = &mirror {
        tracing::info!(
            source = m.source(),
            allow_push = m.allow_push(),
            "pull-through mirror: what is not stored is fetched from the upstream"
        );
    }
    // Read-only: this process writes nothing to storage, purges included.
    if !config.readonly {
        store.purge_uploads_after_start(Duration::from_secs(config.upload_purge.max_age_secs));
    }
    // A new shared index is built here by one process (the others wait).
    if let Some(claim) = index.claim_build().await? {
        store.build_shared_index(claim).await?;
    }
    store.open_index().await?;
    Ok(Arc::new(http::State {
        store,
        mirror,
        settings: http::Settings::new(config),
        index: search_url.is_some().then_some(index),
        unhealthy: std::sync::atomic::AtomicBool::new(false),
    }))
}

/// Collects garbage once on the storage `config` names (`regconf gc`).
/// Safe while `serve` processes use the same storage (see
/// `store/gc/GC.md`); problems met are in the report's `errors`.
pub async fn gc(config: &model::Config, options: GcOptions) -> Result<GcReport, RegistryError> {
    check_driver(&config.storage)?;
    let driver = storage::from_config(&config.storage)?;
    // A shared index learns of what is collected from this command itself
    // (a per-process one, from the change log).
    let shared = index::shared(config).await?;
    let store = store::Store::new(driver, shared, 1).with_change_log();
    let lease = store::gc::Lease::new(GC_LEASE_TTL);
    let deadline = std::time::Instant::now() + GC_LEASE_WAIT;
    while !lease.acquire(&store).await.map_err(RegistryError::Gc)? {
        if std::time::Instant::now() >= deadline {
            let until = lease
                .held_by_other(&store)
                .await
                .map_err(RegistryError::Gc)?
                .unwrap_or(0);
            return Err(RegistryError::GcBusy { until });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut report = store.gc(options, Some(&lease)).await;
    if let Err(e) = lease.release(&store).await {
        report.errors.push(format!("releasing the gc lease: {e}"));
    }
    Ok(report)
}

/// How long a collector's lease lasts without renewal (a run renews it
/// between phases; a process that dies frees it after this).
const GC_LEASE_TTL: Duration = Duration::from_secs(600);

/// How long `regconf gc` waits for another collector to finish.
const GC_LEASE_WAIT: Duration = Duration::from_secs(60);

/// The options of the online collector a `gc:` section asks for.
fn gc_options(config: &model::Config) -> GcOptions {
    GcOptions {
        grace: Duration::from_secs(config.gc.grace_secs),
        untagged: config.gc.untagged,
        dry_run: false,
        upload_max_age: Duration::from_secs(config.upload_purge.max_age_secs),
    }
}

/// The online collector: every `interval`, takes the lease (one process
/// at a time on shared storage), collects, and logs the report. This is
/// where a run's [`GcReport`] is handed on (metrics hook here).
async fn collect_loop(
    state: http::AppState,
    lease: Arc<store::gc::Lease>,
    interval: Duration,
    options: GcOptions,
    metrics: Option<Arc<metrics::Metrics>>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // not at start: let the registry come up first
    loop {
        tick.tick().await;
        match lease.acquire(&state.store).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!("gc: another process holds the lease");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "gc: cannot take the lease");
                continue;
            }
        }
        let report = state.store.gc(options, Some(&lease)).await;
        if let Err(e) = lease.release(&state.store).await {
            tracing::warn!(error = %e, "gc: cannot release the lease");
        }
        // A full interval with the lease free before the next run, even
        // after a run longer than the interval: another process's
        // collector (`regconf gc` polls every 0.5 s) must find it free.
        tick.reset();
        let r = &report.removed;
        if let Some(m) = &metrics {
            let bytes = r.blobs.bytes + r.manifests.bytes + r.layer_links.bytes + r.uploads.bytes;
            m.gc_finished(bytes, report.errors.is_empty());
        }
        if report.errors.is_empty() {
            tracing::info!(
                blobs = r.blobs.count,
                bytes = r.blobs.bytes,
                manifests = r.manifests.count,
                layer_links = r.layer_links.count,
                uploads = r.uploads.count,
                kept_back = report.kept_back.blobs.count,
                restored = report.restored,
                "gc run finished"
            );
        } else {
            tracing::warn!(errors = ?report.errors, "gc run finished with errors");
        }
    }
}

/// A registry bound to its socket, not yet serving.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: http::AppState,
    purge: model::UploadPurge,
    auth: Option<Arc<auth::Authenticator>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: model::Limits,
    readonly: bool,
    /// The metrics and their listener, with `metrics.listen`.
    metrics: Option<(Arc<metrics::Metrics>, tokio::net::TcpListener)>,
    /// The online collector's schedule, when `gc:` asks for one.
    gc: Option<(Duration, GcOptions)>,
}

impl Server {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        // A bound listener always has an address; fall back for the type.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests end.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RegistryError> {
        let purger = (!self.readonly).then(|| {
            let state = self.state.clone();
            let every = Duration::from_secs(self.purge.interval_secs.max(1));
            let max_age = Duration::from_secs(self.purge.max_age_secs);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await; // the first tick is immediate; start purged already
                loop {
                    tick.tick().await;
                    match state.store.purge_uploads(max_age).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(purged = n, "removed expired uploads"),
                        Err(e) => tracing::warn!(error = %e, "upload purge failed"),
                    }
                }
            })
        });
        // Each process keeps its own metadata index and reads what other
        // processes and commands changed from the change log (see `index`);
        // also while idle, so the saved position stays recent; and often
        // while it serves pulls on shared storage (see `store`).
        let refresher = tokio::spawn(
            Arc::clone(&self.state.store).keep_current(SEARCH_REFRESH_INTERVAL, !self.readonly),
        );
        let gc_metrics = self.metrics.as_ref().map(|(m, _)| Arc::clone(m));
        let collector = self.gc.map(|(interval, options)| {
            let lease = Arc::new(store::gc::Lease::new(GC_LEASE_TTL));
            let task = tokio::spawn(collect_loop(
                self.state.clone(),
                lease.clone(),
                interval,
                options,
                gc_metrics,
            ));
            (task, lease, self.state.clone())
        });
        tracing::info!(addr = %self.local_addr(), "registry listening");
        if self.readonly {
            tracing::info!("read-only: every write is refused, and nothing is purged");
        }
        let mut app = router(self.state).layer(axum::middleware::from_fn_with_state(
            self.limits,
            limits::layer,
        ));
        if let Some(a) = self.auth {
            app = app.layer(axum::middleware::from_fn_with_state(a, auth::layer));
        }
        // Outermost, so that the answers of authentication and limits count.
        let mut exporter = None;
        if let Some((m, listener)) = self.metrics {
            app = app.layer(axum::middleware::from_fn_with_state(
                Arc::clone(&m),
                metrics::layer,
            ));
            match listener.local_addr() {
                Ok(addr) if !addr.ip().to_canonical().is_loopback() => tracing::warn!(
                    "metrics on http://{addr}/metrics, without authentication: keep that address off untrusted networks"
                ),
                Ok(addr) => tracing::info!("metrics on http://{addr}/metrics"),
                Err(_) => {}
            }
            exporter = Some(tokio::spawn(async move {
                if let Err(e) = metrics::serve(listener, m).await {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            }));
        }
        let r = limits::serve(self.listener, app, self.tls, self.limits, shutdown)
            .await
            .map_err(RegistryError::Serve);
        if let Some(p) = purger {
            p.abort();
        }
        if let Some(e) = exporter {
            e.abort();
        }
        if let Some((task, lease, state)) = collector {
            task.abort();
            let _ = task.await;
            if let Err(e) = lease.release(&state.store).await {
                tracing::warn!(error = %e, "gc: cannot release the lease");
            }
        }
        refresher.abort();
        r
    }
}

/// Connections the kernel queues for `accept` (it caps this at
/// `net.core.somaxconn`). Deeper than tokio's 1,024 so that a flood of idle
/// sockets does not make the kernel drop a normal client's SYN (a retry
/// one second later) while the accept loop evicts idle connections.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As tokio's `bind`: a restart need not wait for TIME_WAIT to pass.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Prepares the registry and binds `options.listen`.
pub async fn bind(config: &model::Config, options: ServeOptions) -> Result<Server, RegistryError> {
    // bcrypt (the dummy hash) is slow on purpose: not on the runtime.
    let auth = {
        let a = config.auth.clone();
        tokio::task::spawn_blocking(move || auth::Authenticator::load(&a))
            .await
            .map_err(|e| RegistryError::Serve(std::io::Error::other(e)))??
    };
    let tls = tls::acceptor(&config.tls)?;
    let metrics = config.metrics.enabled().then(metrics::Metrics::new);
    let state = state(config, metrics.as_ref()).await?;
    let listener = listen(options.listen).map_err(|source| RegistryError::Bind {
        addr: options.listen,
        source,
    })?;
    // After the registry's own socket, so that a clash names `metrics.listen`.
    let metrics = match (metrics, config.metrics.listen.as_deref()) {
        (Some(mut m), Some(addr)) => {
            m.watch(state.clone());
            Some((Arc::new(m), metrics_listener(addr).await?))
        }
        _ => None,
    };
    if let Some(w) = auth::exposure_warning(options.listen, auth.is_some(), tls.is_some()) {
        tracing::warn!("{w}");
    }
    Ok(Server {
        listener,
        state,
        purge: config.upload_purge,
        auth,
        tls,
        limits: config.limits,
        readonly: config.readonly,
        metrics,
        gc: (config.gc.interval_secs > 0 && !config.readonly).then(|| {
            (
                Duration::from_secs(config.gc.interval_secs),
                gc_options(config),
            )
        }),
    })
}

/// Resolves and binds `metrics.listen`.
async fn metrics_listener(addr: &str) -> Result<tokio::net::TcpListener, RegistryError> {
    let fail = |source| RegistryError::MetricsBind {
        addr: addr.to_owned(),
        source,
    };
    let resolved = tokio::net::lookup_host(addr)
        .await
        .map_err(fail)?
        .next()
        .ok_or_else(|| fail(std::io::Error::other("the host has no address")))?;
    listen(resolved).map_err(fail)
}

/// What `serve --check` runs: everything [`bind`] does before it listens
/// and starts serving, without its changes to storage (no upload purge, no
/// index rebuild). It opens the htpasswd file, the TLS certificate and key,
/// the storage root (created if missing, as `bind` would) and the SQLite
/// search index; a PostgreSQL URL is read, not connected to (`serve`
/// connects at start, and a check must not reach hosts it cannot vouch for).
pub async fn check(config: &model::Config) -> Result<(), RegistryError> {
    let a = config.auth.clone();
    tokio::task::spawn_blocking(move || auth::Authenticator::load(&a))
        .await
        .map_err(|e| RegistryError::Serve(std::io::Error::other(e)))??;
    tls::acceptor(&config.tls)?;
    check_driver(&config.storage)?;
    storage::from_config(&config.storage)?;
    if let Some(url) = index::search_url(config).map_err(RegistryError::SearchBackend)? {
        index::check_url(url)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::LogSafe;

    #[test]
    fn log_values_are_escaped() {
        assert_eq!(
            LogSafe("a\nb\r\u{1b}[31m\\\u{202e}é\u{7f}").to_string(),
            r"a\nb\r\u{1b}[31m\\\u{202e}é\u{7f}"
        );
    }
}
