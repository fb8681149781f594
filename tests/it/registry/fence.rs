//! The fence on shared storage (`src/registry/store/fence.rs`), seen in the
//! requests a moto server of the test's own logs: a manifest push goes
//! without the repository lease and garbage collection's checks while no
//! removal is fenced; a blob `DELETE` through another process raises the
//! fence, and pushes take the lease again; a `regconf gc` run raises it and
//! lowers it when done, and pushes go quiet again.

use std::path::Path;

use super::gc::regconf_gc;
use super::{Registry, config_file, curl, moto, push_image, put_manifest, start_with};

/// The requests moto logged after the first `from` lines.
fn requests_since(log: &Path, from: usize) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            ["\"GET ", "\"PUT ", "\"HEAD ", "\"POST ", "\"DELETE "]
                .iter()
                .any(|m| l.contains(m))
        })
        .skip(from)
        .map(str::to_owned)
        .collect()
}

fn logged(log: &Path) -> usize {
    requests_since(log, 0).len()
}

/// Pushes `manifest` as `repo:tag` through `reg` and returns the requests
/// the push cost.
fn push_counted(reg: &Registry, d: &Path, log: &Path, tag: &str, manifest: &[u8]) -> Vec<String> {
    let before = logged(log);
    let r = put_manifest(reg, d, "fence/app", tag, manifest);
    assert_eq!(r.status, 201, "{}", r.text());
    // moto writes its log line after answering
    std::thread::sleep(std::time::Duration::from_millis(300));
    requests_since(log, before)
}

fn leased(requests: &[String]) -> bool {
    requests.iter().any(|r| r.contains("/_leases/"))
}

#[test]
fn pushes_skip_the_lease_unless_a_removal_is_fenced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let log = d.join("moto.log");
    let bucket = "fence";
    let moto = moto::Moto::start_logging(bucket, Some(&log));
    let mut c = super::config(d);
    c.storage = regconf::model::Storage::S3(moto::settings(moto.port, bucket, "/fence"));
    c.loglevel = Some("warning".into());
    let serve = |c: &regconf::model::Config, db: &str| {
        let mut c = c.clone();
        c.sqlalchemy_index_database = Some(format!("sqlite:///{}", d.join(db).display()));
        start_with(c)
    };
    let a = serve(&c, "a.db");
    let b = serve(&c, "b.db");
    let (manifest, _) = push_image(&a, d, "fence/app", "v1", 1);
    let (_, _) = push_image(&a, d, "fence/other", "v1", 2);

    // Quiet: the push itself, no lease, no check of the blob data.
    let quiet = push_counted(&a, d, &log, "v2", &manifest);
    assert!(!leased(&quiet), "a quiet push took the lease: {quiet:#?}");
    assert!(
        !quiet
            .iter()
            .any(|r| r.contains("\"HEAD ") && r.contains("/blobs/")),
        "a quiet push checked blob data: {quiet:#?}"
    );
    assert!(quiet.len() <= 6, "a quiet push cost {quiet:#?}");

    // A blob DELETE through B raises the fence; A's pushes then take the
    // lease and make the checks.
    let other: serde_json::Value = curl(&[
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &b.url("/v2/fence/other/manifests/v1"),
    ])
    .json();
    let layer = other["layers"][0]["digest"].as_str().expect("layer");
    let r = curl(&[
        "-X",
        "DELETE",
        &b.url(&format!("/v2/fence/other/blobs/{layer}")),
    ]);
    assert_eq!(r.status, 202, "{}", r.text());
    let fenced = push_counted(&a, d, &log, "v3", &manifest);
    assert!(leased(&fenced), "a push ignored B's fence: {fenced:#?}");

    // gc raises a fence of its own and lowers it when done (on another
    // prefix of the bucket, away from B's fence, which holds for 20 s).
    a.stop();
    b.stop();
    c.storage = regconf::model::Storage::S3(moto::settings(moto.port, bucket, "/fence-gc"));
    let a = serve(&c, "c.db");
    let (manifest, _) = push_image(&a, d, "fence/app", "v1", 1);
    let quiet = push_counted(&a, d, &log, "v2", &manifest);
    assert!(!leased(&quiet), "a quiet push took the lease: {quiet:#?}");
    let file = config_file(&c, d);
    // Pushes while the run goes: the ones during its fence take the lease.
    let (out, during) = std::thread::scope(|s| {
        let run = s.spawn(|| regconf_gc(&file, &["--grace", "0"]));
        let mut during = Vec::new();
        let mut n = 0;
        while !run.is_finished() {
            n += 1;
            during.push(leased(&push_counted(
                &a,
                d,
                &log,
                &format!("g{n}"),
                &manifest,
            )));
        }
        (run.join().expect("gc thread"), during)
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        during.iter().any(|l| *l),
        "no push during the gc run took the lease: {during:?}"
    );
    let after = push_counted(&a, d, &log, "v3", &manifest);
    assert!(!leased(&after), "the gc run left its fence up: {after:#?}");
    // Every tag pushed is served.
    for t in ["v1", "v2", "v3", "g1"] {
        let r = curl(&[
            "-o",
            "/dev/null",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &a.url(&format!("/v2/fence/app/manifests/{t}")),
        ]);
        assert_eq!(r.status, 200, "tag {t}");
    }
    a.stop();
}
