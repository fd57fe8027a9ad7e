// The public API of @tollgate/verify. Every entry point (node, node CJS, web,
// workerd) initialises the wasm module its own way, then re-exports this module.
// Nothing here calls into wasm while the module is being evaluated.

export { Denylist } from '../wasm/tollgate_wasm.js';
export { TollgateError, REASONS } from './errors.js';
export { Verifier, DEFAULT_CACHE_SIZE } from './verifier.js';
export { JwksSource } from './jwks-source.js';
export { RemoteDenylist } from './remote-denylist.js';
export { authenticate, withAuth, extractToken, authorize, DEFAULT_COOKIE_NAME } from './http.js';
export { fetchWithRefresh, isExpired } from './client.js';
