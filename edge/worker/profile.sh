#!/usr/bin/env bash
# CPU profiles of the Worker on `workerd serve` under wrk load (see bench/profile.mjs):
# where a request's time goes in (a') passthrough, (b') hot token, (c') new token.
# Makes a profiling build in edge/worker/build-profile/: the same wasm as the shipped
# build (worker-build keeps the wasm "name" section: it runs wasm-opt with --debuginfo),
# made by build.sh's own steps (the same plain entry, plain-entry.mjs) with the JS shim
# left unminified (TOLLGATE_KEEP_NAMES) so its functions keep their names; the
# shipped build in edge/worker/build/ is not touched. About a minute of setup plus
# 3 × (PROFILE_WARM_SECONDS + PROFILE_SECONDS + PROFILE_COUNT_SECONDS) of load.
#   edge/worker/profile.sh                                   all three scenarios
#   PROFILE_SCENARIOS=b,c PROFILE_SECONDS=20 edge/worker/profile.sh
#   PROFILE_OUT=/tmp/prof edge/worker/profile.sh             keep the .cpuprofile files there
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
# shellcheck source=../../scripts/tools.sh
source scripts/tools.sh
ensure_rust
ensure_node22
ensure_wrangler   # for the workerd binary it ships
ensure_wrk
ensure_worker_build
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/edge}"

log "building the revocation service (release) and the profiling build of the Worker"
timeout 1500 cargo build --release -q -p tollgate-revocation
TOLLGATE_FORCE_BUILD=1 TOLLGATE_BUILD_FEATURES=bench TOLLGATE_BUILD_DIR=build-profile TOLLGATE_KEEP_NAMES=1 timeout 1500 "$here/build.sh"

export WORKERD
export TOLLGATE_REVOCATION_BIN="$CARGO_TARGET_DIR/release/tollgate-revocation"
export TOLLGATE_WORKER_BUILD="$here/build-profile"
timeout 1200 "$NODE22" "$here/bench/profile.mjs"
