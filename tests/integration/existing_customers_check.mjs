// Checks the end state of connecting HubSpot and Dynamics 365 when both already hold customers,
// some of them the same (crm-mocks --overlap). Reads four JSON files: the Dynamics 365 mock's
// dump before the sync, both mocks' dumps after it, and HubSpot's owners (GET /crm/v3/owners,
// active and archived, as one array). Prints one line per fault found, then "ok <figures>" when
// there is none.
//   usage: node existing_customers_check.mjs D365_BEFORE D365_AFTER HUBSPOT_AFTER OWNERS OVERLAP DEFAULT_OWNER
import { readFileSync } from 'node:fs';

const [before, after, hubspot, owners] = process.argv.slice(2, 6).map((f) => JSON.parse(readFileSync(f, 'utf8')));
const overlap = Number(process.argv[6]);
const defaultOwner = process.argv[7];
// The Dynamics 365 user a HubSpot owner id should come out as: the enabled user with the owner's
// email, else the configured default owner.
const ownerEmail = new Map(owners.map((o) => [o.id, o.email.toLowerCase()]));
const users = rows0(after, 'systemusers');
const userByEmail = new Map(users.filter((u) => !u.isdisabled).map((u) => [u.internalemailaddress.toLowerCase(), u.systemuserid]));
const expectedUser = (ownerId) => userByEmail.get(ownerEmail.get(ownerId)) || userByEmail.get(defaultOwner);
function rows0(dump, set) { return dump[set] || []; }
let owned = 0;
const faults = [];
const domainOf = (url) => (url || '').trim().toLowerCase().replace(/^[a-z]+:\/\//, '')
  .replace(/[/?#].*$/, '').replace(/:.*$/, '').replace(/\.$/, '').replace(/^www\./, '');
const email = (e) => (e || '').trim().toLowerCase();
const rows = (dump, set) => dump[set] || [];
const props = (o) => o.properties || {};

// HubSpot receives nothing made in Dynamics 365 (create: false): its companies and contacts are
// those it was seeded with, each holding its name and email.
const hsCompanies = rows(hubspot, 'companies'), hsContacts = rows(hubspot, 'contacts');
for (const c of hsCompanies) if (!props(c).name) faults.push(`HubSpot company ${c.id} has no name`);
for (const c of hsContacts) if (!props(c).email) faults.push(`HubSpot contact ${c.id} has no email`);

// Dynamics 365: every HubSpot company once (by domain), every HubSpot contact once (by email);
// no record without its name or email.
const accountsBy = new Map();
for (const a of rows(after, 'accounts')) {
  if (!a.name) faults.push(`Dynamics 365 account ${a.accountid} has no name`);
  const d = domainOf(a.websiteurl);
  accountsBy.set(d, [...(accountsBy.get(d) || []), a]);
}
const contactsBy = new Map();
for (const c of rows(after, 'contacts')) {
  if (!c.emailaddress1) faults.push(`Dynamics 365 contact ${c.contactid} has no email`);
  const e = email(c.emailaddress1);
  contactsBy.set(e, [...(contactsBy.get(e) || []), c]);
}
const accountBefore = new Map(rows(before, 'accounts').map((a) => [domainOf(a.websiteurl), a]));
let linked = 0, created = 0;
for (const c of hsCompanies) {
  const d = domainOf(props(c).domain);
  const found = accountsBy.get(d) || [];
  if (found.length !== 1) { faults.push(`${found.length} Dynamics 365 accounts for ${d}`); continue; }
  const was = accountBefore.get(d);
  if (was) {
    ++linked;
    if (found[0].accountid !== was.accountid) faults.push(`${d}: the account it had was not the one linked`);
    if (found[0].websiteurl !== was.websiteurl) faults.push(`${d}: its website was overwritten (${found[0].websiteurl})`);
    if (found[0]._ownerid_value !== was._ownerid_value) faults.push(`${d}: its owner was overwritten`);
  } else {
    ++created;
    if (found[0]._ownerid_value !== expectedUser(props(c).hubspot_owner_id))
      faults.push(`account ${found[0].name} is owned by ${found[0]._ownerid_value}, not its HubSpot owner's user`);
    else ++owned;
  }
}
for (const c of hsContacts) {
  const e = email(props(c).email);
  const found = contactsBy.get(e) || [];
  if (found.length !== 1) faults.push(`${found.length} Dynamics 365 contacts for ${e}`);
}
// Every onboarding refers to its customer's account: the one Dynamics 365 had, when it had one.
const accountDomain = new Map(rows(after, 'accounts').map((a) => [a.accountid, domainOf(a.websiteurl)]));
const companyDomain = new Map(hsCompanies.map((c) => [c.id, domainOf(props(c).domain)]));
const opportunities = rows(after, 'opportunities').filter((o) => o.crmb_externalid);
for (const t of rows(hubspot, 'tickets')) {
  const company = ((t.associations || {}).companies || [])[0];
  const o = opportunities.find((x) => x.name === (props(t).subject || '').trim());
  if (!o) { faults.push(`ticket ${t.id} has no opportunity`); continue; }
  if (accountDomain.get(o._parentaccountid_value) !== companyDomain.get(company))
    faults.push(`opportunity ${o.name} is not on its customer's account`);
  if (o._ownerid_value !== expectedUser(props(t).hubspot_owner_id))
    faults.push(`opportunity ${o.name} is owned by ${o._ownerid_value}, not its ticket owner's user`);
  else ++owned;
}
// What Dynamics 365 alone had is still there, and was not copied to HubSpot.
for (const a of rows(before, 'accounts'))
  if (!rows(after, 'accounts').some((x) => x.accountid === a.accountid)) faults.push(`account ${a.name} is gone`);
if (linked !== overlap) faults.push(`${linked} of the ${overlap} customers both held were linked`);
for (const f of faults) console.log(f);
if (faults.length === 0)
  console.log(`ok: ${linked} customers linked, ${created} created in Dynamics 365, ${owned} owners set, ` +
              `${rows(after, 'accounts').length} accounts and ${rows(after, 'contacts').length} contacts there, ` +
              `${hsCompanies.length} companies and ${hsContacts.length} contacts in HubSpot`);
