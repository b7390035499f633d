#!/usr/bin/env bash
# Change-to-target latency of `crmbridge serve`: ticket subjects changed in the HubSpot mock at a
# steady rate, each announced by the mock's signed webhook deliveries, timed until it shows in the
# Dynamics 365 mock (bench/webhook_latency.mjs does the changing and the watching). The mocks
# enforce the vendors' rate limits; the changes are made as a user makes them in HubSpot's pages
# (the mock's user-edit route), so they spend no app's API budget. The schedule is an hour: only
# webhooks can explain a change arriving.
#
#   bench/webhook_latency.sh [--rates 1,10,100] [--seconds 20] [--size 100]
#     (BUILD_DIR=build-bench; --size: companies seeded, each with one onboarding ticket)
#
# Prints a line per rate and a JSON line of all; exits 1 when a change was lost (its ticket's last
# subject never reached Dynamics 365) or a change could not be made.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rates=1,10,100
seconds=20
size=100
while [ "$#" -gt 0 ]; do
  case $1 in
    --rates) rates=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    *) sed -n '2,13s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
  esac
done
BUILD_DIR=${BUILD_DIR:-build-bench}
case $BUILD_DIR in /*) bin=$BUILD_DIR/bin ;; *) bin=$root/$BUILD_DIR/bin ;; esac
for b in crmbridge crm-mocks; do
  [ -x "$bin/$b" ] || { echo "missing $bin/$b: cmake --build $BUILD_DIR --target crmbridge crm-mocks" >&2; exit 1; }
done
for tool in node curl; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-latency.XXXXXX")
source "$root/tests/integration/crm_mocks.sh"
source "$root/tests/integration/serve.sh"
cleanup() { stop_serve; stop_crm_mocks; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "webhook_latency: $*" >&2; tail -5 "$work/serve.log" >&2 2>/dev/null || true; exit 1; }

export HUBSPOT_TOKEN=pat-mock-hubspot D365_CLIENT_ID=latency-client D365_CLIENT_SECRET=latency-secret
export TOTANGO_TOKEN=latency-totango PORTAL_TOKEN=latency-portal
export HUBSPOT_CLIENT_SECRET=latency-webhook-secret
start_crm_mocks "$bin" "$work" --seed 11 --size "$size" --seed-only hubspot || fail "the mocks did not start"
export CRMBRIDGE_STATE="$work/state.db"
cfg="$work/crmbridge.yaml"
sed -e "s#\.\./\.\./mappings/#$root/mappings/#g" \
  -e 's#auth: {token: "${env:HUBSPOT_TOKEN}"}#auth: {token: "${env:HUBSPOT_TOKEN}", client_secret: "${env:HUBSPOT_CLIENT_SECRET}"}#' \
  "$root/examples/demo/crmbridge.yaml" >"$cfg"
grep -q HUBSPOT_CLIENT_SECRET "$cfg" || fail "the demo configuration's HubSpot auth line has changed"

start_serve "$bin" "$cfg" "$work" --every 1h || fail "serve did not start"
# The first run copies every seeded onboarding into Dynamics 365.
wait_serve_runs "$work" 1 || fail "the first run did not finish"

tickets=$(curl -sf -H "Authorization: Bearer $HUBSPOT_TOKEN" \
  "$DEMO_HUBSPOT_URL/crm/v3/objects/tickets?limit=100&properties=subject" |
  grep -o '"id":"[0-9]*"' | grep -o '[0-9]*' | tr '\n' ' ')
[ -n "$tickets" ] || fail "no ticket in the HubSpot mock"
curl -sf -X POST "$DEMO_HUBSPOT_URL/__admin/webhooks" \
  -d "{\"url\":\"$url/webhooks/hubspot\",\"secret\":\"$HUBSPOT_CLIENT_SECRET\",\"retry_ms\":200}" \
  >/dev/null || fail "could not subscribe to the HubSpot mock's webhooks"

echo "crmbridge serve, change-to-target latency (HubSpot ticket subject -> Dynamics 365), mocks enforcing limits"
echo "  tickets changed in turn: $(wc -w <<<"$tickets"); $seconds s per rate; command: $0 --rates $rates --seconds $seconds --size $size"
# The HubSpot API calls crmbridge makes, from the mock's own count per route.
hubspot_calls() {
  curl -s "$DEMO_HUBSPOT_URL/__admin/stats" | grep -o '"[A-Z]* /crm[^"]*":[0-9]*' |
    awk -F'":' -v want="$1" '$1 ~ want { n += $2 } END { print n + 0 }'
}
calls_before=$(hubspot_calls .)
search_before=$(hubspot_calls /search)
all=()
status=0
for rate in ${rates//,/ }; do
  # shellcheck disable=SC2086
  line=$(node "$root/bench/webhook_latency.mjs" "$rate" "$seconds" $tickets) ||
    fail "the driver failed at $rate changes/s"
  all+=("$line")
  field() { sed -n "s/.*\"$1\":\([0-9.e-]*\).*/\1/p" <<<"$line"; }
  printf '  %5s changes/s: %5s changes, %5s arrived, %4s superseded, %3s lost, %3s not made; lag p50 %ss p99 %ss max %ss\n' \
    "$rate" "$(field changes)" "$(field arrived)" "$(field superseded)" "$(field lost)" \
    "$(field failed_patches)" "$(field p50_s)" "$(field p99_s)" "$(field max_s)"
  [ "$(field lost)" = 0 ] && [ "$(field failed_patches)" = 0 ] || status=1
done
echo "  HubSpot API calls while the changes came: $(( $(hubspot_calls .) - calls_before )), of which searches $(( $(hubspot_calls /search) - search_before ))"
runs=$(grep -c 'serve: run [0-9]* wrote' "$work/serve.log" || true)
limited=$(curl -s "$url/metrics" | sed -n 's/^crmbridge_rate_limited_total{system="\([a-z0-9]*\)"} \([0-9]*\)/\1=\2/p' | tr '\n' ' ')
echo "  serve made $runs runs; 429s seen: $limited"
(IFS=,; echo "JSON {\"runs\":$runs,\"rates\":[${all[*]}]}")
[ "$status" -eq 0 ] || fail "a change was lost or could not be made"
