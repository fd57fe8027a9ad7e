//! The denylist projection: a compact append-only file beside the log holding, group
//! commit by group commit, only the denylist entries the log's events added.
//!
//! Start-up folds it instead of iterating the log, whose cold iteration in sled 0.34 is
//! most of a full replay's cost. The log stays the truth:
//!
//! - the writer appends a group only after the group's flush to the log, and never
//!   syncs the projection on its own: a crash may lose its tail, never the log's;
//! - each group names the head it continues from and the head it reaches, and carries
//!   a digest; start-up trusts the file only up to its last whole group that continues
//!   where the fold stands, and only when it was written for this data directory and
//!   does not claim more than the log holds; everything after is replayed from the log;
//! - after any write error the writer stops appending and removes the file, so a later
//!   group can never follow a missing one.
//!
//! ```text
//! file   = "TGPJ\x01" | data dir id [8] | start u64 | group*
//! group  = len u32 | body | first 8 bytes of SHA-256(body)
//! body   = from u64 | head u64 | n u32 | n × entry
//! entry  = seq u64 | tag u8 (1 jti, 2 sid, 3 subject) | exp u64 | before u64
//!          | scoped u8 | [iss str] | id str | key id str     (str = len u16 | bytes; LE)
//! ```
//!
//! `start` is the head the file begins at: its groups cover `(start, head]`. The file is
//! begun anew (empty, at the head) after a graceful shutdown's checkpoint, and when
//! start-up could not use it through the head.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tollgate_core::{Entry, EntryKind};

use crate::checkpoint::Part;

const MAGIC: &[u8; 5] = b"TGPJ\x01";
const HEADER: usize = 5 + 8 + 8;
const FILE: &str = "denylist.proj";

/// Where the projection of `data_dir` lives.
pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// The identity of a data directory as the projection records it: the first 8 bytes
/// of SHA-256 of its denylist hash key.
pub(crate) fn dir_id(hash_key: &[u8; 16]) -> [u8; 8] {
    let d = Sha256::digest(hash_key);
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    id
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(usize::from(u16::MAX))];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

/// Encodes one group: the entries added by the events in `(from, head]`.
pub(crate) fn encode_group(from: u64, head: u64, entries: &[(u64, &Entry, &str)]) -> Vec<u8> {
    let mut body = Vec::with_capacity(20 + entries.len() * 64);
    body.extend_from_slice(&from.to_le_bytes());
    body.extend_from_slice(&head.to_le_bytes());
    body.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (seq, e, key) in entries {
        let (tag, before) = match e.kind {
            EntryKind::Jti => (1u8, 0),
            EntryKind::Sid => (2, 0),
            EntryKind::Subject { before } => (3, before),
        };
        body.extend_from_slice(&seq.to_le_bytes());
        body.push(tag);
        body.extend_from_slice(&e.exp.to_le_bytes());
        body.extend_from_slice(&before.to_le_bytes());
        body.push(u8::from(e.iss.is_some()));
        if let Some(i) = &e.iss {
            put_str(&mut body, i);
        }
        put_str(&mut body, &e.id);
        put_str(&mut body, key);
    }
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&Sha256::digest(&body)[..8]);
    out
}

/// A projection file read at start-up.
pub(crate) struct Loaded {
    /// The head the file begins at.
    pub(crate) start: u64,
    bytes: Vec<u8>,
}

/// Where one trusted group's entries lie in a loaded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// The head the group reaches.
    pub(crate) head: u64,
    /// The entries' byte range in the file.
    pub(crate) lo: usize,
    pub(crate) hi: usize,
    /// How many entries.
    pub(crate) n: u32,
}

/// One whole group of a loaded file.
struct Group<'a> {
    from: u64,
    head: u64,
    n: u32,
    entries: &'a [u8],
    /// Offset just past the group in the file.
    end: usize,
}

impl Loaded {
    /// Reads the projection of `data_dir` if it exists and was written for `id`.
    pub(crate) fn read(data_dir: &Path, id: &[u8; 8]) -> Option<Loaded> {
        let bytes = std::fs::read(path(data_dir)).ok()?;
        if bytes.len() < HEADER || &bytes[..5] != MAGIC || bytes[5..13] != id[..] {
            tracing::warn!("ignoring a denylist projection that is not this data directory's");
            return None;
        }
        let start = u64::from_le_bytes(bytes[13..21].try_into().ok()?);
        Some(Loaded { start, bytes })
    }

    fn group_at(&self, pos: usize) -> Option<Group<'_>> {
        let b = &self.bytes;
        let len = usize::try_from(u32::from_le_bytes(b.get(pos..pos + 4)?.try_into().ok()?)).ok()?;
        let body = b.get(pos + 4..pos + 4 + len)?;
        let digest = b.get(pos + 4 + len..pos + 12 + len)?;
        if len < 20 || Sha256::digest(body)[..8] != *digest {
            return None;
        }
        let u64_at = |i: usize| body.get(i..i + 8).and_then(|s| s.try_into().ok()).map(u64::from_le_bytes);
        let n = u32::from_le_bytes(body.get(16..20)?.try_into().ok()?);
        Some(Group { from: u64_at(0)?, head: u64_at(8)?, n, entries: &body[20..], end: pos + 12 + len })
    }

    /// The whole groups that continue one another from the file's start, for a fold
    /// standing at `from` (the file's start must not be after it): the groups reaching
    /// past `from`, the head the last
    /// one reaches (`from` if none), and the file offset after it. The chain stops at
    /// the first group that is torn, damaged or does not continue the one before.
    pub(crate) fn chain(&self, from: u64) -> (Vec<Span>, u64, usize) {
        let mut out = Vec::new();
        if self.start > from {
            return (out, from, HEADER);
        }
        let mut head = self.start;
        let mut pos = HEADER;
        while let Some(g) = self.group_at(pos) {
            if g.from != head || g.head < g.from {
                break;
            }
            if g.head > from {
                // Entries start after `len u32 | from u64 | head u64 | n u32`.
                out.push(Span { head: g.head, lo: pos + 24, hi: pos + 24 + g.entries.len(), n: g.n });
            }
            head = g.head;
            pos = g.end;
        }
        (out, head.max(from), pos)
    }

    /// Decodes the entries of a group (from [`Loaded::chain`]), handing those with a
    /// sequence number after `after` to `f`; false if they do not decode.
    pub(crate) fn entries(&self, span: &Span, after: u64, mut f: impl FnMut(Part<'_>)) -> bool {
        let (n, Some(b)) = (span.n, self.bytes.get(span.lo..span.hi)) else { return false };
        let mut pos = 0usize;
        let mut take = |k: usize| -> Option<&[u8]> {
            let s = b.get(pos..pos + k)?;
            pos += k;
            Some(s)
        };
        fn string<'a>(take: &mut impl FnMut(usize) -> Option<&'a [u8]>) -> Option<&'a str> {
            let l = take(2)?;
            std::str::from_utf8(take(usize::from(u16::from_le_bytes([l[0], l[1]])))?).ok()
        }
        for _ in 0..n {
            let Some(ok) = (|| {
                let seq = u64::from_le_bytes(take(8)?.try_into().ok()?);
                let tag = take(1)?[0];
                let exp = u64::from_le_bytes(take(8)?.try_into().ok()?);
                let before = u64::from_le_bytes(take(8)?.try_into().ok()?);
                let iss = match take(1)?[0] {
                    0 => None,
                    1 => Some(string(&mut take)?),
                    _ => return None,
                };
                let id = string(&mut take)?;
                let key = string(&mut take)?;
                let kind = match tag {
                    1 => EntryKind::Jti,
                    2 => EntryKind::Sid,
                    3 => EntryKind::Subject { before },
                    _ => return None,
                };
                if seq > after {
                    f(Part { seq, kind, iss, id, exp, key });
                }
                Some(())
            })() else {
                return false;
            };
            let () = ok;
        }
        pos == b.len()
    }
}

/// The writer's side: appends one group per group commit.
pub(crate) struct Projection {
    file: Option<BufWriter<File>>,
    path: PathBuf,
    head: u64,
}

fn open_mode(create: bool) -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if create {
        o.create_new(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

impl Projection {
    /// Begins a new, empty projection at `head` (replacing any other atomically).
    pub(crate) fn begin(data_dir: &Path, id: &[u8; 8], head: u64) -> std::io::Result<Projection> {
        let dst = path(data_dir);
        let tmp = data_dir.join(format!("{FILE}.tmp.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut f = open_mode(true).open(&tmp)?;
        let mut header = Vec::with_capacity(HEADER);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(id);
        header.extend_from_slice(&head.to_le_bytes());
        f.write_all(&header)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &dst)?;
        File::open(data_dir).and_then(|d| d.sync_all())?;
        Projection::resume(data_dir, HEADER as u64, head)
    }

    /// Appends to the existing projection, cut to `len` bytes (its last whole group,
    /// which reaches `head`).
    pub(crate) fn resume(data_dir: &Path, len: u64, head: u64) -> std::io::Result<Projection> {
        let p = path(data_dir);
        let f = open_mode(false).open(&p)?;
        f.set_len(len)?;
        let mut f = BufWriter::with_capacity(1 << 16, f);
        std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0))?;
        Ok(Projection { file: Some(f), path: p, head })
    }

    /// Appends the group of events `(self.head, head]` with their denylist entries.
    /// After a failure it stops for good and removes the file (start-up then replays
    /// the log).
    pub(crate) fn append(&mut self, head: u64, entries: &[(u64, &Entry, &str)]) {
        let Some(f) = &mut self.file else { return };
        let group = encode_group(self.head, head, entries);
        match f.write_all(&group).and_then(|()| f.flush()) {
            Ok(()) => self.head = head,
            Err(e) => {
                tracing::warn!(error = %e, "denylist projection write failed; start-up will replay the log instead");
                self.file = None;
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(id: &str, exp: u64) -> Entry {
        Entry { kind: EntryKind::Jti, iss: Some("i".into()), id: id.into(), exp }
    }

    fn collect(l: &Loaded, from: u64) -> (Vec<(u64, String, String)>, u64) {
        let (groups, head, _) = l.chain(from);
        let mut out = Vec::new();
        for g in groups {
            assert!(l.entries(&g, from, |p| out.push((p.seq, p.id.to_string(), p.key.to_string()))));
        }
        (out, head)
    }

    #[test]
    fn groups_chain_and_a_torn_or_foreign_file_is_not_trusted_beyond_its_whole_groups() {
        let dir = tempfile::tempdir().unwrap();
        let id = dir_id(&[3; 16]);
        let mut p = Projection::begin(dir.path(), &id, 10).unwrap();
        p.append(12, &[(11, &e("a", 5), "k1"), (12, &e("b", 6), "k2")]);
        p.append(13, &[]);
        p.append(15, &[(15, &e("c", 7), "k1")]);
        drop(p);
        let l = Loaded::read(dir.path(), &id).unwrap();
        assert_eq!(l.start, 10);
        let all = vec![(11, "a".into(), "k1".into()), (12, "b".into(), "k2".into()), (15, "c".into(), "k1".into())];
        assert_eq!(collect(&l, 10), (all.clone(), 15));
        // From a checkpoint at 13: only what follows.
        assert_eq!(collect(&l, 13), (vec![(15, "c".into(), "k1".into())], 15));
        // A fold behind the file's start cannot use it.
        assert_eq!(collect(&l, 9), (vec![], 9));
        // Another data directory's file is ignored.
        assert!(Loaded::read(dir.path(), &dir_id(&[4; 16])).is_none());
        // Torn anywhere in the last group: the groups before it still count; resuming
        // cuts the file there and appends after it.
        let full = std::fs::read(path(dir.path())).unwrap();
        let last = encode_group(13, 15, &[(15, &e("c", 7), "k1")]).len();
        for cut in 1..last {
            std::fs::write(path(dir.path()), &full[..full.len() - cut]).unwrap();
            let l = Loaded::read(dir.path(), &id).unwrap();
            let (_, head, len) = l.chain(10);
            assert_eq!(head, 13, "cut {cut}");
            assert_eq!(len, full.len() - last);
        }
        let l = Loaded::read(dir.path(), &id).unwrap();
        let (_, head, len) = l.chain(10);
        let mut p = Projection::resume(dir.path(), len as u64, head).unwrap();
        p.append(16, &[(16, &e("d", 8), "k3")]);
        drop(p);
        let l = Loaded::read(dir.path(), &id).unwrap();
        assert_eq!(collect(&l, 10).1, 16);
        assert_eq!(collect(&l, 10).0.len(), 3);
        // A flipped bit in a group stops the chain there.
        let mut bad = std::fs::read(path(dir.path())).unwrap();
        bad[HEADER + 30] ^= 1;
        std::fs::write(path(dir.path()), &bad).unwrap();
        assert_eq!(collect(&Loaded::read(dir.path(), &id).unwrap(), 10), (vec![], 10));
    }
}
