//! Denylist lookups in a plain loop, for profilers (as `pipeline-loop` is for the
//! verify pipeline):
//!
//! ```sh
//! denylist-loop hit|miss [entries] [lookups]
//! valgrind --tool=callgrind target/release/denylist-loop miss 10000 100000
//! ```
//!
//! Prints the mean wall time and time on a CPU per lookup.

use std::hint::black_box;
use std::time::Instant;

use tollgate_bench::lists::{self, Queries};
use tollgate_bench::timing::on_cpu_ns;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let hit = args.get(1).is_some_and(|a| a == "hit");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let lookups: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let list = lists::build(n, 7);
    let q = if hit { Queries::hits(1 << 16, n, 7) } else { Queries::misses(1 << 16, 7) };
    let (t, cpu) = (Instant::now(), on_cpu_ns());
    let mut revoked = 0usize;
    for i in 0..lookups {
        revoked += usize::from(q.run(&list, black_box(i & 0xffff)));
    }
    let per = |ns: f64| ns / lookups.max(1) as f64;
    let wall = per(t.elapsed().as_nanos() as f64);
    let cpu = match (cpu, on_cpu_ns()) {
        (Some(a), Some(b)) => format!("{:.1} ns on a CPU", per((b - a) as f64)),
        _ => String::from("time on a CPU unknown"),
    };
    let kind = if hit { "hit" } else { "miss" };
    println!("{kind} at {n} entries: {wall:.1} ns wall, {cpu} per lookup ({revoked} of {lookups} revoked)");
}
