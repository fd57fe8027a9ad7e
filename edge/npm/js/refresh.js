// The refresh flow in one place: the guides' `/auth/refresh` route, done right. The
// twin of tollgate-origin's Refresher (origin/src/refresh.rs).
//
//   presented refresh token ──Verifier: refresh keys, typ refresh+jwt, refresh aud, exp──▶
//     issue the next refresh token ──POST /v1/refresh/rotate (sid, presented → next)──▶
//       rotated → issue the access token         → { outcome: "rotated", pair, seq, grace }
//       reuse   → the service revoked the session → { outcome: "reuse_detected", sid, seq }
//       refused → { outcome: "invalid", reason: session_revoked | unknown_session |
//                                               unknown_token | issuer_mismatch }
//
// A token that fails verification never reaches the service: `{ outcome: "expired" }`
// or `{ outcome: "invalid", reason }` with the verifier's reason. Only failures that
// are not the token's fault (the service unreachable, ...) reject.

import { isTokenError } from './errors.js';
import { Issuer } from './issuer.js';
import { RevocationClient } from './revocation-client.js';

const SERVICE_REFUSALS = new Set(['session_revoked', 'unknown_session', 'unknown_token', 'issuer_mismatch']);

export class Refresher {
  #issuer;
  #client;
  #verifier = null;
  #verifierKids = '';

  /** @param {Issuer} issuer @param {RevocationClient} client */
  constructor(issuer, client) {
    if (!(issuer instanceof Issuer)) throw new TypeError('new Refresher(issuer, client): issuer must be an Issuer');
    if (!(client instanceof RevocationClient)) throw new TypeError('new Refresher(issuer, client): client must be a RevocationClient');
    this.#issuer = issuer;
    this.#client = client;
  }

  get issuer() {
    return this.#issuer;
  }

  get client() {
    return this.#client;
  }

  /** Login: issues the pair and starts the session at the service. Resolves to `{ access, refresh }`. */
  async start(access) {
    const pair = await this.#issuer.issuePair(access);
    await this.#client.startSession({
      sid: pair.refresh.sid,
      sub: pair.refresh.sub,
      refreshJti: pair.refresh.jti,
      exp: pair.refresh.exp,
      iss: this.#issuer.config.issuer,
    });
    return pair;
  }

  /**
   * Verifies a presented refresh token: `{ ok: true, presented: { sub, sid, jti, exp,
   * claims } }`, or `{ ok: false, outcome }` with outcome `expired` / `invalid`.
   */
  async verify(token) {
    let claims;
    try {
      claims = await this.#refreshVerifier().verify(typeof token === 'string' ? token : '', { now: this.#issuer.now() });
    } catch (e) {
      if (!isTokenError(e)) throw e;
      return { ok: false, outcome: e.reason === 'expired' ? { outcome: 'expired' } : { outcome: 'invalid', reason: e.reason } };
    }
    return { ok: true, presented: { sub: claims.sub, sid: claims.sid, jti: claims.jti, exp: claims.exp, claims } };
  }

  /** Rotates a verified refresh token and issues the new pair (see the outcomes above). */
  async rotate(presented, access = {}) {
    const next = await this.#issuer.issueRefresh({ sub: presented.sub, sid: presented.sid });
    let r;
    try {
      r = await this.#client.rotate({
        sid: presented.sid,
        presentedJti: presented.jti,
        nextJti: next.jti,
        exp: next.exp,
        iss: this.#issuer.config.issuer,
      });
    } catch (e) {
      if (e?.code === 'SERVICE_ERROR' && SERVICE_REFUSALS.has(e.kind)) return { outcome: 'invalid', reason: e.kind };
      throw e;
    }
    if (r.outcome === 'reuse_detected') return { outcome: 'reuse_detected', sid: presented.sid, seq: r.seq };
    // sub and sid always the refresh token's, whatever `access` says.
    const issued = await this.#issuer.issueAccess({ ...access, sub: presented.sub, sid: presented.sid });
    return { outcome: 'rotated', pair: { access: issued, refresh: next }, seq: r.seq, grace: r.grace };
  }

  /**
   * One call: verify, rotate, issue. `access` is the access token's claims (roles,
   * scope, ...) or a function of the presented token returning them (or a promise).
   */
  async refresh(token, access = {}) {
    const v = await this.verify(token);
    if (!v.ok) return v.outcome;
    const claims = typeof access === 'function' ? await access(v.presented) : access;
    return this.rotate(v.presented, claims ?? {});
  }

  #refreshVerifier() {
    const now = this.#issuer.now();
    const kids = this.#issuer.refreshKeys.published(now).map((k) => k.kid).join(' ');
    if (this.#verifier === null || kids !== this.#verifierKids) {
      this.#verifier = this.#issuer.refreshVerifier({ cacheSize: 0 });
      this.#verifierKids = kids;
    }
    return this.#verifier;
  }
}

const refreshers = new WeakMap();

/** `new Refresher(issuer, client).refresh(token, access)`, with the Refresher kept per issuer and client. */
export function refresh(issuer, client, token, access) {
  let byClient = refreshers.get(issuer);
  if (!byClient) refreshers.set(issuer, (byClient = new WeakMap()));
  let r = byClient.get(client);
  if (!r) byClient.set(client, (r = new Refresher(issuer, client)));
  return r.refresh(token, access);
}
