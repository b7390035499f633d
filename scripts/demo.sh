#!/usr/bin/env bash
# Sets up crmbridge, starts the bundled mock servers with onboarding data seeded in HubSpot and the
# portal (Dynamics 365 and Totango start empty), and runs real syncs against them with the shipped
# onboarding mapping:
#   1. sync   - HubSpot companies, contacts, onboarding tickets, notes and tasks become Dynamics
#               365 accounts, contacts, opportunities, notes and tasks; each ticket becomes a
#               Totango account with its contacts as users, its notes as touchpoints and its
#               tasks as Totango tasks (the first account is shown)
#   2. sync   - again at once: nothing changed, so nothing is written
#   3. portal - portal access is turned on in Dynamics 365 for one customer; a sync creates its
#               portal users and grants, and `crmbridge audit portal` lists them
#   4. status - what the state store now holds
#   5. sync   - a second scenario: HubSpot and Dynamics 365 both hold customers before they are
#               connected, some of them the same; one sync links those (by website domain and
#               email) instead of duplicating them, and creates in Dynamics 365 only what it lacks

# --help: the comment above (to its first blank line), and nothing run.
case "${1:-}" in -h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;; esac
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
export PORTAL_TOKEN=portal-mock-token

# Starts the mock servers with these crm-mocks options (the seed and size come from SEED and SIZE)
# and exports the base URLs examples/demo/crmbridge.yaml reads.
start_mocks() {
  rm -f "$work/mocks.json"
  "$BUILD_DIR/bin/crm-mocks" --seed "${SEED:-42}" --size "${SIZE:-40}" \
    --hubspot-token "$HUBSPOT_TOKEN" \
    --dynamics365-client-id "$D365_CLIENT_ID" --dynamics365-client-secret "$D365_CLIENT_SECRET" \
    --totango-token "$TOTANGO_TOKEN" --portal-token "$PORTAL_TOKEN" "$@" \
    >"$work/mocks.json" 2>"$work/mocks.log" &
  mocks_pid=$!
  for _ in $(seq 1 100); do
    [ -s "$work/mocks.json" ] && break
    kill -0 "$mocks_pid" 2>/dev/null || { cat "$work/mocks.log" >&2; exit 1; }
    sleep 0.1
  done
  local line
  line=$(head -n1 "$work/mocks.json")
  export DEMO_HUBSPOT_URL=$(sed -n 's/.*"hubspot":"\([^"]*\)".*/\1/p' <<<"$line")
  export DEMO_DYNAMICS365_URL=$(sed -n 's/.*"dynamics365":"\([^"]*\)".*/\1/p' <<<"$line")
  export DEMO_TOTANGO_URL=$(sed -n 's/.*"totango":"\([^"]*\)".*/\1/p' <<<"$line")
  export DEMO_PORTAL_URL=$(sed -n 's/.*"portal":"\([^"]*\)".*/\1/p' <<<"$line")
  echo "Mock servers: HubSpot at $DEMO_HUBSPOT_URL, Dynamics 365 at $DEMO_DYNAMICS365_URL," \
    "Totango at $DEMO_TOTANGO_URL, portal at $DEMO_PORTAL_URL"
}
stop_mocks() {
  kill "$mocks_pid" 2>/dev/null && wait "$mocks_pid" 2>/dev/null || true
  mocks_pid=""
}
start_mocks --seed-only hubspot portal

export CRMBRIDGE_STATE="$work/state.db"
cfg=examples/demo/crmbridge.yaml
bin="$BUILD_DIR/bin/crmbridge"

echo
echo "== crmbridge sync (first run: HubSpot onboarding tickets -> Dynamics 365 opportunities and Totango accounts)"
"$bin" --config "$cfg" --log-level warn sync --verbose
echo
echo "== In Totango, the first onboarding's account: its people, notes and to-dos"
curl -s "$DEMO_TOTANGO_URL/__admin/dump" | node -e '
  let t = ""; process.stdin.setEncoding("utf8");
  process.stdin.on("data", (c) => (t += c)).on("end", () => {
    const d = JSON.parse(t), a = d.accounts[0];
    if (!a) return console.log("  (no account)");
    console.log(`  account ${a.id}: ${a.display_name}, Onboarding Stage ${a.attributes["Onboarding Stage"]}`);
    for (const u of d.users.filter((u) => u.account_id === a.id))
      console.log(`    user        ${u.name} <${u.id}>, Contact ${u.attributes.Contact}`);
    for (const n of d.touchpoints.filter((n) => n.account_id === a.id))
      console.log(`    touchpoint  ${n.subject}: ${n.content} (Flow ${n.activity_type_id}, not synced on)`);
    for (const k of d.tasks.filter((k) => k.account_id === a.id))
      console.log(`    task        ${k.title}, due ${k.due_date} (${k.status})`);
    console.log(`  in all: ${d.accounts.length} accounts, ${d.users.length} users, ` +
                `${d.touchpoints.length} touchpoints, ${d.tasks.length} tasks`);
  });'
echo
echo "== crmbridge sync (second run, nothing changed)"
"$bin" --config "$cfg" --log-level warn sync
echo
echo "== In Dynamics 365, the onboarding team turns portal access on for the first customer"
# As a Dynamics 365 user would: the account's "activate portal access", and for each of its
# contacts "portal access", a portal email and the main property (a portal property's external_id).
d365_token=$(curl -s -X POST "$DEMO_DYNAMICS365_URL/tenant/oauth2/v2.0/token" \
  --data-urlencode grant_type=client_credentials --data-urlencode "client_id=$D365_CLIENT_ID" \
  --data-urlencode "client_secret=$D365_CLIENT_SECRET" --data-urlencode "scope=$DEMO_DYNAMICS365_URL/.default" |
  sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
if [ -z "$d365_token" ]; then
  echo "demo: the Dynamics 365 mock at $DEMO_DYNAMICS365_URL gave no access token" >&2
  exit 1
fi
patch_d365() {
  # --fail-with-body: a refused change stops the demo with Dynamics 365's answer.
  curl -sS --fail-with-body -X PATCH "$DEMO_DYNAMICS365_URL/api/data/v9.2/$1" -H "Authorization: Bearer $d365_token" \
    -H "If-Match: *" -H "Content-Type: application/json" --data "$2"
}
curl -s "$DEMO_DYNAMICS365_URL/__admin/dump" | node -e '
  let t = ""; process.stdin.setEncoding("utf8");
  process.stdin.on("data", (c) => (t += c)).on("end", () => {
    const d = JSON.parse(t), account = d.accounts[0];
    console.log(`accounts(${account.accountid})`);
    for (const c of d.contacts)
      if (c._parentcustomerid_value === account.accountid) console.log(`contacts(${c.contactid}) ${c.emailaddress1}`);
  });' >"$work/portal-targets.txt"
while read -r row email; do
  if [ -z "$email" ]; then
    patch_d365 "$row" '{"crmb_activateportalaccess": true}'
  else
    patch_d365 "$row" "{\"crmb_portalaccess\": true, \"crmb_portalemail\": \"$email\", \"crmb_mainproperty\": \"seed-prop-1\"}"
    echo "  $email: portal access yes, main property seed-prop-1"
  fi
done <"$work/portal-targets.txt"
echo
echo "== crmbridge sync (third run: the portal users are created and granted their property)"
"$bin" --config "$cfg" --log-level warn sync
echo
echo "== crmbridge audit portal"
"$bin" --config "$cfg" --log-level warn audit portal
echo
echo "== crmbridge status"
"$bin" --config "$cfg" --log-level warn status
echo
echo "== Second scenario: HubSpot and Dynamics 365 both hold customers before they are connected"
stop_mocks
start_mocks --seed-only hubspot dynamics365 portal --overlap "$(( ${SIZE:-40} / 2 ))"
echo "   Dynamics 365 holds its own accounts, and $(( ${SIZE:-40} / 2 )) of HubSpot's customers" \
  "(the same website domain, the same contact emails)"
export CRMBRIDGE_STATE="$work/state-both.db"
echo
echo "== crmbridge sync (first run: the same customers are matched and linked, not duplicated)"
"$bin" --config "$cfg" --log-level warn sync
