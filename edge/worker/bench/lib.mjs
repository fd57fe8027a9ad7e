// Helpers shared by bench.mjs (the benchmarks) and profile.mjs (the CPU profiles): child
// processes, keys and tokens, the revocation service, `workerd serve` with a generated
// Cap'n Proto config, and wrk. Loopback only; every child is killed by stopAll().
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, sign, randomUUID } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const HERE = path.dirname(new URL(import.meta.url).pathname);
export const LUA = path.join(HERE, 'tokens.lua');
const groups = [];
const scratch = []; // files to remove when the script ends

export const env = (k, d) => process.env[k] ?? d;
export function need(k, script = 'edge/worker/bench.sh') {
  if (!process.env[k]) throw new Error(`${k} is not set (run ${script})`);
  return process.env[k];
}
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
export const now = () => Math.floor(Date.now() / 1000);
export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
export const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
export const say = (s) => console.log(s);
// fetch, retried once on a network error: an idle keep-alive connection that workerd
// closed during a long wrk run shows up as EPIPE on the next request.
export async function fetch(url, init) {
  try {
    return await globalThis.fetch(url, init);
  } catch {
    return globalThis.fetch(url, init);
  }
}

export async function waitFor(what, check, timeoutMs = 30000) {
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

export function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function launch(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'], detached: true, ...opts });
  groups.push(child.pid);
  return child;
}

export function stopAll() {
  for (const g of groups.splice(0)) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const f of scratch.splice(0)) {
    try {
      unlinkSync(f);
    } catch {
      /* gone */
    }
  }
}

/** Runs a script's `main`: every process it launched is stopped on exit, on Ctrl-C and
 * on failure; the exit status says which. */
export function runMain(main) {
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
}

// ---- keys and tokens -------------------------------------------------------------
export function esKey(kid) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid, alg: 'ES256', privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' } };
}
export function rsKey(kid) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, alg: 'RS256', privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } };
}
export function jwt(key, claims, header = {}) {
  const input = `${b64({ alg: key.alg, typ: 'JWT', ...(key.kid ? { kid: key.kid } : {}), ...header })}.${b64(claims)}`;
  const sig = sign('sha256', Buffer.from(input), key.alg === 'ES256' ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' } : key.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}
export const ISS = 'https://issuer.test';
export const AUD = 'https://api.test';
export const claims = (extra = {}) => ({ iss: ISS, aud: AUD, sub: 'bench-user', sid: `s-${randomUUID()}`, jti: randomUUID(), iat: now(), exp: now() + 3600, ...extra });

// ---- processes -----------------------------------------------------------------
/** Per-key limits lifted: the benchmarks post every event with one key, and the
 * service's defaults (1000 events/s, 1M live entries) would cap their set-up. */
export const LIFTED_KEY_LIMITS = {
  TOLLGATE_KEY_EVENTS_PER_SEC: '1000000',
  TOLLGATE_KEY_BURST_EVENTS: '1000000',
  TOLLGATE_KEY_MAX_LIVE_ENTRIES: '100000000',
};

/** The revocation service in a fresh data directory under `work`, with a read key
 * (for the Worker) and a write key (for `post`), per-key limits lifted. `env`: more
 * settings (`TOLLGATE_*`). */
export async function startRevocation(bin, work, { env: settings = {} } = {}) {
  const dataDir = mkdtempSync(path.join(work, 'revocation-'));
  // The service warns about TOLLGATE_* variables it does not know (this script's own).
  const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TOLLGATE_')));
  const key = (name, scope, ...extra) =>
    execFileSync(bin, ['keys', 'create', '--data-dir', dataDir, '--name', name, '--scope', scope, ...extra], {
      env: cleanEnv,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  const readKey = key('edge', 'denylist:read');
  const writeKey = key('origin', 'events:write', '--issuer', ISS);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  launch(bin, ['serve', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], { env: { ...cleanEnv, ...LIFTED_KEY_LIMITS, ...settings }, stdio: 'ignore' });
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
  return { url, readKey, writeKey, publicJwk, post };
}

const capnpString = (s) => JSON.stringify(s); // JSON string escapes are valid Cap'n Proto text escapes

/** The in-workerd origin: answers requests for ORIGIN_HOST itself, forwards the rest. */
export const IN_PROCESS_ORIGIN = 'http://origin.internal';
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

/** Starts \`workerd serve\` (binary `workerd`) with the bundle in `build` (index.js +
 * index_bg.wasm) and one socket per named worker: {name: vars}. Workers whose
 * TOLLGATE_ORIGIN is IN_PROCESS_ORIGIN reach the network through the in-process origin.
 * A worker whose vars name a JavaScript file in BENCH_MODULE runs that file instead of
 * the bundle (the other vars are its bindings). `args`: more command-line arguments (e.g.
 * `--inspector-addr=...`). A worker whose vars have BENCH_HUB_DIR gets the
 * RevocationHub Durable Object class (SQLite storage in that directory) bound as
 * TOLLGATE_HUB, as wrangler.toml binds it. */
export async function startWorkerd(workers, { workerd, build, args = [] }) {
  const ports = {};
  const services = [];
  const sockets = [];
  const consts = [];
  for (const [name, vars] of Object.entries(workers)) {
    ports[name] = await freePort();
    const id = name.replace(/[^a-zA-Z]/g, '');
    services.push(`(name = ${capnpString(name)}, worker = .${id})`);
    sockets.push(`(name = ${capnpString(name)}, address = "127.0.0.1:${ports[name]}", http = (), service = ${capnpString(name)})`);
    const { BENCH_MODULE: module, BENCH_HUB_DIR: hubDir, ...bound } = vars;
    const bindings = Object.entries(bound).map(([k, v]) => `(name = ${capnpString(k)}, text = ${capnpString(v)})`);
    let hub = '';
    if (hubDir !== undefined) {
      bindings.push('(name = "TOLLGATE_HUB", durableObjectNamespace = "RevocationHub")');
      services.push(`(name = "disk-${id}", disk = (path = ${capnpString(hubDir)}, writable = true))`);
      hub = `durableObjectNamespaces = [ (className = "RevocationHub", uniqueKey = "tollgate-bench-${id}", enableSql = true) ],
  durableObjectStorage = (localDisk = "disk-${id}"),`;
    }
    let modules = `(name = "index.js", esModule = embed "index.js"),
    (name = "index_bg.wasm", wasm = embed "index_bg.wasm"),`;
    if (module !== undefined) {
      const copy = `bench-module-${id}.js`;
      copyFileSync(module, path.join(build, copy));
      scratch.push(path.join(build, copy));
      modules = `(name = "worker.js", esModule = embed ${capnpString(copy)}),`;
    }
    consts.push(`const ${id} :Workerd.Worker = (
  modules = [
    ${modules}
  ],
  compatibilityDate = "2026-06-01",
  globalOutbound = ${vars.TOLLGATE_ORIGIN === IN_PROCESS_ORIGIN ? '"origin"' : '"loopback"'},
  bindings = [ ${bindings.join(',\n    ')} ],
  ${hub}
);`);
  }
  writeFileSync(path.join(build, 'bench-origin.js'), ORIGIN_JS);
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
  const file = path.join(build, `bench-${process.pid}.capnp`);
  writeFileSync(file, config);
  scratch.push(file); // beside the build, which its `embed`s name relative to it
  const child = launch(workerd, ['serve', file, '--experimental', ...args], { cwd: build, stdio: 'ignore' });
  for (const [name, port] of Object.entries(ports)) {
    await waitFor(`workerd ${name}`, async () => (await fetch(`http://127.0.0.1:${port}/public/ready`)).status < 500, 30000);
  }
  const urls = Object.fromEntries(Object.entries(ports).map(([k, p]) => [k, `http://127.0.0.1:${p}`]));
  return { child, urls, configFile: file };
}

// ---- CPU time from /proc ---------------------------------------------------------
// CPU time used, µs: a process's own (utime + stime), or that of this process's
// waited-for children (cutime + cstime: wrk, run with execFileSync).
const TICK_US = 1e6 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
function statFields(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number); // [0] is field 3
}
export const cpuUs = (pids) => pids.reduce((sum, pid) => sum + (statFields(pid)[11] + statFields(pid)[12]) * TICK_US, 0);
export const childrenCpuUs = () => (statFields('self')[13] + statFields('self')[14]) * TICK_US;

// ---- wrk -----------------------------------------------------------------------
/** One wrk run (-t1) against `url` with one bearer `token`, a token per request from
 * `tokensFile`, or another wrk Lua `script` given `scriptArgs`; returns req/s, p50/p99
 * (ms), non-2xx count and request count. */
export function wrk(url, { token, tokensFile, startAt = 0, script, scriptArgs = [] }, { conns, secs }) {
  const args = ['-t1', `-c${conns}`, `-d${secs}s`, '--latency'];
  if (token) args.push('-H', `Authorization: Bearer ${token}`);
  if (tokensFile) args.push('-s', LUA);
  else if (script) args.push('-s', script);
  args.push(url);
  if (tokensFile) args.push('--', tokensFile, String(startAt));
  else if (script) args.push('--', ...scriptArgs);
  const out = execFileSync('wrk', args, { encoding: 'utf8', timeout: (secs + 30) * 1000 });
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

/** The Worker configuration the benchmarks use: `tollgate` (routes `/public/*` open,
 * the rest protected, revocation on, HS256 assertions) and `passthrough` (every route
 * `auth: none`, assertions too). */
export const ORIGIN_SECRET = 'bench-origin-secret-0123456789abcdef0123456789';

export function workerVars({ originUrl, jwks, svc }) {
  const tollgate = {
    TOLLGATE_ORIGIN: originUrl,
    TOLLGATE_ORIGIN_SECRET: ORIGIN_SECRET,
    TOLLGATE_JWKS: jwks,
    TOLLGATE_ISSUERS: JSON.stringify([ISS]),
    TOLLGATE_AUDIENCES: JSON.stringify([AUD]),
    TOLLGATE_REVOCATION_URL: svc.url,
    TOLLGATE_REVOCATION_TOKEN: svc.readKey,
    TOLLGATE_DENYLIST_KEY: svc.publicJwk,
    TOLLGATE_ROUTES: JSON.stringify([{ path: '/public/*', auth: 'none' }, { path: '/*', auth: 'required' }]),
    TOLLGATE_BENCH_ENDPOINT: 'on',
  };
  // The same bundle with every route open: it strips headers, makes the assertion and
  // forwards, and verifies nothing.
  const passthrough = {
    TOLLGATE_ORIGIN: originUrl,
    TOLLGATE_ORIGIN_SECRET: ORIGIN_SECRET,
    TOLLGATE_JWKS: jwks,
    TOLLGATE_ISSUERS: JSON.stringify([ISS]),
    TOLLGATE_AUDIENCES: JSON.stringify([AUD]),
    TOLLGATE_REVOCATION: 'off',
    TOLLGATE_ROUTES: JSON.stringify([{ path: '/*', auth: 'none' }]),
  };
  return { tollgate, passthrough };
}
