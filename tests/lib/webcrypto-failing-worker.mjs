// Test-only entry module (never deployed): the built Worker (edge/worker/build/index.js)
// with WebCrypto made to fail on demand, to test its pure-Rust fallback in real workerd.
//
// The request header `x-test-webcrypto` picks the failure for that request:
//   verify-throws   crypto.subtle.verify throws synchronously
//   verify-rejects  crypto.subtle.verify returns a rejected promise
//   import-throws   crypto.subtle.importKey throws synchronously
//   import-rejects  crypto.subtle.importKey returns a rejected promise
//   (absent)        the real WebCrypto
// Each failure's message names its mode, so the Worker's log line
// "WebCrypto failed (<message>), using pure Rust" shows which one took effect.
// The patch is process-wide in the isolate: tests send these requests one at a time.
import Tollgate from '../../edge/worker/build/index.js';
// wrangler.toml binds the hub's Durable Object class, which the entry must export too.
export { RevocationHub } from '../../edge/worker/build/index.js';

const subtle = crypto.subtle;
const failures = {
  'verify-throws': ['verify', () => {
    throw new Error('test-webcrypto verify-throws');
  }],
  'verify-rejects': ['verify', async () => {
    throw new Error('test-webcrypto verify-rejects');
  }],
  'import-throws': ['importKey', () => {
    throw new Error('test-webcrypto import-throws');
  }],
  'import-rejects': ['importKey', async () => {
    throw new Error('test-webcrypto import-rejects');
  }],
};

/** Shadows one SubtleCrypto method on the instance (own property), or removes shadows. */
function patch(mode) {
  delete subtle.verify;
  delete subtle.importKey;
  if (!mode) return;
  const failure = failures[mode];
  if (!failure) throw new Error(`x-test-webcrypto: unknown mode ${mode}`);
  const [method, fn] = failure;
  subtle[method] = fn;
  if (crypto.subtle[method] !== fn) throw new Error(`could not patch crypto.subtle.${method}`);
}

// The built Worker's default export is a plain `{ fetch(request, env, ctx) }` handler
// (edge/worker/plain-entry.mjs), called here with this request's env and ctx.
export default {
  async fetch(request, env, ctx) {
    patch(request.headers.get('x-test-webcrypto'));
    return Tollgate.fetch(request, env, ctx);
  },
};
