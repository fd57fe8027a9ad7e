//! Checkpoints, start-up rebuild and retention.
//!
//! A checkpoint is the fold of the log at a sequence number, with every live entry's
//! identifier as posted and the API key that created it, in one file `checkpoint.bin`
//! in the data directory:
//!
//! ```text
//! "TGCK\x02" | seq u64 | k u32 | k × key id str | n u64 | n × entry | sha256 of everything before [32]
//! entry = seq u64 | tag u8 (1 jti, 2 sid, 3 subject) | exp u64 | before u64 | key u32
//!         | scoped u8 | [iss str] | id str          (str = len u16 | bytes; LE)
//! ```
//!
//! Files of the first version (`"TGCK\x01"`, without the key table and `key`) are
//! still read; their entries count against no key.
//!
//! It is written to a temporary file of its own, synced, renamed over the old one and
//! the directory synced, so a crash leaves either checkpoint whole; an older one never
//! replaces a newer one. Checkpoints and retention run one at a time (the service's
//! maintenance lock: the admin endpoints answer 409 `maintenance_running` while one
//! runs, shutdown waits for it). Start-up loads the checkpoint when present and folds
//! the log after it; without one it folds the whole log. Between the two, when the
//! denylist projection (`projection.rs`) continues from the checkpoint, its whole
//! groups stand in for the log's records they cover. Either way the two views of the
//! fold (fingerprints and identifiers, see `state.rs`) are built on two threads at
//! once, and the log is read by two more, each walking half of it.
//!
//! Retention ([`compact`]) is explicit: it writes a checkpoint at the durable head,
//! then drops the *prefix* of the log whose events are all older than the longest
//! token lifetime and whose denylist effect has expired (or that never had one),
//! stopping at the first event that is still live. Deltas from before the new floor
//! are then answered with 410, telling replicas to take a snapshot.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tollgate_core::{Denylist, Entry, EntryKind};

use crate::error::StoreError;
use crate::event::Summary;
use crate::projection::Span;
use crate::state::{Identifiers, Live};
use crate::store::{decode_seq, pair_key, pair_prefix, seq_key, Store};

const MAGIC: &[u8; 5] = b"TGCK\x02";
/// The first version's magic (no key table).
const MAGIC_V1: &[u8; 5] = b"TGCK\x01";
/// Log records handed from a reading thread to the folding threads at a time.
const REPLAY_CHUNK: usize = 4096;
/// Chunks a log reader may run ahead of the folding threads (bounds start-up memory).
const REPLAY_BUFFER: usize = 128;
const FILE: &str = "checkpoint.bin";
/// Temporary checkpoint files are `<TMP_PREFIX><pid>.<n>`: unique per write.
const TMP_PREFIX: &str = "checkpoint.bin.tmp.";

/// Where the checkpoint of `data_dir` lives.
pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

/// Encodes a checkpoint of `entries` at `seq`: `(seq of the last event touching the
/// entry, entry, id of the key that created it)`.
pub(crate) fn encode(seq: u64, entries: &[(u64, Entry, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + entries.len() * 52);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&seq.to_le_bytes());
    let mut keys: Vec<&str> = entries.iter().map(|(_, _, k)| *k).collect();
    keys.sort_unstable();
    keys.dedup();
    out.extend_from_slice(&(keys.len() as u32).to_le_bytes());
    for k in &keys {
        put_str(&mut out, k);
    }
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (s, e, k) in entries {
        let (tag, before) = match e.kind {
            EntryKind::Jti => (1u8, 0),
            EntryKind::Sid => (2, 0),
            EntryKind::Subject { before } => (3, before),
        };
        let key = keys.binary_search(k).unwrap_or(0) as u32;
        out.extend_from_slice(&s.to_le_bytes());
        out.push(tag);
        out.extend_from_slice(&e.exp.to_le_bytes());
        out.extend_from_slice(&before.to_le_bytes());
        out.extend_from_slice(&key.to_le_bytes());
        out.push(u8::from(e.iss.is_some()));
        if let Some(i) = &e.iss {
            put_str(&mut out, i);
        }
        put_str(&mut out, &e.id);
    }
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// One checkpoint entry as borrowed parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part<'a> {
    pub(crate) seq: u64,
    pub(crate) kind: EntryKind,
    pub(crate) iss: Option<&'a str>,
    pub(crate) id: &'a str,
    pub(crate) exp: u64,
    /// The id of the key that created the entry ("" in first-version files).
    pub(crate) key: &'a str,
}

/// A decoded checkpoint: its seq, and each entry with its seq and creating key.
#[cfg(test)]
type Decoded = (u64, Vec<(u64, Entry, String)>);

/// Decodes a checkpoint: `(seq, entries)`, checking its digest.
#[cfg(test)]
pub(crate) fn decode(bytes: &[u8]) -> Result<Decoded, StoreError> {
    verify(bytes)?;
    let mut entries = Vec::new();
    let seq = decode_with(bytes, |p| {
        let e = Entry { kind: p.kind, iss: p.iss.map(String::from), id: p.id.to_string(), exp: p.exp };
        entries.push((p.seq, e, p.key.to_string()));
    })?;
    Ok((seq, entries))
}

/// Checks a checkpoint's digest and magic.
pub(crate) fn verify(bytes: &[u8]) -> Result<(), StoreError> {
    if bytes.len() < MAGIC.len() + 16 + 32 {
        return Err(StoreError::corrupt("checkpoint"));
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body)[..] != *digest || (&body[..5] != MAGIC && &body[..5] != MAGIC_V1) {
        return Err(StoreError::corrupt("checkpoint"));
    }
    Ok(())
}

/// Decodes a checkpoint whose digest [`verify`] checked (or is being checked on
/// another thread: nothing decoded is used before both succeed), handing each entry to
/// `f`; returns the checkpoint's sequence number.
pub(crate) fn decode_with(bytes: &[u8], mut f: impl FnMut(Part<'_>)) -> Result<u64, StoreError> {
    let bad = || StoreError::corrupt("checkpoint");
    if bytes.len() < MAGIC.len() + 16 + 32 {
        return Err(bad());
    }
    let body = &bytes[..bytes.len() - 32];
    let v2 = match &body[..5] {
        m if m == MAGIC => true,
        m if m == MAGIC_V1 => false,
        _ => return Err(bad()),
    };
    let mut pos = 5;
    let mut take = |n: usize| -> Result<&[u8], StoreError> {
        let s = body.get(pos..pos + n).ok_or_else(bad)?;
        pos += n;
        Ok(s)
    };
    let u64_of = |b: &[u8]| -> Result<u64, StoreError> { Ok(u64::from_le_bytes(b.try_into().map_err(|_| bad())?)) };
    let u32_of = |b: &[u8]| -> Result<u32, StoreError> { Ok(u32::from_le_bytes(b.try_into().map_err(|_| bad())?)) };
    fn string<'a>(take: &mut impl FnMut(usize) -> Result<&'a [u8], StoreError>) -> Result<&'a str, StoreError> {
        let l = take(2)?;
        let n = usize::from(u16::from_le_bytes([l[0], l[1]]));
        std::str::from_utf8(take(n)?).map_err(|_| StoreError::corrupt("checkpoint"))
    }
    let seq = u64_of(take(8)?)?;
    let mut keys = Vec::new();
    if v2 {
        let k = u32_of(take(4)?)?;
        for _ in 0..k {
            keys.push(string(&mut take)?);
        }
    }
    let n = u64_of(take(8)?)?;
    for _ in 0..n {
        let s = u64_of(take(8)?)?;
        let tag = take(1)?[0];
        let exp = u64_of(take(8)?)?;
        let before = u64_of(take(8)?)?;
        let key = if v2 { *keys.get(u32_of(take(4)?)? as usize).ok_or_else(bad)? } else { "" };
        let scoped = take(1)?[0];
        let iss = match scoped {
            0 => None,
            1 => Some(string(&mut take)?),
            _ => return Err(bad()),
        };
        let id = string(&mut take)?;
        let kind = match tag {
            1 => EntryKind::Jti,
            2 => EntryKind::Sid,
            3 => EntryKind::Subject { before },
            _ => return Err(bad()),
        };
        f(Part { seq: s, kind, iss, id, exp, key });
    }
    if pos != body.len() {
        return Err(bad());
    }
    Ok(seq)
}

fn io(what: &str, p: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{what} {}: {e}", p.display()))
}

/// Encodes a checkpoint of `live` at its sequence number (hold the read lock only for this).
pub(crate) fn capture(live: &Live) -> (u64, Vec<u8>) {
    let seq = live.denylist.seq();
    (seq, encode(seq, &live.ids.to_entries()))
}

/// Writes an encoded checkpoint durably (a temporary file of its own, fsync, rename,
/// fsync the directory) and returns the sequence number of the checkpoint now in
/// place: `seq`, or that of the one already there when it is newer (an older
/// checkpoint never replaces a newer one: retention may already have dropped the log
/// between the two).
///
/// Callers serialise checkpoints and retention (the service's maintenance lock), so
/// the check of the current checkpoint and the rename cannot interleave with another
/// writer's; the unique temporary name keeps even unserialised writers from writing
/// into one another's file.
pub(crate) fn write(data_dir: &Path, seq: u64, bytes: &[u8]) -> Result<u64, StoreError> {
    static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);
    let dst = path(data_dir);
    if let Some(current) = current_seq(&dst)? {
        if current > seq {
            return Ok(current);
        }
    }
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = data_dir.join(format!("{TMP_PREFIX}{}.{n}", std::process::id()));
    if let Err(e) = write_then_rename(&tmp, &dst, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::File::open(data_dir).and_then(|d| d.sync_all()).map_err(|e| io("sync", data_dir, e))?;
    Ok(seq)
}

fn write_then_rename(tmp: &Path, dst: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(tmp).map_err(|e| io("create", tmp, e))?;
    f.write_all(bytes).map_err(|e| io("write", tmp, e))?;
    f.sync_all().map_err(|e| io("sync", tmp, e))?;
    drop(f);
    std::fs::rename(tmp, dst).map_err(|e| io("rename", dst, e))
}

/// The sequence number in the header of the checkpoint at `p` (None: no checkpoint,
/// or not one this build wrote). Only the header is read: the file was checked in
/// full when the service loaded it, and since then only [`write`] replaced it.
fn current_seq(p: &Path) -> Result<Option<u64>, StoreError> {
    let mut f = match std::fs::File::open(p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("open", p, e)),
    };
    let mut head = [0u8; MAGIC.len() + 8];
    match f.read_exact(&mut head) {
        Ok(()) if head[..MAGIC.len()] == MAGIC[..] || head[..MAGIC.len()] == MAGIC_V1[..] => {
            let seq: [u8; 8] = head[MAGIC.len()..].try_into().map_err(|_| StoreError::corrupt("checkpoint"))?;
            Ok(Some(u64::from_le_bytes(seq)))
        }
        Ok(()) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(io("read", p, e)),
    }
}

/// Removes temporary checkpoint files a crash left behind (start-up, before anything
/// can be writing one).
pub(crate) fn remove_stale_temps(data_dir: &Path) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(data_dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("read", data_dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io("read", data_dir, e))?;
        let name = entry.file_name();
        let stale =
            |n: &str| n.starts_with(TMP_PREFIX) || n == "checkpoint.bin.tmp" || n.starts_with("denylist.proj.tmp.");
        if name.to_str().is_some_and(stale) {
            let p = entry.path();
            std::fs::remove_file(&p).map_err(|e| io("remove", &p, e))?;
            tracing::info!(path = %p.display(), "removed a stale temporary checkpoint");
        }
    }
    Ok(())
}

/// What start-up found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rebuilt {
    /// The checkpoint's sequence number, if one was loaded.
    pub(crate) checkpoint: Option<u64>,
    /// Events folded from the log (not covered by the checkpoint or the projection).
    pub(crate) replayed: u64,
    /// Events covered by the denylist projection.
    pub(crate) projected: u64,
    /// Where the projection's trusted groups end: `(file offset, head reached)`.
    pub(crate) projection: Option<(u64, u64)>,
    /// The durable head: the last sequence number.
    pub(crate) head: u64,
    /// The retention floor.
    pub(crate) floor: u64,
    /// Entries pruned as expired.
    pub(crate) pruned: usize,
    /// Time spent loading the checkpoint.
    pub(crate) checkpoint_time: std::time::Duration,
    /// Time spent folding the projection and the log after the checkpoint.
    pub(crate) replay_time: std::time::Duration,
}

/// Log records a reader hands to the folding threads at a time.
type Chunk = Arc<Vec<(sled::IVec, sled::IVec)>>;

/// Rebuilds the fold from the checkpoint (if any), the denylist projection after it
/// (if usable: `projection.rs`) and the log after that, then prunes entries whose `exp`
/// is before `prune_before` (seconds). Refuses a log with a gap, or one whose dropped
/// prefix no checkpoint covers.
///
/// The fingerprints are built on a thread of their own while this thread builds the
/// identifiers (see the module docs); two more threads read the log.
pub(crate) fn rebuild(store: &Store, data_dir: &Path, prune_before: u64) -> Result<(Live, Rebuilt), StoreError> {
    let floor = store.floor()?;
    let hash_key = store.hash_key()?;
    let cp_path = path(data_dir);
    let t0 = std::time::Instant::now();
    let mut ids = Identifiers::default();
    let (mut denylist, checkpoint) = match std::fs::read(&cp_path) {
        Ok(bytes) => {
            ids.reserve(bytes.len() / 48);
            let bytes = &bytes;
            let ids = &mut ids;
            let (d, seq) = std::thread::scope(|scope| -> Result<(Denylist, u64), StoreError> {
                let fingerprints = scope.spawn(move || -> Result<Denylist, StoreError> {
                    verify(bytes)?;
                    let mut d = Denylist::new(hash_key);
                    decode_with(bytes, |p| d.insert(p.kind, p.iss, p.id, p.exp))?;
                    Ok(d)
                });
                let seq = decode_with(bytes, |p| ids.insert(p.seq, p.kind, p.iss, p.id, p.exp, p.key));
                let d =
                    fingerprints.join().map_err(|_| StoreError::corrupt("checkpoint: a loading thread failed"))??;
                Ok((d, seq?))
            })?;
            (d, Some(seq))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Denylist::new(hash_key), None),
        Err(e) => return Err(io("read", &cp_path, e)),
    };
    let checkpoint_time = t0.elapsed();
    let t1 = std::time::Instant::now();
    let mut head = checkpoint.unwrap_or(0);
    if head < floor {
        return Err(StoreError::corrupt(format!(
            "log dropped up to {floor} but the checkpoint is at {head}: events would be lost"
        )));
    }
    if checkpoint.is_none() && floor == 0 {
        if let Some((k, _)) = store.log.first()? {
            if decode_seq(&k) != Some(1) {
                return Err(StoreError::corrupt("log does not start at 1"));
            }
        }
    }
    let last = store.log.last()?.and_then(|(k, _)| decode_seq(&k)).unwrap_or(head).max(floor);
    let mut replayed = 0u64;
    let mut projected = 0u64;
    let mut projection = None;
    if let Some(p) = crate::projection::Loaded::read(data_dir, &crate::projection::dir_id(&hash_key)) {
        if p.start > last {
            tracing::warn!(start = p.start, log_head = last, "ignoring a denylist projection ahead of the log");
        } else {
            if p.start > head {
                // Between the checkpoint and the projection's start: from the log.
                let (d, h, n) = replay_log(store, denylist, &mut ids, head, p.start)?;
                (denylist, head, replayed) = (d, h, n);
            }
            let (groups, reach, end) = p.chain(head);
            if reach > last {
                tracing::warn!(reach, log_head = last, "ignoring a denylist projection ahead of the log");
            } else {
                denylist = fold_projection(&p, &groups, head, denylist, &mut ids)?;
                projected = reach - head;
                head = reach;
                projection = Some((end as u64, reach));
            }
        }
    }
    let (denylist, head, n) = replay_log(store, denylist, &mut ids, head, u64::MAX)?;
    replayed += n;
    let mut live = Live::from_parts(denylist, ids);
    live.denylist.set_seq(head);
    let pruned = live.prune(prune_before);
    let replay_time = t1.elapsed();
    let r = Rebuilt { checkpoint, replayed, projected, projection, head, floor, pruned, checkpoint_time, replay_time };
    Ok((live, r))
}

/// Folds the projection's `groups` (from [`crate::projection::Loaded::chain`]) into both
/// views, the fingerprints on a thread of their own.
fn fold_projection(
    p: &crate::projection::Loaded,
    groups: &[Span],
    after: u64,
    mut denylist: Denylist,
    ids: &mut Identifiers,
) -> Result<Denylist, StoreError> {
    let bad = || {
        StoreError::corrupt(
            "denylist projection: a group does not decode (remove denylist.proj to rebuild from the log)",
        )
    };
    ids.reserve(groups.iter().map(|g| g.n as usize).sum());
    std::thread::scope(|scope| {
        let fingerprints = scope.spawn(move || {
            let ok = groups.iter().all(|g| p.entries(g, after, |e| denylist.insert(e.kind, e.iss, e.id, e.exp)));
            (denylist, ok)
        });
        let ok = groups.iter().all(|g| p.entries(g, after, |e| ids.insert(e.seq, e.kind, e.iss, e.id, e.exp, e.key)));
        let (d, fp_ok) = fingerprints.join().map_err(|_| bad())?;
        if ok && fp_ok {
            Ok(d)
        } else {
            Err(bad())
        }
    })
}

/// Folds the log's records in `(from, to]` (to its end for `u64::MAX`) into both views;
/// returns the fingerprints, the head reached and how many records were folded. The
/// log must continue `from` without a gap up to its last record in the range.
fn replay_log(
    store: &Store,
    denylist: Denylist,
    ids: &mut Identifiers,
    from: u64,
    to: u64,
) -> Result<(Denylist, u64, u64), StoreError> {
    let mut head = from;
    let mut replayed = 0u64;
    // Two threads each walk half of the range (sled's page reads and deserialisation
    // are most of the cost) and hand every chunk to both folding threads: the
    // fingerprint thread and this one, which checks the sequence and builds the
    // identifiers. Each reader buffers a bounded number of chunks.
    let last = store.log.last()?.and_then(|(k, _)| decode_seq(&k)).unwrap_or(from).min(to);
    if last <= from {
        return Ok((denylist, from, 0));
    }
    let mid = from + (last - from) / 2;
    let ranges = [(from + 1, mid), (mid + 1, last)];
    ids.reserve(usize::try_from(last - from).unwrap_or(0));
    let denylist = std::thread::scope(|scope| -> Result<Denylist, StoreError> {
        let mut to_fingerprints = Vec::new();
        let mut to_ids = Vec::new();
        for (lo, hi) in ranges {
            let (ftx, frx) = std::sync::mpsc::sync_channel::<Chunk>(REPLAY_BUFFER);
            let (itx, irx) = std::sync::mpsc::sync_channel::<Result<Chunk, sled::Error>>(REPLAY_BUFFER);
            to_fingerprints.push(frx);
            to_ids.push(irx);
            let log = store.log.clone();
            scope.spawn(move || {
                if lo > hi {
                    return;
                }
                // Both sides must take every chunk; if either is gone, stop.
                let send = |c: Vec<(sled::IVec, sled::IVec)>| {
                    let c = Arc::new(c);
                    ftx.send(c.clone()).is_ok() && itx.send(Ok(c)).is_ok()
                };
                let mut chunk = Vec::with_capacity(REPLAY_CHUNK);
                for item in log.range(seq_key(lo)..=seq_key(hi)) {
                    match item {
                        Ok(kv) => chunk.push(kv),
                        Err(e) => {
                            let _ = itx.send(Err(e));
                            return;
                        }
                    }
                    if chunk.len() == REPLAY_CHUNK
                        && !send(std::mem::replace(&mut chunk, Vec::with_capacity(REPLAY_CHUNK)))
                    {
                        return;
                    }
                }
                let _ = send(chunk);
            });
        }
        let mut denylist = denylist;
        let fingerprints = scope.spawn(move || {
            for chunk in to_fingerprints.into_iter().flatten() {
                for (_, v) in chunk.iter() {
                    // A record that does not decode is reported by the other side.
                    if let Ok(s) = Summary::read(v) {
                        if let Some(kind) = s.entry_kind() {
                            denylist.insert(kind, s.iss, s.first_id, s.exp);
                        }
                    }
                }
            }
            denylist
        });
        for chunk in to_ids.into_iter().flatten() {
            for (k, v) in chunk?.iter() {
                let seq = decode_seq(k).ok_or_else(|| StoreError::corrupt("log key"))?;
                if seq != head + 1 {
                    return Err(StoreError::corrupt(format!("log gap: {head} is followed by {seq}")));
                }
                let s = Summary::read(v).map_err(|_| StoreError::corrupt(format!("log record {seq}")))?;
                if let Some(kind) = s.entry_kind() {
                    ids.insert(seq, kind, s.iss, s.first_id, s.exp, s.key_id);
                }
                head = seq;
                replayed += 1;
            }
        }
        // A fingerprint thread that died would leave the readers stopped early and
        // this side short of records: never taken for the end of the log.
        fingerprints.join().map_err(|_| StoreError::corrupt("log replay: the fingerprint thread failed"))
    })?;
    if head < last {
        return Err(StoreError::corrupt(format!("log replay stopped at {head}, before {last}")));
    }
    Ok((denylist, head, replayed))
}

/// The outcome of [`compact`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Compacted {
    /// Sequence number of the checkpoint written.
    pub(crate) checkpoint: u64,
    /// The new retention floor.
    pub(crate) floor: u64,
    /// Log events dropped.
    pub(crate) dropped_events: u64,
    /// Refresh families dropped (expired).
    pub(crate) dropped_families: u64,
}

/// Retention (see the module docs): `checkpoint_seq` must be the sequence of a
/// checkpoint already written durably; `now` is in seconds. An entry counts as live
/// until its `exp` plus `leeway_secs` (the edges' largest leeway).
pub(crate) fn compact(
    store: &Store,
    checkpoint_seq: u64,
    now: u64,
    max_token_lifetime_secs: u64,
    leeway_secs: u64,
    on_floor: &dyn Fn(u64),
) -> Result<Compacted, StoreError> {
    let mut floor = store.floor()?;
    let live_after = now.saturating_sub(leeway_secs);
    let old_before_ms = now.saturating_sub(max_token_lifetime_secs).saturating_mul(1000);
    let mut dropped = 0u64;
    loop {
        let mut log_batch = sled::Batch::default();
        let mut idem_batch = sled::Batch::default();
        let mut n = 0;
        let mut stop = false;
        for item in store.log.range(seq_key(floor + 1)..=seq_key(checkpoint_seq)).take(10_000) {
            let (k, v) = item?;
            let seq = decode_seq(&k).ok_or_else(|| StoreError::corrupt("log key"))?;
            let s = Summary::read(&v).map_err(|_| StoreError::corrupt(format!("log record {seq}")))?;
            let live = s.entry_kind().is_some() && s.exp >= live_after;
            if s.received_ms >= old_before_ms || live {
                stop = true;
                break;
            }
            log_batch.remove(&k);
            if let Some(ik) = s.idempotency_key {
                idem_batch.remove(pair_key(s.key_id, ik));
            }
            floor = seq;
            n += 1;
        }
        if n == 0 {
            break;
        }
        // Floor first: a crash between the two leaves dropped-looking events still
        // present, never events missing below a floor that claims to cover them.
        store.set_floor(floor)?;
        store.db.flush()?;
        on_floor(floor);
        store.idempotency.apply_batch(idem_batch)?;
        store.log.apply_batch(log_batch)?;
        dropped += n;
        if stop {
            break;
        }
    }
    let mut families = 0u64;
    for item in store.families.iter() {
        let (sid, v) = item?;
        let f = crate::family::Family::decode(&v).map_err(|_| StoreError::corrupt("family"))?;
        if f.exp < live_after {
            let sid_s = String::from_utf8_lossy(&sid).into_owned();
            let mut batch = sled::Batch::default();
            for t in store.family_tokens.scan_prefix(pair_prefix(&sid_s)) {
                batch.remove(t?.0);
            }
            store.family_tokens.apply_batch(batch)?;
            store.families.remove(&sid)?;
            families += 1;
        }
    }
    store.db.flush()?;
    Ok(Compacted { checkpoint: checkpoint_seq, floor, dropped_events: dropped, dropped_families: families })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_and_detects_damage() {
        let entries = vec![
            (3, Entry { kind: EntryKind::Jti, iss: None, id: "j".into(), exp: 9 }, "k2"),
            (4, Entry { kind: EntryKind::Subject { before: 7 }, iss: Some("i".into()), id: "u".into(), exp: 10 }, "k1"),
        ];
        let b = encode(12, &entries);
        let owned: Vec<_> = entries.iter().map(|(s, e, k)| (*s, e.clone(), k.to_string())).collect();
        assert_eq!(decode(&b).unwrap(), (12, owned));
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x40;
            assert!(decode(&c).is_err(), "byte {i}");
        }
        assert!(decode(&b[..b.len() - 1]).is_err());
    }

    fn at(seq: u64) -> Vec<u8> {
        encode(seq, &[(seq, Entry { kind: EntryKind::Jti, iss: None, id: format!("j{seq}"), exp: 9 }, "k")])
    }

    #[test]
    fn first_version_files_are_still_read() {
        // Built by hand from the first version's layout: no key table, no `key`.
        let mut b = b"TGCK\x01".to_vec();
        b.extend_from_slice(&5u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&4u64.to_le_bytes());
        b.push(2);
        b.extend_from_slice(&99u64.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        b.push(1);
        for s in ["https://i", "sess"] {
            b.extend_from_slice(&(s.len() as u16).to_le_bytes());
            b.extend_from_slice(s.as_bytes());
        }
        let d = Sha256::digest(&b);
        b.extend_from_slice(&d);
        let e = Entry { kind: EntryKind::Sid, iss: Some("https://i".into()), id: "sess".into(), exp: 99 };
        assert_eq!(decode(&b).unwrap(), (5, vec![(4, e, String::new())]));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), &b).unwrap();
        assert_eq!(current_seq(&path(dir.path())).unwrap(), Some(5));
    }

    fn on_disk(dir: &Path) -> u64 {
        decode(&std::fs::read(path(dir)).unwrap()).unwrap().0
    }

    fn temps(dir: &Path) -> Vec<String> {
        let names = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap());
        names.filter(|n| n.starts_with("checkpoint.bin.tmp")).collect()
    }

    #[test]
    fn an_older_checkpoint_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(write(dir.path(), 10, &at(10)).unwrap(), 10);
        assert_eq!(write(dir.path(), 5, &at(5)).unwrap(), 10);
        assert_eq!(on_disk(dir.path()), 10);
        assert_eq!(write(dir.path(), 12, &at(12)).unwrap(), 12);
        assert_eq!(on_disk(dir.path()), 12);
        assert!(temps(dir.path()).is_empty());
    }

    #[test]
    fn concurrent_writers_use_their_own_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let d = dir.path();
                s.spawn(move || {
                    for i in 0..5 {
                        let seq = 100 + t * 5 + i;
                        write(d, seq, &at(seq)).unwrap();
                    }
                });
            }
        });
        // Unserialised, any of them may have won the last rename; it is whole.
        assert!(on_disk(dir.path()) >= 100);
        assert!(temps(dir.path()).is_empty());
    }

    #[test]
    fn stale_temporary_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["checkpoint.bin.tmp", "checkpoint.bin.tmp.123.0", "checkpoint.bin.tmp.9.4"] {
            std::fs::write(dir.path().join(n), b"half").unwrap();
        }
        write(dir.path(), 3, &at(3)).unwrap();
        remove_stale_temps(dir.path()).unwrap();
        assert!(temps(dir.path()).is_empty());
        assert_eq!(on_disk(dir.path()), 3);
    }
}
