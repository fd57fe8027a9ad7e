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
use web_sys::{Headers, Request, RequestInit, RequestRedirect};

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

/// The incoming headers without `X-Tollgate-*` and `Host`. The copy is made on the
/// JavaScript side and only header *names* cross into wasm, so a large token or cookie
/// is not copied back and forth.
pub fn stripped_headers(incoming: &Headers) -> Result<Headers, JsValue> {
    let out = Headers::new_with_headers(incoming)?;
    let mut doomed = Vec::new();
    for name in out.keys() {
        let Some(name) = name?.as_string() else { continue };
        // Names come lower-cased from the runtime; compare case-insensitively anyway.
        let lower = name.to_ascii_lowercase();
        if lower.starts_with(TRUSTED_PREFIX) || lower == "host" {
            doomed.push(name);
        }
    }
    for name in doomed {
        out.delete(&name)?;
    }
    Ok(out)
}

/// Forwards `incoming` to `origin` (base URL) with `headers` plus the identity headers.
/// Returns the promise of the origin's response without awaiting it (no future, no
/// wasm closures): if the fetch rejects, the promise resolves to the Worker's 502 and
/// the failure is logged, on the JavaScript side. `Err` when the request cannot be made.
pub fn forward(
    incoming: &Request,
    origin: &str,
    path_and_query: &str,
    headers: &Headers,
    id: &Identity<'_>,
) -> Result<Promise, JsValue> {
    for (name, value) in [(SUB_HEADER, id.sub), (SID_HEADER, id.sid), (CLAIMS_HEADER, id.claims)] {
        if let Some(v) = value {
            headers.set(name, &header_safe(v))?;
        }
    }
    let init = RequestInit::new();
    let method = incoming.method();
    init.set_method(&method);
    init.set_headers(headers);
    init.set_redirect(RequestRedirect::Manual);
    if method != "GET" && method != "HEAD" {
        if let Some(body) = incoming.body() {
            init.set_body(&body);
        }
    }
    let url = format!("{origin}{path_and_query}");
    let req = Request::new_with_str_and_init(&url, &init)?;
    BAD_GATEWAY_BODY.with(|body| fetch_or(&req, origin, body.get_or_init(|| Reply::BadGateway.parts().3.to_string())))
}

thread_local! {
    /// The JSON body of the Worker's 502 (see [`Reply::BadGateway`]), made once per isolate.
    static BAD_GATEWAY_BODY: OnceCell<String> = const { OnceCell::new() };
}

// The 502 is built anew in the request that needs it rather than kept per isolate: a
// `Response` carries a body stream, and workerd refuses I/O objects across requests.
#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
export function fetch_or(req, origin, badGatewayBody) {
  return fetch(req).catch((e) => {
    console.log(`tollgate: origin ${origin} unreachable: ${e instanceof Error ? e.message : String(e)}`);
    return new Response(badGatewayBody, {
      status: 502,
      headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    });
  });
}
"#)]
extern "C" {
    /// `fetch(req)`, resolving to the Worker's 502 (and logging) if it rejects.
    #[wasm_bindgen(catch)]
    fn fetch_or(req: &Request, origin: &str, bad_gateway_body: &str) -> Result<Promise, JsValue>;
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
