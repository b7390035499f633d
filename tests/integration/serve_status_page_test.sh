#!/usr/bin/env bash
# The live status page of `crmbridge serve`, rendered by headless Chromium: it shows what the state
# store holds (the runs, the outbox, the onboarding report with two months of history), shows every
# record's text as text, and refreshes its live part in place without a reload.
#   usage: serve_status_page_test.sh BIN_DIR SOURCE_DIR FILL_STORE_BIN
set -euo pipefail
bin=$1
src=$2
fill=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-status.XXXXXX")
source "$(dirname "$0")/crm_mocks.sh"
source "$(dirname "$0")/serve.sh"
cleanup() { stop_serve; stop_crm_mocks; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -5 "$work/serve.log" >&2 2>/dev/null || true; exit 1; }

chromium=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chromium" ] || fail "chromium is not installed (scripts/setup.sh installs it)"

export HUBSPOT_TOKEN=pat-status-hubspot D365_CLIENT_ID=status-client D365_CLIENT_SECRET=status-secret
export TOTANGO_TOKEN=status-totango PORTAL_TOKEN=status-portal
start_crm_mocks "$bin" "$work" --size 0 || fail "no mocks"
export CRMBRIDGE_STATE="$work/state.db"
# Two months of onboardings, one of them named "SE Lindqvist & Söner <Logistik>".
"$fill" "$CRMBRIDGE_STATE" 2026-03-01T12:00:00Z >/dev/null || fail "could not fill the store"

start_serve "$bin" "$src/examples/demo/crmbridge.yaml" "$work" --every 1h || fail "serve did not start"
wait_serve_runs "$work" 1 || fail "the first run did not finish"

# The page as served: one script (its own), every name escaped.
curl -sf "$url/" >"$work/page.html" || fail "GET / failed"
[ "$(grep -o '<script' "$work/page.html" | wc -l)" -eq 1 ] || fail "the page has a script besides its own"
grep -q 'SE Lindqvist &amp; Söner &lt;Logistik&gt;' "$work/page.html" || fail "a name was not escaped"
curl -sf "$url/status/live" >"$work/live.html" || fail "GET /status/live failed"
grep -q '<section id="status">' "$work/live.html" || fail "the live part has no status section"
grep -q '<script' "$work/live.html" && fail "the live part carries a script"

# Chromium renders it and, within the page's life, fetches the live part again and puts it in
# place (virtual time runs the page's 5-second timer without waiting for it).
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --disable-extensions --mute-audio --hide-scrollbars
       --user-data-dir="$work/profile")
timeout 120 "$chromium" "${flags[@]}" --virtual-time-budget=12000 --dump-dom "$url/" \
  >"$work/dom.html" 2>"$work/chromium.log" || fail "chromium could not load the page: $(tail -5 "$work/chromium.log")"
grep -q '<tr data-run="1">' "$work/dom.html" || fail "the rendered page does not show run 1"
grep -Eq '<td>[0-9T:-]+Z</td>' "$work/dom.html" || fail "the runs have no start time"
grep -q '<section id="funnel">' "$work/dom.html" || fail "the rendered page has no funnel"
[ "$(grep -o '<g class="timeline' "$work/dom.html" | wc -l)" -ge 10 ] || fail "the rendered page lacks the timelines"
grep -q 'SE Lindqvist &amp; Söner &lt;Logistik&gt;' "$work/dom.html" || fail "a name was not shown as text"
grep -qi '<logistik' "$work/dom.html" && fail "a name became markup"
grep -Eq 'id="refreshes">[1-9]' "$work/dom.html" ||
  fail "the page did not refresh its live part: $(grep -o 'id="refreshes">[0-9]*' "$work/dom.html")"
# What the store holds: the runs serve made, and the webhook changes waiting (none).
grep -q 'id="webhooks-pending">0<' "$work/dom.html" || fail "the page does not show the waiting webhook changes"
echo "status page: rendered, escaped, refreshed in place"
