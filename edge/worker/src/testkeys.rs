//! Test tokens: a fixed P-256 key signs, the core verifies (unit tests only).

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use tollgate_core::{b64, Claims, Jwks, Policy, Verifier};

fn signing_key() -> SigningKey {
    SigningKey::from_slice(&[7u8; 32]).expect("a valid scalar")
}

/// The JWKS (one key, `kid` "t") that verifies [`token`].
pub(crate) fn jwks_json() -> String {
    let point = signing_key().verifying_key().to_sec1_point(false);
    let (x, y) = (point.x().expect("affine"), point.y().expect("affine"));
    format!(r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"t","x":"{}","y":"{}"}}]}}"#, b64::encode(x), b64::encode(y))
}

/// An ES256 token with `kid` "t" over `payload`.
pub(crate) fn token(payload: &str) -> String {
    let input = format!("{}.{}", b64::encode(br#"{"alg":"ES256","kid":"t"}"#), b64::encode(payload.as_bytes()));
    let sig: Signature = signing_key().sign(input.as_bytes());
    format!("{input}.{}", b64::encode(&sig.to_bytes()))
}

/// Verified claims for `payload` (no time claims needed).
pub(crate) fn claims_of(payload: &str) -> Claims {
    let jwks = Jwks::from_json(jwks_json().as_bytes()).expect("jwks");
    let mut policy = Policy::default();
    policy.required_claims = Vec::new();
    Verifier::new(jwks, policy).verify(&token(payload), 0, None).expect("verifies").claims
}
