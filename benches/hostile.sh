#!/usr/bin/env bash
# Benchmark of hostile-sized configuration files (issue 12): every stage of
# `validate` and `render` must grow linearly with the file. Times and peak
# memory of one whole process per case, measured with GNU time (no other tool
# needed); targets: under 5 s and under 1 GB each.
#
#   bash benches/hostile.sh            (builds the release binary first)
#
# Cases, all generated here:
#   unknown-20k   a flavor of 20,000 unknown keys (one warning each), human output
#   flow-160k     a one-line flow mapping of 160,000 entries (unknown keys)
#   block-50MB    a 50 MB file of block mappings (flavors of known keys)
#   flow-50MB     the same amount as one flow mapping per flavor, each on one line
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
bin=$PWD/target/release/regconf
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work" <<'EOF'
import sys
work = sys.argv[1]

def write(name, text):
    with open(f"{work}/{name}", "w") as f:
        f.write(text)

write("unknown-20k.yml",
      "dev:\n" + "".join(f"  unknown_key_{i}: {i}\n" for i in range(20000)) + "prod:\n  loglevel: info\n")
write("flow-160k.yml",
      "dev: {" + ", ".join(f"k{i}: {i}" for i in range(160000)) + "}\nprod:\n  loglevel: info\n")
# 50 MB of flavors that each chain to the previous through a merge key
target = 50 * 1000 * 1000
block, flow, i = [], [], 0
size_b = size_f = 0
while size_b < target:
    keys = {
        "loglevel": "info",
        "storage": "local",
        "storage_path": f"/srv/registry/{i}",
        "search_backend": "''",
        "issue": f"'flavor {i} of a generated file, long enough to weigh'",
        "standalone": "true",
        "disable_token_auth": "false",
    }
    b = f"f{i}: &f{i}\n" + (f"  <<: *f{i - 1}\n" if i else "") + "".join(
        f"  {k}: {v}\n" for k, v in keys.items()
    )
    fl = f"g{i}: &g{i} {{" + (f"<<: *g{i - 1}, " if i else "") + ", ".join(
        f"{k}: {v}" for k, v in keys.items()
    ) + "}\n"
    block.append(b)
    flow.append(fl)
    size_b += len(b)
    size_f += len(fl)
    i += 1
write("block-50MB.yml", "".join(block))
write("flow-50MB.yml", "".join(flow))
with open(f"{work}/last", "w") as f:
    f.write(str(i - 1))
EOF
last=$(cat "$work/last")

# seconds (wall, and CPU: user plus system, which a shared machine inflates
# less), peak RSS (MiB) of one run, and its exit status
measure() {
  local label=$1
  shift
  local status=0
  /usr/bin/time -f '%e %M %U %S' -o "$work/time" "$@" >/dev/null 2>"$work/err" || status=$?
  read -r secs kib user sys <"$work/time" || true
  # GNU time appends "Command exited with non-zero status N" first on failure
  if ! [[ $secs =~ ^[0-9.]+$ ]]; then
    read -r secs kib user sys < <(tail -n 1 "$work/time")
  fi
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
  printf '%-34s %8s s %8s s %8d MiB   exit %s\n' "$label" "$secs" "$cpu" "$((kib / 1024))" "$status"
}

printf '%-34s %10s %10s %12s\n' case wall CPU "peak RSS"
measure "validate unknown-20k (human)" "$bin" validate "$work/unknown-20k.yml"
measure "validate unknown-20k (json)" "$bin" validate --format json "$work/unknown-20k.yml"
measure "validate flow-160k (human)" "$bin" validate "$work/flow-160k.yml"
measure "render flow-160k" "$bin" render "$work/flow-160k.yml" --flavor dev
for f in block flow; do
  p=$([ "$f" = block ] && echo f || echo g)
  size=$(stat -c %s "$work/$f-50MB.yml")
  measure "validate $f-50MB ($((size / 1000000)) MB, all)" \
    "$bin" validate "$work/$f-50MB.yml"
  measure "validate $f-50MB (last flavor)" \
    "$bin" validate "$work/$f-50MB.yml" --flavor "$p$last"
  measure "render $f-50MB (last of $((last + 1)))" \
    "$bin" render "$work/$f-50MB.yml" --flavor "$p$last"
done
