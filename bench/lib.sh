# shellcheck shell=bash
# Shared helpers for the benchmark scripts; sourced by each bench/*.sh after it cds to the
# repository root. The table helpers use the script's ROWS (and MISSES, FAILURES) arrays and
# counters; the worker helpers its BIN, WORK and WORKER_PIDS.
#
# Environment knobs:
#   COREFLOW_BIN=PATH   use this binary instead of building target/release/coreflow
#   BENCH_TIMER=python  measure with bench/measure.py even when /usr/bin/time exists

# Ends the script with a message on stderr.
die() {
    echo "bench: $*" >&2
    exit 1
}

# Builds the release binary (unless COREFLOW_BIN is set) and sets BIN.
build_coreflow() {
    if [[ -n "${COREFLOW_BIN:-}" ]]; then
        BIN=$COREFLOW_BIN
        [[ -x "$BIN" ]] || die "COREFLOW_BIN=$BIN is not an executable"
        return
    fi
    command -v cargo > /dev/null || die "cargo not found (or set COREFLOW_BIN)"
    echo "building target/release/coreflow …" >&2
    local log
    log=$(mktemp)
    if ! cargo build --release --quiet > "$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        die "cargo build --release failed"
    fi
    rm -f "$log"
    BIN=$PWD/target/release/coreflow
}

# Picks how `measure` works: GNU time -v when present, else the Python wrapper.
if [[ "${BENCH_TIMER:-}" != python && -x /usr/bin/time ]] && /usr/bin/time -v true > /dev/null 2>&1; then
    MEASURE_WITH=gnu-time
else
    command -v python3 > /dev/null || die "need /usr/bin/time or python3 to measure"
    MEASURE_WITH=python
fi

# A note for reports: the Python wrapper's own size is a floor under every peak it reports,
# because Linux carries ru_maxrss across exec.
measure_note() {
    if [[ $MEASURE_WITH == python ]]; then
        local m
        m=$(mktemp)
        measure "$m" true
        echo "Peak RSS measured with bench/measure.py; it includes a floor of about $(fmt_mb "$(rss_kb_of "$m")") (the wrapper's own size). Install GNU time for exact figures."
        rm -f "$m"
    else
        echo "Wall time and peak RSS measured with GNU time (\`/usr/bin/time -v\`)."
    fi
}

# measure OUTFILE CMD [ARG…]
# Runs CMD (stdio inherited, so redirect at the call site) and writes
# `WALL_SECONDS PEAK_KB EXIT_CODE` to OUTFILE. Returns CMD's exit code.
measure() {
    local outfile=$1
    shift
    if [[ $MEASURE_WITH == python ]]; then
        local rc=0
        python3 "$BENCH_DIR/measure.py" "$outfile" "$@" || rc=$?
        return "$rc"
    fi
    local report rc=0
    report=$(mktemp)
    /usr/bin/time -v -o "$report" "$@" || rc=$?
    awk -v rc="$rc" '
        /Elapsed \(wall clock\) time/ {
            n = split($NF, part, ":")
            wall = 0
            for (i = 1; i <= n; i++) wall = wall * 60 + part[i]
        }
        /Maximum resident set size/ { rss = $NF }
        END { printf "%.4f %d %d\n", wall, rss, rc }
    ' "$report" > "$outfile"
    rm -f "$report"
    return "$rc"
}

# Field readers for a measure OUTFILE.
wall_of() { cut -d' ' -f1 "$1"; }
rss_kb_of() { cut -d' ' -f2 "$1"; }

# median VALUE… — the median of numbers.
median() {
    printf '%s\n' "$@" | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "nan"; exit }
            if (NR % 2) print v[(NR + 1) / 2]
            else printf "%.4f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}

# max VALUE… — the largest number.
max() {
    printf '%s\n' "$@" | sort -g | tail -n 1
}

# calc EXPR — floating point arithmetic via awk, e.g. calc "1.5 / 3".
calc() {
    awk "BEGIN { printf \"%.4g\\n\", $1 }"
}

# fmt_x RATIO — "1.07×".
fmt_x() { awk -v r="$1" 'BEGIN { printf "%.2f×", r }'; }

# fmt_s SECONDS — "0.623 s"; fmt_mb KB — "12.3 MB" (MiB of 1024² bytes).
fmt_s() { awk -v s="$1" 'BEGIN { printf (s < 10 ? "%.3f s" : "%.2f s"), s }'; }
fmt_mb() { awk -v k="$1" 'BEGIN { printf "%.1f MB", k / 1024 }'; }

# verdict CONDITION — "ok" or "**MISS**" for an awk condition such as "0.7 <= 1.2".
verdict() {
    if awk "BEGIN { exit !($1) }"; then echo "ok"; else echo "**MISS**"; fi
}

BENCH_DIR=$PWD/bench
# Make behaves the same whoever calls this script.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEFILES 2> /dev/null || true

# row CELLS… — adds a table row; counts a miss (MISSES) when the last cell says so.
row() {
    local line="|" cell
    for cell in "$@"; do
        line+=" $cell |"
    done
    ROWS+=("$line")
    [[ ${!#} != *MISS* ]] || MISSES=$((${MISSES:-0} + 1))
}

# await_idle_workers ENV N SECONDS — waits until N workers of ENV are registered and idle;
# dies after SECONDS (their stderr is in $WORK/worker-*.err).
await_idle_workers() {
    local env=$1 n=$2 deadline=$((SECONDS + $3))
    until (($("$BIN" workers --json --env "$env" | grep -c '"state": "idle"') >= n)); do
        ((SECONDS < deadline)) || die "the workers did not register within $3 s (see $WORK/worker-*.err)"
        sleep 0.05
    done
}

# stop_workers — SIGTERM to every worker, then waits for them; each must exit 0.
stop_workers() {
    local pid rc
    for pid in "${WORKER_PIDS[@]}"; do
        kill -TERM "$pid" 2> /dev/null || true
    done
    for pid in "${WORKER_PIDS[@]}"; do
        rc=0
        wait "$pid" || rc=$?
        if ((rc != 0)); then
            echo "bench: a worker exited $rc on SIGTERM" >&2
            FAILURES=$((FAILURES + 1))
        fi
    done
    WORKER_PIDS=()
}
