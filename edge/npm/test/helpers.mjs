// Shared test helpers: the built package, keys and tokens from `jose` (an independent
// JOSE implementation), local servers on 127.0.0.1, and waiting on conditions with
// deadlines (never sleeping and hoping).

import { once } from 'node:events';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import * as jose from 'jose';
import { readConformanceCases } from './cases.mjs';

export { caseDenylist, policyOptions } from './judge.mjs';

export * as pkg from '../pkg/dist/node.js';

export const NPM_DIR = fileURLToPath(new URL('..', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
export const PKG_DIR = fileURLToPath(new URL('../pkg', import.meta.url));

/** The directory of the shared conformance cases (TOLLGATE_CONFORMANCE_DIR overrides). */
export const CONFORMANCE_DIR =
  process.env.TOLLGATE_CONFORMANCE_DIR ?? fileURLToPath(new URL('../../../../shared/conformance/cases', import.meta.url));

/** The shared conformance cases, by file. */
export function conformanceCases() {
  return readConformanceCases(CONFORMANCE_DIR);
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

/**
 * Tokens minted by jose, shaped as conformance cases (so judge.mjs runs and judges
 * them like the shared ones): ES256 and RS256 accepted, expired, wrong audience, and
 * revoked through each kind of Denylist entry (jti, sid, subject cutoff).
 */
export async function joseCases() {
  const es = await keyPair('ES256', 'jose-es');
  const rs = await keyPair('RS256', 'jose-rs');
  const jwks = { keys: [es.jwk, rs.jwk] };
  const policy = { issuers: ['https://issuer.example'], audiences: ['https://api.example'] };
  const base = { iss: 'https://issuer.example', aud: 'https://api.example', sub: 'alice', iat: NOW - 10, exp: NOW + 300 };
  const c = async (id, key, claims, expect, denylist) => ({
    id,
    token: await sign(key, { ...base, ...claims }),
    jwks,
    policy,
    now: NOW,
    ...(denylist ? { denylist } : {}),
    expect,
  });
  const accept = { verdict: 'accept' };
  const reject = (reason) => ({ verdict: 'reject', reason });
  return [
    await c('jose-es256', es, { jti: 'a1' }, accept),
    await c('jose-rs256', rs, { jti: 'a2' }, accept),
    await c('jose-es256-expired', es, { exp: NOW - 1 }, reject('expired')),
    await c('jose-rs256-audience', rs, { aud: 'https://other.example' }, reject('invalid_audience')),
    await c('jose-es256-jti-revoked', es, { jti: 'gone' }, reject('revoked'), { jti: ['gone'] }),
    await c('jose-rs256-sid-revoked', rs, { sid: 's1' }, reject('revoked'), { sid: ['s1'] }),
    await c('jose-es256-subject-cutoff', es, {}, reject('revoked'), { sub_before: { alice: NOW } }),
    await c('jose-rs256-after-cutoff', rs, {}, accept, { sub_before: { alice: NOW - 60 } }),
  ];
}

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
