#!/usr/bin/env bash
# The login service's tests: unit tests, then the integration suite over real sockets
# with the real revocation service, on SQLite and on a real PostgreSQL started here
# (auth/pg.sh: initdb/pg_ctl as the postgres user, temp dir, free loopback port).
# Bounded; stops what it starts.
#   auth/test.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/tools.sh
source auth/pg.sh
ensure_rust
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

timeout 1500 cargo build -q -p tollgate-revocation
export TOLLGATE_REVOCATION_BIN="$CARGO_TARGET_DIR/debug/tollgate-revocation"
trap pg_stop EXIT
pg_start
export TOLLGATE_AUTH_REQUIRE_PG=1
# Each case starts its own revocation service and (on PostgreSQL) its own database.
timeout 900 cargo test -p tollgate-auth -- --test-threads 4
