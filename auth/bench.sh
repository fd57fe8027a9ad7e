#!/usr/bin/env bash
# The login service's bench, with the seed Express peer (Express + bcrypt + jsonwebtoken
# + Redis, ../shared/peers/seed-express, copied to a scratch folder) in the same run:
#   1. login throughput and latency (Argon2id m=19 MiB t=2 p=1 vs bcrypt cost 10: the
#      same work-factor class), interleaved runs;
#   2. refresh throughput and latency on both (ours rotates at the revocation service,
#      durably; the peer only verifies an HS256 token and signs a new access token);
#   3. logout → edge rejection through the Worker (wrangler dev, real workerd).
# Prints every figure, the ratios of the same run, and the load average. Bounded.
#   auth/bench.sh                      RUNS=2 SECONDS_PER=8 CLIENTS=16 LOGOUTS=100
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/tools.sh
ensure_rust
ensure_node22
ensure_wrangler
ensure_redis
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
RUNS=${RUNS:-2}
SECS=${SECONDS_PER:-8}
CLIENTS=${CLIENTS:-16}
LOGOUTS=${LOGOUTS:-100}

log "building release binaries and the Worker"
timeout 3000 cargo build --release -q -p tollgate-auth -p tollgate-revocation
timeout 1500 edge/worker/build.sh >/dev/null 2>&1 || timeout 1500 edge/worker/build.sh
auth_bin="$CARGO_TARGET_DIR/release/tollgate-auth"
svc_bin="$CARGO_TARGET_DIR/release/tollgate-revocation"

work=$(mktemp -d -t tollgate-auth-bench-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
spawn() { local logf=$1; shift; setsid "$@" >"$logf" 2>&1 & pids+=($!); }
free_port() { "$NODE22" -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_for() {
  local deadline=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out waiting for: $*" >&2; return 1; }
    sleep 0.1
  done
}

# The revocation service and the login service (SQLite). Rate limits are raised for
# the load generator, by name: every request comes from 127.0.0.1 and 16 accounts.
svc_port=$(free_port); svc="http://127.0.0.1:$svc_port"
read_key=$("$svc_bin" keys create --data-dir "$work/rev" --name edge --scope denylist:read 2>/dev/null)
write_key=$("$svc_bin" keys create --data-dir "$work/rev" --name auth --scope events:write --issuer https://issuer.test 2>/dev/null)
spawn "$work/rev.log" "$svc_bin" serve --data-dir "$work/rev" --listen "127.0.0.1:$svc_port"
wait_for 20 curl -sf "$svc/healthz"
cat >"$work/auth.toml" <<EOF
revocation_url = "$svc"
revocation_token = "$write_key"
# Bench only: the load comes from one address and a few accounts.
rate_login_account = { burst = 1000000, interval_ms = 1 }
rate_login_ip = { burst = 1000000, interval_ms = 1 }
rate_login_global = { burst = 1000000, interval_ms = 1 }
rate_register_ip = { burst = 1000000, interval_ms = 1 }
rate_refresh_ip = { burst = 1000000, interval_ms = 1 }
EOF
auth_port=$(free_port); auth="http://127.0.0.1:$auth_port"
spawn "$work/auth.log" env TOLLGATE_AUTH_LOG=warn "$auth_bin" serve --config "$work/auth.toml" --data-dir "$work/auth" --listen "127.0.0.1:$auth_port"
wait_for 20 curl -sf "$auth/readyz"

# The peer, copied (the shared folder is read-only), on its own Redis.
cp -r /work/shared/peers/seed-express "$work/peer" 2>/dev/null || cp -r "$root/../shared/peers/seed-express" "$work/peer"
rm -rf "$work/peer/node_modules" "$work/peer/run" "$work/peer/keys"
(cd "$work/peer" && PATH="$(dirname "$NODE22"):$PATH" timeout 600 npm ci --no-audit --no-fund --silent >/dev/null)
redis_port=$(free_port)
spawn "$work/redis.log" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no
wait_for 10 redis-cli -p "$redis_port" ping
peer_port=$(free_port); peer="http://127.0.0.1:$peer_port"
spawn "$work/peer.log" env PORT="$peer_port" REDIS_URL="redis://127.0.0.1:$redis_port" KEY_DIR="$work/peer/keys" "$NODE22" "$work/peer/server.js"
wait_for 20 curl -s -o /dev/null "$peer/profile"

# Accounts on both.
users=$("$NODE22" -e "console.log(JSON.stringify(Array.from({length:$CLIENTS},(_, i)=>'bench'+i+'@example.test')))")
pw='correct horse battery staple'
for u in $("$NODE22" -e "for (const u of $users) console.log(u)"); do
  curl -sf -o /dev/null -H 'content-type: application/json' -d "{\"email\":\"$u\",\"password\":\"$pw\"}" "$auth/auth/register"
  curl -sf -o /dev/null -H 'content-type: application/json' -d "{\"email\":\"$u\",\"password\":\"$pw\"}" "$peer/register"
done

load() { # load TARGET URL KIND
  "$NODE22" auth/bench/load.mjs "{\"url\":\"$2\",\"target\":\"$1\",\"kind\":\"$3\",\"clients\":$CLIENTS,\"seconds\":$SECS,\"users\":$users,\"password\":\"$pw\"}"
}
results="$work/results.jsonl"
echo "# tollgate-auth bench: $CLIENTS clients, $SECS s per phase, $RUNS interleaved runs ($(nproc) cores; load at start: $(cut -d' ' -f1-3 /proc/loadavg))"
for run in $(seq "$RUNS"); do
  for kind in login refresh; do
    for target in tollgate peer; do
      url=$auth; [ "$target" = peer ] && url=$peer
      line=$(load "$target" "$url" "$kind")
      echo "{\"run\":$run,${line#\{}" | tee -a "$results"
    done
  done
done

# Logout → edge rejection through the Worker.
worker_port=$(free_port); worker="http://127.0.0.1:$worker_port"
routes='[{"path":"/auth/logout","auth":"required"},{"path":"/auth/logout-all","auth":"required"},{"path":"/auth/*","auth":"none"},{"path":"/.well-known/*","auth":"none"},{"path":"/healthz","auth":"none"},{"path":"/*","auth":"required"}]'
spawn "$work/wrangler.log" env CI=true NO_COLOR=1 "$NODE22" "$WRANGLER_JS" dev -c "$root/wrangler.toml" \
  --ip 127.0.0.1 --port "$worker_port" --inspector-port "$(free_port)" --persist-to "$work/wrangler-state" \
  --show-interactive-dev-session=false \
  --var "TOLLGATE_ORIGIN:$auth" --var "TOLLGATE_JWKS:" --var "TOLLGATE_JWKS_URLS:[\"$auth/.well-known/jwks.json\"]" \
  --var "TOLLGATE_ISSUERS:[\"https://issuer.test\"]" --var "TOLLGATE_AUDIENCES:[\"https://api.test\"]" \
  --var "TOLLGATE_REVOCATION_URL:$svc" --var "TOLLGATE_REVOCATION_TOKEN:$read_key" \
  --var "TOLLGATE_DENYLIST_KEY:$(curl -sf "$svc/v1/denylist/key")" --var "TOLLGATE_ROUTES:$routes" \
  --var "TOLLGATE_ORIGIN_SECRET:$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
wait_for 90 curl -sf "$worker/healthz"
prop=$("$NODE22" auth/bench/propagation.mjs "{\"auth\":\"$auth\",\"worker\":\"$worker\",\"email\":\"bench0@example.test\",\"password\":\"$pw\",\"n\":$LOGOUTS}")
echo "{\"propagation\":true,${prop#\{}"

"$NODE22" - "$results" "$prop" <<'EOF'
const fs = require('fs');
const rows = fs.readFileSync(process.argv[2], 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const prop = JSON.parse(process.argv[3]);
console.log('\n| run | route | tollgate-auth req/s | p50 / p99 ms | seed-express req/s | p50 / p99 ms | ratio (req/s) |');
console.log('|---|---|---|---|---|---|---|');
for (const run of [...new Set(rows.map((r) => r.run))]) {
  for (const kind of ['login', 'refresh']) {
    const t = rows.find((r) => r.run === run && r.kind === kind && r.target === 'tollgate');
    const p = rows.find((r) => r.run === run && r.kind === kind && r.target === 'peer');
    console.log(`| ${run} | ${kind} | ${t.rps} | ${t.p50_ms} / ${t.p99_ms} | ${p.rps} | ${p.p50_ms} / ${p.p99_ms} | ${(t.rps / p.rps).toFixed(2)}× |`);
  }
}
console.log(`\nlogout → edge rejection (${prop.n} logouts, through wrangler dev): p50 ${prop.p50_ms} ms, p99 ${prop.p99_ms} ms, max ${prop.max_ms} ms (goal p99 < 1000 ms: ${prop.p99_ms < 1000 ? 'met' : 'missed'})`);
const errs = rows.reduce((a, r) => a + r.errors, 0);
console.log(`errors: ${errs}`);
EOF
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
