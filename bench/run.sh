#!/usr/bin/env bash
# bench/run.sh — `coreflow run` side by side with `make -j2` on the same graphs, in one
# script run (absolute times on shared machines are noisy; the ratios are what count).
#
#   (a) 1,000 independent no-op jobs        target: ≤ 1.5× make -j2 (issue 3), aim 1.2×
#   (b) a chain of 200 no-op jobs           target: ≤ 1.5× make -j2 (issue 3), aim 1.2×
#   (e) 20 layers × 50 jobs, all-to-all     target: ≤ 1.5× make -j2, aim 1.2×
#   (c) 8 jobs of `sleep 0.5`, 2 workers    target: < 2.3 s (ideal 2.0 s)
#   (d) one step printing 200 MB            target: coreflow peak RSS < 50 MB, throughput
#                                           ≥ 0.5× the same command writing `> file`
#   (f) with --full: a 10,000-job random DAG, run   target: ≤ 1.5× make -j2, aim 1.2×
#
# Every coreflow run uses `--workers 2 --progress plain` and a fresh `--env` temp dir, so
# it persists its state as it would for a user. Each figure is the median of 3 runs,
# coreflow and make alternating. The result is a Markdown table on stdout.
#
# Usage (from any directory):
#   bench/run.sh [--reps N] [--full] [--only a,b,c,d,e,f] [--strict]
#     --reps N    repetitions per measurement (default 3)
#     --full      also run (f), which takes about a minute
#     --only L    run only the listed workloads
#     --strict    exit 1 when a target is missed (default: report only)
#   COREFLOW_BIN=path/to/coreflow skips the `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

REPS=3
FULL=0
ONLY=""
STRICT=0
while (($#)); do
    case $1 in
        --reps) REPS=$2; shift 2 ;;
        --full) FULL=1; shift ;;
        --only) ONLY=$2; shift 2 ;;
        --strict) STRICT=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
((REPS >= 1)) || die "--reps must be at least 1"

# wanted X — whether workload X is selected.
wanted() {
    if [[ -n $ONLY ]]; then
        [[ ,$ONLY, == *,$1,* ]]
    elif [[ $1 == f ]]; then
        ((FULL))
    else
        true
    fi
}

build_coreflow

WORK=$(mktemp -d "${TMPDIR:-/tmp}/coreflow-bench-run.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

ROWS=()     # Markdown table rows
MISSES=0    # targets missed
FAILURES=0  # commands that failed

# run_coreflow OUTFILE WORKFLOW — one measured `coreflow run` with a fresh environment.
# On failure prints the end of its output and returns non-zero.
run_coreflow() {
    local out=$1 workflow=$2 env rc=0
    env=$(mktemp -d "$WORK/env.XXXXXX")
    measure "$out" "$BIN" run "$workflow" --workers 2 --progress plain --env "$env" \
        > "$WORK/cf.out" 2> "$WORK/cf.err" || rc=$?
    if ((rc != 0)); then
        echo "bench: coreflow run $(basename "$workflow") exited $rc:" >&2
        tail -n 5 "$WORK/cf.out" "$WORK/cf.err" >&2
        FAILURES=$((FAILURES + 1))
    fi
    rm -rf "$env"
    return "$rc"
}

# run_make OUTFILE MAKEFILE — one measured `make -j2`.
run_make() {
    local out=$1 makefile=$2 rc=0
    measure "$out" make -j2 -f "$makefile" > /dev/null 2> "$WORK/make.err" || rc=$?
    if ((rc != 0)); then
        echo "bench: make -f $(basename "$makefile") exited $rc:" >&2
        tail -n 5 "$WORK/make.err" >&2
        FAILURES=$((FAILURES + 1))
    fi
    return "$rc"
}

# make_verdict RATIO — ok within the 1.2× aim, "ok (above aim)" within 1.5×, else a miss.
make_verdict() {
    if awk "BEGIN { exit !($1 <= 1.2) }"; then
        echo "ok"
    elif awk "BEGIN { exit !($1 <= 1.5) }"; then
        echo "ok (above the 1.2× aim)"
    else
        echo "**MISS**"
    fi
}

# versus_make LABEL GEN_ARGS… — coreflow vs make -j2 on one generated graph; adds a row.
versus_make() {
    local label=$1 key
    shift
    key=$(printf '%s' "$*" | tr -c 'a-zA-Z0-9' '_')
    local yaml="$WORK/$key.yaml" makefile="$WORK/$key.mk"
    python3 bench/gen_dag.py "$@" > "$yaml"
    python3 bench/gen_dag.py "$@" --makefile > "$makefile"
    echo "bench: $label …" >&2
    local cf_wall=() cf_rss=() mk_wall=() rep failed=0
    for ((rep = 1; rep <= REPS; rep++)); do
        if run_coreflow "$WORK/m" "$yaml"; then
            cf_wall+=("$(wall_of "$WORK/m")") cf_rss+=("$(rss_kb_of "$WORK/m")")
        else
            failed=1
        fi
        run_make "$WORK/m" "$makefile" && mk_wall+=("$(wall_of "$WORK/m")") || failed=1
    done
    if ((failed)) || ((${#cf_wall[@]} == 0)) || ((${#mk_wall[@]} == 0)); then
        row "$label" "failed" "" "" "" "≤ 1.5× make" "**MISS** (failed)"
        return
    fi
    local cfw mkw ratio
    cfw=$(median "${cf_wall[@]}") mkw=$(median "${mk_wall[@]}")
    ratio=$(calc "$cfw / $mkw")
    row "$label" "$(fmt_s "$cfw")" "$(fmt_s "$mkw")" "$(fmt_x "$ratio")" "$(fmt_mb "$(max "${cf_rss[@]}")")" \
        "≤ 1.5× make (aim 1.2×)" "$(make_verdict "$ratio")"
}

# (c) 8 × sleep 0.5 with two workers: the ideal is 2.0 s.
sleepers() {
    local yaml="$WORK/sleep.yaml" makefile="$WORK/sleep.mk"
    python3 bench/gen_dag.py 8 --independent --cmd "sleep 0.5" > "$yaml"
    python3 bench/gen_dag.py 8 --independent --cmd "sleep 0.5" --makefile > "$makefile"
    echo "bench: 8 × sleep 0.5 …" >&2
    local cf_wall=() cf_rss=() mk_wall=() rep failed=0
    for ((rep = 1; rep <= REPS; rep++)); do
        if run_coreflow "$WORK/m" "$yaml"; then
            cf_wall+=("$(wall_of "$WORK/m")") cf_rss+=("$(rss_kb_of "$WORK/m")")
        else
            failed=1
        fi
        run_make "$WORK/m" "$makefile" && mk_wall+=("$(wall_of "$WORK/m")") || failed=1
    done
    if ((failed)) || ((${#cf_wall[@]} == 0)) || ((${#mk_wall[@]} == 0)); then
        row "(c) 8 × \`sleep 0.5\`, 2 at a time" "failed" "" "" "" "< 2.3 s" "**MISS** (failed)"
        return
    fi
    local cfw mkw
    cfw=$(median "${cf_wall[@]}") mkw=$(median "${mk_wall[@]}")
    row "(c) 8 × \`sleep 0.5\`, 2 at a time" "$(fmt_s "$cfw")" "$(fmt_s "$mkw")" \
        "$(fmt_x "$(calc "$cfw / $mkw")")" "$(fmt_mb "$(max "${cf_rss[@]}")")" "< 2.3 s" "$(verdict "$cfw < 2.3")"
}

# (d) one step printing 200 MB (2,000,000 lines of 100 characters).
flood() {
    local cmd="head -c 200000000 /dev/zero | tr '\\0' 'x' | fold -w 100"
    local bytes=201999999 # fold adds a newline between lines, none after the last
    local yaml="$WORK/flood.yaml"
    cat > "$yaml" << EOF
# 200 MB of output from one step: CoreFlow's memory must not grow with it.
name: bench-flood
jobs:
  flood:
    steps:
      - run: |
          $cmd
EOF
    echo "bench: 200 MB of step output …" >&2
    local cf_wall=() cf_rss=() sh_wall=() rep failed=0
    for ((rep = 1; rep <= REPS; rep++)); do
        if run_coreflow "$WORK/m" "$yaml"; then
            cf_wall+=("$(wall_of "$WORK/m")") cf_rss+=("$(rss_kb_of "$WORK/m")")
        else
            failed=1
        fi
        if measure "$WORK/m" sh -c "$cmd > '$WORK/flood.out'"; then
            sh_wall+=("$(wall_of "$WORK/m")")
            local size
            size=$(wc -c < "$WORK/flood.out")
            ((size == bytes)) || die "the flood command wrote $size bytes, expected $bytes"
        else
            failed=1
        fi
        rm -f "$WORK/flood.out"
    done
    if ((failed)) || ((${#cf_wall[@]} == 0)) || ((${#sh_wall[@]} == 0)); then
        row "(d) 200 MB of output: throughput" "failed" "" "" "" "≥ 0.5× \`> file\`" "**MISS** (failed)"
        return
    fi
    local cfw shw peak speed
    cfw=$(median "${cf_wall[@]}") shw=$(median "${sh_wall[@]}") peak=$(max "${cf_rss[@]}")
    speed=$(calc "$shw / $cfw")
    row "(d) 200 MB of output: throughput" "$(awk -v b="$bytes" -v t="$cfw" 'BEGIN { printf "%.0f MB/s", b / 1e6 / t }')" \
        "$(awk -v b="$bytes" -v t="$shw" 'BEGIN { printf "%.0f MB/s", b / 1e6 / t }') (\`> file\`)" "$(fmt_x "$speed")" "$(fmt_mb "$peak")" \
        "≥ 0.5× \`> file\`" "$(verdict "$speed >= 0.5")"
    row "(d) 200 MB of output: peak RSS" "$(fmt_mb "$peak")" "" "" "$(fmt_mb "$peak")" "< 50 MB" \
        "$(verdict "$peak / 1024 < 50")"
}

wanted a && versus_make "(a) 1,000 independent no-op jobs" 1000 --independent
wanted b && versus_make "(b) chain of 200 no-op jobs" 200 --chain
wanted e && versus_make "(e) 20 layers × 50 jobs, all-to-all" --layers 20 --width 50
wanted c && sleepers
wanted d && flood
wanted f && versus_make "(f) 10,000-job random DAG, run" 10000 --seed 42

((${#ROWS[@]})) || die "no workload selected (--only takes letters a to f)"

echo "### coreflow run vs make -j2 (median of $REPS, $(nproc) CPUs)"
echo
echo "| workload | coreflow | make -j2 / baseline | ratio | coreflow peak RSS | target | |"
echo "|---|---:|---:|---:|---:|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "$(measure_note) coreflow runs use \`--workers 2 --progress plain\` and a fresh \`--env\`."

if ((FAILURES)); then
    trap - EXIT
    echo "bench: $FAILURES command(s) failed, see above; inputs kept in $WORK" >&2
    exit 1
fi
if ((STRICT && MISSES)); then
    exit 1
fi
