// A test-only reader of the replication wire format (version 2, as core/src/wire.rs
// documents it), written from that description: what a subscriber of the hub's push
// checks — the ECDSA P-256 signature over SHA-256 of everything before it (WebCrypto),
// then the header and, for a delta, its events.

const { subtle } = globalThis.crypto;
const SIG = 64;

/** Whether `bytes` carries a valid signature by the P-256 public JWK `jwk`. */
export async function verified(bytes, jwk) {
  const { kty, crv, x, y } = typeof jwk === 'string' ? JSON.parse(jwk) : jwk;
  const key = await subtle.importKey('jwk', { kty, crv, x, y }, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
  if (bytes.length < SIG + 4) return false;
  return subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, key, bytes.subarray(bytes.length - SIG), bytes.subarray(0, bytes.length - SIG));
}

class Reader {
  constructor(bytes) {
    this.b = bytes;
    this.v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.at = 0;
  }
  u8() {
    return this.b[this.at++];
  }
  u16() {
    const r = this.v.getUint16(this.at, true);
    this.at += 2;
    return r;
  }
  u32() {
    const r = this.v.getUint32(this.at, true);
    this.at += 4;
    return r;
  }
  u64() {
    const r = Number(this.v.getBigUint64(this.at, true));
    this.at += 8;
    return r;
  }
  raw(n) {
    const r = this.b.subarray(this.at, this.at + n);
    this.at += n;
    return r;
  }
  str() {
    return new TextDecoder().decode(this.raw(this.u16()));
  }
}

const KINDS = { 1: 'jti', 2: 'sid', 3: 'subject' };

/**
 * Reads a signed message (signature not checked here: see `verified`):
 * `{ type: 'snapshot', epoch, created, seq }` or
 * `{ type: 'delta', epoch, created, from, to, events: [{ seq, kind, id, iss, exp, before }] }`.
 */
export function read(bytes) {
  const r = new Reader(bytes);
  const magic = new TextDecoder().decode(r.raw(3));
  const version = r.u8();
  if (version !== 2 || (magic !== 'TGS' && magic !== 'TGD')) throw new Error(`not a version-2 message: ${magic}/${version}`);
  const epoch = Buffer.from(r.raw(16)).toString('hex');
  const created = r.u64();
  if (magic === 'TGS') return { type: 'snapshot', epoch, created, seq: r.u64() };
  const from = r.u64();
  const to = r.u64();
  const n = r.u32();
  const events = [];
  for (let i = 0; i < n; i++) {
    const seq = r.u64();
    const kind = KINDS[r.u8()];
    const scoped = r.u8();
    const exp = r.u64();
    const before = kind === 'subject' ? r.u64() : undefined;
    const iss = scoped ? r.str() : undefined;
    events.push({ seq, kind, id: r.str(), iss, exp, before });
  }
  return { type: 'delta', epoch, created, from, to, events };
}

/**
 * A subscriber of the hub's push (`GET /__tollgate/hub/{tenant}/ws`): collects every
 * frame; `next(pred, what)` resolves with the first binary message (read) not yet
 * taken that matches `pred`, within a deadline.
 */
export class Subscriber {
  frames = [];
  errors = [];
  closed = null;
  #taken = 0;
  #wake = null;

  static async open(url, token) {
    const s = new Subscriber();
    const ws = new WebSocket(url, token ? { headers: { authorization: `Bearer ${token}` } } : undefined);
    ws.binaryType = 'arraybuffer';
    s.ws = ws;
    ws.addEventListener('message', (ev) => {
      if (typeof ev.data === 'string') s.errors.push(JSON.parse(ev.data));
      else s.frames.push({ at: performance.now(), bytes: new Uint8Array(ev.data) });
      s.#wake?.();
    });
    ws.addEventListener('close', (ev) => {
      s.closed = { code: ev.code, reason: ev.reason };
      s.#wake?.();
    });
    await new Promise((resolve, reject) => {
      ws.addEventListener('open', resolve, { once: true });
      ws.addEventListener('error', () => reject(new Error(`WebSocket to ${url} failed`)), { once: true });
    });
    return s;
  }

  ask(since) {
    this.ws.send(JSON.stringify({ since }));
  }

  /** Waits for something (`until()` truthy) with a deadline. */
  async #until(until, what, timeoutMs) {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const v = until();
      if (v) return v;
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, Math.max(1, deadline - performance.now()));
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }

  /** The next binary message, `{ at, bytes, msg }`. */
  async next(what = 'a message', timeoutMs = 10000) {
    const f = await this.#until(() => this.frames[this.#taken], what, timeoutMs);
    this.#taken++;
    return { ...f, msg: read(f.bytes) };
  }

  /** Resolves with the close event. */
  async closedWith(timeoutMs = 10000) {
    return this.#until(() => this.closed, 'the socket to close', timeoutMs);
  }

  close() {
    this.ws.close(1000, 'done');
  }
}
