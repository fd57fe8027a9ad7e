//! The replication wire format, shared by the revocation service and every replica.
//!
//! Two messages, both ending in a 64-byte ES256 signature (`r || s`) by the
//! revocation service over every byte before it. Integers are little-endian.
//!
//! **Snapshot** — the whole denylist at a sequence number:
//! ```text
//! "TGS\x01" | seq u64 | hash key [16] | n_jti u32 | n_sid u32 | n_sub u32
//! | n_jti × (fp u64, exp u32) | n_sid × (fp u64, exp u32) | n_sub × (fp u64, before u32, exp u32)
//! | signature [64]
//! ```
//! Entries are sorted by fingerprint, so equal lists encode to equal bytes.
//!
//! **Delta** — the denylist events with sequence numbers in `(from, to]`:
//! ```text
//! "TGD\x01" | from u64 | to u64 | n u32 | n × event | signature [64]
//! event = seq u64 | kind u8 (1 jti, 2 sid, 3 subject) | scoped u8 | exp u64
//!         | [before u64, subject only] | [iss_len u16, iss, if scoped] | id_len u16 | id
//! ```
//! Sequence numbers of events are strictly increasing within `(from, to]`; `to` may be
//! past the last event (the log's other events do not touch the denylist).
//!
//! A replica verifies the signature before reading anything else, refuses a snapshot
//! whose sequence is behind its own, and refuses a delta that would skip events
//! (`from` after its sequence) or move it backwards (`to` behind it).

use alloc::string::String;
use alloc::vec::Vec;

use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use sha2::{Digest, Sha256};

use crate::denylist::{Cutoff, Denylist, Entry, EntryKind, Fp, FpMap};
use crate::error::WireError;
use crate::jwk::P256Key;

const SNAPSHOT_MAGIC: &[u8; 4] = b"TGS\x01";
const DELTA_MAGIC: &[u8; 4] = b"TGD\x01";
const SIG_LEN: usize = 64;
/// Longest identifier or issuer in a delta event, in bytes.
pub const MAX_ID_BYTES: usize = 1024;
/// Most events in one delta.
pub const MAX_DELTA_EVENTS: usize = 1 << 20;

/// One denylist event of a delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaEvent {
    /// The event's sequence number in the service's log.
    pub seq: u64,
    /// The entry it adds.
    pub entry: Entry,
}

/// A decoded, verified delta.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delta {
    /// Exclusive lower bound: the replica's sequence this delta continues from.
    pub from: u64,
    /// Inclusive upper bound: the replica's sequence after applying it.
    pub to: u64,
    /// The denylist events in `(from, to]`, by increasing sequence.
    pub events: Vec<DeltaEvent>,
}

/// The revocation service's ES256 signing key for snapshots and deltas.
#[derive(Clone)]
pub struct DenylistSigner {
    key: p256::ecdsa::SigningKey,
}

impl core::fmt::Debug for DenylistSigner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("DenylistSigner(..)")
    }
}

impl DenylistSigner {
    /// A signer from a 32-byte P-256 secret scalar (randomness is the caller's).
    pub fn from_secret(secret: &[u8; 32]) -> Result<DenylistSigner, WireError> {
        p256::ecdsa::SigningKey::from_slice(secret).map(|key| DenylistSigner { key }).map_err(|_| WireError::Invalid)
    }

    /// The 32-byte secret scalar.
    pub fn secret(&self) -> [u8; 32] {
        self.key.to_bytes().into()
    }

    /// The public key, for replicas.
    pub fn public_key(&self) -> P256Key {
        let point = self.key.verifying_key().to_encoded_point(false);
        let b = point.as_bytes();
        // An uncompressed point from a valid signing key is always valid.
        P256Key::from_coordinates(&b[1..33], &b[33..65]).unwrap_or_else(|_| unreachable!())
    }

    /// The public key as a JWK (`kid` is its RFC 7638 thumbprint).
    pub fn public_jwk(&self) -> serde_json::Value {
        self.public_key().to_jwk()
    }

    fn sign(&self, body: &mut Vec<u8>) {
        let digest = Sha256::digest(&body[..]);
        let sig: p256::ecdsa::Signature = self.key.sign_prehash(&digest).unwrap_or_else(|_| unreachable!());
        body.extend_from_slice(&sig.to_bytes());
    }
}

fn verify_and_strip<'a>(bytes: &'a [u8], key: &P256Key) -> Result<&'a [u8], WireError> {
    if bytes.len() < SIG_LEN + 4 {
        return Err(WireError::Truncated);
    }
    let (body, sig) = bytes.split_at(bytes.len() - SIG_LEN);
    let sig = p256::ecdsa::Signature::from_slice(sig).map_err(|_| WireError::Signature)?;
    let digest = Sha256::digest(body);
    key.key.verify_prehash(&digest, &sig).map_err(|_| WireError::Signature)?;
    Ok(body)
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn str(&mut self) -> Result<String, WireError> {
        let n = usize::from(self.u16()?);
        if n > MAX_ID_BYTES {
            return Err(WireError::Invalid);
        }
        let b = self.take(n)?;
        core::str::from_utf8(b).map(String::from).map_err(|_| WireError::Invalid)
    }
}

/// Encodes and signs a snapshot of `list` at its current sequence number.
pub fn encode_snapshot(list: &Denylist, signer: &DenylistSigner) -> Vec<u8> {
    let mut jti: Vec<(Fp, u32)> = list.jti.iter().map(|(f, e)| (*f, *e)).collect();
    let mut sid: Vec<(Fp, u32)> = list.sid.iter().map(|(f, e)| (*f, *e)).collect();
    let mut sub: Vec<(Fp, Cutoff)> = list.sub.iter().map(|(f, c)| (*f, *c)).collect();
    jti.sort_unstable_by_key(|e| e.0);
    sid.sort_unstable_by_key(|e| e.0);
    sub.sort_unstable_by_key(|e| e.0);
    let mut out = Vec::with_capacity(40 + 12 * (jti.len() + sid.len()) + 16 * sub.len() + SIG_LEN);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&list.seq.to_le_bytes());
    out.extend_from_slice(&list.key);
    for n in [jti.len(), sid.len(), sub.len()] {
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    for (fp, exp) in jti.iter().chain(sid.iter()) {
        out.extend_from_slice(&fp.as_u64().to_le_bytes());
        out.extend_from_slice(&exp.to_le_bytes());
    }
    for (fp, c) in &sub {
        out.extend_from_slice(&fp.as_u64().to_le_bytes());
        out.extend_from_slice(&c.before.to_le_bytes());
        out.extend_from_slice(&c.exp.to_le_bytes());
    }
    signer.sign(&mut out);
    out
}

/// Verifies and decodes a snapshot into a fresh list.
pub fn decode_snapshot(bytes: &[u8], key: &P256Key) -> Result<Denylist, WireError> {
    let body = verify_and_strip(bytes, key)?;
    let mut r = Reader { buf: body };
    if r.take(4)? != SNAPSHOT_MAGIC {
        return Err(WireError::Format);
    }
    let seq = r.u64()?;
    let mut hash_key = [0u8; 16];
    hash_key.copy_from_slice(r.take(16)?);
    let (nj, ns, nu) = (r.u32()?, r.u32()?, r.u32()?);
    // In u64: with a 32-bit usize (wasm32) the sum and products could wrap, match a
    // short body and then reserve billions of slots.
    let need = (u64::from(nj) + u64::from(ns)) * 12 + u64::from(nu) * 16;
    if r.buf.len() as u64 != need {
        return Err(WireError::Truncated);
    }
    let (nj, ns, nu) = (nj as usize, ns as usize, nu as usize);
    let mut list = Denylist::new(hash_key);
    list.seq = seq;
    let mut read_exp_map = |n: usize, map: &mut FpMap<u32>| -> Result<(), WireError> {
        map.reserve(n);
        for _ in 0..n {
            let fp = Fp::from_u64(r.u64()?);
            let exp = r.u32()?;
            map.entry(fp).and_modify(|e| *e = (*e).max(exp)).or_insert(exp);
        }
        Ok(())
    };
    read_exp_map(nj, &mut list.jti)?;
    read_exp_map(ns, &mut list.sid)?;
    list.sub.reserve(nu);
    for _ in 0..nu {
        let fp = Fp::from_u64(r.u64()?);
        let c = Cutoff { before: r.u32()?, exp: r.u32()? };
        list.sub.insert(fp, c);
    }
    Ok(list)
}

/// Encodes and signs a delta. Events must be in `(from, to]` by increasing sequence
/// and within [`MAX_ID_BYTES`]; the service guarantees both, and decoding re-checks.
pub fn encode_delta(delta: &Delta, signer: &DenylistSigner) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + delta.events.len() * 64 + SIG_LEN);
    out.extend_from_slice(DELTA_MAGIC);
    out.extend_from_slice(&delta.from.to_le_bytes());
    out.extend_from_slice(&delta.to.to_le_bytes());
    out.extend_from_slice(&(delta.events.len() as u32).to_le_bytes());
    for ev in &delta.events {
        let e = &ev.entry;
        out.extend_from_slice(&ev.seq.to_le_bytes());
        out.push(e.kind.tag());
        out.push(u8::from(e.iss.is_some()));
        out.extend_from_slice(&e.exp.to_le_bytes());
        if let EntryKind::Subject { before } = e.kind {
            out.extend_from_slice(&before.to_le_bytes());
        }
        for s in e.iss.iter().chain(core::iter::once(&e.id)) {
            let b = &s.as_bytes()[..s.len().min(MAX_ID_BYTES)];
            out.extend_from_slice(&(b.len() as u16).to_le_bytes());
            out.extend_from_slice(b);
        }
    }
    signer.sign(&mut out);
    out
}

/// Verifies and decodes a delta.
pub fn decode_delta(bytes: &[u8], key: &P256Key) -> Result<Delta, WireError> {
    let body = verify_and_strip(bytes, key)?;
    let mut r = Reader { buf: body };
    if r.take(4)? != DELTA_MAGIC {
        return Err(WireError::Format);
    }
    let from = r.u64()?;
    let to = r.u64()?;
    let n = r.u32()? as usize;
    if to < from || n > MAX_DELTA_EVENTS || n > r.buf.len() / 20 {
        return Err(WireError::Invalid);
    }
    let mut events = Vec::with_capacity(n);
    let mut last = from;
    for _ in 0..n {
        let seq = r.u64()?;
        if seq <= last || seq > to {
            return Err(WireError::Invalid);
        }
        last = seq;
        let tag = r.u8()?;
        let scoped = r.u8()?;
        let exp = r.u64()?;
        let kind = match tag {
            1 => EntryKind::Jti,
            2 => EntryKind::Sid,
            3 => EntryKind::Subject { before: r.u64()? },
            _ => return Err(WireError::Invalid),
        };
        let iss = match scoped {
            0 => None,
            1 => Some(r.str()?),
            _ => return Err(WireError::Invalid),
        };
        let id = r.str()?;
        events.push(DeltaEvent { seq, entry: Entry { kind, iss, id, exp } });
    }
    if !r.buf.is_empty() {
        return Err(WireError::Truncated);
    }
    Ok(Delta { from, to, events })
}

impl Denylist {
    /// Replaces the list with a verified snapshot. Refused when the signature fails or
    /// the snapshot's sequence is behind this list's.
    pub fn apply_snapshot(&mut self, bytes: &[u8], key: &P256Key) -> Result<(), WireError> {
        let next = decode_snapshot(bytes, key)?;
        if next.seq < self.seq {
            return Err(WireError::Backwards { current: self.seq, offered: next.seq });
        }
        *self = next;
        Ok(())
    }

    /// Applies a verified delta; returns how many events were new. Refused when the
    /// signature fails, when events would be skipped (`from` after this list's
    /// sequence) or when it would move the sequence backwards.
    pub fn apply_delta(&mut self, bytes: &[u8], key: &P256Key) -> Result<usize, WireError> {
        let delta = decode_delta(bytes, key)?;
        self.apply_decoded_delta(&delta)
    }

    /// Applies an already-verified delta (see [`Denylist::apply_delta`]).
    pub fn apply_decoded_delta(&mut self, delta: &Delta) -> Result<usize, WireError> {
        if delta.from > self.seq {
            return Err(WireError::Gap { current: self.seq, from: delta.from });
        }
        if delta.to < self.seq {
            return Err(WireError::Backwards { current: self.seq, offered: delta.to });
        }
        let mut applied = 0;
        let current = self.seq;
        for ev in delta.events.iter().filter(|e| e.seq > current) {
            self.insert_entry(&ev.entry);
            applied += 1;
        }
        self.seq = delta.to;
        Ok(applied)
    }

    /// Folds log events into the list and advances its sequence (the service side).
    pub fn apply_events<'a>(&mut self, events: impl IntoIterator<Item = &'a DeltaEvent>, to: u64) {
        for ev in events {
            self.insert_entry(&ev.entry);
        }
        self.seq = self.seq.max(to);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(b: u8) -> DenylistSigner {
        DenylistSigner::from_secret(&[b; 32]).unwrap()
    }

    fn ev(seq: u64, kind: EntryKind, iss: Option<&str>, id: &str) -> DeltaEvent {
        DeltaEvent { seq, entry: Entry { kind, iss: iss.map(String::from), id: id.into(), exp: 1000 + seq } }
    }

    #[test]
    fn snapshot_round_trip_and_determinism() {
        let s = signer(7);
        let mut d = Denylist::new([3; 16]);
        d.insert(EntryKind::Jti, None, "a", 10);
        d.insert(EntryKind::Sid, Some("i"), "b", 20);
        d.insert(EntryKind::Subject { before: 5 }, None, "c", 30);
        d.seq = 42;
        let bytes = encode_snapshot(&d, &s);
        let back = decode_snapshot(&bytes, &s.public_key()).unwrap();
        assert!(back.same_entries(&d));
        assert_eq!(encode_snapshot(&back, &s), bytes);
    }

    #[test]
    fn wrong_key_or_flipped_bit_is_refused() {
        let s = signer(7);
        let bytes = encode_snapshot(&Denylist::new([0; 16]), &s);
        assert_eq!(decode_snapshot(&bytes, &signer(8).public_key()).unwrap_err(), WireError::Signature);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert_eq!(decode_snapshot(&b, &s.public_key()).unwrap_err(), WireError::Signature, "byte {i}");
        }
        assert_eq!(decode_snapshot(&bytes[..10], &s.public_key()).unwrap_err(), WireError::Truncated);
    }

    #[test]
    fn delta_round_trip_and_sequence_rules() {
        let s = signer(9);
        let pk = s.public_key();
        let delta = Delta {
            from: 0,
            to: 5,
            events: alloc::vec![
                ev(1, EntryKind::Jti, None, "j"),
                ev(3, EntryKind::Sid, Some("iss"), "s"),
                ev(4, EntryKind::Subject { before: 77 }, None, "u"),
            ],
        };
        let bytes = encode_delta(&delta, &s);
        assert_eq!(decode_delta(&bytes, &pk).unwrap(), delta);
        let mut d = Denylist::default();
        assert_eq!(d.apply_delta(&bytes, &pk).unwrap(), 3);
        assert_eq!(d.seq(), 5);
        assert!(d.contains_sid(Some("iss"), "s"));
        // Re-applying is idempotent; an older delta is refused; a gap is refused.
        assert_eq!(d.apply_delta(&bytes, &pk).unwrap(), 0);
        let old = encode_delta(&Delta { from: 0, to: 2, events: alloc::vec![] }, &s);
        assert_eq!(d.apply_delta(&old, &pk).unwrap_err(), WireError::Backwards { current: 5, offered: 2 });
        let gap = encode_delta(&Delta { from: 7, to: 9, events: alloc::vec![] }, &s);
        assert_eq!(d.apply_delta(&gap, &pk).unwrap_err(), WireError::Gap { current: 5, from: 7 });
        // A snapshot behind the replica is refused.
        let snap = encode_snapshot(&Denylist::default(), &s);
        assert_eq!(d.apply_snapshot(&snap, &pk).unwrap_err(), WireError::Backwards { current: 5, offered: 0 });
    }

    #[test]
    fn out_of_order_events_are_invalid() {
        let s = signer(9);
        let bad = Delta {
            from: 0,
            to: 5,
            events: alloc::vec![ev(3, EntryKind::Jti, None, "a"), ev(2, EntryKind::Jti, None, "b")],
        };
        assert_eq!(decode_delta(&encode_delta(&bad, &s), &s.public_key()).unwrap_err(), WireError::Invalid);
        let past = Delta { from: 0, to: 1, events: alloc::vec![ev(2, EntryKind::Jti, None, "a")] };
        assert_eq!(decode_delta(&encode_delta(&past, &s), &s.public_key()).unwrap_err(), WireError::Invalid);
    }

    #[test]
    fn snapshot_counts_that_would_wrap_a_32_bit_size_are_truncated() {
        let s = signer(4);
        // (0x1555_5556 * 12) mod 2^32 = 8 and (0x1000_0000 * 16) mod 2^32 = 0: with
        // usize arithmetic on wasm32 these counts "needed" the 8 bytes that follow.
        for (nj, ns, nu) in [(0x1555_5556u32, 0u32, 0u32), (0, 0x1555_5556, 0), (0, 0, 0x1000_0000), (u32::MAX, 1, 0)] {
            let mut body = Vec::new();
            body.extend_from_slice(SNAPSHOT_MAGIC);
            body.extend_from_slice(&1u64.to_le_bytes());
            body.extend_from_slice(&[0; 16]);
            for n in [nj, ns, nu] {
                body.extend_from_slice(&n.to_le_bytes());
            }
            body.extend_from_slice(&[0; 8]);
            s.sign(&mut body);
            assert_eq!(decode_snapshot(&body, &s.public_key()).unwrap_err(), WireError::Truncated);
        }
    }

    #[test]
    fn public_jwk_parses_back() {
        let s = signer(1);
        let jwk = s.public_jwk();
        let k = crate::Jwk::from_object(jwk.as_object().unwrap()).unwrap();
        assert!(k.fits(crate::Algorithm::Es256, 0));
        assert_eq!(jwk["kid"].as_str().unwrap().len(), 43);
    }
}
