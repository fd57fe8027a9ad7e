// Interop: tokens made by independent implementations (`jose`, `jsonwebtoken`)
// verify through the package, faulty ones reject with the expected reasons, and the
// native core (the `tollgate conformance` runner) gives the same verdict and reason as
// the package for every one of them.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import * as jose from 'jose';
import jwt from 'jsonwebtoken';
import { NOW, REPO_ROOT, keyPair, pkg, sign } from './helpers.mjs';

const { Verifier, Denylist, TollgateError } = pkg;

const ISS = 'https://issuer.test';
const AUD = 'https://api.test';
const policy = { issuers: [ISS], audiences: [AUD], requiredClaims: ['exp', 'sub'] };
const base = { iss: ISS, aud: AUD, sub: 'user-1', iat: NOW - 10, exp: NOW + 600 };

let es, rs, jwks;
const cases = [];

function b64url(s) {
  return Buffer.from(s).toString('base64url');
}

/** A value that makes the object holding it `levels` deep (that object counting as one). */
function nested(levels) {
  let v = [];
  for (let i = 2; i < levels; i++) v = [v];
  return v;
}

before(async () => {
  es = await keyPair('ES256', 'es-1');
  rs = await keyPair('RS256', 'rs-1');
  jwks = { keys: [es.jwk, rs.jwk] };
  const add = (id, token, expect, extra = {}) => cases.push({ id, token, expect, ...extra });

  add('jose/es256/valid', await sign(es, { ...base, jti: 'j-1' }), 'accept');
  add('jose/rs256/valid', await sign(rs, { ...base, jti: 'j-2' }), 'accept');
  add('jose/es256/no-kid', await new jose.SignJWT(base).setProtectedHeader({ alg: 'ES256' }).sign(es.privateKey), 'accept');
  add('jose/rs256/expired', await sign(rs, { ...base, exp: NOW }), 'expired');
  add('jose/es256/not-yet-valid', await sign(es, { ...base, nbf: NOW + 60 }), 'not_yet_valid');
  add('jose/es256/wrong-issuer', await sign(es, { ...base, iss: 'https://evil.test' }), 'invalid_issuer');
  add('jose/rs256/wrong-audience', await sign(rs, { ...base, aud: ['https://other.test'] }), 'invalid_audience');
  add('jose/es256/missing-sub', await sign(es, { iss: ISS, aud: AUD, exp: NOW + 60 }), 'missing_claim');
  add('jose/es256/unknown-kid', await sign(es, base, { kid: 'nope' }), 'unknown_key');
  add('jose/rs256/kid-of-ec-key', await sign(rs, base, { kid: 'es-1' }), 'unknown_key');
  add('jose/none', new jose.UnsecuredJWT(base).encode(), 'unsupported_algorithm');
  add('jose/es256/exp-as-string', await sign(es, { ...base, exp: `${NOW + 60}` }), 'invalid_claim');
  add(
    'jose/es256/crit-b64',
    await new jose.CompactSign(new TextEncoder().encode(JSON.stringify(base)))
      .setProtectedHeader({ alg: 'ES256', kid: 'es-1', b64: true, crit: ['b64'] })
      .sign(es.privateKey),
    'unsupported_critical_header',
  );
  add('jose/es256/typ-mismatch', await sign(es, base, { typ: 'JWT' }), 'invalid_type', { policy: { typ: 'at+jwt' } });
  add('jose/es256/typ-match', await sign(es, base, { typ: 'application/AT+JWT' }), 'accept', { policy: { typ: 'at+jwt' } });
  add('jose/es256/too-large', await sign(es, { ...base, pad: 'x'.repeat(9000) }), 'too_large');
  add('jose/es256/revoked-jti', await sign(es, { ...base, jti: 'gone' }), 'revoked', { denylist: { jti: ['gone'] } });
  add('jose/rs256/revoked-sid', await sign(rs, { ...base, sid: 's-9' }), 'revoked', { denylist: { sid: ['s-9'] } });
  add('jose/es256/revoked-subject', await sign(es, { ...base }), 'revoked', { denylist: { sub_before: { 'user-1': NOW } } });
  // Nesting: up to 128 levels in claims and header (the object itself counting as one).
  add('jose/es256/claims-nested-100', await sign(es, { ...base, deep: nested(100) }), 'accept');
  add('jose/es256/claims-nested-129', await sign(es, { ...base, deep: nested(129) }), 'malformed');
  add('jose/es256/header-nested-100', await sign(es, base, { deep: nested(100) }), 'accept');
  add('jose/es256/header-nested-129', await sign(es, base, { deep: nested(129) }), 'malformed');

  const good = await sign(es, base);
  const other = await sign(es, { ...base, sub: 'admin' });
  const [h, , s] = good.split('.');
  add('tamper/payload-swapped', `${h}.${other.split('.')[1]}.${s}`, 'invalid_signature');
  const sig = Buffer.from(s, 'base64url');
  sig[10] ^= 1;
  add('tamper/signature-bit', `${h}.${good.split('.')[1]}.${sig.toString('base64url')}`, 'invalid_signature');
  add('tamper/signature-truncated', `${h}.${good.split('.')[1]}.${sig.subarray(0, 63).toString('base64url')}`, 'invalid_signature');
  add('tamper/header-alg-rs256', `${b64url(JSON.stringify({ alg: 'RS256', kid: 'rs-1' }))}.${good.split('.')[1]}.${s}`, 'invalid_signature');
  add('tamper/padded', `${good}=`, 'malformed');
  add('tamper/two-segments', good.split('.').slice(0, 2).join('.'), 'malformed');

  // jsonwebtoken signs with node:crypto keys.
  const esPem = createPrivateKey({ key: await jose.exportJWK(es.privateKey), format: 'jwk' });
  const rsPem = createPrivateKey({ key: await jose.exportJWK(rs.privateKey), format: 'jwk' });
  const jwtOpts = (alg, kid) => ({ algorithm: alg, keyid: kid, noTimestamp: true });
  add('jsonwebtoken/es256/valid', jwt.sign(base, esPem, jwtOpts('ES256', 'es-1')), 'accept');
  add('jsonwebtoken/rs256/valid', jwt.sign(base, rsPem, jwtOpts('RS256', 'rs-1')), 'accept');
  add('jsonwebtoken/rs256/expired', jwt.sign({ ...base, exp: NOW - 1 }, rsPem, jwtOpts('RS256', 'rs-1')), 'expired');
});

function verifierFor(c) {
  return new Verifier({ jwks, ...policy, ...(c.policy ?? {}) });
}

function denylistFor(c) {
  const d = new Denylist();
  for (const j of c.denylist?.jti ?? []) d.revokeJti(j, NOW + 3600);
  for (const s of c.denylist?.sid ?? []) d.revokeSid(s, NOW + 3600);
  for (const [sub, t] of Object.entries(c.denylist?.sub_before ?? {})) d.revokeSubject(sub, t, NOW + 3600);
  return d;
}

async function packageVerdict(c) {
  const opts = { now: NOW, denylist: denylistFor(c) };
  const a = await verifierFor(c).check(c.token, opts);
  const b = verifierFor(c).checkSync(c.token, opts);
  assert.deepEqual(a, b.ok ? { ok: true, claims: b.claims } : b, `${c.id}: verify and verifySync agree`);
  return a.ok ? 'accept' : a.reason;
}

describe('tokens from jose and jsonwebtoken', () => {
  it('verify with the expected verdicts through the package', async () => {
    assert.ok(cases.length >= 25);
    for (const c of cases) assert.equal(await packageVerdict(c), c.expect, c.id);
  });

  it('claims nested 100 deep verify as they do in jose and jsonwebtoken; 129 deep are malformed', async () => {
    const deep = cases.find((c) => c.id === 'jose/es256/claims-nested-100');
    const { payload } = await jose.jwtVerify(deep.token, es.publicKey, { currentDate: new Date(NOW * 1000) });
    assert.deepEqual(jwt.decode(deep.token).deep, payload.deep);
    const claims = await verifierFor(deep).verify(deep.token, { now: NOW });
    assert.deepEqual(claims.deep, nested(100));
    const deeper = cases.find((c) => c.id === 'jose/es256/claims-nested-129');
    await jose.jwtVerify(deeper.token, es.publicKey, { currentDate: new Date(NOW * 1000) });
    assert.throws(() => verifierFor(deeper).verifySync(deeper.token, { now: NOW }), (e) => e.reason === 'malformed');
  });

  it('claims come back as plain objects', async () => {
    const token = await sign(es, { ...base, roles: ['a', 'b'], nested: { x: 1 } });
    const claims = await new Verifier({ jwks, ...policy }).verify(token, { now: NOW });
    assert.deepEqual(claims, { ...base, roles: ['a', 'b'], nested: { x: 1 } });
    assert.equal(Object.getPrototypeOf(claims), Object.prototype);
  });

  it('errors are TollgateErrors with name, reason and code', async () => {
    const expired = cases.find((c) => c.id === 'jose/rs256/expired');
    await assert.rejects(verifierFor(expired).verify(expired.token, { now: NOW }), (e) => {
      assert.ok(e instanceof TollgateError && e instanceof Error);
      assert.equal(e.name, 'TollgateError');
      assert.equal(e.reason, 'expired');
      assert.equal(e.code, 'TOKEN_EXPIRED');
      assert.equal(e.message, 'token has expired');
      return true;
    });
    assert.throws(() => verifierFor(expired).verifySync(42), (e) => e.reason === 'malformed');
    assert.throws(() => new Verifier({ jwks, leeway: 5 }), (e) => e.code === 'INVALID_OPTIONS' && /leeway/.test(e.message));
    assert.throws(() => new Verifier({ jwks: { nokeys: [] } }), (e) => e.code === 'INVALID_JWKS');
  });

  it('the native core gives the same verdict and reason for every token', (t) => {
    const bin = process.env.TOLLGATE_CLI_BIN ?? join(REPO_ROOT, 'target/npm/debug/tollgate');
    if (!existsSync(bin)) {
      assert.fail(`native CLI not found at ${bin}: build it with cargo build -p tollgate-cli (test.sh does)`);
    }
    const snake = (p = {}) => ({
      issuers: p.issuers,
      audiences: p.audiences,
      required_claims: p.requiredClaims,
      ...(p.typ ? { typ: p.typ } : {}),
    });
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-interop-'));
    try {
      const lines = [];
      for (const c of cases) {
        const expect = c.expect === 'accept' ? { verdict: 'accept' } : { verdict: 'reject', reason: c.expect };
        const p = { ...policy, ...(c.policy ?? {}) };
        lines.push(JSON.stringify({ id: c.id, token: c.token, jwks, policy: snake(p), now: NOW, denylist: c.denylist, expect }));
      }
      writeFileSync(join(dir, 'interop.jsonl'), `${lines.join('\n')}\n`);
      let out;
      try {
        out = execFileSync(bin, ['conformance', join(dir, 'interop.jsonl')], { encoding: 'utf8' });
      } catch (e) {
        out = e.stdout;
      }
      const last = out.trim().split('\n').pop();
      t.diagnostic(`native core: ${last}`);
      assert.equal(last, `${cases.length} passed, 0 failed`, out);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
