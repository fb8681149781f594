#!/usr/bin/env bash
# Benchmark of `regconf serve` against the CNCF distribution registry (Debian
# package docker-registry), side by side in one run, with the limits of the
# machine measured in the same run (disk write with fsync, SHA-256, nginx
# serving the same bytes as static files). Prints one table of figures and
# ratios regconf : distribution. Loopback only; about 6-8 minutes.
#
#   bash benches/registry.sh
#
# Installs what is missing with apt-get (docker-registry, hey, skopeo, nginx,
# jq, curl). Every workload runs against both registries in turn, the order
# flipping from one workload to the next, so drift on a shared machine falls
# on both. Knobs (environment): LOAD_SECS [10], CONC [16], BIG_LAYERS [8],
# BIG_LAYER_SIZE [128M], RAW_SIZE [1G], SMALL_IMAGES [200], SMALL_PAR [4],
# KEEP=1 keeps the scratch directory (in /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

LOAD_SECS=${LOAD_SECS:-10}
CONC=${CONC:-16}
BIG_LAYERS=${BIG_LAYERS:-8}
BIG_LAYER_SIZE=${BIG_LAYER_SIZE:-128M}
RAW_SIZE=${RAW_SIZE:-1G}
SMALL_IMAGES=${SMALL_IMAGES:-200}
SMALL_PAR=${SMALL_PAR:-4}
MT_MANIFEST=application/vnd.oci.image.manifest.v1+json

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ------------------------------------------------------------ tools
missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v hey >/dev/null || missing+=(hey)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v jq >/dev/null || missing+=(jq)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

if pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; then
  log "note: a cargo build is running on this machine; every figure is noisier (ratios less so)"
fi
log "building regconf (release)"
cargo build --release -q --bin regconf
BIN=$ROOT/target/release/regconf

# ------------------------------------------------------------ scratch, servers
WORK=$(mktemp -d /tmp/regbench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ "${KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
declare -A ADDR PID
ADDR[regconf]=127.0.0.1:$(free_port)
ADDR[distribution]=127.0.0.1:$(free_port)
ADDR[nginx]=127.0.0.1:$(free_port)

cat > "$WORK/regconf.yml" <<EOF
bench:
    storage: local
    storage_path: $WORK/regconf-data
    loglevel: warning
EOF
cat > "$WORK/distribution.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/distribution-data
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: ${ADDR[distribution]}
health:
  storagedriver:
    enabled: false
EOF
mkdir -p "$WORK/www/v2" "$WORK/nginx-tmp"
cat > "$WORK/nginx.conf" <<EOF
$( [ "$(id -u)" = 0 ] && echo 'user root;' )
worker_processes auto;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx-tmp/body;
  proxy_temp_path $WORK/nginx-tmp/proxy;
  fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
  scgi_temp_path $WORK/nginx-tmp/scgi;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000000;
  open_file_cache max=1000;
  types { }
  default_type application/octet-stream;
  server {
    listen ${ADDR[nginx]};
    root $WORK/www;
    location = /v2/ { default_type application/json; return 200 '{}'; }
    location ~ /manifests/ { default_type $MT_MANIFEST; }
  }
}
EOF

"$BIN" serve "$WORK/regconf.yml" --flavor bench --listen "${ADDR[regconf]}" 2> "$WORK/regconf.log" &
PID[regconf]=$!; PIDS+=("$!")
docker-registry serve "$WORK/distribution.yml" > "$WORK/distribution.log" 2>&1 &
PID[distribution]=$!; PIDS+=("$!")
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" 2> "$WORK/nginx.log" &
PID[nginx]=$!; PIDS+=("$!")

for who in regconf distribution nginx; do
  for _ in $(seq 100); do
    curl -sf -o /dev/null "http://${ADDR[$who]}/v2/" && continue 2
    kill -0 "${PID[$who]}" 2>/dev/null || break
    sleep 0.1
  done
  cat "$WORK/$who.log" >&2 || true
  die "$who did not start on ${ADDR[$who]}"
done
log "regconf ${ADDR[regconf]} (pid ${PID[regconf]}), distribution ${ADDR[distribution]} (pid ${PID[distribution]}), nginx ${ADDR[nginx]}; scratch $WORK"

# ------------------------------------------------------------ measuring
now_ns() { date +%s%N; }
secs_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN{printf "%.3f", (b-a)/1e9}'; }
mib_per_s() { awk -v n="$1" -v s="$2" 'BEGIN{printf "%.1f", n/1048576/s}'; }
alive() { kill -0 "${PID[$1]}" 2>/dev/null || { cat "$WORK/$1.log" >&2; die "$1 exited"; }; }

# Peak RSS per phase: VmHWM, reset before the phase (as root; otherwise it
# is the peak since start, which only makes regconf look worse).
declare -A V RSS
reset_peak() { echo 5 > "/proc/${PID[$1]}/clear_refs" 2>/dev/null || true; }
peak_mib() { awk '/^VmHWM:/{printf "%.1f", $2/1024}' "/proc/${PID[$1]}/status"; }
PHASES=()
phase_rss() { # phase who
  RSS[$1,$2]=$(peak_mib "$2")
  case " ${PHASES[*]} " in *" $1 "*) ;; *) PHASES+=("$1") ;; esac
}

# Runs "$1 who" for both registries, the order flipping on every call.
FLIP=0
both() {
  local order=(regconf distribution)
  [ $FLIP = 1 ] && order=(distribution regconf)
  FLIP=$((1 - FLIP))
  for who in "${order[@]}"; do alive "$who"; "$@" "$who"; done
}

# ------------------------------------------------------------ content
log "generating content (not timed)"
G=$ROOT/benches/oci_layout.py
python3 "$G" image "$WORK/big" v1 "$BIG_LAYERS" "$BIG_LAYER_SIZE" > "$WORK/big.json"
python3 "$G" image "$WORK/small" s 4 4K "$SMALL_IMAGES" > "$WORK/small.json"
python3 "$G" image "$WORK/one" v1 1 1M > "$WORK/one.json"
RAW_DIGEST=$(python3 "$G" blob "$WORK/raw.bin" "$RAW_SIZE")
RAW_BYTES=$(stat -c %s "$WORK/raw.bin")
BIG_BYTES=$(du -sb "$WORK/big/blobs" | cut -f1)
sync

# ------------------------------------------------------------ machine limits
log "machine: SHA-256 speed, 1 GiB random write with fsync"
SHA_MIBS=$(openssl speed -evp sha256 -bytes 1048576 -seconds 2 2>/dev/null \
  | awk '/^sha256/{v=$NF; sub(/k$/,"",v); printf "%.0f", v*1000/1048576}')
t=$(now_ns)
dd if="$WORK/raw.bin" of="$WORK/dd.out" bs=4M conv=fsync status=none
DISK_MIBS=$(mib_per_s "$RAW_BYTES" "$(secs_since "$t")")
rm -f "$WORK/dd.out"

# ------------------------------------------------------------ pushes and pulls
SKOPEO=(timeout 600 skopeo --insecure-policy copy -q)
push_big() {
  reset_peak "$1"; local t; t=$(now_ns)
  "${SKOPEO[@]}" --dest-tls-verify=false "oci:$WORK/big:v1" "docker://${ADDR[$1]}/bench/big:v1"
  V[$1,push_big]=$(mib_per_s "$BIG_BYTES" "$(secs_since "$t")"); phase_rss push_big "$1"
}
pull_big() {
  reset_peak "$1"; local t; t=$(now_ns)
  "${SKOPEO[@]}" --src-tls-verify=false "docker://${ADDR[$1]}/bench/big:v1" "oci:$WORK/pulled:v1"
  V[$1,pull_big]=$(mib_per_s "$BIG_BYTES" "$(secs_since "$t")"); phase_rss pull_big "$1"
  [ "$(jq -r '.manifests[0].digest' "$WORK/pulled/index.json")" = "$(jq -r '.manifests[0].digest' "$WORK/big/index.json")" ] \
    || die "$1: pulled manifest differs"
  rm -rf "$WORK/pulled"
}
upload_raw() {
  reset_peak "$1"; local t loc code; t=$(now_ns)
  loc=$(curl -sf -D - -o /dev/null -X POST "http://${ADDR[$1]}/v2/bench/raw/blobs/uploads/" \
    | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
  case "$loc" in http*) ;; *) loc="http://${ADDR[$1]}$loc" ;; esac
  case "$loc" in *\?*) loc="$loc&digest=$RAW_DIGEST" ;; *) loc="$loc?digest=$RAW_DIGEST" ;; esac
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 300 -X PUT -H 'Expect:' \
    -H 'Content-Type: application/octet-stream' -T "$WORK/raw.bin" "$loc")
  V[$1,upload]=$(mib_per_s "$RAW_BYTES" "$(secs_since "$t")"); phase_rss upload "$1"
  [ "$code" = 201 ] || die "$1: blob upload answered $code"
}
download_raw() {
  reset_peak "$1"; local t got; t=$(now_ns)
  got=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' --max-time 300 \
    "http://${ADDR[$1]}/v2/bench/raw/blobs/$RAW_DIGEST")
  V[$1,download]=$(mib_per_s "$RAW_BYTES" "$(secs_since "$t")"); phase_rss download "$1"
  [ "$got" = "200 $RAW_BYTES" ] || die "$1: blob download gave $got"
}
push_small() {
  reset_peak "$1"; local t n; t=$(now_ns)
  jq -r .tag "$WORK/small.json" | timeout 600 xargs -P "$SMALL_PAR" -I{} \
    skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$WORK/small:{}" "docker://${ADDR[$1]}/bench/small:{}"
  V[$1,push_small]=$(awk -v n="$SMALL_IMAGES" -v s="$(secs_since "$t")" 'BEGIN{printf "%.1f", n/s}')
  phase_rss push_small "$1"
  n=$(curl -s "http://${ADDR[$1]}/v2/bench/small/tags/list?n=100000" | jq '.tags | length')
  [ "$n" = "$SMALL_IMAGES" ] || die "$1: $n tags listed after pushing $SMALL_IMAGES"
}

log "skopeo push of $(mib_per_s "$BIG_BYTES" 1) MiB in $BIG_LAYERS layers"; both push_big
log "skopeo pull of it";                                             both pull_big
log "disk limit $DISK_MIBS MiB/s; curl upload of a $RAW_SIZE blob";  both upload_raw
log "curl download of it";                                           both download_raw
log "skopeo push of $SMALL_IMAGES small images ($SMALL_PAR at a time)"; both push_small

# ------------------------------------------------------------ request rates
one() { "${SKOPEO[@]}" --dest-tls-verify=false "oci:$WORK/one:v1" "docker://${ADDR[$1]}/bench/one:v1"; }
both one
MANIFEST=$(jq -r .manifest "$WORK/big.json")
SMALL_BLOB=$(jq -rs '.[0].layers[0]' "$WORK/small.json")
BLOB_1M=$(jq -r '.layers[0]' "$WORK/one.json")
mkdir -p "$WORK/www/v2/bench/big/manifests" "$WORK/www/v2/bench/small/blobs" "$WORK/www/v2/bench/one/blobs"
cp "$WORK/big/blobs/sha256/${MANIFEST#sha256:}" "$WORK/www/v2/bench/big/manifests/v1"
cp "$WORK/small/blobs/sha256/${SMALL_BLOB#sha256:}" "$WORK/www/v2/bench/small/blobs/$SMALL_BLOB"
cp "$WORK/one/blobs/sha256/${BLOB_1M#sha256:}" "$WORK/www/v2/bench/one/blobs/$BLOB_1M"

# load NAME METHOD PATH [HEADER] for each of the three servers, order rotating
ROT=0
load() {
  local name=$1 method=$2 path=$3 hdr=${4:-} order=(regconf distribution nginx) out who
  local i; for ((i = 0; i < ROT; i++)); do order=("${order[@]:1}" "${order[0]}"); done
  ROT=$(((ROT + 1) % 3))
  for who in "${order[@]}"; do
    [ "$who" = nginx ] || { alive "$who"; reset_peak "$who"; }
    out=$WORK/load-$name-$who.txt
    local args=(-z "${LOAD_SECS}s" -c "$CONC" -m "$method")
    [ -n "$hdr" ] && args+=(-H "$hdr")
    timeout $((LOAD_SECS + 60)) hey "${args[@]}" "http://${ADDR[$who]}$path" > "$out" 2>&1 || true
    V[$who,$name.rps]=$(awk '/Requests\/sec:/{printf "%.0f", $2}' "$out")
    V[$who,$name.p99]=$(awk '/ 99% in /{printf "%.2f", $3*1000}' "$out")
    local ok all
    ok=$(awk '/\[200\]/{print $2}' "$out"); all=$(awk '/^ *\[[0-9]+\]/{s+=$2}END{print s+0}' "$out")
    [ -n "$ok" ] && [ "$ok" = "$all" ] || { cat "$out" >&2; die "$who: $method $path: not all answers were 200"; }
    [ "$who" = nginx ] || phase_rss "$name" "$who"
  done
}
log "load: ${LOAD_SECS}s at $CONC connections each (hey), regconf / distribution / nginx"
load v2 GET /v2/
load manifest GET /v2/bench/big/manifests/v1 "Accept: $MT_MANIFEST"
load head HEAD "/v2/bench/small/blobs/$SMALL_BLOB"
load blob GET "/v2/bench/one/blobs/$BLOB_1M"

# ------------------------------------------------------------ the table
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'; }
# check VALUE OP LIMIT: "ok" or "SHORT"
check() { awk -v v="$1" -v l="$3" -v op="$2" 'BEGIN{ ok = (op == ">=") ? v >= l : v <= l; print (v == "-" ? "-" : ok ? "ok" : "SHORT") }'; }
F='%-30s %12s %12s %8s %9s %6s %10s %9s\n'
row() { # label regconf distribution op target [nginx [nginx-target]]
  local r d=$3 q t=${5:-} n=${6:-} nt=${7:-} rn="" rr
  r=$2; q=$(ratio "$r" "$d")
  rr=""; [ -n "$t" ] && rr=$(check "$q" "$4" "$t")
  if [ -n "$n" ]; then rn=$(ratio "$r" "$n"); [ -n "$nt" ] && rn="$rn$( [ "$(check "$rn" '>=' "$nt")" = ok ] && echo '' || echo '!')"; fi
  printf "$F" "$1" "$r" "$d" "$q" "${t:+$4$t}" "$rr" "${n:--}" "${rn:--}"
}
{
echo
echo "regconf serve vs distribution $(dpkg-query -W -f '${Version}' docker-registry 2>/dev/null || echo '?'), $(nproc) cpus, $(date -u +%FT%TZ), load ${LOAD_SECS}s x $CONC conns (hey)"
echo "machine: SHA-256 (openssl) $SHA_MIBS MiB/s; 1 GiB write + fsync (dd) $DISK_MIBS MiB/s; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
printf "$F" figure regconf distribution ratio target met nginx "r/nginx"
for w in "manifest:GET manifest" "head:HEAD blob" "v2:GET /v2/" "blob:GET 1 MiB blob"; do
  k=${w%%:*}; label=${w#*:}
  case $k in manifest|v2) t=6; nt=0.5 ;; head) t=5; nt=0.5 ;; blob) t=1.5; nt=0.7 ;; esac
  row "$label req/s" "${V[regconf,$k.rps]}" "${V[distribution,$k.rps]}" '>=' "$t" "${V[nginx,$k.rps]}" "$nt"
  if [ "$k" = blob ]; then
    row "$label p99 ms" "${V[regconf,$k.p99]}" "${V[distribution,$k.p99]}" '<=' "" "${V[nginx,$k.p99]}"
  else
    row "$label p99 ms" "${V[regconf,$k.p99]}" "${V[distribution,$k.p99]}" '<=' 0.25 "${V[nginx,$k.p99]}"
  fi
done
row "upload $RAW_SIZE blob MiB/s" "${V[regconf,upload]}" "${V[distribution,upload]}" '>=' 1.8
ud=$(ratio "${V[regconf,upload]}" "$DISK_MIBS")
printf "$F" "  upload / disk write+fsync" "$ud" "$(ratio "${V[distribution,upload]}" "$DISK_MIBS")" "" ">=0.8" "$(check "$ud" '>=' 0.8)" - -
row "download $RAW_SIZE blob MiB/s" "${V[regconf,download]}" "${V[distribution,download]}" '>=' 1.0
row "skopeo push 1 GiB MiB/s" "${V[regconf,push_big]}" "${V[distribution,push_big]}" '>=' ""
row "skopeo pull 1 GiB MiB/s" "${V[regconf,pull_big]}" "${V[distribution,pull_big]}" '>=' ""
row "push $SMALL_IMAGES small images/s" "${V[regconf,push_small]}" "${V[distribution,push_small]}" '>=' ""
for p in "${PHASES[@]}"; do
  row "peak RSS MiB: $p" "${RSS[$p,regconf]}" "${RSS[$p,distribution]}" '<=' 0.167
done
echo "ratio = regconf / distribution; r/nginx = regconf / nginx on the same bytes (goal: >=0.5 small, >=0.7 blobs; '!' = short)"
} | tee "$WORK/table.txt"
cp "$WORK/table.txt" "/tmp/regbench-$(date +%Y%m%d-%H%M%S).txt"
