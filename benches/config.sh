#!/usr/bin/env bash
# Benchmark of the configuration side, whole process, side by side in one run:
# regconf (release build) against the reference resolver (v1_resolve.py,
# docker-registry's configuration model in Python; not part of this
# repository), on our 0.9-style sample (tests/fixtures/samples/style-0.9.yml)
# and on generated files of chained flavors. Prints ratios, not just times:
# the machines are shared and noisy.
#
#   bash benches/config.sh [REFERENCE]   (installs hyperfine with apt-get if missing)
#
# REFERENCE is the path of v1_resolve.py: the argument, else $REGCONF_REFERENCE,
# else ../shared/reference/v1_resolve.py (where CI keeps it).
set -euo pipefail
cd "$(dirname "$0")/.."
ref=${1:-${REGCONF_REFERENCE:-../shared/reference/v1_resolve.py}}
if [ ! -f "$ref" ]; then
  echo "benches/config.sh: reference resolver not found at $ref" >&2
  echo "  it compares regconf with docker-registry's configuration model, v1_resolve.py" >&2
  echo "  (Python 3 + PyYAML), which is not in this repository: pass its path as the" >&2
  echo "  first argument or in REGCONF_REFERENCE" >&2
  exit 2
fi
if ! command -v hyperfine >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null
fi
cargo build --release -q
bin=target/release/regconf
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo '{}' > "$work/env.json"
cp tests/fixtures/samples/style-0.9.yml "$work/sample.yml"
for n in 100 500 1000 10000 20000; do
  python3 benches/gen_flavors.py "$n" > "$work/chain-$n.yml"
done

# mean seconds of a command, measured by hyperfine
mean() {
  hyperfine -N --warmup 3 --runs "${RUNS:-20}" --export-json "$work/h.json" "$1" >/dev/null 2>&1
  python3 -c 'import json,sys; print("%.6f" % json.load(open(sys.argv[1]))["results"][0]["mean"])' "$work/h.json"
}
row() { printf '%-44s %12s %12s %9s\n' "$@"; }
ratio() { python3 -c "import sys; print('%.1fx' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }

row "workload" "regconf s" "reference s" "ratio"
for case in "sample.yml --flavor prod" "sample.yml --flavor dev" "chain-100.yml --flavor f99" "chain-500.yml --flavor f499"; do
  set -- $case
  r=$(mean "$bin render $work/$1 $2 $3 --format json")
  p=$(mean "python3 $ref $work/$1 $2 $3 --inherit auto --env-json $work/env.json")
  row "render $case" "$r" "$p" "$(ratio "$p" "$r")"
done
if $bin validate --help >/dev/null 2>&1; then
  r=$(mean "$bin validate $work/sample.yml")
  p=$(mean "python3 $ref $work/sample.yml --flavor prod --inherit auto --env-json $work/env.json")
  row "validate sample.yml (all flavors) vs ref 1" "$r" "$p" "$(ratio "$p" "$r")"
fi
echo
echo "scaling (regconf only; the reference stops at Python's recursion limit):"
row "workload" "bytes" "regconf s" "s per MB"
for n in 1000 10000 20000; do
  f="$work/chain-$n.yml"
  bytes=$(stat -c %s "$f")
  r=$(RUNS=10 mean "$bin render $f --flavor f$((n - 1)) --format json")
  row "render chain-$n.yml --flavor f$((n - 1))" "$bytes" "$r" "$(python3 -c "import sys; print('%.3f' % (float(sys.argv[1]) / (int(sys.argv[2]) / 1e6)))" "$r" "$bytes")"
  if $bin validate --help >/dev/null 2>&1; then
    r=$(RUNS=10 mean "$bin validate $f")
    row "validate chain-$n.yml (every flavor)" "$bytes" "$r" "$(python3 -c "import sys; print('%.3f' % (float(sys.argv[1]) / (int(sys.argv[2]) / 1e6)))" "$r" "$bytes")"
  fi
done
