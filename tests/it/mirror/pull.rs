//! Pulls through the mirror: byte-identical images from token, Basic and
//! anonymous upstreams; pulls that outlive the upstream; tags re-checked
//! after `tags_cache_ttl` and not before; one upstream fetch for
//! concurrent pulls of a 64 MiB blob; a corrupted blob refused and not
//! stored; pushes refused.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::token::TokenServer;
use super::{Auth, Upstream, assert_same_blobs, corrupt, layout_digest, mirror, pull};
use crate::harness::{agent, body, bytes, digest};
use crate::registry::image::oci_layout;
use crate::registry::{Listable as _, curl};

#[test]
fn token_upstream_pulls_are_byte_identical_and_outlive_the_upstream() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tokens = TokenServer::start(&dir.join("token"));
    let issued = tokens.issued.clone();
    let to_user = tokens.to_user.clone();
    let mut up = Upstream::start(&dir.join("upstream"), Auth::Token(tokens));
    let src = dir.join("src");
    let image = oci_layout(&src, "v1", &[200_000, 2_000_000, 10], 7);
    up.push(&src, "v1", "library/app", "v1");
    up.push(&src, "v1", "team/tool", "1.0");
    // The upstream checks tokens: without one, nothing.
    let anon = curl(&[&format!("{}/v2/library/app/manifests/v1", up.url())]);
    assert_eq!(anon.status, 401);

    let reg = mirror(&dir.join("mirror"), &up.url(), |_| {});
    let before = issued.load(Ordering::SeqCst);
    // One component: `library/app` upstream.
    let a = pull(&reg.host, "app:v1", &dir.join("a"));
    assert_same_blobs(&src, &a, &image);
    let b = pull(&reg.host, "team/tool:1.0", &dir.join("b"));
    assert_same_blobs(&src, &b, &image);
    let tokens_used = issued.load(Ordering::SeqCst) - before;
    assert!(
        (1..=4).contains(&tokens_used),
        "the mirror should fetch a token per repository and reuse it, fetched {tokens_used}"
    );

    // With credentials, the mirror asks for its tokens as the user.
    let (user, password) = TokenServer::user();
    let with_user = mirror(&dir.join("with-user"), &up.url(), |m| {
        m.username = Some(user.into());
        m.password = Some(password.into());
    });
    let before = to_user.load(Ordering::SeqCst);
    let c = pull(&with_user.host, "team/tool:1.0", &dir.join("c"));
    assert_same_blobs(&src, &c, &image);
    assert!(to_user.load(Ordering::SeqCst) > before);

    // Pushes are refused, with the reason.
    let push = curl(&["-X", "POST", &reg.url("/v2/app/blobs/uploads/")]);
    assert_eq!(push.status, 405);
    let err = &push.json()["errors"][0];
    assert_eq!(err["code"], "UNSUPPORTED");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("mirroring.allow_push"),
        "{err}"
    );
    // Tag lists and the catalog show what is stored here.
    let tags = curl(&[&reg.url("/v2/app/tags/list")]).json();
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));
    let catalog = curl(&[&reg.url("/v2/_catalog")]).json();
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["app", "team/tool"])
    );

    // Without the upstream, what was pulled is still served.
    up.stop();
    let a = pull(&reg.host, "app:v1", &dir.join("a2"));
    assert_same_blobs(&src, &a, &image);
    let b = pull(&reg.host, "team/tool:1.0", &dir.join("b2"));
    assert_same_blobs(&src, &b, &image);
    // What was never pulled: a clear error naming the upstream.
    let missing = curl(&["--max-time", "60", &reg.url("/v2/other/manifests/v1")]);
    assert_eq!(missing.status, 502);
    let message = missing.json()["errors"][0]["message"].to_string();
    assert!(
        message.contains(&up.url()) && message.contains("connect"),
        "{message}"
    );
}

#[test]
fn basic_upstream_tags_are_rechecked_after_the_ttl_and_not_before() {
    const TTL: u64 = 5;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (user, password) = ("mirror-bot", "s3cret-pw");
    let mut up = Upstream::start(
        &dir.join("upstream"),
        Auth::Basic {
            user: user.into(),
            password: password.into(),
        },
    );
    let (src1, src2) = (dir.join("src1"), dir.join("src2"));
    let one = oci_layout(&src1, "v1", &[100_000], 1);
    let two = oci_layout(&src2, "v1", &[120_000, 7], 2);
    up.push(&src1, "v1", "library/web", "latest");

    // Without credentials the upstream's refusal is reported.
    let anon = mirror(&dir.join("anon"), &up.url(), |_| {});
    let r = curl(&[&anon.url("/v2/web/manifests/latest")]);
    assert_eq!(r.status, 502);
    assert!(
        String::from_utf8_lossy(&r.body).contains("mirroring.username"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    let reg = mirror(&dir.join("mirror"), &up.url(), |m| {
        m.username = Some(user.into());
        m.password = Some(password.into());
        m.tags_cache_ttl = Some(TTL as i64);
    });
    let a = pull(&reg.host, "web:latest", &dir.join("a"));
    let fetched = Instant::now();
    assert_same_blobs(&src1, &a, &one);

    // The tag moves upstream; within the TTL the mirror keeps its copy.
    up.push(&src2, "v1", "library/web", "latest");
    let head = curl(&[
        "-I",
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &reg.url("/v2/web/manifests/latest"),
    ]);
    assert!(
        fetched.elapsed() < Duration::from_secs(TTL),
        "the machine is too slow for this test's {TTL}s TTL"
    );
    assert_eq!(
        head.header("docker-content-digest"),
        Some(one.manifest.as_str())
    );

    // After it, the next pull sees the new manifest.
    std::thread::sleep(Duration::from_secs(TTL + 1).saturating_sub(fetched.elapsed()));
    let b = pull(&reg.host, "web:latest", &dir.join("b"));
    let refetched = Instant::now();
    assert_same_blobs(&src2, &b, &two);

    // A stale tag whose upstream is gone: the stored one is served.
    up.stop();
    std::thread::sleep(Duration::from_secs(TTL + 1).saturating_sub(refetched.elapsed()));
    let c = pull(&reg.host, "web:latest", &dir.join("c"));
    assert_same_blobs(&src2, &c, &two);
}

#[test]
fn concurrent_pulls_of_one_blob_fetch_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let up = Upstream::start(&dir.join("upstream"), Auth::None);
    let data = bytes(64, 64 << 20);
    let d = digest(&data);
    up.push_blob("library/big", &data, &d);
    let reg = mirror(&dir.join("mirror"), &up.url(), |_| {});
    let url = reg.url(&format!("/v2/big/blobs/{d}"));
    let pulls: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || body(agent().get(&url).call().unwrap()))
        })
        .collect();
    for p in pulls {
        let got = p.join().unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data, "a pulled copy differs");
    }
    let path = format!("/v2/library/big/blobs/{d}");
    assert_eq!(up.gets(&path), 1, "upstream log:\n{}", up.log());
    // Later pulls are local.
    assert!(body(agent().get(&url).call().unwrap()) == data);
    assert_eq!(up.gets(&path), 1);
}

#[test]
fn a_silent_upstream_gets_a_clear_error_in_bounded_time() {
    // The kernel accepts connections into the backlog; nobody answers, so
    // only the mirror's idle timeout ends the request.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    let reg = mirror(tmp.path(), &format!("http://127.0.0.1:{port}"), |_| {});
    let r = curl(&["--max-time", "90", &reg.url("/v2/quiet/manifests/v1")]);
    assert_eq!(r.status, 502);
    let err = &r.json()["errors"][0];
    assert_eq!(err["code"], "UNKNOWN");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("127.0.0.1:{port}")) && message.contains("timed out"),
        "{message}"
    );
    drop(silent);
}

/// A blob corrupted on its way from the upstream fails the pull and
/// leaves nothing behind; manifests from the same upstream still work.
fn corrupted_blob_is_refused_and_not_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let up = Upstream::start(&dir.join("upstream"), Auth::None);
    let data = bytes(5, 300_000);
    let d = digest(&data);
    up.push_blob("library/bad", &data, &d);
    let proxy = corrupt::start(up.port);
    let reg = mirror(
        &dir.join("mirror"),
        &format!("http://127.0.0.1:{proxy}"),
        |_| {},
    );
    let url = reg.url(&format!("/v2/bad/blobs/{d}"));
    for _ in 0..2 {
        let got = agent()
            .get(&url)
            .call()
            .map(|r| (r.status().as_u16(), body(r)));
        if let Ok((status, got)) = got {
            assert!(
                status != 200 || got != data,
                "the corrupted blob was served whole"
            );
            assert_ne!(digest(&got), d);
        }
    }
    let hex = &d["sha256:".len()..];
    let kept: Vec<String> = reg
        .root
        .files()
        .into_iter()
        .filter(|f| f.contains(hex) || f.contains("_uploads"))
        .collect();
    assert!(kept.is_empty(), "left behind: {kept:?}");
}

#[test]
fn corrupted_upstream_blob_is_refused_and_not_stored() {
    corrupted_blob_is_refused_and_not_stored();
}

/// An anonymous upstream, pulled through, then stopped.
fn anonymous_pull_through() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut up = Upstream::start(&dir.join("upstream"), Auth::None);
    let src = dir.join("src");
    let image = oci_layout(&src, "v1", &[1_000_000, 50_000], 11);
    up.push(&src, "v1", "library/base", "3.1");
    let reg = mirror(&dir.join("mirror"), &up.url(), |_| {});
    let a = pull(&reg.host, "base:3.1", &dir.join("a"));
    assert_same_blobs(&src, &a, &image);
    // By digest too.
    let by_digest = format!("base@{}", image.manifest);
    let b = pull(&reg.host, &by_digest, &dir.join("b"));
    assert_eq!(layout_digest(&b), image.manifest);
    up.stop();
    let c = pull(&reg.host, "base:3.1", &dir.join("c"));
    assert_same_blobs(&src, &c, &image);
    // `allow_push: true` accepts pushes.
    let open = mirror(&dir.join("open"), &up.url(), |m| m.allow_push = true);
    let data = bytes(3, 1000);
    let d = digest(&data);
    assert_eq!(
        crate::harness::push_blob(
            &agent(),
            &format!("http://{}", open.host),
            "mine",
            &data,
            &d
        ),
        201
    );
}

#[test]
fn anonymous_upstream_pull_through() {
    anonymous_pull_through();
}

mod s3 {
    #[test]
    fn anonymous_upstream_pull_through() {
        crate::registry::on_s3(super::anonymous_pull_through);
    }

    #[test]
    fn corrupted_upstream_blob_is_refused_and_not_stored() {
        crate::registry::on_s3(super::corrupted_blob_is_refused_and_not_stored);
    }
}
