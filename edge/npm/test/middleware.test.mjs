// The Express/Connect middleware in a real Express server on 127.0.0.1: every answer
// class with its status, headers and body, Bearer and cookie tokens, roles/scopes.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { NOW, keyPair, pkg, sign } from './helpers.mjs';

const { Verifier, Denylist, RemoteDenylist, authenticate } = pkg;

const ISS = 'https://issuer.test';
let server, url, es, denylist, good;

async function get(path, headers = {}) {
  const res = await fetch(url + path, { headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

before(async () => {
  es = await keyPair('ES256', 'k1');
  const verifier = new Verifier({ jwks: { keys: [es.jwk] }, issuers: [ISS] });
  denylist = new Denylist();
  const now = () => NOW;
  const stale = new RemoteDenylist({ url: 'http://127.0.0.1:9', publicJwk: es.jwk, fetch: () => Promise.reject(new Error('never called')) });

  const app = express();
  app.get('/profile', authenticate({ verifier, denylist, now }), (req, res) => res.json({ user: req.user, via: req.auth.token.slice(0, 5) }));
  app.get('/sync', authenticate({ verifier, denylist, now, sync: true }), (req, res) => res.json({ sub: req.user.sub }));
  app.get('/admin', authenticate({ verifier, denylist, now, rolesAny: ['admin'] }), (req, res) => res.json({ ok: true }));
  app.get('/write', authenticate({ verifier, denylist, now, scopesAll: ['items:read', 'items:write'] }), (req, res) =>
    res.json({ ok: true }),
  );
  app.get('/session-cookie', authenticate({ verifier, denylist, now, cookieName: 'sess', property: 'claims' }), (req, res) =>
    res.json({ sub: req.claims.sub }),
  );
  app.get('/stale', authenticate({ verifier, denylist: stale, now, retryAfterSeconds: 7 }), (req, res) => res.json({ ok: true }));
  server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  url = `http://127.0.0.1:${server.address().port}`;
  good = await sign(es, { iss: ISS, sub: 'u1', jti: 'j1', sid: 's1', exp: NOW + 60, roles: ['user'], scope: 'items:read' });
});

after(() => new Promise((r) => server.close(r)));

describe('authenticate() in Express', () => {
  it('no token: 401 with the realm challenge', async () => {
    for (const headers of [{}, { authorization: 'Basic dXNlcjpwdw==' }, { authorization: 'Bearer ' }, { cookie: 'other=1' }]) {
      const r = await get('/profile', headers);
      assert.equal(r.status, 401);
      assert.equal(r.headers.get('www-authenticate'), 'Bearer realm="tollgate"');
      assert.deepEqual(r.body, { error: 'missing_token' });
    }
  });

  it('a valid Bearer token passes, with the claims on req.user', async () => {
    const r = await get('/profile', { authorization: `Bearer ${good}` });
    assert.equal(r.status, 200);
    assert.equal(r.body.user.sub, 'u1');
    assert.equal(r.body.via, good.slice(0, 5));
    const s = await get('/sync', { authorization: `bearer   ${good}` });
    assert.deepEqual([s.status, s.body], [200, { sub: 'u1' }]);
  });

  it('the access_token cookie is used when there is no Bearer header', async () => {
    const r = await get('/profile', { cookie: `theme=dark; access_token=${good}; x=y` });
    assert.equal(r.status, 200);
    assert.equal(r.body.user.sub, 'u1');
    const basicThenCookie = await get('/profile', { authorization: 'Basic Zm9vOmJhcg==', cookie: `access_token=${good}` });
    assert.equal(basicThenCookie.status, 200);
    const named = await get('/session-cookie', { cookie: `sess="${good}"` });
    assert.deepEqual([named.status, named.body], [200, { sub: 'u1' }]);
  });

  it('Bearer wins over the cookie', async () => {
    const r = await get('/profile', { authorization: 'Bearer not.a.token', cookie: `access_token=${good}` });
    assert.equal(r.status, 401);
    assert.equal(r.body.reason, 'malformed');
  });

  it('an expired token: 401 invalid_token with code TOKEN_EXPIRED', async () => {
    const expired = await sign(es, { iss: ISS, sub: 'u1', exp: NOW });
    const r = await get('/profile', { authorization: `Bearer ${expired}` });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer error="invalid_token", error_description="expired"');
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.deepEqual(r.body, { error: 'invalid_token', reason: 'expired', code: 'TOKEN_EXPIRED' });
  });

  it('other rejections: 401 invalid_token with the reason and no code', async () => {
    const wrongIss = await sign(es, { iss: 'https://evil.test', sub: 'u1', exp: NOW + 60 });
    const tampered = `${good.slice(0, -4)}AAAA`;
    for (const [token, reason] of [
      [wrongIss, 'invalid_issuer'],
      [tampered, 'invalid_signature'],
      ['a.b.c', 'malformed'],
    ]) {
      const r = await get('/profile', { authorization: `Bearer ${token}` });
      assert.equal(r.status, 401, reason);
      assert.equal(r.headers.get('www-authenticate'), `Bearer error="invalid_token", error_description="${reason}"`);
      assert.deepEqual(r.body, { error: 'invalid_token', reason });
    }
  });

  it('a revoked token: 401 with reason revoked', async () => {
    const t = await sign(es, { iss: ISS, sub: 'u2', sid: 'gone', exp: NOW + 60 });
    assert.equal((await get('/profile', { authorization: `Bearer ${t}` })).status, 200);
    denylist.revokeSid('gone', NOW + 60);
    const r = await get('/profile', { authorization: `Bearer ${t}` });
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, { error: 'invalid_token', reason: 'revoked' });
  });

  it('roles and scopes: 403 insufficient_scope when not met', async () => {
    const r = await get('/admin', { authorization: `Bearer ${good}` });
    assert.equal(r.status, 403);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer error="insufficient_scope"');
    assert.deepEqual(r.body, { error: 'insufficient_scope' });
    const admin = await sign(es, { iss: ISS, sub: 'a', exp: NOW + 60, role: 'admin' });
    assert.equal((await get('/admin', { authorization: `Bearer ${admin}` })).status, 200);
    assert.equal((await get('/write', { authorization: `Bearer ${good}` })).status, 403);
    const writer = await sign(es, { iss: ISS, sub: 'w', exp: NOW + 60, scope: 'items:write items:read' });
    assert.equal((await get('/write', { authorization: `Bearer ${writer}` })).status, 200);
  });

  it('a stale denylist replica under fail-closed: 503 with Retry-After', async () => {
    const r = await get('/stale', { authorization: `Bearer ${good}` });
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '7');
    assert.deepEqual(r.body, { error: 'denylist_unavailable' });
  });
});
