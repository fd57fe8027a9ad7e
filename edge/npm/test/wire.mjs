// A test-only encoder of the replication wire format documented in core/src/wire.rs,
// written from that description and signed with WebCrypto: an independent producer of
// snapshots (empty ones: entries there are SipHash fingerprints) and deltas (events
// carry their identifiers), to check the package's decoder and RemoteDenylist.

const { subtle } = globalThis.crypto;

export async function serviceKey() {
  const { privateKey, publicKey } = await subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const { kty, crv, x, y } = await subtle.exportKey('jwk', publicKey);
  return { privateKey, jwk: { kty, crv, x, y, alg: 'ES256', use: 'sig' } };
}

class Writer {
  parts = [];
  bytes(b) {
    this.parts.push(Uint8Array.from(b));
  }
  u8(v) {
    this.bytes([v]);
  }
  u16(v) {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, v, true);
    this.bytes(b);
  }
  u32(v) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, true);
    this.bytes(b);
  }
  u64(v) {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
    this.bytes(b);
  }
  str(s) {
    const b = new TextEncoder().encode(s);
    this.u16(b.length);
    this.bytes(b);
  }
  concat() {
    const out = new Uint8Array(this.parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

async function signed(key, w) {
  const body = w.concat();
  const sig = new Uint8Array(await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key.privateKey, body));
  const out = new Uint8Array(body.length + sig.length);
  out.set(body);
  out.set(sig, body.length);
  return out;
}

/** The service's epoch and creation time stamped on every message, unless given. */
export const EPOCH = new Uint8Array(16).fill(0xe1);
export const CREATED = 1_800_000_000; // helpers.mjs NOW, the tests' fixed clock

function stamp(w, { epoch = EPOCH, created = CREATED } = {}) {
  w.bytes(epoch);
  w.u64(created);
}

/** An empty snapshot at `seq` (wire format version 2); `opts`: `{ epoch, created }`. */
export function snapshot(key, seq, opts) {
  const w = new Writer();
  w.bytes([0x54, 0x47, 0x53, 0x02]); // "TGS\x02"
  stamp(w, opts);
  w.u64(seq);
  w.bytes(new Uint8Array(16).fill(7)); // hash key
  w.u32(0);
  w.u32(0);
  w.u32(0);
  return signed(key, w);
}

/**
 * A delta `(from, to]` with events `{ seq, kind: 'jti'|'sid'|'sub', id, exp, iss?, before? }`
 * (wire format version 2); `opts`: `{ epoch, created }`.
 */
export function delta(key, from, to, events, opts) {
  const w = new Writer();
  w.bytes([0x54, 0x47, 0x44, 0x02]); // "TGD\x02"
  stamp(w, opts);
  w.u64(from);
  w.u64(to);
  w.u32(events.length);
  for (const e of events) {
    w.u64(e.seq);
    w.u8({ jti: 1, sid: 2, sub: 3 }[e.kind]);
    w.u8(e.iss === undefined ? 0 : 1);
    w.u64(e.exp);
    if (e.kind === 'sub') w.u64(e.before);
    if (e.iss !== undefined) w.str(e.iss);
    w.str(e.id);
  }
  return signed(key, w);
}
