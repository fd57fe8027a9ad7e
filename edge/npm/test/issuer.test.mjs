// Issuer, KeySet and SigningKey: every claim of both token kinds for ES256 and RS256,
// checked by the package's Verifier (WebCrypto and pure-Rust paths), by `jose` (an
// independent implementation) and by the native core (the `tollgate conformance`
// runner); key import/export keeping the RFC 7638 kid; the rotation timeline on an
// injected clock; every refusal as a typed TollgateError.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import * as jose from 'jose';
import { REPO_ROOT, keyPair, pkg, sign } from './helpers.mjs';

const { Issuer, KeySet, SigningKey, Verifier, TollgateError, thumbprint, RESERVED_CLAIMS } = pkg;

const ISS = 'https://auth.example';
const AUD = 'https://api.example';
const T0 = 1_800_000_000;

function clockAt(seconds) {
  let ms = seconds * 1000;
  const clock = () => ms;
  clock.set = (s) => (ms = s * 1000);
  clock.advance = (s) => (ms += s * 1000);
  return clock;
}

function parts(token) {
  const [h, p] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payloadText: Buffer.from(p, 'base64url').toString(), payload: JSON.parse(Buffer.from(p, 'base64url')) };
}

const isErr = (code, claim) => (e) => e instanceof TollgateError && e.code === code && (claim === undefined || e.claim === claim);

const keys = {};
before(async () => {
  for (const alg of ['ES256', 'RS256']) keys[alg] = [await SigningKey.generate(alg), await SigningKey.generate(alg)];
});

async function issuerFor(alg, config = {}) {
  const clock = config.clock ?? clockAt(T0);
  const [a, r] = keys[alg];
  const issuer = new Issuer({ issuer: ISS, audience: AUD, clock, ...config }, new KeySet(a, clock() / 1000), new KeySet(r, clock() / 1000));
  return { issuer, clock };
}

describe('SigningKey', () => {
  it('kid is the RFC 7638 thumbprint (the RFC example, and as jose computes it)', async () => {
    const n =
      '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw';
    assert.equal(await thumbprint({ kty: 'RSA', n, e: 'AQAB' }), 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs');
    for (const alg of ['ES256', 'RS256']) {
      const k = keys[alg][0];
      assert.equal(k.alg, alg);
      assert.equal(k.kid, await jose.calculateJwkThumbprint(k.publicJwk, 'sha256'));
      assert.deepEqual(Object.keys(k.publicJwk).sort(), alg === 'ES256' ? ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'] : ['alg', 'e', 'kid', 'kty', 'n', 'use']);
      assert.ok(!('d' in k.publicJwk));
    }
    assert.equal(keys.RS256[0].rsaBits, 2048);
    assert.equal(keys.ES256[0].rsaBits, null);
  });

  it('private JWK and PKCS#8 PEM round trips keep the kid; jose keys import', async () => {
    for (const alg of ['ES256', 'RS256']) {
      const k = keys[alg][0];
      const jwk = k.exportPrivateJwk();
      assert.equal((await SigningKey.fromJwk(jwk)).kid, k.kid);
      assert.equal((await SigningKey.fromJwk(JSON.stringify(jwk))).kid, k.kid);
      const pem = await k.exportPkcs8Pem();
      assert.match(pem, /^-----BEGIN PRIVATE KEY-----\n/);
      assert.equal((await SigningKey.fromPkcs8Pem(`comment before\n${pem}`)).kid, k.kid);
      // A key made by jose, imported, signs tokens jose verifies with its own public key.
      const j = await keyPair(alg, 'x');
      const imported = await SigningKey.fromJwk(await jose.exportJWK(j.privateKey));
      const token = await imported.signCompact({ sub: 'a' });
      assert.equal((await jose.compactVerify(token, j.publicKey)).protectedHeader.kid, imported.kid);
    }
  });

  it('refuses bad keys with INVALID_KEY', async () => {
    const es = keys.ES256[0].exportPrivateJwk();
    const other = keys.ES256[1].exportPrivateJwk();
    const bad = [
      { ...es, x: other.x, y: other.y }, // public half of another key
      { ...es, d: undefined },
      { ...es, crv: 'P-384' },
      { ...es, kty: 'OKP' },
      { ...es, d: `${es.d}=` },
      '{"kty":',
      null,
    ];
    for (const b of bad) await assert.rejects(SigningKey.fromJwk(b), isErr('INVALID_KEY'), JSON.stringify(b));
    const rs = keys.RS256[0].exportPrivateJwk();
    await assert.rejects(SigningKey.fromJwk({ ...rs, p: rs.q, q: rs.q }), isErr('INVALID_KEY'));
    await assert.rejects(SigningKey.fromJwk({ ...rs, p: undefined }), isErr('INVALID_KEY'));
    // Wrong CRT values are recomputed, never trusted: the key still works.
    const fixed = await SigningKey.fromJwk({ ...rs, dp: rs.dq, qi: rs.dp });
    assert.equal(fixed.kid, keys.RS256[0].kid);
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'jwk' });
    await assert.rejects(SigningKey.fromJwk(small), (e) => isErr('INVALID_KEY')(e) && /2048/.test(e.message));
    await assert.rejects(SigningKey.generate('RS256', { modulusLength: 1024 }), isErr('INVALID_KEY'));
    await assert.rejects(SigningKey.generate('HS256'), isErr('INVALID_KEY'));
    await assert.rejects(SigningKey.fromPkcs8Pem('nothing'), isErr('INVALID_KEY'));
    await assert.rejects(SigningKey.fromPkcs8Pem('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'), isErr('INVALID_KEY'));
    assert.throws(() => new SigningKey(), TypeError);
  });
});

describe('Issuer', () => {
  for (const alg of ['ES256', 'RS256']) {
    it(`${alg}: every claim of an access token, in order, verified by the package, jose and the core's policy`, async () => {
      const { issuer } = await issuerFor(alg);
      const t = await issuer.issueAccess({
        sub: 'alice',
        sid: 'sess-1',
        roles: ['admin', 'user'],
        role: 'admin',
        scope: ['read', 'write'],
        clientId: 'web',
        claims: { tenant: 'acme', n: 3 },
        ttlSeconds: 300,
      });
      const { header, payloadText, payload } = parts(t.token);
      assert.deepEqual(header, { alg, typ: 'JWT', kid: keys[alg][0].kid });
      assert.deepEqual(Object.keys(payload), ['iss', 'sub', 'aud', 'sid', 'jti', 'iat', 'exp', 'roles', 'role', 'scope', 'client_id', 'tenant', 'n']);
      assert.equal(payloadText, JSON.stringify(payload), 'compact JSON');
      assert.deepEqual({ ...payload, jti: 'x' }, {
        iss: ISS,
        sub: 'alice',
        aud: AUD,
        sid: 'sess-1',
        jti: 'x',
        iat: T0,
        exp: T0 + 300,
        roles: ['admin', 'user'],
        role: 'admin',
        scope: 'read write',
        client_id: 'web',
        tenant: 'acme',
        n: 3,
      });
      assert.match(payload.jti, /^[A-Za-z0-9_-]{22}$/);
      assert.equal(Buffer.from(payload.jti, 'base64url').length, 16);
      assert.deepEqual({ jti: t.jti, sub: t.sub, sid: t.sid, iat: t.iat, exp: t.exp, kid: t.kid }, { jti: payload.jti, sub: 'alice', sid: 'sess-1', iat: T0, exp: T0 + 300, kid: keys[alg][0].kid });

      const v = issuer.accessVerifier();
      assert.deepEqual(await v.verify(t.token, { now: T0 + 1 }), payload);
      assert.deepEqual(v.verifySync(t.token, { now: T0 + 1 }), payload);
      assert.equal(v.checkSync(t.token, { now: T0 + 300 }).reason, 'expired');
      const jwks = jose.createLocalJWKSet(JSON.parse(issuer.jwks().body));
      const viaJose = await jose.jwtVerify(t.token, jwks, { issuer: ISS, audience: AUD, algorithms: [alg], currentDate: new Date((T0 + 1) * 1000) });
      assert.deepEqual(viaJose.payload, payload);
      // Two tokens never share a jti.
      const again = await issuer.issueAccess({ sub: 'alice', sid: 'sess-1' });
      assert.notEqual(again.jti, t.jti);
      assert.deepEqual(Object.keys(parts(again.token).payload), ['iss', 'sub', 'aud', 'sid', 'jti', 'iat', 'exp']);
      assert.equal(again.exp, T0 + 900, 'default life 15 minutes');
    });

    it(`${alg}: refresh tokens: typ refresh+jwt, their own key and audience, never an access token`, async () => {
      const { issuer } = await issuerFor(alg, { refreshAudience: 'https://auth.example/refresh' });
      const pair = await issuer.issuePair({ sub: 'bob', sid: 'sess-2', roles: ['user'] });
      const { header, payload } = parts(pair.refresh.token);
      assert.deepEqual(header, { alg, typ: 'refresh+jwt', kid: keys[alg][1].kid });
      assert.deepEqual(Object.keys(payload), ['iss', 'sub', 'aud', 'sid', 'jti', 'iat', 'exp']);
      assert.equal(payload.aud, 'https://auth.example/refresh');
      assert.equal(payload.exp - payload.iat, 7 * 86_400);
      assert.equal(pair.access.sid, 'sess-2');
      assert.notEqual(pair.access.jti, pair.refresh.jti);
      assert.deepEqual(await issuer.refreshVerifier().verify(pair.refresh.token, { now: T0 }), payload);
      // The refresh key is not published, and each verifier refuses the other kind.
      assert.ok(!issuer.jwks().body.includes(keys[alg][1].kid));
      // (the typ is checked first: each verifier refuses the other kind by typ)
      assert.equal((await issuer.accessVerifier().check(pair.refresh.token, { now: T0 })).reason, 'invalid_type');
      assert.equal((await issuer.refreshVerifier().check(pair.access.token, { now: T0 })).reason, 'invalid_type');
      // ... and by key, even without a typ rule.
      const published = new Verifier({ jwks: JSON.parse(issuer.jwks().body) });
      assert.equal((await published.check(pair.refresh.token, { now: T0 })).reason, 'unknown_key');
      // Even with both keys trusted, the typ tells them apart.
      const both = new Verifier({ ...issuer.accessPolicy(), jwks: { keys: [keys[alg][0].publicJwk, keys[alg][1].publicJwk] } });
      assert.equal((await both.check(pair.refresh.token, { now: T0 })).reason, 'invalid_type');
    });
  }

  it('at+jwt (RFC 9068) access tokens need client_id; audience arrays', async () => {
    const { issuer } = await issuerFor('ES256', { accessTyp: 'at+jwt', audience: [AUD, 'https://other.example'] });
    await assert.rejects(issuer.issueAccess({ sub: 'a', sid: 's' }), isErr('MISSING_CLAIM', 'client_id'));
    const t = await issuer.issueAccess({ sub: 'a', sid: 's', clientId: 'cli' });
    const { header, payload } = parts(t.token);
    assert.equal(header.typ, 'at+jwt');
    assert.deepEqual(payload.aud, [AUD, 'https://other.example']);
    assert.equal((await issuer.accessVerifier().verify(t.token, { now: T0 })).client_id, 'cli');
    const one = await issuer.issueAccess({ sub: 'a', sid: 's', clientId: 'cli', audience: 'https://only.example' });
    assert.equal(parts(one.token).payload.aud, 'https://only.example');
  });

  it('refuses what it must not sign, with typed errors', async () => {
    const { issuer } = await issuerFor('ES256');
    const cases = [
      [{ sid: 's' }, 'MISSING_CLAIM', 'sub'],
      [{ sub: '', sid: 's' }, 'MISSING_CLAIM', 'sub'],
      [{ sub: 'a' }, 'MISSING_CLAIM', 'sid'],
      [{ sub: 'x'.repeat(1025), sid: 's' }, 'INVALID_CLAIM', 'sub'],
      [{ sub: 'a', sid: 's', roles: [''] }, 'INVALID_CLAIM', 'roles'],
      [{ sub: 'a', sid: 's', roles: 'admin' }, 'INVALID_CLAIM', 'roles'],
      [{ sub: 'a', sid: 's', role: '' }, 'INVALID_CLAIM', 'roles'],
      [{ sub: 'a', sid: 's', scope: ['has space'] }, 'INVALID_CLAIM', 'scope'],
      [{ sub: 'a', sid: 's', scope: ['quote"'] }, 'INVALID_CLAIM', 'scope'],
      [{ sub: 'a', sid: 's', audience: [] }, 'INVALID_CLAIM', 'aud'],
      [{ sub: 'a', sid: 's', ttlSeconds: 0.5 }, 'INVALID_CLAIM', 'exp'],
      [{ sub: 'a', sid: 's', claims: { pad: 'x'.repeat(8000) } }, 'TOKEN_TOO_LARGE', undefined],
    ];
    for (const name of RESERVED_CLAIMS) cases.push([{ sub: 'a', sid: 's', claims: { [name]: 1 } }, 'RESERVED_CLAIM', name]);
    for (const [claims, code, claim] of cases) await assert.rejects(issuer.issueAccess(claims), isErr(code, claim), JSON.stringify(claims).slice(0, 80));
    await assert.rejects(issuer.issueRefresh({ sub: 'a' }), isErr('MISSING_CLAIM', 'sid'));
    // Access and refresh tokens need separate keys.
    const k = keys.ES256[0];
    assert.throws(() => new Issuer({ issuer: ISS, audience: AUD }, new KeySet(k, T0), new KeySet(k, T0)), isErr('SHARED_KEY'));
    assert.throws(() => issuer.rotateRefresh(k), isErr('SHARED_KEY'));
    assert.throws(() => new Issuer({ audience: AUD }, new KeySet(k, T0), new KeySet(keys.ES256[1], T0)), isErr('INVALID_OPTIONS'));
    assert.throws(() => new Issuer({ issuer: ISS, audience: AUD, accessTyp: 'jwt' }, new KeySet(k, T0), new KeySet(keys.ES256[1], T0)), isErr('INVALID_OPTIONS'));
    // No key signs before the first one was added.
    const early = new Issuer({ issuer: ISS, audience: AUD, clock: clockAt(T0 - 1) }, new KeySet(k, T0), new KeySet(keys.ES256[1], T0));
    await assert.rejects(early.issueAccess({ sub: 'a', sid: 's' }), isErr('NO_SIGNING_KEY'));
  });

  it('Issuer.generate makes two keys of the algorithm asked for', async () => {
    const issuer = await Issuer.generate({ issuer: ISS, audience: AUD, alg: 'RS256' });
    const t = await issuer.issuePair({ sub: 'a', sid: 's' });
    assert.equal(parts(t.access.token).header.alg, 'RS256');
    assert.notEqual(t.access.kid, t.refresh.kid);
    assert.equal(issuer.jwks().cacheControl, 'public, max-age=300');
  });
});

describe('KeySet rotation timeline (injected clock)', () => {
  it('publish, start signing after the delay, retire after the longest life, prune', async () => {
    const clock = clockAt(T0);
    const [a, b] = [await SigningKey.generate('ES256'), await SigningKey.generate('ES256')];
    const access = new KeySet(a, T0);
    const issuer = new Issuer({ issuer: ISS, audience: AUD, clock }, access, new KeySet(keys.ES256[1], T0));
    assert.deepEqual(access.policy, { jwksMaxAgeSeconds: 300, publicationDelaySeconds: 360 });
    assert.equal(access.signingKey(T0).kid, a.kid);
    assert.equal(access.signingKey(T0 - 1), null);
    await issuer.issueAccess({ sub: 'u', sid: 's', ttlSeconds: 900 });

    clock.set(T0 + 3600);
    const from = issuer.rotateAccess(b);
    assert.equal(from, T0 + 3600 + 360);
    const states = (t) => access.status(t).map((s) => s.state);
    assert.deepEqual(states(T0 + 3600), ['current', 'pending']);
    const kidsIn = () => JSON.parse(issuer.jwks().body).keys.map((k) => k.kid);
    assert.deepEqual(kidsIn(), [a.kid, b.kid], 'the new key is published at once');
    assert.equal(parts((await issuer.issueAccess({ sub: 'u', sid: 's' })).token).header.kid, a.kid, 'and does not sign yet');

    clock.set(from - 1);
    assert.equal(parts((await issuer.issueAccess({ sub: 'u', sid: 's' })).token).header.kid, a.kid);
    clock.set(from);
    const t = await issuer.issueAccess({ sub: 'u', sid: 's' });
    assert.equal(parts(t.token).header.kid, b.kid, 'signs from the end of the delay');
    assert.deepEqual(states(from), ['retiring', 'current']);
    const [sa, sb] = access.status(from);
    assert.deepEqual(
      { stops: sa.stopsSigning, retire: sa.retireAfter, life: sa.longestLife },
      { stops: from, retire: from + 900, life: 900 },
      'a stays published until the last token it signed expired',
    );
    assert.equal(sb.stopsSigning, null);
    // The old key's tokens still verify until they expire.
    assert.deepEqual(kidsIn(), [a.kid, b.kid]);
    clock.set(from + 899);
    assert.deepEqual(issuer.prune(), []);
    clock.set(from + 900);
    assert.deepEqual(states(from + 900), ['retired', 'current']);
    assert.deepEqual(kidsIn(), [b.kid]);
    assert.deepEqual(issuer.prune(), [a.kid]);
    assert.deepEqual(access.kids, [b.kid]);
  });

  it('emergency rotation, removal, export/import, unsafe delays', async () => {
    const [a, b, c] = [await SigningKey.generate('ES256'), await SigningKey.generate('RS256'), await SigningKey.generate('ES256')];
    const set = new KeySet(a, T0, { jwksMaxAgeSeconds: 60, publicationDelaySeconds: 120 });
    assert.equal(set.add(b, T0 + 10), T0 + 130);
    set.addSigningNow(c, T0 + 20);
    assert.equal(set.signingKey(T0 + 20).kid, c.kid, 'an emergency key signs at once');
    assert.equal(set.signingKey(T0 + 130).kid, b.kid, 'a queued rotation still takes over at its time');
    assert.throws(() => set.add(a, T0), isErr('DUPLICATE_KID'));
    const doc = set.export();
    assert.equal(doc.version, 1);
    const back = await KeySet.import(JSON.parse(JSON.stringify(doc)));
    assert.deepEqual(back.status(T0 + 50), set.status(T0 + 50));
    assert.deepEqual(back.jwks(T0 + 50), set.jwks(T0 + 50));
    assert.equal(set.jwks(T0).cacheControl, 'public, max-age=60');
    assert.equal(set.remove(c.kid).kid, c.kid);
    assert.throws(() => set.remove(c.kid), isErr('UNKNOWN_KID'));
    assert.throws(() => new KeySet(a, T0, { jwksMaxAgeSeconds: 300, publicationDelaySeconds: 299 }), isErr('UNSAFE_DELAY'));
    await assert.rejects(KeySet.import({ ...doc, version: 2 }), isErr('INVALID_KEY'));
    await assert.rejects(KeySet.import({ ...doc, keys: [{ ...doc.keys[0], signs_from: 0 }] }), isErr('INVALID_KEY'));
  });
});

describe('interop with the native core and jose', () => {
  it('tokens from Issuer pass the native core under the issuer policy; jose tokens pass the package', async () => {
    const bin = process.env.TOLLGATE_CLI_BIN ?? join(REPO_ROOT, 'target/npm/debug/tollgate');
    assert.ok(existsSync(bin), `native CLI not found at ${bin}: build it with cargo build -p tollgate-cli (test.sh does)`);
    const lines = [];
    for (const alg of ['ES256', 'RS256']) {
      const { issuer } = await issuerFor(alg, { accessTyp: 'at+jwt' });
      const pair = await issuer.issuePair({ sub: 'alice', sid: 's', roles: ['r'], scope: 'a b', clientId: 'c', claims: { x: [1, { y: 2 }] } });
      const snake = (p) => ({ issuers: p.issuers, audiences: p.audiences, typ: p.typ, required_claims: p.requiredClaims });
      const ap = issuer.accessPolicy();
      const rp = issuer.refreshPolicy();
      const access = JSON.parse(issuer.jwks().body);
      const refresh = { keys: [keys[alg][1].publicJwk] };
      const line = (id, token, jwks, policy, expect) => lines.push(JSON.stringify({ id, token, jwks, policy: snake(policy), now: T0 + 1, expect }));
      line(`${alg}/access`, pair.access.token, access, ap, { verdict: 'accept' });
      line(`${alg}/refresh`, pair.refresh.token, refresh, rp, { verdict: 'accept' });
      line(`${alg}/refresh-as-access`, pair.refresh.token, { keys: [...access.keys, ...refresh.keys] }, ap, { verdict: 'reject', reason: 'invalid_type' });
      line(`${alg}/access-wrong-aud`, pair.access.token, access, { ...ap, audiences: ['https://else.example'] }, { verdict: 'reject', reason: 'invalid_audience' });
    }
    const dir = mkdtempSync(join(tmpdir(), 'tollgate-issuer-'));
    try {
      writeFileSync(join(dir, 'issuer.jsonl'), `${lines.join('\n')}\n`);
      let out;
      try {
        out = execFileSync(bin, ['conformance', join(dir, 'issuer.jsonl')], { encoding: 'utf8' });
      } catch (e) {
        out = e.stdout;
      }
      assert.equal(out.trim().split('\n').pop(), `${lines.length} passed, 0 failed`, out);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // jose → package, with the issuer's policy (the other direction).
    const j = await keyPair('ES256', 'jose-k');
    const token = await sign(j, { iss: ISS, aud: AUD, sub: 'a', sid: 's', jti: 'j', iat: T0, exp: T0 + 60 }, { typ: 'at+jwt' });
    const { issuer } = await issuerFor('ES256', { accessTyp: 'at+jwt' });
    const v = new Verifier({ ...issuer.accessPolicy(), jwks: { keys: [j.jwk] } });
    assert.equal((await v.verify(token, { now: T0 })).sub, 'a');
  });
});
