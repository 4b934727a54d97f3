#!/usr/bin/env bash
# bench/api.sh — the HTTP API under load while a large run executes (issue "Hardening":
# the API never blocks the runtime).
#
#   A daemon (`--workers 2`) runs one run of --jobs jobs (each `sleep 0.02`, so the run lasts
#   the whole measurement) while --clients keep-alive clients GET /api/v1/runs/{id} of that
#   run (the run with all its jobs) for --seconds. Reported: requests served, p50, p99 and
#   max latency, and how many jobs ran meanwhile. Target: p99 < 100 ms. The load comes from
#   `wrk` (Debian's `wrk`), light enough not to compete with what it measures on 2 cores.
#
# Usage (from any directory):
#   bench/api.sh [--jobs N] [--clients N] [--seconds S] [--strict]
#   COREFLOW_BIN=path/to/coreflow skips the `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

JOBS=1000
CLIENTS=50
SECONDS_=10
STRICT=0
while (($#)); do
    case $1 in
        --jobs) JOBS=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --seconds) SECONDS_=$2; shift 2 ;;
        --strict) STRICT=1; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
command -v python3 > /dev/null || die "python3 is needed to read the figures"
command -v wrk > /dev/null || die "wrk is needed for the load (Debian: apt-get install wrk)"
build_coreflow

WORK=$(mktemp -d "${TMPDIR:-/tmp}/coreflow-bench-api.XXXXXX")
DAEMON_PID=""
cleanup() {
    [[ -z $DAEMON_PID ]] || kill -TERM "$DAEMON_PID" 2> /dev/null || true
    [[ -z $DAEMON_PID ]] || wait "$DAEMON_PID" 2> /dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$WORK/flows"
python3 bench/gen_dag.py "$JOBS" --independent --cmd "sleep 0.02" --name big > "$WORK/flows/big.yaml"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
"$BIN" --env "$WORK/env" daemon "$WORK/flows" --workers 2 --listen "$ADDR" 2> "$WORK/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 200); do
    python3 - "$ADDR" << 'PY' && break
import sys, urllib.request
try:
    urllib.request.urlopen(f"http://{sys.argv[1]}/api/v1/health", timeout=1)
except Exception:
    sys.exit(1)
PY
    sleep 0.05
done
RUN=$(python3 - "$ADDR" << 'PY'
import json, sys, urllib.request
request = urllib.request.Request(
    f"http://{sys.argv[1]}/api/v1/workflows/big/runs", data=b"{}",
    headers={"Content-Type": "application/json"}, method="POST")
print(json.load(urllib.request.urlopen(request))["run_id"])
PY
)
RESULT=$(wrk -t2 -c"$CLIENTS" -d"${SECONDS_}s" --latency "http://$ADDR/api/v1/runs/$RUN" | python3 -c '
import json, re, sys
text = sys.stdin.read()
def ms(value):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return round(float(number) * {"us": 0.001, "ms": 1, "s": 1000}[unit], 1)
p = {m.group(1): ms(m.group(2)) for m in re.finditer(r"^\s+(\d+)%\s+(\S+)", text, re.M)}
latency = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", text).group(1)
requests = int(re.search(r"(\d+) requests in", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(json.dumps({"requests": requests, "errors": int(errors.group(1)) if errors else 0,
                  "p50_ms": p["50"], "p99_ms": p["99"], "max_ms": ms(latency)}))
')
DONE=$("$BIN" --env "$WORK/env" show "$RUN" --json | python3 -c \
    'import json, sys; print(sum(j["status"] == "succeeded" for j in json.load(sys.stdin)["jobs"]))')
python3 - "$RESULT" "$JOBS" "$CLIENTS" "$SECONDS_" "$DONE" "$STRICT" << 'PY'
import json, sys
r = json.loads(sys.argv[1])
jobs, clients, seconds, done, strict = sys.argv[2:7]
ok = r["p99_ms"] < 100 and r["errors"] == 0
print("| workload | requests | errors | p50 | p99 | max | jobs done meanwhile | target |")
print("|---|---|---|---|---|---|---|---|")
print(f"| GET /api/v1/runs/{{id}} of a {jobs}-job run, {clients} clients (wrk), {seconds} s "
      f"| {r['requests']} | {r['errors']} | {r['p50_ms']} ms | {r['p99_ms']} ms | {r['max_ms']} ms "
      f"| {done} | p99 < 100 ms: {'met' if ok else 'MISSED'} |")
sys.exit(1 if strict == "1" and not ok else 0)
PY
