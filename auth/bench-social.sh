#!/usr/bin/env bash
# Social login's figures: the callback's cost (code exchange + ID-token verification)
# against openid-client 6 in the same run, and the JWKS fetches under bursts of
# unknown-kid ID tokens (goal: one per minute per provider), on the Kakao-shaped local
# provider. Release binaries unless TOLLGATE_BENCH_PROFILE=debug.
#   auth/bench-social.sh        # RUNS=3 PER=20 BURST=50
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/tools.sh
ensure_rust
ensure_node22
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
profile="${TOLLGATE_BENCH_PROFILE:-release}"
if [ "$profile" = release ]; then
  timeout 1800 cargo build --release -q -p tollgate-auth -p tollgate-revocation
else
  timeout 1800 cargo build -q -p tollgate-auth -p tollgate-revocation
fi
suite="$root/auth/social-test"
if [ ! -d "$suite/node_modules/openid-client" ] || [ "$suite/package-lock.json" -nt "$suite/node_modules/.package-lock.json" ]; then
  (cd "$suite" && PATH="$(dirname "$NODE22"):$PATH" npm ci --no-audit --no-fund --silent)
fi
export TOLLGATE_AUTH_BIN="$CARGO_TARGET_DIR/$profile/tollgate-auth"
export TOLLGATE_REVOCATION_BIN="$CARGO_TARGET_DIR/$profile/tollgate-revocation"
export TOLLGATE_E2E_LOGS="${TOLLGATE_E2E_LOGS:-$(mktemp -d -t tollgate-social-bench-XXXXXX)}"
export TOLLGATE_E2E_PIDFILE="$TOLLGATE_E2E_LOGS/pids"
: >"$TOLLGATE_E2E_PIDFILE"
cleanup() {
  while read -r pid; do
    [ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null || true
  done <"$TOLLGATE_E2E_PIDFILE"
}
trap cleanup EXIT
cd "$suite"
timeout 900 "$NODE22" bench.mjs
