#!/usr/bin/env bash
# End-to-end tests of the Worker in real workerd (wrangler dev): installs what it needs
# (scripts/tools.sh), builds the Worker, the revocation service and the CLI, and runs
# tests/edge.test.mjs (node:test). Exits non-zero on any failure; bounded in time.
#   edge/worker/test.sh              build if needed, then test
#   TOLLGATE_E2E_LOGS=DIR ...        keep the processes' logs in DIR
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
# shellcheck source=../../scripts/tools.sh
source scripts/tools.sh
ensure_rust
ensure_node22
ensure_wrangler
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/edge}"

# TOLLGATE_E2E_PROFILE=debug reuses the debug binaries `cargo test --workspace` has just
# built (scripts/test.sh does this, to spare CI a second, LTO, build of both).
profile="${TOLLGATE_E2E_PROFILE:-release}"
log "building the revocation service and the CLI ($profile)"
if [ "$profile" = release ]; then
  timeout 1500 cargo build --release -q -p tollgate-revocation -p tollgate-cli
else
  timeout 1500 cargo build -q -p tollgate-revocation -p tollgate-cli
fi
log "building the Worker (shipped build, and the measurement build with the bench endpoint)"
timeout 1500 edge/worker/build.sh
TOLLGATE_BUILD_FEATURES=bench timeout 1500 edge/worker/build.sh

if [ ! -d tests/node_modules/jose ] || [ tests/package-lock.json -nt tests/node_modules/.package-lock.json ]; then
  log "installing the test dependencies (tests/package-lock.json)"
  (cd tests && PATH="$(dirname "$NODE22"):$PATH" npm ci --no-audit --no-fund --silent)
fi

bindir="$CARGO_TARGET_DIR/$([ "$profile" = release ] && echo release || echo debug)"
export TOLLGATE_BIN="$bindir/tollgate"
export TOLLGATE_REVOCATION_BIN="$bindir/tollgate-revocation"
export NODE22 WRANGLER_JS
export TOLLGATE_E2E_LOGS="${TOLLGATE_E2E_LOGS:-$(mktemp -d -t tollgate-e2e-logs-XXXXXX)}"
mkdir -p "$TOLLGATE_E2E_LOGS"
export TOLLGATE_E2E_PIDFILE="$TOLLGATE_E2E_LOGS/pids"
: > "$TOLLGATE_E2E_PIDFILE"
cleanup() {
  # Process groups the harness started, should it have died before stopping them.
  while read -r pid; do
    [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null || true
  done < "$TOLLGATE_E2E_PIDFILE"
}
trap cleanup EXIT

log "end-to-end tests (logs in $TOLLGATE_E2E_LOGS)"
cd tests
timeout 600 "$NODE22" --test --test-concurrency=1 --test-timeout=120000 plain-entry.test.mjs edge.test.mjs
