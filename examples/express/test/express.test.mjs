// The example server against the real revocation service on 127.0.0.1, following the
// issue's story: login → /profile 200 → refresh → the old refresh token replayed →
// 401 reuse_detected, and that session's access token refused by the middleware
// within a second → a new login → logout → refused. Also: the cookies exactly as the
// guides set them, the admin role rule, bad input answered with typed errors.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createApp } from '../server.js';
import { serviceSkip, startService } from '../../../edge/npm/test/service.mjs';

const ISS = 'https://auth.example.test';
const AUD = 'https://api.example.test';

/** A cookie jar per client: what a browser would send back (Path honoured). */
function jar() {
  const cookies = new Map(); // name → { value, path }
  return {
    cookies,
    take(res) {
      for (const line of res.headers.getSetCookie()) {
        const [pair, ...attrs] = line.split('; ');
        const [name, value] = [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)];
        const path = attrs.find((a) => a.startsWith('Path='))?.slice(5) ?? '/';
        const maxAge = attrs.find((a) => a.startsWith('Max-Age='));
        if (maxAge === 'Max-Age=0') cookies.delete(name);
        else cookies.set(name, { value, path });
      }
    },
    header(path) {
      return [...cookies.entries()]
        .filter(([, c]) => path === c.path || path.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`) || c.path === '/')
        .map(([n, c]) => `${n}=${c.value}`)
        .join('; ');
    },
  };
}

describe('examples/express against the real revocation service', { skip: serviceSkip }, () => {
  let svc, server, base, close;

  before(async () => {
    svc = await startService({ keys: { origin: ['events:write', '--issuer', ISS], read: ['denylist:read'] } });
    const made = await createApp({
      issuer: ISS,
      audience: AUD,
      revocationUrl: svc.url,
      eventsKey: svc.keys.origin,
      readKey: svc.keys.read,
      denylistKey: svc.publicJwk,
      admins: ['root@example.test'],
    });
    close = made.close;
    server = await new Promise((resolve) => {
      const s = made.app.listen(0, '127.0.0.1', () => resolve(s));
    });
    base = `http://127.0.0.1:${server.address().port}`;
  });
  after(async () => {
    await new Promise((r) => (server ? server.close(r) : r()));
    await close?.();
    await svc?.stop();
  });

  async function call(path, { method = 'GET', json, cookies, bearer } = {}) {
    const headers = {};
    if (json !== undefined) headers['content-type'] = 'application/json';
    const c = cookies?.header(path);
    if (c) headers.cookie = c;
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    const res = await fetch(base + path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
    cookies?.take(res);
    return res;
  }

  async function signUp(email, password = 'correct horse battery staple') {
    const r = await call('/auth/register', { method: 'POST', json: { email, password } });
    assert.equal(r.status, 201, await r.clone().text());
    const browser = jar();
    const login = await call('/auth/login', { method: 'POST', json: { email, password }, cookies: browser });
    assert.equal(login.status, 200, await login.clone().text());
    return { browser, login, body: await login.json() };
  }

  /** Polls until `check` holds, at most `ms`; resolves to the time it took. */
  async function within(ms, what, check) {
    const t0 = performance.now();
    for (;;) {
      if (await check()) return performance.now() - t0;
      if (performance.now() - t0 > ms) assert.fail(`${what}: not within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('the story: login → profile → refresh → replay → 401 reuse_detected, session dead within 1 s → login → logout → refused', async (t) => {
    const { browser, login, body } = await signUp('alice@example.test');
    // The guides' cookies, exactly.
    const set = login.headers.getSetCookie();
    assert.equal(set.length, 2);
    assert.match(set[0], /^access_token=[\w-]+\.[\w-]+\.[\w-]+; Path=\/; Max-Age=900; SameSite=Strict; HttpOnly; Secure$/);
    assert.match(set[1], /^refresh_token=[\w-]+\.[\w-]+\.[\w-]+; Path=\/auth\/refresh; Max-Age=604800; SameSite=Strict; HttpOnly; Secure$/);
    assert.equal(browser.cookies.get('access_token').value, body.accessToken);
    assert.ok(!browser.header('/profile').includes('refresh_token'), 'the refresh token travels only to /auth/refresh');

    let r = await call('/profile', { cookies: browser });
    assert.equal(r.status, 200);
    const me = await r.json();
    assert.equal(me.email, 'alice@example.test');
    assert.equal((await call('/profile', { bearer: body.accessToken })).status, 200, 'Bearer works too');

    const firstRefresh = browser.cookies.get('refresh_token').value;
    r = await call('/auth/refresh', { method: 'POST', cookies: browser });
    assert.equal(r.status, 200, await r.clone().text());
    const rotated = await r.json();
    assert.notEqual(browser.cookies.get('refresh_token').value, firstRefresh, 'a new refresh token');
    assert.equal(browser.cookies.get('access_token').value, rotated.accessToken);
    assert.equal((await call('/profile', { cookies: browser })).status, 200);

    // An attacker replays the first refresh token.
    const thief = jar();
    thief.cookies.set('refresh_token', { value: firstRefresh, path: '/auth/refresh' });
    r = await call('/auth/refresh', { method: 'POST', cookies: thief });
    assert.equal(r.status, 401);
    assert.deepEqual(await r.json(), { error: 'reuse_detected' });
    const took = await within(1000, 'the session access token refused', async () => (await call('/profile', { bearer: rotated.accessToken })).status === 401);
    t.diagnostic(`access token of the replayed session refused ${took.toFixed(0)} ms after the 401`);
    r = await call('/profile', { bearer: rotated.accessToken });
    assert.equal((await r.json()).reason, 'revoked');
    // The legitimate user's newest refresh token is dead too: sign in again.
    r = await call('/auth/refresh', { method: 'POST', cookies: browser });
    assert.equal(r.status, 401);

    const again = jar();
    r = await call('/auth/login', { method: 'POST', json: { email: 'alice@example.test', password: 'correct horse battery staple' }, cookies: again });
    assert.equal(r.status, 200);
    const second = (await r.json()).accessToken;
    assert.equal((await call('/profile', { cookies: again })).status, 200);
    r = await call('/auth/logout', { method: 'POST', cookies: again });
    assert.equal(r.status, 200);
    assert.deepEqual(
      r.headers.getSetCookie(),
      ['access_token=; Path=/; Max-Age=0; SameSite=Strict; HttpOnly; Secure', 'refresh_token=; Path=/auth/refresh; Max-Age=0; SameSite=Strict; HttpOnly; Secure'],
    );
    assert.equal(again.cookies.size, 0, 'cookies cleared');
    await within(1000, 'the logged-out token refused', async () => (await call('/profile', { bearer: second })).status === 401);
  });

  it('the admin route needs the admin role', async () => {
    const user = await signUp('bob@example.test');
    let r = await call('/admin/users', { cookies: user.browser });
    assert.equal(r.status, 403);
    assert.deepEqual(await r.json(), { error: 'insufficient_scope' });
    const root = await signUp('root@example.test');
    r = await call('/admin/users', { cookies: root.browser });
    assert.equal(r.status, 200);
    assert.ok((await r.json()).users.some((u) => u.email === 'bob@example.test'));
    assert.equal((await call('/admin/users')).status, 401);
  });

  it('bad input gets typed errors, never a 500', async () => {
    const cases = [
      [await call('/auth/login', { method: 'POST', json: { email: 'nobody@example.test', password: 'whatever-long' } }), 401, 'invalid_credentials'],
      [await call('/auth/login', { method: 'POST', json: { email: 'alice@example.test', password: 'wrong password' } }), 401, 'invalid_credentials'],
      [await call('/auth/register', { method: 'POST', json: { email: 'x@example.test', password: 'short' } }), 400, 'invalid_request'],
      [await call('/auth/register', { method: 'POST', json: { email: 'alice@example.test', password: 'correct horse battery staple' } }), 409, 'user_exists'],
      [await call('/auth/refresh', { method: 'POST' }), 401, 'missing_refresh_token'],
      [await fetch(`${base}/auth/refresh`, { method: 'POST', headers: { cookie: 'refresh_token=garbage' } }), 401, 'invalid_refresh'],
      [await fetch(`${base}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"email":' }), 400, 'bad_json'],
      [await call('/auth/logout', { method: 'POST' }), 401, 'missing_token'],
    ];
    for (const [res, status, error] of cases) {
      assert.equal(res.status, status, error);
      assert.equal((await res.json()).error, error);
    }
  });

  it('serves the access JWKS with its Cache-Control', async () => {
    const r = await call('/.well-known/jwks.json');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('cache-control'), 'public, max-age=300');
    const { keys } = await r.json();
    assert.equal(keys.length, 1);
    assert.equal(keys[0].alg, 'ES256');
    assert.ok(!('d' in keys[0]));
  });
});
