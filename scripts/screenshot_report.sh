#!/usr/bin/env bash
# Render a report in headless Chromium and save a PNG screenshot of it.
#   scripts/screenshot_report.sh report.html report.png [WIDTHxHEIGHT]
# Without a size: the whole page, 1280 pixels wide (a first pass measures its height on a
# copy of the page with one line of script added; the report itself has no script).
# Needs Debian's chromium (apt-get install chromium). Prints the PNG's path.
set -euo pipefail
html=$(realpath "$1")
png=$(realpath -m "$2")
size=${3:-}
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "error: no chromium on PATH (apt-get install chromium)" >&2
    exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {
    "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --hide-scrollbars --user-data-dir="$work/profile" "$@" 2>/dev/null
}
if [ -z "$size" ]; then
    measure="$work/measure.html"
    cp "$html" "$measure"
    echo '<script>document.title = "height:" + document.documentElement.scrollHeight;</script>' \
        >>"$measure"
    height=$(run --window-size=1280,800 --virtual-time-budget=5000 --dump-dom \
        "file://$measure" | grep -o 'height:[0-9]*' | head -1 | cut -d: -f2 || true)
    if [ -z "$height" ]; then
        echo "error: chromium did not report the page height; give a size, e.g. 1280x12000" >&2
        exit 2
    fi
    size="1280x$height"
fi
run --window-size="${size/x/,}" --screenshot="$png" "file://$html" >/dev/null
test -s "$png"
echo "$png"
