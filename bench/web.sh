#!/usr/bin/env bash
# bench/web.sh — the web UI and its API under the issue's loads ("A web UI and the full HTTP
# API"), with a release build and a daemon on loopback:
#
#   1. 10,000 runs in history (made by copying one finished run in SQL, which takes seconds
#      where running them would take minutes): `GET /api/v1/runs?limit=50` and the runs page
#      `GET /`, median and worst of 20 requests each. Target: under 200 ms.
#   2. 100 clients on one run's events (`curl -N`) while a step prints 1,000 lines/s for
#      --seconds: every client must get every line exactly once, and the daemon's CPU (user +
#      system, from /proc) over the run is reported as a share of one core. Target: < 20%.
#   3. The daemon idle with the UI open in headless Chromium (the runs page) for 30 s: its CPU
#      share. Target: < 1%.
#
# Usage (from any directory):
#   bench/web.sh [--seconds S] [--clients N]
#   COREFLOW_BIN=path/to/coreflow skips the `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

SECONDS_=10
CLIENTS=100
while (($#)); do
    case $1 in
        --seconds) SECONDS_=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
command -v python3 > /dev/null || die "python3 is needed"
command -v curl > /dev/null || die "curl is needed"
command -v chromium > /dev/null || die "chromium is needed for the idle measure (scripts/test-deps.sh installs it)"
build_coreflow

WORK=$(mktemp -d "${TMPDIR:-/tmp}/coreflow-bench-web.XXXXXX")
DAEMON_PID=""
BROWSER_PID=""
cleanup() {
    [[ -z $BROWSER_PID ]] || kill -TERM "$BROWSER_PID" 2> /dev/null || true
    [[ -z $DAEMON_PID ]] || kill -TERM "$DAEMON_PID" 2> /dev/null || true
    [[ -z $DAEMON_PID ]] || wait "$DAEMON_PID" 2> /dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/flows"
cat > "$WORK/flows/hello.yaml" << 'EOF'
jobs:
  a:
    steps: [{ run: echo a }]
  b:
    needs: [a]
    steps: [{ run: echo b }]
EOF
cat > "$WORK/flows/talk.yaml" << EOF
jobs:
  talk:
    steps:
      - shell: python3
        run: |
          import sys, time
          start = time.monotonic()
          for i in range(1, $((SECONDS_ * 1000)) + 1):
              print(f"line {i}")
              if i % 100 == 0:
                  sys.stdout.flush()
                  time.sleep(max(0, start + i / 1000 - time.monotonic()))
EOF
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
"$BIN" --env "$WORK/env" run "$WORK/flows/hello.yaml" --quiet
# 10,000 runs in history: the finished run, copied in SQL with its jobs.
python3 - "$WORK/env/coreflow.db" << 'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
runs = [c[1] for c in db.execute("PRAGMA table_info(runs)") if c[1] != "id"]
jobs = [c[1] for c in db.execute("PRAGMA table_info(jobs)") if c[1] not in ("id", "run_id")]
for _ in range(9999):
    cur = db.execute(f"INSERT INTO runs ({', '.join(runs)}) SELECT {', '.join(runs)} FROM runs WHERE id = 1")
    db.execute(f"INSERT INTO jobs (run_id, {', '.join(jobs)}) SELECT ?, {', '.join(jobs)} FROM jobs WHERE run_id = 1", (cur.lastrowid,))
db.commit()
print(db.execute("SELECT count(*) FROM runs").fetchone()[0], "runs", file=sys.stderr)
PY
"$BIN" --env "$WORK/env" daemon "$WORK/flows" --workers 2 --listen "$ADDR" 2> "$WORK/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 200); do
    curl -sf "http://$ADDR/api/v1/health" > /dev/null && break
    sleep 0.05
done

timings() { # URL → "median max" in ms over 20 requests
    for _ in $(seq 20); do
        curl -s -o /dev/null -w '%{time_total}\n' -H 'Accept: text/html' "$1"
    done | python3 -c '
import statistics, sys
t = sorted(float(x) * 1000 for x in sys.stdin)
print(f"{statistics.median(t):.1f} {t[-1]:.1f}")'
}
read -r API_MED API_MAX < <(timings "http://$ADDR/api/v1/runs?limit=50")
read -r PAGE_MED PAGE_MAX < <(timings "http://$ADDR/")

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat"; }
HZ=$(getconf CLK_TCK)

# 100 clients on one chatty run.
RUN=$(curl -s -H 'Content-Type: application/json' -d '{}' "http://$ADDR/api/v1/workflows/talk/runs" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["run_id"])')
for i in $(seq "$CLIENTS"); do
    curl -sN "http://$ADDR/api/v1/runs/$RUN/events" > "$WORK/client.$i" &
done
BEFORE=$(cpu_ticks)
START=$(date +%s.%N)
wait $(jobs -p | grep -v -e "^$DAEMON_PID\$") 2> /dev/null || true
END=$(date +%s.%N)
AFTER=$(cpu_ticks)
SSE=$(python3 - "$WORK" "$CLIENTS" "$((SECONDS_ * 1000))" << 'PY'
import json, sys
work, clients, lines = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
complete = 0
for i in range(1, clients + 1):
    got = []
    for block in open(f"{work}/client.{i}").read().split("\n\n"):
        fields = dict(l.split(":", 1) for l in block.splitlines() if ":" in l and not l.startswith(":"))
        if fields.get("event", "").strip() == "lines":
            got += [l["line"] for l in json.loads(fields["data"].strip())]
    complete += got == [f"line {n}" for n in range(1, lines + 1)]
print(complete)
PY
)
SSE_CPU=$(calc "($AFTER - $BEFORE) / $HZ / ($END - $START) * 100")

# Idle with the UI open.
chromium --headless=new --no-sandbox --disable-gpu "http://$ADDR/" > /dev/null 2>&1 &
BROWSER_PID=$!
sleep 5 # the page loads and settles; what is measured is the next 30 s
BEFORE=$(cpu_ticks)
sleep 30
AFTER=$(cpu_ticks)
IDLE_CPU="$(calc "($AFTER - $BEFORE) / $HZ / 30 * 100")%"

echo "| measure | figure | target |"
echo "|---|---|---|"
echo "| GET /api/v1/runs?limit=50, 10,000 runs in history | median ${API_MED} ms, max ${API_MAX} ms | < 200 ms |"
echo "| GET / (runs page), 10,000 runs in history | median ${PAGE_MED} ms, max ${PAGE_MAX} ms | < 200 ms |"
echo "| $CLIENTS SSE clients, 1,000 lines/s for ${SECONDS_} s | $SSE/$CLIENTS clients got every line once; daemon CPU ${SSE_CPU}% of a core | every line; < 20% |"
echo "| daemon idle, UI open in Chromium, 30 s | ${IDLE_CPU} of a core | < 1% |"
