#!/usr/bin/env bash
# Merges, through the binaries. A user merges two duplicate companies in HubSpot (its merge
# endpoint makes a new record of the two): the next sync reads its hs_merged_object_ids, merges
# the two accounts in Dynamics 365 too (its Merge action: the absorbed account deactivated,
# pointing at its master, its contacts and opportunities re-parented), writes it to the audit
# trail, and the sync after it has nothing to write. Then two contacts merged in Dynamics 365 are
# merged in HubSpot.
#   usage: merged_records_test.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1
src=$(cd "$2" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-merged.XXXXXX")
source "$(dirname "$0")/crm_mocks.sh"
cleanup() { stop_crm_mocks; rm -rf "$work"; }
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -5 "$work"/*.log >&2 2>/dev/null || true
  exit 1
}
command -v node >/dev/null || fail "node is required (scripts/setup.sh installs it)"
export HUBSPOT_TOKEN=pat-merged D365_CLIENT_ID=merged-client D365_CLIENT_SECRET=merged-secret
export TOTANGO_TOKEN=merged-totango PORTAL_TOKEN=merged-portal
size=6
sed -e "s#\.\./\.\./mappings/#$src/mappings/#g" "$src/examples/demo/crmbridge.yaml" >"$work/crmbridge.yaml"
export CRMBRIDGE_STATE="$work/state.db"
source "$(dirname "$0")/run_summary.sh"  # run, count, writes
dump() { curl -sf "$1/__admin/dump"; }

start_crm_mocks "$bin" "$work" --seed 9 --size "$size" --seed-only hubspot portal || fail "no mocks"
run first sync

# --- Two HubSpot companies merged by a user ---
read -r kept absorbed kept_name absorbed_name < <(dump "$DEMO_HUBSPOT_URL" | node -e '
  const c = JSON.parse(require("fs").readFileSync(0, "utf8")).companies;
  console.log(`${c[0].id} ${c[1].id} ${encodeURIComponent(c[0].properties.name)} ${encodeURIComponent(c[1].properties.name)}`)')
accounts_by_name() {
  dump "$DEMO_DYNAMICS365_URL" | node -e '
    const d = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const want = process.argv.slice(1).map(decodeURIComponent);
    console.log(want.map(n => (d.accounts.find(a => a.name === n) || {}).accountid).join(" "))' "$@"
}
read -r kept_account absorbed_account < <(accounts_by_name "$kept_name" "$absorbed_name")
[ -n "$kept_account" ] && [ -n "$absorbed_account" ] || fail "the companies have no accounts in Dynamics 365"
status=$(curl -s -o "$work/merge.out" -w '%{http_code}' -X POST -H "Authorization: Bearer $HUBSPOT_TOKEN" \
  -H "Content-Type: application/json" -d "{\"primaryObjectId\":\"$kept\",\"objectIdToMerge\":\"$absorbed\"}" \
  "$DEMO_HUBSPOT_URL/crm/v3/objects/companies/merge")
[ "$status" = 200 ] || fail "HubSpot did not merge company $absorbed into $kept: $status $(cat "$work/merge.out")"

run merged sync
[ "$(count merged hubspot company merged)" = 1 ] || fail "the merge was not read: $(cat "$work/merged.json")"
[ "$(count merged dynamics365 company merged)" = 1 ] || fail "the accounts were not merged: $(cat "$work/merged.json")"
grep -q "hubspot: companies $absorbed was merged into [0-9]*: company" "$work/merged.log" || fail "the merge was not logged"
dump "$DEMO_DYNAMICS365_URL" | node -e '
  const d = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const [kept, absorbed, size] = process.argv.slice(1);
  const a = d.accounts.find(a => a.accountid === absorbed);
  const bad = [];
  if (!a || a.statecode !== 1 || a.merged !== true || a._masterid_value !== kept) bad.push("absorbed account: " + JSON.stringify(a));
  const active = d.accounts.filter(a => a.statecode === 0).length;
  if (active !== size - 1) bad.push(active + " active accounts, not " + (size - 1));
  for (const c of d.contacts) if (c._parentcustomerid_value === absorbed) bad.push("contact " + c.contactid + " still at the absorbed account");
  for (const o of d.opportunities) if (o._parentaccountid_value === absorbed) bad.push("opportunity " + o.opportunityid + " still at the absorbed account");
  if (bad.length) { console.error(bad.join("\n")); process.exit(1); }' "$kept_account" "$absorbed_account" "$size" ||
  fail "Dynamics 365 does not show the merge"
"$bin/crmbridge" --config "$work/crmbridge.yaml" audit merges >"$work/audit.txt" 2>"$work/audit.log" ||
  fail "crmbridge audit merges failed"
grep -q "hubspot  company $absorbed merged into [0-9]*  record" "$work/audit.txt" ||
  fail "the audit trail lacks the merge: $(cat "$work/audit.txt")"
[ "$(wc -l <"$work/audit.txt")" -eq 1 ] || fail "the audit trail shows more than the one merge: $(cat "$work/audit.txt")"
run settled sync
[ "$(writes settled)" = 0 ] || fail "a sync after the merge wrote $(writes settled) records"

# --- Two contacts merged in Dynamics 365 ---
read -r kept_contact absorbed_contact absorbed_email < <(dump "$DEMO_DYNAMICS365_URL" | node -e '
  const c = JSON.parse(require("fs").readFileSync(0, "utf8")).contacts.filter(c => c.statecode === 0);
  console.log(`${c[0].contactid} ${c[1].contactid} ${c[1].emailaddress1}`)')
token=$(curl -sf -d grant_type=client_credentials --data-urlencode "client_id=$D365_CLIENT_ID" \
  --data-urlencode "client_secret=$D365_CLIENT_SECRET" --data-urlencode "scope=$DEMO_DYNAMICS365_URL/.default" \
  "$DEMO_DYNAMICS365_URL/tenant/oauth2/v2.0/token" | node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).access_token)')
sleep 1.1  # modifiedon is to the second
status=$(curl -s -o "$work/merge2.out" -w '%{http_code}' -X POST -H "Authorization: Bearer $token" \
  -H "Content-Type: application/json" "$DEMO_DYNAMICS365_URL/api/data/v9.2/Merge" -d "{
  \"Target\": {\"@odata.type\": \"Microsoft.Dynamics.CRM.contact\", \"contactid\": \"$kept_contact\"},
  \"Subordinate\": {\"@odata.type\": \"Microsoft.Dynamics.CRM.contact\", \"contactid\": \"$absorbed_contact\"},
  \"PerformParentingChecks\": false}")
[ "$status" = 204 ] || fail "Dynamics 365 did not merge contact $absorbed_contact: $status $(cat "$work/merge2.out")"
run merged2 sync
[ "$(count merged2 dynamics365 contact merged)" = 1 ] || fail "the contact merge was not read: $(cat "$work/merged2.json")"
[ "$(count merged2 hubspot contact merged)" = 1 ] || fail "the contacts were not merged in HubSpot: $(cat "$work/merged2.json")"
dump "$DEMO_HUBSPOT_URL" | node -e '
  const c = JSON.parse(require("fs").readFileSync(0, "utf8")).contacts;
  const email = process.argv[1];
  const left = c.filter(x => x.properties.email === email && !(x.properties.hs_merged_object_ids || "").length);
  const merged = c.filter(x => (x.properties.hs_merged_object_ids || "") !== "");
  if (left.length || merged.length !== 1) { console.error(JSON.stringify({left, merged})); process.exit(1); }' \
  "$absorbed_email" || fail "HubSpot does not show the contacts merged"
run settled2 sync
[ "$(writes settled2)" = 0 ] || fail "a sync after the contact merge wrote $(writes settled2) records"
echo "PASS: company $absorbed merged into $kept in HubSpot, account merged in Dynamics 365; contact $absorbed_contact merged in Dynamics 365, merged in HubSpot; nothing left to write"
