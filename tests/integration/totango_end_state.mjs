// Prints what a Totango mock holds (its /__admin/dump JSON on stdin) as sorted lines that do not
// depend on generated ids: users, touchpoints and tasks are shown with their account's name, so
// two runs that made the same records on the same accounts print the same text.
//   usage: curl -s $URL/__admin/dump | node totango_end_state.mjs
process.stdin.setEncoding('utf8');
let text = '';
process.stdin.on('data', (chunk) => { text += chunk; });
process.stdin.on('end', () => {
  const dump = JSON.parse(text);
  const rows = (set) => dump[set] || [];
  const accountName = new Map(rows('accounts').map((a) => [a.id, a.display_name]));
  const name = (id) => accountName.get(id) ?? `-${id}`;
  const lines = [];
  for (const a of rows('accounts'))
    lines.push(`account|${a.display_name}|${a.attributes['Onboarding Stage'] ?? '-'}`);
  for (const u of rows('users'))
    lines.push(`user|${name(u.account_id)}|${u.id}|${u.name}|${u.attributes.Contact ?? '-'}`);
  for (const t of rows('touchpoints'))
    lines.push(`touchpoint|${name(t.account_id)}|${t.subject}|${t.content}|` +
               `${t.activity_type_id}|sync ${t.disable_sync ? 'off' : 'on'}`);
  for (const t of rows('tasks'))
    lines.push(`task|${name(t.account_id)}|${t.title}|${t.description ?? '-'}|` +
               `${t.due_date ?? '-'}|${t.activity_type_id}|${t.priority}`);
  lines.sort();
  process.stdout.write(lines.join('\n') + (lines.length ? '\n' : ''));
});
