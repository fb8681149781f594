//! `regconf migrate-v1` against a v1 store the tests write in
//! docker-registry 0.9's layout (local and on moto's S3), then pulled by
//! skopeo and the Docker client from `regconf serve`.
//!
//! The store ([`write_v1_store`]): a gzipped base layer shared by two
//! repositories, plain-tar child layers (one with a whiteout of a base
//! file), `library/` names, a tarsum-only checksum, and one broken image of
//! each kind (still uploading, no layer, ancestry not matching the parent,
//! checksum mismatch).

mod docker_pull;
mod runs;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use sha2::Digest as _;

use crate::common::regconf;

/// A v1 image id derived from a name.
pub(crate) fn id(name: &str) -> String {
    hex::encode(sha2::Sha256::digest(name.as_bytes()))
}

/// A tar of `files` (path, content); a path ending in `/` is a directory.
pub(crate) fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_420_070_400);
        h.set_uid(0);
        h.set_gid(0);
        if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, path, &[][..]).unwrap();
        } else {
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Content of `hello.txt` in the top layer of `library/busybox:latest`.
pub(crate) const HELLO: &[u8] = b"hello from a docker-registry 0.9 layer\n";

/// Size of the big plain layer of `team/big` (0 to leave it out).
pub(crate) struct Store {
    pub(crate) big_layer: usize,
}

/// What one image is made of.
struct Img<'a> {
    name: &'a str,
    parent: Option<&'a str>,
    layer: Option<Vec<u8>>,
    /// `Some(c)`: this `_checksum` content; `None`: the right `sha256:`.
    checksum: Option<String>,
    in_progress: bool,
    /// The ancestry as written (default: the real one).
    ancestry: Option<Vec<String>>,
}

impl Img<'_> {
    fn json(&self) -> Vec<u8> {
        let mut j = serde_json::json!({
            "id": id(self.name),
            "created": "2015-01-01T00:00:00.000000000Z",
            "container_config": {"Cmd": ["/bin/sh", "-c", format!("#(nop) ADD {}", self.name)]},
            "config": {"Cmd": ["/hello"], "Env": ["PATH=/bin"]},
            "docker_version": "1.3.2",
            "architecture": "amd64",
            "os": "linux",
            "Size": 0,
        });
        if let Some(p) = self.parent {
            j["parent"] = id(p).into();
        }
        serde_json::to_vec(&j).unwrap()
    }
}

/// Writes the v1 store through `put(path, bytes)`.
pub(crate) fn write_v1_store(store: &Store, put: &mut dyn FnMut(&str, &[u8])) {
    let base_tar = tar(&[
        ("etc/", b""),
        ("etc/base.txt", b"base layer\n"),
        ("gone.txt", b"removed by the child\n"),
    ]);
    let child = tar(&[("hello.txt", HELLO), (".wh.gone.txt", b"")]);
    let other = tar(&[("hello.txt", b"team app v1\n")]);
    let small = tar(&[("x.txt", b"x\n")]);
    let mut images = vec![
        Img {
            name: "base",
            parent: None,
            layer: Some(gzip(&base_tar)),
            checksum: None,
            in_progress: false,
            ancestry: None,
        },
        Img {
            name: "child",
            parent: Some("base"),
            layer: Some(child),
            checksum: None,
            in_progress: false,
            ancestry: None,
        },
        Img {
            name: "other",
            parent: Some("base"),
            layer: Some(other),
            checksum: Some(format!("tarsum+sha256:{}", id("a tarsum"))),
            in_progress: false,
            ancestry: None,
        },
        Img {
            name: "uploading",
            parent: Some("base"),
            layer: Some(small.clone()),
            checksum: None,
            in_progress: true,
            ancestry: None,
        },
        Img {
            name: "nolayer",
            parent: Some("base"),
            layer: None,
            checksum: None,
            in_progress: false,
            ancestry: None,
        },
        Img {
            name: "badancestry",
            parent: Some("base"),
            layer: Some(small.clone()),
            checksum: None,
            in_progress: false,
            ancestry: Some(vec![id("badancestry"), id("child"), id("base")]),
        },
        Img {
            name: "badsum",
            parent: Some("base"),
            layer: Some(small),
            checksum: Some(format!("[\"sha256:{}\"]", id("wrong"))),
            in_progress: false,
            ancestry: None,
        },
    ];
    if store.big_layer > 0 {
        // Poorly compressible, so that compressing it takes a while.
        let mut data = vec![0u8; store.big_layer];
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = chunk.len();
            chunk.copy_from_slice(&x.to_le_bytes()[..n]);
        }
        images.push(Img {
            name: "big",
            parent: Some("base"),
            layer: Some(tar(&[("big.bin", &data)])),
            checksum: None,
            in_progress: false,
            ancestry: None,
        });
    }
    let parent_of = |n: &str| -> Option<String> {
        let i = [
            ("child", "base"),
            ("other", "base"),
            ("uploading", "base"),
            ("nolayer", "base"),
            ("badancestry", "base"),
            ("badsum", "base"),
            ("big", "base"),
        ];
        i.iter()
            .find(|(c, _)| *c == n)
            .map(|(_, p)| (*p).to_owned())
    };
    for img in &images {
        let i = id(img.name);
        let json = img.json();
        put(&format!("images/{i}/json"), &json);
        let ancestry = img.ancestry.clone().unwrap_or_else(|| {
            let mut a = vec![i.clone()];
            let mut n = img.name.to_owned();
            while let Some(p) = parent_of(&n) {
                a.push(id(&p));
                n = p;
            }
            a
        });
        put(
            &format!("images/{i}/ancestry"),
            serde_json::to_string(&ancestry).unwrap().as_bytes(),
        );
        if let Some(layer) = &img.layer {
            put(&format!("images/{i}/layer"), layer);
        }
        let checksum = img.checksum.clone().unwrap_or_else(|| {
            let mut h = sha2::Sha256::new();
            h.update(&json);
            h.update(b"\n");
            h.update(img.layer.as_deref().unwrap_or_default());
            format!("[\"sha256:{}\"]", hex::encode(h.finalize()))
        });
        put(&format!("images/{i}/_checksum"), checksum.as_bytes());
        if img.in_progress {
            put(&format!("images/{i}/_inprogress"), b"true");
        }
    }
    let mut tag = |repo: &str, t: &str, image: &str| {
        put(
            &format!("repositories/{repo}/tag_{t}"),
            id(image).as_bytes(),
        );
        put(
            &format!("repositories/{repo}/tag{t}_json"),
            br#"{"last_update": 1420070400, "docker_version": "1.3.2", "arch": "amd64", "os": "linux"}"#,
        );
    };
    tag("library/busybox", "latest", "child");
    tag("library/busybox", "base", "base");
    tag("team/app", "v1", "other");
    tag("team/app", "latest", "child");
    tag("team/broken", "uploading", "uploading");
    tag("team/broken", "nolayer", "nolayer");
    tag("team/broken", "badancestry", "badancestry");
    tag("team/broken", "badsum", "badsum");
    if store.big_layer > 0 {
        tag("team/big", "latest", "big");
    }
    for repo in ["library/busybox", "team/app", "team/broken"] {
        put(&format!("repositories/{repo}/json"), b"[]");
        put(&format!("repositories/{repo}/_index_images"), b"[]");
    }
}

/// Writes the v1 store under `dir`.
pub(crate) fn write_local(dir: &Path, store: &Store) {
    write_v1_store(store, &mut |p, data| {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    });
}

/// `regconf migrate-v1 config.yml --flavor f ARGS` in `dir`.
pub(crate) fn migrate(dir: &Path, args: &[&str]) -> Output {
    regconf(dir)
        .args(["migrate-v1", "config.yml", "--flavor", "f"])
        .args(args)
        .output()
        .unwrap()
}

/// The skipped lines every run over the store prints.
pub(crate) fn skipped_lines() -> String {
    let badsum = Img {
        name: "badsum",
        parent: Some("base"),
        layer: None,
        checksum: None,
        in_progress: false,
        ancestry: None,
    };
    let mut h = sha2::Sha256::new();
    h.update(badsum.json());
    h.update(b"\n");
    h.update(tar(&[("x.txt", b"x\n")]));
    let actual = format!("sha256:{}", hex::encode(h.finalize()));
    format!(
        "skipped team/broken:badancestry: image `{}`: the ancestry does not match the parents: its json names parent `{}`, the ancestry `{}`\n\
         skipped team/broken:badsum: image `{}`: checksum mismatch: stored `sha256:{}`, the json and layer give `{}`\n\
         skipped team/broken:nolayer: image `{}`: the image has no `layer`\n\
         skipped team/broken:uploading: image `{}`: the image is still being uploaded (`_inprogress` is present)\n\
         not verified: image `{}` has no sha256 checksum (`tarsum+sha256:{}`)\n",
        id("badancestry"),
        id("base"),
        id("child"),
        id("badsum"),
        id("wrong"),
        actual,
        id("nolayer"),
        id("uploading"),
        id("other"),
        id("a tarsum"),
    )
}

/// `skopeo copy` of `image` from the registry at `host` into `dest`.
pub(crate) fn skopeo_pull(host: &str, image: &str, dest: &Path) {
    let out = Command::new("timeout")
        .args(["120", "skopeo", "copy", "--src-tls-verify=false"])
        .arg(format!("docker://{host}/{image}"))
        .arg(format!("dir:{}", dest.display()))
        .output()
        .expect("skopeo (apt-get install skopeo)");
    assert!(out.status.success(), "skopeo copy {image}: {out:?}");
}

/// Writes the v1 store into the moto bucket of `s3`, under its prefix.
pub(crate) fn write_s3(s3: &regconf::model::S3, store: &Store) {
    use object_store::ObjectStoreExt as _;
    let client = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{}", s3.boto_port.unwrap()))
        .with_allow_http(true)
        .with_bucket_name(s3.boto_bucket.clone().unwrap())
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    let prefix = s3.storage_path.trim_matches('/').to_owned();
    let mut objects = Vec::new();
    write_v1_store(store, &mut |p, data| {
        objects.push((format!("{prefix}/{p}"), data.to_vec()))
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for (key, data) in objects {
            client
                .put(&object_store::path::Path::from(key.as_str()), data.into())
                .await
                .unwrap();
        }
    });
}
