#!/usr/bin/env bash
# Builds the documentation book, docs/ → docs/book/, with mdBook, installing mdBook first when
# it is missing. mdBook is in neither Debian nor PyPI, so it is built from crates.io once, into
# target/ (without its `serve`, `watch` and `search` features, which a build does not need; a
# cold install takes a few minutes on two cores). Fails when the book does not build: a chapter
# named in docs/src/SUMMARY.md is missing (book.toml forbids creating it), or a renderer fails.
# Broken links and examples that no longer validate are the tests' business
# (tests/cli/book.rs, run by `cargo test`).
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.4.52
root=target/mdbook-$version
if [[ ! -x $root/bin/mdbook ]]; then
    echo "installing mdbook $version into $root" >&2
    cargo install mdbook --locked --no-default-features --version "$version" --root "$root" --quiet
fi
"$root/bin/mdbook" build docs
