//! The metadata index: repositories and their tags, answering
//! `/v2/_catalog`, `/v2/<name>/tags/list` and `/v1/search` in time
//! proportional to the page (keyset pagination: `WHERE name > ?last ORDER
//! BY name LIMIT n`), whatever the number of repositories or tags.
//!
//! It is a cache of storage, never the truth: the store writes through it
//! on every push and delete. Two back ends, one API ([`Index`]):
//!
//! * SQLite (`sqlite.rs`), one per process: a persistent file (or memory)
//!   that each process brings up to date from the change log of storage
//!   (`../store/changes.rs`) for what other processes and commands did.
//! * PostgreSQL (`postgres.rs`), one for every process on a storage
//!   (`sqlalchemy_index_database: postgresql://...` with `search_backend:
//!   sqlalchemy`): each process, `gc` and `migrate-v1` write their own
//!   changes straight into it, so nothing reads the change log for the
//!   index ([`Index::is_shared`]); it is built from storage once, by one
//!   process, when it is new.
//!
//! Where the index is ([`locate`]): the `sqlalchemy_index_database` URL
//! when search is on (docker-registry's setting for its index; `sqlite://`
//! keeps it in memory and rebuilds at every start); otherwise, for local
//! storage, `<storage_path>/_index/index.db` (it travels with the data it
//! describes, needs no other writable folder, and a process that finds it
//! reads the log of that same folder), and for object stores a file of
//! this machine, `<cache dir>/regconf/index-<hash of the storage>.db`
//! (`$XDG_CACHE_HOME` or `~/.cache` on Linux; also where a read-only
//! `serve` on local storage keeps it, as it writes nothing under the
//! root; in memory when there is no such folder). A configured
//! `sqlalchemy_index_database` that cannot be opened at all (a path in a
//! folder that cannot be created, a PostgreSQL server that cannot be
//! reached or refuses the credentials) is refused at start.
//!
//! This module must not read storage (the store does) nor decide what a
//! repository holds. Failures after start are logged, and readers get
//! `None` so the caller can fall back to storage (or answer 503 for a
//! search, which storage cannot answer cheaply).

mod postgres;
mod sqlite;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::Digest as _;

use crate::model;

pub(crate) use postgres::BuildClaim;

/// Why the index cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The URL is neither a SQLite nor a PostgreSQL URL.
    #[error(
        "unsupported search index database `{0}`: only `sqlite:` urls (`sqlite:////absolute/path`, `sqlite:///relative/path`) and `postgresql://user:password@host:port/database` urls are supported"
    )]
    Scheme(String),
    /// SQLite refused.
    #[error("search index `{path}`: {source}")]
    Sqlite {
        /// The database path.
        path: String,
        /// The cause.
        source: rusqlite::Error,
    },
    /// Opening the index did not finish.
    #[error("search index: {0}")]
    Task(String),
    /// The PostgreSQL URL cannot be used as written.
    #[error("search index database `{url}`: {reason}")]
    PostgresUrl {
        /// The URL, its password masked.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// PostgreSQL could not be reached, refused the login, or failed
    /// setting the index up.
    #[error("search index database at `{at}`: {reason}")]
    Postgres {
        /// `host:port/database`.
        at: String,
        /// The cause, one line.
        reason: String,
    },
}

/// Where the index is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// An in-memory SQLite database.
    Memory,
    /// A SQLite database file.
    File(PathBuf),
    /// A PostgreSQL database, shared by every process.
    Postgres(postgres::Target),
}

/// `url` with the password of its user part, if any, masked, for
/// messages and logs.
pub(crate) fn redact(url: &str) -> String {
    match model::url_password(url) {
        Some(pw) => url.replacen(&format!(":{pw}@"), &format!(":{}@", model::MASK), 1),
        None => url.to_owned(),
    }
}

/// Reads a SQLAlchemy URL: `sqlite:///path` as SQLAlchemy does (what
/// follows the third `/` is the path, so four slashes make it absolute;
/// `serve` expanded `~` and `$VAR` in it already), and
/// `postgresql[+driver]://` or `postgres://` (see `postgres.rs`).
pub(crate) fn parse_url(url: &str) -> Result<Location, IndexError> {
    if let Some(target) = postgres::Target::parse(url)? {
        return Ok(Location::Postgres(target));
    }
    let rest = url
        .strip_prefix("sqlite://")
        .ok_or_else(|| IndexError::Scheme(redact(url)))?;
    if rest.is_empty() || rest == "/:memory:" {
        return Ok(Location::Memory);
    }
    let path = rest
        .strip_prefix('/')
        .ok_or_else(|| IndexError::Scheme(redact(url)))?;
    if path.is_empty() {
        return Err(IndexError::Scheme(redact(url)));
    }
    Ok(Location::File(PathBuf::from(path)))
}

/// What `serve --check` does with the search URL: parse it and open the
/// file (as `serve` would); a PostgreSQL URL is only parsed here (`serve`
/// connects at start).
pub(crate) fn check_url(url: &str) -> Result<(), IndexError> {
    if let Location::File(p) = parse_url(url)? {
        if let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(parent);
        }
        rusqlite::Connection::open(&p).map_err(|source| IndexError::Sqlite {
            path: p.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

/// What identifies a storage: its settings without credentials. Stored in
/// the index, so an index file met with other storage is rebuilt, and a
/// shared database keeps the indexes of several storages apart.
pub(crate) fn identity(storage: &model::Storage) -> String {
    let mut v = serde_json::to_value(storage).unwrap_or_default();
    if let serde_json::Value::Object(m) = &mut v {
        m.retain(|k, _| {
            ![
                "key",
                "secret",
                "pass",
                "token",
                "credential",
                "account_key",
            ]
            .iter()
            .any(|s| k.contains(s))
        });
    }
    if let model::Storage::Local { storage_path } = storage {
        let abs = std::fs::canonicalize(storage_path)
            .map_or_else(|_| storage_path.clone(), |p| p.display().to_string());
        v = serde_json::json!({ "storage": "local", "storage_path": abs });
    }
    v.to_string()
}

/// Where the index of `storage` lives (see the module docs); `search_url`
/// is the `sqlalchemy_index_database` URL when search is on. A read-only
/// `serve` writes nothing under a local storage root, so its index goes to
/// the cache folder as an object store's does.
pub(crate) fn locate(
    storage: &model::Storage,
    search_url: Option<&str>,
    readonly: bool,
) -> Result<Location, IndexError> {
    if let Some(url) = search_url {
        return parse_url(url);
    }
    Ok(match storage {
        model::Storage::Local { storage_path } if !readonly => Location::File(
            Path::new(storage_path)
                .join(crate::registry::layout::INDEX_DIR)
                .join("index.db"),
        ),
        other => match dirs::cache_dir() {
            Some(dir) => {
                let hash = sha2::Sha256::digest(identity(other).as_bytes());
                Location::File(
                    dir.join("regconf")
                        .join(format!("index-{}.db", hex::encode(&hash[..8]))),
                )
            }
            None => Location::Memory,
        },
    })
}

/// The search URL of `config` when search is on (`search_backend:
/// sqlalchemy`), with docker-registry's default database; `Err` with the
/// back end's name when it is another one.
pub(crate) fn search_url(config: &model::Config) -> Result<Option<&str>, String> {
    match config.search_backend.as_deref() {
        None | Some("") => Ok(None),
        Some("sqlalchemy") => Ok(Some(
            config
                .sqlalchemy_index_database
                .as_deref()
                .unwrap_or("sqlite:////tmp/docker-registry.db"),
        )),
        Some(other) => Err(other.to_owned()),
    }
}

/// The shared index `config` names, for commands other than `serve`
/// (`gc`, `migrate-v1`): they write their changes into it as `serve`
/// does. `None` when the index is per process (those learn from the
/// change log).
pub(crate) async fn shared(config: &model::Config) -> Result<Option<Arc<Index>>, IndexError> {
    let Ok(Some(url)) = search_url(config) else {
        return Ok(None);
    };
    match parse_url(url)? {
        Location::Postgres(target) => {
            let pg = postgres::Postgres::connect(&target, &identity(&config.storage)).await?;
            Ok(Some(Arc::new(Index(Backend::Postgres(pg)))))
        }
        _ => Ok(None),
    }
}

/// The name shown for a repository: top-level ones under `library/`.
pub(crate) fn display_name(repo: &str) -> String {
    if repo.contains('/') {
        repo.to_owned()
    } else {
        format!("library/{repo}")
    }
}

/// One repository as a rebuild records it.
pub(crate) struct RepoState {
    /// Its name.
    pub(crate) name: String,
    /// Whether it holds a manifest (search lists only those).
    pub(crate) live: bool,
    /// Its tags.
    pub(crate) tags: Vec<String>,
}

enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

/// The metadata index.
pub(crate) struct Index(Backend);

impl Index {
    /// Opens the index at `location` for the storage `identity` names. A
    /// SQLite index never fails (see `sqlite.rs`); a PostgreSQL one fails
    /// when the server cannot be reached or set up.
    pub(crate) async fn open(location: Location, identity: String) -> Result<Self, IndexError> {
        let path = match location {
            Location::Postgres(target) => {
                let pg = postgres::Postgres::connect(&target, &identity).await?;
                return Ok(Self(Backend::Postgres(pg)));
            }
            Location::File(p) => Some(p),
            Location::Memory => None,
        };
        let opened =
            tokio::task::spawn_blocking(move || sqlite::Sqlite::open(path.as_deref(), &identity))
                .await
                .map_err(|e| IndexError::Task(e.to_string()))?;
        Ok(Self(Backend::Sqlite(opened)))
    }

    /// Where it is, for logs (no password).
    pub(crate) fn label(&self) -> &str {
        match &self.0 {
            Backend::Sqlite(s) => s.label(),
            Backend::Postgres(p) => p.label(),
        }
    }

    /// Whether every process writes into this same index, so none reads
    /// the change log for it.
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self.0, Backend::Postgres(_))
    }

    /// The log position the last run saved, if the index can be caught up
    /// (a per-process index only).
    pub(crate) fn saved_position(&self) -> Option<u128> {
        match &self.0 {
            Backend::Sqlite(s) => s.saved_position(),
            Backend::Postgres(_) => None,
        }
    }

    /// A shared index: `None` when it is built already; else the right to
    /// build it, once every other process that holds it has finished (see
    /// `postgres.rs`). A per-process index: `None`.
    pub(crate) async fn claim_build(&self) -> Result<Option<BuildClaim>, IndexError> {
        match &self.0 {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(p) => p.claim_build().await,
        }
    }

    /// Repositories whose index writes failed since the last call (a
    /// shared index, which no log read repairs): the store writes them
    /// again from storage.
    pub(crate) fn take_failed(&self) -> Vec<String> {
        match &self.0 {
            Backend::Sqlite(_) => Vec::new(),
            Backend::Postgres(p) => p.take_failed(),
        }
    }

    /// Replaces everything with `repos`, read from storage from the log
    /// position `since` on. `false` if it failed (logged).
    pub(crate) async fn rebuild(&self, repos: Vec<RepoState>, since: u128) -> bool {
        match &self.0 {
            Backend::Sqlite(s) => s.rebuild(repos, since).await,
            Backend::Postgres(p) => p.add_all(repos).await,
        }
    }

    /// Records what storage says of repository `name`: absent from the
    /// catalog (`None`, its tags go too) or present, holding manifests or
    /// not.
    pub(crate) async fn set_repository(&self, name: String, live: Option<bool>) {
        match &self.0 {
            Backend::Sqlite(s) => s.set_repository(name, live).await,
            Backend::Postgres(p) => p.set_repository(name, live).await,
        }
    }

    /// Records tags of `repo` that exist and tags that do not.
    pub(crate) async fn set_tags(&self, repo: String, present: Vec<String>, absent: Vec<String>) {
        match &self.0 {
            Backend::Sqlite(s) => s.set_tags(repo, present, absent).await,
            Backend::Postgres(p) => p.set_tags(repo, present, absent).await,
        }
    }

    /// Replaces the tags of `repo`.
    pub(crate) async fn replace_tags(&self, repo: String, tags: Vec<String>) {
        match &self.0 {
            Backend::Sqlite(s) => s.replace_tags(repo, tags).await,
            Backend::Postgres(p) => p.replace_tags(repo, tags).await,
        }
    }

    /// Saves how far the change log has been read (a per-process index).
    pub(crate) async fn save_position(&self, since: u128) {
        if let Backend::Sqlite(s) = &self.0 {
            s.save_position(since).await;
        }
    }

    /// One page of the catalog: names after `last`, at most `limit`.
    /// `None` when the index failed (the caller asks storage).
    pub(crate) async fn catalog(
        &self,
        last: Option<String>,
        limit: Option<usize>,
    ) -> Option<Vec<String>> {
        match &self.0 {
            Backend::Sqlite(s) => s.catalog(last, limit).await,
            Backend::Postgres(p) => p.catalog(last, limit).await,
        }
    }

    /// One page of `repo`'s tags: names after `last`, at most `limit`.
    /// `None` when the repository is not in the index or the index failed
    /// (the caller asks storage, which also decides "unknown").
    pub(crate) async fn tags(
        &self,
        repo: String,
        last: Option<String>,
        limit: Option<usize>,
    ) -> Option<Vec<String>> {
        match &self.0 {
            Backend::Sqlite(s) => s.tags(repo, last, limit).await,
            Backend::Postgres(p) => p.tags(repo, last, limit).await,
        }
    }

    /// Display names of repositories holding manifests that contain `q`
    /// (case-insensitive), sorted by name; all when `q` is empty. `None`
    /// when the index failed.
    pub(crate) async fn search(&self, q: &str) -> Option<Vec<String>> {
        match &self.0 {
            Backend::Sqlite(s) => s.search(q).await,
            Backend::Postgres(p) => p.search(q).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("sqlite:////tmp/x.db").unwrap(),
            Location::File("/tmp/x.db".into())
        );
        assert_eq!(
            parse_url("sqlite:///rel/x.db").unwrap(),
            Location::File("rel/x.db".into())
        );
        assert_eq!(parse_url("sqlite://").unwrap(), Location::Memory);
        for url in [
            "postgresql://u:pw@h:5433/db",
            "postgres://u:pw@h:5433/db",
            "postgresql+psycopg2://u:pw@h:5433/db",
        ] {
            let Location::Postgres(t) = parse_url(url).unwrap() else {
                panic!("{url}")
            };
            assert_eq!(t.at(), "h:5433/db", "{url}");
        }
        let e = parse_url("mysql://u:hunter2@h/db").unwrap_err().to_string();
        assert!(e.contains("mysql://u:********@h/db"), "{e}");
        let e = parse_url("postgresql://u:hunter2@h/db?sslmode=require")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslmode") && !e.contains("hunter2"), "{e}");
        let e = parse_url("postgresql://db/registry")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no user"), "{e}");
        assert!(parse_url("postgresql://u@h/db?sslmode=disable").is_ok());
    }

    #[test]
    fn passwords_are_found_and_masked() {
        assert_eq!(
            model::url_password("postgresql://u:p%40ss@h/db"),
            Some("p%40ss")
        );
        assert_eq!(model::url_password("postgresql://u@h/db"), None);
        assert_eq!(model::url_password("sqlite:////tmp/a@b:c"), None);
        assert_eq!(
            redact("postgresql://u:secret@h:1/db?x=1"),
            "postgresql://u:********@h:1/db?x=1"
        );
    }
}
