#!/usr/bin/env bash
# Installs what the tests drive that a fresh machine lacks: Chromium (the browser tests of
# the HTTP API), xmllint (JUnit reports checked against their schema), PostgreSQL (the
# PostgreSQL store) and iproute2 (network namespaces as separate hosts), from Debian's
# packages, and starts the PostgreSQL server the tests use
# (scripts/test-postgres.sh). Installs nothing that is there; fails when something cannot be
# installed or started, because the tests need it (a test never skips for a missing tool).
set -euo pipefail
"$(dirname "$0")/test-postgres.sh" > /dev/null
need=()
command -v chromium > /dev/null 2>&1 || need+=(chromium)
command -v xmllint > /dev/null 2>&1 || need+=(libxml2-utils)
command -v ip > /dev/null 2>&1 || need+=(iproute2)
((${#need[@]})) || exit 0
sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)
echo "installing ${need[*]} for the tests" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" > /dev/null
