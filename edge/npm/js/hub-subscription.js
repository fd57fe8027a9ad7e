// HubSubscription: the WebSocket side of RemoteDenylist's push mode (transport "hub-ws").
//
// Speaks the revocation hub's push protocol (edge/hub/src/push.rs): it asks with a text
// frame `{"since": N}` (the sequence held, null when nothing is held) and takes binary
// frames, each one signed message (snapshot or delta) that it hands to `apply` in the
// order they came, one at a time. Text frames from the hub are errors
// (`{"error": kind, "detail"}`). Nothing here trusts the hub: `apply` verifies every
// message, and freshness comes only from what `apply` accepts (signed creation times),
// never from the socket being open.
//
// Asks: on every (re)connection; periodically as the ping (`pingMs`), whose answer at
// the head is a signed heartbeat; and after anything that could not be applied or that
// the hub refused, at once for the first failure after a success, then backing off
// (retryMinMs → retryMaxMs). Two asks are never closer than ASK_SPACING_MS (the hub
// refuses asks less than 100 ms apart). A socket that closes or fails is reopened with
// the same backoff; the first ask on it carries the sequence held, so the hub resumes
// from there.

import { TollgateError } from './errors.js';

/** Least time between two asks, ms: the hub's 100 ms, and a margin for jitter on the way. */
export const ASK_SPACING_MS = 120;

const OPEN = 1;

/** What a signed message is, from its magic ("TGS": snapshot, "TGD": delta), else null. */
export function messageKind(bytes) {
  if (bytes.length < 4 || bytes[0] !== 0x54 || bytes[1] !== 0x47) return null;
  if (bytes[2] === 0x53) return 'snapshot';
  if (bytes[2] === 0x44) return 'delta';
  return null;
}

export class HubSubscription {
  #url;
  #token;
  #WebSocket;
  #pingMs;
  #retryMinMs;
  #retryMaxMs;
  #since;
  #apply;
  #report;
  #halted;
  #ws = null;
  #running = false;
  #chain = Promise.resolve();
  #first = null;
  #askTimer = null;
  #askAt = 0;
  #lastAskAt = -Infinity;
  #reaskDelay = 0;
  #reconnectDelay;
  #reconnectTimer = null;
  #closed = null;
  #firstWithinMs;
  #firstTimer = null;
  #appliedAny = false;

  /**
   * @param {{ url: string, token: string | null, WebSocket: Function, pingMs: number,
   *   retryMinMs: number, retryMaxMs: number, since: () => number | null,
   *   apply: (bytes: Uint8Array, kind: 'snapshot' | 'delta') => Promise<boolean>,
   *   report: (e: unknown) => void, halted: () => unknown, firstWithinMs?: number }} options
   *   `apply` resolves to whether the message was signed recently (the replica is fresh);
   *   `firstWithinMs` bounds start(): no recent message by then rejects it.
   */
  constructor(options) {
    this.#url = options.url;
    this.#token = options.token;
    this.#WebSocket = options.WebSocket;
    this.#pingMs = Math.max(options.pingMs, ASK_SPACING_MS);
    this.#retryMinMs = options.retryMinMs;
    this.#retryMaxMs = options.retryMaxMs;
    this.#since = options.since;
    this.#apply = options.apply;
    this.#report = options.report;
    this.#halted = options.halted;
    this.#reconnectDelay = options.retryMinMs;
    this.#firstWithinMs = options.firstWithinMs ?? Infinity;
  }

  /**
   * Opens the socket and asks; resolves when the first recently signed message is applied
   * (older ones before it are history: applied, not fresh), rejects with the first
   * failure or when none came within firstWithinMs (and closes).
   */
  start() {
    this.#running = true;
    this.#appliedAny = false;
    const first = new Promise((resolve, reject) => {
      this.#first = { resolve, reject };
    });
    if (Number.isFinite(this.#firstWithinMs)) {
      this.#firstTimer = setTimeout(() => {
        this.#firstTimer = null;
        if (this.#first === null) return;
        const s = Math.round(this.#firstWithinMs / 1000);
        this.#fail(
          this.#appliedAny
            ? new TollgateError(`hub push: in ${s} s the hub served only messages signed longer ago than the staleness bound (applied, not fresh): is the signer reaching it?`, { code: 'DENYLIST_TOO_OLD' })
            : new TollgateError(`hub push: no signed message from ${this.#url} within ${s} s`, { code: 'DENYLIST_FETCH' }),
        );
      }, this.#firstWithinMs);
    }
    this.#connect();
    return first;
  }

  /** Closes the socket and waits for the close (bounded) and for the message being applied. */
  async stop() {
    this.#running = false;
    this.#clearTimers();
    if (this.#first !== null) {
      this.#first.reject(new TollgateError('hub push: stopped before the first message', { code: 'DENYLIST_FETCH' }));
      this.#first = null;
    }
    this.#clearFirstTimer();
    const ws = this.#ws;
    if (ws !== null) {
      const closed = new Promise((resolve) => {
        const t = setTimeout(resolve, 2000);
        this.#closed = () => {
          clearTimeout(t);
          resolve();
        };
      });
      try {
        ws.close(1000, 'stop');
      } catch {
        this.#closed();
      }
      await closed;
      this.#ws = null;
      this.#closed = null;
    }
    await this.#chain;
  }

  #connect() {
    this.#reconnectTimer = null;
    if (!this.#running) return;
    let ws;
    try {
      ws = this.#token
        ? new this.#WebSocket(this.#url, { headers: { authorization: `Bearer ${this.#token}` } })
        : new this.#WebSocket(this.#url);
    } catch (e) {
      this.#lost(null, new TollgateError(`hub push: cannot open ${this.#url}: ${e?.message ?? e}`, { code: 'DENYLIST_FETCH', cause: e }));
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.#ws = ws;
    ws.addEventListener('open', () => {
      if (this.#ws === ws) this.#ask();
    });
    ws.addEventListener('message', (ev) => {
      if (this.#ws !== ws) return;
      const data = ev.data;
      this.#chain = this.#chain.then(() => this.#frame(data)).then(
        (recent) => this.#applied(recent),
        (e) => this.#failed(e),
      );
    });
    // A failure is followed by a close event: the close reports it.
    ws.addEventListener('error', () => {});
    ws.addEventListener('close', (ev) => {
      if (this.#closed !== null && this.#ws === ws) {
        this.#closed();
        return;
      }
      const reason = ev.reason ? `: ${ev.reason}` : '';
      this.#lost(ws, new TollgateError(`hub push: the socket to ${this.#url} closed (${ev.code}${reason})`, { code: 'DENYLIST_FETCH', status: ev.code }));
    });
  }

  /** One frame from the hub; throws a TollgateError for anything it cannot take. */
  async #frame(data) {
    if (!this.#running) return false;
    if (typeof data === 'string') throw hubError(data);
    const bytes = await binary(data);
    const kind = messageKind(bytes);
    if (kind === null) {
      throw new TollgateError('hub push: a binary frame that is not a signed snapshot or delta', { code: 'DENYLIST_MALFORMED' });
    }
    return this.#apply(bytes, kind);
  }

  #applied(recent) {
    if (!this.#running) return;
    this.#reaskDelay = 0;
    this.#reconnectDelay = this.#retryMinMs;
    this.#appliedAny = true;
    if (this.#first !== null && recent) {
      this.#first.resolve();
      this.#first = null;
      this.#clearFirstTimer();
    }
  }

  #clearFirstTimer() {
    if (this.#firstTimer !== null) clearTimeout(this.#firstTimer);
    this.#firstTimer = null;
  }

  #failed(e) {
    if (!this.#running) return;
    if (this.#first !== null) {
      this.#fail(e);
      return;
    }
    this.#report(e);
    if (this.#halted()) {
      // Nothing the hub sends can be taken any more (another epoch, a log gone back).
      this.#clearTimers();
      const ws = this.#ws;
      this.#ws = null;
      ws?.close(1000, 'halted');
      return;
    }
    const delay = this.#reaskDelay;
    this.#reaskDelay = delay === 0 ? this.#retryMinMs : Math.min(delay * 2, this.#retryMaxMs);
    this.#schedule(delay, false);
  }

  #lost(ws, e) {
    if (ws !== null && this.#ws !== ws) return;
    this.#ws = null;
    this.#clearTimers();
    if (!this.#running) return;
    if (this.#first !== null) {
      this.#fail(e);
      return;
    }
    this.#report(e);
    if (this.#halted()) return;
    const delay = this.#reconnectDelay;
    this.#reconnectDelay = Math.min(delay * 2, this.#retryMaxMs);
    this.#reconnectTimer = setTimeout(() => this.#connect(), delay);
  }

  /** A failure before the first message applied: start() rejects, and the subscription ends. */
  #fail(e) {
    const { reject } = this.#first;
    this.#first = null;
    this.#clearFirstTimer();
    this.#running = false;
    this.#clearTimers();
    const ws = this.#ws;
    this.#ws = null;
    try {
      ws?.close(1000, 'start failed');
    } catch {
      // closing is a courtesy
    }
    reject(e);
  }

  /** Sends an ask now if spacing allows, else when it does; the next ping follows it. */
  #ask() {
    this.#askTimer = null;
    const ws = this.#ws;
    if (!this.#running || ws === null || ws.readyState !== OPEN) return;
    const now = performance.now();
    if (now - this.#lastAskAt < ASK_SPACING_MS) {
      this.#schedule(0, false);
      return;
    }
    this.#lastAskAt = now;
    try {
      ws.send(JSON.stringify({ since: this.#since() }));
    } catch (e) {
      this.#report(new TollgateError(`hub push: cannot send an ask: ${e?.message ?? e}`, { code: 'DENYLIST_FETCH', cause: e }));
    }
    this.#schedule(this.#pingMs, true);
  }

  /** Plans the next ask `delay` ms from now (no sooner than spacing allows); keeps a sooner one unless `replace`. */
  #schedule(delay, replace) {
    const now = performance.now();
    const at = Math.max(now + delay, this.#lastAskAt + ASK_SPACING_MS);
    if (this.#askTimer !== null) {
      if (!replace && this.#askAt <= at) return;
      clearTimeout(this.#askTimer);
    }
    this.#askAt = at;
    this.#askTimer = setTimeout(() => this.#ask(), at - now);
  }

  #clearTimers() {
    if (this.#askTimer !== null) clearTimeout(this.#askTimer);
    if (this.#reconnectTimer !== null) clearTimeout(this.#reconnectTimer);
    this.#askTimer = null;
    this.#reconnectTimer = null;
  }
}

/** A text frame from the hub: its error (`{"error": kind, "detail"}`) as a TollgateError. */
function hubError(text) {
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: refused below
  }
  if (body === null || typeof body !== 'object' || typeof body.error !== 'string') {
    return new TollgateError(`hub push: a text frame that is not an error: ${JSON.stringify(text.slice(0, 200))}`, { code: 'DENYLIST_MALFORMED' });
  }
  const detail = typeof body.detail === 'string' ? body.detail : undefined;
  return new TollgateError(`hub push: the hub answered ${body.error}${detail ? `: ${detail}` : ''}`, {
    code: 'DENYLIST_FETCH',
    kind: body.error,
    detail,
  });
}

/** A binary frame's bytes, whatever form the runtime gives them in. */
async function binary(data) {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (typeof data?.arrayBuffer === 'function') return new Uint8Array(await data.arrayBuffer());
  throw new TollgateError('hub push: a frame of an unknown type', { code: 'DENYLIST_MALFORMED' });
}
