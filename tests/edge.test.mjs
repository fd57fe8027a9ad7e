// End-to-end tests of the Worker (edge/worker) in real workerd through `wrangler dev`,
// with a real revocation service, a local JWKS host, a local origin, and tokens minted
// by `jose` (an independent library) and by `tollgate mint`.
//
// Run through edge/worker/test.sh (it builds everything and sets the paths). Tests run
// in file order against one stack; every wait polls a condition with a deadline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash, randomUUID } from 'node:crypto';

import * as jose from 'jose';

import { stopAll, waitFor } from './lib/procs.mjs';
import { startOrigin, startJwksHost, startServiceProxy } from './lib/servers.mjs';
import { startRevocation, startWorker, need, logDir, ROOT, BENCH_BUILD } from './lib/stack.mjs';

const ISS = 'https://issuer.test';
const AUD = 'https://api.test';
const GOOGLE_AUD = '1234-tollgate.apps.googleusercontent.com';
const KAKAO_AUD = 'kakao-rest-api-key';
const MAX_STALENESS = 3;
const COOLDOWN = 5;
// TOLLGATE_ORIGIN_SECRET of every Worker here but the ES256 and the `none` ones.
const SECRET = `e2e-origin-secret-${randomUUID()}`;
const ASSERTION_ISS = 'tollgate-edge';

let origin;
let jwks;
let svc;
let worker;
let benchWorker; // the same configuration on the measurement build (bench endpoint compiled in)
/** Keys the origin checks assertions with, by `kid`: {key, alg}. */
const assertionKeys = {};
const keys = {};
let cliKeyPem;

const now = () => Math.floor(Date.now() / 1000);
const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

async function keyPair(alg, kid) {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, jwk };
}

/** A token signed by `key` with sensible defaults; `claims` override or (undefined) remove. */
async function mint(key, claims = {}, header = {}) {
  const t = now();
  const payload = { iss: ISS, aud: AUD, sub: 'alice', sid: `s-${randomUUID()}`, jti: randomUUID(), iat: t, exp: t + 600, ...claims };
  for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
  // CompactSign, not SignJWT: it signs any payload, so malformed claims can be tested.
  return new jose.CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header })
    .sign(key.privateKey);
}

function callOn(w, pathname, { token, headers = {}, cookie, method = 'GET', body } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (cookie) h.cookie = cookie;
  return fetch(`${w.url}${pathname}`, { method, headers: h, body });
}

/** A request to the main Worker (the shipped build). */
function call(pathname, opts) {
  return callOn(worker, pathname, opts);
}

/** The last request the origin saw for `pathname` (unique paths keep tests apart). */
function seenAt(pathname) {
  return origin.seen.filter((r) => r.url === pathname).at(-1);
}

/** Tokens in the measurement-build Worker's verified-token cache (GET /__tollgate/bench). */
async function cachedTokens() {
  const r = await fetch(`${benchWorker.url}/__tollgate/bench`);
  assert.equal(r.status, 200);
  return (await r.json()).cached_tokens;
}

async function expectRejected(resp, status, reason) {
  const body = await resp.json();
  assert.equal(resp.status, status, JSON.stringify(body));
  if (status === 401 && reason) {
    assert.equal(body.error, 'invalid_token');
    assert.equal(body.reason, reason);
    assert.equal(resp.headers.get('www-authenticate'), `Bearer error="invalid_token", error_description="${reason}"`);
  }
  return body;
}

before(async () => {
  origin = await startOrigin();
  jwks = await startJwksHost();
  keys.es = await keyPair('ES256', 'primary-es');
  keys.rs = await keyPair('RS256', 'primary-rs');
  keys.rot1 = await keyPair('ES256', 'rot-1');
  keys.google = await keyPair('RS256', 'google-1');
  keys.kakao = await keyPair('RS256', 'kakao-1');
  keys.stranger = await keyPair('ES256', 'stranger');

  // A key made by the project's CLI; its tokens come from `tollgate mint`.
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-e2e-cli-'));
  execFileSync(need('TOLLGATE_BIN'), ['keygen', 'es256', '--out', path.join(dir, 'cli')], { stdio: 'ignore' });
  cliKeyPem = path.join(dir, 'cli.pem');
  const cliJwk = JSON.parse(readFileSync(path.join(dir, 'cli.jwks.json'), 'utf8')).keys[0];

  jwks.docs['/primary.json'] = { keys: [keys.es.jwk, keys.rs.jwk, cliJwk] };
  jwks.maxAge['/primary.json'] = 300;
  jwks.docs['/rotating.json'] = { keys: [keys.rot1.jwk] };
  jwks.maxAge['/rotating.json'] = 1;
  jwks.docs['/google.json'] = { keys: [keys.google.jwk] };
  jwks.docs['/kakao.json'] = { keys: [keys.kakao.jwk] };

  svc = await startRevocation();
  svc.publicJwkText = await svc.publicJwk();
  assertionKeys[hs256Kid(SECRET)] = { key: new TextEncoder().encode(SECRET), alg: 'HS256' };
  const mainVars = {
    TOLLGATE_ORIGIN: origin.url,
    TOLLGATE_JWKS_URLS: JSON.stringify([jwks.url('/primary.json'), jwks.url('/rotating.json'), 'google', 'kakao']),
    TOLLGATE_PRESET_JWKS_URLS: JSON.stringify({ google: jwks.url('/google.json'), kakao: jwks.url('/kakao.json') }),
    TOLLGATE_ISSUERS: JSON.stringify([ISS, 'google', 'kakao']),
    TOLLGATE_AUDIENCES: JSON.stringify([AUD, GOOGLE_AUD, KAKAO_AUD]),
    TOLLGATE_REVOCATION_URL: svc.url,
    TOLLGATE_REVOCATION_TOKEN: svc.readKey,
    TOLLGATE_DENYLIST_KEY: await svc.publicJwk(),
    TOLLGATE_MAX_STALENESS_SECONDS: String(MAX_STALENESS),
    TOLLGATE_JWKS_COOLDOWN_SECONDS: String(COOLDOWN),
    TOLLGATE_ORIGIN_SECRET: SECRET,
    // GET /__tollgate/bench: the cached-token count, in the measurement build only.
    TOLLGATE_BENCH_ENDPOINT: 'on',
    TOLLGATE_ROUTES: JSON.stringify([
      { path: '/public/*', auth: 'none' },
      { path: '/files/*', methods: ['GET'], auth: 'none' },
      { path: '/staff/*', methods: ['GET'], roles_any: ['staff'] },
      { path: '/admin/*', roles_any: ['admin'] },
      { path: '/reports/*', methods: ['POST'], scopes_all: ['reports:read', 'reports:write'] },
      { path: '/*', auth: 'required' },
    ]),
  };
  [worker, benchWorker] = await Promise.all([
    startWorker(mainVars),
    startWorker(mainVars, { script: BENCH_BUILD, logName: 'bench-build' }),
  ]);
});

/** The HS256 assertion `kid` of a secret (docs/origin-assertion.md). */
function hs256Kid(secret) {
  return createHash('sha256').update(`tollgate-assertion-kid:${secret}`).digest('base64url').slice(0, 16);
}

/** The assertion's `hdr` for the headers an origin received. */
function hdrOf(headers) {
  const names = Object.keys(headers).filter((n) => n.startsWith('x-tollgate-') && n !== 'x-tollgate-assertion').sort();
  return createHash('sha256').update(names.map((n) => `${n}:${headers[n]}\n`).join('')).digest('base64url');
}

/** Checks the X-Tollgate-Assertion of a request the origin saw, as an origin would, with
 * jose: signature and kid, typ, iss, aud, exp − iat, method, target, hdr, jti. Returns
 * the payload. */
async function checkAssertion(seen) {
  const jws = seen.headers['x-tollgate-assertion'];
  assert.ok(jws, `${seen.method} ${seen.url}: no X-Tollgate-Assertion`);
  const { kid, alg } = jose.decodeProtectedHeader(jws);
  const known = assertionKeys[kid];
  assert.ok(known, `${seen.method} ${seen.url}: unknown kid ${kid}`);
  assert.equal(alg, known.alg);
  const { payload, protectedHeader } = await jose.jwtVerify(jws, known.key, {
    algorithms: [known.alg],
    issuer: ASSERTION_ISS,
    audience: origin.url,
    typ: 'tollgate-assertion+jwt',
    currentDate: new Date(seen.receivedAt), // checked as of its arrival, also when replayed here later
    clockTolerance: 5,
  });
  assert.deepEqual(Object.keys(protectedHeader).sort(), ['alg', 'kid', 'typ']);
  assert.equal(payload.exp - payload.iat, 60, 'TOLLGATE_ASSERTION_TTL_SECONDS defaults to 60');
  assert.equal(payload.method, seen.method, seen.url);
  assert.equal(payload.target, seen.url, 'the request-target the origin received');
  assert.equal(payload.hdr, hdrOf(seen.headers), `${seen.url}: the digest of the X-Tollgate-* headers received`);
  assert.match(payload.jti, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(payload.jti, seen.headers['x-tollgate-request-id']);
  return payload;
}

after(async () => {
  await stopAll();
  await origin?.close();
  await jwks?.close();
  console.log(`# logs: ${logDir}`);
});

test('concurrent cold requests share one JWKS fetch', async () => {
  assert.equal(jwks.count('/primary.json'), 0, 'nothing fetched before the first token');
  const token = await mint(keys.es);
  const replies = await Promise.all(Array.from({ length: 12 }, (_, i) => call(`/cold/${i}`, { token })));
  assert.deepEqual(replies.map((r) => r.status), Array(12).fill(200));
  assert.equal(jwks.count('/primary.json'), 1);
});

test('valid ES256 token from jose: 200 with the identity headers at the origin', async () => {
  const sid = `s-${randomUUID()}`;
  const token = await mint(keys.es, { sub: 'alice', sid, role: 'user' });
  const r = await call('/profile/es', { token });
  assert.equal(r.status, 200);
  const seen = seenAt('/profile/es');
  assert.equal(seen.headers['x-tollgate-sub'], 'alice');
  assert.equal(seen.headers['x-tollgate-sid'], sid);
  const claims = JSON.parse(Buffer.from(seen.headers['x-tollgate-claims'], 'base64url').toString());
  assert.deepEqual(claims, jose.decodeJwt(token));
  assert.equal(seen.headers['x-tollgate-claims'], token.split('.')[1], 'the claims exactly as signed');
  // The same headers from the verified-token cache.
  assert.equal((await call('/profile/es-hot', { token })).status, 200);
  const hot = seenAt('/profile/es-hot').headers;
  assert.deepEqual([hot['x-tollgate-sub'], hot['x-tollgate-sid'], hot['x-tollgate-claims']], ['alice', sid, token.split('.')[1]]);
});

test('valid RS256 token from jose and ES256 token from `tollgate mint`', async () => {
  assert.equal((await call('/profile/rs', { token: await mint(keys.rs) })).status, 200);
  const token = execFileSync(need('TOLLGATE_BIN'), ['mint', '--key', cliKeyPem, '--sub', 'carol', '--sid', 'cli-1', '--iss', ISS, '--aud', AUD], {
    encoding: 'utf8',
  }).trim();
  assert.equal((await call('/profile/cli', { token })).status, 200);
  assert.equal(seenAt('/profile/cli').headers['x-tollgate-sub'], 'carol');
});

test('spoofed X-Tollgate-* headers are stripped on every route', async () => {
  // Also the spellings with `_` that CGI/WSGI-style origins read as the same header.
  const spoof = {
    'x-tollgate-sub': 'mallory', 'X-Tollgate-Claims': 'e30', 'x-tollgate-admin': 'yes',
    'X-Tollgate_Sid': 'victim', x_tollgate_sub: 'mallory', 'X_TOLLGATE-CLAIMS': 'e30',
  };
  const lookalikes = (headers) => Object.keys(headers).filter((h) => /^x[-_]tollgate[-_]/.test(h));
  const r = await call('/spoof/protected', { token: await mint(keys.es, { sub: 'alice', sid: undefined }), headers: spoof });
  assert.equal(r.status, 200);
  const seen = seenAt('/spoof/protected');
  assert.equal(seen.headers['x-tollgate-sub'], 'alice');
  assert.equal(seen.headers['x-tollgate-admin'], undefined);
  assert.equal(seen.headers['x-tollgate-sid'], undefined, 'no sid claim, no sid header');
  assert.notEqual(seen.headers['x-tollgate-claims'], 'e30');
  assert.deepEqual(lookalikes(seen.headers).sort(), ['x-tollgate-assertion', 'x-tollgate-claims', 'x-tollgate-request-id', 'x-tollgate-sub']);

  assert.equal((await call('/public/spoof', { headers: spoof })).status, 200);
  assert.deepEqual(lookalikes(seenAt('/public/spoof').headers).sort(), ['x-tollgate-assertion', 'x-tollgate-request-id']);
});

test('origin dropping the connection: 502 bad_gateway on open and guarded routes, logged', async () => {
  for (const [pathname, token] of [['/public/__drop', undefined], ['/profile/__drop', await mint(keys.es)]]) {
    const r = await call(pathname, { token });
    assert.equal(r.status, 502, pathname);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.deepEqual(await r.json(), { error: 'bad_gateway' });
    assert.ok(seenAt(pathname)?.dropped, `${pathname} reached the origin`);
  }
  await waitFor('the 502s to be logged', async () => (worker.log().match(/tollgate: origin \S+ unreachable/g) ?? []).length >= 2, {
    timeoutMs: 10000,
  });
});

test('no token: 401 with the realm, origin not reached', async () => {
  const r = await call('/nothing');
  assert.equal(r.status, 401);
  assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="tollgate"');
  assert.deepEqual(await r.json(), { error: 'unauthorized', reason: 'missing_token' });
  assert.equal(seenAt('/nothing'), undefined);

  // Authorization values that are not a bearer token, with non-ASCII bytes where the
  // scheme ends or the token would start: answered, never a crash of the Worker.
  for (const authorization of ['Bearer\u00e9x', 'Beare\u00e9 x', '\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9']) {
    const odd = await call('/nothing/odd', { headers: { authorization } });
    assert.equal(odd.status, 401, JSON.stringify(authorization));
    assert.deepEqual(await odd.json(), { error: 'unauthorized', reason: 'missing_token' });
  }
  await expectRejected(await call('/nothing/odd', { headers: { authorization: 'Bearer \u00e9' } }), 401, 'malformed');
  assert.doesNotMatch(worker.log(), /Reinitializing|RuntimeError/);
});

test('every rejection class: 401 with its reason; expired carries TOKEN_EXPIRED', async () => {
  const t = now();
  const good = await mint(keys.es);
  const [h, p] = good.split('.');
  const cases = [
    ['expired', await mint(keys.es, { iat: t - 7200, exp: t - 3600 })],
    ['not_yet_valid', await mint(keys.es, { nbf: t + 3600 })],
    ['invalid_issuer', await mint(keys.es, { iss: 'https://evil.test' })],
    ['invalid_audience', await mint(keys.es, { aud: 'https://other.test' })],
    ['missing_claim', await mint(keys.es, { exp: undefined })],
    ['invalid_claim', await mint(keys.es, { exp: 'tomorrow' })],
    ['invalid_signature', `${h}.${b64({ ...jose.decodeJwt(good), sub: 'admin' })}.${good.split('.')[2]}`],
    ['unsupported_algorithm', `${b64({ alg: 'none', kid: 'primary-es' })}.${p}.`],
    ['unsupported_algorithm', `${b64({ alg: 'HS256', kid: 'primary-es' })}.${p}.${b64('mac')}`],
    // The header is rejected before the signature is looked at, so any signature will do.
    ['unsupported_critical_header', `${b64({ alg: 'ES256', kid: 'primary-es', crit: ['x'], x: 1 })}.${p}.${good.split('.')[2]}`],
    // A kid the JWKS has, but for another algorithm: no usable key (and no refetch).
    ['unknown_key', `${b64({ alg: 'RS256', kid: 'primary-es' })}.${p}.${good.split('.')[2]}`],
    ['malformed', 'not-a-jwt'],
    ['malformed', `${h}.${p}`],
    ['too_large', `${h}.${'A'.repeat(9000)}.${good.split('.')[2]}`],
  ];
  for (const [reason, token] of cases) {
    const r = await call('/rejected', { token });
    const body = await expectRejected(r, 401, reason);
    assert.equal(body.code, reason === 'expired' ? 'TOKEN_EXPIRED' : undefined, reason);
  }
  assert.equal(seenAt('/rejected'), undefined, 'no rejected request reached the origin');
});

test('token from the access_token cookie; two credentials are 400 ambiguous_credentials', async () => {
  const token = await mint(keys.es, { sub: 'cookie-user' });
  const r = await call('/cookie', { cookie: `theme=dark; access_token=${token}; lang=ko` });
  assert.equal(r.status, 200);
  assert.equal(seenAt('/cookie').headers['x-tollgate-sub'], 'cookie-user');
  const other = await mint(keys.es, { sub: 'mallory' });
  for (const [what, opts] of [
    ['Bearer and the cookie', { token: other, cookie: `access_token=${token}` }],
    ['Bearer (garbage) and the cookie', { token: 'garbage', cookie: `access_token=${token}` }],
    ['two Authorization values', { headers: new Headers([['authorization', `Bearer ${token}`], ['authorization', `Bearer ${other}`]]) }],
    ['the cookie twice', { cookie: `access_token=${token}; theme=dark; access_token=${other}` }],
  ]) {
    const h = opts.headers ?? {};
    const headers = h instanceof Headers ? Object.fromEntries(h) : h;
    const resp = await call('/cookie/ambiguous', { ...opts, headers });
    assert.equal(resp.status, 400, what);
    assert.equal((await resp.json()).error, 'ambiguous_credentials', what);
  }
  assert.equal(seenAt('/cookie/ambiguous'), undefined, 'no ambiguous request reached the origin');
});

test('role and scope rules: 403 insufficient_scope, 200 when met', async () => {
  const user = await mint(keys.es, { role: 'user' });
  const r = await call('/admin/panel', { token: user });
  assert.equal(r.status, 403);
  assert.match(r.headers.get('www-authenticate'), /^Bearer error="insufficient_scope"/);
  assert.equal((await r.json()).error, 'insufficient_scope');
  assert.equal((await call('/admin/panel', { token: await mint(keys.es, { roles: ['viewer', 'admin'] }) })).status, 200);

  const readOnly = await mint(keys.es, { scope: 'reports:read' });
  assert.equal((await call('/reports/q1', { token: readOnly, method: 'POST', body: '{}' })).status, 403);
  assert.equal((await call('/reports/q1', { token: readOnly })).status, 200, 'the rule covers POST only');
  const rw = await mint(keys.es, { scope: 'reports:write reports:read' });
  const posted = await call('/reports/q1', { token: rw, method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json' } });
  assert.equal(posted.status, 200);
  assert.equal(seenAt('/reports/q1').body, '{"n":1}', 'request body forwarded');
});

test('one canonical path: the rules match what the origin receives; ambiguous paths are 400', async () => {
  const user = await mint(keys.es, { role: 'user' });
  const admin = await mint(keys.es, { roles: ['admin'] });
  // Spellings an origin that decodes, merges slashes or ignores case serves as /admin/...:
  // the admin rule applies to each, and the origin receives the canonical path.
  for (const [sent, canonical] of [
    ['/%61dmin/canon-1', '/admin/canon-1'],
    ['//admin/canon-2', '/admin/canon-2'],
    ['/admin//canon-3', '/admin/canon-3'],
    ['/%41DMIN/canon-4', '/ADMIN/canon-4'],
    ['/%61dmin', '/admin'],
  ]) {
    const denied = await call(sent, { token: user });
    assert.equal(denied.status, 403, `${sent} with a non-admin token`);
    assert.equal((await denied.json()).error, 'insufficient_scope');
    assert.equal(seenAt(canonical), undefined, `${sent}: origin not reached`);
    assert.equal((await call(sent, { token: admin })).status, 200, `${sent} with an admin token`);
    assert.ok(seenAt(canonical), `${sent}: the origin received ${canonical} (saw ${origin.seen.at(-1)?.url})`);
  }
  // A case-sensitive origin serves something else at /PUBLIC/... or /public: open only
  // as a rule writes it, so these need a token (and pass with one).
  for (const sent of ['/PUBLIC/canon-5', '/Public/canon-6']) {
    const r = await call(sent);
    assert.equal(r.status, 401, `${sent} without a token`);
    assert.equal((await call(sent, { token: user })).status, 200, `${sent} with a token`);
  }
  assert.equal((await call('/public/canon-7')).status, 200);
  assert.equal((await call('/public')).status, 200, '/public/* covers /public');
  // Escapes of unreserved characters decoded, the others upper-cased; the query as sent.
  assert.equal((await call('/public/%7euser/caf%c3%a9?q=%61//b&r=%2f', {})).status, 200);
  assert.ok(seenAt('/public/~user/caf%C3%A9?q=%61//b&r=%2f'), `origin saw ${origin.seen.at(-1)?.url}`);
  // A canonical path goes through untouched.
  assert.equal((await call('/public/a%20b/~c?x=1', {})).status, 200);
  assert.ok(seenAt('/public/a%20b/~c?x=1'));
  // No canonical form: 400, with or without a token, origin not reached.
  const before = origin.seen.length;
  for (const [sent, reason] of [
    ['/public/..%2fadmin/canon-x', 'encoded_slash'],
    ['/public/..%5Cadmin/canon-x', 'backslash'],
    ['/public/..;/admin/canon-x', 'path_parameter'],
    ['/admin;v=1/canon-x', 'path_parameter'],
    ['/public/%00', 'nul'],
    ['/public/%zz', 'bad_escape'],
  ]) {
    for (const token of [undefined, admin]) {
      const r = await call(sent, { token });
      assert.equal(r.status, 400, `${sent}: ${r.status}`);
      assert.equal(r.headers.get('content-type'), 'application/json');
      assert.deepEqual(await r.json(), { error: 'bad_request', reason }, sent);
    }
  }
  assert.equal(origin.seen.length, before, 'no refused path reached the origin');
});

test('X-Tollgate-Assertion: the origin gets a valid assertion (jose, HS256) with the method, target, hdr and identity of each request', async () => {
  const sid = `assert-${randomUUID()}`;
  const token = await mint(keys.es, { sub: 'alice', sid, roles: ['user', 'staff'], scope: 'a b' });
  const cases = [
    ['GET', '/assert/get?x=1&y=%2F', token],
    ['POST', '/assert/post', token],
    ['HEAD', '/files/assert-head', undefined],
    ['GET', '/public/assert-open?q=a%20b', undefined],
    ['DELETE', '/assert/delete', token],
  ];
  for (const [method, pathname, tok] of cases) {
    const r = await call(pathname, { token: tok, method, body: method === 'POST' ? '{}' : undefined });
    assert.equal(r.status, 200, `${method} ${pathname}`);
    const seen = origin.seen.filter((x) => x.url === pathname && x.method === method).at(-1);
    assert.ok(seen, `${method} ${pathname} reached the origin`);
    const p = await checkAssertion(seen);
    if (tok) {
      assert.equal(p.auth, 'verified');
      assert.deepEqual([p.sub, p.sid, p.tok_iss, p.roles, p.scope], ['alice', sid, ISS, ['user', 'staff'], 'a b']);
    } else {
      assert.equal(p.auth, 'none');
      for (const k of ['sub', 'sid', 'tok_iss', 'roles', 'scope']) assert.equal(p[k], undefined, k);
    }
  }
  // One request id per request.
  const ids = origin.seen.filter((x) => x.url.startsWith('/assert/')).map((x) => x.headers['x-tollgate-request-id']);
  assert.equal(new Set(ids).size, ids.length);
  // The same, for a hot token, a cookie token and a string `role` with an `scp` array.
  const other = await mint(keys.es, { sub: 'bob', sid: undefined, role: 'viewer', scp: ['r', 'w'] });
  for (const pathname of ['/assert/hot-1', '/assert/hot-2']) {
    assert.equal((await call(pathname, { cookie: `access_token=${other}` })).status, 200);
    const p = await checkAssertion(seenAt(pathname));
    assert.deepEqual([p.sub, p.sid, p.roles, p.scope], ['bob', undefined, ['viewer'], 'r w']);
  }
});

test('paths an origin would read as another: double encoding, invalid UTF-8, NFKC-changing characters, trailing dots and spaces are 400', async () => {
  const admin = await mint(keys.es, { roles: ['admin'] });
  const before = origin.seen.length;
  for (const [sent, reason] of [
    ['/public/%252e%252e/admin/users', 'double_encoding'],
    ['/public/%2561dmin', 'double_encoding'],
    ['/public/%C0%AF', 'invalid_utf8'],
    ['/public/%C0%AE%C0%AE/admin', 'invalid_utf8'],
    ['/public/%FF', 'invalid_utf8'],
    ['/public/\uFF0Fadmin', 'unnormalized_unicode'],
    ['/public/%EF%BC%8Fadmin', 'unnormalized_unicode'],
    ['/public/\uFF0E\uFF0E/admin', 'unnormalized_unicode'],
    ['/public/a\uFF3Cb', 'unnormalized_unicode'],
    ['/\uFF41dmin/users', 'unnormalized_unicode'],
    ['/admin./users', 'trailing_dot_or_space'],
    ['/admin%20/users', 'trailing_dot_or_space'],
    ['/public/x.', 'trailing_dot_or_space'],
  ]) {
    for (const token of [undefined, admin]) {
      const r = await call(sent, { token });
      assert.equal(r.status, 400, `${sent}: ${r.status}`);
      assert.deepEqual(await r.json(), { error: 'bad_request', reason }, sent);
    }
  }
  assert.equal(origin.seen.length, before, 'no refused path reached the origin');
  // Ordinary text in other scripts keeps working.
  for (const [sent, received] of [['/public/café', '/public/caf%C3%A9'], ['/public/서울', '/public/%EC%84%9C%EC%9A%B8']]) {
    assert.equal((await call(sent)).status, 200, sent);
    assert.ok(seenAt(received), `${sent}: origin saw ${origin.seen.at(-1)?.url}`);
  }
});

test('rules: HEAD is matched as GET; /admin/* covers /admin and /admin/ but not /admin.json or /adminx', async () => {
  const user = await mint(keys.es, { role: 'user' });
  const staff = await mint(keys.es, { role: 'staff' });
  // A GET rule also guards HEAD (the origin answers HEAD as GET).
  assert.equal((await call('/staff/list', { token: user, method: 'HEAD' })).status, 403);
  assert.equal((await call('/staff/list', { token: staff, method: 'HEAD' })).status, 200);
  assert.equal((await call('/files/report', { method: 'HEAD' })).status, 200, 'an open GET rule opens HEAD');
  assert.equal((await call('/files/report', { method: 'POST', body: 'x' })).status, 401, 'but not POST');
  for (const p of ['/admin', '/admin/']) assert.equal((await call(p, { token: user })).status, 403, p);
  for (const p of ['/admin.json', '/adminx']) assert.equal((await call(p, { token: user })).status, 200, `${p}: only what is written for it`);
  const r = await call('/admin%20', { token: user });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).reason, 'trailing_dot_or_space');
});

test('headers an origin may honour are stripped; X-Forwarded-* come from the Worker; unverified tokens never reach the origin', async () => {
  const token = await mint(keys.es, { sub: 'alice' });
  const forged = {
    'x-original-url': '/admin/users', 'x-rewrite-url': '/admin/users', 'x-override-url': '/admin',
    'x-http-method-override': 'DELETE', 'x-http-method': 'DELETE', 'x-method-override': 'DELETE', x_http_method_override: 'PUT',
    'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil.test', 'x-forwarded-proto': 'https',
    forwarded: 'for=6.6.6.6;host=evil.test', 'x-real-ip': '6.6.6.6',
  };
  for (const [pathname, tok] of [['/hdr/protected', token], ['/public/hdr', undefined]]) {
    assert.equal((await call(pathname, { token: tok, headers: forged })).status, 200, pathname);
    const h = seenAt(pathname).headers;
    for (const name of ['x-original-url', 'x-rewrite-url', 'x-override-url', 'x-http-method-override', 'x-http-method', 'x-method-override', 'x_http_method_override', 'forwarded', 'x-real-ip']) {
      assert.equal(h[name], undefined, `${pathname}: ${name}`);
    }
    assert.match(h['x-forwarded-for'] ?? '127.0.0.1', /^(127\.|::1$|::ffff:127\.)/, `${pathname}: x-forwarded-for ${h['x-forwarded-for']}`);
    assert.equal(h['x-forwarded-host'], `127.0.0.1:${worker.port}`);
    assert.equal(h['x-forwarded-proto'], 'http');
  }
  // On an open route nothing is verified: the Bearer token and the token cookie are removed.
  assert.equal((await call('/public/creds', { token, cookie: `theme=dark; access_token=${token}` })).status, 200);
  const open = seenAt('/public/creds').headers;
  assert.equal(open.authorization, undefined);
  assert.equal(open.cookie, 'theme=dark');
  assert.equal((await call('/public/basic', { headers: { authorization: 'Basic dTpw' } })).status, 200);
  assert.equal(seenAt('/public/basic').headers.authorization, 'Basic dTpw', 'other schemes pass');
});

test('keys are bound to their issuer; refresh tokens are refused at the edge; the bench endpoint is compiled out of the shipped build', async () => {
  // The primary JWKS is the shorthand's one issuer (ISS): its keys never vouch for Google's.
  await expectRejected(await call('/bound/google', { token: await mint(keys.es, { iss: 'https://accounts.google.com', aud: GOOGLE_AUD }) }), 401, 'invalid_issuer');
  await expectRejected(await call('/bound/refresh', { token: await mint(keys.es, {}, { typ: 'refresh+jwt' }) }), 401, 'invalid_type');
  await expectRejected(await call('/bound/refresh', { token: await mint(keys.es, {}, { typ: 'application/Refresh+JWT' }) }), 401, 'invalid_type');
  assert.equal((await call('/bound/at', { token: await mint(keys.es, {}, { typ: 'at+jwt' }) })).status, 200, 'at+jwt is an access token');
  // TOLLGATE_BENCH_ENDPOINT is on for both: only the measurement build has the endpoint.
  const r = await fetch(`${worker.url}/__tollgate/bench`);
  assert.equal(r.status, 401, 'the shipped build: an ordinary guarded path');
  assert.equal((await call('/__tollgate/bench', { token: await mint(keys.es) })).status, 200);
  assert.ok(seenAt('/__tollgate/bench'), 'forwarded to the origin like any path');
  const b = await fetch(`${benchWorker.url}/__tollgate/bench`);
  assert.equal(b.status, 200);
  assert.equal(typeof (await b.json()).cached_tokens, 'number');
});

test('unknown-kid storm is bounded: at most one JWKS refetch per cooldown', async () => {
  const before = { primary: jwks.count('/primary.json'), google: jwks.count('/google.json') };
  const started = Date.now();
  const tokens = await Promise.all(Array.from({ length: 60 }, () => mint({ ...keys.stranger, kid: `random-${randomUUID()}` })));
  const replies = [];
  for (let i = 0; i < tokens.length; i += 15) {
    replies.push(...(await Promise.all(tokens.slice(i, i + 15).map((token) => call('/storm', { token })))));
  }
  const elapsed = (Date.now() - started) / 1000;
  for (const r of replies) await expectRejected(r, 401, 'unknown_key');
  const bound = 1 + Math.floor(elapsed / COOLDOWN);
  for (const [name, p] of [['primary', '/primary.json'], ['google', '/google.json']]) {
    const n = jwks.count(p) - before[name];
    console.log(`# storm: 60 random kids in ${elapsed.toFixed(2)} s → ${n} refetch(es) of ${p} (bound ${bound})`);
    assert.ok(n >= 1 && n <= bound, `${p}: ${n} refetches, bound ${bound}`);
  }
});

test('key rotation: a new kid is picked up, the old key verifies until removed', async () => {
  // New key on the long-lived primary document: the first token naming it makes the
  // Worker refetch (once the storm's cooldown is over).
  const es2 = await keyPair('ES256', 'primary-es-2');
  jwks.docs['/primary.json'] = { keys: [...jwks.docs['/primary.json'].keys, es2.jwk] };
  const fresh = await mint(es2);
  const t0 = Date.now();
  await waitFor('the new kid to verify', async () => (await call('/rotate/new', { token: fresh })).status === 200, {
    timeoutMs: (COOLDOWN + 10) * 1000,
    intervalMs: 250,
  });
  console.log(`# rotation: new kid accepted ${Date.now() - t0} ms after it was published (after the storm test's ${COOLDOWN} s cooldown)`);
  assert.equal((await call('/rotate/old', { token: await mint(keys.es) })).status, 200, 'old key still valid');

  // Removal on the short-lived document: the hot (cached) token of the removed key is
  // rejected once the Worker refreshes the document, the new key keeps working.
  const rot2 = await keyPair('ES256', 'rot-2');
  jwks.docs['/rotating.json'] = { keys: [keys.rot1.jwk, rot2.jwk] };
  const oldTok = await mint(keys.rot1);
  const newTok = await mint(rot2);
  assert.equal((await call('/rotate/r1', { token: oldTok })).status, 200);
  await waitFor('rot-2 to verify', async () => (await call('/rotate/r2', { token: newTok })).status === 200, { timeoutMs: 15000, intervalMs: 200 });
  jwks.docs['/rotating.json'] = { keys: [rot2.jwk] };
  await waitFor('the removed key to stop verifying', async () => {
    const r = await call('/rotate/r1', { token: oldTok });
    if (r.status === 200) return false;
    await expectRejected(r, 401, 'unknown_key');
    return true;
  }, { timeoutMs: 15000, intervalMs: 200 });
  assert.equal((await call('/rotate/r2', { token: newTok })).status, 200);
});

test('Google- and Kakao-style RS256 ID tokens verify against stand-in preset JWKS', async () => {
  const google = (iss) =>
    mint(keys.google, { iss, aud: GOOGLE_AUD, sub: '1098765432', sid: undefined, jti: undefined, email: 'a@gmail.test', email_verified: true, azp: GOOGLE_AUD });
  assert.equal((await call('/id/google1', { token: await google('https://accounts.google.com') })).status, 200);
  assert.equal((await call('/id/google2', { token: await google('accounts.google.com') })).status, 200);
  assert.equal(seenAt('/id/google2').headers['x-tollgate-sub'], '1098765432');
  const kakao = await mint(keys.kakao, { iss: 'https://kauth.kakao.com', aud: KAKAO_AUD, sub: '3141592653', sid: undefined, nickname: '라이언' });
  assert.equal((await call('/id/kakao', { token: kakao })).status, 200);
  const claims = JSON.parse(Buffer.from(seenAt('/id/kakao').headers['x-tollgate-claims'], 'base64url').toString());
  assert.equal(claims.nickname, '라이언');
  // Preset keys vouch only for their provider's issuers.
  await expectRejected(await call('/id/cross', { token: await mint(keys.google, { iss: ISS }) }), 401, 'invalid_issuer');
});

test('logout posted to the service → the same token is rejected (revoked) and leaves the token cache', async () => {
  // The measurement build: its GET /__tollgate/bench counts the cached tokens.
  const call = (pathname, opts) => callOn(benchWorker, pathname, opts);
  const sid = `logout-${randomUUID()}`;
  const token = await mint(keys.es, { sid });
  const cached0 = await cachedTokens();
  assert.equal((await call('/logout/before', { token })).status, 200);
  assert.equal(await cachedTokens(), cached0 + 1, 'an accepted token enters the verified-token cache');
  assert.equal((await call('/logout/before', { token })).status, 200, 'hot: from the verified-token cache');
  assert.equal(await cachedTokens(), cached0 + 1, 'a hit adds nothing');
  const t0 = performance.now();
  await svc.post({ kind: 'logout', sid, exp: now() + 3600 });
  const acked = performance.now();
  await waitFor('the Worker to reject the logged-out token', async () => (await call('/logout/after', { token })).status === 401, {
    timeoutMs: 10000,
    intervalMs: 5,
  });
  const done = performance.now();
  console.log(`# propagation: logout acknowledged in ${(acked - t0).toFixed(1)} ms; Worker rejecting ${(done - acked).toFixed(1)} ms after the ack`);
  await expectRejected(await call('/logout/after', { token }), 401, 'revoked');
  assert.equal(await cachedTokens(), cached0, 'a revoked token leaves the cache');

  // One token by jti, every token of a subject issued before a cutoff.
  const jtiTok = await mint(keys.es);
  assert.equal((await call('/revoke/jti', { token: jtiTok })).status, 200);
  await svc.post({ kind: 'revoke_token', jti: jose.decodeJwt(jtiTok).jti, exp: now() + 3600 });
  await waitFor('jti revocation', async () => (await call('/revoke/jti', { token: jtiTok })).status === 401, { timeoutMs: 10000, intervalMs: 20 });
  const oldTok = await mint(keys.es, { sub: 'dave', iat: now() - 100 });
  await svc.post({ kind: 'revoke_subject', sub: 'dave', before: now() - 10, exp: now() + 3600 });
  await waitFor('subject revocation', async () => (await call('/revoke/sub', { token: oldTok })).status === 401, { timeoutMs: 10000, intervalMs: 20 });
  const newTok = await mint(keys.es, { sub: 'dave' });
  assert.equal((await call('/revoke/sub', { token: newTok })).status, 200, 'tokens issued after the cutoff pass');
});

test('revocation service down: 503 after the staleness bound (fail closed), recovery when it returns', async () => {
  const token = await mint(keys.es);
  const revoked = await mint(keys.es, { sid: 'down-test' });
  await svc.post({ kind: 'logout', sid: 'down-test', exp: now() + 3600 });
  await waitFor('revocation applied', async () => (await call('/down/revoked', { token: revoked })).status === 401, { timeoutMs: 10000 });
  assert.equal((await call('/down/ok', { token })).status, 200);

  const killed = Date.now();
  await svc.kill();
  // The outage budget: the last good replica serves until the staleness bound.
  assert.equal((await call('/down/ok', { token })).status, 200, 'served from the last good replica during the outage');
  const r503 = await waitFor('fail-closed 503', async () => {
    const r = await call('/down/ok', { token });
    return r.status === 503 ? r : false;
  }, { timeoutMs: (MAX_STALENESS + 15) * 1000, intervalMs: 100 });
  console.log(`# service down: first 503 ${Date.now() - killed} ms after the kill (staleness bound ${MAX_STALENESS} s)`);
  assert.ok(Number(r503.headers.get('retry-after')) >= 1);
  assert.deepEqual(await r503.json(), { error: 'unavailable', reason: 'denylist_stale' });
  // Invalid tokens are still plain 401s, public routes still pass.
  await expectRejected(await call('/down/bad', { token: 'x.y.z' }), 401, 'malformed');
  assert.equal((await call('/public/down')).status, 200);

  const restarted = Date.now();
  await svc.start();
  await waitFor('recovery', async () => (await call('/down/ok', { token })).status === 200, { timeoutMs: 20000, intervalMs: 100 });
  console.log(`# service back: 200 again ${Date.now() - restarted} ms after the restart began`);
  await expectRejected(await call('/down/revoked', { token: revoked }), 401, 'revoked');
});

test('fail mode open lets verified tokens through a stale replica; invalid configuration is a 500', async () => {
  const vars = { ...revocationVars(svc.url), TOLLGATE_MAX_STALENESS_SECONDS: '1' };
  const [open, broken] = await Promise.all([
    startWorker({ ...vars, TOLLGATE_FAIL_MODE: 'open' }),
    startWorker({ ...vars, TOLLGATE_ROUTES: '[{"path": "/*", "roles": "admin"}]' }),
  ]);
  const token = await mint(keys.es);
  const revoked = await mint(keys.es, { sid: 'down-test' }); // logged out in the previous test
  assert.equal((await fetch(`${open.url}/open/ok`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
  await expectRejected(await fetch(`${open.url}/open/revoked`, { headers: { authorization: `Bearer ${revoked}` } }), 401, 'revoked');

  await svc.kill();
  // Once the fail-closed Worker (bound 3 s) refuses, the open one (bound 1 s) is stale
  // too: it still answers 200, and still refuses what its replica knows to be revoked.
  await waitFor('the fail-closed Worker to refuse', async () => (await call('/open/closed', { token })).status === 503, {
    timeoutMs: 15000,
    intervalMs: 100,
  });
  assert.equal((await fetch(`${open.url}/open/ok`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
  await expectRejected(await fetch(`${open.url}/open/revoked`, { headers: { authorization: `Bearer ${revoked}` } }), 401, 'revoked');
  await svc.start();

  const r = await fetch(`${broken.url}/x`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(r.status, 500);
  assert.deepEqual(await r.json(), { error: 'misconfigured' });
  await Promise.all([open.stop(), broken.stop()]);
});

test('a replica the service cannot vouch for goes stale (fail closed): unsigned answers, an old snapshot replayed, a snapshot behind the replica', async () => {
  const proxy = await startServiceProxy(svc.url);
  const w = await startWorker({ ...revocationVars(proxy.url), TOLLGATE_MAX_STALENESS_SECONDS: '2' }, { logName: 'vouch' });
  const get = (p, token) => fetch(`${w.url}${p}`, { headers: { authorization: `Bearer ${token}` } });
  const loggedOut = async () => {
    const token = await mint(keys.es, { sid: `vouch-${randomUUID()}` });
    await svc.post({ kind: 'logout', sid: jose.decodeJwt(token).sid, exp: now() + 3600 });
    return token;
  };
  const stale = (token, what) =>
    waitFor(what, async () => {
      const r = await get('/vouch/stale', token);
      return r.status === 503 && (await r.json()).reason === 'denylist_stale';
    }, { timeoutMs: 15000, intervalMs: 100 });
  try {
    assert.equal((await get('/vouch/ok', await mint(keys.es))).status, 200); // the snapshot, through the proxy
    const a = await loggedOut();
    await waitFor('a signed delta through the proxy', async () => (await get('/vouch/a', a)).status === 401, { timeoutMs: 10000 });

    // Unsigned answers to the long-poll (anything on the way could send them) refresh nothing.
    for (const status of [204, 304]) {
      proxy.state.mode = 'unsigned';
      proxy.state.unsignedStatus = status;
      const b = await loggedOut();
      await stale(b, `503 while deltas are answered ${status}`);
      proxy.state.mode = 'pass';
      await waitFor(`recovery after ${status}`, async () => (await get('/vouch/b', b)).status === 401, { timeoutMs: 10000, intervalMs: 100 });
    }

    // A validly signed snapshot replayed after the staleness bound (the first one this
    // proxy passed): refused as too old, the replica goes stale; a replay is not a log
    // that went back, so the replica recovers once the service answers again.
    proxy.state.mode = 'rollback';
    const c = await loggedOut();
    await stale(c, '503 while an old snapshot is replayed');
    await waitFor('the log to say why', async () => {
      await get('/vouch/poke', c);
      return w.log().includes('is too old at');
    }, { timeoutMs: 10000, intervalMs: 200 });
    proxy.state.mode = 'pass';
    await waitFor('recovery after the replay', async () => (await get('/vouch/c', c)).status === 401, { timeoutMs: 10000, intervalMs: 100 });
  } finally {
    await w.stop();
    await proxy.close();
  }

  // A validly signed snapshot behind the replica and within the bound (the service
  // restored from a backup): refused, the replica goes stale, and this isolate takes
  // nothing more from the service even once it answers properly again.
  const proxy2 = await startServiceProxy(svc.url);
  const w2 = await startWorker({ ...revocationVars(proxy2.url), TOLLGATE_MAX_STALENESS_SECONDS: '12' }, { logName: 'rollback' });
  const get2 = (p, token) => fetch(`${w2.url}${p}`, { headers: { authorization: `Bearer ${token}` } });
  try {
    assert.equal((await get2('/vouch/ok', await mint(keys.es))).status, 200); // the snapshot proxy2 keeps
    const a = await loggedOut();
    await waitFor('a signed delta through the proxy', async () => (await get2('/vouch/a', a)).status === 401, { timeoutMs: 10000 });
    proxy2.state.mode = 'rollback';
    await waitFor('the log to say why', async () => {
      await get2('/vouch/poke', a); // requests start the polls
      return w2.log().includes('behind this replica');
    }, { timeoutMs: 15000, intervalMs: 200 });
    const c = await loggedOut();
    await waitFor('503 after a snapshot behind the replica', async () => {
      const r = await get2('/vouch/stale', c);
      return r.status === 503 && (await r.json()).reason === 'denylist_stale';
    }, { timeoutMs: 20000, intervalMs: 200 });
    proxy2.state.mode = 'pass';
    const asked = proxy2.state.requests;
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await get2('/vouch/diverged', c)).status, 503);
    }
    assert.equal(proxy2.state.requests, asked, 'nothing more asked of the service');
  } finally {
    await w2.stop();
    await proxy2.close();
  }
});

test('a new isolate starts from the high-water mark other isolates left in the colo (Cache API): a snapshot replayed below it is refused', async () => {
  const proxy = await startServiceProxy(svc.url);
  const persistTo = mkdtempSync(path.join(tmpdir(), 'tollgate-e2e-wrangler-'));
  // A bound long enough for a replayed snapshot to pass the age check while Workers restart.
  const vars = { ...revocationVars(proxy.url), TOLLGATE_MAX_STALENESS_SECONDS: '60', TOLLGATE_BENCH_ENDPOINT: 'on' };
  const workers = [];
  const get = (w, p, token) => fetch(`${w.url}${p}`, { headers: { authorization: `Bearer ${token}` } });
  const figures = async (w) => {
    const r = await fetch(`${w.url}/__tollgate/bench`);
    assert.equal(r.status, 200);
    return r.json();
  };
  try {
    // One isolate follows the service: the first snapshot (which the proxy keeps), then a
    // logout as a delta; its mark is written to the colo's cache.
    const first = await startWorker(vars, { script: BENCH_BUILD, persistTo, logName: 'mark-1' });
    workers.push(first);
    assert.equal((await get(first, '/mark/ok', await mint(keys.es))).status, 200);
    const token = await mint(keys.es, { sid: `mark-${randomUUID()}` });
    await svc.post({ kind: 'logout', sid: jose.decodeJwt(token).sid, exp: now() + 3600 });
    await waitFor('the logout to reach the first isolate', async () => (await get(first, '/mark/a', token)).status === 401, { timeoutMs: 10000, intervalMs: 100 });
    const { denylist_seq: seq } = await figures(first);
    await waitFor('its mark in the colo cache', async () => (await figures(first)).shared_mark_seq >= seq, { timeoutMs: 10000, intervalMs: 100 });
    await first.stop();
    workers.length = 0;

    // Someone on the path replays the first snapshot (validly signed, within the age
    // bound, before the logout) to new isolates: one in this colo (same storage), and
    // one in a colo without a mark.
    proxy.state.mode = 'rollback';
    const [second, elsewhere] = await Promise.all([
      startWorker(vars, { script: BENCH_BUILD, persistTo, logName: 'mark-2' }),
      startWorker(vars, { script: BENCH_BUILD, logName: 'mark-elsewhere' }),
    ]);
    workers.push(second, elsewhere);
    // Without a mark the replay passes and the logged-out token is let through: what the
    // mark is for (the age bound alone allows this for up to one bound).
    assert.equal((await get(elsewhere, '/mark/replayed', token)).status, 200);
    // With the colo's mark it is refused: no data, fail closed.
    const r = await get(second, '/mark/refused', token);
    assert.equal(r.status, 503);
    assert.equal((await r.json()).reason, 'denylist_stale');
    assert.ok((await figures(second)).denylist_seq === 0, 'nothing applied');
    await waitFor('the log to say why', async () => second.log().includes('high-water mark other isolates in this colo reached'), { timeoutMs: 10000, intervalMs: 200 });
    // Not final: once the service answers again the new isolate takes its snapshot.
    proxy.state.mode = 'pass';
    await waitFor('recovery', async () => (await get(second, '/mark/back', token)).status === 401, { timeoutMs: 15000, intervalMs: 200 });
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await proxy.close();
  }
});

test('a snapshot slower than a request may wait still arrives (in the background); one download', async () => {
  const proxy = await startServiceProxy(svc.url);
  proxy.state.snapshotDelayMs = 4500; // a request waits at most ~3.5 s for a sync
  const w = await startWorker(revocationVars(proxy.url), { logName: 'slow-snapshot' });
  const token = await mint(keys.es);
  const get = () => fetch(`${w.url}/slow/ok`, { headers: { authorization: `Bearer ${token}` } });
  try {
    const first = await get();
    assert.equal(first.status, 503, 'the first request does not wait for the whole snapshot');
    await waitFor('the snapshot to land', async () => (await get()).status === 200, { timeoutMs: 15000, intervalMs: 200 });
    assert.equal(proxy.state.snapshots, 1);
  } finally {
    await w.stop();
    await proxy.close();
  }
});

/** Vars of a Worker on the primary JWKS whose revocation service is at `revocationUrl`
 * (the real one, or a proxy in front of it). */
function revocationVars(revocationUrl) {
  return {
    TOLLGATE_ORIGIN: origin.url,
    TOLLGATE_ORIGIN_SECRET: SECRET,
    TOLLGATE_JWKS_URLS: JSON.stringify([jwks.url('/primary.json')]),
    TOLLGATE_ISSUERS: JSON.stringify([ISS]),
    TOLLGATE_AUDIENCES: JSON.stringify([AUD]),
    TOLLGATE_REVOCATION_URL: revocationUrl,
    TOLLGATE_REVOCATION_TOKEN: svc.readKey,
    TOLLGATE_DENYLIST_KEY: svc.publicJwkText,
  };
}

/** A token whose payload was changed after signing: a well-formed, wrong signature. */
function tampered(token) {
  const [h, , sig] = token.split('.');
  return `${h}.${b64({ ...jose.decodeJwt(token), sub: 'admin' })}.${sig}`;
}

/** Vars of a Worker with the given JWKS URLs and no denylist (no revocation service). */
function plainVars(jwksUrls) {
  return {
    TOLLGATE_ORIGIN: origin.url,
    TOLLGATE_ORIGIN_SECRET: SECRET,
    TOLLGATE_JWKS_URLS: JSON.stringify(jwksUrls),
    TOLLGATE_ISSUERS: JSON.stringify([ISS]),
    TOLLGATE_AUDIENCES: JSON.stringify([AUD]),
    TOLLGATE_REVOCATION_URL: '',
    TOLLGATE_REVOCATION: 'off', // asked for by name: these Workers have no denylist
  };
}

test('WebCrypto failing (verify or importKey, throwing or rejecting): the pure-Rust fallback verifies and fails closed', async () => {
  // The built Worker behind a test-only entry module that breaks crypto.subtle on the
  // request's x-test-webcrypto mode (tests/lib/webcrypto-failing-worker.mjs).
  const fb = await startWorker(plainVars([jwks.url('/primary.json')]), {
    script: path.join(ROOT, 'tests/lib/webcrypto-failing-worker.mjs'),
    logName: 'webcrypto-failing',
  });
  try {
    const fallbackLines = (mode) => fb.log().split('\n').filter((l) => l.includes(`WebCrypto failed (test-webcrypto ${mode}), using pure Rust`)).length;
    // importKey modes first: once a key is imported its CryptoKey is kept, and importKey
    // is not called again for it.
    for (const mode of ['import-throws', 'import-rejects', 'verify-throws', 'verify-rejects']) {
      const send = (pathname, token) => fetch(`${fb.url}${pathname}`, { headers: { authorization: `Bearer ${token}`, 'x-test-webcrypto': mode } });
      for (const key of [keys.es, keys.rs]) {
        const sid = `fallback-${randomUUID()}`;
        const token = await mint(key, { sub: `fallback-${mode}`, sid });
        const pathname = `/fallback/${mode}/${key.alg}`;
        const r = await send(pathname, token);
        assert.equal(r.status, 200, `${mode} ${key.alg}: ${await r.text()}`);
        const seen = seenAt(pathname);
        assert.equal(seen.headers['x-tollgate-sub'], `fallback-${mode}`);
        assert.equal(seen.headers['x-tollgate-sid'], sid);
        assert.deepEqual(JSON.parse(Buffer.from(seen.headers['x-tollgate-claims'], 'base64url').toString()), jose.decodeJwt(token));
        // The fallback must fail closed: a wrong signature is refused, never let through.
        await expectRejected(await send(`/fallback/${mode}/bad`, tampered(token)), 401, 'invalid_signature');
      }
      await expectRejected(await send(`/fallback/${mode}/unknown`, await mint({ ...keys.es, kid: `unknown-${randomUUID()}` })), 401, 'unknown_key');
      // The patch took effect: one fallback line per signature check (2 valid + 2 tampered).
      await waitFor(`the Worker to log 4 fallbacks for ${mode}`, () => fallbackLines(mode) >= 4, { timeoutMs: 10000 });
      assert.equal(fallbackLines(mode), 4, mode);
    }
    assert.deepEqual(origin.seen.filter((r) => /^\/fallback\/.*\/(bad|unknown)$/.test(r.url)), [], 'no rejected request reached the origin');
  } finally {
    await fb.stop();
  }
});

test('JWKS from the Cache API in a fresh isolate (wrangler dev restarted on the same storage); no-store is not cached', async () => {
  const cachedKey = await keyPair('ES256', 'cache-api-1');
  const noStoreKey = await keyPair('ES256', 'no-store-1');
  jwks.docs['/cache-api.json'] = { keys: [cachedKey.jwk] };
  jwks.maxAge['/cache-api.json'] = 300;
  jwks.docs['/no-store.json'] = { keys: [noStoreKey.jwk] };
  jwks.cacheControl['/no-store.json'] = 'no-store';
  const vars = plainVars([jwks.url('/cache-api.json'), jwks.url('/no-store.json')]);
  const persistTo = mkdtempSync(path.join(tmpdir(), 'tollgate-e2e-wrangler-'));

  let first;
  let second;
  try {
    first = await startWorker(vars, { persistTo, logName: 'cache-api-1' });
    assert.equal((await fetch(`${first.url}/cache/first`, { headers: { authorization: `Bearer ${await mint(cachedKey)}` } })).status, 200);
    assert.equal(jwks.count('/cache-api.json'), 1, 'the first isolate fetched the document');
    assert.ok(jwks.count('/no-store.json') >= 1);
    const firstLog = first.logFile;
    await first.stop();
    first = undefined;

    // A new workerd, hence a new isolate, on the same persisted Cache API. The host no
    // longer serves the cacheable document: the Cache API is the only place it can be.
    delete jwks.docs['/cache-api.json'];
    const noStoreFetches = jwks.count('/no-store.json');
    second = await startWorker(vars, { persistTo, logName: 'cache-api-2' });
    const r = await fetch(`${second.url}/cache/second`, { headers: { authorization: `Bearer ${await mint(cachedKey)}` } });
    assert.equal(r.status, 200, `${await r.text()}\n${second.log().slice(-2000)}\n(first isolate's log: ${firstLog})`);
    assert.equal(jwks.count('/cache-api.json'), 1, 'no network fetch of the cached document');
    assert.ok(jwks.count('/no-store.json') > noStoreFetches, 'the no-store document was fetched again, not taken from the Cache API');
    assert.equal((await fetch(`${second.url}/cache/no-store`, { headers: { authorization: `Bearer ${await mint(noStoreKey)}` } })).status, 200);
  } finally {
    await first?.stop();
    await second?.stop();
  }
});

test('Workers of other configurations: ES256 assertions, no secret (500), auth none, two issuers with their own keys, JWKS redirects to another host', async () => {
  const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const pem = await jose.exportPKCS8(privateKey);
  const esKid = await jose.calculateJwkThumbprint(await jose.exportJWK(publicKey));
  assertionKeys[esKid] = { key: publicKey, alg: 'ES256' };
  const base = revocationVars(svc.url);
  const { TOLLGATE_ORIGIN_SECRET: _unused, ...noSecret } = base;
  const [a, b, c, d] = await Promise.all([jwks, jwks, jwks, jwks].map((_, i) => keyPair('ES256', `issuer-${i}`)));
  jwks.docs['/issuer-a.json'] = { keys: [a.jwk] };
  jwks.redirects['/issuer-b.json'] = '/issuer-b-moved.json'; // same host: followed
  jwks.docs['/issuer-b-moved.json'] = { keys: [b.jwk] };
  jwks.redirects['/issuer-c.json'] = `http://localhost:${jwks.port}/issuer-c-elsewhere.json`; // another host: not followed
  jwks.docs['/issuer-c-elsewhere.json'] = { keys: [c.jwk] };
  const [ISS_A, ISS_B, ISS_C] = ['https://a.issuer.test', 'https://b.issuer.test', 'https://c.issuer.test'];
  const [es, missing, none, multi] = await Promise.all([
    // A base path on the origin: the assertion's target starts with it.
    startWorker({ ...noSecret, TOLLGATE_ORIGIN: `${origin.url}/es-base`, TOLLGATE_ORIGIN_AUTH: 'es256', TOLLGATE_ORIGIN_SIGNING_KEY: pem }, { logName: 'es256' }),
    startWorker(noSecret, { logName: 'no-secret' }),
    // Everything it forwards arrives under /none-auth/ (no assertion there, by name).
    startWorker({ ...noSecret, TOLLGATE_ORIGIN: `${origin.url}/none-auth`, TOLLGATE_ORIGIN_AUTH: 'none' }, { logName: 'auth-none' }),
    startWorker({
      TOLLGATE_ORIGIN: origin.url,
      TOLLGATE_ORIGIN_SECRET: SECRET,
      TOLLGATE_REVOCATION: 'off',
      TOLLGATE_REVOCATION_URL: '',
      TOLLGATE_JWKS_URLS: '',
      TOLLGATE_ISSUERS: JSON.stringify([
        { issuer: ISS_A, jwks_url: jwks.url('/issuer-a.json') },
        { issuer: ISS_B, jwks_url: jwks.url('/issuer-b.json') },
        { issuer: ISS_C, jwks_url: jwks.url('/issuer-c.json') },
        { issuer: 'https://d.issuer.test', jwks: { keys: [d.jwk] } },
      ]),
      TOLLGATE_AUDIENCES: 'any',
      TOLLGATE_TYP: 'at+jwt',
    }, { logName: 'two-issuers' }),
  ]);
  const get = (w, p, token) => fetch(`${w.url}${p}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  try {
    // ES256 with a PKCS#8 key: the origin checks it with the public key only.
    const sid = `es-${randomUUID()}`;
    assert.equal((await get(es, '/es256/x?y=1', await mint(keys.es, { sid }))).status, 200);
    const p = await checkAssertion(seenAt('/es-base/es256/x?y=1'));
    assert.equal(p.sid, sid);
    assert.equal(p.target, '/es-base/es256/x?y=1', 'the origin base path, then the canonical path and query');
    assert.equal((await get(es, '/public/es256')).status, 200);
    assert.equal((await checkAssertion(seenAt('/es-base/public/es256'))).auth, 'none');

    // No secret and no TOLLGATE_ORIGIN_AUTH = "none": open and guarded routes are 500.
    for (const [pathname, token] of [['/public/no-secret', undefined], ['/no-secret', await mint(keys.es)]]) {
      const r = await get(missing, pathname, token);
      assert.equal(r.status, 500, pathname);
      assert.deepEqual(await r.json(), { error: 'misconfigured' });
      assert.equal(seenAt(pathname), undefined);
    }
    await waitFor('the missing secret to be logged', () => /TOLLGATE_ORIGIN_SECRET is invalid: not set/.test(missing.log()));

    // "none", asked for by name: forwarded without an assertion (still with a request id).
    assert.equal((await get(none, '/x', await mint(keys.es))).status, 200);
    const plain = seenAt('/none-auth/x').headers;
    assert.equal(plain['x-tollgate-assertion'], undefined);
    assert.match(plain['x-tollgate-request-id'], /^[A-Za-z0-9_-]{22}$/);

    // Two (four) issuers, each with its own keys: a key never verifies another issuer's token.
    const at = { typ: 'at+jwt' };
    assert.equal((await get(multi, '/multi/a', await mint(a, { iss: ISS_A, aud: 'anything' }, at))).status, 200, 'audience any');
    await expectRejected(await get(multi, '/multi/a-as-b', await mint(a, { iss: ISS_B }, at)), 401, 'invalid_issuer');
    await expectRejected(await get(multi, '/multi/d-as-a', await mint(d, { iss: ISS_A }, at)), 401, 'invalid_issuer');
    assert.equal((await get(multi, '/multi/d', await mint(d, { iss: 'https://d.issuer.test' }, at))).status, 200);
    await expectRejected(await get(multi, '/multi/jwt-typ', await mint(a, { iss: ISS_A })), 401, 'invalid_type');
    // The same-host redirect is followed; the one to another host is not.
    assert.equal((await get(multi, '/multi/b', await mint(b, { iss: ISS_B }, at))).status, 200);
    await expectRejected(await get(multi, '/multi/c', await mint(c, { iss: ISS_C }, at)), 401, 'unknown_key');
    assert.equal(jwks.count('/issuer-c-elsewhere.json'), 0, 'nothing fetched from the other host');
    await waitFor('the refused redirect to be logged', () => /redirect to http:\/\/localhost:\d+\/issuer-c-elsewhere.json not followed/.test(multi.log()));
    await waitFor('audience "any" to be logged', () => /audiences=any \(aud not checked, as configured\)/.test(multi.log()));
  } finally {
    await Promise.all([es, missing, none, multi].map((w) => w.stop()));
  }
});

test('every request the origin received carried a valid assertion (all Workers above but the `none` one)', async () => {
  let checked = 0;
  for (const seen of origin.seen) {
    if (seen.url.startsWith('/none-auth/')) continue;
    await checkAssertion(seen);
    checked++;
  }
  console.log(`# ${checked} forwarded requests, each with a valid X-Tollgate-Assertion`);
  assert.ok(checked > 100, `${checked} requests checked`);
});
