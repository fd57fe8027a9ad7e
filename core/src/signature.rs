//! The signature seam: one small trait, a pure-Rust default, optional native backends
//! (`ring`, `aws-lc-rs`).
//!
//! The pipeline checks signature *lengths* itself (so every backend rejects the same
//! inputs as `invalid_signature`) and hands the backend only well-sized signatures.
//! The Worker can put WebCrypto behind the same seam through
//! [`crate::verify::Pending`], which exposes the work without doing it.

use sha2::{Digest, Sha256};

use crate::alg::Algorithm;
use crate::jwk::{KeyMaterial, P256Key, RsaKey};

/// Verifies one signature with one key. Implementations must be constant in what
/// they accept: same answer as [`RustCrypto`] for every input.
pub trait SignatureBackend {
    /// ES256: `signature` is exactly 64 bytes (`r || s`).
    fn verify_es256(&self, key: &P256Key, message: &[u8], signature: &[u8; 64]) -> bool;
    /// RS256: `signature` is exactly as long as the modulus.
    fn verify_rs256(&self, key: &RsaKey, message: &[u8], signature: &[u8]) -> bool;
}

/// Checks the length of `signature` for `alg` under `key`, then dispatches to `backend`.
pub fn verify_with(
    backend: &dyn SignatureBackend,
    alg: Algorithm,
    key: &KeyMaterial,
    message: &[u8],
    signature: &[u8],
) -> bool {
    match (alg, key) {
        (Algorithm::Es256, KeyMaterial::P256(k)) => match <&[u8; 64]>::try_from(signature) {
            Ok(sig) => backend.verify_es256(k, message, sig),
            Err(_) => false,
        },
        (Algorithm::Rs256, KeyMaterial::Rsa(k)) => {
            signature.len() == k.len && backend.verify_rs256(k, message, signature)
        }
        _ => false,
    }
}

/// Pure-Rust signatures: `p256` and `rsa`. The default, and the only backend for
/// `no_std` and wasm32.
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCrypto;

impl SignatureBackend for RustCrypto {
    fn verify_es256(&self, key: &P256Key, message: &[u8], signature: &[u8; 64]) -> bool {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        // from_slice rejects r = 0 or s = 0 and values >= n; high-S is accepted.
        let Ok(sig) = p256::ecdsa::Signature::from_slice(signature) else {
            return false;
        };
        let digest = Sha256::digest(message);
        key.key.verify_prehash(&digest, &sig).is_ok()
    }

    fn verify_rs256(&self, key: &RsaKey, message: &[u8], signature: &[u8]) -> bool {
        let digest = Sha256::digest(message);
        key.key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, signature).is_ok()
    }
}

/// Native signatures through `ring` (std targets only; feature `ring`).
#[cfg(feature = "ring")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Ring;

#[cfg(feature = "ring")]
impl SignatureBackend for Ring {
    fn verify_es256(&self, key: &P256Key, message: &[u8], signature: &[u8; 64]) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &key.sec1[..])
            .verify(message, signature)
            .is_ok()
    }

    fn verify_rs256(&self, key: &RsaKey, message: &[u8], signature: &[u8]) -> bool {
        // ring's smallest RS256 profile takes 1024-bit moduli; the policy's minimum
        // (2048 by default) has already been enforced by key selection.
        ring::signature::RsaPublicKeyComponents { n: &key.n[..], e: &key.e[..] }
            .verify(&ring::signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY, message, signature)
            .is_ok()
    }
}

/// Native signatures through `aws-lc-rs`, the crypto of the `jsonwebtoken` peer (std
/// targets only; feature `aws-lc-rs`). Keys are parsed once, when the JWK is read, so a
/// check is the signature operation alone.
#[cfg(feature = "aws-lc-rs")]
#[derive(Debug, Clone, Copy, Default)]
pub struct AwsLc;

#[cfg(feature = "aws-lc-rs")]
impl SignatureBackend for AwsLc {
    fn verify_es256(&self, key: &P256Key, message: &[u8], signature: &[u8; 64]) -> bool {
        key.aws.as_ref().is_some_and(|k| k.verify_sig(message, signature).is_ok())
    }

    fn verify_rs256(&self, key: &RsaKey, message: &[u8], signature: &[u8]) -> bool {
        key.aws.as_ref().is_some_and(|k| k.verify_sig(message, signature).is_ok())
    }
}

/// The backend used by [`crate::Verifier::verify`]: `aws-lc-rs` when that feature is
/// on, else `ring` when that one is, else pure Rust.
#[cfg(feature = "aws-lc-rs")]
pub type DefaultBackend = AwsLc;
/// The backend used by [`crate::Verifier::verify`]: `aws-lc-rs` when that feature is
/// on, else `ring` when that one is, else pure Rust.
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
pub type DefaultBackend = Ring;
/// The backend used by [`crate::Verifier::verify`]: `aws-lc-rs` when that feature is
/// on, else `ring` when that one is, else pure Rust.
#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
pub type DefaultBackend = RustCrypto;
