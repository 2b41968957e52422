#!/usr/bin/env bash
# Benchmarks of `contact-sync sync` against the built-in sandbox (loopback only).
# Usage: bench/sync.sh [bulk|bulk-faults|pacing|throughput|all]   (default all)
#   bulk        100,000 new contacts through SMS Partner bulk add at --rate 10
#   bulk-faults the same against a sandbox answering 5% 5xx and losing 5% of answers
#   pacing      a 30 s run of single requests (Mobivate API) at --rate 50: achieved rate
#   throughput  unconstrained requests/s, contact-sync vs wrk on the same endpoint
# Needs: the Rust toolchain; `throughput` also needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
dir=target/bench
mkdir -p "$dir"
cargo build --release --quiet --bin contact-sync --example gen_contacts
bin=./target/release/contact-sync
gen=./target/release/examples/gen_contacts
export CONTACT_SYNC_API_KEY=sandbox-key
echo "machine: $(nproc) CPUs, $(uname -sr)"

sandbox_pid=
start_sandbox() { # port [sandbox flags…]
  local port=$1; shift
  $bin -q sandbox --port "$port" "$@" & sandbox_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/_sandbox/state" >/dev/null && return; sleep 0.1; done
  echo "sandbox did not start" >&2; exit 1
}
stop_sandbox() { kill -INT "$sandbox_pid"; wait "$sandbox_pid" || true; }
summary() { # json file
  python3 - "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
o, d = s["outcomes"], s["duration_seconds"]
sent = o["added"] + o["updated"]
print(f"rows {s['rows']}, added {o['added']}, updated {o['updated']}, failed {o['failed']}, "
      f"requests {s['requests']}, 429s {s['throttled']}, {d:.2f} s, "
      f"{s['requests'] / d:.2f} requests/s, {sent / d:.0f} rows sent/s")
PY
}

if [[ $what == bulk || $what == all ]]; then
  echo "== bulk: 100,000 rows (98,050 valid, all new) at --rate 10, SMS Partner API"
  [ -s "$dir/contacts-100000.csv" ] || $gen 100000 "$dir/contacts-100000.csv"
  $bin -q sync "$dir/contacts-100000.csv" --provider sandbox --rate 10 \
    --report "$dir/bulk.report.csv" --summary-json "$dir/bulk.json" || true
  summary "$dir/bulk.json"
fi

if [[ $what == bulk-faults || $what == all ]]; then
  echo "== bulk with faults: 100,000 rows (98,050 valid, all new) at --rate 10, 5% 5xx + 5% lost answers, SMS Partner API"
  [ -s "$dir/contacts-100000.csv" ] || $gen 100000 "$dir/contacts-100000.csv"
  start_sandbox 18767 --fault-rate 0.05 --lose-rate 0.05 --seed "${SEED:-1}"
  rm -f "$dir/bulk-faults.state"*
  $bin -q sync "$dir/contacts-100000.csv" --provider smspartner --base-url http://127.0.0.1:18767 \
    --group-id sandbox --rate 10 --state "$dir/bulk-faults.state" \
    --report "$dir/bulk-faults.report.csv" --summary-json "$dir/bulk-faults.json" || true
  curl -sf "http://127.0.0.1:18767/_sandbox/state" > "$dir/bulk-faults.sandbox.json"
  stop_sandbox
  summary "$dir/bulk-faults.json"
  python3 - "$dir/bulk-faults.sandbox.json" "$dir/bulk-faults.report.csv" <<'PY'
import collections, csv, json, sys
state = json.load(open(sys.argv[1]))
group = next(g for g in state["smspartner"] if g["id"] == "sandbox")
held = collections.Counter(c["phone"] for c in group["contacts"])
rows = list(csv.DictReader(open(sys.argv[2], encoding="utf-8")))
done = {r["phone"] for r in rows if r["outcome"] in ("added", "updated")}
requests = collections.Counter()
for endpoint, per in state["counters"]["requests"].items():
    requests[endpoint] += sum(per.values())
print(f"sandbox holds {len(held)} numbers, {sum(n > 1 for n in held.values())} duplicated; "
      f"{len(done - set(held))} reported done but not held; requests by endpoint: {dict(requests)}")
print("outcomes:", dict(collections.Counter((r["outcome"], r["code"]) for r in rows)))
PY
fi

if [[ $what == pacing || $what == all ]]; then
  echo "== pacing: 1,500 single-row requests at --rate 50 (30 s expected), Mobivate API"
  $gen 1500 "$dir/contacts-1500.csv"
  start_sandbox 18765
  $bin -q sync "$dir/contacts-1500.csv" --provider mobivate --base-url http://127.0.0.1:18765 \
    --rate 50 --report "$dir/pacing.report.csv" --summary-json "$dir/pacing.json" || true
  stop_sandbox
  summary "$dir/pacing.json"
fi

if [[ $what == throughput || $what == all ]]; then
  echo "== throughput: POST /addressbook/contacts, no rate limit, 8 connections"
  $gen 20000 "$dir/contacts-20000.csv"
  start_sandbox 18766
  $bin -q sync "$dir/contacts-20000.csv" --provider mobivate --base-url http://127.0.0.1:18766 \
    --rate 1000000 --concurrency 8 --report "$dir/tp.report.csv" --summary-json "$dir/tp.json" || true
  echo -n "contact-sync: "; summary "$dir/tp.json"
  stop_sandbox
  if command -v wrk >/dev/null; then
    start_sandbox 18767
    echo -n "wrk (-t1 -c8 -d10s, unique contacts): "
    wrk -t1 -c8 -d10s -s bench/wrk-mobivate.lua http://127.0.0.1:18767 | grep -E "Requests/sec"
    stop_sandbox
  else
    echo "wrk not installed: skipping the load-generator comparison"
  fi
fi
