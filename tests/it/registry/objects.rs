//! The object-store drivers as a deployment uses them: several `regconf
//! serve` processes on one bucket acting as one registry, blob redirects to
//! presigned URLs, a 1 GiB blob with the registry's peak memory measured,
//! and the refusal of drivers `serve` does not run.
//!
//! Every registry here is a `regconf serve` process of its own, on the
//! test process's shared moto server, so "several processes" and "peak RSS"
//! mean what they say.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use regconf::model;

use super::image::oci_layout;
use super::{
    Registry, curl, digest, file, moto, push_blob, random_bytes, run_ok, skopeo, start_with,
};

/// What a child registry runs: S3 on the shared moto under `prefix`, its
/// own SQLite index `db` in `dir`.
struct Spec<'a> {
    dir: &'a Path,
    prefix: &'a str,
    db: &'a str,
    redirect: bool,
}

/// Runs `regconf serve` in a process of its own on S3 storage (the shared
/// moto server, under `prefix`) with its own SQLite index.
fn serve(spec: &Spec<'_>) -> Registry {
    let mut c = super::config(spec.dir);
    c.storage = model::Storage::S3(moto::settings(
        moto::shared().port,
        moto::BUCKET,
        spec.prefix,
    ));
    c.storage_redirect = spec.redirect;
    c.sqlalchemy_index_database = Some(format!("sqlite:///{}", spec.dir.join(spec.db).display()));
    c.loglevel = Some("warning".into());
    start_with(c)
}

/// Two registry processes on the same bucket prefix, each with its own
/// search index.
fn two_processes(d: &Path, prefix: &str) -> (Registry, Registry) {
    let spec = |db| Spec {
        dir: d,
        prefix,
        db,
        redirect: false,
    };
    (serve(&spec("a.db")), serve(&spec("b.db")))
}

fn prefix_of(dir: &Path) -> String {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("dir name")
        .trim_start_matches('.');
    format!("/procs/{name}")
}

#[test]
fn two_processes_on_one_bucket_act_as_one_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let prefix = prefix_of(d);
    let (a, b) = two_processes(d, &prefix);

    // skopeo pushes through one process and pulls through the other.
    let src = d.join("src");
    let image = oci_layout(&src, "v1", &[300_000, 9_000_000, 5], 7);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/shared/app:v1", a.host),
    ]);
    let dst = d.join("dst");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/shared/app:v1", b.host),
        &format!("oci:{}:v1", dst.display()),
    ]);
    image.assert_pulled_identical(&src, &dst);

    // A tag moved through one process is seen by the other within a
    // second (the bound of its manifest cache on shared storage,
    // `MEMBERSHIP_TTL`; `staleness.rs` checks deletes too).
    let (_, md) = super::push_image(&a.as_registry(), d, "shared/app", "moving", 1);
    let got = curl(&[
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &b.url("/v2/shared/app/manifests/moving"),
    ]);
    assert_eq!(got.header("docker-content-digest"), Some(md.as_str()));
    let (_, md2) = super::push_image(&a.as_registry(), d, "shared/app", "moving", 2);
    std::thread::sleep(Duration::from_secs(1));
    let got = curl(&[
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &b.url("/v2/shared/app/manifests/moving"),
    ]);
    assert_eq!(got.header("docker-content-digest"), Some(md2.as_str()));

    // The second process's search finds what was pushed through the first
    // (its index is refreshed from the bucket a few seconds at most after
    // its previous refresh).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = curl(&[&b.url("/v1/search?q=shared")]);
        assert_eq!(r.status, 200);
        if r.text().contains("\"shared/app\"") {
            assert_eq!(r.json()["num_results"], 1, "{}", r.text());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "search on the second process never found the repository: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn an_upload_can_be_split_across_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let prefix = prefix_of(d);
    let (a, b) = two_processes(d, &prefix);
    // Three chunks, the middle one larger than a multipart part.
    let data = random_bytes(9 << 20, 5);
    let dg = digest(&data);
    let (one, rest) = data.split_at(100_000);
    let (two, three) = rest.split_at(rest.len() - 50_000);

    let post = curl(&["-X", "POST", &a.url("/v2/split/blobs/uploads/")]);
    assert_eq!(post.status, 202);
    let mut location = post.header("location").expect("location").to_owned();
    let mut start = 0;
    for (i, (chunk, via)) in [(one, &a), (two, &b)].into_iter().enumerate() {
        let f = file(d, &format!("chunk{i}"), chunk);
        let r = curl(&[
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            &format!("Content-Range: {start}-{}", start + chunk.len() - 1),
            "--data-binary",
            &format!("@{f}"),
            &via.url(&location),
        ]);
        assert_eq!(r.status, 202, "{}", r.text());
        start += chunk.len();
        assert_eq!(r.header("range"), Some(format!("0-{}", start - 1).as_str()));
        location = r.header("location").expect("location").to_owned();
    }
    // The first process sees the size the second one left.
    let status = curl(&[&a.url(&location)]);
    assert_eq!(status.status, 204);
    assert_eq!(
        status.header("range"),
        Some(format!("0-{}", start - 1).as_str())
    );
    // And finishes the upload, whose digest covers all three chunks.
    let f = file(d, "chunk2", three);
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{f}"),
        &a.url(&format!("{location}{sep}digest={dg}")),
    ]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(curl(&[&b.url(&format!("/v2/split/blobs/{dg}"))]).body, data);
    // Nothing of the upload is left in the bucket.
    let left: Vec<String> = moto::keys(&moto::settings(moto::shared().port, moto::BUCKET, &prefix))
        .into_iter()
        .filter(|k| k.contains("_uploads"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn storage_redirect_sends_clients_to_a_presigned_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut c = super::config(d);
    c.storage = model::Storage::S3(moto::storage(d));
    c.storage_redirect = true;
    let reg = start_with(c);
    let data = random_bytes(3 << 20, 9);
    let dg = push_blob(&reg, d, "redir/repo", &data);

    // Without following: 307 to the store, with a signature.
    let r = curl(&[&reg.url(&format!("/v2/redir/repo/blobs/{dg}"))]);
    assert_eq!(r.status, 307, "{}", r.text());
    let location = r.header("location").expect("location");
    let moto_url = format!("{}/{}/", moto::shared().endpoint(), moto::BUCKET);
    assert!(location.starts_with(&moto_url), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    // Following: the right bytes, from the store.
    let r = curl(&["-L", &reg.url(&format!("/v2/redir/repo/blobs/{dg}"))]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    // HEAD is answered by the registry itself; unknown blobs are still 404.
    let r = curl(&["-I", &reg.url(&format!("/v2/redir/repo/blobs/{dg}"))]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("3145728"));
    let unknown = digest(b"nothing");
    let r = curl(&[&reg.url(&format!("/v2/redir/repo/blobs/{unknown}"))]);
    assert_eq!(r.status, 404);
}

#[test]
fn drivers_serve_does_not_run_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for storage in [
        model::Storage::Swift(model::Swift::default()),
        model::Storage::Glance(model::Glance::default()),
        model::Storage::Elliptics(model::Elliptics::default()),
        model::Storage::Oss(model::Oss::default()),
    ] {
        let driver = storage.driver().to_owned();
        let mut c = super::config(dir.path());
        c.storage = storage.clone();
        let err = rt
            .block_on(regconf::registry::bind(
                &c,
                regconf::registry::ServeOptions {
                    listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                },
            ))
            .err()
            .unwrap_or_else(|| panic!("`{driver}` was served"));
        assert!(
            matches!(
                &err,
                regconf::registry::RegistryError::Storage(
                    regconf::registry::DriverError::Unsupported(d)
                ) if *d == driver
            ),
            "{err:?}"
        );
        assert!(regconf::registry::check_driver(&storage).is_err());
    }
    // Nothing was created for them.
    assert!(!dir.path().join("storage").exists());
}

/// How much a 1 GiB blob through the S3 driver may add to the registry's
/// memory: the multipart writer's parts in flight and buffers, nothing in
/// proportion to the blob. (The target of 64 MiB in all is for the
/// release build; this test runs the debug binary, whose own code pages
/// already take about 34 MiB at idle, so it bounds the growth.)
const RSS_GROWTH_LIMIT_MIB: u64 = 32;

#[test]
fn a_1_gib_blob_streams_through_s3_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let big = d.join("big");
    let made = Command::new("sh")
        .args(["-c", "head -c 1073741824 /dev/urandom > \"$1\"", "sh"])
        .arg(&big)
        .status()
        .expect("sh");
    assert!(made.success());
    let sum = |p: &Path| -> String {
        let out = run_ok(
            "sha256sum",
            &[p.to_str().expect("utf-8 path")],
            None,
            "apt-get install -y coreutils",
        );
        String::from_utf8_lossy(&out)[..64].to_owned()
    };
    let dg = format!("sha256:{}", sum(&big));
    let reg = serve(&Spec {
        dir: d,
        prefix: &prefix_of(d),
        db: "r.db",
        redirect: false,
    });
    let idle = reg.peak_rss_kib();

    // A streamed PATCH (curl -T reads the file as it sends), then the PUT.
    let post = curl(&["-X", "POST", &reg.url("/v2/big/blob/blobs/uploads/")]);
    let location = post.header("location").expect("location").to_owned();
    let r = curl(&[
        "--max-time",
        "900",
        "-X",
        "PATCH",
        "-H",
        "Content-Type: application/octet-stream",
        "-T",
        big.to_str().expect("utf-8 path"),
        &reg.url(&location),
    ]);
    assert_eq!(r.status, 202, "{}", r.text());
    let location = r.header("location").expect("location").to_owned();
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = curl(&[
        "--max-time",
        "900",
        "-X",
        "PUT",
        &reg.url(&format!("{location}{sep}digest={dg}")),
    ]);
    assert_eq!(r.status, 201, "{}", r.text());
    let after_push = reg.peak_rss_kib();

    // And back, streamed.
    let back = d.join("back");
    run_ok(
        "curl",
        &[
            "-sS",
            "--fail",
            "--max-time",
            "900",
            "-o",
            back.to_str().expect("utf-8 path"),
            &reg.url(&format!("/v2/big/blob/blobs/{dg}")),
        ],
        None,
        "apt-get install -y curl",
    );
    assert_eq!(format!("sha256:{}", sum(&back)), dg);
    let peak = reg.peak_rss_kib();
    eprintln!(
        "registry process peak RSS (VmHWM): {idle} KiB at idle, {after_push} KiB after the 1 GiB push, {peak} KiB after the pull back (growth limit {RSS_GROWTH_LIMIT_MIB} MiB)"
    );
    assert!(
        peak - idle < RSS_GROWTH_LIMIT_MIB * 1024,
        "a 1 GiB blob raised peak RSS from {idle} KiB to {peak} KiB, more than {RSS_GROWTH_LIMIT_MIB} MiB"
    );
}
