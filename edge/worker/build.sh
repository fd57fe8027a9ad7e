#!/usr/bin/env bash
# Builds the Worker with worker-build into edge/worker/build/ (index.js + index_bg.wasm).
# wrangler.toml's [build] command; skips the build when the output is newer than every
# source (TOLLGATE_FORCE_BUILD=1 rebuilds anyway). Tools come from scripts/tools.sh,
# never from GitHub downloads: WASM_BINDGEN_BIN, WASM_OPT_BIN, ESBUILD_BIN.
# profile.sh makes its named build with the same steps: TOLLGATE_BUILD_DIR=build-profile
# (another directory under edge/worker) and TOLLGATE_KEEP_NAMES=1 (the JS left unminified).
# TOLLGATE_BUILD_FEATURES=bench makes the measurement build (the bench endpoint compiled
# in) into edge/worker/build-bench/ (or TOLLGATE_BUILD_DIR); the shipped build has none.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=../../scripts/tools.sh
source "$root/scripts/tools.sh"
features="${TOLLGATE_BUILD_FEATURES:-}"
if [ -n "$features" ]; then dir="${TOLLGATE_BUILD_DIR:-build-bench}"; else dir="${TOLLGATE_BUILD_DIR:-build}"; fi
out="$here/$dir/index_bg.wasm"
if [ -z "${TOLLGATE_FORCE_BUILD:-}" ] && [ -f "$out" ] && [ -f "$here/$dir/index.js" ] \
  && [ -z "$(find "$here/src" "$here/Cargo.toml" "$here/plain-entry.mjs" "$root/core/src" "$root/core/Cargo.toml" "$root/edge/hub/src" "$root/edge/hub/Cargo.toml" "$root/Cargo.lock" \
              -newer "$out" -print -quit)" ]; then
  echo "tollgate-edge: build is up to date ($out)" >&2
  exit 0
fi
ensure_rust
ensure_worker_build
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/edge}"
cd "$here"
# The workspace's `wasm` profile: opt-level "s", lto, one codegen unit, panic = "abort".
# worker-build's bundle is written unminified, its per-request entry Proxy replaced by a
# plain fetch handler with the same panic recovery (see plain-entry.mjs), then minified.
if [ -n "$features" ]; then
  NO_MINIFY=1 worker-build --profile wasm --out-dir "$dir" -- --features "$features"
else
  NO_MINIFY=1 worker-build --profile wasm --out-dir "$dir"
fi
node "$here/plain-entry.mjs" "$here/$dir/index.js"
if [ -z "${TOLLGATE_KEEP_NAMES:-}" ]; then
  "$ESBUILD_BIN" "$here/$dir/index.js" --minify --format=esm --log-level=warning \
    --outfile="$here/$dir/index.js" --allow-overwrite
fi
ls -l "$here/$dir" >&2
