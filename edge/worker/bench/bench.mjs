// The Worker's benchmarks, on `workerd serve` (the production runtime), loopback only,
// every load bounded. Run through edge/worker/bench.sh, which builds and installs first.
//
//   1. Throughput and latency (wrk -t1 -cC -dDs, median of R runs, same run for all):
//      (a) passthrough Worker (the same bundle with every route `auth: none`),
//      (b) Tollgate with one hot token, (c) Tollgate with a new token per request
//      (WebCrypto, and pure Rust), and the seed Express + jsonwebtoken + Redis peer on
//      GET /profile with a hot token and with a new token per request.
//   2. Cold signature cost inside workerd: WebCrypto vs pure Rust, ES256 and RS256.
//   3. Revocation propagation: logout acknowledged → Worker rejecting, p50/p99.
//   4. Bundle size (gzip) and per-isolate memory with a 100k-entry denylist.
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, sign, randomUUID, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const env = (k, d) => process.env[k] ?? d;
const RUNS = Number(env('BENCH_RUNS', 3));
const SECS = Number(env('BENCH_SECONDS', 8));
const CONNS = Number(env('BENCH_CONNECTIONS', 50));
const PROPAGATION_SAMPLES = Number(env('BENCH_PROPAGATION_SAMPLES', 100));
const DENYLIST_ENTRIES = Number(env('BENCH_DENYLIST_ENTRIES', 100000));
const WORKERD = need('WORKERD');
const REVOCATION_BIN = need('TOLLGATE_REVOCATION_BIN');
const BUILD = need('TOLLGATE_WORKER_BUILD'); // edge/worker/build
const PEER = need('TOLLGATE_PEER_DIR'); // a scratch copy of seed-express, installed
const LUA = path.join(path.dirname(new URL(import.meta.url).pathname), 'tokens.lua');
const work = mkdtempSync(path.join(os.tmpdir(), 'tollgate-bench-'));
const groups = [];

function need(k) {
  if (!process.env[k]) throw new Error(`${k} is not set (run edge/worker/bench.sh)`);
  return process.env[k];
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
const say = (s) => console.log(s);
// fetch, retried once on a network error: an idle keep-alive connection that workerd
// closed during a long wrk run shows up as EPIPE on the next request.
async function fetch(url, init) {
  try {
    return await globalThis.fetch(url, init);
  } catch {
    return globalThis.fetch(url, init);
  }
}

async function waitFor(what, check, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function launch(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'], detached: true, ...opts });
  groups.push(child.pid);
  return child;
}

function stopAll() {
  for (const g of groups.splice(0)) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

// ---- keys and tokens -------------------------------------------------------------
function esKey(kid) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid, alg: 'ES256', privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' } };
}
function rsKey(kid) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, alg: 'RS256', privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } };
}
function jwt(key, claims, header = {}) {
  const input = `${b64({ alg: key.alg, typ: 'JWT', ...(key.kid ? { kid: key.kid } : {}), ...header })}.${b64(claims)}`;
  const sig = sign('sha256', Buffer.from(input), key.alg === 'ES256' ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' } : key.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}
const ISS = 'https://issuer.test';
const AUD = 'https://api.test';
const claims = (extra = {}) => ({ iss: ISS, aud: AUD, sub: 'bench-user', sid: `s-${randomUUID()}`, jti: randomUUID(), iat: now(), exp: now() + 3600, ...extra });

// ---- processes -----------------------------------------------------------------
async function startOrigin() {
  const port = await freePort();
  launch(process.execPath, [path.join(path.dirname(new URL(import.meta.url).pathname), 'origin.mjs'), String(port)]);
  const url = `http://127.0.0.1:${port}`;
  await waitFor('origin', async () => (await fetch(url)).ok);
  return { url };
}

async function startRevocation() {
  const dataDir = mkdtempSync(path.join(work, 'revocation-'));
  // The service rejects TOLLGATE_* variables it does not know (this script's own).
  const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TOLLGATE_')));
  const key = (name, scope) =>
    execFileSync(REVOCATION_BIN, ['keys', 'create', '--data-dir', dataDir, '--name', name, '--scope', scope], {
      env: cleanEnv,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  const readKey = key('edge', 'denylist:read');
  const writeKey = key('origin', 'events:write');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  launch(REVOCATION_BIN, ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], { env: cleanEnv, stdio: 'ignore' });
  await waitFor('revocation service', async () => (await fetch(`${url}/healthz`)).ok);
  const publicJwk = await (await fetch(`${url}/v1/denylist/key`)).text();
  const post = async (body) => {
    const r = await fetch(`${url}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${writeKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`POST /v1/events ${r.status} ${await r.text()}`);
    return r.json();
  };
  return { url, readKey, publicJwk, post };
}

const capnpString = (s) => JSON.stringify(s); // JSON string escapes are valid Cap'n Proto text escapes

/** The in-workerd origin: answers requests for ORIGIN_HOST itself, forwards the rest. */
const IN_PROCESS_ORIGIN = 'http://origin.internal';
const ORIGIN_JS = `const body = JSON.stringify({ userId: 'bench-user', email: 'bench@example.test', role: 'user' });
export default {
  async fetch(request) {
    if (new URL(request.url).host === 'origin.internal') {
      return new Response(body, { headers: { 'content-type': 'application/json' } });
    }
    return fetch(request);
  },
};
`;

/** Starts \`workerd serve\` with one socket per named worker: {name: vars}. Workers whose
 * TOLLGATE_ORIGIN is IN_PROCESS_ORIGIN reach the network through the in-process origin. */
async function startWorkerd(workers) {
  const ports = {};
  const services = [];
  const sockets = [];
  const consts = [];
  for (const [name, vars] of Object.entries(workers)) {
    ports[name] = await freePort();
    const id = name.replace(/[^a-zA-Z]/g, '');
    services.push(`(name = ${capnpString(name)}, worker = .${id})`);
    sockets.push(`(name = ${capnpString(name)}, address = "127.0.0.1:${ports[name]}", http = (), service = ${capnpString(name)})`);
    const bindings = Object.entries(vars).map(([k, v]) => `(name = ${capnpString(k)}, text = ${capnpString(v)})`);
    consts.push(`const ${id} :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "index.js"),
    (name = "index_bg.wasm", wasm = embed "index_bg.wasm"),
  ],
  compatibilityDate = "2026-06-01",
  globalOutbound = ${vars.TOLLGATE_ORIGIN === IN_PROCESS_ORIGIN ? '"origin"' : '"loopback"'},
  bindings = [ ${bindings.join(',\n    ')} ],
);`);
  }
  writeFileSync(path.join(BUILD, 'bench-origin.js'), ORIGIN_JS);
  services.push('(name = "origin", worker = .origin)');
  consts.push(`const origin :Workerd.Worker = (
  modules = [ (name = "origin.js", esModule = embed "bench-origin.js") ],
  compatibilityDate = "2026-06-01",
  globalOutbound = "loopback",
);`);
  services.push('(name = "loopback", network = (allow = ["public", "private", "local"]))');
  const config = `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ ${services.join(',\n    ')} ],
  sockets = [ ${sockets.join(',\n    ')} ],
);
${consts.join('\n')}
`;
  const file = path.join(BUILD, `bench-${process.pid}.capnp`);
  writeFileSync(file, config);
  const child = launch(WORKERD, ['serve', file, '--experimental'], { cwd: BUILD, stdio: 'ignore' });
  for (const [name, port] of Object.entries(ports)) {
    await waitFor(`workerd ${name}`, async () => (await fetch(`http://127.0.0.1:${port}/public/ready`)).status < 500, 30000);
  }
  const urls = Object.fromEntries(Object.entries(ports).map(([k, p]) => [k, `http://127.0.0.1:${p}`]));
  return { child, urls, configFile: file };
}

function rssKiB(pid) {
  // workerd is the process itself (no wrapper).
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

// ---- wrk -----------------------------------------------------------------------
function wrk(url, { token, tokensFile }) {
  const args = ['-t1', `-c${CONNS}`, `-d${SECS}s`, '--latency'];
  if (token) args.push('-H', `Authorization: Bearer ${token}`);
  if (tokensFile) args.push('-s', LUA);
  args.push(url);
  if (tokensFile) args.push('--', tokensFile);
  const out = execFileSync('wrk', args, { encoding: 'utf8', timeout: (SECS + 30) * 1000 });
  const num = (re) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : NaN;
  };
  const ms = (re) => {
    const m = re.exec(out);
    if (!m) return NaN;
    const v = Number(m[1]);
    return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
  };
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50: ms(/\s50%\s+([\d.]+)(us|ms|s)/),
    p99: ms(/\s99%\s+([\d.]+)(us|ms|s)/),
    errors: num(/Non-2xx or 3xx responses:\s+(\d+)/) || 0,
    requests: num(/(\d+) requests in/),
  };
}

// ---- main ----------------------------------------------------------------------
async function main() {
  say(`# tollgate-edge benchmarks — ${new Date().toISOString()}, ${os.cpus().length} cores, wrk -t1 -c${CONNS} -d${SECS}s, median of ${RUNS}`);
  const wasm = readFileSync(path.join(BUILD, 'index_bg.wasm'));
  const js = readFileSync(path.join(BUILD, 'index.js'));
  say(`bundle: index_bg.wasm ${(wasm.length / 1024).toFixed(0)} KiB (${(gzipSync(wasm, { level: 9 }).length / 1024).toFixed(0)} KiB gzip), index.js ${(js.length / 1024).toFixed(0)} KiB (${(gzipSync(js, { level: 9 }).length / 1024).toFixed(0)} KiB gzip); total gzip ${((gzipSync(wasm, { level: 9 }).length + gzipSync(js, { level: 9 }).length) / 1024).toFixed(0)} KiB`);

  const origin = await startOrigin();
  const svc = await startRevocation();
  const es = esKey('bench-es');
  const rs = rsKey('bench-rs');
  const jwks = JSON.stringify({ keys: [es.jwk, rs.jwk] });
  const common = {
    TOLLGATE_ORIGIN: origin.url,
    TOLLGATE_JWKS: jwks,
    TOLLGATE_ISSUERS: JSON.stringify([ISS]),
    TOLLGATE_AUDIENCES: JSON.stringify([AUD]),
    TOLLGATE_REVOCATION_URL: svc.url,
    TOLLGATE_REVOCATION_TOKEN: svc.readKey,
    TOLLGATE_DENYLIST_KEY: svc.publicJwk,
    TOLLGATE_ROUTES: JSON.stringify([{ path: '/public/*', auth: 'none' }, { path: '/*', auth: 'required' }]),
    TOLLGATE_BENCH_ENDPOINT: 'on',
  };
  const passthrough = { TOLLGATE_ORIGIN: origin.url, TOLLGATE_JWKS: jwks, TOLLGATE_ROUTES: JSON.stringify([{ path: '/*', auth: 'none' }]) };
  const inProcess = { TOLLGATE_ORIGIN: IN_PROCESS_ORIGIN };
  const wd = await startWorkerd({
    passthrough,
    tollgate: common,
    'passthrough-in': { ...passthrough, ...inProcess },
    'tollgate-in': { ...common, ...inProcess },
    'tollgate-rust-in': { ...common, ...inProcess, TOLLGATE_CRYPTO: 'rust' },
  });

  // Tokens: one hot; a list of distinct cold ones (more than a run can use, so no hits).
  const hot = jwt(es, claims());
  const coldCount = Number(env('BENCH_COLD_TOKENS', 60000));
  const coldFile = path.join(work, 'cold.txt');
  writeFileSync(coldFile, Array.from({ length: coldCount }, () => jwt(es, claims())).join('\n'));

  // The seed Express peer (already installed by bench.sh), its own key for its tokens.
  const peerPort = await freePort();
  const redisPort = await freePort();
  const peerEnv = { ...process.env, PORT: String(peerPort), REDIS_PORT: String(redisPort) };
  execFileSync(path.join(PEER, 'run.sh'), ['start'], { env: peerEnv, stdio: 'ignore', timeout: 60000 });
  execFileSync(path.join(PEER, 'run.sh'), ['token'], { env: peerEnv, stdio: 'ignore', timeout: 60000 });
  const peerUrl = `http://127.0.0.1:${peerPort}/profile`;
  const peerHot = readFileSync(path.join(PEER, 'token.txt'), 'utf8').trim();
  const peerKey = { alg: 'ES256', privateKey: createPrivateKey(readFileSync(path.join(PEER, 'keys/es256-private.pem'))) };
  const peerColdFile = path.join(work, 'peer-cold.txt');
  writeFileSync(
    peerColdFile,
    Array.from({ length: coldCount }, (_, i) => jwt(peerKey, { userId: `u${i}`, email: `u${i}@example.test`, role: 'user', iat: now(), exp: now() + 900 })).join('\n'),
  );

  try {
    // Sanity: every target answers 200 to what it will be loaded with.
    const check = async (url, token) => {
      const r = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
      if (r.status !== 200) throw new Error(`${url}: ${r.status} ${await r.text()}`);
    };
    for (const name of ['passthrough', 'passthrough-in']) await check(`${wd.urls[name]}/profile`);
    for (const name of ['tollgate', 'tollgate-in', 'tollgate-rust-in']) await check(`${wd.urls[name]}/profile`, hot);
    await check(peerUrl, peerHot);

    // ---- 1. throughput ----
    const A = '(a) passthrough Worker';
    const B = '(b) Tollgate, hot token';
    const C = '(c) Tollgate, new token/request';
    const Ai = "(a') passthrough Worker";
    const Bi = "(b') Tollgate, hot token";
    const Ci = "(c') Tollgate, new token/request";
    const Cr = "(c'') Tollgate, new token/request, pure-Rust signatures";
    const EH = 'Express peer, hot token';
    const EC = 'Express peer, new token/request';
    const scenarios = [
      // The passthrough gets the same request (with the token it forwards but never checks).
      [A, `${wd.urls.passthrough}/profile`, { token: hot }, 'Node origin'],
      [B, `${wd.urls.tollgate}/profile`, { token: hot }, 'Node origin'],
      [C, `${wd.urls.tollgate}/profile`, { tokensFile: coldFile }, 'Node origin'],
      [Ai, `${wd.urls['passthrough-in']}/profile`, { token: hot }, 'in-workerd origin'],
      [Bi, `${wd.urls['tollgate-in']}/profile`, { token: hot }, 'in-workerd origin'],
      [Ci, `${wd.urls['tollgate-in']}/profile`, { tokensFile: coldFile }, 'in-workerd origin'],
      [Cr, `${wd.urls['tollgate-rust-in']}/profile`, { tokensFile: coldFile }, 'in-workerd origin'],
      [EH, peerUrl, { token: peerHot }, 'answers itself'],
      [EC, peerUrl, { tokensFile: peerColdFile }, 'answers itself'],
    ];
    const results = {};
    for (let run = 0; run < RUNS; run++) {
      for (const [name, url, opts] of scenarios) {
        (results[name] ??= []).push(wrk(url, opts));
      }
    }
    say('\n## throughput (GET /profile, loopback)');
    say('| scenario | origin | req/s | p50 ms | p99 ms | non-2xx |');
    say('|---|---|---:|---:|---:|---:|');
    const med = {};
    for (const [name, , , where] of scenarios) {
      const rs_ = results[name];
      med[name] = { rps: median(rs_.map((r) => r.rps)), p50: median(rs_.map((r) => r.p50)), p99: median(rs_.map((r) => r.p99)), errors: rs_.reduce((a, r) => a + r.errors, 0) };
      const m = med[name];
      say(`| ${name} | ${where} | ${m.rps.toFixed(0)} | ${m.p50.toFixed(2)} | ${m.p99.toFixed(2)} | ${m.errors} |`);
    }
    const r = (a, b) => (med[a].rps / med[b].rps).toFixed(2);
    say(`ratios, Node origin:        (b)/(a) = ${r(B, A)} (goal ≥ 0.90); (b)/Express hot = ${r(B, EH)}; (c)/Express new-token = ${r(C, EC)}`);
    say(`ratios, in-workerd origin:  (b')/(a') = ${r(Bi, Ai)} (goal ≥ 0.90); (b')/Express hot = ${r(Bi, EH)}; (c')/Express new-token = ${r(Ci, EC)}; WebCrypto/pure Rust on new tokens = ${r(Ci, Cr)}`);

    // ---- 2. cold signature cost inside workerd ----
    say('\n## one cold signature check inside workerd (POST /__tollgate/bench, n=0 vs n=N, median of 5)');
    say('| alg | backend | µs / verification |');
    say('|---|---|---:|');
    const N = Number(env('BENCH_VERIFY_N', 300));
    for (const [alg, key] of [['ES256', es], ['RS256', rs]]) {
      const token = jwt(key, claims());
      for (const backend of ['webcrypto', 'rust']) {
        const time = async (n) => {
          const t0 = performance.now();
          const resp = await fetch(`${wd.urls.tollgate}/__tollgate/bench`, { method: 'POST', body: JSON.stringify({ token, n, backend }) });
          const body = await resp.json();
          if (body.verified !== n) throw new Error(`bench endpoint: ${JSON.stringify(body)}`);
          return performance.now() - t0;
        };
        await time(N); // warm: key import, JIT
        const per = [];
        for (let i = 0; i < 5; i++) per.push(((await time(N)) - (await time(0))) / N);
        say(`| ${alg} | ${backend} | ${(median(per) * 1000).toFixed(0)} |`);
      }
    }

    // ---- 3. revocation propagation ----
    const samples = [];
    for (let i = 0; i < PROPAGATION_SAMPLES; i++) {
      const sid = `prop-${randomUUID()}`;
      const token = jwt(es, claims({ sid }));
      const ok = await fetch(`${wd.urls.tollgate}/profile`, { headers: { authorization: `Bearer ${token}` } });
      if (ok.status !== 200) throw new Error(`propagation: ${ok.status}`);
      await svc.post({ kind: 'logout', sid, exp: now() + 3600 });
      const acked = performance.now();
      const deadline = acked + 10000;
      for (;;) {
        const resp = await fetch(`${wd.urls.tollgate}/profile`, { headers: { authorization: `Bearer ${token}` } });
        if (resp.status === 401) break;
        if (performance.now() > deadline) throw new Error('propagation: not rejected within 10 s');
      }
      samples.push(performance.now() - acked);
    }
    say(`\n## revocation propagation (logout acknowledged → Worker rejecting the token), ${samples.length} samples`);
    say(`p50 ${pct(samples, 50).toFixed(1)} ms, p99 ${pct(samples, 99).toFixed(1)} ms, max ${Math.max(...samples).toFixed(1)} ms (goal p99 < 1000 ms)`);
  } finally {
    try {
      execFileSync(path.join(PEER, 'run.sh'), ['stop'], { env: peerEnv, stdio: 'ignore', timeout: 30000 });
    } catch {
      /* best effort */
    }
    process.kill(-wd.child.pid, 'SIGKILL');
  }

  // ---- 4. memory with a 100k-entry denylist (one isolate in its own workerd) ----
  const solo = await startWorkerd({ tollgate: { ...common, TOLLGATE_ROUTES: JSON.stringify([{ path: '/*', auth: 'required' }]) } });
  const soloUrl = `${solo.urls.tollgate}/profile`;
  const warm = async () => {
    for (let i = 0; i < 20; i++) await fetch(soloUrl, { headers: { authorization: `Bearer ${hot}` } });
  };
  const figures = async () => (await fetch(`${solo.urls.tollgate}/__tollgate/bench`)).json();
  await warm();
  await sleep(500);
  const before = rssKiB(solo.child.pid);
  const wasmBefore = (await figures()).wasm_memory_bytes;
  const batch = 1000;
  let lastSid;
  for (let i = 0; i < DENYLIST_ENTRIES; i += batch) {
    const events = [];
    for (let j = 0; j < batch && i + j < DENYLIST_ENTRIES; j++) {
      lastSid = `mem-${i + j}-${randomUUID()}`;
      events.push({ kind: 'logout', sid: lastSid, exp: now() + 7200 });
    }
    await svc.post({ events });
  }
  const probe = jwt(es, claims({ sid: lastSid }));
  await waitFor('the 100k-entry denylist to reach the isolate', async () => (await fetch(soloUrl, { headers: { authorization: `Bearer ${probe}` } })).status === 401, 60000);
  await warm();
  await sleep(500);
  const after = rssKiB(solo.child.pid);
  const fig = await figures();
  const MiB = (b) => (b / 1048576).toFixed(1);
  say(`\n## memory with a ${fig.denylist_entries}-entry denylist (one isolate, its own workerd)`);
  say(`wasm linear memory ${MiB(wasmBefore)} MiB → ${MiB(fig.wasm_memory_bytes)} MiB (+${MiB(fig.wasm_memory_bytes - wasmBefore)} MiB, ${((fig.wasm_memory_bytes - wasmBefore) / fig.denylist_entries).toFixed(0)} bytes/entry, high-water mark: linear memory never shrinks)`);
  say(`workerd RSS ${MiB(before * 1024)} MiB → ${MiB(after * 1024)} MiB (+${MiB((after - before) * 1024)} MiB: also the V8 heap of 100 replicated deltas, not yet collected)`);
  process.kill(-solo.child.pid, 'SIGKILL');
}

process.on('exit', stopAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
main()
  .then(() => {
    stopAll();
    process.exit(0);
  })
  .catch((e) => {
    console.error(e);
    stopAll();
    process.exit(1);
  });
