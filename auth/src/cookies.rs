//! The cookies browsers hold: `access_token` and `refresh_token` (both HttpOnly,
//! Secure, SameSite=Strict; the refresh token only on `Path=/auth/refresh`) and the
//! double-submit `csrf_token` (readable by the page's script, Secure, SameSite=Strict).
//!
//! `Secure` is dropped only with the explicit `insecure_dev_cookies` switch, which the
//! configuration allows on a loopback listen address only and which is logged loudly at
//! start-up.

use axum::http::{header, HeaderMap, HeaderValue};

/// The access-token cookie.
pub const ACCESS_COOKIE: &str = "access_token";
/// The refresh-token cookie.
pub const REFRESH_COOKIE: &str = "refresh_token";
/// The double-submit CSRF cookie; its value goes in [`CSRF_HEADER`].
pub const CSRF_COOKIE: &str = "csrf_token";
/// The header that must repeat the CSRF cookie on cookie-authenticated writes.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The refresh cookie's path.
pub const REFRESH_PATH: &str = "/auth/refresh";

/// How cookies are written.
#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    /// Whether `Secure` is set (true unless `insecure_dev_cookies`).
    pub secure: bool,
}

impl CookiePolicy {
    fn cookie(&self, name: &str, value: &str, path: &str, max_age: u64, http_only: bool) -> HeaderValue {
        let mut s = format!("{name}={value}; Path={path}; Max-Age={max_age}; SameSite=Strict");
        if http_only {
            s.push_str("; HttpOnly");
        }
        if self.secure {
            s.push_str("; Secure");
        }
        // Values are base64url tokens: always a valid header value.
        HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }

    /// An HttpOnly cookie with the given `SameSite` (`Lax` or `Strict`), `Secure` as
    /// the policy says: the social-login attempt and pending-link cookies.
    pub fn http_only(&self, name: &str, value: &str, path: &str, max_age: u64, same_site: &str) -> HeaderValue {
        let mut s = format!("{name}={value}; Path={path}; Max-Age={max_age}; SameSite={same_site}; HttpOnly");
        if self.secure {
            s.push_str("; Secure");
        }
        HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }

    /// A readable (not HttpOnly) `csrf_token` cookie alone.
    pub fn csrf(&self, csrf: &str, max_age: u64) -> HeaderValue {
        self.cookie(CSRF_COOKIE, csrf, "/", max_age, false)
    }

    /// Appends the three session cookies.
    pub fn set_session(&self, headers: &mut HeaderMap, access: (&str, u64), refresh: (&str, u64), csrf: &str) {
        headers.append(header::SET_COOKIE, self.cookie(ACCESS_COOKIE, access.0, "/", access.1, true));
        headers.append(header::SET_COOKIE, self.cookie(REFRESH_COOKIE, refresh.0, REFRESH_PATH, refresh.1, true));
        headers.append(header::SET_COOKIE, self.cookie(CSRF_COOKIE, csrf, "/", refresh.1, false));
    }

    /// Appends cookies that clear all three.
    pub fn clear_session(&self, headers: &mut HeaderMap) {
        headers.append(header::SET_COOKIE, self.cookie(ACCESS_COOKIE, "", "/", 0, true));
        headers.append(header::SET_COOKIE, self.cookie(REFRESH_COOKIE, "", REFRESH_PATH, 0, true));
        headers.append(header::SET_COOKIE, self.cookie(CSRF_COOKIE, "", "/", 0, false));
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (the first one).
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_guides_cookies_exactly() {
        let mut h = HeaderMap::new();
        CookiePolicy { secure: true }.set_session(&mut h, ("a.b.c", 900), ("r.s.t", 604800), "csrf1");
        let v: Vec<_> = h.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_eq!(v[0], "access_token=a.b.c; Path=/; Max-Age=900; SameSite=Strict; HttpOnly; Secure");
        assert_eq!(v[1], "refresh_token=r.s.t; Path=/auth/refresh; Max-Age=604800; SameSite=Strict; HttpOnly; Secure");
        assert_eq!(v[2], "csrf_token=csrf1; Path=/; Max-Age=604800; SameSite=Strict; Secure");
        let mut h = HeaderMap::new();
        CookiePolicy { secure: false }.clear_session(&mut h);
        let v: Vec<_> = h.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_eq!(v[1], "refresh_token=; Path=/auth/refresh; Max-Age=0; SameSite=Strict; HttpOnly");
    }

    #[test]
    fn reads_cookies() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; access_token=tok; b="));
        h.append(header::COOKIE, HeaderValue::from_static("csrf_token=c"));
        assert_eq!(get(&h, "access_token"), Some("tok"));
        assert_eq!(get(&h, "csrf_token"), Some("c"));
        assert_eq!(get(&h, "b"), None);
        assert_eq!(get(&h, "refresh_token"), None);
    }
}
