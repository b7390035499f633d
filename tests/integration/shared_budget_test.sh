#!/usr/bin/env bash
# Two tenants on one HubSpot account (one token), run at the same time by two workers: together
# they keep to the account's limits, which the HubSpot mock enforces per token (6 requests per
# rolling 10 seconds here, 5 searches per second), because their rate budgets are shared in
# PostgreSQL. Each tenant's own budget is the whole account's, so without sharing the two would
# send up to twice the limit and be answered 429.
#   usage: shared_budget_test.sh BIN_DIR SOURCE_DIR THROWAWAY_POSTGRES
set -euo pipefail
bin=$1
src=$(cd "$2" && pwd)
pgtool=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-budgets.XXXXXX")
source "$(dirname "$0")/crm_mocks.sh"
source "$(dirname "$0")/postgres.sh"
mocks=()
workers=()
cleanup() {
  for p in "${workers[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${mocks[@]}"; do kill "$p" 2>/dev/null || true; done
  stop_postgres
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -15 "$work"/worker*.log >&2 2>/dev/null || true
  exit 1
}
command -v node >/dev/null || fail "node is required (scripts/setup.sh installs it)"
command -v psql >/dev/null || fail "psql is required (scripts/setup.sh installs postgresql)"

export HUBSPOT_TOKEN=pat-shared-account D365_CLIENT_ID=budget-client D365_CLIENT_SECRET=budget-secret
export TOTANGO_TOKEN=budget-totango PORTAL_TOKEN=budget-portal
limit=6
start_postgres "$pgtool" "$work"

# Tenant a's mocks, whose HubSpot both tenants read (every request a tenth of a second late, so
# that the two runs overlap); tenant b's own Dynamics 365, Totango and portal.
mkdir -p "$work/a" "$work/b"
start_crm_mocks "$bin" "$work/a" --seed 7 --size 12 --seed-only hubspot portal \
  --hubspot-ten-second-max "$limit" --fault "hubspot: latency=100" || fail "no mocks for a"
mocks+=("$mocks_pid")
hubspot=$DEMO_HUBSPOT_URL
config_for() {
  sed -e "s#\.\./\.\./mappings/#$src/mappings/#g" -e '/^state:/d' \
    -e "s#\${env:DEMO_HUBSPOT_URL}#$hubspot#g" \
    -e "s#\${env:DEMO_DYNAMICS365_URL}#$DEMO_DYNAMICS365_URL#g" \
    -e "s#\${env:DEMO_TOTANGO_URL}#$DEMO_TOTANGO_URL#g" \
    -e "s#\${env:DEMO_PORTAL_URL}#$DEMO_PORTAL_URL#g" \
    -e "s#rate_limit: {requests: 100, per: 10s}#rate_limit: {requests: $limit, per: 10s}#" \
    "$src/examples/demo/crmbridge.yaml" >"$work/$1.yaml"
  grep -q "requests: $limit, per: 10s" "$work/$1.yaml" || fail "the demo's HubSpot limit moved"
  printf 'schedule: {every: 1h}\nsync:\n  retry_backoff: 0s\n' >>"$work/$1.yaml"
}
config_for a
start_crm_mocks "$bin" "$work/b" --seed 7 --size 12 --seed-only portal || fail "no mocks for b"
mocks+=("$mocks_pid")
config_for b
"$bin/crmbridge" tenants add a --config "$work/a.yaml" >/dev/null || fail "tenants add a"
"$bin/crmbridge" tenants add b --config "$work/b.yaml" >/dev/null || fail "tenants add b"

for w in 1 2; do
  "$bin/crmbridge" worker --concurrency 1 --poll 100ms --listen 127.0.0.1:0 \
    >"$work/worker$w.out" 2>"$work/worker$w.log" &
  workers+=($!)
done

# Waits until tenants a and b each have `n` finished runs of kind `job`, all ok.
wait_for_runs() {
  local job=$1 n=$2 done=""
  for _ in $(seq 1 600); do
    done=$(psql "$CRMBRIDGE_STATE_URL" -Atc "SELECT count(*) FROM crmbridge_registry.tenant_runs
      WHERE job = '$job' AND outcome <> 'running'")
    [ "$done" -ge "$n" ] && break
    sleep 0.2
  done
  [ "$done" -ge "$n" ] || fail "the ${job}s did not finish"
  local bad
  bad=$(psql "$CRMBRIDGE_STATE_URL" -Atc "SELECT tenant || ': ' || outcome
    FROM crmbridge_registry.tenant_runs WHERE job = '$job' AND outcome <> 'ok'")
  [ -z "$bad" ] || fail "runs did not end ok: $bad"
}
# HubSpot's count of a route (or of its 429s, by policy) so far.
hubspot_count() {
  curl -s "$hubspot/__admin/stats" | node -e '
    const s = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const want = process.argv[1];
    let n = 0;
    for (const [route, count] of Object.entries(s))
      if (want === "rest" ? !route.startsWith("429") && !route.includes("/search") : route === want)
        n += count;
    console.log(n);' "$1"
}

# The first runs record which account each tenant's systems spend: both spend one HubSpot.
wait_for_runs sync 2
accounts=$(psql "$CRMBRIDGE_STATE_URL" -Atc "SELECT count(DISTINCT tenant) || ' ' || count(DISTINCT account)
  FROM crmbridge_registry.tenant_accounts WHERE system = 'hubspot'")
[ "$accounts" = "2 1" ] || fail "the two tenants do not spend one HubSpot account: $accounts"
psql "$CRMBRIDGE_STATE_URL" -Atc "SELECT account FROM crmbridge_registry.tenant_accounts" \
  >"$work/accounts"
! grep -qF "$HUBSPOT_TOKEN" "$work/accounts" || fail "an account key shows the token"

# Both tenants read all of HubSpot again at once, one on each worker.
rest_before=$(hubspot_count rest)
over_before=$(( $(hubspot_count "429 TEN_SECONDLY_ROLLING") + $(hubspot_count "429 SECONDLY") ))
"$bin/crmbridge" backfill --tenant a --system hubspot >/dev/null || fail "backfill --tenant a"
"$bin/crmbridge" backfill --tenant b --system hubspot >/dev/null || fail "backfill --tenant b"
wait_for_runs backfill 2

overlap=$(psql "$CRMBRIDGE_STATE_URL" -Atc "SELECT count(*) FROM crmbridge_registry.tenant_runs x
  JOIN crmbridge_registry.tenant_runs y ON x.tenant = 'a' AND y.tenant = 'b'
  WHERE x.job = 'backfill' AND y.job = 'backfill' AND x.holder <> y.holder
    AND x.started_ms < y.finished_ms AND y.started_ms < x.finished_ms")
[ "$overlap" = 1 ] || fail "the two backfills did not run at the same time on two workers"
rest=$(( $(hubspot_count rest) - rest_before ))
over=$(( $(hubspot_count "429 TEN_SECONDLY_ROLLING") + $(hubspot_count "429 SECONDLY") - over_before ))
[ "$rest" -gt "$limit" ] ||
  fail "the backfills sent $rest requests under the 10-second limit: they never had to share it"
[ "$over" -eq 0 ] || fail "HubSpot answered $over request(s) over the account's limits with 429"
grep -q "2 tenants spend this account" "$work"/worker*.log ||
  fail "no worker said the account's budget is shared"

for p in "${workers[@]}"; do kill -TERM "$p"; done
for p in "${workers[@]}"; do wait "$p" || fail "a worker exited $? on SIGTERM"; done
workers=()
echo "PASS: two tenants on one HubSpot account, at once on two workers: $rest requests, no 429"
