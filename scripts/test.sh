#!/usr/bin/env bash
# Runs every check and test of the project. Installs what it needs, idempotently,
# into .tools/ (git-ignored) or as rustup toolchains/targets.
#   scripts/test.sh            everything
#   FUZZ_SECONDS=5 scripts/test.sh   shorter fuzz smoke run
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh

ensure_rust
ensure_fuzz
# One target directory for every step, so the parts' scripts reuse each other's builds.
export CARGO_TARGET_DIR="$TOLLGATE_ROOT/target"

step() { printf '\n\033[1;34m### %s\033[0m\n' "$*"; }
started=$(date +%s)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (workspace, all targets, -D warnings)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p tollgate-core --all-targets --features ring,aws-lc-rs -- -D warnings
cargo clippy -p tollgate-edge --all-targets --features bench -- -D warnings
cargo clippy -p tollgate-origin --all-targets --features ring -- -D warnings
cargo clippy -p tollgate-origin --all-targets --no-default-features -- -D warnings

step "cargo test (workspace)"
# tollgate-origin's integration tests run the service binary this same cargo test builds.
export TOLLGATE_REVOCATION_BIN="$CARGO_TARGET_DIR/debug/tollgate-revocation"
cargo test --workspace
cargo test -p tollgate-core --features ring
cargo test -p tollgate-core --features aws-lc-rs
timeout 1200 cargo test -p tollgate-origin --features ring

step "no_std + alloc: tollgate-core for wasm32-unknown-unknown without default features"
cargo build -p tollgate-core --no-default-features --target wasm32-unknown-unknown

step "npm package @tollgate/verify: build, node:test suite (conformance, interop, Express, workerd, Deno, Chromium)"
edge/npm/test.sh
examples/express/test.sh

step "Worker end to end: real workerd via wrangler dev, the revocation service, jose tokens"
TOLLGATE_E2E_PROFILE=debug edge/worker/test.sh

step "revocation hub: RevocationHub Durable Object in workerd (relay mode, cache-tier replica)"
TOLLGATE_E2E_PROFILE=debug edge/hub/test.sh

step "login service: unit + integration suite on SQLite and a real PostgreSQL (auth/test.sh)"
auth/test.sh

step "login service end to end: tollgate-auth + the revocation service + the Worker in workerd (auth/e2e.sh)"
auth/e2e.sh

step "social login + the page: two local OpenID providers, headless Chromium through the Worker (auth/social.sh)"
auth/social.sh

step "fuzz: corpus replay on stable, then a bounded smoke run per target"
cargo test --manifest-path fuzz/Cargo.toml -p tollgate-fuzz-harness
scripts/fuzz-smoke.sh

step "done in $(( $(date +%s) - started )) s"
