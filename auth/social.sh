#!/usr/bin/env bash
# Social login and the page, end to end: builds tollgate-auth, tollgate-revocation
# (debug unless TOLLGATE_E2E_PROFILE=release) and the Worker, installs the suites'
# npm dependencies (oidc-provider, jose, playwright-core, openid-client) and Chromium,
# then runs, bounded:
#   auth/social-test/social.test.mjs   two local OpenID providers (Google- and Kakao-shaped)
#   auth/social-test/browser.test.mjs  the page in headless Chromium through the Worker
# TOLLGATE_SCREENSHOTS=1 saves screenshots of the key steps to docs/social-*.png.
#   auth/social.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/tools.sh
ensure_rust
ensure_node22
ensure_wrangler
ensure_chromium
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
profile="${TOLLGATE_E2E_PROFILE:-debug}"
log "building tollgate-auth and tollgate-revocation ($profile), and the Worker"
if [ "$profile" = release ]; then
  timeout 1500 cargo build --release -q -p tollgate-auth -p tollgate-revocation
else
  timeout 1500 cargo build -q -p tollgate-auth -p tollgate-revocation
fi
timeout 1500 edge/worker/build.sh
suite="$root/auth/social-test"
if [ ! -d "$suite/node_modules/oidc-provider" ] || [ "$suite/package-lock.json" -nt "$suite/node_modules/.package-lock.json" ]; then
  (cd "$suite" && PATH="$(dirname "$NODE22"):$PATH" npm ci --no-audit --no-fund --silent)
fi
bindir="$CARGO_TARGET_DIR/$profile"
export TOLLGATE_AUTH_BIN="$bindir/tollgate-auth"
export TOLLGATE_REVOCATION_BIN="$bindir/tollgate-revocation"
export NODE22 WRANGLER_JS CHROMIUM_BIN
export TOLLGATE_E2E_LOGS="${TOLLGATE_E2E_LOGS:-$(mktemp -d -t tollgate-social-XXXXXX)}"
export TOLLGATE_E2E_PIDFILE="$TOLLGATE_E2E_LOGS/pids"
: >"$TOLLGATE_E2E_PIDFILE"
cleanup() {
  while read -r pid; do
    [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null || true
  done <"$TOLLGATE_E2E_PIDFILE"
}
trap cleanup EXIT
log "social login + the page (logs in $TOLLGATE_E2E_LOGS)"
cd "$suite"
timeout 600 "$NODE22" --test --test-concurrency=1 --test-timeout=180000 social.test.mjs browser.test.mjs
