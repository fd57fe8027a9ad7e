//! The materialised denylist: the fold of the log, held in memory.
//!
//! Two views are kept in step: the core [`Denylist`] (fingerprints, what snapshots
//! carry) and the [`Identifiers`], a map from each entry's identifier *as posted* to
//! its expiry and the API key that created it (what the JSON view, checkpoints and the
//! per-key quota use). Both merge the same way — a repeated entry keeps the later
//! `exp` and, for a subject, the later cutoff — and both prune on `exp` plus the
//! edges' leeway. Only durable events are folded in: the writer applies a batch after
//! its flush.

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

/// An entry's times, the last event that touched it, and the API key that created it
/// (an index into [`Identifiers`]' key table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LiveEntry {
    pub(crate) exp: u64,
    pub(crate) before: u64,
    pub(crate) seq: u64,
    pub(crate) key: u32,
}

fn tag_of(kind: EntryKind) -> (u8, u64) {
    match kind {
        EntryKind::Jti => (1, 0),
        EntryKind::Sid => (2, 0),
        EntryKind::Subject { before } => (3, before),
    }
}

/// The identifier view of the fold: each live entry's identifier *as posted*, its
/// times, and the API key that created it, with live entries counted per key (the
/// per-key quota).
///
/// Memory: per entry, a slot of this map (a 40-byte key, 32-byte value, one control
/// byte) and the identifier's own heap allocation; per distinct issuer of a live entry,
/// one interned string (pruned with the entries); per API key that ever created an
/// entry, its id and a counter.
#[derive(Default)]
pub(crate) struct Identifiers {
    pub(crate) entries: HashMap<EntryKey, LiveEntry>,
    issuers: HashSet<Arc<str>>,
    key_index: HashMap<Arc<str>, u32>,
    key_names: Vec<Arc<str>>,
    key_live: Vec<u64>,
    /// The last key and issuer interned: bulk loads see long runs of each.
    last_key: Option<(Arc<str>, u32)>,
    last_iss: Option<Arc<str>>,
}

impl Identifiers {
    /// Room for `n` more entries.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
    }

    fn key(&mut self, key_id: &str) -> u32 {
        if let Some((k, i)) = &self.last_key {
            if **k == *key_id {
                return *i;
            }
        }
        let (a, i) = match self.key_index.get_key_value(key_id) {
            Some((a, &i)) => (a.clone(), i),
            None => {
                let i = u32::try_from(self.key_names.len()).unwrap_or(u32::MAX);
                let a: Arc<str> = Arc::from(key_id);
                self.key_index.insert(a.clone(), i);
                self.key_names.push(a.clone());
                self.key_live.push(0);
                (a, i)
            }
        };
        self.last_key = Some((a, i));
        i
    }

    fn issuer(&mut self, iss: &str) -> Arc<str> {
        if let Some(a) = &self.last_iss {
            if **a == *iss {
                return a.clone();
            }
        }
        let a = match self.issuers.get(iss) {
            Some(a) => a.clone(),
            None => {
                let a: Arc<str> = Arc::from(iss);
                self.issuers.insert(a.clone());
                a
            }
        };
        self.last_iss = Some(a.clone());
        a
    }

    /// Folds in one entry added by the event at `seq`, posted with the key `key_id`.
    pub(crate) fn insert(&mut self, seq: u64, kind: EntryKind, iss: Option<&str>, id: &str, exp: u64, key_id: &str) {
        let (tag, before) = tag_of(kind);
        let iss = iss.map(|i| self.issuer(i));
        let k = EntryKey { tag, iss, id: Box::from(id) };
        match self.entries.get_mut(&k) {
            Some(o) => {
                o.exp = o.exp.max(exp);
                o.before = o.before.max(before);
                o.seq = o.seq.max(seq);
            }
            None => {
                let key = self.key(key_id);
                if let Some(c) = self.key_live.get_mut(key as usize) {
                    *c += 1;
                }
                self.entries.insert(k, LiveEntry { exp, before, seq, key });
            }
        }
    }

    /// Drops entries whose `exp` is before `cutoff` (seconds), and the interned
    /// issuers no remaining entry uses; returns how many entries went.
    pub(crate) fn prune(&mut self, cutoff: u64) -> usize {
        let before = self.entries.len();
        let live = &mut self.key_live;
        self.entries.retain(|_, e| {
            let keep = e.exp >= cutoff;
            if !keep {
                if let Some(c) = live.get_mut(e.key as usize) {
                    *c = c.saturating_sub(1);
                }
            }
            keep
        });
        let dropped = before - self.entries.len();
        if dropped > 0 {
            // Entries hold the only other references: a count of 1 is the table's own.
            self.last_iss = None;
            self.issuers.retain(|i| Arc::strong_count(i) > 1);
        }
        dropped
    }

    /// Live entries created by the API key `key_id`.
    pub(crate) fn live_of(&self, key_id: &str) -> u64 {
        self.key_index.get(key_id).and_then(|&i| self.key_live.get(i as usize)).copied().unwrap_or(0)
    }

    /// `(key id, live entries)` for every key with live entries.
    pub(crate) fn live_per_key(&self) -> Vec<(&str, u64)> {
        self.key_names.iter().zip(&self.key_live).filter(|(_, n)| **n > 0).map(|(k, n)| (&**k, *n)).collect()
    }

    /// The id of the key at `index` of the key table.
    fn key_name(&self, index: u32) -> &str {
        self.key_names.get(index as usize).map_or("", |k| &**k)
    }

    /// The entries as [`Entry`] values with the id of the key that created each
    /// (checkpoints).
    pub(crate) fn to_entries(&self) -> Vec<(u64, Entry, &str)> {
        self.entries
            .iter()
            .map(|(k, v)| {
                let kind = match k.tag {
                    1 => EntryKind::Jti,
                    2 => EntryKind::Sid,
                    _ => EntryKind::Subject { before: v.before },
                };
                let e = Entry { kind, iss: k.iss.as_deref().map(String::from), id: k.id.to_string(), exp: v.exp };
                (v.seq, e, self.key_name(v.key))
            })
            .collect()
    }
}

/// The fold of the log up to `denylist.seq()`.
///
/// Two views are kept in step: the core [`Denylist`] (fingerprints, what snapshots
/// carry) and the [`Identifiers`] (what the JSON view, checkpoints and the per-key
/// quota use). They depend on nothing but the entries folded in, so start-up builds
/// them on two threads and joins them with [`Live::from_parts`].
pub(crate) struct Live {
    pub(crate) denylist: Denylist,
    pub(crate) ids: Identifiers,
}

impl Live {
    /// An empty fold whose fingerprints use `hash_key`.
    #[cfg(test)]
    pub(crate) fn new(hash_key: [u8; 16]) -> Live {
        Live { denylist: Denylist::new(hash_key), ids: Identifiers::default() }
    }

    /// A fold from views built separately over the same entries.
    pub(crate) fn from_parts(denylist: Denylist, ids: Identifiers) -> Live {
        Live { denylist, ids }
    }

    /// Folds in one entry added by the event at `seq`, posted with the key `key_id`.
    pub(crate) fn insert(&mut self, seq: u64, e: &Entry, key_id: &str) {
        self.denylist.insert(e.kind, e.iss.as_deref(), &e.id, e.exp);
        self.ids.insert(seq, e.kind, e.iss.as_deref(), &e.id, e.exp, key_id);
    }

    /// Drops entries whose `exp` is before `cutoff` (seconds: the clock minus the
    /// edges' largest leeway); returns how many entries went.
    pub(crate) fn prune(&mut self, cutoff: u64) -> usize {
        self.denylist.prune(cutoff);
        self.ids.prune(cutoff)
    }

    /// Entries per kind: `(jti, sid, subject)`.
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        self.denylist.counts()
    }

    /// The JSON view: every live entry with its identifier as posted, at most `limit`.
    pub(crate) fn to_json(&self, limit: usize) -> Value {
        let mut rows: Vec<(&EntryKey, &LiveEntry)> = self.ids.entries.iter().collect();
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
            "count": self.ids.entries.len(),
            "truncated": truncated,
            "entries": entries,
        })
    }
}

/// A cached signed snapshot: `(seq, prune generation, creation time, bytes)`.
pub(crate) type SnapshotCache = Mutex<Option<(u64, u64, u64, Bytes)>>;

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
    pub(crate) fn publish<'a>(&self, entries: impl IntoIterator<Item = (u64, &'a Entry, &'a str)>, head: u64) {
        {
            let mut live = self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (seq, e, key_id) in entries {
                live.insert(seq, e, key_id);
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

    /// Prunes entries whose `exp` is before `cutoff` (seconds); returns how many went.
    pub(crate) fn prune(&self, cutoff: u64) -> usize {
        let n = self.live.write().unwrap_or_else(std::sync::PoisonError::into_inner).prune(cutoff);
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
        shared.publish([(5, &e, "k")], 5);
        shared.publish([], 6);
        AFTER_PUBLISH_UNLOCK.with(|h| *h.borrow_mut() = None);
        // `?since=<snapshot seq>` must never find the head behind it (a spurious 410).
        assert_eq!(*seen.borrow(), [(5, 5), (6, 6)]);
    }

    #[test]
    fn views_merge_and_prune_alike() {
        let mut l = Live::new([5; 16]);
        let e = |kind, id: &str, exp| Entry { kind, iss: None, id: id.into(), exp };
        l.insert(1, &e(EntryKind::Jti, "a", 10), "k1");
        l.insert(2, &e(EntryKind::Jti, "a", 30), "k2");
        l.insert(3, &e(EntryKind::Subject { before: 4 }, "u", 20), "k1");
        l.insert(4, &e(EntryKind::Subject { before: 2 }, "u", 5), "k2");
        l.insert(5, &e(EntryKind::Sid, "a", 1), "k2");
        assert_eq!(l.ids.entries.len(), l.denylist.len());
        assert_eq!(l.denylist.subject_cutoff(None, "u"), Some(4));
        let u = l.ids.entries.values().find(|v| v.before == 4).unwrap();
        assert_eq!((u.exp, u.seq), (20, 4));
        // Entries count against the key that created them; merges do not.
        assert_eq!((l.ids.live_of("k1"), l.ids.live_of("k2")), (2, 1));
        assert_eq!(l.prune(15), 1);
        assert_eq!(l.ids.entries.len(), l.denylist.len());
        assert_eq!((l.ids.live_of("k1"), l.ids.live_of("k2")), (2, 0));
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
            l.insert(i, &e(EntryKind::Jti, &format!("https://iss-{i}"), "j", 5), "w");
        }
        l.insert(1000, &e(EntryKind::Jti, "https://keep", "k", 100), "w");
        l.insert(1001, &e(EntryKind::Sid, "https://keep", "s", 100), "w");
        assert_eq!(l.ids.issuers.len(), 1001);
        assert_eq!(l.prune(10), 1000);
        assert_eq!(l.ids.issuers.len(), 1);
        // The issuer still in use is still shared by its entries, not interned again.
        l.insert(1002, &e(EntryKind::Jti, "https://keep", "k2", 100), "w");
        let keep = l.ids.issuers.iter().next().unwrap();
        // The table, three entries and the last-interned cache.
        assert_eq!((&**keep, l.ids.issuers.len(), Arc::strong_count(keep)), ("https://keep", 1, 5));
        assert!(l.ids.entries.keys().all(|k| k.iss.as_ref().is_some_and(|i| Arc::ptr_eq(i, keep))));
        // Once nothing uses it, it goes too.
        assert_eq!(l.prune(200), 3);
        assert!(l.ids.issuers.is_empty());
    }
}
