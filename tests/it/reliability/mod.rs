//! Reliability of `regconf serve` (issue 8): SIGKILL at random points of
//! large, chunked and manifest pushes; a full disk; 32 clients for 60 s;
//! and (issue 16, `races`) concurrent writes to one repository.
//! Loopback only; every test is bounded in time and count.

mod races;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{Rng, Server, agent, body, bytes, digest, files_under, manifest, push_blob};

const LOCAL: &str = "f:\n  storage: local\n  storage_path: ./store\n  loglevel: error\n";

/// What a client knows was pushed completely.
#[derive(Default)]
struct Pushed {
    /// digest → (repo, size, seed)
    blobs: HashMap<String, (String, usize, u64)>,
    /// (repo, tag) → manifest text
    tags: HashMap<(String, String), String>,
}

/// A chunked upload in progress.
#[derive(Clone)]
struct Upload {
    url: String,
    repo: String,
    seed: u64,
    size: usize,
    digest: String,
}

/// One step a pusher takes; `Ok` only when the registry confirmed it.
fn push_step(
    a: &ureq::Agent,
    base: &str,
    rng: &mut Rng,
    n: u64,
    pushed: &Mutex<Pushed>,
    upload: &Mutex<Option<Upload>>,
) -> Result<(), String> {
    let repo = format!("crash/r{}", rng.below(3));
    let seed = rng.next();
    let size = match rng.below(3) {
        0 => (8 << 20) + rng.below(16 << 20) as usize,
        1 => 1 + rng.below(1 << 20) as usize,
        _ => (2 << 20) + rng.below(4 << 20) as usize,
    };
    let data = bytes(seed, size);
    let d = digest(&data);
    let kind = rng.below(3);
    if kind == 0 {
        // One streamed request.
        let s = push_blob(a, base, &repo, &data, &d);
        if s != 201 {
            return Err(format!("monolithic push: {s}"));
        }
    } else {
        // Chunked: POST, PATCH chunks, PUT.
        let r = a
            .post(format!("{base}/v2/{repo}/blobs/uploads/"))
            .send_empty()
            .map_err(|e| e.to_string())?;
        let mut loc = r
            .headers()
            .get("location")
            .ok_or("no location")?
            .to_str()
            .unwrap()
            .to_owned();
        *upload.lock().unwrap() = Some(Upload {
            url: format!("{base}{loc}"),
            repo: repo.clone(),
            seed,
            size,
            digest: d.clone(),
        });
        let chunk = 1 << 20;
        let mut at = 0;
        while at < data.len() {
            let end = (at + chunk).min(data.len());
            let r = a
                .patch(format!("{base}{loc}"))
                .header("content-range", &format!("{at}-{}", end - 1))
                .header("content-type", "application/octet-stream")
                .send(&data[at..end])
                .map_err(|e| e.to_string())?;
            if r.status() != 202 {
                return Err(format!("patch: {}", r.status()));
            }
            loc = r.headers()["location"].to_str().unwrap().to_owned();
            at = end;
        }
        let r = a
            .put(format!("{base}{loc}?digest={d}"))
            .send_empty()
            .map_err(|e| e.to_string())?;
        if r.status() != 201 {
            return Err(format!("finish: {}", r.status()));
        }
        *upload.lock().unwrap() = None;
    }
    pushed
        .lock()
        .unwrap()
        .blobs
        .insert(d.clone(), (repo.clone(), size, seed));
    // A manifest over this blob and a small config.
    let config = format!("{{\"n\":{n}}}");
    let cd = digest(config.as_bytes());
    if push_blob(a, base, &repo, config.as_bytes(), &cd) != 201 {
        return Err("config push".into());
    }
    let m = manifest((&cd, config.len()), &[(d, size)]);
    let tag = format!("t{}", rng.below(4));
    let r = a
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .send(m.as_bytes())
        .map_err(|e| e.to_string())?;
    if r.status() != 201 {
        return Err(format!("manifest: {}", r.status()));
    }
    pushed.lock().unwrap().tags.insert((repo, tag), m);
    Ok(())
}

/// After a restart: every confirmed push is intact, nothing partial is
/// served, temporary files are gone.
fn verify(
    server: &Server,
    store: &Path,
    pushed: &Pushed,
    verified: &mut std::collections::HashSet<String>,
) -> usize {
    let a = agent();
    let base = server.url("");
    let mut checked = 0;
    for (d, (repo, size, seed)) in &pushed.blobs {
        // Content checked once in full; afterwards its size.
        if verified.contains(d) {
            let r = a
                .head(format!("{base}/v2/{repo}/blobs/{d}"))
                .call()
                .unwrap();
            assert_eq!(r.status(), 200, "confirmed blob {d} lost");
            assert_eq!(
                r.headers()["content-length"].to_str().unwrap(),
                size.to_string()
            );
            checked += 1;
            continue;
        }
        let r = a.get(format!("{base}/v2/{repo}/blobs/{d}")).call().unwrap();
        assert_eq!(r.status(), 200, "confirmed blob {d} lost");
        let got = body(r);
        assert_eq!(got.len(), *size, "blob {d} has the wrong size");
        assert_eq!(&digest(&got), d, "blob {d} corrupted");
        assert_eq!(got, bytes(*seed, *size));
        verified.insert(d.clone());
        checked += 1;
    }
    for ((repo, tag), m) in &pushed.tags {
        let r = a
            .get(format!("{base}/v2/{repo}/manifests/{tag}"))
            .call()
            .unwrap();
        assert_eq!(r.status(), 200, "{repo}:{tag} lost");
        let got = body(r);
        // The tag may have moved to a later push of the same name, but it
        // always names a complete, valid manifest whose blobs are served.
        let v: serde_json::Value = serde_json::from_slice(&got).expect("manifest is whole JSON");
        if got != m.as_bytes() {
            let later = v["layers"][0]["digest"].as_str().unwrap();
            let r = a
                .head(format!("{base}/v2/{repo}/blobs/{later}"))
                .call()
                .unwrap();
            assert_eq!(r.status(), 200, "{repo}:{tag} names a missing blob");
        }
        checked += 1;
    }
    // Every tag of every repository names a complete manifest, and every
    // blob it names is served with the right digest.
    for r in 0..3 {
        let repo = format!("crash/r{r}");
        let resp = a.get(format!("{base}/v2/{repo}/tags/list")).call().unwrap();
        if resp.status() == 404 {
            continue;
        }
        let tags: serde_json::Value = serde_json::from_slice(&body(resp)).unwrap();
        for t in tags["tags"].as_array().into_iter().flatten() {
            let t = t.as_str().unwrap();
            let got = body(
                a.get(format!("{base}/v2/{repo}/manifests/{t}"))
                    .call()
                    .unwrap(),
            );
            let v: serde_json::Value = serde_json::from_slice(&got).expect("whole manifest");
            for l in v["layers"].as_array().unwrap() {
                let ld = l["digest"].as_str().unwrap();
                if verified.contains(ld) {
                    let r = a
                        .head(format!("{base}/v2/{repo}/blobs/{ld}"))
                        .call()
                        .unwrap();
                    assert_eq!(r.status(), 200, "{repo}:{t} names a missing blob");
                    continue;
                }
                let blob = body(
                    a.get(format!("{base}/v2/{repo}/blobs/{ld}"))
                        .call()
                        .unwrap(),
                );
                assert_eq!(digest(&blob), ld, "{repo}:{t} serves a partial blob");
                assert_eq!(blob.len() as u64, l["size"].as_u64().unwrap());
                verified.insert(ld.to_owned());
            }
        }
    }
    // No temporary file survives a restart.
    let tmp: Vec<_> = files_under(&store.join("_tmp"))
        .into_iter()
        .filter(|p| p.as_os_str() != ".lock")
        .collect();
    assert!(tmp.is_empty(), "temporary files left: {tmp:?}");
    checked
}

#[test]
fn sigkill_during_pushes_loses_nothing_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let pushed = Arc::new(Mutex::new(Pushed::default()));
    let mut rng = Rng::from_clock("sigkill");
    let kills = 24;
    let mut interrupted_uploads = 0;
    let mut resumed = 0;
    let mut checked = 0;
    let mut verified = std::collections::HashSet::new();
    let started = Instant::now();
    for round in 0..kills as u64 {
        let mut server = Server::start(dir.path(), LOCAL);
        // After a restart, the upload interrupted last time is either
        // gone or can go on from where storage says it is.
        let base = server.url("");
        checked += verify(&server, &store, &pushed.lock().unwrap(), &mut verified);
        let upload = Arc::new(Mutex::new(None::<Upload>));
        let stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let (pushed, upload, stop) =
                (Arc::clone(&pushed), Arc::clone(&upload), Arc::clone(&stop));
            let base = base.clone();
            let seed = rng.next();
            std::thread::spawn(move || {
                let a = agent();
                let mut rng = Rng(seed | 1);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    if push_step(&a, &base, &mut rng, round * 1000 + n, &pushed, &upload).is_err() {
                        break;
                    }
                }
                upload.lock().unwrap().clone()
            })
        };
        std::thread::sleep(Duration::from_millis(100 + rng.below(2500)));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        let open_upload = worker.join().unwrap();
        if let Some(up) = open_upload {
            interrupted_uploads += 1;
            let server = Server::start(dir.path(), LOCAL);
            let url = up.url.replace(&base, &server.url(""));
            let a = agent();
            let r = a.get(&url).call().unwrap();
            // The chunked upload was interrupted before its last request
            // ended: it goes on from the size storage reports.
            assert_eq!(r.status(), 204, "interrupted upload is gone");
            let range = r.headers()["range"].to_str().unwrap().to_owned();
            let end: usize = range.split('-').nth(1).unwrap().parse().unwrap();
            let data = bytes(up.seed, up.size);
            let mut from = if range == "0-0" { 0 } else { end + 1 };
            assert!(from <= up.size, "storage holds more than was sent: {range}");
            // When the kill came after the last chunk but before the PUT,
            // every byte is there and only the PUT remains.
            if from < up.size {
                let mut r = a
                    .patch(&url)
                    .header("content-range", &format!("{from}-{}", up.size - 1))
                    .send(&data[from..])
                    .unwrap();
                if r.status() == 416 && from == 0 {
                    from = 1;
                    r = a
                        .patch(&url)
                        .header("content-range", &format!("{from}-{}", up.size - 1))
                        .send(&data[from..])
                        .unwrap();
                }
                assert_eq!(r.status(), 202, "resuming at {from}");
            }
            let r = a
                .put(format!("{url}?digest={}", up.digest))
                .send_empty()
                .unwrap();
            assert_eq!(r.status(), 201, "finishing a resumed upload");
            pushed
                .lock()
                .unwrap()
                .blobs
                .insert(up.digest.clone(), (up.repo.clone(), up.size, up.seed));
            resumed += 1;
            drop(server);
        }
    }
    // At the end, every confirmed blob is downloaded and hashed again.
    verified.clear();
    let server = Server::start(dir.path(), LOCAL);
    checked += verify(&server, &store, &pushed.lock().unwrap(), &mut verified);
    let p = pushed.lock().unwrap();
    eprintln!(
        "sigkill: {kills} kills survived in {:?}; {} blobs and {} tags confirmed, {checked} checks, {interrupted_uploads} uploads interrupted, {resumed} restarted, 0 corruptions",
        started.elapsed(),
        p.blobs.len(),
        p.tags.len()
    );
    assert!(
        p.blobs.len() >= 10,
        "too few pushes completed to mean anything"
    );
}

/// Mounts a tmpfs of `mib` MiB at `dir`; unmounts on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mib: u32) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(dir.to_path_buf()))
    }

    fn used_kib(&self) -> u64 {
        let out = std::process::Command::new("df")
            .args(["-k", "--output=used"])
            .arg(&self.0)
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn full_disk_fails_cleanly_and_gives_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("store"), 32) else {
        panic!("cannot mount a tmpfs (the test needs root: `mount -t tmpfs`)");
    };
    let server = Server::start(dir.path(), LOCAL);
    let a = agent();
    let base = server.url("");
    // Something that fits.
    let small = bytes(1, 1 << 20);
    let sd = digest(&small);
    assert_eq!(push_blob(&a, &base, "full/app", &small, &sd), 201);
    let config = b"{}";
    let cd = digest(config);
    assert_eq!(push_blob(&a, &base, "full/app", config, &cd), 201);
    let m = manifest((&cd, 2), &[(sd.clone(), small.len())]);
    let r = a
        .put(format!("{base}/v2/full/app/manifests/v1"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .send(m.as_bytes())
        .unwrap();
    assert_eq!(r.status(), 201);
    let before = fs.used_kib();

    // A 40 MiB layer in one request: 507 with an OCI body.
    let big = bytes(2, 40 << 20);
    let bd = digest(&big);
    // curl reads the answer while it sends, as registry clients do; the
    // registry answers as soon as the disk is full, without reading the rest.
    std::fs::write(dir.path().join("big"), &big).unwrap();
    let curl = |method: &str, url: String, range: Option<String>, from: usize| {
        std::fs::write(dir.path().join("part"), &big[from..]).unwrap();
        let mut c = std::process::Command::new("curl");
        c.args([
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
            "--data-binary",
        ])
        .arg(format!("@{}", dir.path().join("part").display()))
        .args([
            "-H",
            "content-type: application/octet-stream",
            "--max-time",
            "60",
        ]);
        if let Some(r) = range {
            c.args(["-H", &format!("content-range: {r}")]);
        }
        let out = c.arg(url).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.parse::<u16>().unwrap_or(0), body.to_owned())
    };
    let (status, text) = curl(
        "POST",
        format!("{base}/v2/full/app/blobs/uploads/?digest={bd}"),
        None,
        0,
    );
    assert_eq!(status, 507, "{text}");
    assert!(
        text.contains(r#""code":"UNKNOWN""#) && text.contains("storage is full"),
        "{text}"
    );
    // Its upload folder is gone: the client never learned where it was.
    let left = files_under(&dir.path().join("store/repositories/full/app/_uploads"));
    assert!(left.is_empty(), "{left:?}");
    // Chunked: the chunk that does not fit is refused and undone; the
    // upload stays where it was and can be cancelled.
    let r = a
        .post(format!("{base}/v2/full/app/blobs/uploads/"))
        .send_empty()
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let r = a
        .patch(format!("{base}{loc}"))
        .header("content-range", "0-4194303")
        .send(&big[..4 << 20])
        .unwrap();
    assert_eq!(r.status(), 202);
    let (status, text) = curl(
        "PATCH",
        format!("{base}{loc}"),
        Some(format!("4194304-{}", (40 << 20) - 1)),
        4 << 20,
    );
    assert_eq!(status, 507, "{text}");
    let r = a.get(format!("{base}{loc}")).call().unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"].to_str().unwrap(), "0-4194303");
    assert_eq!(
        a.delete(format!("{base}{loc}")).call().unwrap().status(),
        204
    );

    // Nothing half-written is visible; reads keep working.
    assert_eq!(
        a.head(format!("{base}/v2/full/app/blobs/{bd}"))
            .call()
            .unwrap()
            .status(),
        404
    );
    let got = body(
        a.get(format!("{base}/v2/full/app/blobs/{sd}"))
            .call()
            .unwrap(),
    );
    assert_eq!(digest(&got), sd);
    let got = body(
        a.get(format!("{base}/v2/full/app/manifests/v1"))
            .call()
            .unwrap(),
    );
    assert_eq!(got, m.as_bytes());
    // Space is given back, and a push that fits works again.
    let after = fs.used_kib();
    eprintln!("full disk: used {before} KiB before, {after} KiB after the refused pushes");
    assert!(
        after <= before + 64,
        "space not reclaimed: {before} → {after} KiB"
    );
    let tmp: Vec<_> = files_under(&dir.path().join("store/_tmp"))
        .into_iter()
        .filter(|p| p.as_os_str() != ".lock")
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
    let again = bytes(3, 2 << 20);
    let ad = digest(&again);
    assert_eq!(push_blob(&a, &base, "full/app", &again, &ad), 201);
    assert!(server.alive());
    drop(server);
    drop(fs);
}

#[test]
fn thirty_two_clients_for_sixty_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), LOCAL);
    let base = server.url("");
    let requests = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let blobs = Arc::new(Mutex::new(HashMap::<String, (String, u64, usize)>::new()));
    let duration = Duration::from_secs(60);
    let start = Instant::now();
    // Shared content: the same layer pushed by everyone into one repository.
    let shared = bytes(424_242, 300_000);
    let shared_d = digest(&shared);
    let mut workers = Vec::new();
    for w in 0..32u64 {
        let (base, requests, errors, blobs) = (
            base.clone(),
            Arc::clone(&requests),
            Arc::clone(&errors),
            Arc::clone(&blobs),
        );
        let (shared, shared_d) = (shared.clone(), shared_d.clone());
        workers.push(std::thread::spawn(move || {
            let a = agent();
            let mut rng = Rng(w * 7919 + 1);
            let mut mine: Vec<(String, String, usize)> = Vec::new();
            let mut n = 0u64;
            let fail = |what: String| errors.lock().unwrap().push(what);
            while start.elapsed() < duration {
                n += 1;
                let repo = if rng.below(2) == 0 {
                    format!("load/w{w}")
                } else {
                    "load/shared".to_owned()
                };
                let (data, seed, size) = if rng.below(4) == 0 {
                    (shared.clone(), 424_242, shared.len())
                } else {
                    let seed = w << 32 | n;
                    let size = 1 + rng.below(512 << 10) as usize;
                    (bytes(seed, size), seed, size)
                };
                let d = if seed == 424_242 {
                    shared_d.clone()
                } else {
                    digest(&data)
                };
                requests.fetch_add(1, Ordering::Relaxed);
                let s = push_blob(&a, &base, &repo, &data, &d);
                if s != 201 {
                    fail(format!("push {repo} {d}: {s}"));
                    continue;
                }
                blobs
                    .lock()
                    .unwrap()
                    .insert(d.clone(), (repo.clone(), seed, size));
                let cfg = format!("{{\"w\":{w},\"n\":{n}}}");
                let cd = digest(cfg.as_bytes());
                requests.fetch_add(1, Ordering::Relaxed);
                if push_blob(&a, &base, &repo, cfg.as_bytes(), &cd) != 201 {
                    fail(format!("config {repo}"));
                    continue;
                }
                let m = manifest((&cd, cfg.len()), &[(d.clone(), size)]);
                let tag = format!("w{w}-{}", n % 5);
                requests.fetch_add(1, Ordering::Relaxed);
                match a
                    .put(format!("{base}/v2/{repo}/manifests/{tag}"))
                    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                    .send(m.as_bytes())
                {
                    Ok(r) if r.status() == 201 => mine.push((repo.clone(), tag, m.len())),
                    Ok(r) => fail(format!("manifest {repo}:{tag}: {}", r.status())),
                    Err(e) => fail(format!("manifest {repo}:{tag}: {e}")),
                }
                // Pull something pushed earlier (by this client) and check it.
                if !mine.is_empty() {
                    let (repo, tag, _) = &mine[rng.below(mine.len() as u64) as usize];
                    requests.fetch_add(2, Ordering::Relaxed);
                    match a.get(format!("{base}/v2/{repo}/manifests/{tag}")).call() {
                        Ok(r) if r.status() == 200 => {
                            let v: serde_json::Value =
                                serde_json::from_slice(&body(r)).unwrap_or_default();
                            let ld = v["layers"][0]["digest"].as_str().unwrap_or("").to_owned();
                            match a.get(format!("{base}/v2/{repo}/blobs/{ld}")).call() {
                                Ok(r) if r.status() == 200 => {
                                    let b = body(r);
                                    if digest(&b) != ld {
                                        fail(format!("corrupt pull {repo} {ld}"));
                                    }
                                }
                                other => fail(format!(
                                    "pull blob {repo} {ld}: {:?}",
                                    other.map(|r| r.status())
                                )),
                            }
                        }
                        other => fail(format!(
                            "pull {repo}:{tag}: {:?}",
                            other.map(|r| r.status())
                        )),
                    }
                }
            }
        }));
    }
    // Memory at 20 s and at the end.
    std::thread::sleep(Duration::from_secs(20));
    let hwm20 = server.vm_hwm_kib();
    for w in workers {
        w.join().unwrap();
    }
    let hwm60 = server.vm_hwm_kib();
    let served = requests.load(Ordering::Relaxed);
    // Every blob ever pushed, verified afterwards.
    let a = agent();
    let all = blobs.lock().unwrap().clone();
    for (d, (repo, seed, size)) in &all {
        let r = a.get(format!("{base}/v2/{repo}/blobs/{d}")).call().unwrap();
        assert_eq!(r.status(), 200, "{d}");
        let b = body(r);
        assert_eq!(&digest(&b), d);
        assert_eq!(b, bytes(*seed, *size));
    }
    let errors = errors.lock().unwrap();
    eprintln!(
        "load: 32 clients, {served} requests in {:?}, {} blobs verified, {} errors, VmHWM {hwm20} KiB at 20 s, {hwm60} KiB at the end",
        start.elapsed(),
        all.len(),
        errors.len()
    );
    assert!(
        errors.is_empty(),
        "{} errors, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(served > 1000, "only {served} requests");
    assert!(
        hwm60 <= hwm20 + hwm20 / 2 + 16 * 1024,
        "memory grew: {hwm20} → {hwm60} KiB"
    );
}
