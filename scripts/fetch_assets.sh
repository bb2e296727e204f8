#!/usr/bin/env bash
# Install the Leaflet map assets casegrid serves itself (no CDN at view time), from the npm
# registry, pinned by maps/vendor/package-lock.json. Idempotent: skips when up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
STAMP=maps/vendor/node_modules/.casegrid-installed
if [[ -f $STAMP && ! maps/vendor/package-lock.json -nt $STAMP ]]; then exit 0; fi
command -v npm >/dev/null || { echo "[assets] npm is needed: apt-get install -y npm" >&2; exit 1; }
echo "[assets] installing Leaflet and plugins into maps/vendor/node_modules"
npm ci --prefix maps/vendor --no-audit --no-fund --silent
touch "$STAMP"
