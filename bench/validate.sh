#!/usr/bin/env bash
# Benchmark: `contact-sync validate` on a generated 7-column contacts file,
# side by side in one run with a raw CSV pass over the same file.
# Usage: bench/validate.sh [ROWS] [RUNS]   (defaults 1000000 and 3)
# Prints, for each command: wall time, rows/s, CPU (user + sys), peak RSS;
# `validate` on every CPU (the default) and with one normalising thread.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
runs=${2:-3}
dir=target/bench
mkdir -p "$dir"
cargo build --release --quiet --bin contact-sync --example gen_contacts --example csv_count
file="$dir/contacts-$rows.csv"
[ -s "$file" ] || ./target/release/examples/gen_contacts "$rows" "$file"
echo "input: $file ($(du -h "$file" | cut -f1), $rows rows), $(nproc) CPUs, load average$(uptime | sed 's/.*load average//')"

# One timed run: NAME then the command; prints one line.
timed() {
  local name=$1
  shift
  /usr/bin/time -o "$dir/time.txt" -f "%e %U %S %M" "$@" >/dev/null 2>&1 || true
  # (GNU time writes "Command exited with non-zero status 1" first: validate finds invalid rows.)
  read -r wall user sys rss < <(tail -n 1 "$dir/time.txt")
  awk -v n="$name" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v rows="$rows" 'BEGIN {
    printf "%-28s %6.2f s  %10.0f rows/s  CPU %5.2f s (%.2f us/row)  peak RSS %4.0f MiB\n",
      n, w, (w > 0 ? rows / w : 0), u + s, (u + s) * 1e6 / rows, r / 1024 }'
}

for run in $(seq 1 "$runs"); do
  echo "run $run:"
  timed "  raw CSV pass (csv_count)" ./target/release/examples/csv_count "$file"
  timed "  validate" ./target/release/contact-sync -q validate "$file" --report "$dir/report.csv"
  timed "  validate --threads 1" ./target/release/contact-sync -q validate "$file" --threads 1 --report "$dir/report-1.csv"
done
cmp -s "$dir/report.csv" "$dir/report-1.csv" && echo "reports of validate and validate --threads 1: identical"
