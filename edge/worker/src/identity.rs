//! The verified identity the origin is handed: the values of the `X-Tollgate-*` headers
//! for one verified token, and what `X-Tollgate-Assertion` says about it, made once when
//! the token is verified and kept with it in the verified-token cache.

use std::borrow::Cow;

use serde_json::Value;
use sha2::{Digest, Sha256};
use tollgate_core::Claims;

/// The identity headers' values for the origin (`None` when absent), kept with the
/// verified token in the verified-token cache. Kept as Rust strings, in wasm memory,
/// and made into JavaScript strings per request: measured on workerd, holding three
/// JavaScript strings per cached token (10,000 tokens: 30,000 entries in wasm-bindgen's
/// reference table, which the garbage collector walks) cost more than making them anew
/// (A/B, new token per request: +9% req/s without them; hot token: +6%).
#[derive(Debug, Clone)]
pub struct Identity {
    /// `X-Tollgate-Sub`.
    pub sub: Option<String>,
    /// `X-Tollgate-Sid`.
    pub sid: Option<String>,
    /// `X-Tollgate-Claims`.
    pub claims: Option<String>,
    /// The assertion's members about the token, as JSON members after a comma:
    /// `,"auth":"verified","sub":…,"sid":…,"tok_iss":…,"roles":[…],"scope":…`
    /// (`,"auth":"none"` without a token).
    pub assertion_members: String,
    /// SHA-256 of the `hdr` canon so far: the `x-tollgate-claims` line, the first in
    /// name order (the request id, `sid` and `sub` lines follow per request).
    pub hdr_prefix: Sha256,
}

impl Identity {
    /// No identity (routes with `auth: none`).
    pub fn none() -> Identity {
        Identity {
            sub: None,
            sid: None,
            claims: None,
            assertion_members: r#","auth":"none""#.to_owned(),
            hdr_prefix: Sha256::new(),
        }
    }

    /// The headers for verified claims: `sub` and `sid` made header-safe, and the
    /// claims header (base64url already); and the assertion's members for them.
    pub fn of(claims: &Claims, claims_header: &str) -> Identity {
        let safe = |v: Option<&str>| v.map(|v| header_safe(v).into_owned());
        let mut m = String::with_capacity(64 + claims_header.len() / 4);
        m.push_str(r#","auth":"verified""#);
        let mut member = |name: &str, v: &Value| {
            m.push_str(",\"");
            m.push_str(name);
            m.push_str("\":");
            m.push_str(&v.to_string());
        };
        if let Some(sub) = claims.sub() {
            member("sub", &Value::from(sub));
        }
        if let Some(sid) = claims.sid() {
            member("sid", &Value::from(sid));
        }
        if let Some(iss) = claims.iss() {
            member("tok_iss", &Value::from(iss));
        }
        let roles: Vec<Value> = match (claims.get("roles"), claims.get("role")) {
            (Some(Value::Array(a)), _) => a.iter().filter(|v| v.is_string()).cloned().collect(),
            (_, Some(Value::String(r))) => vec![Value::from(r.as_str())],
            _ => Vec::new(),
        };
        member("roles", &Value::Array(roles));
        match (claims.get("scope"), claims.get("scp")) {
            (Some(Value::String(s)), _) => member("scope", &Value::from(s.as_str())),
            (_, Some(Value::Array(a))) => {
                let joined: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                member("scope", &Value::from(joined.join(" ")));
            }
            _ => {}
        }
        let mut hdr_prefix = Sha256::new();
        hdr_prefix.update(b"x-tollgate-claims:");
        hdr_prefix.update(claims_header.as_bytes());
        hdr_prefix.update(b"\n");
        Identity {
            sub: safe(claims.sub()),
            sid: safe(claims.sid()),
            claims: Some(claims_header.to_owned()),
            assertion_members: m,
            hdr_prefix,
        }
    }

    /// The assertion's `hdr`: base64url(SHA-256) of every `X-Tollgate-*` header sent
    /// (but the assertion), in name order, as `name:value\n`.
    pub fn hdr(&self, request_id: &str) -> String {
        let mut h = self.hdr_prefix.clone();
        h.update(b"x-tollgate-request-id:");
        h.update(request_id.as_bytes());
        h.update(b"\n");
        if let Some(sid) = &self.sid {
            h.update(b"x-tollgate-sid:");
            h.update(sid.as_bytes());
            h.update(b"\n");
        }
        if let Some(sub) = &self.sub {
            h.update(b"x-tollgate-sub:");
            h.update(sub.as_bytes());
            h.update(b"\n");
        }
        tollgate_core::b64::encode(&h.finalize())
    }
}

/// A header value: printable ASCII kept, everything else (and `%`, and a space at
/// either end, which HTTP would trim) percent-encoded.
pub fn header_safe(v: &str) -> Cow<'_, str> {
    let last = v.len().saturating_sub(1);
    let keep = |i: usize, b: u8| (0x20..0x7f).contains(&b) && b != b'%' && !(b == b' ' && (i == 0 || i == last));
    if v.bytes().enumerate().all(|(i, b)| keep(i, b)) {
        return Cow::Borrowed(v);
    }
    let mut out = String::with_capacity(v.len() + 8);
    for (i, b) in v.bytes().enumerate() {
        if keep(i, b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn header_values_are_safe() {
        assert_eq!(header_safe("alice@example.test"), "alice@example.test");
        assert_eq!(header_safe("김철수"), "%EA%B9%80%EC%B2%A0%EC%88%98");
        assert_eq!(header_safe("a\r\nb%"), "a%0D%0Ab%25");
        assert_eq!(header_safe(" a b "), "%20a b%20");
    }

    #[test]
    fn assertion_members_follow_the_contract() {
        let c = crate::testkeys::claims_of(
            r#"{"sub":"alice","sid":"s1","iss":"https://i.test","roles":["a",1,"b"],"role":"x","scp":["r","w"]}"#,
        );
        let id = Identity::of(&c, "e30");
        let v: Value = serde_json::from_str(&format!("{{{}}}", &id.assertion_members[1..])).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"auth":"verified","sub":"alice","sid":"s1","tok_iss":"https://i.test","roles":["a","b"],"scope":"r w"})
        );
        let c = crate::testkeys::claims_of(r#"{"role":"x","scope":"a b"}"#);
        let v: Value =
            serde_json::from_str(&format!("{{{}}}", &Identity::of(&c, "e30").assertion_members[1..])).unwrap();
        assert_eq!(v, serde_json::json!({"auth":"verified","roles":["x"],"scope":"a b"}));
        let none = Identity::none();
        assert_eq!(none.assertion_members, r#","auth":"none""#);
        // hdr: the canon in name order, hashed; without a token only the request id.
        let canon = "x-tollgate-claims:e30\nx-tollgate-request-id:R\nx-tollgate-sid:s1\nx-tollgate-sub:alice\n";
        let c = crate::testkeys::claims_of(r#"{"sub":"alice","sid":"s1"}"#);
        assert_eq!(Identity::of(&c, "e30").hdr("R"), tollgate_core::b64::encode(&Sha256::digest(canon)));
        assert_eq!(none.hdr("R"), tollgate_core::b64::encode(&Sha256::digest("x-tollgate-request-id:R\n")));
    }
}
