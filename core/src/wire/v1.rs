//! Version 1 of the wire format, for the upgrade window only.
//!
//! The revocation service encodes it, with [`encode_snapshot`] and [`encode_delta`],
//! for replicas built before version 2 (they do not ask for `?wire=2`) while it runs
//! with `legacy_wire_v1 = true`. [`decode_snapshot`], [`decode_delta`] and [`V1List`]
//! are what such a replica does, kept so that the upgrade order can be tested
//! against the real service. Version 1 carries no epoch and no creation time, so a
//! version-1 replica cannot refuse a replayed or rolled-back message: close the window
//! once every edge asks for version 2.
//!
//! ```text
//! snapshot: "TGS\x01" | seq u64 | hash key [16] | n_jti u32 | n_sid u32 | n_sub u32
//!           | n_jti × (fp u64, exp u32) | n_sid × (fp u64, exp u32)
//!           | n_sub × (fp u64, before u32, exp u32) | signature [64]
//! delta:    "TGD\x01" | from u64 | to u64 | n u32 | n × event | signature [64]
//! ```
//! A version-1 fingerprint is SipHash-1-3, under the list's key, of `kind u8 | 0 | id`
//! for an unscoped entry and `kind u8 | 1 | len(iss) u64 | iss | id` for a scoped one;
//! the event encoding is version 2's.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::hash::Hasher;

use siphasher::sip::SipHasher13;

use super::{open, put_delta_body, read_delta_body, Delta, DenylistSigner, Reader, Stamp};
use crate::denylist::{sat32, Entry, EntryKind, HashKey};
use crate::error::WireError;
use crate::jwk::P256Key;

const VERSION: u8 = 1;

/// A version-1 fingerprint.
pub fn fingerprint(key: &HashKey, kind: EntryKind, iss: Option<&str>, id: &str) -> u64 {
    let mut h = SipHasher13::new_with_key(key);
    match iss {
        Some(i) => {
            h.write(&[kind.tag(), 1]);
            h.write(&(i.len() as u64).to_le_bytes());
            h.write(i.as_bytes());
        }
        None => h.write(&[kind.tag(), 0]),
    }
    h.write(id.as_bytes());
    h.finish()
}

/// A version-1 replica's list: fingerprints per kind, with expiry (and cutoff).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V1List {
    /// The fingerprint key.
    pub key: HashKey,
    /// The sequence number.
    pub seq: u64,
    jti: BTreeMap<u64, u32>,
    sid: BTreeMap<u64, u32>,
    sub: BTreeMap<u64, (u32, u32)>,
}

impl V1List {
    /// An empty list under `key`.
    pub fn new(key: HashKey) -> V1List {
        V1List { key, ..V1List::default() }
    }

    /// Adds an entry, keeping the later expiry and cutoff.
    pub fn insert(&mut self, e: &Entry) {
        let fp = fingerprint(&self.key, e.kind, e.iss.as_deref(), &e.id);
        let exp = sat32(e.exp);
        match e.kind {
            EntryKind::Jti => merge(&mut self.jti, fp, exp),
            EntryKind::Sid => merge(&mut self.sid, fp, exp),
            EntryKind::Subject { before } => {
                let c = self.sub.entry(fp).or_insert((0, 0));
                *c = (c.0.max(sat32(before)), c.1.max(exp));
            }
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.jti.len() + self.sid.len() + self.sub.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a token with these claims is revoked (as a version-1 replica decides).
    pub fn is_revoked(
        &self,
        iss: Option<&str>,
        jti: Option<&str>,
        sid: Option<&str>,
        sub: Option<&str>,
        iat: Option<f64>,
    ) -> bool {
        let scopes = [None, iss];
        let listed = |map: &BTreeMap<u64, u32>, kind, id: Option<&str>| {
            id.is_some_and(|id| scopes.iter().any(|s| map.contains_key(&fingerprint(&self.key, kind, *s, id))))
        };
        if listed(&self.jti, EntryKind::Jti, jti) || listed(&self.sid, EntryKind::Sid, sid) {
            return true;
        }
        let Some(sub) = sub else { return false };
        let before = scopes
            .iter()
            .filter_map(|s| self.sub.get(&fingerprint(&self.key, EntryKind::Subject { before: 0 }, *s, sub)))
            .map(|c| c.0)
            .max();
        before.is_some_and(|b| iat.is_none_or(|iat| iat < f64::from(b)))
    }

    /// Applies a delta as a version-1 replica does: no gap, no going back.
    pub fn apply_delta(&mut self, d: &Delta) -> Result<usize, WireError> {
        if d.from > self.seq {
            return Err(WireError::Gap { current: self.seq, from: d.from });
        }
        if d.to < self.seq {
            return Err(WireError::Backwards { current: self.seq, offered: d.to });
        }
        let current = self.seq;
        let new: Vec<_> = d.events.iter().filter(|e| e.seq > current).collect();
        for e in &new {
            self.insert(&e.entry);
        }
        self.seq = d.to;
        Ok(new.len())
    }
}

fn merge(map: &mut BTreeMap<u64, u32>, fp: u64, exp: u32) {
    let e = map.entry(fp).or_insert(0);
    *e = (*e).max(exp);
}

/// Encodes and signs a version-1 snapshot at `seq` of `entries` (with their
/// identifiers: the service's live entries), fingerprinted under `key`.
pub fn encode_snapshot<'a>(
    key: HashKey,
    seq: u64,
    entries: impl IntoIterator<Item = &'a Entry>,
    signer: &DenylistSigner,
) -> Vec<u8> {
    let mut list = V1List::new(key);
    for e in entries {
        list.insert(e);
    }
    let mut out = Vec::with_capacity(40 + 12 * (list.jti.len() + list.sid.len()) + 16 * list.sub.len() + 64);
    out.extend_from_slice(b"TGS");
    out.push(VERSION);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&key);
    for n in [list.jti.len(), list.sid.len(), list.sub.len()] {
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    for (fp, exp) in list.jti.iter().chain(list.sid.iter()) {
        out.extend_from_slice(&fp.to_le_bytes());
        out.extend_from_slice(&exp.to_le_bytes());
    }
    for (fp, (before, exp)) in &list.sub {
        out.extend_from_slice(&fp.to_le_bytes());
        out.extend_from_slice(&before.to_le_bytes());
        out.extend_from_slice(&exp.to_le_bytes());
    }
    signer.sign(&mut out);
    out
}

/// Encodes and signs a version-1 delta (its stamp is not part of version 1).
pub fn encode_delta(delta: &Delta, signer: &DenylistSigner) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + delta.events.len() * 64 + 64);
    out.extend_from_slice(b"TGD");
    out.push(VERSION);
    put_delta_body(&mut out, delta);
    signer.sign(&mut out);
    out
}

/// Verifies and decodes a version-1 snapshot (what a version-1 replica does).
pub fn decode_snapshot(bytes: &[u8], key: &P256Key) -> Result<V1List, WireError> {
    let mut r = Reader { buf: open(bytes, b"TGS", VERSION, key)? };
    let seq = r.u64()?;
    let mut list = V1List::new(r.array()?);
    list.seq = seq;
    let (nj, ns, nu) = (r.u32()?, r.u32()?, r.u32()?);
    let need = (u64::from(nj) + u64::from(ns)) * 12 + u64::from(nu) * 16;
    if r.buf.len() as u64 != need {
        return Err(WireError::Truncated);
    }
    for _ in 0..nj {
        let fp = r.u64()?;
        merge(&mut list.jti, fp, r.u32()?);
    }
    for _ in 0..ns {
        let fp = r.u64()?;
        merge(&mut list.sid, fp, r.u32()?);
    }
    for _ in 0..nu {
        let fp = r.u64()?;
        let c = (r.u32()?, r.u32()?);
        list.sub.insert(fp, c);
    }
    Ok(list)
}

/// Verifies and decodes a version-1 delta; its stamp is zero (version 1 has none).
pub fn decode_delta(bytes: &[u8], key: &P256Key) -> Result<Delta, WireError> {
    let mut r = Reader { buf: open(bytes, b"TGD", VERSION, key)? };
    let (from, to, events) = read_delta_body(&mut r)?;
    Ok(Delta { stamp: Stamp::default(), from, to, events })
}

#[cfg(test)]
mod tests {
    use alloc::string::String;

    use super::*;
    use crate::wire::DeltaEvent;

    #[test]
    fn a_version_1_replica_follows_a_version_1_service() {
        let s = DenylistSigner::from_secret(&[6; 32]).unwrap();
        let pk = s.public_key();
        let e = |kind, iss: Option<&str>, id: &str| Entry { kind, iss: iss.map(String::from), id: id.into(), exp: 50 };
        let entries = [
            e(EntryKind::Jti, None, "j"),
            e(EntryKind::Sid, Some("https://i"), "s"),
            e(EntryKind::Subject { before: 9 }, None, "u"),
        ];
        let mut list = decode_snapshot(&encode_snapshot([4; 16], 3, &entries, &s), &pk).unwrap();
        assert_eq!((list.len(), list.seq), (3, 3));
        assert!(list.is_revoked(None, Some("j"), None, None, None));
        assert!(list.is_revoked(Some("https://i"), None, Some("s"), None, None));
        assert!(!list.is_revoked(Some("https://x"), None, Some("s"), None, None));
        assert!(
            list.is_revoked(None, None, None, Some("u"), Some(8.0))
                && !list.is_revoked(None, None, None, Some("u"), Some(9.0))
        );
        let d = Delta {
            stamp: Stamp { epoch: [1; 16], created: 7 },
            from: 3,
            to: 5,
            events: alloc::vec![DeltaEvent { seq: 4, entry: e(EntryKind::Jti, None, "k") }],
        };
        let back = decode_delta(&encode_delta(&d, &s), &pk).unwrap();
        assert_eq!((back.from, back.to, &back.events, back.stamp), (3, 5, &d.events, Stamp::default()));
        assert_eq!(list.apply_delta(&back).unwrap(), 1);
        assert!(list.is_revoked(None, Some("k"), None, None, None));
        // A version-1 decoder refuses version 2 as a version it does not know.
        let v2 = crate::wire::encode_snapshot(&crate::Denylist::new([4; 16]), Stamp::default(), &s);
        assert_eq!(decode_snapshot(&v2, &pk).unwrap_err(), WireError::UnsupportedVersion { found: 2 });
    }
}
