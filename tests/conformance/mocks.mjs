// Starts crm-mocks (its path in $CRM_MOCKS) for one test file and stops it with SIGTERM after.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export async function startMocks(args = []) {
  const bin = process.env.CRM_MOCKS;
  if (!bin) throw new Error('set CRM_MOCKS to the crm-mocks binary (build/bin/crm-mocks)');
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`crm-mocks exited with ${code} before it was ready`)));
  });
  const urls = JSON.parse(line);
  const stopped = new Promise((resolve) => child.once('exit', resolve));
  return {
    urls,
    async stop() {
      child.kill('SIGTERM');
      await stopped;
    },
    // The admin routes every mock serves, outside any vendor API.
    async dump(mock) {
      return (await fetch(`${urls[mock]}/__admin/dump`)).json();
    },
    async faults(mock, rules) {
      const r = await fetch(`${urls[mock]}/__admin/faults`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(rules),
      });
      if (r.status !== 204) throw new Error(`setting faults: ${r.status} ${await r.text()}`);
    },
  };
}
