#!/usr/bin/env bash
# Runs every check and test deskd has, after installing what they need.
# Fails loudly on a missing tool; no test is skipped.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

scripts/install-deps.sh
export PATH="$root/.venv/bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test"
# Integration tests each start their own Xvfb (and Chromium); two at a time fit this machine.
cargo test --workspace -- --test-threads="${DESKD_TEST_THREADS:-2}"
