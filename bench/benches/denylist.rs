//! Denylist lookups at 10k, 100k and 1M entries (hits and misses, through
//! `Denylist::is_revoked` with `jti`, `sid` and `sub`), and the signed snapshot of
//! 100k entries: encode, decode (which verifies), size. Lookups are also run
//! interleaved with the naive reference list, for ratios on drifting shared cores.
//! `BENCH_QUICK=1` shortens it.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use tollgate_bench::lists::{self, NaiveList, Queries};
use tollgate_bench::report;
use tollgate_bench::timing::{self, measure_interleaved, measuring, quick, Case};
use tollgate_core::wire::{self, DenylistSigner, Stamp};

/// The epoch and creation time every measured snapshot carries.
const STAMP: Stamp = Stamp { epoch: *b"bench-epoch-0001", created: 1_763_800_000 };

/// Distinct queries cycled through: enough that their table slots do not stay cached.
const QUERIES: usize = 1 << 16;

fn lookups(c: &mut Criterion, lines: &mut Vec<String>) {
    let mut g = c.benchmark_group("denylist-lookup");
    for (label, n) in [("10k", 10_000), ("100k", 100_000), ("1M", 1_000_000)] {
        let list = lists::build(n, 7);
        let hits = Queries::hits(QUERIES, n, 7);
        let misses = Queries::misses(QUERIES, 7);
        let naive = NaiveList::build(n, 7);
        let mut cases: Vec<Case<'_>> = Vec::new();
        for (kind, q, want) in [("hit", &hits, true), ("miss", &misses, false)] {
            assert!((0..q.len()).all(|i| q.run(&list, i) == want), "{kind} queries at {label}");
            assert!((0..q.len()).all(|i| q.run_naive(&naive, i) == want), "naive {kind} queries at {label}");
            let (list, naive) = (&list, &naive);
            let mut i = 0;
            cases.push((
                kind,
                Box::new(move || {
                    i = (i + 1) & (QUERIES - 1);
                    q.run(list, black_box(i))
                }),
            ));
            let mut i = 0;
            cases.push((
                if want { "naive-hit" } else { "naive-miss" },
                Box::new(move || {
                    i = (i + 1) & (QUERIES - 1);
                    q.run_naive(naive, black_box(i))
                }),
            ));
        }
        for (kind, work) in cases.iter_mut() {
            g.bench_function(BenchmarkId::new(*kind, label), |b| b.iter(&mut *work));
        }
        if !measuring() {
            continue;
        }
        let budget = Duration::from_secs(if quick() { 2 } else { 5 });
        for r in measure_interleaved(budget, Duration::from_millis(1), &mut cases) {
            lines.push(r.to_json(&format!("denylist-lookup/{label}")));
        }
    }
    g.finish();
}

fn snapshot(c: &mut Criterion) {
    let signer = DenylistSigner::from_secret(&[7; 32]).unwrap();
    let key = signer.public_key();
    let mut list = lists::build(100_000, 11);
    list.set_seq(100_000);
    let bytes = wire::encode_snapshot(&list, STAMP, &signer);
    assert!(wire::decode_snapshot(&bytes, &key).unwrap().same_entries(&list));
    println!("snapshot of {} entries: {} bytes ({:.1} B/entry)", list.len(), bytes.len(), bytes.len() as f64 / 1e5);
    let mut g = c.benchmark_group("snapshot-100k");
    // Each iteration takes milliseconds: 20 samples keep the run short.
    g.sample_size(20);
    g.bench_function("encode", |b| b.iter(|| wire::encode_snapshot(black_box(&list), STAMP, &signer)));
    g.bench_function("decode", |b| b.iter(|| wire::decode_snapshot(black_box(&bytes), &key).unwrap()));
    g.finish();
}

fn main() -> std::io::Result<()> {
    let mut c = timing::criterion();
    let mut lines = Vec::new();
    lookups(&mut c, &mut lines);
    snapshot(&mut c);
    c.final_summary();
    let dir = report::results_dir();
    std::fs::create_dir_all(&dir)?;
    if !lines.is_empty() {
        std::fs::write(dir.join("denylist-interleaved.jsonl"), lines.join("\n") + "\n")?;
    }
    print!("{}", report::denylist(&report::Results::load()));
    Ok(())
}
