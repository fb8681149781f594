//! Memory of `serve` under hostile manifests (issue 16): what one manifest
//! `PUT` costs, and the manifest cache's bound in bytes. The bounds are the
//! ones the README states.

use crate::harness::{Server, agent, body, digest, manifest, push_blob};

const MIB: u64 = 1024;

/// Starts a server and pushes one config and one layer to `repo`; returns
/// the server and the descriptors' (digest, size) pairs.
fn server_with_blobs(
    dir: &std::path::Path,
    repo: &str,
) -> (Server, (String, usize), (String, usize)) {
    let server = Server::start(
        dir,
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: error\n",
    );
    let a = agent();
    let base = server.url("");
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = b"layer bytes";
    let (cd, ld) = (digest(config), digest(layer));
    assert_eq!(push_blob(&a, &base, repo, config, &cd), 201);
    assert_eq!(push_blob(&a, &base, repo, layer, &ld), 201);
    (server, (cd, config.len()), (ld, layer.len()))
}

/// `manifest(..)` with an `annotations` object of `extra` (JSON text).
fn with_annotations(m: &str, extra: &str) -> String {
    format!("{},\"annotations\":{extra}}}", m.strip_suffix('}').unwrap())
}

fn put(a: &ureq::Agent, url: &str, m: &[u8]) -> (u16, String) {
    let r = a
        .put(url)
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .send(m)
        .unwrap();
    let status = r.status().as_u16();
    (status, String::from_utf8_lossy(&body(r)).into_owned())
}

/// Eight hostile 4 MiB manifests at once (two million numbers under
/// `annotations`), then eight valid 4 MiB ones: peak RSS grows by at most
/// twice the size of what is in flight (it grew by 1.2 GB for the hostile
/// ones before).
#[test]
fn concurrent_4mib_manifests_cost_at_most_twice_their_size() {
    let dir = tempfile::tempdir().unwrap();
    let (server, config, layer) = server_with_blobs(dir.path(), "mem");
    let m = manifest((&config.0, config.1), &[layer]);
    let a = agent();
    assert_eq!(a.get(server.url("/v2/")).call().unwrap().status(), 200);
    let before = server.vm_hwm_kib();

    let numbers = format!("{}0", "0,".repeat(2_000_000));
    let hostile = with_annotations(&m, &format!("{{\"a\":[{numbers}]}}"));
    assert!(hostile.len() > 4_000_000 && hostile.len() <= 4 << 20);
    let valid: Vec<String> = (0..8)
        .map(|i| {
            let pad = "p".repeat((4 << 20) - m.len() - 64);
            with_annotations(&m, &format!("{{\"n\":\"{i}\",\"pad\":\"{pad}\"}}"))
        })
        .collect();
    let url = server.url("/v2/mem/manifests/");
    std::thread::scope(|s| {
        let hostile = &hostile;
        let runs: Vec<_> = (0..8)
            .map(|i| {
                let a = agent();
                let url = format!("{url}h{i}");
                s.spawn(move || put(&a, &url, hostile.as_bytes()))
            })
            .collect();
        for r in runs {
            let (status, text) = r.join().unwrap();
            assert_eq!(status, 400, "{text}");
            assert!(text.contains("MANIFEST_INVALID"), "{text}");
        }
    });
    let after_hostile = server.vm_hwm_kib();
    std::thread::scope(|s| {
        let runs: Vec<_> = valid
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let a = agent();
                let url = format!("{url}v{i}");
                s.spawn(move || put(&a, &url, m.as_bytes()))
            })
            .collect();
        for r in runs {
            let (status, text) = r.join().unwrap();
            assert_eq!(status, 201, "{text}");
        }
    });
    let after_valid = server.vm_hwm_kib();
    eprintln!(
        "manifest memory: VmHWM {before} KiB at start, {after_hostile} KiB after 8 hostile, \
         {after_valid} KiB after 8 valid 4 MiB PUTs"
    );
    // 8 in flight × 4 MiB × 2, plus 16 MiB for buffers and threads.
    let bound = 8 * 4 * MIB * 2 + 16 * MIB;
    assert!(
        after_hostile - before <= bound,
        "hostile manifests raised peak RSS by {} KiB",
        after_hostile - before
    );
    assert!(
        after_valid - before <= bound,
        "valid manifests raised peak RSS by {} KiB",
        after_valid - before
    );
    assert!(server.alive());
}

/// GETs of 300 distinct 4 MiB manifests leave at most the cache's 64 MiB
/// (plus what serving one needs) resident; 1.26 GB stayed before.
#[test]
fn manifest_cache_is_bounded_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (server, config, layer) = server_with_blobs(dir.path(), "cache");
    let m = manifest((&config.0, config.1), &[layer]);
    let pad = "p".repeat((4 << 20) - m.len() - 64);
    let url = server.url("/v2/cache/manifests/");
    let count = 300;
    let text = |i: usize| with_annotations(&m, &format!("{{\"n\":\"{i}\",\"pad\":\"{pad}\"}}"));
    // Two go through `PUT`; to keep the test short (checking 1.2 GB in a
    // debug build takes minutes), the others are written into storage
    // the way a `PUT` lays them out, and read through the same `GET`.
    let a = agent();
    for i in 0..2 {
        let (status, body) = put(&a, &format!("{url}t{i}"), text(i).as_bytes());
        assert_eq!(status, 201, "{body}");
    }
    let store = dir.path().join("store");
    for i in 2..count {
        let m = text(i);
        let d = digest(m.as_bytes());
        let hex = &d["sha256:".len()..];
        let data = store.join(format!("blobs/sha256/{}/{hex}", &hex[..2]));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("data"), &m).unwrap();
        let repo = store.join("repositories/cache/_manifests");
        let rev = repo.join(format!("revisions/sha256/{hex}"));
        std::fs::create_dir_all(&rev).unwrap();
        std::fs::write(
            rev.join("link"),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .unwrap();
        std::fs::write(repo.join(format!("tags/t{i}")), &d).unwrap();
    }
    let before = server.vm_rss_kib();
    std::thread::scope(|s| {
        for half in 0..2 {
            let url = &url;
            s.spawn(move || {
                let a = agent();
                for i in (half..count).step_by(2) {
                    let r = a.get(format!("{url}t{i}")).call().unwrap();
                    assert_eq!(r.status(), 200);
                    assert!(body(r).len() > 4_000_000);
                }
            });
        }
    });
    let after = server.vm_rss_kib();
    eprintln!("manifest cache: VmRSS {before} KiB after pushes, {after} KiB after {count} GETs");
    assert!(
        after.saturating_sub(before) <= 64 * MIB + 48 * MIB,
        "GETs left {} KiB more resident",
        after.saturating_sub(before)
    );
    assert!(server.alive());
}
