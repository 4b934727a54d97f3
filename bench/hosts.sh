#!/usr/bin/env bash
# bench/hosts.sh — standalone workers on two simulated hosts sharing one PostgreSQL
# environment ("Several hosts (PostgreSQL)"). Needs root: each host is a network namespace
# (`ip netns`) joined to the root namespace by a veth pair, with a host name of its own
# (`unshare --uts`), so that `workers --json` tells the hosts apart and no worker takes
# another host's workers for its own. A throwaway PostgreSQL cluster (its own data folder,
# port and socket folder, fsync=off) listens on the root-side veth addresses only; the
# workers reach it over the veths, the inspecting commands from the root namespace.
#
#   (a) --jobs (default 5,000) independent no-op jobs queued with `run --detach`, drained by
#       --workers (default 8) `coreflow worker` processes, half in each namespace, started
#       (idle, registered) before the clock starts. Reported: the wall time from the start of
#       `run --detach` to the run's `finished_at` (`runs --json`, polled every 0.5 s), the
#       jobs per second, and the checks: every job succeeded at its first attempt (doubled:
#       jobs with more than one attempt; lost: jobs not succeeded), the workers' `jobs_done`
#       add up to the jobs (a job claimed twice would count twice), and how the jobs split
#       between the hosts.
#   (b) the time per job, from (a): wall ÷ jobs (the pool's cost per job) and wall × workers ÷
#       jobs (one worker's cycle per job: claim, start the step process, record the end, in
#       one transaction with the next claim). Claims alone, without the process start, cannot
#       be isolated from the CLI; this is an upper bound for them.
#   (c) an idle worker's start latency: one idle worker in the first namespace; a single
#       no-op job queued --latency-reps times (default 20), each once the previous run ended.
#       Reported: median and p90 of the job's `started_at` − the run's `created_at`
#       (`show --json`), which includes the idle worker's poll (100 ms).
#
# (a) is repeated --reps times (default 3; median), each on a fresh database with fresh
# workers. No targets: the book (docs/src/hosts.md) expects "a few hundred jobs a second" on PostgreSQL. The
# result is a Markdown table on stdout. Everything is undone on exit: workers, the cluster,
# namespaces, veths, temporary folders.
#
# Usage (from any directory, as root):
#   bench/hosts.sh [--jobs N] [--workers N] [--reps N] [--latency-reps N] [--only a,c]
#     --jobs N          independent jobs in (a) (default 5000)
#     --workers N       workers in (a), an even number, half per namespace (default 8)
#     --reps N          repetitions of (a) (default 3)
#     --latency-reps N  single-job runs in (c) (default 20)
#     --only L          run only the listed workloads (a also gives b)
#   COREFLOW_BIN=path/to/coreflow skips the `cargo build --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

JOBS=5000
WORKERS=8
REPS=3
LATENCY_REPS=20
ONLY=""
while (($#)); do
    case $1 in
        --jobs) JOBS=$2; shift 2 ;;
        --workers) WORKERS=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --latency-reps) LATENCY_REPS=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
done
((REPS >= 1)) || die "--reps must be at least 1"
((LATENCY_REPS >= 1)) || die "--latency-reps must be at least 1"
((WORKERS >= 2 && WORKERS % 2 == 0)) || die "--workers must be an even number, at least 2"
((JOBS >= 1)) || die "--jobs must be at least 1"
(($(id -u) == 0)) || die "needs root (ip netns, and the cluster runs as the postgres user)"
command -v ip > /dev/null || die "needs iproute2 (ip)"
command -v unshare > /dev/null || die "needs unshare (util-linux)"
command -v python3 > /dev/null || die "needs python3"
id postgres > /dev/null 2>&1 || die "needs the postgres user (apt-get install postgresql)"
PGBIN=$(find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2> /dev/null | sort -V | tail -n 1)
[[ -n $PGBIN && -x $PGBIN/initdb ]] || die "no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql)"

# wanted X — whether workload X is selected.
wanted() {
    [[ -z $ONLY || ,$ONLY, == *,$1,* ]]
}

build_coreflow

# Names unique to this process, so that two runs of the script do not collide. Interface
# names must stay within 15 characters.
TAG="cfb$$"
NS=("$TAG-h1" "$TAG-h2")
HOSTS=("$TAG-host1" "$TAG-host2")
ROOT_IF=("${TAG}r1" "${TAG}r2")
NS_IF=("${TAG}n1" "${TAG}n2")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/coreflow-bench-hosts.XXXXXX")
# The postgres user must reach the data folder inside.
chmod 755 "$WORK"
PGDATA=$WORK/pg
WORKER_PIDS=()
MADE_NS=()
MADE_IF=()

# as_postgres CMD… — runs CMD as the postgres user, as PostgreSQL demands.
as_postgres() {
    runuser -u postgres -- "$@"
}

cleanup() {
    local pid ns i pids
    for pid in "${WORKER_PIDS[@]}"; do
        kill -KILL "$pid" 2> /dev/null || true
    done
    for pid in "${WORKER_PIDS[@]}"; do
        wait "$pid" 2> /dev/null || true
    done
    # Whatever still runs in a namespace (workers, their steps) goes with it.
    for ns in "${MADE_NS[@]}"; do
        for i in 1 2 3; do
            pids=$(ip netns pids "$ns" 2> /dev/null || true)
            [[ -n $pids ]] || break
            # shellcheck disable=SC2086 # a list of pids
            kill -KILL $pids 2> /dev/null || true
            sleep 0.1
        done
    done
    if [[ -f $PGDATA/postmaster.pid ]]; then
        as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -w stop > /dev/null 2>&1 || true
    fi
    for i in "${MADE_IF[@]}"; do
        ip link del "$i" 2> /dev/null || true
    done
    for ns in "${MADE_NS[@]}"; do
        ip netns del "$ns" 2> /dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A /24 of 10.213.0.0/16 that no interface uses yet: the first host gets .1 (root side) and
# .2, the second .5 and .6 (two /30s).
octet=$(($$ % 250 + 1))
for ((tries = 0; tries < 250; tries++)); do
    if ! ip -4 -o addr show | grep -q " 10\.213\.$octet\."; then
        break
    fi
    octet=$((octet % 250 + 1))
done
SUBNET="10.213.$octet"
ROOT_ADDR=("$SUBNET.1" "$SUBNET.5")
NS_ADDR=("$SUBNET.2" "$SUBNET.6")

echo "bench: namespaces ${NS[*]} on $SUBNET.0/29 …" >&2
for i in 0 1; do
    ip netns add "${NS[i]}"
    MADE_NS+=("${NS[i]}")
    ip link add "${ROOT_IF[i]}" type veth peer name "${NS_IF[i]}"
    MADE_IF+=("${ROOT_IF[i]}")
    ip link set "${NS_IF[i]}" netns "${NS[i]}"
    ip addr add "${ROOT_ADDR[i]}/30" dev "${ROOT_IF[i]}"
    ip link set "${ROOT_IF[i]}" up
    ip -n "${NS[i]}" addr add "${NS_ADDR[i]}/30" dev "${NS_IF[i]}"
    ip -n "${NS[i]}" link set "${NS_IF[i]}" up
    ip -n "${NS[i]}" link set lo up
done

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')
echo "bench: PostgreSQL ($PGBIN) on ${ROOT_ADDR[0]},${ROOT_ADDR[1]}:$PORT …" >&2
mkdir -m 700 "$PGDATA"
chown postgres: "$PGDATA"
as_postgres "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --no-locale \
    > "$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; die "initdb failed"; }
echo "host all all $SUBNET.0/29 trust" >> "$PGDATA/pg_hba.conf"
as_postgres "$PGBIN/pg_ctl" -D "$PGDATA" -w -t 60 -l "$PGDATA/server.log" \
    -o "-p $PORT -k $PGDATA -c listen_addresses=${ROOT_ADDR[0]},${ROOT_ADDR[1]} -c fsync=off -c max_connections=200" \
    start > /dev/null || { tail -n 20 "$PGDATA/server.log" >&2; die "the cluster did not start"; }

# url HOST_INDEX DB — the environment's URL as seen from host HOST_INDEX (0 or 1).
url() {
    echo "postgres://postgres@${ROOT_ADDR[$1]}:$PORT/$2"
}

DB_SEQ=0
DB=""
# new_db — creates a fresh database and names it in DB.
new_db() {
    DB_SEQ=$((DB_SEQ + 1))
    DB="flows$DB_SEQ"
    "$PGBIN/psql" -q -X "$(url 0 postgres)" -c "CREATE DATABASE $DB" > /dev/null
}

ROWS=()     # Markdown table rows
FAILURES=0  # failed checks and commands

now() { date +%s.%N; }

# json_field FIELD — the first string value of FIELD in the JSON on stdin.
json_field() {
    awk -F'"' -v f="$1" '$2 == f { print $4; exit }'
}

# start_workers DB N — starts N idle workers on database DB, alternating between the hosts
# (so N/2 on each); their pids go to WORKER_PIDS. Returns once all N are registered.
start_workers() {
    local db=$1 n=$2 i h
    WORKER_PIDS=()
    for ((i = 0; i < n; i++)); do
        h=$((i % 2))
        # `ip netns exec`, `unshare` and the shell all exec: $! is the worker's pid.
        # shellcheck disable=SC2016 # the inner shell expands $1 and $@
        ip netns exec "${NS[h]}" unshare --uts -- \
            sh -c 'hostname "$1" && shift && exec "$@"' sh "${HOSTS[h]}" \
            env XDG_STATE_HOME="$WORK/state-$h" \
            "$BIN" worker --env "$(url "$h" "$db")" --lease 30s \
            > /dev/null 2> "$WORK/worker-$i.err" &
        WORKER_PIDS+=("$!")
    done
    await_idle_workers "$(url 0 "$db")" "$n" 60
}

# check_drain DB — checks the drained run: prints "SUCCEEDED DOUBLED LOST DONE_SUM H1 H2",
# where DONE_SUM adds the workers' jobs_done and H1, H2 split it by host.
check_drain() {
    local db=$1
    "$BIN" jobs --json --limit 100000 --env "$(url 0 "$db")" > "$WORK/jobs.json"
    "$BIN" workers --json --all --env "$(url 0 "$db")" > "$WORK/workers.json"
    python3 - "$WORK/jobs.json" "$WORK/workers.json" "$JOBS" "${HOSTS[0]}" "${HOSTS[1]}" << 'PY'
import json, sys
jobs = json.load(open(sys.argv[1]))
workers = json.load(open(sys.argv[2]))
expected, h1, h2 = int(sys.argv[3]), sys.argv[4], sys.argv[5]
succeeded = sum(1 for j in jobs if j["status"] == "succeeded")
doubled = sum(1 for j in jobs if j["attempts"] > 1)
lost = expected - succeeded
done = {h1: 0, h2: 0}
for w in workers:
    # A worker's host is "name@tag" (the tag tells boots and PID namespaces apart).
    name = w["host"].split("@")[0]
    done[name] = done.get(name, 0) + w["jobs_done"]
print(succeeded, doubled, lost, sum(done.values()), done[h1], done[h2])
PY
}

# drain_once OUTFILE YAML — one measured drain of (a): writes "WALL SUCCEEDED DOUBLED LOST
# DONE_SUM H1 H2" to OUTFILE.
drain_once() {
    local out=$1 yaml=$2 db run start status finished end
    new_db
    db=$DB
    start_workers "$db" "$WORKERS"
    start=$(now)
    if ! run=$("$BIN" run "$yaml" --detach --env "$(url 0 "$db")" 2> "$WORK/detach.err"); then
        cat "$WORK/detach.err" >&2
        stop_workers
        return 1
    fi
    local deadline=$((SECONDS + 900))
    while :; do
        status=$("$BIN" runs --json --limit 1 --env "$(url 0 "$db")" | json_field status)
        case $status in
            succeeded | failed | cancelled) break ;;
        esac
        ((SECONDS < deadline)) || die "run $run did not end within 900 s"
        sleep 0.5
    done
    finished=$("$BIN" runs --json --limit 1 --env "$(url 0 "$db")" | json_field finished_at)
    end=$(date -d "$finished" +%s.%N)
    stop_workers
    [[ $status == succeeded ]] || echo "bench: run $run ended $status" >&2
    echo "$(calc "$end - $start") $(check_drain "$db")" > "$out"
}

# (a) and (b): the drain, --reps times.
drain() {
    local yaml="$WORK/independent.yaml" rep walls=() bad=0
    python3 bench/gen_dag.py "$JOBS" --independent > "$yaml"
    local half=$((WORKERS / 2))
    echo "bench: (a) $JOBS independent jobs, $WORKERS workers ($half per host), $REPS rep(s) …" >&2
    local succeeded doubled lost done_sum h1 h2 wall
    local checks=()
    for ((rep = 1; rep <= REPS; rep++)); do
        if ! drain_once "$WORK/t" "$yaml"; then
            FAILURES=$((FAILURES + 1))
            bad=1
            continue
        fi
        read -r wall succeeded doubled lost done_sum h1 h2 < "$WORK/t"
        walls+=("$wall")
        echo "bench:   rep $rep: $(fmt_s "$wall"), $succeeded succeeded, $doubled doubled," \
            "$lost lost, jobs_done $done_sum ($h1 on host 1, $h2 on host 2)" >&2
        if ((succeeded != JOBS || doubled != 0 || lost != 0 || done_sum != JOBS)); then
            bad=1
            FAILURES=$((FAILURES + 1))
        fi
        checks+=("$succeeded/$JOBS at attempt 1, $doubled doubled, $lost lost, jobs_done $done_sum ($h1 + $h2)")
    done
    if ((${#walls[@]} == 0)); then
        row "(a) $JOBS no-op jobs, $WORKERS workers on 2 hosts" "failed" "" "**FAILED**"
        return
    fi
    local w per_job cycle verdict_a="ok"
    ((bad == 0)) || verdict_a="**FAILED**"
    w=$(median "${walls[@]}")
    row "(a) $JOBS independent no-op jobs, $WORKERS workers ($half per host), \`run --detach\` → \`finished_at\`" \
        "$(fmt_s "$w") ($(awk -v n="$JOBS" -v t="$w" 'BEGIN { printf "%.0f jobs/s", n / t }'))" \
        "runs: $(printf '%s s, ' "${walls[@]}" | sed 's/, $//'); last: ${checks[*]: -1}" \
        "$verdict_a"
    per_job=$(awk -v n="$JOBS" -v t="$w" 'BEGIN { printf "%.2f", t / n * 1000 }')
    cycle=$(awk -v n="$JOBS" -v t="$w" -v k="$WORKERS" 'BEGIN { printf "%.1f", t * k / n * 1000 }')
    row "(b) time per job, from (a)" "$per_job ms per job (pool)" \
        "$cycle ms per job per worker: claim + step process + end recorded (with the next claim); an upper bound for a claim" \
        ""
}

# (c) an idle worker's start latency.
latency() {
    local yaml="$WORK/one.yaml" db run i show lat=()
    python3 bench/gen_dag.py 1 --independent > "$yaml"
    echo "bench: (c) one idle worker, $LATENCY_REPS single-job runs …" >&2
    new_db
    db=$DB
    # One worker, on the first host.
    start_workers "$db" 1
    for ((i = 1; i <= LATENCY_REPS; i++)); do
        run=$("$BIN" run "$yaml" --detach --env "$(url 0 "$db")")
        local deadline=$((SECONDS + 60))
        while :; do
            show=$("$BIN" show "$run" --json --env "$(url 0 "$db")")
            [[ $(json_field status <<< "$show") != succeeded ]] || break
            ((SECONDS < deadline)) || die "run $run did not succeed within 60 s"
            sleep 0.02
        done
        lat+=("$(python3 -c '
import json, sys
from datetime import datetime
show = json.load(sys.stdin)
t = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
print(round((t(show["jobs"][0]["started_at"]) - t(show["created_at"])) * 1000, 1))
' <<< "$show")")
    done
    stop_workers
    local stats
    stats=$(printf '%s\n' "${lat[@]}" | sort -g | awk '
        { v[NR] = $1 }
        END {
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            p = int(0.9 * NR + 0.999999); if (p < 1) p = 1
            printf "median %.0f ms, p90 %.0f ms (min %.0f, max %.0f)", m, v[p], v[1], v[NR]
        }')
    row "(c) idle worker (host 1): job \`started_at\` − run \`created_at\`, $LATENCY_REPS single-job runs" \
        "$stats" "woken by LISTEN/NOTIFY (polling every beat as the fallback)" ""
}

wanted a && drain
wanted c && latency

((${#ROWS[@]})) || die "no workload selected (--only takes a and c)"

echo "### coreflow worker processes on 2 simulated hosts (network namespaces), one PostgreSQL environment ($(nproc) CPUs)"
echo
echo "| workload | result | detail | checks |"
echo "|---|---:|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "Median of $REPS run(s) for (a), each on a fresh database with fresh workers. PostgreSQL $("$PGBIN/postgres" --version | awk '{ print $3 }') with fsync=off, on the root-side veth addresses; workers connect over the veths, each host with its own host name (UTS namespace) and state folder."

if ((FAILURES)); then
    echo "bench: $FAILURES check(s) or command(s) failed, see above" >&2
    exit 1
fi
