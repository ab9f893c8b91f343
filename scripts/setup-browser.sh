#!/usr/bin/env bash
# A real browser for the web-page tests: Debian's Chromium, driven by playwright-core
# (which never downloads a browser of its own). Idempotent.
#
# usage: scripts/setup-browser.sh [DIR]   (default: $OTTER_BROWSER_DIR or ~/.cache/otter-service/browser)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
PLAYWRIGHT_VERSION=1.65.1
dir=${1:-${OTTER_BROWSER_DIR:-$HOME/.cache/otter-service/browser}}

ensure_system_packages chromium npm
if [ ! -f "$dir/node_modules/playwright-core/package.json" ] \
   || ! grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$dir/node_modules/playwright-core/package.json"; then
  mkdir -p "$dir"
  say "npm install playwright-core@$PLAYWRIGHT_VERSION into $dir"
  with_progress "npm install playwright-core" \
    in_dir "$dir" npm install --no-audit --no-fund --no-save "playwright-core@$PLAYWRIGHT_VERSION"
fi
echo "browser ready: $(command -v chromium), playwright-core $PLAYWRIGHT_VERSION in $dir"
