//! Forwarding to the origin, and the header rules around it.
//!
//! Client headers named `X-Tollgate-*` are always stripped (on every route, with or
//! without a token), also when spelled with `_` for either `-` (`X-Tollgate_Sid`,
//! which CGI/WSGI-style origins read as `X-Tollgate-Sid`), so the origin can trust the
//! ones the Worker sets: `X-Tollgate-Sub`,
//! `X-Tollgate-Sid` (values outside printable ASCII are percent-encoded) and
//! `X-Tollgate-Claims` (base64url of the verified claims' JSON). `Host` is dropped so
//! the origin sees its own. Redirects are passed back to the client, not followed.

use std::cell::OnceCell;

use js_sys::Promise;
use wasm_bindgen::JsValue;
use web_sys::Request;

use crate::identity::Identity;
use crate::respond::Reply;

/// Forwards `incoming` to `origin` + `path_and_query` with its headers, less `Host` and
/// any `X-Tollgate-*`, plus the identity headers. Returns the promise of the origin's
/// response without awaiting it (no future, no wasm closures): if the fetch rejects,
/// the promise resolves to the Worker's 502 and the failure is logged, on the
/// JavaScript side. `Err` when the request cannot be made. The request is assembled in
/// one JavaScript call, and the incoming headers are copied once, into the origin
/// request itself. The path and the identity values cross from wasm as strings; the
/// origin and the 502 body are JavaScript strings made once per isolate.
pub fn forward(incoming: &Request, origin: &str, path_and_query: &str, id: &Identity) -> Result<Promise, JsValue> {
    FORWARD_CONTEXT.with(|cx| {
        let cx = cx.get_or_init(|| forward_context(origin, &Reply::BadGateway.parts().3.to_string()));
        forward_js(incoming, cx, path_and_query, id.sub.as_deref(), id.sid.as_deref(), id.claims.as_deref())
    })
}

thread_local! {
    /// `{origin, badGatewayBody}` for `forward_js`, made once per isolate (the origin is
    /// the isolate's configuration; the body is [`Reply::BadGateway`]'s).
    static FORWARD_CONTEXT: OnceCell<JsValue> = const { OnceCell::new() };
}

// The 502 is built anew in the request that needs it rather than kept per isolate: a
// `Response` carries a body stream, and workerd refuses I/O objects across requests.
// The origin request is made from the incoming headers and then edited: a `Request` the
// Worker constructs has headers of its own that it may change (the incoming one's are
// immutable), so the headers are copied once. Header names come lower-cased from
// `Headers` iteration; the doomed names are collected first, as deleting while
// iterating would skip some.
#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
export function forward_context(origin, badGatewayBody) {
  return { origin, badGatewayBody };
}

function strip_headers(headers) {
  let doomed;
  for (const name of headers.keys()) {
    if (name === 'host' || (name.charCodeAt(0) === 120 && /^x[-_]tollgate[-_]/.test(name))) (doomed ??= []).push(name);
  }
  if (doomed !== undefined) for (const name of doomed) headers.delete(name);
}

export function forward_js(incoming, cx, pathAndQuery, sub, sid, claims) {
  const method = incoming.method;
  const init = { method, headers: incoming.headers, redirect: 'manual' };
  if (method !== 'GET' && method !== 'HEAD' && incoming.body !== null) init.body = incoming.body;
  const req = new Request(cx.origin + pathAndQuery, init);
  const headers = req.headers;
  strip_headers(headers);
  if (sub !== undefined) headers.set('x-tollgate-sub', sub);
  if (sid !== undefined) headers.set('x-tollgate-sid', sid);
  if (claims !== undefined) headers.set('x-tollgate-claims', claims);
  return fetch(req).catch((e) => {
    console.log(`tollgate: origin ${cx.origin} unreachable: ${e instanceof Error ? e.message : String(e)}`);
    return new Response(cx.badGatewayBody, {
      status: 502,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    });
  });
}
"#)]
extern "C" {
    fn forward_context(origin: &str, bad_gateway_body: &str) -> JsValue;

    /// Builds the origin request (the incoming headers less `Host` and `X-Tollgate-*`,
    /// plus the identity headers; manual redirects; the body for methods that have one)
    /// and fetches it, resolving to the Worker's 502 (and logging) if the fetch rejects.
    #[wasm_bindgen(catch)]
    fn forward_js(
        incoming: &Request,
        cx: &JsValue,
        path_and_query: &str,
        sub: Option<&str>,
        sid: Option<&str>,
        claims: Option<&str>,
    ) -> Result<Promise, JsValue>;
}

/// The token from `Authorization: Bearer` first, then from the named cookie.
pub fn extract_token<'a>(
    authorization: Option<&'a str>,
    cookie: Option<&'a str>,
    cookie_name: &str,
) -> Option<&'a str> {
    bearer_token(authorization).or_else(|| cookie_token(cookie, cookie_name))
}

/// The token of an `Authorization: Bearer` header, if it is one.
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    // Compared as bytes: the header may hold any characters, and a `str` may only be cut
    // at a character boundary (byte 7 of "Bearer" followed by a multi-byte character
    // is not one).
    let auth = authorization?.trim();
    let (scheme, token) = (auth.as_bytes().get(..7)?, auth.get(7..)?);
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The value of the cookie named `cookie_name` in a `Cookie` header, if not empty.
fn cookie_token<'a>(cookie: Option<&'a str>, cookie_name: &str) -> Option<&'a str> {
    cookie?.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name.trim() == cookie_name).then(|| value.trim().trim_matches('"')).filter(|v| !v.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_first_then_cookie() {
        assert_eq!(extract_token(Some("Bearer abc"), Some("access_token=c"), "access_token"), Some("abc"));
        assert_eq!(extract_token(Some("bearer  abc "), None, "access_token"), Some("abc"));
        assert_eq!(extract_token(Some("Basic xyz"), Some("a=1; access_token=tok; b=2"), "access_token"), Some("tok"));
        assert_eq!(extract_token(Some("Bearer "), Some("access_token=\"q\""), "access_token"), Some("q"));
        assert_eq!(extract_token(None, Some("xaccess_token=1; access_token="), "access_token"), None);
        assert_eq!(extract_token(None, Some("sid=1"), "sid"), Some("1"));
        assert_eq!(extract_token(None, None, "access_token"), None);
    }

    #[test]
    fn any_authorization_value_is_safe() {
        // Multi-byte characters across byte 7, or where the token would start: no panic.
        for v in [
            "Bearer\u{e9}x",
            "Beare\u{e9}x",
            "Bearer\u{fffd}",
            "\u{e9}\u{e9}\u{e9}\u{e9}",
            "Bearer \u{e9}",
            "\u{1f600}",
        ] {
            assert_eq!(bearer_token(Some(v)).is_some(), v == "Bearer \u{e9}", "{v:?}");
        }
        assert_eq!(bearer_token(Some("Bearer \u{e9}")), Some("\u{e9}"));
        assert_eq!(extract_token(Some("Bearer\u{e9}x"), Some("access_token=c"), "access_token"), Some("c"));
    }
}
