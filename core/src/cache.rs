//! A bounded cache of verified tokens, shared by the Worker and the npm package.
//!
//! A token whose signature and claims were checked once can skip the signature the next
//! time it is presented. This is the cache that makes that safe and cheap:
//!
//! - **Keyed hash, no token kept.** Entries are found by a 128-bit SipHash-2-4 of the
//!   token under a secret 16-byte key the embedder draws from its platform's random
//!   source ([`TokenCache::set_key`]). Without the key nobody can aim another token at
//!   a cached entry (a blind collision takes about 2^64 tries per entry), and a hit
//!   costs one SipHash pass instead of a SHA-256 (measured as half of a hit's cost in
//!   wasm). Until it has a key the cache holds nothing: Workers refuse random numbers
//!   outside a request, so an embedder built at module scope keys it on first use.
//! - **A hit is not a verdict.** The cache stores what the embedder hands it (the
//!   verified [`Claims`](crate::Claims) and whatever it precomputed from them); the
//!   embedder still checks the clock and the denylist on every hit.
//! - **Bounded, O(1).** At most `capacity` entries. Inserting into a full cache first
//!   drops expired entries among the oldest 32, then evicts in insertion order (FIFO,
//!   not LRU: a hit does no bookkeeping, and a hot token pushed out by a burst of new
//!   ones costs one signature check to come back). [`TokenCache::remove`] is O(1): it
//!   leaves its place in the eviction queue behind, to be skipped later, and the queue
//!   is compacted when it reaches twice the capacity.
//! - **Invalidation.** [`TokenCache::retain`] drops every entry a predicate rejects
//!   (the Worker drops the tokens of keys that left its JWKS); [`TokenCache::clear`]
//!   drops everything.

use alloc::collections::VecDeque;
use core::hash::{BuildHasherDefault, Hash, Hasher};

use hashbrown::HashMap;
use siphasher::sip128::{Hasher128, SipHasher24};

/// Entries scanned for expired ones when an insert finds the cache full.
const EXPIRY_SCAN: usize = 32;

/// The keyed 128-bit hash of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(u64, u64);

impl Hash for Fingerprint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// Fingerprints are uniform already: the table uses their first half as its hash.
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

#[derive(Debug)]
struct Slot<V> {
    value: V,
    /// `exp` in seconds, for dropping expired entries first.
    exp: Option<f64>,
    /// Insertion number; the queue entry carrying the same number is this slot's.
    seq: u64,
}

/// The bounded verified-token cache. See the module docs.
#[derive(Debug)]
pub struct TokenCache<V> {
    capacity: usize,
    key: Option<(u64, u64)>,
    map: HashMap<Fingerprint, Slot<V>, BuildHasherDefault<PrefixHasher>>,
    /// Insertion order, with the entries of removed slots left behind until skipped.
    order: VecDeque<(Fingerprint, u64)>,
    next_seq: u64,
}

impl<V> TokenCache<V> {
    /// An empty, unkeyed cache holding at most `capacity` tokens (0 disables it).
    pub fn new(capacity: usize) -> TokenCache<V> {
        TokenCache { capacity, key: None, map: HashMap::default(), order: VecDeque::new(), next_seq: 0 }
    }

    /// Sets the secret hash key (at least 16 random bytes; the first 16 are used) if
    /// none is set yet, and returns whether the cache is keyed afterwards. A key is never
    /// replaced: that would orphan every entry.
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

    /// The token's fingerprint, or `None` while the cache is disabled.
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

    /// The cached value for a token, if any.
    pub fn get(&self, fp: &Fingerprint) -> Option<&V> {
        self.map.get(fp).map(|s| &s.value)
    }

    /// Caches `value` for a token expiring at `exp` (seconds), at time `now`. Replacing
    /// an entry keeps its place in the eviction order; a full cache drops expired
    /// entries first, then the oldest.
    pub fn insert(&mut self, fp: Fingerprint, value: V, exp: Option<f64>, now: i64) {
        if !self.enabled() {
            return;
        }
        if let Some(slot) = self.map.get_mut(&fp) {
            slot.value = value;
            slot.exp = exp;
            return;
        }
        if self.map.len() >= self.capacity {
            self.drop_expired(now as f64);
        }
        while self.map.len() >= self.capacity {
            let Some((old, seq)) = self.order.pop_front() else { break };
            if self.map.get(&old).is_some_and(|s| s.seq == seq) {
                self.map.remove(&old);
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.map.insert(fp, Slot { value, exp, seq });
        self.order.push_back((fp, seq));
        if self.order.len() >= 2 * self.capacity.max(8) {
            self.compact();
        }
    }

    /// Drops one token (found expired or revoked); returns its value.
    pub fn remove(&mut self, fp: &Fingerprint) -> Option<V> {
        self.map.remove(fp).map(|s| s.value)
    }

    /// Keeps only the entries for which `keep` is true; returns how many were dropped.
    pub fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) -> usize {
        let before = self.map.len();
        self.map.retain(|_, s| keep(&s.value));
        self.compact();
        before - self.map.len()
    }

    /// Drops everything (the key stays).
    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }

    /// Drops expired entries among the oldest [`EXPIRY_SCAN`] of the queue (and the
    /// queue entries left behind by removals among them), keeping the order of the rest.
    fn drop_expired(&mut self, now: f64) {
        let mut i = 0;
        for _ in 0..EXPIRY_SCAN {
            let Some(&(fp, seq)) = self.order.get(i) else { break };
            match self.map.get(&fp) {
                Some(s) if s.seq == seq => {
                    if s.exp.is_some_and(|e| e <= now) {
                        self.map.remove(&fp);
                        self.order.remove(i);
                    } else {
                        i += 1;
                    }
                }
                _ => {
                    self.order.remove(i);
                }
            }
        }
    }

    /// Drops the queue entries left behind by removals.
    fn compact(&mut self) {
        let map = &self.map;
        self.order.retain(|(fp, seq)| map.get(fp).is_some_and(|s| s.seq == *seq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;
    use proptest::prelude::*;

    fn keyed(capacity: usize) -> TokenCache<String> {
        let mut c = TokenCache::new(capacity);
        assert!(c.set_key(&[3; 16]));
        c
    }

    fn fp(c: &TokenCache<String>, token: &str) -> Fingerprint {
        c.fingerprint(token).unwrap()
    }

    #[test]
    fn fingerprints_depend_on_token_and_key() {
        let c = keyed(1);
        assert_eq!(c.fingerprint("a.b.c"), c.fingerprint("a.b.c"));
        assert_ne!(c.fingerprint("a.b.c"), c.fingerprint("a.b.d"));
        let mut other: TokenCache<String> = TokenCache::new(1);
        assert!(other.set_key(&[4; 16]));
        assert_ne!(c.fingerprint("a.b.c"), other.fingerprint("a.b.c"));
        let before = other.fingerprint("x");
        assert!(other.set_key(&[5; 16]), "still keyed");
        assert_eq!(other.fingerprint("x"), before, "the first key stays");
    }

    #[test]
    fn unkeyed_or_zero_capacity_holds_nothing() {
        let mut c: TokenCache<String> = TokenCache::new(4);
        assert_eq!(c.fingerprint("a"), None);
        assert!(!c.set_key(&[1; 15]), "a short key is refused");
        assert!(!c.enabled());
        c.insert(Fingerprint(1, 2), "a".to_string(), None, 0);
        assert!(c.is_empty());
        let mut z: TokenCache<String> = TokenCache::new(0);
        assert!(z.set_key(&[1; 16]));
        assert_eq!(z.fingerprint("a"), None);
        z.insert(Fingerprint(1, 2), "a".to_string(), None, 0);
        assert!(z.is_empty() && !z.enabled());
    }

    #[test]
    fn bounded_fifo_and_replacement_keeps_its_place() {
        let mut c = keyed(2);
        let (a, b, d) = (fp(&c, "a"), fp(&c, "b"), fp(&c, "d"));
        c.insert(a, "a".to_string(), None, 0);
        c.insert(b, "b".to_string(), None, 0);
        c.insert(a, "a2".to_string(), None, 0);
        assert_eq!((c.len(), c.get(&a).map(String::as_str)), (2, Some("a2")));
        c.insert(d, "d".to_string(), None, 0);
        assert!(c.get(&a).is_none(), "the oldest insertion goes");
        assert!(c.get(&b).is_some() && c.get(&d).is_some());
    }

    #[test]
    fn expired_entries_go_before_the_oldest() {
        let mut c = keyed(3);
        let f: Vec<Fingerprint> = (0..5).map(|i| fp(&c, &i.to_string())).collect();
        c.insert(f[0], "0".to_string(), Some(100.0), 0);
        c.insert(f[1], "1".to_string(), Some(10.0), 0);
        c.insert(f[2], "2".to_string(), None, 0);
        // Full at t=50: 1 has expired and goes, the oldest (0) stays.
        c.insert(f[3], "3".to_string(), None, 50);
        assert!(c.get(&f[1]).is_none() && c.get(&f[0]).is_some());
        // Nothing expired: the oldest goes.
        c.insert(f[4], "4".to_string(), None, 50);
        assert!(c.get(&f[0]).is_none());
        assert_eq!(c.len(), 3);
        // exp == now counts as expired (the core rejects it too).
        let g = fp(&c, "g");
        let mut e = keyed(1);
        e.insert(f[0], "0".to_string(), Some(60.0), 0);
        e.insert(g, "g".to_string(), None, 60);
        assert_eq!(e.get(&g).map(String::as_str), Some("g"));
        assert!(e.get(&f[0]).is_none());
    }

    #[test]
    fn removal_is_lazy_but_frees_its_slot() {
        let mut c = keyed(2);
        let (a, b, d) = (fp(&c, "a"), fp(&c, "b"), fp(&c, "d"));
        c.insert(a, "a".to_string(), None, 0);
        c.insert(b, "b".to_string(), None, 0);
        assert_eq!(c.remove(&a).as_deref(), Some("a"));
        c.insert(d, "d".to_string(), None, 0);
        assert!(c.get(&b).is_some() && c.get(&d).is_some(), "removing a freed a slot");
        // Re-inserting a removed token puts it at the back, not at its old place.
        c.remove(&b);
        c.insert(a, "a".to_string(), None, 0);
        c.insert(b, "b".to_string(), None, 0);
        assert!(c.get(&d).is_none() && c.get(&a).is_some() && c.get(&b).is_some());
    }

    #[test]
    fn eviction_skips_what_removals_left_behind() {
        // More removals at the front of the queue than one expiry scan clears: eviction
        // itself must skip them, not evict the re-inserted tokens they once stood for.
        let mut c = keyed(64);
        let f: Vec<Fingerprint> = (0..65).map(|i| fp(&c, &i.to_string())).collect();
        for (i, x) in f.iter().take(64).enumerate() {
            c.insert(*x, i.to_string(), None, 0);
        }
        for x in &f[..40] {
            c.remove(x);
        }
        for (i, x) in f.iter().take(40).enumerate() {
            c.insert(*x, i.to_string(), None, 0);
        }
        c.insert(f[64], "64".to_string(), None, 0);
        assert_eq!(c.len(), 64);
        assert!(c.get(&f[40]).is_none(), "the oldest live insertion goes");
        assert!(f[..40].iter().all(|x| c.get(x).is_some()), "re-inserted tokens stay");
    }

    #[test]
    fn retain_and_clear() {
        let mut c = keyed(10);
        for i in 0..6 {
            c.insert(fp(&c, &i.to_string()), i.to_string(), None, 0);
        }
        assert_eq!(c.retain(|v| v.parse::<u32>().unwrap() % 2 == 0), 3);
        assert_eq!((c.len(), c.order.len()), (3, 3));
        assert!(c.get(&fp(&c, "1")).is_none() && c.get(&fp(&c, "2")).is_some());
        c.clear();
        assert!(c.is_empty() && c.enabled());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8),
        Remove(u8),
        RetainEven,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..24).prop_map(Op::Insert),
            3 => (0u8..24).prop_map(Op::Remove),
            1 => Just(Op::RetainEven),
        ]
    }

    proptest! {
        /// Against a model (a list in insertion order, evicting its front): same
        /// contents after every operation, and the queue stays within twice the capacity.
        #[test]
        fn behaves_like_a_fifo_model(capacity in 1usize..8, ops in proptest::collection::vec(op(), 0..200)) {
            let mut c = keyed(capacity);
            let mut model: Vec<(u8, u32)> = Vec::new();
            for (n, op) in ops.into_iter().enumerate() {
                let n = n as u32;
                match op {
                    Op::Insert(t) => {
                        c.insert(fp(&c, &t.to_string()), n.to_string(), None, 0);
                        if let Some(e) = model.iter_mut().find(|e| e.0 == t) {
                            e.1 = n;
                        } else {
                            if model.len() == capacity {
                                model.remove(0);
                            }
                            model.push((t, n));
                        }
                    }
                    Op::Remove(t) => {
                        let got = c.remove(&fp(&c, &t.to_string()));
                        let want = model.iter().position(|e| e.0 == t).map(|i| model.remove(i).1.to_string());
                        prop_assert_eq!(got, want);
                    }
                    Op::RetainEven => {
                        c.retain(|v| v.parse::<u32>().unwrap() % 2 == 0);
                        model.retain(|e| e.1 % 2 == 0);
                    }
                }
                prop_assert_eq!(c.len(), model.len());
                prop_assert!(c.order.len() <= 2 * capacity.max(8));
                for t in 0u8..24 {
                    let want = model.iter().find(|e| e.0 == t).map(|e| e.1.to_string());
                    prop_assert_eq!(c.get(&fp(&c, &t.to_string())).cloned(), want);
                }
            }
        }
    }
}
