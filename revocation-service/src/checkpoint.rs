//! Checkpoints, start-up rebuild and retention.
//!
//! A checkpoint is the fold of the log at a sequence number, with every live entry's
//! identifier as posted, in one file `checkpoint.bin` in the data directory:
//!
//! ```text
//! "TGCK\x01" | seq u64 | n u64 | n × entry | sha256 of everything before [32]
//! entry = seq u64 | tag u8 (1 jti, 2 sid, 3 subject) | exp u64 | before u64
//!         | scoped u8 | [iss str] | id str          (str = len u16 | bytes; LE)
//! ```
//!
//! It is written to a temporary file of its own, synced, renamed over the old one and
//! the directory synced, so a crash leaves either checkpoint whole; an older one never
//! replaces a newer one. Checkpoints and retention run one at a time (the service's
//! maintenance lock: the admin endpoints answer 409 `maintenance_running` while one
//! runs, shutdown waits for it). Start-up loads the checkpoint when present and folds
//! the log after it; without one it folds the whole log.
//!
//! Retention ([`compact`]) is explicit: it writes a checkpoint at the durable head,
//! then drops the *prefix* of the log whose events are all older than the longest
//! token lifetime and whose denylist effect has expired (or that never had one),
//! stopping at the first event that is still live. Deltas from before the new floor
//! are then answered with 410, telling replicas to take a snapshot.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use tollgate_core::{Entry, EntryKind};

use crate::error::StoreError;
use crate::event::Summary;
use crate::state::Live;
use crate::store::{decode_seq, pair_key, pair_prefix, seq_key, Store};

const MAGIC: &[u8; 5] = b"TGCK\x01";
/// Log records handed from the reading thread to the folding thread at a time.
const REPLAY_CHUNK: usize = 4096;
/// Chunks a log reader may run ahead of the folding thread (bounds start-up memory).
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

/// Encodes a checkpoint of `entries` at `seq`.
pub(crate) fn encode(seq: u64, entries: &[(u64, Entry)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + entries.len() * 48);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (s, e) in entries {
        let (tag, before) = match e.kind {
            EntryKind::Jti => (1u8, 0),
            EntryKind::Sid => (2, 0),
            EntryKind::Subject { before } => (3, before),
        };
        out.extend_from_slice(&s.to_le_bytes());
        out.push(tag);
        out.extend_from_slice(&e.exp.to_le_bytes());
        out.extend_from_slice(&before.to_le_bytes());
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

/// Decodes a checkpoint: `(seq, entries)`, checking its digest.
#[cfg(test)]
pub(crate) fn decode(bytes: &[u8]) -> Result<(u64, Vec<(u64, Entry)>), StoreError> {
    let mut entries = Vec::new();
    let seq = decode_with(bytes, |s, kind, iss, id, exp| {
        entries.push((s, Entry { kind, iss: iss.map(String::from), id: id.to_string(), exp }));
    })?;
    Ok((seq, entries))
}

/// Decodes a checkpoint, handing each entry to `f` as borrowed parts
/// `(seq, kind, iss, id, exp)`; returns the checkpoint's sequence number.
pub(crate) fn decode_with(
    bytes: &[u8],
    mut f: impl FnMut(u64, EntryKind, Option<&str>, &str, u64),
) -> Result<u64, StoreError> {
    let bad = || StoreError::corrupt("checkpoint");
    if bytes.len() < MAGIC.len() + 16 + 32 {
        return Err(bad());
    }
    let (body, digest) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body)[..] != *digest || &body[..5] != MAGIC {
        return Err(bad());
    }
    let mut pos = 5;
    let mut take = |n: usize| -> Result<&[u8], StoreError> {
        let s = body.get(pos..pos + n).ok_or_else(bad)?;
        pos += n;
        Ok(s)
    };
    let u64_of = |b: &[u8]| -> Result<u64, StoreError> { Ok(u64::from_le_bytes(b.try_into().map_err(|_| bad())?)) };
    let seq = u64_of(take(8)?)?;
    let n = u64_of(take(8)?)?;
    for _ in 0..n {
        let s = u64_of(take(8)?)?;
        let tag = take(1)?[0];
        let exp = u64_of(take(8)?)?;
        let before = u64_of(take(8)?)?;
        let scoped = take(1)?[0];
        let mut string = || -> Result<&str, StoreError> {
            let l = take(2)?;
            let n = usize::from(u16::from_le_bytes([l[0], l[1]]));
            std::str::from_utf8(take(n)?).map_err(|_| bad())
        };
        let iss = match scoped {
            0 => None,
            1 => Some(string()?),
            _ => return Err(bad()),
        };
        let id = string()?;
        let kind = match tag {
            1 => EntryKind::Jti,
            2 => EntryKind::Sid,
            3 => EntryKind::Subject { before },
            _ => return Err(bad()),
        };
        f(s, kind, iss, id, exp);
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
    (seq, encode(seq, &live.to_entries()))
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
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(tmp).map_err(|e| io("create", tmp, e))?;
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
        Ok(()) if head[..MAGIC.len()] == MAGIC[..] => {
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
        if name.to_str().is_some_and(|n| n.starts_with(TMP_PREFIX) || n == "checkpoint.bin.tmp") {
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
    /// Events folded from the log after it.
    pub(crate) replayed: u64,
    /// The durable head: the last sequence number.
    pub(crate) head: u64,
    /// The retention floor.
    pub(crate) floor: u64,
    /// Entries pruned as expired.
    pub(crate) pruned: usize,
    /// Time spent loading the checkpoint.
    pub(crate) checkpoint_time: std::time::Duration,
    /// Time spent folding the log after it.
    pub(crate) replay_time: std::time::Duration,
}

/// Rebuilds the fold from the checkpoint (if any) and the log after it, then prunes
/// what expired before `now` (seconds). Refuses a log with a gap, or one whose
/// dropped prefix no checkpoint covers.
pub(crate) fn rebuild(store: &Store, data_dir: &Path, now: u64) -> Result<(Live, Rebuilt), StoreError> {
    let floor = store.floor()?;
    let mut live = Live::new(store.hash_key()?);
    let cp_path = path(data_dir);
    let t0 = std::time::Instant::now();
    let checkpoint = match std::fs::read(&cp_path) {
        Ok(bytes) => {
            live.reserve(bytes.len() / 40);
            Some(decode_with(&bytes, |s, kind, iss, id, exp| live.insert_parts(s, kind, iss, id, exp))?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("read", &cp_path, e)),
    };
    let checkpoint_time = t0.elapsed();
    let t1 = std::time::Instant::now();
    let start = checkpoint.unwrap_or(0);
    if start < floor {
        return Err(StoreError::corrupt(format!(
            "log dropped up to {floor} but the checkpoint is at {start}: events would be lost"
        )));
    }
    let mut head = start;
    let mut replayed = 0u64;
    // The log is read by two threads, each walking half of it (sled's page reads and
    // deserialisation are most of the cost), while this thread decodes records and
    // folds them in order. Each reader buffers a bounded number of chunks.
    let last = store.log.last()?.and_then(|(k, _)| decode_seq(&k)).unwrap_or(start);
    let mid = start + last.saturating_sub(start) / 2;
    let ranges = [(start + 1, mid), (mid + 1, u64::MAX)];
    live.reserve(usize::try_from(last.saturating_sub(start)).unwrap_or(0));
    std::thread::scope(|scope| -> Result<(), StoreError> {
        let mut receivers = Vec::new();
        for (lo, hi) in ranges {
            let (tx, rx) =
                std::sync::mpsc::sync_channel::<Result<Vec<(sled::IVec, sled::IVec)>, sled::Error>>(REPLAY_BUFFER);
            receivers.push(rx);
            let log = store.log.clone();
            scope.spawn(move || {
                if lo > hi {
                    return;
                }
                let mut chunk = Vec::with_capacity(REPLAY_CHUNK);
                for item in log.range(seq_key(lo)..=seq_key(hi)) {
                    match item {
                        Ok(kv) => chunk.push(kv),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                    if chunk.len() == REPLAY_CHUNK {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(REPLAY_CHUNK));
                        if tx.send(Ok(full)).is_err() {
                            return; // the folding side gave up
                        }
                    }
                }
                let _ = tx.send(Ok(chunk));
            });
        }
        for chunk in receivers.into_iter().flatten() {
            for (k, v) in chunk? {
                let seq = decode_seq(&k).ok_or_else(|| StoreError::corrupt("log key"))?;
                if seq != head + 1 {
                    return Err(StoreError::corrupt(format!("log gap: {head} is followed by {seq}")));
                }
                let s = Summary::read(&v).map_err(|_| StoreError::corrupt(format!("log record {seq}")))?;
                if let Some(kind) = s.entry_kind() {
                    live.insert_parts(seq, kind, s.iss, s.first_id, s.exp);
                }
                head = seq;
                replayed += 1;
            }
        }
        Ok(())
    })?;
    if checkpoint.is_none() && floor == 0 {
        if let Some((k, _)) = store.log.first()? {
            if decode_seq(&k) != Some(1) {
                return Err(StoreError::corrupt("log does not start at 1"));
            }
        }
    }
    live.denylist.set_seq(head);
    let pruned = live.prune(now);
    let replay_time = t1.elapsed();
    Ok((live, Rebuilt { checkpoint, replayed, head, floor, pruned, checkpoint_time, replay_time }))
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
/// checkpoint already written durably; `now` is in seconds.
pub(crate) fn compact(
    store: &Store,
    checkpoint_seq: u64,
    now: u64,
    max_token_lifetime_secs: u64,
    on_floor: &dyn Fn(u64),
) -> Result<Compacted, StoreError> {
    let mut floor = store.floor()?;
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
            let live = s.entry_kind().is_some() && s.exp >= now;
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
        if f.exp < now {
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
            (3, Entry { kind: EntryKind::Jti, iss: None, id: "j".into(), exp: 9 }),
            (4, Entry { kind: EntryKind::Subject { before: 7 }, iss: Some("i".into()), id: "u".into(), exp: 10 }),
        ];
        let b = encode(12, &entries);
        assert_eq!(decode(&b).unwrap(), (12, entries));
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x40;
            assert!(decode(&c).is_err(), "byte {i}");
        }
        assert!(decode(&b[..b.len() - 1]).is_err());
    }

    fn at(seq: u64) -> Vec<u8> {
        encode(seq, &[(seq, Entry { kind: EntryKind::Jti, iss: None, id: format!("j{seq}"), exp: 9 })])
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
