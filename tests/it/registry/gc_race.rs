//! Garbage collection racing pushes (issue 13, acceptance 2): 8 clients
//! push images for 15 s (the issue says 30; halved to keep the suite's
//! time, the race windows are the same; longer if no `regconf gc` run has
//! finished by then) while `regconf gc --grace 1
//! --untagged` runs in a loop in its own process and `serve` runs its
//! online collector every second. Clients reuse layers of their earlier
//! pushes (which the collectors may be removing at that moment) and move
//! their tags, so manifests become untagged and get deleted. Afterwards
//! every tag whose last push the registry confirmed pulls byte-identical:
//! a push that raced a removal may be refused (`MANIFEST_BLOB_UNKNOWN`),
//! never committed broken. On local storage and on S3 (moto).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regconf::model;

use super::gc::regconf_gc;
use super::{config, config_file, run_ok, start_with};
use crate::harness::{Rng, agent, body, bytes, digest, manifest, push_blob};

const CLIENTS: u64 = 8;
const DURATION: Duration = Duration::from_secs(15);

/// What a client last had confirmed for a tag: the manifest and its
/// layers' content; `None` when the last attempt's outcome is unknown.
type Confirmed = HashMap<(String, String), Option<(String, Vec<Vec<u8>>)>>;

#[derive(Default)]
struct Counts {
    confirmed: u64,
    refused: u64,
    errors: Vec<String>,
}

fn client(
    base: &str,
    w: u64,
    seed: u64,
    gc_runs: &AtomicUsize,
    confirmed: &Mutex<Confirmed>,
    counts: &Mutex<Counts>,
) {
    let a = agent();
    let mut rng = Rng(seed | 1);
    let repo = format!("race/w{w}");
    // Layers pushed earlier (kept to reuse: by then often unreferenced).
    let mut history: Vec<Vec<u8>> = Vec::new();
    let start = Instant::now();
    let mut n = 0u64;
    // Pushing goes on past DURATION until `regconf gc` has finished a run
    // (one on S3 on a loaded machine can take most of DURATION), so at
    // least one counted run raced pushes from start to end; the cap keeps
    // a stuck collector from holding the test for ever (the assertion at
    // the end then fails). The online collector runs every second besides.
    while start.elapsed() < DURATION
        || (gc_runs.load(Ordering::Relaxed) < 1 && start.elapsed() < 4 * DURATION)
    {
        n += 1;
        let mut layers = Vec::new();
        for _ in 0..1 + rng.below(2) {
            let data = if !history.is_empty() && rng.below(3) == 0 {
                history[rng.below(history.len() as u64) as usize].clone()
            } else {
                let d = bytes(rng.next(), 1 + rng.below(64 << 10) as usize);
                history.push(d.clone());
                d
            };
            layers.push(data);
        }
        let mut described = Vec::new();
        let mut ok = true;
        for data in &layers {
            let d = digest(data);
            // As clients do: upload only what the registry says it lacks.
            let have = a
                .head(format!("{base}/v2/{repo}/blobs/{d}"))
                .call()
                .is_ok_and(|r| r.status() == 200);
            if !have && push_blob(&a, base, &repo, data, &d) != 201 {
                ok = false;
            }
            described.push((d, data.len()));
        }
        let cfg = format!("{{\"w\":{w},\"n\":{n}}}");
        let cd = digest(cfg.as_bytes());
        if !ok || push_blob(&a, base, &repo, cfg.as_bytes(), &cd) != 201 {
            counts
                .lock()
                .unwrap()
                .errors
                .push(format!("{repo}: a blob push failed"));
            continue;
        }
        let m = manifest((&cd, cfg.len()), &described);
        let tag = format!("t{}", n % 3);
        let key = (repo.clone(), tag.clone());
        let r = a
            .put(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .send(m.as_bytes());
        match r {
            Ok(r) if r.status() == 201 => {
                confirmed.lock().unwrap().insert(key, Some((m, layers)));
                counts.lock().unwrap().confirmed += 1;
            }
            Ok(r) if r.status() == 400 => {
                let text = String::from_utf8_lossy(&body(r)).into_owned();
                if text.contains("MANIFEST_BLOB_UNKNOWN") {
                    counts.lock().unwrap().refused += 1;
                } else {
                    counts
                        .lock()
                        .unwrap()
                        .errors
                        .push(format!("{repo}:{tag}: 400 {text}"));
                }
            }
            Ok(r) => counts
                .lock()
                .unwrap()
                .errors
                .push(format!("{repo}:{tag}: {}", r.status())),
            Err(e) => {
                // It may or may not have been committed.
                confirmed.lock().unwrap().insert(key, None);
                counts
                    .lock()
                    .unwrap()
                    .errors
                    .push(format!("{repo}:{tag}: {e}"));
            }
        }
    }
}

fn gc_races_pushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.gc = model::Gc {
        interval_secs: 1,
        grace_secs: 1,
        untagged: true,
    };
    let file = config_file(&c, dir.path());
    let reg = start_with(c);
    let base = reg.url("");
    let stop = Arc::new(AtomicBool::new(false));
    let gc_runs = Arc::new(AtomicUsize::new(0));
    let collector = {
        let stop = Arc::clone(&stop);
        let gc_runs = Arc::clone(&gc_runs);
        let file = file.clone();
        std::thread::spawn(move || {
            let mut runs = 0;
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let out = regconf_gc(&file, &["--grace", "1", "--untagged", "--format", "json"]);
                runs += 1;
                gc_runs.fetch_add(1, Ordering::Relaxed);
                if !out.status.success() {
                    failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
                }
            }
            (runs, failures)
        })
    };
    let confirmed = Arc::new(Mutex::new(Confirmed::new()));
    let counts = Arc::new(Mutex::new(Counts::default()));
    let mut rng = Rng::from_clock("gc race");
    let clients: Vec<_> = (0..CLIENTS)
        .map(|w| {
            let (base, confirmed, counts, gc_runs) = (
                base.clone(),
                Arc::clone(&confirmed),
                Arc::clone(&counts),
                Arc::clone(&gc_runs),
            );
            let seed = rng.next();
            std::thread::spawn(move || client(&base, w, seed, &gc_runs, &confirmed, &counts))
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    stop.store(true, Ordering::Relaxed);
    let (runs, failures) = collector.join().expect("collector");
    assert!(failures.is_empty(), "regconf gc failed: {failures:?}");

    // Every confirmed tag pulls byte-identical: manifest and layers.
    let a = agent();
    let confirmed = confirmed.lock().unwrap();
    let mut checked = 0;
    for ((repo, tag), last) in confirmed.iter() {
        let Some((m, layers)) = last else {
            continue;
        };
        let r = a
            .get(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .call()
            .expect("GET manifest");
        assert_eq!(r.status(), 200, "{repo}:{tag} is gone");
        assert_eq!(
            String::from_utf8(body(r)).unwrap(),
            *m,
            "{repo}:{tag} changed"
        );
        for data in layers {
            let d = digest(data);
            let r = a
                .get(format!("{base}/v2/{repo}/blobs/{d}"))
                .call()
                .expect("GET blob");
            assert_eq!(
                r.status(),
                200,
                "{repo}:{tag}: layer {d} is gone (a broken image)"
            );
            assert!(body(r) == *data, "{repo}:{tag}: layer {d} differs");
        }
        checked += 1;
    }
    // And a real client agrees, for one tag per client.
    let mut seen = std::collections::HashSet::new();
    for ((repo, tag), last) in confirmed.iter() {
        if last.is_some() && seen.insert(repo.clone()) {
            run_ok(
                "skopeo",
                &[
                    "--insecure-policy",
                    "copy",
                    "--src-tls-verify=false",
                    &format!("docker://{}/{repo}:{tag}", reg.host),
                    &format!(
                        "oci:{}:x",
                        dir.path().join(format!("pull-{}", seen.len())).display()
                    ),
                ],
                None,
                "apt-get update && apt-get install -y skopeo",
            );
        }
    }
    let counts = counts.lock().unwrap();
    eprintln!(
        "gc race: {} pushes confirmed, {} refused with MANIFEST_BLOB_UNKNOWN, {checked} tags verified, {runs} `regconf gc` runs",
        counts.confirmed, counts.refused
    );
    assert!(
        counts.errors.is_empty(),
        "client errors: {:?}",
        counts.errors
    );
    assert!(
        checked >= CLIENTS as usize,
        "too few tags confirmed to mean anything"
    );
    assert!(runs >= 1, "`regconf gc` never finished a run");
}

#[test]
fn gc_racing_eight_pushing_clients_breaks_no_image() {
    gc_races_pushes();
}

also_on_s3!(gc_racing_eight_pushing_clients_breaks_no_image);
