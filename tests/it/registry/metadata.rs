//! The persistent metadata index (`src/registry/index/`): catalog and
//! tag pages come from it, it survives a restart and is caught up from the
//! change log (not rebuilt), several processes on one storage see each
//! other's tags, and a damaged or foreign index file is rebuilt.

use std::path::Path;
use std::time::{Duration, Instant};

use regconf::model;

use super::{Registry, config, curl, push_image, start_with};

/// A registry on the storage of `dir` with its own index file `db`.
fn serve(dir: &Path, db: &str) -> Registry {
    let mut c = config(dir);
    c.sqlalchemy_index_database = Some(format!("sqlite:///{}", dir.join(db).display()));
    c.loglevel = Some("warning".into());
    start_with(c)
}

fn tags(reg: &Registry, repo: &str) -> Vec<String> {
    let r = curl(&[&reg.url(&format!("/v2/{repo}/tags/list"))]);
    if r.status == 404 {
        return Vec::new();
    }
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_value(r.json()["tags"].clone()).expect("a tag list")
}

fn catalog(reg: &Registry) -> Vec<String> {
    let r = curl(&[&reg.url("/v2/_catalog")]);
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_value(r.json()["repositories"].clone()).expect("a repository list")
}

/// How long until `check` holds on `reg` (polled); panics after 10 s.
fn seen_within(what: &str, check: impl Fn() -> bool) -> Duration {
    let t = Instant::now();
    while !check() {
        assert!(t.elapsed() < Duration::from_secs(10), "{what}: never seen");
        std::thread::sleep(Duration::from_millis(20));
    }
    t.elapsed()
}

fn is_local(dir: &Path) -> bool {
    matches!(config(dir).storage, model::Storage::Local { .. })
}

/// The documented bound (a read of the change log at most every 0.5 s)
/// plus room for a loaded machine's requests.
const BOUND: Duration = Duration::from_secs(2);

#[test]
fn a_tag_pushed_or_deleted_through_one_process_is_seen_by_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let a = serve(d, "a.db");
    let b = serve(d, "b.db");
    push_image(&a, d, "shared/app", "v1", 1);
    let (_, v2) = push_image(&a, d, "shared/app", "v2", 2);
    let t = seen_within("push through A, in B's tags/list", || {
        tags(&b, "shared/app") == ["v1", "v2"]
    });
    assert!(t < BOUND, "seen after {t:?}");
    // tags/list may have answered from storage (a repository B's index did
    // not know yet); the catalog is the index's alone.
    let t = seen_within("push through A, in B's catalog", || {
        catalog(&b).contains(&"shared/app".to_owned())
    });
    assert!(t < BOUND, "seen after {t:?}");

    // A tag deleted through A.
    let del = curl(&["-X", "DELETE", &a.url("/v2/shared/app/manifests/v1")]);
    assert_eq!(del.status, 202, "{}", del.text());
    let t = seen_within("tag delete through A, in B", || {
        tags(&b, "shared/app") == ["v2"]
    });
    assert!(t < BOUND, "seen after {t:?}");

    // A manifest deleted by digest through B takes its tags with it, in A.
    let del = curl(&[
        "-X",
        "DELETE",
        &b.url(&format!("/v2/shared/app/manifests/{v2}")),
    ]);
    assert_eq!(del.status, 202, "{}", del.text());
    assert!(tags(&b, "shared/app").is_empty());
    let t = seen_within("manifest delete through B, in A", || {
        tags(&a, "shared/app").is_empty()
    });
    assert!(t < BOUND, "seen after {t:?}");
    a.stop();
    b.stop();
}

#[test]
fn the_index_survives_a_restart_and_is_caught_up_from_what_changed_meanwhile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let a = serve(d, "a.db");
    push_image(&a, d, "kept", "v1", 1);
    push_image(&a, d, "kept", "v2", 2);
    a.stop();

    // While A is down, another process changes the storage.
    let b = serve(d, "b.db");
    push_image(&b, d, "arrived", "new", 3);
    let del = curl(&["-X", "DELETE", &b.url("/v2/kept/manifests/v1")]);
    assert_eq!(del.status, 202, "{}", del.text());
    b.stop();

    // And something the change log never heard of: a repository copied
    // into the folder by hand. A restart that rebuilt the index would list
    // it; one caught up from the log does not.
    if is_local(d) {
        let repos = d.join("storage/repositories");
        copy_dir(&repos.join("arrived"), &repos.join("by-hand"));
    }

    let a = serve(d, "a.db");
    assert_eq!(tags(&a, "kept"), ["v2"]);
    assert_eq!(tags(&a, "arrived"), ["new"]);
    assert_eq!(catalog(&a), ["arrived", "kept"]);
    // Storage still answers for what the index does not know.
    if is_local(d) {
        assert_eq!(tags(&a, "by-hand"), ["new"]);
    }
    let r = curl(&[&a.url("/v1/search?q=arrived")]);
    assert!(r.text().contains("library/arrived"), "{}", r.text());
    a.stop();

    // Without its file, the index is built from storage, copy included.
    if is_local(d) {
        std::fs::remove_file(d.join("a.db")).expect("remove the index");
        for f in ["a.db-wal", "a.db-shm"] {
            let _ = std::fs::remove_file(d.join(f));
        }
        let a = serve(d, "a.db");
        assert_eq!(catalog(&a), ["arrived", "by-hand", "kept"]);
        a.stop();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

#[test]
fn a_damaged_or_foreign_index_file_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let a = serve(d, "index.db");
    push_image(&a, d, "first", "v1", 1);
    a.stop();

    for junk in [
        &b"not a database"[..],
        &[0u8; 8192][..],
        b"SQLite format 3\0garbage",
    ] {
        std::fs::write(d.join("index.db"), junk).expect("damage the index");
        let _ = std::fs::remove_file(d.join("index.db-wal"));
        let a = serve(d, "index.db");
        assert_eq!(catalog(&a), ["first"]);
        assert_eq!(tags(&a, "first"), ["v1"]);
        a.stop();
    }

    // The same index file met with other storage: rebuilt for that one.
    let other = tempfile::tempdir().expect("tempdir");
    let mut c = config(other.path());
    c.sqlalchemy_index_database = Some(format!("sqlite:///{}", d.join("index.db").display()));
    let b = start_with(c);
    assert!(catalog(&b).is_empty());
    b.stop();
    let a = serve(d, "index.db");
    assert_eq!(catalog(&a), ["first"]);
    a.stop();
}

also_on_s3!(
    a_tag_pushed_or_deleted_through_one_process_is_seen_by_another,
    the_index_survives_a_restart_and_is_caught_up_from_what_changed_meanwhile,
    a_damaged_or_foreign_index_file_is_rebuilt,
);

/// Writes `repositories/<name>` with one manifest and `tags` directly
/// into local storage (as another program would).
fn write_repository(storage: &Path, name: &str, tags: &[String]) {
    let base = storage.join("repositories").join(name).join("_manifests");
    let hex = "ab".repeat(32);
    let rev = base.join("revisions/sha256").join(&hex);
    std::fs::create_dir_all(&rev).expect("mkdir");
    std::fs::write(
        rev.join("link"),
        "application/vnd.oci.image.manifest.v1+json",
    )
    .expect("link");
    std::fs::create_dir_all(base.join("tags")).expect("mkdir");
    for t in tags {
        std::fs::write(base.join("tags").join(t), format!("sha256:{hex}")).expect("tag");
    }
}

/// Follows `Link` headers from `first` with page size `n`; returns the
/// items of every page, checking each page's size and its link.
fn walk_pages(reg: &Registry, first: &str, key: &str, n: usize) -> Vec<String> {
    let mut all = Vec::new();
    let mut path = format!("{first}?n={n}");
    loop {
        let r = curl(&[&reg.url(&path)]);
        assert_eq!(r.status, 200, "{}", r.text());
        let page: Vec<String> = serde_json::from_value(r.json()[key].clone()).expect("a list");
        all.extend(page.iter().cloned());
        match r.header("link") {
            Some(link) => {
                assert_eq!(page.len(), n, "a page with a next link is full");
                let last = page.last().expect("a full page has a last item");
                assert_eq!(link, format!("<{first}?n={n}&last={last}>; rel=\"next\""));
                path = link[1..link.find('>').expect("<...>")].to_owned();
            }
            None => {
                assert!(page.len() <= n);
                return all;
            }
        }
    }
}

#[test]
fn catalog_and_tag_pages_match_a_direct_listing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let storage = d.join("storage");
    let mut names: Vec<String> = (0..120).map(|i| format!("ns{}/repo-{i}", i % 3)).collect();
    names.push("zz".into());
    names.push("a".into());
    let many: Vec<String> = (0..150).map(|i| format!("t{i}")).collect();
    for n in &names {
        write_repository(&storage, n, &["latest".to_owned()]);
    }
    write_repository(&storage, "big", &many);
    names.push("big".into());
    names.sort();
    let mut sorted_tags = many.clone();
    sorted_tags.sort();

    let reg = serve(d, "index.db");
    for n in [7, 100, 1000] {
        assert_eq!(walk_pages(&reg, "/v2/_catalog", "repositories", n), names);
        assert_eq!(
            walk_pages(&reg, "/v2/big/tags/list", "tags", n),
            sorted_tags
        );
    }
    // `last` is exclusive and need not be a listed name.
    let r = curl(&[&reg.url("/v2/_catalog?n=2&last=ns1/repo-100")]);
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["ns1/repo-103", "ns1/repo-106"])
    );
    let r = curl(&[&reg.url("/v2/_catalog?n=2&last=ns1/repo-100x")]);
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["ns1/repo-103", "ns1/repo-106"])
    );
    let r = curl(&[&reg.url("/v2/big/tags/list?last=t98")]);
    assert_eq!(r.json()["tags"], serde_json::json!(["t99"]));
    assert_eq!(r.header("link"), None);
    // n=0: an empty page and no link; no n: everything.
    let r = curl(&[&reg.url("/v2/_catalog?n=0")]);
    assert_eq!(r.json()["repositories"], serde_json::json!([]));
    assert_eq!(r.header("link"), None);
    assert_eq!(catalog(&reg), names);
    // An unknown repository is still unknown.
    let r = curl(&[&reg.url("/v2/nothing/tags/list")]);
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "NAME_UNKNOWN");

    // A push lands at its place in the pages at once.
    push_image(&reg, d, "ns1/repo-100a", "v1", 1);
    let r = curl(&[&reg.url("/v2/_catalog?n=2&last=ns1/repo-100")]);
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["ns1/repo-100a", "ns1/repo-103"])
    );
    reg.stop();
}
