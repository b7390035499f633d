// HubSpot's own Node SDK (@hubspot/api-client) against the HubSpot mock: what it sends and how it
// reads the answers must work unchanged, or the mock is not HubSpot.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Client } from '@hubspot/api-client';
import { startMocks } from './mocks.mjs';

const TOKEN = 'pat-conformance';
const SEEDED = 30;  // --size: one onboarding ticket per company
const ORDER_PIPELINE = '7340123';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
let mocks;
let hubspot;
// Each new Client resets the SDK's process-wide retry decorators, which bind when one of its API
// groups is first used: the retrying client comes last.
const client = (basePath, options = {}) => new Client({ accessToken: TOKEN, basePath, ...options });
// The SDK talks through Node's global keep-alive agent (13.x ignores its httpAgent option); its idle
// sockets would hold crm-mocks' SIGTERM stop until they time out.
const dropIdleSockets = () => http.globalAgent.destroy();

before(async () => {
  mocks = await startMocks(['--size', String(SEEDED), '--seed', '3', '--no-limits', '--hubspot-token', TOKEN]);
  hubspot = client(mocks.urls.hubspot);
});
after(async () => {
  dropIdleSockets();
  await mocks?.stop();
});

const liveTickets = async () => (await mocks.dump('hubspot')).tickets.filter((t) => !t.archived);
// Asserts that `promise` rejects with an SDK ApiException of `code`; returns its parsed body.
async function apiError(promise, code) {
  let error;
  await assert.rejects(promise, (e) => { error = e; return true; });
  assert.equal(error.code, code, `HTTP ${code} expected, got ${error.code}: ${error.message}`);
  assert.equal(typeof error.body, 'object', 'the SDK parsed the error body');
  return error.body;
}

test('pages through every seeded ticket with after: each once, as many as the store holds', async () => {
  const seen = new Set();
  let after;
  let pages = 0;
  do {
    const page = await hubspot.crm.tickets.basicApi.getPage(7, after, ['subject', 'hs_pipeline']);
    assert.ok(page.results.length <= 7);
    for (const t of page.results) {
      assert.ok(!seen.has(t.id), `ticket ${t.id} twice`);
      assert.ok(t.properties.subject && t.properties.hs_pipeline, 'every requested property comes back');
      seen.add(t.id);
    }
    after = page.paging?.next?.after;
    pages += 1;
    assert.ok(pages <= 10, 'paging ends');
  } while (after);
  const live = await liveTickets();
  assert.equal(live.length, SEEDED);
  assert.equal(seen.size, live.length);
  assert.deepEqual([...seen].sort(), live.map((t) => t.id).sort());
  assert.equal(pages, Math.ceil(SEEDED / 7));
});

test('creates a company, a contact and a ticket and reads them back', async () => {
  const company = await hubspot.crm.companies.basicApi.create({ properties: { name: 'SDK Bygg AB', domain: 'sdkbygg.example.se' } });
  assert.match(company.id, /^\d+$/);
  assert.equal(company.properties.name, 'SDK Bygg AB');
  assert.ok(company.createdAt instanceof Date && !Number.isNaN(company.createdAt.getTime()), 'timestamps parse as dates');
  const contact = await hubspot.crm.contacts.basicApi.create({ properties: { email: 'anna@sdkbygg.example.se', firstname: 'Anna' } });
  assert.equal(contact.properties.email, 'anna@sdkbygg.example.se');
  const ticket = await hubspot.crm.tickets.basicApi.create({
    properties: { subject: 'SDK onboarding', hs_pipeline: '0', hs_pipeline_stage: '1' },
  });
  assert.notEqual(ticket.id, company.id, 'distinct ids across object types');
  const read = await hubspot.crm.tickets.basicApi.getById(ticket.id, ['subject', 'hs_pipeline_stage']);
  assert.equal(read.properties.subject, 'SDK onboarding');
  assert.equal(read.properties.hs_pipeline_stage, '1');
  const byEmail = await hubspot.crm.contacts.basicApi.getById('anna@sdkbygg.example.se', ['firstname'], undefined, undefined, false, 'email');
  assert.equal(byEmail.id, contact.id);
  assert.equal(byEmail.properties.firstname, 'Anna');
  const dump = await mocks.dump('hubspot');
  assert.equal(dump.companies.find((c) => c.id === company.id)?.properties.domain, 'sdkbygg.example.se');
});

test('searches with EQ, IN, GTE and CONTAINS_TOKEN filters and sorts', async () => {
  const seeded = (await liveTickets()).filter((t) => t.properties.hs_pipeline === ORDER_PIPELINE);
  assert.equal(seeded.length, SEEDED);

  // EQ, sorted by a number descending, paged with the numeric after: every hit once, in order.
  const ids = [];
  let after = '0';
  while (after) {
    const res = await hubspot.crm.tickets.searchApi.doSearch({
      filterGroups: [{ filters: [{ propertyName: 'hs_pipeline', operator: 'EQ', value: ORDER_PIPELINE }] }],
      sorts: [{ propertyName: 'hs_ticket_id', direction: 'DESCENDING' }],
      properties: ['hs_pipeline', 'hs_ticket_id'],
      limit: 8,
      after,
    });
    assert.equal(res.total, SEEDED);
    for (const t of res.results) assert.equal(t.properties.hs_pipeline, ORDER_PIPELINE);
    ids.push(...res.results.map((t) => Number(t.properties.hs_ticket_id)));
    after = res.paging?.next?.after;
  }
  assert.equal(ids.length, SEEDED);
  assert.equal(new Set(ids).size, SEEDED);
  assert.deepEqual(ids, [...ids].sort((a, b) => b - a));

  // IN over stages AND GTE on a number, ascending: exactly the matching rows of the store.
  const stages = [...new Set(seeded.map((t) => t.properties.hs_pipeline_stage))].slice(0, 2);
  const mid = ids[Math.floor(ids.length / 2)];
  const want = seeded.filter((t) => stages.includes(t.properties.hs_pipeline_stage) && Number(t.properties.hs_ticket_id) >= mid)
    .map((t) => t.id).sort((a, b) => a - b);
  assert.ok(want.length > 0 && want.length < SEEDED, 'a selective filter');
  const inGte = await hubspot.crm.tickets.searchApi.doSearch({
    filterGroups: [{ filters: [
      { propertyName: 'hs_pipeline_stage', operator: 'IN', values: stages },
      { propertyName: 'hs_ticket_id', operator: 'GTE', value: String(mid) },
    ] }],
    sorts: [{ propertyName: 'hs_ticket_id', direction: 'ASCENDING' }],
    properties: ['hs_pipeline_stage'],
    limit: 100,
  });
  assert.equal(inGte.total, want.length);
  assert.deepEqual(inGte.results.map((t) => t.id), want);
  assert.equal(inGte.paging, undefined, 'no next page when everything fit');

  // GTE on hs_lastmodifieddate (epoch ms): only what changed since.
  const since = Math.max(...seeded.map((t) => Date.parse(t.properties.hs_lastmodifieddate))) + 1;
  await new Promise((r) => setTimeout(r, 5));
  const fresh = await Promise.all(['Ny 1', 'Ny 2'].map((subject) =>
    hubspot.crm.tickets.basicApi.create({ properties: { subject, hs_pipeline: ORDER_PIPELINE, hs_pipeline_stage: '7340124' } })));
  const changed = await hubspot.crm.tickets.searchApi.doSearch({
    filterGroups: [{ filters: [
      { propertyName: 'hs_pipeline', operator: 'EQ', value: ORDER_PIPELINE },
      { propertyName: 'hs_lastmodifieddate', operator: 'GTE', value: String(since) },
    ] }],
    sorts: [{ propertyName: 'hs_lastmodifieddate', direction: 'ASCENDING' }],
    properties: ['subject', 'hs_lastmodifieddate'],
    limit: 10,
  });
  assert.deepEqual(changed.results.map((t) => t.id).sort(), fresh.map((t) => t.id).sort());
  const times = changed.results.map((t) => Date.parse(t.properties.hs_lastmodifieddate));
  assert.ok(times.every((ms) => ms >= since));
  assert.deepEqual(times, [...times].sort((a, b) => a - b));

  // CONTAINS_TOKEN in a second filter group (OR).
  await hubspot.crm.companies.basicApi.create({ properties: { name: 'Tokenbolaget AB' } });
  const tokens = await hubspot.crm.companies.searchApi.doSearch({
    filterGroups: [
      { filters: [{ propertyName: 'name', operator: 'CONTAINS_TOKEN', value: 'tokenbolaget' }] },
      { filters: [{ propertyName: 'name', operator: 'EQ', value: 'No such company' }] },
    ],
    properties: ['name'],
    limit: 100,
  });
  assert.deepEqual(tokens.results.map((c) => c.properties.name), ['Tokenbolaget AB']);
});

test('batch upsert by a unique property creates, then updates, never duplicates', async () => {
  const prop = await hubspot.crm.properties.coreApi.create('tickets', {
    name: 'sdk_external_id', label: 'SDK external id', type: 'string', fieldType: 'text',
    groupName: 'ticketinformation', hasUniqueValue: true,
  });
  assert.equal(prop.name, 'sdk_external_id');
  assert.equal(prop.hasUniqueValue, true);
  const inputs = (suffix) => ['a', 'b', 'c'].map((k) => ({
    idProperty: 'sdk_external_id', id: `ext-${k}`,
    properties: { subject: `Upserted ${k} ${suffix}`, hs_pipeline: '0', hs_pipeline_stage: '1' },
  }));
  const first = await hubspot.crm.tickets.batchApi.upsert({ inputs: inputs('v1') });
  assert.equal(first.status, 'COMPLETE');
  assert.equal(first.results.length, 3);
  // The SDK maps the wire's "new" to `_new`.
  assert.ok(first.results.every((r) => r._new === true), 'created');
  const second = await hubspot.crm.tickets.batchApi.upsert({ inputs: inputs('v2') });
  assert.equal(second.results.length, 3);
  assert.ok(second.results.every((r) => r._new === false), 'updated');
  assert.deepEqual(second.results.map((r) => r.id).sort(), first.results.map((r) => r.id).sort());
  const b = await hubspot.crm.tickets.basicApi.getById('ext-b', ['subject'], undefined, undefined, false, 'sdk_external_id');
  assert.equal(b.properties.subject, 'Upserted b v2');
  const rows = (await liveTickets()).filter((t) => String(t.properties.sdk_external_id ?? '').startsWith('ext-'));
  assert.equal(rows.length, 3);
});

test('a duplicate unique value is a 409 CONFLICT naming the existing id', async () => {
  await hubspot.crm.properties.coreApi.create('companies', {
    name: 'sdk_org_number', label: 'SDK org number', type: 'string', fieldType: 'text',
    groupName: 'companyinformation', hasUniqueValue: true,
  });
  const first = await hubspot.crm.companies.basicApi.create({ properties: { name: 'Unik AB', sdk_org_number: '556000-0001' } });
  const body = await apiError(
    hubspot.crm.companies.basicApi.create({ properties: { name: 'Kopia AB', sdk_org_number: '556000-0001' } }), 409);
  assert.equal(body.status, 'error');
  assert.equal(body.category, 'CONFLICT');
  assert.match(body.correlationId, UUID);
  assert.equal(body.message.match(/Existing ID: (\d+)/)?.[1], first.id);
  const dump = await mocks.dump('hubspot');
  assert.equal(dump.companies.filter((c) => c.properties.sdk_org_number === '556000-0001').length, 1);
});

test('associates a ticket with a company (v4 default, single and batch) and reads it back', async () => {
  const [c1, c2] = await Promise.all(['Assoc 1 AB', 'Assoc 2 AB'].map((name) =>
    hubspot.crm.companies.basicApi.create({ properties: { name } })));
  const ticket = await hubspot.crm.tickets.basicApi.create({ properties: { subject: 'Assoc', hs_pipeline: '0', hs_pipeline_stage: '1' } });

  const single = await hubspot.crm.associations.v4.basicApi.createDefault('tickets', ticket.id, 'companies', c1.id);
  assert.equal(single.status, 'COMPLETE');
  assert.equal(single.results[0].associationSpec.associationTypeId, 339);

  // Batch: the SDK model names `from` as `_from` (a reserved word) and sends it as "from".
  const batch = await hubspot.crm.associations.v4.batchApi.createDefault('tickets', 'companies',
    { inputs: [{ _from: { id: ticket.id }, to: { id: c2.id } }] });
  assert.equal(batch.status, 'COMPLETE');
  assert.equal(batch.results.length, 1);
  assert.equal(batch.results[0]._from.id, ticket.id);
  assert.equal(batch.results[0].to.id, c2.id);
  assert.equal(batch.results[0].associationSpec.associationTypeId, 339);
});

test('associations read back through v4 (single and batch) and v3 ?associations=', async () => {
  const company = await hubspot.crm.companies.basicApi.create({ properties: { name: 'Readback AB' } });
  const ticket = await hubspot.crm.tickets.basicApi.create({ properties: { subject: 'Readback', hs_pipeline: '0', hs_pipeline_stage: '1' } });
  const created = await hubspot.crm.associations.v4.batchApi.create('tickets', 'companies', { inputs: [{
    _from: { id: ticket.id }, to: { id: company.id },
    types: [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 339 }],
  }] });
  assert.equal(created.status, 'COMPLETE');
  assert.equal(String(created.results[0].fromObjectId), ticket.id);
  assert.equal(String(created.results[0].toObjectId), company.id);

  const page = await hubspot.crm.associations.v4.basicApi.getPage('tickets', ticket.id, 'companies');
  assert.deepEqual(page.results.map((r) => String(r.toObjectId)), [company.id]);
  assert.ok(page.results[0].associationTypes.some((t) => t.typeId === 339 && t.category === 'HUBSPOT_DEFINED'));
  // The other direction exists too.
  const back = await hubspot.crm.associations.v4.basicApi.getPage('companies', company.id, 'tickets');
  assert.deepEqual(back.results.map((r) => String(r.toObjectId)), [ticket.id]);

  const read = await hubspot.crm.associations.v4.batchApi.getPage('tickets', 'companies', { inputs: [{ id: ticket.id }] });
  assert.equal(read.results.length, 1);
  assert.equal(read.results[0]._from.id, ticket.id);
  assert.deepEqual(read.results[0].to.map((r) => String(r.toObjectId)), [company.id]);

  const v3 = await hubspot.crm.tickets.basicApi.getById(ticket.id, ['subject'], undefined, ['companies']);
  assert.deepEqual(v3.associations.companies.results.map((r) => r.id), [company.id]);
  assert.equal(v3.associations.companies.results[0].type, 'ticket_to_company');
});

test('a v4 association with an explicit type (basicApi.create) and its removal (basicApi.archive)', async () => {
  const ticket = await hubspot.crm.tickets.basicApi.create({ properties: { subject: 'Labelled', hs_pipeline: '0', hs_pipeline_stage: '1' } });
  const contact = await hubspot.crm.contacts.basicApi.create({ properties: { email: 'labelled@sdkbygg.example.se' } });
  // PUT /crm/v4/objects/tickets/{id}/associations/contacts/{toId} with [AssociationSpec] -> 201.
  const pair = await hubspot.crm.associations.v4.basicApi.create('tickets', ticket.id, 'contacts', contact.id,
    [{ associationCategory: 'HUBSPOT_DEFINED', associationTypeId: 16 }]);
  assert.equal(String(pair.fromObjectId), ticket.id);
  assert.equal(String(pair.toObjectId), contact.id);
  assert.equal(pair.fromObjectTypeId, '0-5');
  assert.equal(pair.toObjectTypeId, '0-1');
  const page = await hubspot.crm.associations.v4.basicApi.getPage('tickets', ticket.id, 'contacts');
  assert.deepEqual(page.results.map((r) => String(r.toObjectId)), [contact.id]);
  // DELETE of the same path -> 204.
  await hubspot.crm.associations.v4.basicApi.archive('tickets', ticket.id, 'contacts', contact.id);
  const none = await hubspot.crm.associations.v4.basicApi.getPage('tickets', ticket.id, 'contacts');
  assert.deepEqual(none.results, []);
});

test('errors come back as HubSpot error bodies with category and correlationId', async () => {
  const missing = await apiError(hubspot.crm.tickets.basicApi.getById('999999999'), 404);
  assert.equal(missing.status, 'error');
  assert.equal(missing.category, 'OBJECT_NOT_FOUND');
  assert.match(missing.correlationId, UUID);
  assert.ok(missing.message);

  const notUnique = await apiError(
    hubspot.crm.tickets.batchApi.upsert({ inputs: [{ idProperty: 'subject', id: 'x', properties: { subject: 'x' } }] }), 400);
  assert.equal(notUnique.category, 'VALIDATION_ERROR');
  assert.match(notUnique.correlationId, UUID);

  const badToken = client(mocks.urls.hubspot, { accessToken: 'pat-wrong' });
  const unauth = await apiError(badToken.crm.tickets.basicApi.getPage(1), 401);
  assert.equal(unauth.category, 'INVALID_AUTHENTICATION');
});

test('an injected 429 reaches the SDK with HubSpot\'s rate-limit body; the default client does not retry', async () => {
  const route = 'GET /crm/v3/objects/{type}';
  const served = (await mocks.stats('hubspot'))[route] ?? 0;
  await mocks.faults('hubspot', [{ path: '/crm/v3/objects/tickets', status: 429, times: 1 }]);
  const body = await apiError(hubspot.crm.tickets.basicApi.getPage(1), 429);
  assert.equal(body.status, 'error');
  assert.equal(body.errorType, 'RATE_LIMIT');
  assert.equal(body.policyName, 'TEN_SECONDLY_ROLLING');
  assert.match(body.correlationId, UUID);
  // numberOfApiCallRetries is 0 by default: one injected answer, no retry served after it.
  assert.equal(await mocks.injected('hubspot'), 1);
  assert.equal((await mocks.stats('hubspot'))[route] ?? 0, served);
  await mocks.clearFaults('hubspot');
  const ok = await hubspot.crm.tickets.basicApi.getPage(1);
  assert.equal(ok.results.length, 1, 'the next call goes through');
});

test('twelve parallel SDK calls are answered at once, not after idle connections time out', async () => {
  // Without a limiter the SDK opens one keep-alive connection per call in flight.
  dropIdleSockets();
  const ids = (await liveTickets()).slice(0, 12).map((t) => t.id);
  const started = Date.now();
  const got = await Promise.all(ids.map((id) => hubspot.crm.tickets.basicApi.getById(id, ['subject'])));
  const elapsed = Date.now() - started;
  dropIdleSockets();
  assert.deepEqual(got.map((t) => t.id), ids);
  assert.ok(elapsed < 1500, `12 parallel reads took ${elapsed} ms`);
});

test('real limits: rate-limit headers, the search SECONDLY 429, and the SDK\'s own retry of it', async () => {
  const limited = await startMocks(['--hubspot-token', TOKEN, '--seed-only', 'hubspot', '--size', '3']);
  try {
    const plain = client(limited.urls.hubspot);
    const info = await plain.crm.tickets.basicApi.getPageWithHttpInfo(10);
    assert.equal(info.data.results.length, 3);
    assert.equal(info.headers['x-hubspot-ratelimit-max'], '100');
    assert.equal(info.headers['x-hubspot-ratelimit-interval-milliseconds'], '10000');
    assert.match(info.headers['x-hubspot-ratelimit-remaining'], /^\d+$/);

    const search = (client) => client.crm.tickets.searchApi.doSearch({ filterGroups: [], properties: ['subject'], limit: 10 });
    // Search allows 5 per second: without retries the sixth and seventh in a row are refused.
    const outcomes = [];
    for (let i = 0; i < 7; i += 1) outcomes.push(await search(plain).then(() => 'ok', (e) => e));
    assert.deepEqual(outcomes.slice(0, 5), ['ok', 'ok', 'ok', 'ok', 'ok']);
    for (const e of outcomes.slice(5)) {
      assert.equal(e.code, 429);
      assert.equal(e.body.policyName, 'SECONDLY');
      assert.equal(e.body.message, 'You have reached your secondly limit.');
      assert.match(e.body.correlationId, UUID);
    }
    dropIdleSockets();

    // The SDK retries exactly that message after 1 s x attempt: a burst of 7 at once succeeds.
    // (Seven connections at once, each served by a worker of its own: see the parallel-calls test.)
    await new Promise((r) => setTimeout(r, 1100));
    const retrying = client(limited.urls.hubspot, { numberOfApiCallRetries: 3 });
    const searchesBefore = (await limited.stats('hubspot'))['POST /crm/v3/objects/{type}/search'];
    const quiet = console.error;
    console.error = () => {};  // the SDK logs each retry
    let results;
    try {
      results = await Promise.all(Array.from({ length: 7 }, () => search(retrying)));
    } finally {
      console.error = quiet;
      dropIdleSockets();
    }
    assert.ok(results.every((r) => r.total === 3));
    const searches = (await limited.stats('hubspot'))['POST /crm/v3/objects/{type}/search'] - searchesBefore;
    assert.ok(searches > 7, `retries reached the mock (${searches} requests for 7 searches)`);
  } finally {
    dropIdleSockets();
    await limited.stop();
  }
});
