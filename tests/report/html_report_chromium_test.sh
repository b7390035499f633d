#!/usr/bin/env bash
# The onboarding report through the real binaries, rendered by a real browser:
#   1. a real sync against crm-mocks records a stage history, and `report onboarding --json`
#      finds every synced onboarding in it, moved there by HubSpot;
#   2. a state store filled through the Store API with two months of onboardings is rendered with
#      --html, and headless Chromium, offline, renders the page: its DOM must hold the funnel and a
#      timeline per open onboarding with every name escaped, and its screenshot must be a real image.
# Set CRMBRIDGE_REPORT_SCREENSHOT=path.png to keep the screenshot (docs/images/onboarding-report.png).
#   usage: html_report_chromium_test.sh BIN_DIR SOURCE_DIR FILL_STORE_BIN
set -euo pipefail
bin=$1
src=$2
fill=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/crmbridge-report.XXXXXX")
source "$(dirname "$0")/../integration/crm_mocks.sh"
cleanup() { stop_crm_mocks; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

chromium=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chromium" ] || fail "chromium is not installed (scripts/setup.sh installs it)"

export HUBSPOT_TOKEN=pat-report-hubspot D365_CLIENT_ID=report-client D365_CLIENT_SECRET=report-secret-01
export TOTANGO_TOKEN=report-totango-token PORTAL_TOKEN=report-portal-token
cfg="$src/examples/demo/crmbridge.yaml"

# --- 1. a real sync, then the report over what it recorded ---
start_crm_mocks "$bin" "$work" --seed 11 --size 8 --seed-only hubspot dynamics365 || fail "no mocks"
export CRMBRIDGE_STATE="$work/synced.db"

# Before any sync there is no state store: a clear error, and none is created.
set +e
"$bin/crmbridge" --config "$cfg" report onboarding 2>"$work/nostate.err"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "a report without a state store exited $rc, not 2"
grep -q "no state store at" "$work/nostate.err" || fail "unclear error: $(cat "$work/nostate.err")"
[ ! -e "$CRMBRIDGE_STATE" ] || fail "the report created a state store"

"$bin/crmbridge" --config "$cfg" sync >"$work/sync.txt" 2>"$work/sync.log" \
  || fail "sync exited $?: $(tail -3 "$work/sync.log")"
stop_crm_mocks
# The mocks are gone: the report reads the state store only.
"$bin/crmbridge" --config "$cfg" report onboarding --all --json >"$work/synced.json" 2>"$work/report.log" \
  || fail "report --json exited $?: $(cat "$work/report.log")"
grep -q '"total": 8' "$work/synced.json" || fail "the report does not hold the 8 synced onboardings: $(head -c 600 "$work/synced.json")"
moved=$(grep -c '"moved_by": "hubspot"' "$work/synced.json" || true)
[ "$moved" -ge 8 ] || fail "only $moved stays were moved by hubspot"
"$bin/crmbridge" --config "$cfg" report onboarding >"$work/synced.txt" || fail "report (text) failed"
grep -q "^Funnel:" "$work/synced.txt" || fail "no funnel in: $(cat "$work/synced.txt")"

# Usage errors say what is wrong.
set +e
"$bin/crmbridge" --config "$cfg" report onboarding --stuck-after soon 2>"$work/bad.err"; rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q -- "--stuck-after \"soon\" is not a whole number of days" "$work/bad.err" \
  || fail "a bad --stuck-after exited $rc: $(cat "$work/bad.err")"
set +e
"$bin/crmbridge" --config "$cfg" report onboarding --entity invoice 2>"$work/bad2.err"; rc=$?
set -e
[ "$rc" -eq 2 ] && grep -q "no entity 'invoice'" "$work/bad2.err" || fail "an unknown entity exited $rc"

# --- 2. two months of onboardings, rendered by Chromium ---
as_of=2026-03-01T12:00:00Z
export CRMBRIDGE_STATE="$work/history.db"
"$fill" "$CRMBRIDGE_STATE" "$as_of" >/dev/null || fail "could not fill the store"
html="$work/onboarding report.html"
"$bin/crmbridge" --config "$cfg" report onboarding --as-of "$as_of" --html "$html" >"$work/html.txt" \
  || fail "report --html exited $?"
grep -q "10 open onboardings, 2 stuck 30+ days in their stage, 2 open 60+ days" "$work/html.txt" \
  || fail "report --html said: $(cat "$work/html.txt")"
grep -qiE '<script|https?://|<link|@import|url\(' "$html" && fail "the page refers to something outside itself"

url="file://$(sed 's/ /%20/g' <<<"$html")"
# Offline and without a profile: nothing is fetched, nothing is kept.
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --disable-extensions --mute-audio --hide-scrollbars
       --user-data-dir="$work/profile")
timeout 120 "$chromium" "${flags[@]}" --dump-dom "$url" >"$work/dom.html" 2>"$work/chromium-dom.log" \
  || fail "chromium could not load the page: $(tail -5 "$work/chromium-dom.log")"
count() { grep -o "$1" "$work/dom.html" | wc -l; }
grep -q '<section id="funnel">' "$work/dom.html" || fail "no funnel section in the rendered DOM"
grep -q '<section id="timeline">' "$work/dom.html" || fail "no timeline section in the rendered DOM"
[ "$(count 'class="funnel-row"')" -eq 6 ] || fail "the funnel has $(count 'class="funnel-row"') rows, not 6 stages"
[ "$(count '<g class="timeline')" -eq 10 ] || fail "$(count '<g class="timeline') timelines, not one per open onboarding (10)"
[ "$(count '<g class="timeline stuck"')" -eq 2 ] || fail "$(count '<g class="timeline stuck"') stuck timelines, not 2"
[ "$(count 'class="segment')" -ge 25 ] || fail "only $(count 'class="segment') stage segments"
grep -q 'data-stage="onboarding" data-count="4"' "$work/dom.html" || fail "the funnel miscounts onboarding"
grep -q 'SE Lindqvist &amp; Söner &lt;Logistik&gt;' "$work/dom.html" || fail "a name was not shown as text"
grep -qi '<logistik' "$work/dom.html" && fail "a name became markup"

# Every text of the charts lies inside its chart, and every customer's name ends before the bars
# begin: measured by the browser, in a copy of the page with a script that writes what it found.
layout="$work/layout.html"
sed 's#</body>#<script>\
const outside = [];\
for (const svg of document.querySelectorAll("svg")) {\
  const box = svg.getBoundingClientRect();\
  const scale = box.width / svg.viewBox.baseVal.width;\
  for (const t of svg.querySelectorAll("text")) {\
    const r = t.getBoundingClientRect();\
    const right = t.classList.contains("name") ? box.left + 250 * scale : box.right;\
    if (r.left < box.left - 0.5 \|\| r.right > right + 0.5) outside.push(t.lastChild.textContent);\
  }\
}\
document.body.setAttribute("data-outside", outside.length + ": " + outside.join(" / "));\
</script></body>#' "$html" >"$layout"
timeout 120 "$chromium" "${flags[@]}" --dump-dom "file://$layout" >"$work/layout-dom.html" \
  2>"$work/chromium-layout.log" || fail "chromium could not load the page: $(tail -5 "$work/chromium-layout.log")"
grep -q 'SE WÅWMÖ Bygg Göteborg 14 A…' "$work/layout-dom.html" ||
  fail "the long name is not cut at its end"
grep -q 'data-outside="0: "' "$work/layout-dom.html" ||
  fail "texts out of their place: $(grep -o 'data-outside="[^"]*"' "$work/layout-dom.html")"
grep -q '>Onboarding – Pågår</text>' "$work/dom.html" || fail "the funnel does not show HubSpot's stage labels"

png="$work/onboarding-report.png"
timeout 120 "$chromium" "${flags[@]}" --screenshot="$png" --window-size=1200,1500 "$url" \
  >"$work/chromium-shot.log" 2>&1 || fail "chromium could not take a screenshot: $(tail -5 "$work/chromium-shot.log")"
[ -f "$png" ] || fail "no screenshot was written"
[ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] || fail "the screenshot is not a PNG"
size=$(stat -c %s "$png")
# A blank or error page compresses to a few kilobytes; the report's charts do not.
[ "$size" -gt 40000 ] || fail "the screenshot is only $size bytes: the page did not render"
if [ -n "${CRMBRIDGE_REPORT_SCREENSHOT:-}" ]; then cp "$png" "$CRMBRIDGE_REPORT_SCREENSHOT"; fi
echo "onboarding report: ok (screenshot $size bytes)"
