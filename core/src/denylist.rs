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
//! Identifiers are not stored. Each identifier is hashed **once**, with SipHash-1-3
//! under the list's secret 16-byte key; the issuer, when an entry is scoped, is hashed
//! once under a key derived from it. An entry's 64-bit fingerprint is that hash mixed
//! with a constant per kind and, when scoped, the issuer's hash; its lowest three bits
//! say its kind and whether it is scoped. Without the key nobody can compute a
//! fingerprint, so nobody can grind identifiers that collide with a listed one.
//!
//! All kinds share **one table**: 16-byte slots (fingerprint, `exp`, and the
//! subject's `before` for a cutoff) in 64-byte buckets of four, one cache
//! line each, probed linearly from the bucket the fingerprint's top bits pick. The
//! table holds between 75 % and 87.5 % of its slots (sized to 85 % when decoded from a
//! snapshot), so 18–21 bytes an entry. In front of it sits a **blocked Bloom filter**
//! of 8 bits per slot (9–11 bits an entry; an entry sets 5 bits of one 64-bit word,
//! about 2 % false positives): a lookup for an identifier that is not listed — the
//! common case — usually ends in the filter, one word read, which at a million entries
//! is 1.2 MB and stays in cache while the table does not. Together: 19.4–22.7 bytes an
//! entry.
//!
//! A lookup hashes each of the token's `jti`, `sid` and `sub` once (skipping kinds the
//! list holds none of) and the issuer once only when the list holds scoped entries, so
//! at most four hashes and six filter probes. The price of fingerprints is a possible
//! false positive — a valid token rejected as `revoked` — with probability about
//! `entries / 2^61` per probe (4·10⁻¹³ at a million entries): the failure is closed,
//! never open. Times are stored as `u32` seconds, saturating: an expiry past 2106
//! never prunes.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

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

/// The key used by [`Denylist::default`]: fine for a list that never meets a
/// snapshot; replicas adopt the service's key from its first snapshot.
pub const LOCAL_HASH_KEY: HashKey = *b"tollgate-local-k";

pub(crate) fn sat32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Per-kind constants mixed into fingerprints (kind index: jti, sid, subject).
const KIND_MIX: [u64; 3] = [0x6a74_695f_6b69_6e64, 0x7369_645f_6b69_6e64, 0x7375_625f_6b69_6e64];
/// XORed into the key for issuer hashes, so an issuer never hashes like an identifier.
const SCOPE_KEY_MIX: [u64; 2] = [0x7363_6f70_655f_6b30, 0x7363_6f70_655f_6b31];

/// One entry: its fingerprint (never 0, which marks an empty slot; bit 0 scoped, bits
/// 1–2 the kind), its expiry, and for a subject cutoff its `before` (0 otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Slot {
    pub(crate) fp: u64,
    pub(crate) exp: u32,
    pub(crate) before: u32,
}

impl Slot {
    /// The kind index of a fingerprint: 0 jti, 1 sid, 2 subject (3 is never made).
    pub(crate) fn kind_of(fp: u64) -> usize {
        ((fp >> 1) & 3) as usize
    }

    /// This slot's kind index.
    pub(crate) fn kind(&self) -> usize {
        Slot::kind_of(self.fp)
    }

    fn merge(&mut self, other: Slot) {
        self.exp = self.exp.max(other.exp);
        self.before = self.before.max(other.before);
    }
}

const SLOTS_PER_BUCKET: usize = 4;

/// Four slots: one cache line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C, align(64))]
struct Bucket([Slot; SLOTS_PER_BUCKET]);

/// One word of the blocked Bloom filter: an entry sets five of its 64 bits, chosen by
/// five 6-bit fields of its fingerprint's high half.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Block(u64);

impl Block {
    fn mask(fp: u64) -> u64 {
        let h = fp >> 32;
        (1 << (h & 63))
            | (1 << ((h >> 6) & 63))
            | (1 << ((h >> 12) & 63))
            | (1 << ((h >> 18) & 63))
            | (1 << ((h >> 24) & 63))
    }

    fn insert(&mut self, fp: u64) {
        self.0 |= Block::mask(fp);
    }

    fn may_contain(&self, fp: u64) -> bool {
        let m = Block::mask(fp);
        self.0 & m == m
    }
}

/// `x * n / 2^32` for the top 32 bits of `x`: an index below `n` (`n` < 2^32).
fn reduce(x: u32, n: usize) -> usize {
    ((u64::from(x) * n as u64) >> 32) as usize
}

/// The fingerprint table and its filter.
#[derive(Clone, PartialEq, Eq)]
struct Table {
    buckets: Vec<Bucket>,
    filter: Vec<Block>,
    len: usize,
    /// Entries per kind: jti, sid, subject.
    counts: [usize; 3],
    /// Entries scoped to an issuer.
    scoped: usize,
}

/// Most slots in use before the table grows: 7/8.
const MAX_LOAD: (usize, usize) = (7, 8);
/// Load right after growing or pruning: 3/4.
const GROWN_LOAD: (usize, usize) = (3, 4);
/// Load of a table sized for a known number of entries (a snapshot): 0.85.
const SIZED_LOAD: (usize, usize) = (17, 20);

impl Table {
    /// No slots, nothing allocated: the first insert sizes it.
    fn empty() -> Table {
        Table { buckets: Vec::new(), filter: Vec::new(), len: 0, counts: [0; 3], scoped: 0 }
    }

    fn with_buckets(n: usize) -> Table {
        let n = n.max(1);
        // 8 bits of filter per slot: one 64-bit word for every eight slots.
        let blocks = (n * SLOTS_PER_BUCKET).div_ceil(8).max(1);
        Table {
            buckets: vec![Bucket::default(); n],
            filter: vec![Block::default(); blocks],
            len: 0,
            counts: [0; 3],
            scoped: 0,
        }
    }

    /// A table for `entries` at `load`.
    fn for_entries(entries: usize, load: (usize, usize)) -> Table {
        if entries == 0 {
            return Table::empty();
        }
        Table::with_buckets((entries * load.1).div_ceil(load.0 * SLOTS_PER_BUCKET))
    }

    fn bucket_of(&self, fp: u64) -> usize {
        reduce((fp >> 32) as u32, self.buckets.len())
    }

    fn block_of(&self, fp: u64) -> usize {
        reduce(fp as u32, self.filter.len())
    }

    /// The slot holding `fp`: filter first, then the probe sequence.
    fn get(&self, fp: u64) -> Option<&Slot> {
        if self.len == 0 || !self.filter[self.block_of(fp)].may_contain(fp) {
            return None;
        }
        let n = self.buckets.len();
        let mut b = self.bucket_of(fp);
        loop {
            for s in &self.buckets[b].0 {
                if s.fp == fp {
                    return Some(s);
                }
                if s.fp == 0 {
                    return None;
                }
            }
            b = if b + 1 == n { 0 } else { b + 1 };
        }
    }

    /// Inserts or merges a slot.
    fn insert(&mut self, slot: Slot) {
        if (self.len + 1) * MAX_LOAD.1 > self.buckets.len() * SLOTS_PER_BUCKET * MAX_LOAD.0 {
            self.resize(self.len + 1, GROWN_LOAD);
        }
        self.place(slot);
    }

    /// Inserts or merges a slot into a table with room for it.
    fn place(&mut self, slot: Slot) {
        let n = self.buckets.len();
        let mut b = self.bucket_of(slot.fp);
        loop {
            for s in self.buckets[b].0.iter_mut() {
                if s.fp == slot.fp {
                    s.merge(slot);
                    return;
                }
                if s.fp == 0 {
                    *s = slot;
                    self.len += 1;
                    self.counts[slot.kind()] += 1;
                    self.scoped += (slot.fp & 1) as usize;
                    let block = self.block_of(slot.fp);
                    self.filter[block].insert(slot.fp);
                    return;
                }
            }
            b = if b + 1 == n { 0 } else { b + 1 };
        }
    }

    fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.buckets.iter().flat_map(|b| b.0.iter()).filter(|s| s.fp != 0)
    }

    /// Rebuilds the table for `entries` at `load`, keeping what `keep` accepts.
    fn rebuild(&mut self, entries: usize, load: (usize, usize), keep: impl Fn(&Slot) -> bool) {
        let old = core::mem::replace(self, Table::for_entries(entries, load));
        for s in old.slots().filter(|s| keep(s)) {
            self.place(*s);
        }
    }

    fn resize(&mut self, entries: usize, load: (usize, usize)) {
        self.rebuild(entries, load, |_| true);
    }

    /// Heap bytes held.
    fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * core::mem::size_of::<Bucket>()
            + self.filter.capacity() * core::mem::size_of::<Block>()
    }
}

/// The denylist. See the module docs for its representation and bounds.
#[derive(Clone)]
pub struct Denylist {
    key: HashKey,
    /// The SipHash keys: for identifiers, and for issuers.
    sip: [u64; 2],
    sip_scope: [u64; 2],
    pub(crate) seq: u64,
    /// The stamp of the last signed message applied (replicas).
    pub(crate) stamp: Option<crate::wire::Stamp>,
    table: Table,
}

impl core::fmt::Debug for Denylist {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (jti, sid, sub) = self.counts();
        f.debug_struct("Denylist")
            .field("seq", &self.seq)
            .field("jti", &jti)
            .field("sid", &sid)
            .field("sub", &sub)
            .field("scoped", &self.table.scoped)
            .finish()
    }
}

impl Default for Denylist {
    fn default() -> Self {
        Denylist::new(LOCAL_HASH_KEY)
    }
}

impl Denylist {
    /// An empty list at sequence 0 whose fingerprints use `key`.
    pub fn new(key: HashKey) -> Denylist {
        Denylist::with_table(key, Table::empty())
    }

    fn with_table(key: HashKey, table: Table) -> Denylist {
        let k0 = u64::from_le_bytes([key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7]]);
        let k1 = u64::from_le_bytes([key[8], key[9], key[10], key[11], key[12], key[13], key[14], key[15]]);
        Denylist {
            key,
            sip: [k0, k1],
            sip_scope: [k0 ^ SCOPE_KEY_MIX[0], k1 ^ SCOPE_KEY_MIX[1]],
            seq: 0,
            stamp: None,
            table,
        }
    }

    /// An empty list with room for `entries` (a decoded snapshot's size).
    pub(crate) fn with_capacity(key: HashKey, entries: usize) -> Denylist {
        Denylist::with_table(key, Table::for_entries(entries, SIZED_LOAD))
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

    /// The epoch and creation time of the last signed snapshot or delta applied to
    /// this list; `None` for a list built locally.
    pub fn stamp(&self) -> Option<crate::wire::Stamp> {
        self.stamp
    }

    /// Number of entries of all kinds.
    pub fn len(&self) -> usize {
        self.table.len
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries per kind: `(jti, sid, subject)`.
    pub fn counts(&self) -> (usize, usize, usize) {
        let c = self.table.counts;
        (c[0], c[1], c[2])
    }

    /// Whether some entry is scoped to an issuer (when none is, lookups skip the
    /// scoped probes and the issuer's hash).
    pub fn has_scoped(&self) -> bool {
        self.table.scoped > 0
    }

    /// Heap bytes the list holds (table and filter).
    pub fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
    }

    /// The hash of an identifier.
    fn id_hash(&self, id: &str) -> u64 {
        sip13(self.sip, id.as_bytes())
    }

    /// The hash of an issuer (under the derived key).
    fn scope_hash(&self, iss: &str) -> u64 {
        sip13(self.sip_scope, iss.as_bytes())
    }

    /// The fingerprint of an entry whose identifier hashes to `h`, of kind index
    /// `kind`, scoped to the issuer whose hash is `scope`: the mixed hash with its low
    /// three bits replaced by the kind and the scope bit.
    fn fp(h: u64, kind: usize, scope: Option<u64>) -> u64 {
        let x = h ^ KIND_MIX[kind] ^ scope.unwrap_or(0);
        let fp = (x & !7) | ((kind as u64) << 1) | u64::from(scope.is_some());
        // Never 0 (an empty slot): an unscoped jti with a 2^-61 chance, mapped to 8.
        if fp == 0 {
            8
        } else {
            fp
        }
    }

    fn slot_for(&self, kind: EntryKind, iss: Option<&str>, id: &str, exp: u64) -> Slot {
        let (k, before) = match kind {
            EntryKind::Jti => (0, 0),
            EntryKind::Sid => (1, 0),
            EntryKind::Subject { before } => (2, sat32(before)),
        };
        let fp = Denylist::fp(self.id_hash(id), k, iss.map(|i| self.scope_hash(i)));
        Slot { fp, exp: sat32(exp), before }
    }

    /// Adds an entry. Adding an entry that exists keeps the later expiry (and, for a
    /// subject, the later cutoff): the fold is commutative, so replicas converge
    /// whatever order they see events in.
    pub fn insert(&mut self, kind: EntryKind, iss: Option<&str>, id: &str, exp: u64) {
        let slot = self.slot_for(kind, iss, id, exp);
        self.table.insert(slot);
    }

    /// Adds an [`Entry`].
    pub fn insert_entry(&mut self, e: &Entry) {
        self.insert(e.kind, e.iss.as_deref(), &e.id, e.exp);
    }

    /// Adds a slot as decoded from a snapshot (the table is sized for the snapshot).
    pub(crate) fn insert_slot(&mut self, slot: Slot) {
        self.table.insert(slot);
    }

    /// Drops every entry whose `exp` is before `cutoff`; returns how many. Replicas
    /// that verify with a leeway should pass `now - leeway`. Rebuilds the table (and
    /// shrinks it) when anything goes: O(entries).
    pub fn prune(&mut self, cutoff: u64) -> usize {
        let cutoff = sat32(cutoff);
        let before = self.len();
        let keep = self.table.slots().filter(|s| s.exp >= cutoff).count();
        if keep < before {
            self.table.rebuild(keep, GROWN_LOAD, |s| s.exp >= cutoff);
        }
        before - keep
    }

    /// Whether a `jti` is listed (for `iss`, or unscoped).
    pub fn contains_jti(&self, iss: Option<&str>, jti: &str) -> bool {
        self.lookup(0, iss, jti).is_some()
    }

    /// Whether a `sid` is listed (for `iss`, or unscoped).
    pub fn contains_sid(&self, iss: Option<&str>, sid: &str) -> bool {
        self.lookup(1, iss, sid).is_some()
    }

    /// The latest subject cutoff for `sub` (for `iss`, or unscoped).
    pub fn subject_cutoff(&self, iss: Option<&str>, sub: &str) -> Option<u64> {
        self.lookup(2, iss, sub).map(|s| u64::from(s.before))
    }

    /// The merged slot of `id` of kind index `kind`, unscoped and scoped to `iss`.
    fn lookup(&self, kind: usize, iss: Option<&str>, id: &str) -> Option<Slot> {
        if self.table.counts[kind] == 0 {
            return None;
        }
        let scope = if self.has_scoped() { iss.map(|i| self.scope_hash(i)) } else { None };
        self.probe(kind, self.id_hash(id), scope)
    }

    /// The slots of the identifier hashing to `h`: unscoped and, with `scope`, scoped;
    /// merged when both are listed.
    fn probe(&self, kind: usize, h: u64, scope: Option<u64>) -> Option<Slot> {
        let a = self.table.get(Denylist::fp(h, kind, None)).copied();
        let b = scope.and_then(|s| self.table.get(Denylist::fp(h, kind, Some(s)))).copied();
        match (a, b) {
            (Some(mut a), Some(b)) => {
                a.merge(b);
                Some(a)
            }
            (a, b) => a.or(b),
        }
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
        if self.table.len == 0 {
            return false;
        }
        let c = &self.table.counts;
        // Each identifier hashed once, the issuer once and only when some entry is
        // scoped. Probing each identifier as soon as it is hashed lets a table read
        // that misses the cache (a listed identifier, past the filter) overlap the
        // hashing of the next ones, which the processor runs ahead speculatively.
        let scope = if self.has_scoped() { iss.map(|i| self.scope_hash(i)) } else { None };
        let listed = |n: usize, id: Option<&str>| {
            if c[n] == 0 {
                return None;
            }
            id.and_then(|id| self.probe(n, self.id_hash(id), scope))
        };
        if listed(0, jti).is_some() || listed(1, sid).is_some() {
            return true;
        }
        match listed(2, sub) {
            Some(cutoff) => iat.is_none_or(|iat| iat < f64::from(cutoff.before)),
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

    /// Every entry sorted by fingerprint, split by kind (`jti`, `sid`, subject).
    pub(crate) fn sorted_by_kind(&self) -> [Vec<Slot>; 3] {
        let mut out = [Vec::new(), Vec::new(), Vec::new()];
        for (k, v) in out.iter_mut().enumerate() {
            v.reserve(self.table.counts[k]);
        }
        for s in self.table.slots() {
            out[s.kind()].push(*s);
        }
        for v in &mut out {
            v.sort_unstable_by_key(|s| s.fp);
        }
        out
    }

    /// A JSON view for debugging: sequence, entry count, and every entry's fingerprint
    /// (hex), kind and times. Identifiers are not stored, so they cannot be shown.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let hex = |s: &Slot| alloc::format!("{:016x}", s.fp);
        let [jti, sid, sub] = self.sorted_by_kind();
        json!({
            "seq": self.seq,
            "entries": self.len(),
            "jti": jti.iter().map(|s| json!({"fp": hex(s), "exp": s.exp})).collect::<Vec<_>>(),
            "sid": sid.iter().map(|s| json!({"fp": hex(s), "exp": s.exp})).collect::<Vec<_>>(),
            "sub": sub.iter().map(|s| json!({"fp": hex(s), "before": s.before, "exp": s.exp})).collect::<Vec<_>>(),
        })
    }

    /// Whether two lists hold the same entries under the same key at the same sequence
    /// (however their tables are sized, and whatever stamps they carry).
    pub fn same_entries(&self, other: &Denylist) -> bool {
        self.key == other.key
            && self.seq == other.seq
            && self.len() == other.len()
            && self.sorted_by_kind() == other.sorted_by_kind()
    }
}

/// SipHash-1-3 of `m` under the key `k` (one call, no streaming state): the same
/// function as `siphasher`'s `SipHasher13` fed `m` in one `write`.
fn sip13(k: [u64; 2], m: &[u8]) -> u64 {
    let mut v = [
        k[0] ^ 0x736f_6d65_7073_6575,
        k[1] ^ 0x646f_7261_6e64_6f6d,
        k[0] ^ 0x6c79_6765_6e65_7261,
        k[1] ^ 0x7465_6462_7974_6573,
    ];
    #[inline(always)]
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut chunks = m.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        v[3] ^= w;
        round(&mut v);
        v[0] ^= w;
    }
    let rest = chunks.remainder();
    let mut last = (m.len() as u64) << 56;
    if !rest.is_empty() && m.len() >= 8 {
        // The last eight bytes in one read, shifted down to the `rest.len()` unread ones.
        let t = &m[m.len() - 8..];
        let w = u64::from_le_bytes([t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]]);
        last |= w >> (8 * (8 - rest.len()));
    } else {
        for (i, &b) in rest.iter().enumerate() {
            last |= u64::from(b) << (8 * i);
        }
    }
    v[3] ^= last;
    round(&mut v);
    v[0] ^= last;
    v[2] ^= 0xff;
    round(&mut v);
    round(&mut v);
    round(&mut v);
    v[0] ^ v[1] ^ v[2] ^ v[3]
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
        assert_eq!(d.counts(), (1, 1, 1));
        assert!(d.has_scoped());
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
        assert_eq!(d.len(), 2);
        assert_eq!(d.prune(11), 1);
        assert!(d.contains_jti(None, "j"));
        assert_eq!(d.counts(), (1, 0, 0));
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
    fn scoped_flag_follows_the_entries() {
        let mut d = Denylist::default();
        d.insert(EntryKind::Jti, None, "a", 10);
        assert!(!d.has_scoped());
        d.insert(EntryKind::Jti, Some("https://i"), "b", 20);
        assert!(d.has_scoped());
        assert!(d.contains_jti(Some("https://i"), "b") && !d.contains_jti(None, "b"));
        d.prune(15);
        assert!(d.has_scoped() && !d.contains_jti(None, "a") && d.contains_jti(Some("https://i"), "b"));
        d.insert(EntryKind::Sid, None, "c", 30);
        d.prune(25);
        assert!(!d.has_scoped());
    }

    #[test]
    fn issuer_and_identifier_never_swap() {
        // With one hash for both, "jti X scoped to Y" and "jti Y scoped to X" collide.
        let mut d = Denylist::default();
        d.insert(EntryKind::Jti, Some("Y"), "X", 10);
        assert!(d.contains_jti(Some("Y"), "X"));
        assert!(!d.contains_jti(Some("X"), "Y"));
    }

    #[test]
    fn grows_and_keeps_every_entry() {
        let mut d = Denylist::new([9; 16]);
        for i in 0..20_000u64 {
            d.insert(if i % 3 == 0 { EntryKind::Sid } else { EntryKind::Jti }, None, &alloc::format!("id-{i}"), i);
        }
        assert_eq!(d.len(), 20_000);
        assert_eq!(d.counts(), (13_333, 6_667, 0));
        for i in 0..20_000u64 {
            let id = alloc::format!("id-{i}");
            assert_eq!(d.contains_sid(None, &id), i % 3 == 0, "{id}");
            assert_eq!(d.contains_jti(None, &id), i % 3 != 0, "{id}");
        }
        let per_entry = d.heap_bytes() as f64 / d.len() as f64;
        assert!(per_entry <= 24.0, "{per_entry} bytes an entry");
        assert_eq!(d.prune(10_000), 10_000);
        assert!(d.contains_jti(None, "id-19999") && !d.contains_jti(None, "id-1"));
    }

    #[test]
    fn filter_false_positive_rate_is_about_two_percent() {
        let mut d = Denylist::new([3; 16]);
        for i in 0..50_000 {
            d.insert(EntryKind::Jti, None, &alloc::format!("in-{i}"), 1);
        }
        let fp = (0..100_000)
            .filter(|i| {
                let f = Denylist::fp(d.id_hash(&alloc::format!("out-{i}")), 0, None);
                d.table.filter[d.table.block_of(f)].may_contain(f)
            })
            .count();
        assert!(fp < 4_000, "{fp} of 100000 pass the filter");
    }

    #[test]
    fn sip13_matches_siphasher() {
        use core::hash::Hasher;
        let key: [u8; 16] = core::array::from_fn(|i| i as u8 * 7 + 1);
        let d = Denylist::new(key);
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..40 {
            let mut h = siphasher::sip::SipHasher13::new_with_key(&key);
            h.write(&data[..len]);
            assert_eq!(sip13(d.sip, &data[..len]), h.finish(), "length {len}");
        }
    }

    #[test]
    fn key_changes_fingerprints() {
        let a = Denylist::new([1; 16]);
        let b = Denylist::new([2; 16]);
        assert_ne!(a.id_hash("x"), b.id_hash("x"));
        assert_ne!(a.id_hash("x"), a.scope_hash("x"));
        assert_eq!(core::mem::size_of::<Slot>(), 16);
        assert_eq!(core::mem::size_of::<Bucket>(), 64);
    }
}
