//! The PostgreSQL metadata index (`src/registry/index/postgres.rs`): one
//! index shared by every `serve` process on a bucket and by `regconf gc`,
//! against a real PostgreSQL server the test starts
//! (`tests/support/postgres.rs`) and a moto bucket of its own. A push or a
//! delete through A is in B's search, catalog and tags/list at once, with
//! no read of the change log; the index is built from storage once and a
//! restart uses it as it is; a server that is down or refuses the password
//! stops `serve` with one clear line.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use regconf::model;

use super::gc::regconf_gc;
use super::{Registry, config, config_file, curl, moto, push_image, start_with};
use crate::support::postgres::{PASSWORD, Postgres};

fn search(reg: &Registry, q: &str) -> Vec<String> {
    let r = curl(&[&reg.url(&format!("/v1/search?q={q}"))]);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|x| x["name"].as_str().expect("a name").to_owned())
        .collect()
}

fn catalog(reg: &Registry) -> Vec<String> {
    let r = curl(&[&reg.url("/v2/_catalog")]);
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_value(r.json()["repositories"].clone()).expect("a repository list")
}

fn tags(reg: &Registry, repo: &str) -> Vec<String> {
    let r = curl(&[&reg.url(&format!("/v2/{repo}/tags/list"))]);
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_value(r.json()["tags"].clone()).unwrap_or_default()
}

/// Listings of the change log in moto's log so far.
fn change_log_reads(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"GET ") && l.contains("_changes"))
        .count()
}

#[test]
fn two_processes_and_gc_share_one_postgres_index_built_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let log = d.join("moto.log");
    let bucket = "pg-shared";
    let moto = moto::Moto::start_logging(bucket, Some(&log));
    let pg = Postgres::start();
    let s3 = moto::settings(moto.port, bucket, "/shared");
    let with_index = |url: String| {
        let mut c = config(d);
        c.storage = model::Storage::S3(s3.clone());
        c.sqlalchemy_index_database = Some(url);
        c.loglevel = Some("warning".into());
        c
    };
    let shared = with_index(pg.url());
    // A process with an index of its own (SQLite), which writes storage
    // and the change log but not the shared index.
    let alone = || {
        start_with(with_index(format!(
            "sqlite:///{}",
            d.join("alone.db").display()
        )))
    };

    // Before any process uses the shared index: one repository in storage.
    let c = alone();
    push_image(&c, d, "early/app", "v1", 1);
    c.stop();

    // A and B start at once: one builds the index from storage, the other
    // waits for it; both see what storage held.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| start_with(shared.clone()));
        let b = start_with(shared.clone());
        (a.join().expect("start a"), b)
    });
    assert_eq!(catalog(&a), ["early/app"]);
    assert_eq!(catalog(&b), ["early/app"]);

    // A push through A is in B's answers at once, and B reads no change
    // log for them.
    push_image(&a, d, "shared/app", "v1", 2);
    let before = change_log_reads(&log);
    let t = Instant::now();
    assert_eq!(search(&b, "shared"), ["shared/app"]);
    assert_eq!(catalog(&b), ["early/app", "shared/app"]);
    assert_eq!(tags(&b, "shared/app"), ["v1"]);
    eprintln!(
        "B answered search, catalog and tags/list in {:?}",
        t.elapsed()
    );
    assert_eq!(change_log_reads(&log), before, "B read the change log");

    // A tag deleted through A: gone from B's tags/list at once; the
    // manifest stays (untagged), so search still lists the repository.
    let r = curl(&["-X", "DELETE", &a.url("/v2/shared/app/manifests/v1")]);
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(tags(&b, "shared/app"), Vec::<String>::new());
    assert_eq!(search(&b, "shared"), ["shared/app"]);

    // `regconf gc --untagged` removes the manifest: the command writes the
    // shared index itself, so B's search drops the repository at once.
    let gc_dir = d.join("gc");
    std::fs::create_dir_all(&gc_dir).expect("gc dir");
    let out = regconf_gc(
        &config_file(&shared, &gc_dir),
        &["--grace", "0", "--untagged"],
    );
    assert!(
        out.status.success(),
        "regconf gc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(search(&b, "shared"), Vec::<String>::new());

    // A restart of B uses the index as it is (no rebuild from storage): a
    // repository written meanwhile by the process with its own index is
    // in storage but not in B's catalog.
    b.stop();
    let c = alone();
    push_image(&c, d, "hidden/app", "v1", 3);
    c.stop();
    let b = start_with(shared.clone());
    let listed = catalog(&b);
    assert!(listed.contains(&"early/app".to_owned()), "{listed:?}");
    assert!(
        !listed.contains(&"hidden/app".to_owned()),
        "B rebuilt the index at its restart: {listed:?}"
    );
    // Its tags/list still answers, from storage.
    assert_eq!(tags(&b, "hidden/app"), ["v1"]);
    drop((a, b));
}

/// Runs `regconf serve` for `c` and returns its exit status and standard
/// error, failing the test if it keeps running for 30 s.
fn serve_fails(c: &model::Config, dir: &Path) -> (Option<i32>, String) {
    let file = config_file(c, dir);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_regconf"))
        .arg("serve")
        .arg(&file)
        .args([
            "--flavor",
            &c.flavor,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run regconf serve");
    let t = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if t.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("regconf serve kept running with an unusable search index");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("serve output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A diagnostic's text without its wrapping (`│` margins, line breaks).
fn flat(text: &str) -> String {
    text.split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_postgres_server_down_or_a_wrong_password_stops_serve_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let pg = Postgres::start();
    let mut c = config(d);
    c.storage = model::Storage::Local {
        storage_path: d.join("storage").display().to_string(),
    };
    c.loglevel = Some("warning".into());
    let at = format!("127.0.0.1:{}/index", pg.port);

    // `explain` shows the URL with its password masked.
    c.sqlalchemy_index_database = Some(pg.url());
    let file = config_file(&c, d);
    let out = Command::new(env!("CARGO_BIN_EXE_regconf"))
        .args(["explain", "sqlalchemy_index_database"])
        .arg(&file)
        .args(["--flavor", &c.flavor])
        .env_clear()
        .output()
        .expect("run regconf explain");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains(&at), "{text}");
    assert!(
        !text.contains(PASSWORD),
        "explain printed the password: {text}"
    );

    c.sqlalchemy_index_database = Some(pg.url().replace(PASSWORD, "wrong-password"));
    let (code, err) = serve_fails(&c, d);
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains(&at) && flat(&err).contains("password authentication failed"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-password"),
        "the password was printed: {err}"
    );

    drop(pg);
    c.sqlalchemy_index_database = Some(format!(
        "postgresql://regconf:wrong-password@{}/index",
        at.trim_end_matches("/index")
    ));
    let (code, err) = serve_fails(&c, d);
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains(&at) && flat(&err).to_lowercase().contains("connection refused"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-password"),
        "the password was printed: {err}"
    );
}

#[test]
fn migrate_v1_writes_what_it_converts_into_the_shared_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let pg = Postgres::start();
    let storage = d.join("storage");
    crate::migrate::write_local(&storage, &crate::migrate::Store { big_layer: 0 });
    let mut c = config(d);
    c.storage = model::Storage::Local {
        storage_path: storage.display().to_string(),
    };
    c.sqlalchemy_index_database = Some(pg.url());
    c.loglevel = Some("warning".into());
    // The index is built while storage holds only v1 images.
    let reg = start_with(c.clone());
    assert_eq!(catalog(&reg), Vec::<String>::new());

    let file = config_file(&c, d);
    let out = Command::new(env!("CARGO_BIN_EXE_regconf"))
        .arg("migrate-v1")
        .arg(&file)
        .args(["--flavor", &c.flavor])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run regconf migrate-v1");
    // 1: some broken v1 images of the sample store are skipped.
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The running serve reads no change log for a shared index: what it
    // lists now, migrate-v1 wrote into the index itself.
    let listed = catalog(&reg);
    assert!(listed.contains(&"team/app".to_owned()), "{listed:?}");
    assert_eq!(search(&reg, "team/app"), ["team/app"]);
    let mut t = tags(&reg, "team/app");
    t.sort();
    assert_eq!(t, ["latest", "v1"]);

    // The server gone while serve runs: catalog and tags/list answer from
    // storage, a search says 503, each within the 5 s bound of a query.
    drop(pg);
    let t = Instant::now();
    let listed = catalog(&reg);
    assert!(listed.contains(&"team/app".to_owned()), "{listed:?}");
    assert_eq!(tags(&reg, "team/app").len(), 2);
    let r = curl(&[&reg.url("/v1/search?q=team")]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
}
