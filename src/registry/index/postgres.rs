//! The PostgreSQL metadata index: one database shared by every `serve`
//! process on a storage, and by `gc` and `migrate-v1`, each writing its
//! own changes into it as it makes them, so a push through one process is
//! in every other's catalog, tags/list and search at once, and nobody
//! reads the change log for it.
//!
//! Tables (created if absent, under a transaction-scoped advisory lock so
//! that processes starting together do not race): `regconf_index_meta`
//! (the schema version), `regconf_storage` (one row per storage identity,
//! `../mod.rs`'s [`super::identity`], and whether its index has been built),
//! `regconf_repository` and `regconf_tag`, both keyed by that row, so two
//! registries on one database never mix. Names use the `"C"` collation:
//! pages are ordered by bytes, as on SQLite and in storage.
//!
//! Building: a storage's rows are built from storage once, when its
//! `regconf_storage` row says it is not built. The process that takes the
//! storage's session advisory lock builds (on a connection taken out of
//! the pool, so a process that dies or fails mid-build releases the lock
//! by closing it); the others wait for it at start and then use the rows
//! as they are. A populated index is never rebuilt.
//!
//! Failures: every call is bounded ([`QUERY_TIMEOUT`], also the server's
//! `statement_timeout`; the pool's waits and connects too). A failed read
//! answers `None` (catalog and tags/list go to storage, search answers
//! 503); a failed write is logged and its repository remembered, and the
//! store writes it again from storage on its next refresh
//! ([`Postgres::take_failed`]).
//!
//! TLS: none. `sslmode=disable` or `prefer` (the default) connect in plain
//! text; `require` is refused at start with a message, as there is no TLS
//! client here: put the database on loopback, a private network or a
//! tunnel.
//!
//! This module must not read storage nor decide what a repository holds.

use std::collections::BTreeSet;
use std::str::FromStr as _;
use std::sync::Mutex;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::config::{Host, SslMode};

use super::{IndexError, RepoState, display_name, redact};
use crate::model;

/// Schema version, in `regconf_index_meta`; another one is refused.
const SCHEMA: &str = "1";

/// The longest any one call may take (connect, wait for the pool, query).
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per process: a few requests at once, no more.
const POOL_SIZE: usize = 4;

/// Advisory lock keys: this one for the schema, plus the storage's row id
/// for its build ("regc" in the high half).
const LOCK_BASE: i64 = 0x7265_6763 << 32;

/// Rows sent per statement by a build.
const BATCH: usize = 10_000;

/// A PostgreSQL URL, read.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The URL as tokio-postgres reads it (password included).
    url: String,
    /// `host:port/database`, for messages.
    at: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.at)
    }
}

impl Target {
    /// Reads `postgresql://`, `postgres://` and SQLAlchemy's
    /// `postgresql+<driver>://` URLs; `Ok(None)` for other schemes.
    pub(crate) fn parse(url: &str) -> Result<Option<Self>, IndexError> {
        if !model::is_postgres_url(url) {
            return Ok(None);
        }
        let Some((_, rest)) = url.split_once("://") else {
            return Ok(None);
        };
        let bad = |reason: String| IndexError::PostgresUrl {
            url: redact(url),
            reason,
        };
        if let Some(problem) = model::postgres_url_problem(url) {
            return Err(bad(problem));
        }
        let normalized = format!("postgresql://{rest}");
        let config = tokio_postgres::Config::from_str(&normalized)
            .map_err(|e| bad(format!("not a PostgreSQL URL ({e})")))?;
        if !matches!(config.get_ssl_mode(), SslMode::Disable | SslMode::Prefer) {
            return Err(bad("`sslmode` asks for TLS, which regconf's PostgreSQL client does not speak: use `sslmode=disable` (or `prefer`)".to_owned()));
        }
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => {
                return Err(bad(
                    "no host: write `postgresql://user:password@host:port/database`".to_owned(),
                ));
            }
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let db = config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or_default();
        Ok(Some(Self {
            url: normalized,
            at: format!("{host}:{port}/{db}"),
        }))
    }

    /// `host:port/database`.
    #[cfg(test)]
    pub(crate) fn at(&self) -> &str {
        &self.at
    }
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("{0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("{0}")]
    Other(String),
}

/// One line of `e`: the server's own message when it answered, else the
/// chain of causes (`error connecting to server: Connection refused`).
fn one_line(e: &Failure) -> String {
    let client = match e {
        Failure::Db(e) | Failure::Pool(deadpool_postgres::PoolError::Backend(e)) => Some(e),
        _ => None,
    };
    let text = match client {
        Some(e) => match e.as_db_error() {
            Some(d) => format!("{}: {}", d.severity(), d.message()),
            None => {
                let mut text = e.to_string();
                let mut cause = std::error::Error::source(e);
                while let Some(c) = cause {
                    text.push_str(": ");
                    text.push_str(&c.to_string());
                    cause = c.source();
                }
                text
            }
        },
        None => match e {
            Failure::Pool(deadpool_postgres::PoolError::Timeout(_)) => {
                format!("no connection within {} s", QUERY_TIMEOUT.as_secs())
            }
            other => other.to_string(),
        },
    };
    text.replace(['\n', '\r'], " ")
}

/// The shared index of one storage.
pub(crate) struct Postgres {
    pool: Pool,
    /// The storage's row in `regconf_storage`.
    storage: i64,
    label: String,
    /// Repositories whose writes failed (see the module docs).
    failed: Mutex<BTreeSet<String>>,
}

/// The right to build a storage's index: its advisory lock, held on a
/// connection of its own; dropping it closes the connection, which
/// releases the lock.
pub(crate) struct BuildClaim {
    client: deadpool_postgres::ClientWrapper,
    storage: i64,
    label: String,
}

impl Postgres {
    /// Connects, creates the schema if absent and finds (or adds) the
    /// storage `identity` names.
    pub(crate) async fn connect(target: &Target, identity: &str) -> Result<Self, IndexError> {
        let fail = |reason: String| IndexError::Postgres {
            at: target.at.clone(),
            reason,
        };
        let mut config = tokio_postgres::Config::from_str(&target.url)
            .map_err(|e| fail(format!("not a PostgreSQL URL ({e})")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(QUERY_TIMEOUT);
        }
        config.application_name("regconf");
        config.options(format!(
            "-c statement_timeout={}",
            QUERY_TIMEOUT.as_millis()
        ));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(QUERY_TIMEOUT))
            .create_timeout(Some(QUERY_TIMEOUT))
            .recycle_timeout(Some(QUERY_TIMEOUT))
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let setup = async {
            let mut c = pool.get().await?;
            let tx = c.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_BASE])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS regconf_index_meta (
                     key text PRIMARY KEY, value text NOT NULL)",
            )
            .await?;
            tx.execute(
                "INSERT INTO regconf_index_meta (key, value) VALUES ('schema', $1)
                 ON CONFLICT (key) DO NOTHING",
                &[&SCHEMA],
            )
            .await?;
            let version: String = tx
                .query_one(
                    "SELECT value FROM regconf_index_meta WHERE key = 'schema'",
                    &[],
                )
                .await?
                .get(0);
            if version != SCHEMA {
                return Err(Failure::Other(format!(
                    "the database holds a regconf index of schema version {version}, this regconf writes version {SCHEMA}: use another database"
                )));
            }
            tx.batch_execute(
                r#"CREATE TABLE IF NOT EXISTS regconf_storage (
                     id bigserial PRIMARY KEY,
                     identity text NOT NULL UNIQUE,
                     built boolean NOT NULL DEFAULT false);
                   CREATE TABLE IF NOT EXISTS regconf_repository (
                     storage bigint NOT NULL REFERENCES regconf_storage (id) ON DELETE CASCADE,
                     name text COLLATE "C" NOT NULL,
                     display text COLLATE "C" NOT NULL,
                     live boolean NOT NULL,
                     PRIMARY KEY (storage, name));
                   CREATE TABLE IF NOT EXISTS regconf_tag (
                     storage bigint NOT NULL REFERENCES regconf_storage (id) ON DELETE CASCADE,
                     repo text COLLATE "C" NOT NULL,
                     name text COLLATE "C" NOT NULL,
                     PRIMARY KEY (storage, repo, name));"#,
            )
            .await?;
            tx.execute(
                "INSERT INTO regconf_storage (identity) VALUES ($1) ON CONFLICT (identity) DO NOTHING",
                &[&identity],
            )
            .await?;
            let id: i64 = tx
                .query_one(
                    "SELECT id FROM regconf_storage WHERE identity = $1",
                    &[&identity],
                )
                .await?
                .get(0);
            tx.commit().await?;
            Ok::<_, Failure>(id)
        };
        let storage = match tokio::time::timeout(QUERY_TIMEOUT * 2, setup).await {
            Ok(Ok(id)) => id,
            Ok(Err(e)) => return Err(fail(one_line(&e))),
            Err(_) => return Err(fail("no answer within 10 s".to_owned())),
        };
        Ok(Self {
            pool,
            storage,
            label: format!("postgresql://{}", target.at),
            failed: Mutex::new(BTreeSet::new()),
        })
    }

    /// Where it is, for logs.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// Runs `f` within [`QUERY_TIMEOUT`]; `None` (logged) if it failed.
    async fn timed<T>(&self, what: &str, f: impl Future<Output = Result<T, Failure>>) -> Option<T> {
        match tokio::time::timeout(QUERY_TIMEOUT, f).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::error!(index = %self.label, error = %one_line(&e), "metadata index {what} failed");
                None
            }
            Err(_) => {
                tracing::error!(index = %self.label, "metadata index {what} timed out");
                None
            }
        }
    }

    /// A write of `repo`: on failure, remembered for [`Self::take_failed`].
    async fn write(&self, repo: &str, f: impl Future<Output = Result<(), Failure>>) {
        if self.timed("write", f).await.is_none() {
            self.failed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(repo.to_owned());
        }
    }

    /// Repositories whose writes failed since the last call.
    pub(crate) fn take_failed(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .failed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_iter()
        .collect()
    }

    /// `None` when the storage's index is built; else, once no other
    /// process is building it, the right to build it. A failure (the
    /// server gone since `connect`) is an error: serving an index that was
    /// never built would answer an empty catalog.
    pub(crate) async fn claim_build(&self) -> Result<Option<BuildClaim>, IndexError> {
        let mut told = false;
        loop {
            let attempt = async {
                let c = self.pool.get().await?;
                let row = c
                    .query_one(
                        "SELECT built FROM regconf_storage WHERE id = $1",
                        &[&self.storage],
                    )
                    .await?;
                if row.get::<_, bool>(0) {
                    return Ok(Some(None));
                }
                let key = LOCK_BASE + self.storage;
                let got: bool = c
                    .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
                    .await?
                    .get(0);
                if !got {
                    return Ok(None);
                }
                // Taken out of the pool: the lock lives as long as it.
                let client = deadpool_postgres::Object::take(c);
                let row = client
                    .query_one(
                        "SELECT built FROM regconf_storage WHERE id = $1",
                        &[&self.storage],
                    )
                    .await?;
                if row.get::<_, bool>(0) {
                    return Ok(Some(None));
                }
                Ok::<_, Failure>(Some(Some(client)))
            };
            let outcome = match tokio::time::timeout(QUERY_TIMEOUT, attempt).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(e)) => return Err(self.failed_at_start(&one_line(&e))),
                Err(_) => return Err(self.failed_at_start("no answer within 5 s")),
            };
            match outcome {
                Some(claim) => {
                    return Ok(claim.map(|client| BuildClaim {
                        client,
                        storage: self.storage,
                        label: self.label.clone(),
                    }));
                }
                None => {
                    if !told {
                        tracing::info!(index = %self.label, "another process is building the shared metadata index; waiting for it");
                        told = true;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }

    fn failed_at_start(&self, reason: &str) -> IndexError {
        IndexError::Postgres {
            at: self.label.trim_start_matches("postgresql://").to_owned(),
            reason: reason.to_owned(),
        }
    }

    /// Adds `repos` (a rebuild: rows already there stay, so a write of
    /// another process meanwhile is not undone). `false` if it failed.
    pub(crate) async fn add_all(&self, repos: Vec<RepoState>) -> bool {
        let f = async {
            let mut c = self.pool.get().await?;
            let tx = c.transaction().await?;
            insert_all(&tx, self.storage, &repos).await?;
            tx.commit().await?;
            Ok(())
        };
        self.timed("build", f).await.is_some()
    }

    /// See [`super::Index::set_repository`].
    pub(crate) async fn set_repository(&self, name: String, live: Option<bool>) {
        let f = async {
            let mut c = self.pool.get().await?;
            let tx = c.transaction().await?;
            match live {
                None => {
                    tx.execute(
                        "DELETE FROM regconf_repository WHERE storage = $1 AND name = $2",
                        &[&self.storage, &name],
                    )
                    .await?;
                    tx.execute(
                        "DELETE FROM regconf_tag WHERE storage = $1 AND repo = $2",
                        &[&self.storage, &name],
                    )
                    .await?;
                }
                Some(live) => {
                    tx.execute(
                        "INSERT INTO regconf_repository (storage, name, display, live)
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (storage, name) DO UPDATE SET live = EXCLUDED.live",
                        &[&self.storage, &name, &display_name(&name), &live],
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(())
        };
        self.write(&name, f).await;
    }

    /// See [`super::Index::set_tags`].
    pub(crate) async fn set_tags(&self, repo: String, present: Vec<String>, absent: Vec<String>) {
        let f = async {
            let mut c = self.pool.get().await?;
            let tx = c.transaction().await?;
            tx.execute(
                "INSERT INTO regconf_tag (storage, repo, name)
                 SELECT $1, $2, t FROM unnest($3::text[]) AS u(t)
                 ON CONFLICT DO NOTHING",
                &[&self.storage, &repo, &present],
            )
            .await?;
            tx.execute(
                "DELETE FROM regconf_tag WHERE storage = $1 AND repo = $2 AND name = ANY($3)",
                &[&self.storage, &repo, &absent],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        };
        self.write(&repo, f).await;
    }

    /// See [`super::Index::replace_tags`].
    pub(crate) async fn replace_tags(&self, repo: String, tags: Vec<String>) {
        let f = async {
            let mut c = self.pool.get().await?;
            let tx = c.transaction().await?;
            tx.execute(
                "DELETE FROM regconf_tag WHERE storage = $1 AND repo = $2",
                &[&self.storage, &repo],
            )
            .await?;
            tx.execute(
                "INSERT INTO regconf_tag (storage, repo, name)
                 SELECT $1, $2, t FROM unnest($3::text[]) AS u(t)
                 ON CONFLICT DO NOTHING",
                &[&self.storage, &repo, &tags],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        };
        self.write(&repo, f).await;
    }

    /// See [`super::Index::catalog`].
    pub(crate) async fn catalog(
        &self,
        last: Option<String>,
        limit: Option<usize>,
    ) -> Option<Vec<String>> {
        let f = async {
            let c = self.pool.get().await?;
            let st = c
                .prepare_cached(
                    "SELECT name FROM regconf_repository WHERE storage = $1 AND name > $2
                     ORDER BY name LIMIT $3",
                )
                .await?;
            let rows = c
                .query(
                    &st,
                    &[&self.storage, &last.unwrap_or_default(), &sql_limit(limit)],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        };
        self.timed("read", f).await
    }

    /// See [`super::Index::tags`].
    pub(crate) async fn tags(
        &self,
        repo: String,
        last: Option<String>,
        limit: Option<usize>,
    ) -> Option<Vec<String>> {
        let f = async {
            let c = self.pool.get().await?;
            let known = c
                .query_opt(
                    "SELECT 1 FROM regconf_repository WHERE storage = $1 AND name = $2",
                    &[&self.storage, &repo],
                )
                .await?
                .is_some();
            if !known {
                return Ok(None);
            }
            let st = c
                .prepare_cached(
                    "SELECT name FROM regconf_tag WHERE storage = $1 AND repo = $2 AND name > $3
                     ORDER BY name LIMIT $4",
                )
                .await?;
            let rows = c
                .query(
                    &st,
                    &[
                        &self.storage,
                        &repo,
                        &last.unwrap_or_default(),
                        &sql_limit(limit),
                    ],
                )
                .await?;
            Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
        };
        self.timed("read", f).await.flatten()
    }

    /// See [`super::Index::search`].
    pub(crate) async fn search(&self, q: &str) -> Option<Vec<String>> {
        let q = q.to_lowercase();
        let f = async {
            let c = self.pool.get().await?;
            let rows = c
                .query(
                    "SELECT display FROM regconf_repository
                     WHERE storage = $1 AND live AND strpos(display, $2) > 0 ORDER BY name",
                    &[&self.storage, &q],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        };
        self.timed("search", f).await
    }
}

impl BuildClaim {
    /// Records `repos` as the storage's index, marks it built and releases
    /// the claim. `false` if it failed (logged; the next start builds).
    pub(crate) async fn finish(mut self, repos: Vec<RepoState>) -> bool {
        let f = async {
            let tx = self.client.transaction().await?;
            insert_all(&tx, self.storage, &repos).await?;
            tx.execute(
                "UPDATE regconf_storage SET built = true WHERE id = $1",
                &[&self.storage],
            )
            .await?;
            tx.commit().await?;
            self.client
                .execute(
                    "SELECT pg_advisory_unlock($1)",
                    &[&(LOCK_BASE + self.storage)],
                )
                .await?;
            Ok::<_, Failure>(())
        };
        // A build is as long as the number of rows; bound it by that.
        let rows = repos.len() + repos.iter().map(|r| r.tags.len()).sum::<usize>();
        let bound = QUERY_TIMEOUT * u32::try_from(1 + rows / BATCH).unwrap_or(u32::MAX);
        match tokio::time::timeout(bound, f).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::error!(index = %self.label, error = %one_line(&e), "building the shared metadata index failed");
                false
            }
            Err(_) => {
                tracing::error!(index = %self.label, "building the shared metadata index timed out");
                false
            }
        }
    }
}

/// Inserts `repos` and their tags, in batches, keeping rows already there.
async fn insert_all(
    tx: &deadpool_postgres::Transaction<'_>,
    storage: i64,
    repos: &[RepoState],
) -> Result<(), Failure> {
    for chunk in repos.chunks(BATCH) {
        let names: Vec<&str> = chunk.iter().map(|r| r.name.as_str()).collect();
        let displays: Vec<String> = chunk.iter().map(|r| display_name(&r.name)).collect();
        let live: Vec<bool> = chunk.iter().map(|r| r.live).collect();
        tx.execute(
            "INSERT INTO regconf_repository (storage, name, display, live)
             SELECT $1, n, d, l FROM unnest($2::text[], $3::text[], $4::bool[]) AS u(n, d, l)
             ON CONFLICT (storage, name) DO NOTHING",
            &[&storage, &names, &displays, &live],
        )
        .await?;
    }
    let pairs: Vec<(&str, &str)> = repos
        .iter()
        .flat_map(|r| r.tags.iter().map(|t| (r.name.as_str(), t.as_str())))
        .collect();
    for chunk in pairs.chunks(BATCH) {
        let repo: Vec<&str> = chunk.iter().map(|p| p.0).collect();
        let tag: Vec<&str> = chunk.iter().map(|p| p.1).collect();
        tx.execute(
            "INSERT INTO regconf_tag (storage, repo, name)
             SELECT $1, r, t FROM unnest($2::text[], $3::text[]) AS u(r, t)
             ON CONFLICT DO NOTHING",
            &[&storage, &repo, &tag],
        )
        .await?;
    }
    Ok(())
}

/// PostgreSQL's `LIMIT`: `NULL` means none.
fn sql_limit(limit: Option<usize>) -> Option<i64> {
    limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;
