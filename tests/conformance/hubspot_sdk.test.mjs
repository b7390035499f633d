// HubSpot's own Node SDK (@hubspot/api-client) against the HubSpot mock: what it sends and how it
// reads the answers must work unchanged, or the mock is not HubSpot.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@hubspot/api-client';
import { startMocks } from './mocks.mjs';

const TOKEN = 'pat-conformance';
let mocks;
let hubspot;

before(async () => {
  mocks = await startMocks(['--size', '30', '--seed', '3', '--no-limits', '--hubspot-token', TOKEN]);
  hubspot = new Client({ accessToken: TOKEN, basePath: mocks.urls.hubspot });
});
after(async () => mocks && mocks.stop());

test('creates a ticket, a company and a contact and reads them back', async () => {
  const company = await hubspot.crm.companies.basicApi.create({ properties: { name: 'SDK Bygg AB', domain: 'sdkbygg.example.se' } });
  assert.match(company.id, /^\d+$/);
  assert.equal(company.properties.name, 'SDK Bygg AB');
  assert.ok(company.createdAt instanceof Date, 'timestamps parse as dates');
  const contact = await hubspot.crm.contacts.basicApi.create({ properties: { email: 'anna@sdkbygg.example.se', firstname: 'Anna' } });
  const ticket = await hubspot.crm.tickets.basicApi.create({
    properties: { subject: 'SDK onboarding', hs_pipeline: '0', hs_pipeline_stage: '1' },
  });
  const read = await hubspot.crm.tickets.basicApi.getById(ticket.id, ['subject', 'hs_pipeline_stage']);
  assert.equal(read.properties.subject, 'SDK onboarding');
  assert.equal(read.properties.hs_pipeline_stage, '1');
  const byEmail = await hubspot.crm.contacts.basicApi.getById('anna@sdkbygg.example.se', ['firstname'], undefined, undefined, false, 'email');
  assert.equal(byEmail.id, contact.id);
});

test('pages through every seeded ticket with after, each once', async () => {
  const seen = new Set();
  let after;
  let pages = 0;
  do {
    const page = await hubspot.crm.tickets.basicApi.getPage(7, after, ['subject']);
    for (const t of page.results) {
      assert.ok(!seen.has(t.id), `ticket ${t.id} twice`);
      seen.add(t.id);
    }
    after = page.paging?.next?.after;
    pages += 1;
  } while (after);
  const dump = await mocks.dump('hubspot');
  const live = dump.tickets.filter((t) => !t.archived).length;
  assert.equal(seen.size, live);
  assert.ok(pages >= 5);
});

test('searches with filters and a sort', async () => {
  const res = await hubspot.crm.tickets.searchApi.doSearch({
    filterGroups: [{ filters: [
      { propertyName: 'hs_pipeline', operator: 'EQ', value: '7340123' },
      { propertyName: 'hs_lastmodifieddate', operator: 'GTE', value: '0' },
    ] }],
    sorts: [{ propertyName: 'hs_lastmodifieddate', direction: 'ASCENDING' }],
    properties: ['subject', 'hs_pipeline', 'hs_lastmodifieddate'],
    limit: 10,
    after: '0',
  });
  assert.equal(res.total, 30, 'the seeded onboarding tickets');
  assert.equal(res.results.length, 10);
  assert.equal(res.paging.next.after, '10');
  for (const t of res.results) assert.equal(t.properties.hs_pipeline, '7340123');
  const times = res.results.map((t) => Date.parse(t.properties.hs_lastmodifieddate) || Number(t.properties.hs_lastmodifieddate));
  assert.deepEqual(times, [...times].sort((a, b) => a - b));

  const tokens = await hubspot.crm.companies.searchApi.doSearch({
    filterGroups: [{ filters: [{ propertyName: 'name', operator: 'CONTAINS_TOKEN', value: 'SDK*' }] }],
    properties: ['name'],
    limit: 100,
  });
  assert.ok(tokens.results.some((c) => c.properties.name === 'SDK Bygg AB'));
});

test('batch upsert by a unique property creates, then updates, never duplicates', async () => {
  await hubspot.crm.properties.coreApi.create('tickets', {
    name: 'sdk_external_id', label: 'SDK external id', type: 'string', fieldType: 'text',
    groupName: 'ticketinformation', hasUniqueValue: true,
  });
  const inputs = (suffix) => ['a', 'b', 'c'].map((k) => ({
    idProperty: 'sdk_external_id', id: `ext-${k}`,
    properties: { subject: `Upserted ${k} ${suffix}`, hs_pipeline: '0', hs_pipeline_stage: '1' },
  }));
  const first = await hubspot.crm.tickets.batchApi.upsert({ inputs: inputs('v1') });
  assert.equal(first.status, 'COMPLETE');
  assert.equal(first.results.length, 3);
  assert.ok(first.results.every((r) => r._new === true || r['new'] === true), 'created');
  const second = await hubspot.crm.tickets.batchApi.upsert({ inputs: inputs('v2') });
  assert.ok(second.results.every((r) => r._new === false || r['new'] === false), 'updated');
  assert.deepEqual(second.results.map((r) => r.id).sort(), first.results.map((r) => r.id).sort());
  const dump = await mocks.dump('hubspot');
  assert.equal(dump.tickets.filter((t) => String(t.properties.sdk_external_id || '').startsWith('ext-')).length, 3);
});

test('associates a ticket with a company (v4 default) and reads the association', async () => {
  const company = await hubspot.crm.companies.basicApi.create({ properties: { name: 'Assoc AB' } });
  const ticket = await hubspot.crm.tickets.basicApi.create({ properties: { subject: 'Assoc', hs_pipeline: '0', hs_pipeline_stage: '1' } });
  await hubspot.crm.associations.v4.basicApi.createDefault('tickets', ticket.id, 'companies', company.id);
  const page = await hubspot.crm.associations.v4.basicApi.getPage('tickets', ticket.id, 'companies');
  assert.equal(page.results.length, 1);
  assert.equal(String(page.results[0].toObjectId), company.id);
  assert.ok(page.results[0].associationTypes.some((t) => t.typeId === 339), 'ticket-to-company default type 339');
});

test('errors come back as HubSpot error bodies with category and correlationId', async () => {
  await assert.rejects(
    hubspot.crm.tickets.basicApi.getById('999999999'),
    (e) => {
      assert.equal(e.code, 404);
      assert.equal(e.body.category, 'OBJECT_NOT_FOUND');
      assert.match(e.body.correlationId, /^[0-9a-f-]{36}$/);
      return true;
    });
  await assert.rejects(
    hubspot.crm.tickets.batchApi.upsert({ inputs: [{ idProperty: 'subject', id: 'x', properties: { subject: 'x' } }] }),
    (e) => e.code === 400 && e.body.category === 'VALIDATION_ERROR');
});

test('a 429 reaches the SDK with HubSpot\'s rate-limit body', async () => {
  await mocks.faults('hubspot', [{ path: '/crm/v3/objects/tickets', status: 429, times: 1 }]);
  await assert.rejects(
    hubspot.crm.tickets.basicApi.getPage(1),
    (e) => e.code === 429 && e.body.policyName === 'TEN_SECONDLY_ROLLING' && e.body.errorType === 'RATE_LIMIT');
  const ok = await hubspot.crm.tickets.basicApi.getPage(1);
  assert.equal(ok.results.length, 1, 'the next call goes through');
});
