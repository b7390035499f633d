#!/usr/bin/env bash
# End to end through the real binaries: crm-mocks serves seeded HubSpot and Dynamics 365 data and
# an empty Totango, `crmbridge sync` moves the onboarding tickets into opportunities and Totango
# accounts, and a second sync right after writes nothing. Also checks the exit codes users script against.
#   usage: demo_sync_test.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-it.XXXXXX")
source "$(dirname "$0")/crm_mocks.sh"
cleanup() { stop_crm_mocks; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

export HUBSPOT_TOKEN=pat-it-hubspot D365_CLIENT_ID=it-client D365_CLIENT_SECRET=it-secret-0123
export TOTANGO_TOKEN=it-totango-token-77 PORTAL_TOKEN=it-portal-token-55
start_crm_mocks "$bin" "$work" --seed 7 --size 12 --seed-only hubspot portal || fail "no mocks"
export CRMBRIDGE_STATE="$work/state.db"
cfg="$src/examples/demo/crmbridge.yaml"

# A dry run before the first sync shows what it would write, and creates no state store.
"$bin/crmbridge" --config "$cfg" sync --dry-run --json >"$work/dry.json" 2>"$work/dry.log" \
  || fail "the dry run exited $?: $(tail -3 "$work/dry.log")"
grep -q '"action": "create"' "$work/dry.json" || fail "the dry run plans no create: $(head -c 600 "$work/dry.json")"
[ ! -e "$CRMBRIDGE_STATE" ] || fail "the dry run created the state store"

"$bin/crmbridge" --config "$cfg" --log-level debug sync --json >"$work/run1.json" 2>"$work/run1.log" \
  || fail "first sync exited $?: $(tail -5 "$work/run1.log")"
grep -q '"writes": 0' "$work/run1.json" && fail "first sync wrote nothing: $(cat "$work/run1.json")"
grep -q '"created": [1-9]' "$work/run1.json" || fail "first sync created no opportunity"
# Every seeded onboarding ticket has its Totango account, with its stage (12 companies, 12 tickets).
accounts=$(curl -s "$DEMO_TOTANGO_URL/__admin/dump" | grep -o '"Onboarding Stage":"[^"]*"' | wc -l)
[ "$accounts" -eq 12 ] || fail "Totango holds $accounts onboarding accounts, not 12"
# The onboarding's people, notes and to-dos on its Totango account: every HubSpot contact of an
# onboarding ticket a user of that ticket's account (by name, in the Contacts widget), every note a
# touchpoint kept from Totango's own CRM sync, every task a task in the Onboarding Flow, due that day.
curl -s "$DEMO_HUBSPOT_URL/__admin/dump" >"$work/hubspot.json"
curl -s "$DEMO_TOTANGO_URL/__admin/dump" | node "$src/tests/integration/totango_end_state.mjs" >"$work/totango.txt"
node -e '
  const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const byId = (type) => new Map((d[type] || []).map((o) => [o.id, o]));
  const contacts = byId("contacts"), notes = byId("notes"), tasks = byId("tasks");
  const lines = [];
  for (const t of d.tickets || []) {
    if (t.properties.hs_pipeline !== "7340123" || t.archived) continue;
    const account = t.properties.subject.trim();
    for (const id of t.associations.contacts || []) {
      const c = contacts.get(id).properties;
      lines.push(`user|${account}|${c.email}|${c.firstname} ${c.lastname}|yes`);
    }
    for (const id of t.associations.notes || [])
      lines.push(`touchpoint|${account}|Onboarding note|${notes.get(id).properties.hs_note_body}|onboarding|sync off`);
    for (const id of t.associations.tasks || []) {
      const p = tasks.get(id).properties;
      lines.push(`task|${account}|${p.hs_task_subject}|${p.hs_task_body}|${p.hs_timestamp.slice(0, 10)}|onboarding|2`);
    }
  }
  console.log(lines.sort().join("\n"));' "$work/hubspot.json" >"$work/totango-want.txt"
grep -v '^account|' "$work/totango.txt" >"$work/totango-got.txt" || true
[ "$(grep -c '^task|' "$work/totango-want.txt")" -eq 12 ] || fail "HubSpot was seeded without a task per onboarding"
diff "$work/totango-want.txt" "$work/totango-got.txt" >"$work/totango.diff" ||
  fail "Totango's users, touchpoints and tasks differ from HubSpot's (want < > got): $(head -8 "$work/totango.diff")"

"$bin/crmbridge" --config "$cfg" sync >"$work/run2.txt" 2>"$work/run2.log" || fail "second sync exited $?"
grep -q "Nothing to write" "$work/run2.txt" || fail "second sync wrote: $(cat "$work/run2.txt")"

# A file crmbridge writes whole never replaces the state store, a device or a pipe, and its
# folder must exist: each is refused before anything is written.
mkfifo "$work/pipe"
for target in "$CRMBRIDGE_STATE" "$work/pipe" "$work/no-such-folder/metrics.prom"; do
  set +e
  "$bin/crmbridge" --config "$cfg" sync --metrics-file "$target" >/dev/null 2>"$work/metrics.err"
  rc=$?
  "$bin/crmbridge" --config "$cfg" report onboarding --html "$target" >/dev/null 2>"$work/html.err"
  rc_html=$?
  set -e
  [ "$rc" -eq 2 ] && [ "$rc_html" -eq 2 ] || fail "writing to $target exited $rc / $rc_html, not 2"
  grep -q -- "--metrics-file $target: " "$work/metrics.err" || fail "$(cat "$work/metrics.err")"
  grep -q -- "--html $target: " "$work/html.err" || fail "$(cat "$work/html.err")"
done
set +e
"$bin/crmbridge" --config "$cfg" sync --metrics-file "$CRMBRIDGE_STATE" 2>"$work/metrics.err" >/dev/null
set -e
grep -q "it is the state store this command runs from" "$work/metrics.err" ||
  fail "unclear: $(cat "$work/metrics.err")"
[ -p "$work/pipe" ] || fail "the pipe was replaced"
# The HTML report names customers, as the state store does: its owner's alone.
"$bin/crmbridge" --config "$cfg" report onboarding --html "$work/report.html" >/dev/null ||
  fail "report --html failed"
[ "$(stat -c %a "$work/report.html")" = 600 ] || fail "the report is $(stat -c %a "$work/report.html")"
set +e
timeout 20 "$bin/crmbridge" --config "$cfg" mappings preview --system hubspot --entity onboarding \
  --record "$work/pipe" >/dev/null 2>"$work/pipe.err"
rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q "pipe is not a plain file" "$work/pipe.err" ||
  fail "preview of a pipe exited $rc: $(cat "$work/pipe.err")"
"$bin/crmbridge" --config "$cfg" status >/dev/null || fail "the state store did not survive"

# Flag values that cannot mean what they say are refused with the flag named, before any work.
while IFS='|' read -r args said; do
  set +e
  # shellcheck disable=SC2086
  "$bin/crmbridge" --config "$cfg" $args >/dev/null 2>"$work/flag.err"
  rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "crmbridge $args exited $rc, not 2"
  grep -qF -- "$said" "$work/flag.err" || fail "crmbridge $args: $(cat "$work/flag.err")"
done <<'EOF_FLAGS'
dlq replay --all 5|ID excludes --all
dlq replay 0x10|'0x10' is no dead letter's id
dlq replay 99999999999999999999|'99999999999999999999' is no dead letter's id
dlq list --limit 0|--limit: Value 0 not in range 1 to 1000000
status --state postgresql://h/db|--state requires --tenant
daemon --max-runs -1|--max-runs: Value -1 not in range
serve --public-url notaurl|--public-url "notaurl" is not the URL senders call
report onboarding --as-of 2026-02-30|--as-of "2026-02-30" is not a date
report onboarding --stuck-after 12h|--stuck-after "12h" is not a whole number of days
backfill --system nosuch|there is no system 'nosuch' in
EOF_FLAGS

set +e
"$bin/crmbridge" --config "" status >/dev/null 2>"$work/flag.err"
rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q -- "--config: needs a value" "$work/flag.err" ||
  fail "--config \"\" exited $rc: $(cat "$work/flag.err")"

# Output that cannot be written (a full disk) is a failure a script sees, not exit 0.
if [ -c /dev/full ]; then
  set +e
  "$bin/crmbridge" --config "$cfg" status --json >/dev/full 2>"$work/full.err"
  rc=$?
  set -e
  [ "$rc" -eq 70 ] || fail "status --json to a full disk exited $rc, not 70"
  grep -q "cannot write the output: No space left on device" "$work/full.err" ||
    fail "to a full disk: $(cat "$work/full.err")"
fi

# Secrets never reach the logs, even at debug level with every HTTP exchange logged.
for s in "$HUBSPOT_TOKEN" "$D365_CLIENT_SECRET" "$TOTANGO_TOKEN" "$PORTAL_TOKEN"; do
  grep -qF -- "$s" "$work/run1.log" "$work/run2.log" && fail "a secret appeared in the log"
done

# The portal audit trail: empty until portal access is turned on anywhere; a bad --since is a
# usage error.
"$bin/crmbridge" --config "$cfg" audit portal >"$work/audit.txt" || fail "audit portal exited $?"
grep -q "No portal access changes" "$work/audit.txt" || fail "audit portal: $(cat "$work/audit.txt")"
"$bin/crmbridge" --config "$cfg" audit portal --json >"$work/audit.json" || fail "audit portal --json failed"
grep -q '^\[\]$' "$work/audit.json" || fail "audit portal --json: $(cat "$work/audit.json")"
set +e
"$bin/crmbridge" --config "$cfg" audit portal --since yesterday 2>"$work/audit.err"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "audit portal --since yesterday exited $rc, not 2"

# Commands that read the state store never create one: a mistyped path is an error.
for cmd in "status" "dlq list" "dlq replay --all"; do
  set +e
  # shellcheck disable=SC2086
  CRMBRIDGE_STATE="$work/typo.db" "$bin/crmbridge" --config "$cfg" $cmd 2>"$work/typo.err"; rc=$?
  set -e
  [ "$rc" -eq 2 ] || fail "$cmd on a missing state store exited $rc, not 2"
  grep -q "no state store at $work/typo.db" "$work/typo.err" || fail "$cmd: $(cat "$work/typo.err")"
  [ ! -e "$work/typo.db" ] || fail "$cmd created a state store"
done

# Exit code 2 with file:line:column for a broken config.
printf 'state: x.db\nsystems:\n  hubspot:\n    kind: hubspott\n' >"$work/bad.yaml"
set +e
"$bin/crmbridge" --config "$work/bad.yaml" sync 2>"$work/bad.err"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "broken config exited $rc, not 2"
grep -q "bad.yaml:4:" "$work/bad.err" || fail "no file:line in: $(cat "$work/bad.err")"
# An option the kind does not take is refused where it is written, by `mappings validate` too.
sed -e 's/service_id: SP-0000-11/servce_id: SP-0000-11/' -e "s|\.\./\.\./mappings|$src/mappings|g" \
  "$cfg" >"$work/option-typo.yaml"
set +e
"$bin/crmbridge" --config "$work/option-typo.yaml" mappings validate 2>"$work/option-typo.err"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "an unknown option passed mappings validate (exit $rc)"
typo_line=$(grep -n "servce_id" "$work/option-typo.yaml" | cut -d: -f1)
grep -q "option-typo.yaml:$typo_line:7: error: unknown option 'servce_id' for totango system 'totango' (hint: did you mean 'service_id'?)" \
  "$work/option-typo.err" || fail "unknown option not located: $(cat "$work/option-typo.err")"

# Mapping files are checked before anything runs: the preset passes, a typo is located.
"$bin/crmbridge" --config "$cfg" mappings validate >/dev/null || fail "the preset does not validate"
# Without a configuration: none named, and no ./crmbridge.yaml where it runs.
validate_alone() {
  mkdir -p "$work/alone"
  (cd "$work/alone" && env -u CRMBRIDGE_CONFIG "$bin/crmbridge" mappings validate "$@")
}
# A configuration named but missing is an error, not passed over: the mapping would be checked
# against systems it does not declare.
set +e
"$bin/crmbridge" --config "$work/none.yaml" mappings validate "$src/mappings/presets/onboarding.yaml" \
  >/dev/null 2>"$work/named-missing.err"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "a missing --config passed mappings validate (exit $rc)"
grep -q "none.yaml: cannot read the file" "$work/named-missing.err" \
  || fail "missing --config: $(cat "$work/named-missing.err")"
# Every shipped preset, without a configuration (docs/MAPPINGS.md): the portal flow's system too.
validate_alone "$src/mappings/presets/onboarding.yaml" \
  "$src/mappings/presets/onboarding-portal.yaml" "$src/mappings/presets/onboarding-totango.yaml" \
  >/dev/null 2>"$work/noconfig.err" || fail "without a configuration: $(cat "$work/noconfig.err")"
grep -q "no usable configuration" "$work/noconfig.err" || fail "no note: $(cat "$work/noconfig.err")"
# ... where a system named after a kind is checked as that kind (a Dynamics 365 'bind' under
# hubspot is refused), and --kind says the kind of another name.
sed 's/dynamics365/crm/g' "$src/mappings/presets/onboarding.yaml" >"$work/renamed.yaml"
validate_alone "$work/renamed.yaml" >/dev/null 2>&1 \
  || fail "a system of no known kind is checked for nothing"
set +e
validate_alone --kind crm=hubspot "$work/renamed.yaml" >/dev/null 2>"$work/kind.err"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "--kind crm=hubspot exited $rc, not 2"
set +e
validate_alone --kind crm=hubspot --kind crm=portal "$work/renamed.yaml" >/dev/null 2>"$work/kind2.err"
rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q "gives system crm a kind twice" "$work/kind2.err" ||
  fail "--kind given twice exited $rc: $(cat "$work/kind2.err")"
grep -q "renamed.yaml:[0-9]*:[0-9]*: error: 'bind' names a dynamics365 navigation property, and crm is of kind hubspot" \
  "$work/kind.err" || fail "--kind: $(cat "$work/kind.err")"
# preview takes --kind too: the renamed Dynamics 365 system is previewed as that kind.
(cd "$work/alone" && env -u CRMBRIDGE_CONFIG "$bin/crmbridge" mappings preview \
  --kind crm=dynamics365 --mapping "$work/renamed.yaml" --system hubspot --entity onboarding \
  --record "$src/examples/records/hubspot_ticket.json") >"$work/preview-kind.txt" 2>/dev/null \
  || fail "preview --kind failed"
grep -q "crmb_onboardingstage.*= 100000002" "$work/preview-kind.txt" \
  || fail "preview --kind: $(cat "$work/preview-kind.txt")"
# docs/MAPPINGS.md's table of connector parameters names every object and param each kind
# declares (`crmbridge connectors describe`).
kinds_checked=0
for kind in $("$bin/crmbridge" connectors describe | sed -n 's/^\([a-z0-9]\+\)$/\1/p'); do
  kinds_checked=$((kinds_checked + 1))
  row=$(grep "^| $kind |" "$src/docs/MAPPINGS.md") || fail "docs/MAPPINGS.md has no row for $kind"
  described=$("$bin/crmbridge" connectors describe "$kind")
  for word in $(echo "$described" | sed -n 's/^  objects: *//p' | tr -d ',') \
              $(echo "$described" | awk '/^  params:/ {p = 1; next} /^  [a-z]/ {p = 0}
                                        p && /^    [a-z_]+ / {print $1}'); do
    # A here-string, not a pipe: grep -q leaves at its first match, and with pipefail the echo
    # still writing would fail the check (SIGPIPE).
    grep -q "\`$word" <<<"$row" || fail "docs/MAPPINGS.md's $kind row does not name $word"
  done
done
[ "$kinds_checked" -eq 4 ] || fail "connectors describe listed $kinds_checked kinds, not 4"
# With a configuration whose secrets are not set here, the mappings are still checked: a warning
# per unset variable, exit 0; a sync refuses the same configuration.
env -u HUBSPOT_TOKEN "$bin/crmbridge" --config "$cfg" mappings validate >/dev/null 2>"$work/nosecret.err" \
  || fail "validate without HUBSPOT_TOKEN: $(cat "$work/nosecret.err")"
grep -q "crmbridge.yaml:10:[0-9]*: warning: environment variable HUBSPOT_TOKEN is not set" \
  "$work/nosecret.err" || fail "no warning: $(cat "$work/nosecret.err")"
set +e
env -u HUBSPOT_TOKEN "$bin/crmbridge" --config "$cfg" sync --dry-run >/dev/null 2>"$work/nosecret-sync.err"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "a sync without HUBSPOT_TOKEN exited $rc, not 2"
# Commands on the state store alone need no system's secret; the store's own location they do.
for cmd in "status" "dlq list" "audit portal"; do
  # shellcheck disable=SC2086
  env -u HUBSPOT_TOKEN -u D365_CLIENT_SECRET "$bin/crmbridge" --config "$cfg" $cmd >/dev/null \
    2>"$work/nosecret-$cmd.err" || fail "$cmd without the secrets: $(cat "$work/nosecret-$cmd.err")"
done
set +e
env -u CRMBRIDGE_STATE "$bin/crmbridge" --config "$cfg" status >/dev/null 2>"$work/nostate.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || fail "status without CRMBRIDGE_STATE exited $rc, not 2"
grep -q "environment variable CRMBRIDGE_STATE is not set" "$work/nostate.err" \
  || fail "status without CRMBRIDGE_STATE: $(cat "$work/nostate.err")"
sed 's/transforms: \[trim\]/transforms: [strip]/' "$src/mappings/presets/onboarding.yaml" >"$work/typo.yaml"
set +e
"$bin/crmbridge" --config "$cfg" mappings validate "$work/typo.yaml" 2>"$work/typo.err"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "a broken mapping exited $rc, not 2"
grep -q "typo.yaml:[0-9]*:[0-9]*: error: unknown transform 'strip'" "$work/typo.err" \
  || fail "no position for the typo: $(cat "$work/typo.err")"
"$bin/crmbridge" --config "$cfg" mappings preview --system hubspot --entity onboarding \
  --record "$src/examples/records/hubspot_ticket.json" >"$work/preview.txt" || fail "preview failed"
grep -q "crmb_onboardingstage.*= 100000002" "$work/preview.txt" || fail "preview: $(cat "$work/preview.txt")"
# A record with none of the fields the mapping reads: a warning that says so, and exit 1 as for
# any record that cannot be mapped.
echo '{"properties": {"dealname": "x"}}' >"$work/other.json"
set +e
"$bin/crmbridge" --config "$cfg" mappings preview --system hubspot --entity onboarding \
  --record "$work/other.json" >/dev/null 2>"$work/other.err"
rc=$?
set -e
[ "$rc" -eq 1 ] || fail "preview of a record it cannot map exited $rc, not 1"
grep -q "holds none of the fields hubspot.onboarding reads" "$work/other.err" ||
  fail "preview of another record: $(cat "$work/other.err")"

# A backfill reads HubSpot in full on its own checkpoint; everything is in step already, so it
# writes nothing, and it names what is wrong with a system the mapping does not read.
"$bin/crmbridge" --config "$cfg" backfill --system hubspot --json >"$work/backfill.json" 2>"$work/backfill.log" \
  || fail "backfill exited $?: $(tail -3 "$work/backfill.log")"
grep -q '"writes": 0' "$work/backfill.json" || fail "backfill wrote: $(cat "$work/backfill.json")"
# Its summary in text names the command that ran.
"$bin/crmbridge" --config "$cfg" backfill --system hubspot --entity company >"$work/backfill.txt" \
  2>>"$work/backfill.log" || fail "backfill (text) exited $?: $(tail -3 "$work/backfill.log")"
grep -q '^crmbridge backfill: run [0-9]* finished' "$work/backfill.txt" ||
  fail "the backfill summary does not say backfill: $(head -2 "$work/backfill.txt")"
set +e
"$bin/crmbridge" --config "$cfg" backfill --system nosuch 2>"$work/backfill.err"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "a backfill of an unknown system exited $rc, not 2"

# The daemon syncs on its schedule and stops cleanly on SIGTERM (exit 0).
"$bin/crmbridge" --config "$cfg" daemon --every 1s >"$work/daemon.log" 2>&1 &
daemon=$!
sleep 2.5
kill -TERM "$daemon"
set +e
wait "$daemon"; rc=$?
set -e
[ "$rc" -eq 0 ] || fail "the daemon exited $rc on SIGTERM: $(tail -3 "$work/daemon.log")"
runs=$(grep -c "daemon: run [0-9]* wrote" "$work/daemon.log" || true)
[ "$runs" -ge 2 ] || fail "the daemon made $runs runs in 2.5 s at --every 1s: $(cat "$work/daemon.log")"
grep -q "daemon: stopped" "$work/daemon.log" || fail "no clean stop: $(tail -3 "$work/daemon.log")"

# Exit code 4 when a system is unreachable: stop the mocks and sync again.
stop_crm_mocks
set +e
"$bin/crmbridge" --config "$cfg" sync >"$work/run3.txt" 2>"$work/run3.log"; rc=$?
set -e
[ "$rc" -eq 4 ] || fail "unreachable systems exited $rc, not 4: $(tail -3 "$work/run3.log")"
# A PostgreSQL state store that cannot be reached: exit 4, and its password in no message.
set +e
CRMBRIDGE_STATE='postgresql://sync:pg-canary-4417@127.0.0.1:1/crm' \
  "$bin/crmbridge" --config "$cfg" sync >"$work/run4.txt" 2>"$work/run4.log"; rc=$?
set -e
[ "$rc" -eq 4 ] || fail "an unreachable state server exited $rc, not 4: $(cat "$work/run4.log")"
grep -q "cannot open the state store postgresql://127.0.0.1:1/crm" "$work/run4.log" \
  || fail "unclear: $(cat "$work/run4.log")"
grep -q "pg-canary-4417" "$work/run4.log" "$work/run4.txt" && fail "the state password was shown"
echo "demo sync: ok"
