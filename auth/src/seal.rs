//! Sealing the successor pair of a rotation so that only the holder of the refresh
//! token it replaced can read it.
//!
//! The key is SHA-256 over a domain label and the whole presented refresh token — a
//! signed token with a 128-bit random `jti`, which the database never stores — so a
//! copy of the database does not yield live tokens. ChaCha20-Poly1305 with a random
//! 96-bit nonce; the session id and the successor's `jti` are bound as associated data
//! so a sealed pair cannot be moved to another session or rotation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

fn cipher(presented_token: &str) -> ChaCha20Poly1305 {
    let mut h = Sha256::new();
    h.update(b"tollgate-auth successor v1\0");
    h.update(presented_token.as_bytes());
    let mut key = Key::default();
    key.copy_from_slice(&h.finalize());
    ChaCha20Poly1305::new(&key)
}

fn aad(sid: &str, next_jti: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(sid.len() + next_jti.len() + 1);
    a.extend_from_slice(sid.as_bytes());
    a.push(0);
    a.extend_from_slice(next_jti.as_bytes());
    a
}

/// Seals `plaintext` under a key derived from `presented_token`.
pub fn seal(presented_token: &str, sid: &str, next_jti: &str, plaintext: &[u8]) -> String {
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher(presented_token)
        .encrypt(&Nonce::from(nonce), Payload { msg: plaintext, aad: &aad(sid, next_jti) })
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    URL_SAFE_NO_PAD.encode(out)
}

/// Opens what [`seal`] made; `None` for any other token, session, rotation or damage.
pub fn open(presented_token: &str, sid: &str, next_jti: &str, sealed: &str) -> Option<Vec<u8>> {
    let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
    if raw.len() < 12 + 16 {
        return None;
    }
    let (nonce, ct) = raw.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    cipher(presented_token).decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: &aad(sid, next_jti) }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_presented_token_opens_it() {
        let s = seal("tok-1", "sid", "jti-2", b"pair");
        assert_eq!(open("tok-1", "sid", "jti-2", &s).as_deref(), Some(&b"pair"[..]));
        assert_eq!(open("tok-2", "sid", "jti-2", &s), None);
        assert_eq!(open("tok-1", "sid2", "jti-2", &s), None);
        assert_eq!(open("tok-1", "sid", "jti-3", &s), None);
        let mut damaged = s.clone().into_bytes();
        let last = damaged.len() - 2;
        damaged[last] = if damaged[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(open("tok-1", "sid", "jti-2", std::str::from_utf8(&damaged).unwrap()), None);
        assert_eq!(open("tok-1", "sid", "jti-2", "short"), None);
        assert_ne!(seal("tok-1", "sid", "jti-2", b"pair"), s, "a fresh nonce each time");
    }
}
