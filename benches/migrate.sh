#!/usr/bin/env bash
# Benchmark of `regconf migrate-v1` on a 1 GiB docker-registry v1 store, with
# the machine's limits measured on the same bytes in the same run: `gzip -1`,
# `gzip -6` (what a plain-tar layer costs to compress) and `sha256sum`.
#
#   bash benches/migrate.sh
#
# The data is the first SIZE bytes of a tar of /usr (real binaries and text,
# so it compresses like real layers). It is converted twice: as 16 plain-tar
# layers of SIZE/16 (one image chain), and as one plain-tar layer of SIZE;
# the peak RSS of the two runs shows whether memory follows layer size (it
# must not). The converter does not parse the tar, so a layer cut in the
# middle of a member is fine here. Page cache warm (every figure reads the
# file just read). Needs about 2.5 x SIZE of scratch space; TMPDIR=/dev/shm
# keeps the disk out of the figures. Knobs: SIZE [1G], KEEP=1 keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZE=${SIZE:-1G}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

for t in gzip sha256sum /usr/bin/time tar; do
  command -v "$t" >/dev/null || { log "missing $t"; exit 1; }
done
if pgrep -x rustc >/dev/null || pgrep -x cargo >/dev/null; then
  log "note: a cargo build is running on this machine; figures are noisier (ratios less so)"
fi
log "building regconf (release)"
cargo build --release -q --bin regconf
BIN=$ROOT/target/release/regconf

WORK=$(mktemp -d "${TMPDIR:-/tmp}/migbench.XXXXXX")
cleanup() { [ "${KEEP:-}" = 1 ] && log "kept $WORK" || rm -rf "$WORK"; }
trap cleanup EXIT

log "data: first $SIZE of a tar of /usr"
tar -cf - -C / usr 2>/dev/null | head -c "$SIZE" >"$WORK/data" || true
BYTES=$(stat -c %s "$WORK/data")
MIB=$((BYTES / 1048576))

id_of() { printf '%s' "$1" | sha256sum | cut -c1-64; }

# write_store DIR LAYER_FILE...: one chain of images, base first, one tag.
write_store() {
  local dir=$1; shift
  local parent="" ancestry="" i=0 id
  for layer in "$@"; do
    id=$(id_of "$dir-$i")
    mkdir -p "$dir/images/$id"
    if [ -n "$parent" ]; then
      printf '{"id":"%s","parent":"%s","created":"2015-01-01T00:00:00Z"}' "$id" "$parent" >"$dir/images/$id/json"
    else
      printf '{"id":"%s","created":"2015-01-01T00:00:00Z"}' "$id" >"$dir/images/$id/json"
    fi
    ancestry="\"$id\"${ancestry:+,$ancestry}"
    printf '[%s]' "$ancestry" >"$dir/images/$id/ancestry"
    ln "$layer" "$dir/images/$id/layer"
    sum=$( { cat "$dir/images/$id/json"; printf '\n'; cat "$layer"; } | sha256sum | cut -c1-64)
    printf '["sha256:%s"]' "$sum" >"$dir/images/$id/_checksum"
    parent=$id
    i=$((i + 1))
  done
  mkdir -p "$dir/repositories/library/bench"
  printf '%s' "$parent" >"$dir/repositories/library/bench/tag_latest"
}

cat >"$WORK/config.yml" <<EOF
many:
  storage: local
  storage_path: $WORK/many
  loglevel: warning
one:
  storage: local
  storage_path: $WORK/one
  loglevel: warning
EOF

# timed LABEL CMD...: seconds and peak RSS (KiB) of one process
declare -A SECS RSS
timed() {
  local label=$1; shift
  /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || {
    log "$label failed:"; cat "$WORK/err" >&2; tail -n 3 "$WORK/time" >&2; exit 1; }
  read -r s k < <(tail -n 1 "$WORK/time")
  SECS[$label]=$s
  RSS[$label]=$k
  log "$label: ${s}s, peak RSS ${k} KiB"
}

cat "$WORK/data" >/dev/null
timed sha256sum sha256sum "$WORK/data"
timed "gzip -1" gzip -1 -c "$WORK/data"
timed "gzip -6" gzip -6 -c "$WORK/data"
# One store at a time, to need little disk (data, one copy, the blobs).
mkdir -p "$WORK/parts"
split -n 16 -d "$WORK/data" "$WORK/parts/p"
write_store "$WORK/many" "$WORK"/parts/p*
timed "migrate 16 layers" "$BIN" migrate-v1 "$WORK/config.yml" --flavor many
rm -rf "$WORK/many" "$WORK/parts"
write_store "$WORK/one" "$WORK/data"
timed "migrate 1 layer" "$BIN" migrate-v1 "$WORK/config.yml" --flavor one
timed "migrate again (nothing to do)" "$BIN" migrate-v1 "$WORK/config.yml" --flavor one

STORED=$(find "$WORK/one/blobs" -name data -size +1M -printf '%s\n' | sort -n | tail -n 1)
printf '\n%s MiB of tar (%s bytes); stored gzip blob %s bytes (%s%%)\n\n' \
  "$MIB" "$BYTES" "$STORED" "$((STORED * 100 / BYTES))"
printf '| run | seconds | MiB/s of tar | peak RSS |\n|---|---|---|---|\n'
for label in sha256sum "gzip -1" "gzip -6" "migrate 16 layers" "migrate 1 layer" "migrate again (nothing to do)"; do
  s=${SECS[$label]}
  rate=$(awk -v b="$BYTES" -v s="$s" 'BEGIN { if (s > 0) printf "%.0f", b / 1048576 / s; else print "-" }')
  printf '| %s | %s | %s | %s MiB |\n' "$label" "$s" "$rate" "$((RSS[$label] / 1024))"
done
