//! The PostgreSQL index against a real server (`tests/support/postgres.rs`).

use super::*;
use crate::registry::support::postgres::{self as server, PASSWORD};

fn repo(name: &str, live: bool, tags: &[&str]) -> RepoState {
    RepoState {
        name: name.into(),
        live,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
    }
}

fn target(url: &str) -> Target {
    Target::parse(url).unwrap().unwrap()
}

#[tokio::test]
async fn one_build_then_pages_search_and_writes_kept_apart_per_storage() {
    let pg = server::Postgres::start();
    let t = target(&pg.url());
    let i = Postgres::connect(&t, "storage-a").await.unwrap();
    let claim = i
        .claim_build()
        .await
        .unwrap()
        .expect("a new index is built");
    // Another process meanwhile waits: its claim is not granted until
    // the first is finished, and then there is nothing left to build.
    let other = Postgres::connect(&t, "storage-a").await.unwrap();
    let waiting = tokio::spawn(async move { other.claim_build().await.unwrap().is_none() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    assert!(
        claim
            .finish(vec![
                repo("test", true, &["a", "b", "c"]),
                repo("a/b", true, &[]),
                repo("empty", false, &[]),
            ])
            .await
    );
    assert!(waiting.await.unwrap());
    assert!(i.claim_build().await.unwrap().is_none());

    i.set_repository("other".into(), Some(true)).await;
    assert_eq!(
        i.search("").await.unwrap(),
        ["a/b", "library/other", "library/test"]
    );
    assert_eq!(i.search("TES").await.unwrap(), ["library/test"]);
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
    i.replace_tags("test".into(), vec!["z".into()]).await;
    assert_eq!(i.tags("test".into(), None, None).await.unwrap(), ["z"]);
    assert_eq!(i.tags("nothing".into(), None, None).await, None);

    // Another storage on the same database sees none of it.
    let b = Postgres::connect(&t, "storage-b").await.unwrap();
    assert!(b.claim_build().await.unwrap().is_some());
    assert_eq!(b.catalog(None, None).await.unwrap(), Vec::<String>::new());

    i.set_repository("test".into(), None).await;
    assert!(i.search("test").await.unwrap().is_empty());
    assert_eq!(i.tags("test".into(), None, None).await, None);
    assert!(i.take_failed().is_empty());

    // The server gone: reads answer None within the bound, writes are
    // remembered for a retry.
    drop(pg);
    let started = std::time::Instant::now();
    assert_eq!(i.catalog(None, None).await, None);
    assert_eq!(i.search("").await, None);
    i.set_repository("late".into(), Some(true)).await;
    assert_eq!(i.take_failed(), ["late"]);
    assert!(started.elapsed() < QUERY_TIMEOUT * 4);
}

#[tokio::test]
async fn a_wrong_password_or_no_server_is_one_clear_line() {
    let pg = server::Postgres::start();
    let bad = pg.url().replace(PASSWORD, "not-the-password");
    let e = Postgres::connect(&target(&bad), "s")
        .await
        .err()
        .unwrap()
        .to_string();
    let at = format!("127.0.0.1:{}/index", pg.port);
    assert!(e.contains(&at), "{e}");
    assert!(e.contains("password authentication failed"), "{e}");
    assert!(!e.contains("not-the-password") && !e.contains('\n'), "{e}");
    drop(pg);
    let e = Postgres::connect(&target(&bad), "s")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(&at) && !e.contains("not-the-password"), "{e}");
}
