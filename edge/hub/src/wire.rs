//! What the hub reads of the signed messages it stores: the header only, never the
//! signature. The hub is not trusted for the content (every edge verifies the
//! service's signature itself), so it needs just enough to index a message: a
//! snapshot's sequence number, a delta's `(from, to]`. The bytes are stored and served
//! unchanged.
//!
//! Also the framing of `GET since/N`: the signed deltas after N, each as it was
//! received, one after another as `len u32 LE | message`.

/// Shortest message with a header and a signature.
const SIG_LEN: usize = 64;

/// The header of a signed replication message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A snapshot at `seq`.
    Snapshot {
        /// Its sequence number.
        seq: u64,
    },
    /// A delta of the events in `(from, to]`.
    Delta {
        /// Exclusive lower bound.
        from: u64,
        /// Inclusive upper bound.
        to: u64,
    },
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// Reads the header of a snapshot or delta (`TGS`/`TGD`, format versions 1 and 2).
/// `None` for anything else, or a message too short to hold a header and a signature.
pub fn peek(bytes: &[u8]) -> Option<Header> {
    if bytes.len() < 4 + 16 + SIG_LEN {
        return None;
    }
    // Version 2 puts the stamp (epoch [16], created u64) before the sequence numbers.
    let (kind, at) = match &bytes[..4] {
        b"TGS\x01" => (b'S', 4),
        b"TGD\x01" => (b'D', 4),
        b"TGS\x02" => (b'S', 28),
        b"TGD\x02" => (b'D', 28),
        _ => return None,
    };
    if kind == b'S' {
        return Some(Header::Snapshot { seq: u64_at(bytes, at)? });
    }
    let (from, to) = (u64_at(bytes, at)?, u64_at(bytes, at + 8)?);
    (from <= to).then_some(Header::Delta { from, to })
}

/// Frames messages for `GET since/N`.
pub fn frame<'a>(messages: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        out.extend_from_slice(&(m.len() as u32).to_le_bytes());
        out.extend_from_slice(m);
    }
    out
}

/// Splits a framed body into its messages; `None` when the framing is broken.
pub fn unframe(mut body: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let len = u32::from_le_bytes(body.get(..4)?.try_into().ok()?) as usize;
        let msg = body.get(4..4 + len)?;
        out.push(msg);
        body = &body[4 + len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::denylist::EntryKind;
    use tollgate_core::wire::{encode_delta, encode_snapshot, Delta, DeltaEvent, DenylistSigner, Stamp};
    use tollgate_core::{Denylist, Entry};

    #[test]
    fn reads_what_the_core_writes() {
        let s = DenylistSigner::from_secret(&[5; 32]).unwrap();
        let mut list = Denylist::new([1; 16]);
        list.set_seq(42);
        let stamp = Stamp { epoch: [9; 16], created: 1_700_000_000 };
        assert_eq!(peek(&encode_snapshot(&list, stamp, &s)), Some(Header::Snapshot { seq: 42 }));
        let ev = DeltaEvent { seq: 43, entry: Entry { kind: EntryKind::Jti, iss: None, id: "j".into(), exp: 9 } };
        let d = encode_delta(&Delta { stamp, from: 42, to: 44, events: vec![ev] }, &s);
        assert_eq!(peek(&d), Some(Header::Delta { from: 42, to: 44 }));
        assert_eq!(peek(&d[..40]), None);
        let mut bad = d.clone();
        bad[0] = b'X';
        assert_eq!(peek(&bad), None);
        // from > to is refused.
        let mut back = d;
        back[28..36].copy_from_slice(&50u64.to_le_bytes());
        assert_eq!(peek(&back), None);
    }

    #[test]
    fn framing_round_trips_and_refuses_truncation() {
        let a = vec![1u8; 70];
        let b = vec![2u8; 3];
        let f = frame([a.as_slice(), b.as_slice()]);
        assert_eq!(unframe(&f).unwrap(), vec![a.as_slice(), b.as_slice()]);
        assert_eq!(unframe(&[]).unwrap().len(), 0);
        assert!(unframe(&f[..f.len() - 1]).is_none());
        assert!(unframe(&f[..3]).is_none());
    }
}
