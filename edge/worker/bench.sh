#!/usr/bin/env bash
# The Worker's benchmarks on `workerd serve` (see bench/bench.mjs for what is measured).
# Installs what it needs, builds the Worker, the revocation service and the CLI, copies
# the seed Express peer to target/edge/peers/ and installs it there, then runs every
# measurement in one go and prints the figures and ratios. Loopback only; bounded:
# about 6 runs × BENCH_RUNS × BENCH_SECONDS of wrk plus a minute of setup.
#   edge/worker/bench.sh                               defaults: 3 runs × 8 s, 50 connections
#   BENCH_RUNS=5 BENCH_SECONDS=10 edge/worker/bench.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
# shellcheck source=../../scripts/tools.sh
source scripts/tools.sh
ensure_rust
ensure_node22
ensure_wrangler   # for the workerd binary it ships
ensure_wrk
command -v redis-server >/dev/null || apt-get install -y -qq redis-server >/dev/null
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/edge}"

log "building the revocation service (release) and the Worker"
timeout 1500 cargo build --release -q -p tollgate-revocation
# The measurement build: the shipped code with the bench endpoint compiled in.
TOLLGATE_BUILD_FEATURES=bench timeout 1500 edge/worker/build.sh

peer="$CARGO_TARGET_DIR/peers/seed-express"
if [ ! -d "$peer/node_modules" ]; then
  log "copying the seed Express peer to $peer and installing it"
  rm -rf "$peer" && mkdir -p "$(dirname "$peer")"
  cp -r "$root/../shared/peers/seed-express" "$peer"
  (cd "$peer" && ./run.sh install >/dev/null)
fi

export WORKERD TOLLGATE_PEER_DIR="$peer"
export TOLLGATE_REVOCATION_BIN="$CARGO_TARGET_DIR/release/tollgate-revocation"
export TOLLGATE_WORKER_BUILD="$root/edge/worker/build-bench"
timeout 1200 "$NODE22" edge/worker/bench/bench.mjs
