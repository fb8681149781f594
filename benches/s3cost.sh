#!/usr/bin/env bash
# Storage requests per registry operation on S3, `regconf serve` against the
# CNCF distribution registry (Debian package docker-registry) in one run,
# each on a moto server of its own whose request log is counted. Prints one
# table: requests per operation (averaged over N repetitions after a
# warm-up), and the ratio regconf : distribution. Counts, not times, so a
# loaded machine gives the same figures. regconf's background reads of its
# change log (a fixed rate per process while requests look up links or
# tags, not per operation) are counted apart and printed on their own line
# under the table. Loopback only; about a minute.
#
#   bash benches/s3cost.sh            # N=10 repetitions per operation
#   DETAIL=1 N=1 bash benches/s3cost.sh  # and each request, to stderr
#
# REGCONF_BIN picks the binary (default: a release build of the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${N:-10}
MT=application/vnd.oci.image.manifest.v1+json

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
command -v docker-registry >/dev/null || { apt-get update -qq && apt-get install -y -qq docker-registry >/dev/null; }
python3 -c 'import moto.server' 2>/dev/null || python3 -m pip install -q 'moto[server]'
if [ -z "${REGCONF_BIN:-}" ]; then
  cargo build --release -q --bin regconf
  REGCONF_BIN=$ROOT/target/release/regconf
fi

WORK=$(mktemp -d /tmp/regconf-s3cost.XXXXXX)
PIDS=()
# (moto is started in a command substitution, a subshell: its PID comes
# back through a file, not through PIDS)
cleanup() { for p in "${PIDS[@]}" $(cat "$WORK"/*.pid 2>/dev/null); do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.1; done; echo "nothing on port $1" >&2; tail -n 5 "$WORK"/*.err "$WORK"/*.log >&2 2>/dev/null; exit 1; }

start_moto() { # name -> port; log in $WORK/name.log
  local port; port=$(free_port)
  python3 -m moto.server -H 127.0.0.1 -p "$port" > "$WORK/$1.log" 2>&1 &
  echo $! > "$WORK/$1.pid"
  wait_port "$port"
  curl -s -X PUT "http://127.0.0.1:$port/$1" > /dev/null
  echo "$port"
}

MOTO_R=$(start_moto regconf)
MOTO_D=$(start_moto dist)
PORT_R=$(free_port)
PORT_D=$(free_port)

cat > "$WORK/regconf.yml" <<YAML
bench:
  loglevel: warning
  storage: s3
  storage_path: /registry
  boto_bucket: regconf
  boto_host: 127.0.0.1
  boto_port: $MOTO_R
  s3_access_key: test
  s3_secret_key: test
  s3_region: us-east-1
  s3_secure: false
  search_backend: sqlalchemy
  sqlalchemy_index_database: sqlite:///$WORK/index.db
YAML
cat > "$WORK/dist.yml" <<YAML
version: 0.1
log: {level: error}
storage:
  s3:
    accesskey: test
    secretkey: test
    region: us-east-1
    regionendpoint: http://127.0.0.1:$MOTO_D
    bucket: dist
    secure: false
    v4auth: true
    rootdirectory: /registry
  delete: {enabled: true}
  cache: {blobdescriptor: inmemory}
  redirect: {disable: true}
http: {addr: 127.0.0.1:$PORT_D}
YAML
"$REGCONF_BIN" serve "$WORK/regconf.yml" --flavor bench --listen "127.0.0.1:$PORT_R" 2> "$WORK/regconf.err" &
PIDS+=($!)
# the AWS SDK in distribution refuses a custom CA bundle with its transport
env -u AWS_CA_BUNDLE docker-registry serve "$WORK/dist.yml" > "$WORK/dist.err" 2>&1 &
PIDS+=($!)
wait_port "$PORT_R"; wait_port "$PORT_D"

# Requests of an operation, and reads of the change log (`GET`s, list or
# object, of `_changes`), counted apart, see above; writing an entry is the
# operation's.
count() { grep -E '"(GET|PUT|HEAD|POST|DELETE) ' "$WORK/$1.log" | grep -cvE '"GET [^ ]*_changes' || true; }
count_log() { grep -E '"GET [^ ]*_changes' "$WORK/$1.log" | grep -c . || true; }

# An image: a config blob, a 3 MB layer, a manifest.
python3 - "$WORK" <<'PY'
import hashlib, json, os, sys
w = sys.argv[1]
layer = os.urandom(3_000_000); cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
def d(b): return "sha256:" + hashlib.sha256(b).hexdigest()
open(f"{w}/layer", "wb").write(layer); open(f"{w}/config", "wb").write(cfg)
m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d(cfg), "size": len(cfg)},
     "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d(layer), "size": len(layer)}]}
mb = json.dumps(m).encode(); open(f"{w}/manifest", "wb").write(mb)
open(f"{w}/digests", "w").write(f"{d(layer)} {d(cfg)} {d(mb)}\n")
PY
read -r LAYER CONFIG MANIFEST < "$WORK/digests"

location() { # host -> the Location header of stdin's head, made absolute
  local loc; loc=$(tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
  case "$loc" in http*) echo "$loc" ;; *) echo "http://$1$loc" ;; esac
}
with_digest() { case "$1" in *\?*) echo "$1&digest=$2" ;; *) echo "$1?digest=$2" ;; esac; }
push_blob() { # host repo file digest: POST, then PUT ?digest= with the body (both registries take this)
  local loc
  loc=$(curl -sf -D - -o /dev/null -X POST "http://$1/v2/$2/blobs/uploads/" | location "$1")
  curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$3" "$(with_digest "$loc" "$4")"
}
push_chunked() { # host repo file digest: POST, two PATCHes, PUT
  local loc size half
  loc=$(curl -sf -D - -o /dev/null -X POST "http://$1/v2/$2/blobs/uploads/" | location "$1")
  size=$(stat -c %s "$3"); half=$((size / 2))
  head -c "$half" "$3" > "$WORK/part1"; tail -c +$((half + 1)) "$3" > "$WORK/part2"
  loc=$(curl -sf -D - -o /dev/null -X PATCH -H "Content-Range: 0-$((half - 1))" -H 'Content-Type: application/octet-stream' --data-binary "@$WORK/part1" "$loc" | location "$1")
  loc=$(curl -sf -D - -o /dev/null -X PATCH -H "Content-Range: $half-$((size - 1))" -H 'Content-Type: application/octet-stream' --data-binary "@$WORK/part2" "$loc" | location "$1")
  curl -sf -o /dev/null -X PUT "$(with_digest "$loc" "$4")"
}
put_manifest() { # host repo tag
  curl -sf -o /dev/null -X PUT -H "Content-Type: $MT" --data-binary "@$WORK/manifest" "http://$1/v2/$2/manifests/$3"
}

declare -A R D
measure() { # label times command... ({host} is replaced by each registry's address)
  local label=$1 times=$2; shift 2
  for side in regconf dist; do
    local host
    if [ $side = regconf ]; then host=127.0.0.1:$PORT_R; else host=127.0.0.1:$PORT_D; fi
    local before after
    before=$(count $side)
    for i in $(seq "$times"); do
      eval "${*//\{host\}/$host}" >/dev/null
    done
    sleep 0.3
    after=$(count $side)
    if [ -n "${DETAIL:-}" ]; then # the requests themselves, to stderr
      printf '%s, %s:\n' "$label" "$side" >&2
      grep -E '"(GET|PUT|HEAD|POST|DELETE) ' "$WORK/$side.log" | grep -vE '"GET [^ ]*_changes' | sed -n "$((before + 1)),${after}p" \
        | sed -E 's/.*"([A-Z]+) ([^ ]*) .*/  \1 \2/; s/(X-Amz|x-id|uploadId)[^&]*//g' >&2
    fi
    if [ $side = regconf ]; then R[$label]=$(( (after - before) )); else D[$label]=$(( (after - before) )); fi
  done
  ROWS+=("$label|${DIV:-$times}")
}
ROWS=()

# 50 small blobs, for HEADs of many distinct blobs
python3 - "$WORK" <<'PY'
import hashlib, sys
w = sys.argv[1]
with open(f"{w}/many", "w") as out:
    for i in range(50):
        b = f"blob {i}\n".encode()
        open(f"{w}/many{i}", "wb").write(b)
        out.write(f"{w}/many{i} sha256:{hashlib.sha256(b).hexdigest()}\n")
PY
heads() { # host: HEAD each of the 50 blobs
  while read -r _f d; do curl -sf -o /dev/null -I "http://$1/v2/bench/app/blobs/$d"; done < "$WORK/many"
}

# warm-up: the image pushed once to each, one pull; the 50 blobs pushed
# and HEADed once
for host in 127.0.0.1:$PORT_R 127.0.0.1:$PORT_D; do
  push_blob "$host" bench/app "$WORK/layer" "$LAYER"
  push_blob "$host" bench/app "$WORK/config" "$CONFIG"
  put_manifest "$host" bench/app v1
  curl -sf -o /dev/null -H "Accept: $MT" "http://$host/v2/bench/app/manifests/v1"
  curl -sf -o /dev/null "http://$host/v2/bench/app/blobs/$LAYER"
  while read -r f d; do push_blob "$host" bench/app "$f" "$d"; done < "$WORK/many"
  heads "$host"
done
sleep 1
LOG_BEFORE=$(count_log regconf)
LOG_FROM=$(date +%s.%N)

measure "GET manifest by tag" "$N" "curl -sf -o /dev/null -H 'Accept: $MT' http://{host}/v2/bench/app/manifests/v1"
measure "GET manifest by digest" "$N" "curl -sf -o /dev/null -H 'Accept: $MT' http://{host}/v2/bench/app/manifests/$MANIFEST"
measure "HEAD blob" "$N" "curl -sf -o /dev/null -I http://{host}/v2/bench/app/blobs/$LAYER"
measure "GET blob (3 MB)" "$N" "curl -sf -o /dev/null http://{host}/v2/bench/app/blobs/$LAYER"
# The same reads spaced out past the 1 s a process on shared storage trusts
# what it read of links and tags (distribution keeps them in memory for good)
measure "GET manifest by tag, 1.1 s apart" 3 "sleep 1.1; curl -sf -o /dev/null -H 'Accept: $MT' http://{host}/v2/bench/app/manifests/v1"
measure "GET manifest by digest, 1.1 s apart" 3 "sleep 1.1; curl -sf -o /dev/null -H 'Accept: $MT' http://{host}/v2/bench/app/manifests/$MANIFEST"
measure "HEAD blob, 1.1 s apart" 3 "sleep 1.1; curl -sf -o /dev/null -I http://{host}/v2/bench/app/blobs/$LAYER"
measure "GET blob (3 MB), 1.1 s apart" 3 "sleep 1.1; curl -sf -o /dev/null http://{host}/v2/bench/app/blobs/$LAYER"
DIV=50 measure "HEAD of 50 distinct blobs within a second, 1.1 s after the last" 1 "sleep 1.1; heads {host}"
LOG_AFTER=$(count_log regconf)
LOG_TO=$(date +%s.%N)
measure "tags/list" "$N" "curl -sf -o /dev/null http://{host}/v2/bench/app/tags/list"
measure "catalog" "$N" "curl -sf -o /dev/null http://{host}/v2/_catalog"
measure "blob upload, POST + PUT (3 MB)" 1 "push_blob {host} bench/mono$RANDOM $WORK/layer $LAYER"
measure "blob upload, chunked (2 PATCH)" 1 "push_chunked {host} bench/chunk$RANDOM $WORK/layer $LAYER"
measure "manifest PUT (new tag)" 1 "put_manifest {host} bench/app t$RANDOM"
measure "idle, 5 s" 1 "sleep 5"

printf '\nS3 requests per operation on moto, regconf serve vs distribution %s\n\n' "$(dpkg-query -W -f '${Version}' docker-registry 2>/dev/null || echo '?')"
printf '| operation | regconf | distribution | ratio |\n| --- | --- | --- | --- |\n'
for row in "${ROWS[@]}"; do
  label=${row%|*}; times=${row#*|}
  python3 - "$label" "$times" "${R[$label]}" "${D[$label]}" <<'PY'
import sys
label, times, r, d = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ratio = "-" if d == 0 and r == 0 else ("inf" if d == 0 else f"{r / d:.2f}")
print(f"| {label} | {r / times:g} | {d / times:g} | {ratio} |")
PY
done
python3 - "$((LOG_AFTER - LOG_BEFORE))" "$LOG_FROM" "$LOG_TO" <<'PY'
import sys
n, a, b = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"\nregconf's change-log reads, not in the table (one process, while the reads above ran): "
      f"{n} requests in {b - a:.1f} s, {n / (b - a):.2f} per second; distribution: none")
PY
