#!/usr/bin/env bash
# Benchmark: `contact-sync validate` on a generated 7-column contacts file.
# Usage: bench/validate.sh [ROWS]   (default 1000000)
# Prints rows/s (from the tool's summary) and peak RSS (from /usr/bin/time).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
dir=target/bench
mkdir -p "$dir"
cargo build --release --quiet --bin contact-sync --example gen_contacts
file="$dir/contacts-$rows.csv"
[ -s "$file" ] || ./target/release/examples/gen_contacts "$rows" "$file"
echo "input: $file ($(du -h "$file" | cut -f1), $rows rows), $(nproc) CPUs"
for run in 1 2 3; do
  /usr/bin/time -f "peak RSS %M KiB, wall %e s" \
    ./target/release/contact-sync validate "$file" --report "$dir/report.csv" 2>&1 \
    | grep -E "rows in|peak RSS" || true
done
