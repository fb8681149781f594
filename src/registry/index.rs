//! The search index behind `/v1/search`: repository names in SQLite.
//!
//! The database lives at the path of the `sqlalchemy_index_database` URL
//! (`sqlite:////abs/path`, `sqlite:///relative/path`, `sqlite://` for an
//! in-memory database), as docker-registry's SQLAlchemy index did. It is
//! rebuilt from storage at start and kept current by the store on every
//! manifest push and delete, so it is a cache of storage, never the truth.
//!
//! Several processes on one bucket (object-store drivers) each keep their
//! own SQLite index; none sees the others' pushes directly. So every
//! manifest push, and every delete that empties a repository, also appends
//! a small object to a change log in the bucket (`store/changes.rs`), and
//! each process reads the log: every
//! [`SEARCH_REFRESH_INTERVAL`](super::SEARCH_REFRESH_INTERVAL) while idle,
//! and before a `/v1/search` when the last read is older than half a second.
//! A read is one `LIST` of what is new, whatever the number of repositories,
//! so a repository pushed through another process is found within a second.
//! This was chosen over a shared PostgreSQL index: no server to run, and the
//! bucket stays the only shared state. An index URL other than `sqlite:`
//! (such as `postgresql://`) is still refused at start.
//!
//! SQLite calls block, so they run on tokio's blocking pool behind one
//! mutex (one connection; the index is tiny and writes are rare). Index
//! failures after start are logged, not returned: a stale search result is
//! better than a failed push.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

/// Why the index could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The URL is not a SQLite URL.
    #[error(
        "unsupported search index database `{0}`: only `sqlite:` urls (`sqlite:////absolute/path`, `sqlite:///relative/path`) are supported"
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
}

/// Where a SQLAlchemy SQLite URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// An in-memory database.
    Memory,
    /// A database file.
    File(PathBuf),
}

/// Reads `sqlite:///path` URLs as SQLAlchemy does: what follows the third
/// `/` is the path, so four slashes make it absolute. The path is taken as
/// it is: `serve` expanded `~` and `$VAR` in it from the environment the
/// flavor was resolved in.
pub(crate) fn parse_url(url: &str) -> Result<Location, IndexError> {
    let rest = url
        .strip_prefix("sqlite://")
        .ok_or_else(|| IndexError::Scheme(url.to_owned()))?;
    if rest.is_empty() || rest == "/:memory:" {
        return Ok(Location::Memory);
    }
    let path = rest
        .strip_prefix('/')
        .ok_or_else(|| IndexError::Scheme(url.to_owned()))?;
    if path.is_empty() {
        return Err(IndexError::Scheme(url.to_owned()));
    }
    Ok(Location::File(PathBuf::from(path)))
}

/// The name shown for a repository: top-level ones under `library/`.
pub(crate) fn display_name(repo: &str) -> String {
    if repo.contains('/') {
        repo.to_owned()
    } else {
        format!("library/{repo}")
    }
}

/// The repository index.
pub(crate) struct Index {
    conn: Arc<Mutex<Connection>>,
    label: String,
}

impl Index {
    /// Opens (creating) the database the URL names.
    pub(crate) fn open(url: &str) -> Result<Self, IndexError> {
        let location = parse_url(url)?;
        let label = match &location {
            Location::Memory => ":memory:".to_owned(),
            Location::File(p) => p.display().to_string(),
        };
        let err = |source| IndexError::Sqlite {
            path: label.clone(),
            source,
        };
        let conn = match &location {
            Location::Memory => Connection::open_in_memory(),
            Location::File(p) => {
                if let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
                    // Best effort; `open` reports the real problem if any.
                    let _ = std::fs::create_dir_all(parent);
                }
                Connection::open(p)
            }
        }
        .map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             CREATE TABLE IF NOT EXISTS repository (name TEXT PRIMARY KEY NOT NULL);",
        )
        .map_err(err)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            label,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Option<T> {
        let conn = self.conn.clone();
        let r = tokio::task::spawn_blocking(move || {
            let mut c = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut c)
        })
        .await;
        match r {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::error!(index = %self.label, error = %e, "search index update failed");
                None
            }
            Err(e) => {
                tracing::error!(index = %self.label, error = %e, "search index task failed");
                None
            }
        }
    }

    /// Replaces the whole index with `repos`.
    pub(crate) async fn rebuild(&self, repos: Vec<String>) -> Result<(), IndexError> {
        let conn = self.conn.clone();
        let label = self.label.clone();
        let r = tokio::task::spawn_blocking(move || {
            let mut c = conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let tx = c.transaction()?;
            tx.execute("DELETE FROM repository", [])?;
            {
                let mut ins = tx.prepare("INSERT OR IGNORE INTO repository (name) VALUES (?1)")?;
                for r in &repos {
                    ins.execute([r])?;
                }
            }
            tx.commit()
        })
        .await;
        match r {
            Ok(r) => r.map_err(|source| IndexError::Sqlite {
                path: label,
                source,
            }),
            Err(e) => Err(IndexError::Sqlite {
                path: label,
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            }),
        }
    }

    /// Records a repository.
    pub(crate) async fn add(&self, repo: String) {
        self.run(move |c| {
            c.prepare_cached("INSERT OR IGNORE INTO repository (name) VALUES (?1)")?
                .execute([repo])
        })
        .await;
    }

    /// Forgets a repository.
    pub(crate) async fn remove(&self, repo: String) {
        self.run(move |c| {
            c.prepare_cached("DELETE FROM repository WHERE name = ?1")?
                .execute([repo])
        })
        .await;
    }

    /// Display names containing `q` (case-insensitive), sorted; all when
    /// `q` is empty.
    pub(crate) async fn search(&self, q: &str) -> Vec<String> {
        let q = q.to_lowercase();
        self.run(move |c| {
            let mut st = c.prepare_cached(
                "SELECT name FROM repository
                 WHERE instr(CASE WHEN instr(name, '/') = 0 THEN 'library/' || name ELSE name END, ?1) > 0
                 ORDER BY name",
            )?;
            let names = st
                .query_map([q], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(names.iter().map(|n| display_name(n)).collect())
        })
        .await
        .unwrap_or_default()
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
        assert!(matches!(
            parse_url("postgresql://u@h/db"),
            Err(IndexError::Scheme(_))
        ));
    }

    #[tokio::test]
    async fn search() {
        let i = Index::open("sqlite://").unwrap();
        i.rebuild(vec!["test".into(), "a/b".into()]).await.unwrap();
        i.add("other".into()).await;
        assert_eq!(i.search("").await, ["a/b", "library/other", "library/test"]);
        assert_eq!(i.search("TES").await, ["library/test"]);
        assert_eq!(i.search("library").await, ["library/other", "library/test"]);
        i.remove("test".into()).await;
        assert!(i.search("test").await.is_empty());
    }
}
