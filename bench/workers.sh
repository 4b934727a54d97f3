#!/usr/bin/env bash
# bench/workers.sh — standalone `coreflow worker` processes against `coreflow run`, on one
# SQLite environment (issue 4, "Must hold").
#
#   (a) 2,000 independent no-op jobs: `coreflow run --workers 4` in one process, against
#       `run --detach` + 4 `coreflow worker` processes draining the same DAG.
#       Target: the workers take at most 1.2× the time of `run --workers 4` (claiming scales).
#       The workers' time runs from the start of `run --detach` to the run's `finished_at`
#       (`coreflow runs --json`, polled every 0.5 s to see the end: polling often would cost
#       the workers CPU); the 4 workers are started (idle) first. `run --workers 4` is timed
#       as a whole process.
#   (b) an idle worker's CPU over 10 s, from utime+stime in /proc/PID/stat.
#       Target: < 1% of a core.
#   (c) a DAG of 20 layers × 50 jobs, each needing the whole layer before it:
#       `coreflow run --workers 2` against `run --detach` + 2 workers. No target: it shows
#       what a run driven through the store (a claim and an advance per job, by whichever
#       worker ends a job) costs next to the in-process coordinator, which keeps the run's
#       states in memory and writes them behind in batches.
#
# Each figure of (a) is the median of --reps runs (default 3), the two modes alternating,
# each run with a fresh `--env`. The result is a Markdown table on stdout.
#
# Usage (from any directory):
#   bench/workers.sh [--reps N] [--jobs N] [--idle SECONDS] [--only a,b,c] [--strict]
#     --reps N        repetitions for (a) (default 3)
#     --jobs N        independent jobs in (a) (default 2000)
#     --idle SECONDS  how long (b) watches the idle worker (default 10)
#     --only L        run only the listed workloads
#     --strict        exit 1 when a target is missed (default: report only)
#   COREFLOW_BIN=path/to/coreflow skips the `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

REPS=3
JOBS=2000
IDLE=10
ONLY=""
STRICT=0
while (($#)); do
    case $1 in
        --reps) REPS=$2; shift 2 ;;
        --jobs) JOBS=$2; shift 2 ;;
        --idle) IDLE=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --strict) STRICT=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
((REPS >= 1)) || die "--reps must be at least 1"

# wanted X — whether workload X is selected.
wanted() {
    [[ -z $ONLY || ,$ONLY, == *,$1,* ]]
}

build_coreflow

WORK=$(mktemp -d "${TMPDIR:-/tmp}/coreflow-bench-workers.XXXXXX")
WORKER_PIDS=()
cleanup() {
    local pid
    for pid in "${WORKER_PIDS[@]}"; do
        kill -KILL "$pid" 2> /dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

ROWS=()     # Markdown table rows
MISSES=0    # targets missed
FAILURES=0  # commands that failed

# now — seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }

# start_workers ENV N — starts N idle workers on ENV; their pids go to WORKER_PIDS.
start_workers() {
    local env=$1 n=$2 i
    WORKER_PIDS=()
    for ((i = 1; i <= n; i++)); do
        "$BIN" worker --env "$env" --lease 30s > /dev/null 2> "$WORK/worker-$i.err" &
        WORKER_PIDS+=("$!")
    done
    # Every worker registers before the clock starts.
    await_idle_workers "$env" "$n" 30
}

# in_process OUTFILE WORKFLOW [N] — one measured `coreflow run --workers N` (default 4);
# writes the wall time.
in_process() {
    local out=$1 workflow=$2 n=${3:-4} env rc=0
    env=$(mktemp -d "$WORK/env.XXXXXX")
    measure "$WORK/m" "$BIN" run "$workflow" --workers "$n" --progress plain --env "$env" \
        > "$WORK/cf.out" 2> "$WORK/cf.err" || rc=$?
    rm -rf "$env"
    if ((rc != 0)); then
        echo "bench: coreflow run --workers $n exited $rc:" >&2
        tail -n 5 "$WORK/cf.out" "$WORK/cf.err" >&2
        FAILURES=$((FAILURES + 1))
        return "$rc"
    fi
    wall_of "$WORK/m" > "$out"
}

# with_workers OUTFILE WORKFLOW [N [JOBS]] — `run --detach`, then N workers (default 4) drain
# it; writes the time from the detach to the run's end. JOBS (default --jobs) is how many
# jobs must succeed at their first attempt.
with_workers() {
    local out=$1 workflow=$2 n=${3:-4} expected=${4:-$JOBS} env run status start end
    env=$(mktemp -d "$WORK/env.XXXXXX")
    start_workers "$env" "$n"
    start=$(now)
    if ! run=$("$BIN" run "$workflow" --detach --env "$env" 2> "$WORK/detach.err"); then
        cat "$WORK/detach.err" >&2
        stop_workers
        FAILURES=$((FAILURES + 1))
        return 1
    fi
    local deadline=$((SECONDS + 600)) finished
    while :; do
        status=$("$BIN" runs --json --limit 1 --env "$env" |
            awk -F'"' '/"status"/ { print $4; exit }')
        case $status in
            succeeded) break ;;
            failed | cancelled)
                echo "bench: run $run ended $status" >&2
                stop_workers
                FAILURES=$((FAILURES + 1))
                return 1
                ;;
        esac
        ((SECONDS < deadline)) || die "run $run did not end within 600 s"
        sleep 0.5
    done
    finished=$("$BIN" runs --json --limit 1 --env "$env" |
        awk -F'"' '/"finished_at"/ { print $4; exit }')
    end=$(date -d "$finished" +%s.%N)
    stop_workers
    local attempts
    attempts=$("$BIN" jobs --status succeeded --limit 100000 --json --env "$env" |
        grep -c '"attempts": 1,' || true)
    if ((attempts != expected)); then
        echo "bench: $attempts of $expected jobs succeeded at their first attempt" >&2
        FAILURES=$((FAILURES + 1))
    fi
    rm -rf "$env"
    calc "$end - $start" > "$out"
}

# (a) 2,000 independent no-op jobs, one process against four workers.
drain() {
    local yaml="$WORK/independent.yaml"
    python3 bench/gen_dag.py "$JOBS" --independent > "$yaml"
    echo "bench: $JOBS independent jobs, run --workers 4 vs 4 worker processes …" >&2
    local run_wall=() worker_wall=() rep failed=0
    for ((rep = 1; rep <= REPS; rep++)); do
        if in_process "$WORK/t" "$yaml"; then run_wall+=("$(cat "$WORK/t")"); else failed=1; fi
        if with_workers "$WORK/t" "$yaml"; then worker_wall+=("$(cat "$WORK/t")"); else failed=1; fi
        echo "bench:   rep $rep: run ${run_wall[*]: -1} s, workers ${worker_wall[*]: -1} s" >&2
    done
    if ((failed)) || ((${#run_wall[@]} == 0)) || ((${#worker_wall[@]} == 0)); then
        row "(a) $JOBS no-op jobs" "failed" "" "" "≤ 1.2×" "**MISS** (failed)"
        return
    fi
    local rw ww ratio
    rw=$(median "${run_wall[@]}") ww=$(median "${worker_wall[@]}")
    ratio=$(calc "$ww / $rw")
    row "(a) $JOBS independent no-op jobs" "$(fmt_s "$rw")" "$(fmt_s "$ww")" "$(fmt_x "$ratio")" \
        "$(awk -v n="$JOBS" -v t="$ww" 'BEGIN { printf "%.0f jobs/s", n / t }')" \
        "≤ 1.2× run" "$(verdict "$ratio <= 1.2")"
}

# cpu_ticks PID — utime + stime of a process (all its threads), in clock ticks.
cpu_ticks() {
    # The command name may hold spaces; the fields after its closing `)` are fixed.
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# (b) an idle worker's CPU.
idle() {
    echo "bench: an idle worker for $IDLE s …" >&2
    local env hz before after pid
    env=$(mktemp -d "$WORK/env.XXXXXX")
    start_workers "$env" 1
    pid=${WORKER_PIDS[0]}
    hz=$(getconf CLK_TCK)
    # Past start-up (opening the environment, the first housekeeping).
    sleep 1
    before=$(cpu_ticks "$pid")
    sleep "$IDLE"
    after=$(cpu_ticks "$pid")
    stop_workers
    rm -rf "$env"
    local pct
    pct=$(calc "($after - $before) / $hz / $IDLE * 100")
    row "(b) idle worker CPU over $IDLE s" "" "$((after - before)) ticks of 1/$hz s" "" \
        "$(awk -v p="$pct" 'BEGIN { printf "%.2f%% of a core", p }')" "< 1%" "$(verdict "$pct < 1")"
}

# (c) a layered DAG, one process against two workers.
layered() {
    local yaml="$WORK/layers.yaml"
    python3 bench/gen_dag.py --layers 20 --width 50 > "$yaml"
    echo "bench: 20 × 50 layered DAG, run --workers 2 vs 2 worker processes …" >&2
    local run_wall=() worker_wall=() rep failed=0
    for ((rep = 1; rep <= REPS; rep++)); do
        if in_process "$WORK/t" "$yaml" 2; then run_wall+=("$(cat "$WORK/t")"); else failed=1; fi
        if with_workers "$WORK/t" "$yaml" 2 1000; then worker_wall+=("$(cat "$WORK/t")"); else failed=1; fi
        echo "bench:   rep $rep: run ${run_wall[*]: -1} s, workers ${worker_wall[*]: -1} s" >&2
    done
    if ((failed)) || ((${#run_wall[@]} == 0)) || ((${#worker_wall[@]} == 0)); then
        row "(c) 20 × 50 layers, 2 workers" "failed" "" "" "" "" "failed"
        return
    fi
    local rw ww
    rw=$(median "${run_wall[@]}") ww=$(median "${worker_wall[@]}")
    row "(c) 20 × 50 layers (all-to-all), 2 of each" "$(fmt_s "$rw")" "$(fmt_s "$ww")" \
        "$(fmt_x "$(calc "$ww / $rw")")" \
        "$(awk -v t="$ww" 'BEGIN { printf "%.0f jobs/s", 1000 / t }')" "(no target)" ""
}

wanted a && drain
wanted b && idle
wanted c && layered

((${#ROWS[@]})) || die "no workload selected (--only takes a, b and c)"

echo "### coreflow worker processes vs run --workers N (median of $REPS, $(nproc) CPUs)"
echo
echo "| workload | run --workers N | N workers | ratio | workers | target | |"
echo "|---|---:|---:|---:|---:|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "$(measure_note) Worker times run from the start of \`run --detach\` to the run's \`finished_at\`."

if ((FAILURES)); then
    trap - EXIT
    echo "bench: $FAILURES command(s) failed, see above; inputs kept in $WORK" >&2
    exit 1
fi
if ((STRICT && MISSES)); then
    exit 1
fi
