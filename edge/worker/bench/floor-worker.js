// The floor of scenario (c'): the least work any Worker must do to let a request with a
// new ES256 token through, written directly in JavaScript. It is NOT a gate anyone should
// deploy (no issuer, audience, nbf, kid, typ, size or denylist checks, no header
// stripping, no error bodies): it exists so the benchmark can show, in the same run,
// what this runtime and machine charge for "verify one signature with WebCrypto, then
// forward" on their own, next to Tollgate and the Express peer.
//
// Per request: read the bearer token, split it, decode and parse the header and the
// payload, check `alg` and `exp`, verify the signature with `crypto.subtle.verify` (the
// key imported once per isolate), and forward to the origin with the subject in a
// header. Bindings: FLOOR_JWK (the public P-256 JWK), TOLLGATE_ORIGIN (origin base URL,
// the same binding Tollgate's Worker has).
const ES256 = { name: 'ECDSA', hash: 'SHA-256' };
const encoder = new TextEncoder();
let key; // the CryptoKey, imported on first use

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
    const headers = new Headers(request.headers);
    headers.delete('host');
    headers.set('x-tollgate-sub', String(claims.sub));
    const url = request.url;
    return fetch(env.TOLLGATE_ORIGIN + url.slice(url.indexOf('/', url.indexOf('//') + 2)), { headers });
  },
};
