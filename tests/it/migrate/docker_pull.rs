//! The Docker client pulls a converted tag: the top layer's file has its
//! bytes, the base layer's file is there, the whited-out file is not.

use super::{HELLO, Store, migrate, write_local};
use crate::docker::Daemon;
use crate::harness::Server;

const CONFIG: &str = "f:\n  storage: local\n  storage_path: ./store\n  loglevel: info\n";

fn copy_out(d: &Daemon, client: &std::path::Path, container: &str, path: &str) -> Option<Vec<u8>> {
    let dest = client.join("copied");
    let _ = std::fs::remove_file(&dest);
    let out = d.docker(
        client,
        &["cp", &format!("{container}:{path}"), dest.to_str().unwrap()],
    );
    out.status.success().then(|| std::fs::read(&dest).unwrap())
}

#[test]
fn docker_pulls_a_converted_tag_with_its_whiteout_applied() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_local(&d.join("store"), &Store { big_layer: 0 });
    std::fs::write(d.join("config.yml"), CONFIG).unwrap();
    let out = migrate(d, &["--repository", "library/busybox"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let s = Server::start(d, CONFIG);
    let daemon = Daemon::shared();
    let client = d.join("client");
    std::fs::create_dir_all(&client).unwrap();
    let image = format!("127.0.0.1:{}/busybox:latest", s.port);
    daemon.docker_ok(&client, &["pull", &image]);
    let id = daemon.docker_ok(&client, &["create", &image, "/nothing"]);
    let id = id.trim();
    let hello = copy_out(&daemon, &client, id, "/hello.txt");
    let base = copy_out(&daemon, &client, id, "/etc/base.txt");
    let gone = copy_out(&daemon, &client, id, "/gone.txt");
    daemon.docker_ok(&client, &["rm", id]);
    daemon.docker_ok(&client, &["rmi", &image]);
    assert_eq!(hello.as_deref(), Some(HELLO));
    assert_eq!(base.as_deref(), Some(&b"base layer\n"[..]));
    assert_eq!(gone, None, "the whited-out file is in the container");
}
