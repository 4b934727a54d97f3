#!/usr/bin/env bash
# bench/blocks.sh — publishing a 1 GB DataBlock: `coreflow run` of a job that declares a
# 1 GiB file as a DataBlock (hash + copy into the content store + register), next to
# `sha256sum` of the same file, and the peak RSS of the publishing process.
#
# Targets (issue 6): publish ≤ 1.3× `sha256sum`, peak RSS < 64 MB.
#
# Usage (from any directory):
#   bench/blocks.sh [--size-mb N] [--reps N] [--strict]
#     --size-mb N  size of the block in MiB (default 1024)
#     --reps N     repetitions; medians are reported (default 3)
#     --strict     exit 1 when a target is missed (default: report only)
#   COREFLOW_BIN=path/to/coreflow skips the `cargo build --release`.
#
# The file is random (incompressible, no holes) and read once beforehand, so both tools read
# it from the page cache. Each publish uses a fresh environment, so the content is new and
# really written (and flushed to disk) every time; a republish of unchanged content into
# the same environment is measured separately.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

SIZE_MB=1024
REPS=3
STRICT=0
while (($#)); do
    case $1 in
        --size-mb) SIZE_MB=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --strict) STRICT=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
command -v sha256sum > /dev/null || die "sha256sum not found"

build_coreflow

WORK=$(mktemp -d "${TMPDIR:-/tmp}/coreflow-bench-blocks.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "writing a ${SIZE_MB} MiB random file …" >&2
head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom > "$WORK/big.bin"
cat "$WORK/big.bin" > /dev/null
cat > "$WORK/publish.yaml" << 'EOF'
jobs:
  publish:
    steps:
      - run: "true"
    datablocks:
      big: { path: big.bin }
EOF

sha_wall=() cf_wall=() cf_rss=() again_wall=() again_rss=()
for ((rep = 1; rep <= REPS; rep++)); do
    measure "$WORK/m" sha256sum "$WORK/big.bin" > /dev/null
    sha_wall+=("$(wall_of "$WORK/m")")

    rm -rf "$WORK/env"
    if ! measure "$WORK/m" "$BIN" run "$WORK/publish.yaml" --env "$WORK/env" --progress plain \
        --workers 1 > /dev/null 2> "$WORK/err"; then
        tail -n 20 "$WORK/err" >&2
        die "coreflow run failed"
    fi
    cf_wall+=("$(wall_of "$WORK/m")") cf_rss+=("$(rss_kb_of "$WORK/m")")

    # Unchanged content into the same environment: hashed, found, not stored again.
    measure "$WORK/m" "$BIN" run "$WORK/publish.yaml" --env "$WORK/env" --progress plain \
        --workers 1 > /dev/null 2> "$WORK/err" || { tail -n 20 "$WORK/err" >&2; die "republish failed"; }
    again_wall+=("$(wall_of "$WORK/m")") again_rss+=("$(rss_kb_of "$WORK/m")")
done
versions=$("$BIN" blocks list --env "$WORK/env" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["versions"])')
[[ $versions == 1 ]] || die "the republish made a new version ($versions versions)"

shw=$(median "${sha_wall[@]}")
cfw=$(median "${cf_wall[@]}") cfr=$(max "${cf_rss[@]}")
agw=$(median "${again_wall[@]}") agr=$(max "${again_rss[@]}")
ratio=$(calc "$cfw / $shw")
time_ok=$(verdict "$ratio <= 1.3")
rss_ok=$(verdict "$cfr / 1024 < 64")

echo "### Publish a ${SIZE_MB} MiB DataBlock (median of $REPS)"
echo
echo "| what | wall | × sha256sum | peak RSS | target | |"
echo "|---|---:|---:|---:|---|---|"
echo "| \`sha256sum big.bin\` | $(fmt_s "$shw") | 1.00× | | | |"
echo "| \`coreflow run\` publishing it (new content) | $(fmt_s "$cfw") | $(fmt_x "$ratio") | $(fmt_mb "$cfr") | ≤ 1.3×, < 64 MB | $time_ok / $rss_ok |"
echo "| \`coreflow run\` republishing it (unchanged) | $(fmt_s "$agw") | $(fmt_x "$(calc "$agw / $shw")") | $(fmt_mb "$agr") | | |"
echo
measure_note

if ((STRICT)) && [[ $time_ok != ok || $rss_ok != ok ]]; then
    exit 1
fi
