// tollgate-auth for the social suites: the real binary, SQLite in a temp directory,
// on a port chosen first (its public URL names the redirect URIs), with the given
// providers and settings.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { start, stop, waitFor, freePort } from '../../../tests/lib/procs.mjs';
import { need, logDir } from '../../../tests/lib/stack.mjs';

/** providers: {name: {preset, issuer, client_id, client_secret}} */
export async function startAuth(svc, { providers, publicUrl, port, env = {}, logName = 'auth' }) {
  const bin = need('TOLLGATE_AUTH_BIN');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'tollgate-social-auth-'));
  const listenPort = port ?? (await freePort());
  const url = `http://127.0.0.1:${listenPort}`;
  const toml = `{ ${Object.entries(providers)
    .map(([name, p]) => `${name} = { ${Object.entries(p).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(', ')} }`)
    .join(', ')} }`;
  const fullEnv = {
    TOLLGATE_AUTH_REVOCATION_URL: svc.url,
    TOLLGATE_AUTH_REVOCATION_TOKEN: svc.writeKey,
    TOLLGATE_AUTH_LOG: 'info',
    TOLLGATE_AUTH_PUBLIC_URL: publicUrl ?? url,
    TOLLGATE_AUTH_PROVIDERS: toml,
    TOLLGATE_AUTH_RATE_REGISTER_IP: '{ burst = 100, interval_ms = 1000 }',
    // Test speed: the production Argon2id memory is not what these suites measure.
    TOLLGATE_AUTH_ARGON2_M_KIB: '8192',
    ...env,
  };
  const proc = start('tollgate-auth', bin, ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${listenPort}`, '--insecure-dev-cookies'], {
    logFile: path.join(logDir, `${logName}.log`),
    env: fullEnv,
    dropTollgateEnv: true,
  });
  await waitFor('tollgate-auth /readyz', async () => {
    if (proc.exited) throw new Error(`tollgate-auth exited (${proc.code}); see ${proc.logFile}`);
    return (await fetch(`${url}/readyz`)).ok;
  }, { timeoutMs: 30000 });
  const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TOLLGATE_')));
  const cli = (...args) => execFileSync(bin, [...args, '--data-dir', dataDir], {
    env: { ...cleanEnv, ...fullEnv }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30000,
  });
  return { url, dataDir, proc, cli, stop: () => stop(proc) };
}

/** A metric's value from /metrics. */
export async function metric(base, name, labels) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const want = `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')}} `;
  const line = text.split('\n').find((l) => l.startsWith(want));
  return line ? Number(line.slice(want.length)) : 0;
}
