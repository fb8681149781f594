#!/usr/bin/env python3
"""Writes a registry layout for benches/metadata.sh, directly (no registry):
REPOS repositories `bench/r<i>` with one tag each, and one repository
`big/tags` with TAGS tags, all pointing at one small manifest (its blobs are
shared, so the layout stays small: about 12 KiB of directories and links per
repository on tmpfs). Only what a catalog, a tag list and search read is
written: revision links and tags, no `_layers` links. Usage:

    metadata_layout.py DIR REPOS TAGS
"""
import hashlib
import json
import os
import sys

MEDIA = "application/vnd.oci.image.manifest.v1+json"


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main(root, repos, tags):
    config = json.dumps({"bench": "metadata"}).encode()
    layer = b"metadata bench layer" * 16
    descs = []
    for b in (config, layer):
        d = hashlib.sha256(b).hexdigest()
        os.makedirs(f"{root}/blobs/sha256/{d[:2]}/{d}", exist_ok=True)
        write(f"{root}/blobs/sha256/{d[:2]}/{d}/data", b)
        descs.append({"mediaType": "application/octet-stream", "digest": f"sha256:{d}", "size": len(b)})
    m = json.dumps({"schemaVersion": 2, "mediaType": MEDIA,
                    "config": dict(descs[0], mediaType="application/vnd.oci.image.config.v1+json"),
                    "layers": descs[1:]}).encode()
    md = hashlib.sha256(m).hexdigest()
    os.makedirs(f"{root}/blobs/sha256/{md[:2]}/{md}", exist_ok=True)
    write(f"{root}/blobs/sha256/{md[:2]}/{md}/data", m)
    digest = f"sha256:{md}".encode()

    def repo(name, tag_names):
        base = f"{root}/repositories/{name}/_manifests"
        os.makedirs(f"{base}/revisions/sha256/{md}", exist_ok=True)
        write(f"{base}/revisions/sha256/{md}/link", MEDIA.encode())
        os.makedirs(f"{base}/tags", exist_ok=True)
        for t in tag_names:
            write(f"{base}/tags/{t}", digest)

    for i in range(repos):
        repo(f"bench/r{i:06d}", ["latest"])
    repo("big/tags", (f"t{i:06d}" for i in range(tags)))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
