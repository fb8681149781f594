//! The search index (`search_backend`, `sqlalchemy_index_database`), judged
//! twice: as docker-registry 0.9.1 read it (`sqlalchemy`, or any importable
//! module with an `Index` class; the database any SQLAlchemy URL), and as
//! `serve` runs it (`sqlalchemy` over SQLite or PostgreSQL), the latter through
//! [`Conv::capability`]. It decides no default.

use super::{Conv, Mode, Sec};
use crate::config::env::Given;
use crate::diagnostics::Severity;

/// Whether `s` can name a Python module (`pkg.module`), which 0.9.1 imported.
fn is_module_name(s: &str) -> bool {
    s.split('.').all(|part| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Whether `s` has the `dialect[+driver]://` shape SQLAlchemy parses.
fn is_database_url(s: &str) -> bool {
    let Some((scheme, _)) = s.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-_.".contains(c))
}

impl Conv<'_> {
    /// The search index of a flavor.
    pub(super) fn search(&mut self, top: &Sec<'_>, backend: Option<&str>, database: Option<&str>) {
        let Some(backend) = backend else { return };
        let at_backend = top.path_of("search_backend");
        if !backend.eq_ignore_ascii_case("sqlalchemy") {
            if !is_module_name(backend) {
                self.report(
                    "regconf::search::backend_name",
                    Severity::Error,
                    &at_backend,
                    format!("`search_backend` `{backend}` is neither `sqlalchemy` nor a Python module name: docker-registry failed to import it at start"),
                    "not a module name",
                    "write `sqlalchemy`, the dotted name of an installed module with an `Index` class (`docker_registry_index.dynamodb`), or leave it empty for no /v1/search",
                );
                return;
            }
            self.capability(
                "regconf::serve::search_backend",
                &at_backend,
                format!("`regconf serve` cannot use the search back end `{backend}`: its search index is `sqlalchemy` over SQLite or PostgreSQL"),
                "a Python module",
                "for `serve`, write `search_backend: sqlalchemy` with a `sqlite://` database, or leave it empty for no /v1/search".to_owned(),
            );
            return;
        }
        let at_database = top.path_of("sqlalchemy_index_database");
        match database.map(str::trim) {
            None | Some("") => self.missing_database(top),
            Some(db) if !is_database_url(db) => self.report(
                "regconf::search::database_url",
                Severity::Error,
                &at_database,
                format!("`sqlalchemy_index_database` `{db}` is not a database URL: SQLAlchemy refused it at start"),
                "not `dialect://...`",
                "write a URL such as `sqlite:////var/lib/registry/index.db` (four slashes for an absolute path) or `postgresql://user@host/db`",
            ),
            Some(db) if crate::model::is_postgres_url(db) => {
                if let Some(problem) = crate::model::postgres_url_problem(db) {
                    self.capability(
                        "regconf::serve::search_database",
                        &at_database,
                        format!("`regconf serve` cannot use this PostgreSQL search index: {problem}"),
                        "not usable by `serve`",
                        "for `serve`, write `postgresql://user:password@host:port/database` (`sslmode=disable` or `prefer`), or `sqlite:////absolute/path.db`".to_owned(),
                    );
                }
            }
            Some(db) if !db.starts_with("sqlite://") => {
                let scheme = db.split_once("://").map_or(db, |(s, _)| s);
                self.capability(
                    "regconf::serve::search_database",
                    &at_database,
                    format!("`regconf serve` keeps its search index only in SQLite or PostgreSQL, not in a `{scheme}` database"),
                    "not `sqlite://...` nor `postgresql://...`",
                    "for `serve`, write `sqlite:////absolute/path.db` (four slashes for an absolute path) or `postgresql://user:password@host:port/database`".to_owned(),
                );
            }
            Some(db) => {
                let path = db.trim_start_matches("sqlite:///");
                self.expansion(&at_database, path);
            }
        }
    }

    /// `search_backend: sqlalchemy` with no database: 0.9.1 handed `None`
    /// to SQLAlchemy and failed at start. Statically, a variable with no
    /// default that would give it is only a note.
    fn missing_database(&mut self, top: &Sec<'_>) {
        let at_database = top.path_of("sqlalchemy_index_database");
        let prov = self.prov;
        let from_unset = prov
            .get(&at_database)
            .and_then(|o| o.env.as_ref())
            .filter(|e| e.given == Given::Unset && self.mode == Mode::Static);
        if let Some(e) = from_unset {
            self.report(
                "regconf::env::required_unset",
                Severity::Advice,
                &at_database,
                format!("`sqlalchemy_index_database` comes from `{}`, which has no default: set it, or the search index (`search_backend: sqlalchemy`) cannot start", e.name),
                "required",
                format!("set `{}` when using this flavor, or write a default: `_env:{}:sqlite:////tmp/docker-registry.db`", e.name, e.name),
            );
            return;
        }
        self.report(
            "regconf::search::missing_database",
            Severity::Error,
            &top.path_of("search_backend"),
            "`search_backend` is `sqlalchemy`, but `sqlalchemy_index_database` is not set: docker-registry 0.9.1 failed at start with no database".to_owned(),
            "the search index is chosen here",
            "add `sqlalchemy_index_database: sqlite:////var/lib/registry/index.db` (any SQLAlchemy URL; `_env:NAME` reads it from a variable), or leave `search_backend` empty for no /v1/search",
        );
    }
}
