#!/usr/bin/env bash
# Installs what the tests drive that a fresh machine lacks: Chromium (the browser tests of
# the HTTP API) and xmllint (JUnit reports checked against their schema), from Debian's
# packages. Does nothing when both are there; fails when they cannot be installed, because
# the tests need them (a test never skips for a missing tool).
set -euo pipefail
need=()
command -v chromium > /dev/null 2>&1 || need+=(chromium)
command -v xmllint > /dev/null 2>&1 || need+=(libxml2-utils)
((${#need[@]})) || exit 0
sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)
echo "installing ${need[*]} for the tests" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" > /dev/null
