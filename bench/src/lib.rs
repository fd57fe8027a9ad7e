//! Fixtures and reporting shared by the tollgate-core benchmarks.
//!
//! - [`fixtures`]: the ES256 and RS256-2048 tokens, keys and policy every verify
//!   measurement uses, signed at start-up with the shared conformance keys
//!   (`../shared/conformance/gen/keys`), so each run and each peer sees the same bytes.
//! - [`lists`]: reproducible random denylists and lookup queries.
//! - [`report`]: reads criterion's results and the bench binaries' JSON output and
//!   prints the figures with their peers and ratios (`cargo run --bin summary`).
//!
//! Nothing here is timed; the criterion benches live in `benches/`, the wasm32 timing
//! loop in `wasm/`, the memory count in `src/bin/denylist-memory.rs`.

pub mod fixtures;
pub mod lists;
pub mod report;
pub mod timing;
