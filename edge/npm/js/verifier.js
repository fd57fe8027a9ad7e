// Verifier: the package's main class, over the wasm CoreVerifier.
//
// verify(): the core parses the token, applies the header policy and picks candidate
// keys (CoreVerifier.begin); the signature is checked here with WebCrypto
// (crypto.subtle.verify, with imported CryptoKeys cached per JWKS key); the core then
// finishes the claims and denylist checks (CoreVerifier.finish). verifySync(): all in
// Rust. Both go through the core's verified-token cache, which re-checks the clock and
// the denylist on every hit.

import { CoreVerifier, Denylist } from '../wasm/tollgate_wasm.js';
import { TollgateError, isTokenError, tokenError } from './errors.js';
import { JwksSource } from './jwks-source.js';

/** Default verified-token cache capacity. */
export const DEFAULT_CACHE_SIZE = 1024;

const OWN_OPTIONS = new Set(['jwks', 'cacheSize', 'denylist', 'clock']);
const SOURCE_OPTIONS = new Set([
  'fetch',
  'headers',
  'cooldownSeconds',
  'minTtlSeconds',
  'maxTtlSeconds',
  'defaultTtlSeconds',
  'timeoutMs',
  'onError',
]);

const WEBCRYPTO = {
  ES256: {
    import: { name: 'ECDSA', namedCurve: 'P-256' },
    verify: { name: 'ECDSA', hash: 'SHA-256' },
    jwk: (k) => ({ kty: 'EC', crv: 'P-256', x: k.x, y: k.y }),
  },
  RS256: {
    import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    verify: { name: 'RSASSA-PKCS1-v1_5' },
    jwk: (k) => ({ kty: 'RSA', n: k.n, e: k.e }),
  },
};

/** Marks the internal construction by fromJwksUrl (JWKS to come from the source). */
const SOURCE = Symbol('tollgate.jwksSource');

let emptyDenylist = null;

export class Verifier {
  #policyJson;
  #cacheSize;
  #denylist;
  #clock;
  #state = null;
  #source = null;

  /**
   * @param {object} options `jwks` (object or JSON text) plus the policy options
   *   (camelCase conformance fields) and `cacheSize`, `denylist`, `clock`.
   */
  constructor(options) {
    if (options === null || typeof options !== 'object') throw new TypeError('new Verifier(options): options must be an object');
    const policy = {};
    for (const [k, v] of Object.entries(options)) {
      if (!OWN_OPTIONS.has(k) && v !== undefined) policy[k] = v;
    }
    this.#policyJson = JSON.stringify(policy);
    const cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE;
    if (!Number.isInteger(cacheSize) || cacheSize < 0 || cacheSize > 1_000_000) {
      throw new TypeError('cacheSize must be an integer from 0 to 1000000');
    }
    this.#cacheSize = cacheSize;
    this.#denylist = options.denylist ?? null;
    this.#clock = options.clock ?? Date.now;
    if (typeof this.#clock !== 'function') throw new TypeError('clock must be a function returning milliseconds');
    if (options.jwks !== undefined) {
      this.#state = this.#makeState(typeof options.jwks === 'string' ? options.jwks : JSON.stringify(options.jwks));
    } else if (!options[SOURCE]) {
      throw new TypeError('new Verifier(options): options.jwks is required (or use Verifier.fromJwksUrl)');
    }
  }

  /**
   * A verifier whose JWKS is fetched from `url` and kept fresh (see jwks-source.js).
   * Resolves once the first fetch succeeded; rejects if it did not.
   */
  static async fromJwksUrl(url, options = {}) {
    const sourceOptions = {};
    const verifierOptions = { [SOURCE]: true };
    for (const [k, v] of Object.entries(options)) {
      if (SOURCE_OPTIONS.has(k)) sourceOptions[k] = v;
      else if (k === 'jwks') throw new TypeError('fromJwksUrl: options.jwks is not allowed');
      else verifierOptions[k] = v;
    }
    const verifier = new Verifier(verifierOptions);
    sourceOptions.clock = options.clock;
    sourceOptions.parse = (text) => verifier.#makeState(text);
    const source = new JwksSource(url, sourceOptions);
    await source.refresh();
    verifier.#source = source;
    return verifier;
  }

  /** The JWKS source of a verifier made by fromJwksUrl, else null. */
  get jwksSource() {
    return this.#source;
  }

  /** Tokens held in the verified-token cache now. */
  get cacheSize() {
    return this.#current().core.cacheSize;
  }

  /** Empties the verified-token cache. */
  clearCache() {
    this.#current().core.clearCache();
  }

  /**
   * Verifies with WebCrypto. Resolves to the claims, or rejects with a TollgateError.
   * @param {string} token
   * @param {{ now?: number, denylist?: object }} [opts]
   */
  async verify(token, opts) {
    const { now, denylist } = this.#callArgs(token, opts);
    const state = this.#current();
    try {
      return await verifyWithWebCrypto(state, token, now, denylist);
    } catch (e) {
      const next = await this.#afterUnknownKey(e, state, token, true);
      return verifyWithWebCrypto(next, token, now, denylist);
    }
  }

  /** Verifies in pure Rust, synchronously. Returns the claims or throws a TollgateError. */
  verifySync(token, opts) {
    const { now, denylist } = this.#callArgs(token, opts);
    const state = this.#current();
    try {
      return JSON.parse(state.core.verify(token, now, denylist));
    } catch (e) {
      this.#afterUnknownKey(e, state, token, false);
      throw e;
    }
  }

  /** As verify(), but resolves to `{ ok, claims?, reason?, code? }` instead of rejecting. */
  async check(token, opts) {
    try {
      return { ok: true, claims: await this.verify(token, opts) };
    } catch (e) {
      return failure(e);
    }
  }

  /** As verifySync(), but returns `{ ok, claims?, reason?, code? }` instead of throwing. */
  checkSync(token, opts) {
    try {
      return { ok: true, claims: this.verifySync(token, opts) };
    } catch (e) {
      return failure(e);
    }
  }

  #makeState(jwksText) {
    const core = new CoreVerifier(jwksText, this.#policyJson, this.#cacheSize);
    const state = { core, keys: JSON.parse(jwksText).keys, cryptoKeys: new Map(), seeded: false };
    seedCache(state);
    return state;
  }

  #current() {
    let state = this.#state;
    if (this.#source) {
      this.#source.refreshIfStale();
      state = this.#source.value;
    }
    if (!state.seeded) seedCache(state);
    return state;
  }

  #callArgs(token, opts) {
    if (typeof token !== 'string') throw tokenError('malformed', 'token must be a string');
    const now = opts?.now ?? Math.floor(this.#clock() / 1000);
    if (typeof now !== 'number' || !Number.isFinite(now)) {
      throw new TollgateError('now must be a finite number of seconds since the epoch', { code: 'INVALID_ARGUMENT' });
    }
    return { now, denylist: resolveDenylist(opts?.denylist ?? this.#denylist) };
  }

  /**
   * After a rejection: when it is `unknown_key` for a `kid` this JWKS lacks and the set
   * comes from a URL, refetch (cooldown-limited). Async callers wait and get the new
   * state to retry with; sync callers only start the refetch. Rethrows otherwise.
   */
  #afterUnknownKey(e, state, token, wait) {
    if (!this.#source || !isTokenError(e) || e.reason !== 'unknown_key' || state.core.unknownKid(token) === undefined) {
      if (wait) throw e;
      return undefined;
    }
    const refreshed = this.#source.refreshForUnknownKid();
    if (!wait) return undefined;
    return refreshed.then((changed) => {
      if (!changed) throw e;
      return this.#source.value;
    });
  }
}

/**
 * Gives the state's verified-token cache its secret key. Workers refuse random numbers
 * outside a request, so a verifier made at module scope is keyed on its first call.
 */
function seedCache(state) {
  if (state.seeded) return;
  try {
    const key = new Uint8Array(16);
    globalThis.crypto.getRandomValues(key);
    state.seeded = state.core.seedCache(key);
  } catch {
    // no randomness here yet: the cache stays off until a later call can seed it
  }
}

function failure(e) {
  if (!(e instanceof TollgateError)) throw e;
  const out = { ok: false, code: e.code };
  if (e.reason !== undefined) out.reason = e.reason;
  return out;
}

/** A Denylist, or a replica holding one (RemoteDenylist), or nothing. */
function resolveDenylist(d) {
  if (d === null || d === undefined) {
    emptyDenylist ??= new Denylist();
    return emptyDenylist;
  }
  if (d instanceof Denylist) return d;
  if (typeof d === 'object' && d.denylist instanceof Denylist) {
    if (typeof d.assertFresh === 'function') d.assertFresh();
    return d.denylist;
  }
  throw new TypeError('denylist must be a Denylist or a RemoteDenylist (from the same copy of the package)');
}

async function verifyWithWebCrypto(state, token, now, denylist) {
  const work = state.core.begin(token, now, denylist);
  if (typeof work === 'string') return JSON.parse(work);
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) return JSON.parse(state.core.verify(token, now, denylist));
  const [alg, candidates, signingInput, signature] = work;
  const algo = WEBCRYPTO[alg];
  let verifiedBy = -1;
  for (const index of candidates) {
    const key = await cryptoKey(state, index, algo, subtle);
    let ok;
    try {
      // WebCrypto refused to import a key the core accepts (null): let the core check it.
      ok = key === null ? null : await subtle.verify(algo.verify, key, signature, signingInput);
    } catch {
      ok = null; // ... or it threw on an input the core judges: same.
    }
    if (ok === null) return JSON.parse(state.core.verify(token, now, denylist));
    if (ok) {
      verifiedBy = index;
      break;
    }
  }
  return JSON.parse(state.core.finish(token, verifiedBy, now, denylist));
}

function cryptoKey(state, index, algo, subtle) {
  let key = state.cryptoKeys.get(index);
  if (key === undefined) {
    key = subtle
      .importKey('jwk', algo.jwk(state.keys[index]), algo.import, false, ['verify'])
      .then((k) => {
        state.cryptoKeys.set(index, k);
        return k;
      })
      .catch(() => {
        state.cryptoKeys.set(index, null);
        return null;
      });
    state.cryptoKeys.set(index, key);
  }
  return key;
}
