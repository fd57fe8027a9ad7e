// The processes under test: the revocation service (real binary, temp data dir) and
// the Worker under `wrangler dev` (real workerd), configured by the root wrangler.toml
// with per-test overrides. Paths come from the environment (edge/worker/test.sh sets them).
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { start, stop, waitFor, freePort } from './procs.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run edge/worker/test.sh)`);
  return v;
}

/** The measurement build's entry (edge/worker/build.sh with TOLLGATE_BUILD_FEATURES=bench). */
export const BENCH_BUILD = path.join(ROOT, 'edge/worker/build-bench/index.js');

export const logDir = process.env.TOLLGATE_E2E_LOGS ?? mkdtempSync(path.join(tmpdir(), 'tollgate-e2e-logs-'));

/** The revocation service: keys created, started, healthy. `restart()` keeps data and port. */
export async function startRevocation() {
  const bin = need('TOLLGATE_REVOCATION_BIN');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'tollgate-e2e-revocation-'));
  const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TOLLGATE_')));
  const key = (name, scope, ...extra) =>
    execFileSync(bin, ['keys', 'create', '--data-dir', dataDir, '--name', name, '--scope', scope, ...extra], {
      env: cleanEnv,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 30000,
    }).trim();
  const readKey = key('edge-replica', 'denylist:read');
  // events:write keys are scoped to an issuer; events without `iss` are scoped to it.
  const writeKey = key('origin', 'events:write', '--issuer', 'https://issuer.test');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const svc = { url, port, dataDir, readKey, writeKey, proc: null };
  svc.start = async () => {
    svc.proc = start('revocation', bin, ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], {
      logFile: path.join(logDir, 'revocation.log'),
      env: { RUST_LOG: 'warn' },
      dropTollgateEnv: true,
    });
    await waitFor('revocation service /healthz', async () => (await fetch(`${url}/healthz`)).ok, { timeoutMs: 20000 });
  };
  svc.kill = async () => stop(svc.proc, { signal: 'SIGKILL' });
  svc.stop = async () => stop(svc.proc);
  svc.publicJwk = async () => (await fetch(`${url}/v1/denylist/key`)).text();
  /** Posts events with the events:write key; resolves to the parsed reply. */
  svc.post = async (body) => {
    const r = await fetch(`${url}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${writeKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`POST /v1/events: ${r.status} ${await r.text()}`);
    return r.json();
  };
  await svc.start();
  return svc;
}

/**
 * `wrangler dev` on a free port with `vars` overriding wrangler.toml's [vars].
 * Options: `script` replaces wrangler.toml's `main` (a test-only entry module, or
 * BENCH_BUILD: the measurement build, with the bench endpoint compiled in);
 * `persistTo` is the local persistence directory (Cache API, ...), a new temp one by
 * default — pass the same one to a later Worker to share its storage; `logName` gives
 * the Worker a log file of its own (`wrangler-<logName>.log`, else `wrangler.log`),
 * read back with `log()`; `port` fixes the listen port (chosen free beforehand).
 */
export async function startWorker(vars, { script, persistTo, logName, port: fixedPort } = {}) {
  const node = need('NODE22');
  const wrangler = need('WRANGLER_JS');
  const port = fixedPort ?? (await freePort());
  const inspector = await freePort();
  const persist = persistTo ?? mkdtempSync(path.join(tmpdir(), 'tollgate-e2e-wrangler-'));
  const args = [wrangler, 'dev', ...(script ? [script] : []), '-c', path.join(ROOT, 'wrangler.toml')];
  args.push('--ip', '127.0.0.1', '--port', String(port));
  args.push('--inspector-port', String(inspector), '--persist-to', persist);
  args.push('--log-level', 'log', '--show-interactive-dev-session=false');
  for (const [k, v] of Object.entries(vars)) args.push('--var', `${k}:${v}`);
  const logFile = path.join(logDir, logName ? `wrangler-${logName}.log` : 'wrangler.log');
  const proc = start('wrangler', node, args, {
    cwd: ROOT,
    logFile,
    env: { CI: 'true', WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', NO_COLOR: '1' },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor('wrangler dev to answer', async () => {
    if (proc.exited) throw new Error(`wrangler exited (${proc.code}); see ${proc.logFile}`);
    await fetch(`${url}/public/ready`); // any answer: workerd is serving the Worker
    return true;
  }, { timeoutMs: 90000, intervalMs: 250 });
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  return { url, port, proc, persistTo: persist, logFile, log, stop: () => stop(proc) };
}

/** A signing key for the hub in log mode: the P-256 scalar as 64 hex digits (the
 * TOLLGATE_HUB_SIGNING_KEY secret) and its public JWK as text (the edges'
 * TOLLGATE_DENYLIST_KEY). */
export function hubSigningKey() {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  return {
    hex: Buffer.from(jwk.d, 'base64url').toString('hex').padStart(64, '0'),
    publicJwk: JSON.stringify({ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y }),
  };
}
