#!/usr/bin/env bash
# Convergence through failures, end to end through the real binaries: for several seeds, crmbridge
# syncs HubSpot (companies, contacts, tickets and notes, with their associations) into Dynamics 365
# and Totango while the mocks inject faults (429s, 5xx, writes
# that land but answer an error, dropped connections, partial batch failures, SDR writes silently
# lost) and the crmbridge process is killed with SIGKILL at random moments. It is then run again
# until nothing is left to do, and the end state must be exactly what a fault-free run reaches:
# every record once in each system, with the same values and references, no duplicate, nothing lost.
#   usage: convergence_test.sh BIN_DIR SOURCE_DIR [SEEDS]
set -euo pipefail
bin=$1
src=$(cd "$2" && pwd)
seeds=${3:-4}
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-conv.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

export HUBSPOT_TOKEN=pat-conv D365_CLIENT_ID=conv-client D365_CLIENT_SECRET=conv-secret
export TOTANGO_TOKEN=conv-totango PORTAL_TOKEN=conv-portal

# Starts crm-mocks with the given extra flags; sets DEMO_*_URL and mocks_pid.
start_mocks() {
  local out="$work/mocks.$1.json"
  shift
  "$bin/crm-mocks" --hubspot-token "$HUBSPOT_TOKEN" --dynamics365-client-id "$D365_CLIENT_ID" \
    --dynamics365-client-secret "$D365_CLIENT_SECRET" --totango-token "$TOTANGO_TOKEN" \
    --portal-token "$PORTAL_TOKEN" --seed-only hubspot portal "$@" >"$out" 2>>"$work/mocks.log" &
  mocks_pid=$!
  pids+=("$mocks_pid")
  for _ in $(seq 1 100); do [ -s "$out" ] && break; sleep 0.05; done
  local line
  line=$(head -n1 "$out")
  DEMO_HUBSPOT_URL=$(sed -n 's/.*"hubspot":"\([^"]*\)".*/\1/p' <<<"$line")
  DEMO_DYNAMICS365_URL=$(sed -n 's/.*"dynamics365":"\([^"]*\)".*/\1/p' <<<"$line")
  DEMO_TOTANGO_URL=$(sed -n 's/.*"totango":"\([^"]*\)".*/\1/p' <<<"$line")
  DEMO_PORTAL_URL=$(sed -n 's/.*"portal":"\([^"]*\)".*/\1/p' <<<"$line")
  export DEMO_HUBSPOT_URL DEMO_DYNAMICS365_URL DEMO_TOTANGO_URL DEMO_PORTAL_URL
  [ -n "$DEMO_TOTANGO_URL" ] || fail "crm-mocks did not start: $(tail -3 "$work/mocks.log")"
}

# The demo configuration, with a short lease (killed runs leave theirs behind) and retries within
# the run, so a few runs finish what the faults interrupted.
# The mocks keep no rate limits here (--no-limits), so Totango's REST writes need no pacing either.
sed -e "s#\.\./\.\./mappings/#$src/mappings/#g" \
  -e 's#rate_limit: {requests: 100, per: 60s}      \# Totango#rate_limit: {requests: 6000, per: 60s} \##' \
  "$src/examples/demo/crmbridge.yaml" >"$work/crmbridge.yaml"
grep -q 'requests: 6000, per: 60s' "$work/crmbridge.yaml" || fail "the Totango rate limit was not lifted"
printf 'sync:\n  lease_ttl: 1s\n  retry_backoff: 0s\n  max_outbox_attempts: 50\n  max_verify_attempts: 10\n' \
  >>"$work/crmbridge.yaml"
cfg="$work/crmbridge.yaml"

# What Dynamics 365 and Totango hold, normalized and free of row ids: every account, contact,
# opportunity and note with the records its lookups point to (d365_end_state.mjs), and every
# Totango account with its stage, users, touchpoints and tasks (totango_end_state.mjs).
command -v node >/dev/null || fail "node is required (scripts/setup.sh installs it)"
end_state() {
  curl -s "$DEMO_DYNAMICS365_URL/__admin/dump" | node "$src/tests/integration/d365_end_state.mjs" >"$1.d365"
  curl -s "$DEMO_TOTANGO_URL/__admin/dump" | node "$src/tests/integration/totango_end_state.mjs" >"$1.totango"
}

total_kills=0
total_faults=0
size=60
for seed in $(seq 1 "$seeds"); do
  # The fault-free end state for this seed.
  start_mocks "clean$seed" --seed "$seed" --size "$size" --no-limits
  export CRMBRIDGE_STATE="$work/clean$seed.db"
  "$bin/crmbridge" --config "$cfg" --log-level error sync >/dev/null || fail "seed $seed: the fault-free run failed"
  end_state "$work/want$seed"
  made=$(grep -c '^opportunity|.*|[^-]*$' "$work/want$seed.d365" || true)
  [ "$made" -eq "$size" ] || fail "seed $seed: the fault-free run made $made opportunities with their account"
  [ "$(grep -c '^note|' "$work/want$seed.d365")" -eq "$size" ] || fail "seed $seed: the fault-free run lost notes"
  kill "$mocks_pid"; wait "$mocks_pid" 2>/dev/null || true

  # The same seed through faults and kills.
  start_mocks "faulty$seed" --seed "$seed" --size "$size" --no-limits --fault-seed "$seed" \
    --fault "hubspot:POST /search status=502 rate=0.15" \
    --fault "hubspot:* * status=429 rate=0.05 retry_after=0" \
    --fault "dynamics365:POST /\$batch status=503 rate=0.2" \
    --fault "dynamics365:POST /\$batch status=504 applied rate=0.15" \
    --fault "dynamics365:POST /\$batch drop applied rate=0.05" \
    --fault "dynamics365:POST /\$batch partial=0.3" \
    --fault "totango:GET /pixel.gif lost rate=0.2" \
    --fault "totango:POST /api/v1/search status=500 rate=0.1" \
    --fault "totango:POST /api/v3/touchpoints status=504 applied rate=0.2" \
    --fault "totango:POST /api/v3/tasks drop applied rate=0.1"
  export CRMBRIDGE_STATE="$work/faulty$seed.db"
  kills=0
  for k in 1 2 3 4; do
    "$bin/crmbridge" --config "$cfg" --log-level error sync >/dev/null 2>&1 &
    run=$!
    sleep "0.0$((RANDOM % 9))"
    if kill -KILL "$run" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$run" 2>/dev/null || true
  done
  sleep 1.1  # the killed runs' leases expire
  done_runs=0
  for attempt in $(seq 1 40); do
    set +e
    "$bin/crmbridge" --config "$cfg" --log-level error sync --json >"$work/run.json" 2>>"$work/runs.log"
    rc=$?
    set -e
    done_runs=$attempt
    pending=$("$bin/crmbridge" --config "$cfg" --log-level error status --json | grep -c '"outbox_pending": *{ *}' || true)
    if [ "$rc" -eq 0 ] && grep -q '"writes": 0' "$work/run.json" && [ "$pending" -ge 1 ]; then break; fi
    [ "$rc" -eq 3 ] && sleep 1.1
  done
  [ "$done_runs" -lt 40 ] || fail "seed $seed: no convergence after 40 runs: $(tail -5 "$work/runs.log")"
  end_state "$work/got$seed"
  diff "$work/want$seed.d365" "$work/got$seed.d365" >/dev/null \
    || fail "seed $seed: Dynamics 365 differs from the fault-free run: $(diff "$work/want$seed.d365" "$work/got$seed.d365" | head -8 | tr "\n" " ")"
  diff "$work/want$seed.totango" "$work/got$seed.totango" >/dev/null \
    || fail "seed $seed: Totango differs from the fault-free run: $(diff "$work/want$seed.totango" "$work/got$seed.totango" | head -8 | tr "\n" " ")"
  dead=$("$bin/crmbridge" --config "$cfg" --log-level error dlq list --json | grep -c '"id"' || true)
  [ "$dead" -eq 0 ] || fail "seed $seed: $dead dead letters"
  faults=0
  for url in "$DEMO_HUBSPOT_URL" "$DEMO_DYNAMICS365_URL" "$DEMO_TOTANGO_URL"; do
    n=$(curl -s "$url/__admin/faults" | grep -o '"injected":[0-9]*' | cut -d: -f2)
    faults=$((faults + n))
  done
  echo "seed $seed: converged after $kills SIGKILLs and $done_runs more run(s), through $faults injected faults"
  total_kills=$((total_kills + kills))
  total_faults=$((total_faults + faults))
  kill "$mocks_pid"; wait "$mocks_pid" 2>/dev/null || true
done
echo "convergence: $seeds seeds, $total_kills SIGKILLs, $total_faults injected faults survived; every end state equals the fault-free one"
