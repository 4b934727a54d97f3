#!/usr/bin/env bash
# Starts the PostgreSQL server the tests use, on loopback, and prints its URL.
#
# The cluster lives in ${COREFLOW_TEST_PGDATA:-${TMPDIR:-/tmp}/coreflow-test-pg-$UID}, listens on
# 127.0.0.1:${COREFLOW_TEST_PGPORT:-54329}, lets the local `postgres` role in without a
# password (trust, loopback only) and runs without fsync (test data need not survive a power
# cut). Run as root, the server runs as the `postgres` user, as PostgreSQL demands. Starting
# an already running cluster only prints the URL (after dropping the databases earlier test
# runs left). `scripts/test-postgres.sh stop` stops it.
#
# The tests read the URL from COREFLOW_TEST_POSTGRES (default: the one printed here) and
# make a schema of their own for every test in its database coreflow_tests.
set -euo pipefail

port=${COREFLOW_TEST_PGPORT:-54329}
data=${COREFLOW_TEST_PGDATA:-${TMPDIR:-/tmp}/coreflow-test-pg-$(id -u)}
url="postgres://postgres@127.0.0.1:$port/postgres"

bin=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1 || true)
if [[ -z $bin ]]; then
    sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    echo "installing postgresql for the tests" >&2
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq postgresql > /dev/null
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# as_owner CMD… — runs CMD as the cluster's owner (postgres when we are root).
as_owner() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if [[ ${1:-start} == stop ]]; then
    [[ -d $data ]] && as_owner "$bin/pg_ctl" -D "$data" -m fast stop > /dev/null 2>&1 || true
    exit 0
fi

if [[ ! -f $data/PG_VERSION ]]; then
    mkdir -p "$data"
    [[ $(id -u) != 0 ]] || chown postgres: "$data"
    chmod 700 "$data"
    as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale > "$data.initdb.log" 2>&1 ||
        { cat "$data.initdb.log" >&2; exit 1; }
fi
if ! as_owner "$bin/pg_ctl" -D "$data" status > /dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$data" -w -t 60 -l "$data/server.log" \
        -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off -c max_connections=500" \
        start > /dev/null ||
        { tail -n 20 "$data/server.log" >&2; exit 1; }
fi
# What earlier test runs left (each test makes a schema in the database coreflow_tests):
# dropped, so that it never piles up on the disk. Forced: a session an earlier run left
# behind (the server still finishing the statement of a step that was killed) must not stop
# the set-up.
as_owner "$bin/psql" -h "$data" -p "$port" -U postgres -d postgres -Atq \
    -c "SELECT datname FROM pg_database WHERE datname LIKE 'cf\_%' OR datname = 'coreflow_tests'" |
    while read -r name; do
        as_owner "$bin/psql" -h "$data" -p "$port" -U postgres -d postgres -q \
            -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" > /dev/null
    done
echo "$url"
