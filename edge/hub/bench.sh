#!/usr/bin/env bash
# The revocation hub's benchmarks (see bench/hub-bench.mjs for what is measured):
# logout → edge p50/p99 in relay and log mode, upstream requests to the revocation
# service with 1/10/100 isolates direct vs through the hub, and log-mode events/s
# against the revocation service in the same run. Installs what it needs, builds the
# Worker's measurement build and the service (release), prints the figures. Loopback
# only; bounded (about 4 minutes with the defaults).
#   edge/hub/bench.sh
#   HUB_BENCH_SAMPLES=100 HUB_BENCH_SECONDS=20 edge/hub/bench.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
# shellcheck source=../../scripts/tools.sh
source scripts/tools.sh
ensure_rust
ensure_node22
ensure_wrangler
ensure_wrk
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/edge}"

log "building the revocation service (release) and the Worker's measurement build"
timeout 1500 cargo build --release -q -p tollgate-revocation
TOLLGATE_BUILD_FEATURES=bench timeout 1500 edge/worker/build.sh

export TOLLGATE_REVOCATION_BIN="$CARGO_TARGET_DIR/release/tollgate-revocation"
export NODE22 WRANGLER_JS WORKERD
export TOLLGATE_E2E_LOGS="${TOLLGATE_E2E_LOGS:-$(mktemp -d -t tollgate-hub-bench-logs-XXXXXX)}"
timeout 1200 "$NODE22" edge/hub/bench/hub-bench.mjs
