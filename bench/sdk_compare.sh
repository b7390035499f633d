#!/usr/bin/env bash
# crmbridge against the obvious alternative (bench/sdk_baseline/sdk_sync.mjs: the vendors' SDKs,
# one Dynamics 365 create per HubSpot ticket) on the same data: N onboarding tickets in HubSpot,
# Dynamics 365 empty, both mocks enforcing the vendors' rate limits (crm-mocks without
# --no-limits). Each side gets fresh mocks with the same seed; the API calls are the mocks' own
# counts (GET /__admin/stats), the time is wall time of the whole command.
#
#   bench/sdk_compare.sh [N]      (default 2000; BUILD_DIR=build-bench, SEED=42, LATENCY_MS=0)
#
# The mocks answer in well under a millisecond, which flatters a request-per-record script;
# LATENCY_MS=50 makes every vendor request take that much longer (a fault rule with latency only),
# closer to a real cloud API's round trip.
#
# crmbridge runs `crmbridge sync` with examples/demo/crmbridge.yaml and the demo's environment
# variables (scripts/demo.sh), its mappings narrowed to mappings/presets/onboarding.yaml so that
# both sides do the same job (the demo also syncs Totango). crmbridge runs twice: the second run is
# what every later scheduled run costs; the SDK script has no second run to offer, it would repeat
# the first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
N=${1:-2000}
BUILD_DIR=${BUILD_DIR:-build-bench}
SEED=${SEED:-42}
LATENCY_MS=${LATENCY_MS:-0}
mocks_bin="$BUILD_DIR/bin/crm-mocks"
crmbridge_bin="$BUILD_DIR/bin/crmbridge"
for b in "$mocks_bin" "$crmbridge_bin"; do
  [ -x "$b" ] || { echo "missing $b: cmake --build $BUILD_DIR --target crmbridge crm-mocks" >&2; exit 1; }
done
for tool in node curl jq bc; do
  command -v "$tool" >/dev/null || { echo "$tool is required" >&2; exit 1; }
done
[ -d tests/conformance/node_modules/@hubspot/api-client ] ||
  { echo "tests/conformance/node_modules is missing (scripts/setup.sh installs it)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-sdk-compare.XXXXXX")
mocks_pid=""
stop_mocks() {
  if [ -n "$mocks_pid" ]; then
    kill "$mocks_pid" 2>/dev/null || true
    wait "$mocks_pid" 2>/dev/null || true
    mocks_pid=""
  fi
}
trap 'stop_mocks; rm -rf "$work"' EXIT

export HUBSPOT_TOKEN=pat-mock-hubspot D365_CLIENT_ID=mock-client-id
export D365_CLIENT_SECRET=mock-client-secret TOTANGO_TOKEN=totango-mock-token

start_mocks() {
  : >"$work/mocks.json"
  local latency=()
  if [ "$LATENCY_MS" -gt 0 ]; then
    latency=(--fault "hubspot:latency=$LATENCY_MS" --fault "dynamics365:latency=$LATENCY_MS")
  fi
  "$mocks_bin" --seed "$SEED" --size "$N" --seed-only hubspot "${latency[@]}" \
    --hubspot-token "$HUBSPOT_TOKEN" --dynamics365-client-id "$D365_CLIENT_ID" \
    --dynamics365-client-secret "$D365_CLIENT_SECRET" --totango-token "$TOTANGO_TOKEN" \
    >"$work/mocks.json" 2>"$work/mocks.log" &
  mocks_pid=$!
  for _ in $(seq 1 600); do
    [ -s "$work/mocks.json" ] && break
    kill -0 "$mocks_pid" 2>/dev/null || { cat "$work/mocks.log" >&2; exit 1; }
    sleep 0.1
  done
  line=$(head -n1 "$work/mocks.json")
  HS=$(jq -r .hubspot <<<"$line")
  D=$(jq -r .dynamics365 <<<"$line")
  T=$(jq -r .totango <<<"$line")
}

# "total reads writes auth setup" from a mock's request counts.
calls() {
  curl -s "$1/__admin/stats" | jq -r '
    to_entries
    | map({k: .key, v: .value,
           kind: (if (.key | test("token|oauth")) then "auth"
                  elif (.key | test("/properties|/pipelines|\\$metadata")) then "setup"
                  elif (.key | test("^GET |/search|/batch/read")) then "read"
                  else "write" end)})
    | "\(map(.v) | add // 0) \(map(select(.kind == "read") | .v) | add // 0) \(map(select(.kind == "write") | .v) | add // 0) \(map(select(.kind == "auth") | .v) | add // 0) \(map(select(.kind == "setup") | .v) | add // 0)"'
}
now() { date +%s.%N; }

echo "crmbridge vs the vendors' SDKs: $N onboarding tickets, HubSpot -> Dynamics 365, limits enforced"
echo "  reproduce: BUILD_DIR=$BUILD_DIR SEED=$SEED LATENCY_MS=$LATENCY_MS bench/sdk_compare.sh $N"
echo "  machine:   $(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"

# --- the SDK script --------------------------------------------------------------------------
start_mocks
t0=$(now)
node bench/sdk_baseline/sdk_sync.mjs --hubspot "$HS" --dynamics "$D" --token "$HUBSPOT_TOKEN" \
  --client-id "$D365_CLIENT_ID" --client-secret "$D365_CLIENT_SECRET" >"$work/sdk.json"
t1=$(now)
read -r sdk_hs_total sdk_hs_read sdk_hs_write sdk_hs_auth sdk_hs_setup <<<"$(calls "$HS")"
read -r sdk_d_total sdk_d_read sdk_d_write sdk_d_auth sdk_d_setup <<<"$(calls "$D")"
sdk_created=$(curl -s "$D/__admin/dump" | jq '.opportunities | length')
sdk_wall=$(echo "$t1 - $t0" | bc -l)
stop_mocks

# --- crmbridge sync --------------------------------------------------------------------------
start_mocks
export DEMO_HUBSPOT_URL=$HS DEMO_DYNAMICS365_URL=$D DEMO_TOTANGO_URL=$T
export CRMBRIDGE_STATE="$work/state.db"
sed "s#^mappings:.*#mappings: [$root/mappings/presets/onboarding.yaml]#" \
  examples/demo/crmbridge.yaml >"$work/crmbridge.yaml"
t0=$(now)
"$crmbridge_bin" --config "$work/crmbridge.yaml" --log-level warn sync >"$work/sync1.txt"
t1=$(now)
read -r cb_hs_total cb_hs_read cb_hs_write cb_hs_auth cb_hs_setup <<<"$(calls "$HS")"
read -r cb_d_total cb_d_read cb_d_write cb_d_auth cb_d_setup <<<"$(calls "$D")"
cb_created=$(curl -s "$D/__admin/dump" | jq '.opportunities | length')
# A later scheduled run, not one fired within the same second: HubSpot's search window (5 per
# second) still holds the first run's last searches, which a new process cannot know about.
sleep 1.1
t1b=$(now)
"$crmbridge_bin" --config "$work/crmbridge.yaml" --log-level warn sync >"$work/sync2.txt"
t2=$(now)
read -r cb2_hs_total _ _ _ _ <<<"$(calls "$HS")"
read -r cb2_d_total _ _ _ _ <<<"$(calls "$D")"
cb_wall=$(echo "$t1 - $t0" | bc -l)
cb2_wall=$(echo "$t2 - $t1b" | bc -l)
stop_mocks

sdk_total=$((sdk_hs_total + sdk_d_total))
cb_total=$((cb_hs_total + cb_d_total))
cb2_total=$((cb2_hs_total + cb2_d_total - cb_total))
printf '\n%-34s %12s %12s\n' "" "SDK script" "crmbridge"
printf '%-34s %12s %12s\n' "opportunities created" "$sdk_created" "$cb_created"
printf '%-34s %12s %12s\n' "HubSpot calls (read/setup/write)" \
  "$sdk_hs_read/$sdk_hs_setup/$sdk_hs_write" "$cb_hs_read/$cb_hs_setup/$cb_hs_write"
printf '%-34s %12s %12s\n' "Dynamics 365 calls (write/auth)" "$sdk_d_write/$sdk_d_auth" "$cb_d_write/$cb_d_auth"
printf '%-34s %12s %12s\n' "API calls in all" "$sdk_total" "$cb_total"
printf '%-34s %12.2f %12.2f\n' "wall time, s" "$sdk_wall" "$cb_wall"
printf '%-34s %12s %12s\n' "next run, nothing changed: calls" "$sdk_total" "$cb2_total"
printf '%-34s %12s %12.2f\n' "next run: wall time, s" "$(printf '~%.2f' "$sdk_wall")" "$cb2_wall"
printf '\nratio SDK / crmbridge: %.1fx the API calls, %.1fx the wall time\n' \
  "$(echo "$sdk_total / $cb_total" | bc -l)" "$(echo "$sdk_wall / $cb_wall" | bc -l)"
echo "sdk script: $(cat "$work/sdk.json")"
echo "JSON {\"records\":$N,\"sdk_calls\":$sdk_total,\"sdk_wall_s\":$(printf '%.2f' "$sdk_wall"),\"crmbridge_calls\":$cb_total,\"crmbridge_wall_s\":$(printf '%.2f' "$cb_wall"),\"crmbridge_second_calls\":$cb2_total,\"crmbridge_second_wall_s\":$(printf '%.2f' "$cb2_wall")}"
