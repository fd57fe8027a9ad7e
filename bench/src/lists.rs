//! Reproducible random denylists and lookup queries.
//!
//! A list of `n` entries mixes the kinds as a busy issuer's might: 80 % `jti`, 15 %
//! `sid`, 5 % subject cutoffs; half the entries are scoped to [`ISSUER`], half
//! unscoped. Identifiers are 22-character base64url strings of 128 random bits (a
//! typical `jti`). Everything comes from a seeded SplitMix64, so the same `n` and seed
//! give the same list and the same queries in every run.

use std::collections::{HashMap, HashSet};

use tollgate_core::{b64, Denylist, EntryKind};

use crate::fixtures::{ISSUER, NOW};

/// Length of every generated identifier.
pub const ID_LEN: usize = 22;

/// SplitMix64: small, fast and good enough to spread benchmark identifiers.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A random identifier: base64url of 16 random bytes ([`ID_LEN`] characters).
    pub fn id(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        b64::encode(&bytes)
    }
}

/// One generated entry (identifiers are not kept: regenerate them from the seed).
#[derive(Debug, Clone)]
pub struct GenEntry {
    /// Its kind.
    pub kind: EntryKind,
    /// Scoped to [`ISSUER`], or not.
    pub scoped: bool,
    /// The identifier.
    pub id: String,
    /// Expiry.
    pub exp: u64,
}

/// The entry stream of a list: entry `i` of seed `s` is always the same.
#[derive(Debug, Clone)]
pub struct EntryStream {
    rng: Rng,
    i: u64,
}

impl EntryStream {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> EntryStream {
        EntryStream { rng: Rng::new(seed), i: 0 }
    }
}

impl Iterator for EntryStream {
    type Item = GenEntry;

    fn next(&mut self) -> Option<GenEntry> {
        let kind = match self.i % 20 {
            0..=15 => EntryKind::Jti,
            16..=18 => EntryKind::Sid,
            _ => EntryKind::Subject { before: NOW as u64 },
        };
        self.i += 1;
        let r = self.rng.next_u64();
        let id = self.rng.id();
        Some(GenEntry { kind, scoped: r & 1 == 1, id, exp: NOW as u64 + 3600 + (r >> 1) % 86_400 })
    }
}

/// Inserts the first `n` entries of `seed`'s stream into `list`.
pub fn fill(list: &mut Denylist, n: usize, seed: u64) {
    for e in EntryStream::new(seed).take(n) {
        list.insert(e.kind, e.scoped.then_some(ISSUER), &e.id, e.exp);
    }
}

/// A list of the first `n` entries of `seed`'s stream, with the default hash key.
pub fn build(n: usize, seed: u64) -> Denylist {
    let mut list = Denylist::default();
    fill(&mut list, n, seed);
    list
}

/// A reference for scale, not a design to adopt: the naive denylist — the identifiers
/// themselves in std `HashSet`s / a `HashMap` (SipHash-1-3, like the fingerprints), no
/// issuer scoping and no expiry, so one probe per identifier instead of two.
#[derive(Debug, Default)]
pub struct NaiveList {
    jti: HashSet<String>,
    sid: HashSet<String>,
    sub: HashMap<String, u64>,
}

impl NaiveList {
    /// The first `n` entries of `seed`'s stream.
    pub fn build(n: usize, seed: u64) -> NaiveList {
        let mut l = NaiveList::default();
        for e in EntryStream::new(seed).take(n) {
            match e.kind {
                EntryKind::Jti => {
                    l.jti.insert(e.id);
                }
                EntryKind::Sid => {
                    l.sid.insert(e.id);
                }
                EntryKind::Subject { before } => {
                    let b = l.sub.entry(e.id).or_insert(before);
                    *b = (*b).max(before);
                }
            }
        }
        l
    }

    /// Whether a token with these identifiers is revoked.
    pub fn is_revoked(&self, jti: &str, sid: &str, sub: &str, iat: f64) -> bool {
        self.jti.contains(jti) || self.sid.contains(sid) || self.sub.get(sub).is_some_and(|&b| iat < b as f64)
    }
}

/// Lookup queries, as a token presents them: `iss` is always [`ISSUER`]; `jti`,
/// `sid` and `sub` are present; `iat` is before every subject cutoff. Identifiers sit
/// in one contiguous arena so that walking the queries costs no pointer chasing.
#[derive(Debug, Clone)]
pub struct Queries {
    arena: String,
    len: usize,
}

impl Queries {
    /// `count` queries none of whose identifiers is listed (a fresh seed's ids).
    pub fn misses(count: usize, seed: u64) -> Queries {
        let mut rng = Rng::new(seed ^ 0x6d69_7373_6d69_7373);
        let mut arena = String::with_capacity(count * 3 * ID_LEN);
        for _ in 0..count * 3 {
            arena.push_str(&rng.id());
        }
        Queries { arena, len: count }
    }

    /// `count` queries each naming one listed entry (spread evenly over the first `n`
    /// entries of `seed`'s stream, so kinds appear in their listed proportions) in the
    /// slot of its kind, with fresh identifiers in the other two slots.
    pub fn hits(count: usize, n: usize, seed: u64) -> Queries {
        let mut rng = Rng::new(seed ^ 0x6869_7473_6869_7473);
        let step = (n / count).max(1);
        let mut arena = String::with_capacity(count * 3 * ID_LEN);
        let mut made = 0;
        for e in EntryStream::new(seed).take(n).step_by(step).cycle().take(count) {
            let slot = match e.kind {
                EntryKind::Jti => 0,
                EntryKind::Sid => 1,
                EntryKind::Subject { .. } => 2,
            };
            for s in 0..3 {
                if s == slot {
                    arena.push_str(&e.id);
                } else {
                    arena.push_str(&rng.id());
                }
            }
            made += 1;
        }
        Queries { arena, len: made }
    }

    /// Number of queries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Query `i`: `(jti, sid, sub)`.
    pub fn get(&self, i: usize) -> (&str, &str, &str) {
        let at = i * 3 * ID_LEN;
        (
            &self.arena[at..at + ID_LEN],
            &self.arena[at + ID_LEN..at + 2 * ID_LEN],
            &self.arena[at + 2 * ID_LEN..at + 3 * ID_LEN],
        )
    }

    /// Runs query `i` against the naive reference list.
    pub fn run_naive(&self, list: &NaiveList, i: usize) -> bool {
        let (jti, sid, sub) = self.get(i);
        list.is_revoked(jti, sid, sub, (NOW - 60) as f64)
    }

    /// Runs query `i` against `list` through [`Denylist::is_revoked`].
    pub fn run(&self, list: &Denylist, i: usize) -> bool {
        let (jti, sid, sub) = self.get(i);
        list.is_revoked(Some(ISSUER), Some(jti), Some(sid), Some(sub), Some((NOW - 60) as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_hit_and_misses_miss() {
        let list = build(10_000, 1);
        assert_eq!(list.len(), 10_000);
        let (j, s, u) = list.counts();
        assert_eq!((j, s, u), (8000, 1500, 500));
        let hits = Queries::hits(1000, 10_000, 1);
        let misses = Queries::misses(1000, 1);
        assert_eq!(hits.len(), 1000);
        assert!((0..hits.len()).all(|i| hits.run(&list, i)));
        assert!((0..misses.len()).all(|i| !misses.run(&list, i)));
        let naive = NaiveList::build(10_000, 1);
        assert!((0..hits.len()).all(|i| hits.run_naive(&naive, i)));
        assert!((0..misses.len()).all(|i| !misses.run_naive(&naive, i)));
    }
}
