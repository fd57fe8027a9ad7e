#!/usr/bin/env bash
# Builds the npm package @tollgate/verify into edge/npm/pkg/ (git-ignored):
#
#   pkg/wasm/tollgate_wasm_bg.wasm   the core, compiled with [profile.wasm], wasm-opt'd
#   pkg/wasm/tollgate_wasm.js        wasm-bindgen's glue (--target web: plain ESM,
#                                    initialised explicitly by each entry below)
#   pkg/dist/*.js                    the hand-written API (js/) as ESM, and the entries:
#                                      node.js     Node/Deno import (sync init from the file)
#                                      node.cjs    Node require (esbuild bundle of the same)
#                                      web.js      browsers/bundlers (top-level await)
#                                      workerd.js  Cloudflare Workers (imports the .wasm)
#   pkg/index.d.ts, index.d.cts      the hand-written types
#   pkg/package.json, README.md      the manifest without devDependencies/scripts
#
# Idempotent; installs what it needs (scripts/tools.sh). Environment:
#   TOLLGATE_WASM_OPT_LEVEL=s|z   override [profile.wasm] opt-level (measurements)
#   TOLLGATE_WASM_OPT=0           skip wasm-opt
#   CARGO_TARGET_DIR              default target/npm
set -euo pipefail

NPM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../scripts/tools.sh
source "$NPM_DIR/../../scripts/tools.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TOLLGATE_ROOT/target/npm}"
PKG="$NPM_DIR/pkg"

ensure_rust
ensure_wasm_bindgen
ensure_npm_deps

log "cargo build -p tollgate-wasm (wasm32, profile wasm${TOLLGATE_WASM_OPT_LEVEL:+, opt-level $TOLLGATE_WASM_OPT_LEVEL})"
cargo_args=(build -p tollgate-wasm --target wasm32-unknown-unknown --profile wasm)
if [ -n "${TOLLGATE_WASM_OPT_LEVEL:-}" ]; then
  cargo_args+=(--config "profile.wasm.opt-level=\"$TOLLGATE_WASM_OPT_LEVEL\"")
fi
(cd "$TOLLGATE_ROOT" && cargo "${cargo_args[@]}")
WASM_IN="$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm/tollgate_wasm.wasm"

rm -rf "$PKG"
mkdir -p "$PKG/wasm" "$PKG/dist"

log "wasm-bindgen --target web"
"$WASM_BINDGEN_BIN" --target web --no-typescript --out-name tollgate_wasm --out-dir "$PKG/wasm" "$WASM_IN"

if [ "${TOLLGATE_WASM_OPT:-1}" != 0 ]; then
  if ensure_wasm_opt 2>/dev/null && [ -n "${WASM_OPT_BIN:-}" ]; then
    level="${TOLLGATE_WASM_OPT_LEVEL:-s}"
    log "wasm-opt -O$level"
    "$WASM_OPT_BIN" "-O$level" --strip-debug --strip-producers \
      --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
      --enable-reference-types --enable-multivalue \
      "$PKG/wasm/tollgate_wasm_bg.wasm" -o "$PKG/wasm/tollgate_wasm_bg.opt.wasm"
    mv "$PKG/wasm/tollgate_wasm_bg.opt.wasm" "$PKG/wasm/tollgate_wasm_bg.wasm"
  else
    log "wasm-opt not available: shipping wasm-bindgen's output as is"
  fi
fi

log "assembling the package"
for f in api errors verifier jwks-source remote-denylist hub-subscription http client node web workerd b64 url issuer revocation-client refresh cookies assertion; do
  cp "$NPM_DIR/js/$f.js" "$PKG/dist/$f.js"
done
# The CommonJS entry: node-cjs.js and everything it imports, bundled into one file.
cp "$NPM_DIR/js/node-cjs.js" "$PKG/dist/node-cjs.entry.js"
"$NPM_DIR/node_modules/.bin/esbuild" "$PKG/dist/node-cjs.entry.js" --bundle --format=cjs --platform=node \
  --target=node20 --outfile="$PKG/dist/node.cjs" --log-level=warning --log-override:empty-import-meta=silent
rm "$PKG/dist/node-cjs.entry.js"
cp "$NPM_DIR/index.d.ts" "$PKG/index.d.ts"
cp "$NPM_DIR/index.d.ts" "$PKG/index.d.cts"
cp "$NPM_DIR/README.md" "$PKG/README.md"
node -e '
  const fs = require("fs");
  const m = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
  delete m.devDependencies;
  delete m.scripts;
  fs.writeFileSync(process.argv[2], JSON.stringify(m, null, 2) + "\n");
' "$NPM_DIR/package.json" "$PKG/package.json"

raw=$(wc -c <"$PKG/wasm/tollgate_wasm_bg.wasm")
gz=$(gzip -9 -c "$PKG/wasm/tollgate_wasm_bg.wasm" | wc -c)
log "built $PKG (wasm $raw bytes, $gz gzip -9)"
