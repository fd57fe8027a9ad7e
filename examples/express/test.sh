#!/usr/bin/env bash
# Tests the Express example against the real revocation service on 127.0.0.1.
# Installs what it needs idempotently: the npm package (edge/npm/build.sh, when
# edge/npm/pkg is absent), the tollgate-revocation binary (cargo), this folder's
# dependencies (npm ci). Bounded: node:test timeout per test, 60 s.
set -euo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../scripts/tools.sh
source "$DIR/../../scripts/tools.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TOLLGATE_ROOT/target/npm}"

ensure_rust
ensure_npm_deps
if [ ! -f "$TOLLGATE_ROOT/edge/npm/pkg/dist/node.js" ]; then
  "$TOLLGATE_ROOT/edge/npm/build.sh"
fi
log "cargo build -p tollgate-revocation"
(cd "$TOLLGATE_ROOT" && cargo build -p tollgate-revocation --quiet)
export TOLLGATE_REVOCATION_BIN="$CARGO_TARGET_DIR/debug/tollgate-revocation"

stamp="$DIR/node_modules/.tollgate-lock.sha256"
want=$(sha256sum "$DIR/package-lock.json" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -e "$DIR/node_modules/@tollgate/verify" ]; then
  log "npm ci in examples/express"
  (cd "$DIR" && npm ci --no-audit --no-fund --silent >/dev/null)
  echo "$want" >"$stamp"
fi

log "node --test examples/express ($(node --version))"
cd "$DIR"
node --test --test-timeout=60000 test/*.test.mjs
