//! Prints every figure of the last `scripts/bench-core.sh` run with its peer, ratio
//! and goal: `cargo run --release --manifest-path bench/Cargo.toml --bin summary`.

use tollgate_bench::report::{self, Results};

fn main() {
    let r = Results::load();
    println!("tollgate-core benchmarks — results from {}", report::target_dir().display());
    print!("{}", report::verify(&r));
    print!("{}", report::denylist(&r));
    print!("{}", report::memory(&r));
    print!("{}", report::wasm(&r));
}
