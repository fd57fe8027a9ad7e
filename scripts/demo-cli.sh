#!/usr/bin/env bash
# The main job: mint a token with a fresh key, verify it, and show typed rejections.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tools.sh
ensure_rust

log "building tollgate (release)"
cargo build --release -q -p tollgate-cli
bin=target/release/tollgate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { printf '\033[1m%-34s\033[0m %s\n' "$1" "$2"; }

kid=$("$bin" keygen es256 --out "$work/issuer" | sed -E 's/.*"kid":"([^"]+)".*/\1/')
say "1. generated an ES256 key" "kid $kid ($work/issuer.pem, issuer.jwks.json)"

token=$("$bin" mint --key "$work/issuer.pem" --sub alice --sid sess-1 --iss https://issuer.test \
  --aud https://api.test --ttl 15m --claim role=admin)
say "2. minted an access token" "${token:0:48}… (${#token} bytes)"

claims=$("$bin" verify --jwks "$work/issuer.jwks.json" --iss https://issuer.test --aud https://api.test \
  --require exp --require sub --require jti "$token" | tr -d '\n ' )
say "3. verified it" "$claims"

later=$(( $(date +%s) + 3600 ))
out=$("$bin" verify --jwks "$work/issuer.jwks.json" --now "$later" "$token" || true)
say "4. one hour later" "$out"

out=$("$bin" verify --jwks "$work/issuer.jwks.json" --iss https://other.test "$token" || true)
say "5. another issuer required" "$out"

tampered="${token%?????}AAAAA"
out=$("$bin" verify --jwks "$work/issuer.jwks.json" "$tampered" || true)
say "6. signature tampered with" "$out"

"$bin" keygen rs256 --out "$work/other" >/dev/null
out=$("$bin" verify --jwks "$work/other.jwks.json" "$token" || true)
say "7. a JWKS without its key" "$out"

out=$("$bin" conformance ../shared/conformance/cases/*.jsonl 2>/dev/null | tail -1 || true)
[ -n "$out" ] && say "8. shared conformance suite" "$out"
