//! The replication wire format, shared by the revocation service and every replica.
//!
//! Two messages, both ending in a 64-byte ES256 signature (`r || s`) by the
//! revocation service over every byte before it. Integers are little-endian. This is
//! version 2 (the fourth byte of the magic); [`v1`] is the previous one, which the
//! service can still serve to replicas that do not ask for version 2 while a fleet
//! upgrades (see "Upgrading a fleet" below).
//!
//! Every message carries, under the signature, the service's **epoch** (16 random
//! bytes drawn once per data directory: a service restored from a backup of another
//! directory, or started afresh, has another) and its **creation time** (seconds since
//! the epoch, the service's clock): the [`Stamp`].
//!
//! **Snapshot** — the whole denylist at a sequence number:
//! ```text
//! "TGS\x02" | epoch [16] | created u64 | seq u64 | hash key [16]
//! | n_jti u32 | n_sid u32 | n_sub u32
//! | n_jti × (fp u64, exp u32) | n_sid × (fp u64, exp u32) | n_sub × (fp u64, before u32, exp u32)
//! | signature [64]
//! ```
//! Fingerprints are those of [`Denylist`] (one keyed hash per identifier); each section
//! is strictly increasing by fingerprint, so equal lists encode to equal bytes, and a
//! decoder refuses anything else. A fingerprint's lowest three bits are its kind (bits
//! 1–2: 0 jti, 1 sid, 2 subject, matching its section) and whether it is scoped to an
//! issuer (bit 0), so a replica learns whether any entry is scoped (and skips the
//! scoped probes when none is) without a separate flag.
//!
//! **Delta** — the denylist events with sequence numbers in `(from, to]`:
//! ```text
//! "TGD\x02" | epoch [16] | created u64 | from u64 | to u64 | n u32 | n × event | signature [64]
//! event = seq u64 | kind u8 (1 jti, 2 sid, 3 subject) | scoped u8 | exp u64
//!         | [before u64, subject only] | [iss_len u16, iss, if scoped] | id_len u16 | id
//! ```
//! Sequence numbers of events are strictly increasing within `(from, to]`; `to` may be
//! past the last event (the log's other events do not touch the denylist).
//!
//! # Decoding
//!
//! A decoder first reads the magic: a `TGS`/`TGD` message of another version is
//! [`WireError::UnsupportedVersion`] (never misread), anything else
//! [`WireError::Format`]. Then it verifies the signature, and only then reads the rest.
//!
//! # Accepting
//!
//! [`Denylist::apply_snapshot`] and [`Denylist::apply_delta`] enforce the sequence:
//! no snapshot behind the list, no delta that skips events or moves it backwards.
//! Replicas that can be replayed to or rolled back (anything fetched over a network)
//! use [`Acceptance`] as well, through [`Denylist::apply_snapshot_accepted`] and
//! [`Denylist::apply_delta_accepted`]: a message from another epoch is refused unless
//! the replica is re-bootstrapping ([`Acceptance::rebootstrap`]), one created longer
//! ago than the replica's staleness bound is refused, and so is a sequence below the
//! replica's high-water mark — which a replica persists ([`HighWater`]) so that a new
//! instance refuses what the old one would have.
//!
//! # Upgrading a fleet
//!
//! Service first, then edges. A replica asks for this version with `?wire=2` on
//! `GET /v1/denylist`; during the upgrade window the service is started with
//! `legacy_wire_v1 = true` and answers requests without it in version 1, which the
//! replicas built before version 2 understand. Once every edge runs a build that asks
//! for version 2, the window is closed. A replica of this version that receives a
//! version-1 answer (from a service not yet upgraded) gets
//! [`WireError::UnsupportedVersion`] and keeps what it has: it goes stale and fails
//! closed, it never misreads.

use alloc::string::String;
use alloc::vec::Vec;

use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use sha2::{Digest, Sha256};

use crate::denylist::{Denylist, Entry, EntryKind, HashKey, Slot};
use crate::error::WireError;
use crate::jwk::P256Key;

pub mod v1;

/// The version this module encodes and decodes.
pub const VERSION: u8 = 2;
const SNAPSHOT_MAGIC: &[u8; 3] = b"TGS";
const DELTA_MAGIC: &[u8; 3] = b"TGD";
const SIG_LEN: usize = 64;
/// Longest identifier or issuer in a delta event, in bytes.
pub const MAX_ID_BYTES: usize = 1024;
/// Most events in one delta.
pub const MAX_DELTA_EVENTS: usize = 1 << 20;

/// The service's epoch: 16 random bytes fixed per data directory.
pub type Epoch = [u8; 16];

/// What every message says about where and when it was made, under the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Stamp {
    /// The epoch of the service that made it.
    pub epoch: Epoch,
    /// When it was made: seconds since the Unix epoch, by the service's clock.
    pub created: u64,
}

/// One denylist event of a delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaEvent {
    /// The event's sequence number in the service's log.
    pub seq: u64,
    /// The entry it adds.
    pub entry: Entry,
}

/// A delta: the denylist events of `(from, to]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delta {
    /// The service's epoch and the delta's creation time.
    pub stamp: Stamp,
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
        let point = self.key.verifying_key().to_sec1_point(false);
        let b = point.as_bytes();
        // An uncompressed point from a valid signing key is always valid.
        P256Key::from_coordinates(&b[1..33], &b[33..65]).unwrap_or_else(|_| unreachable!())
    }

    /// The public key as a JWK (`kid` is its RFC 7638 thumbprint).
    pub fn public_jwk(&self) -> serde_json::Value {
        self.public_key().to_jwk()
    }

    /// Appends the signature over `body` to it.
    pub(crate) fn sign(&self, body: &mut Vec<u8>) {
        let digest = Sha256::digest(&body[..]);
        let sig: p256::ecdsa::Signature = self.key.sign_prehash(&digest).unwrap_or_else(|_| unreachable!());
        body.extend_from_slice(&sig.to_bytes());
    }
}

/// Checks the magic (`magic` of `version`), then the signature; the signed body after
/// the magic.
fn open<'a>(bytes: &'a [u8], magic: &[u8; 3], version: u8, key: &P256Key) -> Result<&'a [u8], WireError> {
    match bytes.get(..4) {
        None => return Err(WireError::Truncated),
        Some(m) if &m[..3] == magic && m[3] != version => return Err(WireError::UnsupportedVersion { found: m[3] }),
        Some(m) if &m[..3] != magic => return Err(WireError::Format),
        Some(_) => {}
    }
    if bytes.len() < SIG_LEN + 4 {
        return Err(WireError::Truncated);
    }
    let (body, sig) = bytes.split_at(bytes.len() - SIG_LEN);
    let sig = p256::ecdsa::Signature::from_slice(sig).map_err(|_| WireError::Signature)?;
    let digest = Sha256::digest(body);
    key.key.verify_prehash(&digest, &sig).map_err(|_| WireError::Signature)?;
    Ok(&body[4..])
}

pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError::Truncated);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(crate) fn str(&mut self) -> Result<String, WireError> {
        let n = usize::from(self.u16()?);
        if n > MAX_ID_BYTES {
            return Err(WireError::Invalid);
        }
        let b = self.take(n)?;
        core::str::from_utf8(b).map(String::from).map_err(|_| WireError::Invalid)
    }
    fn stamp(&mut self) -> Result<Stamp, WireError> {
        Ok(Stamp { epoch: self.array()?, created: self.u64()? })
    }
}

fn put_stamp(out: &mut Vec<u8>, stamp: &Stamp) {
    out.extend_from_slice(&stamp.epoch);
    out.extend_from_slice(&stamp.created.to_le_bytes());
}

/// Encodes and signs a snapshot of `list` at its current sequence number.
pub fn encode_snapshot(list: &Denylist, stamp: Stamp, signer: &DenylistSigner) -> Vec<u8> {
    let [jti, sid, sub] = list.sorted_by_kind();
    let mut out = Vec::with_capacity(68 + 12 * (jti.len() + sid.len()) + 16 * sub.len() + SIG_LEN);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.push(VERSION);
    put_stamp(&mut out, &stamp);
    out.extend_from_slice(&list.seq.to_le_bytes());
    out.extend_from_slice(list.hash_key());
    for n in [jti.len(), sid.len(), sub.len()] {
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
    for s in jti.iter().chain(sid.iter()) {
        out.extend_from_slice(&s.fp.to_le_bytes());
        out.extend_from_slice(&s.exp.to_le_bytes());
    }
    for s in &sub {
        out.extend_from_slice(&s.fp.to_le_bytes());
        out.extend_from_slice(&s.before.to_le_bytes());
        out.extend_from_slice(&s.exp.to_le_bytes());
    }
    signer.sign(&mut out);
    out
}

/// Verifies and decodes a snapshot into a fresh list, whose [`Denylist::stamp`] is
/// the snapshot's.
pub fn decode_snapshot(bytes: &[u8], key: &P256Key) -> Result<Denylist, WireError> {
    let mut r = Reader { buf: open(bytes, SNAPSHOT_MAGIC, VERSION, key)? };
    let stamp = r.stamp()?;
    let seq = r.u64()?;
    let hash_key: HashKey = r.array()?;
    let (nj, ns, nu) = (r.u32()?, r.u32()?, r.u32()?);
    // In u64: with a 32-bit usize (wasm32) the sum and products could wrap, match a
    // short body and then reserve billions of slots.
    let need = (u64::from(nj) + u64::from(ns)) * 12 + u64::from(nu) * 16;
    if r.buf.len() as u64 != need {
        return Err(WireError::Truncated);
    }
    let mut list = Denylist::with_capacity(hash_key, nj as usize + ns as usize + nu as usize);
    for (kind, n) in [nj, ns, nu].into_iter().enumerate() {
        let mut last = 0u64;
        for _ in 0..n {
            let fp = r.u64()?;
            let (before, exp) = if kind == 2 { (r.u32()?, r.u32()?) } else { (0, r.u32()?) };
            // Strictly increasing (so never 0, the empty slot), in its kind's section.
            if fp <= last || Slot::kind_of(fp) != kind {
                return Err(WireError::Invalid);
            }
            last = fp;
            list.insert_slot(Slot { fp, exp, before });
        }
    }
    list.seq = seq;
    list.stamp = Some(stamp);
    Ok(list)
}

/// Encodes and signs a delta. Events must be in `(from, to]` by increasing sequence
/// and within [`MAX_ID_BYTES`]; the service guarantees both, and decoding re-checks.
pub fn encode_delta(delta: &Delta, signer: &DenylistSigner) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + delta.events.len() * 64 + SIG_LEN);
    out.extend_from_slice(DELTA_MAGIC);
    out.push(VERSION);
    put_stamp(&mut out, &delta.stamp);
    put_delta_body(&mut out, delta);
    signer.sign(&mut out);
    out
}

/// `from | to | n | events`: the same in both versions.
pub(crate) fn put_delta_body(out: &mut Vec<u8>, delta: &Delta) {
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
            let b = &s.as_bytes()[..floor_char_boundary(s, MAX_ID_BYTES)];
            out.extend_from_slice(&(b.len() as u16).to_le_bytes());
            out.extend_from_slice(b);
        }
    }
}

/// The largest index `<= max` at a char boundary of `s` (so a cut string stays UTF-8).
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

/// Verifies and decodes a delta.
pub fn decode_delta(bytes: &[u8], key: &P256Key) -> Result<Delta, WireError> {
    let mut r = Reader { buf: open(bytes, DELTA_MAGIC, VERSION, key)? };
    let stamp = r.stamp()?;
    let (from, to, events) = read_delta_body(&mut r)?;
    Ok(Delta { stamp, from, to, events })
}

/// Reads `from | to | n | events` to the end of the body.
pub(crate) fn read_delta_body(r: &mut Reader<'_>) -> Result<(u64, u64, Vec<DeltaEvent>), WireError> {
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
    Ok((from, to, events))
}

/// The newest position a replica has accepted: the epoch it follows and the highest
/// sequence number it holds. Persist it where the platform allows (24 bytes:
/// [`HighWater::to_bytes`]) and give it to [`Acceptance::resume`], so that a new
/// instance refuses what this one would have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HighWater {
    /// The epoch of the service whose messages the replica follows.
    pub epoch: Epoch,
    /// The highest sequence number accepted.
    pub seq: u64,
}

impl HighWater {
    /// `epoch | seq u64 LE`.
    pub fn to_bytes(&self) -> [u8; 24] {
        let mut b = [0; 24];
        b[..16].copy_from_slice(&self.epoch);
        b[16..].copy_from_slice(&self.seq.to_le_bytes());
        b
    }

    /// Reads [`HighWater::to_bytes`]; `None` unless exactly 24 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<HighWater> {
        let b: &[u8; 24] = b.try_into().ok()?;
        let mut epoch = [0; 16];
        epoch.copy_from_slice(&b[..16]);
        let mut seq = [0; 8];
        seq.copy_from_slice(&b[16..]);
        Some(HighWater { epoch, seq: u64::from_le_bytes(seq) })
    }
}

/// A replica's acceptance rules and their state: pure functions of a message's
/// [`Stamp`] and sequence, the replica's [`HighWater`] mark and the time `now` (seconds
/// since the Unix epoch, the caller's clock).
///
/// - **Epoch.** A message from another epoch than the mark's is refused
///   ([`WireError::Epoch`]) unless the replica is re-bootstrapping, and then only a
///   snapshot: a new epoch starts with one. A replica without a mark is bootstrapping
///   and takes a snapshot from any epoch.
/// - **Age.** A message created more than `max_age_seconds` before `now` is refused
///   ([`WireError::TooOld`]): a replayed old message cannot pass for fresh. A message
///   from the future (the service's clock ahead of the replica's) is accepted.
/// - **Sequence.** Within an epoch, a snapshot below the mark, or a delta ending below
///   it, is refused ([`WireError::Backwards`]). A delta before any snapshot is refused
///   ([`WireError::NoSnapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acceptance {
    max_age: u64,
    mark: Option<HighWater>,
    rebootstrapping: bool,
}

impl Acceptance {
    /// A replica starting without a mark: it accepts the first snapshot of any epoch.
    pub fn new(max_age_seconds: u64) -> Acceptance {
        Acceptance { max_age: max_age_seconds, mark: None, rebootstrapping: false }
    }

    /// A replica resuming from a persisted mark: same epoch, and never below it.
    pub fn resume(max_age_seconds: u64, mark: HighWater) -> Acceptance {
        Acceptance { max_age: max_age_seconds, mark: Some(mark), rebootstrapping: false }
    }

    /// The staleness bound, seconds.
    pub fn max_age_seconds(&self) -> u64 {
        self.max_age
    }

    /// The newest position accepted, to persist.
    pub fn high_water(&self) -> Option<HighWater> {
        self.mark
    }

    /// Allows the next snapshot to come from another epoch or below the mark: for an
    /// operator who has replaced the service's data directory or restored it from a
    /// backup. Ends with that snapshot.
    pub fn rebootstrap(&mut self) {
        self.rebootstrapping = true;
    }

    /// Whether [`Acceptance::rebootstrap`] is in effect.
    pub fn is_rebootstrapping(&self) -> bool {
        self.rebootstrapping
    }

    fn check_age(&self, stamp: &Stamp, now: u64) -> Result<(), WireError> {
        if now.saturating_sub(stamp.created) > self.max_age {
            return Err(WireError::TooOld { created: stamp.created, now });
        }
        Ok(())
    }

    /// Whether a message stamped `stamp` was created within the staleness bound of
    /// `now` (one from the future counts as recent).
    pub fn is_recent(&self, stamp: &Stamp, now: u64) -> bool {
        self.check_age(stamp, now).is_ok()
    }

    /// Whether a snapshot at `seq` stamped `stamp` may be applied at `now`.
    pub fn check_snapshot(&self, stamp: &Stamp, seq: u64, now: u64) -> Result<(), WireError> {
        self.check_age(stamp, now)?;
        self.check_snapshot_position(stamp, seq)
    }

    /// [`Acceptance::check_snapshot`] without the age rule: epoch and sequence only.
    pub fn check_snapshot_position(&self, stamp: &Stamp, seq: u64) -> Result<(), WireError> {
        match self.mark {
            None => Ok(()),
            // A replaced data directory (another epoch) or a restored backup (the same
            // epoch, a lower sequence): the operator asked for either by name.
            Some(_) if self.rebootstrapping => Ok(()),
            Some(m) if m.epoch != stamp.epoch => Err(WireError::Epoch),
            Some(m) if seq < m.seq => Err(WireError::Backwards { current: m.seq, offered: seq }),
            Some(_) => Ok(()),
        }
    }

    /// Whether a delta ending at `to` stamped `stamp` may be applied at `now` (the
    /// list's own sequence decides about gaps).
    pub fn check_delta(&self, stamp: &Stamp, to: u64, now: u64) -> Result<(), WireError> {
        self.check_age(stamp, now)?;
        self.check_delta_position(stamp, to)
    }

    /// [`Acceptance::check_delta`] without the age rule: epoch and sequence only.
    pub fn check_delta_position(&self, stamp: &Stamp, to: u64) -> Result<(), WireError> {
        match self.mark {
            None => Err(WireError::NoSnapshot),
            Some(m) if m.epoch != stamp.epoch => Err(WireError::Epoch),
            Some(m) if to < m.seq => Err(WireError::Backwards { current: m.seq, offered: to }),
            Some(_) => Ok(()),
        }
    }

    /// Records an applied snapshot (`snapshot`) or delta ending at `seq`.
    pub fn record(&mut self, stamp: &Stamp, seq: u64, snapshot: bool) {
        let seq = match self.mark {
            Some(m) if m.epoch == stamp.epoch && !(snapshot && self.rebootstrapping) => m.seq.max(seq),
            _ => seq,
        };
        self.mark = Some(HighWater { epoch: stamp.epoch, seq });
        if snapshot {
            self.rebootstrapping = false;
        }
    }
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
    /// signature fails, when it comes from another epoch than the list's snapshot, when
    /// events would be skipped (`from` after this list's sequence) or when it would
    /// move the sequence backwards.
    pub fn apply_delta(&mut self, bytes: &[u8], key: &P256Key) -> Result<usize, WireError> {
        let delta = decode_delta(bytes, key)?;
        self.apply_decoded_delta(&delta)
    }

    /// Applies an already-verified delta (see [`Denylist::apply_delta`]).
    pub fn apply_decoded_delta(&mut self, delta: &Delta) -> Result<usize, WireError> {
        if self.stamp.is_some_and(|s| s.epoch != delta.stamp.epoch) {
            return Err(WireError::Epoch);
        }
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
        self.stamp = Some(delta.stamp);
        Ok(applied)
    }

    /// [`Denylist::apply_snapshot`] under a replica's [`Acceptance`] rules at `now`
    /// (seconds); records the snapshot in `acceptance` when it is applied. A snapshot
    /// the rules allow replaces the list whatever its sequence (a re-bootstrap to a new
    /// epoch starts again from that epoch's sequence).
    pub fn apply_snapshot_accepted(
        &mut self,
        bytes: &[u8],
        key: &P256Key,
        acceptance: &mut Acceptance,
        now: u64,
    ) -> Result<(), WireError> {
        let next = decode_snapshot(bytes, key)?;
        let stamp = next.stamp.unwrap_or_default();
        acceptance.check_snapshot(&stamp, next.seq, now)?;
        let rebootstrapping = acceptance.is_rebootstrapping();
        if !rebootstrapping && self.stamp.is_some_and(|s| s.epoch == stamp.epoch) && next.seq < self.seq {
            return Err(WireError::Backwards { current: self.seq, offered: next.seq });
        }
        acceptance.record(&stamp, next.seq, true);
        *self = next;
        Ok(())
    }

    /// [`Denylist::apply_delta`] under a replica's [`Acceptance`] rules at `now`
    /// (seconds); records the delta in `acceptance` when it is applied.
    pub fn apply_delta_accepted(
        &mut self,
        bytes: &[u8],
        key: &P256Key,
        acceptance: &mut Acceptance,
        now: u64,
    ) -> Result<usize, WireError> {
        let delta = decode_delta(bytes, key)?;
        acceptance.check_delta(&delta.stamp, delta.to, now)?;
        if self.stamp.is_none() {
            return Err(WireError::NoSnapshot);
        }
        let n = self.apply_decoded_delta(&delta)?;
        acceptance.record(&delta.stamp, delta.to, false);
        Ok(n)
    }

    /// [`Denylist::apply_snapshot_accepted`] for a message a relay stored and serves
    /// later (the revocation hub holds the service's snapshot and deltas as they were
    /// signed): one created longer ago than the bound is still applied when it moves the
    /// list forward (the first snapshot, or a higher sequence), as history that does not
    /// make the replica fresh; one that adds nothing is refused ([`WireError::TooOld`]).
    /// Every other rule is [`Denylist::apply_snapshot_accepted`]'s. Returns whether the
    /// message was recent: only then has the replica heard from the signer.
    pub fn apply_snapshot_stored(
        &mut self,
        bytes: &[u8],
        key: &P256Key,
        acceptance: &mut Acceptance,
        now: u64,
    ) -> Result<bool, WireError> {
        let next = decode_snapshot(bytes, key)?;
        let stamp = next.stamp.unwrap_or_default();
        let recent = acceptance.is_recent(&stamp, now);
        acceptance.check_snapshot_position(&stamp, next.seq)?;
        let same_epoch = self.stamp.is_some_and(|s| s.epoch == stamp.epoch);
        let rebootstrapping = acceptance.is_rebootstrapping();
        if !rebootstrapping && same_epoch && next.seq < self.seq {
            return Err(WireError::Backwards { current: self.seq, offered: next.seq });
        }
        if !recent && same_epoch && !rebootstrapping && next.seq == self.seq {
            return Err(WireError::TooOld { created: stamp.created, now });
        }
        acceptance.record(&stamp, next.seq, true);
        *self = next;
        Ok(recent)
    }

    /// [`Denylist::apply_delta_accepted`] for a message a relay stored and serves later,
    /// under the rules of [`Denylist::apply_snapshot_stored`]: an old delta that moves
    /// the list forward is applied as history, an old one that adds nothing (a replayed
    /// heartbeat) is refused ([`WireError::TooOld`]). Returns whether it was recent.
    pub fn apply_delta_stored(
        &mut self,
        bytes: &[u8],
        key: &P256Key,
        acceptance: &mut Acceptance,
        now: u64,
    ) -> Result<bool, WireError> {
        let delta = decode_delta(bytes, key)?;
        let recent = acceptance.is_recent(&delta.stamp, now);
        acceptance.check_delta_position(&delta.stamp, delta.to)?;
        if self.stamp.is_none() {
            return Err(WireError::NoSnapshot);
        }
        if !recent && delta.to <= self.seq {
            return Err(WireError::TooOld { created: delta.stamp.created, now });
        }
        self.apply_decoded_delta(&delta)?;
        acceptance.record(&delta.stamp, delta.to, false);
        Ok(recent)
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

    const EPOCH: Epoch = [0xe1; 16];

    fn stamp(created: u64) -> Stamp {
        Stamp { epoch: EPOCH, created }
    }

    fn ev(seq: u64, kind: EntryKind, iss: Option<&str>, id: &str) -> DeltaEvent {
        DeltaEvent { seq, entry: Entry { kind, iss: iss.map(String::from), id: id.into(), exp: 1000 + seq } }
    }

    fn delta(from: u64, to: u64, events: Vec<DeltaEvent>) -> Delta {
        Delta { stamp: stamp(100), from, to, events }
    }

    #[test]
    fn snapshot_round_trip_and_determinism() {
        let s = signer(7);
        let mut d = Denylist::new([3; 16]);
        d.insert(EntryKind::Jti, None, "a", 10);
        d.insert(EntryKind::Sid, Some("i"), "b", 20);
        d.insert(EntryKind::Subject { before: 5 }, None, "c", 30);
        d.seq = 42;
        let bytes = encode_snapshot(&d, stamp(99), &s);
        let back = decode_snapshot(&bytes, &s.public_key()).unwrap();
        assert!(back.same_entries(&d));
        assert_eq!(back.stamp(), Some(stamp(99)));
        assert!(back.has_scoped() && back.contains_sid(Some("i"), "b") && back.subject_cutoff(None, "c") == Some(5));
        assert_eq!(encode_snapshot(&back, stamp(99), &s), bytes);
    }

    #[test]
    fn wrong_key_or_flipped_bit_is_refused() {
        let s = signer(7);
        let bytes = encode_snapshot(&Denylist::new([0; 16]), stamp(1), &s);
        assert_eq!(decode_snapshot(&bytes, &signer(8).public_key()).unwrap_err(), WireError::Signature);
        for i in 4..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert_eq!(decode_snapshot(&b, &s.public_key()).unwrap_err(), WireError::Signature, "byte {i}");
        }
        assert_eq!(decode_snapshot(&bytes[..10], &s.public_key()).unwrap_err(), WireError::Truncated);
    }

    #[test]
    fn other_versions_and_magics_are_typed_errors() {
        let s = signer(7);
        let pk = s.public_key();
        let mut snap = encode_snapshot(&Denylist::new([0; 16]), stamp(1), &s);
        let mut d = encode_delta(&delta(0, 1, alloc::vec![]), &s);
        for v in [0u8, 1, 3, 0xff] {
            snap[3] = v;
            d[3] = v;
            assert_eq!(decode_snapshot(&snap, &pk).unwrap_err(), WireError::UnsupportedVersion { found: v });
            assert_eq!(decode_delta(&d, &pk).unwrap_err(), WireError::UnsupportedVersion { found: v });
        }
        assert_eq!(decode_snapshot(&d, &pk).unwrap_err(), WireError::Format);
        assert_eq!(decode_delta(&snap, &pk).unwrap_err(), WireError::Format);
        // A genuine version-1 message, signed by the same key.
        let v1 = v1::encode_snapshot([3; 16], 5, core::iter::empty(), &s);
        assert_eq!(decode_snapshot(&v1, &pk).unwrap_err(), WireError::UnsupportedVersion { found: 1 });
        let mut list = Denylist::default();
        assert_eq!(list.apply_snapshot(&v1, &pk).unwrap_err(), WireError::UnsupportedVersion { found: 1 });
        assert!(list.is_empty() && list.seq() == 0);
    }

    #[test]
    fn snapshot_sections_must_be_strictly_increasing() {
        let s = signer(4);
        let body = |fps: &[u64]| {
            let mut b = Vec::new();
            b.extend_from_slice(b"TGS\x02");
            put_stamp(&mut b, &stamp(1));
            b.extend_from_slice(&1u64.to_le_bytes());
            b.extend_from_slice(&[0; 16]);
            for n in [fps.len() as u32, 0, 0] {
                b.extend_from_slice(&n.to_le_bytes());
            }
            for fp in fps {
                b.extend_from_slice(&fp.to_le_bytes());
                b.extend_from_slice(&9u32.to_le_bytes());
            }
            s.sign(&mut b);
            b
        };
        assert!(decode_snapshot(&body(&[8, 9, 17]), &s.public_key()).is_ok());
        // Out of order, repeated, zero, or of another kind (bits 1-2) than the section.
        for bad in [&[9, 8][..], &[8, 8], &[0, 8], &[8, 10]] {
            assert_eq!(decode_snapshot(&body(bad), &s.public_key()).unwrap_err(), WireError::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn delta_round_trip_and_sequence_rules() {
        let s = signer(9);
        let pk = s.public_key();
        let d0 = delta(
            0,
            5,
            alloc::vec![
                ev(1, EntryKind::Jti, None, "j"),
                ev(3, EntryKind::Sid, Some("iss"), "s"),
                ev(4, EntryKind::Subject { before: 77 }, None, "u"),
            ],
        );
        let bytes = encode_delta(&d0, &s);
        assert_eq!(decode_delta(&bytes, &pk).unwrap(), d0);
        let mut d = Denylist::default();
        assert_eq!(d.apply_delta(&bytes, &pk).unwrap(), 3);
        assert_eq!(d.seq(), 5);
        assert_eq!(d.stamp(), Some(stamp(100)));
        assert!(d.contains_sid(Some("iss"), "s"));
        // Re-applying is idempotent; an older delta is refused; a gap is refused.
        assert_eq!(d.apply_delta(&bytes, &pk).unwrap(), 0);
        let old = encode_delta(&delta(0, 2, alloc::vec![]), &s);
        assert_eq!(d.apply_delta(&old, &pk).unwrap_err(), WireError::Backwards { current: 5, offered: 2 });
        let gap = encode_delta(&delta(7, 9, alloc::vec![]), &s);
        assert_eq!(d.apply_delta(&gap, &pk).unwrap_err(), WireError::Gap { current: 5, from: 7 });
        // Another epoch's delta never continues this list.
        let mut other = delta(5, 6, alloc::vec![]);
        other.stamp.epoch = [2; 16];
        assert_eq!(d.apply_delta(&encode_delta(&other, &s), &pk).unwrap_err(), WireError::Epoch);
        // A snapshot behind the replica is refused.
        let snap = encode_snapshot(&Denylist::default(), stamp(1), &s);
        assert_eq!(d.apply_snapshot(&snap, &pk).unwrap_err(), WireError::Backwards { current: 5, offered: 0 });
    }

    #[test]
    fn out_of_order_events_are_invalid() {
        let s = signer(9);
        let bad = delta(0, 5, alloc::vec![ev(3, EntryKind::Jti, None, "a"), ev(2, EntryKind::Jti, None, "b")]);
        assert_eq!(decode_delta(&encode_delta(&bad, &s), &s.public_key()).unwrap_err(), WireError::Invalid);
        let past = delta(0, 1, alloc::vec![ev(2, EntryKind::Jti, None, "a")]);
        assert_eq!(decode_delta(&encode_delta(&past, &s), &s.public_key()).unwrap_err(), WireError::Invalid);
    }

    #[test]
    fn long_identifiers_are_cut_at_a_char_boundary() {
        let s = signer(9);
        let id = "é".repeat(600); // 1200 bytes
        let d = delta(
            0,
            1,
            alloc::vec![DeltaEvent { seq: 1, entry: Entry { kind: EntryKind::Jti, iss: None, id, exp: 1 } }],
        );
        let back = decode_delta(&encode_delta(&d, &s), &s.public_key()).unwrap();
        assert_eq!(back.events[0].entry.id, "é".repeat(512));
    }

    #[test]
    fn snapshot_counts_that_would_wrap_a_32_bit_size_are_truncated() {
        let s = signer(4);
        // (0x1555_5556 * 12) mod 2^32 = 8 and (0x1000_0000 * 16) mod 2^32 = 0: with
        // usize arithmetic on wasm32 these counts "needed" the 8 bytes that follow.
        for (nj, ns, nu) in [(0x1555_5556u32, 0u32, 0u32), (0, 0x1555_5556, 0), (0, 0, 0x1000_0000), (u32::MAX, 1, 0)] {
            let mut body = Vec::new();
            body.extend_from_slice(b"TGS\x02");
            put_stamp(&mut body, &stamp(1));
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
    fn acceptance_epoch_age_and_sequence() {
        let s = signer(5);
        let pk = s.public_key();
        let mut service = Denylist::new([1; 16]);
        service.insert(EntryKind::Jti, None, "j", 10_000);
        service.set_seq(10);
        let snap = |seq: u64, epoch: Epoch, created: u64| {
            let mut l = service.clone();
            l.set_seq(seq);
            encode_snapshot(&l, Stamp { epoch, created }, &s)
        };
        let now = 1_000;
        let mut acc = Acceptance::new(10);
        let mut list = Denylist::default();
        // Too old, whatever else.
        assert_eq!(
            list.apply_snapshot_accepted(&snap(10, EPOCH, now - 11), &pk, &mut acc, now).unwrap_err(),
            WireError::TooOld { created: now - 11, now }
        );
        assert_eq!(acc.high_water(), None);
        // A delta before any snapshot.
        let d = |from: u64, to: u64, epoch: Epoch| {
            encode_delta(&Delta { stamp: Stamp { epoch, created: now }, from, to, events: alloc::vec![] }, &s)
        };
        assert_eq!(list.apply_delta_accepted(&d(0, 1, EPOCH), &pk, &mut acc, now).unwrap_err(), WireError::NoSnapshot);
        // The first snapshot, from any epoch, at the bound exactly.
        list.apply_snapshot_accepted(&snap(10, EPOCH, now - 10), &pk, &mut acc, now).unwrap();
        assert_eq!(acc.high_water(), Some(HighWater { epoch: EPOCH, seq: 10 }));
        assert!(list.contains_jti(None, "j"));
        // Deltas of the epoch move it on; another epoch's are refused.
        assert_eq!(list.apply_delta_accepted(&d(10, 12, EPOCH), &pk, &mut acc, now).unwrap(), 0);
        assert_eq!(acc.high_water().map(|m| m.seq), Some(12));
        assert_eq!(list.apply_delta_accepted(&d(12, 13, [9; 16]), &pk, &mut acc, now).unwrap_err(), WireError::Epoch);
        // A snapshot below the mark, or from another epoch, is refused.
        assert_eq!(
            list.apply_snapshot_accepted(&snap(11, EPOCH, now), &pk, &mut acc, now).unwrap_err(),
            WireError::Backwards { current: 12, offered: 11 }
        );
        assert_eq!(
            list.apply_snapshot_accepted(&snap(50, [9; 16], now), &pk, &mut acc, now).unwrap_err(),
            WireError::Epoch
        );
        // A new instance resuming from the persisted mark refuses the same.
        let mark = HighWater::from_bytes(&acc.high_water().unwrap().to_bytes()).unwrap();
        let mut fresh = Acceptance::resume(10, mark);
        let mut fresh_list = Denylist::default();
        assert_eq!(
            fresh_list.apply_snapshot_accepted(&snap(11, EPOCH, now), &pk, &mut fresh, now).unwrap_err(),
            WireError::Backwards { current: 12, offered: 11 }
        );
        // Re-bootstrapping takes the other epoch's snapshot, even at a lower sequence,
        // then follows that epoch only.
        acc.rebootstrap();
        assert_eq!(list.apply_delta_accepted(&d(12, 13, [9; 16]), &pk, &mut acc, now).unwrap_err(), WireError::Epoch);
        list.apply_snapshot_accepted(&snap(3, [9; 16], now), &pk, &mut acc, now).unwrap();
        assert!(!acc.is_rebootstrapping());
        assert_eq!(acc.high_water(), Some(HighWater { epoch: [9; 16], seq: 3 }));
        assert_eq!(list.seq(), 3);
        assert_eq!(list.apply_delta_accepted(&d(12, 14, EPOCH), &pk, &mut acc, now).unwrap_err(), WireError::Epoch);
        assert_eq!(list.apply_delta_accepted(&d(3, 4, [9; 16]), &pk, &mut acc, now).unwrap(), 0);
        // A message from the future is fine.
        assert!(list.apply_delta_accepted(&d(4, 5, [9; 16]), &pk, &mut acc, now - 500).is_ok());
        // A restored backup: the same epoch, a lower sequence, only when asked for.
        assert_eq!(
            list.apply_snapshot_accepted(&snap(2, [9; 16], now), &pk, &mut acc, now).unwrap_err(),
            WireError::Backwards { current: 5, offered: 2 }
        );
        acc.rebootstrap();
        list.apply_snapshot_accepted(&snap(2, [9; 16], now), &pk, &mut acc, now).unwrap();
        assert_eq!((acc.high_water(), list.seq()), (Some(HighWater { epoch: [9; 16], seq: 2 }), 2));
        assert!(!acc.is_rebootstrapping());
    }

    #[test]
    fn stored_messages_old_history_applies_but_is_not_recent() {
        let s = signer(6);
        let pk = s.public_key();
        let mut service = Denylist::new([1; 16]);
        service.insert(EntryKind::Jti, None, "j", 10_000);
        service.set_seq(10);
        let snap = |seq: u64, created: u64| {
            let mut l = service.clone();
            l.set_seq(seq);
            encode_snapshot(&l, Stamp { epoch: EPOCH, created }, &s)
        };
        let d = |from: u64, to: u64, created: u64, epoch: Epoch| {
            let events = (from + 1..=to).map(|q| ev(q, EntryKind::Sid, None, "s")).take(1).collect();
            encode_delta(&Delta { stamp: Stamp { epoch, created }, from, to, events }, &s)
        };
        let now = 1_000;
        let mut acc = Acceptance::new(10);
        let mut list = Denylist::default();
        // An old first snapshot is taken as history: applied, not recent.
        assert_eq!(list.apply_snapshot_stored(&snap(10, now - 500), &pk, &mut acc, now), Ok(false));
        assert_eq!((list.seq(), acc.high_water().map(|m| m.seq)), (10, Some(10)));
        assert!(list.contains_jti(None, "j"));
        // Again at the same sequence adds nothing: refused as too old.
        assert_eq!(
            list.apply_snapshot_stored(&snap(10, now - 400), &pk, &mut acc, now).unwrap_err(),
            WireError::TooOld { created: now - 400, now }
        );
        // An old delta that moves it on is history; an old heartbeat at the head is refused.
        assert_eq!(list.apply_delta_stored(&d(10, 11, now - 300, EPOCH), &pk, &mut acc, now), Ok(false));
        assert!(list.contains_sid(None, "s"));
        assert_eq!(
            list.apply_delta_stored(&d(11, 11, now - 200, EPOCH), &pk, &mut acc, now).unwrap_err(),
            WireError::TooOld { created: now - 200, now }
        );
        // A recent heartbeat is what makes it fresh.
        assert_eq!(list.apply_delta_stored(&d(11, 11, now - 1, EPOCH), &pk, &mut acc, now), Ok(true));
        // Position rules stand whatever the age: gap, epoch, below the mark.
        assert!(matches!(
            list.apply_delta_stored(&d(13, 14, now, EPOCH), &pk, &mut acc, now),
            Err(WireError::Gap { .. })
        ));
        assert_eq!(list.apply_delta_stored(&d(11, 12, now, [9; 16]), &pk, &mut acc, now), Err(WireError::Epoch));
        assert_eq!(
            list.apply_snapshot_stored(&snap(10, now), &pk, &mut acc, now).unwrap_err(),
            WireError::Backwards { current: 11, offered: 10 }
        );
        // A newer snapshot, old or not, moves it on.
        assert_eq!(list.apply_snapshot_stored(&snap(20, now - 900), &pk, &mut acc, now), Ok(false));
        assert_eq!(list.apply_snapshot_stored(&snap(21, now), &pk, &mut acc, now), Ok(true));
        assert_eq!(acc.high_water().map(|m| m.seq), Some(21));
        // Not before a snapshot.
        let mut empty = Denylist::default();
        let mut acc2 = Acceptance::new(10);
        assert_eq!(empty.apply_delta_stored(&d(0, 1, now, EPOCH), &pk, &mut acc2, now), Err(WireError::NoSnapshot));
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
