// The fetch-handler wrapper (withAuth) in Node, and fetchWithRefresh against a real
// server on 127.0.0.1 that issues short-lived tokens and refreshes them.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import express from 'express';
import { once } from 'node:events';
import { NOW, keyPair, listen, pkg, sign } from './helpers.mjs';

const { Verifier, Denylist, withAuth, fetchWithRefresh, isExpired, authenticate, extractToken } = pkg;

let es, verifier;

before(async () => {
  es = await keyPair('ES256', 'k1');
  verifier = new Verifier({ jwks: { keys: [es.jwk] } });
});

describe('withAuth(handler)', () => {
  it('calls the handler only for a valid token, with auth second and the rest after', async () => {
    const denylist = new Denylist();
    const seen = [];
    const handler = withAuth(
      (request, auth, env, ctx) => {
        seen.push({ url: request.url, sub: auth.claims.sub, env, ctx });
        return Response.json({ hello: auth.claims.sub });
      },
      { verifier, denylist, now: () => NOW },
    );
    const token = await sign(es, { sub: 'u1', jti: 'j1', exp: NOW + 60 });

    const ok = await handler(new Request('http://127.0.0.1/x', { headers: { authorization: `Bearer ${token}` } }), { E: 1 }, 'ctx');
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { hello: 'u1' });
    assert.deepEqual(seen, [{ url: 'http://127.0.0.1/x', sub: 'u1', env: { E: 1 }, ctx: 'ctx' }]);

    const viaCookie = await handler(new Request('http://127.0.0.1/y', { headers: { cookie: `access_token=${token}` } }));
    assert.equal(viaCookie.status, 200);

    const none = await handler(new Request('http://127.0.0.1/z'));
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="tollgate"');

    denylist.revokeJti('j1', NOW + 60);
    const revoked = await handler(new Request('http://127.0.0.1/x', { headers: { authorization: `Bearer ${token}` } }));
    assert.equal(revoked.status, 401);
    assert.deepEqual(await revoked.json(), { error: 'invalid_token', reason: 'revoked' });

    const expired = await sign(es, { sub: 'u1', exp: NOW - 1 });
    const exp = await handler(new Request('http://127.0.0.1/x', { headers: { authorization: `Bearer ${expired}` } }));
    assert.equal(exp.headers.get('www-authenticate'), 'Bearer error="invalid_token", error_description="expired"');
    assert.equal(await isExpired(exp.clone()), true);
    assert.deepEqual(await exp.json(), { error: 'invalid_token', reason: 'expired', code: 'TOKEN_EXPIRED' });
    assert.equal(seen.length, 2, 'the handler never saw a rejected request');
  });

  it('serves real HTTP through a Node server', async () => {
    const handler = withAuth((req, auth) => new Response(`hi ${auth.claims.sub}`), { verifier, now: () => NOW });
    const srv = await listen(async (req, res) => {
      const request = new Request(`http://127.0.0.1${req.url}`, { headers: req.headers });
      const response = await handler(request);
      res.writeHead(response.status, Object.fromEntries(response.headers));
      res.end(await response.text());
    });
    try {
      const token = await sign(es, { sub: 'net', exp: NOW + 60 });
      const r = await fetch(`${srv.url}/p`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(await r.text(), 'hi net');
      const bad = await fetch(`${srv.url}/p`, { headers: { authorization: 'Bearer x.y.z' } });
      assert.equal(bad.status, 401);
    } finally {
      await srv.close();
    }
  });

  it('extractToken parses Bearer and cookies strictly', () => {
    assert.equal(extractToken('Bearer abc', null), 'abc');
    assert.equal(extractToken('BEARER  abc ', null), 'abc');
    assert.equal(extractToken('Bearer a b', 'access_token=c'), 'c');
    assert.equal(extractToken(undefined, 'access_token_x=1; access_token=t%2Ev'), 't.v');
    assert.equal(extractToken(undefined, 'a=1'), null);
    assert.equal(extractToken(undefined, 'sid=z', 'sid'), 'z');
  });
});

describe('fetchWithRefresh()', () => {
  let server, url, counts;
  let issueExpired = true;

  before(async () => {
    counts = { refresh: 0, api: 0 };
    const app = express();
    app.get('/api/me', authenticate({ verifier, now: () => NOW }), (req, res) => {
      counts.api += 1;
      res.json({ sub: req.user.sub, body: null });
    });
    app.post('/api/echo', express.text(), authenticate({ verifier, now: () => NOW }), (req, res) => res.json({ body: req.body }));
    app.post('/auth/refresh', async (req, res) => {
      counts.refresh += 1;
      const exp = issueExpired ? NOW - 5 : NOW + 300;
      res.json({ accessToken: await sign(es, { sub: 'refreshed', exp }) });
    });
    app.post('/auth/refresh-denied', (req, res) => {
      counts.refresh += 1;
      res.status(401).json({ error: 'invalid_grant' });
    });
    server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${server.address().port}`;
  });

  after(() => new Promise((r) => server.close(r)));

  function session(token) {
    const s = { token };
    s.options = (extra = {}) => ({
      refreshUrl: `${url}/auth/refresh`,
      getToken: () => s.token,
      setToken: (t) => {
        s.token = t;
      },
      ...extra,
    });
    return s;
  }

  it('refreshes once on TOKEN_EXPIRED and retries once, replaying the body', async () => {
    issueExpired = false;
    counts.refresh = 0;
    const s = session(await sign(es, { sub: 'old', exp: NOW - 1 }));
    const res = await fetchWithRefresh(`${url}/api/echo`, { method: 'POST', body: 'payload', headers: { 'content-type': 'text/plain' } }, s.options());
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { body: 'payload' });
    assert.equal(counts.refresh, 1);
    const me = await fetchWithRefresh(`${url}/api/me`, {}, s.options());
    assert.deepEqual(await me.json(), { sub: 'refreshed', body: null });
    assert.equal(counts.refresh, 1, 'a valid token is not refreshed');
  });

  it('gives up after one retry, and never refreshes other 401s', async () => {
    issueExpired = true;
    counts.refresh = 0;
    const s = session(await sign(es, { sub: 'old', exp: NOW - 1 }));
    const res = await fetchWithRefresh(`${url}/api/me`, {}, s.options());
    assert.equal(res.status, 401);
    assert.equal((await res.json()).code, 'TOKEN_EXPIRED');
    assert.equal(counts.refresh, 1);

    const bad = session('not.a.jwt');
    const r2 = await fetchWithRefresh(`${url}/api/me`, {}, bad.options());
    assert.equal(r2.status, 401);
    assert.equal((await r2.json()).reason, 'malformed');
    assert.equal(counts.refresh, 1, 'malformed tokens are not refreshed');

    const denied = session(await sign(es, { sub: 'old', exp: NOW - 1 }));
    const r3 = await fetchWithRefresh(`${url}/api/me`, {}, denied.options({ refreshUrl: `${url}/auth/refresh-denied` }));
    assert.equal(r3.status, 401, 'a failed refresh returns the original answer');
    assert.equal(counts.refresh, 2);
  });

  it('concurrent expired requests share one refresh', async () => {
    issueExpired = false;
    counts.refresh = 0;
    let calls = 0;
    const s = session(await sign(es, { sub: 'old', exp: NOW - 1 }));
    const refresh = async () => {
      calls += 1;
      const res = await fetch(`${url}/auth/refresh`, { method: 'POST' });
      return (await res.json()).accessToken;
    };
    const results = await Promise.all(
      Array.from({ length: 5 }, () => fetchWithRefresh(`${url}/api/me`, {}, { getToken: () => s.token, setToken: (t) => (s.token = t), refresh })),
    );
    assert.deepEqual(
      results.map((r) => r.status),
      [200, 200, 200, 200, 200],
    );
    assert.equal(calls, 1);
    assert.equal(counts.refresh, 1);
  });
});
