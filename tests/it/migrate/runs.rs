//! Runs of `migrate-v1` on local storage and on S3: what it prints, what
//! skopeo pulls afterwards, a second run, `--dry-run`, `--to`, kill -9.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{Store, id, migrate, skipped_lines, skopeo_pull, write_local};
use crate::harness::Server;
use crate::registry::Listable;

const LOCAL: &str = "f:\n  storage: local\n  storage_path: ./store\n  loglevel: info\n  \
    search_backend: sqlalchemy\n  sqlalchemy_index_database: sqlite:///./index.db\n\
    g:\n  storage: local\n  storage_path: ./other\n  loglevel: info\n";

const TAGS: [&str; 4] = [
    "busybox:latest",
    "busybox:base",
    "team/app:v1",
    "team/app:latest",
];

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn first_run_text() -> String {
    String::from(
        "tags: 4 converted, 0 already converted, 4 skipped\n\
         layers: 3 converted, 0 already converted\n",
    )
}

/// The summary with its `bytes:` line taken out (sizes depend on gzip).
fn without_bytes(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("bytes: "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The files of a v1 store (driver housekeeping in `_tmp/` left out).
fn v1_files(root: &Path) -> Vec<String> {
    root.files()
        .into_iter()
        .filter(|f| !f.starts_with("_tmp/"))
        .collect()
}

fn pull_all(host: &str, dir: &Path) {
    for (i, t) in TAGS.iter().enumerate() {
        skopeo_pull(host, t, &dir.join(format!("pulled-{i}")));
    }
}

#[test]
fn local_store_is_converted_pulled_and_a_second_run_converts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_local(&d.join("store"), &Store { big_layer: 0 });
    std::fs::write(d.join("config.yml"), LOCAL).unwrap();
    // serve says the conversion exists while only v1 data is there
    let mut s = Server::start(d, LOCAL);
    let log = s.log();
    s.stop();
    assert!(log.contains("regconf migrate-v1 --flavor f"), "{log}");

    let before = d.join("store").files();
    let dry = migrate(d, &["--dry-run"]);
    assert_eq!(dry.status.code(), Some(1), "{dry:?}");
    assert_eq!(d.join("store").files(), before, "--dry-run wrote");
    let before = v1_files(&d.join("store"));
    let expected = without_bytes(&first_run_text()) + &skipped_lines();
    assert_eq!(
        without_bytes(&stdout(&dry)),
        format!("dry run: nothing was written\n{expected}")
    );

    let first = migrate(d, &[]);
    assert_eq!(first.status.code(), Some(1), "{first:?}");
    assert_eq!(without_bytes(&stdout(&first)), expected);
    // read: the layers converted and the one whose checksum failed;
    // written: the layer blobs, as the records of the run say
    let size = |p: String| std::fs::metadata(d.join("store").join(p)).unwrap().len();
    let read: u64 = ["base", "child", "other", "badsum"]
        .iter()
        .map(|n| size(format!("images/{}/layer", id(n))))
        .sum();
    let written: u64 = ["base", "child", "other"]
        .iter()
        .map(|n| {
            let r = std::fs::read(d.join("store/_migrate_v1/images").join(id(n))).unwrap();
            let r: serde_json::Value = serde_json::from_slice(&r).unwrap();
            r["size"].as_u64().unwrap()
        })
        .sum();
    assert!(
        stdout(&first).contains(&format!("\nbytes: {read} read, {written} written\n")),
        "{}",
        stdout(&first)
    );
    // v1 data untouched
    let after = d.join("store").files();
    for f in &before {
        assert!(after.contains(f), "{f} is gone");
    }
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(
        stderr.contains("converted library/busybox:latest -> busybox:latest sha256:"),
        "{stderr}"
    );

    let second = migrate(d, &["--format", "json"]);
    assert_eq!(second.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(j["layers_converted"], 0);
    assert_eq!(j["layers_already_converted"], 3);
    let outcomes: Vec<&str> = j["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == "already_converted")
            .count(),
        4,
        "{j}"
    );

    let s = Server::start(d, LOCAL);
    assert!(!s.log().contains("migrate-v1"), "{}", s.log());
    pull_all(&format!("127.0.0.1:{}", s.port), d);
    let search = crate::harness::agent()
        .get(&s.url("/v1/search?q="))
        .call()
        .unwrap();
    let body = String::from_utf8(crate::harness::body(search)).unwrap();
    for repo in ["library/busybox", "team/app"] {
        assert!(body.contains(&format!("\"{repo}\"")), "{body}");
    }
    assert!(!body.contains("team/broken"), "{body}");
}

#[test]
fn to_a_second_flavor_writes_only_there() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_local(&d.join("store"), &Store { big_layer: 0 });
    std::fs::write(d.join("config.yml"), LOCAL).unwrap();
    let before = v1_files(&d.join("store"));
    let out = migrate(
        d,
        &[
            "--to",
            "g",
            "--repository",
            "busybox",
            "--repository",
            "team/app",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).starts_with("tags: 4 converted, 0 already converted, 0 skipped\n"));
    // (the driver's lock file aside)
    assert_eq!(v1_files(&d.join("store")), before);
    let g = LOCAL
        .replace(
            "f:\n  storage: local\n  storage_path: ./store",
            "x:\n  storage: local\n  storage_path: ./store",
        )
        .replace("g:\n", "f:\n");
    let s = Server::start(d, &g);
    pull_all(&format!("127.0.0.1:{}", s.port), d);
}

#[test]
fn a_run_killed_halfway_then_run_again_gives_what_one_run_gives() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = Store {
        big_layer: 48 << 20,
    };
    write_local(&d.join("a/store"), &store);
    write_local(&d.join("b/store"), &store);
    for sub in ["a", "b"] {
        std::fs::write(d.join(sub).join("config.yml"), LOCAL).unwrap();
    }
    let whole = migrate(&d.join("a"), &[]);
    assert_eq!(whole.status.code(), Some(1), "{whole:?}");

    let b = d.join("b");
    let mut child = crate::common::regconf(&b)
        .args(["migrate-v1", "config.yml", "--flavor", "f"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once the big layer's upload has started.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let uploading = b
            .join("store")
            .files()
            .iter()
            .any(|f| f.starts_with("repositories/team/big/_uploads/") && f.ends_with("/data"));
        if uploading {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        assert!(
            Instant::now() < deadline,
            "the big layer was never uploaded"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let again = migrate(&b, &[]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    let result = |root: &Path| -> Vec<(String, Vec<u8>)> {
        root.files()
            .into_iter()
            // The change log names entries by time: each run writes its own.
            .filter(|f| !f.contains("/_uploads/") && !f.starts_with("_changes/"))
            .map(|f| {
                let data = std::fs::read(root.join(&f)).unwrap();
                (f, data)
            })
            .collect()
    };
    let (ra, rb) = (result(&d.join("a/store")), result(&b.join("store")));
    assert_eq!(
        ra.iter().map(|x| &x.0).collect::<Vec<_>>(),
        rb.iter().map(|x| &x.0).collect::<Vec<_>>()
    );
    assert!(ra == rb, "the stores differ in content");
    let tag = b.join("store/repositories/team/big/_manifests/tags/latest");
    assert!(
        tag.exists(),
        "team/big:latest ({}) was not converted",
        id("big")
    );
}

#[test]
fn a_storage_that_cannot_be_used_is_a_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("afile"), "").unwrap();
    std::fs::write(
        d.join("config.yml"),
        "f:\n  storage: local\n  storage_path: ./afile/store\n",
    )
    .unwrap();
    let out = migrate(d, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("regconf::migrate::failed"), "{err}");
}

#[test]
fn s3_store_is_converted_and_pulled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s3 = crate::registry::moto::storage(d);
    super::write_s3(&s3, &Store { big_layer: 0 });
    let config = format!(
        "f:\n  storage: s3\n  boto_bucket: {}\n  storage_path: {}\n  s3_region: us-east-1\n  \
         s3_access_key: test\n  s3_secret_key: test\n  s3_secure: false\n  boto_host: 127.0.0.1\n  \
         boto_port: {}\n  loglevel: info\n",
        s3.boto_bucket.as_deref().unwrap(),
        s3.storage_path,
        s3.boto_port.unwrap()
    );
    std::fs::write(d.join("config.yml"), &config).unwrap();
    let out = migrate(d, &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        without_bytes(&stdout(&out)),
        without_bytes(&first_run_text()) + &skipped_lines()
    );
    let again = migrate(d, &[]);
    assert!(stdout(&again).starts_with("tags: 0 converted, 4 already converted, 4 skipped\n"));
    let s = Server::start(d, &config);
    pull_all(&format!("127.0.0.1:{}", s.port), d);
}
