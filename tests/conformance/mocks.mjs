// Starts crm-mocks (its path in $CRM_MOCKS) for one test file and stops it with SIGTERM after.
import { spawn } from 'node:child_process';
import http from 'node:http';
import { createInterface } from 'node:readline';

const READY_TIMEOUT_MS = 15000;

export async function startMocks(args = []) {
  const bin = process.env.CRM_MOCKS;
  if (!bin) throw new Error('set CRM_MOCKS to the crm-mocks binary (build/bin/crm-mocks)');
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  // A test file that dies before after() must not leave the mocks running.
  const orphan = () => child.kill('SIGTERM');
  process.once('exit', orphan);

  let timer;
  const line = await new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once('line', resolve);
    child.once('error', reject);  // e.g. ENOENT: a wrong CRM_MOCKS
    exited.then(({ code, signal }) =>
      reject(new Error(`crm-mocks exited (${code ?? signal}) before it was ready`)));
    timer = setTimeout(() => reject(new Error('crm-mocks printed no ready line')), READY_TIMEOUT_MS);
  }).catch((e) => {
    child.kill('SIGTERM');
    throw e;
  }).finally(() => clearTimeout(timer));
  // One JSON object of base URLs, one key per mock; more mocks may join it.
  const urls = JSON.parse(line);

  // No keep-alive: crm-mocks waits out idle keep-alive connections before it exits on SIGTERM.
  const admin = (mock, path, method = 'GET', body) => new Promise((resolve, reject) => {
    const req = http.request(`${urls[mock]}/__admin/${path}`, {
      method, agent: false, headers: body ? { 'Content-Type': 'application/json' } : {},
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => {
        if (res.statusCode >= 300) reject(new Error(`${mock} /__admin/${path}: ${res.statusCode} ${text}`));
        else resolve(text ? JSON.parse(text) : null);
      });
    });
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
  let stopped = false;
  return {
    urls,
    // SIGTERM; crm-mocks stops its servers and exits 0.
    async stop() {
      if (stopped) return;
      stopped = true;
      process.removeListener('exit', orphan);
      child.kill('SIGTERM');
      const { code, signal } = await exited;
      if (code !== 0) throw new Error(`crm-mocks stopped with ${code ?? signal}`);
    },
    // The admin routes every mock serves, outside any vendor API.
    dump: (mock) => admin(mock, 'dump'),
    stats: (mock) => admin(mock, 'stats'),
    faults: (mock, rules) => admin(mock, 'faults', 'POST', { rules }),
    injected: async (mock) => (await admin(mock, 'faults')).injected,
    clearFaults: (mock) => admin(mock, 'faults', 'DELETE'),
  };
}
