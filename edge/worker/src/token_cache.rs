//! A bounded cache of tokens whose signature and claims were already verified.
//!
//! Keyed by the SHA-256 of the token (a collision would let one token borrow another's
//! verification, so the hash must be collision-resistant; 32 bytes a key). Each entry
//! holds the verified claims, the precomputed `X-Tollgate-*` header values and the
//! fingerprint of the key that verified it.
//!
//! # Bounds and costs
//! At most `capacity` entries. Inserting into a full cache first drops entries whose
//! `exp` has passed, scanning at most 32 of the oldest; if none could go, it evicts the
//! oldest entry (FIFO, not LRU: a hit costs no bookkeeping, and a hot token evicted by a
//! burst of new ones costs one signature check to come back). A hit is one SHA-256 of
//! the token plus one hash-map lookup; the caller still re-checks time and the denylist
//! on every hit. Memory is about `capacity × (claims size + 150 bytes)`.
//! [`TokenCache::retain_keys`] drops every entry verified by a key that left the JWKS.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use sha2::{Digest, Sha256};
use tollgate_core::Claims;

/// SHA-256 of a token.
pub type TokenHash = [u8; 32];

/// Fingerprint of a verifying key (see `keys::key_fingerprint`).
pub type KeyFingerprint = [u8; 32];

/// A verified token, ready to be forwarded.
#[derive(Debug)]
pub struct Verified {
    /// The verified claims.
    pub claims: Claims,
    /// `exp` in seconds (for eviction), if present.
    pub exp: Option<f64>,
    /// The key that verified the signature.
    pub key: KeyFingerprint,
    /// `X-Tollgate-Claims`: base64url of the claims' JSON.
    pub claims_header: String,
}

/// The hash a token is cached under.
pub fn hash_token(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// The bounded cache. See the module docs for its bounds.
#[derive(Debug)]
pub struct TokenCache {
    capacity: usize,
    map: HashMap<TokenHash, Rc<Verified>>,
    order: VecDeque<TokenHash>,
}

impl TokenCache {
    /// An empty cache holding at most `capacity` tokens (0: caches nothing).
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache { capacity, map: HashMap::new(), order: VecDeque::new() }
    }

    /// The cached verification of a token, if any.
    pub fn get(&self, hash: &TokenHash) -> Option<Rc<Verified>> {
        self.map.get(hash).cloned()
    }

    /// Caches a verification made at time `now` (seconds).
    pub fn insert(&mut self, hash: TokenHash, v: Rc<Verified>, now: f64) {
        if self.capacity == 0 {
            return;
        }
        if let Some(slot) = self.map.get_mut(&hash) {
            *slot = v;
            return;
        }
        if self.map.len() >= self.capacity {
            self.drop_expired(now, 32);
        }
        while self.map.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.map.insert(hash, v);
        self.order.push_back(hash);
    }

    /// Removes one token (for example once it turned out revoked or expired).
    pub fn remove(&mut self, hash: &TokenHash) {
        if self.map.remove(hash).is_some() {
            self.order.retain(|h| h != hash);
        }
    }

    /// Keeps only entries verified by a key for which `keep` is true.
    pub fn retain_keys(&mut self, keep: impl Fn(&KeyFingerprint) -> bool) -> usize {
        let before = self.map.len();
        self.map.retain(|_, v| keep(&v.key));
        let map = &self.map;
        self.order.retain(|h| map.contains_key(h));
        before - self.map.len()
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn drop_expired(&mut self, now: f64, scan: usize) {
        let mut kept = VecDeque::new();
        for _ in 0..scan.min(self.order.len()) {
            let Some(h) = self.order.pop_front() else { break };
            let expired = self.map.get(&h).is_none_or(|v| v.exp.is_some_and(|e| e <= now));
            if expired {
                self.map.remove(&h);
            } else {
                kept.push_back(h);
            }
        }
        while let Some(h) = kept.pop_back() {
            self.order.push_front(h);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(key: u8, exp: Option<f64>) -> Rc<Verified> {
        Rc::new(Verified {
            claims: crate::testkeys::claims_of("{}"),
            exp,
            key: [key; 32],
            claims_header: String::new(),
        })
    }

    fn h(i: u32) -> TokenHash {
        hash_token(&i.to_string())
    }

    #[test]
    fn bounded_fifo_with_expired_first() {
        let mut c = TokenCache::new(3);
        c.insert(h(1), entry(1, Some(100.0)), 0.0);
        c.insert(h(2), entry(1, Some(10.0)), 0.0);
        c.insert(h(3), entry(1, None), 0.0);
        assert_eq!(c.len(), 3);
        // Full at t=50: token 2 has expired and goes first, the oldest (1) stays.
        c.insert(h(4), entry(1, None), 50.0);
        assert!(c.get(&h(2)).is_none() && c.get(&h(1)).is_some());
        // Nothing expired: the oldest goes.
        c.insert(h(5), entry(1, None), 50.0);
        assert!(c.get(&h(1)).is_none());
        assert_eq!(c.len(), 3);
        assert_eq!(c.order.len(), 3);
    }

    #[test]
    fn reinsert_and_remove() {
        let mut c = TokenCache::new(2);
        c.insert(h(1), entry(1, None), 0.0);
        c.insert(h(1), entry(2, None), 0.0);
        assert_eq!((c.len(), c.order.len()), (1, 1));
        assert_eq!(c.get(&h(1)).unwrap().key, [2; 32]);
        c.remove(&h(1));
        assert!(c.is_empty() && c.order.is_empty());
        let mut off = TokenCache::new(0);
        off.insert(h(1), entry(1, None), 0.0);
        assert!(off.is_empty());
    }

    #[test]
    fn key_change_empties_affected_entries() {
        let mut c = TokenCache::new(10);
        for i in 0..6 {
            c.insert(h(i), entry((i % 2) as u8, None), 0.0);
        }
        assert_eq!(c.retain_keys(|k| k[0] == 0), 3);
        assert_eq!((c.len(), c.order.len()), (3, 3));
        assert!(c.get(&h(1)).is_none() && c.get(&h(2)).is_some());
    }
}
