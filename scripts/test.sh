#!/usr/bin/env bash
# Runs the tests, first installing what they drive that a fresh machine lacks: Chromium (the
# browser tests of the HTTP API) and xmllint (JUnit reports checked against their schema).
# Arguments go to `cargo test` (e.g. `scripts/test.sh --test cli security`).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v xmllint >/dev/null 2>&1 || need+=(libxml2-utils)
if ((${#need[@]})); then
    sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    echo "installing ${need[*]} for the tests" >&2
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
exec cargo test "$@"
