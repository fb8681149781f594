//! Two `serve` processes on one moto bucket: what one caches is never
//! served longer than the documented bound after the other changed it. On
//! shared storage a process keeps a repository's links and tags while it
//! reads the change log recently enough, else for at most
//! `MEMBERSHIP_TTL` (1 s, `src/registry/store/mod.rs`), so a tag moved,
//! a manifest deleted or a blob deleted through A (or blob data removed by
//! a separate `regconf gc`) is seen by B within 1 s of A's answer, and by
//! A itself at once; and reads spaced further apart than that cost B no
//! storage request beyond its reads of the log. (The fallback when the log
//! is not read is a unit test of the rule: `store/cache.rs`.)

use std::path::Path;
use std::time::{Duration, Instant};

use super::{Registry, curl, moto, push_blob, push_image, put_manifest, start_with};

/// The bound stated in `storage/README.md` and `README.md`.
const BOUND: Duration = Duration::from_secs(1);

const OCI: &str = "Accept: application/vnd.oci.image.manifest.v1+json";

fn status(args: &[&str]) -> u16 {
    curl(args).status
}

/// The digest `reg` serves for `reference` of `stale/app`.
fn served(reg: &Registry, reference: &str) -> Option<String> {
    let r = curl(&[
        "-H",
        OCI,
        &reg.url(&format!("/v2/stale/app/manifests/{reference}")),
    ]);
    (r.status == 200).then(|| {
        r.header("docker-content-digest")
            .expect("digest header")
            .to_owned()
    })
}

fn layer_of(manifest: &[u8]) -> String {
    let m: serde_json::Value = serde_json::from_slice(manifest).expect("manifest json");
    m["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .to_owned()
}

#[test]
fn a_change_through_one_process_is_seen_by_the_other_within_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let s3 = moto::storage(d);
    let serve = |db: &str| {
        let mut c = super::config(d);
        c.storage = regconf::model::Storage::S3(s3.clone());
        c.sqlalchemy_index_database = Some(format!("sqlite:///{}", d.join(db).display()));
        c.loglevel = Some("warning".into());
        start_with(c)
    };
    let a = serve("a.db");
    let b = serve("b.db");
    let (m1, d1) = push_image(&a, d, "stale/app", "v1", 1);
    let (m2, d2) = push_image(&a, d, "stale/app", "v2", 2);
    let layer1 = layer_of(&m1);
    let blob = |reg: &Registry| status(&["-I", &reg.url(&format!("/v2/stale/app/blobs/{layer1}"))]);

    // B reads (and so caches) the tag, the manifest by digest, the blob.
    assert_eq!(served(&b, "v1").as_deref(), Some(d1.as_str()));
    assert_eq!(served(&b, &d1).as_deref(), Some(d1.as_str()));
    assert_eq!(blob(&b), 200);

    // Through A: the tag moves, the old manifest and its layer go.
    let r = put_manifest(&a, d, "stale/app", "v1", &m2);
    assert_eq!(r.status, 201, "{}", r.text());
    let del = |path: &str| status(&["-X", "DELETE", &a.url(path)]);
    assert_eq!(del(&format!("/v2/stale/app/manifests/{d1}")), 202);
    assert_eq!(del(&format!("/v2/stale/app/blobs/{layer1}")), 202);

    // A sees its own changes at once.
    assert_eq!(served(&a, "v1").as_deref(), Some(d2.as_str()));
    assert_eq!(served(&a, &d1), None);
    assert_eq!(blob(&a), 404);

    // B, once the bound has passed since A answered.
    std::thread::sleep(BOUND);
    assert_eq!(
        served(&b, "v1").as_deref(),
        Some(d2.as_str()),
        "B serves a moved tag's old manifest after the bound"
    );
    assert_eq!(
        served(&b, &d1),
        None,
        "B serves a deleted manifest after the bound"
    );
    assert_eq!(blob(&b), 404, "B serves a deleted blob after the bound");
    a.stop();
    b.stop();
}

/// The requests in moto's log after the first `skip`, as (reads of the
/// change log, the others as "METHOD path" lines).
fn requests_after(log: &Path, skip: usize) -> (usize, Vec<String>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            ["\"GET ", "\"PUT ", "\"HEAD ", "\"POST ", "\"DELETE "]
                .iter()
                .any(|m| l.contains(m))
        })
        .skip(skip)
        .collect();
    let (log_reads, others): (Vec<&str>, Vec<&str>) = lines
        .into_iter()
        .partition(|l| l.contains("\"GET ") && l.contains("_changes"));
    let others = others
        .iter()
        .filter_map(|l| l.split('"').nth(1))
        .map(|r| r.rsplit_once(' ').map_or(r, |(m, _)| m).to_owned())
        .collect();
    (log_reads.len(), others)
}

/// Requests in moto's log so far.
fn count(log: &Path) -> usize {
    let (log_reads, others) = requests_after(log, 0);
    log_reads + others.len()
}

/// Rounds of spaced reads measured.
const ROUNDS: usize = 3;

/// Two processes on one bucket with moto's request log at `dir/moto.log`.
fn two_on_a_logged_bucket(d: &Path, bucket: &str) -> (moto::Moto, Registry, Registry) {
    let moto = moto::Moto::start_logging(bucket, Some(&d.join("moto.log")));
    let serve = |db: &str| {
        let mut c = super::config(d);
        c.storage = regconf::model::Storage::S3(moto::settings(moto.port, bucket, "/r"));
        c.sqlalchemy_index_database = Some(format!("sqlite:///{}", d.join(db).display()));
        c.loglevel = Some("warning".into());
        start_with(c)
    };
    let a = serve("a.db");
    let b = serve("b.db");
    (moto, a, b)
}

#[test]
fn reads_spaced_past_the_bound_cost_no_request_beyond_the_log_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (moto, a, b) = two_on_a_logged_bucket(d, "spaced");
    let log = d.join("moto.log");
    let (m1, d1) = push_image(&a, d, "stale/app", "v1", 1);
    let layer = layer_of(&m1);
    let blob_url = b.url(&format!("/v2/stale/app/blobs/{layer}"));
    let round = || {
        assert_eq!(served(&b, "v1").as_deref(), Some(d1.as_str()));
        assert_eq!(served(&b, &d1).as_deref(), Some(d1.as_str()));
        assert_eq!(status(&["-I", &blob_url]), 200);
        assert_eq!(status(&["-o", "/dev/null", &blob_url]), 200);
    };
    // Warm-up: B reads (and caches) tag, manifest, link, sizes; then its
    // first read of the log finds A's push (which drops what B cached of
    // the repository's tags: B cannot tell that it read them after the
    // push), and B reads them again.
    round();
    std::thread::sleep(Duration::from_millis(1100));
    round();
    let before = count(&log);
    let started = Instant::now();
    for _ in 0..ROUNDS {
        std::thread::sleep(Duration::from_millis(1100));
        round();
    }
    let seconds = started.elapsed().as_secs_f64();
    let (log_reads, others) = requests_after(&log, before);
    eprintln!(
        "{ROUNDS} rounds in {seconds:.1} s: {} requests for the operations, {log_reads} reads of the change log (both processes)",
        others.len()
    );
    // A GET of a blob is one GET of its data; nothing else costs a request.
    assert_eq!(others.len(), ROUNDS, "{others:#?}");
    assert!(
        others
            .iter()
            .all(|r| r.starts_with("GET ") && r.contains("/blobs/sha256/") && r.ends_with("/data")),
        "{others:#?}"
    );
    // The log reads are a fixed rate per active process (about two a
    // second), not per operation.
    let most = (seconds * 2.0 * 2.5).ceil() as usize + 2;
    assert!(log_reads <= most, "{log_reads} log reads in {seconds:.1} s");
    a.stop();
    b.stop();
    drop(moto);
}

#[test]
fn blob_data_removed_by_a_separate_gc_is_seen_within_the_bound() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (moto, a, b) = two_on_a_logged_bucket(d, "gcseen");
    let lone = push_blob(&a, d, "stale/lone", b"removed by a separate gc");
    let head = || status(&["-I", &b.url(&format!("/v2/stale/lone/blobs/{lone}"))]);
    assert_eq!((head(), head()), (200, 200), "B caches the blob");
    let mut c = super::config(d);
    c.storage = regconf::model::Storage::S3(moto::settings(moto.port, "gcseen", "/r"));
    let conf = tempfile::tempdir().expect("tempdir");
    let file = super::config_file(&c, conf.path());
    // B stays active (its requests keep it reading the log) meanwhile.
    let out = super::gc::regconf_gc(&file, &["--grace", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("removed blobs: 1 ("),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    std::thread::sleep(BOUND);
    assert_eq!(head(), 404, "B serves a collected blob after the bound");
    a.stop();
    b.stop();
}
