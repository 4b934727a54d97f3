#!/usr/bin/env bash
# bench/validate.sh — how long `coreflow validate` takes on a 10,000-job random DAG, and
# its peak memory, next to `make -n -j2` (plan only) on the equivalent Makefile; then on
# files full of mistakes, where each problem must cost constant time (SPEC §7): about 5 MB
# with 78,000 unknown keys, and one line naming 50,000 jobs that do not exist in `needs`.
#
# Targets (PERFORMANCE.md): validate the DAG in < 1 s with a peak RSS < 150 MB; each file
# with mistakes in < 1 s with a peak RSS < 100 MB (exit 2, 50 diagnostics shown).
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
python3 - "$WORK" <<'PY'
import sys

work = sys.argv[1]
with open(f"{work}/keys.yaml", "w") as out:
    out.write("jobs:\n  a:\n    steps: [{ run: x }]\n")
    for i in range(78_000):
        out.write(f"    unknown_key_{i:06d}: value_{i:06d}_{'x' * 31}\n")
with open(f"{work}/needs.yaml", "w") as out:
    names = ", ".join(f"missing{i}" for i in range(50_000))
    out.write(f"jobs:\n  a:\n    steps: [{{ run: x }}]\n    needs: [{names}]\n")
PY

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

# measure_refused NAME — validates $WORK/NAME.yaml, which must be refused (exit 2) with its
# errors counted; the figures are in $WORK/m.
measure_refused() {
    local rc=0
    measure "$WORK/m" "$BIN" validate "$WORK/$1.yaml" > /dev/null 2> "$WORK/err" || rc=$?
    if ((rc != 2)) || ! tail -n 1 "$WORK/err" | grep -q 'errors found$'; then
        tail -n 20 "$WORK/err" >&2
        trap - EXIT
        die "coreflow validate of $1.yaml: exit $rc, expected 2 (kept: $WORK)"
    fi
}

keys_wall=() keys_rss=() needs_wall=() needs_rss=()
for ((rep = 1; rep <= REPS; rep++)); do
    measure_refused keys
    keys_wall+=("$(wall_of "$WORK/m")") keys_rss+=("$(rss_kb_of "$WORK/m")")
    measure_refused needs
    needs_wall+=("$(wall_of "$WORK/m")") needs_rss+=("$(rss_kb_of "$WORK/m")")
done

cfw=$(median "${cf_wall[@]}") cfr=$(max "${cf_rss[@]}")
mkw=$(median "${mk_wall[@]}") mkr=$(max "${mk_rss[@]}")
time_ok=$(verdict "$cfw < 1.0")
rss_ok=$(verdict "$cfr / 1024 < 150")
kw=$(median "${keys_wall[@]}") kr=$(max "${keys_rss[@]}")
nw=$(median "${needs_wall[@]}") nr=$(max "${needs_rss[@]}")
keys_ok="$(verdict "$kw < 1.0") / $(verdict "$kr / 1024 < 100")"
needs_ok="$(verdict "$nw < 1.0") / $(verdict "$nr / 1024 < 100")"

echo "### Plan a ${JOBS}-job random DAG (median of $REPS)"
echo
echo "| tool | wall | peak RSS | target | |"
echo "|---|---:|---:|---|---|"
echo "| \`coreflow validate\` | $(fmt_s "$cfw") | $(fmt_mb "$cfr") | < 1 s, < 150 MB | $time_ok / $rss_ok |"
echo "| \`make -n -j2\` | $(fmt_s "$mkw") | $(fmt_mb "$mkr") | | |"
echo
echo "coreflow / make: $(calc "$cfw / $mkw")× wall time."
echo
echo "### Validate files full of mistakes (median of $REPS)"
echo
echo "| file | size | wall | peak RSS | target | |"
echo "|---|---:|---:|---:|---|---|"
echo "| 78,000 unknown keys | $(fmt_mb "$(($(wc -c < "$WORK/keys.yaml") / 1024))") | $(fmt_s "$kw") | $(fmt_mb "$kr") | < 1 s, < 100 MB | $keys_ok |"
echo "| one line of 50,000 missing \`needs\` | $(fmt_mb "$(($(wc -c < "$WORK/needs.yaml") / 1024))") | $(fmt_s "$nw") | $(fmt_mb "$nr") | < 1 s, < 100 MB | $needs_ok |"
echo
measure_note

if ((STRICT)) && [[ $time_ok != ok || $rss_ok != ok || $keys_ok != "ok / ok" || $needs_ok != "ok / ok" ]]; then
    exit 1
fi
