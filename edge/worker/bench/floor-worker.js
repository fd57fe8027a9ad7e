// The floor of scenario (c'): the least work any Worker must do to let a request with a
// new ES256 token through under the edge-to-origin contract, written directly in
// JavaScript. It is NOT a gate anyone should deploy (no issuer, audience, nbf, kid, typ,
// size or denylist checks, no header stripping, no error bodies): it exists so the
// benchmark can show, in the same run, what this runtime and machine charge for "verify
// one signature with WebCrypto, assert to the origin, forward" on their own, next to
// Tollgate and the Express peer.
//
// Per request: read the bearer token, split it, decode and parse the header and the
// payload, check `alg` and `exp`, verify the signature with `crypto.subtle.verify` (the
// key imported once per isolate), then make the X-Tollgate-Assertion the origin
// contract asks every gate for (docs/origin-assertion.md: HS256 over the method, the
// target, the identity, a request id and the digest of the X-Tollgate-* headers, with
// `crypto.subtle.digest` and `crypto.subtle.sign`, the HMAC key imported once), and
// forward to the origin with the identity headers. Bindings: FLOOR_JWK (the public P-256
// JWK), TOLLGATE_ORIGIN (origin base URL) and TOLLGATE_ORIGIN_SECRET, as Tollgate's.
const ES256 = { name: 'ECDSA', hash: 'SHA-256' };
const encoder = new TextEncoder();
const ASSERTION_HEADER = b64urlText('{"alg":"HS256","typ":"tollgate-assertion+jwt","kid":"floor"}');
let key; // the CryptoKey, imported on first use
let hmacKey; // the assertion's HMAC key, imported on first use
let audience; // URL.origin of TOLLGATE_ORIGIN

function b64urlBytesToText(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function b64urlText(s) {
  return b64urlBytesToText(encoder.encode(s));
}

/** base64url → a "binary string" (one character per byte); throws on bad input. */
const b64urlBinary = (s) => atob(s.replace(/-/g, '+').replace(/_/g, '/'));

function b64urlBytes(s) {
  const bin = b64urlBinary(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const b64urlJson = (s) => JSON.parse(b64urlBinary(s));

const deny = () => new Response('{"error":"invalid_token"}', { status: 401, headers: { 'content-type': 'application/json' } });

export default {
  async fetch(request, env) {
    const auth = request.headers.get('authorization');
    if (auth === null || !auth.startsWith('Bearer ')) return deny();
    const parts = auth.slice(7).split('.');
    if (parts.length !== 3) return deny();
    let header;
    let claims;
    try {
      header = b64urlJson(parts[0]);
      claims = b64urlJson(parts[1]);
    } catch {
      return deny();
    }
    if (header.alg !== 'ES256' || typeof claims.exp !== 'number' || claims.exp <= Date.now() / 1000) return deny();
    key ??= await crypto.subtle.importKey('jwk', JSON.parse(env.FLOOR_JWK), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    let signature;
    try {
      signature = b64urlBytes(parts[2]);
    } catch {
      return deny();
    }
    if (!(await crypto.subtle.verify(ES256, key, signature, encoder.encode(`${parts[0]}.${parts[1]}`)))) return deny();
    const url = request.url;
    const target = url.slice(url.indexOf('/', url.indexOf('//') + 2));
    const sub = String(claims.sub);
    const requestId = b64urlBytesToText(crypto.getRandomValues(new Uint8Array(16)));
    const canon = `x-tollgate-claims:${parts[1]}\nx-tollgate-request-id:${requestId}\nx-tollgate-sub:${sub}\n`;
    const hdr = b64urlBytesToText(new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(canon))));
    const now = Math.floor(Date.now() / 1000);
    audience ??= new URL(env.TOLLGATE_ORIGIN).origin;
    const payload = { iss: 'tollgate-edge', aud: audience, iat: now, exp: now + 60, jti: requestId, method: request.method, target, auth: 'verified', sub, hdr };
    const input = `${ASSERTION_HEADER}.${b64urlText(JSON.stringify(payload))}`;
    hmacKey ??= await crypto.subtle.importKey('raw', encoder.encode(env.TOLLGATE_ORIGIN_SECRET), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    const mac = new Uint8Array(await crypto.subtle.sign('HMAC', hmacKey, encoder.encode(input)));
    const headers = new Headers(request.headers);
    headers.delete('host');
    headers.set('x-tollgate-sub', sub);
    headers.set('x-tollgate-claims', parts[1]);
    headers.set('x-tollgate-request-id', requestId);
    headers.set('x-tollgate-assertion', `${input}.${b64urlBytesToText(mac)}`);
    return fetch(env.TOLLGATE_ORIGIN + target, { headers });
  },
};
