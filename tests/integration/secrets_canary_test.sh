#!/usr/bin/env bash
# Secrets stay secret, data stays readable. Every credential of the four systems is a canary value;
# crmbridge syncs the demo at --log-level trace (text and JSON lines), with faults that make
# retries and dead letters, and then every place a value can travel is searched for the canaries
# and for the access tokens Dynamics 365 issued (JWTs): the log lines, `status --json`,
# `dlq list --json`, the onboarding report as JSON and as HTML, the audit trail and the state
# file itself. The same logs must show the data a person debugging needs: the columns read
# ($select=) and the search filters.
#   usage: secrets_canary_test.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-canary.XXXXXX")
source "$(dirname "$0")/crm_mocks.sh"
cleanup() { stop_crm_mocks; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

export HUBSPOT_TOKEN=pat-na1-CANARYhs0a1b2c3d D365_CLIENT_ID=canary-client-id-4e5f
export D365_CLIENT_SECRET=CANARYd365secret~6g7h TOTANGO_TOKEN=CANARYtotango8i9j
export PORTAL_TOKEN=CANARYportal0k1l
canaries=("$HUBSPOT_TOKEN" "$D365_CLIENT_SECRET" "$TOTANGO_TOKEN" "$PORTAL_TOKEN")

# Seeded HubSpot and portal; Dynamics 365 refuses one batch (dead letters whose reason is the
# vendor's error body), fails some items of others and answers a few 503s (retries).
start_crm_mocks "$bin" "$work" --seed 11 --size 8 --seed-only hubspot portal \
  --fault 'dynamics365:POST /$batch status=400 times=1' --fault 'dynamics365:POST /$batch partial=0.3' \
  --fault 'dynamics365:GET status=503 times=2' || fail "no mocks"
export CRMBRIDGE_STATE="$work/state.db"
cfg="$src/examples/demo/crmbridge.yaml"

# Each command's stdout goes to NAME.out and its stderr to NAME.log; exit 1 is expected (some
# records were dead-lettered).
run() {
  local name=$1
  shift
  set +e
  "$bin/crmbridge" --config "$cfg" "$@" >"$work/$name.out" 2>"$work/$name.log"
  local rc=$?
  set -e
  [ "$rc" -le 1 ] || fail "crmbridge $* exited $rc: $(tail -5 "$work/$name.log")"
}
run sync1 --log-level trace sync
run sync2 --log-level trace --log-format json sync --json
run status --log-level trace status --json
run dlq --log-level trace dlq list --json
run report --log-level trace report onboarding --json
run report-html --log-level trace report onboarding --html "$work/report.html"
run audit --log-level trace audit portal --json
run replay --log-level trace dlq replay --all

# The runs did what makes secrets travel: requests logged, tokens fetched, retries, dead letters.
grep -q '"http_status"' "$work/dlq.out" || fail "no dead letter to search: $(head -c 300 "$work/dlq.out")"
grep -qi 'authorization' "$work/sync1.log" || fail "the trace log shows no request headers"
[ -s "$work/report.html" ] || fail "no HTML report written"
# ... and the data a person debugging needs is there.
grep -q '\$select=' "$work/sync1.log" || fail 'the trace log hides the columns read ($select=)'
grep -q '"filterGroups":\[{' "$work/sync1.log" || fail "the trace log hides HubSpot's search filters"

outputs=("$work"/*.log "$work"/*.out "$work/report.html" "$work"/state.db*)
for s in "${canaries[@]}"; do
  if hits=$(grep -alF -- "$s" "${outputs[@]}"); then
    fail "a credential appeared in: $(xargs -n1 basename <<<"$hits" | tr '\n' ' ')"
  fi
done
# An access token Dynamics 365 issued is a JWT (base64url of '{"' starts with eyJ).
if hits=$(grep -alE 'eyJ[A-Za-z0-9_-]{8,}\.eyJ' "${outputs[@]}"); then
  fail "an access token appeared in: $(xargs -n1 basename <<<"$hits" | tr '\n' ' ')"
fi
echo "no credential in $(ls "${outputs[@]}" | wc -l) outputs of 8 commands at trace level"
