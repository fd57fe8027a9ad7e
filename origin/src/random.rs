//! Randomness from the operating system, with failures reported, never panicking.

use tollgate_core::b64;

use crate::error::KeyError;

/// Fills `buf` from the operating system's generator.
pub(crate) fn fill(buf: &mut [u8]) -> Result<(), KeyError> {
    getrandom::fill(buf).map_err(|_| KeyError::Random)
}

/// 128 random bits, base64url without padding (22 characters): `jti`s, request and
/// idempotency keys.
pub(crate) fn id128() -> Result<String, KeyError> {
    let mut b = [0u8; 16];
    fill(&mut b)?;
    Ok(b64::encode(&b))
}

/// A uniformly random `u64` (retry jitter).
pub(crate) fn u64() -> u64 {
    let mut b = [0u8; 8];
    // Jitter only: a failed generator gives no jitter rather than an error.
    let _ = fill(&mut b);
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_22_canonical_characters_and_differ() {
        let a = id128().unwrap();
        let b = id128().unwrap();
        assert_eq!(a.len(), 22);
        assert_eq!(b64::decode(a.as_bytes()).unwrap().len(), 16);
        assert_ne!(a, b);
    }
}
