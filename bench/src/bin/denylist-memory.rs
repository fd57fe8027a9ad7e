//! Heap bytes per denylist entry at 10k, 100k and 1M entries, counted by a global
//! allocator wrapper, for a list built by inserts (as the revocation service and a
//! local list grow) and for one decoded from a snapshot (as a replica loads it);
//! plus the snapshot's size, and the naive list of the identifiers for scale. Prints a table and writes
//! `<target>/tollgate-bench/memory.jsonl` for the summary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use tollgate_bench::{lists, report};
use tollgate_core::wire::{self, DenylistSigner, Stamp};

/// The epoch and creation time every measured snapshot carries.
const STAMP: Stamp = Stamp { epoch: *b"bench-epoch-0001", created: 1_763_800_000 };

/// The system allocator, counting live and peak bytes requested.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grow(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grow(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn main() -> std::io::Result<()> {
    let signer = DenylistSigner::from_secret(&[7; 32]).expect("a valid scalar");
    let key = signer.public_key();
    let mut lines = Vec::new();
    for n in [10_000usize, 100_000, 1_000_000] {
        // Built by inserts; the identifiers generated along the way are freed at once.
        let before = live();
        PEAK.store(before, Ordering::Relaxed);
        let list = lists::build(n, 3);
        let inserted = live() - before;
        let peak = PEAK.load(Ordering::Relaxed) - before;

        let bytes = wire::encode_snapshot(&list, STAMP, &signer);
        let before = live();
        let decoded = wire::decode_snapshot(&bytes, &key).expect("own snapshot decodes");
        let from_snapshot = live() - before;
        assert!(decoded.same_entries(&list));

        drop(decoded);
        let before = live();
        let naive = lists::NaiveList::build(n, 3);
        let naive_bytes = live() - before;
        drop(naive);

        let per = |b: usize| b as f64 / n as f64;
        let line = serde_json::json!({
            "entries": n,
            "counts": [list.counts().0, list.counts().1, list.counts().2],
            "inserted_bytes": inserted,
            "inserted_bytes_per_entry": per(inserted),
            "insert_peak_bytes_per_entry": per(peak),
            "decoded_bytes": from_snapshot,
            "decoded_bytes_per_entry": per(from_snapshot),
            "snapshot_bytes": bytes.len(),
            "naive_bytes_per_entry": per(naive_bytes),
        });
        lines.push(line.to_string());
    }
    let dir = report::results_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("memory.jsonl"), lines.join("\n") + "\n")?;
    print!("{}", report::memory(&report::Results::load()));
    Ok(())
}
