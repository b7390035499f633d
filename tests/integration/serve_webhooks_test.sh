#!/usr/bin/env bash
# `crmbridge serve` end to end: a change made in HubSpot and announced by a signed webhook reaches
# Dynamics 365 without waiting for the schedule; deliveries that are not HubSpot's change nothing;
# an announced change outlives a SIGKILL of serve before any run read it.
#   usage: serve_webhooks_test.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-serve.XXXXXX")
source "$(dirname "$0")/crm_mocks.sh"
source "$(dirname "$0")/serve.sh"
cleanup() { stop_serve; stop_crm_mocks; rm -rf "$work"; }
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -20 "$work/serve.log" >&2 2>/dev/null || true
  exit 1
}

export HUBSPOT_TOKEN=pat-mock-hubspot D365_CLIENT_ID=serve-client D365_CLIENT_SECRET=serve-secret
export TOTANGO_TOKEN=serve-totango PORTAL_TOKEN=serve-portal
export HUBSPOT_CLIENT_SECRET=webhook-secret-5e1f
start_crm_mocks "$bin" "$work" --seed 5 --size 4 --seed-only hubspot portal || fail "no mocks"
export CRMBRIDGE_STATE="$work/state.db"
# The demo configuration, with the HubSpot app's client secret that signs its webhooks.
cfg="$work/crmbridge.yaml"
sed -e "s#\.\./\.\./mappings/#$src/mappings/#g" \
  -e 's#auth: {token: "${env:HUBSPOT_TOKEN}"}#auth: {token: "${env:HUBSPOT_TOKEN}", client_secret: "${env:HUBSPOT_CLIENT_SECRET}"}#' \
  "$src/examples/demo/crmbridge.yaml" >"$cfg"
grep -q HUBSPOT_CLIENT_SECRET "$cfg" || fail "the demo configuration's HubSpot auth line has changed"
# A short lease, so that a killed serve's lease is free again in seconds.
printf 'sync: {lease_ttl: 3s}\n' >>"$cfg"

# Starts serve, its schedule far off: only webhooks make runs after the first.
serve() { start_serve "$bin" "$cfg" "$work" --every 1h || fail "serve did not start"; }
runs_done() { serve_runs "$work"; }
wait_runs() { wait_serve_runs "$work" "$1" || fail "run $1 did not finish"; }
hs() { curl -sf -H "Authorization: Bearer $HUBSPOT_TOKEN" -H 'Content-Type: application/json' "$@"; }
# grep reads the whole dump: with -q it leaves at the first match, and under pipefail curl's
# SIGPIPE would fail the check.
in_d365() { curl -s "$DEMO_DYNAMICS365_URL/__admin/dump" | grep -F "$1" >/dev/null; }
command -v node >/dev/null || fail "node is required (scripts/setup.sh installs it)"
# d365_stage NAME: the onboarding stage (a choice value) of the opportunity named NAME.
d365_stage() {
  curl -s "$DEMO_DYNAMICS365_URL/__admin/dump" | node -e '
    const o = JSON.parse(require("fs").readFileSync(0, "utf8")).opportunities.find(o => o.name === process.argv[1]);
    console.log(o ? o.crmb_onboardingstage : "")' "$1"
}

# deliver FILE [SECRET [TIMESTAMP]]: POSTs FILE as HubSpot does, signed v3; prints the HTTP status.
deliver() {
  local body=$1 secret=${2:-$HUBSPOT_CLIENT_SECRET} ts=${3:-$(date +%s%3N)}
  local target="$url/webhooks/hubspot"
  local sig
  sig=$( { printf 'POST%s' "$target"; cat "$body"; printf '%s' "$ts"; } |
        openssl dgst -sha256 -hmac "$secret" -binary | base64)
  curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -H "X-HubSpot-Signature-v3: $sig" -H "X-HubSpot-Request-Timestamp: $ts" \
    --data-binary "@$body" "$target"
}
# announce ID FILE: a ticket.propertyChange event for ticket ID, written to FILE.
announce() {
  printf '[{"eventId":%s,"subscriptionId":9,"portalId":62515,"occurredAt":%s,"subscriptionType":"ticket.propertyChange","attemptNumber":0,"objectId":%s,"propertyName":"subject","propertyValue":"x","changeSource":"CRM"}]' \
    "$RANDOM" "$(date +%s%3N)" "$1" >"$2"
}

serve
wait_runs 1
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz")" = 200 ] || fail "/healthz"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/readyz")" = 200 ] || fail "/readyz"

# A ticket's subject changes in HubSpot; the schedule would not see it for an hour.
ticket=$(hs "$DEMO_HUBSPOT_URL/crm/v3/objects/tickets?limit=1&properties=subject" |
         sed -n 's/.*"results":\[{[^]]*"id":"\([0-9]*\)".*/\1/p')
[ -n "$ticket" ] || fail "no ticket in the HubSpot mock"
title="Moved by webhook $RANDOM$RANDOM"
# Its stage moves too: to Avslutad (Dynamics 365's choice 100000003), or to Ny (100000000) when it
# is at Avslutad already.
read -r pipeline current < <(hs "$DEMO_HUBSPOT_URL/crm/v3/objects/tickets/$ticket?properties=hs_pipeline,hs_pipeline_stage" |
  node -e 'const p = JSON.parse(require("fs").readFileSync(0, "utf8")).properties;
    console.log(`${p.hs_pipeline} ${p.hs_pipeline_stage}`)')
read -r stage want < <(hs "$DEMO_HUBSPOT_URL/crm/v3/pipelines/tickets" | node -e '
  const [pipeline, current] = process.argv.slice(1);
  const stages = JSON.parse(require("fs").readFileSync(0, "utf8")).results.find(p => p.id === pipeline).stages;
  const here = (stages.find(s => s.id === current) || {}).label;
  const to = stages.find(s => s.label === (here === "Avslutad" ? "Ny" : "Avslutad"));
  console.log(`${to.id} ${to.label === "Avslutad" ? 100000003 : 100000000}`)' "$pipeline" "$current")
[ -n "$stage" ] || fail "no stage to move ticket $ticket to"
hs -X PATCH "$DEMO_HUBSPOT_URL/crm/v3/objects/tickets/$ticket" \
  -d "{\"properties\":{\"subject\":\"$title\",\"hs_pipeline_stage\":\"$stage\"}}" >/dev/null ||
  fail "PATCH ticket $ticket"
sleep 1
in_d365 "$title" && fail "the change reached Dynamics 365 before any webhook"

# Deliveries that are not HubSpot's are refused and change nothing.
announce "$ticket" "$work/event.json"
[ "$(deliver "$work/event.json" wrong-secret)" = 401 ] || fail "a badly signed delivery was not refused"
[ "$(deliver "$work/event.json" "$HUBSPOT_CLIENT_SECRET" $(( $(date +%s%3N) - 301000 )))" = 401 ] ||
  fail "a delivery older than 5 minutes was not refused"
head -c 1100000 /dev/zero | tr '\0' ' ' >"$work/huge.json"
[ "$(deliver "$work/huge.json")" = 413 ] || fail "a body over 1 MB was not refused with 413"
# A body of no declared length would be read whole before any limit: it is refused unread, and the
# server goes on answering.
[ "$(head -c 3000000 /dev/zero | curl -s -o /dev/null -w '%{http_code}' -X POST \
      -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/json' --data-binary @- \
      "$url/webhooks/hubspot")" = 411 ] || fail "a chunked body was not refused with 411"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz")" = 200 ] ||
  fail "the server stopped answering after a chunked body"
printf '[{' >"$work/broken.json"
[ "$(deliver "$work/broken.json")" = 400 ] || fail "malformed JSON was not refused with 400"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '[]' "$url/webhooks/totango")" = 404 ] ||
  fail "a system that takes no webhooks answered"
sleep 1
[ "$(runs_done)" -eq 1 ] || fail "a refused delivery started a run"
in_d365 "$title" && fail "a refused delivery moved the change"

# The signed delivery: 200, and the change reaches Dynamics 365 in seconds.
[ "$(deliver "$work/event.json")" = 200 ] || fail "a signed delivery was refused"
for _ in $(seq 1 300); do in_d365 "$title" && break; sleep 0.1; done
in_d365 "$title" || fail "the announced change did not reach Dynamics 365"
[ "$(d365_stage "$title")" = "$want" ] ||
  fail "the stage change did not reach Dynamics 365: $(d365_stage "$title"), not $want"
wait_runs 2
grep -q 'reading hubspot tickets (onboarding): 1 announced record' "$work/serve.log" ||
  fail "the announced ticket was not read alone, by id"
"$bin/crmbridge" --config "$cfg" status --json | grep '"webhook_events_pending": 0' >/dev/null ||
  fail "the read change is still pending"
# The same delivery again (HubSpot retries) is known: no new run.
[ "$(deliver "$work/event.json")" = 200 ] || fail "a repeated delivery was refused"
sleep 1
[ "$(runs_done)" -eq 2 ] || fail "a repeated delivery started a run"
grep -q '1 change(s) announced, 0 new' "$work/serve.log" || fail "the repeat was not recognised"

# The HubSpot mock delivers its own webhooks now, as a subscribed app gets them: each batch twice
# and reordered, its first attempt stamped 6 minutes old (refused with 401, so HubSpot retries
# it). A changed ticket still reaches Dynamics 365. The target URL has escapes in its query that
# HubSpot decodes before signing (%3A, %2C) and one it keeps (%20): serve must decode the same.
curl -sf -X POST "$DEMO_HUBSPOT_URL/__admin/webhooks" -d "{\"url\":\"$url/webhooks/hubspot?app=crm%3Abridge%2Cmock%20one\",
  \"secret\":\"$HUBSPOT_CLIENT_SECRET\",\"faults\":[\"duplicate\",\"reorder\",\"late\"],\"retry_ms\":100}" \
  >/dev/null || fail "could not subscribe to the HubSpot mock's webhooks"
title3="Delivered by the mock $RANDOM$RANDOM"
hs -X PATCH "$DEMO_HUBSPOT_URL/crm/v3/objects/tickets/$ticket" \
  -d "{\"properties\":{\"subject\":\"$title3\"}}" >/dev/null || fail "PATCH ticket $ticket"
for _ in $(seq 1 300); do in_d365 "$title3" && break; sleep 0.1; done
in_d365 "$title3" || fail "the mock's delivery did not bring the change to Dynamics 365"
# The ticket moves to another company: nothing of the ticket itself changes, only its association,
# and its associationChange events bring the move to the opportunity's account in Dynamics 365.
read -r old_company new_company new_name < <(hs "$DEMO_HUBSPOT_URL/crm/v3/objects/tickets/$ticket?associations=companies" |
  node -e '
    const t = JSON.parse(require("fs").readFileSync(0, "utf8"));
    console.log(t.associations.companies.results[0].id)' |
  { read -r old; hs "$DEMO_HUBSPOT_URL/crm/v3/objects/companies?limit=10&properties=name" | node -e '
      const old = process.argv[1];
      const c = JSON.parse(require("fs").readFileSync(0, "utf8")).results.find(c => c.id !== old);
      console.log(`${old} ${c.id} ${encodeURIComponent(c.properties.name)}`)' "$old"; })
[ -n "$new_company" ] || fail "no other company to move ticket $ticket to"
hs -X DELETE "$DEMO_HUBSPOT_URL/crm/v4/objects/tickets/$ticket/associations/companies/$old_company" >/dev/null ||
  fail "could not remove ticket $ticket from company $old_company"
hs -X PUT --data "" "$DEMO_HUBSPOT_URL/crm/v4/objects/tickets/$ticket/associations/default/companies/$new_company" >/dev/null ||
  fail "could not add ticket $ticket to company $new_company"
account_of_opportunity() {
  curl -s "$DEMO_DYNAMICS365_URL/__admin/dump" | node -e '
    const d = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const o = d.opportunities.find(o => o.name === process.argv[1]) || {};
    const a = d.accounts.find(a => a.accountid === o._parentaccountid_value) || {};
    console.log(encodeURIComponent(a.name || ""))' "$1"
}
for _ in $(seq 1 300); do [ "$(account_of_opportunity "$title3")" = "$new_name" ] && break; sleep 0.1; done
[ "$(account_of_opportunity "$title3")" = "$new_name" ] ||
  fail "the association change did not reach Dynamics 365: the opportunity is at $(account_of_opportunity "$title3")"
# A ticket archived in HubSpot: its deletion event is read as a delete at once (the batch read no
# longer finds it), not at the next scheduled listing of archived tickets, an hour away.
gone=$(hs "$DEMO_HUBSPOT_URL/crm/v3/objects/tickets?limit=2" | node -e '
  const r = JSON.parse(require("fs").readFileSync(0, "utf8")).results;
  console.log(r.map(t => t.id).find(id => id !== process.argv[1]))' "$ticket")
[ -n "$gone" ] || fail "no second ticket in the HubSpot mock"
curl -sf -X DELETE -H "Authorization: Bearer $HUBSPOT_TOKEN" "$DEMO_HUBSPOT_URL/crm/v3/objects/tickets/$gone" ||
  fail "could not archive ticket $gone"
for _ in $(seq 1 300); do grep -q "hubspot: tickets $gone was deleted" "$work/serve.log" && break; sleep 0.1; done
grep -q "hubspot: tickets $gone was deleted" "$work/serve.log" ||
  fail "the archived ticket's deletion event was not read as a delete"
stats=$(curl -s "$DEMO_HUBSPOT_URL/__admin/webhooks")
grep -q '"retried":[1-9]' <<<"$stats" || fail "the late first attempt was not refused and retried: $stats"
grep -q '"delivered":[1-9]' <<<"$stats" || fail "no delivery landed: $stats"
grep -q 'more than 5 minutes old' "$work/serve.log" || fail "the late attempt was not refused as late"

# /metrics shows what happened: the webhooks by outcome, what the runs read and wrote, each API
# attempt, and how long the changes took to arrive.
metrics=$(curl -sf "$url/metrics") || fail "/metrics did not answer"
has_metric() { grep -Eq "^$1 [1-9]" <<<"$metrics" || fail "/metrics lacks a non-zero $1"; }
has_metric 'crmbridge_webhook_events_total\{outcome="accepted",system="hubspot"\}'
has_metric 'crmbridge_webhook_events_total\{outcome="duplicate",system="hubspot"\}'
has_metric 'crmbridge_webhook_events_total\{outcome="refused",system="hubspot"\}'
has_metric 'crmbridge_webhook_events_total\{outcome="too_large",system="hubspot"\}'
has_metric 'crmbridge_webhook_events_total\{outcome="malformed",system="hubspot"\}'
has_metric 'crmbridge_records_read_total\{entity="onboarding",system="hubspot"\}'
has_metric 'crmbridge_writes_total\{entity="onboarding",outcome="updated",system="dynamics365"\}'
has_metric 'crmbridge_api_requests_total\{code="200",system="dynamics365"\}'
has_metric 'crmbridge_change_lag_seconds_count\{entity="onboarding",system="dynamics365"\}'
has_metric 'crmbridge_runs_total\{outcome="ok"\}'
has_metric 'crmbridge_last_success_timestamp_seconds'
grep -q '^crmbridge_outbox_pending{system="dynamics365"} 0' <<<"$metrics" ||
  fail "/metrics lacks the outbox gauge"
grep -q "$ticket" <<<"$metrics" && fail "/metrics shows a record id"

# A change announced while another run holds the lease (a `crmbridge sync` from cron beside
# serve) waits in the state store, and is read once that run is done. The other run's write to
# Dynamics 365 (one update: a PATCH) takes 6 seconds, and its lease outlasts that.
# First the sender's late and duplicate deliveries above run out, and serve's runs for them end
# (2 s without a new line in its log): a run of serve's own would take the slow PATCH meant for
# the other run, which would then end before serve tried.
quiet=0
for _ in $(seq 1 100); do
  size=$(wc -c <"$work/serve.log")
  sleep 0.2
  if [ "$(wc -c <"$work/serve.log")" = "$size" ]; then quiet=$((quiet + 1)); else quiet=0; fi
  [ "$quiet" -ge 10 ] && break
done
sed 's/^sync: {lease_ttl: 3s}$/sync: {lease_ttl: 60s}/' "$cfg" >"$work/other.yaml"
grep -q 'lease_ttl: 60s' "$work/other.yaml" || fail "the lease line of the test configuration moved"
curl -sf -X POST "$DEMO_DYNAMICS365_URL/__admin/faults" \
  -d '[{"method":"PATCH","latency_ms":6000,"times":1}]' >/dev/null ||
  fail "could not slow the Dynamics 365 mock"
hs -X PATCH "$DEMO_HUBSPOT_URL/crm/v3/objects/tickets/$ticket" \
  -d "{\"properties\":{\"subject\":\"For the other run $RANDOM\"}}" >/dev/null || fail "PATCH ticket $ticket"
runs_before=$(runs_done)
"$bin/crmbridge" --config "$work/other.yaml" --log-level warn sync >"$work/other.out" 2>"$work/other.log" &
other=$!
held=""
for _ in $(seq 1 100); do
  "$bin/crmbridge" --config "$cfg" status --json | grep '"lease": {' >/dev/null && held=yes && break
  sleep 0.05
done
[ -n "$held" ] || fail "the other run never held the lease"
sleep 1  # past its reads: it waits on Dynamics 365 now
title5="Announced while the lease is held $RANDOM$RANDOM"
hs -X PATCH "$DEMO_HUBSPOT_URL/crm/v3/objects/tickets/$ticket" \
  -d "{\"properties\":{\"subject\":\"$title5\"}}" >/dev/null || fail "PATCH ticket $ticket"
announce "$ticket" "$work/event5.json"
[ "$(deliver "$work/event5.json")" = 200 ] || fail "a delivery while the lease is held was refused"
# Up to 15 s on a loaded machine, while the other run still holds the lease.
for _ in $(seq 1 150); do
  grep -q 'serve: skipped: another run holds the lease' "$work/serve.log" && break
  kill -0 "$other" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q 'serve: skipped: another run holds the lease' "$work/serve.log"; then
  kill -0 "$other" 2>/dev/null || fail "the other run ended before serve tried"
  fail "serve did not say the lease was held elsewhere"
fi
kill -0 "$other" 2>/dev/null || fail "the other run ended before serve tried"
in_d365 "$title5" && fail "the announced change was written while another run held the lease"
"$bin/crmbridge" --config "$cfg" status --json | grep -Eq '"webhook_events_pending": [1-9]' ||
  fail "the change announced while the lease was held is not kept"
wait "$other" || fail "the other run failed: $(tail -3 "$work/other.log")"
for _ in $(seq 1 300); do in_d365 "$title5" && break; sleep 0.1; done
in_d365 "$title5" || fail "the change announced while the lease was held never reached Dynamics 365"
wait_runs $((runs_before + 1))
"$bin/crmbridge" --config "$cfg" status --json | grep '"webhook_events_pending": 0' >/dev/null ||
  fail "the change announced while the lease was held is still pending"

# SIGKILL before the announced change is read: it waits in the state store for the next serve.
# Dynamics 365 answers nothing for a while, so the run the delivery starts cannot finish it.
curl -sf -X POST "$DEMO_DYNAMICS365_URL/__admin/faults" -d '[{"status":503}]' >/dev/null ||
  fail "could not set a fault on the Dynamics 365 mock"
title2="Kept across a crash $RANDOM$RANDOM"
hs -X PATCH "$DEMO_HUBSPOT_URL/crm/v3/objects/tickets/$ticket" \
  -d "{\"properties\":{\"subject\":\"$title2\"}}" >/dev/null || fail "PATCH ticket $ticket"
announce "$ticket" "$work/event2.json"
[ "$(deliver "$work/event2.json")" = 200 ] || fail "the second delivery was refused"
kill -9 "$serve_pid"
wait "$serve_pid" 2>/dev/null || true
serve_pid=""
"$bin/crmbridge" --config "$cfg" status --json | grep -Eq '"webhook_events_pending": [1-9]' ||
  fail "the announced change was lost with the process"
curl -sf -X DELETE "$DEMO_DYNAMICS365_URL/__admin/faults" >/dev/null || fail "could not clear the fault"
sed -i 's/serve: run \([0-9]*\) wrote/(before the crash) run \1 wrote/' "$work/serve.log"
serve
for _ in $(seq 1 600); do in_d365 "$title2" && break; sleep 0.1; done
in_d365 "$title2" || fail "the change announced before the crash did not reach Dynamics 365"
wait_runs 1
"$bin/crmbridge" --config "$cfg" status --json | grep '"webhook_events_pending": 0' >/dev/null ||
  fail "the change announced before the crash is still pending"

# SIGTERM: serve finishes and exits 0.
kill -TERM "$serve_pid"
rc=0
wait "$serve_pid" || rc=$?
serve_pid=""
[ "$rc" -eq 0 ] || fail "serve exited $rc on SIGTERM"

# A serve whose HubSpot credentials are refused is not ready, and says why.
HUBSPOT_TOKEN=pat-revoked serve
wait_runs 2
code=$(curl -s -o "$work/ready.txt" -w '%{http_code}' "$url/readyz")
[ "$code" = 503 ] && grep -q "hubspot refused crmbridge's credentials" "$work/ready.txt" ||
  fail "/readyz with refused credentials answered $code: $(cat "$work/ready.txt")"
grep -q 'pat-revoked' "$work/ready.txt" && fail "/readyz shows the token"
stop_serve

# For cron: sync writes the same metrics to a file once its run is done.
"$bin/crmbridge" --config "$cfg" sync --metrics-file "$work/crmbridge.prom" >/dev/null ||
  fail "sync --metrics-file failed"
grep -Eq '^crmbridge_runs_total\{outcome="ok"\} 1$' "$work/crmbridge.prom" ||
  fail "the metrics file lacks the run: $(head -c 600 "$work/crmbridge.prom")"
grep -Eq '^crmbridge_api_requests_total\{code="200",system="hubspot"\} [1-9]' "$work/crmbridge.prom" ||
  fail "the metrics file lacks the API requests"
echo "serve: webhook change moved in seconds; refused deliveries changed nothing; a pending change survived SIGKILL; metrics and readiness tell"
