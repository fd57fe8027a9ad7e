// The guides' cookies, exactly (and as the login service sets them, auth/src/cookies.rs):
//
//   access_token=<jwt>; Path=/; Max-Age=<access life>; SameSite=Strict; HttpOnly; Secure
//   refresh_token=<jwt>; Path=/auth/refresh; Max-Age=<refresh life>; SameSite=Strict; HttpOnly; Secure
//
// and their clearing (empty value, Max-Age=0, same Path). `Secure` is dropped only when
// asked for by name, `insecureLocalhostHttp: true`, for plain-HTTP development on
// localhost: browsers refuse to store Secure cookies from http:// other than localhost,
// and a cookie without Secure travels in the clear. Never set it in production.

export const ACCESS_COOKIE = 'access_token';
export const REFRESH_COOKIE = 'refresh_token';
export const REFRESH_COOKIE_PATH = '/auth/refresh';

function cookie(name, value, path, maxAge, options) {
  if (typeof value !== 'string' || !/^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$/.test(value)) {
    throw new TypeError(`${name}: the value must be cookie-octets (a JWT is)`);
  }
  if (!Number.isInteger(maxAge) || maxAge < 0) throw new TypeError(`${name}: Max-Age must be whole seconds`);
  let s = `${name}=${value}; Path=${path}; Max-Age=${maxAge}; SameSite=Strict; HttpOnly`;
  if (options?.insecureLocalhostHttp !== true) s += '; Secure';
  return s;
}

/** Seconds a token has left (its `exp` minus now), at least 0. */
function lifeOf(issued, options) {
  if (options?.maxAge !== undefined) return options.maxAge;
  const now = options?.now ?? Math.floor(Date.now() / 1000);
  return Math.max(0, Math.floor(issued.exp - now));
}

/**
 * `Set-Cookie` for the access token. `issued` is what Issuer.issueAccess returned
 * (Max-Age = its remaining life) or a token string with `options.maxAge`.
 */
export function accessTokenCookie(issued, options = {}) {
  if (typeof issued === 'string') return cookie(ACCESS_COOKIE, issued, '/', requireMaxAge(options), options);
  return cookie(ACCESS_COOKIE, issued.token, '/', lifeOf(issued, options), options);
}

/** `Set-Cookie` for the refresh token (Path=/auth/refresh). */
export function refreshTokenCookie(issued, options = {}) {
  if (typeof issued === 'string') return cookie(REFRESH_COOKIE, issued, REFRESH_COOKIE_PATH, requireMaxAge(options), options);
  return cookie(REFRESH_COOKIE, issued.token, REFRESH_COOKIE_PATH, lifeOf(issued, options), options);
}

/** `Set-Cookie` values for both (a pair from Issuer.issuePair / Refresher). */
export function authCookies(pair, options = {}) {
  return [accessTokenCookie(pair.access, options), refreshTokenCookie(pair.refresh, options)];
}

/** `Set-Cookie` values that clear both cookies. */
export function clearAuthCookies(options = {}) {
  return [cookie(ACCESS_COOKIE, '', '/', 0, options), cookie(REFRESH_COOKIE, '', REFRESH_COOKIE_PATH, 0, options)];
}

function requireMaxAge(options) {
  if (options.maxAge === undefined) throw new TypeError('a token string needs options.maxAge (or pass what the Issuer returned)');
  return options.maxAge;
}

/** The value of cookie `name` in a Cookie header, or null. Two cookies of that name: null (ambiguous). */
export function readCookie(cookieHeader, name) {
  if (typeof cookieHeader !== 'string') return null;
  let found = null;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    if (found !== null) return null;
    found = part.slice(eq + 1).trim();
  }
  return found;
}
