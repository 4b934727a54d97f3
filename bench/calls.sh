#!/usr/bin/env bash
# bench/calls.sh — what a `workflow:` job and a `for_each` cost (issue 14, "Must hold").
#
# A parent with 100 `workflow:` jobs, each calling a 10-job child workflow, run with
# `coreflow run --workers 4`, against the same 1,000 jobs written out in one workflow (the
# child's DAG repeated 100 times). The difference, divided by 100, is what a child run
# costs beyond its jobs: creating the run and its jobs, a coordinator and its writer, and
# ending it. Target: under 5 ms per child run.
#
# After each parent run the script checks that every child job ran exactly once: 101 runs,
# each child run succeeded with 10 jobs of one attempt each.
#
# Second: a `for_each` over --items no-op items (default 10,000), against the same jobs
# written out by hand, both with `--workers 4`. Target: within 1.3× of the hand-written run.
#
# Each figure is the median of --reps runs (default 5), the two workflows alternating, each
# run with a fresh `--env`. The result is a Markdown table on stdout.
#
# Usage (from any directory):
#   bench/calls.sh [--reps N] [--children N] [--strict]
#     --reps N       repetitions (default 5)
#     --children N   calling jobs in the parent (default 100)
#     --items N      items of the `for_each` workload (default 10000)
#     --strict       exit 1 when the target is missed (default: report only)
#   COREFLOW_BIN=path/to/coreflow skips the `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

REPS=5
CHILDREN=100
ITEMS=10000
STRICT=0
while (($#)); do
    case $1 in
        --reps) REPS=$2; shift 2 ;;
        --children) CHILDREN=$2; shift 2 ;;
        --items) ITEMS=$2; shift 2 ;;
        --strict) STRICT=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
((REPS >= 1)) || die "--reps must be at least 1"

build_coreflow
WORK=$(mktemp -d "${TMPDIR:-/tmp}/coreflow-bench-calls.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# The child: 10 no-op jobs, two layers of five (each job of the second needs the first
# layer's job beside it).
python3 - "$WORK" "$CHILDREN" "$ITEMS" <<'PY'
import sys
work, children, items = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(f"{work}/each.yaml", "w") as f:
    f.write("name: each\njobs:\n  each:\n    for_each: [" + ",".join(map(str, range(items))) + "]\n    steps: [{ run: 'true' }]\n")
with open(f"{work}/by-hand.yaml", "w") as f:
    f.write("name: by-hand\njobs:\n" + "".join(f"  j{i}:\n    steps: [{{ run: 'true' }}]\n" for i in range(items)))
def child_jobs(prefix=""):
    lines = []
    for i in range(5):
        lines += [f"  {prefix}a{i}:", "    steps: [{ run: 'true' }]"]
        lines += [f"  {prefix}b{i}:", f"    needs: [{prefix}a{i}]", "    steps: [{ run: 'true' }]"]
    return lines
with open(f"{work}/child.yaml", "w") as f:
    f.write("\n".join(["name: child", "jobs:"] + child_jobs()) + "\n")
with open(f"{work}/parent.yaml", "w") as f:
    lines = ["name: parent", "jobs:"]
    for c in range(children):
        lines += [f"  c{c}:", "    workflow: child.yaml"]
    f.write("\n".join(lines) + "\n")
with open(f"{work}/flat.yaml", "w") as f:
    lines = ["name: flat", "jobs:"]
    for c in range(children):
        lines += child_jobs(f"c{c}_")
    f.write("\n".join(lines) + "\n")
PY

# run_once OUTFILE WORKFLOW — one measured `coreflow run --workers 4`; writes the wall time.
run_once() {
    local out=$1 workflow=$2 env
    env="$WORK/env-$RANDOM$RANDOM"
    measure "$WORK/m" "$BIN" run "$WORK/$workflow" --workers 4 --quiet --env "$env" \
        > "$WORK/out" 2>&1 || { cat "$WORK/out" >&2; die "$workflow failed"; }
    if [[ $workflow == parent.yaml ]]; then
        "$BIN" runs --json --limit 100000 --env "$env" > "$WORK/runs.json"
        for id in $(python3 -c 'import json,sys; print(" ".join(str(r["id"]) for r in json.load(open(sys.argv[1])) if r["workflow"] == "child"))' "$WORK/runs.json"); do
            "$BIN" show "$id" --json --env "$env"
        done > "$WORK/shows.json"
        python3 - "$WORK/runs.json" "$WORK/shows.json" "$CHILDREN" <<'PY' || die "a child job did not run exactly once"
import json, sys
runs = json.load(open(sys.argv[1]))
children = int(sys.argv[3])
assert len(runs) == children + 1, f"{len(runs)} runs"
decoder, text, shows, at = json.JSONDecoder(), open(sys.argv[2]).read(), [], 0
while at < len(text.strip()):
    show, at = decoder.raw_decode(text, at)
    shows.append(show)
    while at < len(text) and text[at].isspace():
        at += 1
assert len(shows) == children, f"{len(shows)} child runs"
for show in shows:
    assert show["status"] == "succeeded", show["status"]
    assert len(show["jobs"]) == 10, len(show["jobs"])
    assert all(j["status"] == "succeeded" and j["attempts"] == 1 for j in show["jobs"])
PY
    fi
    rm -rf "$env"
    wall_of "$WORK/m" > "$out"
}

parent=()
flat=()
each=()
hand=()
for ((rep = 1; rep <= REPS; rep++)); do
    run_once "$WORK/t" parent.yaml
    parent+=("$(cat "$WORK/t")")
    run_once "$WORK/t" flat.yaml
    flat+=("$(cat "$WORK/t")")
    run_once "$WORK/t" each.yaml
    each+=("$(cat "$WORK/t")")
    run_once "$WORK/t" by-hand.yaml
    hand+=("$(cat "$WORK/t")")
done
p=$(median "${parent[@]}")
f=$(median "${flat[@]}")
e=$(median "${each[@]}")
h=$(median "${hand[@]}")
ratio=$(python3 -c "print(f'{$e / $h:.2f}')")
each_ok=$(python3 -c "print('yes' if $e / $h <= 1.3 else 'NO')")
per=$(python3 -c "print(f'{($p - $f) * 1000 / $CHILDREN:.2f}')")
ok=$(python3 -c "print('yes' if ($p - $f) * 1000 / $CHILDREN < 5 else 'NO')")
echo "| workload | median wall (s) |"
echo "|---|---|"
echo "| $CHILDREN child runs of 10 jobs (\`workflow:\` jobs), --workers 4 | $p |"
echo "| the same $((CHILDREN * 10)) jobs in one workflow, --workers 4 | $f |"
echo "| \`for_each\` over $ITEMS no-op items, --workers 4 | $e |"
echo "| the same $ITEMS jobs written out, --workers 4 | $h |"
echo
echo "Overhead per child run: $per ms (target < 5 ms: $ok). Every child job ran exactly once."
echo "\`for_each\` against the jobs written out: ${ratio}× (target ≤ 1.3×: $each_ok)."
echo "$(measure_note)"
if [[ $STRICT == 1 && ($ok != yes || $each_ok != yes) ]]; then
    exit 1
fi
