//! `regconf gc` against a running `serve` (issue 13, acceptance 1): two
//! images sharing no layers and one image in two repositories; after
//! deletes, `gc --grace 0` removes exactly the unreferenced blobs (and the
//! links to them), `--dry-run` changes nothing, `--untagged` then removes
//! an untagged image, and every kept image pulls byte-identical with
//! skopeo. On local storage and on S3 (moto).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use regconf::model;

use super::image::{Image, oci_layout};
use super::{Registry, config, config_file, curl, files_under, skopeo, start_with};

/// Runs `regconf gc FILE --flavor test ARGS`.
pub(crate) fn regconf_gc(file: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regconf"))
        .arg("gc")
        .arg(file)
        .args(["--flavor", "test"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .output()
        .expect("run regconf gc")
}

fn ok_text(out: &Output) -> String {
    assert!(
        out.status.success(),
        "regconf gc failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

/// An image written as an OCI layout and pushed with skopeo.
fn push(reg: &Registry, dir: &Path, name: &str, sizes: &[usize], seed: u64, to: &[&str]) -> Image {
    let src = dir.join(name);
    let image = oci_layout(&src, "v1", sizes, seed);
    for r in to {
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:v1", src.display()),
            &format!("docker://{}/{r}", reg.host),
        ]);
    }
    image
}

/// Pulls `reference` with skopeo and checks every blob and the manifest
/// against the layout it was pushed from.
fn pulls_identical(reg: &Registry, dir: &Path, name: &str, image: &Image, reference: &str) {
    let dst = dir.join(format!("pulled-{}", reference.replace(['/', ':'], "-")));
    let _ = std::fs::remove_dir_all(&dst);
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/{reference}", reg.host),
        &format!("oci:{}:v1", dst.display()),
    ]);
    let src = dir.join(name);
    for d in image.blobs.iter().chain([&image.manifest]) {
        let rel = format!("blobs/sha256/{}", &d["sha256:".len()..]);
        assert_eq!(
            std::fs::read(src.join(&rel)).expect("source blob"),
            std::fs::read(dst.join(&rel)).unwrap_or_else(|e| panic!("pulled {rel}: {e}")),
            "{reference}: {rel} differs"
        );
    }
}

fn data_path(d: &str) -> String {
    let hex = &d["sha256:".len()..];
    format!("blobs/sha256/{}/{hex}/data", &hex[..2])
}

fn link_path(repo: &str, d: &str) -> String {
    format!(
        "repositories/{repo}/_layers/sha256/{}/link",
        &d["sha256:".len()..]
    )
}

/// Stored files with their content where the storage is local (so that a
/// dry run can be shown to change nothing at all).
fn snapshot(reg: &Registry) -> Vec<(String, Option<Vec<u8>>)> {
    files_under(&reg.root)
        .into_iter()
        // The change log's entries tell other processes what gc removed
        // (on shared storage); they are not what it keeps or removes.
        .filter(|f| !f.starts_with("_changes/"))
        .map(|f| {
            let content = match &reg.root {
                super::Root::Local(p) => Some(std::fs::read(p.join(&f)).expect("read stored file")),
                super::Root::Bucket(_) | super::Root::Container(_) | super::Root::Gcs(_) => None,
            };
            (f, content)
        })
        .collect()
}

fn gone(
    before: &[(String, Option<Vec<u8>>)],
    after: &[(String, Option<Vec<u8>>)],
) -> BTreeSet<String> {
    let after: BTreeSet<&String> = after.iter().map(|(f, _)| f).collect();
    before
        .iter()
        .map(|(f, _)| f)
        .filter(|f| !after.contains(f))
        .cloned()
        .collect()
}

/// The size of blob `d` in the layout `name` was pushed from.
fn source_size(dir: &Path, name: &str, d: &str) -> usize {
    let p = dir
        .join(name)
        .join(format!("blobs/sha256/{}", &d["sha256:".len()..]));
    std::fs::metadata(&p).map_or_else(|e| panic!("{}: {e}", p.display()), |m| m.len() as usize)
}

#[test]
fn gc_removes_exactly_the_unreferenced_blobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c: model::Config = config(dir.path());
    let file = config_file(&c, dir.path());
    let reg = start_with(c);
    let d = dir.path();
    let a = push(&reg, d, "a", &[20_000, 3_000], 1, &["gc/a:v1"]);
    let b = push(&reg, d, "b", &[15_000], 2, &["gc/b:v1"]);
    let shared = push(&reg, d, "c", &[10_000], 3, &["gc/c:v1", "gc/d:v1"]);
    let untagged = push(&reg, d, "u", &[7_000], 4, &["gc/a:tmp"]);
    let lone = super::push_blob(&reg, d, "gc/b", b"a blob no manifest references");

    // b goes; the shared image leaves gc/d but stays in gc/c; the tag tmp
    // goes, its manifest stays (untagged).
    for (repo, reference) in [
        ("gc/b", b.manifest.as_str()),
        ("gc/d", shared.manifest.as_str()),
        ("gc/a", "tmp"),
    ] {
        let r = curl(&[
            "-X",
            "DELETE",
            &reg.url(&format!("/v2/{repo}/manifests/{reference}")),
        ]);
        assert_eq!(r.status, 202, "DELETE {repo}/{reference}: {}", r.text());
    }
    let before = snapshot(&reg);
    let doomed: Vec<&str> = b
        .blobs
        .iter()
        .chain([&b.manifest, &lone])
        .map(String::as_str)
        .collect();
    let lone_text = b"a blob no manifest references";
    let bytes: usize = b
        .blobs
        .iter()
        .chain([&b.manifest])
        .map(|x| source_size(d, "b", x))
        .sum::<usize>()
        + lone_text.len();
    let expected = |verb: &str| {
        format!(
            "{verb} blobs: 4 ({bytes} bytes)\n{verb} untagged manifests: 0 (0 bytes)\n{verb} layer links: 3\n{verb} uploads: 0 (0 bytes)\nkept back (younger than 0 s): blobs 0 (0 bytes), manifests 0\n"
        )
    };

    // A dry run reports the same and leaves every file as it was.
    let out = regconf_gc(&file, &["--dry-run", "--grace", "0"]);
    assert_eq!(
        ok_text(&out),
        format!("dry run: nothing was removed\n{}", expected("would remove"))
    );
    assert_eq!(snapshot(&reg), before, "--dry-run changed storage");

    // Without a grace of 0, everything here is too young to go.
    let out = regconf_gc(&file, &[]);
    let text = ok_text(&out);
    assert!(text.starts_with("removed blobs: 0 (0 bytes)\n"), "{text}");
    assert!(
        text.contains("kept back (younger than 3600 s): blobs 4 ("),
        "{text}"
    );

    let out = regconf_gc(&file, &["--grace", "0"]);
    assert_eq!(ok_text(&out), expected("removed"));
    let after = snapshot(&reg);
    let mut want: BTreeSet<String> = doomed.iter().map(|x| data_path(x)).collect();
    want.extend(b.blobs.iter().chain([&lone]).map(|x| link_path("gc/b", x)));
    assert_eq!(gone(&before, &after), want);
    assert_eq!(after.len() + want.len(), before.len(), "gc added files");

    pulls_identical(&reg, d, "a", &a, "gc/a:v1");
    pulls_identical(&reg, d, "c", &shared, "gc/c:v1");

    // --untagged: the manifest the tag `tmp` named goes, with its blobs.
    let out = regconf_gc(&file, &["--grace", "0", "--untagged", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(&ok_text(&out)).expect("json report");
    assert_eq!(report["removed"]["manifests"]["count"], 1, "{report}");
    assert_eq!(report["removed"]["blobs"]["count"], 3, "{report}");
    assert_eq!(report["removed"]["layer_links"]["count"], 2, "{report}");
    assert_eq!(report["errors"], serde_json::json!([]));
    let last = snapshot(&reg);
    let mut want: BTreeSet<String> = untagged
        .blobs
        .iter()
        .chain([&untagged.manifest])
        .map(|x| data_path(x))
        .collect();
    want.extend(untagged.blobs.iter().map(|x| link_path("gc/a", x)));
    let h = &untagged.manifest["sha256:".len()..];
    want.insert(format!(
        "repositories/gc/a/_manifests/revisions/sha256/{h}/link"
    ));
    assert_eq!(gone(&after, &last), want);
    let r = curl(&[&reg.url(&format!("/v2/gc/a/manifests/{}", untagged.manifest))]);
    assert_eq!(r.status, 404);

    pulls_identical(&reg, d, "a", &a, "gc/a:v1");
    pulls_identical(&reg, d, "c", &shared, "gc/c:v1");
    // Nothing of gc's own is left behind.
    assert!(last.iter().all(|(f, _)| !f.starts_with("_gc/")), "{last:?}");
}

/// The `gc:` section: `serve` collects on its own schedule, keeps what is
/// referenced, and gives the lease back when it stops.
#[test]
fn serve_collects_on_its_schedule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c: model::Config = config(dir.path());
    c.gc = model::Gc {
        interval_secs: 1,
        grace_secs: 0,
        untagged: false,
    };
    let reg = start_with(c);
    let d = dir.path();
    let (m, _) = super::push_image(&reg, d, "gc/online", "v1", 9);
    let lone = super::push_blob(&reg, d, "gc/online", b"collected by serve itself");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while files_under(&reg.root).contains(&data_path(&lone)) {
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not collect `{lone}`"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let r = curl(&[&reg.url("/v2/gc/online/manifests/v1")]);
    assert_eq!((r.status, r.body), (200, m.clone()));
    let v: serde_json::Value = serde_json::from_slice(&m).expect("manifest json");
    for desc in v["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .chain([&v["config"]])
    {
        let digest = desc["digest"].as_str().expect("digest");
        let r = curl(&[&reg.url(&format!("/v2/gc/online/blobs/{digest}"))]);
        assert_eq!(r.status, 200, "{digest} of a kept image was collected");
        assert_eq!(super::digest(&r.body), digest);
    }
    let root = reg.root.clone();
    reg.stop();
    let left: Vec<String> = files_under(&root)
        .into_iter()
        .filter(|f| f.starts_with("_gc/"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A `serve` on local storage remembers blob sizes; after a separate
/// `regconf gc` removed a blob, a `HEAD` of it says 404, not the remembered
/// 200 (the client then uploads it again instead of pushing a manifest
/// that would be refused).
#[test]
fn head_after_a_separate_gc_says_404() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c: model::Config = config(dir.path());
    let file = config_file(&c, dir.path());
    let reg = start_with(c);
    let lone = super::push_blob(&reg, dir.path(), "gc/head", b"removed by another process");
    let head = || curl(&["-I", &reg.url(&format!("/v2/gc/head/blobs/{lone}"))]).status;
    // The second HEAD is answered from the cache the first filled.
    assert_eq!((head(), head()), (200, 200));
    let out = regconf_gc(&file, &["--grace", "0"]);
    assert!(
        ok_text(&out).starts_with("removed blobs: 1 ("),
        "{}",
        ok_text(&out)
    );
    assert!(!files_under(&reg.root).contains(&data_path(&lone)));
    assert_eq!(head(), 404, "HEAD of a collected blob");
}

/// `gc --untagged` that removes the last manifest of a repository takes
/// the repository out of the search (here the online collector, whose
/// process answers the search).
#[test]
fn a_repository_emptied_by_gc_leaves_the_search() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // Pushed before the collector runs: with a grace of 0 it would take
    // the layers of a push in flight (the push then fails, as designed).
    let reg = start_with(config(d));
    super::push_image(&reg, d, "gc/kept", "v1", 11);
    let (_, m) = super::push_image(&reg, d, "gc/emptied", "v1", 12);
    reg.stop();
    let mut c: model::Config = config(d);
    c.gc = model::Gc {
        interval_secs: 1,
        grace_secs: 0,
        untagged: true,
    };
    let reg = start_with(c);
    let search = || curl(&[&reg.url("/v1/search?q=gc")]).json()["results"].clone();
    let names = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("results")
            .iter()
            .map(|r| r["name"].as_str().expect("name").to_owned())
            .collect()
    };
    assert_eq!(names(search()), ["gc/emptied", "gc/kept"]);
    let r = curl(&["-X", "DELETE", &reg.url("/v2/gc/emptied/manifests/v1")]);
    assert_eq!(r.status, 202, "{}", r.text());
    let link = format!(
        "repositories/gc/emptied/_manifests/revisions/sha256/{}/link",
        &m["sha256:".len()..]
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while files_under(&reg.root).contains(&link) {
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not collect the untagged `{m}`"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(names(search()), ["gc/kept"]);
}

also_on_s3!(
    gc_removes_exactly_the_unreferenced_blobs,
    serve_collects_on_its_schedule
);
