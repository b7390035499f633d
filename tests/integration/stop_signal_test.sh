#!/usr/bin/env bash
# SIGTERM ends a sync that waits for a rate budget, and nothing it could not send is lost: with
# HubSpot's search budget at one request an hour, the sync's second search would wait an hour.
# After SIGTERM the process ends without sending it, and the next sync, with the demo's budget,
# moves every onboarding as a sync that was never stopped would. A sync killed (SIGKILL) leaves
# its lease, which the next sync on this machine takes over at once. Also: serve refuses a port
# that another process listens on.
#   usage: stop_signal_test.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1
src=$(cd "$2" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-stop.XXXXXX")
source "$(dirname "$0")/crm_mocks.sh"
pid=""
cleanup() {
  [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
  stop_crm_mocks
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -5 "$work/stopped.log" >&2 2>/dev/null || true; exit 1; }

export HUBSPOT_TOKEN=pat-stop-hubspot D365_CLIENT_ID=stop-client D365_CLIENT_SECRET=stop-secret-01
export TOTANGO_TOKEN=stop-totango-token PORTAL_TOKEN=stop-portal-token
start_crm_mocks "$bin" "$work" --seed 7 --size 12 --seed-only hubspot portal || fail "no mocks"
export CRMBRIDGE_STATE="$work/state.db"
sed -e "s#\.\./\.\./mappings/#$src/mappings/#g" "$src/examples/demo/crmbridge.yaml" >"$work/demo.yaml"
sed -e 's#search_rate_limit: {requests: 5, per: 1s}#search_rate_limit: {requests: 1, per: 1h}#' \
  "$work/demo.yaml" >"$work/tight.yaml"
grep -q "requests: 1, per: 1h" "$work/tight.yaml" || fail "the demo's search budget moved"

# start_waiting_sync NAME: a sync on the tight budget, its output in $work/NAME.out and .log, its
# pid in $pid, once it has sent its first search (the next waits for the budget, holding the lease).
start_waiting_sync() {
  "$bin/crmbridge" --config "$work/tight.yaml" --log-level debug sync >"$work/$1.out" \
    2>"$work/$1.log" &
  pid=$!
  for _ in $(seq 1 600); do
    grep -q "/search" "$work/$1.log" && return 0
    kill -0 "$pid" 2>/dev/null || fail "the $1 sync ended before its first search"
    sleep 0.1
  done
  fail "no search request in a minute (the $1 sync)"
}

start_waiting_sync stopped
sleep 1
kill -0 "$pid" 2>/dev/null || fail "the sync ended without waiting for its search budget"
kill -TERM "$pid"
# A bound for a hang, not a measure: the budget would hold it for an hour.
for _ in $(seq 1 600); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then fail "SIGTERM did not end a sync waiting for its rate budget"; fi
set +e
wait "$pid"
rc=$?
set -e
pid=""
# Exit 4, as for a system that could not be read, with the reason in the log.
[ "$rc" -eq 4 ] || fail "the stopped sync exited $rc, not 4"
grep -q "not sent: crmbridge is stopping (SIGTERM or SIGINT)" "$work/stopped.log" \
  || fail "the log does not say the request was not sent for the stop"

# SIGKILL leaves the lease behind (10 minutes by default). The killed process was of this machine
# and has ended, so the next sync takes the lease over at once instead of exiting 3.
start_waiting_sync killed
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pid=""

# The next sync, with the demo's budget, moves everything: each seeded onboarding ticket has its
# Totango account (12 companies, 12 tickets), and a sync after it has nothing to write.
"$bin/crmbridge" --config "$work/demo.yaml" sync >"$work/next.out" 2>"$work/next.log" \
  || fail "the next sync exited $?: $(tail -3 "$work/next.log")"
grep -q "a process of this machine that has ended (killed or crashed): it is taken over" \
  "$work/next.log" || fail "the killed run's lease was not taken over: $(tail -3 "$work/next.log")"
# status shows the killed run as ended without finishing, not as running.
"$bin/crmbridge" --config "$work/demo.yaml" status >"$work/status.out" || fail "status exited $?"
grep -q " unfinished " "$work/status.out" || fail "the killed run is not unfinished: $(cat "$work/status.out")"
if grep -q " running " "$work/status.out"; then fail "a run shows as running: $(cat "$work/status.out")"; fi
accounts=$(curl -s "$DEMO_TOTANGO_URL/__admin/dump" | grep -o '"Onboarding Stage":"[^"]*"' | wc -l)
[ "$accounts" -eq 12 ] || fail "Totango holds $accounts onboarding accounts, not 12"
"$bin/crmbridge" --config "$work/demo.yaml" sync >"$work/last.out" 2>"$work/last.log" \
  || fail "the last sync exited $?"
grep -q "Nothing to write" "$work/last.out" || fail "the last sync wrote: $(cat "$work/last.out")"

# serve refuses a port another process listens on (here the HubSpot mock's), where the kernel would
# otherwise share the connections between the two.
taken=${DEMO_HUBSPOT_URL#http://}
taken=${taken%%/*}
set +e
timeout 20 "$bin/crmbridge" --config "$work/demo.yaml" serve --listen "$taken" --every 1h \
  >"$work/serve.out" 2>"$work/serve.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "serve on a taken port $taken exited $rc, not 2: $(cat "$work/serve.out")"
grep -q "cannot listen on $taken" "$work/serve.err" || fail "serve: $(cat "$work/serve.err")"
