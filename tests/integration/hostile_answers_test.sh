#!/usr/bin/env bash
# Hostile vendor answers, end to end: crm-mocks spoils HubSpot's ticket search answers (the
# `corrupt=` faults) and `crmbridge sync` must, for each, name the system, object and page (a page
# it cannot read) or record (a record it cannot take), commit nothing from a bad page, take none of
# a bad record into any system, and go on with the rest of the run. A cursor whose records' change
# times go back to 2001 must not move the cursor back.
#   usage: hostile_answers_test.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-hostile.XXXXXX")
source "$(dirname "$0")/crm_mocks.sh"
cleanup() { stop_crm_mocks; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL ($scenario): $*" >&2; exit 1; }

export HUBSPOT_TOKEN=pat-hostile D365_CLIENT_ID=hostile-client D365_CLIENT_SECRET=hostile-secret
export TOTANGO_TOKEN=hostile-totango PORTAL_TOKEN=hostile-portal
cfg="$src/examples/demo/crmbridge.yaml"
search='/crm/v3/objects/tickets/search'

# start_mocks SIZE [FAULT...]: HubSpot, Dynamics 365 and the portal seeded with SIZE customers.
start_mocks() {
  local size=$1
  shift
  local faults=()
  for f in "$@"; do faults+=(--fault "$f"); done
  start_crm_mocks "$bin" "$work" --seed 5 --size "$size" --seed-only hubspot dynamics365 portal \
    "${faults[@]}" || fail "no mocks"
}

# sync NAME: one sync into a fresh or kept state; its exit code in $rc, output in NAME.out/.log.
sync() {
  set +e
  "$bin/crmbridge" --config "$cfg" sync --json >"$work/$1.out" 2>"$work/$1.log"
  rc=$?
  set -e
}

# The tickets cursor HubSpot's reads left, "" when none was committed.
tickets_cursor() {
  "$bin/crmbridge" --config "$cfg" status --json | node -e '
    const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const c = j.cursors.find((c) => c.system === "hubspot" && c.object === "onboarding:tickets");
    console.log(c ? c.cursor : "");'
}
# count NAME SYSTEM ENTITY FIELD: a count from sync NAME's summary (sync --json), 0 when absent.
count() {
  node -e 'const [s, e, f] = process.argv.slice(1);
           const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
           console.log(((j.systems || {})[s] || {})[e]?.[f] ?? 0);' "$2" "$3" "$4" <"$work/$1.out"
}

# A page that cannot be read: exit 4 (the system sits out the run), the error names system, object
# and page, nothing of the page committed or written, and the other systems' reads go on.
for corruption in truncate html huge text deep twice; do
  scenario=$corruption
  export CRMBRIDGE_STATE="$work/$scenario.db"
  start_mocks 6 "hubspot:POST $search corrupt=$corruption"
  sync "$scenario"
  [ "$rc" -eq 4 ] || fail "exit $rc, not 4: $(tail -3 "$work/$scenario.log")"
  grep -q "hubspot: reading tickets failed at page 1 of this read (from the beginning)" \
    "$work/$scenario.log" || fail "the failed page is not named: $(grep error "$work/$scenario.log")"
  case $corruption in
    huge) want="more than the 32 MiB crmbridge reads in one answer" ;;
    # Parsed, a value this deep overflows the stack where it is first copied.
    deep) want="arrays and objects nested more than 512 deep" ;;
    # Read, a key given twice would be its last value, silently.
    twice) want='the key "crmbridge_mock_twice" is given twice in one object' ;;
    html) want="the answer is not JSON (HTTP 200, text/html" ;;
    *) want="the answer is not JSON (HTTP 200, application/json" ;;
  esac
  grep -qF "$want" "$work/$scenario.log" || fail "no '$want' in: $(grep error "$work/$scenario.log")"
  [ -z "$(tickets_cursor)" ] || fail "a cursor was committed past the bad page: $(tickets_cursor)"
  [ "$(count "$scenario" dynamics365 onboarding created)" -eq 0 ] \
    || fail "an onboarding reached Dynamics 365 from the bad page"
  [ "$(count "$scenario" dynamics365 company read)" -eq 6 ] || fail "the run did not go on"
  [ "$(count "$scenario" hubspot company read)" -gt 0 ] || fail "HubSpot's objects read before tickets were not read"
  LC_ALL=C grep -qP '[\x00-\x08\x0e-\x1f]' "$work/$scenario.log" "$work/$scenario.out" \
    && fail "control bytes from the answer reached the output"
  stop_crm_mocks
done

# Records that cannot be taken, each rejected by name while the rest of the page is synced.
scenario=types
export CRMBRIDGE_STATE="$work/$scenario.db"
start_mocks 14 "hubspot:POST $search corrupt=types"
sync "$scenario"
[ "$rc" -eq 0 ] || fail "exit $rc: $(tail -3 "$work/$scenario.log")"
grep -q "hubspot: tickets (no id) is rejected: a HubSpot object whose id is neither text nor a number" \
  "$work/$scenario.log" || fail "the record without a usable id is not rejected by name"
grep -q "hubspot: tickets [0-9]* is rejected: its 'archived' is not true or false" "$work/$scenario.log" \
  || fail "the record with a bad 'archived' is not rejected by name"
grep -q "cannot be mapped to onboarding: hubspot tickets.subject -> onboarding.title: value {\"unexpected\":\[1,2\]} is not a valid string" \
  "$work/$scenario.log" || fail "a wrong-typed subject was not refused"
bad=$(count "$scenario" hubspot onboarding rejected)
made=$(count "$scenario" dynamics365 onboarding created)
[ "$bad" -ge 4 ] && [ "$made" -ge 6 ] && [ $((bad + made)) -eq 14 ] \
  || fail "$bad tickets refused and $made written of 14"
curl -s "$DEMO_DYNAMICS365_URL/__admin/dump" | grep unexpected >/dev/null && fail "a wrong-typed value was written"
stop_crm_mocks

scenario=ids
export CRMBRIDGE_STATE="$work/$scenario.db"
start_mocks 6 "hubspot:POST $search corrupt=ids"
sync "$scenario"
[ "$rc" -eq 0 ] || fail "exit $rc: $(tail -3 "$work/$scenario.log")"
grep -q "hubspot: tickets (no id) is rejected: a HubSpot object with an empty id" "$work/$scenario.log" \
  || fail "the empty id is not rejected"
grep -q "hubspot: tickets 7777777777777777777777777777777777777777777777777777777777777777... (10240 bytes) is rejected: its id is 10240 bytes long (at most 512)" \
  "$work/$scenario.log" || fail "the 10 KB id is not rejected"
[ "$(count "$scenario" hubspot onboarding rejected)" -eq 2 ] || fail "not 2 tickets rejected"
[ "$(count "$scenario" dynamics365 onboarding created)" -eq 4 ] || fail "not the 4 good ones written"
stop_crm_mocks

# Totango's search answering a value of another type where text belongs (an account's id, its
# name): the account is rejected by name, and nothing of it reaches the other systems as text.
scenario=totango_types
export CRMBRIDGE_STATE="$work/$scenario.db"
start_mocks 6
sync "$scenario-1"
[ "$rc" -eq 0 ] || fail "the clean run exited $rc"
curl -s -X POST -d '[{"method":"POST","path":"/api/v1/search","corrupt":"types"}]' \
  "$DEMO_TOTANGO_URL/__admin/faults" >/dev/null
sync "$scenario"
[ "$rc" -eq 0 ] || fail "exit $rc: $(tail -3 "$work/$scenario.log")"
grep -q "totango: accounts (no id) is rejected: its name (the account's id) is neither text nor" \
  "$work/$scenario.log" || fail "the account without a usable id is not rejected by name"
grep -q "totango: accounts [^ ]* is rejected: its display_name is not text" "$work/$scenario.log" \
  || fail "the account with a name of another type is not rejected by name"
for mock in "$DEMO_HUBSPOT_URL" "$DEMO_DYNAMICS365_URL"; do
  curl -s "$mock/__admin/dump" | grep unexpected >/dev/null && fail "a wrong-typed value was written"
done
stop_crm_mocks

# A next-page link back at a page already read: the loop is named and the read stops there (with
# 250 tickets the first page of 200 is good and committed; the second points back).
scenario=loop
export CRMBRIDGE_STATE="$work/$scenario.db"
start_mocks 250 "hubspot:POST $search corrupt=loop"
sync "$scenario"
[ "$rc" -eq 4 ] || fail "exit $rc, not 4: $(tail -3 "$work/$scenario.log")"
grep -q "hubspot: reading tickets failed at page 2 of this read .*a paging loop" "$work/$scenario.log" \
  || fail "the loop is not named: $(grep error "$work/$scenario.log")"
stop_crm_mocks

# Change times that go back to 2001 after a clean run: the cursor never moves back.
scenario=backwards
export CRMBRIDGE_STATE="$work/$scenario.db"
start_mocks 6
sync "$scenario-1"
[ "$rc" -eq 0 ] || fail "the clean run exited $rc"
before=$(tickets_cursor)
[ -n "$before" ] || fail "no tickets cursor after a clean run"
# One ticket changes in HubSpot, and the answers now date every change in 2001.
id=$(curl -s -H "Authorization: Bearer $HUBSPOT_TOKEN" "$DEMO_HUBSPOT_URL/crm/v3/objects/tickets?limit=1" |
  sed -n 's/.*"id":"\([0-9]*\)".*/\1/p')
[ -n "$id" ] || fail "no ticket to change"
curl -s -X PATCH -H "Authorization: Bearer $HUBSPOT_TOKEN" -H "Content-Type: application/json" \
  -d '{"properties":{"subject":"Changed after the first run"}}' \
  "$DEMO_HUBSPOT_URL/crm/v3/objects/tickets/$id" >/dev/null
curl -s -X POST -d "[{\"method\":\"POST\",\"path\":\"$search\",\"corrupt\":\"backwards\"}]" \
  "$DEMO_HUBSPOT_URL/__admin/faults" >/dev/null
sync "$scenario-2"
[ "$rc" -eq 0 ] || fail "exit $rc: $(tail -3 "$work/$scenario-2.log")"
# Read, and its change dated 2001 loses to the newer one crmbridge holds ("most recent change
# wins"): said in the log, and counted as a conflict.
[ "$(count "$scenario-2" hubspot onboarding read)" -ge 1 ] || fail "the changed ticket was not read ($(count "$scenario-2" hubspot onboarding read))"
grep -q "hubspot: tickets $id changed title to \"Changed after the first run\", which is not taken: a newer change" \
  "$work/$scenario-2.log" || fail "the 2001 change was not reported"
after=$(tickets_cursor)
since() { sed -n 's/.*"since":\([0-9]*\).*/\1/p' <<<"$1"; }
[ -n "$(since "$after")" ] && [ "$(since "$after")" -ge "$(since "$before")" ] \
  || fail "the cursor went from $before back to $after"
stop_crm_mocks

echo "hostile answers: 11 kinds, each refused by name, nothing of a bad page kept, the run went on"
