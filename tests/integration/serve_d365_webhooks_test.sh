#!/usr/bin/env bash
# `crmbridge serve` with Dynamics 365 webhooks end to end: a change made in Dynamics 365 and
# announced by a webhook carrying the endpoint's key reaches HubSpot without waiting for the
# schedule; deliveries without the key change nothing; a repeated delivery starts no run; the
# Dynamics 365 mock's own webhook calls (as a registered service endpoint makes them) do the same.
#   usage: serve_d365_webhooks_test.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-serve-d365.XXXXXX")
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
# A key with the characters a query value must encode, as Azure Function keys have.
export D365_WEBHOOK_KEY='wk+9f/Q2=='
key_encoded='wk%2B9f%2FQ2%3D%3D'
start_crm_mocks "$bin" "$work" --seed 7 --size 3 --seed-only dynamics365 || fail "no mocks"
export CRMBRIDGE_STATE="$work/state.db"
# The two-way HubSpot and Dynamics 365 configuration (accounts become companies), with the key of
# the Dynamics 365 webhook service endpoint.
cfg="$work/crmbridge.yaml"
sed -e "s#\[twoway_mapping.yaml\]#[$src/tests/integration/twoway_mapping.yaml]#" \
  -e 's#^\( *\)scope: "${env:DEMO_DYNAMICS365_URL}/.default"#&\n\1webhook_key: "${env:D365_WEBHOOK_KEY}"#' \
  "$src/tests/integration/twoway_crmbridge.yaml" >"$cfg"
grep -q D365_WEBHOOK_KEY "$cfg" || fail "the two-way configuration's Dynamics 365 auth has changed"

serve() { start_serve "$bin" "$cfg" "$work" --every 1h || fail "serve did not start"; }
runs_done() { serve_runs "$work"; }
wait_runs() { wait_serve_runs "$work" "$1" || fail "run $1 did not finish"; }
# grep reads the whole dump: with -q it leaves at the first match, and under pipefail curl's
# SIGPIPE would fail the check.
in_hubspot() { curl -s "$DEMO_HUBSPOT_URL/__admin/dump" | grep -F "$1" >/dev/null; }
wait_in_hubspot() {  # wait_in_hubspot TEXT WHAT: until TEXT is in HubSpot, up to 30 s
  for _ in $(seq 1 300); do in_hubspot "$1" && return 0; sleep 0.1; done
  fail "$2"
}
d365_token=$(curl -sS -X POST "$DEMO_DYNAMICS365_URL/tenant/oauth2/v2.0/token" \
  --data-urlencode grant_type=client_credentials --data-urlencode "client_id=$D365_CLIENT_ID" \
  --data-urlencode "client_secret=$D365_CLIENT_SECRET" \
  --data-urlencode "scope=$DEMO_DYNAMICS365_URL/.default" |
  sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$d365_token" ] || fail "the Dynamics 365 mock gave no access token"
d365() { curl -sf -H "Authorization: Bearer $d365_token" -H 'Content-Type: application/json' "$@"; }
rename() {  # rename ID NAME: the account's name, changed through the Web API
  d365 -X PATCH -H 'If-Match: *' "$DEMO_DYNAMICS365_URL/api/data/v9.2/accounts($1)" \
    -d "{\"name\":\"$2\"}" >/dev/null || fail "PATCH account $1"
}

# context FILE MESSAGE ID: the RemoteExecutionContext of an asynchronous step on an account.
context() {
  local op
  op=$(printf '%08x-%04x-4%03x-8%03x-%012x' $RANDOM$RANDOM $RANDOM $((RANDOM % 4096)) \
       $((RANDOM % 4096)) $RANDOM$RANDOM)
  printf '{"BusinessUnitId":"5d5c2f1a-0000-4000-8000-00000000b001","CorrelationId":"%s","Depth":1,"InputParameters":[{"key":"Target","value":{"__type":"Entity:http:\\/\\/schemas.microsoft.com\\/xrm\\/2011\\/Contracts","Attributes":[],"Id":"%s","LogicalName":"account"}}],"IsolationMode":1,"MessageName":"%s","Mode":1,"OperationCreatedOn":"\\/Date(%s+0000)\\/","OperationId":"%s","OrganizationName":"crmbmock","OutputParameters":[],"PostEntityImages":[],"PreEntityImages":[],"PrimaryEntityId":"%s","PrimaryEntityName":"account","RequestId":null,"SecondaryEntityName":"none","Stage":40}' \
    "$op" "$3" "$2" "$(date +%s%3N)" "$op" "$3" >"$1"
}
# deliver FILE [QUERY [HEADER]]: POSTs FILE as Dataverse calls a webhook; prints the HTTP status.
deliver() {
  local args=(-s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json'
              -H 'x-ms-dynamics-organization: crmbmock' --data-binary "@$1")
  [ -n "${3:-}" ] && args+=(-H "$3")
  curl "${args[@]}" "$url/webhooks/dynamics365${2-?code=$key_encoded}"
}

serve
wait_runs 1
account=$(d365 "$DEMO_DYNAMICS365_URL/api/data/v9.2/accounts?\$select=accountid,name&\$top=1" |
          sed -n 's/.*"accountid":"\([0-9a-f-]*\)".*/\1/p')
[ -n "$account" ] || fail "no account in the Dynamics 365 mock"

# An account is renamed in Dynamics 365; the schedule would not see it for an hour.
title="Renamed by webhook $RANDOM$RANDOM"
rename "$account" "$title"
sleep 1
in_hubspot "$title" && fail "the change reached HubSpot before any webhook"

# Deliveries without the endpoint's key are refused and change nothing.
context "$work/update.json" Update "$account"
[ "$(deliver "$work/update.json" '?code=not-the-key')" = 401 ] || fail "a wrong key was not refused"
[ "$(deliver "$work/update.json" '')" = 401 ] || fail "a delivery without a key was not refused"
[ "$(deliver "$work/update.json" '' 'x-functions-key: not-the-key')" = 401 ] ||
  fail "a wrong key in the header was not refused"
printf '{"MessageName":' >"$work/broken.json"
[ "$(deliver "$work/broken.json")" = 400 ] || fail "a malformed context was not refused with 400"
sleep 1
[ "$(runs_done)" -eq 1 ] || fail "a refused delivery started a run"
in_hubspot "$title" && fail "a refused delivery moved the change"
grep -q "$D365_WEBHOOK_KEY\|$key_encoded" "$work/serve.log" && fail "the webhook key was logged"

# The delivery with the key: 200, and the change reaches HubSpot in seconds.
[ "$(deliver "$work/update.json")" = 200 ] || fail "a delivery with the key was refused"
wait_in_hubspot "$title" "the announced change did not reach HubSpot"
wait_runs 2
grep -q 'reading dynamics365 accounts (company): 1 announced record' "$work/serve.log" ||
  fail "the announced account was not read alone, by id"
"$bin/crmbridge" --config "$cfg" status --json | grep '"webhook_events_pending": 0' >/dev/null ||
  fail "the read change is still pending"
# The same execution delivered again (Dataverse retries a 502/503/504): known, no new run. The key
# in the header (an HttpHeader registration) is taken as well.
[ "$(deliver "$work/update.json" '' "x-functions-key: $D365_WEBHOOK_KEY")" = 200 ] ||
  fail "a repeated delivery was refused"
sleep 1
[ "$(runs_done)" -eq 2 ] || fail "a repeated delivery started a run"
grep -q 'webhook for dynamics365: 1 change(s) announced, 0 new' "$work/serve.log" ||
  fail "the repeat was not recognised"

# The Dynamics 365 mock calls the endpoint itself now, as a registered webhook with asynchronous
# Update steps does: each call twice, the operation dated 6 minutes back. A renamed account still
# reaches HubSpot, and the second call of each execution starts nothing.
curl -sf -X POST "$DEMO_DYNAMICS365_URL/__admin/webhooks" -d "{\"url\":\"$url/webhooks/dynamics365\",
  \"key\":\"$D365_WEBHOOK_KEY\",\"faults\":[\"duplicate\",\"late\"],\"retry_ms\":100}" >/dev/null ||
  fail "could not register the webhook on the Dynamics 365 mock"
title2="Called by the mock $RANDOM$RANDOM"
rename "$account" "$title2"
wait_in_hubspot "$title2" "the mock's webhook call did not bring the change to HubSpot"
stats=$(curl -s "$DEMO_DYNAMICS365_URL/__admin/webhooks")
grep -q '"delivered":[1-9]' <<<"$stats" || fail "no webhook call landed: $stats"
[ "$(grep -c 'webhook for dynamics365: 1 change(s) announced, 0 new' "$work/serve.log")" -ge 2 ] ||
  fail "the mock's duplicate call was not recognised"

# A call with another key is refused 401; Dataverse does not retry a 401, so the change waits for
# the schedule and no run starts.
wait_runs 3
sleep 1
runs=$(runs_done)
curl -sf -X POST "$DEMO_DYNAMICS365_URL/__admin/webhooks" -d "{\"url\":\"$url/webhooks/dynamics365\",
  \"key\":\"$D365_WEBHOOK_KEY\",\"faults\":[\"badkey\"],\"retry_ms\":100}" >/dev/null ||
  fail "could not register the webhook on the Dynamics 365 mock"
title3="Called with another key $RANDOM$RANDOM"
rename "$account" "$title3"
for _ in $(seq 1 50); do
  grep -q '"given_up":[1-9]' <<<"$(curl -s "$DEMO_DYNAMICS365_URL/__admin/webhooks")" && break
  sleep 0.1
done
stats=$(curl -s "$DEMO_DYNAMICS365_URL/__admin/webhooks")
grep -q '"given_up":[1-9]' <<<"$stats" || fail "the call with another key was not refused: $stats"
sleep 1
[ "$(runs_done)" -eq "$runs" ] || fail "a call with another key started a run"
in_hubspot "$title3" && fail "a call with another key moved the change"

kill -TERM "$serve_pid"
rc=0
wait "$serve_pid" || rc=$?
serve_pid=""
[ "$rc" -eq 0 ] || fail "serve exited $rc on SIGTERM"
echo "serve: Dynamics 365 webhook changes moved in seconds; keyless and repeated calls changed nothing"
