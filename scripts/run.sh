#!/usr/bin/env bash
# Builds and runs deskd: its own Xvfb and a demo desktop, the viewer on http://127.0.0.1:6080/
# and RFB on 127.0.0.1:5900. Extra arguments go to deskd (see `deskd --help`).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh --run-only
cargo build --release --bin deskd
exec "$root/target/release/deskd" "$@"
