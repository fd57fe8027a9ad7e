// Issuing tokens on WebCrypto: SigningKey (ES256 / RS256 keys, RFC 7638 kid), KeySet
// (a current key and retiring ones, with the rotation timeline of docs/tokens.md) and
// Issuer (access and refresh tokens with separate key sets, the JWKS to publish).
//
// The JavaScript twin of tollgate-origin's issuer (origin/src/issuer.rs, keyset.rs):
// same token shapes, same claim order, same refusals, same timeline. Signatures are
// `crypto.subtle.sign` (Node >= 20, Workers, Deno, browsers); nothing here touches wasm
// except accessVerifier()/refreshVerifier(), which build the package's Verifier.

import { decode, encodeBytes, encodeText, randomId, utf8 } from './b64.js';
import { TollgateError } from './errors.js';
import { Verifier } from './verifier.js';

/** Default access token life (15 minutes). */
export const DEFAULT_ACCESS_TTL_SECONDS = 15 * 60;
/** Default refresh token life (7 days). */
export const DEFAULT_REFRESH_TTL_SECONDS = 7 * 86_400;
/** Default JWKS `max-age`, seconds. */
export const DEFAULT_JWKS_MAX_AGE = 300;
/** Added to the JWKS max-age for the default publication delay, seconds. */
export const PUBLICATION_MARGIN = 60;
/** `typ` of refresh tokens. */
export const REFRESH_TYP = 'refresh+jwt';
/** Claims the issuer sets itself; `claims` may not name them. */
export const RESERVED_CLAIMS = Object.freeze(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti', 'sid', 'roles', 'role', 'scope', 'client_id']);

const MAX_TOKEN_BYTES = 8192;
const MAX_ID_BYTES = 1024;
const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 8192;

const ALGS = {
  ES256: {
    kty: 'EC',
    params: { name: 'ECDSA', namedCurve: 'P-256' },
    sign: { name: 'ECDSA', hash: 'SHA-256' },
  },
  RS256: {
    kty: 'RSA',
    params: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
};

function subtle() {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new TollgateError('WebCrypto (crypto.subtle) is not available in this runtime', { code: 'INVALID_KEY' });
  return s;
}

function keyError(message, cause) {
  return new TollgateError(message, cause === undefined ? { code: 'INVALID_KEY' } : { code: 'INVALID_KEY', cause });
}

// ---------------------------------------------------------------------------------
// SigningKey

const PRIVATE = Symbol('tollgate.signingKey');

/** A private signing key: ES256 (P-256) or RS256 (RSA 2048 to 8192 bits). */
export class SigningKey {
  #alg;
  #kid;
  #cryptoKey;
  #privateJwk;
  #publicJwk;
  #rsaBits;

  /** Use SigningKey.generate / fromJwk / fromPkcs8Pem. */
  constructor(token, alg, kid, cryptoKey, privateJwk, publicJwk, rsaBits) {
    if (token !== PRIVATE) throw new TypeError('use SigningKey.generate(), SigningKey.fromJwk() or SigningKey.fromPkcs8Pem()');
    this.#alg = alg;
    this.#kid = kid;
    this.#cryptoKey = cryptoKey;
    this.#privateJwk = privateJwk;
    this.#publicJwk = Object.freeze(publicJwk);
    this.#rsaBits = rsaBits;
  }

  /**
   * A new key from the runtime's random generator.
   * @param {'ES256'|'RS256'} alg
   * @param {{ modulusLength?: number }} [options] RS256 only (default 2048).
   */
  static async generate(alg = 'ES256', options = {}) {
    const a = ALGS[alg];
    if (!a) throw keyError(`unsupported algorithm ${JSON.stringify(alg)}: ES256 or RS256`);
    const params = { ...a.params };
    if (alg === 'RS256') {
      const bits = options.modulusLength ?? MIN_RSA_BITS;
      if (!Number.isInteger(bits) || bits < MIN_RSA_BITS || bits > MAX_RSA_BITS || bits % 8 !== 0) {
        throw keyError(`RSA keys are ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits`);
      }
      params.modulusLength = bits;
      params.publicExponent = new Uint8Array([1, 0, 1]);
    }
    const pair = await subtle().generateKey(params, true, ['sign', 'verify']);
    const jwk = await subtle().exportKey('jwk', pair.privateKey);
    return SigningKey.fromJwk(jwk);
  }

  /**
   * A key from a private JWK (object or JSON text). The public half must match `d`
   * (checked by signing and verifying a probe); RSA CRT values are recomputed from
   * `p`, `q` and `d`, never taken as given. `kid`, `alg`, `use` members are ignored:
   * the `kid` is always the RFC 7638 thumbprint.
   */
  static async fromJwk(jwk) {
    let o = jwk;
    if (typeof o === 'string') {
      try {
        o = JSON.parse(o);
      } catch (e) {
        throw keyError('private JWK: not JSON', e);
      }
    }
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw keyError('private JWK: expected an object');
    const str = (name) => {
      const v = o[name];
      if (typeof v !== 'string' || decode(v) === null || v.length === 0) throw keyError(`private JWK: ${name} must be canonical base64url`);
      return v;
    };
    let alg;
    let clean;
    let rsaBits = null;
    if (o.kty === 'EC') {
      if (o.crv !== 'P-256') throw keyError('private JWK: only the P-256 curve is supported');
      alg = 'ES256';
      clean = { kty: 'EC', crv: 'P-256', x: str('x'), y: str('y'), d: str('d') };
      for (const n of ['x', 'y', 'd']) {
        if (decode(clean[n]).length !== 32) throw keyError(`private JWK: ${n} must be 32 bytes`);
      }
    } else if (o.kty === 'RSA') {
      alg = 'RS256';
      const n = str('n');
      const e = str('e');
      const d = str('d');
      if (o.p === undefined || o.q === undefined) throw keyError('private JWK: RSA keys need p and q');
      const [N, E, D, P, Q] = [n, e, d, str('p'), str('q')].map((v) => toBigInt(decode(v)));
      if (P * Q !== N || P < 2n || Q < 2n) throw keyError('private JWK: p × q is not n');
      rsaBits = N.toString(2).length;
      if (rsaBits < MIN_RSA_BITS || rsaBits > MAX_RSA_BITS) throw keyError(`RSA keys are ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits (this one: ${rsaBits})`);
      if (E < 3n || E % 2n === 0n) throw keyError('private JWK: bad public exponent');
      const size = decode(n).length;
      clean = {
        kty: 'RSA',
        n,
        e,
        d,
        p: o.p,
        q: o.q,
        dp: fromBigInt(D % (P - 1n), 0),
        dq: fromBigInt(D % (Q - 1n), 0),
        qi: fromBigInt(modInverse(Q, P), 0),
      };
      if (size * 8 < rsaBits) throw keyError('private JWK: bad modulus');
    } else {
      throw keyError('private JWK: kty must be "EC" or "RSA"');
    }
    const a = ALGS[alg];
    let cryptoKey;
    let publicKey;
    const publicJwk = alg === 'ES256' ? { kty: 'EC', crv: 'P-256', x: clean.x, y: clean.y } : { kty: 'RSA', n: clean.n, e: clean.e };
    try {
      cryptoKey = await subtle().importKey('jwk', { ...clean, ext: true }, a.params, false, ['sign']);
      publicKey = await subtle().importKey('jwk', publicJwk, a.params, false, ['verify']);
    } catch (err) {
      throw keyError(`private JWK: the runtime refused the key (${err?.message ?? err})`, err);
    }
    // The public half must belong to d.
    const probe = utf8.encode('tollgate key pair check');
    const sig = await subtle().sign(a.sign, cryptoKey, probe);
    if (!(await subtle().verify(a.sign, publicKey, sig, probe))) throw keyError('private JWK: the public key does not match d');
    const kid = await thumbprint(publicJwk);
    return new SigningKey(PRIVATE, alg, kid, cryptoKey, clean, { ...publicJwk, kid, alg, use: 'sig' }, rsaBits);
  }

  /**
   * A key from PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`; text around the block is
   * ignored). ES256 or RS256 is read from the key.
   */
  static async fromPkcs8Pem(pem) {
    if (typeof pem !== 'string') throw keyError('PKCS#8 PEM: expected a string');
    const m = /-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----/.exec(pem);
    if (!m) throw keyError('PKCS#8 PEM: no "BEGIN PRIVATE KEY" block (convert "EC PRIVATE KEY"/"RSA PRIVATE KEY" with openssl pkcs8 -topk8 -nocrypt)');
    const der = base64Std(m[1].replace(/\s+/g, ''));
    if (!der) throw keyError('PKCS#8 PEM: bad base64');
    for (const alg of ['ES256', 'RS256']) {
      let k;
      try {
        k = await subtle().importKey('pkcs8', der, ALGS[alg].params, true, ['sign']);
      } catch {
        continue;
      }
      return SigningKey.fromJwk(await subtle().exportKey('jwk', k));
    }
    throw keyError('PKCS#8 PEM: neither a P-256 nor an RSA private key');
  }

  /** `ES256` or `RS256`. */
  get alg() {
    return this.#alg;
  }

  /** The RFC 7638 thumbprint of the public key. */
  get kid() {
    return this.#kid;
  }

  /** RSA modulus bits (RS256), else null. */
  get rsaBits() {
    return this.#rsaBits;
  }

  /** The public JWK to publish: the key members plus `kid`, `alg`, `use: "sig"`. */
  get publicJwk() {
    return this.#publicJwk;
  }

  /** The private JWK (secret: store it as a secret), with `kid` and `alg`. */
  exportPrivateJwk() {
    return { ...this.#privateJwk, kid: this.#kid, alg: this.#alg };
  }

  /** PKCS#8 PEM (secret). */
  async exportPkcs8Pem() {
    const k = await subtle().importKey('jwk', { ...this.#privateJwk, ext: true }, ALGS[this.#alg].params, true, ['sign']);
    const der = new Uint8Array(await subtle().exportKey('pkcs8', k));
    const b64 = encodeBytes(der).replace(/-/g, '+').replace(/_/g, '/');
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    return `-----BEGIN PRIVATE KEY-----\n${padded.match(/.{1,64}/g).join('\n')}\n-----END PRIVATE KEY-----\n`;
  }

  /** The JWS signature of `signingInput` (bytes): 64 bytes r‖s for ES256. */
  async sign(signingInput) {
    return new Uint8Array(await subtle().sign(ALGS[this.#alg].sign, this.#cryptoKey, signingInput));
  }

  /** Signs arbitrary claims as a compact JWS (tools, tests); the header gets alg, typ, kid. */
  async signCompact(claims, { typ = 'JWT' } = {}) {
    const input = `${encodeText(JSON.stringify({ alg: this.#alg, typ, kid: this.#kid }))}.${encodeText(JSON.stringify(claims))}`;
    return `${input}.${encodeBytes(await this.sign(utf8.encode(input)))}`;
  }

  toJSON() {
    return { alg: this.#alg, kid: this.#kid };
  }
}

/** The RFC 7638 thumbprint (SHA-256, base64url) of a public JWK. */
export async function thumbprint(jwk) {
  let canon;
  if (jwk.kty === 'EC') canon = `{"crv":${JSON.stringify(jwk.crv)},"kty":"EC","x":${JSON.stringify(jwk.x)},"y":${JSON.stringify(jwk.y)}}`;
  else if (jwk.kty === 'RSA') canon = `{"e":${JSON.stringify(jwk.e)},"kty":"RSA","n":${JSON.stringify(jwk.n)}}`;
  else throw keyError('thumbprint: kty must be "EC" or "RSA"');
  return encodeBytes(await subtle().digest('SHA-256', utf8.encode(canon)));
}

function toBigInt(bytes) {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

function fromBigInt(n, minLen) {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  const bytes = new Uint8Array(Math.max(hex.length / 2, minLen));
  const off = bytes.length - hex.length / 2;
  for (let i = 0; i < hex.length / 2; i++) bytes[off + i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return encodeBytes(bytes);
}

function modInverse(a, m) {
  let [oldR, r] = [((a % m) + m) % m, m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  if (oldR !== 1n) throw keyError('private JWK: q has no inverse mod p');
  return ((oldS % m) + m) % m;
}

function base64Std(text) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  try {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------
// KeySet

/**
 * A key set with its rotation timeline (times in seconds since the epoch):
 *
 *   add(new, t)        t + publicationDelay                   stop + longest life signed
 *   │ published ───────┼──── signs ─────────── stop ──────────┼ unpublished (prune)
 *
 * A key stops signing when the next key starts; it stays published until
 * `retireAfter` = that time + the longest token life it signed for.
 */
export class KeySet {
  #entries = [];
  #maxAge;
  #delay;
  #order = 0;

  /**
   * @param {SigningKey} first signs from `now`
   * @param {number} now seconds
   * @param {{ jwksMaxAgeSeconds?: number, publicationDelaySeconds?: number }} [policy]
   */
  constructor(first, now, policy = {}) {
    const maxAge = policy.jwksMaxAgeSeconds ?? DEFAULT_JWKS_MAX_AGE;
    if (!Number.isInteger(maxAge) || maxAge < 0) throw new TollgateError('jwksMaxAgeSeconds: a non-negative integer', { code: 'INVALID_OPTIONS' });
    const delay = policy.publicationDelaySeconds ?? maxAge + PUBLICATION_MARGIN;
    if (!Number.isInteger(delay) || delay < maxAge) {
      throw new TollgateError(
        `publicationDelaySeconds (${delay}) is shorter than the JWKS max-age (${maxAge}): an edge could meet a token signed with a key it has not fetched`,
        { code: 'UNSAFE_DELAY' },
      );
    }
    this.#maxAge = maxAge;
    this.#delay = delay;
    if (first !== undefined) this.#push(checkKey(first), seconds(now), seconds(now), 0);
  }

  /** `{ jwksMaxAgeSeconds, publicationDelaySeconds }`. */
  get policy() {
    return { jwksMaxAgeSeconds: this.#maxAge, publicationDelaySeconds: this.#delay };
  }

  /** The kids of every key held, in order of addition. */
  get kids() {
    return this.#entries.map((e) => e.key.kid);
  }

  #push(key, publishedAt, signsFrom, longestLife) {
    if (this.#entries.some((e) => e.key.kid === key.kid)) {
      throw new TollgateError(`key ${key.kid} is already in the set`, { code: 'DUPLICATE_KID' });
    }
    const headers = {};
    for (const typ of ['JWT', 'at+jwt', REFRESH_TYP]) headers[typ] = encodeText(JSON.stringify({ alg: key.alg, typ, kid: key.kid }));
    this.#entries.push({ key, publishedAt, signsFrom, order: this.#order++, longestLife, headers });
  }

  /** Adds a key: published now, signing from now + publicationDelay (returned). */
  add(key, now) {
    const t = seconds(now);
    const from = t + this.#delay;
    this.#push(checkKey(key), t, from, 0);
    return from;
  }

  /** Emergency rotation (a key leaked): the key signs at once; edges refetch on the unknown kid. */
  addSigningNow(key, now) {
    const t = seconds(now);
    this.#push(checkKey(key), t, t, 0);
  }

  /** Removes a key at once (a leaked key); returns it. */
  remove(kid) {
    const i = this.#entries.findIndex((e) => e.key.kid === kid);
    if (i < 0) throw new TollgateError(`no key ${kid} in the set`, { code: 'UNKNOWN_KID' });
    return this.#entries.splice(i, 1)[0].key;
  }

  #later(a, b) {
    return a.signsFrom > b.signsFrom || (a.signsFrom === b.signsFrom && a.order > b.order);
  }

  #stopsSigning(e) {
    let stop = null;
    for (const x of this.#entries) {
      if (this.#later(x, e) && (stop === null || x.signsFrom < stop)) stop = x.signsFrom;
    }
    return stop;
  }

  /** @internal the entry signing at `now` */
  signingEntry(now) {
    let best = null;
    for (const e of this.#entries) {
      if (e.signsFrom <= now && (best === null || this.#later(e, best))) best = e;
    }
    return best;
  }

  /** The key that signs at `now` (seconds), or null. */
  signingKey(now) {
    return this.signingEntry(seconds(now))?.key ?? null;
  }

  #state(e, now) {
    if (this.signingEntry(now) === e) return 'current';
    if (now < e.publishedAt) return 'retired';
    if (now < e.signsFrom) return 'pending';
    const stop = this.#stopsSigning(e);
    return stop !== null && now < stop + e.longestLife ? 'retiring' : 'retired';
  }

  /** Each key's state (`pending`, `current`, `retiring`, `retired`) and timeline at `now`. */
  status(now) {
    const t = seconds(now);
    return this.#entries.map((e) => {
      const stop = this.#stopsSigning(e);
      return {
        kid: e.key.kid,
        alg: e.key.alg,
        state: this.#state(e, t),
        publishedAt: e.publishedAt,
        signsFrom: e.signsFrom,
        stopsSigning: stop,
        retireAfter: stop === null ? null : stop + e.longestLife,
        longestLife: e.longestLife,
      };
    });
  }

  /** The keys published at `now`: pending, current and retiring. */
  published(now) {
    const t = seconds(now);
    return this.#entries.filter((e) => this.#state(e, t) !== 'retired').map((e) => e.key);
  }

  /** The JWKS document at `now`: `{ body, cacheControl, maxAge }`. */
  jwks(now) {
    return {
      body: JSON.stringify({ keys: this.published(now).map((k) => k.publicJwk) }),
      cacheControl: `public, max-age=${this.#maxAge}`,
      maxAge: this.#maxAge,
    };
  }

  /** Drops retired keys (their last token expired); returns their kids. */
  prune(now) {
    const t = seconds(now);
    const gone = this.#entries.filter((e) => this.#state(e, t) === 'retired' && t >= e.publishedAt).map((e) => e.key.kid);
    this.#entries = this.#entries.filter((e) => !gone.includes(e.key.kid));
    return gone;
  }

  /** The whole set with private keys and timeline, to persist (secret). Same document as tollgate-origin's. */
  export() {
    return {
      version: 1,
      jwks_max_age: this.#maxAge,
      publication_delay: this.#delay,
      keys: this.#entries.map((e) => ({
        jwk: e.key.exportPrivateJwk(),
        published_at: e.publishedAt,
        signs_from: e.signsFrom,
        longest_life: e.longestLife,
      })),
    };
  }

  /** The set from export()'s document (also tollgate-origin's KeySet::export). */
  static async import(doc) {
    const bad = (m) => new TollgateError(`key set import: ${m}`, { code: 'INVALID_KEY' });
    if (typeof doc === 'string') doc = JSON.parse(doc);
    if (doc?.version !== 1) throw bad('version: expected 1');
    const num = (v, m) => {
      if (!Number.isInteger(v) || v < 0) throw bad(m);
      return v;
    };
    const set = new KeySet(undefined, 0, {
      jwksMaxAgeSeconds: num(doc.jwks_max_age, 'jwks_max_age'),
      publicationDelaySeconds: num(doc.publication_delay, 'publication_delay'),
    });
    if (!Array.isArray(doc.keys) || doc.keys.length === 0) throw bad('keys: expected a non-empty array');
    for (const k of doc.keys) {
      const key = await SigningKey.fromJwk(k.jwk);
      const p = num(k.published_at, 'published_at');
      const s = num(k.signs_from, 'signs_from');
      if (s < p) throw bad('signs_from before published_at');
      set.#push(key, p, s, num(k.longest_life, 'longest_life'));
    }
    return set;
  }
}

function checkKey(k) {
  if (!(k instanceof SigningKey)) throw new TypeError('expected a SigningKey');
  return k;
}

function seconds(t) {
  if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) throw new TypeError('times are seconds since the epoch');
  return Math.floor(t);
}

// ---------------------------------------------------------------------------------
// Issuer

function issueError(code, claim, message) {
  return new TollgateError(message, claim === undefined ? { code } : { code, claim });
}

function checkId(name, v) {
  if (typeof v !== 'string' || v.length === 0) throw issueError('MISSING_CLAIM', name, `${name} is required`);
  if (utf8.encode(v).length > MAX_ID_BYTES) throw issueError('INVALID_CLAIM', name, `${name} is over ${MAX_ID_BYTES} bytes`);
}

function checkLife(name, s) {
  if (!Number.isFinite(s) || Math.floor(s) < 1) throw issueError('INVALID_CLAIM', 'exp', `${name}: a token life is at least one second`);
  return Math.floor(s);
}

const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/** Issues access and refresh tokens, each kind from its own key set. */
export class Issuer {
  #config;
  #access;
  #refresh;
  #clock;
  #accessAud;

  /**
   * @param {object} config `issuer`, `audience` (string or array), `refreshAudience`
   *   (default: the issuer), `accessTtlSeconds` (900), `refreshTtlSeconds` (604800),
   *   `accessTyp` (`"JWT"` or `"at+jwt"`), `clock` (ms, default Date.now)
   * @param {KeySet} accessKeys published at jwks()
   * @param {KeySet} refreshKeys never published; may not share a key with accessKeys
   */
  constructor(config, accessKeys, refreshKeys) {
    if (!config || typeof config !== 'object') throw new TypeError('new Issuer(config, accessKeys, refreshKeys): config is required');
    if (!(accessKeys instanceof KeySet) || !(refreshKeys instanceof KeySet)) throw new TypeError('new Issuer: accessKeys and refreshKeys must be KeySets');
    const shared = accessKeys.kids.find((k) => refreshKeys.kids.includes(k));
    if (shared) throw new TollgateError(`key ${shared} is in both key sets: access and refresh tokens need separate keys`, { code: 'SHARED_KEY' });
    const opt = (cond, msg) => {
      if (!cond) throw new TollgateError(`Issuer config: ${msg}`, { code: 'INVALID_OPTIONS' });
    };
    opt(typeof config.issuer === 'string' && config.issuer.length > 0, 'issuer: a non-empty string');
    const aud = typeof config.audience === 'string' ? [config.audience] : config.audience;
    opt(Array.isArray(aud) && aud.length > 0 && aud.every((a) => typeof a === 'string' && a), 'audience: a non-empty string or array of them');
    const accessTyp = config.accessTyp ?? 'JWT';
    opt(accessTyp === 'JWT' || accessTyp === 'at+jwt', 'accessTyp: "JWT" or "at+jwt"');
    opt(config.refreshAudience === undefined || (typeof config.refreshAudience === 'string' && config.refreshAudience), 'refreshAudience: a non-empty string');
    const clock = config.clock ?? Date.now;
    opt(typeof clock === 'function', 'clock: a function returning milliseconds');
    this.#config = Object.freeze({
      issuer: config.issuer,
      audience: Object.freeze([...aud]),
      refreshAudience: config.refreshAudience ?? config.issuer,
      accessTtlSeconds: checkLife('accessTtlSeconds', config.accessTtlSeconds ?? DEFAULT_ACCESS_TTL_SECONDS),
      refreshTtlSeconds: checkLife('refreshTtlSeconds', config.refreshTtlSeconds ?? DEFAULT_REFRESH_TTL_SECONDS),
      accessTyp,
    });
    this.#accessAud = aud.length === 1 ? JSON.stringify(aud[0]) : JSON.stringify(aud);
    this.#access = accessKeys;
    this.#refresh = refreshKeys;
    this.#clock = clock;
  }

  /**
   * An issuer with a new access key and a new refresh key (`alg` ES256 by default).
   * @param {object} config as the constructor, plus `alg` and `keyPolicy` (KeySet policy)
   */
  static async generate(config) {
    const alg = config?.alg ?? 'ES256';
    const now = Math.floor((config?.clock ?? Date.now)() / 1000);
    const [a, r] = await Promise.all([SigningKey.generate(alg), SigningKey.generate(alg)]);
    return new Issuer(config, new KeySet(a, now, config?.keyPolicy), new KeySet(r, now, config?.keyPolicy));
  }

  /** The configuration (frozen). */
  get config() {
    return this.#config;
  }

  /** The access key set (published). */
  get accessKeys() {
    return this.#access;
  }

  /** The refresh key set (never published). */
  get refreshKeys() {
    return this.#refresh;
  }

  /** Now, in seconds, on the issuer's clock. */
  now() {
    return Math.floor(this.#clock() / 1000);
  }

  /**
   * An access token. `claims`: `sub`, `sid` (required), `roles` (array), `role`,
   * `scope` (array of scope tokens, or a space-separated string), `clientId`,
   * `audience` (overrides the config's), `claims` (extra, not reserved),
   * `ttlSeconds`. Resolves to `{ token, jti, sub, sid, iat, exp, kid }`.
   */
  async issueAccess(claims) {
    const c = claims ?? {};
    checkId('sub', c.sub);
    checkId('sid', c.sid);
    const typ = this.#config.accessTyp;
    if (typ === 'at+jwt' && c.clientId === undefined) throw issueError('MISSING_CLAIM', 'client_id', 'at+jwt access tokens need client_id (RFC 9068)');
    if (c.clientId !== undefined) checkId('client_id', c.clientId);
    let roles = null;
    if (c.roles !== undefined) {
      if (!Array.isArray(c.roles) || c.roles.some((r) => typeof r !== 'string' || r === '')) throw issueError('INVALID_CLAIM', 'roles', 'roles: non-empty strings');
      if (c.roles.length) roles = c.roles;
    }
    if (c.role !== undefined && (typeof c.role !== 'string' || c.role === '')) throw issueError('INVALID_CLAIM', 'roles', 'role: a non-empty string');
    let scope = null;
    if (c.scope !== undefined) {
      const list = typeof c.scope === 'string' ? c.scope.split(' ') : c.scope;
      if (!Array.isArray(list) || list.some((s) => typeof s !== 'string' || !SCOPE_TOKEN.test(s))) {
        throw issueError('INVALID_CLAIM', 'scope', 'scope: scope tokens (RFC 6749 §3.3), space-separated');
      }
      if (list.length) scope = list.join(' ');
    }
    let aud = this.#accessAud;
    if (c.audience !== undefined) {
      const list = typeof c.audience === 'string' ? [c.audience] : c.audience;
      if (!Array.isArray(list) || list.length === 0 || list.some((a) => typeof a !== 'string' || a === '')) throw issueError('INVALID_CLAIM', 'aud', 'audience: non-empty strings');
      aud = JSON.stringify(list.length === 1 ? list[0] : list);
    }
    let extra = '';
    if (c.claims !== undefined) {
      if (c.claims === null || typeof c.claims !== 'object' || Array.isArray(c.claims)) throw new TypeError('claims: an object');
      for (const [k, v] of Object.entries(c.claims)) {
        if (RESERVED_CLAIMS.includes(k)) throw issueError('RESERVED_CLAIM', k, `claim ${k} is set by the issuer`);
        if (v === undefined) continue;
        extra += `,${JSON.stringify(k)}:${JSON.stringify(v)}`;
      }
    }
    const ttl = checkLife('ttlSeconds', c.ttlSeconds ?? this.#config.accessTtlSeconds);
    const jti = randomId();
    const now = this.now();
    const exp = now + ttl;
    let p = `{"iss":${JSON.stringify(this.#config.issuer)},"sub":${JSON.stringify(c.sub)},"aud":${aud},"sid":${JSON.stringify(c.sid)},"jti":"${jti}","iat":${now},"exp":${exp}`;
    if (roles) p += `,"roles":${JSON.stringify(roles)}`;
    if (c.role !== undefined) p += `,"role":${JSON.stringify(c.role)}`;
    if (scope) p += `,"scope":${JSON.stringify(scope)}`;
    if (c.clientId !== undefined) p += `,"client_id":${JSON.stringify(c.clientId)}`;
    p += `${extra}}`;
    const { token, kid } = await signWith(this.#access, now, ttl, typ, p);
    return { token, jti, sub: c.sub, sid: c.sid, iat: now, exp, kid };
  }

  /** A refresh token (`typ` refresh+jwt, the refresh key set): `{ sub, sid, ttlSeconds? }`. */
  async issueRefresh(claims) {
    const c = claims ?? {};
    checkId('sub', c.sub);
    checkId('sid', c.sid);
    const ttl = checkLife('ttlSeconds', c.ttlSeconds ?? this.#config.refreshTtlSeconds);
    const jti = randomId();
    const now = this.now();
    const exp = now + ttl;
    const p = `{"iss":${JSON.stringify(this.#config.issuer)},"sub":${JSON.stringify(c.sub)},"aud":${JSON.stringify(this.#config.refreshAudience)},"sid":${JSON.stringify(c.sid)},"jti":"${jti}","iat":${now},"exp":${exp}}`;
    const { token, kid } = await signWith(this.#refresh, now, ttl, REFRESH_TYP, p);
    return { token, jti, sub: c.sub, sid: c.sid, iat: now, exp, kid };
  }

  /** An access token and a refresh token for the same `sub` and `sid`: `{ access, refresh }`. */
  async issuePair(access) {
    const [a, r] = await Promise.all([this.issueAccess(access), this.issueRefresh({ sub: access?.sub, sid: access?.sid })]);
    return { access: a, refresh: r };
  }

  /** The access JWKS to publish now: `{ body, cacheControl, maxAge }`. */
  jwks() {
    return this.#access.jwks(this.now());
  }

  /** Starts an access key rotation; returns when the new key starts signing (seconds). */
  rotateAccess(key) {
    if (this.#refresh.kids.includes(key?.kid)) throw new TollgateError(`key ${key.kid} signs refresh tokens`, { code: 'SHARED_KEY' });
    return this.#access.add(key, this.now());
  }

  /** Starts a refresh key rotation; returns when the new key starts signing (seconds). */
  rotateRefresh(key) {
    if (this.#access.kids.includes(key?.kid)) throw new TollgateError(`key ${key.kid} signs access tokens`, { code: 'SHARED_KEY' });
    return this.#refresh.add(key, this.now());
  }

  /** Drops retired keys from both sets; returns their kids. */
  prune() {
    const now = this.now();
    return [...this.#access.prune(now), ...this.#refresh.prune(now)];
  }

  /** The Verifier policy access tokens meet (issuer, audiences, typ, required claims). */
  accessPolicy() {
    return {
      issuers: [this.#config.issuer],
      audiences: [...this.#config.audience],
      typ: this.#config.accessTyp,
      requiredClaims: ['exp', 'iat', 'sub', 'sid', 'jti'],
    };
  }

  /** The Verifier policy refresh tokens meet. */
  refreshPolicy() {
    return { ...this.accessPolicy(), audiences: [this.#config.refreshAudience], typ: REFRESH_TYP };
  }

  /** A Verifier of this issuer's access tokens (published keys, accessPolicy). */
  accessVerifier(options = {}) {
    const now = this.now();
    return new Verifier({ ...this.accessPolicy(), clock: this.#clock, ...options, jwks: { keys: this.#access.published(now).map((k) => k.publicJwk) } });
  }

  /** A Verifier of this issuer's refresh tokens (refresh keys, refreshPolicy). */
  refreshVerifier(options = {}) {
    const now = this.now();
    return new Verifier({ ...this.refreshPolicy(), clock: this.#clock, ...options, jwks: { keys: this.#refresh.published(now).map((k) => k.publicJwk) } });
  }
}

async function signWith(set, now, ttl, typ, payload) {
  const entry = set.signingEntry(now);
  if (!entry) throw new TollgateError('no key signs at this time', { code: 'NO_SIGNING_KEY' });
  const header = entry.headers[typ];
  const body = encodeText(payload);
  const sigLen = Math.ceil(((entry.key.rsaBits === null ? 64 : Math.ceil(entry.key.rsaBits / 8)) * 4) / 3);
  const len = header.length + 1 + body.length + 1 + sigLen;
  if (len > MAX_TOKEN_BYTES) throw new TollgateError(`the token would be ${len} bytes, over the edge's ${MAX_TOKEN_BYTES}`, { code: 'TOKEN_TOO_LARGE' });
  const input = `${header}.${body}`;
  const sig = await entry.key.sign(utf8.encode(input));
  if (ttl > entry.longestLife) entry.longestLife = ttl;
  return { token: `${input}.${encodeBytes(sig)}`, kid: entry.key.kid };
}
