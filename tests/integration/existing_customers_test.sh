#!/usr/bin/env bash
# Connecting two systems that already hold customers, through the binaries: HubSpot and Dynamics
# 365 are seeded with customers that partly overlap (crm-mocks --overlap: the same website domain,
# the same contact emails, typed differently) and partly do not, and the demo configuration's first
# sync links what is the same customer and creates only what the mapping says. Checked:
# every customer both held is linked once (its Dynamics 365 account updated, never duplicated, its
# website kept), HubSpot's customers missing in Dynamics 365 are created there, nothing made in
# Dynamics 365 is created in HubSpot (create: false), no record arrives empty, the onboardings sit on
# their customers' accounts, and a second sync writes nothing.
#   usage: existing_customers_test.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1
src=$(cd "$2" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-existing.XXXXXX")
source "$(dirname "$0")/crm_mocks.sh"
cleanup() { stop_crm_mocks; rm -rf "$work"; }
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -5 "$work"/*.log >&2 2>/dev/null || true
  exit 1
}
command -v node >/dev/null || fail "node is required (scripts/setup.sh installs it)"

export HUBSPOT_TOKEN=pat-existing D365_CLIENT_ID=existing-client D365_CLIENT_SECRET=existing-secret
export TOTANGO_TOKEN=existing-totango PORTAL_TOKEN=existing-portal
size=12 overlap=6
start_crm_mocks "$bin" "$work" --seed 7 --size "$size" --overlap "$overlap" \
  --seed-only hubspot dynamics365 portal || fail "no mocks"
sed -e "s#\.\./\.\./mappings/#$src/mappings/#g" "$src/examples/demo/crmbridge.yaml" >"$work/crmbridge.yaml"
export CRMBRIDGE_STATE="$work/state.db"
curl -s "$DEMO_DYNAMICS365_URL/__admin/dump" >"$work/d365-before.json"

set +e
"$bin/crmbridge" --config "$work/crmbridge.yaml" --log-level info sync >"$work/sync.out" 2>"$work/sync.log"
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "the first sync exited $rc: $(tail -3 "$work/sync.log")"
grep -Eq "dynamics365 +company .*matched $overlap[,)]" "$work/sync.out" ||
  fail "the summary does not say $overlap companies were matched: $(cat "$work/sync.out")"
grep -Eq "hubspot +company .*not created here: " "$work/sync.out" ||
  fail "the summary does not say which companies HubSpot does not receive: $(cat "$work/sync.out")"
# Contacts Dynamics 365 alone holds take part in no onboarding, so Totango has no account for
# them: refused there, counted, and each named in the log.
grep -Eq "totango +contact .*\(rejected: [1-9]" "$work/sync.out" ||
  fail "the summary does not count the contacts Totango cannot take: $(cat "$work/sync.out")"
grep -q "cannot be mapped to totango users: .*contact.onboarding: a value is required" "$work/sync.log" ||
  fail "the log does not say why a contact is not sent to Totango"
curl -s "$DEMO_DYNAMICS365_URL/__admin/dump" >"$work/d365-after.json"
curl -s "$DEMO_HUBSPOT_URL/__admin/dump" >"$work/hubspot-after.json"
# HubSpot's owners, active and archived: the check expects each Dynamics 365 record owned by the
# user with its HubSpot owner's email, or by the demo's default owner when there is none enabled.
for archived in false true; do
  curl -sf -H "Authorization: Bearer $HUBSPOT_TOKEN" \
    "$DEMO_HUBSPOT_URL/crm/v3/owners?limit=500&archived=$archived" >"$work/owners-$archived.json" ||
    fail "could not list HubSpot's owners"
done
node -e 'const fs = require("fs");
  console.log(JSON.stringify(process.argv.slice(1).flatMap((f) => JSON.parse(fs.readFileSync(f, "utf8")).results)))' \
  "$work/owners-false.json" "$work/owners-true.json" >"$work/owners.json"
default_owner=$(sed -n 's/.*default_owner: *\([^ }]*\).*/\1/p' "$work/crmbridge.yaml")
[ -n "$default_owner" ] || fail "the demo configuration names no default owner"
node "$src/tests/integration/existing_customers_check.mjs" "$work/d365-before.json" \
  "$work/d365-after.json" "$work/hubspot-after.json" "$work/owners.json" "$overlap" \
  "$default_owner" >"$work/check.txt" ||
  fail "the end-state check did not run: $(cat "$work/check.txt")"
grep -q '^ok' "$work/check.txt" || fail "$(cat "$work/check.txt")"

"$bin/crmbridge" --config "$work/crmbridge.yaml" sync >"$work/again.out" 2>"$work/again.log" ||
  fail "the second sync failed: $(tail -3 "$work/again.log")"
grep -q "Nothing to write" "$work/again.out" || fail "the second sync wrote: $(cat "$work/again.out")"
echo "PASS: $(cat "$work/check.txt")"
