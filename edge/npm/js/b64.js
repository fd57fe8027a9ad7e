// base64url without padding (RFC 7515 §2), on whatever the runtime offers fastest:
// Node's and Deno's Buffer, else Uint8Array.prototype.toBase64 (new runtimes), else a
// table in plain JS (workerd without nodejs_compat, browsers).

const NodeBuffer = typeof globalThis.Buffer === 'function' && typeof globalThis.Buffer.from === 'function' ? globalThis.Buffer : null;
const HAS_TO_BASE64 = typeof Uint8Array.prototype.toBase64 === 'function';
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const DECODE = new Int16Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DECODE[ALPHABET.charCodeAt(i)] = i;

export const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** base64url of bytes (Uint8Array or ArrayBuffer). */
export function encodeBytes(bytes) {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  if (NodeBuffer) return NodeBuffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString('base64url');
  if (HAS_TO_BASE64) return u8.toBase64({ alphabet: 'base64url', omitPadding: true });
  let out = '';
  let i = 0;
  for (; i + 2 < u8.length; i += 3) {
    const n = (u8[i] << 16) | (u8[i + 1] << 8) | u8[i + 2];
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63] + ALPHABET[(n >> 6) & 63] + ALPHABET[n & 63];
  }
  if (i < u8.length) {
    const n = (u8[i] << 16) | ((u8[i + 1] ?? 0) << 8);
    out += ALPHABET[n >> 18] + ALPHABET[(n >> 12) & 63];
    if (i + 1 < u8.length) out += ALPHABET[(n >> 6) & 63];
  }
  return out;
}

/** base64url of a string's UTF-8 bytes. */
export function encodeText(text) {
  if (NodeBuffer) return NodeBuffer.from(text, 'utf8').toString('base64url');
  return encodeBytes(utf8.encode(text));
}

/**
 * Bytes of canonical unpadded base64url, or null: other characters, padding, a length
 * of 1 mod 4, or non-zero bits after the last character (so each value has exactly one
 * encoding, as the core requires).
 */
export function decode(text) {
  if (typeof text !== 'string' || text.length % 4 === 1) return null;
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let j = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? DECODE[c] : -1;
    if (v < 0) return null;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >> bits) & 0xff;
    }
  }
  if (bits > 0 && (acc & ((1 << bits) - 1)) !== 0) return null;
  return out;
}

/** Strict UTF-8 text of bytes, or null. */
export function decodeUtf8(bytes) {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    return null;
  }
}

/** `n` random bytes from the runtime's CSPRNG. */
export function randomBytes(n) {
  const b = new Uint8Array(n);
  globalThis.crypto.getRandomValues(b);
  return b;
}

/** 128 random bits, base64url (22 characters): `jti`s, session ids, idempotency keys. */
export function randomId() {
  return encodeBytes(randomBytes(16));
}
