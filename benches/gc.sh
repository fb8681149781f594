#!/usr/bin/env bash
# Garbage collection cost (issue 13): `regconf gc` on 100,000 blobs and
# 10,000 manifests on local storage (target: under 10 s), and on S3 (moto)
# with a smaller layout, counting the requests moto served during the run.
#
# The layouts are written directly (benches/gc_layout.py), not pushed: each
# manifest is tagged and has a config and four layers of its own; 40 % of
# the blobs are unreferenced (and linked, as after deleted manifests), so
# the run removes 40,000 blobs and 40,000 links. `--grace 0`: everything
# written before the run is old enough to go.
#
# Usage: bash benches/gc.sh [LOCAL_MANIFESTS [S3_MANIFESTS]]   (10000, 500)
# The layouts go under $TMPDIR (default /tmp) and are removed at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N_LOCAL=${1:-10000}
N_S3=${2:-500}
WORK=$(mktemp -d)
MOTO_PID=
cleanup() {
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf '%s\n' "$*" >&2; }

python3 -c 'import moto.server, boto3' 2>/dev/null || pip install -q 'moto[server]'
# REGCONF_BIN: a release binary built already (skips the build).
BIN=${REGCONF_BIN:-$ROOT/target/release/regconf}
if [ -z "${REGCONF_BIN:-}" ]; then
  log "building regconf (release)"
  cargo build --release -q --bin regconf --manifest-path "$ROOT/Cargo.toml"
fi

# ------------------------------------------------------------------ local
log "writing $N_LOCAL manifests, $((10 * N_LOCAL)) blobs (local)"
python3 "$ROOT/benches/gc_layout.py" local "$WORK/store" "$N_LOCAL"
printf 'b:\n  storage: local\n  storage_path: %s\n  loglevel: error\n' "$WORK/store" > "$WORK/local.yml"
sync
for mode in --dry-run ""; do
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$BIN" gc "$WORK/local.yml" --flavor b --grace 0 $mode --format json > "$WORK/report.json"
  end=$(date +%s.%N)
  python3 - "$WORK/report.json" "$start" "$end" "local ${mode:-run}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = float(sys.argv[3]) - float(sys.argv[2])
print(f"{sys.argv[4]}: {t:.2f} s (load {open('/proc/loadavg').read().split()[0]}), {r['manifests_read']} manifests read, removed {r['removed']['blobs']['count']} blobs ({r['removed']['blobs']['bytes']} bytes), {r['removed']['layer_links']['count']} links, errors {len(r['errors'])}")
PY
done
ls "$WORK/store/blobs/sha256" > /dev/null
left=$(find "$WORK/store/blobs" -name data | wc -l)
log "blob data left: $left"

# --------------------------------------------------------------------- S3
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$PORT" > "$WORK/moto.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break; sleep 0.1; done
log "writing $N_S3 manifests, $((10 * N_S3)) blobs (moto)"
python3 "$ROOT/benches/gc_layout.py" s3 "http://127.0.0.1:$PORT" bench store "$N_S3"
cat > "$WORK/s3.yml" <<YML
b:
  storage: s3
  storage_path: /store
  boto_bucket: bench
  s3_region: us-east-1
  s3_access_key: test
  s3_secret_key: test
  boto_host: 127.0.0.1
  boto_port: $PORT
  s3_secure: false
  loglevel: error
YML
for mode in --dry-run ""; do
  before=$(grep -c '" [0-9][0-9][0-9] ' "$WORK/moto.log" || true)
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$BIN" gc "$WORK/s3.yml" --flavor b --grace 0 $mode --format json > "$WORK/report.json"
  end=$(date +%s.%N)
  after=$(grep -c '" [0-9][0-9][0-9] ' "$WORK/moto.log" || true)
  python3 - "$WORK/report.json" "$start" "$end" "s3 ${mode:-run}" "$((after - before))" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = float(sys.argv[3]) - float(sys.argv[2])
print(f"{sys.argv[4]}: {t:.2f} s (load {open('/proc/loadavg').read().split()[0]}), {sys.argv[5]} requests, {r['manifests_read']} manifests read, removed {r['removed']['blobs']['count']} blobs, {r['removed']['layer_links']['count']} links, errors {len(r['errors'])}")
PY
done
