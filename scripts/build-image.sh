#!/usr/bin/env bash
# Builds the regconf container image from this checkout alone (no network):
# a statically linked release binary, then `docker build` with the top-level
# Dockerfile on a small context folder.
#
#   bash scripts/build-image.sh [TAG]     (default regconf:latest)
#
# `docker` is called as found on PATH, so DOCKER_HOST chooses the daemon.
# CARGO_TARGET_DIR is honoured, as by cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-regconf:latest}
target=x86_64-unknown-linux-gnu

# glibc's libc.a makes a static binary on the gnu target: `scratch` has no
# dynamic loader and no libraries.
echo "building a static regconf ($target, release)" >&2
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked --target "$target" --bin regconf
bin="${CARGO_TARGET_DIR:-target}/$target/release/regconf"

# The image runs only a static binary: check it is one.
if ! file -b "$bin" | grep -Eq 'static(ally|-pie) linked'; then
  echo "build-image.sh: $bin is not statically linked: $(file -b "$bin")" >&2
  exit 1
fi
if ldd "$bin" >/dev/null 2>&1 && ! ldd "$bin" 2>&1 | grep -q 'not a dynamic executable\|statically linked'; then
  echo "build-image.sh: $bin still needs shared libraries:" >&2
  ldd "$bin" >&2
  exit 1
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp Dockerfile "$ctx/Dockerfile"
cp "$bin" "$ctx/regconf"
strip "$ctx/regconf" 2>/dev/null || true
mkdir -p "$ctx/rootfs/tmp" "$ctx/storage"
chmod 1777 "$ctx/rootfs/tmp"
chmod 0755 "$ctx/storage"

docker build -t "$tag" "$ctx"
echo "built $tag ($(docker image inspect -f '{{.Size}}' "$tag") bytes)" >&2
