//! `regconf serve`: resolve a flavor and run the registry it describes.
//!
//! The registry receives the typed model only; this module turns problems at
//! start (an unsupported driver, a bad search database, a busy port) into
//! diagnostics that point at the setting responsible. `--check` stops
//! before listening, after opening what serve opens (like `nginx -t`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use std::io::Write;

use super::{ConfigArgs, Context, SetArgs};
use crate::config::{Provenance, Resolved, Source, Span, origin::dotted, typed};
use crate::diagnostics::{Diagnostic, Severity};
use crate::inspect::explain;
use crate::model;
use crate::registry::{self, IndexError, RegistryError, ServeOptions, storage::DriverError};

/// Arguments of `regconf serve`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    set: SetArgs,
    /// Print secrets (keys, passwords) in messages and logs as they are
    #[arg(long)]
    show_secrets: bool,
    /// Address to listen on [default: $REGISTRY_HOST:$REGISTRY_PORT, else
    /// 127.0.0.1:5000]
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Check that serve can run the flavor (settings, drivers, search
    /// index, the files it opens) and exit 0 or 1, without listening
    #[arg(long)]
    check: bool,
}

/// Variables for the listening address, the names docker-registry used.
const REGISTRY_HOST: &str = "REGISTRY_HOST";
const REGISTRY_PORT: &str = "REGISTRY_PORT";

pub(super) fn listen_address(
    ctx: &Context,
    listen: Option<&str>,
) -> Result<SocketAddr, Diagnostic> {
    let text = match listen {
        Some(l) => l.to_owned(),
        None => {
            // Unlike docker-registry (0.0.0.0), the host defaults to loopback:
            // a registry without authentication should not face a network
            // unless asked to.
            let host = ctx
                .env
                .get(REGISTRY_HOST)
                .filter(|h| !h.is_empty())
                .unwrap_or("127.0.0.1");
            let port = ctx
                .env
                .get(REGISTRY_PORT)
                .filter(|p| !p.is_empty())
                .unwrap_or("5000");
            if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            }
        }
    };
    text.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            Diagnostic::error(
                "regconf::serve::listen_address",
                format!("cannot listen on `{text}`: not a HOST:PORT address"),
            )
            .help("write it as `127.0.0.1:5000` or `[::1]:5000`")
        })
}

/// Where a top-level key is set in the file: the `_env:` reference or the
/// value.
fn site(prov: &Provenance, key: &str) -> Option<Span> {
    let o = prov.get_dotted(key)?;
    o.env.as_ref().map(|e| e.reference).or(o.value_span)
}

pub(super) fn start_problem(
    err: &RegistryError,
    file: &Arc<Source>,
    prov: &Provenance,
) -> Diagnostic {
    let at = |d: Diagnostic, key: &str, text: &str| match site(prov, key) {
        Some(span) => d.with_source(file).label(span, text),
        None => d,
    };
    match err {
        RegistryError::Storage(DriverError::Unsupported(driver)) => at(
            Diagnostic::error(
                "regconf::serve::unsupported_driver",
                format!("`serve` cannot run the `{driver}` storage driver"),
            )
            .help("serve runs `local`, `s3` (and S3-compatible stores), `gcs` and `azureblob`; `validate` and `render` handle every driver"),
            "storage",
            "this driver",
        ),
        RegistryError::Storage(e) => at(
            Diagnostic::error("regconf::serve::storage", plain(&e.to_string()))
                .help("check the storage settings of this flavor with `regconf validate --flavor`"),
            if site(prov, "storage_path").is_some() { "storage_path" } else { "storage" },
            "",
        ),
        RegistryError::Index(IndexError::Postgres { .. }) => at(
            Diagnostic::error("regconf::serve::search_index", plain(&err.to_string()))
                .help("check that the PostgreSQL server runs at that address and accepts the URL's user and password (`sqlalchemy_index_database: postgresql://user:password@host:port/database`)"),
            "sqlalchemy_index_database",
            "",
        ),
        RegistryError::Index(_) | RegistryError::SearchBackend(_) => at(
            Diagnostic::error("regconf::serve::search_index", plain(&err.to_string()))
                .help("use `search_backend: sqlalchemy` with `sqlalchemy_index_database: sqlite:////absolute/path.db` or `postgresql://user:password@host:port/database`, or leave search_backend empty"),
            "sqlalchemy_index_database",
            "",
        ),
        RegistryError::Bind { .. } => Diagnostic::error("regconf::serve::listen", plain(&err.to_string()))
            .help("choose another port with `--listen HOST:PORT`"),
        RegistryError::MetricsBind { .. } => at(
            Diagnostic::error("regconf::serve::listen", plain(&err.to_string()))
                .help("choose another address for `metrics.listen` (it must differ from the registry's)"),
            "metrics.listen",
            "this address",
        ),
        other => Diagnostic::error("regconf::serve::start", plain(&other.to_string())),
    }
}

/// Operating-system messages in regconf's style: lowercase, no error number.
fn plain(message: &str) -> String {
    let mut out = message.to_owned();
    while let Some(start) = out.find(" (os error ") {
        let end = out[start..].find(')').map_or(out.len(), |e| start + e + 1);
        out.replace_range(start..end, "");
    }
    for phrase in [
        "No such file or directory",
        "Permission denied",
        "Address already in use",
        "Not a directory",
        "File exists",
        "Read-only file system",
        "No space left on device",
    ] {
        out = out.replace(phrase, &phrase.to_lowercase());
    }
    out
}

/// Settings the registry accepts but does not act on, named once at start.
fn inert_settings(m: &model::Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let set = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
    if set(&m.mirroring.source_index) {
        out.push("mirroring.source_index");
    }
    if set(&m.cache.host) {
        out.push("cache.host");
    }
    if set(&m.cache_lru.host) {
        out.push("cache_lru.host");
    }
    if set(&m.email_exceptions.smtp_host) {
        out.push("email_exceptions.smtp_host");
    }
    if set(&m.bugsnag) {
        out.push("bugsnag");
    }
    if set(&m.privileged_key) {
        out.push("privileged_key");
    }
    if m.disable_token_auth {
        out.push("disable_token_auth");
    }
    if !m.standalone && set(&m.index_endpoint) {
        out.push("index_endpoint");
    }
    if set(&m.nginx_x_accel_redirect) {
        out.push("nginx_x_accel_redirect");
    }
    out
}

/// The texts of the secret settings of a flavor (what `serve` masks).
fn secret_values(resolved: &Resolved) -> Vec<String> {
    let mut out = Vec::new();
    explain::leaves(&resolved.config, &mut Vec::new(), &mut |p, v| {
        // A password inside a URL (`postgresql://user:password@host/db`).
        if let crate::config::Value::Str(s) = v
            && let Some(pw) = crate::model::url_password(s)
        {
            out.push(pw.to_owned());
        }
        if crate::model::is_secret(&dotted(p)) && v.is_truthy() {
            let text = match v {
                crate::config::Value::Str(s) => s.clone(),
                other => crate::config::render::to_json(other),
            };
            out.push(text);
        }
    });
    // Longer first, so that a secret holding another is masked whole.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

fn mask(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_owned(), |t, s| {
        t.replace(s.as_str(), crate::model::MASK)
    })
}

/// `source` with every secret's text replaced by as many `*` bytes, so the
/// snippets a diagnostic prints hide them while its spans still fit. Texts
/// under four bytes are left (masking every `1` or `on` of a file would hide
/// the file, and such a text hides nothing); the renderer masks the values
/// of secret keys whatever their length.
fn mask_source(source: &Arc<Source>, secrets: &[String]) -> Arc<Source> {
    let long: Vec<&String> = secrets.iter().filter(|s| s.len() >= 4).collect();
    if !long.iter().any(|s| source.text().contains(s.as_str())) {
        return Arc::clone(source);
    }
    let text = long.iter().fold(source.text().to_owned(), |t, s| {
        t.replace(s.as_str(), &"*".repeat(s.len()))
    });
    Source::new(source.name(), text)
}

/// Log lines on stderr with the flavor's secrets masked.
#[derive(Clone)]
struct MaskedStderr(Arc<Vec<String>>);

impl Write for MaskedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = mask(&String::from_utf8_lossy(buf), &self.0);
        std::io::stderr().write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Runs `regconf serve`.
pub(super) fn run(ctx: &Context, args: &Args) -> u8 {
    let Some((source, resolved)) = ctx.resolve(&args.config, &args.set.set, &ctx.env) else {
        return 1;
    };
    let secrets = if args.show_secrets {
        Vec::new()
    } else {
        secret_values(&resolved)
    };
    let report = |diags: Vec<Diagnostic>| {
        let masked: Vec<Diagnostic> = diags
            .into_iter()
            .map(|mut d| {
                d.message = mask(&d.message, &secrets);
                for l in &mut d.labels {
                    l.text = mask(&l.text, &secrets);
                }
                d.help = d.help.map(|h| mask(&h, &secrets));
                d.source = d.source.map(|s| mask_source(&s, &secrets));
                d
            })
            .collect();
        ctx.report(&masked);
    };
    let (mut model, diags) = typed::to_model(&resolved, &source, typed::Mode::Serve(&ctx.env));
    let errors: Vec<Diagnostic> = diags.iter().filter(|d| d.is_error()).cloned().collect();
    if !errors.is_empty() {
        report(if args.check {
            // errors and warnings: notes are for `validate`
            diags
                .into_iter()
                .filter(|d| d.severity > Severity::Advice)
                .collect()
        } else {
            errors
        });
        return 1;
    }
    // The registry opens the files the checks above read, its storage and
    // its index: the same paths, expanded from the same snapshot of the
    // environment (the registry reads no environment).
    for path in [
        &mut model.auth.htpasswd,
        &mut model.tls.certificate,
        &mut model.tls.key,
    ] {
        if let Some(p) = path.as_mut() {
            *p = ctx.env.expand_path(p);
        }
    }
    if let crate::model::Storage::Local { storage_path } = &mut model.storage {
        *storage_path = ctx.env.expand_path(storage_path);
    }
    if let Some(url) = model.sqlalchemy_index_database.as_mut()
        && let Some(path) = url.strip_prefix("sqlite:///")
        && !path.is_empty()
        && path != ":memory:"
    {
        *url = format!("sqlite:///{}", ctx.env.expand_path(path));
    }
    let listen = match listen_address(ctx, args.listen.as_deref()) {
        Ok(a) => a,
        Err(d) => {
            report(vec![d]);
            return 1;
        }
    };
    if args.check {
        let warnings: Vec<Diagnostic> = diags
            .into_iter()
            .filter(|d| d.severity == Severity::Warning)
            .collect();
        report(warnings);
        return match check(&model, &source, &resolved) {
            Ok(()) => {
                eprintln!(
                    "{}: flavor `{}` can be served (storage `{}`, listening on {listen})",
                    source.name(),
                    model.flavor,
                    model.storage.driver()
                );
                0
            }
            Err(d) => {
                report(vec![d]);
                1
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report(vec![Diagnostic::error(
                "regconf::serve::start",
                format!("cannot start the runtime: {e}"),
            )]);
            return 1;
        }
    };
    // The registry's own subscriber, writing through the mask.
    let writer = MaskedStderr(Arc::new(secrets.clone()));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(registry::log_filter(
            &model,
        )))
        .with_writer(move || writer.clone())
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    registry::init_logging(&model);
    let inert = inert_settings(&model);
    if !inert.is_empty() {
        tracing::warn!("set but not acted on by `serve`: {}", inert.join(", "));
    }
    let result = runtime.block_on(async {
        let server = registry::bind(&model, ServeOptions { listen }).await?;
        let scheme = if model.tls.enabled() { "https" } else { "http" };
        tracing::info!(
            "regconf serve: flavor `{}` from `{}`, listening on {scheme}://{}",
            model.flavor,
            source.name(),
            server.local_addr()
        );
        server.run(shutdown_signal()).await
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            report(vec![start_problem(&e, &source, &resolved.provenance)]);
            1
        }
    }
}

/// `serve --check`: what `serve` opens before it listens, opened; the
/// verdict on stderr, like `nginx -t`.
fn check(
    model: &model::Config,
    source: &Arc<Source>,
    resolved: &Resolved,
) -> Result<(), Diagnostic> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Diagnostic::error(
                "regconf::serve::start",
                format!("cannot start the runtime: {e}"),
            )
        })?
        .block_on(registry::check(model))
        .map_err(|e| start_problem(&e, source, &resolved.provenance))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
