// Microsoft's dynamics-web-api against the Dataverse mock: OData paging, alternate-key upserts,
// lookups, change tracking, etags and $batch as the library speaks them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { DynamicsWebApi } from 'dynamics-web-api';
import { startMocks } from './mocks.mjs';

let mocks;
let api;
let tokens = 0;

before(async () => {
  mocks = await startMocks(['--size', '12', '--seed', '5', '--no-limits',
    '--dynamics365-client-id', 'conf-client', '--dynamics365-client-secret', 'conf-secret']);
  const base = mocks.urls.dynamics365;
  api = new DynamicsWebApi({
    serverUrl: `${base}/`,
    dataApi: { version: '9.2' },
    // Errors such as a 412 reach the caller instead of the library's legacy `false`.
    propagateErrors: true,
    // Client credentials against the mock's Entra ID endpoint, as an app registration would.
    onTokenRefresh: async () => {
      const r = await fetch(`${base}/tenant/oauth2/v2.0/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'conf-client',
          client_secret: 'conf-secret', scope: `${base}/.default` }),
      });
      assert.equal(r.status, 200);
      tokens += 1;
      return (await r.json()).access_token;
    },
  });
});
after(async () => mocks && mocks.stop());

test('creates an account and contacts bound to it, and reads the lookup back', async () => {
  const accountid = await api.create({ collection: 'accounts', data: { name: 'SDK Fastighet AB', crmb_externalid: 'sdk-acc-1' } });
  assert.match(accountid, /^[0-9a-f-]{36}$/);
  for (const last of ['Berg', 'Holm']) {
    await api.create({ collection: 'contacts', data: {
      lastname: last, firstname: 'Sara', 'parentcustomerid_account@odata.bind': `/accounts(${accountid})`,
    } });
  }
  const contacts = await api.retrieveMultiple({ collection: 'contacts', select: ['lastname', '_parentcustomerid_value'],
    filter: `_parentcustomerid_value eq ${accountid}`, orderBy: ['lastname asc'] });
  assert.deepEqual(contacts.value.map((c) => c.lastname), ['Berg', 'Holm']);
  assert.ok(contacts.value.every((c) => c._parentcustomerid_value === accountid));
  assert.ok(tokens >= 1, 'the token came from the token endpoint');
});

test('pages with odata.maxpagesize and nextLink: every row once', async () => {
  const seen = new Set();
  let page = await api.retrieveMultiple({ collection: 'contacts', select: ['contactid', 'lastname'], maxPageSize: 5 });
  let pages = 1;
  for (;;) {
    for (const row of page.value) {
      assert.ok(!seen.has(row.contactid), 'a row twice');
      seen.add(row.contactid);
    }
    if (!page.oDataNextLink) break;
    // The same odata.maxpagesize on every page, the nextLink as given (refs: Dataverse paging).
    page = await api.retrieveMultiple({ collection: 'contacts', maxPageSize: 5 }, page.oDataNextLink);
    pages += 1;
  }
  const dump = await mocks.dump('dynamics365');
  assert.equal(seen.size, dump.contacts.length);
  assert.ok(pages > 2);
  const all = await api.retrieveAll({ collection: 'contacts', select: ['contactid'], maxPageSize: 7 });
  assert.equal(all.value.length, dump.contacts.length);
});

test('filters over strings, numbers, dates and GUIDs, with orderBy and top', async () => {
  const opps = await api.retrieveMultiple({ collection: 'opportunities', select: ['name', 'crmb_onboardingstage', 'createdon'],
    filter: "crmb_onboardingstage ge 100000000 and createdon gt 2000-01-01T00:00:00Z and contains(name,'AB')",
    orderBy: ['name desc'], top: 4 });
  assert.ok(opps.value.length > 0 && opps.value.length <= 4);
  const names = opps.value.map((o) => o.name);
  assert.deepEqual(names, [...names].sort().reverse());
  const one = await api.retrieveMultiple({ collection: 'opportunities', select: ['name'],
    filter: `opportunityid eq ${opps.value[0].opportunityid}` });
  assert.equal(one.value.length, 1);
});

test('upserts by alternate key: created once, then updated in place', async () => {
  const key = "crmb_externalid='sdk-opp-1'";
  await api.upsert({ collection: 'opportunities', key, data: { name: 'Upsert v1' } });
  await api.upsert({ collection: 'opportunities', key, data: { name: 'Upsert v2' } });
  const rows = await api.retrieveMultiple({ collection: 'opportunities', select: ['name'],
    filter: "crmb_externalid eq 'sdk-opp-1'" });
  assert.equal(rows.value.length, 1);
  assert.equal(rows.value[0].name, 'Upsert v2');
});

test('change tracking: a delta link reports an update and a deletion', async () => {
  const first = await api.retrieveAll({ collection: 'accounts', select: ['name'], trackChanges: true });
  const deltaLink = first.oDataDeltaLink;
  assert.match(deltaLink, /deltatoken=/);
  const [changed, removed] = first.value.slice(0, 2);
  await api.update({ collection: 'accounts', key: changed.accountid, data: { name: 'Renamed by SDK' } });
  await api.deleteRecord({ collection: 'accounts', key: removed.accountid });
  const delta = await api.retrieveMultiple({ collection: 'accounts' }, deltaLink);
  const updated = delta.value.find((r) => r.accountid === changed.accountid);
  assert.equal(updated?.name, 'Renamed by SDK');
  const gone = delta.value.find((r) => r.id === removed.accountid || (r['@id'] || '').includes(removed.accountid));
  assert.ok(gone, `the deleted row is in the delta: ${JSON.stringify(delta.value)}`);
  assert.equal(gone.reason, 'deleted');
  assert.match(delta.oDataDeltaLink, /deltatoken=/);
});

test('If-Match with a stale etag is refused with 412 and the Dataverse error body', async () => {
  const id = await api.create({ collection: 'accounts', data: { name: 'Etag AB' } });
  const row = await api.retrieve({ collection: 'accounts', key: id, select: ['name'] });
  assert.ok(row['@odata.etag']);
  await api.update({ collection: 'accounts', key: id, data: { name: 'Etag AB 2' } });
  await assert.rejects(
    api.update({ collection: 'accounts', key: id, data: { name: 'stale' }, ifmatch: row['@odata.etag'] }),
    (e) => e.status === 412 && /^0x/.test(e.code || ''));
});

test('a $batch of creates comes back as one answer per request', async () => {
  api.startBatch();
  api.create({ collection: 'tasks', data: { subject: 'Batch task 1' } });
  api.create({ collection: 'tasks', data: { subject: 'Batch task 2' } });
  api.retrieveMultiple({ collection: 'tasks', select: ['subject'], filter: "startswith(subject,'Batch task')" });
  const answers = await api.executeBatch();
  assert.equal(answers.length, 3);
  assert.match(answers[0], /^[0-9a-f-]{36}$/);
  assert.match(answers[1], /^[0-9a-f-]{36}$/);
  assert.equal(answers[2].value.length, 2, 'the read after the creates sees them');
});
