#!/usr/bin/env bash
# Render a `mapo view` page in headless Chromium and save a PNG screenshot (checks the viewer really draws).
#
#   scripts/screenshot_viewer.sh RESULTS_DIR [OUT.png] [FILTER]
#
# RESULTS_DIR: a `mapo eval --out` folder (the viewer is (re)written there as index.html).
# FILTER: all | correct | wrong | missed | failed (the viewer's filter buttons; default all).
# Needs Debian's chromium package: apt-get install -y chromium
set -euo pipefail
results=${1:?usage: $0 RESULTS_DIR [OUT.png] [FILTER]}
out=${2:-$results/viewer.png}
filter=${3:-all}
here=$(cd "$(dirname "$0")/.." && pwd)
mapo=${MAPO:-$here/.venv/bin/mapo}
command -v "$mapo" >/dev/null 2>&1 || mapo=mapo
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [ -z "$browser" ]; then
  echo "no chromium found: install it with 'apt-get install -y chromium' (Debian) and rerun" >&2
  exit 2
fi
"$mapo" view "$results" >/dev/null
page=$(cd "$results" && pwd)/index.html
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile" \
  --screenshot="$(realpath -m "$out")" --window-size=1280,900 "file://$page?filter=$filter" >/dev/null 2>&1
echo "screenshot: $out"
