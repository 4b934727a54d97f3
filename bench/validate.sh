#!/usr/bin/env bash
# bench/validate.sh — how long `coreflow validate` takes on a 10,000-job random DAG, and
# its peak memory, next to `make -n -j2` (plan only) on the equivalent Makefile.
#
# Targets (PERFORMANCE.md): validate in < 1 s with a peak RSS < 150 MB.
#
# Usage (from any directory):
#   bench/validate.sh [--jobs N] [--reps N] [--seed S] [--strict]
#     --jobs N    jobs in the DAG (default 10000)
#     --reps N    repetitions; medians are reported (default 3)
#     --strict    exit 1 when a target is missed (default: report only)
#   COREFLOW_BIN=path/to/coreflow skips the `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

JOBS=10000
REPS=3
SEED=42
STRICT=0
while (($#)); do
    case $1 in
        --jobs) JOBS=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --strict) STRICT=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done

build_coreflow

WORK=$(mktemp -d "${TMPDIR:-/tmp}/coreflow-bench-validate.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

python3 bench/gen_dag.py "$JOBS" --seed "$SEED" > "$WORK/dag.yaml"
python3 bench/gen_dag.py "$JOBS" --seed "$SEED" --makefile > "$WORK/Makefile"

cf_wall=() cf_rss=() mk_wall=() mk_rss=()
for ((rep = 1; rep <= REPS; rep++)); do
    if ! measure "$WORK/m" "$BIN" validate "$WORK/dag.yaml" --env "$WORK/env" > /dev/null 2> "$WORK/err"; then
        tail -n 20 "$WORK/err" >&2
        trap - EXIT
        die "coreflow validate failed on the generated DAG (kept: $WORK/dag.yaml)"
    fi
    cf_wall+=("$(wall_of "$WORK/m")") cf_rss+=("$(rss_kb_of "$WORK/m")")

    measure "$WORK/m" make -n -j2 -f "$WORK/Makefile" > /dev/null 2> "$WORK/err" ||
        { tail -n 20 "$WORK/err" >&2; die "make -n failed"; }
    mk_wall+=("$(wall_of "$WORK/m")") mk_rss+=("$(rss_kb_of "$WORK/m")")
done

cfw=$(median "${cf_wall[@]}") cfr=$(max "${cf_rss[@]}")
mkw=$(median "${mk_wall[@]}") mkr=$(max "${mk_rss[@]}")
time_ok=$(verdict "$cfw < 1.0")
rss_ok=$(verdict "$cfr / 1024 < 150")

echo "### Plan a ${JOBS}-job random DAG (median of $REPS)"
echo
echo "| tool | wall | peak RSS | target | |"
echo "|---|---:|---:|---|---|"
echo "| \`coreflow validate\` | $(fmt_s "$cfw") | $(fmt_mb "$cfr") | < 1 s, < 150 MB | $time_ok / $rss_ok |"
echo "| \`make -n -j2\` | $(fmt_s "$mkw") | $(fmt_mb "$mkr") | | |"
echo
echo "coreflow / make: $(calc "$cfw / $mkw")× wall time. $(measure_note)"

if ((STRICT)) && [[ $time_ok != ok || $rss_ok != ok ]]; then
    exit 1
fi
