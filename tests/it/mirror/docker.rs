//! The Docker client pulls through the mirror (its own `dockerd`, see
//! `tests/it/docker.rs`): an image pushed to the upstream as
//! `library/NAME` is pulled as `mirror/NAME`, with the digest it was
//! pushed with and its file intact, and again after the upstream stopped.

use super::{Auth, Upstream, mirror};
use crate::docker::{Daemon, file_in_image, rootfs_tarball, unique};

#[test]
fn docker_pulls_through_the_mirror_and_after_the_upstream_stopped() {
    let daemon = Daemon::shared();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let client = dir.join("client");
    std::fs::create_dir_all(&client).unwrap();
    let mut up = Upstream::start(&dir.join("upstream"), Auth::None);
    let content = unique("pulled through the mirror");
    let tar = rootfs_tarball(dir, &content);
    let name = format!("mirrored{}", up.port);
    let upstream_ref = format!("127.0.0.1:{}/library/{name}:v1", up.port);
    daemon.docker_ok(&client, &["import", tar.to_str().unwrap(), &upstream_ref]);
    let out = daemon.docker_ok(&client, &["push", &upstream_ref]);
    let pushed = out
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in the push output: {out}"))
        .to_owned();
    daemon.docker_ok(&client, &["rmi", &upstream_ref]);

    let reg = mirror(&dir.join("mirror"), &up.url(), |_| {});
    let through = format!("{}/{name}:v1", reg.host);
    for round in ["upstream running", "upstream stopped"] {
        let out = daemon.docker_ok(&client, &["pull", &through]);
        assert!(out.contains(&pushed), "{round}: {out}");
        let digests = daemon.docker_ok(
            &client,
            &[
                "image",
                "inspect",
                "--format",
                "{{json .RepoDigests}}",
                &through,
            ],
        );
        assert!(digests.contains(&pushed), "{round}: {digests}");
        assert_eq!(
            file_in_image(&daemon, &client, &through),
            content,
            "{round}"
        );
        daemon.docker_ok(&client, &["rmi", &through]);
        up.stop();
    }
}
