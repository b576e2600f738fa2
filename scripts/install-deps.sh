#!/usr/bin/env bash
# Installs everything deskd needs to build, run and test on Debian 12 (as root):
# Debian packages from scripts/deps-apt.txt, PyPI packages from scripts/deps-pip.txt into
# .venv/, and the npm packages of web/ (noVNC, playwright-core).
# Usage: scripts/install-deps.sh [--run-only]   (--run-only: just what `deskd` itself needs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (apt-get install is needed)" >&2
    exit 1
  fi
}

apt_packages() {
  grep -v '^\s*#' scripts/deps-apt.txt | grep -v '^\s*$'
}

if [ "${1:-}" = "--run-only" ]; then
  pkgs="build-essential pkg-config libturbojpeg0-dev xvfb xfonts-base xauth x11-xserver-utils openbox xterm fonts-dejavu-core nodejs npm"
else
  pkgs="$(apt_packages | tr '\n' ' ') nodejs npm python3-venv"
fi

missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# node/npm may come from outside Debian (as on CI images): don't fight it.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=$(echo "$missing" | tr ' ' '\n' | grep -vx 'nodejs\|npm' | tr '\n' ' ' || true)
fi
if [ -n "$(echo "$missing" | tr -d ' ')" ]; then
  need_root
  echo "install-deps: apt-get install$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing
fi

if ! command -v cargo >/dev/null; then
  echo "install-deps: cargo not found. Install the stable Rust toolchain (https://rustup.rs) and re-run." >&2
  exit 1
fi

if [ "${1:-}" != "--run-only" ]; then
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  grep -v '^\s*#' scripts/deps-pip.txt | grep -v '^\s*$' > .venv/requirements.txt
  .venv/bin/pip install -q --disable-pip-version-check -r .venv/requirements.txt
fi

# noVNC is embedded in the binary at build time, so web/node_modules is needed to build.
# Reinstalled whenever the lock file differs from the one last installed (by content, not
# mtime: a copied or restored node_modules can be newer than a changed lock file).
lock_sum=$(sha256sum web/package-lock.json | cut -d' ' -f1)
if [ "$(cat web/node_modules/.deskd-lock-sum 2>/dev/null)" != "$lock_sum" ]; then
  (cd web && npm ci --no-audit --no-fund)
  echo "$lock_sum" > web/node_modules/.deskd-lock-sum
fi
