// The public API of @tollgate/verify. Every entry point (node, node CJS, web,
// workerd) initialises the wasm module its own way, then re-exports this module.
// Nothing here calls into wasm while the module is being evaluated.

export { Acceptance, Denylist } from '../wasm/tollgate_wasm.js';
export { TollgateError, REASONS } from './errors.js';
export { Verifier, DEFAULT_CACHE_SIZE } from './verifier.js';
export { JwksSource } from './jwks-source.js';
export { RemoteDenylist } from './remote-denylist.js';
export { authenticate, withAuth, extractToken, authorize, DEFAULT_COOKIE_NAME } from './http.js';
export { fetchWithRefresh, isExpired } from './client.js';
export { SigningKey, KeySet, Issuer, thumbprint, REFRESH_TYP, RESERVED_CLAIMS, DEFAULT_ACCESS_TTL_SECONDS, DEFAULT_REFRESH_TTL_SECONDS, DEFAULT_JWKS_MAX_AGE } from './issuer.js';
export { RevocationClient, DEFAULT_RETRY } from './revocation-client.js';
export { Refresher, refresh } from './refresh.js';
export {
  accessTokenCookie,
  refreshTokenCookie,
  authCookies,
  clearAuthCookies,
  readCookie,
  ACCESS_COOKIE,
  REFRESH_COOKIE,
  REFRESH_COOKIE_PATH,
} from './cookies.js';
export {
  AssertionVerifier,
  requireAssertion,
  withAssertion,
  hs256Kid,
  headerDigest,
  ASSERTION_HEADER,
  ASSERTION_REASONS,
} from './assertion.js';
