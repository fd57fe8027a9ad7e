// A JWKS fetched from a URL and kept fresh, for Verifier.fromJwksUrl.
//
// - The document is cached for its Cache-Control max-age, clamped to
//   [minTtlSeconds, maxTtlSeconds] (defaultTtlSeconds without one). Once stale, the next
//   verification starts a refetch in the background and goes on with the set it has.
// - A token whose `kid` the set does not hold may trigger a refetch, at most once per
//   cooldownSeconds (default 30), so random `kid`s cannot cause a fetch storm.
// - Concurrent callers share one in-flight fetch.
// - A failed fetch, or a document that does not parse, keeps the last good set (and
//   waits at least the cooldown before the next background try).
// - `parse(text)` turns a document into the value callers use (the verifier's core
//   state); an unchanged document keeps its value, and so the verified-token cache.

import { TollgateError } from './errors.js';

export class JwksSource {
  #url;
  #fetch;
  #clock;
  #parse;
  #headers;
  #cooldownMs;
  #minTtlMs;
  #maxTtlMs;
  #defaultTtlMs;
  #timeoutMs;
  #onError;
  #text = null;
  #value = null;
  #expiresAt = 0;
  #lastUnknownKidFetchAt = -Infinity;
  #inflight = null;

  /** Fetches made (for tests and metrics). */
  fetchCount = 0;
  /** The last fetch or parse error, or null. */
  lastError = null;

  constructor(url, options = {}) {
    this.#url = String(url);
    this.#fetch = options.fetch ?? globalThis.fetch;
    if (typeof this.#fetch !== 'function') throw new TypeError('no fetch available: pass options.fetch');
    this.#clock = options.clock ?? Date.now;
    this.#parse = options.parse ?? ((text) => JSON.parse(text));
    this.#headers = options.headers ?? {};
    this.#cooldownMs = nonNegative(options.cooldownSeconds, 30, 'cooldownSeconds') * 1000;
    this.#minTtlMs = nonNegative(options.minTtlSeconds, 30, 'minTtlSeconds') * 1000;
    this.#maxTtlMs = nonNegative(options.maxTtlSeconds, 86400, 'maxTtlSeconds') * 1000;
    this.#defaultTtlMs = nonNegative(options.defaultTtlSeconds, 300, 'defaultTtlSeconds') * 1000;
    this.#timeoutMs = nonNegative(options.timeoutMs, 5000, 'timeoutMs');
    this.#onError = options.onError ?? null;
  }

  /** The URL. */
  get url() {
    return this.#url;
  }

  /** The current parsed value (null before the first successful fetch). */
  get value() {
    return this.#value;
  }

  /** Whether the cached document is past its lifetime. */
  get stale() {
    return this.#clock() >= this.#expiresAt;
  }

  /** Fetches now (sharing an in-flight fetch); resolves to whether the document changed. */
  refresh() {
    if (!this.#inflight) {
      this.#inflight = this.#fetchOnce().finally(() => {
        this.#inflight = null;
      });
    }
    return this.#inflight;
  }

  /** Resolves when no fetch is in flight (never rejects). */
  whenIdle() {
    return this.#inflight ? this.#inflight.then(
      () => undefined,
      () => undefined,
    ) : Promise.resolve();
  }

  /** Starts a background refetch when the document is stale; never throws. */
  refreshIfStale() {
    if (this.stale && !this.#inflight) this.refresh().catch(() => {});
  }

  /**
   * A token named a `kid` the set lacks: refetch unless one was done for that reason
   * within the cooldown (then join any fetch in flight). Resolves to whether the set
   * changed; never rejects.
   */
  async refreshForUnknownKid() {
    const now = this.#clock();
    if (now - this.#lastUnknownKidFetchAt < this.#cooldownMs) {
      if (!this.#inflight) return false;
      return this.#inflight.catch(() => false);
    }
    this.#lastUnknownKidFetchAt = now;
    return this.refresh().catch(() => false);
  }

  async #fetchOnce() {
    this.fetchCount += 1;
    const started = this.#clock();
    try {
      const signal = typeof AbortSignal?.timeout === 'function' ? AbortSignal.timeout(this.#timeoutMs) : undefined;
      const res = await this.#fetch(this.#url, { headers: { accept: 'application/json', ...this.#headers }, signal });
      if (!res.ok) {
        throw new TollgateError(`JWKS fetch from ${this.#url} answered ${res.status}`, { code: 'JWKS_FETCH' });
      }
      const text = await res.text();
      const ttl = ttlFrom(res.headers.get('cache-control'), this.#defaultTtlMs, this.#minTtlMs, this.#maxTtlMs);
      if (text === this.#text) {
        this.#expiresAt = started + ttl;
        return false;
      }
      const value = this.#parse(text);
      this.#text = text;
      this.#value = value;
      this.#expiresAt = started + ttl;
      this.lastError = null;
      return true;
    } catch (e) {
      const err =
        e instanceof TollgateError ? e : new TollgateError(`JWKS fetch from ${this.#url} failed: ${e?.message ?? e}`, { code: 'JWKS_FETCH', cause: e });
      this.lastError = err;
      // Keep the last good set; try again in the background no sooner than the cooldown.
      this.#expiresAt = started + Math.max(this.#cooldownMs, 1000);
      if (this.#onError) this.#onError(err);
      throw err;
    }
  }
}

/** The lifetime a Cache-Control header gives, clamped. */
export function ttlFrom(cacheControl, defaultMs, minMs, maxMs) {
  let ttl = defaultMs;
  if (cacheControl) {
    const cc = cacheControl.toLowerCase();
    const m = /(?:^|[,\s])max-age\s*=\s*"?(\d+)"?/.exec(cc);
    if (/(?:^|[,\s])(?:no-store|no-cache)(?:$|[,\s=])/.test(cc)) ttl = 0;
    else if (m) ttl = Number(m[1]) * 1000;
  }
  return Math.min(Math.max(ttl, minMs), maxMs);
}

function nonNegative(v, dflt, name) {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new TypeError(`${name} must be a non-negative number`);
  return v;
}
