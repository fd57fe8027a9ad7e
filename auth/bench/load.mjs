// A bounded closed-loop load generator for the login-service bench: `clients`
// concurrent loops, each sending one request at a time until `seconds` pass or
// `maxRequests` are sent; prints one JSON line with throughput and latency percentiles.
//   node load.mjs '{"url":…, "kind":"login"|"refresh", "target":"tollgate"|"peer", "clients":16, "seconds":10, "users":[…]}'

const cfg = JSON.parse(process.argv[2]);
const { url, kind, target, clients, seconds, users, password } = cfg;
const maxRequests = cfg.maxRequests ?? 1e9;
const paths = target === 'peer' ? { login: '/login', refresh: '/refresh' } : { login: '/auth/login', refresh: '/auth/refresh' };

async function post(p, body) {
  const r = await fetch(url + p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : null };
}

async function loginOnce(email) {
  const r = await post(paths.login, { email, password });
  if (r.status !== 200) throw new Error(`login ${r.status} ${JSON.stringify(r.json)}`);
  return target === 'peer' ? r.json.refreshToken : r.json.refresh_token;
}

const lat = [];
let sent = 0;
let errors = 0;
const deadline = performance.now() + seconds * 1000;

async function loop(i) {
  const email = users[i % users.length];
  let refresh = kind === 'refresh' ? await loginOnce(email) : null;
  while (performance.now() < deadline && sent < maxRequests) {
    sent++;
    const t0 = performance.now();
    const r = kind === 'login'
      ? await post(paths.login, { email, password })
      : await post(paths.refresh, target === 'peer' ? { refreshToken: refresh } : { refresh_token: refresh });
    const dt = performance.now() - t0;
    if (r.status !== 200) {
      errors++;
      if (errors < 5) console.error(`${target} ${kind}: ${r.status} ${JSON.stringify(r.json)}`);
      continue;
    }
    lat.push(dt);
    if (kind === 'refresh' && target !== 'peer') refresh = r.json.refresh_token;
  }
}

const t0 = performance.now();
await Promise.all(Array.from({ length: clients }, (_, i) => loop(i)));
const wall = (performance.now() - t0) / 1000;
lat.sort((a, b) => a - b);
const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))] : NaN);
console.log(JSON.stringify({
  target, kind, clients, ok: lat.length, errors, seconds: +wall.toFixed(2),
  rps: +(lat.length / wall).toFixed(1), p50_ms: +pct(50).toFixed(2), p99_ms: +pct(99).toFixed(2), max_ms: +(lat.at(-1) ?? NaN).toFixed(2),
}));
