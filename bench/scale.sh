#!/usr/bin/env bash
# bench/scale.sh — how cost grows with the size of the work: the W4 shape (a random DAG,
# each job needing up to 3 earlier ones, one no-op step each) at 1,000, 10,000 and 100,000
# jobs, validated and run, with wall time, time per job, peak RSS and the size of the
# environment's database afterwards (and per 10,000 finished jobs).
#
# Targets (the performance issue): run time per job at 100,000 no worse than at 10,000
# (within 20%); validate of the 100,000-job file under 2 s and 500 MB.
#
# Every run uses `--workers 2 --progress plain` (to /dev/null) and a fresh `--env` temp
# dir. Each figure is the median of --reps runs (default 1: the largest size takes minutes).
#
# Usage (from any directory):
#   bench/scale.sh [--sizes 1000,10000,100000] [--reps N]
#   COREFLOW_BIN=path/to/coreflow skips the `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

SIZES=1000,10000,100000
REPS=1
while (($#)); do
    case $1 in
        --sizes) SIZES=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
((REPS >= 1)) || die "--reps must be at least 1"

build_coreflow
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "| jobs | validate | validate RSS | run | per job | run RSS | database | per 10,000 jobs |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
IFS=, read -ra sizes <<< "$SIZES"
for n in "${sizes[@]}"; do
    file=$WORK/w4-$n.yaml
    python3 bench/gen_dag.py "$n" --max-needs 3 > "$file"
    v_walls=() v_rss=() r_walls=() r_rss=() db=0
    for ((rep = 0; rep < REPS; rep++)); do
        m=$WORK/m
        measure "$m" "$BIN" validate "$file" > /dev/null 2>&1 || die "validate of $n jobs failed"
        v_walls+=("$(wall_of "$m")")
        v_rss+=("$(rss_kb_of "$m")")
        env=$WORK/env-$n-$rep
        measure "$m" "$BIN" --env "$env" run "$file" --workers 2 --progress plain > /dev/null 2>&1 ||
            die "the run of $n jobs failed"
        r_walls+=("$(wall_of "$m")")
        r_rss+=("$(rss_kb_of "$m")")
        db=$(du -sk "$env"/coreflow.db* 2> /dev/null | awk '{ s += $1 } END { print s }')
        rm -rf "$env"
    done
    vw=$(median "${v_walls[@]}")
    rw=$(median "${r_walls[@]}")
    per_job=$(calc "$rw * 1000000 / $n")
    per_10k=$(calc "$db * 10000 / $n")
    printf '| %s | %s | %s | %s | %s µs | %s | %s | %s |\n' \
        "$n" "$(fmt_s "$vw")" "$(fmt_mb "$(median "${v_rss[@]}")")" "$(fmt_s "$rw")" \
        "$(awk -v x="$per_job" 'BEGIN { printf "%.0f", x }')" "$(fmt_mb "$(median "${r_rss[@]}")")" \
        "$(fmt_mb "$db")" "$(fmt_mb "$per_10k")"
done
echo
measure_note
