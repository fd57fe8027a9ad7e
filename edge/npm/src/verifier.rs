//! `CoreVerifier`: a core [`Verifier`] plus its verified-token cache, driven by the
//! package's JS `Verifier`.
//!
//! Two ways through:
//! - [`CoreVerifier::verify`]: everything in Rust (pure-Rust `p256`/`rsa`), synchronous.
//! - [`CoreVerifier::begin`] then [`CoreVerifier::finish`]: the signature is checked
//!   by the caller with WebCrypto between the two calls (the core's [`Pending`] seam).
//!   `begin` hands out the algorithm, the candidate keys (JWKS indices), the signing
//!   input and the signature; `finish` re-runs the cheap pre-signature steps on the
//!   same token, takes the index of the key that verified, and completes the checks.
//!
//! Claims cross to JS as JSON text — the payload's own JSON, as signed (one string
//! copy, then `JSON.parse`) — which is faster and smaller than building JS objects
//! field by field from Rust.

use js_sys::{Array, Uint32Array, Uint8Array};
use tollgate_core::cache::{Fingerprint, TokenCache};
use tollgate_core::{Algorithm, Claims, Jwks, KeyMaterial, Pending, Verifier};
use wasm_bindgen::prelude::*;

use crate::denylist::Denylist;
use crate::error::BindingError;
use crate::options::policy_from_options;

/// A verifier for one JWKS and policy, with its verified-token cache (the core's
/// [`TokenCache`]: keyed SipHash, bounded FIFO; see its docs). A verifier's JWKS and
/// policy never change (a new JWKS means a new verifier with an empty cache), so issuer,
/// audience and required claims of a cached token stay true; time and the denylist are
/// re-checked on every hit.
#[wasm_bindgen]
#[derive(Debug)]
pub struct CoreVerifier {
    inner: Verifier,
    cache: TokenCache<Entry>,
}

/// One cached verification.
#[derive(Debug, Clone)]
struct Entry {
    /// The verified claims, for re-checking time and the denylist; their JSON text is
    /// what goes back to JS on a hit.
    claims: Claims,
}

#[wasm_bindgen]
impl CoreVerifier {
    /// Builds a verifier from a JWKS document (JSON text), the policy options (JSON
    /// text, camelCase, see `options.rs`) and the cache capacity (0 disables it). The
    /// cache stays off until [`CoreVerifier::seed_cache`] gives it a key.
    #[wasm_bindgen(constructor)]
    pub fn new(jwks_json: &str, options_json: &str, cache_capacity: u32) -> Result<CoreVerifier, JsValue> {
        Ok(CoreVerifier::build(jwks_json, options_json, cache_capacity as usize)?)
    }

    /// Verifies `token` entirely in Rust at `now` (seconds since the epoch) against
    /// `denylist`; returns the claims as JSON text or throws a `TollgateError`.
    pub fn verify(&mut self, token: &str, now: f64, denylist: &Denylist) -> Result<String, JsValue> {
        Ok(self.verify_rust(token, seconds(now)?, denylist)?)
    }

    /// Starts a verification whose signature the caller checks. Returns either the
    /// claims JSON (a cache hit, already re-checked) or an array
    /// `[alg, candidates: Uint32Array, signingInput: Uint8Array, signature: Uint8Array]`.
    /// Candidates whose key cannot take a signature of this length are left out, so an
    /// empty list means `finish(token, -1, ...)`.
    pub fn begin(&mut self, token: &str, now: f64, denylist: &Denylist) -> Result<JsValue, JsValue> {
        let now = seconds(now)?;
        if let Some(hit) = self.lookup(token, now, denylist) {
            return Ok(JsValue::from_str(&hit?));
        }
        let pending = self.inner.begin(token).map_err(BindingError::from)?;
        let candidates: Vec<u32> = pending
            .candidates()
            .iter()
            .copied()
            .filter(|&i| signature_fits(&pending, i))
            .filter_map(|i| u32::try_from(i).ok())
            .collect();
        let work = Array::of4(
            &JsValue::from_str(pending.alg().name()),
            &Uint32Array::from(&candidates[..]),
            &Uint8Array::from(pending.signing_input()),
            &Uint8Array::from(pending.signature()),
        );
        Ok(work.into())
    }

    /// Completes a verification begun with [`CoreVerifier::begin`]: `verified_by` is
    /// the JWKS index of the key whose signature check succeeded, or -1.
    pub fn finish(&mut self, token: &str, verified_by: i32, now: f64, denylist: &Denylist) -> Result<String, JsValue> {
        Ok(self.finish_rust(token, usize::try_from(verified_by).ok(), seconds(now)?, denylist)?)
    }

    /// The token's `kid` when its header names one that this JWKS does not hold (so a
    /// JWKS refetch might help); `undefined` otherwise, and for unparsable tokens.
    #[wasm_bindgen(js_name = unknownKid)]
    pub fn unknown_kid(&self, token: &str) -> Option<String> {
        let parsed = tollgate_core::UnverifiedToken::parse(token, self.inner.policy().max_token_bytes).ok()?;
        let kid = parsed.header().kid()?;
        (!self.inner.jwks().has_kid(kid)).then(|| kid.to_owned())
    }

    /// Gives the verified-token cache its secret hash key (16 random bytes) if it has
    /// none yet; returns whether the cache is keyed (see `cache.rs`).
    #[wasm_bindgen(js_name = seedCache)]
    pub fn seed_cache(&mut self, key: &[u8]) -> bool {
        self.cache.set_key(key)
    }

    /// Tokens in the verified-token cache.
    #[wasm_bindgen(getter, js_name = cacheSize)]
    pub fn cache_size(&self) -> u32 {
        u32::try_from(self.cache.len()).unwrap_or(u32::MAX)
    }

    /// Empties the verified-token cache.
    #[wasm_bindgen(js_name = clearCache)]
    pub fn clear_cache(&mut self) {
        self.cache.clear();
    }
}

impl CoreVerifier {
    /// The Rust-side constructor (also used by native tests).
    pub fn build(jwks_json: &str, options_json: &str, cache_capacity: usize) -> Result<CoreVerifier, BindingError> {
        let jwks = Jwks::from_json(jwks_json.as_bytes())?;
        let policy = policy_from_options(options_json)?;
        Ok(CoreVerifier { inner: Verifier::new(jwks, policy), cache: TokenCache::new(cache_capacity) })
    }

    /// [`CoreVerifier::verify`] with typed errors.
    pub fn verify_rust(&mut self, token: &str, now: i64, denylist: &Denylist) -> Result<String, BindingError> {
        if let Some(hit) = self.lookup(token, now, denylist) {
            return hit;
        }
        let verified = self.inner.verify(token, now, Some(denylist.core()))?;
        self.remember(token, verified.claims, now)
    }

    /// [`CoreVerifier::finish`] with typed errors.
    pub fn finish_rust(
        &mut self,
        token: &str,
        verified_by: Option<usize>,
        now: i64,
        denylist: &Denylist,
    ) -> Result<String, BindingError> {
        let pending = self.inner.begin(token)?;
        let verified = pending.finish(verified_by, now, Some(denylist.core()))?;
        self.remember(token, verified.claims, now)
    }

    /// A cache hit re-checked at `now` against `denylist`; `None` on a miss.
    fn lookup(&mut self, token: &str, now: i64, denylist: &Denylist) -> Option<Result<String, BindingError>> {
        let fp: Fingerprint = self.cache.fingerprint(token)?;
        let entry = self.cache.get(&fp)?;
        match self.inner.recheck(&entry.claims, now, Some(denylist.core())) {
            Ok(()) => Some(Ok(entry.claims.json().to_owned())),
            Err(e) => {
                if e.reason() == tollgate_core::Reason::Expired {
                    self.cache.remove(&fp);
                }
                Some(Err(e.into()))
            }
        }
    }

    /// Caches verified claims; their JSON text (the payload as signed) for JS.
    fn remember(&mut self, token: &str, claims: Claims, now: i64) -> Result<String, BindingError> {
        let json = claims.json().to_owned();
        if let Some(fp) = self.cache.fingerprint(token) {
            let exp = claims.exp();
            self.cache.insert(fp, Entry { claims }, exp, now);
        }
        Ok(json)
    }
}

/// Whether candidate `i` can take a signature of this length (WebCrypto implementations
/// differ on wrong-length RSA signatures; the core says `invalid_signature`).
fn signature_fits(pending: &Pending<'_, '_>, i: usize) -> bool {
    let len = pending.signature().len();
    match (pending.alg(), &pending.key(i).material) {
        (Algorithm::Es256, KeyMaterial::P256(_)) => len == 64,
        (Algorithm::Rs256, KeyMaterial::Rsa(k)) => len == k.len,
        _ => false,
    }
}

/// Seconds since the epoch from a JS number (fractions dropped).
pub(crate) fn seconds(now: f64) -> Result<i64, BindingError> {
    if now.is_finite() {
        Ok(now.floor() as i64)
    } else {
        Err(BindingError::Argument("now must be a finite number of seconds since the epoch"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_tokens::{es256_jwks, es256_token};
    use tollgate_core::EntryKind;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn verifies_caches_and_rechecks_time_and_denylist_on_hits() {
        let mut v = CoreVerifier::build(&es256_jwks(), "{}", 8).unwrap();
        let token = es256_token(r#"{"sub":"u1","jti":"j1","exp":1800000100}"#);
        let empty = Denylist::default();
        v.verify_rust(&token, NOW, &empty).unwrap();
        assert!(v.cache.is_empty(), "no key, no cache");
        assert!(v.seed_cache(&[9; 16]));
        let json = v.verify_rust(&token, NOW, &empty).unwrap();
        let claims: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(claims["jti"], "j1");
        assert_eq!(v.cache.len(), 1);
        // A hit still sees the denylist...
        let mut listed = Denylist::default();
        listed.core_mut().insert(EntryKind::Jti, None, "j1", u64::MAX);
        let err = v.verify_rust(&token, NOW, &listed).unwrap_err();
        assert_eq!((err.code(), err.reason()), ("TOKEN_REVOKED", Some("revoked")));
        assert_eq!(v.cache.len(), 1, "a revocation does not evict (the list is per call)");
        // ...and the clock; an expired entry is dropped.
        let err = v.verify_rust(&token, 1_800_000_100, &empty).unwrap_err();
        assert_eq!(err.code(), "TOKEN_EXPIRED");
        assert!(v.cache.is_empty());
    }

    #[test]
    fn begin_finish_matches_verify() {
        let mut v = CoreVerifier::build(&es256_jwks(), "{}", 0).unwrap();
        let token = es256_token(r#"{"sub":"u1","exp":1800000100}"#);
        let empty = Denylist::default();
        let pending = v.inner.begin(&token).unwrap();
        assert_eq!(pending.candidates(), &[0]);
        assert!(signature_fits(&pending, 0));
        let by = pending.check_signature(&tollgate_core::RustCrypto);
        assert_eq!(by, Some(0));
        drop(pending);
        let err = v.finish_rust(&token, None, NOW, &empty).unwrap_err();
        assert_eq!(err.reason(), Some("invalid_signature"));
        let err = v.finish_rust(&token, Some(3), NOW, &empty).unwrap_err();
        assert_eq!(err.reason(), Some("invalid_signature"), "not a candidate");
        let ok = v.finish_rust(&token, by, NOW, &empty).unwrap();
        assert_eq!(ok, v.verify_rust(&token, NOW, &empty).unwrap());
        assert!(ok.contains("\"sub\":\"u1\""));
    }

    #[test]
    fn unknown_kid_and_bad_inputs() {
        let v = CoreVerifier::build(&es256_jwks(), "{}", 0).unwrap();
        let token = es256_token(r#"{"exp":1800000100}"#);
        assert_eq!(v.unknown_kid(&token), None, "kid is in the set");
        let other = crate::test_tokens::es256_token_with_kid("rotated", r#"{"exp":1}"#);
        assert_eq!(v.unknown_kid(&other).as_deref(), Some("rotated"));
        assert_eq!(v.unknown_kid("garbage"), None);
        assert_eq!(CoreVerifier::build("{}", "{}", 0).unwrap_err().code(), "INVALID_JWKS");
        assert_eq!(CoreVerifier::build(&es256_jwks(), r#"{"leeway":1}"#, 0).unwrap_err().code(), "INVALID_OPTIONS");
        assert!(seconds(f64::NAN).is_err());
        assert_eq!(seconds(10.9).unwrap(), 10);
    }
}
