#!/usr/bin/env bash
# Stage history on day one, through the binaries: HubSpot's seeded tickets have been in their
# pipeline for weeks (the mock keeps each ticket's hs_pipeline_stage history), and the first sync
# imports it, so `crmbridge report onboarding` shows real days in stage at once: every onboarding's
# history starts weeks ago and is marked imported, and a second sync adds nothing to it. When
# HubSpot refuses the history read, the sync goes on and the history starts now. Dynamics 365's
# opportunities, as a source, bring theirs from the audit history, or start now without auditing.
#   usage: stage_history_test.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1
src=$(cd "$2" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-history.XXXXXX")
source "$(dirname "$0")/crm_mocks.sh"
cleanup() { stop_crm_mocks; rm -rf "$work"; }
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -5 "$work"/*.log >&2 2>/dev/null || true
  exit 1
}
command -v node >/dev/null || fail "node is required (scripts/setup.sh installs it)"
export HUBSPOT_TOKEN=pat-history D365_CLIENT_ID=history-client D365_CLIENT_SECRET=history-secret
export TOTANGO_TOKEN=history-totango PORTAL_TOKEN=history-portal
size=10
sed -e "s#\.\./\.\./mappings/#$src/mappings/#g" "$src/examples/demo/crmbridge.yaml" >"$work/crmbridge.yaml"

# What the report says of each onboarding under config $1 (default the demo's):
# "<imported first move>|<days since it>|<moves>|<stage>".
histories() {
  "$bin/crmbridge" --config "${1:-$work/crmbridge.yaml}" report onboarding --all --json |
    node -e '
      const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
      for (const o of r.onboardings) {
        const first = o.history[0] || {};
        const days = first.entered ? Math.floor((Date.now() - Date.parse(first.entered)) / 86400000) : -1;
        console.log(`${o.canonical_id}|${first.imported}|${days}|${o.history.length}|${o.stage}`);
      }'
}

start_crm_mocks "$bin" "$work" --seed 5 --size "$size" --seed-only hubspot portal || fail "no mocks"
export CRMBRIDGE_STATE="$work/state.db"
"$bin/crmbridge" --config "$work/crmbridge.yaml" --log-level info sync >"$work/sync.out" 2>"$work/sync.log" ||
  fail "the first sync exited $?"
grep -q "hubspot: imported [0-9]* earlier stage move(s) of $size new tickets" "$work/sync.log" ||
  fail "the sync did not say it imported the tickets' stage history"
histories >"$work/first.txt"
[ "$(wc -l <"$work/first.txt")" -eq "$size" ] || fail "the report lists $(wc -l <"$work/first.txt") of $size onboardings"
while IFS='|' read -r id imported days moves stage; do
  [ "$imported" = true ] || fail "onboarding $id's history is not marked imported"
  [ "$days" -ge 19 ] || fail "onboarding $id's history starts $days days ago, not weeks ago"
done <"$work/first.txt"
"$bin/crmbridge" --config "$work/crmbridge.yaml" report onboarding >"$work/report.txt" ||
  fail "report onboarding failed"
grep -Eq "[1-9][0-9]* stuck" "$work/report.txt" || fail "no onboarding is stuck: $(head -3 "$work/report.txt")"
"$bin/crmbridge" --config "$work/crmbridge.yaml" sync >"$work/again.out" 2>"$work/again.log" ||
  fail "the second sync exited $?"
histories >"$work/second.txt"
diff "$work/first.txt" "$work/second.txt" >/dev/null || fail "a second sync changed the stage history"
stop_crm_mocks

# HubSpot refuses the history read: the onboardings sync all the same, their history from now.
rm -f "$work/state.db"*
start_crm_mocks "$bin" "$work" --seed 5 --size "$size" --seed-only hubspot portal \
  --fault "hubspot:POST /crm/v3/objects/tickets/batch/read status=403" || fail "no mocks"
"$bin/crmbridge" --config "$work/crmbridge.yaml" --log-level info sync >"$work/refused.out" 2>"$work/refused.log" ||
  fail "a sync whose history read was refused exited $?"
grep -q "stage history of $size new tickets could not be read; it starts now" "$work/refused.log" ||
  fail "the refused history read was not reported"
histories >"$work/refused.txt"
while IFS='|' read -r id imported days moves stage; do
  [ "$imported" = false ] && [ "$days" -eq 0 ] || fail "onboarding $id: imported=$imported, $days days"
done <"$work/refused.txt"
stop_crm_mocks

# Dynamics 365 as the onboardings' source: their stage history comes from its audit history (the
# mock's seeded opportunities moved through their stages over the past weeks); with auditing off
# for opportunities, it starts now.
cat >"$work/d365-mapping.yaml" <<'YAML'
version: 1
entities:
  onboarding:
    fields:
      title: {type: string}
      stage: {type: string, values: [new, onboarding, follow_up, inactive, closed], end_values: [closed]}
tables:
  d365_stage:
    - {native: 100000000, canonical: new}
    - {native: 100000001, canonical: onboarding}
    - {native: 100000002, canonical: follow_up}
    - {native: 100000004, canonical: inactive}
    - {native: 100000003, canonical: closed}
systems:
  dynamics365:
    onboarding:
      object: opportunities
      fields:
        title: {native: name, direction: in}
        stage: {native: crmb_onboardingstage, direction: in, transforms: [{table: d365_stage}]}
YAML
cat >"$work/d365.yaml" <<'YAML'
state: "${env:CRMBRIDGE_STATE}"
mappings: [d365-mapping.yaml]
systems:
  dynamics365:
    kind: dynamics365
    base_url: "${env:DEMO_DYNAMICS365_URL}"
    auth:
      token_url: "${env:DEMO_DYNAMICS365_URL}/tenant/oauth2/v2.0/token"
      client_id: "${env:D365_CLIENT_ID}"
      client_secret: "${env:D365_CLIENT_SECRET}"
      scope: "${env:DEMO_DYNAMICS365_URL}/.default"
YAML
rm -f "$work/state.db"*
start_crm_mocks "$bin" "$work" --seed 6 --size "$size" --seed-only dynamics365 || fail "no mocks"
"$bin/crmbridge" --config "$work/d365.yaml" --log-level info sync >"$work/d365.out" 2>"$work/d365.log" ||
  fail "the Dynamics 365 sync exited $?"
grep -q "dynamics365: imported [1-9][0-9]* earlier stage move(s) of $size new opportunities" "$work/d365.log" ||
  fail "the sync did not import the opportunities' audit history: $(grep -i 'stage\|audit' "$work/d365.log" | head -3)"
histories "$work/d365.yaml" >"$work/d365.txt"
[ "$(wc -l <"$work/d365.txt")" -eq "$size" ] || fail "the report lists $(wc -l <"$work/d365.txt") of $size onboardings"
while IFS='|' read -r id imported days moves stage; do
  [ "$imported" = true ] || fail "onboarding $id's history is not marked imported"
  [ "$days" -ge 19 ] || fail "onboarding $id's history starts $days days ago, not weeks ago"
done <"$work/d365.txt"
grep -q '|[2-9]|' "$work/d365.txt" || fail "no onboarding moved through stages: $(cat "$work/d365.txt")"
stop_crm_mocks
rm -f "$work/state.db"*
start_crm_mocks "$bin" "$work" --seed 6 --size "$size" --seed-only dynamics365 || fail "no mocks"
curl -sf -X POST -H 'Content-Type: application/json' -d '{"table": "opportunity", "enabled": false}' \
  "$DEMO_DYNAMICS365_URL/__admin/auditing" >/dev/null || fail "the mock did not turn auditing off"
"$bin/crmbridge" --config "$work/d365.yaml" --log-level info sync >"$work/unaudited.out" 2>"$work/unaudited.log" ||
  fail "the Dynamics 365 sync without auditing exited $?"
grep -q "auditing is off for table opportunity: the history of opportunities.crmb_onboardingstage starts now" \
  "$work/unaudited.log" || fail "the sync did not say auditing is off"
histories "$work/d365.yaml" >"$work/unaudited.txt"
while IFS='|' read -r id imported days moves stage; do
  [ "$imported" = false ] && [ "$moves" -eq 1 ] || fail "onboarding $id without auditing: imported=$imported, $moves moves"
done <"$work/unaudited.txt"
echo "PASS: $size onboardings' stage history imported ($(cut -d'|' -f3 "$work/first.txt" | sort -n | head -1)-$(cut -d'|' -f3 "$work/first.txt" | sort -n | tail -1) days back); a refused history read starts it now; Dynamics 365's from its audit history, from now without auditing"
