//! The verify pipeline without the signature, in a plain loop, for profilers:
//!
//! ```sh
//! pipeline-loop es256|rs256 [iterations] [empty|10k]
//! perf stat -e instructions,cycles target/release/pipeline-loop rs256 1000000
//! valgrind --tool=callgrind target/release/pipeline-loop es256 20000
//! ```
//!
//! Prints the mean wall time per call and the mean time on a CPU per call
//! (`CLOCK_THREAD_CPUTIME_ID`: it leaves out the time other processes held the core,
//! which on shared cores is most of the difference).

use std::hint::black_box;
use std::time::Instant;

use tollgate_bench::fixtures::{AcceptAll, Alg, Fixture, NOW};
use tollgate_bench::lists;
use tollgate_bench::timing::on_cpu_ns;
use tollgate_core::Denylist;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let alg = match args.get(1).map(String::as_str) {
        Some("rs256") => Alg::Rs256,
        _ => Alg::Es256,
    };
    let n: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let list = match args.get(3).map(String::as_str) {
        Some("empty") => Denylist::default(),
        _ => lists::build(10_000, 42),
    };
    let f = Fixture::new(alg);
    let verifier = f.verifier();
    assert!(verifier.verify_with(&AcceptAll, &f.token, NOW, Some(&list)).is_ok());
    let (t, cpu) = (Instant::now(), on_cpu_ns());
    let mut ok = 0u64;
    for _ in 0..n {
        ok += u64::from(verifier.verify_with(&AcceptAll, black_box(&f.token), NOW, Some(&list)).is_ok());
    }
    let per = |ns: f64| ns / n.max(1) as f64;
    let wall = per(t.elapsed().as_nanos() as f64);
    let cpu = match (cpu, on_cpu_ns()) {
        (Some(a), Some(b)) => format!("{:.0} ns on a CPU", per((b - a) as f64)),
        _ => String::from("time on a CPU unknown"),
    };
    println!(
        "{} without signature, {} entries: {wall:.0} ns wall, {cpu} per call ({ok} of {n} verified)",
        alg.name(),
        list.len()
    );
}
