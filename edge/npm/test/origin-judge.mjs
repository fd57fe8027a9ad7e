// Judges what origin-smoke.mjs returned from another runtime: the tokens it issued
// verify with jose (an independent implementation) under the issuer's rules.
import assert from 'node:assert/strict';
import * as jose from 'jose';

export async function judgeOriginSmoke(o) {
  for (const alg of ['ES256', 'RS256']) {
    const t = o.tokens[alg];
    assert.equal(t.same, true, `${alg}: WebCrypto and pure-Rust verification agree`);
    assert.equal(t.sub, 'alice');
    assert.equal(t.refreshSid, 's-1');
    assert.equal(t.crossed, 'invalid_type', `${alg}: a refresh token is never an access token`);
    assert.equal(t.pem, alg, `${alg}: PKCS#8 PEM round trip`);
    const a = await jose.jwtVerify(t.access, jose.createLocalJWKSet(t.jwks), { issuer: 'https://auth.example', audience: 'https://api.example', algorithms: [alg], typ: 'JWT' });
    assert.deepEqual([a.payload.sub, a.payload.sid, a.payload.roles, a.payload.scope], ['alice', 's-1', ['user'], 'read']);
    assert.equal(a.protectedHeader.kid, await jose.calculateJwkThumbprint(t.jwks.keys[0]));
    const r = await jose.jwtVerify(t.refresh, await jose.importJWK(t.refreshJwk, alg), { issuer: 'https://auth.example', audience: 'https://auth.example', typ: 'refresh+jwt' });
    assert.equal(r.payload.sid, 's-1');
  }
  assert.match(o.cookies[0], /^access_token=[\w.-]+; Path=\/; Max-Age=900; SameSite=Strict; HttpOnly; Secure$/);
  assert.match(o.cookies[1], /^refresh_token=[\w.-]+; Path=\/auth\/refresh; Max-Age=604800; SameSite=Strict; HttpOnly; Secure$/);
  assert.deepEqual(o.assertion.good, [200, { sub: 'alice', admin: true }]);
  assert.deepEqual(o.assertion.spoofed, [401, { error: 'invalid_assertion', reason: 'wrong_headers' }]);
  assert.deepEqual(o.assertion.none, [401, { error: 'invalid_assertion', reason: 'missing' }]);
}
