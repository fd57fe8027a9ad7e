#!/usr/bin/env bash
# End to end across the login service, the revocation service and the Worker in real
# workerd (wrangler dev): builds what it needs (debug binaries unless
# TOLLGATE_E2E_PROFILE=release), installs the test dependencies, runs
# tests/auth.test.mjs. Bounded; every process it starts is stopped.
#   auth/e2e.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/tools.sh
ensure_rust
ensure_node22
ensure_wrangler
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
profile="${TOLLGATE_E2E_PROFILE:-debug}"
log "building tollgate-auth and tollgate-revocation ($profile), and the Worker"
if [ "$profile" = release ]; then
  timeout 1500 cargo build --release -q -p tollgate-auth -p tollgate-revocation
else
  timeout 1500 cargo build -q -p tollgate-auth -p tollgate-revocation
fi
timeout 1500 edge/worker/build.sh
if [ ! -d tests/node_modules/jose ] || [ tests/package-lock.json -nt tests/node_modules/.package-lock.json ]; then
  (cd tests && PATH="$(dirname "$NODE22"):$PATH" npm ci --no-audit --no-fund --silent)
fi
bindir="$CARGO_TARGET_DIR/$profile"
export TOLLGATE_AUTH_BIN="$bindir/tollgate-auth"
export TOLLGATE_REVOCATION_BIN="$bindir/tollgate-revocation"
export NODE22 WRANGLER_JS
export TOLLGATE_E2E_LOGS="${TOLLGATE_E2E_LOGS:-$(mktemp -d -t tollgate-auth-e2e-XXXXXX)}"
export TOLLGATE_E2E_PIDFILE="$TOLLGATE_E2E_LOGS/pids"
: >"$TOLLGATE_E2E_PIDFILE"
cleanup() {
  while read -r pid; do
    [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null || true
  done <"$TOLLGATE_E2E_PIDFILE"
}
trap cleanup EXIT
log "login service end to end (logs in $TOLLGATE_E2E_LOGS)"
cd tests
timeout 600 "$NODE22" --test --test-concurrency=1 --test-timeout=120000 auth.test.mjs
