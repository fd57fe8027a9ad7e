// End to end across the login service (tollgate-auth, real binary, SQLite), the
// revocation service (real binary) and the Worker in real workerd (`wrangler dev`):
// every step of the README's demo, CSRF rejection, rate limiting (and the
// X-Forwarded-For spoofing attempt), role rules at the edge and at the service, and
// concurrent refreshes from two clients converging. Everything goes through the
// Worker, as a browser or API client would.
//
// Run through auth/e2e.sh (it builds everything and sets the paths). Tests run in file
// order against one stack; every wait polls a condition with a deadline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';

import { stopAll, waitFor } from './lib/procs.mjs';
import { startRevocation, startWorker, need, logDir } from './lib/stack.mjs';

let svc;
let auth;
const ORIGIN_SECRET = `e2e-auth-origin-secret-${randomUUID()}`;
let worker;
const PASSWORD = 'correct horse battery staple';

/** Starts tollgate-auth on 127.0.0.1:0 and reads its address from stdout. */
async function startAuth(svc) {
  const bin = need('TOLLGATE_AUTH_BIN');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'tollgate-e2e-auth-'));
  const env = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TOLLGATE_'))),
    TOLLGATE_AUTH_REVOCATION_URL: svc.url,
    TOLLGATE_AUTH_REVOCATION_TOKEN: svc.writeKey,
    TOLLGATE_AUTH_LOG: 'warn',
    // Protected routes need the Worker's X-Tollgate-Assertion (docs/origin-assertion.md).
    TOLLGATE_AUTH_EDGE_ASSERTION_SECRETS: JSON.stringify([ORIGIN_SECRET]),
    // Every request reaches the service from the Worker's address: room for this
    // suite's registrations, and a per-IP login limit the last test reaches for sure.
    TOLLGATE_AUTH_RATE_REGISTER_IP: '{ burst = 100, interval_ms = 1000 }',
    TOLLGATE_AUTH_RATE_LOGIN_IP: '{ burst = 30, interval_ms = 60000 }',
  };
  const logFile = path.join(logDir, 'auth.log');
  const fd = openSync(logFile, 'a');
  const child = spawn(bin, ['serve', '--data-dir', dataDir, '--listen', '127.0.0.1:0'], {
    env,
    stdio: ['ignore', 'pipe', fd],
    detached: true,
  });
  closeSync(fd);
  if (process.env.TOLLGATE_E2E_PIDFILE) appendFileSync(process.env.TOLLGATE_E2E_PIDFILE, `${child.pid}\n`);
  let out = '';
  child.stdout.on('data', (c) => { out += c; });
  const url = await waitFor('tollgate-auth to listen', () => {
    const m = out.match(/tollgate-auth listening on (\S+)/);
    return m ? `http://${m[1]}` : null;
  }, { timeoutMs: 30000 });
  const cli = (...args) =>
    execFileSync(bin, [...args, '--data-dir', dataDir], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30000 });
  return { url, dataDir, child, cli, stop: () => { try { process.kill(-child.pid, 'SIGTERM'); } catch { /* gone */ } } };
}

function call(p, { method = 'GET', token, cookie, headers = {}, json } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (cookie) h.cookie = cookie;
  if (json !== undefined) h['content-type'] = 'application/json';
  return fetch(`${worker.url}${p}`, { method, headers: h, body: json === undefined ? undefined : JSON.stringify(json) });
}

async function body(res) {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    return { text };
  }
}

const email = (tag) => `${tag}.${randomUUID().slice(0, 8)}@example.test`;

async function register(e) {
  const r = await call('/auth/register', { method: 'POST', json: { email: e, password: PASSWORD } });
  const b = await body(r);
  assert.equal(r.status, 201, JSON.stringify(b));
  return b.id;
}

async function login(e, extra = {}) {
  const r = await call('/auth/login', { method: 'POST', json: { email: e, password: PASSWORD, ...extra } });
  const b = await body(r);
  assert.equal(r.status, 200, JSON.stringify(b));
  return { res: r, body: b };
}

/** Polls the profile through the Worker until it answers `status`; returns the elapsed ms. */
async function untilStatus(token, status, timeoutMs = 5000) {
  const t0 = performance.now();
  await waitFor(`profile ${status}`, async () => (await call('/profile', { token })).status === status, { timeoutMs, intervalMs: 5 });
  return performance.now() - t0;
}

before(async () => {
  svc = await startRevocation();
  auth = await startAuth(svc);
  const routes = JSON.stringify([
    // Logout needs the verified token (on `auth: none` routes the Worker forwards no
    // credentials); the rest of /auth/* is open.
    { path: '/auth/logout', auth: 'required' },
    { path: '/auth/logout-all', auth: 'required' },
    { path: '/auth/*', auth: 'none' },
    { path: '/.well-known/*', auth: 'none' },
    { path: '/healthz', auth: 'none' },
    { path: '/admin/*', roles_any: ['admin'] },
    { path: '/*', auth: 'required' },
  ]);
  worker = await startWorker({
    TOLLGATE_ORIGIN: auth.url,
    TOLLGATE_JWKS_URLS: JSON.stringify([`${auth.url}/.well-known/jwks.json`]),
    TOLLGATE_JWKS: '',
    TOLLGATE_ISSUERS: JSON.stringify(['https://issuer.test']),
    TOLLGATE_AUDIENCES: JSON.stringify(['https://api.test']),
    TOLLGATE_REVOCATION_URL: svc.url,
    TOLLGATE_REVOCATION_TOKEN: svc.readKey,
    TOLLGATE_DENYLIST_KEY: await svc.publicJwk(),
    TOLLGATE_ROUTES: routes,
    TOLLGATE_ORIGIN_SECRET: ORIGIN_SECRET,
  }, { logName: 'auth' });
  await waitFor('the Worker to reach the login service', async () => (await call('/healthz')).status === 200, { timeoutMs: 30000 });
});

after(async () => {
  auth?.stop();
  await stopAll();
});

test('the demo story: register → login → profile → refresh → logout → revoked at the edge', async () => {
  const e = email('alice');
  const id = await register(e);
  const { body: s } = await login(e);
  let r = await call('/profile', { token: s.access_token });
  assert.equal(r.status, 200);
  const p = await r.json();
  assert.equal(p.user.email, e);
  assert.equal(p.user.id, id);
  // Refresh: a new pair; the new access token works at the edge.
  r = await call('/auth/refresh', { method: 'POST', json: { refresh_token: s.refresh_token } });
  assert.equal(r.status, 200);
  const s2 = await r.json();
  assert.notEqual(s2.access_token, s.access_token);
  assert.equal((await call('/profile', { token: s2.access_token })).status, 200);
  // Logout: acknowledged by the revocation service, then the edge refuses the token.
  const t0 = performance.now();
  r = await call('/auth/logout', { method: 'POST', token: s2.access_token });
  assert.equal(r.status, 200);
  const tAck = performance.now();
  await untilStatus(s2.access_token, 401);
  const ms = performance.now() - tAck;
  r = await call('/profile', { token: s2.access_token });
  assert.equal(r.status, 401);
  assert.deepEqual(await r.json(), { error: 'invalid_token', reason: 'revoked' });
  console.log(`logout → edge rejection: ${ms.toFixed(1)} ms (logout call ${(tAck - t0).toFixed(1)} ms)`);
  assert.ok(ms < 1000, `logout → edge rejection took ${ms} ms (logout call ${tAck - t0} ms)`);
  // The earlier access token of the session is refused too, and the refresh token is dead.
  assert.equal((await call('/profile', { token: s.access_token })).status, 401);
  r = await call('/auth/refresh', { method: 'POST', json: { refresh_token: s2.refresh_token } });
  assert.equal(r.status, 401);
  assert.equal((await r.json()).error, 'revoked');
});

test('a stolen refresh token replayed: reuse detected, that session dies at the edge, others live', async () => {
  const e = email('bob');
  await register(e);
  const other = (await login(e)).body;
  const { body: s0 } = await login(e);
  const s1 = await (await call('/auth/refresh', { method: 'POST', json: { refresh_token: s0.refresh_token } })).json();
  const s2 = await (await call('/auth/refresh', { method: 'POST', json: { refresh_token: s1.refresh_token } })).json();
  assert.equal((await call('/profile', { token: s2.access_token })).status, 200);
  // The thief replays the first refresh token (two rotations old).
  const r = await call('/auth/refresh', { method: 'POST', json: { refresh_token: s0.refresh_token } });
  assert.equal(r.status, 401);
  assert.equal((await r.json()).error, 'reuse_detected');
  await untilStatus(s2.access_token, 401);
  const rej = await call('/profile', { token: s2.access_token });
  assert.equal((await rej.json()).reason, 'revoked');
  // The legitimate holder's next refresh fails too (the session is gone)...
  const again = await call('/auth/refresh', { method: 'POST', json: { refresh_token: s2.refresh_token } });
  assert.equal((await again.json()).error, 'reuse_detected');
  // ...and the user's other session is untouched.
  assert.equal((await call('/profile', { token: other.access_token })).status, 200);
});

test('two clients refreshing at once converge on one pair, and nobody is logged out', async () => {
  const e = email('tabs');
  await register(e);
  const { body: s } = await login(e);
  const [a, b] = await Promise.all([
    call('/auth/refresh', { method: 'POST', json: { refresh_token: s.refresh_token } }),
    call('/auth/refresh', { method: 'POST', json: { refresh_token: s.refresh_token } }),
  ]);
  assert.equal(a.status, 200);
  assert.equal(b.status, 200);
  const [pa, pb] = [await a.json(), await b.json()];
  assert.equal(pa.refresh_token, pb.refresh_token);
  assert.equal(pa.access_token, pb.access_token);
  assert.equal((await call('/profile', { token: pa.access_token })).status, 200);
  const next = await call('/auth/refresh', { method: 'POST', json: { refresh_token: pa.refresh_token } });
  assert.equal(next.status, 200);
});

test('cookies through the edge, and CSRF rejection', async () => {
  const e = email('carol');
  await register(e);
  const { res, body: s } = await login(e, { cookies: true });
  assert.equal(s.access_token, undefined);
  const set = res.headers.getSetCookie();
  const cookie = (name) => set.find((c) => c.startsWith(`${name}=`)).split(';')[0].slice(name.length + 1);
  assert.ok(set.find((c) => c.startsWith('refresh_token=')).includes('Path=/auth/refresh'));
  assert.ok(set.find((c) => c.startsWith('access_token=')).includes('HttpOnly'));
  const [at, rt, csrf] = ['access_token', 'refresh_token', 'csrf_token'].map(cookie);
  // The Worker reads the access_token cookie.
  assert.equal((await call('/profile', { cookie: `access_token=${at}` })).status, 200);
  // A cross-site refresh with the cookie but without the CSRF header: 403, no cookies.
  let r = await call('/auth/refresh', { method: 'POST', cookie: `refresh_token=${rt}; csrf_token=${csrf}`, headers: { origin: 'https://evil.test' } });
  assert.equal(r.status, 403);
  assert.equal((await r.json()).error, 'csrf_failed');
  assert.deepEqual(r.headers.getSetCookie(), []);
  r = await call('/auth/refresh', { method: 'POST', cookie: `refresh_token=${rt}; csrf_token=${csrf}` });
  assert.equal(r.status, 403);
  // With the header: rotated, in cookies.
  r = await call('/auth/refresh', { method: 'POST', cookie: `refresh_token=${rt}; csrf_token=${csrf}`, headers: { 'x-csrf-token': csrf, 'sec-fetch-site': 'same-origin' } });
  assert.equal(r.status, 200);
  assert.ok(r.headers.getSetCookie().some((c) => c.startsWith('refresh_token=') && !c.startsWith(`refresh_token=${rt};`)));
  // Cookie logout without the header is refused; with it, cookies are cleared.
  r = await call('/auth/logout', { method: 'POST', cookie: `access_token=${at}; csrf_token=${csrf}` });
  assert.equal(r.status, 403);
  r = await call('/auth/logout', { method: 'POST', cookie: `access_token=${at}; csrf_token=${csrf}`, headers: { 'x-csrf-token': csrf } });
  assert.equal(r.status, 200);
  assert.ok(r.headers.getSetCookie().every((c) => c.includes('Max-Age=0')));
  await untilStatus(at, 401);
});

test('role rules: /admin/* at the edge and again at the service; a role change revokes old tokens', async () => {
  const e = email('dave');
  const id = await register(e);
  const { body: s } = await login(e);
  let r = await call('/admin/users', { token: s.access_token });
  assert.equal(r.status, 403, 'the edge refuses a token without the admin role');
  assert.equal((await r.json()).error, 'insufficient_scope');
  auth.cli('users', 'set-roles', '--email', e, '--roles', 'user,admin');
  // The old token (roles ["user"]) is revoked at the edge by the role change.
  await untilStatus(s.access_token, 401);
  // The session lives: its next refresh carries the admin role (the service issues it
  // from the cutoff second on), and the edge lets it in.
  r = await call('/auth/refresh', { method: 'POST', json: { refresh_token: s.refresh_token } });
  assert.equal(r.status, 200);
  const s2 = await r.json();
  r = await call('/admin/users', { token: s2.access_token });
  assert.equal(r.status, 200);
  assert.ok((await r.json()).users.some((u) => u.id === id));
});

test('rate limiting through the edge: account delay with Retry-After; spoofed X-Forwarded-For does not escape the IP limit', async () => {
  const e = email('eve');
  await register(e);
  const guess = (who, xff) =>
    call('/auth/login', { method: 'POST', json: { email: who, password: 'wrong password!' }, headers: xff ? { 'x-forwarded-for': xff } : {} });
  for (let i = 0; i < 5; i++) assert.equal((await guess(e)).status, 401);
  let r = await guess(e);
  assert.equal(r.status, 429);
  assert.equal(r.headers.get('retry-after'), '20');
  assert.equal((await r.json()).scope, 'account');
  // The IP bucket: a new spoofed X-Forwarded-For on every try does not help.
  let limited = null;
  for (let i = 0; i < 40 && !limited; i++) {
    r = await guess(email('spray'), `203.0.113.${i}`);
    if (r.status === 429) limited = await r.json();
    else assert.equal(r.status, 401);
  }
  assert.ok(limited, 'the per-IP limit was reached');
  assert.equal(limited.scope, 'ip');
  r = await guess(email('spray'), '198.51.100.99');
  assert.equal(r.status, 429);
});
