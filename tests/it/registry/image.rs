//! Builds OCI image layouts for the tests: real gzip-compressed tar layers
//! of random content, a config with matching `diff_ids`, a manifest and an
//! `index.json` naming it by tag. Gzip uses stored (uncompressed) deflate
//! blocks, which every gzip reader accepts and which keeps this small.

use std::path::Path;

use serde_json::json;

use super::{digest, random_bytes};

/// What was written.
pub(crate) struct Image {
    /// Digest of the manifest.
    pub(crate) manifest: String,
    /// Digests of config and layers.
    pub(crate) blobs: Vec<String>,
}

/// Runs skopeo without a signature policy, failing on error (and naming
/// how to install it when it is missing).
pub(crate) fn skopeo(args: &[&str]) -> Vec<u8> {
    let mut all = vec!["--insecure-policy"];
    all.extend_from_slice(args);
    super::run_ok(
        "skopeo",
        &all,
        None,
        "apt-get update && apt-get install -y skopeo",
    )
}

impl Image {
    /// Fails unless every blob and the manifest of this image, written in
    /// the OCI layout `src`, is in the layout `dst` with the same bytes.
    pub(crate) fn assert_pulled_identical(&self, src: &Path, dst: &Path) {
        for dg in self.blobs.iter().chain([&self.manifest]) {
            let rel = format!("blobs/sha256/{}", &dg["sha256:".len()..]);
            assert_eq!(
                std::fs::read(src.join(&rel)).expect("source blob"),
                std::fs::read(dst.join(&rel)).unwrap_or_else(|e| panic!("pulled {rel}: {e}")),
                "{rel} differs"
            );
        }
    }
}

/// Pushes `data` in three PATCH requests and a closing PUT; returns the
/// digest.
pub(crate) fn push_chunked(reg: &super::Registry, dir: &Path, repo: &str, data: &[u8]) -> String {
    let post = super::curl(&[
        "-X",
        "POST",
        &reg.url(&format!("/v2/{repo}/blobs/uploads/")),
    ]);
    assert_eq!(post.status, 202, "{}", post.text());
    let loc = reg.url(post.header("location").expect("location"));
    let third = data.len() / 3;
    let mut start = 0;
    for (i, chunk) in [&data[..third], &data[third..2 * third], &data[2 * third..]]
        .into_iter()
        .enumerate()
    {
        let f = super::file(dir, &format!("chunk{i}"), chunk);
        let end = start + chunk.len() - 1;
        let patch = super::curl(&[
            "-X",
            "PATCH",
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            &format!("Content-Range: {start}-{end}"),
            "--data-binary",
            &format!("@{f}"),
            &loc,
        ]);
        assert_eq!(patch.status, 202, "chunk {i}: {}", patch.text());
        start = end + 1;
    }
    let d = digest(data);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let put = super::curl(&["-X", "PUT", &format!("{loc}{sep}digest={d}")]);
    assert_eq!(put.status, 201, "{}", put.text());
    d
}

/// A one-file ustar archive holding `data`.
fn tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], v: u64| {
        let s = format!("{v:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    };
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], data.len() as u64);
    octal(&mut h[136..148], 0);
    h[148..156].copy_from_slice(b"        ");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = u32::try_from(i).unwrap_or(0);
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
        *t = c;
    }
    let mut c = !0u32;
    for &b in data {
        c = table[usize::from((c as u8) ^ b)] ^ (c >> 8);
    }
    !c
}

/// `data` as a gzip member of stored deflate blocks.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(65535).collect()
    };
    for (i, c) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = u16::try_from(c.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn write_blob(dir: &Path, data: &[u8]) -> (String, usize) {
    let d = digest(data);
    let path = dir.join("blobs/sha256").join(&d["sha256:".len()..]);
    std::fs::write(path, data).expect("write blob");
    (d, data.len())
}

/// Writes an OCI layout at `dir` with one image tagged `tag`, whose layers
/// hold `layer_sizes` random bytes each.
pub(crate) fn oci_layout(dir: &Path, tag: &str, layer_sizes: &[usize], seed: u64) -> Image {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout dir");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("oci-layout");
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    let mut blobs = Vec::new();
    for (i, &size) in layer_sizes.iter().enumerate() {
        let t = tar(
            &format!("layer{i}.bin"),
            &random_bytes(size, seed + i as u64),
        );
        diff_ids.push(digest(&t));
        let (d, n) = write_blob(dir, &gzip(&t));
        layers.push(json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": d,
            "size": n,
        }));
        blobs.push(d);
    }
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"seed": seed.to_string()}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (cd, cn) = write_blob(dir, config.to_string().as_bytes());
    blobs.insert(0, cd.clone());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": layers,
    });
    let (md, mn) = write_blob(dir, manifest.to_string().as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md,
            "size": mn,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index.json");
    Image {
        manifest: md,
        blobs,
    }
}

#[test]
fn gzip_and_tar_are_valid() {
    // Checked with the system's own tools so the layers are known-good.
    let dir = tempfile::tempdir().expect("tempdir");
    let data = random_bytes(70_000, 1);
    let archive = gzip(&tar("f.bin", &data));
    let path = dir.path().join("a.tar.gz");
    std::fs::write(&path, archive).expect("write");
    super::run_ok(
        "tar",
        &[
            "-xzf",
            path.to_str().expect("utf-8"),
            "-C",
            dir.path().to_str().expect("utf-8"),
        ],
        None,
        "apt-get install -y tar gzip",
    );
    assert_eq!(
        std::fs::read(dir.path().join("f.bin")).expect("extracted"),
        data
    );
}

/// The round trip the object-store emulator tests share: one `serve` of
/// `config` takes an image with layers of `layer_sizes` (skopeo) and a
/// 700 kB blob in three chunks (curl) into `repo`; a second `serve` of
/// the same config pulls both back byte-identical. Returns what storage
/// holds afterwards, each blob checked to be there as `…/data`.
pub(crate) fn round_trip_across_restart(
    config: &regconf::model::Config,
    dir: &Path,
    repo: &str,
    layer_sizes: &[usize],
    seed: u64,
) -> Vec<String> {
    let reg = super::start_with(config.clone());
    let src = dir.join("src");
    let image = oci_layout(&src, "v1", layer_sizes, seed);
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/{repo}:v1", reg.host),
    ]);
    let data = random_bytes(700_000, seed + 1);
    let chunked = push_chunked(&reg, dir, repo, &data);
    drop(reg);

    // A second start finds everything in storage.
    let reg = super::start_with(config.clone());
    let dst = dir.join("dst");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/{repo}:v1", reg.host),
        &format!("oci:{}:v1", dst.display()),
    ]);
    image.assert_pulled_identical(&src, &dst);
    let got = super::curl(&[&reg.url(&format!("/v2/{repo}/blobs/{chunked}"))]);
    assert_eq!(got.status, 200);
    assert!(got.body == data, "the chunked blob came back different");

    // The blobs are in storage, under the registry's layout.
    let stored = super::files_under(&reg.root);
    for dg in image.blobs.iter().chain([&chunked]) {
        let hex = &dg["sha256:".len()..];
        assert!(
            stored
                .iter()
                .any(|k| k.contains(hex) && k.ends_with("/data")),
            "{dg} is not in storage: {stored:?}"
        );
    }
    stored
}
