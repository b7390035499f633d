// The oracle of the two-way convergence test (twoway_convergence_test.sh).
//
//   node twoway_oracle.mjs ids HUBSPOT_DUMP D365_DUMP
//     Prints the native ids the test edits records by, one line each:
//       hubspot company <domain> <id>            dynamics365 company <domain> <accountid>
//       hubspot contact <email> <id> <associated company ids, comma-separated, or ->
//       dynamics365 contact <email> <contactid> <parent account id, or ->
//
//   node twoway_oracle.mjs check EDITS HUBSPOT_DUMP D365_DUMP
//     EDITS has one line per field a user set, in the order they were set (creations included):
//       round <TAB> system <TAB> entity <TAB> key <TAB> field <TAB> value
//     where a company's key is its domain, a contact's its email, and a contact's company is the
//     domain of the company it refers to. Each field must end, in both systems, with the value of
//     its last edit (the test separates two edits of one field by more than a second, so that
//     their order is their order by modification time, Dynamics 365 dating to the second), except
//     a field owned by one system (system_of_record), which takes that system's last edit alone:
//     a record made in the other system keeps the value it was made with until its owner sets
//     one. Every record must be held once in each system, and no other record. Prints each
//     difference with the field's edits and exits 1, or prints a summary and exits 0.
//     Events of a record are lines whose field starts with an underscore:
//       _archived      archived (HubSpot) or deleted (Dynamics 365): held by neither system;
//       _restored      back from HubSpot's recycle bin: held by both again;
//       _merged <key>  merged into the record <key> (the survivor keeps its values): held by
//                      neither system; the contacts of a merged company belong to the survivor.
//
// The dumps are the mocks' GET /__admin/dump. Null, missing and empty values are the same: empty.
import { readFileSync } from 'node:fs';

const owners = { 'company.phone': 'dynamics365' };
const fields = { company: ['name', 'city', 'phone'], contact: ['first_name', 'last_name', 'company'] };
const norm = (v) => (v === null || v === undefined ? '' : String(v));
const lower = (v) => norm(v).trim().toLowerCase();

// Both systems' records as {system: {entity: Map(key -> [record...])}} with canonical field names;
// a contact's company as the company's domain ('' for none; '?<id>' for a record not found).
function holdings(hubspotDump, d365Dump) {
  const hs = JSON.parse(readFileSync(hubspotDump, 'utf8'));
  const d = JSON.parse(readFileSync(d365Dump, 'utf8'));
  const out = { hubspot: { company: new Map(), contact: new Map() },
                dynamics365: { company: new Map(), contact: new Map() } };
  const add = (system, entity, key, rec) => {
    const m = out[system][entity];
    if (!m.has(key)) m.set(key, []);
    m.get(key).push(rec);
  };
  const hsCompanies = (hs.companies || []).filter((c) => !c.archived);
  const hsDomain = new Map(hsCompanies.map((c) => [c.id, lower(c.properties.domain)]));
  for (const c of hsCompanies)
    add('hubspot', 'company', lower(c.properties.domain),
        { id: c.id, name: norm(c.properties.name), city: norm(c.properties.city),
          phone: norm(c.properties.phone) });
  for (const c of (hs.contacts || []).filter((x) => !x.archived)) {
    const ids = (c.associations && c.associations.companies) || [];
    const live = ids.filter((id) => hsDomain.has(id));
    add('hubspot', 'contact', lower(c.properties.email),
        { id: c.id, first_name: norm(c.properties.firstname), last_name: norm(c.properties.lastname),
          company: live.map((id) => hsDomain.get(id)).sort().join(','), companyIds: live });
  }
  // A merged row stays, deactivated and pointing at its master: only active rows are records.
  const active = (r) => r.statecode === undefined || r.statecode === 0;
  const accounts = (d.accounts || []).filter(active);
  const d365Domain = new Map(accounts.map((a) => [a.accountid, lower(a.websiteurl)]));
  for (const a of accounts)
    add('dynamics365', 'company', lower(a.websiteurl),
        { id: a.accountid, name: norm(a.name), city: norm(a.address1_city), phone: norm(a.telephone1) });
  for (const c of (d.contacts || []).filter(active)) {
    const parent = c._parentcustomerid_value;
    add('dynamics365', 'contact', lower(c.emailaddress1),
        { id: c.contactid, first_name: norm(c.firstname), last_name: norm(c.lastname),
          company: parent ? (d365Domain.get(parent) ?? `?${parent}`) : '', companyIds: parent ? [parent] : [] });
  }
  return out;
}

function ids(hubspotDump, d365Dump) {
  const held = holdings(hubspotDump, d365Dump);
  const lines = [];
  for (const system of ['hubspot', 'dynamics365'])
    for (const entity of ['company', 'contact'])
      for (const [key, recs] of held[system][entity]) {
        const r = recs[0];
        let line = `${system} ${entity} ${key} ${r.id}`;
        if (entity === 'contact')
          line += ` ${r.companyIds.length ? r.companyIds.join(',') : '-'}`;
        lines.push(line);
      }
  process.stdout.write(lines.join('\n') + (lines.length ? '\n' : ''));
}

function check(editsFile, hubspotDump, d365Dump) {
  // entity -> key -> field -> [{round, system, value}] in the order made
  const edits = { company: new Map(), contact: new Map() };
  const gone = { company: new Map(), contact: new Map() };  // key -> the event that took it
  let count = 0;
  let events = 0;
  for (const line of readFileSync(editsFile, 'utf8').split('\n')) {
    if (!line) continue;
    const [round, system, entity, key, field, value = ''] = line.split('\t');
    if (!edits[entity].has(key)) edits[entity].set(key, {});
    const byField = edits[entity].get(key);
    if (field.startsWith('_')) {
      ++events;
      if (field === '_restored') gone[entity].delete(key);
      else gone[entity].set(key, `${field.slice(1)} in ${system} in round ${round}` +
                                 (value ? ` into ${value}` : ''));
      // A merged company's contacts belong to the survivor from then on (the merging system
      // moves them; crmbridge moves them in the other).
      if (field === '_merged' && entity === 'company')
        for (const [, contact] of edits.contact) {
          const company = contact.company || [];
          if (company.length && company[company.length - 1].value === key)
            company.push({ round, system, value });
        }
      continue;
    }
    (byField[field] ||= []).push({ round, system, value });
    ++count;
  }
  const held = holdings(hubspotDump, d365Dump);
  const problems = [];
  let lostUpdates = 0;
  for (const entity of ['company', 'contact']) {
    for (const [key, byField] of edits[entity]) {
      for (const system of ['hubspot', 'dynamics365']) {
        const recs = held[system][entity].get(key) || [];
        if (gone[entity].has(key)) {
          if (recs.length)
            problems.push(`${entity} ${key}: ${recs.length} records in ${system}, expected none ` +
                          `(${gone[entity].get(key)})`);
          continue;
        }
        if (recs.length !== 1) {
          problems.push(`${entity} ${key}: ${recs.length} records in ${system}, expected 1`);
          continue;
        }
        for (const field of fields[entity]) {
          const history = byField[field] || [];
          const owner = owners[`${entity}.${field}`];
          // A field one system owns takes that system's edits alone; a record made elsewhere
          // keeps the value it was made with until its owner sets one.
          let counted = history.filter((e) => !owner || e.system === owner);
          if (!counted.length && history.length && history[0].round === '0') counted = [history[0]];
          const want = counted.length ? counted[counted.length - 1].value : '';
          const got = recs[0][field];
          if (got === want) continue;
          // Which edit does the system hold instead? An older one than the newest means a newer
          // edit was overwritten: a lost update.
          const last = counted.length - 1;
          let older = -1;
          for (let i = last - 1; i >= 0; --i) if (counted[i].value === got) { older = i; break; }
          if (older >= 0) ++lostUpdates;
          const made = history.map((e) => `r${e.round} ${e.system} ${JSON.stringify(e.value)}` +
                                          (owner && e.system !== owner ? ' (not its owner)' : ''))
                              .join(', ');
          problems.push(`${entity} ${key} ${field}: ${system} holds ${JSON.stringify(got)}, expected ` +
                        `${JSON.stringify(want)}` +
                        (older >= 0 ? ` (an older edit, made in round ${counted[older].round} in ` +
                                      `${counted[older].system}, overwrote the newer one: a lost update)`
                                    : '') +
                        `; edits: ${made || 'none'}`);
        }
      }
    }
    for (const system of ['hubspot', 'dynamics365'])
      for (const key of held[system][entity].keys())
        if (!edits[entity].has(key)) problems.push(`${entity} ${key}: in ${system}, but never made`);
  }
  if (problems.length) {
    process.stdout.write(problems.join('\n') + '\n');
    process.stdout.write(`${problems.length} difference(s), ${lostUpdates} of them lost updates\n`);
    process.exit(1);
  }
  process.stdout.write(`${edits.company.size} companies and ${edits.contact.size} contacts, ` +
                       `${count} field edits, ${events} archives, restores and merges: every ` +
                       `field holds its newest edit in both systems\n`);
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'ids' && args.length === 2) ids(...args);
else if (mode === 'check' && args.length === 3) check(...args);
else {
  process.stderr.write('usage: twoway_oracle.mjs ids HUBSPOT_DUMP D365_DUMP | ' +
                       'check EDITS HUBSPOT_DUMP D365_DUMP\n');
  process.exit(2);
}
