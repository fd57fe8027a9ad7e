#!/usr/bin/env bash
# The edge-only demo (the login service's demo is scripts/demo.sh): the revocation service and the Worker (wrangler dev, real workerd) in
# front of a small local origin; a token minted by `tollgate mint` goes through, a
# logout is posted for its session, the same token is then refused as `revoked`, and
# the propagation time is printed. Everything it starts is stopped at the end.
# Loopback only; bounded (each wait has a deadline).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
source scripts/tools.sh
ensure_rust
ensure_node22
ensure_wrangler
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target/edge}"

log "building tollgate, tollgate-revocation and the Worker"
cargo build --release -q -p tollgate-cli -p tollgate-revocation
edge/worker/build.sh >/dev/null 2>&1 || edge/worker/build.sh
bin="$CARGO_TARGET_DIR/release/tollgate"
svc_bin="$CARGO_TARGET_DIR/release/tollgate-revocation"

work=$(mktemp -d -t tollgate-demo-edge-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\033[1m%-36s\033[0m %s\n' "$1" "$2"; }
free_port() { "$NODE22" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
ms() { date +%s%3N; }
wait_for() { # wait_for SECONDS COMMAND...: polls COMMAND until it succeeds or time runs out
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out waiting for: $*" >&2; return 1; }
    sleep 0.1
  done
}
# Runs a command in its own process group (so it and its children stop together).
spawn() { local logf=$1; shift; setsid "$@" >"$logf" 2>&1 & pids+=($!); }

# 1. The revocation service, with a denylist:read key for the Worker and an events:write key.
svc_port=$(free_port)
svc="http://127.0.0.1:$svc_port"
read_key=$("$svc_bin" keys create --data-dir "$work/data" --name edge --scope denylist:read 2>/dev/null)
write_key=$("$svc_bin" keys create --data-dir "$work/data" --name origin --scope events:write --issuer https://issuer.test 2>/dev/null)
spawn "$work/revocation.log" "$svc_bin" serve --data-dir "$work/data" --listen "127.0.0.1:$svc_port"
wait_for 20 curl -sf "$svc/healthz"
denylist_key=$(curl -sf "$svc/v1/denylist/key")
say "1. revocation service up" "$svc (denylist key kid $(sed -E 's/.*"kid":"([^"]{10})[^"]*".*/\1/' <<<"$denylist_key")…)"

# 2. An issuer key, a small origin that echoes the identity it receives, and the Worker.
"$bin" keygen es256 --out "$work/issuer" >/dev/null
origin_port=$(free_port)
# The origin checks the Worker's X-Tollgate-Assertion (HS256, docs/origin-assertion.md)
# with the shared secret before it believes the identity headers.
origin_secret=$("$NODE22" -e 'console.log(require("crypto").randomBytes(32).toString("base64url"))')
cat >"$work/origin.js" <<'EOF'
const crypto = require('crypto');
const secret = process.env.ORIGIN_SECRET;
function assertion(req) {
  const jws = req.headers['x-tollgate-assertion'];
  if (!jws) return 'missing';
  const [h, p, s] = jws.split('.');
  const mac = crypto.createHmac('sha256', secret).update(`${h}.${p}`).digest();
  const sig = Buffer.from(s ?? '', 'base64url');
  if (sig.length !== mac.length || !crypto.timingSafeEqual(sig, mac)) return 'bad_signature';
  const claims = JSON.parse(Buffer.from(p, 'base64url'));
  if (claims.exp < Date.now() / 1000 - 5 || claims.method !== req.method || claims.target !== req.url) return 'does_not_match';
  return 'valid';
}
require('http').createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ path: req.url, sub: req.headers['x-tollgate-sub'] ?? null, sid: req.headers['x-tollgate-sid'] ?? null, assertion: assertion(req) }));
}).listen(+process.argv[2], '127.0.0.1');
EOF
spawn "$work/origin.log" env ORIGIN_SECRET="$origin_secret" "$NODE22" "$work/origin.js" "$origin_port"
worker_port=$(free_port)
worker="http://127.0.0.1:$worker_port"
spawn "$work/wrangler.log" env CI=true NO_COLOR=1 "$NODE22" "$WRANGLER_JS" dev -c "$root/wrangler.toml" \
  --ip 127.0.0.1 --port "$worker_port" --inspector-port "$(free_port)" --persist-to "$work/wrangler-state" \
  --show-interactive-dev-session=false \
  --var "TOLLGATE_ORIGIN:http://127.0.0.1:$origin_port" \
  --var "TOLLGATE_JWKS_URLS:" --var "TOLLGATE_JWKS:$(tr -d '\n ' <"$work/issuer.jwks.json")" \
  --var "TOLLGATE_ISSUERS:[\"https://issuer.test\"]" --var "TOLLGATE_AUDIENCES:[\"https://api.test\"]" \
  --var "TOLLGATE_REVOCATION_URL:$svc" --var "TOLLGATE_REVOCATION_TOKEN:$read_key" \
  --var "TOLLGATE_DENYLIST_KEY:$denylist_key" --var "TOLLGATE_ORIGIN_SECRET:$origin_secret"
wait_for 90 curl -sf "$worker/public/health"
say "2. worker up (wrangler dev, workerd)" "$worker → origin http://127.0.0.1:$origin_port"

# 3. A token for alice's session.
sid="demo-$RANDOM$RANDOM"
token=$("$bin" mint --key "$work/issuer.pem" --sub alice --sid "$sid" --iss https://issuer.test --aud https://api.test --ttl 15m)
say "3. minted a token (tollgate mint)" "sub alice, sid $sid (${#token} bytes)"

# 4. Through the Worker: the origin sees the verified identity.
out=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $token" "$worker/api/profile")
say "4. called through the worker" "${out##* } origin saw ${out% *}"

# 5. Logout: the origin service posts the event; the service acknowledges once durable.
t0=$(ms)
ack=$(curl -sf -X POST "$svc/v1/events" -H "Authorization: Bearer $write_key" -H 'content-type: application/json' \
  -d "{\"kind\":\"logout\",\"sid\":\"$sid\",\"exp\":$(( $(date +%s) + 3600 ))}")
t_ack=$(ms)
say "5. posted a logout for the session" "$ack ($(( t_ack - t0 )) ms)"

# 6. The same token again, until the Worker refuses it (deadline 10 s).
revoked() { [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$worker/api/profile")" = 401 ]; }
wait_for 10 revoked
t_rej=$(ms)
out=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $token" "$worker/api/profile")
say "6. called again" "${out##* } ${out% *}"
say "7. propagation" "logout acknowledged → worker rejecting in $(( t_rej - t_ack )) ms"

cleanup
trap - EXIT
say "8. stopped everything" "revocation service, origin, wrangler/workerd"
