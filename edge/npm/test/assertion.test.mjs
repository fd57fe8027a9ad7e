// The origin's check of X-Tollgate-Assertion (docs/origin-assertion.md), through the
// package's Express middleware in a real Express server on 127.0.0.1 and its fetch-
// handler form. Assertions are made here independently of the package, from the
// contract: HS256 with node:crypto's HMAC, ES256 with `jose`. Every refusal reason,
// spoofed X-Tollgate-* headers without an assertion, a replay after expiry, two HS256
// secrets (rotation), ES256, and the handler seeing the payload's identity only.

import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import * as jose from 'jose';
import { listen, pkg } from './helpers.mjs';

const { AssertionVerifier, requireAssertion, withAssertion, hs256Kid, headerDigest, ASSERTION_REASONS, TollgateError } = pkg;

const OLD = 'old-origin-secret-0123456789abcdef-xyz';
const NEW = 'new-origin-secret-0123456789abcdef-xyz';
const b64 = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
const kidOf = (secret) => createHash('sha256').update(`tollgate-assertion-kid:${secret}`).digest('base64url').slice(0, 16);
const now = () => Math.floor(Date.now() / 1000);

/** base64url(SHA-256) of `name:value\n` for each X-Tollgate-* header but the assertion, sorted. */
function digest(headers) {
  const canon = Object.entries(headers)
    .map(([k, v]) => [k.toLowerCase(), v])
    .filter(([k]) => k.startsWith('x-tollgate-') && k !== 'x-tollgate-assertion')
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}:${v}\n`)
    .join('');
  return createHash('sha256').update(canon).digest('base64url');
}

let es;
let AUD;

function payloadFor({ method = 'GET', target, headers = {}, ...over }) {
  return {
    iss: 'tollgate-edge',
    aud: AUD,
    iat: now(),
    exp: now() + 60,
    jti: 'req-0123456789abcdefghij',
    method,
    target,
    auth: 'verified',
    sub: 'alice',
    sid: 'sess-1',
    tok_iss: 'https://issuer.test',
    roles: ['admin'],
    scope: 'read write',
    hdr: digest(headers),
    ...over,
  };
}

function hs256(payload, { secret = NEW, header } = {}) {
  const h = b64(header ?? { alg: 'HS256', typ: 'tollgate-assertion+jwt', kid: kidOf(secret) });
  const p = typeof payload === 'string' ? b64(payload) : b64(payload);
  const sig = createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url');
  return `${h}.${p}.${sig}`;
}

async function es256(payload) {
  const kid = await jose.calculateJwkThumbprint(es.jwk);
  return new jose.CompactSign(Buffer.from(JSON.stringify(payload))).setProtectedHeader({ alg: 'ES256', typ: 'tollgate-assertion+jwt', kid }).sign(es.privateKey);
}

describe('X-Tollgate-Assertion middleware (Express, real HTTP)', () => {
  let server, base, esServer, esBase;

  before(async () => {
    const pair = await jose.generateKeyPair('ES256', { extractable: true });
    es = { privateKey: pair.privateKey, jwk: await jose.exportJWK(pair.publicKey) };
    // The audience is this server's origin: listen first, then configure.
    const app = express();
    const holder = {};
    app.use((req, res, next) => holder.mw(req, res, next));
    app.all('/*rest', (req, res) => res.json({ edge: req.edge, loose: req.headers['x-tollgate-sub'] ?? null }));
    server = await listen(app);
    base = server.url;
    AUD = base;
    holder.mw = requireAssertion({ secrets: [OLD, NEW], audience: AUD });

    const esApp = express();
    esApp.use(requireAssertion(await AssertionVerifier.create({ es256Keys: [es.jwk], audience: AUD })));
    esApp.get('/*rest', (req, res) => res.json({ edge: req.edge }));
    esServer = await listen(esApp);
    esBase = esServer.url;
  });
  after(async () => {
    await server?.close();
    await esServer?.close();
  });

  const call = (path, headers = {}, method = 'GET', at = base) => fetch(at + path, { method, headers });
  async function refusedWith(res, reason) {
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.deepEqual(await res.json(), { error: 'invalid_assertion', reason });
  }

  it('a valid assertion: the handler gets the identity from the payload, never from loose headers', async () => {
    const target = '/profile/7?tab=a%20b&x=1';
    const headers = { 'X-Tollgate-Sub': 'alice', 'X-Tollgate-Claims': b64({ sub: 'alice' }), 'X-Tollgate-Request-Id': 'req-0123456789abcdefghij' };
    const res = await call(target, { ...headers, 'X-Tollgate-Assertion': hs256(payloadFor({ target, headers })) });
    assert.equal(res.status, 200);
    const { edge } = await res.json();
    assert.deepEqual(edge, {
      auth: 'verified',
      sub: 'alice',
      sid: 'sess-1',
      tokIss: 'https://issuer.test',
      roles: ['admin'],
      scope: 'read write',
      jti: 'req-0123456789abcdefghij',
      iat: edge.iat,
      exp: edge.iat + 60,
    });
    // The loose header says what the Worker sent; a different one breaks the digest.
    const spoofed = await call(target, { ...headers, 'X-Tollgate-Sub': 'mallory', 'X-Tollgate-Assertion': hs256(payloadFor({ target, headers })) });
    await refusedWith(spoofed, 'wrong_headers');
    // auth: none routes: no identity.
    const open = await call('/open', { 'X-Tollgate-Assertion': hs256(payloadFor({ target: '/open', auth: 'none', sub: undefined, sid: undefined, tok_iss: undefined, roles: [], scope: undefined })) });
    assert.equal(open.status, 200);
    const o = (await open.json()).edge;
    assert.equal(o.auth, 'none');
    assert.equal(o.sub, null);
  });

  it('a direct request with spoofed X-Tollgate-* headers and no assertion is refused', async () => {
    await refusedWith(await call('/admin/users', { 'X-Tollgate-Sub': 'admin', 'X-Tollgate-Roles': 'admin', 'X-Tollgate-Claims': b64({ role: 'admin' }) }), 'missing');
  });

  it('every reason, in the contract order', async () => {
    const t = '/x';
    const ok = payloadFor({ target: t });
    const cases = [
      ['malformed', { 'X-Tollgate-Assertion': 'abc' }],
      ['malformed', { 'X-Tollgate-Assertion': `${hs256(ok)}=` }],
      ['malformed', { 'X-Tollgate-Assertion': `${hs256(ok)}.x` }],
      ['malformed', { 'X-Tollgate-Assertion': hs256(`{"iss":"tollgate-edge","iss":"x"}`) }],
      ['malformed', { 'X-Tollgate-Assertion': hs256(ok, { header: { alg: 'HS256', typ: 'JWT', kid: kidOf(NEW) } }) }],
      ['malformed', { 'X-Tollgate-Assertion': hs256(ok, { header: { alg: 'HS256', typ: 'tollgate-assertion+jwt', kid: kidOf(NEW), x: 1 } }) }],
      ['malformed', { 'X-Tollgate-Assertion': hs256({ ...ok, roles: 'admin' }) }],
      ['malformed', { 'X-Tollgate-Assertion': hs256({ ...ok, exp: '9999999999' }) }],
      ['malformed', { 'X-Tollgate-Assertion': hs256({ ...ok, auth: 'maybe' }) }],
      ['unknown_key', { 'X-Tollgate-Assertion': hs256(ok, { header: { alg: 'HS256', typ: 'tollgate-assertion+jwt', kid: 'nope' } }) }],
      ['unknown_key', { 'X-Tollgate-Assertion': hs256(ok, { header: { alg: 'none', typ: 'tollgate-assertion+jwt', kid: kidOf(NEW) } }) }],
      ['unknown_key', { 'X-Tollgate-Assertion': hs256(ok, { secret: 'a-third-secret-nobody-configured-0000' }) }],
      ['bad_signature', { 'X-Tollgate-Assertion': hs256(ok, { secret: 'x'.repeat(40), header: { alg: 'HS256', typ: 'tollgate-assertion+jwt', kid: kidOf(NEW) } }) }],
      ['wrong_issuer', { 'X-Tollgate-Assertion': hs256({ ...ok, iss: 'someone' }) }],
      ['wrong_audience', { 'X-Tollgate-Assertion': hs256({ ...ok, aud: 'https://other-origin.example' }) }],
      ['expired', { 'X-Tollgate-Assertion': hs256({ ...ok, iat: now() - 70, exp: now() - 5 }) }],
      ['not_yet_valid', { 'X-Tollgate-Assertion': hs256({ ...ok, iat: now() + 30, exp: now() + 90 }) }],
      ['wrong_method', { 'X-Tollgate-Assertion': hs256({ ...ok, method: 'POST' }) }],
      ['wrong_target', { 'X-Tollgate-Assertion': hs256({ ...ok, target: '/y' }) }],
      ['wrong_target', { 'X-Tollgate-Assertion': hs256({ ...ok, target: '/x?admin=1' }) }],
      ['wrong_headers', { 'X-Tollgate-Assertion': hs256(ok), 'X-Tollgate-Sub': 'mallory' }],
    ];
    const reasons = new Set();
    for (const [reason, headers] of cases) {
      await refusedWith(await call(t, headers), reason);
      reasons.add(reason);
    }
    assert.deepEqual([...reasons], ASSERTION_REASONS.filter((r) => r !== 'missing'));
    // Two assertion header lines: malformed.
    // Two assertion header lines, written on a raw socket: malformed.
    const raw = await new Promise((resolve, reject) => {
      const sock = net.connect(Number(new URL(base).port), '127.0.0.1');
      let data = '';
      sock.on('data', (d) => (data += d));
      sock.on('end', () => resolve({ status: Number(data.split(' ')[1]), body: data.slice(data.indexOf('\r\n\r\n') + 4) }));
      sock.on('error', reject);
      const a = hs256(ok);
      sock.write(`GET ${t} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Tollgate-Assertion: ${a}\r\nX-Tollgate-Assertion: ${a}\r\nConnection: close\r\n\r\n`);
    });
    assert.equal(raw.status, 401);
    assert.deepEqual(JSON.parse(raw.body), { error: 'invalid_assertion', reason: 'malformed' });
    // Leeway 5 s: just expired within it still passes; HEAD is bound as HEAD.
    assert.equal((await call(t, { 'X-Tollgate-Assertion': hs256({ ...ok, exp: now() - 3 }) })).status, 200);
    assert.equal((await call(t, { 'X-Tollgate-Assertion': hs256({ ...ok, method: 'HEAD' }) }, 'HEAD')).status, 200);
    assert.equal((await call(t, { 'X-Tollgate-Assertion': hs256({ ...ok, method: 'GET' }) }, 'HEAD')).status, 401);
  });

  it('a replay for the same request passes within the TTL, and is refused once expired', async () => {
    const t = '/orders/1';
    let ms = Date.now();
    const v = await AssertionVerifier.create({ secrets: [NEW], audience: AUD, clock: () => ms });
    const a = hs256(payloadFor({ target: t, exp: now() + 60 }));
    const h = new Headers({ 'x-tollgate-assertion': a });
    assert.equal((await v.verify('GET', t, h)).sub, 'alice');
    assert.equal((await v.verify('GET', t, h)).sub, 'alice', 'the same request again within the TTL');
    ms += 66_000;
    await assert.rejects(v.verify('GET', t, h), (e) => e instanceof TollgateError && e.code === 'INVALID_ASSERTION' && e.reason === 'expired');
    // ... and over real HTTP, a replay with another target is refused at once.
    await refusedWith(await call('/orders/2', { 'X-Tollgate-Assertion': a }), 'wrong_target');
  });

  it('HS256 rotation: both secrets accepted; kids derived as the contract says', async () => {
    assert.equal(await hs256Kid(NEW), kidOf(NEW));
    assert.equal(await hs256Kid(new TextEncoder().encode(OLD)), kidOf(OLD));
    for (const secret of [OLD, NEW]) assert.equal((await call('/r', { 'X-Tollgate-Assertion': hs256(payloadFor({ target: '/r' }), { secret }) })).status, 200);
    const v = await AssertionVerifier.create({ secrets: [OLD, NEW] });
    assert.deepEqual(v.kids, [kidOf(OLD), kidOf(NEW)]);
  });

  it('ES256 with the Worker public key; an HS256 assertion is an unknown key there', async () => {
    const ok = await call('/e', { 'X-Tollgate-Assertion': await es256(payloadFor({ target: '/e' })) }, 'GET', esBase);
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).edge.sub, 'alice');
    await refusedWith(await call('/e', { 'X-Tollgate-Assertion': hs256(payloadFor({ target: '/e' })) }, 'GET', esBase), 'unknown_key');
    const forged = (await es256(payloadFor({ target: '/e' }))).split('.');
    forged[1] = b64(payloadFor({ target: '/e', sub: 'mallory' }));
    await refusedWith(await call('/e', { 'X-Tollgate-Assertion': forged.join('.') }, 'GET', esBase), 'bad_signature');
  });

  it('configuration errors fail at setup, never open', async () => {
    const bad = (o) => assert.throws(() => requireAssertion(o), (e) => e instanceof TollgateError && e.code === 'INVALID_OPTIONS');
    bad({ secrets: ['short'] });
    bad({});
    bad({ secrets: [] });
    bad({ es256Keys: [{ ...es.jwk, d: 'x' }] });
    bad({ secrets: [NEW], leewaySeconds: 301 });
    bad(undefined);
    await assert.rejects(AssertionVerifier.create({ es256Keys: [{ kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }] }), (e) => e.code === 'INVALID_OPTIONS');
    // A key the runtime cannot import is found per request: 500 misconfigured, never a pass.
    const h = withAssertion(() => new Response('should not run'), { es256Keys: [{ kty: 'EC', crv: 'P-256', x: 'AA', y: 'AA' }] });
    const r = await h(new Request('http://o/x', { headers: { 'x-tollgate-assertion': hs256(payloadFor({ target: '/x' })) } }));
    assert.equal(r.status, 500);
    assert.deepEqual(await r.json(), { error: 'misconfigured' });
  });
});

describe('X-Tollgate-Assertion: the fetch-handler form', () => {
  it('passes the identity as the second argument; refuses otherwise', async () => {
    AUD ??= 'https://api.example';
    const aud = 'https://api.example';
    const handler = withAssertion((req, edge, env) => Response.json({ sub: edge.sub, admin: edge.hasRole('admin'), write: edge.hasScope('write'), env }), { secrets: [NEW], audience: aud });
    const target = '/p?q=1';
    const headers = { 'x-tollgate-sub': 'alice' };
    const good = hs256(payloadFor({ target, headers, aud }));
    const res = await handler(new Request(`${aud}${target}`, { headers: { ...headers, 'x-tollgate-assertion': good } }), 'ENV');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { sub: 'alice', admin: true, write: true, env: 'ENV' });
    const bad = await handler(new Request(`${aud}${target}`, { method: 'DELETE', headers: { ...headers, 'x-tollgate-assertion': good } }));
    assert.equal(bad.status, 401);
    assert.deepEqual(await bad.json(), { error: 'invalid_assertion', reason: 'wrong_method' });
    const none = await handler(new Request(`${aud}${target}`));
    assert.deepEqual(await none.json(), { error: 'invalid_assertion', reason: 'missing' });
    // The digest helper agrees with the contract's definition.
    assert.equal(await headerDigest(new Headers({ 'X-Tollgate-Sub': 'a', 'X-Tollgate-Claims': 'e30', 'X-Tollgate-Assertion': 'x', Other: 'y' })), digest({ 'x-tollgate-claims': 'e30', 'x-tollgate-sub': 'a' }));
  });
});
