//! One login attempt, kept in the browser in an encrypted HttpOnly cookie named after
//! the attempt's `state` (`tg_oauth_<state>`), so parallel logins in two tabs (or an
//! in-app browser) never overwrite each other's. The cookie is `SameSite=Lax` (the
//! provider's redirect back is a cross-site top-level navigation, which `Strict`
//! cookies do not follow), scoped to the provider's callback path, and lives ten
//! minutes. Sealed with ChaCha20-Poly1305 under the service's cookie key (stored in the
//! database, shared by every instance), with the cookie's name as associated data so a
//! sealed value cannot be moved to another attempt. The attempt is single-use: the
//! callback records its `state` in the database before the code is exchanged.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The attempt cookie's name prefix.
pub const COOKIE_PREFIX: &str = "tg_oauth_";
/// The pending-link cookie.
pub const LINK_COOKIE: &str = "tg_link";
/// How long an attempt (and a pending link) lives, seconds.
pub const ATTEMPT_TTL_SECS: u64 = 600;

/// What the callback needs to finish the attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attempt {
    /// The provider it was started for.
    pub provider: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// The OIDC nonce.
    pub nonce: String,
    /// When it started (seconds).
    pub created_at: u64,
    /// Where to go afterwards (a path on this site).
    pub return_to: String,
}

/// An external identity waiting for the local password before it is linked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingLink {
    /// The provider.
    pub provider: String,
    /// The provider's subject.
    pub subject: String,
    /// The provider's (verified) email.
    pub email: String,
    /// The local account it would be linked to.
    pub user_id: String,
    /// When it stops being valid (seconds).
    pub expires_at: u64,
    /// Where to go afterwards.
    pub return_to: String,
}

/// The attempt cookie's name for `state`.
pub fn cookie_name(state: &str) -> String {
    format!("{COOKIE_PREFIX}{state}")
}

/// Whether `state` has the shape this service issues (base64url, 16–64 characters):
/// anything else is refused before it names a cookie.
pub fn valid_state(state: &str) -> bool {
    (16..=64).contains(&state.len()) && state.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// 32 random bytes, base64url: a PKCE code verifier (43 characters).
pub fn code_verifier() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// The S256 challenge of a verifier.
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Seals and opens cookie values under the service's cookie key.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(***)")
    }
}

impl Sealer {
    /// A sealer for a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Sealer {
        let mut k = Key::default();
        k.copy_from_slice(key);
        Sealer { cipher: ChaCha20Poly1305::new(&k) }
    }

    /// Seals `value` (JSON) bound to `name`.
    pub fn seal<T: Serialize>(&self, name: &str, value: &T) -> String {
        let plaintext = serde_json::to_vec(value).unwrap_or_default();
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: &plaintext, aad: name.as_bytes() })
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens what [`Sealer::seal`] made for `name`; `None` for anything else.
    pub fn open<T: for<'de> Deserialize<'de>>(&self, name: &str, sealed: &str) -> Option<T> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < 12 + 16 {
            return None;
        }
        let (nonce, ct) = raw.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let pt = self.cipher.decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: name.as_bytes() }).ok()?;
        serde_json::from_slice(&pt).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_for_one_name_only() {
        let s = Sealer::new(&[7; 32]);
        let a = Attempt {
            provider: "kakao".into(),
            verifier: code_verifier(),
            nonce: "n".into(),
            created_at: 1,
            return_to: "/".into(),
        };
        let v = s.seal("tg_oauth_abc", &a);
        assert_eq!(s.open::<Attempt>("tg_oauth_abc", &v), Some(a.clone()));
        assert_eq!(s.open::<Attempt>("tg_oauth_abd", &v), None, "moved to another attempt");
        assert_eq!(Sealer::new(&[8; 32]).open::<Attempt>("tg_oauth_abc", &v), None, "another key");
        assert_eq!(s.open::<Attempt>("tg_oauth_abc", "garbage"), None);
        assert_ne!(s.seal("tg_oauth_abc", &a), v, "a fresh nonce each time");
    }

    #[test]
    fn pkce_s256_matches_rfc_7636() {
        // RFC 7636 appendix B.
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(code_verifier().len(), 43);
        assert!(valid_state("abcdefghijklmnop_-12"));
        assert!(!valid_state("short"));
        assert!(!valid_state("abcdefghijklmnop;x=1"));
    }
}
