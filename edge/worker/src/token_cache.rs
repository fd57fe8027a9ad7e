//! The verified-token cache: the core's [`TokenCache`] of [`Verified`] tokens, keyed
//! with 16 random bytes per isolate, and kept in step with the key set it was filled
//! from: when the key store's set changes, every entry whose key is gone or changed is
//! dropped before the cache answers again.
//!
//! It knows the keys only by their fingerprints and the set's generation; the request
//! path hands it the current [`KeySet`].

use std::rc::Rc;

use tollgate_core::cache::Fingerprint;
use tollgate_core::TokenCache;

use crate::keys::KeySet;
use crate::platform::log;
use crate::verify::Verified;

/// Verified tokens, by fingerprint.
#[derive(Debug)]
pub struct VerifiedTokens {
    cache: TokenCache<Rc<Verified>>,
    /// The generation of the key set the entries were checked against (0: none yet).
    key_generation: u64,
}

impl VerifiedTokens {
    /// A cache of `capacity` entries keyed with `key`; without a key it holds nothing
    /// (every token is verified in full).
    pub fn new(capacity: usize, key: Option<[u8; 16]>) -> VerifiedTokens {
        let mut cache = TokenCache::new(capacity);
        if let Some(key) = key {
            cache.set_key(&key);
        }
        VerifiedTokens { cache, key_generation: 0 }
    }

    /// The key set generation the entries were last checked against.
    pub fn key_generation(&self) -> u64 {
        self.key_generation
    }

    /// Follows a change of the key set: drops every entry whose key `set` no longer
    /// has. Returns how many went (0 when the set is the one followed already).
    pub fn follow(&mut self, set: &KeySet) -> usize {
        if set.generation() == self.key_generation {
            return 0;
        }
        let first = self.key_generation == 0;
        self.key_generation = set.generation();
        let keep = set.fingerprints();
        let dropped = self.cache.retain(|v| keep.contains(&v.key));
        if !first {
            log(&format!("tollgate: key set changed ({} keys); {dropped} cached tokens dropped", keep.len()));
        }
        dropped
    }

    /// The token's fingerprint (`None` while the cache is off).
    pub fn fingerprint(&self, token: &str) -> Option<Fingerprint> {
        self.cache.fingerprint(token)
    }

    /// The verification cached under `fp`.
    pub fn get(&self, fp: &Fingerprint) -> Option<Rc<Verified>> {
        self.cache.get(fp).cloned()
    }

    /// Caches a verification until `exp` (seconds), as of `now`.
    pub fn insert(&mut self, fp: Fingerprint, verified: Rc<Verified>, exp: Option<f64>, now: i64) {
        self.cache.insert(fp, verified, exp, now);
    }

    /// Drops the entry under `fp`.
    pub fn remove(&mut self, fp: &Fingerprint) {
        self.cache.remove(fp);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}
