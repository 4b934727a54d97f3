#!/usr/bin/env bash
# Regenerates docs/screenshots/*.png, pictures of the web UI for the book and the README.
#
# Usage: scripts/screenshots.sh [OUT_DIR]        (default: docs/screenshots)
#        COREFLOW_BIN=path/to/coreflow scripts/screenshots.sh   (skips the build)
#
# Builds coreflow (debug), starts `coreflow daemon --listen 127.0.0.1:PORT` on a temporary
# environment and workflow folder (the examples hello, matrix and etl, plus three small
# workflows written here: one that fails, one that stays running and one queued behind a
# paused queue), runs a few runs, then takes screenshots with headless Chromium's own
# command line (no WebDriver):
#
#   runs.png          the runs page
#   run.png           the page of a matrix run (DAG, jobs, output)
#   run-failed.png    the page of a failed run
#   workflows.png     workflows with triggers and Run forms
#   queues.png        queues, one paused, with waiting jobs
#   workers.png       live workers
#   blocks.png        DataBlocks; block.png, one block's versions with lineage
#   workflows-all.png the whole workflows page: etl's triggers, a Run form of every param type
#   runs-360.png, run-360.png   the runs page and a run page on a 360 px wide screen
#   run-failed-dark.png         the failed run in the dark colour scheme
#
# The daemon is stopped and the temporary folder removed on exit, whatever happens (trap).
# Needs chromium (scripts/test-deps.sh installs it), curl and python3 (the examples' steps).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/docs/screenshots}
chromium=${CHROMIUM:-chromium}
command -v "$chromium" > /dev/null || {
    echo "screenshots.sh: $chromium is missing (scripts/test-deps.sh installs it)" >&2
    exit 1
}

if [[ -n ${COREFLOW_BIN:-} ]]; then
    bin=$COREFLOW_BIN
else
    (cd "$root" && cargo build --quiet --bin coreflow)
    bin=${CARGO_TARGET_DIR:-$root/target}/debug/coreflow
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/coreflow-screenshots.XXXXXX")
daemon_pid=
cleanup() {
    if [[ -n $daemon_pid ]] && kill -0 "$daemon_pid" 2> /dev/null; then
        kill -TERM "$daemon_pid" 2> /dev/null || true
        # The daemon stops its workers; give it the grace it was started with, then insist.
        for _ in $(seq 1 100); do
            kill -0 "$daemon_pid" 2> /dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$daemon_pid" 2> /dev/null || true
        wait "$daemon_pid" 2> /dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

flows=$work/flows
mkdir -p "$flows" "$work/profile"
cp "$root/examples/hello.yaml" "$root/examples/matrix.yaml" "$root/examples/etl.yaml" "$flows/"

cat > "$flows/deploy.yaml" << 'EOF'
name: deploy
description: Build, test and roll out the web shop; the smoke test fails on staging
params:
  target: { type: string, choices: [staging, production], default: staging }
  version: { type: string, required: true, description: the release to deploy }
jobs:
  build:
    steps:
      - name: compile
        run: echo "building web-shop $COREFLOW_PARAM_VERSION"
  unit-tests:
    needs: [build]
    steps:
      - run: |
          for t in cart checkout payments search; do echo "ok - $t"; done
  roll-out:
    needs: [unit-tests]
    steps:
      - run: echo "rolling out $COREFLOW_PARAM_VERSION to $COREFLOW_PARAM_TARGET"
  smoke-test:
    needs: [roll-out]
    steps:
      - name: health
        run: |
          echo "GET https://$COREFLOW_PARAM_TARGET.shop.example/health"
          echo "HTTP 503 Service Unavailable" >&2
          exit 1
  announce:
    needs: [smoke-test]
    steps:
      - run: echo "web-shop $COREFLOW_PARAM_VERSION is live"
EOF

cat > "$flows/backup.yaml" << 'EOF'
name: backup
description: Copy the warehouse to cold storage (slow)
params:
  minutes: { type: int, default: 10 }
jobs:
  snapshot:
    steps:
      - run: |
          echo "snapshotting the warehouse"
          for i in $(seq 1 600); do echo "copied chunk $i"; sleep 1; done
EOF

cat > "$flows/reindex.yaml" << 'EOF'
name: reindex
description: Rebuild the search index, on its own queue
defaults:
  queue: search
jobs:
  products:
    steps: [{ run: echo reindexing products }]
  orders:
    steps: [{ run: echo reindexing orders }]
  swap:
    needs: [products, orders]
    steps: [{ run: echo swapping indexes }]
EOF

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
export COREFLOW_ENV=$work/env
unset COREFLOW_API_TOKEN
# A session of its own, so that cleanup can end the daemon's whole process group.
setsid "$bin" --quiet daemon "$flows" --workers 2 --labels linux --grace 2s \
    --listen "127.0.0.1:$port" > "$work/daemon.log" 2>&1 &
daemon_pid=$!

up=
for _ in $(seq 1 300); do
    if curl -fsS "$base/api/v1/health" > /dev/null 2>&1; then
        up=1
        break
    fi
    sleep 0.1
done
[[ -n $up ]] || {
    echo "screenshots.sh: the daemon did not answer" >&2
    cat "$work/daemon.log" >&2
    exit 1
}

# POST JSON to the API; prints the answer.
post() {
    curl -sS --fail-with-body -X POST -H 'Content-Type: application/json' --data "$2" "$base$1"
}

# Starts a run of workflow $1 with the JSON params $2; prints its id.
start() {
    local params=${2:-'{}'}
    post "/api/v1/workflows/$1/runs" "{\"params\": $params}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["run_id"])'
}

# The status of run $1.
status() {
    curl -fsS "$base/api/v1/runs/$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])'
}

# Waits (at most 120 s) until run $1 has ended.
wait_ended() {
    for _ in $(seq 1 1200); do
        case $(status "$1") in
            succeeded | failed | cancelled | skipped | timed_out) return 0 ;;
        esac
        sleep 0.1
    done
    echo "screenshots.sh: run $1 did not end" >&2
    return 1
}

# Waits (at most 60 s) until run $1 is running.
wait_running() {
    for _ in $(seq 1 600); do
        [[ $(status "$1") == running ]] && return 0
        sleep 0.1
    done
    echo "screenshots.sh: run $1 did not start" >&2
    return 1
}

hello=$(start hello '{"name": "screenshots"}')
wait_ended "$hello"
etl=$(start etl '{"region": "eu", "rows": 500}')
wait_ended "$etl"
etl2=$(start etl '{"region": "us", "date": "2026-01-16", "rows": 800}')
wait_ended "$etl2"
matrix=$(start matrix)
wait_ended "$matrix"
failed=$(start deploy '{"version": "2.8.0"}')
wait_ended "$failed"
# Both workers busy, then jobs waiting behind them in a queue that gets paused.
backup=$(start backup)
wait_running "$backup"
backup2=$(start backup '{"minutes": 20}')
wait_running "$backup2"
start reindex > /dev/null
start reindex > /dev/null
post /api/v1/queues/search/pause '{}' > /dev/null

block=$(curl -fsS "$base/api/v1/blocks" | python3 -c '
import json, sys
blocks = json.load(sys.stdin)
print(blocks[0]["name"] if blocks else "")')

mkdir -p "$out"
# Takes a screenshot of page $1 into $2 at size $3 (WIDTH,HEIGHT). The virtual time budget
# lets the page's script run (the run page fills its log from the event stream).
# Further arguments go to Chromium.
shot() {
    "$chromium" --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
        --no-first-run --no-default-browser-check --user-data-dir="$work/profile" \
        --window-size="$3" --virtual-time-budget=3000 "${@:4}" \
        --screenshot="$out/$2" "$base$1" > "$work/chromium.log" 2>&1 || {
        echo "screenshots.sh: chromium failed on $1" >&2
        cat "$work/chromium.log" >&2
        return 1
    }
    echo "$out/$2"
}

shot / runs.png 1280,900
shot "/runs/$matrix" run.png 1280,1500
shot "/runs/$failed" run-failed.png 1280,1500
shot /workflows workflows.png 1280,900
# The whole page: etl's triggers, and a Run form with every param type. (A URL with a
# fragment, to show etl alone, gives a blank picture in headless Chromium.)
shot /workflows workflows-all.png 1280,3100
shot /queues queues.png 1280,900
shot /workers workers.png 1280,900
shot /blocks blocks.png 1280,900
if [[ -n $block ]]; then
    shot "/blocks/$block" block.png 1280,900
fi
shot / runs-360.png 360,800
shot "/runs/$matrix" run-360.png 360,800
shot "/runs/$failed" run-failed-dark.png 1280,1500 --force-dark-mode
