// The origin half of the package, run inside another runtime (Deno, workerd) by the
// tests there: issue both token kinds for ES256 and RS256 on that runtime's WebCrypto,
// verify them back through the package (WebCrypto and pure-Rust paths), make the
// cookies, and check an HS256 X-Tollgate-Assertion made here from the contract with
// the runtime's own HMAC. Plain web APIs only. Returns JSON; the Node side verifies the
// returned tokens with jose and judges the rest.

const enc = new TextEncoder();
const b64 = (bytes) => {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
};
const b64json = (o) => b64(enc.encode(JSON.stringify(o)));

async function sha256(text) {
  return b64(await crypto.subtle.digest('SHA-256', enc.encode(text)));
}

export async function originSmoke(api) {
  const out = { tokens: {} };
  for (const alg of ['ES256', 'RS256']) {
    const issuer = await api.Issuer.generate({ issuer: 'https://auth.example', audience: 'https://api.example', alg });
    const pair = await issuer.issuePair({ sub: 'alice', sid: 's-1', roles: ['user'], scope: 'read' });
    const v = issuer.accessVerifier();
    const viaCrypto = await v.verify(pair.access.token);
    const viaRust = v.verifySync(pair.access.token);
    const refresh = await issuer.refreshVerifier().verify(pair.refresh.token);
    const crossed = (await v.check(pair.refresh.token)).reason;
    out.tokens[alg] = {
      access: pair.access.token,
      refresh: pair.refresh.token,
      jwks: JSON.parse(issuer.jwks().body),
      refreshJwk: issuer.refreshKeys.published(issuer.now())[0].publicJwk,
      same: JSON.stringify(viaCrypto) === JSON.stringify(viaRust),
      sub: viaCrypto.sub,
      refreshSid: refresh.sid,
      crossed,
      pem: (await api.SigningKey.fromPkcs8Pem(await (await api.SigningKey.generate(alg)).exportPkcs8Pem())).alg,
    };
    if (alg === 'ES256') out.cookies = api.authCookies(pair);
  }

  const secret = 'a-secret-of-at-least-thirty-two-bytes!';
  const kid = (await sha256(`tollgate-assertion-kid:${secret}`)).slice(0, 16);
  const now = Math.floor(Date.now() / 1000);
  const hdr = await sha256('x-tollgate-sub:alice\n');
  const payload = { iss: 'tollgate-edge', aud: 'https://origin.example', iat: now, exp: now + 60, jti: 'r-1', method: 'GET', target: '/p?x=1', auth: 'verified', sub: 'alice', roles: ['admin'], hdr };
  const input = `${b64json({ alg: 'HS256', typ: 'tollgate-assertion+jwt', kid })}.${b64json(payload)}`;
  const hk = await crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const assertion = `${input}.${b64(await crypto.subtle.sign('HMAC', hk, enc.encode(input)))}`;
  const handler = api.withAssertion((req, who) => Response.json({ sub: who.sub, admin: who.hasRole('admin') }), { secrets: [secret], audience: 'https://origin.example' });
  const good = await handler(new Request('https://origin.example/p?x=1', { headers: { 'x-tollgate-sub': 'alice', 'x-tollgate-assertion': assertion } }));
  const spoofed = await handler(new Request('https://origin.example/p?x=1', { headers: { 'x-tollgate-sub': 'mallory', 'x-tollgate-assertion': assertion } }));
  const none = await handler(new Request('https://origin.example/p?x=1', { headers: { 'x-tollgate-sub': 'alice' } }));
  out.assertion = {
    good: [good.status, await good.json()],
    spoofed: [spoofed.status, await spoofed.json()],
    none: [none.status, await none.json()],
  };
  return out;
}
