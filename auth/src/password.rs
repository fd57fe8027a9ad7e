//! Passwords: Argon2id at RustCrypto's defaults (m = 19 MiB, t = 2, p = 1), stored as
//! a PHC string, verified off the async threads, rehashed when the parameters change;
//! the password policy; email normalisation.
//!
//! Hashes run on the blocking pool behind a semaphore (`max_concurrent_hashes`): each
//! takes 19 MiB, so a burst of logins is queued rather than allowed to take the
//! machine's memory. Paths that have no hash to check (unknown user, social-only
//! account) verify against a dummy hash made at start-up with the same parameters, so
//! their timing matches a wrong password.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// The longest password accepted, in bytes (bounds the hashing work per request).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Argon2id hashing with fixed parameters and bounded concurrency.
#[derive(Debug, Clone)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    dummy: Arc<String>,
}

/// The result of checking a password against an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The password is right; `Some(phc)` when the stored hash used other parameters
    /// and this new hash should replace it.
    Yes(Option<String>),
    /// Wrong password, or no password to check (the dummy hash was verified).
    No,
}

impl Hasher {
    /// A hasher with `params` (use [`Hasher::default_params`] in production), at most
    /// `max_concurrent` hashes at once.
    pub fn new(params: Params, max_concurrent: usize) -> Result<Hasher, ApiError> {
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = SaltString::generate(&mut OsRng);
        let mut random = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
        let dummy = argon.hash_password(&random, &salt).map_err(ApiError::internal)?.to_string();
        Ok(Hasher { params, permits: Arc::new(Semaphore::new(max_concurrent.max(1))), dummy: Arc::new(dummy) })
    }

    /// RustCrypto's defaults: m = 19456 KiB, t = 2, p = 1 (OWASP's first choice).
    pub fn default_params() -> Params {
        Params::default()
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: &str) -> Result<String, ApiError> {
        let _permit = self.permits.acquire().await.map_err(ApiError::internal)?;
        let argon = self.argon();
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon.hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
    }

    /// Checks `password` against `stored` (a PHC string), or against the dummy hash
    /// when there is none, taking the same time either way.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<Verified, ApiError> {
        let _permit = self.permits.acquire().await.map_err(ApiError::internal)?;
        let argon = self.argon();
        let real = stored.is_some();
        let phc = stored.map_or_else(|| self.dummy.as_str().to_owned(), str::to_owned);
        let password = password.to_owned();
        let current = self.params.clone();
        tokio::task::spawn_blocking(move || {
            let Ok(parsed) = PasswordHash::new(&phc) else {
                // An unreadable stored hash never verifies; burn the same time anyway.
                let salt = SaltString::generate(&mut OsRng);
                let _ = argon.hash_password(password.as_bytes(), &salt);
                return Ok(Verified::No);
            };
            // A stored hash with other parameters is verified with its own parameters.
            if argon.verify_password(password.as_bytes(), &parsed).is_err() || !real {
                return Ok(Verified::No);
            }
            let same = parsed.algorithm.as_str() == "argon2id"
                && parsed.version == Some(0x13)
                && Params::try_from(&parsed).is_ok_and(|p| {
                    p.m_cost() == current.m_cost() && p.t_cost() == current.t_cost() && p.p_cost() == current.p_cost()
                });
            if same {
                return Ok(Verified::Yes(None));
            }
            let salt = SaltString::generate(&mut OsRng);
            argon.hash_password(password.as_bytes(), &salt).map(|h| Verified::Yes(Some(h.to_string())))
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
    }
}

/// Checks a new password against the policy: 8 characters or more, at most 1024 bytes,
/// not the email address, not one of the most common passwords.
pub fn check_policy(password: &str, email: &str) -> Result<(), ApiError> {
    let weak = |d: &str| ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "weak_password", d);
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(weak("the password must have at least 8 characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(weak("the password may have at most 1024 bytes"));
    }
    let lower = password.to_lowercase();
    if lower == email || lower == email.split('@').next().unwrap_or("") {
        return Err(weak("the password may not be the email address"));
    }
    const COMMON: [&str; 16] = [
        "password",
        "password1",
        "12345678",
        "123456789",
        "1234567890",
        "qwertyuiop",
        "iloveyou",
        "11111111",
        "00000000",
        "abcdefgh",
        "abc12345",
        "qwerty123",
        "password123",
        "letmein1",
        "welcome1",
        "sunshine",
    ];
    if COMMON.contains(&lower.as_str()) || lower.chars().all(|c| lower.starts_with(c)) {
        return Err(weak("the password is too common"));
    }
    Ok(())
}

/// Normalises an email address (trimmed, lower case) and checks its shape.
pub fn normalise_email(raw: &str) -> Result<String, ApiError> {
    let bad = |d: &str| ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, "invalid_email", d);
    let email = raw.trim().to_lowercase();
    if email.len() > 254 {
        return Err(bad("the email address is longer than 254 bytes"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(bad("the email address needs one @"));
    };
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return Err(bad("the email address is not of the form local@domain"));
    }
    let domain_ok = domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-'));
    if !domain_ok {
        return Err(bad("the email address has no valid domain"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control() || "<>()[]\\,;:\"".contains(c)) {
        return Err(bad("the email address has a character that is not allowed"));
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> Hasher {
        Hasher::new(Params::new(64, 1, 1, None).unwrap(), 2).unwrap()
    }

    #[test]
    fn defaults_are_rustcrypto_s() {
        let p = Hasher::default_params();
        assert_eq!((p.m_cost(), p.t_cost(), p.p_cost()), (19456, 2, 1));
    }

    #[tokio::test]
    async fn hash_verify_and_rehash() {
        let h = fast();
        let phc = h.hash("correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert_eq!(h.verify("correct horse battery", Some(&phc)).await.unwrap(), Verified::Yes(None));
        assert_eq!(h.verify("wrong", Some(&phc)).await.unwrap(), Verified::No);
        assert_eq!(h.verify("anything", None).await.unwrap(), Verified::No);
        assert_eq!(h.verify("anything", Some("not a phc")).await.unwrap(), Verified::No);
        // Other parameters: still verifies, and a rehash with the current ones comes back.
        let stronger = Hasher::new(Params::new(128, 2, 1, None).unwrap(), 1).unwrap();
        match stronger.verify("correct horse battery", Some(&phc)).await.unwrap() {
            Verified::Yes(Some(new)) => assert!(new.starts_with("$argon2id$v=19$m=128,t=2,p=1$"), "{new}"),
            other => panic!("expected a rehash, got {other:?}"),
        }
    }

    #[test]
    fn policy() {
        assert_eq!(check_policy("short", "a@b.test").unwrap_err().kind, "weak_password");
        assert!(check_policy("password", "a@b.test").is_err());
        assert!(check_policy("aaaaaaaaaa", "a@b.test").is_err());
        assert!(check_policy("alice@example.test", "alice@example.test").is_err());
        assert!(check_policy(&"x".repeat(2000), "a@b.test").is_err());
        assert!(check_policy("correct horse battery", "a@b.test").is_ok());
    }

    #[test]
    fn emails() {
        assert_eq!(normalise_email("  Alice@Example.TEST ").unwrap(), "alice@example.test");
        for bad in ["", "alice", "a@b", "@b.test", "a@@b.test", "a b@c.test", "a@-b.test", "a@b..test"] {
            assert_eq!(normalise_email(bad).unwrap_err().kind, "invalid_email", "{bad}");
        }
    }
}
