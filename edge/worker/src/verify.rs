//! The token half of the request path: verified-token cache, then key choice and
//! signature (WebCrypto, pure-Rust fallback), then claims — all through the core.
//!
//! The denylist is checked by the caller after this (see `handler`), on hits and on
//! cold tokens alike, so that an invalid token is a 401 even while the replica is
//! too stale to trust.

use std::rc::Rc;

use tollgate_core::cache::Fingerprint;
use tollgate_core::{Claims, Error, Reason, RustCrypto, UnverifiedToken};

use crate::config::CryptoBackend;
use crate::isolate::Isolate;
use crate::keys::{self, KeyFingerprint, KeySet};
use crate::platform::{log, now_ms};
use crate::proxy::Identity;
use crate::respond::Reply;
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

/// Verifies `token` at time `now` (seconds): from the cache when it was verified
/// before (re-checking `exp`/`nbf`), else cold. Returns the verification and the
/// token's cache fingerprint (to drop it from the cache should it turn out revoked;
/// `None` while the cache is off).
pub async fn verify_token(
    iso: &Rc<Isolate>,
    ctx: &worker::Context,
    token: &str,
    now: i64,
) -> Result<(Rc<Verified>, Option<Fingerprint>), Reply> {
    let fp = iso.tokens.borrow().fingerprint(token);
    let hit = fp.and_then(|fp| iso.tokens.borrow().get(&fp).cloned());
    if let (Some(hit), Some(fp)) = (hit, fp) {
        keys::refresh_expired(iso, ctx);
        return match hit.claims.check_time(&iso.config.policy, now) {
            Ok(()) => Ok((hit, Some(fp))),
            Err(e) => {
                iso.tokens.borrow_mut().remove(&fp);
                Err(Reply::Invalid(Error::Claims(e).reason()))
            }
        };
    }
    let set = keys::current(iso, ctx).await.ok_or(Reply::JwksUnavailable)?;
    let verified = match verify_cold(iso, &set, token, now).await {
        Err(e) if e.reason() == Reason::UnknownKey && kid_is_unknown(&set, token) => {
            if keys::refetch_for_unknown_kid(iso).await {
                let set = keys::current(iso, ctx).await.ok_or(Reply::JwksUnavailable)?;
                verify_cold(iso, &set, token, now).await
            } else {
                Err(e)
            }
        }
        other => other,
    }
    .map_err(|e| Reply::Invalid(e.reason()))?;
    let verified = Rc::new(verified);
    if let Some(fp) = fp.filter(|_| keys::is_current_key(iso, &verified.key)) {
        let exp = verified.claims.exp();
        iso.tokens.borrow_mut().insert(fp, Rc::clone(&verified), exp, now);
    }
    Ok((verified, fp))
}

/// Verifies a token with no cache: the core's pipeline with the configured signature
/// backend, then the preset issuer binding of the key that verified.
pub async fn verify_cold(iso: &Isolate, set: &KeySet, token: &str, now: i64) -> Result<Verified, Error> {
    let pending = set.verifier.begin(token)?;
    let index = match iso.config.crypto {
        CryptoBackend::Rust => pending.check_signature(&RustCrypto),
        CryptoBackend::WebCrypto => match webcrypto::check_signature(&pending, set).await {
            Ok(index) => index,
            Err(e) => {
                log(&format!("tollgate: WebCrypto failed ({}), using pure Rust", crate::platform::describe(&e)));
                pending.check_signature(&RustCrypto)
            }
        },
    };
    let v = pending.finish(index, now, None)?;
    if !set.issuer_allowed(v.key_index, v.claims.iss()) {
        return Err(Error::Claims(tollgate_core::error::ClaimsError::Issuer));
    }
    // X-Tollgate-Claims is the token's own payload segment: the claims' JSON exactly as
    // signed, already base64url (the core accepts only canonical, unpadded base64url).
    let identity = Identity::of(&v.claims, token.split('.').nth(1).unwrap_or_default());
    Ok(Verified { key: set.fingerprint(v.key_index), identity, claims: v.claims })
}

/// Whether the token names a `kid` the set does not have (or names none): only then
/// can refetching the JWKS help.
fn kid_is_unknown(set: &KeySet, token: &str) -> bool {
    match UnverifiedToken::parse(token, set.verifier.policy().max_token_bytes) {
        Ok(t) => t.header().kid.as_deref().is_none_or(|kid| !set.verifier.jwks().has_kid(kid)),
        Err(_) => false,
    }
}

/// Measures nothing itself: verifies `token` `n` times cold (no cache) with `backend`,
/// for the bench endpoint; returns how many verified.
pub async fn verify_repeatedly(
    iso: &Rc<Isolate>,
    ctx: &worker::Context,
    token: &str,
    n: u32,
    backend: CryptoBackend,
) -> Result<u32, Reply> {
    let set = keys::current(iso, ctx).await.ok_or(Reply::JwksUnavailable)?;
    let now = (now_ms() / 1000.0) as i64;
    let mut ok = 0;
    for _ in 0..n {
        let pending = set.verifier.begin(token).map_err(|e| Reply::Invalid(e.reason()))?;
        let index = match backend {
            CryptoBackend::Rust => pending.check_signature(&RustCrypto),
            CryptoBackend::WebCrypto => webcrypto::check_signature(&pending, &set).await.unwrap_or(None),
        };
        if pending.finish(index, now, None).is_ok() {
            ok += 1;
        }
    }
    Ok(ok)
}
