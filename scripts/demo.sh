#!/usr/bin/env bash
# The main demo: the guides' login story on Tollgate. Starts the revocation service,
# the login service (tollgate-auth, SQLite in a temp directory) and the Worker
# (wrangler dev, real workerd) in front of it, then walks the story through the edge,
# one line per step: register → login → profile (200) → refresh → logout → the same
# access token refused at the edge (401 revoked, with the measured propagation) → log
# in again → a stolen refresh token replayed → reuse detected → that session's access
# tokens refused at the edge → "Sign in with Kakao" (a local OpenID provider shaped
# like Kakao) → callback → profile 200 through the edge. Stops everything it started. Loopback only; every wait
# has a deadline. Installs what it needs (scripts/tools.sh), idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
source scripts/tools.sh
ensure_rust
ensure_node22
ensure_wrangler
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

# TOLLGATE_DEMO_PROFILE=debug uses debug binaries (quicker to build while developing).
profile="${TOLLGATE_DEMO_PROFILE:-release}"
log "building tollgate-auth, tollgate-revocation ($profile) and the Worker"
if [ "$profile" = release ]; then
  cargo build --release -q -p tollgate-auth -p tollgate-revocation
else
  cargo build -q -p tollgate-auth -p tollgate-revocation
fi
edge/worker/build.sh >/dev/null 2>&1 || edge/worker/build.sh
if [ ! -d auth/social-test/node_modules/oidc-provider ] || [ auth/social-test/package-lock.json -nt auth/social-test/node_modules/.package-lock.json ]; then
  (cd auth/social-test && PATH="$(dirname "$NODE22"):$PATH" npm ci --no-audit --no-fund --silent)
fi
auth_bin="$CARGO_TARGET_DIR/$profile/tollgate-auth"
svc_bin="$CARGO_TARGET_DIR/$profile/tollgate-revocation"

work=$(mktemp -d -t tollgate-demo-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\033[1m%-40s\033[0m %s\n' "$1" "$2"; }
free_port() { "$NODE22" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
ms() { date +%s%3N; }
wait_for() { # wait_for SECONDS COMMAND...: polls COMMAND until it succeeds or time runs out
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out waiting for: $*" >&2; return 1; }
    sleep 0.05
  done
}
spawn() { local logf=$1; shift; setsid "$@" >"$logf" 2>&1 & pids+=($!); }
# json FIELD: reads JSON on stdin, prints the field (dotted path).
json() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v if not isinstance(v,(dict,list)) else json.dumps(v))' "$1"; }
# post PATH JSON [HEADER...]: POST through the Worker; prints "<body> <status>".
post() { local p=$1 b=$2; shift 2; curl -s -w ' %{http_code}' -X POST "$worker$p" -H 'content-type: application/json' "$@" -d "$b"; }
status_of() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "$worker/profile"; }

# 1. The revocation service, with an events:write key for the login service and a
#    denylist:read key for the Worker.
svc_port=$(free_port)
svc="http://127.0.0.1:$svc_port"
read_key=$("$svc_bin" keys create --data-dir "$work/revocation" --name edge --scope denylist:read 2>/dev/null)
write_key=$("$svc_bin" keys create --data-dir "$work/revocation" --name auth --scope events:write --issuer https://issuer.test 2>/dev/null)
spawn "$work/revocation.log" "$svc_bin" serve --data-dir "$work/revocation" --listen "127.0.0.1:$svc_port"
wait_for 20 curl -sf "$svc/healthz"
say "1. revocation service up" "$svc"

# 2. A local OpenID provider standing in for Kakao (oidc-provider: client_secret_post,
#    numeric sub, PKCE required), then the login service (SQLite in the data directory)
#    with it as its `kakao` provider. The browser sees everything through the Worker.
worker_port=$(free_port)
worker="http://127.0.0.1:$worker_port"
kakao_secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
spawn "$work/kakao.log" "$NODE22" auth/social-test/provider-cli.mjs kakao demo-kakao "$kakao_secret" \
  "$worker/auth/kakao/callback" 4242424242 kakao.user@example.test
wait_for 20 grep -q '^http://' "$work/kakao.log"
kakao=$(grep -m1 '^http://' "$work/kakao.log")
auth_port=$(free_port)
auth="http://127.0.0.1:$auth_port"
# The Worker signs an X-Tollgate-Assertion for every request it forwards (HS256 with this
# shared secret, docs/origin-assertion.md); the login service refuses protected requests
# without a valid one, so nothing reaches it around the edge.
origin_secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
spawn "$work/auth.log" env TOLLGATE_AUTH_REVOCATION_URL="$svc" TOLLGATE_AUTH_REVOCATION_TOKEN="$write_key" \
  TOLLGATE_AUTH_EDGE_ASSERTION_SECRETS="[\"$origin_secret\"]" TOLLGATE_AUTH_EDGE_ASSERTION_AUDIENCE="$auth" \
  TOLLGATE_AUTH_PUBLIC_URL="$worker" \
  TOLLGATE_AUTH_PROVIDERS="{ kakao = { preset = \"kakao\", issuer = \"$kakao\", client_id = \"demo-kakao\", client_secret = \"$kakao_secret\" } }" \
  "$auth_bin" serve --data-dir "$work/auth" --listen "127.0.0.1:$auth_port" --insecure-dev-cookies
wait_for 20 curl -sf "$auth/readyz"
kid=$(curl -s "$auth/.well-known/jwks.json" | json keys | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["kid"][:10])')
say "2. login service up (SQLite)" "$auth (access key kid $kid…), Kakao stand-in at $kakao"

# 3. The Worker in front of it: /auth/* and the JWKS open, /admin/* for admins, the rest
#    needs a valid, unrevoked access token.
routes='[{"path":"/auth/logout","auth":"required"},{"path":"/auth/logout-all","auth":"required"},{"path":"/auth/*","auth":"none"},{"path":"/.well-known/*","auth":"none"},{"path":"/healthz","auth":"none"},{"path":"/","auth":"none"},{"path":"/page/*","auth":"none"},{"path":"/admin/*","roles_any":["admin"]},{"path":"/*","auth":"required"}]'
spawn "$work/wrangler.log" env CI=true NO_COLOR=1 "$NODE22" "$WRANGLER_JS" dev -c "$root/wrangler.toml" \
  --ip 127.0.0.1 --port "$worker_port" --inspector-port "$(free_port)" --persist-to "$work/wrangler-state" \
  --show-interactive-dev-session=false \
  --var "TOLLGATE_ORIGIN:$auth" --var "TOLLGATE_JWKS:" \
  --var "TOLLGATE_JWKS_URLS:[\"$auth/.well-known/jwks.json\"]" \
  --var "TOLLGATE_ISSUERS:[\"https://issuer.test\"]" --var "TOLLGATE_AUDIENCES:[\"https://api.test\"]" \
  --var "TOLLGATE_REVOCATION_URL:$svc" --var "TOLLGATE_REVOCATION_TOKEN:$read_key" \
  --var "TOLLGATE_DENYLIST_KEY:$(curl -sf "$svc/v1/denylist/key")" --var "TOLLGATE_ROUTES:$routes" \
  --var "TOLLGATE_ORIGIN_SECRET:$origin_secret"
wait_for 90 curl -sf "$worker/healthz"
say "3. worker up (wrangler dev, workerd)" "$worker → $auth (the page: $worker/)"

# 4. Register and log in, through the Worker.
email="alice.$RANDOM@example.test"
out=$(post /auth/register "{\"email\":\"$email\",\"password\":\"correct horse battery staple\"}")
say "4. registered" "${out##* } ${out% *}"
out=$(post /auth/login "{\"email\":\"$email\",\"password\":\"correct horse battery staple\"}")
[ "${out##* }" = 200 ] || { echo "login failed: $out" >&2; exit 1; }
session=${out% *}
access=$(json access_token <<<"$session"); refresh=$(json refresh_token <<<"$session"); sid=$(json session_id <<<"$session")
say "5. logged in (Argon2id)" "200 session $sid, access token ${#access} bytes (ES256, 15 min), refresh token (7 days)"

# 6. The profile through the edge.
out=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $access" "$worker/profile")
say "6. profile through the edge" "${out##* } $(json user.email <<<"${out% *}") roles $(json user.roles <<<"${out% *}")"

# 7. Refresh: a new pair (the refresh token rotates at the revocation service).
out=$(post /auth/refresh "{\"refresh_token\":\"$refresh\"}")
access=$(json access_token <<<"${out% *}")
say "7. refreshed" "${out##* } new access token, refresh token rotated"

# 8. Logout, acknowledged once durable at the revocation service.
# 9. Right after the acknowledgement, the same access token at the edge until refused
#    (deadline 10 s); the lines are printed after the clock is read.
revoked() { [ "$(status_of "$1")" = 401 ]; }
t0=$(ms)
out=$(curl -s -w ' %{http_code}' -X POST -H "Authorization: Bearer $access" "$worker/auth/logout")
t_ack=$(ms)
wait_for 10 revoked "$access"
t_rej=$(ms)
say "8. logged out" "${out##* } seq $(json seq <<<"${out% *}") ($(( t_ack - t0 )) ms)"
out=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $access" "$worker/profile")
say "9. same access token at the edge" "${out##* } ${out% *}"
say "   propagation" "logout acknowledged → edge rejecting in $(( t_rej - t_ack )) ms"

# 10. Log in again; the user refreshes twice (tokens r0 → r1 → r2).
out=$(post /auth/login "{\"email\":\"$email\",\"password\":\"correct horse battery staple\"}")
r0=$(json refresh_token <<<"${out% *}"); sid2=$(json session_id <<<"${out% *}")
out=$(post /auth/refresh "{\"refresh_token\":\"$r0\"}"); r1=$(json refresh_token <<<"${out% *}")
out=$(post /auth/refresh "{\"refresh_token\":\"$r1\"}"); access2=$(json access_token <<<"${out% *}")
say "10. logged in again, refreshed twice" "session $sid2; profile at the edge $(status_of "$access2")"

# 11. A thief replays the stolen first refresh token.
t0=$(ms)
out=$(post /auth/refresh "{\"refresh_token\":\"$r0\"}")
t_reuse=$(ms)
# 12. That session's access tokens are refused at the edge.
wait_for 10 revoked "$access2"
t_rej=$(ms)
say "11. stolen refresh token replayed" "${out##* } $(json error <<<"${out% *}") ($(( t_reuse - t0 )) ms)"
out=$(curl -s -w ' %{http_code}' -H "Authorization: Bearer $access2" "$worker/profile")
say "12. the session's access token at edge" "${out##* } ${out% *} ($(( t_rej - t_reuse )) ms after the reuse)"

# 13. "Sign in with Kakao" through the edge: start → the provider's login and consent →
#     callback (PKCE, state, nonce, the ID token verified against the provider's JWKS) →
#     session cookies → the profile through the edge.
out=$("$NODE22" auth/social-test/demo-login.mjs "$worker" 4242424242)
say "13. Sign in with Kakao, callback" "$out"

cleanup
trap - EXIT
say "14. stopped everything" "revocation service, login service, wrangler/workerd, the Kakao stand-in"
