#!/usr/bin/env bash
# The README's "Using it" block (and docs/MAPPINGS.md's first block), run as it is shown, from a copy of the checkout's examples/ and
# mappings/: the mocks on ports 18081-18084, every crmbridge command against examples/crmbridge.yaml,
# and `serve` (which runs until stopped) stopped by SIGINT after five seconds. Fails on the first
# command that fails, and when the sync moves nothing or the backfill after it writes anything.
#   usage: readme_commands_test.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-readme.XXXXXX")
started=0
cleanup() {
  # The block's own mocks, if a failing command left them running (the ports were free, so no
  # other process holds them).
  [ "$started" = 1 ] && { pkill -INT -f "^build/bin/crm-mocks --port-base 18081" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cp -r "$src/examples" "$src/mappings" "$work/"
mkdir -p "$work/build"
ln -s "$bin" "$work/build/bin"
awk '/^## Using it/ { in_section = 1 }
     in_section && /^```sh/ { in_block = 1; next }
     in_block && /^```/ { exit }
     in_block' "$src/README.md" >"$work/block.sh"
grep -q 'crmbridge --config $C sync ' "$work/block.sh" || fail "no sync command in the README's block"
# serve runs until stopped: the one line changed, to stop it as Ctrl-C would.
sed -i 's|^build/bin/crmbridge --config \$C serve|timeout --preserve-status -s INT 5 &|' "$work/block.sh"
for port in 18081 18082 18083 18084 8080; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "port $port is taken; the README's commands need it free"
  fi
done

cd "$work"
started=1
status=0
bash -e -o pipefail block.sh >out.txt 2>&1 || status=$?
[ "$status" -eq 0 ] || { tail -30 out.txt >&2; fail "a command of the block failed: exit $status"; }
grep -Eq '^[1-9][0-9]* record\(s\) written' out.txt || { cat out.txt >&2; fail "the sync wrote nothing"; }
grep -q '^crmbridge backfill: run 2 finished' out.txt || fail "no backfill run"
backfill=$(sed -n '/^crmbridge backfill/,/^No portal access/p' out.txt)
grep -q '^Nothing to write' <<<"$backfill" || fail "the backfill after the sync wrote: $backfill"
grep -q '^Wrote onboarding.html' out.txt || fail "no report"
grep -q 'serve: stopped' out.txt || fail "serve did not stop cleanly"
echo "README commands: $(grep -c '^build/bin/' block.sh) run as shown"

# docs/MAPPINGS.md's first block: checking a mapping file, with and without a config.
awk '/^```sh/ { in_block = 1; next } in_block && /^```/ { exit } in_block' \
  "$src/docs/MAPPINGS.md" >mappings_block.sh
grep -q 'mappings validate' mappings_block.sh || fail "no validate command in MAPPINGS.md's first block"
status=0
bash -e -o pipefail mappings_block.sh >mappings_out.txt 2>&1 || status=$?
[ "$status" -eq 0 ] || { tail -30 mappings_out.txt >&2; fail "a MAPPINGS.md command failed: exit $status"; }
echo "MAPPINGS.md commands: $(grep -c '^build/bin/' mappings_block.sh) run as shown"
