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
//
// Acceptance (the core's rules, applied in Rust to every message): a snapshot or delta
// whose signed creation time is more than maxStalenessSeconds before the clock is
// refused (DENYLIST_TOO_OLD: a replayed old message cannot pass for fresh, and the
// replica stays as stale as it was); one from another epoch of the service (its data
// directory was replaced) than the one the replica follows is refused (DENYLIST_EPOCH),
// and so is one below the replica's sequence (DENYLIST_BACKWARDS). An epoch or
// backwards refusal of a snapshot is final for this RemoteDenylist: from then on every
// sync fails with it without asking the service.
//
// High-water mark across restarts and isolates (`highWaterMark: { load(), save(mark) }`,
// either may return a promise): the mark is opaque text (`tg1:<epoch>:<seq>`; load()
// may also give null, or a bare sequence number saved by an older version). A new
// replica starts from the stored mark, so its first snapshot must come from the same
// epoch and not be below it (DENYLIST_EPOCH / DENYLIST_BACKWARDS, and the replica stays
// without data, so stale), and every new mark is saved. So an old snapshot replayed to
// a restarted process, or a service rolled back or replaced, is refused as it is within
// one process. `rebootstrap: true` (asked for by name, after restoring or replacing the
// service's data) accepts the service's next snapshot whatever the mark and saves the
// new mark. A mark that cannot be loaded or read fails start()/sync() (closed); a
// failed save goes to onError and is retried on the next sync.
//
// Push mode (`transport: "hub-ws"`, `url` the revocation hub's
// `wss://{worker}/__tollgate/hub/{tenant}/ws`): instead of long-polling, start() opens a
// WebSocket to the hub (hub-subscription.js), asks `{"since": SEQ}` and applies every
// signed message the hub pushes through the same path as the HTTP answers: snapshot or
// delta by the message's magic, the same key, acceptance rules, high-water mark,
// onUpdate and onError. The ask is repeated every pingSeconds (default
// min(maxStalenessSeconds / 3, 5)); the hub answers it at the head with a signed
// heartbeat, and only that keeps the replica fresh: an open socket proves nothing. The
// hub keeps the signer's snapshot and deltas as they were signed, so a catch-up carries
// old messages: one signed longer ago than maxStalenessSeconds is history, applied when
// it moves the replica forward and never counted as fresh; one that adds nothing (a
// replayed heartbeat) is refused (DENYLIST_TOO_OLD). start() resolves on the first
// message signed within the bound, and rejects (DENYLIST_TOO_OLD, or DENYLIST_FETCH when
// nothing came) if none has come within maxStalenessSeconds. A message that cannot be applied (a gap, a bad signature) leads to an ask with the
// sequence held; a socket that closes is reopened with the retry backoff. The
// `publicJwk` is the signer's: the service's when the hub relays it, the hub's in log
// mode. sync() has no meaning there (the socket drives the replica) and rejects.
//
// Configuration refused at construction (TollgateError code INVALID_OPTIONS): a URL that
// is `http://` (`ws://` in push mode) to a host other than loopback (127.0.0.0/8, ::1,
// localhost): replication elsewhere needs `https://` (`wss://`); a missing `publicJwk`:
// the service's key is pinned in configuration, never fetched from the service it is
// meant to authenticate (no trust on first use); push mode without a WebSocket (neither
// `options.WebSocket` nor a global one) or with pingSeconds below 0.12 (asks are spaced by 120 ms).

import { Acceptance, Denylist } from '../wasm/tollgate_wasm.js';
import { TollgateError } from './errors.js';
import { ASK_SPACING_MS, HubSubscription } from './hub-subscription.js';
import { isLoopbackUrl } from './url.js';

// The replication wire format version asked for: during an upgrade window the service
// answers replicas that do not ask (built before version 2) in version 1.
const WIRE = 2;

// The transports, by `options.transport`: the URL schemes each takes (plain, then TLS).
const TRANSPORTS = {
  'long-poll': ['http:', 'https:'],
  'hub-ws': ['ws:', 'wss:'],
};

// Push mode's default ping: at most this many seconds apart (and a third of the bound).
const PING_MAX_SECONDS = 5;

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
  #mark;
  #markSaved = null;
  #legacyFloor = 0;
  #acceptance = null;
  #rebootstrap;
  #transport;
  #push = null;

  /** The replica. Pass the RemoteDenylist itself to Verifier calls to get staleness checks. */
  denylist = new Denylist();

  constructor(options) {
    if (!options || typeof options.url !== 'string') throw new TypeError('new RemoteDenylist(options): options.url is required');
    let url;
    try {
      url = new URL(options.url);
    } catch {
      throw optionsError(`RemoteDenylist url: not a URL: ${JSON.stringify(options.url)}`);
    }
    this.#transport = options.transport ?? 'long-poll';
    if (!Object.hasOwn(TRANSPORTS, this.#transport)) {
      throw optionsError(`RemoteDenylist transport: ${JSON.stringify(options.transport)}; expected "long-poll" or "hub-ws"`);
    }
    const schemes = TRANSPORTS[this.#transport];
    const [plain, tls] = schemes;
    if (url.protocol === plain && !isLoopbackUrl(url)) {
      throw optionsError(
        `RemoteDenylist url: plain ${plain.slice(0, -1)} to ${url.hostname}, which is not loopback: replication must use ${tls}// (${plain}// only for 127.0.0.0/8, ::1, localhost)`,
      );
    }
    if (!schemes.includes(url.protocol)) {
      const hint = this.#transport === 'long-poll' && TRANSPORTS['hub-ws'].includes(url.protocol) ? ' (for the hub\'s WebSocket push: transport: "hub-ws")' : '';
      throw optionsError(`RemoteDenylist url: unsupported scheme ${url.protocol} for transport ${this.#transport}${hint}`);
    }
    this.#base = options.url.replace(/\/+$/, '');
    this.#token = options.token ?? null;
    if (options.publicJwk === undefined || options.publicJwk === null || options.publicJwk === '') {
      throw optionsError(
        'RemoteDenylist publicJwk is required: pin the service\'s public key (tollgate-revocation prints it; GET /v1/denylist/key over a channel you trust); it is never fetched on first use',
      );
    }
    this.#publicJwk = options.publicJwk;
    this.#clock = options.clock ?? Date.now;
    this.#waitSeconds = options.waitSeconds ?? 5;
    const maxStalenessSeconds = options.maxStalenessSeconds ?? 10;
    this.#maxStalenessMs = maxStalenessSeconds * 1000;
    let WebSocketImpl = null;
    let pingMs = 0;
    if (this.#transport === 'hub-ws') {
      WebSocketImpl = options.WebSocket ?? globalThis.WebSocket;
      if (typeof WebSocketImpl !== 'function') {
        throw optionsError('RemoteDenylist transport "hub-ws": no WebSocket in this runtime: pass options.WebSocket (a constructor taking (url, { headers }), e.g. the ws package)');
      }
      const pingSeconds = options.pingSeconds ?? Math.max(Math.min(maxStalenessSeconds / 3, PING_MAX_SECONDS), ASK_SPACING_MS / 1000);
      if (typeof pingSeconds !== 'number' || !(pingSeconds * 1000 >= ASK_SPACING_MS)) {
        throw optionsError(`RemoteDenylist pingSeconds: ${JSON.stringify(options.pingSeconds)}; a number of seconds, at least ${ASK_SPACING_MS / 1000} (the hub refuses asks closer than 100 ms)`);
      }
      pingMs = pingSeconds * 1000;
    } else {
      this.#fetch = options.fetch ?? globalThis.fetch;
      if (typeof this.#fetch !== 'function') throw new TypeError('no fetch available: pass options.fetch');
    }
    this.#failMode = options.failMode ?? 'closed';
    if (this.#failMode !== 'closed' && this.#failMode !== 'open') throw new TypeError('failMode must be "closed" or "open"');
    this.#retryMinMs = options.retryMinMs ?? 250;
    this.#retryMaxMs = options.retryMaxMs ?? 5000;
    this.#onError = options.onError ?? null;
    this.#onUpdate = options.onUpdate ?? null;
    this.#mark = options.highWaterMark ?? null;
    if (this.#mark !== null && (typeof this.#mark.load !== 'function' || typeof this.#mark.save !== 'function')) {
      throw optionsError('RemoteDenylist highWaterMark: an object with load() and save(mark)');
    }
    this.#rebootstrap = options.rebootstrap === true;
    if (this.#mark === null) this.#acceptance = new Acceptance(this.#maxStalenessMs / 1000, null);
    if (this.#transport === 'hub-ws') {
      this.#push = new HubSubscription({
        url: this.#base,
        token: this.#token,
        WebSocket: WebSocketImpl,
        pingMs,
        retryMinMs: this.#retryMinMs,
        retryMaxMs: this.#retryMaxMs,
        since: () => (this.#hasSnapshot ? this.seq : null),
        apply: (bytes, kind) => this.#pushed(bytes, kind),
        report: (e) => this.#report(e),
        halted: () => this.#diverged,
        firstWithinMs: this.#maxStalenessMs,
      });
    }
  }

  /** How the replica follows the service: "long-poll" (HTTP) or "hub-ws" (the hub's push). */
  get transport() {
    return this.#transport;
  }

  /** The replica's high-water mark (`tg1:<epoch>:<seq>`, what highWaterMark.save gets), or null before the first snapshot. */
  get highWaterMark() {
    return this.#acceptance?.highWaterMark ?? null;
  }

  /** The service epoch the replica follows (32 hex digits), or null before the first snapshot. */
  get epoch() {
    return this.#acceptance?.epoch ?? null;
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

  /**
   * Takes the first snapshot (rejecting if that fails), then long-polls in the background;
   * in push mode, opens the hub's socket and resolves once the first message signed within
   * the staleness bound is applied.
   */
  async start() {
    if (this.#running) return this;
    if (this.#push !== null) {
      if (this.#diverged) throw this.#diverged;
      this.#running = true;
      try {
        await this.#push.start();
      } catch (e) {
        this.#running = false;
        throw e;
      }
      return this;
    }
    await this.#snapshot(undefined);
    this.#running = true;
    this.#loop = this.#run();
    return this;
  }

  /** Stops the background loop (push mode: closes the socket) and waits for it to end. */
  async stop() {
    this.#running = false;
    if (this.#push !== null) {
      await this.#push.stop();
      return;
    }
    this.#abort?.abort();
    this.#sleep?.();
    await this.#loop;
    this.#loop = null;
  }

  /** One exchange: a snapshot when there is none yet, else one delta (long-polled up to waitSeconds). */
  async sync({ waitSeconds = 0, signal } = {}) {
    if (this.#push !== null) {
      throw optionsError('RemoteDenylist sync(): transport "hub-ws" is driven by its socket: call start()');
    }
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
    const res = await this.#get(`/v1/denylist?wire=${WIRE}`, signal);
    if (!res.ok) throw await httpError(res, 'snapshot');
    await this.#takeSnapshot(new Uint8Array(await res.arrayBuffer()));
  }

  /** A message pushed by the hub, told apart by its magic. */
  #pushed(bytes, kind) {
    if (this.#diverged) throw this.#diverged;
    return kind === 'snapshot' ? this.#takeSnapshot(bytes, true) : this.#takeDelta(bytes, true);
  }

  /**
   * Applies a signed snapshot (checked, accepted, the mark saved). `stored`: one the hub
   * kept since it was signed, so an old one that moves the replica forward is history
   * (applied, not fresh). Resolves to whether the replica heard from the signer.
   */
  async #takeSnapshot(bytes, stored = false) {
    const key = this.#publicJwk;
    const acceptance = await this.#rules();
    if (this.#rebootstrap) {
      acceptance.rebootstrap();
    } else if (this.#legacyFloor > this.seq) {
      // A mark saved as a bare sequence number: the snapshot must reach it.
      const probe = new Denylist();
      try {
        probe.applySnapshot(bytes, key);
        if (probe.seq < this.#legacyFloor) {
          this.#diverged = new TollgateError(
            `the service's snapshot (seq ${probe.seq}) is behind this replica's stored high-water mark (${this.#legacyFloor}): refused; pass rebootstrap: true after restoring or resetting the service`,
            { code: 'DENYLIST_BACKWARDS' },
          );
          throw this.#diverged;
        }
      } finally {
        probe.free();
      }
    }
    const before = acceptance.highWaterMark;
    let recent = true;
    try {
      if (stored) recent = this.denylist.applySnapshotStored(bytes, key, acceptance, this.#now());
      else this.denylist.applySnapshotAccepted(bytes, key, acceptance, this.#now());
    } catch (e) {
      if (e?.code === 'DENYLIST_BACKWARDS' || e?.code === 'DENYLIST_EPOCH') {
        this.#diverged = new TollgateError(
          `${e.message}: the service's snapshot is refused against this replica's high-water mark ${before}; pass rebootstrap: true after restoring or replacing the service's data`,
          { code: e.code, cause: e },
        );
        throw this.#diverged;
      }
      throw e;
    }
    this.#hasSnapshot = true;
    const rebootstrapped = this.#rebootstrap;
    this.#rebootstrap = false;
    this.#legacyFloor = 0;
    this.#synced(recent);
    await this.#saveMark(rebootstrapped);
    return recent;
  }

  #now() {
    return Math.max(0, Math.floor(this.#clock() / 1000));
  }

  /** The acceptance rules, resumed from the stored mark on first use. */
  async #rules() {
    if (this.#acceptance !== null) return this.#acceptance;
    let v;
    try {
      v = await this.#mark.load();
    } catch (e) {
      throw new TollgateError(`RemoteDenylist highWaterMark.load() failed: ${e?.message ?? e}`, { code: 'DENYLIST_FETCH', cause: e });
    }
    const maxAge = this.#maxStalenessMs / 1000;
    if (v === null || v === undefined) {
      this.#acceptance = new Acceptance(maxAge, null);
    } else if (Number.isSafeInteger(v) && v >= 0) {
      this.#acceptance = new Acceptance(maxAge, null);
      this.#legacyFloor = v;
      this.#markSaved = v;
    } else if (typeof v === 'string') {
      try {
        this.#acceptance = new Acceptance(maxAge, v);
      } catch (e) {
        throw new TollgateError(`RemoteDenylist highWaterMark.load() gave ${JSON.stringify(v)}: ${e?.message ?? e}`, { code: 'DENYLIST_FETCH', cause: e });
      }
      this.#markSaved = v;
    } else {
      throw new TollgateError(`RemoteDenylist highWaterMark.load() gave ${JSON.stringify(v)}: expected a mark it saved, or null`, { code: 'DENYLIST_FETCH' });
    }
    return this.#acceptance;
  }

  async #saveMark(force = false) {
    if (this.#mark === null) return;
    const mark = this.#acceptance?.highWaterMark ?? null;
    if (mark === null || (!force && mark === this.#markSaved)) return;
    try {
      await this.#mark.save(mark);
      this.#markSaved = mark;
    } catch (e) {
      this.#report(new TollgateError(`RemoteDenylist highWaterMark.save(${mark}) failed: ${e?.message ?? e}`, { code: 'DENYLIST_FETCH', cause: e }));
    }
  }

  async #delta(waitSeconds, signal) {
    const res = await this.#get(`/v1/denylist?since=${this.seq}&wait=${waitSeconds}&wire=${WIRE}`, signal);
    if (res.status === 410) {
      await res.body?.cancel();
      return this.#snapshot(signal);
    }
    if (!res.ok) throw await httpError(res, 'delta');
    // Only a signed delta counts as hearing from the service: an empty or unsigned
    // answer (anything on the way could forge one) leaves the replica as stale as it was.
    try {
      await this.#takeDelta(new Uint8Array(await res.arrayBuffer()));
    } catch (e) {
      // The delta does not continue this replica: start again from a snapshot.
      if (e?.code === 'DENYLIST_GAP' || e?.code === 'DENYLIST_NO_SNAPSHOT') return this.#snapshot(signal);
      throw e;
    }
    return undefined;
  }

  /** Applies a signed delta (checked, accepted, the mark saved); `stored` as for #takeSnapshot. */
  async #takeDelta(bytes, stored = false) {
    let recent = true;
    try {
      const rules = await this.#rules();
      if (stored) recent = this.denylist.applyDeltaStored(bytes, this.#publicJwk, rules, this.#now());
      else this.denylist.applyDeltaAccepted(bytes, this.#publicJwk, rules, this.#now());
    } catch (e) {
      // Another epoch mid-stream: the service's data was replaced under the replica.
      if (e?.code === 'DENYLIST_EPOCH') this.#diverged = e;
      throw e;
    }
    this.#synced(recent);
    await this.#saveMark();
    return recent;
  }

  #get(path, signal, accept = 'application/octet-stream') {
    const headers = { accept };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    return this.#fetch(this.#base + path, { headers, signal });
  }

  /** The replica moved (waiters, onUpdate); `recent`: and it heard from the signer (fresh). */
  #synced(recent = true) {
    if (recent) this.#lastSyncAt = this.#clock();
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

function optionsError(message) {
  return new TollgateError(message, { code: 'INVALID_OPTIONS' });
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
