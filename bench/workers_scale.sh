#!/usr/bin/env bash
# Throughput of `crmbridge worker` as workers are added: TENANTS tenants, each with its own set of
# mocks that add LATENCY ms to every request (so that, as in production, a worker mostly waits on
# the network), run once by 1, 2 and 4 workers (--concurrency 1 each) on one PostgreSQL. Then an
# idle round (every tenant due again, nothing changed) gives what an idle tenant costs a worker,
# and so how many idle tenants one worker keeps on a five-minute schedule. Then the engine's cost
# per record on PostgreSQL against SQLite, in the same run (crmbridge_bench_engine --state). Last,
# what a rate budget shared by the tenants of one vendor account costs a request
# (crmbridge_bench_rate_budget).
#
#   bench/workers_scale.sh [--tenants 60] [--workers 1,2,4] [--latency 50] [--size 5]
#                          [--records 20000] [--budget-takes 2000]
#     (BUILD_DIR=build-bench; --size: customers per tenant; --records: the engine comparison's)
#
# Prints a line per worker count, the idle figures, the engine ratio, the budget's cost, and a
# JSON line of all;
# exits 1 when a tenant's run did not end ok.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tenants=60
worker_counts=1,2,4
latency=50
size=5
records=20000
budget_takes=2000
while [ "$#" -gt 0 ]; do
  case $1 in
    --tenants) tenants=$2; shift 2 ;;
    --workers) worker_counts=$2; shift 2 ;;
    --latency) latency=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --records) records=$2; shift 2 ;;
    --budget-takes) budget_takes=$2; shift 2 ;;
    *) sed -n '2,16s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
  esac
done
BUILD_DIR=${BUILD_DIR:-build-bench}
case $BUILD_DIR in /*) bin=$BUILD_DIR/bin ;; *) bin=$root/$BUILD_DIR/bin ;; esac
for b in crmbridge crm-mocks throwaway_postgres crmbridge_bench_engine crmbridge_bench_rate_budget; do
  [ -x "$bin/$b" ] || { echo "missing $bin/$b: cmake --build $BUILD_DIR --target $b" >&2; exit 1; }
done
for tool in psql curl; do
  command -v "$tool" >/dev/null || { echo "$tool is required (scripts/setup.sh installs it)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-workers-bench.XXXXXX")
source "$root/tests/integration/postgres.sh"
pids=()
workers=()
cleanup() {
  for p in "${workers[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  stop_postgres
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
die() { echo "workers_scale: $*" >&2; tail -5 "$work"/worker*.log >&2 2>/dev/null || true; exit 1; }
sql() { psql "$CRMBRIDGE_STATE_URL" -Atc "$1"; }

export HUBSPOT_TOKEN=pat-bench D365_CLIENT_ID=bench-client D365_CLIENT_SECRET=bench-secret
export TOTANGO_TOKEN=bench-totango PORTAL_TOKEN=bench-portal
start_postgres "$bin/throwaway_postgres" "$work"

# One set of mocks per tenant (a tenant's systems are its own), each request LATENCY ms late;
# fresh for each round, so that every round does the same work.
start_mocks() {
  pids=()
  for i in $(seq 1 "$tenants"); do
    "$bin/crm-mocks" --hubspot-token "$HUBSPOT_TOKEN" --dynamics365-client-id "$D365_CLIENT_ID" \
      --dynamics365-client-secret "$D365_CLIENT_SECRET" --totango-token "$TOTANGO_TOKEN" \
      --portal-token "$PORTAL_TOKEN" --seed "$i" --size "$size" --seed-only hubspot portal --no-limits \
      --fault "hubspot:* * latency=$latency" --fault "dynamics365:* * latency=$latency" \
      --fault "totango:* * latency=$latency" --fault "portal:* * latency=$latency" \
      >"$work/m$i.urls" 2>>"$work/mocks.log" &
    pids+=($!)
  done
  for i in $(seq 1 "$tenants"); do
    for _ in $(seq 1 600); do [ -s "$work/m$i.urls" ] && break; sleep 0.1; done
    [ -s "$work/m$i.urls" ] || die "crm-mocks $i did not start: $(tail -3 "$work/mocks.log")"
  done
}
stop_mocks() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
  rm -f "$work"/m*.urls
}
url_of() { sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p" "$work/m$1.urls"; }
# A tenant's configuration for mocks `m`.
config_for() {
  local m=$1 out=$2
  sed -e "s#\.\./\.\./mappings/#$root/mappings/#g" -e '/^state:/d' \
    -e "s#\${env:DEMO_HUBSPOT_URL}#$(url_of "$m" hubspot)#g" \
    -e "s#\${env:DEMO_DYNAMICS365_URL}#$(url_of "$m" dynamics365)#g" \
    -e "s#\${env:DEMO_TOTANGO_URL}#$(url_of "$m" totango)#g" \
    -e "s#\${env:DEMO_PORTAL_URL}#$(url_of "$m" portal)#g" \
    "$root/examples/demo/crmbridge.yaml" >"$out"
  printf 'schedule: {every: 1h}\n' >>"$out"
}

# Waits until every tenant of round `r` has finished a run that started after `since_ms`.
wait_round() {
  local r=$1 since=$2 done=0
  for _ in $(seq 1 6000); do
    done=$(sql "SELECT count(*) FROM crmbridge_registry.tenants
                WHERE name LIKE 'r$r-%' AND last_finished_ms > $since AND holder = ''")
    [ "$done" -ge "$tenants" ] && return 0
    sleep 0.1
  done
  die "round $r: $done of $tenants tenants finished"
}
now_ms() { sql "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint"; }

results=()
base=""
idle_avg_s=""
IFS=, read -r -a counts <<<"$worker_counts"
for w in "${counts[@]}"; do
  start_mocks
  for i in $(seq 1 "$tenants"); do
    config_for "$i" "$work/r$w-t$i.yaml"
    "$bin/crmbridge" --log-level error tenants add "r$w-t$i" --config "$work/r$w-t$i.yaml" >/dev/null ||
      die "tenants add r$w-t$i"
  done
  start=$(now_ms)
  t0=$(date +%s.%N)
  workers=()
  for k in $(seq 1 "$w"); do
    "$bin/crmbridge" --log-level warn worker --concurrency 1 --poll 100ms --listen 127.0.0.1:0 \
      >/dev/null 2>>"$work/worker$k.log" &
    workers+=($!)
  done
  wait_round "$w" "$start"
  t1=$(date +%s.%N)
  # The idle round: every tenant due again, nothing changed since its run.
  idle_start=$(now_ms)
  sql "UPDATE crmbridge_registry.tenants SET next_due_ms = 0 WHERE name LIKE 'r$w-%'" >/dev/null
  wait_round "$w" "$idle_start"
  t2=$(date +%s.%N)
  for p in "${workers[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${workers[@]}"; do wait "$p" 2>/dev/null || true; done
  workers=()
  bad=$(sql "SELECT count(*) FROM crmbridge_registry.tenants WHERE name LIKE 'r$w-%' AND last_outcome <> 'ok'")
  [ "$bad" = 0 ] || die "round $w: $bad tenant(s) did not end ok: $(sql "SELECT name, last_outcome, left(last_error, 200) FROM crmbridge_registry.tenants WHERE name LIKE 'r$w-%' AND last_outcome <> 'ok' LIMIT 3")"
  idle_ms=$(sql "SELECT coalesce(round(avg(finished_ms - started_ms)), 0) FROM crmbridge_registry.tenant_runs
                 WHERE tenant LIKE 'r$w-%' AND started_ms >= $idle_start")
  first_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
  idle_s=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.2f", b - a }')
  [ -n "$base" ] || base=$first_s
  speedup=$(awk -v b="$base" -v s="$first_s" 'BEGIN { printf "%.2f", b / s }')
  rate=$(awk -v n="$tenants" -v s="$first_s" 'BEGIN { printf "%.2f", n / s }')
  printf '%2d worker(s): %d tenants first synced in %6.2f s (%5.2f tenants/s, %4.2fx of 1 worker); idle round %6.2f s, %d ms per idle tenant\n' \
    "$w" "$tenants" "$first_s" "$rate" "$speedup" "$idle_s" "$idle_ms"
  results+=("{\"workers\":$w,\"first_s\":$first_s,\"tenants_per_s\":$rate,\"speedup\":$speedup,\"idle_round_s\":$idle_s,\"idle_tenant_ms\":$idle_ms}")
  idle_avg_s=$(awk -v ms="$idle_ms" 'BEGIN { printf "%.3f", ms / 1000 }')
  for i in $(seq 1 "$tenants"); do
    "$bin/crmbridge" --log-level error tenants remove "r$w-t$i" --drop-state >/dev/null
  done
  stop_mocks
done
per_worker=$(awk -v s="$idle_avg_s" 'BEGIN { if (s > 0) printf "%d", 300 / s; else print 0 }')
echo "idle tenants one worker keeps on a 5-minute schedule, one at a time: about $per_worker (${idle_avg_s} s per idle run)"

# The engine per record, SQLite against PostgreSQL, in this same run.
engine() {
  "$bin/crmbridge_bench_engine" --records "$records" "$@" | sed -n 's/^JSON //p'
}
sqlite_json=$(engine)
pg_json=$(engine --state "$CRMBRIDGE_STATE_URL")
field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"; }
s1=$(field "$sqlite_json" initial_cpu_s); p1=$(field "$pg_json" initial_cpu_s)
s2=$(field "$sqlite_json" idle_cpu_s); p2=$(field "$pg_json" idle_cpu_s)
sw1=$(field "$sqlite_json" initial_wall_s); pw1=$(field "$pg_json" initial_wall_s)
ratio_cpu=$(awk -v a="$s1" -v b="$p1" 'BEGIN { printf "%.2f", b / a }')
ratio_wall=$(awk -v a="$sw1" -v b="$pw1" 'BEGIN { printf "%.2f", b / a }')
ratio_idle=$(awk -v a="$s2" -v b="$p2" 'BEGIN { printf "%.2f", b / a }')
echo "engine, $records records: first sync on PostgreSQL ${ratio_wall}x SQLite's wall time (${ratio_cpu}x its CPU), idle re-read ${ratio_idle}x its CPU"
# A rate budget two tenants share, against a local one.
budget_json=$("$bin/crmbridge_bench_rate_budget" --state "$CRMBRIDGE_STATE_URL" --takes "$budget_takes" \
  --workers 4 2>>"$work/budget.log" | sed -n 's/^JSON //p' || true)
[ -n "$budget_json" ] || die "the rate budget bench failed: $(tail -3 "$work/budget.log")"
echo "shared rate budget: $(field "$budget_json" shared_acquire_us) us per request (local: $(field "$budget_json" local_acquire_us) us), $(field "$budget_json" take_us_dynamics365) us with a full Dynamics 365 window; $(field "$budget_json" contended_slots_per_s) slots/s for one account from 4 workers"
joined=$(IFS=,; echo "${results[*]}")
echo "JSON {\"tenants\":$tenants,\"latency_ms\":$latency,\"rounds\":[$joined],\"idle_tenants_per_worker_5m\":$per_worker,\"engine_records\":$records,\"pg_over_sqlite_first_wall\":$ratio_wall,\"pg_over_sqlite_first_cpu\":$ratio_cpu,\"pg_over_sqlite_idle_cpu\":$ratio_idle,\"rate_budget\":$budget_json}"
