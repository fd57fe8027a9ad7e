#!/usr/bin/env bash
# End-to-end tests of the revocation hub (edge/hub) in real workerd (wrangler dev): the
# RevocationHub Durable Object exported by the Worker's script, relay mode against the
# real revocation service, the Worker's cache-tier replica. Installs what it needs
# (scripts/tools.sh), builds the Worker's measurement build, the service and the npm
# package (whose RemoteDenylist subscribes to the hub's push), runs tests/hub.test.mjs
# (node:test). Non-zero on any failure; bounded in time.
#   edge/hub/test.sh                 build if needed, unit tests, then the e2e suite
#   TOLLGATE_E2E_PROFILE=debug ...   reuse the debug service binary (scripts/test.sh)
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

log "hub unit tests"
timeout 900 cargo test -q -p tollgate-hub

profile="${TOLLGATE_E2E_PROFILE:-release}"
log "building the revocation service ($profile)"
if [ "$profile" = release ]; then
  timeout 1500 cargo build --release -q -p tollgate-revocation
else
  timeout 1500 cargo build -q -p tollgate-revocation
fi
log "building the Worker's measurement build (exports RevocationHub; bench endpoint for the tier's counters)"
TOLLGATE_BUILD_FEATURES=bench timeout 1500 edge/worker/build.sh

# The npm package (tests/hub.test.mjs subscribes with its RemoteDenylist): built unless
# the package is newer than every source it is made from.
pkg=edge/npm/pkg/dist/node.js
if [ -f "$pkg" ] && [ -z "$(find edge/npm/src edge/npm/js edge/npm/build.sh core/src -newer "$pkg" -print -quit)" ]; then
  log "the npm package is up to date ($pkg)"
else
  log "building the npm package"
  timeout 1500 edge/npm/build.sh
fi

if [ ! -d tests/node_modules/jose ] || [ tests/package-lock.json -nt tests/node_modules/.package-lock.json ]; then
  log "installing the test dependencies (tests/package-lock.json)"
  (cd tests && PATH="$(dirname "$NODE22"):$PATH" npm ci --no-audit --no-fund --silent)
fi

bindir="$CARGO_TARGET_DIR/$([ "$profile" = release ] && echo release || echo debug)"
export TOLLGATE_REVOCATION_BIN="$bindir/tollgate-revocation"
export NODE22 WRANGLER_JS
export TOLLGATE_E2E_LOGS="${TOLLGATE_E2E_LOGS:-$(mktemp -d -t tollgate-hub-logs-XXXXXX)}"
mkdir -p "$TOLLGATE_E2E_LOGS"
export TOLLGATE_E2E_PIDFILE="$TOLLGATE_E2E_LOGS/pids"
: > "$TOLLGATE_E2E_PIDFILE"
cleanup() {
  while read -r pid; do
    [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null || true
  done < "$TOLLGATE_E2E_PIDFILE"
}
trap cleanup EXIT

log "hub end-to-end tests (logs in $TOLLGATE_E2E_LOGS)"
cd tests
timeout 600 "$NODE22" --test --test-concurrency=1 --test-timeout=120000 hub.test.mjs hub-log.test.mjs
