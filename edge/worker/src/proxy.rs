//! Forwarding to the origin, and the header rules around it.
//!
//! Removed from every forwarded request (on every route, with or without a token; also
//! spelled with `_` for any `-`, which CGI/WSGI-style origins read as the same header):
//! `Host` (the origin sees its own); any client `X-Tollgate-*`; the headers some origins
//! honour to route or to change the method: `X-Original-URL`, `X-Rewrite-URL`,
//! `X-Override-URL`, `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`;
//! and the forwarding headers a client could forge: `Forwarded`, `X-Real-IP`,
//! `X-Forwarded-For`, `-Host`, `-Proto`. The Worker sets `X-Forwarded-For` (from
//! `CF-Connecting-IP`, which Cloudflare sets; absent without it), `X-Forwarded-Host`
//! and `X-Forwarded-Proto` (from the URL the Worker was asked for) itself.
//!
//! Then it adds `X-Tollgate-Sub`, `X-Tollgate-Sid` (values outside printable ASCII are
//! percent-encoded) and `X-Tollgate-Claims` (base64url of the verified claims' JSON) for
//! a verified token, and on every request `X-Tollgate-Request-Id` and
//! `X-Tollgate-Assertion`. On `auth: none` routes, where nothing is verified, a Bearer
//! `Authorization` and the token cookie are removed: an unverified token never reaches
//! the origin. Redirects are passed back to the client, not followed.

use std::cell::OnceCell;

use js_sys::Promise;
use wasm_bindgen::JsValue;
use web_sys::Request;

use crate::assertion::Assertion;
use crate::identity::Identity;
use crate::respond::Reply;

/// Forwards `incoming` to `origin` + `path_and_query` with its headers less the ones
/// above, plus the identity and assertion headers (and, when `open`, without the
/// client's credentials). Returns the promise of the origin's response without awaiting
/// it (no future, no wasm closures): if the fetch rejects, the promise resolves to the
/// Worker's 502 and the failure is logged, on the JavaScript side. `Err` when the
/// request cannot be made. The request is assembled in one JavaScript call, and the
/// incoming headers are copied once, into the origin request itself. The path and the
/// header values cross from wasm as strings; the origin, the cookie name and the 502
/// body are JavaScript strings made once per isolate.
pub fn forward(
    incoming: &Request,
    origin: &str,
    cookie_name: &str,
    path_and_query: &str,
    id: &Identity,
    assertion: &Assertion,
    open: bool,
) -> Result<Promise, JsValue> {
    FORWARD_CONTEXT.with(|cx| {
        let cx = cx.get_or_init(|| forward_context(origin, cookie_name, &Reply::BadGateway.parts().3.to_string()));
        forward_js(
            incoming,
            cx,
            path_and_query,
            id.sub.as_deref(),
            id.sid.as_deref(),
            id.claims.as_deref(),
            &assertion.request_id,
            assertion.jws.as_deref(),
            open,
        )
    })
}

thread_local! {
    /// `{origin, cookieName, badGatewayBody}` for `forward_js`, made once per isolate
    /// (the origin and the cookie name are the isolate's configuration; the body is
    /// [`Reply::BadGateway`]'s).
    static FORWARD_CONTEXT: OnceCell<JsValue> = const { OnceCell::new() };
}

// The 502 is built anew in the request that needs it rather than kept per isolate: a
// `Response` carries a body stream, and workerd refuses I/O objects across requests.
// The origin request is made from the incoming headers and then edited: a `Request` the
// Worker constructs has headers of its own that it may change (the incoming one's are
// immutable), so the headers are copied once. Header names come lower-cased from
// `Headers` iteration; the doomed names are collected first, as deleting while
// iterating would skip some. Every doomed name but `host` and `forwarded` starts with
// `x`, so the others are passed over after one character comparison.
#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
export function forward_context(origin, cookieName, badGatewayBody) {
  return { origin, cookieName, badGatewayBody };
}

const DOOMED_X = /^x[-_](?:tollgate[-_]|original[-_]url$|rewrite[-_]url$|override[-_]url$|http[-_]method(?:[-_]override)?$|method[-_]override$|forwarded[-_](?:for|host|proto)$|real[-_]ip$)/;

function strip_headers(headers) {
  let doomed;
  for (const name of headers.keys()) {
    if (name.charCodeAt(0) === 120 ? DOOMED_X.test(name) : name === 'host' || name === 'forwarded') (doomed ??= []).push(name);
  }
  if (doomed !== undefined) for (const name of doomed) headers.delete(name);
}

function strip_credentials(headers, cookieName) {
  const auth = headers.get('authorization');
  if (auth !== null && /(?:^|,)\s*bearer(?:\s|$)/i.test(auth)) headers.delete('authorization');
  const cookie = headers.get('cookie');
  if (cookie === null || !cookie.includes(cookieName)) return;
  const kept = cookie.split(/[;,]/).filter((pair) => pair.split('=', 1)[0].trim() !== cookieName);
  if (kept.length === 0) headers.delete('cookie');
  else headers.set('cookie', kept.map((p) => p.trim()).join('; '));
}

export function forward_js(incoming, cx, pathAndQuery, sub, sid, claims, requestId, assertion, open) {
  const method = incoming.method;
  const init = { method, headers: incoming.headers, redirect: 'manual' };
  if (method !== 'GET' && method !== 'HEAD' && incoming.body !== null) init.body = incoming.body;
  const req = new Request(cx.origin + pathAndQuery, init);
  const headers = req.headers;
  const client = headers.get('cf-connecting-ip');
  strip_headers(headers);
  if (open) strip_credentials(headers, cx.cookieName);
  const url = incoming.url;
  const hostStart = url.indexOf('//') + 2;
  const hostEnd = url.indexOf('/', hostStart);
  if (client !== null) headers.set('x-forwarded-for', client);
  headers.set('x-forwarded-host', url.slice(hostStart, hostEnd < 0 ? url.length : hostEnd));
  headers.set('x-forwarded-proto', url.slice(0, hostStart - 3));
  if (sub !== undefined) headers.set('x-tollgate-sub', sub);
  if (sid !== undefined) headers.set('x-tollgate-sid', sid);
  if (claims !== undefined) headers.set('x-tollgate-claims', claims);
  headers.set('x-tollgate-request-id', requestId);
  if (assertion !== undefined) headers.set('x-tollgate-assertion', assertion);
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
    fn forward_context(origin: &str, cookie_name: &str, bad_gateway_body: &str) -> JsValue;

    /// Builds the origin request (the incoming headers less the stripped ones, plus the
    /// forwarding, identity and assertion headers; manual redirects; the body for
    /// methods that have one) and fetches it, resolving to the Worker's 502 (and
    /// logging) if the fetch rejects.
    #[wasm_bindgen(catch)]
    #[allow(clippy::too_many_arguments)]
    fn forward_js(
        incoming: &Request,
        cx: &JsValue,
        path_and_query: &str,
        sub: Option<&str>,
        sid: Option<&str>,
        claims: Option<&str>,
        request_id: &str,
        assertion: Option<&str>,
        open: bool,
    ) -> Result<Promise, JsValue>;
}

/// Two credentials where one is allowed: the request is refused (400
/// `ambiguous_credentials`) rather than guessing which one the origin would read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ambiguous;

/// The one token of a request: from `Authorization: Bearer`, else from the named
/// cookie. `Err(Ambiguous)` for two `Authorization` values carrying a Bearer token
/// (joined with `,`), a Bearer token and the cookie both, or the cookie twice (also
/// across several `Cookie` headers, which arrive joined with `,`).
pub fn credential<'a>(
    authorization: Option<&'a str>,
    cookie: Option<&'a str>,
    cookie_name: &str,
) -> Result<Option<&'a str>, Ambiguous> {
    let bearer = match authorization {
        Some(a) if a.contains(',') => {
            if a.split(',').any(|part| bearer_scheme(part.trim())) {
                return Err(Ambiguous);
            }
            None
        }
        other => bearer_token(other),
    };
    let mut cookies = cookie
        .into_iter()
        .flat_map(|c| c.split([';', ',']))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, _)| name.trim() == cookie_name);
    let from_cookie = match (cookies.next(), cookies.next()) {
        (Some(_), Some(_)) => return Err(Ambiguous),
        (Some((_, v)), None) => Some(v.trim().trim_matches('"')).filter(|v| !v.is_empty()),
        (None, _) => None,
    };
    match (bearer, from_cookie) {
        (Some(_), Some(_)) => Err(Ambiguous),
        (b, c) => Ok(b.or(c)),
    }
}

/// Whether an `Authorization` value (or one of several) uses the Bearer scheme.
fn bearer_scheme(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() >= 6 && b[..6].eq_ignore_ascii_case(b"bearer") && b.get(6).is_none_or(|c| c.is_ascii_whitespace())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_credential() {
        let name = "access_token";
        assert_eq!(credential(Some("bearer  abc "), None, name), Ok(Some("abc")));
        assert_eq!(credential(Some("Basic xyz"), Some("a=1; access_token=tok; b=2"), name), Ok(Some("tok")));
        assert_eq!(credential(Some("Bearer "), Some("access_token=\"q\""), name), Ok(Some("q")));
        assert_eq!(credential(None, Some("xaccess_token=1; access_token="), name), Ok(None));
        assert_eq!(credential(None, Some("sid=1"), "sid"), Ok(Some("1")));
    }

    #[test]
    fn ambiguous_credentials_are_refused() {
        let name = "access_token";
        assert_eq!(credential(Some("Bearer a"), Some("theme=dark"), name), Ok(Some("a")));
        assert_eq!(credential(None, Some("theme=dark; access_token=c"), name), Ok(Some("c")));
        assert_eq!(credential(Some("Basic x"), Some("access_token=c"), name), Ok(Some("c")));
        assert_eq!(credential(None, None, name), Ok(None));
        for (auth, cookie) in [
            (Some("Bearer a, Bearer b"), None),
            (Some("Basic x, Bearer b"), None),
            (Some("Bearer a"), Some("access_token=c")),
            (None, Some("access_token=a; access_token=b")),
            (None, Some("a=1, access_token=x; access_token=y")),
            (None, Some("access_token=a, access_token=a")),
        ] {
            assert_eq!(credential(auth, cookie, name), Err(Ambiguous), "{auth:?} {cookie:?}");
        }
        // Two values of another scheme carry no token: no Bearer, no ambiguity.
        assert_eq!(credential(Some(r#"Digest a="1", b="2""#), None, name), Ok(None));
        assert_eq!(credential(Some("Bearer "), Some("access_token=c"), name), Ok(Some("c")));
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
        assert_eq!(credential(Some("Bearer\u{e9}x"), Some("access_token=c"), "access_token"), Ok(Some("c")));
    }
}
