# Sourced by the end-to-end scripts that run `crmbridge serve` (and bench/webhook_latency.sh).
#
#   start_serve BIN_DIR CONFIG WORK_DIR [serve options...]
#       Starts `crmbridge --config CONFIG serve [options]` (on 127.0.0.1 and any free port unless
#       the options say --listen), its stdout in WORK_DIR/serve.out and its log appended to
#       WORK_DIR/serve.log, and waits until it says where it listens. Sets serve_pid, port and
#       url; returns 1, saying why, when it does not start.
#   stop_serve                      SIGTERM, then waits for it to end.
#   serve_runs WORK_DIR             the runs its log says have ended.
#   wait_serve_runs WORK_DIR N      waits (up to 2 minutes) until N runs have ended; 1 if not.
serve_pid=""
start_serve() {
  local bin=$1 cfg=$2 work=$3
  shift 3
  local listen=(--listen 127.0.0.1:0)
  case " $* " in *" --listen "*) listen=() ;; esac
  : >"$work/serve.out"
  "$bin/crmbridge" --config "$cfg" serve "${listen[@]}" "$@" >"$work/serve.out" 2>>"$work/serve.log" &
  serve_pid=$!
  port=""
  for _ in $(seq 1 600); do
    port=$(sed -n 's#.*listening on http://127.0.0.1:\([0-9]*\).*#\1#p' "$work/serve.out")
    [ -n "$port" ] && break
    if ! kill -0 "$serve_pid" 2>/dev/null; then
      echo "serve exited at start: $(tail -3 "$work/serve.log")" >&2
      serve_pid=""
      return 1
    fi
    sleep 0.1
  done
  if [ -z "$port" ]; then
    echo "serve did not say where it listens" >&2
    return 1
  fi
  url="http://127.0.0.1:$port"
}
stop_serve() {
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null; serve_pid=""; fi
  return 0
}
serve_runs() { grep -c 'serve: run [0-9]* wrote' "$1/serve.log" 2>/dev/null || true; }
wait_serve_runs() {
  for _ in $(seq 1 1200); do
    [ "$(serve_runs "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
