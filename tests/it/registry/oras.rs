//! The `oras` Python SDK pushes an artifact, then two artifacts whose
//! `subject` is the first; the referrers API lists them with and without an
//! `artifactType` filter.

use super::{curl, file, run, start};

const INSTALL: &str = "pip install oras";

/// Runs in a scratch directory; argv: host. Prints the subject digest.
const SCRIPT: &str = r#"
import hashlib, os, sys
import oras.client, oras.oci, requests

host = sys.argv[1]
assert host.startswith("127.0.0.1:"), host
c = oras.client.OrasClient(hostname=host, insecure=True)
with open("artifact.bin", "wb") as f:
    f.write(os.urandom(300_000))
with open("sig.txt", "w") as f:
    f.write("signature\n")
with open("sbom.json", "w") as f:
    f.write("{}\n")
with open("empty.json", "w") as f:
    f.write("{}")

c.push(files=["artifact.bin"], target=f"{host}/oras/art:v1", do_chunked=True, chunk_size=65536)
r = requests.get(f"http://{host}/v2/oras/art/manifests/v1",
                 headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}, timeout=30)
r.raise_for_status()
digest = "sha256:" + hashlib.sha256(r.content).hexdigest()
assert r.headers["Docker-Content-Digest"] == digest
subject = oras.oci.Subject(mediaType=r.headers["Content-Type"], digest=digest, size=len(r.content))

for name, kind in [("sig.txt", "application/vnd.example.signature"),
                   ("sbom.json", "application/vnd.example.sbom")]:
    resp = c.push(files=[name], target=f"{host}/oras/art:{name.split('.')[0]}",
                  subject=subject, manifest_config=f"empty.json:{kind}")
    assert resp.status_code == 201, resp.status_code
    assert resp.headers.get("OCI-Subject") == digest, resp.headers

os.makedirs("out", exist_ok=True)
got = c.pull(target=f"{host}/oras/art:v1", outdir="out")
a = open("artifact.bin", "rb").read()
b = open(os.path.join("out", "artifact.bin"), "rb").read()
assert a == b, "artifact differs after pull"
print(digest)
"#;

#[test]
fn oras_push_with_subject_and_referrers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reg = start(dir.path());
    let work = dir.path().join("oras");
    std::fs::create_dir_all(&work).expect("work dir");
    let script = file(&work, "push.py", SCRIPT.as_bytes());
    let out = run("python3", &[&script, &reg.host], Some(&work), INSTALL);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'oras'"),
        "the oras Python SDK is not installed; install it with `{INSTALL}`"
    );
    assert!(
        out.status.success(),
        "oras script failed:\n{}\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    let subject = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("script prints the subject digest")
        .trim()
        .to_owned();

    let all = curl(&[&reg.url(&format!("/v2/oras/art/referrers/{subject}"))]);
    assert_eq!(all.status, 200);
    assert_eq!(
        all.header("content-type"),
        Some("application/vnd.oci.image.index.v1+json")
    );
    assert_eq!(all.header("oci-filters-applied"), None);
    let index = all.json();
    assert_eq!(index["schemaVersion"], 2);
    let mut types: Vec<&str> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| m["artifactType"].as_str().expect("artifactType"))
        .collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "application/vnd.example.sbom",
            "application/vnd.example.signature"
        ]
    );
    for m in index["manifests"].as_array().expect("manifests") {
        let d = m["digest"].as_str().expect("digest");
        let got = curl(&[&reg.url(&format!("/v2/oras/art/manifests/{d}"))]);
        assert_eq!(got.status, 200);
        assert_eq!(m["size"], got.body.len());
        assert_eq!(got.json()["subject"]["digest"], subject.as_str());
    }

    let filtered = curl(&[&reg.url(&format!(
        "/v2/oras/art/referrers/{subject}?artifactType=application/vnd.example.signature"
    ))]);
    assert_eq!(filtered.status, 200);
    assert_eq!(filtered.header("oci-filters-applied"), Some("artifactType"));
    let list = filtered.json()["manifests"].clone();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["artifactType"], "application/vnd.example.signature");

    // A subject without referrers is an empty index, not an error.
    let none = curl(&[&reg.url(&format!("/v2/oras/art/referrers/{}", super::digest(b"x")))]);
    assert_eq!(none.status, 200);
    assert_eq!(none.json()["manifests"], serde_json::json!([]));
}

also_on_s3!(oras_push_with_subject_and_referrers);
