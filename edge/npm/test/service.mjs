// The real revocation service (the `tollgate-revocation` binary) on 127.0.0.1 for the
// tests: a fresh data directory, keys created with the binary's own `keys create`, the
// listening address read from its output (port 0), stopped with SIGTERM.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './helpers.mjs';

export const SERVICE_BIN = process.env.TOLLGATE_REVOCATION_BIN ?? join(REPO_ROOT, 'target/npm/debug/tollgate-revocation');
/** A skip message when the binary is absent (test.sh builds it), else false. */
export const serviceSkip = existsSync(SERVICE_BIN) ? false : `the tollgate-revocation binary is not built (${SERVICE_BIN}); build it with cargo build -p tollgate-revocation`;

function cleanEnv() {
  // The service refuses TOLLGATE_* variables it does not know: give it none.
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TOLLGATE_'))), RUST_LOG: 'warn' };
}

/**
 * Starts the service. `keys`: { name: [scope, ...extra args] }. Resolves to
 * `{ url, keys: { name: secret }, publicJwk, stop() }`.
 */
export async function startService({ keys = {}, args = [] } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tollgate-svc-'));
  const env = cleanEnv();
  const made = {};
  for (const [name, [scope, ...extra]] of Object.entries(keys)) {
    made[name] = execFileSync(SERVICE_BIN, ['keys', 'create', '--data-dir', dir, '--name', name, '--scope', scope, ...extra], {
      encoding: 'utf8',
      env,
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  }
  const child = spawn(SERVICE_BIN, ['serve', '--data-dir', dir, '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`service did not start within 20 s: ${out}${stderr}`)), 20_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(`http://${m[1]}`);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`service exited with ${code}: ${stderr}`));
    });
  });
  const publicJwk = await (await fetch(`${url}/v1/denylist/key`)).json();
  return {
    url,
    keys: made,
    publicJwk,
    dir,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The service's log records from `from` (admin key). */
export async function logRecords(svc, adminKey, from = 1) {
  const res = await fetch(`${svc.url}/v1/admin/log?from=${from}&limit=1000`, { headers: { authorization: `Bearer ${adminKey}` } });
  if (res.status !== 200) throw new Error(`admin log: ${res.status} ${await res.text()}`);
  return (await res.json()).records;
}
