// RemoteDenylist: a Denylist kept in sync with the revocation service.
//
// start(): fetches the service's signed snapshot (GET /v1/denylist), then long-polls
// signed deltas (GET /v1/denylist?since=SEQ&wait=S) in the background until stop().
// Every snapshot and delta is checked against the service's public JWK in Rust before
// it is applied. 410 (the service no longer has the events after SEQ) and a delta that
// does not continue the replica's sequence both lead to a fresh snapshot. Failures back
// off exponentially (retryMinMs → retryMaxMs) and are reported to onError.
//
// A snapshot older than the replica (the service's log went back: restored from a
// backup, reset, or an old snapshot replayed) is refused, and from then on every sync
// fails with that error (code DENYLIST_BACKWARDS) without asking the service: deltas
// after it would silently skip the events this replica never saw. Make a new
// RemoteDenylist to start over from the service's current snapshot.
//
// Staleness: the replica is stale when its last successful exchange with the service
// is older than maxStalenessSeconds. With failMode "closed" (the default) a Verifier
// given a stale replica refuses to verify (TollgateError code DENYLIST_STALE; the
// middleware answers 503 with Retry-After); with "open" it verifies against what it has.
//
// Runtimes without long-lived background work (Workers) call sync() per request or
// from ctx.waitUntil instead of start().

import { Denylist } from '../wasm/tollgate_wasm.js';
import { TollgateError } from './errors.js';

// The replication wire format version asked for: during an upgrade window the service
// answers replicas that do not ask (built before version 2) in version 1.
const WIRE = 2;

export class RemoteDenylist {
  #base;
  #token;
  #publicJwk;
  #fetch;
  #clock;
  #waitSeconds;
  #maxStalenessMs;
  #failMode;
  #retryMinMs;
  #retryMaxMs;
  #onError;
  #onUpdate;
  #hasSnapshot = false;
  #diverged = null;
  #lastSyncAt = null;
  #running = false;
  #loop = null;
  #abort = null;
  #sleep = null;
  #waiters = new Set();

  /** The replica. Pass the RemoteDenylist itself to Verifier calls to get staleness checks. */
  denylist = new Denylist();

  constructor(options) {
    if (!options || typeof options.url !== 'string') throw new TypeError('new RemoteDenylist(options): options.url is required');
    this.#base = options.url.replace(/\/+$/, '');
    this.#token = options.token ?? null;
    this.#publicJwk = options.publicJwk ?? null;
    this.#fetch = options.fetch ?? globalThis.fetch;
    if (typeof this.#fetch !== 'function') throw new TypeError('no fetch available: pass options.fetch');
    this.#clock = options.clock ?? Date.now;
    this.#waitSeconds = options.waitSeconds ?? 5;
    this.#maxStalenessMs = (options.maxStalenessSeconds ?? 10) * 1000;
    this.#failMode = options.failMode ?? 'closed';
    if (this.#failMode !== 'closed' && this.#failMode !== 'open') throw new TypeError('failMode must be "closed" or "open"');
    this.#retryMinMs = options.retryMinMs ?? 250;
    this.#retryMaxMs = options.retryMaxMs ?? 5000;
    this.#onError = options.onError ?? null;
    this.#onUpdate = options.onUpdate ?? null;
  }

  /** The replica's sequence number. */
  get seq() {
    return this.denylist.seq;
  }

  /** Entries in the replica. */
  get size() {
    return this.denylist.size;
  }

  /** When the last exchange with the service succeeded (ms since the epoch), or null. */
  get lastSyncAt() {
    return this.#lastSyncAt;
  }

  /** Whether the replica is older than maxStalenessSeconds (or never synced). */
  get stale() {
    return this.#lastSyncAt === null || this.#clock() - this.#lastSyncAt > this.#maxStalenessMs;
  }

  /** Throws DENYLIST_STALE when stale under failMode "closed" (Verifier calls this). */
  assertFresh() {
    if (this.#failMode === 'closed' && this.stale) {
      throw new TollgateError('the denylist replica is staler than its bound', { code: 'DENYLIST_STALE' });
    }
  }

  /** Takes the first snapshot (rejecting if that fails), then long-polls in the background. */
  async start() {
    if (this.#running) return this;
    await this.#snapshot(undefined);
    this.#running = true;
    this.#loop = this.#run();
    return this;
  }

  /** Stops the background loop and waits for it to end. */
  async stop() {
    this.#running = false;
    this.#abort?.abort();
    this.#sleep?.();
    await this.#loop;
    this.#loop = null;
  }

  /** One exchange: a snapshot when there is none yet, else one delta (long-polled up to waitSeconds). */
  async sync({ waitSeconds = 0, signal } = {}) {
    if (this.#diverged) throw this.#diverged;
    if (!this.#hasSnapshot) return this.#snapshot(signal);
    return this.#delta(waitSeconds, signal);
  }

  /** Resolves when the replica has reached `seq`; rejects after timeoutMs. */
  waitForSeq(seq, { timeoutMs = 5000 } = {}) {
    if (this.seq >= seq) return Promise.resolve(this.seq);
    return new Promise((resolve, reject) => {
      const waiter = {
        seq,
        resolve: (s) => {
          clearTimeout(timer);
          resolve(s);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new TollgateError(`denylist did not reach seq ${seq} within ${timeoutMs} ms (at ${this.seq})`, { code: 'DENYLIST_TIMEOUT' }));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  async #run() {
    let delay = this.#retryMinMs;
    while (this.#running) {
      this.#abort = new AbortController();
      try {
        await this.#delta(this.#waitSeconds, this.#abort.signal);
        delay = this.#retryMinMs;
      } catch (e) {
        if (!this.#running) break;
        this.#report(e);
        await new Promise((resolve) => {
          const t = setTimeout(resolve, delay);
          this.#sleep = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.#sleep = null;
        delay = Math.min(delay * 2, this.#retryMaxMs);
      }
    }
  }

  async #snapshot(signal) {
    const key = await this.#key(signal);
    const res = await this.#get(`/v1/denylist?wire=${WIRE}`, signal);
    if (!res.ok) throw await httpError(res, 'snapshot');
    const bytes = new Uint8Array(await res.arrayBuffer());
    try {
      this.denylist.applySnapshot(bytes, key);
    } catch (e) {
      if (e?.code === 'DENYLIST_BACKWARDS') this.#diverged = e;
      throw e;
    }
    this.#hasSnapshot = true;
    this.#synced();
  }

  async #delta(waitSeconds, signal) {
    const key = await this.#key(signal);
    const res = await this.#get(`/v1/denylist?since=${this.seq}&wait=${waitSeconds}&wire=${WIRE}`, signal);
    if (res.status === 410) {
      await res.body?.cancel();
      return this.#snapshot(signal);
    }
    if (!res.ok) throw await httpError(res, 'delta');
    // Only a signed delta counts as hearing from the service: an empty or unsigned
    // answer (anything on the way could forge one) leaves the replica as stale as it was.
    const bytes = new Uint8Array(await res.arrayBuffer());
    try {
      this.denylist.applyDelta(bytes, key);
    } catch (e) {
      // The delta does not continue this replica: start again from a snapshot.
      if (e?.code === 'DENYLIST_GAP' || e?.code === 'DENYLIST_NO_SNAPSHOT') return this.#snapshot(signal);
      throw e;
    }
    this.#synced();
    return undefined;
  }

  async #key(signal) {
    if (this.#publicJwk === null) {
      // Trust on first use: pin publicJwk in production.
      const res = await this.#get('/v1/denylist/key', signal, 'application/json');
      if (!res.ok) throw await httpError(res, 'key');
      this.#publicJwk = await res.json();
    }
    return this.#publicJwk;
  }

  #get(path, signal, accept = 'application/octet-stream') {
    const headers = { accept };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    return this.#fetch(this.#base + path, { headers, signal });
  }

  #synced() {
    this.#lastSyncAt = this.#clock();
    const seq = this.seq;
    for (const w of this.#waiters) {
      if (seq >= w.seq) {
        this.#waiters.delete(w);
        w.resolve(seq);
      }
    }
    if (this.#onUpdate) this.#onUpdate(seq);
  }

  #report(e) {
    if (this.#onError) this.#onError(e);
  }
}

async function httpError(res, what) {
  let detail = '';
  try {
    detail = (await res.text()).slice(0, 200);
  } catch {
    // the body is only a courtesy
  }
  return new TollgateError(`denylist ${what} request answered ${res.status}${detail ? `: ${detail}` : ''}`, {
    code: 'DENYLIST_FETCH',
  });
}
