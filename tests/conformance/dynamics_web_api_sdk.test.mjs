// Microsoft's dynamics-web-api against the Dataverse mock: OData paging, alternate-key upserts,
// lookups, change tracking, etags and $batch as the library speaks them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { DynamicsWebApi } from 'dynamics-web-api';
import { startMocks } from './mocks.mjs';

const CLIENT_ID = 'conf-client';
const CLIENT_SECRET = 'conf-secret';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
let mocks;
let base;
let api;
let tokens = 0;

// Client credentials against the mock's Entra ID endpoint, as an app registration would.
async function fetchToken() {
  const r = await fetch(`${base}/tenant/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET, scope: `${base}/.default` }),
  });
  const body = await r.json();
  assert.equal(r.status, 200, JSON.stringify(body));
  assert.equal(body.token_type, 'Bearer');
  tokens += 1;
  return body.access_token;
}

const client = (onTokenRefresh = fetchToken) => new DynamicsWebApi({
  serverUrl: `${base}/`,
  dataApi: { version: '9.2' },
  // Errors such as a 412 reach the caller instead of the library's legacy `false`/`null`.
  propagateErrors: true,
  onTokenRefresh,
});

before(async () => {
  mocks = await startMocks(['--size', '12', '--seed', '5', '--no-limits',
    '--dynamics365-client-id', CLIENT_ID, '--dynamics365-client-secret', CLIENT_SECRET]);
  base = mocks.urls.dynamics365;
  api = client();
});
after(async () => mocks && mocks.stop());

// Asserts that `promise` rejects with an HTTP error of `status`; returns the library's error.
async function httpError(promise, status) {
  let error;
  await assert.rejects(promise, (e) => { error = e; return true; });
  assert.equal(error.status, status, `HTTP ${status} expected, got ${error.status}: ${error.message}`);
  return error;
}

test('creates an account and contacts bound to it, and reads the lookup back', async () => {
  const accountid = await api.create({ collection: 'accounts', data: { name: 'SDK Fastighet AB', crmb_externalid: 'sdk-acc-1' } });
  assert.match(accountid, GUID);
  const contactids = [];
  for (const last of ['Berg', 'Holm']) {
    contactids.push(await api.create({ collection: 'contacts', data: {
      lastname: last, firstname: 'Sara', 'parentcustomerid_account@odata.bind': `/accounts(${accountid})`,
    } }));
  }
  assert.ok(contactids.every((id) => GUID.test(id)));
  const contacts = await api.retrieveMultiple({ collection: 'contacts', select: ['lastname', '_parentcustomerid_value'],
    filter: `_parentcustomerid_value eq ${accountid}`, orderBy: ['lastname asc'] });
  assert.deepEqual(contacts.value.map((c) => c.lastname), ['Berg', 'Holm']);
  assert.deepEqual(contacts.value.map((c) => c.contactid), contactids);
  assert.ok(contacts.value.every((c) => c._parentcustomerid_value === accountid));

  // With annotations the lookup names its table, as Dataverse does for a polymorphic lookup.
  const one = await api.retrieve({ collection: 'contacts', key: contactids[0], select: ['_parentcustomerid_value'], includeAnnotations: '*' });
  assert.equal(one._parentcustomerid_value, accountid);
  assert.equal(one['_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname'], 'account');
  assert.equal(one['_parentcustomerid_value@OData.Community.Display.V1.FormattedValue'], 'SDK Fastighet AB');
  const account = await api.retrieve({ collection: 'accounts', key: "crmb_externalid='sdk-acc-1'", select: ['name'] });
  assert.equal(account.accountid, accountid);
  assert.ok(tokens >= 1, 'the token came from the token endpoint');
});

test('pages with select, filter, orderBy and odata.maxpagesize by nextLink: every row once, in order', async () => {
  const query = { collection: 'contacts', select: ['contactid', 'lastname', 'statecode'],
    filter: 'statecode eq 0', orderBy: ['lastname asc', 'contactid asc'], maxPageSize: 5 };
  const rows = [];
  let page = await api.retrieveMultiple(query);
  let pages = 1;
  for (;;) {
    assert.ok(page.value.length <= 5);
    rows.push(...page.value);
    if (!page.oDataNextLink) break;
    assert.match(page.oDataNextLink, /^http/, 'nextLink is absolute');
    // The same request and odata.maxpagesize on every page, the nextLink as given.
    page = await api.retrieveMultiple(query, page.oDataNextLink);
    pages += 1;
    assert.ok(pages < 50, 'paging ends');
  }
  const dump = await mocks.dump('dynamics365');
  const active = dump.contacts.filter((c) => c.statecode === 0);
  assert.ok(active.length > 10);
  const ids = rows.map((r) => r.contactid);
  assert.equal(new Set(ids).size, ids.length, 'no row twice');
  assert.deepEqual([...ids].sort(), active.map((c) => c.contactid).sort(), 'every active row');
  assert.equal(pages, Math.ceil(active.length / 5));
  const names = rows.map((r) => r.lastname.toLowerCase());
  assert.deepEqual(names, [...names].sort(), 'ordered across pages');
  assert.ok(rows.every((r) => r.statecode === 0));

  const all = await api.retrieveAll({ collection: 'contacts', select: ['contactid'], maxPageSize: 7 });
  assert.equal(all.value.length, dump.contacts.length);
  assert.equal(new Set(all.value.map((r) => r.contactid)).size, dump.contacts.length);
});

test('filters over strings, numbers, dates and GUIDs, with orderBy and top', async () => {
  const opps = await api.retrieveMultiple({ collection: 'opportunities', select: ['name', 'crmb_onboardingstage', 'createdon'],
    filter: "crmb_onboardingstage ge 100000002 and createdon gt 2000-01-01T00:00:00Z and contains(name,'1')",
    orderBy: ['name desc'], top: 4 });
  const dump = await mocks.dump('dynamics365');
  const want = dump.opportunities.filter((o) => o.crmb_onboardingstage >= 100000002 && o.name.includes('1'))
    .map((o) => o.name).sort().reverse().slice(0, 4);
  assert.ok(want.length > 0);
  assert.deepEqual(opps.value.map((o) => o.name), want);
  assert.ok(opps.value.every((o) => typeof o.crmb_onboardingstage === 'number'), 'choices are integers');
  const one = await api.retrieveMultiple({ collection: 'opportunities', select: ['name'],
    filter: `opportunityid eq ${opps.value[0].opportunityid}` });
  assert.deepEqual(one.value.map((o) => o.name), [want[0]]);
});

test('upserts by alternate key: created once, then updated in place; If-None-Match/If-Match guards', async () => {
  const key = "crmb_externalid='sdk-opp-1'";
  const created = await api.upsert({ collection: 'opportunities', key, data: { name: 'Upsert v1' },
    returnRepresentation: true, select: ['opportunityid', 'name', 'crmb_externalid'] });
  assert.match(created.opportunityid, GUID);
  assert.equal(created.name, 'Upsert v1');
  assert.equal(created.crmb_externalid, 'sdk-opp-1', 'the key column is set from the URL');
  const updated = await api.upsert({ collection: 'opportunities', key, data: { name: 'Upsert v2' },
    returnRepresentation: true, select: ['opportunityid', 'name'] });
  assert.equal(updated.opportunityid, created.opportunityid, 'updated, not created again');
  assert.equal(updated.name, 'Upsert v2');
  await api.upsert({ collection: 'opportunities', key, data: { name: 'Upsert v3' } });
  const rows = await api.retrieveMultiple({ collection: 'opportunities', select: ['name'],
    filter: "crmb_externalid eq 'sdk-opp-1'" });
  assert.deepEqual(rows.value.map((r) => [r.opportunityid, r.name]), [[created.opportunityid, 'Upsert v3']]);

  // If-None-Match: * is create-only: an existing row is a 412 and stays as it was.
  const dup = await httpError(api.upsert({ collection: 'opportunities', key, data: { name: 'clobbered' }, ifnonematch: '*' }), 412);
  assert.equal(dup.message, 'A record with matching key values already exists.');
  // If-Match: * is update-only: a missing row is a 404 and nothing is created.
  await httpError(api.upsert({ collection: 'opportunities', key: "crmb_externalid='sdk-opp-none'", data: { name: 'ghost' }, ifmatch: '*' }), 404);
  const dump = await mocks.dump('dynamics365');
  assert.deepEqual(dump.opportunities.filter((o) => String(o.crmb_externalid).startsWith('sdk-opp-')).map((o) => o.name), ['Upsert v3']);
});

test('change tracking: a delta link reports a create, an update and a deletion, nothing else', async () => {
  // A row of its own to delete: no contacts or opportunities hang on it.
  const doomedId = await api.create({ collection: 'accounts', data: { name: 'Delta Doomed AB' } });
  const first = await api.retrieveAll({ collection: 'accounts', select: ['name'], trackChanges: true, maxPageSize: 4 });
  const deltaLink = first.oDataDeltaLink;
  assert.match(deltaLink, /deltatoken=/);
  const dump = await mocks.dump('dynamics365');
  assert.equal(first.value.length, dump.accounts.length, 'the initial read pages through every row');
  const changed = first.value.find((a) => a.accountid !== doomedId);
  const removed = first.value.find((a) => a.accountid === doomedId);
  assert.ok(removed);
  await api.update({ collection: 'accounts', key: changed.accountid, data: { name: 'Renamed by SDK' } });
  await api.deleteRecord({ collection: 'accounts', key: removed.accountid });
  const addedId = await api.create({ collection: 'accounts', data: { name: 'Delta New AB' } });

  const delta = await api.retrieveMultiple({ collection: 'accounts' }, deltaLink);
  const byId = (id) => delta.value.filter((r) => r.accountid === id || r.id === id);
  assert.deepEqual(byId(changed.accountid).map((r) => r.name), ['Renamed by SDK']);
  assert.deepEqual(byId(addedId).map((r) => r.name), ['Delta New AB']);
  const gone = byId(removed.accountid);
  assert.equal(gone.length, 1, `the deleted row is in the delta once: ${JSON.stringify(delta.value)}`);
  assert.equal(gone[0].reason, 'deleted');
  assert.match(gone[0]['@odata.context'] ?? '', /\$deletedEntity$/);
  assert.equal(delta.value.length, 3, `only the changes: ${JSON.stringify(delta.value)}`);
  assert.match(delta.oDataDeltaLink, /deltatoken=/);

  const quiet = await api.retrieveMultiple({ collection: 'accounts' }, delta.oDataDeltaLink);
  assert.deepEqual(quiet.value, [], 'no changes since the last delta');
});

test('If-Match with a stale etag is refused with 412 and the Dataverse error body', async () => {
  const id = await api.create({ collection: 'accounts', data: { name: 'Etag AB' } });
  const row = await api.retrieve({ collection: 'accounts', key: id, select: ['name'] });
  assert.match(row['@odata.etag'], /^W\/"\d+"$/);
  await api.update({ collection: 'accounts', key: id, data: { name: 'Etag AB 2' }, ifmatch: row['@odata.etag'] });
  const fresh = await api.retrieve({ collection: 'accounts', key: id, select: ['name'] });
  assert.notEqual(fresh['@odata.etag'], row['@odata.etag'], 'a write changes the etag');

  const stale = await httpError(
    api.update({ collection: 'accounts', key: id, data: { name: 'stale' }, ifmatch: row['@odata.etag'] }), 412);
  assert.match(stale.code, /^0x[0-9a-f]{8}$/i);
  assert.equal(stale.message, "The version of the existing record doesn't match the RowVersion property provided.");
  await httpError(api.deleteRecord({ collection: 'accounts', key: id, ifmatch: row['@odata.etag'] }), 412);
  const kept = await api.retrieve({ collection: 'accounts', key: id, select: ['name'] });
  assert.equal(kept.name, 'Etag AB 2', 'the refused writes changed nothing');

  const missing = await httpError(api.update({ collection: 'accounts', key: '00000000-0000-0000-0000-000000000001', data: { name: 'x' } }), 404);
  assert.match(missing.code, /^0x[0-9a-f]{8}$/i);
});

test('a $batch: a change set with a Content-ID reference, then a read of what it created', async () => {
  api.startBatch();
  api.create({ collection: 'accounts', data: { name: 'Batch Holding AB' }, contentId: '1' });
  api.create({ collection: 'contacts', data: { lastname: 'Batchsson', 'parentcustomerid_account@odata.bind': '$1' } });
  api.create({ collection: 'tasks', data: { subject: 'Batch task 1' } });
  api.retrieveMultiple({ collection: 'contacts', select: ['lastname', '_parentcustomerid_value'], filter: "lastname eq 'Batchsson'" });
  const answers = await api.executeBatch();
  assert.equal(answers.length, 4);
  const [accountid, contactid, taskid, read] = answers;
  for (const id of [accountid, contactid, taskid]) assert.match(id, GUID);
  assert.deepEqual(read.value.map((c) => [c.contactid, c._parentcustomerid_value]), [[contactid, accountid]]);
  const dump = await mocks.dump('dynamics365');
  assert.equal(dump.tasks.filter((t) => t.subject === 'Batch task 1').length, 1);
});

test('a failing change set is rolled back as one and surfaces the Dataverse error', async () => {
  api.startBatch();
  api.create({ collection: 'accounts', data: { name: 'Rolled back AB' } });
  api.update({ collection: 'accounts', key: '00000000-0000-0000-0000-000000000002', data: { name: 'missing' } });
  let error;
  await assert.rejects(api.executeBatch(), (e) => { error = e; return true; });
  // The library rejects with one Error per failed part; a part's Dataverse body lands under `.error`.
  assert.ok(Array.isArray(error), JSON.stringify(error));
  assert.equal(error.length, 1, 'the batch stopped at the first failure');
  assert.equal(error[0].status, 404);
  assert.match(error[0].error.code, /^0x[0-9a-f]{8}$/i);
  assert.match(error[0].error.message, /Does Not Exist/);
  const dump = await mocks.dump('dynamics365');
  assert.equal(dump.accounts.filter((a) => a.name === 'Rolled back AB').length, 0, 'nothing of the change set landed');
});

test('service protection: a 429 reaches the caller with Retry-After and the Dataverse code, unretried', async () => {
  await mocks.faults('dynamics365', [{ path: '/accounts', status: 429, times: 1, retry_after_s: 2 }]);
  const e = await httpError(api.retrieveMultiple({ collection: 'accounts', select: ['name'], top: 1 }), 429);
  assert.equal(e.code, '0x80072322');
  assert.equal(e.headers['retry-after'], '2');
  assert.equal(await mocks.injected('dynamics365'), 1);
  await mocks.clearFaults('dynamics365');
  const ok = await api.retrieveMultiple({ collection: 'accounts', select: ['name'], top: 1 });
  assert.equal(ok.value.length, 1);
});

test('a token the mock did not issue is a 401 with a Bearer challenge', async () => {
  const e = await httpError(client(async () => 'not-a-token').retrieveMultiple({ collection: 'accounts', top: 1 }), 401);
  assert.match(e.headers['www-authenticate'] ?? '', /^Bearer/);
});
