#!/usr/bin/env bash
# Peak memory on hostile input files (docs/security.md): each file is
# generated, validated by the release binary under GNU time, and its peak
# RSS checked against a bound. Exit status 1 when a bound is exceeded.
# Usage: bench/hostile.sh [LIMIT_MIB]   (default 128)
# lf-1m is the baseline: a million valid rows, whose de-duplication set grows
# with the data as SPEC §1 allows; cr-only-1m must cost no more.
set -euo pipefail
cd "$(dirname "$0")/.."
limit_kib=$(( ${1:-128} * 1024 ))
dir=target/bench/hostile
mkdir -p "$dir"
cargo build --release --quiet --bin contact-sync
bin=./target/release/contact-sync

gen() { # name, python expression writing bytes to f
  local file="$dir/$1.csv"
  [ -s "$file" ] || python3 -c "import sys
with open(sys.argv[1], 'wb') as f:
    $2" "$file"
}
gen line-50mib      "f.write(b'phone,name\n0612345678,' + b'x' * (50 << 20) + b'\n0612345679,ok\n')"
gen commas-50mib    "f.write(b'phone,name\n0612345678,' + b',' * (50 << 20) + b'\n0612345679,ok\n')"
gen quote-50mib     "f.write(b'phone,name\n0612345678,\"open\n' + b'0612345679,x\n' * (4 << 20))"
gen blank-10m       "f.write(b'phone\n0612345678\n' + b'\n' * 10_000_000 + b'0612345679\n')"
gen blank-100m      "f.write(b'phone\n0612345678\n' + b'\n' * 100_000_000 + b'0612345679\n')"
gen columns-100k    "f.write(('phone,' + ','.join(f'c{i}' for i in range(100_000)) + '\n0612345678' + ',' * 100_000 + '\n').encode())"
gen cr-only-1m      "f.write(b'phone,firstname\r' + b''.join(b'06%08d,n\r' % (12345678 + i) for i in range(1_000_000)))"
gen lf-1m           "f.write(b'phone,firstname\n' + b''.join(b'06%08d,n\n' % (12345678 + i) for i in range(1_000_000)))"
gen nul-10mib       "f.write(b'phone,name\n' + b'06123\x0045678,\x00\x00\n' * (10 << 20 >> 4))"

status=0
printf '%-14s %8s %12s %9s  %s\n' file size peak_rss wall exit
for f in line-50mib commas-50mib quote-50mib blank-10m blank-100m columns-100k lf-1m cr-only-1m nul-10mib; do
  file="$dir/$f.csv"
  set +e
  /usr/bin/time -o "$dir/time.txt" -f "%M %e" \
    "$bin" validate -q "$file" --report "$dir/$f.report.csv" 2>/dev/null
  rc=$?
  set -e
  read -r rss wall < <(tail -n 1 "$dir/time.txt")
  verdict=ok
  if [ "$rss" -gt "$limit_kib" ]; then verdict="OVER ${limit_kib} KiB"; status=1; fi
  if [ "$rc" -gt 1 ]; then verdict="$verdict, unexpected exit $rc"; status=1; fi
  printf '%-14s %8s %9s KiB %8ss  %s (%s)\n' "$f" "$(du -h "$file" | cut -f1)" "$rss" "$wall" "$rc" "$verdict"
done
exit $status
