#!/usr/bin/env bash
# Benchmark of pull-through mirroring: a 1 GiB image (BIG_LAYERS layers of
# BIG_LAYER_SIZE) pulled with skopeo
#   1. directly from the upstream (the CNCF distribution registry, Debian
#      package docker-registry),
#   2. through `regconf serve` mirroring that upstream, for the first time
#      (everything fetched, streamed and stored),
#   3. through the mirror a second time (all local),
#   4. from a plain `regconf serve` the image was pushed to (a local pull),
# all in one run, each pull into a fresh OCI layout on the same disk. Prints
# throughputs, the ratios first-pull : direct (target >= 0.9) and second
# pull : local pull (target >= 1.0), and the mirror's peak RSS while it
# fetched (memory must stay flat in blob size). Loopback only; 2-4 minutes.
#
# On a machine whose cores are busy with other work the ratios follow CPU
# cost more than design: the first pull adds the mirror's work (receive,
# hash, write, send) to the upstream's and skopeo's. So the script also
# prints the CPU seconds per GiB of the upstream (direct pull) and of the
# mirror (first pull), and the load average beside each round.
#
#   bash benches/mirror.sh
#
# Installs what is missing with apt-get (docker-registry, skopeo, jq).
# Knobs: BIG_LAYERS [8], BIG_LAYER_SIZE [128M], ROUNDS [2] (the direct and
# local pulls are repeated and the best kept; the first pull through the
# mirror can only happen once per mirror, so each round uses a fresh one),
# KEEP=1 keeps the scratch directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIG_LAYERS=${BIG_LAYERS:-8}
BIG_LAYER_SIZE=${BIG_LAYER_SIZE:-128M}
ROUNDS=${ROUNDS:-2}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

missing=()
command -v docker-registry >/dev/null || missing+=(docker-registry)
command -v skopeo >/dev/null || missing+=(skopeo)
command -v jq >/dev/null || missing+=(jq)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
log "building regconf (release)"
cargo build --release -q --bin regconf
BIN=$ROOT/target/release/regconf

WORK=$(mktemp -d /tmp/mirrorbench.XXXXXX)
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
wait_up() { # addr pid name
  for _ in $(seq 300); do
    curl -s -o /dev/null "http://$1/v2/" && return 0
    kill -0 "$2" 2>/dev/null || { cat "$WORK/$3.log" >&2; die "$3 exited"; }
    sleep 0.1
  done
  die "$3 did not start"
}

UP=127.0.0.1:$(free_port)
cat > "$WORK/upstream.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/upstream-data
  cache:
    blobdescriptor: inmemory
http:
  addr: $UP
health:
  storagedriver:
    enabled: false
EOF
docker-registry serve "$WORK/upstream.yml" > "$WORK/upstream.log" 2>&1 &
UP_PID=$!; PIDS+=("$UP_PID")
wait_up "$UP" "$UP_PID" upstream

# serve NAME [mirror]: starts regconf; sets ADDR and SPID.
serve() {
  local name=$1 port; port=$(free_port)
  {
    echo "bench:"
    echo "    storage: local"
    echo "    storage_path: $WORK/$name-data"
    echo "    loglevel: warning"
    if [ "${2:-}" = mirror ]; then
      echo "    mirroring:"
      echo "        source: http://$UP"
    fi
  } > "$WORK/$name.yml"
  "$BIN" serve "$WORK/$name.yml" --flavor bench --listen "127.0.0.1:$port" > "$WORK/$name.log" 2>&1 &
  SPID=$!; PIDS+=("$SPID")
  ADDR=127.0.0.1:$port
  wait_up "$ADDR" "$SPID" "$name"
}

log "generating a $BIG_LAYERS x $BIG_LAYER_SIZE image (not timed)"
python3 "$ROOT/benches/oci_layout.py" image "$WORK/big" v1 "$BIG_LAYERS" "$BIG_LAYER_SIZE" > /dev/null
BYTES=$(du -sb "$WORK/big/blobs" | cut -f1)
WANT=$(jq -r '.manifests[0].digest' "$WORK/big/index.json")
SKOPEO=(timeout 900 skopeo --insecure-policy copy -q)
log "pushing it to the upstream (as library/big) and to a plain regconf (not timed)"
"${SKOPEO[@]}" --dest-tls-verify=false "oci:$WORK/big:v1" "docker://$UP/library/big:v1"
serve local; LOCAL=$ADDR
"${SKOPEO[@]}" --dest-tls-verify=false "oci:$WORK/big:v1" "docker://$LOCAL/library/big:v1"
sync

now_ns() { date +%s%N; }
# pull ADDR IMAGE: prints MiB/s of a skopeo pull into a fresh layout.
pull() {
  rm -rf "$WORK/pulled"; sync
  local t; t=$(now_ns)
  "${SKOPEO[@]}" --src-tls-verify=false "docker://$1/$2" "oci:$WORK/pulled:v1"
  local secs; secs=$(awk -v a="$t" -v b="$(now_ns)" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  [ "$(jq -r '.manifests[0].digest' "$WORK/pulled/index.json")" = "$WANT" ] || die "pulled manifest differs"
  awk -v n="$BYTES" -v s="$secs" 'BEGIN{printf "%.1f", n/1048576/s}'
}
best() { printf '%s\n' "$@" | sort -g | tail -1; }
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
per_gib() { # ticks-before ticks-after -> CPU seconds per GiB pulled
  awk -v a="$1" -v b="$2" -v t="$TICKS" -v n="$BYTES" 'BEGIN{printf "%.2f", (b-a)/t/(n/1073741824)}'
}
load1() { cut -d' ' -f1 /proc/loadavg; }
peak_mib() { awk '/^VmHWM:/{printf "%.1f", $2/1024}' "/proc/$1/status"; }

DIRECT=(); FIRST=(); SECOND=(); LOCALS=(); PEAK=(); UPCPU=(); MCPU=(); LOADS=()
for r in $(seq "$ROUNDS"); do
  log "round $r: direct from the upstream"
  LOADS+=("$(load1)")
  u0=$(cpu_ticks "$UP_PID")
  DIRECT+=("$(pull "$UP" library/big:v1)")
  UPCPU+=("$(per_gib "$u0" "$(cpu_ticks "$UP_PID")")")
  serve "mirror$r" mirror; M=$ADDR; MPID=$SPID
  log "round $r: first pull through a fresh mirror"
  m0=$(cpu_ticks "$MPID")
  FIRST+=("$(pull "$M" big:v1)")
  MCPU+=("$(per_gib "$m0" "$(cpu_ticks "$MPID")")")
  LOADS+=("$(load1)")
  PEAK+=("$(peak_mib "$MPID")")
  log "round $r: second pull through the mirror (local)"
  SECOND+=("$(pull "$M" big:v1)")
  log "round $r: pull from the plain regconf"
  LOCALS+=("$(pull "$LOCAL" library/big:v1)")
  log "round $r: direct ${DIRECT[-1]}, first ${FIRST[-1]}, second ${SECOND[-1]}, local ${LOCALS[-1]} MiB/s; peak ${PEAK[-1]} MiB; CPU s/GiB upstream ${UPCPU[-1]}, mirror ${MCPU[-1]}; load ${LOADS[-2]} ${LOADS[-1]}"
  kill "$MPID"; wait "$MPID" 2>/dev/null || true
done

# Peak RSS against blob size: one blob of 64 MiB and one of 1 GiB, each
# fetched through the mirror with curl (VmHWM reset before each, as root).
push_blob() { # file -> digest, pushed to the upstream's library/raw
  local d; d=sha256:$(sha256sum "$1" | cut -d' ' -f1)
  local loc; loc=$(curl -sf -D - -o /dev/null -X POST "http://$UP/v2/library/raw/blobs/uploads/" \
    | tr -d '\r' | awk 'tolower($1)=="location:"{print $2}')
  case "$loc" in http*) ;; *) loc="http://$UP$loc" ;; esac
  case "$loc" in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
  curl -sf -X PUT -H 'Content-Type: application/octet-stream' -T "$1" "$loc" -o /dev/null
  echo "$d"
}
log "peak RSS against blob size: 64 MiB and 1 GiB blobs through a fresh mirror"
serve mirror-blobs mirror; M=$ADDR; MPID=$SPID
declare -A BLOB_PEAK
for sz in 64M 1G; do
  python3 "$ROOT/benches/oci_layout.py" blob "$WORK/raw-$sz.bin" "$sz" > /dev/null
  d=$(push_blob "$WORK/raw-$sz.bin")
  echo 5 > "/proc/$MPID/clear_refs" 2>/dev/null || true
  curl -sf "http://$M/v2/raw/blobs/$d" -o /dev/null || die "blob $sz through the mirror failed"
  BLOB_PEAK[$sz]=$(peak_mib "$MPID")
  rm -f "$WORK/raw-$sz.bin"
done

D=$(best "${DIRECT[@]}"); F=$(best "${FIRST[@]}"); S=$(best "${SECOND[@]}"); L=$(best "${LOCALS[@]}")
P=$(printf '%s\n' "${PEAK[@]}" | sort -g | tail -1)
echo
printf '%-44s %10s\n' "skopeo pull of $((BYTES / 1048576)) MiB ($BIG_LAYERS layers)" "MiB/s"
printf '%-44s %10s   (rounds: %s)\n' "direct from distribution" "$D" "${DIRECT[*]}"
printf '%-44s %10s   (rounds: %s)\n' "first pull through the mirror" "$F" "${FIRST[*]}"
printf '%-44s %10s   (rounds: %s)\n' "second pull through the mirror" "$S" "${SECOND[*]}"
printf '%-44s %10s   (rounds: %s)\n' "pull from a plain regconf" "$L" "${LOCALS[*]}"
echo
awk -v f="$F" -v d="$D" 'BEGIN{r=f/d; printf "%-44s %10.2f   target >= 0.90  %s\n", "first pull : direct", r, (r>=0.9?"ok":"MISSED")}'
awk -v s="$S" -v l="$L" 'BEGIN{r=s/l; printf "%-44s %10.2f   target >= 1.00  %s\n", "second pull : local pull", r, (r>=1.0?"ok":"MISSED")}'
printf '%-44s %10s   (layers of %s; rounds: %s)\n' "mirror peak RSS during the first pull, MiB" "$P" "$BIG_LAYER_SIZE" "${PEAK[*]}"
printf '%-44s %10s\n' "mirror peak RSS, one 64 MiB blob fetched, MiB" "${BLOB_PEAK[64M]}"
printf '%-44s %10s\n' "mirror peak RSS, one 1 GiB blob fetched, MiB" "${BLOB_PEAK[1G]}"
printf '%-44s %10s   (rounds: %s)\n' "upstream CPU s per GiB, direct pull" "$(printf '%s\n' "${UPCPU[@]}" | sort -g | head -1)" "${UPCPU[*]}"
printf '%-44s %10s   (rounds: %s)\n' "mirror CPU s per GiB, first pull" "$(printf '%s\n' "${MCPU[@]}" | sort -g | head -1)" "${MCPU[*]}"
printf '%-44s %10s   (1-min load before and after each round)\n' "load average" "${LOADS[*]}"
