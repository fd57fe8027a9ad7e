//! # tollgate-wasm
//!
//! The `wasm-bindgen` binding of `tollgate-core`, published to npm as
//! `@tollgate/verify`. A thin layer: the verify pipeline, the denylist and the signed
//! wire format are the core's; this crate adds only what crossing into JS needs.
//!
//! - [`verifier`]: `CoreVerifier`, the core verifier plus the core's verified-token
//!   cache ([`tollgate_core::TokenCache`]), with a pure-Rust path (`verify`) and a
//!   WebCrypto seam (`begin` → JS `crypto.subtle.verify` → `finish`).
//! - [`denylist`]: the `Denylist` class (local revocations, signed snapshots/deltas).
//! - [`acceptance`]: the `Acceptance` class (epoch, message age, high-water mark).
//! - [`options`]: the JS camelCase options onto the core's policy configuration.
//! - [`error`]: every failure, and the one mapping to a JS `TollgateError`.
//! - [`json`]: the core's strict JSON parser, for the origin middleware.
//!
//! The JS API (`Verifier`, `RemoteDenylist`, middleware, ...) is hand-written in
//! `edge/npm/js/` over these classes; `edge/npm/build.sh` assembles the package.

#![forbid(unsafe_code)]

pub mod acceptance;
pub mod denylist;
pub mod error;
pub mod json;
pub mod options;
pub mod verifier;

pub use acceptance::Acceptance;
pub use denylist::Denylist;
pub use error::BindingError;
pub use verifier::CoreVerifier;

#[cfg(test)]
mod test_tokens {
    //! ES256 tokens signed natively with a fixed key, for the unit tests.
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use sha2::{Digest, Sha256};
    use tollgate_core::b64;

    fn key() -> p256::ecdsa::SigningKey {
        p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap()
    }

    pub(crate) fn es256_jwks() -> String {
        let point = key().verifying_key().to_sec1_point(false);
        let (x, y) = (b64::encode(&point.as_bytes()[1..33]), b64::encode(&point.as_bytes()[33..]));
        format!(r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"k1","x":"{x}","y":"{y}"}}]}}"#)
    }

    pub(crate) fn es256_token_with_kid(kid: &str, claims: &str) -> String {
        let header = format!(r#"{{"alg":"ES256","kid":"{kid}"}}"#);
        let input = format!("{}.{}", b64::encode(header.as_bytes()), b64::encode(claims.as_bytes()));
        let sig: p256::ecdsa::Signature = key().sign_prehash(&Sha256::digest(input.as_bytes())).unwrap();
        format!("{input}.{}", b64::encode(&sig.to_bytes()))
    }

    pub(crate) fn es256_token(claims: &str) -> String {
        es256_token_with_kid("k1", claims)
    }
}
