# Sourced by the end-to-end scripts that need PostgreSQL: a throwaway server of their own
# (throwaway_postgres), never a system service.
#
#   start_postgres TOOL WORK_DIR   starts it and exports CRMBRIDGE_STATE_URL (its password in it,
#                                  as a deployment's environment holds it); exits 77 (skipped)
#                                  when PostgreSQL is not installed, 1 when it did not start
#   stop_postgres                  stops it and removes its folder
postgres_pid=""
start_postgres() {
  local tool=$1 work=$2
  "$tool" >"$work/postgres.url" 2>"$work/postgres.log" &
  postgres_pid=$!
  for _ in $(seq 1 1200); do
    [ -s "$work/postgres.url" ] && break
    if ! kill -0 "$postgres_pid" 2>/dev/null; then
      wait "$postgres_pid" 2>/dev/null && true
      local rc=$?
      postgres_pid=""
      echo "PostgreSQL did not start: $(cat "$work/postgres.log")" >&2
      [ "$rc" -eq 77 ] && exit 77
      exit 1
    fi
    sleep 0.1
  done
  CRMBRIDGE_STATE_URL=$(head -n1 "$work/postgres.url")
  export CRMBRIDGE_STATE_URL
}
stop_postgres() {
  if [ -n "$postgres_pid" ]; then kill "$postgres_pid" 2>/dev/null && wait "$postgres_pid" 2>/dev/null; postgres_pid=""; fi
  return 0
}
