//! The SQLite metadata index: one persistent file per process (or memory),
//! which the process brings up to date from the change log of storage
//! (`../store/changes.rs`) for what other processes and commands did.
//!
//! Where the file is: see [`super::locate`]. Each process holds its file
//! with an exclusive lock (`<file>.lock`); a second process on the same
//! machine uses `<file>-1.db` and so on, because each keeps its own log
//! position. A file that cannot be read as an index is removed and
//! rebuilt, with a warning; if even that fails, the index is kept in
//! memory for this run. It is rebuilt from storage only when it is
//! missing, unreadable, of another schema version, of another storage, or
//! behind a compacted log (see `storage/README.md`).
//!
//! SQLite calls block, so they run on tokio's blocking pool behind one
//! mutex (one connection). Failures after start are logged, and readers
//! get `None` so the caller can fall back to storage.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::{RepoState, display_name};

/// Schema version, in `PRAGMA user_version`; another value means rebuild.
const SCHEMA: i64 = 2;

/// How many lock-suffixed files a machine tries before keeping the index
/// in memory.
const SLOTS: usize = 8;

/// The SQLite index.
pub(crate) struct Sqlite {
    conn: Arc<Mutex<Connection>>,
    label: String,
    /// Log position saved by the last run: `None` when the index must be
    /// rebuilt (new, unreadable, another version or another storage).
    saved: Option<u128>,
    /// Held for the life of the process (see the module docs).
    _lock: Option<File>,
}

fn set_up(conn: &Connection, identity: &str) -> rusqlite::Result<Option<u128>> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == SCHEMA {
        let stored: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'storage'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let since: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'since'", [], |r| {
                r.get(0)
            })
            .optional()?;
        if stored.as_deref() == Some(identity) {
            return Ok(since.and_then(|s| s.parse().ok()));
        }
        if stored.is_some() {
            tracing::warn!("the index describes other storage; rebuilding it from storage");
        }
    } else if version != 0 {
        tracing::warn!(
            found = version,
            expected = SCHEMA,
            "the index has another schema version; rebuilding it from storage"
        );
    }
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS repository;
         DROP TABLE IF EXISTS tag;
         DROP TABLE IF EXISTS meta;
         CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;
         CREATE TABLE repository (name TEXT PRIMARY KEY NOT NULL, display TEXT NOT NULL,
                                  live INTEGER NOT NULL) WITHOUT ROWID;
         CREATE TABLE tag (repo TEXT NOT NULL, name TEXT NOT NULL,
                           PRIMARY KEY (repo, name)) WITHOUT ROWID;
         PRAGMA user_version = {SCHEMA};"
    ))?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('storage', ?1)",
        [identity],
    )?;
    Ok(None)
}

fn remove_files(p: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut f = p.as_os_str().to_owned();
        f.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(f));
    }
}

/// The file of slot `i`: `index.db`, `index-1.db`, ...
fn slot(p: &Path, i: usize) -> PathBuf {
    if i == 0 {
        return p.to_owned();
    }
    let stem = p.file_stem().unwrap_or_default().to_string_lossy();
    p.with_file_name(format!("{stem}-{i}.db"))
}

/// Takes the first free slot's lock; `None` when all are held or locks
/// cannot be made.
fn lock_slot(p: &Path) -> Option<(PathBuf, File)> {
    if let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).ok()?;
    }
    for i in 0..SLOTS {
        let db = slot(p, i);
        let mut lock = db.as_os_str().to_owned();
        lock.push(".lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(PathBuf::from(lock))
            .ok()?;
        if f.try_lock().is_ok() {
            return Some((db, f));
        }
    }
    None
}

impl Sqlite {
    /// Opens the index in the file `path` (in memory when `None`) for the
    /// storage `identity` names; never fails (see the module docs).
    pub(crate) fn open(path: Option<&Path>, identity: &str) -> Self {
        if let Some(p) = path {
            match lock_slot(p) {
                Some((db, lock)) => {
                    let label = db.display().to_string();
                    let attempt = || {
                        let c = Connection::open(&db)?;
                        let saved = set_up(&c, identity)?;
                        Ok::<_, rusqlite::Error>((c, saved))
                    };
                    let opened = attempt().or_else(|e| {
                        tracing::warn!(index = %label, error = %e, "the index file is unreadable; rebuilding it from storage");
                        remove_files(&db);
                        attempt()
                    });
                    match opened {
                        Ok((c, saved)) => {
                            return Self {
                                conn: Arc::new(Mutex::new(c)),
                                label,
                                saved,
                                _lock: Some(lock),
                            };
                        }
                        Err(e) => {
                            tracing::warn!(index = %label, error = %e, "cannot use the index file; keeping the index in memory for this run");
                        }
                    }
                }
                None => tracing::warn!(
                    index = %p.display(),
                    "cannot create or lock an index file there; keeping the index in memory for this run"
                ),
            }
        }
        let c = Connection::open_in_memory().expect("an in-memory SQLite database");
        let saved = set_up(&c, identity).expect("an in-memory SQLite schema");
        Self {
            conn: Arc::new(Mutex::new(c)),
            label: ":memory:".to_owned(),
            saved,
            _lock: None,
        }
    }

    /// Where it is, for logs.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// The log position the last run saved, if the index can be caught up.
    pub(crate) fn saved_position(&self) -> Option<u128> {
        self.saved
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
                tracing::error!(index = %self.label, error = %e, "metadata index failed");
                None
            }
            Err(e) => {
                tracing::error!(index = %self.label, error = %e, "metadata index task failed");
                None
            }
        }
    }

    /// Replaces everything with `repos`, read from storage from the log
    /// position `since` on. `false` if it failed (logged).
    pub(crate) async fn rebuild(&self, repos: Vec<RepoState>, since: u128) -> bool {
        self.run(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM repository", [])?;
            tx.execute("DELETE FROM tag", [])?;
            {
                let mut r = tx.prepare(
                    "INSERT OR REPLACE INTO repository (name, display, live) VALUES (?1, ?2, ?3)",
                )?;
                let mut t = tx.prepare("INSERT OR IGNORE INTO tag (repo, name) VALUES (?1, ?2)")?;
                for repo in &repos {
                    r.execute(params![repo.name, display_name(&repo.name), repo.live])?;
                    for tag in &repo.tags {
                        t.execute(params![repo.name, tag])?;
                    }
                }
            }
            save_since(&tx, since)?;
            tx.commit()
        })
        .await
        .is_some()
    }

    /// Records what storage says of repository `name`: absent from the
    /// catalog (`None`, its tags go too) or present, holding manifests or
    /// not.
    pub(crate) async fn set_repository(&self, name: String, live: Option<bool>) {
        self.run(move |c| {
            let tx = c.transaction()?;
            match live {
                None => {
                    tx.execute("DELETE FROM repository WHERE name = ?1", [&name])?;
                    tx.execute("DELETE FROM tag WHERE repo = ?1", [&name])?;
                }
                Some(live) => {
                    tx.execute(
                        "INSERT OR REPLACE INTO repository (name, display, live) VALUES (?1, ?2, ?3)",
                        params![name, display_name(&name), live],
                    )?;
                }
            }
            tx.commit()
        })
        .await;
    }

    /// Records tags of `repo` that exist and tags that do not.
    pub(crate) async fn set_tags(&self, repo: String, present: Vec<String>, absent: Vec<String>) {
        self.run(move |c| {
            let tx = c.transaction()?;
            {
                let mut ins =
                    tx.prepare_cached("INSERT OR IGNORE INTO tag (repo, name) VALUES (?1, ?2)")?;
                for t in &present {
                    ins.execute(params![repo, t])?;
                }
                let mut del = tx.prepare_cached("DELETE FROM tag WHERE repo = ?1 AND name = ?2")?;
                for t in &absent {
                    del.execute(params![repo, t])?;
                }
            }
            tx.commit()
        })
        .await;
    }

    /// Replaces the tags of `repo`.
    pub(crate) async fn replace_tags(&self, repo: String, tags: Vec<String>) {
        self.run(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM tag WHERE repo = ?1", [&repo])?;
            {
                let mut ins =
                    tx.prepare_cached("INSERT OR IGNORE INTO tag (repo, name) VALUES (?1, ?2)")?;
                for t in &tags {
                    ins.execute(params![repo, t])?;
                }
            }
            tx.commit()
        })
        .await;
    }

    /// Saves how far the change log has been read.
    pub(crate) async fn save_position(&self, since: u128) {
        self.run(move |c| save_since(c, since)).await;
    }

    /// One page of the catalog: names after `last`, at most `limit`.
    /// `None` when the index failed (the caller asks storage).
    pub(crate) async fn catalog(
        &self,
        last: Option<String>,
        limit: Option<usize>,
    ) -> Option<Vec<String>> {
        self.run(move |c| {
            let mut st = c.prepare_cached(
                "SELECT name FROM repository WHERE name > ?1 ORDER BY name LIMIT ?2",
            )?;
            st.query_map(params![last.unwrap_or_default(), sql_limit(limit)], |r| {
                r.get(0)
            })?
            .collect()
        })
        .await
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
        self.run(move |c| {
            let known = c
                .prepare_cached("SELECT 1 FROM repository WHERE name = ?1")?
                .exists([&repo])?;
            if !known {
                return Ok(None);
            }
            let mut st = c.prepare_cached(
                "SELECT name FROM tag WHERE repo = ?1 AND name > ?2 ORDER BY name LIMIT ?3",
            )?;
            st.query_map(
                params![repo, last.unwrap_or_default(), sql_limit(limit)],
                |r| r.get(0),
            )?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map(Some)
        })
        .await
        .flatten()
    }

    /// Display names of repositories holding manifests that contain `q`
    /// (case-insensitive), sorted by name; all when `q` is empty.
    pub(crate) async fn search(&self, q: &str) -> Option<Vec<String>> {
        let q = q.to_lowercase();
        self.run(move |c| {
            let mut st = c.prepare_cached(
                "SELECT display FROM repository WHERE live AND instr(display, ?1) > 0 ORDER BY name",
            )?;
            st.query_map([q], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await
    }
}

fn save_since(c: &Connection, since: u128) -> rusqlite::Result<()> {
    c.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('since', ?1)")?
        .execute([since.to_string()])
        .map(drop)
}

/// SQLite's `LIMIT`: negative means none.
fn sql_limit(limit: Option<usize>) -> i64 {
    limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(name: &str, live: bool, tags: &[&str]) -> RepoState {
        RepoState {
            name: name.into(),
            live,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[tokio::test]
    async fn search_catalog_and_tags() {
        let i = Sqlite::open(None, "mem");
        assert_eq!(i.saved_position(), None);
        assert!(
            i.rebuild(
                vec![
                    repo("test", true, &["a", "b", "c"]),
                    repo("a/b", true, &[]),
                    repo("empty", false, &[])
                ],
                7
            )
            .await
        );
        i.set_repository("other".into(), Some(true)).await;
        assert_eq!(
            i.search("").await.unwrap(),
            ["a/b", "library/other", "library/test"]
        );
        assert_eq!(i.search("TES").await.unwrap(), ["library/test"]);
        assert_eq!(
            i.search("library").await.unwrap(),
            ["library/other", "library/test"]
        );
        assert_eq!(
            i.catalog(Some("empty".into()), Some(2)).await.unwrap(),
            ["other", "test"]
        );
        assert_eq!(
            i.tags("test".into(), Some("a".into()), Some(1))
                .await
                .unwrap(),
            ["b"]
        );
        i.set_tags("test".into(), vec!["d".into()], vec!["a".into()])
            .await;
        assert_eq!(
            i.tags("test".into(), None, None).await.unwrap(),
            ["b", "c", "d"]
        );
        assert_eq!(i.tags("nothing".into(), None, None).await, None);
        i.set_repository("test".into(), None).await;
        assert!(i.search("test").await.unwrap().is_empty());
        assert_eq!(i.tags("test".into(), None, None).await, None);
    }

    #[test]
    fn a_file_keeps_its_position_and_a_damaged_one_is_replaced() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("i.db");
        let loc = Some(file.as_path());
        {
            let i = Sqlite::open(loc, "s");
            let rt = tokio::runtime::Runtime::new().unwrap();
            assert!(rt.block_on(i.rebuild(vec![repo("x", true, &["t"])], 42)));
        }
        assert_eq!(Sqlite::open(loc, "s").saved_position(), Some(42));
        // Other storage: rebuilt.
        assert_eq!(Sqlite::open(loc, "other").saved_position(), None);
        // A second process on the same machine takes another slot.
        let held = Sqlite::open(loc, "s");
        let second = Sqlite::open(loc, "s");
        assert!(second.label().ends_with("i-1.db"), "{}", second.label());
        drop((held, second));
        std::fs::write(d.path().join("i.db"), b"not a database at all, not at all").unwrap();
        remove_files(&d.path().join("i.db-wal"));
        let i = Sqlite::open(loc, "s");
        assert_eq!(i.saved_position(), None);
        assert!(i.label().ends_with("i.db"));
    }
}
