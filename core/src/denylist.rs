//! The denylist: three kinds of entry, each able to prune itself.
//!
//! - `jti`: one token.
//! - `sid`: every token of a session / refresh family (logout, reuse detection).
//! - subject cutoff: every token of `sub` issued before `before` (or without `iat`).
//!
//! Each entry may be scoped to an issuer (it then covers only tokens with that `iss`)
//! and carries `exp`, the time after which no token it covers can still be valid, so
//! [`Denylist::prune`] may drop it.
//!
//! # Representation and bounds
//!
//! Identifiers are not stored: each entry is a 64-bit keyed SipHash-1-3 fingerprint of
//! `(kind, issuer scope, identifier)` plus a 32-bit expiry, in a SwissTable
//! (`hashbrown`): 12 bytes a slot plus one control byte, so 13–30 bytes an entry
//! depending on where the table sits between growths, and O(1) lookups. A lookup
//! hashes at most six fingerprints (three identifiers, scoped and unscoped) and skips
//! empty tables. The price of fingerprints is a false positive — a valid token
//! rejected as `revoked` — with probability about `entries / 2^64` per identifier
//! (5e-14 at a million entries): the failure is closed, never open. The SipHash key is
//! a parameter (the revocation service draws it at random for its log and ships it in
//! snapshots), so fingerprints cannot be precomputed without it. Times are stored as
//! `u32` seconds, saturating: an expiry past 2106 never prunes.

use alloc::string::String;
use alloc::vec::Vec;
use core::hash::{BuildHasherDefault, Hash, Hasher};

use hashbrown::HashMap;
use siphasher::sip::SipHasher13;

use crate::claims::Claims;
use crate::error::DenylistError;

/// The key of the fingerprint hash.
pub type HashKey = [u8; 16];

/// The kind of a denylist entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// One token, by `jti`.
    Jti,
    /// A session / refresh family, by `sid`.
    Sid,
    /// Every token of a subject issued before `before` (seconds since the epoch).
    Subject {
        /// Tokens with `iat < before`, or without `iat`, are revoked.
        before: u64,
    },
}

impl EntryKind {
    pub(crate) const fn tag(self) -> u8 {
        match self {
            EntryKind::Jti => 1,
            EntryKind::Sid => 2,
            EntryKind::Subject { .. } => 3,
        }
    }
}

/// A denylist entry with its identifier, as posted to the revocation service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// What the identifier names.
    pub kind: EntryKind,
    /// The issuer the entry is scoped to; `None` covers every issuer.
    pub iss: Option<String>,
    /// The `jti`, `sid` or `sub`.
    pub id: String,
    /// After this time (seconds since the epoch) the entry may be dropped.
    pub exp: u64,
}

/// A 64-bit fingerprint, stored as two `u32` so a slot packs into 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Fp(pub(crate) [u32; 2]);

impl Fp {
    pub(crate) fn from_u64(v: u64) -> Fp {
        Fp([v as u32, (v >> 32) as u32])
    }
    pub(crate) fn as_u64(self) -> u64 {
        u64::from(self.0[0]) | (u64::from(self.0[1]) << 32)
    }
}

impl Hash for Fp {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.as_u64());
    }
}

/// Fingerprints are already uniform: the table hashes them by identity.
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

pub(crate) type FpMap<V> = HashMap<Fp, V, BuildHasherDefault<IdentityHasher>>;

/// A subject cutoff slot: `before` and `exp`, both saturating `u32` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cutoff {
    pub(crate) before: u32,
    pub(crate) exp: u32,
}

/// The denylist. See the module docs for its representation and bounds.
#[derive(Clone)]
pub struct Denylist {
    pub(crate) key: HashKey,
    pub(crate) seq: u64,
    pub(crate) jti: FpMap<u32>,
    pub(crate) sid: FpMap<u32>,
    pub(crate) sub: FpMap<Cutoff>,
}

impl core::fmt::Debug for Denylist {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Denylist")
            .field("seq", &self.seq)
            .field("jti", &self.jti.len())
            .field("sid", &self.sid.len())
            .field("sub", &self.sub.len())
            .finish()
    }
}

/// The key used by [`Denylist::default`]: fine for a list that never meets a
/// snapshot; replicas adopt the service's key from its first snapshot.
pub const LOCAL_HASH_KEY: HashKey = *b"tollgate-local-k";

impl Default for Denylist {
    fn default() -> Self {
        Denylist::new(LOCAL_HASH_KEY)
    }
}

pub(crate) fn sat32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl Denylist {
    /// An empty list at sequence 0 whose fingerprints use `key`.
    pub fn new(key: HashKey) -> Denylist {
        Denylist { key, seq: 0, jti: FpMap::default(), sid: FpMap::default(), sub: FpMap::default() }
    }

    /// The fingerprint key.
    pub fn hash_key(&self) -> &HashKey {
        &self.key
    }

    /// The sequence number of the last replicated event applied (0 for a local list).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Sets the sequence number (the revocation service, after folding an event).
    pub fn set_seq(&mut self, seq: u64) {
        self.seq = seq;
    }

    /// Number of entries of all kinds.
    pub fn len(&self) -> usize {
        self.jti.len() + self.sid.len() + self.sub.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries per kind: `(jti, sid, subject)`.
    pub fn counts(&self) -> (usize, usize, usize) {
        (self.jti.len(), self.sid.len(), self.sub.len())
    }

    pub(crate) fn fingerprint(&self, tag: u8, iss: Option<&str>, id: &str) -> Fp {
        let mut h = SipHasher13::new_with_key(&self.key);
        match iss {
            Some(i) => {
                h.write(&[tag, 1]);
                h.write(&(i.len() as u64).to_le_bytes());
                h.write(i.as_bytes());
            }
            None => h.write(&[tag, 0]),
        }
        h.write(id.as_bytes());
        Fp::from_u64(h.finish())
    }

    /// Adds an entry. Adding an entry that exists keeps the later expiry (and, for a
    /// subject, the later cutoff): the fold is commutative, so replicas converge
    /// whatever order they see events in.
    pub fn insert(&mut self, kind: EntryKind, iss: Option<&str>, id: &str, exp: u64) {
        let fp = self.fingerprint(kind.tag(), iss, id);
        let exp = sat32(exp);
        match kind {
            EntryKind::Jti => merge_exp(&mut self.jti, fp, exp),
            EntryKind::Sid => merge_exp(&mut self.sid, fp, exp),
            EntryKind::Subject { before } => {
                let c = Cutoff { before: sat32(before), exp };
                self.sub
                    .entry(fp)
                    .and_modify(|o| {
                        o.before = o.before.max(c.before);
                        o.exp = o.exp.max(c.exp);
                    })
                    .or_insert(c);
            }
        }
    }

    /// Adds an [`Entry`].
    pub fn insert_entry(&mut self, e: &Entry) {
        self.insert(e.kind, e.iss.as_deref(), &e.id, e.exp);
    }

    /// Drops every entry whose `exp` is before `cutoff`; returns how many. Replicas
    /// that verify with a leeway should pass `now - leeway`.
    pub fn prune(&mut self, cutoff: u64) -> usize {
        let before = self.len();
        let cutoff = sat32(cutoff);
        self.jti.retain(|_, exp| *exp >= cutoff);
        self.sid.retain(|_, exp| *exp >= cutoff);
        self.sub.retain(|_, c| c.exp >= cutoff);
        before - self.len()
    }

    /// Whether a `jti` is listed (for `iss`, or unscoped).
    pub fn contains_jti(&self, iss: Option<&str>, jti: &str) -> bool {
        self.lookup(&self.jti, EntryKind::Jti.tag(), iss, jti).is_some()
    }

    /// Whether a `sid` is listed (for `iss`, or unscoped).
    pub fn contains_sid(&self, iss: Option<&str>, sid: &str) -> bool {
        self.lookup(&self.sid, EntryKind::Sid.tag(), iss, sid).is_some()
    }

    /// The latest subject cutoff for `sub` (for `iss`, or unscoped).
    pub fn subject_cutoff(&self, iss: Option<&str>, sub: &str) -> Option<u64> {
        self.lookup(&self.sub, 3, iss, sub).map(|c| u64::from(c.before))
    }

    /// Whether a token with these claims is revoked.
    pub fn is_revoked(
        &self,
        iss: Option<&str>,
        jti: Option<&str>,
        sid: Option<&str>,
        sub: Option<&str>,
        iat: Option<f64>,
    ) -> bool {
        // Every fingerprint first, then every probe: the probes are independent loads, so
        // in a table larger than the cache their misses overlap instead of each waiting
        // behind the next identifier's hashing. A token that is not revoked (the common
        // case) needs every probe anyway.
        let jti = self.keys(&self.jti, EntryKind::Jti.tag(), iss, jti);
        let sid = self.keys(&self.sid, EntryKind::Sid.tag(), iss, sid);
        let sub = self.keys(&self.sub, 3, iss, sub);
        if probe(&self.jti, jti).is_some() || probe(&self.sid, sid).is_some() {
            return true;
        }
        match probe(&self.sub, sub) {
            Some(c) => iat.is_none_or(|iat| iat < c.before as f64),
            None => false,
        }
    }

    /// Checks verified claims against the list.
    pub fn check(&self, claims: &Claims) -> Result<(), DenylistError> {
        if self.is_empty() {
            return Ok(());
        }
        if self.is_revoked(claims.iss(), claims.jti(), claims.sid(), claims.sub(), claims.iat()) {
            Err(DenylistError::Revoked)
        } else {
            Ok(())
        }
    }

    fn lookup<V: Copy + MaxWith>(&self, map: &FpMap<V>, tag: u8, iss: Option<&str>, id: &str) -> Option<V> {
        probe(map, self.keys(map, tag, iss, Some(id)))
    }

    /// The fingerprints under which `id` may be listed in `map`: unscoped, and scoped
    /// to `iss`. None when there is no identifier or the map is empty.
    fn keys<V>(&self, map: &FpMap<V>, tag: u8, iss: Option<&str>, id: Option<&str>) -> [Option<Fp>; 2] {
        match id {
            Some(id) if !map.is_empty() => {
                [Some(self.fingerprint(tag, None, id)), iss.map(|i| self.fingerprint(tag, Some(i), id))]
            }
            _ => [None, None],
        }
    }

    /// A JSON view for debugging: sequence, key id, and every entry's fingerprint
    /// (hex), kind and times. Identifiers are not stored, so they cannot be shown.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let hex = |fp: &Fp| alloc::format!("{:016x}", fp.as_u64());
        let mut jti: Vec<_> = self.jti.iter().map(|(f, e)| (hex(f), *e)).collect();
        let mut sid: Vec<_> = self.sid.iter().map(|(f, e)| (hex(f), *e)).collect();
        let mut sub: Vec<_> = self.sub.iter().map(|(f, c)| (hex(f), *c)).collect();
        jti.sort();
        sid.sort();
        sub.sort_by(|a, b| a.0.cmp(&b.0));
        json!({
            "seq": self.seq,
            "entries": self.len(),
            "jti": jti.into_iter().map(|(f, e)| json!({"fp": f, "exp": e})).collect::<Vec<_>>(),
            "sid": sid.into_iter().map(|(f, e)| json!({"fp": f, "exp": e})).collect::<Vec<_>>(),
            "sub": sub.into_iter().map(|(f, c)| json!({"fp": f, "before": c.before, "exp": c.exp})).collect::<Vec<_>>(),
        })
    }

    /// Whether two lists hold the same entries (sequence and key included).
    pub fn same_entries(&self, other: &Denylist) -> bool {
        self.key == other.key
            && self.seq == other.seq
            && self.jti == other.jti
            && self.sid == other.sid
            && self.sub == other.sub
    }
}

trait MaxWith {
    fn max_with(self, other: Self) -> Self;
}

impl MaxWith for u32 {
    fn max_with(self, other: u32) -> u32 {
        self.max(other)
    }
}

impl MaxWith for Cutoff {
    fn max_with(self, other: Cutoff) -> Cutoff {
        Cutoff { before: self.before.max(other.before), exp: self.exp.max(other.exp) }
    }
}

/// Looks `keys` up in `map`; when both are listed, their later expiry (and cutoff).
fn probe<V: Copy + MaxWith>(map: &FpMap<V>, keys: [Option<Fp>; 2]) -> Option<V> {
    match keys.map(|k| k.and_then(|k| map.get(&k).copied())) {
        [Some(a), Some(b)] => Some(a.max_with(b)),
        [a, b] => a.or(b),
    }
}

fn merge_exp(map: &mut FpMap<u32>, fp: Fp, exp: u32) {
    map.entry(fp).and_modify(|e| *e = (*e).max(exp)).or_insert(exp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_and_scope() {
        let mut d = Denylist::default();
        d.insert(EntryKind::Jti, None, "j1", 100);
        d.insert(EntryKind::Sid, Some("https://a"), "s1", 100);
        d.insert(EntryKind::Subject { before: 50 }, None, "u1", 100);
        assert!(d.contains_jti(None, "j1") && d.contains_jti(Some("https://b"), "j1"));
        assert!(d.contains_sid(Some("https://a"), "s1"));
        assert!(!d.contains_sid(Some("https://b"), "s1") && !d.contains_sid(None, "s1"));
        assert!(d.is_revoked(None, None, None, Some("u1"), Some(49.0)));
        assert!(d.is_revoked(None, None, None, Some("u1"), None));
        assert!(!d.is_revoked(None, None, None, Some("u1"), Some(50.0)));
        assert!(!d.is_revoked(None, Some("j2"), Some("s2"), Some("u2"), None));
        // kinds do not collide: a jti equal to a listed sid is not revoked.
        assert!(!d.contains_jti(Some("https://a"), "s1"));
    }

    #[test]
    fn merge_keeps_latest_and_prune_drops_expired() {
        let mut d = Denylist::default();
        d.insert(EntryKind::Jti, None, "j", 10);
        d.insert(EntryKind::Jti, None, "j", 30);
        d.insert(EntryKind::Jti, None, "j", 20);
        d.insert(EntryKind::Subject { before: 5 }, None, "u", 10);
        d.insert(EntryKind::Subject { before: 7 }, None, "u", 9);
        assert_eq!(d.subject_cutoff(None, "u"), Some(7));
        assert_eq!(d.prune(11), 1);
        assert!(d.contains_jti(None, "j"));
        assert_eq!(d.prune(31), 1);
        assert!(d.is_empty());
    }

    #[test]
    fn scoped_and_unscoped_cutoffs_combine_to_the_later() {
        let mut d = Denylist::default();
        d.insert(EntryKind::Subject { before: 10 }, None, "u", 100);
        d.insert(EntryKind::Subject { before: 20 }, Some("https://a"), "u", 100);
        assert!(d.is_revoked(Some("https://a"), Some("j"), Some("s"), Some("u"), Some(15.0)));
        assert!(!d.is_revoked(Some("https://a"), Some("j"), Some("s"), Some("u"), Some(20.0)));
        assert!(!d.is_revoked(Some("https://b"), Some("j"), Some("s"), Some("u"), Some(15.0)));
        assert!(!d.is_revoked(None, None, None, Some("u"), Some(10.0)));
    }

    #[test]
    fn slots_are_twelve_bytes() {
        assert_eq!(core::mem::size_of::<(Fp, u32)>(), 12);
        assert_eq!(core::mem::size_of::<(Fp, Cutoff)>(), 16);
    }

    #[test]
    fn key_changes_fingerprints() {
        let a = Denylist::new([1; 16]);
        let b = Denylist::new([2; 16]);
        assert_ne!(a.fingerprint(1, None, "x"), b.fingerprint(1, None, "x"));
        assert_ne!(a.fingerprint(1, None, "x"), a.fingerprint(1, Some(""), "x"));
    }
}
