// Hand-written types for @tollgate/verify. Kept in step with js/*.js and src/*.rs by
// hand; test/pack.test.mjs compiles an ESM and a CJS consumer against it (tsc --strict).

/** The conformance reasons a token is rejected for. */
export type Reason =
  | 'too_large'
  | 'malformed'
  | 'unsupported_algorithm'
  | 'unsupported_critical_header'
  | 'invalid_type'
  | 'unknown_key'
  | 'invalid_signature'
  | 'invalid_claim'
  | 'expired'
  | 'not_yet_valid'
  | 'invalid_issuer'
  | 'invalid_audience'
  | 'missing_claim'
  | 'revoked';

/** Stable error codes. Token rejections carry a `reason` as well. */
export type ErrorCode =
  | 'TOKEN_EXPIRED'
  | 'TOKEN_REVOKED'
  | 'TOKEN_INVALID'
  | 'INVALID_JWKS'
  | 'INVALID_OPTIONS'
  | 'INVALID_ARGUMENT'
  | 'DENYLIST_SIGNATURE'
  | 'DENYLIST_MALFORMED'
  | 'DENYLIST_BACKWARDS'
  | 'DENYLIST_GAP'
  | 'DENYLIST_NO_SNAPSHOT'
  | 'DENYLIST_FETCH'
  | 'DENYLIST_STALE'
  | 'DENYLIST_TIMEOUT'
  | 'JWKS_FETCH';

/** The conformance reasons, in check order. */
export declare const REASONS: readonly Reason[];

/** Every error the package raises on purpose. `instanceof` works across the ESM and CJS copies. */
export declare class TollgateError extends Error {
  constructor(message: string, details: { code: ErrorCode; reason?: Reason; cause?: unknown });
  readonly name: 'TollgateError';
  readonly code: ErrorCode;
  /** Present for token rejections only. */
  readonly reason?: Reason;
}

/** A JSON Web Key (public). */
export interface Jwk {
  kty: string;
  kid?: string;
  alg?: string;
  use?: string;
  key_ops?: string[];
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
  [member: string]: unknown;
}

/** A JSON Web Key Set. */
export interface Jwks {
  keys: Jwk[];
}

/** Verified claims: a plain object. Registered claims have been type-checked. */
export interface Claims {
  iss?: string;
  sub?: string;
  aud?: string | string[];
  exp?: number;
  nbf?: number;
  iat?: number;
  jti?: string;
  sid?: string;
  [claim: string]: unknown;
}

/** The policy: the camelCase of the conformance policy fields, with the same defaults. */
export interface PolicyOptions {
  /** Allowed `iss` values (exact match). Absent: not checked. */
  issuers?: string[] | null;
  /** Allowed audiences; the token's `aud` must contain one. Absent: not checked. */
  audiences?: string[] | null;
  /** Default `["ES256", "RS256"]`. */
  algorithms?: Array<'ES256' | 'RS256'> | null;
  /** Default 0. */
  leewaySeconds?: number | null;
  /** Default `["exp"]`. */
  requiredClaims?: string[] | null;
  /** Expected header `typ` (case-insensitive, `application/` ignored). Absent: not checked. */
  typ?: string | null;
  /** Default 8192. */
  maxTokenBytes?: number | null;
  /** Default 2048. */
  minRsaBits?: number | null;
}

/** Anything a verification can check revocation against. */
export type DenylistLike = Denylist | RemoteDenylist;

export interface VerifierCommonOptions extends PolicyOptions {
  /** Verified-token cache capacity (default 1024; 0 disables it). */
  cacheSize?: number;
  /** Denylist used when a call does not pass one. */
  denylist?: DenylistLike;
  /** Clock in milliseconds since the epoch (default `Date.now`). */
  clock?: () => number;
}

export interface VerifierOptions extends VerifierCommonOptions {
  /** The trusted keys: a JWKS object or its JSON text. */
  jwks: Jwks | string;
}

export interface JwksSourceOptions {
  /** fetch implementation (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** At most one refetch per this many seconds for unknown `kid`s (default 30). */
  cooldownSeconds?: number;
  /** Lower bound on the cache lifetime (default 30). */
  minTtlSeconds?: number;
  /** Upper bound on the cache lifetime (default 86400). */
  maxTtlSeconds?: number;
  /** Lifetime without a Cache-Control max-age (default 300). */
  defaultTtlSeconds?: number;
  /** Fetch timeout in milliseconds (default 5000). */
  timeoutMs?: number;
  /** Called with every failed fetch (the last good set is kept). */
  onError?: (error: TollgateError) => void;
}

export interface VerifyOptions {
  /** Seconds since the epoch (default: the verifier's clock). */
  now?: number;
  /** Denylist to check (default: the verifier's, else none). */
  denylist?: DenylistLike;
}

export type CheckResult<C = Claims> =
  | { ok: true; claims: C }
  | { ok: false; code: ErrorCode; reason?: Reason };

export declare class Verifier {
  constructor(options: VerifierOptions);
  /** A verifier whose JWKS is fetched from `url`, cached and refreshed; resolves after the first fetch. */
  static fromJwksUrl(url: string | URL, options?: VerifierCommonOptions & JwksSourceOptions): Promise<Verifier>;
  /** Verifies with WebCrypto; rejects with a TollgateError. */
  verify<C extends Claims = Claims>(token: string, options?: VerifyOptions): Promise<C>;
  /** Verifies in pure Rust (wasm), synchronously; throws a TollgateError. */
  verifySync<C extends Claims = Claims>(token: string, options?: VerifyOptions): C;
  /** As verify(), never rejecting for token or denylist errors. */
  check<C extends Claims = Claims>(token: string, options?: VerifyOptions): Promise<CheckResult<C>>;
  /** As verifySync(), never throwing for token or denylist errors. */
  checkSync<C extends Claims = Claims>(token: string, options?: VerifyOptions): CheckResult<C>;
  /** Tokens in the verified-token cache. */
  readonly cacheSize: number;
  /** Empties the verified-token cache. */
  clearCache(): void;
  /** The JWKS source of a verifier made by fromJwksUrl, else null. */
  readonly jwksSource: JwksSource | null;
}

export declare class JwksSource {
  constructor(url: string | URL, options?: JwksSourceOptions & { clock?: () => number; parse?: (text: string) => unknown });
  readonly url: string;
  readonly stale: boolean;
  /** Fetches made. */
  readonly fetchCount: number;
  readonly lastError: TollgateError | null;
  refresh(): Promise<boolean>;
  refreshIfStale(): void;
  /** Resolves when no fetch is in flight. */
  whenIdle(): Promise<void>;
  refreshForUnknownKid(): Promise<boolean>;
}

/** A denylist: `jti`, `sid` and subject-cutoff entries (wasm). Times are seconds since the epoch. */
export declare class Denylist {
  constructor();
  revokeJti(jti: string, exp: number, iss?: string): void;
  revokeSid(sid: string, exp: number, iss?: string): void;
  /** Revokes tokens of `sub` issued before `before` (or without `iat`). */
  revokeSubject(sub: string, before: number, exp: number, iss?: string): void;
  /** Replaces the list with a signed snapshot from the revocation service. */
  applySnapshot(bytes: Uint8Array, publicJwk: Jwk | string): void;
  /** Applies a signed delta; returns how many events were new. */
  applyDelta(bytes: Uint8Array, publicJwk: Jwk | string): number;
  /** Drops entries whose `exp` is before `cutoff`; returns how many. */
  prune(cutoff: number): number;
  readonly seq: number;
  readonly size: number;
  /** Frees the wasm memory now (otherwise the garbage collector does). */
  free(): void;
}

export interface RemoteDenylistOptions {
  /** The revocation service's base URL, e.g. `http://127.0.0.1:8790`. */
  url: string;
  /** A `denylist:read` API key. */
  token?: string;
  /** The service's public JWK (pin it; fetched from /v1/denylist/key when absent). */
  publicJwk?: Jwk | string;
  /** Long-poll wait in seconds (default 5). */
  waitSeconds?: number;
  /** Staleness bound (default 10). */
  maxStalenessSeconds?: number;
  /** What verification does with a stale replica (default "closed": refuse). */
  failMode?: 'closed' | 'open';
  retryMinMs?: number;
  retryMaxMs?: number;
  fetch?: typeof fetch;
  clock?: () => number;
  onError?: (error: unknown) => void;
  onUpdate?: (seq: number) => void;
}

export declare class RemoteDenylist {
  constructor(options: RemoteDenylistOptions);
  readonly denylist: Denylist;
  readonly seq: number;
  readonly size: number;
  readonly lastSyncAt: number | null;
  readonly stale: boolean;
  assertFresh(): void;
  start(): Promise<this>;
  stop(): Promise<void>;
  sync(options?: { waitSeconds?: number; signal?: AbortSignal }): Promise<void>;
  waitForSeq(seq: number, options?: { timeoutMs?: number }): Promise<number>;
}

export interface AuthOptions {
  verifier: Verifier;
  denylist?: DenylistLike;
  /** Cookie read when there is no Bearer header (default `access_token`). */
  cookieName?: string;
  /** Request property set to the claims by `authenticate` (default `user`). */
  property?: string;
  /** Use verifySync instead of verify. */
  sync?: boolean;
  /** Clock in seconds for verification. */
  now?: () => number;
  /** Retry-After for 503 answers (default 5). */
  retryAfterSeconds?: number;
  rolesAny?: string[];
  rolesAll?: string[];
  scopesAny?: string[];
  scopesAll?: string[];
}

export interface Auth<C extends Claims = Claims> {
  token: string;
  claims: C;
}

export type Decision<C extends Claims = Claims> =
  | { ok: true; claims: C }
  | { ok: false; status: 401 | 403 | 503; headers: Record<string, string>; body: string };

/** Express/Connect middleware: sets `req.user` (or `property`) and `req.auth`, or answers 401/403/503. */
export declare function authenticate(
  options: AuthOptions,
): (req: any, res: any, next: (err?: unknown) => void) => void;

/** Wraps a fetch handler; it runs only for requests that pass, with `auth` second. */
export declare function withAuth<Rest extends unknown[], C extends Claims = Claims>(
  handler: (request: Request, auth: Auth<C>, ...rest: Rest) => Response | Promise<Response>,
  options: AuthOptions,
): (request: Request, ...rest: Rest) => Promise<Response>;

/** The token from `Authorization: Bearer`, else from the cookie. */
export declare function extractToken(
  authorization: string | null | undefined,
  cookieHeader: string | null | undefined,
  cookieName?: string,
): string | null;

/** The decision the middleware and wrapper act on. */
export declare function authorize(token: string | null, options: AuthOptions): Promise<Decision>;

export declare const DEFAULT_COOKIE_NAME: 'access_token';
export declare const DEFAULT_CACHE_SIZE: number;

export interface FetchWithRefreshOptions {
  /** POSTed (with credentials) to renew the session. */
  refreshUrl?: string;
  /** Extra init for the refresh POST, or a function returning it (called per refresh). */
  refreshInit?: RequestInit | (() => RequestInit | Promise<RequestInit>);
  /** Custom renewal: truthy (or a new token string) on success. */
  refresh?: () => Promise<unknown> | unknown;
  /** Bearer mode: the current access token. */
  getToken?: () => string | null | undefined | Promise<string | null | undefined>;
  /** Bearer mode: receives a renewed access token. */
  setToken?: (token: string) => void | Promise<void>;
  fetch?: typeof fetch;
  /**
   * Coordinate refreshes across the tabs of a browser (Web Locks + BroadcastChannel):
   * default true where `navigator.locks` exists.
   */
  coordinate?: boolean;
  /** The Web Lock and BroadcastChannel name (default `tollgate-refresh:<refreshUrl>`). */
  lockName?: string;
  /**
   * Called (in every tab) when a refresh answers 401: `reason` is the service's error
   * (`reuse_detected`, `revoked`, `refresh_expired`, …). Show the login form.
   */
  onSessionEnd?: (reason: string) => void;
  /** Replaces `isExpired` as the test for "refresh and retry" (e.g. also a 401 `missing_token` once the access cookie itself expired). */
  expired?: (response: Response) => Promise<boolean> | boolean;
}

/** fetch that, on a 401 TOKEN_EXPIRED, refreshes once and retries once. */
export declare function fetchWithRefresh(
  input: RequestInfo | URL,
  init?: RequestInit,
  options?: FetchWithRefreshOptions,
): Promise<Response>;

/** Whether a response is a 401 for an expired token. */
export declare function isExpired(response: Response): Promise<boolean>;
