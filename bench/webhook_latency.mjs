// Drives changes into the HubSpot mock at a steady rate and watches the Dynamics 365 mock for them:
// the change-to-target latency of `crmbridge serve` as a user sees it (bench/webhook_latency.sh).
//
//   node webhook_latency.mjs RATE SECONDS TICKET_ID...
//
// Each change sets one ticket's subject to a marker of its own ("lat-R-N"), the tickets taken in
// turn, through the mock's user-edit route (PATCH /__admin/objects/tickets/ID). Every 100 ms the Dynamics 365 mock's records are read (GET /__admin/dump) and each marker
// seen for the first time is timed from the moment its PATCH was answered. A marker overwritten in
// HubSpot before it reached Dynamics 365 is "superseded" (its ticket's later marker carries the
// change); a ticket whose last marker never arrives within 30 s of the last change is "lost".
// Environment: DEMO_HUBSPOT_URL, DEMO_DYNAMICS365_URL. Prints one JSON line.
const [rate, seconds] = process.argv.slice(2, 4).map(Number);
const tickets = process.argv.slice(4);
const hubspot = process.env.DEMO_HUBSPOT_URL;
const d365 = process.env.DEMO_DYNAMICS365_URL;
if (!(rate > 0) || !(seconds > 0) || tickets.length === 0 || !hubspot || !d365) {
  console.error('usage: node webhook_latency.mjs RATE SECONDS TICKET_ID... (with DEMO_HUBSPOT_URL, DEMO_DYNAMICS365_URL)');
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sent = new Map();       // marker -> ms its PATCH was answered
const seen = new Map();       // marker -> ms first seen in Dynamics 365
const lastOf = new Map();     // ticket -> its last marker
let failedPatches = 0;
let polling = true;

async function poll() {
  while (polling) {
    const started = Date.now();
    try {
      const text = await (await fetch(`${d365}/__admin/dump`)).text();
      const now = Date.now();
      for (const m of text.matchAll(/lat-\d+-\d+/g)) if (!seen.has(m[0])) seen.set(m[0], now);
    } catch (e) { /* the next poll tries again */ }
    await sleep(Math.max(0, 100 - (Date.now() - started)));
  }
}

async function change(i) {
  const ticket = tickets[i % tickets.length];
  const marker = `lat-${rate}-${i}`;
  // As a user edits it in HubSpot's pages: no app's API call, no app's rate limit spent.
  const r = await fetch(`${hubspot}/__admin/objects/tickets/${ticket}`, {
    method: 'PATCH',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ properties: { subject: marker } }),
  });
  await r.text();
  if (!r.ok) { failedPatches++; return; }
  sent.set(marker, Date.now());
  lastOf.set(ticket, marker);
}

const poller = poll();
const total = Math.round(rate * seconds);
const t0 = Date.now();
const inFlight = [];
for (let i = 0; i < total; i++) {
  const due = t0 + (i * 1000) / rate;
  if (due > Date.now()) await sleep(due - Date.now());
  inFlight.push(change(i));
}
await Promise.all(inFlight);
const deadline = Date.now() + 30000;
while (Date.now() < deadline && [...lastOf.values()].some((m) => !seen.has(m))) await sleep(100);
polling = false;
await poller;

const lags = [];
let superseded = 0;
for (const [marker, at] of sent) {
  if (seen.has(marker)) lags.push(Math.max(0, seen.get(marker) - at) / 1000);
  else superseded++;
}
const lost = [...lastOf.values()].filter((m) => !seen.has(m)).length;
superseded -= lost;
lags.sort((a, b) => a - b);
const pct = (p) => (lags.length ? lags[Math.min(lags.length - 1, Math.ceil((p / 100) * lags.length) - 1)] : 0);
console.log(JSON.stringify({
  rate, seconds, changes: sent.size, failed_patches: failedPatches, arrived: lags.length,
  superseded, lost, p50_s: pct(50), p99_s: pct(99), max_s: lags.length ? lags[lags.length - 1] : 0,
}));
