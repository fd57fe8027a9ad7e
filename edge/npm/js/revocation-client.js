// RevocationClient: a typed client of the revocation service on `fetch`
// (revocation-service/openapi.yaml is the source of truth). The twin of tollgate-origin's
// RevocationClient (origin/src/client.rs):
//
// - Idempotency: each logical call makes one key (128 random bits) and sends it on every
//   retry, per event as `idempotency_key` (`<key>.<i>` in a batch); sessions and
//   rotations are idempotent by content at the service. A retry after a lost answer
//   gets the original `seq` with `duplicate: true`: nothing is appended twice.
// - Retries: only on connection errors, timeouts and 503, never on another status; at
//   most `retry.maxAttempts` attempts, backoff doubling from `retry.baseMs` to
//   `retry.maxMs` with "equal jitter" (half the step plus a random part of the other
//   half), at least the service's `Retry-After`; each attempt bounded by
//   `attemptTimeoutMs`, the whole call by `callTimeoutMs`.
// - Errors: TollgateError with `code`:
//     SERVICE_ERROR  the service refused (`status`, `kind` = its `error` as sent,
//                    `detail`, `retryAfter`, `body`)
//     UNREACHABLE    every attempt failed to connect or was cut (`attempts`)
//     DEADLINE       the call's time ran out (`attempts`)
//     PROTOCOL       an answer the API does not describe (a redirect, bad JSON, ...)
//     INVALID_OPTIONS a bad configuration or argument
// - Redirects are never followed (the API key must not travel to another host), and
//   `http://` is accepted only for a loopback host unless `allowPlainHttp` says so.

import { randomId } from './b64.js';
import { TollgateError } from './errors.js';
import { isLoopbackUrl } from './url.js';

/** Default timeout of one attempt, ms. */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 5000;
/** Default timeout of one call, retries included, ms. */
export const DEFAULT_CALL_TIMEOUT_MS = 15_000;
/** Default life of an entry posted without `exp`: a 15-minute access token + 5 minutes. */
export const DEFAULT_ENTRY_LIFE_SECONDS = 20 * 60;
/** Longest `wait` of one long-poll of waitForEdge, seconds (the service's default cap). */
export const MAX_LONG_POLL_SECONDS = 30;
/** Default retry policy. */
export const DEFAULT_RETRY = Object.freeze({ maxAttempts: 4, baseMs: 100, maxMs: 2000 });

const MAX_BATCH = 1000;

function config(message) {
  return new TollgateError(message, { code: 'INVALID_OPTIONS' });
}

function protocol(message, cause) {
  return new TollgateError(message, cause === undefined ? { code: 'PROTOCOL' } : { code: 'PROTOCOL', cause });
}

/** A key for an Authorization header: printable ASCII, no spaces. */
function checkKey(name, k) {
  if (typeof k !== 'string' || k.length === 0 || !/^[\x21-\x7e]+$/.test(k)) throw config(`${name}: expected printable ASCII without spaces`);
  return k;
}

export class RevocationClient {
  #base;
  #apiKey;
  #readKey;
  #attemptMs;
  #callMs;
  #retry;
  #entryLife;
  #fetch;
  #clock;
  #random;

  /**
   * @param {object} options `url` (the service's base URL), `apiKey` (`events:write`),
   *   `readKey` (`denylist:read`, for waitForEdge; default apiKey), `attemptTimeoutMs`,
   *   `callTimeoutMs`, `retry` ({maxAttempts, baseMs, maxMs}), `entryLifeSeconds`,
   *   `allowPlainHttp`, `fetch`, `clock` (ms).
   */
  constructor(options) {
    if (!options || typeof options !== 'object') throw config('new RevocationClient(options): options is required');
    let url;
    try {
      url = new URL(options.url);
    } catch {
      throw config(`url: not a URL: ${JSON.stringify(options.url)}`);
    }
    if (url.protocol === 'http:') {
      if (!options.allowPlainHttp && !isLoopbackUrl(url)) {
        throw config('url: plain http to a host that is not loopback would send the API key in the clear; use https (or set allowPlainHttp)');
      }
    } else if (url.protocol !== 'https:') {
      throw config(`url: unsupported scheme ${url.protocol}`);
    }
    if (url.search || url.hash || url.username || url.password) throw config('url: a base URL without query, fragment or credentials');
    this.#base = url.href.replace(/\/+$/, '');
    this.#apiKey = checkKey('apiKey', options.apiKey);
    this.#readKey = options.readKey === undefined ? null : checkKey('readKey', options.readKey);
    this.#attemptMs = positive('attemptTimeoutMs', options.attemptTimeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS);
    this.#callMs = positive('callTimeoutMs', options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS);
    const retry = { ...DEFAULT_RETRY, ...(options.retry ?? {}) };
    if (!Number.isInteger(retry.maxAttempts) || retry.maxAttempts < 1) throw config('retry.maxAttempts: at least 1');
    positive('retry.baseMs', retry.baseMs);
    positive('retry.maxMs', retry.maxMs);
    this.#retry = Object.freeze(retry);
    this.#entryLife = positive('entryLifeSeconds', options.entryLifeSeconds ?? DEFAULT_ENTRY_LIFE_SECONDS);
    this.#fetch = options.fetch ?? globalThis.fetch;
    if (typeof this.#fetch !== 'function') throw config('no fetch available: pass options.fetch');
    this.#clock = options.clock ?? Date.now;
    this.#random = options.random ?? Math.random;
  }

  /** The service's base URL. */
  get url() {
    return this.#base;
  }

  /** The retry policy in force. */
  get retry() {
    return this.#retry;
  }

  /**
   * Starts a refresh family (at login): POST /v1/sessions. Resolves to
   * `{ status: "started", seq, duplicate }` (a retried start: the original seq).
   */
  async startSession({ sid, sub, refreshJti, exp, iss } = {}) {
    const body = { sid: id('sid', sid), sub: id('sub', sub), refresh_jti: id('refreshJti', refreshJti), exp: secs('exp', exp) };
    if (iss !== undefined) body.iss = id('iss', iss);
    const a = await this.#post('/v1/sessions', body);
    if (a.status === 201 || a.status === 200) return a.json;
    throw a.error();
  }

  /**
   * Rotates a refresh token: POST /v1/refresh/rotate. Resolves to
   * `{ outcome: "rotated", seq, duplicate, grace }` or, when an earlier token of the
   * family was presented, `{ outcome: "reuse_detected", seq }` (the family is already
   * revoked at the edge). Other refusals (session_revoked, unknown_session,
   * unknown_token, jti_conflict, issuer_mismatch) reject with SERVICE_ERROR.
   */
  async rotate({ sid, presentedJti, nextJti, exp, iss } = {}) {
    const body = { sid: id('sid', sid), presented_jti: id('presentedJti', presentedJti), next_jti: id('nextJti', nextJti), exp: secs('exp', exp) };
    if (iss !== undefined) body.iss = id('iss', iss);
    const a = await this.#post('/v1/refresh/rotate', body);
    if (a.status === 200) {
      const r = a.json;
      if (typeof r?.seq !== 'number') throw protocol('rotate: no seq in the answer');
      return { outcome: 'rotated', seq: r.seq, duplicate: r.duplicate === true, grace: r.grace === true };
    }
    const e = a.error();
    if (a.status === 409 && e.kind === 'reuse_detected') return { outcome: 'reuse_detected', seq: typeof a.json?.seq === 'number' ? a.json.seq : null };
    throw e;
  }

  /** Ends session `sid` (logout event): `{ seq, kind, duplicate }`. Options: `iss`, `exp`. */
  logout(sid, options = {}) {
    return this.post({ kind: 'logout', sid, ...options });
  }

  /** Revokes the token with this `jti`. Options: `iss`, `exp` (default now + entryLife). */
  revokeToken(jti, options = {}) {
    return this.post({ kind: 'revoke_token', jti, ...options });
  }

  /** Revokes every token of `sub` issued before `before` (seconds): "log out everywhere". */
  revokeSubject(sub, before, options = {}) {
    return this.post({ kind: 'revoke_subject', sub, before, ...options });
  }

  /** Posts one event `{ kind, jti|sid|sub, before?, iss?, exp? }`: `{ seq, kind, duplicate }`. */
  async post(event) {
    const [one] = await this.#postEvents([event], false);
    return one;
  }

  /** Posts a batch (1 to 1000 events), appended whole or not at all: one ack per event, in order. */
  postBatch(events) {
    if (!Array.isArray(events) || events.length === 0 || events.length > MAX_BATCH) throw config(`postBatch: 1 to ${MAX_BATCH} events`);
    return this.#postEvents(events, true);
  }

  async #postEvents(events, batch) {
    const key = randomId();
    const now = Math.floor(this.#clock() / 1000);
    const items = events.map((e, i) => eventJson(e, now, this.#entryLife, batch ? `${key}.${i}` : key));
    const a = await this.#post('/v1/events', batch ? { events: items } : items[0]);
    if (a.status !== 200) throw a.error();
    const accepted = a.json?.accepted;
    if (!Array.isArray(accepted) || accepted.length !== events.length) {
      throw protocol(`${events.length} events posted, ${Array.isArray(accepted) ? accepted.length : 'no'} accepted`);
    }
    return accepted;
  }

  /** The service's public denylist key (GET /v1/denylist/key), to pin in RemoteDenylist. */
  async fetchDenylistKey() {
    const a = await this.#call('GET', '/v1/denylist/key', this.#readKey ?? this.#apiKey, undefined, this.#callMs, 0);
    if (a.status !== 200) throw a.error();
    return a.json;
  }

  /**
   * Waits until the service replicates the denylist up to `seq` (an event's sequence
   * number): long-polls GET /v1/denylist?since=…&wait=… with the read key until a
   * delta reaches `seq` (X-Tollgate-Seq), within `timeoutMs` (default 5000). Resolves
   * to the sequence number reached; rejects with DEADLINE. For tests and demos: a
   * replica that keeps up (RemoteDenylist.waitForSeq for the replica itself) holds the
   * event on its next poll.
   */
  async waitForEdge(seq, { timeoutMs = 5000 } = {}) {
    if (!Number.isInteger(seq) || seq < 1) throw config('waitForEdge: seq must be a positive integer');
    const deadline = performance.now() + timeoutMs;
    const key = this.#readKey ?? this.#apiKey;
    let since = seq - 1;
    let attempts = 0;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) throw new TollgateError(`the denylist did not reach seq ${seq} within ${timeoutMs} ms (at ${since})`, { code: 'DEADLINE', attempts });
      attempts += 1;
      const wait = Math.min(Math.floor(left / 1000), MAX_LONG_POLL_SECONDS);
      let a = await this.#call('GET', `/v1/denylist?since=${since}&wait=${wait}`, key, undefined, left, wait * 1000, 'application/octet-stream');
      if (a.status === 410) a = await this.#call('GET', '/v1/denylist', key, undefined, Math.max(1, deadline - performance.now()), 0, 'application/octet-stream');
      if (a.status !== 200) throw a.error();
      const reached = Number(a.headers.get('x-tollgate-seq'));
      if (!Number.isInteger(reached)) throw protocol('denylist answer without X-Tollgate-Seq');
      if (reached >= seq) return reached;
      if (reached === since && wait === 0) await sleep(20);
      since = reached;
    }
  }

  #post(path, body) {
    return this.#call('POST', path, this.#apiKey, JSON.stringify(body), this.#callMs, 0);
  }

  /** One logical call: attempts with retries, within `budgetMs`. */
  async #call(method, path, key, body, budgetMs, extraMs, accept = 'application/json') {
    const deadline = performance.now() + budgetMs;
    const url = this.#base + path;
    const headers = { authorization: `Bearer ${key}`, accept };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let last = '';
    for (let attempt = 1; ; attempt++) {
      const left = deadline - performance.now();
      if (left <= 0) throw new TollgateError(`${method} ${path}: no answer within the call's ${budgetMs} ms (${attempt - 1} attempts; last: ${last})`, { code: 'DEADLINE', attempts: attempt - 1 });
      const limit = Math.min(this.#attemptMs + extraMs, left);
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), limit);
      let res;
      let bytes;
      let retryAfter = 0;
      try {
        res = await this.#fetch(url, { method, headers, body, redirect: 'manual', signal: ac.signal });
        bytes = new Uint8Array(await res.arrayBuffer());
      } catch (e) {
        clearTimeout(timer);
        last = ac.signal.aborted ? `attempt timed out after ${Math.round(limit)} ms` : `connection failed: ${e?.cause?.code ?? e?.message ?? e}`;
        if (attempt >= this.#retry.maxAttempts) {
          const code = ac.signal.aborted ? 'DEADLINE' : 'UNREACHABLE';
          throw new TollgateError(`${method} ${path}: ${last} (${attempt} attempts)`, { code, attempts: attempt, cause: e });
        }
        await this.#backoff(attempt, 0, deadline);
        continue;
      }
      clearTimeout(timer);
      const answer = new Answer(method, path, res, bytes);
      if (res.status >= 300 && res.status < 400) throw protocol(`${method} ${path}: redirect (${res.status}) not followed`);
      if (res.status !== 503) return answer;
      retryAfter = answer.retryAfter ?? 0;
      last = `503 ${answer.kind ?? ''}`.trim();
      if (attempt >= this.#retry.maxAttempts) throw answer.error(attempt);
      if (deadline - performance.now() <= retryAfter * 1000) throw answer.error(attempt);
      await this.#backoff(attempt, retryAfter, deadline);
    }
  }

  #backoff(attempt, retryAfterSeconds, deadline) {
    const step = Math.min(this.#retry.baseMs * 2 ** (attempt - 1), this.#retry.maxMs);
    let ms = step / 2 + this.#random() * (step / 2);
    ms = Math.max(ms, retryAfterSeconds * 1000);
    ms = Math.min(ms, Math.max(0, deadline - performance.now()));
    return sleep(ms);
  }
}

/** An HTTP answer, body read. */
class Answer {
  constructor(method, path, res, bytes) {
    this.method = method;
    this.path = path;
    this.status = res.status;
    this.headers = res.headers;
    this.bytes = bytes;
    this.text = new TextDecoder().decode(bytes);
    try {
      this.json = this.text ? JSON.parse(this.text) : null;
    } catch {
      this.json = undefined;
    }
    const ra = res.headers.get('retry-after');
    this.retryAfter = ra !== null && /^\d+$/.test(ra.trim()) ? Number(ra.trim()) : null;
    this.kind = typeof this.json?.error === 'string' ? this.json.error : null;
    if ((this.status === 200 || this.status === 201) && (this.json === undefined || this.json === null) && res.headers.get('content-type')?.includes('json')) {
      throw protocol(`${method} ${path}: ${this.status} without a JSON body`);
    }
  }

  error(attempts) {
    const detail = typeof this.json?.detail === 'string' ? this.json.detail : this.text.slice(0, 200);
    return new TollgateError(`${this.method} ${this.path}: ${this.status} ${this.kind ?? 'without an error kind'}${detail ? `: ${detail}` : ''}`, {
      code: 'SERVICE_ERROR',
      status: this.status,
      kind: this.kind ?? `http_${this.status}`,
      detail,
      retryAfter: this.retryAfter ?? undefined,
      body: this.json ?? undefined,
      attempts,
    });
  }
}

function eventJson(e, now, life, key) {
  if (!e || typeof e !== 'object') throw config('event: an object');
  const kinds = { revoke_token: ['jti'], logout: ['sid'], revoke_subject: ['sub'], reuse_detected: ['sid', 'jti'] };
  const need = kinds[e.kind];
  if (!need) throw config(`event.kind: one of ${Object.keys(kinds).join(', ')}`);
  const out = { kind: e.kind };
  for (const f of need) out[f] = id(f, e[f]);
  if (e.kind === 'revoke_subject') out.before = secs('before', e.before);
  if (e.iss !== undefined) out.iss = id('iss', e.iss);
  out.exp = e.exp !== undefined ? secs('exp', e.exp) : (e.kind === 'revoke_subject' ? Math.max(out.before, now) : now) + life;
  out.idempotency_key = key;
  return out;
}

function id(name, v) {
  if (typeof v !== 'string' || v.length === 0) throw config(`${name}: a non-empty string`);
  return v;
}

function secs(name, v) {
  if (!Number.isInteger(v) || v < 0) throw config(`${name}: whole seconds since the epoch`);
  return v;
}

function positive(name, v) {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw config(`${name}: a positive number`);
  return v;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
