#!/usr/bin/env bash
# Builds @tollgate/verify and runs all of its tests; exits non-zero on any failure.
#
#   1. the binding's Rust unit tests (native)
#   2. build.sh (wasm, package in edge/npm/pkg/)
#   3. the native binaries the Node tests drive: the `tollgate` CLI (the native core's
#      conformance runner, for interop comparison) and `tollgate-revocation`
#   4. node --test test/*.test.mjs (on the machine's Node, >= 20), with Node 22 and
#      wrangler for the workerd test and the Node 22 pack check, Deno for the Deno
#      test, and Debian's chromium for the bundler + browser test
#
# Everything it needs is installed idempotently (scripts/tools.sh). A few minutes once
# the cargo builds are warm; bounded per test by node:test's timeout.
set -euo pipefail

NPM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../scripts/tools.sh
source "$NPM_DIR/../../scripts/tools.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TOLLGATE_ROOT/target/npm}"
CARGO_CWD="$TOLLGATE_ROOT"

ensure_rust
ensure_npm_deps
ensure_wrangler # also Node 22 (NODE22)
ensure_deno     # DENO_BIN
ensure_chromium # CHROMIUM_BIN (apt); fails the run if it cannot be installed

log "cargo test -p tollgate-wasm"
(cd "$CARGO_CWD" && cargo test -p tollgate-wasm --quiet)

"$NPM_DIR/build.sh"

log "cargo build -p tollgate-cli -p tollgate-revocation"
(cd "$CARGO_CWD" && cargo build -p tollgate-cli --quiet)
export TOLLGATE_CLI_BIN="$CARGO_TARGET_DIR/debug/tollgate"
if (cd "$CARGO_CWD" && cargo build -p tollgate-revocation --quiet); then
  export TOLLGATE_REVOCATION_BIN="$CARGO_TARGET_DIR/debug/tollgate-revocation"
else
  log "tollgate-revocation does not build: the RemoteDenylist test against the real service will say it is skipped"
  export TOLLGATE_REVOCATION_BIN="$CARGO_TARGET_DIR/debug/tollgate-revocation.absent"
fi

export NODE22 WRANGLER_JS DENO_BIN CHROMIUM_BIN
log "node --test ($(node --version))"
cd "$NPM_DIR"
node --test --test-timeout=180000 test/*.test.mjs
