// Shared test helpers: the built package, keys and tokens from `jose` (an independent
// JOSE implementation), local servers on 127.0.0.1, and waiting on conditions with
// deadlines (never sleeping and hoping).

import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import * as jose from 'jose';

export * as pkg from '../pkg/dist/node.js';

export const NPM_DIR = fileURLToPath(new URL('..', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
export const PKG_DIR = fileURLToPath(new URL('../pkg', import.meta.url));

/** The shared conformance cases, by file. */
export function conformanceCases() {
  const dir = process.env.TOLLGATE_CONFORMANCE_DIR ?? fileURLToPath(new URL('../../../../shared/conformance/cases', import.meta.url));
  if (!existsSync(dir)) throw new Error(`conformance cases not found at ${dir} (set TOLLGATE_CONFORMANCE_DIR)`);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort()
    .map((file) => ({
      file,
      cases: readFileSync(`${dir}/${file}`, 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l)),
    }));
}

/** The conformance policy (snake_case) as Verifier options (camelCase). */
export function policyOptions(policy = {}) {
  const map = {
    issuers: 'issuers',
    audiences: 'audiences',
    algorithms: 'algorithms',
    leeway_seconds: 'leewaySeconds',
    required_claims: 'requiredClaims',
    typ: 'typ',
    max_token_bytes: 'maxTokenBytes',
    min_rsa_bits: 'minRsaBits',
  };
  const out = {};
  for (const [k, v] of Object.entries(policy)) {
    if (!(k in map)) throw new Error(`unknown conformance policy field ${k}`);
    out[map[k]] = v;
  }
  return out;
}

/** A conformance case's denylist as a package Denylist (entries never expire). */
export function caseDenylist(Denylist, d) {
  const list = new Denylist();
  const forever = 2 ** 40;
  for (const jti of d?.jti ?? []) list.revokeJti(jti, forever);
  for (const sid of d?.sid ?? []) list.revokeSid(sid, forever);
  for (const [sub, before] of Object.entries(d?.sub_before ?? {})) list.revokeSubject(sub, before, forever);
  return list;
}

/** An ES256 or RS256 key pair from jose, with its public JWK (kid, alg, use). */
export async function keyPair(alg, kid) {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, publicKey, privateKey, jwk };
}

/** Signs claims with jose. */
export function sign(key, claims, header = {}) {
  return new jose.SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header }).sign(key.privateKey);
}

/** Seconds since the epoch for tests that need a fixed clock. */
export const NOW = 1_800_000_000;

/** Starts a Node http server on 127.0.0.1 (ephemeral port); resolves to { url, server, close }. */
export async function listen(handler) {
  const server = http.createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** Resolves when `condition()` is truthy; rejects after `timeoutMs`. Polls every `everyMs`. */
export async function waitFor(condition, { timeoutMs = 10_000, everyMs = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await condition();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A hand-cranked clock in milliseconds. */
export function manualClock(startMs = NOW * 1000) {
  let t = startMs;
  const clock = () => t;
  clock.advance = (ms) => {
    t += ms;
  };
  return clock;
}
