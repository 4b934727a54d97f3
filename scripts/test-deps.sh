#!/usr/bin/env bash
# Installs what the tests drive that a fresh machine lacks: Chromium (the browser tests of
# the HTTP API), xmllint (JUnit reports checked against their schema), PostgreSQL (the
# PostgreSQL store), iproute2 (network namespaces as separate hosts), and zsh, fish and man
# (shell completions and man pages), from Debian's
# packages, moto's S3 server and the aiosmtpd SMTP server from PyPI, and starts the PostgreSQL server the tests use
# (scripts/test-postgres.sh). Installs nothing that is there; fails when something cannot be
# installed or started, because the tests need it (a test never skips for a missing tool).
set -euo pipefail
"$(dirname "$0")/test-postgres.sh" > /dev/null
# moto's S3 server (PyPI), for DataBlocks in an S3-compatible store; in a virtual
# environment of its own, where tests/cli/blocks_s3.rs looks for it.
venv=/tmp/coreflow-test-venv
if [[ ! -x $venv/bin/moto_server ]]; then
    echo "installing moto[server] into $venv for the tests" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.*'
fi
# aiosmtpd (PyPI), a real SMTP server that e-mail notifiers send to in tests/cli/notify.rs.
if [[ ! -x $venv/bin/aiosmtpd ]]; then
    echo "installing aiosmtpd into $venv for the tests" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'aiosmtpd==1.*'
fi
need=()
command -v chromium > /dev/null 2>&1 || need+=(chromium)
command -v chromedriver > /dev/null 2>&1 || need+=(chromium-driver)
command -v xmllint > /dev/null 2>&1 || need+=(libxml2-utils)
command -v ip > /dev/null 2>&1 || need+=(iproute2)
# The shells and man whose completion scripts and pages tests/cli/init.rs checks.
command -v zsh > /dev/null 2>&1 || need+=(zsh)
command -v fish > /dev/null 2>&1 || need+=(fish)
command -v man > /dev/null 2>&1 || need+=(man-db)
((${#need[@]})) || exit 0
sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)
echo "installing ${need[*]} for the tests" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}" > /dev/null
