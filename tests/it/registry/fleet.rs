//! What a fleet of `serve` processes on one bucket costs in storage
//! requests, counted from the request log of a moto server of the test's
//! own: a search costs a constant number of requests whatever the number of
//! repositories (it reads the change log, not the bucket), and a push or a
//! delete through one process is seen by another's search within a second.
//! The idle refresh (every minute) is the same read as a search's.

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use object_store::{ObjectStoreExt, PutPayload};

use super::{Registry, curl, moto, push_image, start_with};

/// Repositories written into the bucket before the processes start.
const REPOSITORIES: usize = 1_000;

/// Requests in moto's log so far (one line per request).
fn requests(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            ["\"GET ", "\"PUT ", "\"HEAD ", "\"POST ", "\"DELETE "]
                .iter()
                .any(|m| l.contains(m))
        })
        .count()
}

/// Writes `REPOSITORIES` repositories, each with one manifest revision
/// link, straight into the bucket (as pushes would have left them).
fn seed(port: u16, bucket: &str, prefix: &str) {
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{port}"))
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .expect("s3 client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let hex = "ab".repeat(32);
        futures::stream::iter(0..REPOSITORIES)
            .map(|i| {
                let key = object_store::path::Path::from(format!(
                    "{prefix}/repositories/seeded/r{i:04}/_manifests/revisions/sha256/{hex}/link"
                ));
                let store = &store;
                let hex = &hex;
                async move {
                    store
                        .put(&key, PutPayload::from(format!("sha256:{hex}")))
                        .await
                        .expect("seed a repository")
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
    });
}

fn search(reg: &Registry, q: &str) -> serde_json::Value {
    let r = curl(&[&reg.url(&format!("/v1/search?q={q}"))]);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Polls `reg`'s search for `q` until `found` says so; returns how long it
/// took, failing after 5 s.
fn seen_within(reg: &Registry, q: &str, found: impl Fn(&serde_json::Value) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if found(&search(reg, q)) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the other process's search never saw the change"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_search_costs_the_same_with_a_thousand_repositories_and_sees_other_processes_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let log = d.join("moto.log");
    let bucket = "fleet";
    let moto = moto::Moto::start_logging(bucket, Some(&log));
    seed(moto.port, bucket, "fleet");
    let serve = |db: &str| {
        let mut c = super::config(d);
        c.storage = regconf::model::Storage::S3(moto::settings(moto.port, bucket, "/fleet"));
        c.sqlalchemy_index_database = Some(format!("sqlite:///{}", d.join(db).display()));
        c.loglevel = Some("warning".into());
        start_with(c)
    };
    // Both start at once (each builds its index from the bucket).
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| serve("a.db"));
        let b = serve("b.db");
        (a.join().expect("start a"), b)
    });
    assert_eq!(
        search(&b, "seeded")["num_results"],
        REPOSITORIES,
        "the index was not built from the bucket at start"
    );

    // A search after a quiet moment: the change log is read, not the
    // 1,000 repositories (which cost about two LISTs each before).
    std::thread::sleep(Duration::from_millis(600));
    let before = requests(&log);
    search(&b, "seeded");
    let cost = requests(&log) - before;
    assert!(cost <= 2, "one search cost {cost} storage requests");

    // A push through A is found by B's search within a second.
    push_image(&a, d, "fleet/newcomer", "v1", 1);
    let push_seen = seen_within(&b, "newcomer", |j| j["num_results"] == 1);
    assert!(
        push_seen < Duration::from_secs(1),
        "seen after {push_seen:?}"
    );

    // A delete that empties the repository, likewise.
    let manifest = curl(&[
        "-I",
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &a.url("/v2/fleet/newcomer/manifests/v1"),
    ]);
    let digest = manifest
        .header("docker-content-digest")
        .expect("digest")
        .to_owned();
    let del = curl(&[
        "-X",
        "DELETE",
        &a.url(&format!("/v2/fleet/newcomer/manifests/{digest}")),
    ]);
    assert_eq!(del.status, 202, "{}", del.text());
    let delete_seen = seen_within(&b, "newcomer", |j| j["num_results"] == 0);
    assert!(
        delete_seen < Duration::from_secs(1),
        "seen after {delete_seen:?}"
    );
    drop((a, b));
}
