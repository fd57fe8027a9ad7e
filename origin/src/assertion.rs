//! Checking `X-Tollgate-Assertion` (`docs/origin-assertion.md`): how an origin knows a
//! request came through the Worker, and who it carries.
//!
//! The checks, in the contract's order; the first that fails decides the reason, and
//! every failure is 401 `{"error":"invalid_assertion","reason":…}`:
//!
//! 1. exactly one `X-Tollgate-Assertion`, three canonical base64url segments, strict
//!    JSON (`missing`, `malformed`);
//! 2. the header has exactly `alg`, `typ`, `kid`; `typ` is `tollgate-assertion+jwt`
//!    (else `malformed`); `alg` and `kid` name a configured secret or key
//!    (`unknown_key`);
//! 3. the signature: HMAC-SHA256 compared in constant time, or ES256 through
//!    `tollgate-core` (`bad_signature`);
//! 4. `iss` = `tollgate-edge`, `aud` = the configured audience if any (`wrong_issuer`,
//!    `wrong_audience`);
//! 5. `exp` > now − leeway, `iat` ≤ now + leeway (`expired`, `not_yet_valid`);
//! 6. `method`, 7. `target` (raw path and query), 8. `hdr` (the digest of the
//!    `X-Tollgate-*` headers received, compared in constant time) match the request
//!    (`wrong_method`, `wrong_target`, `wrong_headers`).
//!
//! Payload members of the wrong type (after a good signature) are `malformed`. Only
//! then is an [`EdgeIdentity`] made, from the payload alone.

use std::sync::Arc;

use hmac::{KeyInit, Mac};
use http::HeaderMap;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tollgate_core::jwk::{Jwk, KeyMaterial, P256Key};
use tollgate_core::{b64, Algorithm};
use zeroize::Zeroizing;

use crate::clock::{self, Clock};
use crate::error::{AssertionConfigError, AssertionError};

#[cfg(feature = "axum")]
mod layer;

#[cfg(feature = "axum")]
pub use layer::{AssertionLayer, AssertionService};

/// The header the Worker sends (lower case, as `http` names it).
pub const ASSERTION_HEADER: &str = "x-tollgate-assertion";
/// The assertion's `typ`.
pub const ASSERTION_TYP: &str = "tollgate-assertion+jwt";
/// The assertion's `iss`.
pub const ASSERTION_ISSUER: &str = "tollgate-edge";
/// Default leeway on `exp` and `iat`, seconds.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 5;
/// Largest leeway accepted, seconds.
pub const MAX_LEEWAY_SECONDS: u64 = 300;
/// Shortest HS256 secret accepted, bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest assertion accepted, bytes.
pub const MAX_ASSERTION_BYTES: usize = 16 * 1024;

const KID_PREFIX: &[u8] = b"tollgate-assertion-kid:";
const PREFIX: &str = "x-tollgate-";

/// How the route that forwarded the request treated the client's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EdgeAuth {
    /// The route verified a token; `sub`, `sid`, roles, scope are the token's.
    Verified,
    /// A route with `auth: none`: no identity.
    None,
}

/// Who the request is for, from the verified assertion's payload only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeIdentity {
    /// `verified` or `none`.
    pub auth: EdgeAuth,
    /// The token's `sub`.
    pub sub: Option<String>,
    /// The token's `sid`.
    pub sid: Option<String>,
    /// The token's `iss`.
    pub tok_iss: Option<String>,
    /// The token's roles (`roles`, or `[role]`), possibly empty.
    pub roles: Vec<String>,
    /// The token's `scope` (or its `scp` joined with spaces).
    pub scope: Option<String>,
    /// The request id (also `X-Tollgate-Request-Id`).
    pub jti: String,
    /// When the Worker made the assertion.
    pub iat: i64,
    /// When it expires.
    pub exp: i64,
}

impl EdgeIdentity {
    /// Whether the token had this role.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the token's scope has this scope token.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.as_deref().is_some_and(|s| s.split(' ').any(|t| t == scope))
    }
}

/// The `kid` of an HS256 secret: the first 16 characters of
/// base64url(SHA-256(`"tollgate-assertion-kid:"` ‖ secret)).
pub fn hs256_kid(secret: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(KID_PREFIX);
    h.update(secret);
    let mut kid = b64::encode(&h.finalize());
    kid.truncate(16);
    kid
}

/// base64url(SHA-256(canon)) of the `X-Tollgate-*` headers in `headers` other than the
/// assertion: for each name in ascending order, `name:value\n` (several values of one
/// name joined with `", "`, as fetch and Node join them).
pub fn header_digest(headers: &HeaderMap) -> String {
    let mut names: Vec<&str> =
        headers.keys().map(|n| n.as_str()).filter(|n| n.starts_with(PREFIX) && *n != ASSERTION_HEADER).collect();
    names.sort_unstable();
    names.dedup();
    let mut h = Sha256::new();
    for name in names {
        h.update(name.as_bytes());
        h.update(b":");
        for (i, v) in headers.get_all(name).iter().enumerate() {
            if i > 0 {
                h.update(b", ");
            }
            h.update(v.as_bytes());
        }
        h.update(b"\n");
    }
    b64::encode(&h.finalize())
}

struct Secret {
    kid: String,
    bytes: Zeroizing<Vec<u8>>,
}

/// Checks assertions with HS256 secrets and/or ES256 public keys. Cheap to share
/// (`Arc`); its `Debug` shows `kid`s only.
pub struct AssertionVerifier {
    secrets: Vec<Secret>,
    es256: Vec<(String, KeyMaterial)>,
    audience: Option<String>,
    leeway: u64,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AssertionVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionVerifier")
            .field("hs256_kids", &self.secrets.iter().map(|s| s.kid.as_str()).collect::<Vec<_>>())
            .field("es256_kids", &self.es256.iter().map(|k| k.0.as_str()).collect::<Vec<_>>())
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl AssertionVerifier {
    /// HS256 with these secrets (`TOLLGATE_ORIGIN_SECRET`; two during a rotation), each
    /// at least 32 bytes, used as given (UTF-8 bytes of the Worker's secret).
    pub fn hs256<I, S>(secrets: I) -> Result<AssertionVerifier, AssertionConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        AssertionVerifier::empty().with_hs256(secrets)
    }

    /// ES256 with the Worker's public JWK(s) (P-256; `d` refused).
    pub fn es256(public_jwks: &[Value]) -> Result<AssertionVerifier, AssertionConfigError> {
        AssertionVerifier::empty().with_es256(public_jwks)
    }

    fn empty() -> AssertionVerifier {
        AssertionVerifier {
            secrets: Vec::new(),
            es256: Vec::new(),
            audience: None,
            leeway: DEFAULT_LEEWAY_SECONDS,
            clock: clock::system(),
        }
    }

    /// Also accepts these HS256 secrets.
    pub fn with_hs256<I, S>(mut self, secrets: I) -> Result<AssertionVerifier, AssertionConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        for s in secrets {
            let s = s.as_ref();
            if s.len() < MIN_SECRET_BYTES {
                return Err(AssertionConfigError::ShortSecret);
            }
            self.secrets.push(Secret { kid: hs256_kid(s), bytes: Zeroizing::new(s.to_vec()) });
        }
        self.check_keys()
    }

    /// Also accepts these ES256 public keys.
    pub fn with_es256(mut self, public_jwks: &[Value]) -> Result<AssertionVerifier, AssertionConfigError> {
        for jwk in public_jwks {
            let o = jwk.as_object().ok_or(AssertionConfigError::BadJwk)?;
            if o.contains_key("d") || o.get("kty") != Some(&Value::from("EC")) {
                return Err(AssertionConfigError::BadJwk);
            }
            let (x, y) = (o.get("x").and_then(Value::as_str), o.get("y").and_then(Value::as_str));
            let (Some(x), Some(y)) = (x, y) else { return Err(AssertionConfigError::BadJwk) };
            let xb = b64::decode(x.as_bytes()).map_err(|_| AssertionConfigError::BadJwk)?;
            let yb = b64::decode(y.as_bytes()).map_err(|_| AssertionConfigError::BadJwk)?;
            let key = P256Key::from_coordinates(&xb, &yb).map_err(|_| AssertionConfigError::BadJwk)?;
            // The core's JWK (alg ES256, use sig, kid = thumbprint) binds what it verifies.
            let core = key.to_jwk();
            let kid = core["kid"].as_str().ok_or(AssertionConfigError::BadJwk)?.to_string();
            let parsed = core.as_object().and_then(|o| Jwk::from_object(o).ok()).ok_or(AssertionConfigError::BadJwk)?;
            self.es256.push((kid, parsed.material));
        }
        self.check_keys()
    }

    fn check_keys(self) -> Result<AssertionVerifier, AssertionConfigError> {
        if self.secrets.is_empty() && self.es256.is_empty() {
            return Err(AssertionConfigError::NoKeys);
        }
        Ok(self)
    }

    /// Requires `aud` to be this origin, as `URL.origin` spells it
    /// (`https://api.example.com`, `http://127.0.0.1:8080`).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> AssertionVerifier {
        self.audience = Some(audience.into());
        self
    }

    /// Sets the leeway on `exp` and `iat` (default 5 s, at most 300 s).
    pub fn leeway(mut self, seconds: u64) -> Result<AssertionVerifier, AssertionConfigError> {
        if seconds > MAX_LEEWAY_SECONDS {
            return Err(AssertionConfigError::Leeway);
        }
        self.leeway = seconds;
        Ok(self)
    }

    /// Uses `clock` for "now".
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> AssertionVerifier {
        self.clock = clock;
        self
    }

    /// The `kid`s this verifier accepts (HS256, then ES256).
    pub fn kids(&self) -> Vec<&str> {
        self.secrets.iter().map(|s| s.kid.as_str()).chain(self.es256.iter().map(|k| k.0.as_str())).collect()
    }

    /// Checks the assertion of a request with `method` and request-target `target`
    /// (raw path and query, as received) and these headers.
    pub fn verify(&self, method: &str, target: &str, headers: &HeaderMap) -> Result<EdgeIdentity, AssertionError> {
        use AssertionError as E;
        // 1. exactly one header, three canonical segments, strict JSON
        let mut values = headers.get_all(ASSERTION_HEADER).iter();
        let token = match (values.next(), values.next()) {
            (None, _) => return Err(E::Missing),
            (Some(_), Some(_)) => return Err(E::Malformed),
            (Some(v), None) => v.to_str().map_err(|_| E::Malformed)?,
        };
        if token.len() > MAX_ASSERTION_BYTES {
            return Err(E::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(E::Malformed);
        };
        if h64.is_empty() || p64.is_empty() {
            return Err(E::Malformed);
        }
        let decode = |s: &str| b64::decode(s.as_bytes()).map_err(|_| E::Malformed);
        let (header, payload, sig) = (decode(h64)?, decode(p64)?, decode(s64)?);
        let header = strict_object(&header)?;
        let payload = strict_object(&payload)?;
        // 2. typ, alg, kid
        if header.len() != 3 || header.get("typ") != Some(&Value::from(ASSERTION_TYP)) {
            return Err(E::Malformed);
        }
        let (Some(Value::String(alg)), Some(Value::String(kid))) = (header.get("alg"), header.get("kid")) else {
            return Err(E::Malformed);
        };
        let signing_input = &token.as_bytes()[..h64.len() + 1 + p64.len()];
        // 3. the signature
        match alg.as_str() {
            "HS256" => {
                let secret = self.secrets.iter().find(|s| s.kid == *kid).ok_or(E::UnknownKey)?;
                let mut mac =
                    <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(&secret.bytes).map_err(|_| E::UnknownKey)?;
                mac.update(signing_input);
                // verify_slice compares in constant time.
                mac.verify_slice(&sig).map_err(|_| E::BadSignature)?;
            }
            "ES256" => {
                let (_, key) = self.es256.iter().find(|k| k.0 == *kid).ok_or(E::UnknownKey)?;
                let backend = tollgate_core::signature::DefaultBackend::default();
                if !tollgate_core::signature::verify_with(&backend, Algorithm::Es256, key, signing_input, &sig) {
                    return Err(E::BadSignature);
                }
            }
            _ => return Err(E::UnknownKey),
        }
        let p = Payload::read(&payload).ok_or(E::Malformed)?;
        // 4. iss, aud
        if p.iss != ASSERTION_ISSUER {
            return Err(E::WrongIssuer);
        }
        if self.audience.as_deref().is_some_and(|a| a != p.aud) {
            return Err(E::WrongAudience);
        }
        // 5. time
        let now = i64::try_from(self.clock.now()).unwrap_or(i64::MAX);
        let leeway = self.leeway as i64;
        if p.exp <= now.saturating_sub(leeway) {
            return Err(E::Expired);
        }
        if p.iat > now.saturating_add(leeway) {
            return Err(E::NotYetValid);
        }
        // 6.–8. bound to this request
        if p.method != method {
            return Err(E::WrongMethod);
        }
        if p.target != target {
            return Err(E::WrongTarget);
        }
        let digest = header_digest(headers);
        if !bool::from(digest.as_bytes().ct_eq(p.hdr.as_bytes())) {
            return Err(E::WrongHeaders);
        }
        Ok(p.identity)
    }
}

fn strict_object(bytes: &[u8]) -> Result<Map<String, Value>, AssertionError> {
    match tollgate_core::parse_strict_json(bytes) {
        Some(Value::Object(o)) => Ok(o),
        _ => Err(AssertionError::Malformed),
    }
}

/// The payload, type-checked.
struct Payload<'a> {
    iss: &'a str,
    aud: &'a str,
    method: &'a str,
    target: &'a str,
    hdr: &'a str,
    iat: i64,
    exp: i64,
    identity: EdgeIdentity,
}

impl<'a> Payload<'a> {
    fn read(p: &'a Map<String, Value>) -> Option<Payload<'a>> {
        let s = |n: &str| p.get(n).and_then(Value::as_str);
        let opt = |n: &str| -> Option<Option<String>> {
            match p.get(n) {
                None => Some(None),
                Some(Value::String(v)) => Some(Some(v.clone())),
                Some(_) => None,
            }
        };
        let int = |n: &str| p.get(n).and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f.floor() as i64)));
        let auth = match s("auth")? {
            "verified" => EdgeAuth::Verified,
            "none" => EdgeAuth::None,
            _ => return None,
        };
        let roles = match p.get("roles") {
            None => Vec::new(),
            Some(Value::Array(a)) => a.iter().map(|r| r.as_str().map(str::to_string)).collect::<Option<Vec<_>>>()?,
            Some(_) => return None,
        };
        let (iat, exp) = (int("iat")?, int("exp")?);
        Some(Payload {
            iss: s("iss")?,
            aud: s("aud")?,
            method: s("method")?,
            target: s("target")?,
            hdr: s("hdr")?,
            iat,
            exp,
            identity: EdgeIdentity {
                auth,
                sub: opt("sub")?,
                sid: opt("sid")?,
                tok_iss: opt("tok_iss")?,
                roles,
                scope: opt("scope")?,
                jti: s("jti")?.to_string(),
                iat,
                exp,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn kids_and_digests_as_the_contract_defines_them() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let mut h = Sha256::new();
        h.update(b"tollgate-assertion-kid:0123456789abcdef0123456789abcdef");
        assert_eq!(hs256_kid(secret), b64::encode(&h.finalize())[..16]);
        let mut headers = HeaderMap::new();
        headers.insert("x-tollgate-sub", HeaderValue::from_static("alice"));
        headers.insert("x-tollgate-assertion", HeaderValue::from_static("ignored"));
        headers.insert("x-tollgate-claims", HeaderValue::from_static("e30"));
        headers.append("x-tollgate-sub", HeaderValue::from_static("bob"));
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        let canon = "x-tollgate-claims:e30\nx-tollgate-sub:alice, bob\n";
        assert_eq!(header_digest(&headers), b64::encode(&Sha256::digest(canon.as_bytes())));
        assert_eq!(header_digest(&HeaderMap::new()), b64::encode(&Sha256::digest(b"")));
    }

    #[test]
    fn configuration_is_checked() {
        assert_eq!(AssertionVerifier::hs256([b"short"]).unwrap_err(), AssertionConfigError::ShortSecret);
        assert_eq!(AssertionVerifier::hs256(Vec::<Vec<u8>>::new()).unwrap_err(), AssertionConfigError::NoKeys);
        let k = crate::key::SigningKey::generate_es256().unwrap();
        let private = k.to_private_jwk().unwrap();
        assert_eq!(AssertionVerifier::es256(&[private]).unwrap_err(), AssertionConfigError::BadJwk);
        let v = AssertionVerifier::es256(&[k.public_jwk().clone()]).unwrap();
        assert_eq!(v.kids(), [k.kid()]);
        assert_eq!(v.leeway(301).unwrap_err(), AssertionConfigError::Leeway);
        let v = AssertionVerifier::hs256(["a".repeat(32)]).unwrap();
        assert!(!format!("{v:?}").contains(&"a".repeat(32)));
    }
}
