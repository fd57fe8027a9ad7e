// The cookie helpers: the guides' cookies exactly (the same strings the login service
// sets, auth/src/cookies.rs), their clearing, the by-name switch that drops Secure,
// and readCookie refusing an ambiguous (duplicated) cookie.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pkg } from './helpers.mjs';

const { accessTokenCookie, refreshTokenCookie, authCookies, clearAuthCookies, readCookie, Issuer } = pkg;

describe('cookie helpers', () => {
  it('produce the guides cookies from what the Issuer returned (Max-Age = remaining life)', async () => {
    const issuer = await Issuer.generate({ issuer: 'https://i', audience: 'https://a', clock: () => 1_800_000_000_000 });
    const pair = await issuer.issuePair({ sub: 'u', sid: 's' });
    const now = 1_800_000_000;
    assert.deepEqual(authCookies(pair, { now }), [
      `access_token=${pair.access.token}; Path=/; Max-Age=900; SameSite=Strict; HttpOnly; Secure`,
      `refresh_token=${pair.refresh.token}; Path=/auth/refresh; Max-Age=604800; SameSite=Strict; HttpOnly; Secure`,
    ]);
    assert.equal(accessTokenCookie(pair.access, { now: now + 100 }), `access_token=${pair.access.token}; Path=/; Max-Age=800; SameSite=Strict; HttpOnly; Secure`);
    assert.equal(accessTokenCookie(pair.access, { now: now + 5000 }).includes('Max-Age=0'), true, 'an expired token: Max-Age 0');
    assert.equal(accessTokenCookie('a.b.c', { maxAge: 60 }), 'access_token=a.b.c; Path=/; Max-Age=60; SameSite=Strict; HttpOnly; Secure');
    assert.equal(refreshTokenCookie('r.s.t', { maxAge: 600 }), 'refresh_token=r.s.t; Path=/auth/refresh; Max-Age=600; SameSite=Strict; HttpOnly; Secure');
  });

  it('clear both; Secure goes only when asked for by name', () => {
    assert.deepEqual(clearAuthCookies(), [
      'access_token=; Path=/; Max-Age=0; SameSite=Strict; HttpOnly; Secure',
      'refresh_token=; Path=/auth/refresh; Max-Age=0; SameSite=Strict; HttpOnly; Secure',
    ]);
    assert.deepEqual(clearAuthCookies({ insecureLocalhostHttp: true }), [
      'access_token=; Path=/; Max-Age=0; SameSite=Strict; HttpOnly',
      'refresh_token=; Path=/auth/refresh; Max-Age=0; SameSite=Strict; HttpOnly',
    ]);
    // Anything but `true` keeps Secure.
    for (const v of [1, 'true', 'yes', {}]) assert.match(accessTokenCookie('a.b.c', { maxAge: 1, insecureLocalhostHttp: v }), /; Secure$/);
    assert.match(accessTokenCookie('a.b.c', { maxAge: 1, secure: false }), /; Secure$/, 'no `secure: false` shorthand');
  });

  it('refuse values that would break the header, and a token string without maxAge', () => {
    for (const bad of ['a;b', 'a b', 'a,b', 'a"b', 'a\\b', 'é', 'a\r\nSet-Cookie: x=1']) {
      assert.throws(() => accessTokenCookie(bad, { maxAge: 1 }), TypeError, bad);
    }
    assert.throws(() => accessTokenCookie('a.b.c'), TypeError);
    assert.throws(() => accessTokenCookie('a.b.c', { maxAge: -1 }), TypeError);
  });

  it('readCookie: the value, null when absent, null when the name is there twice', () => {
    assert.equal(readCookie('a=1; refresh_token=r.s.t; b=2', 'refresh_token'), 'r.s.t');
    assert.equal(readCookie('a=1', 'refresh_token'), null);
    assert.equal(readCookie(undefined, 'refresh_token'), null);
    assert.equal(readCookie('refresh_token=one; refresh_token=two', 'refresh_token'), null);
  });
});
