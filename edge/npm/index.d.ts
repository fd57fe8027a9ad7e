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
  | 'JWKS_FETCH'
  // Issuer, KeySet, SigningKey
  | 'INVALID_KEY'
  | 'UNSAFE_DELAY'
  | 'DUPLICATE_KID'
  | 'UNKNOWN_KID'
  | 'SHARED_KEY'
  | 'NO_SIGNING_KEY'
  | 'MISSING_CLAIM'
  | 'INVALID_CLAIM'
  | 'RESERVED_CLAIM'
  | 'TOKEN_TOO_LARGE'
  // RevocationClient
  | 'SERVICE_ERROR'
  | 'UNREACHABLE'
  | 'DEADLINE'
  | 'PROTOCOL'
  // X-Tollgate-Assertion
  | 'INVALID_ASSERTION';

/** The conformance reasons, in check order. */
export declare const REASONS: readonly Reason[];

/** Every error the package raises on purpose. `instanceof` works across the ESM and CJS copies. */
export declare class TollgateError extends Error {
  constructor(message: string, details: { code: ErrorCode; reason?: Reason | AssertionReason; cause?: unknown; [field: string]: unknown });
  readonly name: 'TollgateError';
  readonly code: ErrorCode;
  /** Token rejections: the conformance reason; INVALID_ASSERTION: the assertion reason. */
  readonly reason?: Reason | AssertionReason;
  /** SERVICE_ERROR: the service's `error` kind, exactly as it sent it (e.g. `forbidden_issuer`). */
  readonly kind?: string;
  /** SERVICE_ERROR: the HTTP status. */
  readonly status?: number;
  /** SERVICE_ERROR: the service's `detail`. */
  readonly detail?: string;
  /** SERVICE_ERROR: the service's Retry-After, seconds. */
  readonly retryAfter?: number;
  /** SERVICE_ERROR: the parsed answer. */
  readonly body?: unknown;
  /** RevocationClient: attempts made. */
  readonly attempts?: number;
  /** MISSING_CLAIM, INVALID_CLAIM, RESERVED_CLAIM: the claim. */
  readonly claim?: string;
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
  /**
   * A signed snapshot under a replica's acceptance rules at `now` (seconds): refused as
   * DENYLIST_TOO_OLD, DENYLIST_EPOCH or DENYLIST_BACKWARDS; recorded in `acceptance`.
   */
  applySnapshotAccepted(bytes: Uint8Array, publicJwk: Jwk | string, acceptance: Acceptance, now: number): void;
  /** A signed delta under the acceptance rules at `now`; returns how many events were new. */
  applyDeltaAccepted(bytes: Uint8Array, publicJwk: Jwk | string, acceptance: Acceptance, now: number): number;
  /**
   * For a message the revocation hub stored and serves later: as applySnapshotAccepted,
   * except that one signed longer ago than the bound is still applied when it moves the
   * list forward (history, not fresh) and refused with DENYLIST_TOO_OLD only when it
   * adds nothing. Returns whether it was signed within the bound.
   */
  applySnapshotStored(bytes: Uint8Array, publicJwk: Jwk | string, acceptance: Acceptance, now: number): boolean;
  /** applyDeltaAccepted under applySnapshotStored's rules; returns whether it was signed within the bound. */
  applyDeltaStored(bytes: Uint8Array, publicJwk: Jwk | string, acceptance: Acceptance, now: number): boolean;
  /** Drops entries whose `exp` is before `cutoff`; returns how many. */
  prune(cutoff: number): number;
  readonly seq: number;
  readonly size: number;
  /** Frees the wasm memory now (otherwise the garbage collector does). */
  free(): void;
}

/**
 * A replica's acceptance rules (wasm): messages older than `maxAgeSeconds` by their
 * signed creation time, from another epoch of the service, or below the high-water
 * mark are refused.
 */
export declare class Acceptance {
  /** `mark`: a `highWaterMark` saved before (`tg1:<epoch>:<seq>`), or null. */
  constructor(maxAgeSeconds: number, mark?: string | null);
  /** The newest position accepted, as text to persist, or null. */
  readonly highWaterMark: string | null;
  /** The service epoch followed (32 hex digits), or null. */
  readonly epoch: string | null;
  readonly maxAgeSeconds: number;
  /** Lets the next snapshot come from another epoch or below the mark. */
  rebootstrap(): void;
  readonly rebootstrapping: boolean;
  free(): void;
}

/** A WebSocket constructor taking `(url, { headers })`, as Node's global one and the `ws` package do. */
export type WebSocketConstructor = new (url: string, options?: { headers?: Record<string, string> }) => {
  binaryType: string;
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
};

export interface RemoteDenylistOptions {
  /**
   * Long-poll: the revocation service's base URL, `https://…` (`http://` to loopback only).
   * Push (`transport: 'hub-ws'`): the hub's `wss://{worker}/__tollgate/hub/{tenant}/ws`
   * (`ws://` to loopback only).
   */
  url: string;
  /** How the replica follows: "long-poll" (default: HTTP to the service) or "hub-ws" (the revocation hub's WebSocket push). */
  transport?: 'long-poll' | 'hub-ws';
  /** A `denylist:read` API key. */
  token?: string;
  /** The signer's public JWK, pinned (required: never fetched on first use): the service's, or in push mode from a log-mode hub, the hub's. */
  publicJwk: Jwk | string;
  /** Long-poll wait in seconds (default 5). */
  waitSeconds?: number;
  /** Push mode: seconds between asks, each answered by a signed heartbeat at the head (default min(maxStalenessSeconds / 3, 5); at least 0.12). */
  pingSeconds?: number;
  /** Push mode: the WebSocket constructor (default `globalThis.WebSocket`). */
  WebSocket?: WebSocketConstructor;
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
  /** Where the replica's high-water mark survives restarts and isolates (a file, KV, a Durable Object, ...). */
  highWaterMark?: HighWaterMarkStore;
  /** Accept the service's snapshot whatever the stored mark (after restoring or resetting the service). */
  rebootstrap?: boolean;
}

export interface HighWaterMarkStore {
  /** The stored mark (opaque text), or null when none; a bare number is read as a sequence saved by an older version. */
  load(): string | number | null | undefined | Promise<string | number | null | undefined>;
  /** Stores the mark: opaque text (`tg1:<epoch>:<seq>`). */
  save(mark: string): void | Promise<void>;
}

export declare class RemoteDenylist {
  constructor(options: RemoteDenylistOptions);
  readonly denylist: Denylist;
  readonly seq: number;
  readonly size: number;
  readonly lastSyncAt: number | null;
  readonly stale: boolean;
  /** The high-water mark (`tg1:<epoch>:<seq>`), or null before the first snapshot. */
  readonly highWaterMark: string | null;
  /** The service epoch followed (32 hex digits), or null before the first snapshot. */
  readonly epoch: string | null;
  /** How the replica follows the service. */
  readonly transport: 'long-poll' | 'hub-ws';
  assertFresh(): void;
  /** The first snapshot (push mode: the first message signed within the staleness bound), then the background loop. */
  start(): Promise<this>;
  /** Ends the background loop (push mode: closes the socket). */
  stop(): Promise<void>;
  /** One exchange (long-poll only: in push mode it rejects with INVALID_OPTIONS). */
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


// ---------------------------------------------------------------------------------
// Issuing: SigningKey, KeySet, Issuer

export type SigningAlgorithm = 'ES256' | 'RS256';

/** A private signing key (ES256 P-256, or RS256 2048 to 8192 bits); `kid` = RFC 7638 thumbprint. */
export declare class SigningKey {
  private constructor();
  static generate(alg?: SigningAlgorithm, options?: { modulusLength?: number }): Promise<SigningKey>;
  /** From a private JWK (object or JSON); the public half must match `d`; RSA needs `p` and `q`. */
  static fromJwk(jwk: Jwk | string): Promise<SigningKey>;
  /** From PKCS#8 PEM (`BEGIN PRIVATE KEY`). */
  static fromPkcs8Pem(pem: string): Promise<SigningKey>;
  readonly alg: SigningAlgorithm;
  readonly kid: string;
  readonly rsaBits: number | null;
  /** What gets published: key members plus `kid`, `alg`, `use: "sig"`. */
  readonly publicJwk: Readonly<Jwk>;
  /** Secret. */
  exportPrivateJwk(): Jwk;
  /** Secret. */
  exportPkcs8Pem(): Promise<string>;
  sign(signingInput: Uint8Array): Promise<Uint8Array>;
  signCompact(claims: Record<string, unknown>, options?: { typ?: string }): Promise<string>;
}

/** The RFC 7638 thumbprint of a public JWK. */
export declare function thumbprint(jwk: Jwk): Promise<string>;

export type KeyState = 'pending' | 'current' | 'retiring' | 'retired';

export interface KeyStatus {
  kid: string;
  alg: SigningAlgorithm;
  state: KeyState;
  publishedAt: number;
  signsFrom: number;
  stopsSigning: number | null;
  retireAfter: number | null;
  longestLife: number;
}

export interface RotationPolicy {
  /** JWKS `max-age` (default 300). */
  jwksMaxAgeSeconds?: number;
  /** Default max-age + 60; shorter than the max-age is refused (UNSAFE_DELAY). */
  publicationDelaySeconds?: number;
}

export interface JwksDocument {
  body: string;
  cacheControl: string;
  maxAge: number;
}

/** A key set with its rotation timeline; times in seconds since the epoch. */
export declare class KeySet {
  constructor(first: SigningKey, now: number, policy?: RotationPolicy);
  readonly policy: Required<RotationPolicy>;
  readonly kids: string[];
  /** Published now, signs from now + publication delay (returned). */
  add(key: SigningKey, now: number): number;
  addSigningNow(key: SigningKey, now: number): void;
  remove(kid: string): SigningKey;
  signingKey(now: number): SigningKey | null;
  status(now: number): KeyStatus[];
  published(now: number): SigningKey[];
  jwks(now: number): JwksDocument;
  prune(now: number): string[];
  /** Secret: private keys and timeline (tollgate-origin's format, version 1). */
  export(): { version: 1; jwks_max_age: number; publication_delay: number; keys: Array<{ jwk: Jwk; published_at: number; signs_from: number; longest_life: number }> };
  static import(doc: ReturnType<KeySet['export']> | string): Promise<KeySet>;
}

export interface IssuerConfig {
  issuer: string;
  /** One audience (a string in the token) or several (an array). */
  audience: string | string[];
  /** Default: the issuer. */
  refreshAudience?: string;
  /** Default 900. */
  accessTtlSeconds?: number;
  /** Default 604800. */
  refreshTtlSeconds?: number;
  /** `"at+jwt"` (RFC 9068, needs `clientId`) or `"JWT"` (default). */
  accessTyp?: 'JWT' | 'at+jwt';
  /** Milliseconds since the epoch (default Date.now). */
  clock?: () => number;
}

export interface AccessClaimsInput {
  sub: string;
  sid: string;
  roles?: string[];
  role?: string;
  /** Scope tokens, or a space-separated string. */
  scope?: string[] | string;
  clientId?: string;
  /** Overrides the configured audience. */
  audience?: string | string[];
  /** Extra claims; none of RESERVED_CLAIMS. */
  claims?: Record<string, unknown>;
  ttlSeconds?: number;
}

export interface RefreshClaimsInput {
  sub: string;
  sid: string;
  ttlSeconds?: number;
}

export interface Issued {
  token: string;
  jti: string;
  sub: string;
  sid: string;
  iat: number;
  exp: number;
  kid: string;
}

export interface TokenPair {
  access: Issued;
  refresh: Issued;
}

export declare const REFRESH_TYP: 'refresh+jwt';
export declare const RESERVED_CLAIMS: readonly string[];
export declare const DEFAULT_ACCESS_TTL_SECONDS: number;
export declare const DEFAULT_REFRESH_TTL_SECONDS: number;
export declare const DEFAULT_JWKS_MAX_AGE: number;

export declare class Issuer {
  constructor(config: IssuerConfig, accessKeys: KeySet, refreshKeys: KeySet);
  static generate(config: IssuerConfig & { alg?: SigningAlgorithm; keyPolicy?: RotationPolicy }): Promise<Issuer>;
  readonly config: Readonly<Required<Omit<IssuerConfig, 'clock' | 'audience'>> & { audience: readonly string[] }>;
  readonly accessKeys: KeySet;
  readonly refreshKeys: KeySet;
  now(): number;
  issueAccess(claims: AccessClaimsInput): Promise<Issued>;
  issueRefresh(claims: RefreshClaimsInput): Promise<Issued>;
  issuePair(access: AccessClaimsInput): Promise<TokenPair>;
  /** Serve `body` at /.well-known/jwks.json with `Cache-Control: cacheControl`. */
  jwks(): JwksDocument;
  rotateAccess(key: SigningKey): number;
  rotateRefresh(key: SigningKey): number;
  prune(): string[];
  accessPolicy(): PolicyOptions;
  refreshPolicy(): PolicyOptions;
  accessVerifier(options?: Omit<VerifierCommonOptions, keyof PolicyOptions>): Verifier;
  refreshVerifier(options?: Omit<VerifierCommonOptions, keyof PolicyOptions>): Verifier;
}

// ---------------------------------------------------------------------------------
// RevocationClient, Refresher

export interface RetryPolicy {
  /** Default 4. */
  maxAttempts: number;
  /** Default 100. */
  baseMs: number;
  /** Default 2000. */
  maxMs: number;
}

export declare const DEFAULT_RETRY: Readonly<RetryPolicy>;

export interface RevocationClientOptions {
  /** `https://…`, or `http://` to loopback (else `allowPlainHttp`). */
  url: string;
  /** `events:write`. */
  apiKey: string;
  /** `denylist:read`, for waitForEdge (default apiKey). */
  readKey?: string;
  /** Default 5000. */
  attemptTimeoutMs?: number;
  /** Default 15000. */
  callTimeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** `exp` of an event posted without one: now + this (default 1200). */
  entryLifeSeconds?: number;
  /** Accept `http://` to a host that is not loopback (the key travels in the clear). */
  allowPlainHttp?: boolean;
  fetch?: typeof fetch;
  clock?: () => number;
}

export interface Appended {
  seq: number;
  kind: string;
  duplicate: boolean;
}

export interface EventOptions {
  iss?: string;
  exp?: number;
}

export type RevocationEvent =
  | ({ kind: 'revoke_token'; jti: string } & EventOptions)
  | ({ kind: 'logout'; sid: string } & EventOptions)
  | ({ kind: 'revoke_subject'; sub: string; before: number } & EventOptions)
  | ({ kind: 'reuse_detected'; sid: string; jti: string } & EventOptions);

export type RotateResult =
  | { outcome: 'rotated'; seq: number; duplicate: boolean; grace: boolean }
  | { outcome: 'reuse_detected'; seq: number | null };

export declare class RevocationClient {
  constructor(options: RevocationClientOptions);
  readonly url: string;
  readonly retry: Readonly<RetryPolicy>;
  startSession(start: { sid: string; sub: string; refreshJti: string; exp: number; iss?: string }): Promise<{ status: 'started'; seq: number; duplicate: boolean }>;
  rotate(rotation: { sid: string; presentedJti: string; nextJti: string; exp: number; iss?: string }): Promise<RotateResult>;
  logout(sid: string, options?: EventOptions): Promise<Appended>;
  revokeToken(jti: string, options?: EventOptions): Promise<Appended>;
  revokeSubject(sub: string, before: number, options?: EventOptions): Promise<Appended>;
  post(event: RevocationEvent): Promise<Appended>;
  postBatch(events: RevocationEvent[]): Promise<Appended[]>;
  fetchDenylistKey(): Promise<Jwk>;
  waitForEdge(seq: number, options?: { timeoutMs?: number }): Promise<number>;
}

export interface PresentedRefresh {
  sub: string;
  sid: string;
  jti: string;
  exp: number;
  claims: Claims;
}

export type RefreshOutcome =
  | { outcome: 'rotated'; pair: TokenPair; seq: number; grace: boolean }
  | { outcome: 'reuse_detected'; sid: string; seq: number | null }
  | { outcome: 'expired' }
  | { outcome: 'invalid'; reason: Reason | 'session_revoked' | 'unknown_session' | 'unknown_token' | 'issuer_mismatch' };

export type AccessClaimsFor = Omit<AccessClaimsInput, 'sub' | 'sid'> & { sub?: string; sid?: string };

export declare class Refresher {
  constructor(issuer: Issuer, client: RevocationClient);
  readonly issuer: Issuer;
  readonly client: RevocationClient;
  start(access: AccessClaimsInput): Promise<TokenPair>;
  verify(token: string): Promise<{ ok: true; presented: PresentedRefresh } | { ok: false; outcome: RefreshOutcome }>;
  rotate(presented: PresentedRefresh, access?: AccessClaimsFor): Promise<RefreshOutcome>;
  refresh(token: string, access?: AccessClaimsFor | ((presented: PresentedRefresh) => AccessClaimsFor | Promise<AccessClaimsFor>)): Promise<RefreshOutcome>;
}

export declare function refresh(
  issuer: Issuer,
  client: RevocationClient,
  token: string,
  access?: AccessClaimsFor | ((presented: PresentedRefresh) => AccessClaimsFor | Promise<AccessClaimsFor>),
): Promise<RefreshOutcome>;

// ---------------------------------------------------------------------------------
// Cookies

export interface CookieOptions {
  /** Override Max-Age (seconds); required with a token string. */
  maxAge?: number;
  /** Seconds since the epoch for the remaining life (default now). */
  now?: number;
  /** Drops `Secure`: plain-HTTP localhost development only. Never in production. */
  insecureLocalhostHttp?: boolean;
}

export declare const ACCESS_COOKIE: 'access_token';
export declare const REFRESH_COOKIE: 'refresh_token';
export declare const REFRESH_COOKIE_PATH: '/auth/refresh';
export declare function accessTokenCookie(issued: Issued | string, options?: CookieOptions): string;
export declare function refreshTokenCookie(issued: Issued | string, options?: CookieOptions): string;
export declare function authCookies(pair: TokenPair, options?: CookieOptions): [string, string];
export declare function clearAuthCookies(options?: Pick<CookieOptions, 'insecureLocalhostHttp'>): [string, string];
/** The cookie's value; null when absent or present twice. */
export declare function readCookie(cookieHeader: string | null | undefined, name: string): string | null;

// ---------------------------------------------------------------------------------
// X-Tollgate-Assertion

export type AssertionReason =
  | 'missing'
  | 'malformed'
  | 'unknown_key'
  | 'bad_signature'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'expired'
  | 'not_yet_valid'
  | 'wrong_method'
  | 'wrong_target'
  | 'wrong_headers';

export declare const ASSERTION_REASONS: readonly AssertionReason[];
export declare const ASSERTION_HEADER: 'x-tollgate-assertion';

export interface AssertionOptions {
  /** HS256: TOLLGATE_ORIGIN_SECRET (two during a rotation), each at least 32 bytes. */
  secrets?: string | Array<string | Uint8Array>;
  /** ES256: the Worker's public JWKs. */
  es256Keys?: Jwk[];
  /** TOLLGATE_ORIGIN as URL.origin spells it. */
  audience?: string;
  /** Default 5, at most 300. */
  leewaySeconds?: number;
  clock?: () => number;
}

/** Who the request is for, from the verified assertion only. */
export interface EdgeIdentity {
  readonly auth: 'verified' | 'none';
  readonly sub: string | null;
  readonly sid: string | null;
  readonly tokIss: string | null;
  readonly roles: readonly string[];
  readonly scope: string | null;
  readonly jti: string;
  readonly iat: number;
  readonly exp: number;
  hasRole(role: string): boolean;
  hasScope(scope: string): boolean;
}

export declare class AssertionVerifier {
  private constructor();
  static create(options: AssertionOptions): Promise<AssertionVerifier>;
  readonly kids: string[];
  verify(method: string, target: string, headers: Headers | Record<string, string | string[] | undefined>, rawHeaders?: string[]): Promise<EdgeIdentity>;
}

/** Express/Connect middleware: `req.edge` (or `property`) = the identity, else 401. */
export declare function requireAssertion(
  options: AssertionVerifier | (AssertionOptions & { property?: string }),
): (req: any, res: any, next: (err?: unknown) => void) => void;

/** Wraps a fetch handler; it runs only with a valid assertion, the identity second. */
export declare function withAssertion<Rest extends unknown[]>(
  handler: (request: Request, identity: EdgeIdentity, ...rest: Rest) => Response | Promise<Response>,
  options: AssertionVerifier | AssertionOptions,
): (request: Request, ...rest: Rest) => Promise<Response>;

export declare function hs256Kid(secret: string | Uint8Array): Promise<string>;
export declare function headerDigest(headers: Headers | Record<string, string | string[] | undefined>, rawHeaders?: string[]): Promise<string>;
