# Sourced by the end-to-end scripts: starts the bundled mock servers for the demo configuration.
#
#   start_crm_mocks BIN_DIR WORK_DIR [crm-mocks options...]
#
# Starts crm-mocks with the credentials in HUBSPOT_TOKEN, D365_CLIENT_ID, D365_CLIENT_SECRET,
# TOTANGO_TOKEN and PORTAL_TOKEN, waits (up to a minute on a loaded machine, while it lives) for
# the line of base URLs it prints, and exports DEMO_HUBSPOT_URL, DEMO_DYNAMICS365_URL,
# DEMO_TOTANGO_URL and DEMO_PORTAL_URL as examples/demo/crmbridge.yaml reads them. Sets
# `mocks_pid`; returns 1 (after saying what crm-mocks printed) when it did not start.
start_crm_mocks() {
  local bin=$1 work=$2
  shift 2
  rm -f "$work/mocks.json"
  "$bin/crm-mocks" --hubspot-token "$HUBSPOT_TOKEN" --dynamics365-client-id "$D365_CLIENT_ID" \
    --dynamics365-client-secret "$D365_CLIENT_SECRET" --totango-token "$TOTANGO_TOKEN" \
    --portal-token "$PORTAL_TOKEN" "$@" >"$work/mocks.json" 2>"$work/mocks.log" &
  mocks_pid=$!
  for _ in $(seq 1 600); do
    [ -s "$work/mocks.json" ] && break
    kill -0 "$mocks_pid" 2>/dev/null || break
    sleep 0.1
  done
  local line
  line=$(head -n1 "$work/mocks.json" 2>/dev/null || true)
  local system
  for system in hubspot dynamics365 totango portal; do
    local url
    url=$(sed -n "s/.*\"$system\":\"\([^\"]*\)\".*/\1/p" <<<"$line")
    if [ -z "$url" ]; then
      echo "crm-mocks did not start: $line $(tail -3 "$work/mocks.log")" >&2
      return 1
    fi
    export "DEMO_$(tr '[:lower:]' '[:upper:]' <<<"$system")_URL=$url"
  done
}

# Stops the mocks start_crm_mocks started, if they run.
stop_crm_mocks() {
  if [ -n "${mocks_pid:-}" ]; then
    kill "$mocks_pid" 2>/dev/null && wait "$mocks_pid" 2>/dev/null
    mocks_pid=""
  fi
  return 0
}
