#!/usr/bin/env bash
# Metadata at scale (issue 15): `regconf serve` on local storage holding
# REPOS repositories (one tag each) and one repository with TAGS tags,
# written directly (benches/metadata_layout.py). Prints the time from
# starting `serve` to its first answer (first start: the index is built;
# restart: it is opened and caught up from the change log), the time of
# one catalog page, one tags/list page and one search (median of 20, from
# the middle of the list), and the RSS after them; then distribution's
# (Debian package docker-registry) catalog and tags/list page on the same
# layout (median of 5), side by side.
#
# The layout takes about 12 KiB per repository (1.2 GB at 100,000 on tmpfs;
# more on a disk of 4 KiB blocks); it is deleted at the end. TMPDIR picks its place.
#
# Usage: bash benches/metadata.sh [REPOS [TAGS]]   (100000, 100000)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPOS=${1:-100000}
TAGS=${2:-100000}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/metadata.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf '%s\n' "$*" >&2; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

command -v docker-registry >/dev/null || { apt-get update -qq && apt-get install -y -qq docker-registry >/dev/null; }
if [ -z "${REGCONF_BIN:-}" ]; then
  log "building regconf (release)"
  cargo build --release -q --bin regconf --manifest-path "$ROOT/Cargo.toml"
  REGCONF_BIN=$ROOT/target/release/regconf
fi

log "writing $REPOS repositories and one with $TAGS tags"
t0=$(date +%s.%N)
python3 "$ROOT/benches/metadata_layout.py" "$WORK/store" "$REPOS" "$TAGS"
sync
log "layout written in $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s ($(du -sh "$WORK/store" | cut -f1))"

P=$(port)
cat > "$WORK/regconf.yml" <<YML
bench:
  storage: local
  storage_path: $WORK/store
  search_backend: sqlalchemy
  sqlalchemy_index_database: sqlite:///$WORK/index.db
  loglevel: error
YML

# start_regconf: launches serve (REG_PID), sets STARTED to the seconds until
# its first catalog answer
start_regconf() {
  local t0
  t0=$(date +%s.%N)
  "$REGCONF_BIN" serve "$WORK/regconf.yml" --flavor bench --listen "127.0.0.1:$P" > /dev/null 2>> "$WORK/regconf.err" &
  REG_PID=$!
  PIDS+=("$REG_PID")
  until curl -sf -o /dev/null "http://127.0.0.1:$P/v2/_catalog?n=1"; do
    kill -0 "$REG_PID" 2>/dev/null || { cat "$WORK/regconf.err" >&2; exit 1; }
    sleep 0.01
  done
  STARTED=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')")
}

# median_ms URL COUNT: median wall time of COUNT GETs, in milliseconds
median_ms() {
  python3 - "$1" "$2" <<'PY'
import statistics, sys, time, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(n):
    t = time.perf_counter()
    with urllib.request.urlopen(url) as r:
        body = r.read()
        assert r.status == 200, r.status
    times.append((time.perf_counter() - t) * 1000)
print(f"{statistics.median(times):.1f}")
PY
}

MID_REPO=$(printf 'bench/r%06d' $((REPOS / 2)))
MID_TAG=$(printf 't%06d' $((TAGS / 2)))
CATALOG="/v2/_catalog?n=100&last=$MID_REPO"
TAGLIST="/v2/big/tags/tags/list?n=100&last=$MID_TAG"
SEARCH="/v1/search?q=r$(printf '%06d' $((REPOS - 1)))"

start_regconf
first=$STARTED
kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true
start_regconf
restart=$STARTED
load_r=$(cut -d' ' -f1 /proc/loadavg)
cat_r=$(median_ms "http://127.0.0.1:$P$CATALOG" 20)
tags_r=$(median_ms "http://127.0.0.1:$P$TAGLIST" 20)
search_r=$(median_ms "http://127.0.0.1:$P$SEARCH" 20)
rss_r=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$REG_PID/status")
curl -sf "http://127.0.0.1:$P$CATALOG" | python3 -c 'import json,sys; r=json.load(sys.stdin)["repositories"]; assert len(r)==100, len(r)'
kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true

# The same layout, as distribution's filesystem driver expects it.
mkdir -p "$WORK/dist/docker/registry"
ln -s "$WORK/store" "$WORK/dist/docker/registry/v2"
D=$(port)
cat > "$WORK/dist.yml" <<YML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/dist
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$D
YML
docker-registry serve "$WORK/dist.yml" > "$WORK/dist.err" 2>&1 &
DIST_PID=$!
PIDS+=("$DIST_PID")
until curl -sf -o /dev/null "http://127.0.0.1:$D/v2/"; do sleep 0.05; done
load_d=$(cut -d' ' -f1 /proc/loadavg)
cat_d=$(median_ms "http://127.0.0.1:$D$CATALOG" 5)
tags_d=$(median_ms "http://127.0.0.1:$D$TAGLIST" 5)
rss_d=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$DIST_PID/status")

printf '\nMetadata at scale, local storage: %s repositories, one with %s tags; %s cpus, %s\n\n' \
  "$REPOS" "$TAGS" "$(nproc)" "$(date -u +%FT%TZ)"
printf '| | regconf serve | distribution %s |\n| --- | --- | --- |\n' "$(dpkg-query -W -f '${Version}' docker-registry 2>/dev/null || echo '?')"
printf '| first start to first answer (index built) | %s s | - |\n' "$first"
printf '| restart to first answer (index caught up) | %s s | - |\n' "$restart"
printf '| catalog page (`n=100&last=`, middle) | %s ms | %s ms |\n' "$cat_r" "$cat_d"
printf '| tags/list page (`n=100&last=`, middle) | %s ms | %s ms |\n' "$tags_r" "$tags_d"
printf '| search (`/v1/search?q=`, one hit) | %s ms | - |\n' "$search_r"
printf '| RSS after these | %s MiB | %s MiB |\n' "$rss_r" "$rss_d"
printf '| load average (1 min) at the start of the queries | %s | %s |\n' "$load_r" "$load_d"
