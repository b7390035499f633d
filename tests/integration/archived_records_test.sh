#!/usr/bin/env bash
# Archived and restored HubSpot records, through the binaries. HubSpot's search never returns an
# archived record and archiving moves no modification time, so the sync sweeps the archived
# listing (GET ?archived=true): a ticket archived in HubSpot meets on_delete (here the onboarding
# is marked inactive everywhere) once, however often its archive is read again. Restored from the
# recycle bin (same id), the ticket is linked as before: no duplicate anywhere, and its mark is
# undone in Dynamics 365. The restore moves no modification time either, so a backfill reads it.
#   usage: archived_records_test.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1
src=$(cd "$2" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-archived.XXXXXX")
source "$(dirname "$0")/crm_mocks.sh"
cleanup() { stop_crm_mocks; rm -rf "$work"; }
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -5 "$work"/*.log >&2 2>/dev/null || true
  exit 1
}
command -v node >/dev/null || fail "node is required (scripts/setup.sh installs it)"
export HUBSPOT_TOKEN=pat-archived D365_CLIENT_ID=archived-client D365_CLIENT_SECRET=archived-secret
export TOTANGO_TOKEN=archived-totango PORTAL_TOKEN=archived-portal
size=6

# The shipped preset, with a deleted onboarding marked inactive everywhere, and tickets' archive
# swept on every run (by default at most every five minutes).
mkdir -p "$work/presets"
cp "$src"/mappings/presets/*.yaml "$work/presets/"
sed -i -e '/^  onboarding:$/a\    on_delete: {set: {stage: inactive}}' \
  -e 's/^        pipeline: "Order\/faktura" .*/&\n        archived_sweep_ms: 0/' "$work/presets/onboarding.yaml"
grep -q "archived_sweep_ms: 0" "$work/presets/onboarding.yaml" || fail "the preset was not edited"
sed -e "s#\.\./\.\./mappings/presets/#$work/presets/#g" "$src/examples/demo/crmbridge.yaml" >"$work/crmbridge.yaml"
export CRMBRIDGE_STATE="$work/state.db"
source "$(dirname "$0")/run_summary.sh"  # run, count, writes
# The Dynamics 365 opportunities: "<name>|<onboarding stage>" per line, sorted.
opportunities() {
  curl -sf "$DEMO_DYNAMICS365_URL/__admin/dump" | node -e '
    const d = JSON.parse(require("fs").readFileSync(0, "utf8"));
    console.log(d.opportunities.map(o => `${o.name}|${o.crmb_onboardingstage}`).sort().join("\n"))'
}

start_crm_mocks "$bin" "$work" --seed 9 --size "$size" --seed-only hubspot portal || fail "no mocks"
run first sync
opportunities >"$work/opportunities-first.txt"
[ "$(wc -l <"$work/opportunities-first.txt")" -eq "$size" ] || fail "$(wc -l <"$work/opportunities-first.txt") opportunities, not $size"

# A user archives one onboarding ticket in HubSpot (the API's DELETE archives).
read -r ticket subject < <(curl -sf "$DEMO_HUBSPOT_URL/__admin/dump" | node -e '
  const t = JSON.parse(require("fs").readFileSync(0, "utf8")).tickets.find(t => !t.archived);
  console.log(`${t.id} ${t.properties.subject.trim()}`)')
[ "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE -H "Authorization: Bearer $HUBSPOT_TOKEN" \
  "$DEMO_HUBSPOT_URL/crm/v3/objects/tickets/$ticket")" = 204 ] || fail "HubSpot did not archive ticket $ticket"
run archived sync
[ "$(count archived hubspot onboarding deletes_seen)" = 1 ] || fail "the archive was not seen: $(cat "$work/archived.json")"
grep -q "hubspot: tickets $ticket was deleted; marking onboarding" "$work/archived.log" ||
  fail "the sync did not say what the archive did"
opportunities >"$work/opportunities-marked.txt"
grep -qxF "$subject|100000004" "$work/opportunities-marked.txt" ||
  fail "$subject is not marked Closed (no start) in Dynamics 365: $(cat "$work/opportunities-marked.txt")"
[ "$(diff "$work/opportunities-first.txt" "$work/opportunities-marked.txt" | grep -c '^>')" = 1 ] ||
  fail "other opportunities changed: $(diff "$work/opportunities-first.txt" "$work/opportunities-marked.txt")"

# The archive read again, as every sweep lists it: no second delete, nothing written.
run again sync
[ "$(count again hubspot onboarding deletes_seen)" = 0 ] || fail "the archive was taken as a second delete"
[ "$(writes again)" = 0 ] || fail "a sync after the archive wrote $(writes again) records"

# Restored from the recycle bin: the same ticket, linked as before, its mark undone.
curl -sf -X POST -H "Content-Type: application/json" -d "{}" "$DEMO_HUBSPOT_URL/__admin/objects/tickets/$ticket/restore" >/dev/null ||
  fail "the mock did not restore ticket $ticket"
run restored backfill --system hubspot --entity onboarding
[ "$(count restored hubspot onboarding restored)" = 1 ] || fail "the restore was not seen: $(cat "$work/restored.json")"
grep -q "hubspot: tickets $ticket is back after its delete" "$work/restored.log" || fail "the restore was not logged"
opportunities >"$work/opportunities-restored.txt"
diff "$work/opportunities-first.txt" "$work/opportunities-restored.txt" >/dev/null ||
  fail "Dynamics 365 is not as before the archive: $(diff "$work/opportunities-first.txt" "$work/opportunities-restored.txt")"
tickets=$(curl -sf "$DEMO_HUBSPOT_URL/__admin/dump" | node -e '
  console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).tickets.filter(t => !t.archived).length)')
[ "$tickets" -eq "$size" ] || fail "HubSpot holds $tickets live tickets, not $size"
run settled sync
[ "$(writes settled)" = 0 ] || fail "a sync after the restore wrote $(writes settled) records"
echo "PASS: ticket $ticket archived (marked inactive in Dynamics 365, once) and restored (linked as before, mark undone); $size opportunities throughout"
