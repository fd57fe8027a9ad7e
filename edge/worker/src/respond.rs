//! Every response the Worker makes itself (the origin's are passed through): 400, 401,
//! 403, 500, 502 and 503, with the `WWW-Authenticate` header and JSON body the issue fixes.
//!
//! | case | status | `WWW-Authenticate` | body |
//! |---|---|---|---|
//! | path refused ([`crate::path`]) | 400 | | `{"error":"bad_request","reason":"<path reason>"}` |
//! | two credentials ([`crate::proxy::credential`]) | 400 | | `{"error":"ambiguous_credentials"}` |
//! | no token | 401 | `Bearer realm="tollgate"` | `{"error":"unauthorized","reason":"missing_token"}` |
//! | invalid / revoked | 401 | `Bearer error="invalid_token", error_description="<reason>"` | `{"error":"invalid_token","reason":"<reason>"}` (+ `"code":"TOKEN_EXPIRED"` when expired) |
//! | rule not met | 403 | `Bearer error="insufficient_scope", error_description="rule_not_met"` (+ `scope`) | `{"error":"insufficient_scope","reason":"rule_not_met"}` |
//! | replica too stale | 503 | | `{"error":"unavailable","reason":"denylist_stale"}` + `Retry-After` |
//! | no keys could be loaded | 503 | | `{"error":"unavailable","reason":"jwks_unavailable"}` + `Retry-After` |
//! | configuration invalid | 500 | | `{"error":"misconfigured"}` |
//! | origin unreachable | 502 | | `{"error":"bad_gateway"}` |
//! | unexpected runtime error | 500 | | `{"error":"internal"}` |

use serde_json::json;
use tollgate_core::Reason;

use crate::path::PathError;
use web_sys::{Headers, Response, ResponseInit};

/// What the Worker answers on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The request path has no canonical form (`encoded_slash`, `backslash`, `nul`,
    /// `path_parameter`, `dot_segment`, `bad_escape`, `double_encoding`, `invalid_utf8`,
    /// `unnormalized_unicode`, `trailing_dot_or_space`).
    BadPath(PathError),
    /// Two credentials where one is allowed.
    AmbiguousCredentials,
    /// No token in `Authorization` or the cookie.
    MissingToken,
    /// The token was rejected (including `revoked`).
    Invalid(Reason),
    /// The route's rule is not met; the string lists what it asks for.
    Forbidden(String),
    /// The denylist replica is too stale (fail mode closed).
    Stale {
        /// `Retry-After`, seconds.
        retry_after: u64,
    },
    /// No key set could be loaded.
    JwksUnavailable,
    /// The configuration is invalid.
    Misconfigured,
    /// The origin could not be reached.
    BadGateway,
    /// An unexpected runtime error (logged).
    Internal,
}

impl Reply {
    /// Status, `WWW-Authenticate` and `Retry-After` values, and the JSON body.
    pub fn parts(&self) -> (u16, Option<String>, Option<u64>, serde_json::Value) {
        match self {
            Reply::BadPath(e) => (400, None, None, json!({"error": "bad_request", "reason": e.as_str()})),
            Reply::AmbiguousCredentials => (
                400,
                None,
                None,
                json!({"error": "ambiguous_credentials", "detail": "send one token: one Authorization: Bearer, or one token cookie"}),
            ),
            Reply::MissingToken => (
                401,
                Some(r#"Bearer realm="tollgate""#.to_owned()),
                None,
                json!({"error": "unauthorized", "reason": "missing_token"}),
            ),
            Reply::Invalid(reason) => {
                let r = reason.as_str();
                let mut body = json!({"error": "invalid_token", "reason": r});
                if *reason == Reason::Expired {
                    body["code"] = json!("TOKEN_EXPIRED");
                }
                (401, Some(format!(r#"Bearer error="invalid_token", error_description="{r}""#)), None, body)
            }
            Reply::Forbidden(wanted) => {
                let mut h = r#"Bearer error="insufficient_scope", error_description="rule_not_met""#.to_owned();
                if !wanted.is_empty()
                    && wanted.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
                    && !wanted.contains('"')
                {
                    h.push_str(&format!(r#", scope="{wanted}""#));
                }
                (403, Some(h), None, json!({"error": "insufficient_scope", "reason": "rule_not_met"}))
            }
            Reply::Stale { retry_after } => {
                (503, None, Some(*retry_after), json!({"error": "unavailable", "reason": "denylist_stale"}))
            }
            Reply::JwksUnavailable => {
                (503, None, Some(5), json!({"error": "unavailable", "reason": "jwks_unavailable"}))
            }
            Reply::Misconfigured => (500, None, None, json!({"error": "misconfigured"})),
            Reply::BadGateway => (502, None, None, json!({"error": "bad_gateway"})),
            Reply::Internal => (500, None, None, json!({"error": "internal"})),
        }
    }

    /// The response.
    pub fn response(&self) -> Response {
        let (status, www, retry, body) = self.parts();
        let headers = [
            Some(("content-type", "application/json".to_owned())),
            Some(("cache-control", "no-store".to_owned())),
            www.map(|w| ("www-authenticate", w)),
            retry.map(|r| ("retry-after", r.to_string())),
        ];
        json_response(status, &body.to_string(), headers.iter().flatten().map(|(k, v)| (*k, v.as_str())))
    }
}

/// A response with a body and headers; falls back to a bare response of the same
/// status if the runtime refuses a header, and to `Response.error()` as the last resort.
pub fn json_response<'a>(status: u16, body: &str, headers: impl Iterator<Item = (&'a str, &'a str)>) -> Response {
    let init = ResponseInit::new();
    init.set_status(status);
    if let Ok(h) = Headers::new() {
        for (k, v) in headers {
            let _ = h.set(k, v);
        }
        init.set_headers(&h);
    }
    Response::new_with_opt_str_and_init(Some(body), &init)
        .or_else(|_| Response::new_with_opt_str_and_init(None, &init))
        .unwrap_or_else(|_| Response::error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_headers() {
        let (s, w, r, b) = Reply::Invalid(Reason::Expired).parts();
        assert_eq!((s, r), (401, None));
        assert_eq!(w.as_deref(), Some(r#"Bearer error="invalid_token", error_description="expired""#));
        assert_eq!(b, json!({"error": "invalid_token", "reason": "expired", "code": "TOKEN_EXPIRED"}));
        let (_, _, _, b) = Reply::Invalid(Reason::Revoked).parts();
        assert_eq!(b, json!({"error": "invalid_token", "reason": "revoked"}));
        let (s, w, _, _) = Reply::MissingToken.parts();
        assert_eq!((s, w.as_deref()), (401, Some(r#"Bearer realm="tollgate""#)));
        let (s, w, _, _) = Reply::Forbidden("admin".into()).parts();
        assert_eq!(s, 403);
        assert!(w.unwrap_or_default().ends_with(r#"scope="admin""#));
        let (s, w, r, b) = Reply::BadPath(PathError::EncodedSlash).parts();
        assert_eq!((s, w, r), (400, None, None));
        assert_eq!(b, json!({"error": "bad_request", "reason": "encoded_slash"}));
        let (s, _, r, _) = Reply::Stale { retry_after: 2 }.parts();
        assert_eq!((s, r), (503, Some(2)));
    }
}
