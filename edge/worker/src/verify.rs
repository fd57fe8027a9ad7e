//! A token verified cold, with no cache: key choice and signature (WebCrypto, or the
//! pure-Rust fallback), then claims, all through the core, against one [`KeySet`].
//!
//! The cache in front of this, the key set's loading and the denylist after it are the
//! request path's to compose (see `handler.rs`).

use tollgate_core::{Claims, Error, RustCrypto, UnverifiedToken};

use crate::config::CryptoBackend;
use crate::identity::Identity;
use crate::keys::{KeyFingerprint, KeySet};
use crate::platform::{describe, log};
use crate::webcrypto;

/// A verified token, ready to be forwarded: what the verified-token cache holds.
#[derive(Debug)]
pub struct Verified {
    /// The verified claims.
    pub claims: Claims,
    /// The key that verified the signature (its entries go when the key leaves the JWKS).
    pub key: KeyFingerprint,
    /// The identity headers for the origin; `X-Tollgate-Claims` is the token's payload
    /// segment (base64url of the claims' JSON).
    pub identity: Identity,
}

/// `typ` of a refresh token (`docs/tokens.md`): never an access token at the edge.
pub const REFRESH_TYP: &str = "refresh+jwt";

/// Verifies a token with `set`: the core's pipeline with the `crypto` backend for the
/// signature, then the issuer binding of the key that verified (a key never vouches for
/// another issuer's token) and, when `refuse_refresh_typ`, the refusal of a refresh
/// token's `typ`.
pub async fn verify_cold(
    set: &KeySet,
    crypto: CryptoBackend,
    refuse_refresh_typ: bool,
    token: &str,
    now: i64,
) -> Result<Verified, Error> {
    let pending = set.verifier.begin(token)?;
    let index = match crypto {
        CryptoBackend::Rust => pending.check_signature(&RustCrypto),
        CryptoBackend::WebCrypto => match webcrypto::check_signature(&pending, set).await {
            Ok(index) => index,
            Err(e) => {
                log(&format!("tollgate: WebCrypto failed ({}), using pure Rust", describe(&e)));
                pending.check_signature(&RustCrypto)
            }
        },
    };
    let v = pending.finish(index, now, None)?;
    if !set.issuer_allowed(v.key_index, v.claims.iss()) {
        return Err(Error::Claims(tollgate_core::error::ClaimsError::Issuer));
    }
    if refuse_refresh_typ && v.header.typ().is_some_and(is_refresh_typ) {
        return Err(Error::Header(tollgate_core::error::HeaderError::Type));
    }
    // X-Tollgate-Claims is the token's own payload segment: the claims' JSON exactly as
    // signed, already base64url (the core accepts only canonical, unpadded base64url).
    let identity = Identity::of(&v.claims, token.split('.').nth(1).unwrap_or_default());
    Ok(Verified { key: set.fingerprint(v.key_index), identity, claims: v.claims })
}

/// Whether a header `typ` is a refresh token's (case and an `application/` prefix
/// ignored, as the core compares `typ`).
pub fn is_refresh_typ(typ: &str) -> bool {
    let t = typ.as_bytes();
    let t = if t.len() >= 12 && t[..12].eq_ignore_ascii_case(b"application/") { &t[12..] } else { t };
    t.eq_ignore_ascii_case(REFRESH_TYP.as_bytes())
}

/// Whether the token names a `kid` the set does not have (or names none): only then
/// can refetching the JWKS help.
pub fn kid_is_unknown(set: &KeySet, token: &str) -> bool {
    match UnverifiedToken::parse(token, set.verifier.policy().max_token_bytes) {
        Ok(t) => t.header().kid().is_none_or(|kid| !set.verifier.jwks().has_kid(kid)),
        Err(_) => false,
    }
}

/// Measures nothing itself: verifies `token` `n` times cold with `backend` against
/// `set`, for the bench endpoint; returns how many verified, or the first token error.
pub async fn verify_repeatedly(
    set: &KeySet,
    token: &str,
    n: u32,
    backend: CryptoBackend,
    now: i64,
) -> Result<u32, Error> {
    let mut ok = 0;
    for _ in 0..n {
        let pending = set.verifier.begin(token)?;
        let index = match backend {
            CryptoBackend::Rust => pending.check_signature(&RustCrypto),
            CryptoBackend::WebCrypto => webcrypto::check_signature(&pending, set).await.unwrap_or(None),
        };
        if pending.finish(index, now, None).is_ok() {
            ok += 1;
        }
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_typ_spellings() {
        for t in ["refresh+jwt", "Refresh+JWT", "application/refresh+jwt"] {
            assert!(is_refresh_typ(t), "{t}");
        }
        for t in ["at+jwt", "JWT", "application/at+jwt", "refresh", ""] {
            assert!(!is_refresh_typ(t), "{t}");
        }
    }
}
