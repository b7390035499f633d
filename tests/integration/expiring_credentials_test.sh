#!/usr/bin/env bash
# Credentials that expire mid-run, through the binaries: the demo with HubSpot on a public app's
# OAuth (a refresh token traded for access tokens) and Dynamics 365 on certificate credentials
# (its client secret replaced by a certificate and its key, files beside the configuration),
# against mocks whose access tokens last two seconds, so that one sync renews both several times.
# Every onboarding arrives; neither the refresh token nor the key shows in the trace log, the
# output or the state. A certificate the application does not have registered, and a refresh
# token HubSpot does not know, stop the run with the vendor's reason.
#   usage: expiring_credentials_test.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1
src=$(cd "$2" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-credentials.XXXXXX")
source "$(dirname "$0")/crm_mocks.sh"
cleanup() { stop_crm_mocks; rm -rf "$work"; }
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -5 "$work"/*.log >&2 2>/dev/null || true
  curl -s "${DEMO_DYNAMICS365_URL:-http://127.0.0.1:1}/__admin/stats" >&2 || true
  exit 1
}
command -v openssl >/dev/null || fail "openssl is required (scripts/setup.sh installs it)"
command -v node >/dev/null || fail "node is required (scripts/setup.sh installs it)"

# The application's certificate, as an administrator makes one to register in Entra ID.
mkdir -p "$work/certs" "$work/other"
for dir in certs other; do
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=crmbridge-$dir" \
    -keyout "$work/$dir/app.key" -out "$work/$dir/app.crt" 2>/dev/null || fail "openssl req"
done

export HUBSPOT_TOKEN=pat-not-used HS_CLIENT_ID=oauth-app-id HS_CLIENT_SECRET=oauth-app-secret-c4n4ry
export HS_REFRESH_TOKEN=na1-refresh-c4n4ry-8f2e D365_CLIENT_ID=cert-client
export D365_CLIENT_SECRET=never-sent-secret TOTANGO_TOKEN=cert-totango PORTAL_TOKEN=cert-portal
size=12
start_crm_mocks "$bin" "$work" --seed 4 --size "$size" --seed-only hubspot portal \
  --hubspot-oauth-client-id "$HS_CLIENT_ID" --hubspot-oauth-client-secret "$HS_CLIENT_SECRET" \
  --hubspot-refresh-token "$HS_REFRESH_TOKEN" --hubspot-oauth-lifetime 2 \
  --dynamics365-certificate "$work/certs/app.crt" --dynamics365-token-lifetime 2 \
  --fault "dynamics365: latency=150" --fault "hubspot: latency=300" || fail "no mocks"
# The demo's configuration: HubSpot's private-app token replaced by the OAuth app's keys, Dynamics
# 365's secret by the certificate's files, named relative to the configuration; small batches, so
# that the run makes many requests.
sed -e "s#\.\./\.\./mappings/#$src/mappings/#g" \
  -e 's#auth: {token: "${env:HUBSPOT_TOKEN}"}#auth: {client_id: "${env:HS_CLIENT_ID}", client_secret: "${env:HS_CLIENT_SECRET}", refresh_token: "${env:HS_REFRESH_TOKEN}"}#' \
  -e 's#^\( *\)options: {default_owner: \([^}]*\)}#\1options: {default_owner: \2, batch_size: 2}#' \
  -e 's#^\( *\)client_secret: "${env:D365_CLIENT_SECRET}"#\1certificate_file: certs/app.crt\n\1private_key_file: certs/app.key#' \
  "$src/examples/demo/crmbridge.yaml" >"$work/crmbridge.yaml"
grep -q "private_key_file: certs/app.key" "$work/crmbridge.yaml" && grep -q "batch_size: 2" "$work/crmbridge.yaml" &&
  grep -q 'refresh_token: "${env:HS_REFRESH_TOKEN}"' "$work/crmbridge.yaml" ||
  fail "the demo's HubSpot or Dynamics 365 lines moved"
export CRMBRIDGE_STATE="$work/state.db"
unset D365_CLIENT_SECRET HUBSPOT_TOKEN

set +e
"$bin/crmbridge" --config "$work/crmbridge.yaml" --log-level trace sync >"$work/sync.out" 2>"$work/sync.log"
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "the certificate-authenticated sync exited $rc: $(tail -3 "$work/sync.log")"
opportunities=$(curl -s "$DEMO_DYNAMICS365_URL/__admin/dump" | node "$src/tests/integration/d365_end_state.mjs" |
  grep -c '^opportunity|' || true)
[ "$opportunities" -eq "$size" ] || fail "$opportunities of $size onboardings reached Dynamics 365"
# How often a mock's route was called.
count() {
  curl -s "$1/__admin/stats" | node -e '
    const s = JSON.parse(require("fs").readFileSync(0, "utf8"));
    console.log(s[process.argv[1]] || 0);' "$2"
}
tokens=$(count "$DEMO_DYNAMICS365_URL" "POST /{tenant}/oauth2/v2.0/token")
[ "$tokens" -ge 3 ] || fail "the sync asked Dynamics 365 for $tokens token(s): never renewed"
hs_tokens=$(count "$DEMO_HUBSPOT_URL" "POST /oauth/v3/token")
[ "$hs_tokens" -ge 2 ] || fail "the sync asked HubSpot for $hs_tokens token(s): never renewed"
grep -q "client_assertion" "$work/sync.log" || fail "the trace log shows no client assertion sent"
# The key's body, any whole assertion (a JWT signed with it), the refresh token and the app's
# secret never leave the process.
key_line=$(sed -n 3p "$work/certs/app.key")
[ "${#key_line}" -ge 60 ] || fail "the key file has no body line to look for"
for f in "$work/sync.log" "$work/sync.out" "$work/state.db"; do
  ! grep -qF "$key_line" "$f" || fail "$(basename "$f") shows the private key"
  ! grep -qE 'client_assertion=eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{20,}' "$f" ||
    fail "$(basename "$f") shows a signed client assertion"
  ! grep -qF -e "$HS_REFRESH_TOKEN" -e "$HS_CLIENT_SECRET" "$f" ||
    fail "$(basename "$f") shows HubSpot's refresh token or client secret"
done

# A certificate the application does not have registered: refused, with Entra ID's reason.
cp "$work/certs/app.key" "$work/certs-good.key"
cp "$work/certs/app.crt" "$work/certs-good.crt"
cp "$work/other/app.key" "$work/certs/app.key"
cp "$work/other/app.crt" "$work/certs/app.crt"
set +e
"$bin/crmbridge" --config "$work/crmbridge.yaml" sync >"$work/refused.out" 2>"$work/refused.log"
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a certificate not registered was taken"
grep -q "AADSTS700027" "$work/refused.out" "$work/refused.log" ||
  fail "the refusal does not give Entra ID's reason: $(tail -3 "$work/refused.log")"

# A refresh token HubSpot does not know (the app uninstalled, say): refused, with HubSpot's reason.
cp "$work/certs-good.key" "$work/certs/app.key"
cp "$work/certs-good.crt" "$work/certs/app.crt"
set +e
HS_REFRESH_TOKEN=na1-revoked-token "$bin/crmbridge" --config "$work/crmbridge.yaml" sync \
  >"$work/revoked.out" 2>"$work/revoked.log"
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "a refresh token HubSpot does not know was taken"
grep -q "unknown refresh token" "$work/revoked.out" "$work/revoked.log" ||
  fail "the refusal does not give HubSpot's reason: $(tail -3 "$work/revoked.log")"
echo "PASS: a sync of $size onboardings on expiring credentials ($hs_tokens HubSpot and $tokens Dynamics 365 tokens); an unregistered certificate and an unknown refresh token refused"
