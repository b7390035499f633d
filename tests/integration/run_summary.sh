# Sourced by the integration tests that run `crmbridge` and read its JSON run summary. Expects
# $bin (the binaries), $work (the test's folder, holding crmbridge.yaml) and a fail function.

# run NAME crmbridge-args...: runs crmbridge; the summary as JSON in NAME.json, the log in NAME.log.
run() {
  local name=$1
  shift
  "$bin/crmbridge" --config "$work/crmbridge.yaml" --log-level info "$@" --json \
    >"$work/$name.json" 2>"$work/$name.log" || fail "$name exited $?: $(tail -3 "$work/$name.log")"
}
# count NAME SYSTEM ENTITY KEY: one tally of NAME's summary (0 when absent).
count() {
  node -e 'const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const c = ((s.systems || {})[process.argv[2]] || {})[process.argv[3]] || {};
    console.log(c[process.argv[4]] || 0)' "$work/$1.json" "$2" "$3" "$4"
}
# writes NAME: the records NAME created, updated or dead-lettered anywhere.
writes() {
  node -e 'const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    let n = 0;
    for (const e of Object.values(s.systems || {}))
      for (const c of Object.values(e)) n += c.created + c.updated + c.dead_lettered;
    console.log(n)' "$work/$1.json"
}
