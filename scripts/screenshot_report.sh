#!/usr/bin/env bash
# Render a report in headless Chromium and save a PNG screenshot of it.
#   scripts/screenshot_report.sh report.html report.png [WIDTHxHEIGHT]
# Needs Debian's chromium (apt-get install chromium). Prints the PNG's path.
set -euo pipefail
html=$(realpath "$1")
png=$(realpath -m "$2")
size=${3:-1280x4000}
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "error: no chromium on PATH (apt-get install chromium)" >&2
    exit 2
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" --window-size="${size/x/,}" \
    --screenshot="$png" "file://$html" >/dev/null 2>&1
test -s "$png"
echo "$png"
