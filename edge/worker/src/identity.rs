//! The verified identity the origin is handed: the values of the `X-Tollgate-*` headers
//! for one verified token, made once when the token is verified and kept with it in the
//! verified-token cache.

use std::borrow::Cow;

use tollgate_core::Claims;

/// The identity headers' values for the origin (`None` when absent), kept with the
/// verified token in the verified-token cache. Kept as Rust strings, in wasm memory,
/// and made into JavaScript strings per request: measured on workerd, holding three
/// JavaScript strings per cached token (10,000 tokens: 30,000 entries in wasm-bindgen's
/// reference table, which the garbage collector walks) cost more than making them anew
/// (A/B, new token per request: +9% req/s without them; hot token: +6%).
#[derive(Debug)]
pub struct Identity {
    /// `X-Tollgate-Sub`.
    pub sub: Option<String>,
    /// `X-Tollgate-Sid`.
    pub sid: Option<String>,
    /// `X-Tollgate-Claims`.
    pub claims: Option<String>,
}

impl Identity {
    /// No identity (routes with `auth: none`).
    pub fn none() -> Identity {
        Identity { sub: None, sid: None, claims: None }
    }

    /// The headers for verified claims: `sub` and `sid` made header-safe, and the
    /// claims header (base64url already).
    pub fn of(claims: &Claims, claims_header: &str) -> Identity {
        let safe = |v: Option<&str>| v.map(|v| header_safe(v).into_owned());
        Identity { sub: safe(claims.sub()), sid: safe(claims.sid()), claims: Some(claims_header.to_owned()) }
    }
}

/// A header value: printable ASCII kept, everything else (and `%`) percent-encoded.
pub fn header_safe(v: &str) -> Cow<'_, str> {
    if v.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'%') {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 8);
    for b in v.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_safe() {
        assert_eq!(header_safe("alice@example.test"), "alice@example.test");
        assert_eq!(header_safe("김철수"), "%EA%B9%80%EC%B2%A0%EC%88%98");
        assert_eq!(header_safe("a\r\nb%"), "a%0D%0Ab%25");
    }
}
