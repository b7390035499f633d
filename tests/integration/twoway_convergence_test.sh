#!/usr/bin/env bash
# Two-way convergence, end to end through the real binaries. For each seed, companies and contacts
# are made in HubSpot, in Dynamics 365 and in both (the same domain or email in each before the
# first sync), then rounds of edits are made in both systems through their APIs, as users would,
# between crmbridge runs: the same field on both sides (a true conflict), the phone that Dynamics
# 365 owns, a contact's company; and what real data does besides edits: contacts archived,
# deleted and restored, companies merged in either system, contacts merged in Dynamics 365. The
# runs go through faults on the writes (429s, 5xx, writes that
# land but answer an error, dropped connections, failed items of a batch) and SIGKILLs at random
# moments. At the end the faults are removed and crmbridge runs until nothing is left to write;
# then every field must hold, in both systems, the newest edit made to it (twoway_oracle.mjs), with
# each record once in each system and no dead letter.
#
# So that "newest" is exact: every round's edits are read by a complete run before the next
# round's edits are made (faults hit writes only, and a killed run is followed by runs until one
# ends cleanly); each record is changed at most once per system per round, in one request that
# sets its modification time; and two edits of the same field are made more than 1.2 s apart, so
# their order is their order by modification time although Dynamics 365 dates to the second.
#
#   usage: twoway_convergence_test.sh BIN_DIR SOURCE_DIR [SEEDS]
#   CRMBRIDGE_TWOWAY_SEEDS=N runs N seeds (default: SEEDS, else 3), from CRMBRIDGE_TWOWAY_FIRST_SEED
#   (default 1); CRMBRIDGE_TWOWAY_ROUNDS sets the rounds of edits per seed (default 5);
#   CRMBRIDGE_TWOWAY_KEEP=1 keeps the work folder (logs, dumps, edits) for a look afterwards.
set -euo pipefail
bin=$1
src=$(cd "$2" && pwd)
here=$src/tests/integration
seeds=${CRMBRIDGE_TWOWAY_SEEDS:-${3:-3}}
first_seed=${CRMBRIDGE_TWOWAY_FIRST_SEED:-1}
rounds=${CRMBRIDGE_TWOWAY_ROUNDS:-5}
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-twoway.XXXXXX")
mocks_pid=""
cleanup() {
  if [ -n "$mocks_pid" ]; then kill "$mocks_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if [ -n "${CRMBRIDGE_TWOWAY_KEEP:-}" ]; then echo "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v node >/dev/null || fail "node is required (scripts/setup.sh installs it)"

export HUBSPOT_TOKEN=pat-twoway D365_CLIENT_ID=twoway-client D365_CLIENT_SECRET=twoway-secret
cfg=$here/twoway_crmbridge.yaml

# Starts empty mocks; sets DEMO_*_URL, mocks_pid and d365_token. A start that prints no URLs in
# 20 s is tried again, twice.
start_mocks() {
  local out="$work/mocks.json" line="" try
  for try in 1 2 3; do
    # Created here, not by the background job's redirection, which may come after the first look.
    : >"$out"
    "$bin/crm-mocks" --hubspot-token "$HUBSPOT_TOKEN" --dynamics365-client-id "$D365_CLIENT_ID" \
      --dynamics365-client-secret "$D365_CLIENT_SECRET" --size 0 --no-limits \
      >"$out" 2>>"$work/mocks.log" &
    mocks_pid=$!
    for _ in $(seq 1 400); do
      line=$(head -n1 "$out" 2>/dev/null || true)
      if [[ $line == *'"dynamics365":"'* ]]; then break; fi
      if ! kill -0 "$mocks_pid" 2>/dev/null; then break; fi
      sleep 0.05
    done
    if [[ $line == *'"dynamics365":"'* ]]; then break; fi
    set +e
    kill "$mocks_pid" 2>/dev/null
    wait "$mocks_pid"
    echo "crm-mocks printed no URLs (try $try, exit status $?): $(head -c 300 "$out")" >>"$work/mocks.log"
    set -e
    mocks_pid=""
  done
  DEMO_HUBSPOT_URL=$(sed -n 's/.*"hubspot":"\([^"]*\)".*/\1/p' <<<"$line")
  DEMO_DYNAMICS365_URL=$(sed -n 's/.*"dynamics365":"\([^"]*\)".*/\1/p' <<<"$line")
  export DEMO_HUBSPOT_URL DEMO_DYNAMICS365_URL
  [ -n "$DEMO_DYNAMICS365_URL" ] || fail "crm-mocks did not start: $(tail -3 "$work/mocks.log")"
  d365_token=$(curl -sS -X POST "$DEMO_DYNAMICS365_URL/tenant/oauth2/v2.0/token" \
    --data-urlencode grant_type=client_credentials --data-urlencode "client_id=$D365_CLIENT_ID" \
    --data-urlencode "client_secret=$D365_CLIENT_SECRET" \
    --data-urlencode "scope=$DEMO_DYNAMICS365_URL/.default" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
  [ -n "$d365_token" ] || fail "the Dynamics 365 mock gave no access token"
}
stop_mocks() {
  kill "$mocks_pid" 2>/dev/null || true
  wait "$mocks_pid" 2>/dev/null || true
  mocks_pid=""
}

# The vendors' APIs, as a user's client calls them (faults are off while users edit): any error
# stops the test.
hs_call() {  # METHOD PATH [JSON]
  local args=(-sS --fail-with-body -X "$1" "$DEMO_HUBSPOT_URL$2" -H "Authorization: Bearer $HUBSPOT_TOKEN")
  if [ $# -ge 3 ]; then args+=(-H 'Content-Type: application/json' --data "$3")
  elif [ "$1" = PUT ]; then args+=(-H 'Content-Length: 0'); fi
  curl "${args[@]}" || fail "HubSpot refused $1 $2 ${3:-}"
}
d365_call() {  # METHOD PATH [JSON]
  local args=(-sS --fail-with-body -X "$1" "$DEMO_DYNAMICS365_URL/api/data/v9.2/$2"
              -H "Authorization: Bearer $d365_token" -H 'Prefer: return=representation')
  if [ "$1" = PATCH ]; then args+=(-H 'If-Match: *'); fi
  if [ $# -ge 3 ]; then args+=(-H 'Content-Type: application/json' --data "$3"); fi
  curl "${args[@]}" || fail "Dynamics 365 refused $1 $2 ${3:-}"
}

now_ms() { date +%s%3N; }
# Waits until each field named ("entity|key|field") was last set more than 1.2 s ago.
settle() {
  local newest=0 f t
  for f in "$@"; do
    t=${last_set[$f]:-0}
    if ((t > newest)); then newest=$t; fi
  done
  local left=$((newest + 1200 - $(now_ms)))
  if ((left > 0)); then sleep "$((left / 1000)).$(printf '%03d' $((left % 1000)))"; fi
}
# Logs one field a user set, for the oracle, and when.
record() {  # SYSTEM ENTITY KEY FIELD VALUE
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$1" "$2" "$3" "$4" "$5" >>"$edits"
  last_set["$2|$3|$4"]=$(now_ms)
}
# A new value for a field: distinct from every value set before.
new_value() {  # FIELD; sets value
  n=$((n + 1))
  case $1 in
    name) value="Company $n" ;;
    city) value="City $n" ;;
    phone) value="+46 8 555 $n" ;;
    first_name) value="First $n" ;;
    last_name) value="Last $n" ;;
  esac
}

# Native ids of every record, read from the mocks (records crmbridge made get theirs here):
# id[SYSTEM|ENTITY|KEY], and parent[SYSTEM|EMAIL] the native ids of a contact's companies.
refresh_ids() {
  curl -s "$DEMO_HUBSPOT_URL/__admin/dump" >"$work/hs.json"
  curl -s "$DEMO_DYNAMICS365_URL/__admin/dump" >"$work/d365.json"
  local system entity key native assoc
  id=() parent=()  # merged, archived and deleted records have none
  while read -r system entity key native assoc; do
    id["$system|$entity|$key"]=$native
    if [ "$entity" = contact ]; then parent["$system|$key"]=${assoc//,/ }; fi
  done < <(node "$here/twoway_oracle.mjs" ids "$work/hs.json" "$work/d365.json")
}

create_company() {  # SYSTEM DOMAIN
  local system=$1 domain=$2 name city phone body
  settle "company|$domain|name" "company|$domain|city" "company|$domain|phone"
  new_value name; name=$value
  new_value city; city=$value
  new_value phone; phone=$value
  if [ "$system" = hubspot ]; then
    body="{\"properties\":{\"name\":\"$name\",\"domain\":\"$domain\",\"city\":\"$city\",\"phone\":\"$phone\"}}"
    id["hubspot|company|$domain"]=$(hs_call POST /crm/v3/objects/companies "$body" |
                                     grep -o '"id":"[0-9]*"' | head -n1 | cut -d'"' -f4)
  else
    body="{\"name\":\"$name\",\"websiteurl\":\"$domain\",\"address1_city\":\"$city\",\"telephone1\":\"$phone\"}"
    id["dynamics365|company|$domain"]=$(d365_call POST accounts "$body" |
                                         grep -o '"accountid":"[^"]*"' | cut -d'"' -f4)
  fi
  record "$system" company "$domain" name "$name"
  record "$system" company "$domain" city "$city"
  record "$system" company "$domain" phone "$phone"
}

create_contact() {  # SYSTEM EMAIL COMPANY-DOMAIN
  local system=$1 email=$2 company=$3 first last body
  settle "contact|$email|first_name" "contact|$email|last_name" "contact|$email|company"
  new_value first_name; first=$value
  new_value last_name; last=$value
  if [ "$system" = hubspot ]; then
    body="{\"properties\":{\"email\":\"$email\",\"firstname\":\"$first\",\"lastname\":\"$last\"},"
    body+="\"associations\":[{\"to\":{\"id\":\"${id[hubspot|company|$company]}\"},"
    body+="\"types\":[{\"associationCategory\":\"HUBSPOT_DEFINED\",\"associationTypeId\":1}]}]}"
    id["hubspot|contact|$email"]=$(hs_call POST /crm/v3/objects/contacts "$body" |
                                    grep -o '"id":"[0-9]*"' | head -n1 | cut -d'"' -f4)
  else
    body="{\"firstname\":\"$first\",\"lastname\":\"$last\",\"emailaddress1\":\"$email\","
    body+="\"parentcustomerid_account@odata.bind\":\"/accounts(${id[dynamics365|company|$company]})\"}"
    id["dynamics365|contact|$email"]=$(d365_call POST contacts "$body" |
                                        grep -o '"contactid":"[^"]*"' | cut -d'"' -f4)
  fi
  record "$system" contact "$email" first_name "$first"
  record "$system" contact "$email" last_name "$last"
  record "$system" contact "$email" company "$company"
}

# One user's change of one record in one system: FIELDS get new values in one request (a HubSpot
# contact's company is re-associated first; the update that follows dates the change).
edit() {  # SYSTEM ENTITY KEY FIELD...
  local system=$1 entity=$2 key=$3
  shift 3
  local fields=("$@") f props="" company="" native c choices=()
  for f in "${fields[@]}"; do
    if [ "$f" = company ]; then
      # A company this system has, not one the contact belongs to there (that would change
      # nothing).
      for c in "${companies[@]}"; do
        c_id=${id[$system|company|$c]:-}
        # Not a company merged this round (its id is gone in the merging system).
        if [ -n "$c_id" ] && [ -z "${touched[$system|$c]:-}" ] && [[ " ${parent[$system|$key]:-} " != *" $c_id "* ]]; then choices+=("$c"); fi
      done
      if [ ${#choices[@]} -eq 0 ]; then return 0; fi
      company=${choices[$((RANDOM % ${#choices[@]}))]}
    fi
  done
  for f in "${fields[@]}"; do settle "$entity|$key|$f"; done
  for f in "${fields[@]}"; do
    if [ "$f" != company ]; then
      new_value "$f"
      printf -v "v_$f" '%s' "$value"
    fi
  done
  native=${id[$system|$entity|$key]}
  if [ "$system" = hubspot ]; then
    if [ -n "$company" ]; then
      local to=${id[hubspot|company|$company]} old
      hs_call PUT "/crm/v4/objects/contacts/$native/associations/default/companies/$to" >/dev/null
      for old in ${parent[hubspot|$key]:-}; do
        if [ "$old" != "$to" ] && [ "$old" != - ]; then
          hs_call DELETE "/crm/v4/objects/contacts/$native/associations/companies/$old" >/dev/null
        fi
      done
    fi
    for f in "${fields[@]}"; do
      case $f in
        name) props+="${props:+,}\"name\":\"$v_name\"" ;;
        city) props+="${props:+,}\"city\":\"$v_city\"" ;;
        phone) props+="${props:+,}\"phone\":\"$v_phone\"" ;;
        first_name) props+="${props:+,}\"firstname\":\"$v_first_name\"" ;;
        last_name) props+="${props:+,}\"lastname\":\"$v_last_name\"" ;;
      esac
    done
    local type=companies
    if [ "$entity" = contact ]; then type=contacts; fi
    hs_call PATCH "/crm/v3/objects/$type/$native" "{\"properties\":{$props}}" >/dev/null
  else
    for f in "${fields[@]}"; do
      case $f in
        name) props+="${props:+,}\"name\":\"$v_name\"" ;;
        city) props+="${props:+,}\"address1_city\":\"$v_city\"" ;;
        phone) props+="${props:+,}\"telephone1\":\"$v_phone\"" ;;
        first_name) props+="${props:+,}\"firstname\":\"$v_first_name\"" ;;
        last_name) props+="${props:+,}\"lastname\":\"$v_last_name\"" ;;
        company)
          props+="${props:+,}\"parentcustomerid_account@odata.bind\":\"/accounts(${id[dynamics365|company|$company]})\"" ;;
      esac
    done
    local set=accounts
    if [ "$entity" = contact ]; then set=contacts; fi
    d365_call PATCH "$set($native)" "{$props}" >/dev/null
  fi
  for f in "${fields[@]}"; do
    if [ "$f" = company ]; then
      record "$system" "$entity" "$key" company "$company"
    else
      c="v_$f"
      record "$system" "$entity" "$key" "$f" "${!c}"
    fi
  done
}

# What real CRM data does besides edits, at most once a round, before the round's edits and to
# records they leave alone (touched): a contact archived in HubSpot or deleted in Dynamics 365
# (deleted in the other too: on_delete: propagate); an archived contact restored from HubSpot's
# recycle bin and then edited there (a restore moves no modification time: the edit is how a run
# finds it); two companies merged in either system; two contacts of one company merged in Dynamics
# 365 (in HubSpot a merged contact keeps the companies of both, which one company field cannot
# hold). A merge waits until no contact is archived (an archived contact's company must not be
# merged away under it). Logged as events for the oracle (_archived, _restored, _merged).
declare -A gone=()
# Whether both systems hold contact $1 with the same company (a write still on its way would leave
# them apart, and an event on such a contact tests the write's race, not the event).
agrees() {
  local c=$1 system d ids want="" x
  for system in hubspot dynamics365; do
    ids=" ${parent[$system|$c]:--} " d=""
    for x in "${companies[@]}"; do
      if [[ $ids == *" ${id[$system|company|$x]:-none} "* ]]; then d+="$x "; fi
    done
    if [ "$system" = hubspot ]; then want=$d; elif [ "$d" != "$want" ]; then return 1; fi
  done
  [ -n "${id[hubspot|contact|$c]:-}" ] && [ -n "${id[dynamics365|contact|$c]:-}" ]
}
data_event() {
  local kinds=() key other native absorbed survivor d
  local live=() c
  local all_agree=1
  for c in "${contacts[@]}"; do
    if [ -z "${gone[$c]:-}" ] && agrees "$c"; then live+=("$c"); fi
    if [ -z "${gone[$c]:-}" ] && ! agrees "$c"; then all_agree=0; fi
  done
  if ((${#live[@]} > 2)); then kinds+=(archive_hubspot delete_dynamics365); fi
  if ((${#gone[@]} > 0)); then kinds+=(restore restore); fi
  if ((${#gone[@]} == 0 && all_agree && ${#companies[@]} > 2)); then
    kinds+=(merge_companies_hubspot merge_companies_dynamics365)
  fi
  if ((${#gone[@]} == 0)); then kinds+=(merge_contacts_dynamics365); fi
  case ${kinds[$((RANDOM % ${#kinds[@]}))]} in
    archive_hubspot | delete_dynamics365)
      key=${live[$((RANDOM % ${#live[@]}))]}
      if ((RANDOM % 2)); then
        native=${id[hubspot|contact|$key]:-}
        [ -n "$native" ] || return 0
        hs_call DELETE "/crm/v3/objects/contacts/$native" >/dev/null
        record hubspot contact "$key" _archived ""
      else
        native=${id[dynamics365|contact|$key]:-}
        [ -n "$native" ] || return 0
        d365_call DELETE "contacts($native)" >/dev/null
        record dynamics365 contact "$key" _archived ""
      fi
      gone[$key]=1
      touched[hubspot|$key]=1 touched[dynamics365|$key]=1
      ;;
    restore)
      local keys=("${!gone[@]}")
      key=${keys[$((RANDOM % ${#keys[@]}))]}
      # Archived in HubSpot, by a user or by crmbridge (the contact deleted in Dynamics 365).
      native=$(node -e '
        const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const c = (d.contacts || []).find((c) => c.archived &&
          String(c.properties.email || "").trim().toLowerCase() === process.argv[2]);
        console.log(c ? c.id : "")' "$work/hs.json" "$key")
      [ -n "$native" ] || return 0
      curl -sS --fail -X POST -H 'Content-Type: application/json' -d '{}' \
        "$DEMO_HUBSPOT_URL/__admin/objects/contacts/$native/restore" >/dev/null ||
        fail "the HubSpot mock did not restore contact $native"
      record hubspot contact "$key" _restored ""
      unset "gone[$key]"
      settle "contact|$key|first_name"
      new_value first_name
      hs_call PATCH "/crm/v3/objects/contacts/$native" "{\"properties\":{\"firstname\":\"$value\"}}" >/dev/null
      record hubspot contact "$key" first_name "$value"
      touched[hubspot|$key]=1 touched[dynamics365|$key]=1
      ;;
    merge_companies_hubspot | merge_companies_dynamics365)
      local system=hubspot i j
      if ((RANDOM % 2)); then system=dynamics365; fi
      i=$((RANDOM % ${#companies[@]}))
      j=$(((i + 1 + RANDOM % (${#companies[@]} - 1)) % ${#companies[@]}))
      absorbed=${companies[$i]} survivor=${companies[$j]}
      local a=${id[$system|company|$absorbed]:-} b=${id[$system|company|$survivor]:-}
      [ -n "$a" ] && [ -n "$b" ] || return 0
      if [ "$system" = hubspot ]; then
        hs_call POST /crm/v3/objects/companies/merge "{\"primaryObjectId\":\"$b\",\"objectIdToMerge\":\"$a\"}" >/dev/null
      else
        d365_call POST Merge "{\"Target\":{\"@odata.type\":\"Microsoft.Dynamics.CRM.account\",\"accountid\":\"$b\"},
          \"Subordinate\":{\"@odata.type\":\"Microsoft.Dynamics.CRM.account\",\"accountid\":\"$a\"},
          \"PerformParentingChecks\":false}" >/dev/null
      fi
      record "$system" company "$absorbed" _merged "$survivor"
      companies=("${companies[@]:0:i}" "${companies[@]:i+1}")
      touched[hubspot|$absorbed]=1 touched[dynamics365|$absorbed]=1
      touched[hubspot|$survivor]=1 touched[dynamics365|$survivor]=1
      # Their contacts move (HubSpot gives the merged company a new id, so the survivor's too):
      # no other change of them this round.
      for c in "${contacts[@]}"; do
        for other in hubspot dynamics365; do
          for d in "$absorbed" "$survivor"; do
            if [[ " ${parent[$other|$c]:-} " == *" ${id[$other|company|$d]:-none} "* ]]; then
              touched[hubspot|$c]=1 touched[dynamics365|$c]=1
            fi
          done
        done
      done
      ;;
    merge_contacts_dynamics365)
      # Two contacts of one company in both systems (a write still on its way to HubSpot could
      # leave them apart there).
      local pair="" x y
      for x in "${contacts[@]}"; do
        for y in "${contacts[@]}"; do
          if [ "$x" != "$y" ] && agrees "$x" && agrees "$y" &&
             [ "${parent[dynamics365|$x]:--}" != - ] && [ "${parent[dynamics365|$x]}" = "${parent[dynamics365|$y]:-}" ] &&
             [ "${parent[hubspot|$x]:--}" != - ] && [[ ${parent[hubspot|$x]} != *" "* ]] &&
             [ "${parent[hubspot|$x]}" = "${parent[hubspot|$y]:-}" ]; then
            pair="$x $y"
          fi
        done
      done
      [ -n "$pair" ] || return 0
      read -r absorbed survivor <<<"$pair"
      d365_call POST Merge "{\"Target\":{\"@odata.type\":\"Microsoft.Dynamics.CRM.contact\",\"contactid\":\"${id[dynamics365|contact|$survivor]}\"},
        \"Subordinate\":{\"@odata.type\":\"Microsoft.Dynamics.CRM.contact\",\"contactid\":\"${id[dynamics365|contact|$absorbed]}\"},
        \"PerformParentingChecks\":false}" >/dev/null
      record dynamics365 contact "$absorbed" _merged "$survivor"
      local left=()
      for c in "${contacts[@]}"; do if [ "$c" != "$absorbed" ]; then left+=("$c"); fi; done
      contacts=("${left[@]}")
      touched[hubspot|$absorbed]=1 touched[dynamics365|$absorbed]=1
      touched[hubspot|$survivor]=1 touched[dynamics365|$survivor]=1
      ;;
  esac
}

# The fault rules of a round's runs: on writes only, so that every complete run reads every edit.
hubspot_faults='[
  {"method":"POST","path":"/batch/up","status":429,"retry_after_s":0,"rate":0.1},
  {"method":"POST","path":"/batch/up","status":504,"after_apply":true,"rate":0.3},
  {"method":"POST","path":"/batch/up","status":503,"rate":0.1},
  {"method":"POST","path":"/batch/up","drop":true,"after_apply":true,"rate":0.05},
  {"method":"POST","path":"/batch/up","partial":0.3,"rate":0.2},
  {"method":"POST","path":"/batch/associate","status":502,"rate":0.1},
  {"method":"POST","path":"/batch/archive","status":500,"after_apply":true,"rate":0.1}]'
d365_faults='[
  {"method":"PATCH","path":"/api/data","status":429,"retry_after_s":0,"rate":0.1},
  {"method":"PATCH","path":"/api/data","status":504,"after_apply":true,"rate":0.3},
  {"method":"PATCH","path":"/api/data","status":503,"rate":0.1},
  {"method":"PATCH","path":"/api/data","drop":true,"after_apply":true,"rate":0.05},
  {"method":"POST","path":"/$batch","status":504,"after_apply":true,"rate":0.3},
  {"method":"POST","path":"/$batch","status":503,"rate":0.1},
  {"method":"POST","path":"/$batch","drop":true,"after_apply":true,"rate":0.05},
  {"method":"POST","path":"/$batch","partial":0.3,"rate":0.3}]'
# A burst (a system and an entity named): the first write calls of the entity to the system all
# land and answer 504, so the run ends not knowing whether they did.
faults_on() {  # FAULT-SEED [BURST-SYSTEM BURST-ENTITY]
  local hs=$hubspot_faults d365=$d365_faults type=companies set=accounts
  if [ "${3:-}" = contact ]; then type=contacts set=contacts; fi
  case ${2:-} in
    hubspot)
      hs='[{"method":"POST","path":"/'$type'/batch/up","status":504,"after_apply":true,"times":2},'${hs#[} ;;
    dynamics365)
      d365='[{"method":"PATCH","path":"/'$set'(","status":504,"after_apply":true,"times":2},
        {"method":"POST","path":"/$batch","status":504,"after_apply":true,"times":4},'${d365#[} ;;
  esac
  curl -sS --fail -X POST "$DEMO_HUBSPOT_URL/__admin/faults" -H 'Content-Type: application/json' \
    --data "{\"seed\":$1,\"rules\":$hs}" || fail "the HubSpot mock refused the faults"
  curl -sS --fail -X POST "$DEMO_DYNAMICS365_URL/__admin/faults" -H 'Content-Type: application/json' \
    --data "{\"seed\":$1,\"rules\":$d365}" || fail "the Dynamics 365 mock refused the faults"
}
faults_off() {
  curl -sS --fail -X DELETE "$DEMO_HUBSPOT_URL/__admin/faults" || fail "faults stay on in HubSpot"
  curl -sS --fail -X DELETE "$DEMO_DYNAMICS365_URL/__admin/faults" || fail "faults stay on in Dynamics 365"
}
injected() {
  local total=0 url k
  for url in "$DEMO_HUBSPOT_URL" "$DEMO_DYNAMICS365_URL"; do
    k=$(curl -s "$url/__admin/faults" | grep -o '"injected":[0-9]*' | cut -d: -f2)
    total=$((total + k))
  done
  echo "$total"
}

sync_once() {  # sets rc
  set +e
  "$bin/crmbridge" --config "$cfg" --log-level warn sync --json >"$work/run.json" 2>>"$work/runs.log"
  rc=$?
  set -e
  runs=$((runs + 1))
}

# A round's runs, through faults: maybe killed at random moments, then run until one ends cleanly
# (a run that met a dropped connection skips that system's remaining reads and exits 4).
sync_round() {  # [BURST-SYSTEM BURST-ENTITY]
  faults_on $((seed * 1000 + round))
  local k
  for k in 1 2; do
    if ((RANDOM % 4 == 0)); then
      "$bin/crmbridge" --config "$cfg" --log-level error sync >/dev/null 2>&1 &
      local run=$!
      sleep "0.$(printf '%02d' $((1 + RANDOM % 30)))"
      if kill -KILL "$run" 2>/dev/null; then kills=$((kills + 1)); fi
      wait "$run" 2>/dev/null || true
    fi
  done
  # The burst hits the first complete run.
  if [ -n "${1:-}" ]; then faults_on $((seed * 1000 + round)) "$1" "$2"; fi
  local attempt
  for attempt in $(seq 1 30); do
    sync_once
    case $rc in
      0 | 1) break ;;
      3) sleep 0.3 ;;  # a killed run's lease, until it expires
      4) ;;
      *) fail "seed $seed round $round: crmbridge sync exited $rc: $(tail -3 "$work/runs.log")" ;;
    esac
  done
  [ "$rc" -le 1 ] || fail "seed $seed round $round: no clean run in 30: $(tail -3 "$work/runs.log")"
  faults_off
}

total_kills=0
total_faults=0
total_runs=0
clean=0
failed=()
validated=""
for seed in $(seq "$first_seed" $((first_seed + seeds - 1))); do
  RANDOM=$seed
  start_mocks
  export CRMBRIDGE_STATE="$work/state$seed.db"
  if [ -z "$validated" ]; then
    "$bin/crmbridge" --config "$cfg" mappings validate >/dev/null || fail "the two-way mapping is invalid"
    validated=1
  fi
  edits="$work/edits$seed.tsv"
  : >"$edits"
  unset id parent last_set gone
  declare -A id=() parent=() last_set=() gone=()
  n=0 kills=0 runs=0 round=0
  : >"$work/runs.log"

  # Round 0: 5 companies and 7 contacts, each made in HubSpot, in Dynamics 365 or in both (in
  # both, with different values: the later one wins; the first company is in both). A contact made in one system belongs to a
  # company that system has.
  companies=() contacts=()
  declare -A origin=()
  for i in 1 2 3 4 5; do
    d="c$i-s$seed.example.org"
    companies+=("$d")
    case $((i == 1 ? 2 : RANDOM % 3)) in  # the first in both: each system has a company
      0) origin[$d]=hubspot ;; 1) origin[$d]=dynamics365 ;; 2) origin[$d]=both ;;
    esac
  done
  for i in 1 2 3 4 5 6 7; do
    e="p$i-s$seed@example.org"
    contacts+=("$e")
    case $((RANDOM % 3)) in 0) origin[$e]=hubspot ;; 1) origin[$e]=dynamics365 ;; 2) origin[$e]=both ;; esac
  done
  if ((RANDOM % 2)); then sides=(hubspot dynamics365); else sides=(dynamics365 hubspot); fi
  for side in "${sides[@]}"; do
    for d in "${companies[@]}"; do
      if [ "${origin[$d]}" = "$side" ] || [ "${origin[$d]}" = both ]; then create_company "$side" "$d"; fi
    done
  done
  for side in "${sides[@]}"; do
    have=()
    for d in "${companies[@]}"; do
      if [ "${origin[$d]}" = "$side" ] || [ "${origin[$d]}" = both ]; then have+=("$d"); fi
    done
    for e in "${contacts[@]}"; do
      if [ "${origin[$e]}" = "$side" ] || [ "${origin[$e]}" = both ]; then
        create_contact "$side" "$e" "${have[$((RANDOM % ${#have[@]}))]}"
      fi
    done
  done
  sync_round

  # Rounds of edits: 2 to 5 records changed, each in one system. Often the record changed first in
  # the round before is changed again, the same fields in the same system (its writes of the
  # round before may not have been answered); now and then the record is changed in the other
  # system too, more than a second later: another field, or the same one (a true conflict).
  hot=""
  for round in $(seq 1 "$rounds"); do
    refresh_ids
    declare -A touched=()
    data_event
    count=$((2 + RANDOM % 4))
    burst=""
    for k in $(seq 1 "$count"); do
      if ((k == 1)) && [ -n "$hot" ] && ((RANDOM % 3)); then
        read -r entity key sys fields_text <<<"$hot"
        read -r -a fields <<<"$fields_text"
        if [ "$entity" = company ]; then choices=(name city phone); else choices=(first_name last_name company); fi
      else
        if ((RANDOM % 5 < 3)); then entity=company; else entity=contact; fi
        if [ "$entity" = company ]; then
          all=("${companies[@]}") choices=(name city phone)
        else
          all=("${contacts[@]}") choices=(first_name last_name company)
        fi
        key=${all[$((RANDOM % ${#all[@]}))]}
        if ((RANDOM % 2)); then sys=hubspot; else sys=dynamics365; fi
        f1=${choices[$((RANDOM % 3))]}
        f2=${choices[$((RANDOM % 3))]}
        fields=("$f1")
        if [ "$f2" != "$f1" ] && ((RANDOM % 2)); then fields+=("$f2"); fi
        # A HubSpot contact's new company is seen through the update that goes with it.
        if [ "$sys" = hubspot ] && [ "$f1" = company ] && [ ${#fields[@]} -eq 1 ]; then fields+=(first_name); fi
      fi
      if [ "$sys" = hubspot ]; then other=dynamics365; else other=hubspot; fi
      both=$((RANDOM % 10 < 4 || (k == 1 && RANDOM % 3 > 0)))
      # The other system's change: the first field too, or a field the first change left alone.
      ofields=("${fields[0]}")
      if ((RANDOM % 4)); then
        for f in "${choices[@]}"; do
          if [[ " ${fields[*]} " != *" $f "* ]]; then ofields=("$f"); break; fi
        done
      fi
      if [ "$other" = hubspot ] && [ "${ofields[0]}" = company ]; then ofields+=(last_name); fi
      if [ -z "${id[$sys|$entity|$key]:-}" ] || [ -n "${touched[$sys|$key]:-}" ]; then continue; fi
      edit "$sys" "$entity" "$key" "${fields[@]}"
      touched[$sys|$key]=1
      if ((k == 1)); then
        hot="$entity $key $sys ${fields[*]}"
        # Mostly, the first write calls of the entity to the other system land and answer 504.
        if ((RANDOM % 3)); then burst="$other $entity"; fi
      fi
      if ((both)) && [ -n "${id[$other|$entity|$key]:-}" ] && [ -z "${touched[$other|$key]:-}" ]; then
        # Later than the first change by more than a second, whichever fields it sets.
        for f in "${fields[@]}"; do settle "$entity|$key|$f"; done
        edit "$other" "$entity" "$key" "${ofields[@]}"
        touched[$other|$key]=1
      fi
    done
    unset touched
    sync_round $burst
  done

  # No faults any more: run until nothing is left to write.
  round=end
  for attempt in $(seq 1 40); do
    sync_once
    pending=$("$bin/crmbridge" --config "$cfg" --log-level error status --json |
              grep -c '"outbox_pending": *{ *}' || true)
    if [ "$rc" -eq 0 ] && grep -q '"writes": 0' "$work/run.json" && [ "$pending" -ge 1 ]; then break; fi
    sleep 0.5  # failed writes wait a second or two before their next attempt
  done
  faults=$(injected)
  total_kills=$((total_kills + kills))
  total_faults=$((total_faults + faults))
  total_runs=$((total_runs + runs))
  curl -s "$DEMO_HUBSPOT_URL/__admin/dump" >"$work/hs$seed.json"
  curl -s "$DEMO_DYNAMICS365_URL/__admin/dump" >"$work/d365$seed.json"
  stop_mocks
  problems=()
  if [ "$attempt" -ge 40 ]; then problems+=("no convergence after 40 runs: $(tail -3 "$work/runs.log")"); fi
  dead=$("$bin/crmbridge" --config "$cfg" --log-level error dlq list --json | grep -c '"id"' || true)
  if [ "$dead" -ne 0 ]; then problems+=("$dead dead letter(s)"); fi
  if ! node "$here/twoway_oracle.mjs" check "$edits" "$work/hs$seed.json" "$work/d365$seed.json" \
      >"$work/oracle$seed.txt"; then
    problems+=("the end state differs from the newest edits:")
  fi
  if [ ${#problems[@]} -eq 0 ]; then
    clean=$((clean + 1))
    echo "seed $seed: converged through $faults injected faults and $kills SIGKILLs ($runs runs): $(cat "$work/oracle$seed.txt")"
  else
    failed+=("$seed")
    echo "seed $seed: FAILED after $faults injected faults and $kills SIGKILLs ($runs runs):"
    for p in "${problems[@]}"; do echo "  $p"; done
    sed 's/^/    /' "$work/oracle$seed.txt"
  fi
done
echo "two-way convergence: $clean of $seeds seeds converged to the newest edits, through" \
     "$total_faults injected faults and $total_kills SIGKILLs in $total_runs runs"
if [ ${#failed[@]} -gt 0 ]; then fail "seeds that did not converge: ${failed[*]}"; fi
