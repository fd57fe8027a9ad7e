// The origin's check of the Worker's `X-Tollgate-Assertion` (docs/origin-assertion.md
// is the contract; tollgate-origin's AssertionVerifier, origin/src/assertion.rs, is the
// Rust twin and answers the same way). Checks, in order, every failure a 401
// `{"error":"invalid_assertion","reason":R}`:
//
//   1. exactly one header, three canonical base64url segments, strict JSON  malformed
//      (no header at all: missing)
//   2. header exactly {alg, typ, kid}, typ tollgate-assertion+jwt            malformed
//      alg HS256/ES256 with a configured kid                                 unknown_key
//   3. HMAC-SHA256 (WebCrypto verify: constant time) or ES256                bad_signature
//   4. iss tollgate-edge; aud the configured audience                        wrong_issuer, wrong_audience
//   5. exp > now - leeway; iat <= now + leeway                               expired, not_yet_valid
//   6-8. the method, the raw request-target, the X-Tollgate-* digest         wrong_method, wrong_target, wrong_headers
//
// Only then does the handler get the identity, from the payload alone (never from the
// loose X-Tollgate-* headers).

import { decode, decodeUtf8, encodeBytes, utf8 } from './b64.js';
import { TollgateError } from './errors.js';
import { thumbprint } from './issuer.js';
import { strictJsonObject } from '../wasm/tollgate_wasm.js';

export const ASSERTION_HEADER = 'x-tollgate-assertion';
export const ASSERTION_TYP = 'tollgate-assertion+jwt';
export const ASSERTION_ISSUER = 'tollgate-edge';
export const DEFAULT_ASSERTION_LEEWAY_SECONDS = 5;
export const MAX_ASSERTION_LEEWAY_SECONDS = 300;
export const MIN_SECRET_BYTES = 32;
export const MAX_ASSERTION_BYTES = 16 * 1024;
/** The reasons of a refused assertion, in check order. */
export const ASSERTION_REASONS = Object.freeze([
  'missing',
  'malformed',
  'unknown_key',
  'bad_signature',
  'wrong_issuer',
  'wrong_audience',
  'expired',
  'not_yet_valid',
  'wrong_method',
  'wrong_target',
  'wrong_headers',
]);

const PREFIX = 'x-tollgate-';
const KID_PREFIX = 'tollgate-assertion-kid:';

function refused(reason) {
  return new TollgateError(`X-Tollgate-Assertion refused: ${reason}`, { code: 'INVALID_ASSERTION', reason });
}

function misconfigured(message) {
  return new TollgateError(message, { code: 'INVALID_OPTIONS' });
}

function subtle() {
  return globalThis.crypto.subtle;
}

/** The `kid` of an HS256 secret: the first 16 characters of base64url(SHA-256("tollgate-assertion-kid:" ‖ secret)). */
export async function hs256Kid(secret) {
  const s = secretBytes(secret);
  const input = new Uint8Array(KID_PREFIX.length + s.length);
  input.set(utf8.encode(KID_PREFIX), 0);
  input.set(s, KID_PREFIX.length);
  return encodeBytes(await subtle().digest('SHA-256', input)).slice(0, 16);
}

function secretBytes(secret) {
  if (typeof secret === 'string') return utf8.encode(secret);
  if (secret instanceof Uint8Array) return secret;
  throw misconfigured('assertion secrets are strings (their UTF-8 bytes) or Uint8Arrays');
}

/**
 * Headers as `[lower-case name, value]` pairs, one per header line when the source
 * keeps them apart (Node's rawHeaders), else one per name (fetch Headers, a plain
 * object; repeated values joined with ", ").
 */
function headerPairs(headers, rawHeaders) {
  const out = [];
  if (Array.isArray(rawHeaders)) {
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) out.push([String(rawHeaders[i]).toLowerCase(), String(rawHeaders[i + 1])]);
    return out;
  }
  if (headers && typeof headers.forEach === 'function' && typeof headers.get === 'function') {
    headers.forEach((v, k) => out.push([k.toLowerCase(), v]));
    return out;
  }
  if (headers && typeof headers === 'object') {
    for (const [k, v] of Object.entries(headers)) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const x of v) out.push([k.toLowerCase(), String(x)]);
      else out.push([k.toLowerCase(), String(v)]);
    }
  }
  return out;
}

/** base64url(SHA-256) of the X-Tollgate-* headers other than the assertion, as the contract defines it. */
export async function headerDigest(headers, rawHeaders) {
  const byName = new Map();
  for (const [k, v] of headerPairs(headers, rawHeaders)) {
    if (!k.startsWith(PREFIX) || k === ASSERTION_HEADER) continue;
    const list = byName.get(k);
    if (list) list.push(v);
    else byName.set(k, [v]);
  }
  let canon = '';
  for (const name of [...byName.keys()].sort()) canon += `${name}:${byName.get(name).join(', ')}\n`;
  return encodeBytes(await subtle().digest('SHA-256', utf8.encode(canon)));
}

function equalConstantTime(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

const CREATE = Symbol('tollgate.assertionVerifier');

/** Checks assertions with HS256 secrets and/or ES256 public keys. Make it with AssertionVerifier.create(). */
export class AssertionVerifier {
  #hs = new Map();
  #es = new Map();
  #audience;
  #leeway;
  #clock;

  constructor(token, hs, es, audience, leeway, clock) {
    if (token !== CREATE) throw new TypeError('use await AssertionVerifier.create(options)');
    this.#hs = hs;
    this.#es = es;
    this.#audience = audience;
    this.#leeway = leeway;
    this.#clock = clock;
  }

  /**
   * @param {object} options `secrets` (HS256: TOLLGATE_ORIGIN_SECRET, two during a
   *   rotation; each at least 32 bytes), `es256Keys` (the Worker's public JWKs),
   *   `audience` (TOLLGATE_ORIGIN as URL.origin spells it), `leewaySeconds` (5, at
   *   most 300), `clock` (ms).
   */
  static async create(options) {
    const o = checkOptions(options);
    const hs = new Map();
    for (const s of o.secrets) {
      const bytes = secretBytes(s);
      const key = await subtle().importKey('raw', bytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
      hs.set(await hs256Kid(bytes), key);
    }
    const es = new Map();
    for (const jwk of o.es256Keys) {
      const pub = { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
      let key;
      try {
        key = await subtle().importKey('jwk', pub, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
      } catch (e) {
        throw new TollgateError('es256Keys: not a P-256 public key', { code: 'INVALID_OPTIONS', cause: e });
      }
      es.set(await thumbprint(pub), key);
    }
    return new AssertionVerifier(CREATE, hs, es, o.audience, o.leeway, o.clock);
  }

  /** The kids accepted (HS256, then ES256). */
  get kids() {
    return [...this.#hs.keys(), ...this.#es.keys()];
  }

  /**
   * Checks the assertion of a request: its `method`, its request-target `target` (raw
   * path and query as received) and its headers (fetch Headers or Node's headers
   * object; pass Node's `rawHeaders` too so repeated lines are seen). Resolves to the
   * identity; rejects with TollgateError code INVALID_ASSERTION and a `reason`.
   */
  async verify(method, target, headers, rawHeaders) {
    // 1. exactly one header, three canonical segments, strict JSON
    const values = headerPairs(headers, rawHeaders).filter(([k]) => k === ASSERTION_HEADER);
    if (values.length === 0) throw refused('missing');
    if (values.length > 1) throw refused('malformed');
    const token = values[0][1];
    if (token.length > MAX_ASSERTION_BYTES) throw refused('malformed');
    const parts = token.split('.');
    if (parts.length !== 3 || parts[0] === '' || parts[1] === '') throw refused('malformed');
    const [h, p, s] = parts.map(decode);
    if (h === null || p === null || s === null) throw refused('malformed');
    const header = strictObject(h);
    const payload = strictObject(p);
    // 2. typ, alg, kid
    if (Object.keys(header).length !== 3 || header.typ !== ASSERTION_TYP) throw refused('malformed');
    if (typeof header.alg !== 'string' || typeof header.kid !== 'string') throw refused('malformed');
    const signingInput = utf8.encode(`${parts[0]}.${parts[1]}`);
    // 3. the signature
    let ok;
    if (header.alg === 'HS256') {
      const key = this.#hs.get(header.kid);
      if (!key) throw refused('unknown_key');
      ok = await subtle().verify('HMAC', key, s, signingInput);
    } else if (header.alg === 'ES256') {
      const key = this.#es.get(header.kid);
      if (!key) throw refused('unknown_key');
      try {
        ok = s.length === 64 && (await subtle().verify({ name: 'ECDSA', hash: 'SHA-256' }, key, s, signingInput));
      } catch {
        ok = false;
      }
    } else {
      throw refused('unknown_key');
    }
    if (!ok) throw refused('bad_signature');
    const claims = readPayload(payload);
    if (claims === null) throw refused('malformed');
    // 4. iss, aud
    if (claims.iss !== ASSERTION_ISSUER) throw refused('wrong_issuer');
    if (this.#audience !== null && claims.aud !== this.#audience) throw refused('wrong_audience');
    // 5. time
    const now = Math.floor(this.#clock() / 1000);
    if (claims.exp <= now - this.#leeway) throw refused('expired');
    if (claims.iat > now + this.#leeway) throw refused('not_yet_valid');
    // 6.-8. bound to this request
    if (claims.method !== method) throw refused('wrong_method');
    if (claims.target !== target) throw refused('wrong_target');
    if (!equalConstantTime(await headerDigest(headers, rawHeaders), claims.hdr)) throw refused('wrong_headers');
    return claims.identity;
  }
}

function checkOptions(options) {
  if (!options || typeof options !== 'object') throw misconfigured('assertion options: an object with secrets and/or es256Keys');
  const secrets = options.secrets === undefined ? [] : typeof options.secrets === 'string' ? [options.secrets] : options.secrets;
  if (!Array.isArray(secrets)) throw misconfigured('secrets: an array of strings');
  for (const s of secrets) {
    if (secretBytes(s).length < MIN_SECRET_BYTES) throw misconfigured(`secrets: each at least ${MIN_SECRET_BYTES} bytes`);
  }
  const es256Keys = options.es256Keys ?? [];
  if (!Array.isArray(es256Keys)) throw misconfigured('es256Keys: an array of public JWKs');
  for (const k of es256Keys) {
    if (!k || typeof k !== 'object' || 'd' in k || k.kty !== 'EC' || k.crv !== 'P-256' || typeof k.x !== 'string' || typeof k.y !== 'string') {
      throw misconfigured('es256Keys: P-256 public JWKs (kty EC, crv P-256, x, y; never d)');
    }
  }
  if (secrets.length === 0 && es256Keys.length === 0) throw misconfigured('assertion options: no secrets and no es256Keys: nothing could be verified');
  const audience = options.audience ?? null;
  if (audience !== null && (typeof audience !== 'string' || audience === '')) throw misconfigured('audience: the origin, as URL.origin spells it');
  const leeway = options.leewaySeconds ?? DEFAULT_ASSERTION_LEEWAY_SECONDS;
  if (!Number.isInteger(leeway) || leeway < 0 || leeway > MAX_ASSERTION_LEEWAY_SECONDS) throw misconfigured(`leewaySeconds: 0 to ${MAX_ASSERTION_LEEWAY_SECONDS}`);
  const clock = options.clock ?? Date.now;
  if (typeof clock !== 'function') throw misconfigured('clock: a function returning milliseconds');
  return { secrets, es256Keys, audience, leeway, clock };
}

function strictObject(bytes) {
  if (decodeUtf8(bytes) === null) throw refused('malformed');
  const text = strictJsonObject(bytes);
  if (text === undefined) throw refused('malformed');
  return JSON.parse(text);
}

function readPayload(p) {
  const str = (n) => (typeof p[n] === 'string' ? p[n] : null);
  const opt = (n) => (p[n] === undefined ? undefined : typeof p[n] === 'string' ? p[n] : null);
  const int = (n) => (typeof p[n] === 'number' && Number.isFinite(p[n]) ? Math.floor(p[n]) : null);
  const auth = p.auth === 'verified' || p.auth === 'none' ? p.auth : null;
  let roles = [];
  if (p.roles !== undefined) {
    if (!Array.isArray(p.roles) || p.roles.some((r) => typeof r !== 'string')) return null;
    roles = p.roles;
  }
  const fields = { iss: str('iss'), aud: str('aud'), method: str('method'), target: str('target'), hdr: str('hdr'), jti: str('jti'), iat: int('iat'), exp: int('exp') };
  if (auth === null || Object.values(fields).some((v) => v === null)) return null;
  const optional = { sub: opt('sub'), sid: opt('sid'), tokIss: opt('tok_iss'), scope: opt('scope') };
  if (Object.values(optional).some((v) => v === null)) return null;
  const identity = Object.freeze({
    auth,
    sub: optional.sub ?? null,
    sid: optional.sid ?? null,
    tokIss: optional.tokIss ?? null,
    roles: Object.freeze([...roles]),
    scope: optional.scope ?? null,
    jti: fields.jti,
    iat: fields.iat,
    exp: fields.exp,
    hasRole: (r) => roles.includes(r),
    hasScope: (s) => (optional.scope ?? '').split(' ').includes(s),
  });
  return { ...fields, identity };
}

function verifierFor(options) {
  if (options instanceof AssertionVerifier) return Promise.resolve(options);
  checkOptions(options); // configuration errors throw here, at setup
  const v = AssertionVerifier.create(options);
  v.catch(() => {}); // reported per request as 500 misconfigured
  return v;
}

function refusal(e) {
  if (e instanceof TollgateError && e.code === 'INVALID_ASSERTION') {
    return { status: 401, body: JSON.stringify({ error: 'invalid_assertion', reason: e.reason }) };
  }
  return { status: 500, body: '{"error":"misconfigured"}' };
}

const DENY_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' };

/**
 * Express/Connect middleware: checks the assertion of every request, then sets
 * `req[property]` (default `edge`) to the identity and calls next(); else answers 401
 * (500 `misconfigured` if the verifier could not be built). The request-target is
 * `req.originalUrl` (Express, Connect) or `req.url`: the raw path and query received.
 */
export function requireAssertion(options) {
  const property = (options && !(options instanceof AssertionVerifier) && options.property) || 'edge';
  const verifier = verifierFor(options);
  return function tollgateAssertion(req, res, next) {
    const target = typeof req.originalUrl === 'string' ? req.originalUrl : req.url;
    verifier
      .then((v) => v.verify(req.method, target, req.headers, req.rawHeaders))
      .then(
        (identity) => {
          req[property] = identity;
          next();
        },
        (e) => {
          const r = refusal(e);
          res.statusCode = r.status;
          for (const [k, val] of Object.entries(DENY_HEADERS)) res.setHeader(k, val);
          res.end(r.body);
        },
      );
  };
}

/**
 * Wraps a fetch handler `(request, identity, ...rest)`: it runs only for requests whose
 * assertion passes; others get the 401. The request-target is the URL's path and query
 * as the runtime parsed them.
 */
export function withAssertion(handler, options) {
  const verifier = verifierFor(options);
  return async function tollgateAssertionFetch(request, ...rest) {
    const url = new URL(request.url);
    let identity;
    try {
      identity = await (await verifier).verify(request.method, url.pathname + url.search, request.headers);
    } catch (e) {
      const r = refusal(e);
      return new Response(r.body, { status: r.status, headers: DENY_HEADERS });
    }
    return handler(request, identity, ...rest);
  };
}
