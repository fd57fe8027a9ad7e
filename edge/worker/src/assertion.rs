//! `X-Tollgate-Assertion`: a short-lived compact JWS, made for exactly one forwarded
//! request, by which the origin knows the request came through the Worker. The contract
//! with the origin middleware is `docs/origin-assertion.md`; this module makes what it
//! describes.
//!
//! - **HS256** (the default), with `TOLLGATE_ORIGIN_SECRET`: the HMAC's inner and outer
//!   SHA-256 states are keyed once per isolate, so a request costs the hashing of its
//!   own bytes (a few µs in wasm), synchronously, on the request's own poll.
//! - **ES256**, with `TOLLGATE_ORIGIN_SIGNING_KEY`: `crypto.subtle.sign`, one promise
//!   per request, for origins that must hold no secret.
//!
//! The request id (`jti`, also `X-Tollgate-Request-Id`) is 16 bytes of SipHash-1-3-128
//! over a per-isolate counter under a per-isolate key drawn from `crypto.getRandomValues`:
//! unpredictable without the key and unique within the isolate, without a call into
//! JavaScript per request.

use std::cell::{Cell, RefCell};
use std::hash::Hasher;

use js_sys::{Array, Promise, Uint8Array};
use sha2::{Digest, Sha256};
use siphasher::sip128::{Hasher128, SipHasher13};
use tollgate_core::b64;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::CryptoKey;

use crate::config::{Config, OriginAuth};
use crate::entry::JsAwait;
use crate::identity::Identity;
use crate::platform::describe;

/// `typ` of every assertion.
pub const TYP: &str = "tollgate-assertion+jwt";
/// `iss` of every assertion.
pub const ISSUER: &str = "tollgate-edge";

/// Makes the assertions of one isolate.
#[derive(Debug)]
pub struct Asserter {
    kind: Kind,
    /// `{"iss":"tollgate-edge","aud":"…"` (the payload's start, the same every time).
    payload_start: String,
    ttl_seconds: u64,
    ids: SipHasher13,
    counter: Cell<u64>,
}

// One per isolate: the HMAC states are kept inline rather than boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Kind {
    /// No assertion.
    None,
    /// HMAC-SHA256: `header.` and the keyed inner and outer states.
    Hs256 { header: String, inner: Sha256, outer: Sha256 },
    /// ECDSA P-256 through WebCrypto: the key as configured, imported at first use.
    Es256 { configured: String, loaded: RefCell<Option<(CryptoKey, String)>> },
}

/// What goes to the origin with a forwarded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assertion {
    /// `X-Tollgate-Request-Id` (the assertion's `jti`).
    pub request_id: String,
    /// `X-Tollgate-Assertion` (`None` with `TOLLGATE_ORIGIN_AUTH = "none"`).
    pub jws: Option<String>,
}

impl Asserter {
    /// The asserter of `config`, with `id_key` (16 random bytes) for request ids.
    pub fn new(config: &Config, id_key: [u8; 16]) -> Asserter {
        let kind = match &config.origin_auth {
            OriginAuth::None => Kind::None,
            OriginAuth::Hs256 { secret } => {
                let kid = hs256_kid(secret);
                let header = format!("{}.", b64::encode(header_json("HS256", &kid).as_bytes()));
                let (inner, outer) = hmac_states(secret);
                Kind::Hs256 { header, inner, outer }
            }
            OriginAuth::Es256 { key } => Kind::Es256 { configured: key.clone(), loaded: RefCell::new(None) },
        };
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(&id_key[..8]);
        k1.copy_from_slice(&id_key[8..]);
        Asserter {
            kind,
            payload_start: format!(
                r#"{{"iss":"{ISSUER}","aud":{}"#,
                serde_json::Value::from(config.origin.audience.as_str())
            ),
            ttl_seconds: config.assertion_ttl_seconds,
            ids: SipHasher13::new_with_keys(u64::from_le_bytes(k0), u64::from_le_bytes(k1)),
            counter: Cell::new(0),
        }
    }

    /// A fresh request id: 22 base64url characters.
    pub fn request_id(&self) -> String {
        let n = self.counter.get();
        self.counter.set(n.wrapping_add(1));
        let mut h = self.ids;
        h.write_u64(n);
        b64::encode(&h.finish128().as_bytes())
    }

    /// The assertion for a request with `method` and request-target `target`, carrying
    /// `identity`, made at `now` (seconds). `Err` (logged by the caller) when the ES256
    /// key cannot be used or WebCrypto fails.
    pub async fn assert(&self, method: &str, target: &str, identity: &Identity, now: i64) -> Result<Assertion, String> {
        let request_id = self.request_id();
        let signing = match &self.kind {
            Kind::None => return Ok(Assertion { request_id, jws: None }),
            Kind::Hs256 { header, .. } => header.as_str(),
            Kind::Es256 { .. } => "",
        };
        let mut input = String::with_capacity(signing.len() + 600);
        input.push_str(signing);
        let payload = self.payload(method, target, identity, now, &request_id);
        match &self.kind {
            Kind::None => Ok(Assertion { request_id, jws: None }),
            Kind::Hs256 { inner, outer, .. } => {
                input.push_str(&b64::encode(payload.as_bytes()));
                let mac = hmac(inner, outer, input.as_bytes());
                input.push('.');
                input.push_str(&b64::encode(&mac));
                Ok(Assertion { request_id, jws: Some(input) })
            }
            Kind::Es256 { configured, loaded } => {
                let cached = loaded.borrow().clone();
                let (key, header) = match cached {
                    Some(k) => k,
                    None => {
                        let k = load_es256(configured).await?;
                        *loaded.borrow_mut() = Some(k.clone());
                        k
                    }
                };
                input.push_str(&header);
                input.push_str(&b64::encode(payload.as_bytes()));
                let promise = es256_sign(&key, input.as_bytes()).map_err(|e| describe(&e))?;
                let sig = JsAwait::new(promise).await.map_err(|e| describe(&e))?;
                let sig = Uint8Array::new(&sig).to_vec();
                input.push('.');
                input.push_str(&b64::encode(&sig));
                Ok(Assertion { request_id, jws: Some(input) })
            }
        }
    }

    /// The payload's JSON.
    fn payload(&self, method: &str, target: &str, identity: &Identity, now: i64, request_id: &str) -> String {
        let mut p =
            String::with_capacity(self.payload_start.len() + identity.assertion_members.len() + target.len() + 160);
        p.push_str(&self.payload_start);
        p.push_str(&format!(r#","iat":{now},"exp":{},"jti":"{request_id}","method":"#, now + self.ttl_seconds as i64));
        json_string(&mut p, method);
        p.push_str(r#","target":"#);
        json_string(&mut p, target);
        p.push_str(&identity.assertion_members);
        p.push_str(r#","hdr":""#);
        p.push_str(&identity.hdr(request_id));
        p.push_str("\"}");
        p
    }
}

/// The HS256 `kid`: the first 16 characters of base64url(SHA-256("tollgate-assertion-kid:" ‖ secret)).
pub fn hs256_kid(secret: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"tollgate-assertion-kid:");
    h.update(secret);
    let mut kid = b64::encode(&h.finalize());
    kid.truncate(16);
    kid
}

/// The RFC 7638 thumbprint of a P-256 public key given as base64url `x` and `y`.
pub fn es256_thumbprint(x: &str, y: &str) -> String {
    b64::encode(&Sha256::digest(format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)))
}

fn header_json(alg: &str, kid: &str) -> String {
    format!(r#"{{"alg":"{alg}","typ":"{TYP}","kid":"{kid}"}}"#)
}

/// A JSON string literal of `s`, appended.
fn json_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f) {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        out.push_str(&serde_json::Value::from(s).to_string());
    }
}

/// HMAC-SHA256's keyed inner and outer states (RFC 2104; keys over a block are hashed).
fn hmac_states(secret: &[u8]) -> (Sha256, Sha256) {
    let mut block = [0u8; 64];
    if secret.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(secret));
    } else {
        block[..secret.len()].copy_from_slice(secret);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    (inner, outer)
}

fn hmac(inner: &Sha256, outer: &Sha256, data: &[u8]) -> [u8; 32] {
    let mut i = inner.clone();
    i.update(data);
    let mut o = outer.clone();
    o.update(i.finalize());
    o.finalize().into()
}

/// Imports the ES256 key (private JWK or PKCS#8 PEM) and makes the protected header
/// (`kid` = the public key's thumbprint): `header.` and the key.
async fn load_es256(configured: &str) -> Result<(CryptoKey, String), String> {
    let promise = es256_import(configured).map_err(|e| describe(&e))?;
    let got: Array = JsAwait::new(promise).await.map_err(|e| describe(&e))?.unchecked_into();
    let key: CryptoKey = got.get(0).unchecked_into();
    let (x, y) = (got.get(1).as_string().unwrap_or_default(), got.get(2).as_string().unwrap_or_default());
    let kid = es256_thumbprint(&x, &y);
    Ok((key, format!("{}.", b64::encode(header_json("ES256", &kid).as_bytes()))))
}

#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
const ES256 = { name: 'ECDSA', namedCurve: 'P-256' };
export async function es256_import(text) {
  const t = text.trim();
  let jwk;
  let key;
  if (t.startsWith('{')) {
    jwk = JSON.parse(t);
    if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.d !== 'string') throw new Error('TOLLGATE_ORIGIN_SIGNING_KEY: not a private P-256 JWK');
    key = await crypto.subtle.importKey('jwk', { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, d: jwk.d }, ES256, false, ['sign']);
  } else {
    const m = /-----BEGIN PRIVATE KEY-----([^-]+)-----END PRIVATE KEY-----/.exec(t);
    if (m === null) throw new Error('TOLLGATE_ORIGIN_SIGNING_KEY: neither a private JWK nor a PKCS#8 PEM');
    const der = Uint8Array.from(atob(m[1].replace(/\s+/g, '')), (c) => c.charCodeAt(0));
    const extractable = await crypto.subtle.importKey('pkcs8', der, ES256, true, ['sign']);
    jwk = await crypto.subtle.exportKey('jwk', extractable);
    key = await crypto.subtle.importKey('pkcs8', der, ES256, false, ['sign']);
  }
  return [key, jwk.x, jwk.y];
}
const SIGN = { name: 'ECDSA', hash: 'SHA-256' };
export function es256_sign(key, data) {
  return crypto.subtle.sign(SIGN, key, data).then((sig) => new Uint8Array(sig));
}
"#)]
extern "C" {
    /// Imports the configured ES256 key: a promise of `[CryptoKey, x, y]`.
    #[wasm_bindgen(catch)]
    fn es256_import(text: &str) -> Result<Promise, JsValue>;

    /// `crypto.subtle.sign` with ECDSA P-256 SHA-256: a promise of the 64-byte `r || s`.
    #[wasm_bindgen(catch)]
    fn es256_sign(key: &CryptoKey, data: &[u8]) -> Result<Promise, JsValue>;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test case 2 (a short key) and test case 6 (a key over a block).
        let (i, o) = hmac_states(b"Jefe");
        let mac = hmac(&i, &o, b"what do ya want for nothing?");
        assert_eq!(hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        let (i, o) = hmac_states(&[0xaa; 131]);
        let mac = hmac(&i, &o, b"Test Using Larger Than Block-Size Key - Hash Key First");
        assert_eq!(hex(&mac), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }

    #[test]
    fn kids_and_json() {
        let kid = hs256_kid(b"0123456789abcdef0123456789abcdef");
        assert_eq!(kid.len(), 16);
        assert_ne!(kid, hs256_kid(b"0123456789abcdef0123456789abcdeF"));
        // RFC 7638 §3.1's example is RSA; this checks the member order and encoding.
        assert_eq!(
            es256_thumbprint("x", "y"),
            b64::encode(&Sha256::digest(br#"{"crv":"P-256","kty":"EC","x":"x","y":"y"}"#))
        );
        let mut s = String::new();
        json_string(&mut s, "/a?b=\"c\\d\u{e9}");
        assert_eq!(serde_json::from_str::<String>(&s).unwrap(), "/a?b=\"c\\d\u{e9}");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
