//! Two `serve` processes on one moto bucket: what one caches is never
//! served longer than the documented bound after the other changed it. On
//! shared storage a process keeps a repository's links and tags for at
//! most `MEMBERSHIP_TTL` (1 s, `src/registry/store/mod.rs`), so a tag moved,
//! a manifest deleted or a blob deleted through A is seen by B within 1 s
//! of A's answer, and by A itself at once.

use std::time::Duration;

use super::{Registry, curl, moto, push_image, put_manifest, start_with};

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
