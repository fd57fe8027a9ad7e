//! Forwarding to the origin, and the header rules around it.
//!
//! Client headers named `X-Tollgate-*` are always stripped (on every route, with or
//! without a token) so the origin can trust the ones the Worker sets: `X-Tollgate-Sub`,
//! `X-Tollgate-Sid` (values outside printable ASCII are percent-encoded) and
//! `X-Tollgate-Claims` (base64url of the verified claims' JSON). `Host` is dropped so
//! the origin sees its own. Redirects are passed back to the client, not followed.

use std::cell::OnceCell;

use js_sys::Promise;
use wasm_bindgen::JsValue;
use web_sys::{Headers, Request};

use crate::respond::Reply;

/// Prefix of the headers the Worker owns.
pub const TRUSTED_PREFIX: &str = "x-tollgate-";
/// The verified `sub`.
pub const SUB_HEADER: &str = "x-tollgate-sub";
/// The verified `sid`.
pub const SID_HEADER: &str = "x-tollgate-sid";
/// The verified claims, base64url JSON.
pub const CLAIMS_HEADER: &str = "x-tollgate-claims";

/// What the Worker adds for the origin.
#[derive(Debug, Default)]
pub struct Identity<'a> {
    /// `sub`.
    pub sub: Option<&'a str>,
    /// `sid`.
    pub sid: Option<&'a str>,
    /// base64url JSON of the claims.
    pub claims: Option<&'a str>,
}

/// Forwards `incoming` to `origin` (base URL) with `headers` plus the identity headers.
/// Returns the promise of the origin's response without awaiting it (no future, no
/// wasm closures): if the fetch rejects, the promise resolves to the Worker's 502 and
/// the failure is logged, on the JavaScript side. `Err` when the request cannot be made.
/// The request is assembled in one JavaScript call: only the URL and the three identity
/// values cross from wasm.
pub fn forward(
    incoming: &Request,
    origin: &str,
    path_and_query: &str,
    headers: &Headers,
    id: &Identity<'_>,
) -> Result<Promise, JsValue> {
    let url = format!("{origin}{path_and_query}");
    let sub = id.sub.map(header_safe);
    let sid = id.sid.map(header_safe);
    let claims = id.claims.map(header_safe);
    BAD_GATEWAY_BODY.with(|body| {
        let body = body.get_or_init(|| Reply::BadGateway.parts().3.to_string());
        forward_js(incoming, &url, headers, sub.as_deref(), sid.as_deref(), claims.as_deref(), origin, body)
    })
}

thread_local! {
    /// The JSON body of the Worker's 502 (see [`Reply::BadGateway`]), made once per isolate.
    static BAD_GATEWAY_BODY: OnceCell<String> = const { OnceCell::new() };
}

// The 502 is built anew in the request that needs it rather than kept per isolate: a
// `Response` carries a body stream, and workerd refuses I/O objects across requests.
// Header names come lower-cased from `Headers` iteration.
#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
export function strip_headers(req) {
  const out = new Headers(req.headers);
  const doomed = [];
  for (const name of out.keys()) {
    if (name === 'host' || name.startsWith('x-tollgate-')) doomed.push(name);
  }
  for (const name of doomed) out.delete(name);
  return out;
}

export function forward_js(incoming, url, headers, sub, sid, claims, origin, badGatewayBody) {
  if (sub !== undefined) headers.set('x-tollgate-sub', sub);
  if (sid !== undefined) headers.set('x-tollgate-sid', sid);
  if (claims !== undefined) headers.set('x-tollgate-claims', claims);
  const method = incoming.method;
  const init = { method, headers, redirect: 'manual' };
  if (method !== 'GET' && method !== 'HEAD' && incoming.body !== null) init.body = incoming.body;
  return fetch(new Request(url, init)).catch((e) => {
    console.log(`tollgate: origin ${origin} unreachable: ${e instanceof Error ? e.message : String(e)}`);
    return new Response(badGatewayBody, {
      status: 502,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    });
  });
}
"#)]
extern "C" {
    /// The incoming headers without `X-Tollgate-*` and `Host`. The copy is made on the
    /// JavaScript side in one call, so neither header names nor values (a large token
    /// or cookie) cross into wasm.
    #[wasm_bindgen(catch, js_name = strip_headers)]
    pub fn stripped_headers(req: &Request) -> Result<Headers, JsValue>;

    /// Sets the identity headers, builds the origin request (manual redirects, the body
    /// for methods that have one) and fetches it, resolving to the Worker's 502 (and
    /// logging) if the fetch rejects.
    #[allow(clippy::too_many_arguments)]
    #[wasm_bindgen(catch)]
    fn forward_js(
        incoming: &Request,
        url: &str,
        headers: &Headers,
        sub: Option<&str>,
        sid: Option<&str>,
        claims: Option<&str>,
        origin: &str,
        bad_gateway_body: &str,
    ) -> Result<Promise, JsValue>;
}

/// A header value: printable ASCII kept, everything else (and `%`) percent-encoded.
pub fn header_safe(v: &str) -> std::borrow::Cow<'_, str> {
    if v.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'%') {
        return std::borrow::Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 8);
    for b in v.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The token from `Authorization: Bearer` first, then from the named cookie.
pub fn extract_token<'a>(
    authorization: Option<&'a str>,
    cookie: Option<&'a str>,
    cookie_name: &str,
) -> Option<&'a str> {
    if let Some(auth) = authorization {
        let auth = auth.trim();
        if auth.len() > 7 && auth[..7].eq_ignore_ascii_case("bearer ") {
            let t = auth[7..].trim();
            if !t.is_empty() {
                return Some(t);
            }
        }
    }
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
    fn header_values_are_safe() {
        assert_eq!(header_safe("alice@example.test"), "alice@example.test");
        assert_eq!(header_safe("김철수"), "%EA%B9%80%EC%B2%A0%EC%88%98");
        assert_eq!(header_safe("a\r\nb%"), "a%0D%0Ab%25");
    }
}
