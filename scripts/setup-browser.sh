#!/usr/bin/env bash
# A real browser for the web-page tests: Debian's Chromium, driven by playwright-core
# (which never downloads a browser of its own). Idempotent.
#
# usage: scripts/setup-browser.sh [DIR]   (default: $OTTER_BROWSER_DIR or ~/.cache/otter-service/browser)
set -euo pipefail
PLAYWRIGHT_VERSION=1.65.1
dir=${1:-${OTTER_BROWSER_DIR:-$HOME/.cache/otter-service/browser}}

if ! command -v chromium >/dev/null; then
  echo "Installing Debian's chromium"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  $sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if [ ! -f "$dir/node_modules/playwright-core/package.json" ] \
   || ! grep -q "\"version\": \"$PLAYWRIGHT_VERSION\"" "$dir/node_modules/playwright-core/package.json"; then
  mkdir -p "$dir"
  (cd "$dir" && npm install --silent --no-audit --no-fund --no-save "playwright-core@$PLAYWRIGHT_VERSION")
fi
echo "browser ready: $(command -v chromium), playwright-core $PLAYWRIGHT_VERSION in $dir"
