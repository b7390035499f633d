#!/usr/bin/env bash
# crmbridge against the obvious alternative (bench/sdk_baseline/sdk_sync.mjs: the vendors' SDKs,
# one Dynamics 365 create per HubSpot ticket) on the same data: N onboarding tickets in HubSpot,
# Dynamics 365 empty, both mocks enforcing the vendors' rate limits (crm-mocks without
# --no-limits). Each side gets fresh mocks with the same seed; the API calls are the mocks' own
# counts (GET /__admin/stats), the time is wall time of the whole command.
#
#   bench/sdk_compare.sh [N]      (default 2000; BUILD_DIR=build-bench, SEED=42, LATENCY_MS=0)
#
# Needs node, curl and tests/conformance/node_modules (scripts/setup.sh installs all three). Exits 1
# when a side did not create the N opportunities, or crmbridge's second run wrote anything.
#
# The mocks answer in well under a millisecond, which flatters a request-per-record script;
# LATENCY_MS=50 makes every vendor request take that much longer (a fault rule with latency only),
# closer to a real cloud API's round trip.
#
# crmbridge runs `crmbridge sync` with a configuration of its own, written here: the demo's HubSpot
# and Dynamics 365 (examples/demo/crmbridge.yaml) with their rate limits and credentials, and only
# mappings/presets/onboarding.yaml, so that both sides do the same job (the demo also syncs Totango
# and the portal). crmbridge runs twice: the second run is what every later scheduled run costs;
# the SDK script has no second run to offer, it would repeat the first.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
case "${1:-}" in
  -h|--help) sed -n '2,21s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac
N=${1:-2000}
if ! [[ $N =~ ^[1-9][0-9]*$ ]] || [ "$#" -gt 1 ]; then
  echo "usage: bench/sdk_compare.sh [N]  (N records, a whole number; --help tells more)" >&2
  exit 2
fi
BUILD_DIR=${BUILD_DIR:-build-bench}
SEED=${SEED:-42}
LATENCY_MS=${LATENCY_MS:-0}
mocks_bin="$BUILD_DIR/bin/crm-mocks"
crmbridge_bin="$BUILD_DIR/bin/crmbridge"
for b in "$mocks_bin" "$crmbridge_bin"; do
  [ -x "$b" ] || { echo "missing $b: cmake --build $BUILD_DIR --target crmbridge crm-mocks" >&2; exit 1; }
done
for tool in node curl; do
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

# The demo's credentials (scripts/demo.sh), which the mocks accept.
export HUBSPOT_TOKEN=pat-mock-hubspot D365_CLIENT_ID=mock-client-id
export D365_CLIENT_SECRET=mock-client-secret

start_mocks() {
  : >"$work/mocks.json"
  local latency=()
  if [ "$LATENCY_MS" -gt 0 ]; then
    latency=(--fault "hubspot:latency=$LATENCY_MS" --fault "dynamics365:latency=$LATENCY_MS")
  fi
  "$mocks_bin" --seed "$SEED" --size "$N" --seed-only hubspot "${latency[@]}" \
    --hubspot-token "$HUBSPOT_TOKEN" --dynamics365-client-id "$D365_CLIENT_ID" \
    --dynamics365-client-secret "$D365_CLIENT_SECRET" \
    >"$work/mocks.json" 2>"$work/mocks.log" &
  mocks_pid=$!
  for _ in $(seq 1 600); do
    [ -s "$work/mocks.json" ] && break
    kill -0 "$mocks_pid" 2>/dev/null || { cat "$work/mocks.log" >&2; exit 1; }
    sleep 0.1
  done
  [ -s "$work/mocks.json" ] ||
    { echo "crm-mocks printed no URLs" >&2; cat "$work/mocks.log" >&2; exit 1; }
  line=$(head -n1 "$work/mocks.json")
  HS=$(sed -n 's/.*"hubspot":"\([^"]*\)".*/\1/p' <<<"$line")
  D=$(sed -n 's/.*"dynamics365":"\([^"]*\)".*/\1/p' <<<"$line")
}

# "total reads writes auth setup" from a mock's request counts ("METHOD /route": count).
calls() {
  curl -sS --fail "$1/__admin/stats" | node -e '
    let t = ""; process.stdin.setEncoding("utf8");
    process.stdin.on("data", (c) => (t += c)).on("end", () => {
      const n = { total: 0, read: 0, write: 0, auth: 0, setup: 0 };
      for (const [route, count] of Object.entries(JSON.parse(t))) {
        const kind = /token|oauth/.test(route) ? "auth"
          : /\/properties|\/pipelines|\$metadata/.test(route) ? "setup"
          : /^GET |\/search|\/batch\/read/.test(route) ? "read" : "write";
        n.total += count;
        n[kind] += count;
      }
      console.log(`${n.total} ${n.read} ${n.write} ${n.auth} ${n.setup}`);
    });'
}
# How many opportunities Dynamics 365 holds.
opportunities() {
  curl -sS --fail "$D/__admin/dump" | node -e '
    let t = ""; process.stdin.setEncoding("utf8");
    process.stdin.on("data", (c) => (t += c))
      .on("end", () => console.log((JSON.parse(t).opportunities ?? []).length));'
}
now() { date +%s.%N; }
# a - b, and a / b (0 when b is 0).
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b > 0 ? a / b : 0) }'; }

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
sdk_created=$(opportunities)
sdk_wall=$(minus "$t1" "$t0")
stop_mocks

# --- crmbridge sync --------------------------------------------------------------------------
start_mocks
cat >"$work/crmbridge.yaml" <<EOF
# HubSpot and Dynamics 365 as examples/demo/crmbridge.yaml has them; only the onboarding preset.
state: "$work/state.db"
mappings: ["$root/mappings/presets/onboarding.yaml"]
systems:
  hubspot:
    kind: hubspot
    base_url: "$HS"
    auth: {token: "\${env:HUBSPOT_TOKEN}"}
    rate_limit: {requests: 100, per: 10s}
    search_rate_limit: {requests: 5, per: 1s}
  dynamics365:
    kind: dynamics365
    base_url: "$D"
    auth:
      token_url: "$D/tenant/oauth2/v2.0/token"
      client_id: "\${env:D365_CLIENT_ID}"
      client_secret: "\${env:D365_CLIENT_SECRET}"
      scope: "$D/.default"
    rate_limit: {requests: 6000, per: 300s}
EOF
# One `crmbridge sync`, its summary kept in $1 and shown if it fails (dead letters exit 1).
sync_once() {
  "$crmbridge_bin" --config "$work/crmbridge.yaml" --log-level warn sync >"$1" ||
    { local rc=$?; cat "$1" >&2; echo "crmbridge sync exited with $rc" >&2; exit 1; }
}
t0=$(now)
sync_once "$work/sync1.txt"
t1=$(now)
read -r cb_hs_total cb_hs_read cb_hs_write cb_hs_auth cb_hs_setup <<<"$(calls "$HS")"
read -r cb_d_total cb_d_read cb_d_write cb_d_auth cb_d_setup <<<"$(calls "$D")"
cb_created=$(opportunities)
# A later scheduled run, not one fired within the same second: HubSpot's search window (5 per
# second) still holds the first run's last searches, which a new process cannot know about.
sleep 1.1
t1b=$(now)
sync_once "$work/sync2.txt"
t2=$(now)
read -r cb2_hs_total _ _ _ _ <<<"$(calls "$HS")"
read -r cb2_d_total _ cb2_d_write _ _ <<<"$(calls "$D")"
cb2_created=$(opportunities)
cb_wall=$(minus "$t1" "$t0")
cb2_wall=$(minus "$t2" "$t1b")
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
printf '\nratio SDK / crmbridge: %sx the API calls, %sx the wall time\n' \
  "$(ratio "$sdk_total" "$cb_total")" "$(ratio "$sdk_wall" "$cb_wall")"
echo "sdk script: $(cat "$work/sdk.json")"
echo "JSON {\"records\":$N,\"sdk_calls\":$sdk_total,\"sdk_wall_s\":$(printf '%.2f' "$sdk_wall"),\"crmbridge_calls\":$cb_total,\"crmbridge_wall_s\":$(printf '%.2f' "$cb_wall"),\"crmbridge_second_calls\":$cb2_total,\"crmbridge_second_wall_s\":$(printf '%.2f' "$cb2_wall")}"

# The figures compare two programs doing the same job: both must have done it.
failed=0
if [ "$sdk_created" -ne "$N" ]; then
  echo "check failed: the SDK script created $sdk_created opportunities, not $N" >&2
  failed=1
fi
if [ "$cb_created" -ne "$N" ]; then
  echo "check failed: crmbridge created $cb_created opportunities, not $N" >&2
  failed=1
fi
if [ "$cb2_d_write" -ne "$cb_d_write" ] || [ "$cb2_created" -ne "$N" ]; then
  echo "check failed: crmbridge's second run made $((cb2_d_write - cb_d_write)) write calls to" \
    "Dynamics 365 (which now holds $cb2_created opportunities)" >&2
  failed=1
fi
exit "$failed"
