#!/usr/bin/env bash
# Every tollgate-core benchmark, with its peer in the same run, then a summary of the
# figures, ratios and goals:
#
#   scripts/bench-core.sh                    # 2 s warm-up, 4 s measurement, 100 samples per case
#   BENCH_QUICK=1 scripts/bench-core.sh      # 1 s warm-up, 2 s measurement, 20 samples
#   scripts/bench-core.sh verify-es256       # extra arguments go to criterion (a filter)
#
# Builds into bench/target (its own workspace: jsonwebtoken + aws-lc-rs, ring and
# criterion never touch the main build). The first build takes ~6 minutes on 2 cores;
# after it a full run takes ~8 minutes, a BENCH_QUICK run ~5. Re-print the last figures with
#   CARGO_TARGET_DIR=bench/target cargo run --release --manifest-path bench/Cargo.toml --bin summary
set -euo pipefail

# shellcheck source=scripts/tools.sh
source "$(dirname "${BASH_SOURCE[0]}")/tools.sh"

ensure_wasip1() {
  if ! (cd "$TOLLGATE_ROOT" && rustup target list --installed | grep -qx wasm32-wasip1); then
    log "adding the wasm32-wasip1 target"
    (cd "$TOLLGATE_ROOT" && rustup target add wasm32-wasip1)
  fi
}

ensure_rust
ensure_wasip1

export CARGO_TARGET_DIR="$TOLLGATE_ROOT/bench/target"
manifest="$TOLLGATE_ROOT/bench/Cargo.toml"
results="$CARGO_TARGET_DIR/tollgate-bench"
mkdir -p "$results"
rm -f "$results"/*.jsonl
cd "$TOLLGATE_ROOT/bench"

log "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(rustc --version), node $(node --version 2>/dev/null || echo missing); $(uptime | sed 's/.*load/load/')"

log "building (release; the first build compiles aws-lc-rs and takes a while)"
cargo build --release --manifest-path "$manifest" --benches --bins
cargo build --release --manifest-path "$manifest" -p tollgate-bench-wasm --target wasm32-wasip1
cargo build --profile wasm --manifest-path "$manifest" -p tollgate-bench-wasm --target wasm32-wasip1

log "1-2. verify: tollgate (pure Rust, ring) vs raw signatures vs jsonwebtoken + aws-lc-rs"
cargo bench --manifest-path "$manifest" --bench verify -- "$@"

log "3. denylist: lookups at 10k/100k/1M, snapshot of 100k"
cargo bench --manifest-path "$manifest" --bench denylist -- "$@"

log "3. denylist: memory per entry (counting allocator)"
cargo run --release --manifest-path "$manifest" --bin denylist-memory

log "4. wasm32-wasip1 under Node vs native, same loop"
cargo run --release --manifest-path "$manifest" -p tollgate-bench-wasm >"$results/wasm-native.jsonl"
if command -v node >/dev/null; then
  node --no-warnings wasm/run.mjs "$CARGO_TARGET_DIR/wasm32-wasip1/release/tollgate-bench-wasm.wasm" \
    >"$results/wasm-node-opt3.jsonl"
  node --no-warnings wasm/run.mjs "$CARGO_TARGET_DIR/wasm32-wasip1/wasm/tollgate-bench-wasm.wasm" \
    >"$results/wasm-node-opt-s.jsonl"
else
  log "node not found: skipping the wasm32 run"
fi

log "summary ($(uptime | sed 's/.*load/load/'))"
cargo run --release --quiet --manifest-path "$manifest" --bin summary
