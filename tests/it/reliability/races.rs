//! Concurrent writes to one repository (issue 16): a `DELETE` of a
//! manifest by digest racing a `PUT` of the same manifest under a new tag,
//! and a tag moved between manifests meanwhile. Every write must end in a
//! state some serial order gives: no 5xx, and every listed tag names a
//! manifest that `GET` serves. On local storage and on S3 (moto).

use std::time::Instant;

use crate::harness::{Server, agent, body, digest, manifest, push_blob};
use crate::registry::moto;

const ROUNDS: usize = 300;

/// `rounds` rounds; the delete goes to the first server, the new tag to
/// the second, the other writes alternate (one server twice: one process).
fn race(servers: [&Server; 2], what: &str, rounds: usize) {
    let a = agent();
    let base = servers[0].url("");
    let other_base = servers[1].url("");
    let config = b"{}";
    let cd = digest(config);
    let layers: Vec<(String, usize)> = (0..2)
        .map(|i| {
            let data = format!("layer {i}").into_bytes();
            let d = digest(&data);
            assert_eq!(push_blob(&a, &base, "race/app", &data, &d), 201);
            (d, data.len())
        })
        .collect();
    assert_eq!(push_blob(&a, &base, "race/app", config, &cd), 201);
    // Two manifests: the one deleted and re-pushed, and the one the moving
    // tag also points at in turn.
    let m = manifest((&cd, config.len()), &layers[..1]);
    let other = manifest((&cd, config.len()), &layers[1..]);
    let md = digest(m.as_bytes());
    let put_to = |a: &ureq::Agent, base: &str, tag: &str, text: &str| {
        a.put(format!("{base}/v2/race/app/manifests/{tag}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .send(text.as_bytes())
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    let bases = [base.as_str(), other_base.as_str()];
    let tags_of = |base: &str| -> Vec<String> {
        let r = a
            .get(format!("{base}/v2/race/app/tags/list"))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200);
        let list: serde_json::Value = serde_json::from_slice(&body(r)).unwrap();
        list["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Every listed tag is served (a DELETE by digest removes the tags of
    // earlier rounds too, so this is checked after each round). The other
    // process's tags/list may still name a tag deleted less than its
    // bound ago (0.5 s, `storage/README.md`): such a tag must be gone from
    // the list after the bound, else it is left dangling in storage.
    let dangling = |round: usize| -> usize {
        let base = bases[round % 2];
        let tags = tags_of(base);
        let mut late = None;
        for t in &tags {
            let st = a
                .get(format!("{base}/v2/race/app/manifests/{t}"))
                .header("accept", "application/vnd.oci.image.manifest.v1+json")
                .call()
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            if st != 200 {
                late.get_or_insert_with(|| {
                    std::thread::sleep(std::time::Duration::from_millis(700));
                    tags_of(base)
                });
                let still = late.as_ref().is_some_and(|l| l.contains(t));
                assert!(
                    !still,
                    "{what}: round {round}: tag `{t}` listed but GET says {st}"
                );
            }
        }
        tags.len()
    };
    let start = Instant::now();
    let mut listed = 0;
    let mut statuses = std::collections::BTreeMap::<(&str, u16), usize>::new();
    for round in 0..rounds {
        assert_eq!(put_to(&a, bases[round % 2], &format!("r{round}"), &m), 201);
        let (deleted, pushed, moved) = std::thread::scope(|s| {
            let (base, md) = (&base, &md);
            let del = s.spawn(move || {
                // Every third round the delete starts a little later, every
                // third the push does, so that both serial orders happen.
                if round % 3 == 0 {
                    std::thread::sleep(std::time::Duration::from_millis(3));
                }
                agent()
                    .delete(format!("{base}/v2/race/app/manifests/{md}"))
                    .call()
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            });
            let push = s.spawn(|| {
                if round % 3 == 1 {
                    std::thread::sleep(std::time::Duration::from_millis(3));
                }
                put_to(&agent(), &other_base, &format!("n{round}"), &m)
            });
            let text = if round % 2 == 0 { &other } else { &m };
            let mv_base = bases[(round / 2) % 2];
            let mv = s.spawn(move || put_to(&agent(), mv_base, "moving", text));
            (
                del.join().unwrap(),
                push.join().unwrap(),
                mv.join().unwrap(),
            )
        });
        for (op, st) in [("delete", deleted), ("put", pushed), ("move", moved)] {
            *statuses.entry((op, st)).or_default() += 1;
            assert!(
                (200..300).contains(&st) || st == 404,
                "{what}: round {round}: {op} answered {st}"
            );
        }
        listed += dangling(round);
    }
    eprintln!(
        "{what}: {rounds} rounds in {:?}, {listed} listed tags checked, statuses {statuses:?}",
        start.elapsed()
    );
    for server in servers {
        assert!(server.alive());
        let log = server.log();
        assert!(!log.contains("storage failure"), "{what}: {log}");
    }
}

#[test]
fn delete_and_put_of_one_manifest_race_cleanly_on_local_storage() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "f:\n  storage: local\n  storage_path: ./store\n  loglevel: error\n",
    );
    race([&server, &server], "local", ROUNDS);
    // No temporary file stays behind (the driver's lock file stays).
    let left: Vec<_> = crate::harness::files_under(&dir.path().join("store"))
        .into_iter()
        .filter(|p| p.starts_with("_tmp") && !p.ends_with(".lock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn delete_and_put_of_one_manifest_race_cleanly_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let name = dir
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap()
        .trim_start_matches('.')
        .to_owned();
    let server = Server::start(dir.path(), &s3_flavor(&name));
    race([&server, &server], "s3", ROUNDS);
}

fn s3_flavor(prefix: &str) -> String {
    format!(
        "f:\n  storage: s3\n  boto_bucket: {}\n  storage_path: /tests/{prefix}\n  s3_region: us-east-1\n  s3_access_key: test\n  s3_secret_key: test\n  s3_secure: false\n  boto_host: 127.0.0.1\n  boto_port: {}\n  loglevel: error\n",
        moto::BUCKET,
        moto::shared().port
    )
}

/// Two `serve` processes on one bucket prefix: the delete goes to one, the
/// new tag to the other, the moving tag to either. The in-process locks do
/// not order them; the repository's write lease on the bucket does.
#[test]
fn delete_and_put_race_cleanly_across_two_processes_on_s3() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let name = format!("two-{}", uuid_like(&dirs[0]));
    let a = Server::start(dirs[0].path(), &s3_flavor(&name));
    let b = Server::start(dirs[1].path(), &s3_flavor(&name));
    race([&a, &b], "s3, two processes", TWO_PROCESS_ROUNDS);
}

/// Rounds across two processes (each round costs more lease round trips
/// to moto than one process's).
const TWO_PROCESS_ROUNDS: usize = 40;

fn uuid_like(dir: &tempfile::TempDir) -> String {
    dir.path()
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap()
        .trim_start_matches('.')
        .to_owned()
}
