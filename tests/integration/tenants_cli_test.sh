#!/usr/bin/env bash
# The tenant commands as an operator meets them: bad input refused with its reason and position,
# secrets never shown, a tenant whose configuration breaks skipped while the others run, a
# backfill asked for and run by a worker, the worker's health endpoints and its clean stop.
#   usage: tenants_cli_test.sh BIN_DIR SOURCE_DIR THROWAWAY_POSTGRES
set -euo pipefail
bin=$1
src=$(cd "$2" && pwd)
pgtool=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-tenants.XXXXXX")
source "$(dirname "$0")/crm_mocks.sh"
source "$(dirname "$0")/postgres.sh"
worker_pid=""
cleanup() {
  [ -n "$worker_pid" ] && kill -KILL "$worker_pid" 2>/dev/null || true
  stop_crm_mocks
  stop_postgres
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -15 "$work/worker.log" >&2 2>/dev/null || true
  exit 1
}
cb() { "$bin/crmbridge" "$@"; }
# Runs a command that must fail with exit code $1; its stderr in $work/err.
expect_exit() {
  local want=$1
  shift
  set +e
  "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  set -e
  [ "$rc" -eq "$want" ] || fail "$* exited $rc, not $want: $(cat "$work/err")"
}

export HUBSPOT_TOKEN=pat-tenants D365_CLIENT_ID=tenants-client D365_CLIENT_SECRET=tenants-secret
export TOTANGO_TOKEN=tenants-totango PORTAL_TOKEN=tenants-portal
start_postgres "$pgtool" "$work"
password=$(sed -n 's#^postgresql://[^:]*:\([^@]*\)@.*#\1#p' <<<"$CRMBRIDGE_STATE_URL")
[ -n "$password" ] || fail "the throwaway server's URL has no password: the secret checks prove nothing"
start_crm_mocks "$bin" "$work" --seed 5 --size 6 --seed-only hubspot || fail "no mocks"

# A good tenant on the mocks, and one whose configuration will break.
sed -e "s#\.\./\.\./mappings/#$src/mappings/#g" -e '/^state:/d' "$src/examples/demo/crmbridge.yaml" \
  >"$work/good.yaml"
printf 'schedule: {every: 10s}\n' >>"$work/good.yaml"
cp "$work/good.yaml" "$work/breaks.yaml"

# --- bad input ---
expect_exit 0 cb tenants list
grep -q "No tenants yet" "$work/out" || fail "an empty registry said: $(cat "$work/out")"
expect_exit 2 cb tenants add Acme --config "$work/good.yaml"
grep -q "lowercase letter" "$work/err" || fail "a bad name was refused without saying why"
cp "$work/good.yaml" "$work/with-state.yaml"
printf 'state: ./tenant.db\n' >>"$work/with-state.yaml"
expect_exit 2 cb tenants add acme --config "$work/with-state.yaml"
state_line=$(grep -n "^state: ./tenant.db" "$work/with-state.yaml" | cut -d: -f1)
grep -q "with-state.yaml:$state_line:[0-9]*: error: a tenant keeps no 'state'" "$work/err" ||
  fail "a tenant's state key was not refused at its position: $(cat "$work/err")"
expect_exit 2 cb tenants list --state "$CRMBRIDGE_STATE_URL"
grep -q "holds a password" "$work/err" || fail "a password on the command line was taken"
! grep -qF "$password" "$work/err" || fail "the refusal showed the password"
expect_exit 2 env -u CRMBRIDGE_STATE_URL "$bin/crmbridge" tenants list
grep -q "CRMBRIDGE_STATE_URL" "$work/err" || fail "no state URL was not explained"
unreachable="postgresql://crmbridge:$password@127.0.0.1:1/nowhere?connect_timeout=2"
expect_exit 4 env CRMBRIDGE_STATE_URL="$unreachable" "$bin/crmbridge" tenants list
! grep -qF "$password" "$work/err" "$work/out" || fail "an unreachable server's message showed the password"
wrong=$(sed "s#:$password@#:not-the-$password@#" <<<"$CRMBRIDGE_STATE_URL")
expect_exit 4 env CRMBRIDGE_STATE_URL="$wrong" "$bin/crmbridge" worker
grep -q "password authentication failed" "$work/err" || fail "a refused login said: $(cat "$work/err")"
! grep -qF "$password" "$work/err" "$work/out" || fail "a refused login's message showed the password"

# --- two tenants, a worker, one configuration breaking ---
cb tenants add good --config "$work/good.yaml" >/dev/null || fail "tenants add good"
cb tenants add breaks --config "$work/breaks.yaml" >/dev/null || fail "tenants add breaks"
expect_exit 2 cb tenants add good --config "$work/good.yaml"
grep -q "already registered" "$work/err" || fail "a second tenant good was not refused clearly"
printf 'systems:\n  oops: {kind: hubspot}\n' >>"$work/breaks.yaml"  # a second systems key

"$bin/crmbridge" worker --concurrency 2 --lease-ttl 5s --poll 200ms --listen 127.0.0.1:0 \
  >"$work/worker.out" 2>"$work/worker.log" &
worker_pid=$!
port=""
for _ in $(seq 1 300); do
  port=$(sed -n 's#.*health on http://127.0.0.1:\([0-9]*\).*#\1#p' "$work/worker.out")
  [ -n "$port" ] && break
  kill -0 "$worker_pid" 2>/dev/null || fail "the worker exited at start"
  sleep 0.1
done
[ -n "$port" ] || fail "the worker did not say where its health endpoints are"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")" = 200 ] || fail "/healthz"
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] || fail "/readyz"

outcome_of() {
  cb tenants list --json | node -e '
    const all = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const t = all.find(t => t.name === process.argv[1]);
    console.log(t ? t.last_outcome : "");' "$1"
}
for _ in $(seq 1 300); do
  [ "$(outcome_of good)" = ok ] && [ -n "$(outcome_of breaks)" ] && break
  sleep 0.2
done
[ "$(outcome_of good)" = ok ] || fail "tenant good did not run: $(cb tenants list)"
[ "$(outcome_of breaks)" = config ] || fail "tenant breaks: $(cb tenants list)"
cb tenants list --json >"$work/list.json"
grep -q '"outbox_pending": 0' "$work/list.json" && grep -q '"dead_letters": 0' "$work/list.json" ||
  fail "tenants list shows no backlog counts: $(head -c 600 "$work/list.json")"
cb tenants list >"$work/list"
grep -q "breaks.yaml:[0-9]*:[0-9]*: error" "$work/list" ||
  fail "the broken configuration's problem has no position: $(cat "$work/list")"
cb status --tenant good --json >"$work/status.json" || fail "status --tenant good"
grep -q '"outcome": "ok"' "$work/status.json" || fail "status --tenant shows no run: $(head -c 300 "$work/status.json")"
opportunities=$(curl -s "$DEMO_DYNAMICS365_URL/__admin/dump" | node "$src/tests/integration/d365_end_state.mjs" |
  grep -c '^opportunity|' || true)
[ "$opportunities" -ge 6 ] || fail "tenant good's onboardings did not reach Dynamics 365 ($opportunities)"

# --- a backfill, asked for and run by the worker ---
expect_exit 2 cb backfill --tenant good --system nosuch
cb backfill --tenant good --system hubspot >"$work/backfill.out" || fail "backfill --tenant"
grep -q "a worker runs it" "$work/backfill.out" || fail "backfill --tenant said: $(cat "$work/backfill.out")"
ran=""
for _ in $(seq 1 150); do
  ran=$(psql "$CRMBRIDGE_STATE_URL" -Atc \
    "SELECT outcome FROM crmbridge_registry.tenant_runs WHERE tenant = 'good' AND job = 'backfill'")
  [ -n "$ran" ] && [ "$ran" != running ] && break
  sleep 0.2
done
[ "$ran" = ok ] || fail "the backfill asked for did not run: '$ran'"
# Into a file first: grep -q stops reading at its match, and with pipefail the writer's SIGPIPE
# would fail the check.
cb status --tenant good --json >"$work/status2.json" || fail "status --tenant good"
grep -q '"mode": "backfill"' "$work/status2.json" || fail "the backfill is not in the tenant's runs"

# --- removing a tenant, and stopping the worker ---
cb tenants remove breaks --drop-state >/dev/null || fail "tenants remove"
expect_exit 2 cb tenants remove breaks
[ "$(psql "$CRMBRIDGE_STATE_URL" -Atc "SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_breaks'")" = 0 ] ||
  fail "--drop-state left the tenant's schema"
kill -TERM "$worker_pid"
set +e
wait "$worker_pid"
rc=$?
set -e
worker_pid=""
[ "$rc" -eq 0 ] || fail "the worker exited $rc on SIGTERM"
! grep -qF "$password" "$work/worker.log" "$work/worker.out" || fail "the worker's log showed the password"
echo "tenants: bad input refused with its reason, no password shown, a broken tenant skipped at its position while another ran, a backfill run by the worker, health answered, a clean stop"
