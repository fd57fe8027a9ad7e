//! CSRF and CORS.
//!
//! **CSRF.** A state-changing request authenticated by a cookie (refresh or logout
//! with the cookie, an admin write with the `access_token` cookie) must pass both:
//! 1. *where it comes from*: an `Origin` header must be on `allowed_origins` or come
//!    with `Sec-Fetch-Site: same-origin`; without `Origin`, a `Sec-Fetch-Site` other
//!    than `same-origin` is refused; `Origin: null` is refused; a request with neither
//!    header (not a browser) goes on to the token check;
//! 2. *double submit*: the `X-CSRF-Token` header equals the `csrf_token` cookie
//!    (compared in constant time). A cross-site page can neither read the cookie nor
//!    set the header without a CORS preflight that only `allowed_origins` pass.
//!
//! Requests authenticated by `Authorization: Bearer` or a token in the JSON body carry
//! no ambient credential and need neither check.
//!
//! **CORS.** Only `allowed_origins` get `Access-Control-Allow-Origin` (their exact
//! origin, never `*`) with `Access-Control-Allow-Credentials: true`; a preflight from
//! any other origin is refused with 403 `cors_origin_not_allowed`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::cookies::{self, CSRF_COOKIE, CSRF_HEADER};
use crate::error::ApiError;

/// The allow-list shared by the CSRF and CORS checks.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// Exact origins (`scheme://host[:port]`).
    pub allowed: Vec<String>,
}

impl Origins {
    fn allows(&self, origin: &str) -> bool {
        self.allowed.iter().any(|o| o == origin)
    }

    /// The CSRF check for a cookie-authenticated state-changing request.
    pub fn check_csrf(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        match headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("null")) {
            Some("null") => return Err(csrf("the request's Origin is null")),
            Some(origin) => {
                if !(self.allows(origin) || fetch_site == Some("same-origin")) {
                    return Err(csrf(&format!("origin {origin} is not allowed")));
                }
            }
            None => {
                if fetch_site.is_some_and(|s| s != "same-origin") {
                    return Err(csrf("a cross-site request without an allowed Origin"));
                }
            }
        }
        let cookie = cookies::get(headers, CSRF_COOKIE);
        let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        match (cookie, sent) {
            (Some(c), Some(s)) if c.len() == s.len() && bool::from(c.as_bytes().ct_eq(s.as_bytes())) => Ok(()),
            (None, _) => Err(csrf("no csrf_token cookie")),
            (_, None) => Err(csrf("the X-CSRF-Token header is missing")),
            _ => Err(csrf("the X-CSRF-Token header does not match the csrf_token cookie")),
        }
    }
}

fn csrf(detail: &str) -> ApiError {
    ApiError::forbidden("csrf_failed", detail)
}

/// The CORS middleware (see the module documentation).
pub async fn cors(State(origins): State<std::sync::Arc<Origins>>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let preflight = req.method() == Method::OPTIONS && req.headers().contains_key("access-control-request-method");
    let allowed = origin.as_deref().is_some_and(|o| origins.allows(o));
    if preflight {
        if !allowed {
            return ApiError::forbidden("cors_origin_not_allowed", "this origin may not call the login service")
                .into_response();
        }
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, DELETE"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, x-csrf-token"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        allow(h, origin.as_deref());
        return resp;
    }
    let mut resp = next.run(req).await;
    resp.headers_mut().append(header::VARY, HeaderValue::from_static("Origin"));
    if allowed {
        allow(resp.headers_mut(), origin.as_deref());
    }
    resp
}

fn allow(h: &mut HeaderMap, origin: Option<&str>) {
    if let Some(v) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn csrf_rules() {
        let o = Origins { allowed: vec!["https://app.test".into()] };
        let good = [("cookie", "csrf_token=abc"), ("x-csrf-token", "abc")];
        assert!(o.check_csrf(&h(&good)).is_ok());
        assert!(o.check_csrf(&h(&[good[0], good[1], ("origin", "https://app.test")])).is_ok());
        assert!(o
            .check_csrf(&h(&[good[0], good[1], ("origin", "https://login.test"), ("sec-fetch-site", "same-origin")]))
            .is_ok());
        for bad in [
            vec![good[0], good[1], ("origin", "https://evil.test")],
            vec![good[0], good[1], ("origin", "https://evil.test"), ("sec-fetch-site", "cross-site")],
            vec![good[0], good[1], ("origin", "null")],
            vec![good[0], good[1], ("sec-fetch-site", "cross-site")],
            vec![good[0]],
            vec![good[1]],
            vec![("cookie", "csrf_token=abc"), ("x-csrf-token", "abd")],
            vec![("cookie", "csrf_token=abc"), ("x-csrf-token", "abcd")],
        ] {
            assert_eq!(o.check_csrf(&h(&bad)).unwrap_err().kind, "csrf_failed", "{bad:?}");
        }
    }
}
