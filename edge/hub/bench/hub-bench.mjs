// The revocation hub's benchmarks (run by edge/hub/bench.sh), all in one run on this
// machine, loopback only:
//
// 1. Logout acknowledged → edge rejecting, p50/p99, relay mode and log mode: the real
//    Worker under `wrangler dev` (workerd, the colo Cache API, the RevocationHub Durable
//    Object) with TOLLGATE_REVOCATION_SOURCE = "hub"; each sample mints a token for a
//    session of its own, waits until the Worker lets it through, posts the logout and
//    asks the Worker every 10 ms until it answers 401.
// 2. Load on the source of truth as isolates grow: 1, 10, 100 simulated isolates, each
//    making the requests a Worker isolate makes. "Direct": each long-polls the
//    revocation service (GET /v1/denylist?since=N&wait=W, the default `service` source).
//    "Hub": each asks the hub for `head` once per check interval and for `since/N` when
//    the head moved (what a Worker isolate does on a cache miss; real isolates read the
//    colo cache first, so this is the hub's worst case), while the hub follows the
//    service with its one long-poll. Counting proxies in front of the service count
//    every request it receives from each side; logouts are posted at a steady rate.
// 3. Log-mode throughput: wrk posting logout events, one per request, to the hub's
//    `POST v1/events` (the Worker and the object on `workerd serve`, SQLite on disk) and
//    to the revocation service's `POST /v1/events` (sled on disk), same run, same
//    client, same concurrency: events acknowledged per second and p99.
//
// Settings (environment): HUB_BENCH_SAMPLES (latency samples per mode, default 40),
// HUB_BENCH_SECONDS (window per isolate count, default 10), HUB_BENCH_ISOLATES (default
// "1,10,100"), HUB_BENCH_EVENT_RATE (logouts/s during the load windows, default 2),
// HUB_BENCH_WRK_SECONDS and HUB_BENCH_WRK_CONNS (throughput, default 8 s, 16).
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import * as L from '../../worker/bench/lib.mjs';
import { startWorker, hubSigningKey, BENCH_BUILD } from '../../../tests/lib/stack.mjs';
import { startOrigin } from '../../../tests/lib/servers.mjs';
import { stopAll as stopWranglers } from '../../../tests/lib/procs.mjs';
import { read } from '../../../tests/lib/wire-read.mjs';

const SCRIPT = 'edge/hub/bench.sh';
const SAMPLES = Number(L.env('HUB_BENCH_SAMPLES', '40'));
const WINDOW_S = Number(L.env('HUB_BENCH_SECONDS', '10'));
const ISOLATES = L.env('HUB_BENCH_ISOLATES', '1,10,100').split(',').map(Number);
const EVENT_RATE = Number(L.env('HUB_BENCH_EVENT_RATE', '2'));
const WRK_SECONDS = Number(L.env('HUB_BENCH_WRK_SECONDS', '8'));
const WRK_CONNS = Number(L.env('HUB_BENCH_WRK_CONNS', '16'));
const INTERVAL_MS = 1000; // TOLLGATE_HUB_CHECK_INTERVAL_MS, its default
const TENANT = 'default';
const READ_KEY = `hub-bench-read-${randomUUID()}`;
const WRITE_KEY = `hub-bench-write-${randomUUID()}`;

const fmt = (v, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');

/** A proxy that forwards to `target` (streaming, so long-polls stay long-polls) and
 * counts the requests it receives, by kind. */
async function countingProxy(target) {
  const counts = { snapshot: 0, delta: 0, other: 0 };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const kind = u.pathname !== '/v1/denylist' ? 'other' : u.searchParams.has('since') ? 'delta' : 'snapshot';
    counts[kind]++;
    const t = new URL(target);
    const up = http.request({ host: t.hostname, port: t.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.headersSent ? res.destroy() : res.writeHead(502).end());
    req.pipe(up);
  });
  server.keepAliveTimeout = 60000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const total = () => counts.snapshot + counts.delta + counts.other;
  return { url: `http://127.0.0.1:${server.address().port}`, counts, total, close: () => { server.closeAllConnections(); server.close(); } };
}

function baseVars({ originUrl, jwks, denylistKey, extra }) {
  return {
    TOLLGATE_ORIGIN: originUrl,
    TOLLGATE_ORIGIN_SECRET: L.ORIGIN_SECRET,
    TOLLGATE_JWKS: jwks,
    TOLLGATE_ISSUERS: JSON.stringify([L.ISS]),
    TOLLGATE_AUDIENCES: JSON.stringify([L.AUD]),
    TOLLGATE_REVOCATION_SOURCE: 'hub',
    TOLLGATE_HUB_TENANT: TENANT,
    TOLLGATE_DENYLIST_KEY: denylistKey,
    TOLLGATE_HUB_API: 'on',
    TOLLGATE_ROUTES: JSON.stringify([{ path: '/public/*', auth: 'none' }, { path: '/*', auth: 'required' }]),
    ...extra,
  };
}

const hubKeys = () =>
  JSON.stringify([
    { name: 'bench-origin', key: WRITE_KEY, scopes: ['events:write'], issuers: [L.ISS] },
    { name: 'bench-edge', key: READ_KEY, scopes: ['denylist:read'] },
  ]);

/** Logout acknowledged → the Worker answering 401, `SAMPLES` times; ms. */
async function propagation(workerUrl, key, postLogout) {
  const out = [];
  for (let i = 0; i < SAMPLES; i++) {
    const sid = `bench-${randomUUID()}`;
    const token = L.jwt(key, L.claims({ sid }));
    const call = async () => (await globalThis.fetch(`${workerUrl}/p/${i}`, { headers: { authorization: `Bearer ${token}` } })).status;
    await L.waitFor('the Worker to let a fresh token through', async () => (await call()) === 200, 20000);
    // Random phase against the check interval, so the samples cover all of it.
    await L.sleep(Math.random() * INTERVAL_MS);
    await postLogout(sid);
    const acked = performance.now();
    for (;;) {
      const s = await call();
      if (s === 401) break;
      if (s !== 200) throw new Error(`the Worker answered ${s} while waiting for the logout`);
      if (performance.now() - acked > 15000) throw new Error('the logout did not reach the Worker within 15 s');
      await L.sleep(10);
    }
    out.push(performance.now() - acked);
  }
  return out;
}

let requests = 0; // every request a simulated isolate made (to the service or to the hub)

async function get(url, token, signal) {
  requests++;
  const r = await globalThis.fetch(url, { headers: { authorization: `Bearer ${token}` }, signal });
  return { status: r.status, bytes: new Uint8Array(await r.arrayBuffer()) };
}

/** The messages in a `since/N` answer (`len u32 LE | message`, repeated). */
function frames(bytes) {
  const out = [];
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at + 4 <= bytes.length;) {
    const n = v.getUint32(at, true);
    out.push(read(bytes.subarray(at + 4, at + 4 + n)));
    at += 4 + n;
  }
  return out;
}

/** One simulated isolate on the `service` source: snapshot, then back-to-back long-polls. */
async function directIsolate(svcUrl, token, wait, signal) {
  let seq = read((await get(`${svcUrl}/v1/denylist?wire=2`, token, signal)).bytes).seq;
  while (!signal.aborted) {
    const r = await get(`${svcUrl}/v1/denylist?since=${seq}&wait=${wait}&wire=2`, token, signal);
    if (r.status === 200) seq = read(r.bytes).to;
    else if (r.status === 410) seq = read((await get(`${svcUrl}/v1/denylist?wire=2`, token, signal)).bytes).seq;
    else await L.sleep(1000);
  }
}

/** One simulated isolate on the `hub` source (cache misses only): `head` once per
 * interval, `since/N` when it moved. */
async function hubIsolate(hubUrl, token, signal) {
  let seq = read((await get(`${hubUrl}/snapshot`, token, signal)).bytes).seq;
  await L.sleep(Math.random() * INTERVAL_MS);
  while (!signal.aborted) {
    const started = performance.now();
    const head = JSON.parse(new TextDecoder().decode((await get(`${hubUrl}/head`, token, signal)).bytes));
    if (head.seq > seq) {
      const r = await get(`${hubUrl}/since/${seq}`, token, signal);
      if (r.status === 200) for (const m of frames(r.bytes)) seq = Math.max(seq, m.to);
      else if (r.status === 410) seq = read((await get(`${hubUrl}/snapshot`, token, signal)).bytes).seq;
    }
    await L.sleep(Math.max(0, INTERVAL_MS - (performance.now() - started)));
  }
}

/** Runs `n` isolates (made by `make(signal)`) for the window while logouts are posted;
 * returns what `proxy` counted during the window, per second. */
async function loadWindow(n, make, proxy, post) {
  const ac = new AbortController();
  const running = Array.from({ length: n }, () => make(ac.signal).catch((e) => (ac.signal.aborted ? null : Promise.reject(e))));
  await L.sleep(2000); // cold starts done, long-polls in flight
  const before = { ...proxy.counts, total: proxy.total() };
  const made = requests;
  const t0 = performance.now();
  let posted = 0;
  while (performance.now() - t0 < WINDOW_S * 1000) {
    await post(`load-${randomUUID()}`);
    posted++;
    await L.sleep(1000 / EVENT_RATE);
  }
  const secs = (performance.now() - t0) / 1000;
  const rate = (proxy.total() - before.total) / secs;
  const asked = (requests - made) / secs;
  ac.abort();
  await Promise.allSettled(running);
  return { rate, asked, posted, secs };
}

async function main() {
  const bin = L.need('TOLLGATE_REVOCATION_BIN', SCRIPT);
  const workerd = L.need('WORKERD', SCRIPT);
  L.need('NODE22', SCRIPT);
  L.need('WRANGLER_JS', SCRIPT);
  const work = mkdtempSync(path.join(os.tmpdir(), 'tollgate-hub-bench-'));
  const key = L.esKey('hub-bench');
  const jwks = JSON.stringify({ keys: [key.jwk] });
  const origin = await startOrigin();
  const svc = await L.startRevocation(bin, work);
  const logout = (url, token) => async (sid) => {
    const r = await globalThis.fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'logout', sid, exp: L.now() + 3600 }),
    });
    if (r.status !== 200) throw new Error(`POST ${url}: ${r.status} ${await r.text()}`);
  };
  const postToService = logout(`${svc.url}/v1/events`, svc.writeKey);
  L.say(`# hub bench: ${os.cpus().length} cores, load average ${os.loadavg().map((v) => v.toFixed(1)).join(' ')}`);

  // ---- relay mode: latency, and the service's load as isolates grow ----------------
  const hubSide = await countingProxy(svc.url);
  const directSide = await countingProxy(svc.url);
  const relay = await startWorker(
    baseVars({
      originUrl: origin.url,
      jwks,
      denylistKey: svc.publicJwk,
      extra: {
        TOLLGATE_HUB_UPSTREAM_URL: hubSide.url,
        TOLLGATE_HUB_UPSTREAM_TOKEN: svc.readKey,
        TOLLGATE_HUB_API_KEYS: hubKeys(),
      },
    }),
    { script: BENCH_BUILD, logName: 'hub-bench-relay' },
  );
  const relayLat = await propagation(relay.url, key, postToService);
  L.say(`logout → edge rejecting, relay mode (${SAMPLES} samples, check interval ${INTERVAL_MS} ms): p50 ${fmt(L.pct(relayLat, 50))} ms, p99 ${fmt(L.pct(relayLat, 99))} ms, max ${fmt(Math.max(...relayLat))} ms`);

  const hubUrl = `${relay.url}/__tollgate/hub/${TENANT}`;
  const wait = 5; // the Worker's long-poll wait at the default staleness bound (10 s / 2)
  const load = [];
  for (const n of ISOLATES) {
    const direct = await loadWindow(n, (signal) => directIsolate(directSide.url, svc.readKey, wait, signal), directSide, postToService);
    const viaHub = await loadWindow(n, (signal) => hubIsolate(hubUrl, READ_KEY, signal), hubSide, postToService);
    load.push({ n, direct: direct.rate, hub: viaHub.rate });
    L.say(`upstream requests/s to the revocation service, ${n} isolate(s), ${EVENT_RATE} logouts/s: direct ${fmt(direct.rate, 1)}, through the hub ${fmt(viaHub.rate, 1)} (×${fmt(direct.rate / viaHub.rate, 1)}); the hub answered ${fmt(viaHub.asked, 1)} requests/s from the isolates`);
  }
  const cold = ISOLATES.reduce((a, b) => a + b, 0);
  L.say(`cold-start snapshots from the service: direct ${directSide.counts.snapshot} (one per isolate started, ${cold}), through the hub ${hubSide.counts.snapshot}`);
  await relay.stop();

  // ---- log mode: latency ----------------------------------------------------------
  const signing = hubSigningKey();
  const logVars = baseVars({
    originUrl: origin.url,
    jwks,
    denylistKey: signing.publicJwk,
    extra: {
      TOLLGATE_HUB_MODE: 'log',
      TOLLGATE_HUB_SIGNING_KEY: signing.hex,
      TOLLGATE_HUB_API_KEYS: hubKeys(),
      // As for the service (lib.mjs LIFTED_KEY_LIMITS): one key posts everything.
      TOLLGATE_HUB_KEY_EVENTS_PER_SEC: '1000000',
      TOLLGATE_HUB_KEY_BURST_EVENTS: '1000000',
    },
  });
  const logWorker = await startWorker(logVars, { script: BENCH_BUILD, logName: 'hub-bench-log' });
  const postToHub = logout(`${logWorker.url}/__tollgate/hub/${TENANT}/v1/events`, WRITE_KEY);
  const logLat = await propagation(logWorker.url, key, postToHub);
  L.say(`logout → edge rejecting, log mode (${SAMPLES} samples, check interval ${INTERVAL_MS} ms): p50 ${fmt(L.pct(logLat, 50))} ms, p99 ${fmt(L.pct(logLat, 99))} ms, max ${fmt(Math.max(...logLat))} ms`);
  await logWorker.stop();
  await stopWranglers();

  // ---- log mode: throughput against the revocation service ------------------------
  const hubDir = mkdtempSync(path.join(work, 'hub-do-'));
  const served = await L.startWorkerd({ hub: { ...logVars, BENCH_HUB_DIR: hubDir } }, { workerd, build: path.dirname(BENCH_BUILD) });
  const events = path.join(L.HERE, '../../hub/bench/events.lua');
  const exp = String(L.now() + 3600);
  const run = (url, token, prefix) => L.wrk(url, { script: events, scriptArgs: [token, exp, `${prefix}-${randomUUID()}`] }, { conns: WRK_CONNS, secs: WRK_SECONDS });
  // Warm both (the object's first request creates its tables).
  await postToService('warm-service');
  await logout(`${served.urls.hub}/__tollgate/hub/${TENANT}/v1/events`, WRITE_KEY)('warm-hub');
  const hubRun = run(`${served.urls.hub}/__tollgate/hub/${TENANT}/v1/events`, WRITE_KEY, 'hub');
  const svcRun = run(`${svc.url}/v1/events`, svc.writeKey, 'svc');
  const acked = (r) => (r.requests - r.errors) / WRK_SECONDS;
  L.say(`log-mode throughput (wrk, ${WRK_CONNS} connections, ${WRK_SECONDS} s, one logout per request): hub ${fmt(acked(hubRun))} events/s acknowledged (p50 ${fmt(hubRun.p50, 1)} ms, p99 ${fmt(hubRun.p99, 1)} ms, ${hubRun.errors} non-2xx) · revocation service ${fmt(acked(svcRun))} events/s (p50 ${fmt(svcRun.p50, 1)} ms, p99 ${fmt(svcRun.p99, 1)} ms, ${svcRun.errors} non-2xx) · hub/service ×${fmt(acked(hubRun) / acked(svcRun), 2)}`);
  const head = JSON.parse((await (await globalThis.fetch(`${served.urls.hub}/__tollgate/hub/${TENANT}/head`, { headers: { authorization: `Bearer ${READ_KEY}` } })).text()));
  L.say(`hub head after the run: seq ${head.seq} (acknowledged by wrk: ${hubRun.requests - hubRun.errors}, + 1 warm-up)`);
  if (hubRun.errors || svcRun.errors) throw new Error('non-2xx answers during the throughput run');
  if (head.seq < hubRun.requests - hubRun.errors) throw new Error(`the hub holds fewer events (${head.seq}) than it acknowledged`);

  hubSide.close();
  directSide.close();
  origin.close();
  L.stopAll();
  rmSync(work, { recursive: true, force: true });
}

L.runMain(async () => {
  try {
    await main();
  } finally {
    await stopWranglers();
  }
});
