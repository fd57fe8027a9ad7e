// Social login against two real local OpenID providers (oidc-provider 9, one shaped
// like Google, one like Kakao), with the real tollgate-auth and revocation service
// binaries, SQLite on disk, HTTP on 127.0.0.1. The browser is played over HTTP with a
// cookie jar; the providers' dev interactions (login, consent) are driven by form posts.
// Run through auth/social.sh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { stopAll, freePort } from '../../tests/lib/procs.mjs';
import { startRevocation } from '../../tests/lib/stack.mjs';
import { startProvider, Jar, step, authorize } from './lib/provider.mjs';
import { startAuth, metric } from './lib/auth.mjs';

let svc;
let auth;
let google;
let kakao;
const PASSWORD = 'correct horse battery staple';
const uid = () => randomUUID().slice(0, 8);

before(async () => {
  svc = await startRevocation();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  google = await startProvider({ shape: 'google', clientId: 'google-client', clientSecret: 'google-secret', redirectUris: [`${base}/auth/google/callback`] });
  kakao = await startProvider({ shape: 'kakao', clientId: 'kakao-client', clientSecret: 'kakao-secret', redirectUris: [`${base}/auth/kakao/callback`] });
  auth = await startAuth(svc, {
    port,
    providers: {
      google: { preset: 'google', issuer: google.issuer, client_id: 'google-client', client_secret: 'google-secret' },
      kakao: { preset: 'kakao', issuer: kakao.issuer, client_id: 'kakao-client', client_secret: 'kakao-secret' },
    },
  });
});

after(async () => {
  await auth?.stop();
  await google?.close();
  await kakao?.close();
  await stopAll();
});

/** Starts a login in `jar`; returns the provider URL and the attempt's state. */
async function begin(jar, provider, query = '') {
  const { res, location } = await step(jar, `${auth.url}/auth/${provider}/start${query}`);
  assert.equal(res.status, 303, await res.text());
  const state = new URL(location).searchParams.get('state');
  return { authUrl: location, state };
}

/** A whole login: start → provider (login + consent) → callback. Returns the callback's answer. */
async function socialLogin(jar, provider, account) {
  const { authUrl } = await begin(jar, provider);
  const callback = await authorize(jar, authUrl, account);
  return { callback, ...(await step(jar, callback)) };
}

async function profile(jar) {
  const res = await fetch(`${auth.url}/profile`, { headers: { cookie: jar.header(`${auth.url}/profile`) } });
  return { status: res.status, body: await res.json() };
}

async function errorOf(r) {
  const b = await r.res.json();
  return { status: r.res.status, ...b };
}

test('Google-shaped: success, a verified email makes a new account, the same identity signs in again', async () => {
  const acct = `g${uid()}`;
  google.accounts.set(acct, { email: `${acct}@gmail.test`, email_verified: true });
  const jar = new Jar();
  const r = await socialLogin(jar, 'google', acct);
  assert.equal(r.res.status, 303, JSON.stringify(await r.res.text()));
  assert.equal(new URL(r.location).pathname, '/');
  // The same cookies as a password login with "cookies": true.
  for (const name of ['access_token', 'refresh_token', 'csrf_token']) assert.ok(jar.get(name), `${name} set`);
  assert.match(jar.get('access_token').attrs, /HttpOnly/);
  assert.match(jar.get('refresh_token').attrs, /Path=\/auth\/refresh/);
  assert.ok(!jar.names().some((n) => n.startsWith('tg_oauth_')), 'the attempt cookie is cleared');
  const p = await profile(jar);
  assert.equal(p.status, 200);
  assert.equal(p.body.user.email, `${acct}@gmail.test`);
  assert.equal(p.body.user.email_verified, true);
  assert.equal(p.body.session.method, 'google');
  assert.deepEqual(p.body.user.identities.map((i) => [i.provider, i.subject]), [['google', acct]]);
  // PKCE S256 and nonce were sent; the Google shape was asked with spaces.
  const authUrl = new URL((await begin(new Jar(), 'google')).authUrl);
  assert.equal(authUrl.searchParams.get('code_challenge_method'), 'S256');
  assert.ok(authUrl.searchParams.get('nonce'));
  assert.equal(authUrl.searchParams.get('scope'), 'openid email profile');
  assert.equal(google.state.tokenAuthSeen.at(-1), 'client_secret_basic');
  // A refresh works on the social session as on any other.
  const csrf = jar.get('csrf_token').value;
  const rr = await step(jar, `${auth.url}/auth/refresh`, { method: 'POST', headers: { 'x-csrf-token': csrf } });
  assert.equal(rr.res.status, 200);
  // Again: the same account.
  const jar2 = new Jar();
  assert.equal((await socialLogin(jar2, 'google', acct)).res.status, 303);
  assert.equal((await profile(jar2)).body.user.id, p.body.user.id);
});

test('Kakao-shaped: client_secret_post, comma-separated scopes with openid, numeric sub as text, email rules', async () => {
  const id = String(3_000_000_000 + Math.floor(Math.random() * 1e9));
  kakao.accounts.set(id, { email: `k${id}@kakao.test`, email_verified: true });
  const jar = new Jar();
  const r = await socialLogin(jar, 'kakao', id);
  assert.equal(r.res.status, 303);
  assert.equal(kakao.state.scopesSeen.at(-1), 'openid,account_email');
  assert.equal(kakao.state.tokenAuthSeen.at(-1), 'client_secret_post');
  const p = await profile(jar);
  assert.equal(p.status, 200);
  assert.equal(p.body.user.identities[0].subject, id);
  assert.equal(typeof p.body.user.identities[0].subject, 'string');
  assert.equal(p.body.user.email, `k${id}@kakao.test`, 'the ID token carried the (verified) email');
  assert.equal(p.body.user.email_verified, true);
  // An unverified Kakao email: absent from the ID token, userinfo says unverified → not trusted.
  const id2 = String(3_000_000_000 + Math.floor(Math.random() * 1e9));
  kakao.accounts.set(id2, { email: `k${id2}@kakao.test`, email_verified: false });
  const jar2 = new Jar();
  assert.equal((await socialLogin(jar2, 'kakao', id2)).res.status, 303);
  const p2 = await profile(jar2);
  assert.equal(p2.body.user.email_verified, false);
  assert.equal(p2.body.user.identities[0].email_verified, false);
  // That address is not owned: someone can still register it with a password.
  const reg = await fetch(`${auth.url}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: `k${id2}@kakao.test`, password: PASSWORD }) });
  assert.equal(reg.status, 201);
});

test('wrong state: an unknown state, and a state without its cookie, are refused', async () => {
  const acct = `s${uid()}`;
  const jar = new Jar();
  const { authUrl } = await begin(jar, 'google');
  const callback = new URL(await authorize(jar, authUrl, acct));
  const forged = new URL(callback);
  forged.searchParams.set('state', 'AAAAAAAAAAAAAAAAAAAAAA');
  let e = await errorOf(await step(jar, forged.toString()));
  assert.equal(e.status, 400);
  assert.equal(e.error, 'invalid_state');
  // The right state from another browser (no attempt cookie there).
  e = await errorOf(await step(new Jar(), callback.toString()));
  assert.equal(e.error, 'invalid_state');
  // Garbage.
  e = await errorOf(await step(jar, `${auth.url}/auth/google/callback?state=x;y&code=1`));
  assert.equal(e.error, 'invalid_state');
  // A browser gets the page with the error instead of JSON.
  const html = await step(new Jar(), callback.toString(), { headers: { accept: 'text/html' } });
  assert.equal(html.res.status, 303);
  assert.equal(new URL(html.location).searchParams.get('error'), 'invalid_state');
  // The genuine callback still completes.
  assert.equal((await step(jar, callback.toString())).res.status, 303);
});

test('a replayed code: the same callback again, and the code in a fresh attempt, are refused', async () => {
  const acct = `r${uid()}`;
  const jar = new Jar();
  const { authUrl } = await begin(jar, 'google');
  const callback = await authorize(jar, authUrl, acct);
  const cookieBefore = jar.header(callback);
  assert.equal((await step(jar, callback)).res.status, 303);
  // Replay with the attempt cookie as it was (an attacker holding both).
  const replay = await fetch(callback, { headers: { cookie: cookieBefore }, redirect: 'manual' });
  assert.equal(replay.status, 400);
  assert.equal((await replay.json()).error, 'state_used');
  // The stolen code injected into the attacker's own attempt: PKCE and single use stop it.
  const thief = new Jar();
  const { state } = await begin(thief, 'google');
  const injected = new URL(callback);
  injected.searchParams.set('state', state);
  const e = await errorOf(await step(thief, injected.toString()));
  assert.equal(e.status, 400);
  assert.equal(e.error, 'code_exchange_failed');
});

test('wrong nonce, wrong iss (response and ID token), wrong aud and azp are refused', async () => {
  const cases = [
    ['nonce', (c) => ({ ...c, nonce: 'not-the-attempts' }), 'nonce'],
    ['iss', (c) => ({ ...c, iss: 'https://accounts.google.com.evil.test' }), 'invalid_issuer'],
    ['aud', (c) => ({ ...c, aud: 'another-client' }), 'invalid_audience'],
    ['azp', (c) => ({ ...c, aud: ['google-client', 'other'], azp: 'other' }), 'azp'],
    ['azp missing with two audiences', (c) => { const { azp, ...rest } = c; return { ...rest, aud: ['google-client', 'other'] }; }, 'azp'],
    ['expired', (c) => ({ ...c, iat: c.iat - 7200, exp: c.iat - 3600 }), 'expired'],
    ['iat in the future', (c) => ({ ...c, iat: c.iat + 3600, exp: c.exp + 3600 }), 'iat'],
  ];
  for (const [what, fn, reason] of cases) {
    const jar = new Jar();
    const { authUrl } = await begin(jar, 'google');
    const callback = await authorize(jar, authUrl, `t${uid()}`);
    google.tamperNext(fn);
    const e = await errorOf(await step(jar, callback));
    assert.equal(e.status, 401, what);
    assert.equal(e.error, 'invalid_id_token', what);
    assert.equal(e.reason, reason, what);
    assert.ok(!jar.get('access_token'), `${what}: no session`);
  }
  // RFC 9207: the authorization response's iss is not the provider's.
  const jar = new Jar();
  const { authUrl } = await begin(jar, 'google');
  const callback = new URL(await authorize(jar, authUrl, `i${uid()}`));
  assert.equal(callback.searchParams.get('iss'), google.issuer, 'the provider sends iss');
  const wrong = new URL(callback);
  wrong.searchParams.set('iss', kakao.issuer);
  assert.equal((await errorOf(await step(jar, wrong.toString()))).error, 'issuer_mismatch');
  // A refused callback ends its attempt: the next one is a new attempt with no `iss`.
  const jar2 = new Jar();
  const second = await begin(jar2, 'google');
  const missing = new URL(await authorize(jar2, second.authUrl, `m${uid()}`));
  missing.searchParams.delete('iss');
  assert.equal((await errorOf(await step(jar2, missing.toString()))).error, 'issuer_mismatch');
  assert.ok(!jar2.get('access_token'));
});

test('an unknown kid: the JWKS is refetched once, then the token is refused; a burst refetches no more', async () => {
  // Warm the cache.
  assert.equal((await socialLogin(new Jar(), 'kakao', String(4_000_000_000 + Math.floor(Math.random() * 1e8)))).res.status, 303);
  const before = kakao.state.jwksFetches;
  const attempt = async () => {
    const jar = new Jar();
    const { authUrl } = await begin(jar, 'kakao');
    const callback = await authorize(jar, authUrl, String(5_000_000_000 + Math.floor(Math.random() * 1e8)));
    kakao.tamperNext((c) => c, { rogue: true });
    return errorOf(await step(jar, callback));
  };
  const e = await attempt();
  assert.equal(e.status, 401);
  assert.equal(e.error, 'invalid_id_token');
  assert.equal(e.reason, 'unknown_key');
  assert.equal(kakao.state.jwksFetches - before, 1, 'one refetch');
  assert.equal(await metric(auth.url, 'tollgate_auth_social_jwks_fetches_total', { provider: 'kakao' }) >= 2, true);
  for (let i = 0; i < 3; i += 1) assert.equal((await attempt()).reason, 'unknown_key');
  assert.equal(kakao.state.jwksFetches - before, 1, 'no more refetches within the minute');
  // Genuine tokens still verify from the cache.
  assert.equal((await socialLogin(new Jar(), 'kakao', String(6_000_000_000 + Math.floor(Math.random() * 1e8)))).res.status, 303);
});

test('two logins in flight in two tabs of one browser: both complete', async () => {
  const jar = new Jar();
  const a = await begin(jar, 'google');
  const b = await begin(jar, 'kakao');
  const c = await begin(jar, 'google');
  assert.equal(jar.names().filter((n) => n.startsWith('tg_oauth_')).length, 3, 'one cookie per attempt');
  const cbB = await authorize(jar, b.authUrl, String(7_000_000_000 + Math.floor(Math.random() * 1e8)));
  const cbA = await authorize(jar, a.authUrl, `a${uid()}`);
  const cbC = await authorize(jar, c.authUrl, `c${uid()}`);
  // Finished out of order.
  const rC = await step(jar, cbC);
  const rB = await step(jar, cbB);
  const rA = await step(jar, cbA);
  for (const r of [rA, rB, rC]) assert.equal(r.res.status, 303, await r.res.text());
  assert.equal((await profile(jar)).status, 200);
});

test('pre-account hijack: an unverified local account with the victim\'s email never receives the victim\'s social login', async () => {
  const victim = `v${uid()}`;
  const email = `${victim}@gmail.test`;
  // The attacker registers the victim's address first (it stays unverified).
  const reg = await fetch(`${auth.url}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: PASSWORD }) });
  assert.equal(reg.status, 201);
  const attackerId = (await reg.json()).id;
  google.accounts.set(victim, { email, email_verified: true });
  const jar = new Jar();
  const r = await socialLogin(jar, 'google', victim);
  assert.equal(r.res.status, 303);
  assert.equal(new URL(r.location).searchParams.get('link'), null, 'no link offered');
  const p = await profile(jar);
  assert.notEqual(p.body.user.id, attackerId, 'a new account, not the attacker\'s');
  // The attacker's password login reaches only the attacker's account, with no identity.
  const login = await fetch(`${auth.url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: PASSWORD }) });
  const s = await login.json();
  assert.equal(s.user.id, attackerId);
  const ap = await (await fetch(`${auth.url}/profile`, { headers: { authorization: `Bearer ${s.access_token}` } })).json();
  assert.deepEqual(ap.user.identities, []);
});

test('linking: verified email on both sides AND the local password; unlink; social-only accounts refuse passwords', async () => {
  const who = `l${uid()}`;
  const email = `${who}@gmail.test`;
  const reg = await fetch(`${auth.url}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: PASSWORD }) });
  const localId = (await reg.json()).id;
  auth.cli('users', 'verify-email', '--email', email);
  google.accounts.set(who, { email, email_verified: true });
  const jar = new Jar();
  const r = await socialLogin(jar, 'google', who);
  assert.equal(r.res.status, 303);
  assert.equal(new URL(r.location).searchParams.get('link'), 'google');
  assert.ok(!jar.get('access_token'), 'not signed in before the password');
  const pending = await step(jar, `${auth.url}/auth/link`);
  assert.deepEqual(await pending.res.json(), { provider: 'google', email });
  const csrf = jar.get('csrf_token').value;
  const confirm = (password, headers = {}) => fetch(`${auth.url}/auth/link`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf, cookie: jar.header(`${auth.url}/auth/link`), ...headers },
    body: JSON.stringify({ password }),
  });
  let res = await confirm('wrong password entirely');
  assert.equal(res.status, 401);
  assert.equal((await res.json()).error, 'invalid_credentials');
  res = await confirm(PASSWORD, { 'x-csrf-token': 'forged' });
  assert.equal(res.status, 403);
  res = await confirm(PASSWORD);
  assert.equal(res.status, 200);
  jar.store(res, `${auth.url}/auth/link`);
  const linked = await res.json();
  assert.equal(linked.user.id, localId);
  const p = await profile(jar);
  assert.equal(p.body.user.id, localId);
  assert.deepEqual(p.body.user.identities.map((i) => i.provider), ['google']);
  // The next Google login goes straight in.
  const jar2 = new Jar();
  const again = await socialLogin(jar2, 'google', who);
  assert.equal(new URL(again.location).pathname, '/');
  assert.equal((await profile(jar2)).body.user.id, localId);
  // List, then unlink (the account keeps its password).
  const list = await fetch(`${auth.url}/account/identities`, { headers: { cookie: jar.header(`${auth.url}/account/identities`) } });
  assert.equal((await list.json()).identities.length, 1);
  const del = await fetch(`${auth.url}/account/identities/google/${who}`, {
    method: 'DELETE', headers: { cookie: jar.header(`${auth.url}/account/identities`), 'x-csrf-token': jar.get('csrf_token').value },
  });
  assert.equal(del.status, 200, await del.text());
  assert.equal((await profile(jar)).body.user.identities.length, 0);
  // A social-only account: its identity cannot be unlinked, and a password never works.
  const only = `o${uid()}`;
  google.accounts.set(only, { email: `${only}@gmail.test`, email_verified: true });
  const j3 = new Jar();
  await socialLogin(j3, 'google', only);
  const last = await fetch(`${auth.url}/account/identities/google/${only}`, {
    method: 'DELETE', headers: { cookie: j3.header(`${auth.url}/account/identities`), 'x-csrf-token': j3.get('csrf_token').value },
  });
  assert.equal(last.status, 409);
  assert.equal((await last.json()).error, 'last_sign_in_method');
  const pw = await fetch(`${auth.url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: `${only}@gmail.test`, password: PASSWORD }) });
  assert.equal(pw.status, 401);
  assert.equal((await pw.json()).error, 'invalid_credentials');
});

test('unknown provider and provider errors are typed', async () => {
  let r = await fetch(`${auth.url}/auth/github/start`, { redirect: 'manual' });
  assert.equal(r.status, 404);
  assert.equal((await r.json()).error, 'unknown_provider');
  const jar = new Jar();
  const { state } = await begin(jar, 'google');
  r = await step(jar, `${auth.url}/auth/google/callback?state=${state}&error=access_denied&iss=${encodeURIComponent(google.issuer)}`);
  const e = await errorOf(r);
  assert.equal(e.error, 'provider_error');
  assert.equal(e.provider_error, 'access_denied');
  const list = await (await fetch(`${auth.url}/auth/providers`)).json();
  assert.deepEqual(list.providers.map((p) => p.name), ['google', 'kakao']);
});
