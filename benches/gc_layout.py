#!/usr/bin/env python3
"""Writes a registry storage layout for benches/gc.sh, directly (no registry):
N manifests in N/100 repositories (each tagged, one config and four layers of
its own), and as many unreferenced blobs as make 10*N blobs in all (each
linked into a repository, as after deleted manifests). Usage:

    gc_layout.py local DIR N
    gc_layout.py s3 ENDPOINT BUCKET PREFIX N
"""
import concurrent.futures
import hashlib
import json
import os
import sys

MEDIA = "application/vnd.oci.image.manifest.v1+json"


def objects(n):
    """Yields (path, bytes) of the whole layout."""
    repos = max(1, n // 100)
    unreferenced = 10 * n - 6 * n
    for i in range(n):
        repo = f"bench/r{i % repos}"
        blobs = [json.dumps({"bench": i}).encode()]
        blobs += [hashlib.sha512(f"{i}/{k}".encode()).digest() * 4 for k in range(4)]
        descs = []
        for b in blobs:
            d = hashlib.sha256(b).hexdigest()
            yield f"blobs/sha256/{d[:2]}/{d}/data", b
            yield f"repositories/{repo}/_layers/sha256/{d}/link", f"sha256:{d}".encode()
            descs.append({"mediaType": "application/octet-stream", "digest": f"sha256:{d}", "size": len(b)})
        m = json.dumps({"schemaVersion": 2, "mediaType": MEDIA, "config": dict(descs[0], mediaType="application/vnd.oci.image.config.v1+json"), "layers": descs[1:]}).encode()
        d = hashlib.sha256(m).hexdigest()
        yield f"blobs/sha256/{d[:2]}/{d}/data", m
        yield f"repositories/{repo}/_manifests/revisions/sha256/{d}/link", MEDIA.encode()
        yield f"repositories/{repo}/_manifests/tags/t{i}", f"sha256:{d}".encode()
    for j in range(unreferenced):
        b = f"unreferenced {j}".encode() * 8
        d = hashlib.sha256(b).hexdigest()
        yield f"blobs/sha256/{d[:2]}/{d}/data", b
        yield f"repositories/bench/r{j % repos}/_layers/sha256/{d}/link", f"sha256:{d}".encode()


def local(root, n):
    made = set()
    for path, data in objects(n):
        full = os.path.join(root, path)
        parent = os.path.dirname(full)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        with open(full, "wb") as f:
            f.write(data)


def s3(endpoint, bucket, prefix, n):
    import boto3
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_bucket(Bucket=bucket)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda o: client.put_object(Bucket=bucket, Key=f"{prefix}/{o[0]}", Body=o[1]), objects(n)))


if __name__ == "__main__":
    if sys.argv[1] == "local":
        local(sys.argv[2], int(sys.argv[3]))
    else:
        s3(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
