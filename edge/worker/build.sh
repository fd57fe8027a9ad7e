#!/usr/bin/env bash
# Builds the Worker with worker-build into edge/worker/build/ (index.js + index_bg.wasm).
# wrangler.toml's [build] command; skips the build when the output is newer than every
# source (TOLLGATE_FORCE_BUILD=1 rebuilds anyway). Tools come from scripts/tools.sh,
# never from GitHub downloads: WASM_BINDGEN_BIN, WASM_OPT_BIN, ESBUILD_BIN.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=../../scripts/tools.sh
source "$root/scripts/tools.sh"
out="$here/build/index_bg.wasm"
if [ -z "${TOLLGATE_FORCE_BUILD:-}" ] && [ -f "$out" ] && [ -f "$here/build/index.js" ] \
  && [ -z "$(find "$here/src" "$here/Cargo.toml" "$here/plain-entry.mjs" "$root/core/src" "$root/core/Cargo.toml" "$root/Cargo.lock" \
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
NO_MINIFY=1 worker-build --profile wasm
node "$here/plain-entry.mjs" "$here/build/index.js"
"$ESBUILD_BIN" "$here/build/index.js" --minify --format=esm --log-level=warning \
  --outfile="$here/build/index.js" --allow-overwrite
ls -l "$here/build" >&2
