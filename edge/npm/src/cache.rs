//! The verified-token cache: tokens whose signature and claims were already checked,
//! so a token presented again skips the signature.
//!
//! - Keyed by a 128-bit SipHash-2-4 of the token under a secret random key (drawn by the
//!   JS side with `crypto.getRandomValues` and never exposed): the token itself is not
//!   kept, and without the key nobody can aim a different token at a cached entry (a
//!   blind collision takes about 2^64 tries). SipHash rather than SHA-256 because a hit
//!   must be cheap: SHA-256 was half of a hit's cost in wasm (measured in the README).
//!   Until a key is set ([`VerifiedCache::set_key`]) the cache holds nothing: Workers
//!   refuse random numbers outside a request, so a verifier made at module scope is
//!   keyed on its first use.
//! - A hit is not a verdict: the caller re-checks `exp`/`nbf` against its clock and the
//!   denylist on every hit ([`tollgate_core::Verifier::recheck`]); an entry found
//!   expired is dropped. Issuer, audience and required claims cannot change for the
//!   same token under the same verifier, and a verifier's JWKS and policy never change
//!   (a new JWKS means a new verifier with an empty cache).
//! - Bounded: at most `capacity` entries; when full, the oldest insertion is evicted
//!   (FIFO, like rustls's `limited_cache`). Each entry holds the parsed claims and their
//!   JSON text, roughly three times the payload's size: about 1 KB for a typical access
//!   token, at most ~25 KB for a token at the default 8 KB size cap. Lookups and inserts
//!   are O(1); removing an expired entry is O(capacity) (it is also taken out of the
//!   eviction queue), which happens at most once per cached token.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};

use siphasher::sip128::{Hasher128, SipHasher24};
use tollgate_core::Claims;

/// Default number of cached tokens per verifier.
pub const DEFAULT_CAPACITY: usize = 1024;

/// The keyed 128-bit hash of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(u64, u64);

impl Hash for Fingerprint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// Fingerprints are uniform already: the table uses their first half as the hash.
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// One cached verification.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The verified claims, for re-checking time and the denylist.
    pub claims: Claims,
    /// The same claims as JSON text, handed back to JS on a hit.
    pub json: String,
}

/// A bounded map from token fingerprint to verified claims. See the module docs.
#[derive(Debug)]
pub struct VerifiedCache {
    capacity: usize,
    key: Option<(u64, u64)>,
    map: HashMap<Fingerprint, Entry, BuildHasherDefault<PrefixHasher>>,
    order: VecDeque<Fingerprint>,
}

impl VerifiedCache {
    /// An empty cache holding at most `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> VerifiedCache {
        VerifiedCache { capacity, key: None, map: HashMap::default(), order: VecDeque::new() }
    }

    /// Sets the secret hash key (16 random bytes) if none is set yet; returns whether the
    /// cache is keyed afterwards. Shorter input is refused.
    pub fn set_key(&mut self, key: &[u8]) -> bool {
        if self.key.is_none() && key.len() >= 16 {
            let mut k0 = [0u8; 8];
            let mut k1 = [0u8; 8];
            k0.copy_from_slice(&key[..8]);
            k1.copy_from_slice(&key[8..16]);
            self.key = Some((u64::from_le_bytes(k0), u64::from_le_bytes(k1)));
        }
        self.key.is_some()
    }

    /// Whether the cache can hold anything: a non-zero capacity and a key.
    pub fn enabled(&self) -> bool {
        self.capacity > 0 && self.key.is_some()
    }

    /// The token's fingerprint, or `None` when the cache is disabled.
    pub fn fingerprint(&self, token: &str) -> Option<Fingerprint> {
        let (k0, k1) = self.key.filter(|_| self.capacity > 0)?;
        let mut h = SipHasher24::new_with_keys(k0, k1);
        h.write(token.as_bytes());
        let out = h.finish128();
        Some(Fingerprint(out.h1, out.h2))
    }

    /// The most tokens it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Tokens held now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The cached verification of a token, if any.
    pub fn get(&self, fp: &Fingerprint) -> Option<&Entry> {
        self.map.get(fp)
    }

    /// Caches a verification, evicting the oldest when full.
    pub fn insert(&mut self, fp: Fingerprint, entry: Entry) {
        if !self.enabled() {
            return;
        }
        if let Some(slot) = self.map.get_mut(&fp) {
            *slot = entry;
            return;
        }
        while self.map.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.map.insert(fp, entry);
        self.order.push_back(fp);
    }

    /// Drops one token (found expired).
    pub fn remove(&mut self, fp: &Fingerprint) {
        if self.map.remove(fp).is_some() {
            self.order.retain(|x| x != fp);
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::{Jwks, Policy, Verifier};

    /// Claims are only made by verifying, so the tests verify a real token: the RFC 7515
    /// appendix A.3 ES256 example, with its key.
    fn claims() -> Claims {
        let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;
        let token = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
        let v = Verifier::new(Jwks::from_json(jwks.as_bytes()).unwrap(), Policy::default());
        v.verify(token, 1_300_000_000, None).unwrap().claims
    }

    fn entry(tag: &str) -> Entry {
        Entry { claims: claims(), json: tag.to_string() }
    }

    fn keyed(capacity: usize) -> VerifiedCache {
        let mut c = VerifiedCache::new(capacity);
        assert!(c.set_key(&[3; 16]));
        c
    }

    #[test]
    fn fingerprints_depend_on_token_and_key() {
        let c = keyed(1);
        assert_eq!(c.fingerprint("a.b.c"), c.fingerprint("a.b.c"));
        assert_ne!(c.fingerprint("a.b.c"), c.fingerprint("a.b.d"));
        let mut other = VerifiedCache::new(1);
        other.set_key(&[4; 16]);
        assert_ne!(c.fingerprint("a.b.c"), other.fingerprint("a.b.c"));
        // The first key stays: re-keying would orphan entries.
        assert!(other.set_key(&[5; 16]));
        assert_eq!(other.fingerprint("x"), {
            let mut o = VerifiedCache::new(1);
            o.set_key(&[4; 16]);
            o.fingerprint("x")
        });
    }

    #[test]
    fn unkeyed_or_zero_capacity_holds_nothing() {
        let mut c = VerifiedCache::new(4);
        assert_eq!(c.fingerprint("a"), None);
        assert!(!c.set_key(&[1; 15]), "a short key is refused");
        assert!(!c.enabled());
        let mut z = VerifiedCache::new(0);
        z.set_key(&[1; 16]);
        assert_eq!(z.fingerprint("a"), None);
        z.insert(Fingerprint(1, 2), entry("a"));
        assert!(z.is_empty() && !z.enabled());
    }

    #[test]
    fn bounded_fifo_eviction() {
        let mut c = keyed(2);
        let fp = |s: &str| c.fingerprint(s).unwrap();
        let (a, b, d) = (fp("a"), fp("b"), fp("d"));
        c.insert(a, entry("a"));
        c.insert(b, entry("b"));
        c.insert(a, entry("a2"));
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&a).unwrap().json, "a2");
        c.insert(d, entry("d"));
        assert_eq!(c.len(), 2);
        assert!(c.get(&a).is_none(), "oldest insertion evicted");
        assert!(c.get(&b).is_some() && c.get(&d).is_some());
    }

    #[test]
    fn remove_keeps_the_queue_in_step() {
        let mut c = keyed(2);
        let fp = |s: &str| c.fingerprint(s).unwrap();
        let (a, b, d) = (fp("a"), fp("b"), fp("d"));
        c.insert(a, entry("a"));
        c.insert(b, entry("b"));
        c.remove(&a);
        c.insert(d, entry("d"));
        // b and d both fit: removing a freed its slot, nothing else was evicted.
        assert!(c.get(&b).is_some() && c.get(&d).is_some());
        assert_eq!(c.order.len(), c.map.len());
    }
}
