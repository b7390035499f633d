// Prints what a Dynamics 365 mock holds (its /__admin/dump JSON on stdin) as sorted lines that do
// not depend on row ids: lookups are shown as the name of the row they point to, so two runs that
// made the same records and references print the same text.
//   usage: curl -s $URL/__admin/dump | node d365_end_state.mjs
// Decoded as one UTF-8 stream: a character split between two chunks must not become two U+FFFD.
process.stdin.setEncoding('utf8');
let text = '';
process.stdin.on('data', (chunk) => { text += chunk; });
process.stdin.on('end', () => {
  const dump = JSON.parse(text);
  const rows = (set) => dump[set] || [];
  const accountName = new Map(rows('accounts').map((a) => [a.accountid, a.name]));
  const opportunityName = new Map(rows('opportunities').map((o) => [o.opportunityid, o.name]));
  const lines = [];
  for (const a of rows('accounts')) lines.push(`account|${a.name}|${a.websiteurl}|${a.address1_city}`);
  for (const c of rows('contacts'))
    lines.push(`contact|${c.emailaddress1}|${c.firstname} ${c.lastname}|` +
               `${accountName.get(c._parentcustomerid_value) ?? '-'}`);
  for (const o of rows('opportunities'))
    lines.push(`opportunity|${o.name}|${o.crmb_onboardingstage}|${o.crmb_priority}|` +
               `${accountName.get(o._parentaccountid_value) ?? '-'}`);
  for (const n of rows('annotations'))
    lines.push(`note|${n.notetext}|${opportunityName.get(n._objectid_value) ?? '-'}`);
  lines.sort();
  process.stdout.write(lines.join('\n') + (lines.length ? '\n' : ''));
});
