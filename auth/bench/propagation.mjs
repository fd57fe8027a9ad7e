// Logout → edge rejection: for each of `n` sessions, log in, see the profile through
// the Worker (200), log out at the login service, then poll the Worker with the same
// access token until it answers 401; the time from the logout's acknowledgement to
// the first 401 is one sample. Prints one JSON line with p50/p99/max.
//   node propagation.mjs '{"auth":…, "worker":…, "email":…, "password":…, "n":100}'
const { auth, worker, email, password, n } = JSON.parse(process.argv[2]);

async function post(url, body, headers = {}) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: body && JSON.stringify(body) });
  return { status: r.status, json: await r.json().catch(() => null) };
}
const profile = async (t) => (await fetch(`${worker}/profile`, { headers: { authorization: `Bearer ${t}` } })).status;

const samples = [];
for (let i = 0; i < n; i++) {
  const l = await post(`${auth}/auth/login`, { email, password });
  if (l.status !== 200) throw new Error(`login ${l.status} ${JSON.stringify(l.json)}`);
  const token = l.json.access_token;
  const deadline = performance.now() + 10_000;
  while ((await profile(token)) !== 200) if (performance.now() > deadline) throw new Error('profile never 200');
  const out = await post(`${auth}/auth/logout`, null, { authorization: `Bearer ${token}` });
  if (out.status !== 200) throw new Error(`logout ${out.status}`);
  const acked = performance.now();
  while ((await profile(token)) !== 401) if (performance.now() > acked + 10_000) throw new Error('never rejected');
  samples.push(performance.now() - acked);
}
samples.sort((a, b) => a - b);
const pct = (p) => samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))];
console.log(JSON.stringify({ n: samples.length, p50_ms: +pct(50).toFixed(2), p99_ms: +pct(99).toFixed(2), max_ms: +samples.at(-1).toFixed(2) }));
