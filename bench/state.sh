#!/usr/bin/env bash
# The state store's benchmark: `validate` against syncs of the same generated
# file through the SMS Partner API of the sandbox (loopback, no rate limit):
# the first sync, an unchanged rerun, and reruns with 1% of rows edited.
# Usage: bench/state.sh [ROWS]   (default 1000000)
# Needs: the Rust toolchain, python3, curl, /usr/bin/time (GNU time).
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
cargo build --release --quiet --bin contact-sync --example gen_contacts
bin=./target/release/contact-sync
gen=./target/release/examples/gen_contacts
dir=target/bench/state
rm -rf "$dir" && mkdir -p "$dir"
export CONTACT_SYNC_API_KEY=sandbox-key
echo "machine: $(nproc) CPUs, $(uname -sr); $rows rows"
$gen "$rows" "$dir/in.csv"

port=18768
$bin -q sandbox --port $port & sandbox=$!
trap 'kill -INT $sandbox 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/_sandbox/state" >/dev/null && break; sleep 0.1; done

timed() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "$label: %e s, peak RSS %M KiB" "$@" || true
}
run_sync() { # label
  timed "$1" $bin -q sync "$dir/in.csv" --provider smspartner \
    --base-url "http://127.0.0.1:$port" --group-id sandbox --state "$dir/state.sqlite" \
    --rate 100000 --concurrency 8 --report "$dir/report.csv" --summary-json "$dir/summary.json"
  python3 - "$dir/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
o = s["outcomes"]
print(f"    requests {s['requests']}: added {o['added']}, updated {o['updated']}, "
      f"unchanged {o['unchanged']}, invalid {o['invalid']}, failed {o['failed']}")
PY
}
edit() { # every Nth data row, starting at row K, gets a new first name
  python3 - "$dir/in.csv" "$1" "$2" <<'PY'
import sys
path, every, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lines = open(path, encoding="utf-8").read().split("\n")
for i in range(1 + start, len(lines), every):
    cells = lines[i].split(",")
    if len(cells) > 1:
        cells[1] = "Edited" + cells[1]
        lines[i] = ",".join(cells)
open(path, "w", encoding="utf-8").write("\n".join(lines))
PY
}

timed "validate" $bin -q validate "$dir/in.csv" --report "$dir/validate.csv"
run_sync "first sync"
run_sync "unchanged rerun"
timed "validate" $bin -q validate "$dir/in.csv" --report "$dir/validate.csv"
edit 100 0
run_sync "1 percent edited (ids not yet known: one listing of the group)"
edit 100 50
run_sync "another 1 percent edited (ids known)"
run_sync "unchanged rerun"
