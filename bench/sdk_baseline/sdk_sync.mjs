// The obvious alternative to crmbridge, as a baseline: the vendors' official SDKs in a plain
// script that reads every HubSpot ticket of the "Order/faktura" pipeline and creates one Dynamics
// 365 opportunity per ticket, one request each, mapped as mappings/presets/onboarding.yaml does.
//
//   node bench/sdk_baseline/sdk_sync.mjs --hubspot URL --dynamics URL \
//        [--token pat-mock-hubspot] [--client-id mock-client-id] [--client-secret mock-client-secret] \
//        [--concurrency 1]
//
// It takes what a careful first version would: the HubSpot SDK's own retry option for 429s and
// 5xx (numberOfApiCallRetries), and, since dynamics-web-api retries nothing, a retry of a 429 after
// its Retry-After (Microsoft's guidance for service protection). No state, no batching, no
// incremental reads: every run reads everything and creates everything again.
// Prints one JSON line: records, requests made by kind, wall time.
//
// The SDKs come from tests/conformance/node_modules (package.json there pins @hubspot/api-client
// 13.5.0 and dynamics-web-api 2.5.0); nothing is installed for this script.
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../tests/conformance/package.json', import.meta.url));
const { Client } = require('@hubspot/api-client');
const { DynamicsWebApi } = require('dynamics-web-api');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const hubspotUrl = arg('hubspot');
const dynamicsUrl = arg('dynamics');
if (!hubspotUrl || !dynamicsUrl) {
  console.error('usage: sdk_sync.mjs --hubspot URL --dynamics URL [--token T] [--client-id ID] [--client-secret S] [--concurrency N]');
  process.exit(2);
}
const token = arg('token', 'pat-mock-hubspot');
const clientId = arg('client-id', 'mock-client-id');
const clientSecret = arg('client-secret', 'mock-client-secret');
const concurrency = Number(arg('concurrency', '1'));

// The preset's tables (mappings/presets/onboarding.yaml): HubSpot stage label -> Dynamics 365
// crmb_onboardingstage, HubSpot priority -> crmb_priority.
const STAGE = {
  'Ny': 100000000, 'Onboarding – Pågår': 100000001, 'Må följas upp': 100000002,
  'Manuell uppföljning': 100000002, 'Inaktiva kunder': 100000004, 'Avslutad': 100000003,
};
const PRIORITY = { LOW: 1, MEDIUM: 2, HIGH: 3 };

const requests = { hubspot_pipelines: 0, hubspot_list: 0, d365_token: 0, d365_create: 0, retried_429: 0 };
const started = process.hrtime.bigint();

const hubspot = new Client({ accessToken: token, basePath: hubspotUrl, numberOfApiCallRetries: 3 });
// dynamics-web-api asks onTokenRefresh before every request; the token is cached until 5 minutes
// before it expires, as MSAL would.
let cached = { token: '', until: 0 };
const d365 = new DynamicsWebApi({
  serverUrl: `${dynamicsUrl}/`,
  dataApi: { version: '9.2' },
  onTokenRefresh: async () => {
    if (cached.token && Date.now() < cached.until) return cached.token;
    requests.d365_token += 1;
    const r = await fetch(`${dynamicsUrl}/tenant/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId,
        client_secret: clientSecret, scope: `${dynamicsUrl}/.default` }),
    });
    if (r.status !== 200) throw new Error(`token endpoint answered ${r.status}`);
    const body = await r.json();
    cached = { token: body.access_token, until: Date.now() + (Number(body.expires_in ?? 3599) - 300) * 1000 };
    return cached.token;
  },
});

// Waits out a 429's Retry-After and tries again (dynamics-web-api surfaces the 429 as an error).
async function retry429(fn) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await fn();
    } catch (e) {
      const status = e?.status ?? e?.code;
      if (status !== 429 || attempt >= 10) throw e;
      requests.retried_429 += 1;
      const after = Number(e?.headers?.['retry-after'] ?? e?.headers?.['Retry-After'] ?? 1);
      await new Promise((resolve) => setTimeout(resolve, Math.max(1, after) * 1000));
    }
  }
}

// 1. The pipeline, for its id and the stage labels.
requests.hubspot_pipelines += 1;
const pipelines = await hubspot.crm.pipelines.pipelinesApi.getAll('tickets');
const onboarding = pipelines.results.find((p) => p.label === 'Order/faktura');
if (!onboarding) throw new Error('no "Order/faktura" ticket pipeline');
const stageLabel = Object.fromEntries(onboarding.stages.map((s) => [s.id, s.label]));

// 2. Every ticket, 100 per page (the list API's maximum), then the pipeline's.
const properties = ['subject', 'content', 'hs_pipeline', 'hs_pipeline_stage', 'hs_ticket_priority'];
const tickets = [];
let after;
do {
  requests.hubspot_list += 1;
  // One comma-separated value: HubSpot takes it as well as the repeated parameter the SDK sends
  // for an array, and the mock reads only the first `properties` parameter of a list request.
  const page = await hubspot.crm.tickets.basicApi.getPage(100, after, [properties.join(',')]);
  for (const t of page.results) if (t.properties.hs_pipeline === onboarding.id) tickets.push(t);
  after = page.paging?.next?.after;
} while (after);

// 3. One opportunity per ticket, one create request each.
let next = 0;
async function worker() {
  while (next < tickets.length) {
    const t = tickets[next++].properties;
    const data = { name: (t.subject ?? '').trim(), description: t.content ?? null };
    const stage = STAGE[stageLabel[t.hs_pipeline_stage]];
    if (stage !== undefined) data.crmb_onboardingstage = stage;
    if (PRIORITY[t.hs_ticket_priority] !== undefined) data.crmb_priority = PRIORITY[t.hs_ticket_priority];
    requests.d365_create += 1;
    await retry429(() => d365.create({ collection: 'opportunities', data }));
  }
}
await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));

const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
console.log(JSON.stringify({ tickets: tickets.length, created: requests.d365_create, requests,
  wall_ms: Math.round(wallMs), concurrency }));
