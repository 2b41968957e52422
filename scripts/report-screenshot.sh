#!/bin/sh
# Renders an HTML report in headless Chromium and saves a PNG.
#
#   scripts/report-screenshot.sh [REPORT.html] [OUT.png]
#
# With no arguments: syncs samples/contacts.csv to the built-in sandbox,
# writes its HTML report, and saves docs/report-html.png (what the docs show).
# Needs Chromium (Debian: apt-get install -y chromium) and a built binary
# (cargo build --release; the newest of release and debug is used), or
# CONTACT_SYNC=path/to/contact-sync.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
# The most recently built binary, release or debug.
bin=${CONTACT_SYNC:-$(ls -t "$root"/target/release/contact-sync "$root"/target/debug/contact-sync 2>/dev/null | head -n 1)}
[ -x "$bin" ] || { echo "no binary: cargo build --release" >&2; exit 2; }
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "chromium not found: apt-get install -y chromium" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ $# -ge 1 ]; then
    html=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
else
    cp "$root/samples/contacts.csv" "$work/"
    (cd "$work" && "$bin" sync contacts.csv --provider sandbox \
        --rejects contacts.rejects.csv --report-html contacts.report.html -q) || [ $? -eq 1 ]
    html=$work/contacts.report.html
fi
out=${2:-$root/docs/report-html.png}
case $out in /*) ;; *) out=$(pwd)/$out ;; esac

"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$work/profile" --window-size=1200,1220 \
    --screenshot="$out" "file://$html" >/dev/null 2>&1
echo "$out"
