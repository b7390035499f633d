#!/usr/bin/env bash
# The live status page of `crmbridge serve`, rendered by headless Chromium: it shows what the state
# store holds (the runs, the writes waiting for Totango, the dead letters of Dynamics 365, the
# onboarding report with two months of history) with the numbers `crmbridge status` and `report`
# give, shows every record's text as text, and refreshes its live part in place without a reload.
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
start_crm_mocks "$bin" "$work" --size 2 --seed-only hubspot || fail "no mocks"
export CRMBRIDGE_STATE="$work/state.db"
# Two months of onboardings, one of them named "SE Lindqvist & Söner <Logistik>".
"$fill" "$CRMBRIDGE_STATE" 2026-03-01T12:00:00Z >/dev/null || fail "could not fill the store"
# The first run's writes: Totango is down (they wait in the outbox), and Dynamics 365 refuses its
# first batch (dead letters), so the page has numbers of both to show.
curl -sf -X POST "$DEMO_TOTANGO_URL/__admin/faults" -d '[{"status":503}]' >/dev/null ||
  fail "could not take Totango down"
curl -sf -X POST "$DEMO_DYNAMICS365_URL/__admin/faults" -d '[{"path":"/$batch","status":400,"times":1}]' \
  >/dev/null || fail "could not make Dynamics 365 refuse a batch"

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
# The numbers are the store's: the funnel is the report's, stage by stage; the runs, their
# outcomes and writes, the outbox and the dead letters are what `crmbridge status` reads.
"$bin/crmbridge" --config "$src/examples/demo/crmbridge.yaml" report onboarding --json \
  >"$work/report.json" 2>/dev/null || fail "crmbridge report onboarding --json failed"
"$bin/crmbridge" --config "$src/examples/demo/crmbridge.yaml" status --json \
  >"$work/status.json" 2>/dev/null || fail "crmbridge status --json failed"
node -e '
  const fs = require("fs");
  const [dom, report, status] = process.argv.slice(1).map(f => fs.readFileSync(f, "utf8"));
  const r = JSON.parse(report), st = JSON.parse(status);
  const problems = [];
  const unescape = s => s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, "\"").replace(/&amp;/g, "&");
  const shown = {};
  for (const m of dom.matchAll(/<g class="funnel-row" data-stage="([^"]*)" data-count="(\d+)"/g))
    shown[unescape(m[1])] = Number(m[2]);
  if (r.funnel.length === 0 || r.funnel.every(f => f.count === 0)) problems.push("the report has no onboarding");
  for (const f of r.funnel)
    if (shown[f.stage] !== f.count) problems.push(`funnel ${f.stage}: page ${shown[f.stage]}, store ${f.count}`);
  if (Object.keys(shown).length !== r.funnel.length) problems.push(`the page shows ${Object.keys(shown).length} stages, the report ${r.funnel.length}`);
  // serve goes on running (it retries the writes to Totango) after the page was taken: the page
  // shows the runs up to its newest, and one it shows as running may have ended since.
  const rows = [...dom.matchAll(/<tr data-run="(\d+)">((?:(?!<\/tr>).)*)<\/tr>/gs)];
  const newest = Math.max(...rows.map(m => Number(m[1])));
  const runs = st.runs.filter(run => run.id <= newest).slice(0, 10);
  if (rows.length === 0 || rows.length !== runs.length) problems.push(`the page shows ${rows.length} runs, the store ${runs.length}`);
  for (const run of runs) {
    const row = rows.find(m => Number(m[1]) === run.id);
    if (!row) { problems.push(`run ${run.id} is not shown`); continue; }
    const cells = [...row[2].matchAll(/<td[^>]*>([^<]*)<\/td>/g)].map(c => unescape(c[1]));
    const ended = cells[4] !== "running";
    if (cells[1] !== run.mode || (ended && (cells[4] !== run.outcome || cells[5] !== String(run.counts.writes))))
      problems.push(`run ${run.id}: page ${cells.join("|")}, store ${run.mode} ${run.outcome} ${run.counts.writes}`);
  }
  const counts = id => {
    const table = dom.match(new RegExp(`<table id="${id}"><tbody>(.*?)</tbody>`, "s"));
    if (!table) return dom.includes(`<p id="${id}">none</p>`) ? {} : null;
    return Object.fromEntries([...table[1].matchAll(/<tr><td>([^<]*)<\/td><td class="num">(\d+)<\/td><\/tr>/g)].map(m => [m[1], Number(m[2])]));
  };
  if (!st.outbox_pending.totango || !st.dead_letters) problems.push("the store holds no pending write or no dead letter");
  if (JSON.stringify(counts("outbox")) !== JSON.stringify(st.outbox_pending))
    problems.push(`outbox: page ${JSON.stringify(counts("outbox"))}, store ${JSON.stringify(st.outbox_pending)}`);
  const dead = counts("dead-letters");
  if (!dead || Object.values(dead).reduce((a, n) => a + n, 0) !== st.dead_letters)
    problems.push(`dead letters: page ${JSON.stringify(dead)}, store ${st.dead_letters}`);
  if (problems.length) { console.error(problems.join("\n")); process.exit(1); }
' "$work/dom.html" "$work/report.json" "$work/status.json" || fail "the page does not show what the store holds"
echo "status page: rendered, escaped, refreshed in place, the store's numbers shown"
