#!/usr/bin/env bash
# Sets up crmbridge, starts the bundled mock servers with onboarding data seeded in HubSpot (and
# Dynamics 365; Totango starts empty), and runs real syncs against them with the shipped
# onboarding mapping:
#   1. sync   - HubSpot onboarding tickets become Dynamics 365 opportunities and Totango accounts
#   2. sync   - again at once: nothing changed, so nothing is written
#   3. status - what the state store now holds
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
scripts/setup.sh >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-demo.XXXXXX")
mocks_pid=""
cleanup() {
  [ -n "$mocks_pid" ] && kill "$mocks_pid" 2>/dev/null && wait "$mocks_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# The mocks accept these demo credentials; real deployments export their own.
export HUBSPOT_TOKEN=pat-mock-hubspot
export D365_CLIENT_ID=mock-client-id
export D365_CLIENT_SECRET=mock-client-secret
export TOTANGO_TOKEN=totango-mock-token

"$BUILD_DIR/bin/crm-mocks" --seed "${SEED:-42}" --size "${SIZE:-40}" \
  --hubspot-token "$HUBSPOT_TOKEN" \
  --dynamics365-client-id "$D365_CLIENT_ID" --dynamics365-client-secret "$D365_CLIENT_SECRET" \
  --totango-token "$TOTANGO_TOKEN" --seed-only hubspot \
  >"$work/mocks.json" 2>"$work/mocks.log" &
mocks_pid=$!
for _ in $(seq 1 100); do
  [ -s "$work/mocks.json" ] && break
  kill -0 "$mocks_pid" 2>/dev/null || { cat "$work/mocks.log" >&2; exit 1; }
  sleep 0.1
done
line=$(head -n1 "$work/mocks.json")
export DEMO_HUBSPOT_URL=$(sed -n 's/.*"hubspot":"\([^"]*\)".*/\1/p' <<<"$line")
export DEMO_DYNAMICS365_URL=$(sed -n 's/.*"dynamics365":"\([^"]*\)".*/\1/p' <<<"$line")
export DEMO_TOTANGO_URL=$(sed -n 's/.*"totango":"\([^"]*\)".*/\1/p' <<<"$line")
echo "Mock servers: HubSpot at $DEMO_HUBSPOT_URL, Dynamics 365 at $DEMO_DYNAMICS365_URL," \
  "Totango at $DEMO_TOTANGO_URL"

export CRMBRIDGE_STATE="$work/state.db"
cfg=examples/demo/crmbridge.yaml
bin="$BUILD_DIR/bin/crmbridge"

echo
echo "== crmbridge sync (first run: HubSpot onboarding tickets -> Dynamics 365 opportunities and Totango accounts)"
"$bin" --config "$cfg" --log-level warn sync --verbose
echo
echo "== crmbridge sync (second run, nothing changed)"
"$bin" --config "$cfg" --log-level warn sync
echo
echo "== crmbridge status"
"$bin" --config "$cfg" --log-level warn status
