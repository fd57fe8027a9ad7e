//! The materialised denylist: the fold of the log, held in memory.
//!
//! Two views are kept in step: the core [`Denylist`] (fingerprints, what snapshots
//! carry) and a map from each entry's identifier *as posted* to its expiry (what the
//! JSON view and checkpoints show). Both merge the same way — a repeated entry keeps
//! the later `exp` and, for a subject, the later cutoff — and both prune on `exp`.
//! Only durable events are folded in: the writer applies a batch after its flush.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Bytes;
use hashbrown::{HashMap, HashSet};
use serde_json::{json, Value};
use tokio::sync::watch;
use tollgate_core::{Denylist, Entry, EntryKind};

use crate::metrics::Metrics;

/// An entry's identity: kind tag (1 jti, 2 sid, 3 subject), issuer scope (interned:
/// a deployment has few issuers; an issuer no entry uses is forgotten at the next
/// prune, so posted `iss` values cannot grow the table beyond the live entries),
/// identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct EntryKey {
    pub(crate) tag: u8,
    pub(crate) iss: Option<Arc<str>>,
    pub(crate) id: Box<str>,
}

/// An entry's times and the last event that touched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LiveEntry {
    pub(crate) exp: u64,
    pub(crate) before: u64,
    pub(crate) seq: u64,
}

fn tag_of(kind: EntryKind) -> (u8, u64) {
    match kind {
        EntryKind::Jti => (1, 0),
        EntryKind::Sid => (2, 0),
        EntryKind::Subject { before } => (3, before),
    }
}

/// The fold of the log up to `denylist.seq()`.
///
/// Memory: per entry, the core list's 13–30 bytes plus a slot of this map (a 40-byte
/// key, 24-byte value, one control byte) and the identifier's own heap allocation;
/// per distinct issuer of a live entry, one interned string (pruned with the entries).
pub(crate) struct Live {
    pub(crate) denylist: Denylist,
    pub(crate) entries: HashMap<EntryKey, LiveEntry>,
    issuers: HashSet<Arc<str>>,
}

impl Live {
    /// An empty fold whose fingerprints use `hash_key`.
    pub(crate) fn new(hash_key: [u8; 16]) -> Live {
        Live { denylist: Denylist::new(hash_key), entries: HashMap::new(), issuers: HashSet::new() }
    }

    /// Room for `n` more entries (start-up knows roughly how many are coming).
    pub(crate) fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
    }

    /// Folds in one entry added by the event at `seq`.
    pub(crate) fn insert(&mut self, seq: u64, e: &Entry) {
        self.insert_parts(seq, e.kind, e.iss.as_deref(), &e.id, e.exp);
    }

    /// Folds in one entry from borrowed parts (start-up: no intermediate [`Entry`]).
    pub(crate) fn insert_parts(&mut self, seq: u64, kind: EntryKind, iss: Option<&str>, id: &str, exp: u64) {
        self.denylist.insert(kind, iss, id, exp);
        let (tag, before) = tag_of(kind);
        let iss = iss.map(|i| match self.issuers.get(i) {
            Some(a) => a.clone(),
            None => {
                let a: Arc<str> = Arc::from(i);
                self.issuers.insert(a.clone());
                a
            }
        });
        let key = EntryKey { tag, iss, id: Box::from(id) };
        self.entries
            .entry(key)
            .and_modify(|o| {
                o.exp = o.exp.max(exp);
                o.before = o.before.max(before);
                o.seq = o.seq.max(seq);
            })
            .or_insert(LiveEntry { exp, before, seq });
    }

    /// Drops entries whose `exp` is before `now` (seconds), and the interned issuers
    /// no remaining entry uses; returns how many entries went.
    pub(crate) fn prune(&mut self, now: u64) -> usize {
        self.denylist.prune(now);
        let before = self.entries.len();
        self.entries.retain(|_, e| e.exp >= now);
        let dropped = before - self.entries.len();
        if dropped > 0 {
            // Entries hold the only other references: a count of 1 is the table's own.
            self.issuers.retain(|i| Arc::strong_count(i) > 1);
        }
        dropped
    }

    /// Entries per kind: `(jti, sid, subject)`.
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        self.denylist.counts()
    }

    /// The entries as [`Entry`] values (checkpoints).
    pub(crate) fn to_entries(&self) -> Vec<(u64, Entry)> {
        self.entries
            .iter()
            .map(|(k, v)| {
                let kind = match k.tag {
                    1 => EntryKind::Jti,
                    2 => EntryKind::Sid,
                    _ => EntryKind::Subject { before: v.before },
                };
                (v.seq, Entry { kind, iss: k.iss.as_deref().map(String::from), id: k.id.to_string(), exp: v.exp })
            })
            .collect()
    }

    /// The JSON view: every live entry with its identifier as posted, at most `limit`.
    pub(crate) fn to_json(&self, limit: usize) -> Value {
        let mut rows: Vec<(&EntryKey, &LiveEntry)> = self.entries.iter().collect();
        rows.sort_unstable_by(|a, b| a.1.seq.cmp(&b.1.seq).then_with(|| a.0.id.cmp(&b.0.id)));
        let truncated = rows.len() > limit;
        let entries: Vec<Value> = rows
            .into_iter()
            .take(limit)
            .map(|(k, v)| {
                let mut o = json!({
                    "kind": match k.tag { 1 => "jti", 2 => "sid", _ => "sub" },
                    "id": &*k.id,
                    "iss": k.iss.as_deref(),
                    "exp": v.exp,
                    "seq": v.seq,
                });
                if k.tag == 3 {
                    o["before"] = json!(v.before);
                }
                o
            })
            .collect();
        json!({
            "seq": self.denylist.seq(),
            "count": self.entries.len(),
            "truncated": truncated,
            "entries": entries,
        })
    }
}

/// A cached signed snapshot: `(seq, prune generation, bytes)`.
pub(crate) type SnapshotCache = Mutex<Option<(u64, u64, Bytes)>>;

/// State shared by the writer, the handlers and the background tasks.
pub(crate) struct Shared {
    /// The fold of every durable event.
    pub(crate) live: RwLock<Live>,
    /// The durable head; long-polls wait on it. Sent under `live`'s write lock, so it
    /// is never behind the seq a reader of `live` sees (never hold a borrow of it while
    /// taking `live`).
    pub(crate) head: watch::Sender<u64>,
    /// The last snapshot signed.
    pub(crate) snapshot: SnapshotCache,
    /// Bumped by every prune that dropped something (invalidates the snapshot cache).
    pub(crate) prune_gen: AtomicU64,
    /// Retention floor: deltas from before it get 410.
    pub(crate) floor: AtomicU64,
    /// False once a write failed to reach disk: the service then refuses writes.
    pub(crate) writable: AtomicBool,
    pub(crate) metrics: Metrics,
}

impl Shared {
    /// Shared state around a rebuilt fold.
    pub(crate) fn new(live: Live, floor: u64) -> Shared {
        let head = live.denylist.seq();
        Shared {
            live: RwLock::new(live),
            head: watch::Sender::new(head),
            snapshot: Mutex::new(None),
            prune_gen: AtomicU64::new(0),
            floor: AtomicU64::new(floor),
            writable: AtomicBool::new(true),
            metrics: Metrics::default(),
        }
    }

    /// The durable head.
    pub(crate) fn head(&self) -> u64 {
        *self.head.borrow()
    }

    /// Folds durable entries in and publishes the new head (the writer, after a flush).
    ///
    /// The head is sent while the write lock is still held, so whoever reads the new
    /// fold (a snapshot at seq N) finds the head at N or later: a replica's
    /// `?since=N` right after that snapshot is never refused as ahead of the head.
    pub(crate) fn publish<'a>(&self, entries: impl IntoIterator<Item = (u64, &'a Entry)>, head: u64) {
        {
            let mut live = self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (seq, e) in entries {
                live.insert(seq, e);
            }
            live.denylist.set_seq(head);
            self.head.send_replace(head);
        }
        #[cfg(test)]
        tests::AFTER_PUBLISH_UNLOCK.with(|hook| {
            if let Some(hook) = &*hook.borrow() {
                hook(self);
            }
        });
    }

    /// Prunes expired entries (seconds); returns how many went.
    pub(crate) fn prune(&self, now: u64) -> usize {
        let n = self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner).prune(now);
        if n > 0 {
            self.prune_gen.fetch_add(1, Ordering::SeqCst);
        }
        n
    }

    /// Read access to the fold.
    pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, Live> {
        self.live.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// A hook on the writer's thread (a test's own thread here).
    type Hook = Box<dyn Fn(&Shared)>;

    thread_local! {
        /// Called by [`Shared::publish`] right after it releases the write lock: the
        /// first moment another thread can read the new fold (a snapshot taking its
        /// seq).
        pub(super) static AFTER_PUBLISH_UNLOCK: RefCell<Option<Hook>> = const { RefCell::new(None) };
    }

    #[test]
    fn a_reader_that_sees_the_new_fold_sees_the_new_head() {
        let shared = Shared::new(Live::new([5; 16]), 0);
        let seen = std::rc::Rc::new(RefCell::new(Vec::new()));
        let s2 = seen.clone();
        AFTER_PUBLISH_UNLOCK.with(|h| {
            *h.borrow_mut() = Some(Box::new(move |sh: &Shared| {
                // What a snapshot then a delta would read at this instant: the fold's seq
                // (the snapshot's ETag) and the head (the delta's bound for `since`).
                s2.borrow_mut().push((sh.read().denylist.seq(), sh.head()));
            }))
        });
        let e = Entry { kind: EntryKind::Jti, iss: None, id: "j".into(), exp: 9 };
        shared.publish([(5, &e)], 5);
        shared.publish([], 6);
        AFTER_PUBLISH_UNLOCK.with(|h| *h.borrow_mut() = None);
        // `?since=<snapshot seq>` must never find the head behind it (a spurious 410).
        assert_eq!(*seen.borrow(), [(5, 5), (6, 6)]);
    }

    #[test]
    fn views_merge_and_prune_alike() {
        let mut l = Live::new([5; 16]);
        let e = |kind, id: &str, exp| Entry { kind, iss: None, id: id.into(), exp };
        l.insert(1, &e(EntryKind::Jti, "a", 10));
        l.insert(2, &e(EntryKind::Jti, "a", 30));
        l.insert(3, &e(EntryKind::Subject { before: 4 }, "u", 20));
        l.insert(4, &e(EntryKind::Subject { before: 2 }, "u", 5));
        l.insert(5, &e(EntryKind::Sid, "a", 1));
        assert_eq!(l.entries.len(), l.denylist.len());
        assert_eq!(l.denylist.subject_cutoff(None, "u"), Some(4));
        let u = l.entries.values().find(|v| v.before == 4).unwrap();
        assert_eq!((u.exp, u.seq), (20, 4));
        assert_eq!(l.prune(15), 1);
        assert_eq!(l.entries.len(), l.denylist.len());
        let v = l.to_json(1);
        assert_eq!(v["truncated"], json!(true));
        assert_eq!(v["entries"][0]["id"], json!("a"));
        assert_eq!(v["entries"][0]["exp"], json!(30));
    }

    #[test]
    fn prune_forgets_issuers_no_entry_uses() {
        let mut l = Live::new([5; 16]);
        let e = |kind, iss: &str, id: &str, exp| Entry { kind, iss: Some(iss.into()), id: id.into(), exp };
        // An events:write client posting already expired events, each with a new `iss`.
        for i in 0..1000 {
            l.insert(i, &e(EntryKind::Jti, &format!("https://iss-{i}"), "j", 5));
        }
        l.insert(1000, &e(EntryKind::Jti, "https://keep", "k", 100));
        l.insert(1001, &e(EntryKind::Sid, "https://keep", "s", 100));
        assert_eq!(l.issuers.len(), 1001);
        assert_eq!(l.prune(10), 1000);
        assert_eq!(l.issuers.len(), 1);
        // The issuer still in use is still shared by its entries, not interned again.
        l.insert(1002, &e(EntryKind::Jti, "https://keep", "k2", 100));
        let keep = l.issuers.iter().next().unwrap();
        assert_eq!((&**keep, l.issuers.len(), Arc::strong_count(keep)), ("https://keep", 1, 4));
        assert!(l.entries.keys().all(|k| k.iss.as_ref().is_some_and(|i| Arc::ptr_eq(i, keep))));
        // Once nothing uses it, it goes too.
        assert_eq!(l.prune(200), 3);
        assert!(l.issuers.is_empty());
    }
}
