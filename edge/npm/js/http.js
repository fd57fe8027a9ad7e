// HTTP guards: an Express/Connect middleware and a fetch-handler wrapper, answering
// exactly as the Worker does.
//
// The token is taken from `Authorization: Bearer <token>` first, then from the cookie
// (default `access_token`). Answers:
// - no token: 401, `WWW-Authenticate: Bearer realm="tollgate"`, `{"error":"missing_token"}`
// - rejected: 401, `WWW-Authenticate: Bearer error="invalid_token",
//   error_description="<reason>"`, `{"error":"invalid_token","reason":R}` plus
//   `"code":"TOKEN_EXPIRED"` when expired (clients refresh on that)
// - rule not met (roles/scopes): 403, `WWW-Authenticate: Bearer error="insufficient_scope"`,
//   `{"error":"insufficient_scope"}`
// - denylist replica too stale under failMode "closed": 503 with `Retry-After`,
//   `{"error":"denylist_unavailable"}`

import { TollgateError, isTokenError } from './errors.js';

/** Default cookie holding the access token. */
export const DEFAULT_COOKIE_NAME = 'access_token';

/**
 * The token from a Bearer Authorization header, else from the named cookie.
 * @param {string|null|undefined} authorization
 * @param {string|null|undefined} cookieHeader
 */
export function extractToken(authorization, cookieHeader, cookieName = DEFAULT_COOKIE_NAME) {
  if (typeof authorization === 'string') {
    const m = /^\s*bearer\s+(\S+)\s*$/i.exec(authorization);
    if (m) return m[1];
  }
  if (typeof cookieHeader === 'string' && cookieHeader) {
    for (const part of cookieHeader.split(';')) {
      const eq = part.indexOf('=');
      if (eq < 0 || part.slice(0, eq).trim() !== cookieName) continue;
      let value = part.slice(eq + 1).trim();
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      try {
        value = decodeURIComponent(value);
      } catch {
        // not percent-encoded: take it as it is
      }
      if (value) return value;
    }
  }
  return null;
}

/**
 * Decides what to do with a request's token: `{ ok: true, claims }` or
 * `{ ok: false, status, headers, body }`. Unexpected errors reject.
 */
export async function authorize(token, options) {
  if (!token) {
    return deny(401, { 'www-authenticate': 'Bearer realm="tollgate"' }, { error: 'missing_token' });
  }
  let claims;
  try {
    const callOpts = { denylist: options.denylist, now: options.now?.() };
    claims = options.sync ? options.verifier.verifySync(token, callOpts) : await options.verifier.verify(token, callOpts);
  } catch (e) {
    if (isTokenError(e)) {
      const body = { error: 'invalid_token', reason: e.reason };
      if (e.code === 'TOKEN_EXPIRED') body.code = 'TOKEN_EXPIRED';
      return deny(401, { 'www-authenticate': `Bearer error="invalid_token", error_description="${e.reason}"` }, body);
    }
    if (e instanceof TollgateError && e.code === 'DENYLIST_STALE') {
      return deny(503, { 'retry-after': String(options.retryAfterSeconds ?? 5) }, { error: 'denylist_unavailable' });
    }
    throw e;
  }
  if (!rulesMet(claims, options)) {
    return deny(403, { 'www-authenticate': 'Bearer error="insufficient_scope"' }, { error: 'insufficient_scope' });
  }
  return { ok: true, claims };
}

/**
 * Express/Connect middleware. On success sets `req[property]` (default `user`, as the
 * seeds' authenticateToken did) to the claims and `req.auth` to `{ token, claims }`.
 */
export function authenticate(options) {
  const opts = normalise(options);
  return function tollgateAuthenticate(req, res, next) {
    const cookieHeader = req.headers?.cookie;
    let token = extractToken(req.headers?.authorization, cookieHeader, opts.cookieName);
    if (!token && req.cookies && typeof req.cookies[opts.cookieName] === 'string') token = req.cookies[opts.cookieName];
    authorize(token, opts).then(
      (decision) => {
        if (decision.ok) {
          req[opts.property] = decision.claims;
          req.auth = { token, claims: decision.claims };
          next();
          return;
        }
        res.statusCode = decision.status;
        for (const [k, v] of Object.entries(decision.headers)) res.setHeader(k, v);
        res.end(decision.body);
      },
      (err) => next(err),
    );
  };
}

/**
 * Wraps a fetch handler `(request, auth, ...rest)`: it is called only for requests
 * that pass, with `auth = { token, claims }`; others get the 401/403/503 answer.
 */
export function withAuth(handler, options) {
  const opts = normalise(options);
  return async function tollgateFetch(request, ...rest) {
    const token = extractToken(request.headers.get('authorization'), request.headers.get('cookie'), opts.cookieName);
    const decision = await authorize(token, opts);
    if (!decision.ok) return new Response(decision.body, { status: decision.status, headers: decision.headers });
    return handler(request, { token, claims: decision.claims }, ...rest);
  };
}

function normalise(options) {
  if (!options || !options.verifier) throw new TypeError('options.verifier is required');
  const rules = {};
  for (const k of ['rolesAny', 'rolesAll', 'scopesAny', 'scopesAll']) {
    if (options[k] !== undefined) {
      if (!Array.isArray(options[k])) throw new TypeError(`${k} must be an array of strings`);
      rules[k] = options[k];
    }
  }
  return {
    verifier: options.verifier,
    denylist: options.denylist,
    cookieName: options.cookieName ?? DEFAULT_COOKIE_NAME,
    property: options.property ?? 'user',
    sync: options.sync === true,
    now: options.now,
    retryAfterSeconds: options.retryAfterSeconds,
    ...rules,
  };
}

function deny(status, headers, body) {
  return {
    ok: false,
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
    body: JSON.stringify(body),
  };
}

/** Roles from `roles` (array or space-separated) and `role`; scopes from `scope`/`scp`. */
function rulesMet(claims, rules) {
  if (rules.rolesAny || rules.rolesAll) {
    const roles = new Set([...words(claims.roles), ...words(claims.role)]);
    if (rules.rolesAny && !rules.rolesAny.some((r) => roles.has(r))) return false;
    if (rules.rolesAll && !rules.rolesAll.every((r) => roles.has(r))) return false;
  }
  if (rules.scopesAny || rules.scopesAll) {
    const scopes = new Set([...words(claims.scope), ...words(claims.scp)]);
    if (rules.scopesAny && !rules.scopesAny.some((s) => scopes.has(s))) return false;
    if (rules.scopesAll && !rules.scopesAll.every((s) => scopes.has(s))) return false;
  }
  return true;
}

function words(v) {
  if (typeof v === 'string') return v.split(/\s+/).filter(Boolean);
  if (Array.isArray(v)) return v.filter((x) => typeof x === 'string');
  return [];
}
