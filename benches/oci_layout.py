#!/usr/bin/env python3
"""Writes synthetic OCI image layouts and raw blobs for benches/registry.sh.

    oci_layout.py image DIR TAG LAYERS SIZE [COUNT]
        An OCI layout in DIR with COUNT (default 1) images tagged TAG (or
        TAG-0 .. TAG-(COUNT-1)), each of LAYERS tar+gzip layers holding
        SIZE bytes of random data (gzip level 0, which skopeo pushes as is;
        an uncompressed layer it would compress on the way, timing gzip).
        Prints one JSON line per image: tag, manifest digest, layer digests.
    oci_layout.py blob FILE SIZE
        SIZE random bytes in FILE; prints the digest.

SIZE takes K, M or G (powers of 1024). Content is random, so every run and
every image is distinct. Nothing here is timed by the benchmark.
"""
import hashlib
import json
import os
import sys
import tarfile
import zlib

CHUNK = 4 << 20
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.upper()
    if text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def put(blobs, data):
    """Stores small bytes as a blob; returns (digest, size)."""
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def random_file(path, n):
    """Writes n random bytes to path; returns the digest."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = n
        while left:
            b = os.urandom(min(CHUNK, left))
            h.update(b)
            f.write(b)
            left -= len(b)
    return "sha256:" + h.hexdigest()


def layer(blobs, n, name):
    """A gzip'd tar holding one file of n random bytes, gzip level 0 (stored
    blocks: fast, and clients push it as it is rather than compress it);
    returns (digest, size, diff_id)."""
    info = tarfile.TarInfo(name)
    info.size = n
    info.mode = 0o644
    info.mtime = 0
    gz = zlib.compressobj(0, zlib.DEFLATED, 31)
    tar_hash, gz_hash, size = hashlib.sha256(), hashlib.sha256(), 0
    tmp = os.path.join(blobs, ".partial")
    with open(tmp, "wb") as f:
        def emit(data):
            nonlocal size
            tar_hash.update(data)
            out = gz.compress(data)
            gz_hash.update(out)
            f.write(out)
            size += len(out)
        emit(info.tobuf(format=tarfile.USTAR_FORMAT))
        left = n
        while left:
            b = os.urandom(min(CHUNK, left))
            emit(b)
            left -= len(b)
        emit(b"\0" * ((-n) % 512 + 1024))
        out = gz.flush()
        gz_hash.update(out)
        f.write(out)
        size += len(out)
    digest = "sha256:" + gz_hash.hexdigest()
    os.replace(tmp, os.path.join(blobs, digest.split(":", 1)[1]))
    return digest, size, "sha256:" + tar_hash.hexdigest()


def image(root, tag, layers, layer_size, count):
    blobs = os.path.join(root, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    index = {"schemaVersion": 2, "manifests": []}
    for i in range(count):
        t = tag if count == 1 else f"{tag}-{i}"
        descs, diff_ids = [], []
        for j in range(layers):
            d, n, diff_id = layer(blobs, layer_size, f"data-{i}-{j}.bin")
            descs.append({"mediaType": MT_LAYER, "digest": d, "size": n})
            diff_ids.append(diff_id)
        config = json.dumps({
            "architecture": "amd64",
            "os": "linux",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }).encode()
        cd, cn = put(blobs, config)
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": {"mediaType": MT_CONFIG, "digest": cd, "size": cn},
            "layers": descs,
        }).encode()
        md, mn = put(blobs, manifest)
        index["manifests"].append({
            "mediaType": MT_MANIFEST, "digest": md, "size": mn,
            "annotations": {"org.opencontainers.image.ref.name": t},
        })
        print(json.dumps({"tag": t, "manifest": md, "layers": [x["digest"] for x in descs]}))
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump(index, f)


def main(argv):
    if len(argv) >= 6 and argv[1] == "image":
        count = int(argv[6]) if len(argv) > 6 else 1
        image(argv[2], argv[3], int(argv[4]), size(argv[5]), count)
    elif len(argv) == 4 and argv[1] == "blob":
        print(random_file(argv[2], size(argv[3])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
