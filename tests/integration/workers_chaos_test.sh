#!/usr/bin/env bash
# Many tenants, many workers, one PostgreSQL, and chaos: 12 tenants, each with its own set of mocks
# injecting faults, run by 3 `crmbridge worker` processes that are killed with SIGKILL and paused
# with SIGSTOP past their lease at random moments. In the end every tenant's Dynamics 365 and
# Totango hold exactly what a fault-free run of its data reaches (no duplicate, nothing lost), and
# the claim log in PostgreSQL shows that no tenant was ever run by two workers at once.
#   usage: workers_chaos_test.sh BIN_DIR SOURCE_DIR THROWAWAY_POSTGRES [TENANTS]
set -euo pipefail
bin=$1
src=$(cd "$2" && pwd)
pgtool=$3
tenants=${4:-12}
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-workers.XXXXXX")
source "$(dirname "$0")/postgres.sh"
pids=()
workers=()
cleanup() {
  for p in "${workers[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -KILL "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  stop_postgres
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  tail -15 "$work"/worker*.log >&2 2>/dev/null || true
  exit 1
}
command -v node >/dev/null || fail "node is required (scripts/setup.sh installs it)"
command -v psql >/dev/null || fail "psql is required (scripts/setup.sh installs postgresql)"

export HUBSPOT_TOKEN=pat-chaos D365_CLIENT_ID=chaos-client D365_CLIENT_SECRET=chaos-secret
export TOTANGO_TOKEN=chaos-totango PORTAL_TOKEN=chaos-portal
start_postgres "$pgtool" "$work"

# Starts crm-mocks for `name` with the given flags; its base URLs in $work/NAME.urls.
start_mocks() {
  local name=$1
  shift
  "$bin/crm-mocks" --hubspot-token "$HUBSPOT_TOKEN" --dynamics365-client-id "$D365_CLIENT_ID" \
    --dynamics365-client-secret "$D365_CLIENT_SECRET" --totango-token "$TOTANGO_TOKEN" \
    --portal-token "$PORTAL_TOKEN" --seed-only hubspot portal "$@" \
    >"$work/$name.urls" 2>>"$work/mocks.log" &
  pids+=($!)
  for _ in $(seq 1 600); do [ -s "$work/$name.urls" ] && return 0; sleep 0.1; done
  fail "crm-mocks for $name did not start: $(tail -3 "$work/mocks.log")"
}
url_of() { sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p" "$work/$1.urls"; }
# The demo configuration with `name`'s mocks written in (every tenant has its own), its state left
# to the worker, a schedule, and retries within the run.
config_for() {
  local name=$1
  sed -e "s#\.\./\.\./mappings/#$src/mappings/#g" -e '/^state:/d' \
    -e "s#\${env:DEMO_HUBSPOT_URL}#$(url_of "$name" hubspot)#g" \
    -e "s#\${env:DEMO_DYNAMICS365_URL}#$(url_of "$name" dynamics365)#g" \
    -e "s#\${env:DEMO_TOTANGO_URL}#$(url_of "$name" totango)#g" \
    -e "s#\${env:DEMO_PORTAL_URL}#$(url_of "$name" portal)#g" \
    "$src/examples/demo/crmbridge.yaml" >"$work/$name.yaml"
  printf 'schedule: {every: 10s}\nsync:\n  retry_backoff: 0s\n  max_outbox_attempts: 50\n  max_verify_attempts: 10\n' \
    >>"$work/$name.yaml"
}
# What Dynamics 365 and Totango hold, normalized and free of row ids (as the convergence test).
end_state() {
  curl -s "$(url_of "$1" dynamics365)/__admin/dump" | node "$src/tests/integration/d365_end_state.mjs" >"$2.d365"
  curl -s "$(url_of "$1" totango)/__admin/dump" | grep -o '"Onboarding Stage":"[^"]*"\|"display_name":"[^"]*"' \
    | paste -d'|' - - | sort >"$2.totango"
}

# --- the fault-free end state of each seed (tenants share three seeds) ---
size=10
for seed in 1 2 3; do
  start_mocks "clean$seed" --seed "$seed" --size "$size" --no-limits
  config_for "clean$seed"
  printf 'state: "%s"\n' "$work/clean$seed.db" >>"$work/clean$seed.yaml"
  "$bin/crmbridge" --config "$work/clean$seed.yaml" --log-level error sync >/dev/null ||
    fail "seed $seed: the fault-free run failed"
  end_state "clean$seed" "$work/want$seed"
  [ "$(grep -c '^opportunity|' "$work/want$seed.d365")" -eq "$size" ] ||
    fail "seed $seed: the fault-free run made no $size opportunities"
done

# --- the tenants, each on mocks of its own that inject faults ---
for i in $(seq 1 "$tenants"); do
  seed=$(( (i - 1) % 3 + 1 ))
  start_mocks "t$i" --seed "$seed" --size "$size" --no-limits --fault-seed "$i" \
    --fault "hubspot:POST /search status=502 rate=0.1" \
    --fault "hubspot:* * status=429 rate=0.05 retry_after=0" \
    --fault "dynamics365:POST /\$batch status=503 rate=0.15" \
    --fault "dynamics365:POST /\$batch status=504 applied rate=0.1" \
    --fault "dynamics365:* * latency=40 rate=0.5" \
    --fault "totango:GET /pixel.gif lost rate=0.2"
  config_for "t$i"
  "$bin/crmbridge" tenants add "t$i" --config "$work/t$i.yaml" >/dev/null ||
    fail "tenants add t$i failed"
done
"$bin/crmbridge" tenants add "t1" --config "$work/t1.yaml" >/dev/null 2>"$work/dup.err" &&
  fail "a second tenant t1 was accepted"
grep -q "already registered" "$work/dup.err" || fail "a second t1 was refused without saying so: $(cat "$work/dup.err")"

start_worker() {
  "$bin/crmbridge" worker --concurrency 2 --lease-ttl 3s --poll 200ms --listen 127.0.0.1:0 \
    >>"$work/worker$1.out" 2>>"$work/worker$1.log" &
  workers[$1]=$!
}
for w in 0 1 2; do start_worker "$w"; done

# --- chaos: for a while, every second or two a worker is killed (and started again) or paused
# past its lease (and let go on) ---
kills=0
pauses=0
held_pauses=0
# The worker of a live claim, by its holder name (host:pid:id), if it is one of ours.
holding_worker() {
  local pid w
  pid=$(psql "$CRMBRIDGE_STATE_URL" -Atc "SELECT split_part(holder, ':', 2) FROM crmbridge_registry.tenants
    WHERE lease_until_ms > (extract(epoch from clock_timestamp()) * 1000)::bigint ORDER BY random() LIMIT 1")
  for w in 0 1 2; do [ "${workers[$w]}" = "$pid" ] && echo "$w" && return 0; done
  return 0
}
end=$((SECONDS + 30))
while [ "$SECONDS" -lt "$end" ]; do
  sleep "1.$((RANDOM % 9))"
  w=$((RANDOM % 3))
  # Every other pause is of a worker in the middle of a run: its claim must be lost and taken.
  held=""
  if [ $((pauses % 2)) -eq 0 ]; then held=$(holding_worker); fi
  if [ -n "$held" ]; then
    w=$held
    kill -STOP "${workers[$w]}" 2>/dev/null || true
    sleep 4
    kill -CONT "${workers[$w]}" 2>/dev/null || true
    pauses=$((pauses + 1))
    held_pauses=$((held_pauses + 1))
  elif [ $((RANDOM % 2)) -eq 0 ]; then
    kill -KILL "${workers[$w]}" 2>/dev/null || true
    wait "${workers[$w]}" 2>/dev/null || true
    kills=$((kills + 1))
    start_worker "$w"
  else
    kill -STOP "${workers[$w]}" 2>/dev/null || true
    sleep 4  # past the 3 s lease: its tenants are claimed by the others meanwhile
    kill -CONT "${workers[$w]}" 2>/dev/null || true
    pauses=$((pauses + 1))
  fi
done

# --- every tenant converges: its last run wrote nothing and left nothing queued ---
converged() {
  "$bin/crmbridge" --log-level error status --tenant "$1" --json >"$work/$1.status" 2>/dev/null || return 1
  node -e '
    const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const last = s.runs[0];
    const ok = last && last.outcome === "ok" && last.counts.writes === 0 &&
               Object.keys(s.outbox_pending).length === 0 && s.dead_letters === 0;
    process.exit(ok ? 0 : 1);' "$work/$1.status"
}
left=""
for _ in $(seq 1 120); do
  left=""
  for i in $(seq 1 "$tenants"); do converged "t$i" || left="$left t$i"; done
  [ -z "$left" ] && break
  sleep 1
done
[ -z "$left" ] || fail "tenants that did not converge:$left"
for w in 0 1 2; do kill -TERM "${workers[$w]}" 2>/dev/null || true; done
for w in 0 1 2; do wait "${workers[$w]}" 2>/dev/null || true; done
workers=()

for i in $(seq 1 "$tenants"); do
  seed=$(( (i - 1) % 3 + 1 ))
  end_state "t$i" "$work/got$i"
  diff "$work/want$seed.d365" "$work/got$i.d365" >/dev/null ||
    fail "tenant t$i: Dynamics 365 differs from the fault-free run: $(diff "$work/want$seed.d365" "$work/got$i.d365" | head -6 | tr "\n" " ")"
  diff "$work/want$seed.totango" "$work/got$i.totango" >/dev/null ||
    fail "tenant t$i: Totango differs from the fault-free run"
done

# --- no tenant was ever run by two workers at once: a claim's authority ends at its release or
# at its lease's end, whichever is first, and the next claim starts after it ---
overlaps=$(psql "$CRMBRIDGE_STATE_URL" -Atc "
  WITH r AS (
    SELECT tenant, epoch, started_ms,
           CASE WHEN finished_ms > 0 THEN least(finished_ms, lease_until_ms) ELSE lease_until_ms END AS ends,
           lead(started_ms) OVER (PARTITION BY tenant ORDER BY epoch) AS next_start
    FROM crmbridge_registry.tenant_runs)
  SELECT count(*) FROM r WHERE next_start IS NOT NULL AND next_start < ends")
[ "$overlaps" = "0" ] || fail "$overlaps claim(s) overlapped the one before"
epochs=$(psql "$CRMBRIDGE_STATE_URL" -Atc "
  SELECT count(*) FROM (SELECT tenant, epoch, count(*) FROM crmbridge_registry.tenant_runs
                        GROUP BY tenant, epoch HAVING count(*) > 1) d")
[ "$epochs" = "0" ] || fail "an epoch was claimed twice"
claims=$(psql "$CRMBRIDGE_STATE_URL" -Atc "SELECT count(*) FROM crmbridge_registry.tenant_runs")
lost=$(psql "$CRMBRIDGE_STATE_URL" -Atc \
  "SELECT count(*) FROM crmbridge_registry.tenant_runs WHERE outcome LIKE 'lease lost%' OR finished_ms = 0")
refused=$(psql "$CRMBRIDGE_STATE_URL" -Atc "SELECT coalesce(sum(refused_commits), 0) FROM crmbridge_registry.tenants")
[ "$((kills + pauses))" -gt 0 ] || fail "no chaos happened"
# A worker paused mid-run past its lease comes back to a claim that is no longer its own.
if [ "$held_pauses" -gt 0 ]; then
  [ "$lost" -gt 0 ] || fail "$held_pauses worker(s) paused mid-run past the lease, and no claim was lost"
fi
echo "workers chaos: $tenants tenants converged to their fault-free end state through $kills SIGKILLs and $pauses SIGSTOPs past the lease ($held_pauses mid-run); $claims claims, $lost lost or abandoned, $refused stale-epoch commit(s) refused, no two claims of a tenant overlapped"
