// End-to-end tests of the revocation hub (edge/hub) in real workerd through `wrangler
// dev`: the RevocationHub Durable Object (SQLite storage, alarms) exported by the
// Worker's own script, relay mode following the real revocation service on loopback,
// and the Worker's cache-tier replica (TOLLGATE_REVOCATION_SOURCE = "hub") reading the
// hub through the local Cache API. Run through edge/hub/test.sh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID, generateKeyPairSync, sign } from 'node:crypto';
import http from 'node:http';

import * as jose from 'jose';

import { stopAll, waitFor, delay } from './lib/procs.mjs';
import { startOrigin, startJwksHost } from './lib/servers.mjs';
import { startRevocation, startWorker, logDir, BENCH_BUILD } from './lib/stack.mjs';
import { Subscriber, read, verified } from './lib/wire-read.mjs';
// The npm package as edge/npm/build.sh makes it (edge/hub/test.sh builds it).
import { RemoteDenylist, Verifier } from '../edge/npm/pkg/dist/node.js';

const ISS = 'https://issuer.test';
const AUD = 'https://api.test';
const MAX_STALENESS = 3;
const INTERVAL_MS = 1000;
const SECRET = `hub-e2e-origin-secret-${randomUUID()}`;
const HUB_KEY = `hub-read-key-${randomUUID()}`;
const TENANT = 'default';

let origin;
let jwks;
let svc;
let worker;
let key;

const now = () => Math.floor(Date.now() / 1000);

async function mint(claims = {}) {
  const t = now();
  return new jose.SignJWT({ sid: `s-${randomUUID()}`, ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
    .setIssuer(ISS)
    .setAudience(AUD)
    .setSubject('alice')
    .setJti(randomUUID())
    .setIssuedAt(t)
    .setExpirationTime(t + 600)
    .sign(key.privateKey);
}

const call = (w, p, token) => fetch(`${w.url}${p}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

/** Waits until `w` lets `token` through on `p` (a cold hub takes the service's snapshot first). */
async function ready(w, p, token) {
  await waitFor(`${p} to answer 200`, async () => (await call(w, p, token)).status === 200, { timeoutMs: 15000, intervalMs: 100 });
}

/** The isolate's figures (bench build): replica seq and the hub tier's counters. */
async function isolate(w) {
  const r = await fetch(`${w.url}/__tollgate/bench`);
  assert.equal(r.status, 200);
  return r.json();
}

/** GET on the hub's public API (denylist:read key). */
async function hub(w, op, { auth = HUB_KEY } = {}) {
  return fetch(`${w.url}/__tollgate/hub/${TENANT}/${op}`, { headers: auth ? { authorization: `Bearer ${auth}` } : {} });
}

function hubVars(upstream, extra = {}) {
  return {
    TOLLGATE_ORIGIN: origin.url,
    TOLLGATE_JWKS_URLS: JSON.stringify([jwks.url('/hub.json')]),
    TOLLGATE_ISSUERS: JSON.stringify([ISS]),
    TOLLGATE_AUDIENCES: JSON.stringify([AUD]),
    TOLLGATE_REVOCATION_SOURCE: 'hub',
    TOLLGATE_DENYLIST_KEY: svc.publicJwkText,
    TOLLGATE_MAX_STALENESS_SECONDS: String(MAX_STALENESS),
    TOLLGATE_HUB_CHECK_INTERVAL_MS: String(INTERVAL_MS),
    TOLLGATE_HUB_UPSTREAM_URL: upstream,
    TOLLGATE_HUB_UPSTREAM_TOKEN: svc.readKey,
    TOLLGATE_HUB_UPSTREAM_WAIT_SECONDS: '1',
    TOLLGATE_HUB_API: 'on',
    TOLLGATE_HUB_API_KEYS: JSON.stringify([{ name: 'tests', key: HUB_KEY, scopes: ['denylist:read'] }]),
    TOLLGATE_ORIGIN_SECRET: SECRET,
    TOLLGATE_BENCH_ENDPOINT: 'on',
    TOLLGATE_ROUTES: JSON.stringify([{ path: '/public/*', auth: 'none' }, { path: '/*', auth: 'required' }]),
    ...extra,
  };
}

/**
 * A proxy in front of the service that, in mode 'forge', re-signs every delta it passes
 * with a key of its own (a hub or a path to it that cannot be trusted); in mode
 * 'replay', answers every delta request with the last heartbeat (empty delta, validly
 * signed by the service) it passed, withholding whatever happened since.
 */
async function startForgingProxy(target) {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const state = { mode: 'pass', forged: 0, heartbeat: null, replayed: 0, passing: 0 };
  const server = http.createServer(async (req, res) => {
    try {
      const isDelta = req.url.includes('since=');
      if (state.mode === 'replay' && isDelta && state.heartbeat) {
        await new Promise((r) => setTimeout(r, 250));
        state.replayed++;
        return res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(state.heartbeat);
      }
      state.passing++;
      const upstream = await fetch(target + req.url, { headers: { authorization: req.headers.authorization ?? '' } })
        .finally(() => state.passing--);
      let body = Buffer.from(await upstream.arrayBuffer());
      if (state.mode === 'pass' && isDelta && upstream.status === 200) {
        const msg = read(new Uint8Array(body));
        if (msg.type === 'delta' && msg.events.length === 0) state.heartbeat = body;
      }
      if (state.mode === 'forge' && isDelta && upstream.status === 200 && body.length > 64) {
        const signed = body.subarray(0, body.length - 64);
        body = Buffer.concat([signed, sign('sha256', signed, { key: privateKey, dsaEncoding: 'ieee-p1363' })]);
        state.forged++;
      }
      res.writeHead(upstream.status, { 'content-type': 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(502).end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    state,
    close: () => new Promise((r) => { server.close(r); server.closeAllConnections(); }),
  };
}

before(async () => {
  origin = await startOrigin();
  jwks = await startJwksHost();
  const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
  key = { kid: 'hub-es', privateKey };
  jwks.docs['/hub.json'] = { keys: [{ ...(await jose.exportJWK(publicKey)), kid: key.kid, alg: 'ES256', use: 'sig' }] };
  svc = await startRevocation();
  svc.publicJwkText = await svc.publicJwk();
  worker = await startWorker(hubVars(svc.url), { script: BENCH_BUILD, logName: 'hub' });
});

after(async () => {
  await stopAll();
  await origin?.close();
  await jwks?.close();
  console.log(`# logs: ${logDir}`);
});

test('relay: logout posted to the service → the hub holds it → the Worker rejects the token', async () => {
  const sid = `hub-logout-${randomUUID()}`;
  const token = await mint({ sid });
  await ready(worker, '/relay/before', token);
  const t0 = performance.now();
  const { accepted } = await svc.post({ kind: 'logout', sid, exp: now() + 3600 });
  const acked = performance.now();
  const seq = accepted[0].seq;
  await waitFor('the hub to hold the logout', async () => (await (await hub(worker, 'head')).json()).seq >= seq, { timeoutMs: 10000 });
  await waitFor('the Worker to reject the token', async () => (await call(worker, '/relay/after', token)).status === 401, {
    timeoutMs: 10000,
    intervalMs: 20,
  });
  console.log(`# relay propagation: ack ${(acked - t0).toFixed(1)} ms, edge rejecting ${(performance.now() - acked).toFixed(1)} ms after`);
  const body = await (await call(worker, '/relay/after', token)).json();
  assert.equal(body.reason, 'revoked');
  const iso = await isolate(worker);
  assert.ok(iso.denylist_seq >= seq, JSON.stringify(iso));
  // The hub served the service's bytes: the edge verified them with the service's key.
  assert.equal(iso.hub.refused, 0);
});

test('relay push: a subscriber gets the service-signed delta of a logout, and heartbeats without asking', async () => {
  const sub = await Subscriber.open(`${worker.url.replace(/^http/, 'ws')}/__tollgate/hub/${TENANT}/ws`, HUB_KEY);
  try {
    sub.ask(null);
    const snap = await sub.next('the snapshot');
    assert.equal(snap.msg.type, 'snapshot');
    assert.ok(await verified(snap.bytes, svc.publicJwkText), 'the relayed snapshot carries the service signature');
    let at = snap.msg.seq;
    const sid = `relay-push-${randomUUID()}`;
    const r = await svc.post({ kind: 'logout', sid, exp: now() + 3600 });
    const seq = r.accepted[0].seq;
    // Heartbeats may come first; the delta carrying the logout follows unasked.
    for (;;) {
      const { bytes, msg } = await sub.next(`the delta to ${seq}`);
      assert.equal(msg.type, 'delta');
      assert.ok(await verified(bytes, svc.publicJwkText));
      assert.ok(msg.from <= at, `no gap: (${msg.from}, ${msg.to}] after ${at}`);
      at = Math.max(at, msg.to);
      if (msg.events.some((e) => e.kind === 'sid' && e.id === sid)) break;
    }
    assert.ok(at >= seq);
    // The relay's upstream heartbeats (wait 1 s here) reach the subscriber too.
    const beat = await sub.next('a pushed heartbeat', 10000);
    assert.deepEqual([beat.msg.from, beat.msg.to, beat.msg.events.length], [at, at, 0]);
    assert.ok(await verified(beat.bytes, svc.publicJwkText));
  } finally {
    sub.close();
  }
});

test('relay push: the npm RemoteDenylist (transport hub-ws) learns a logout by push and stays fresh on heartbeats', async () => {
  const errors = [];
  let updates = 0;
  const remote = new RemoteDenylist({
    url: `${worker.url.replace(/^http/, 'ws')}/__tollgate/hub/${TENANT}/ws`,
    transport: 'hub-ws',
    token: HUB_KEY,
    // Relay mode: the hub passes the service's messages, so the service's key.
    publicJwk: svc.publicJwkText,
    maxStalenessSeconds: MAX_STALENESS,
    onError: (e) => errors.push(e),
    onUpdate: () => updates++,
  });
  const verifier = new Verifier({ jwks: jwks.docs['/hub.json'], issuers: [ISS], audiences: [AUD] });
  const check = async (token) => {
    const r = await verifier.check(token, { denylist: remote });
    return r.ok ? 'accept' : r.reason ?? r.code;
  };
  // The hub serves the service's snapshot as it was signed. A long-running hub's is
  // older than any bound: make this subscriber's catch-up start with one that is, so it
  // must take the snapshot as history and become fresh from the heartbeat after it.
  const snapshotAge = async () => now() - read(new Uint8Array(await (await hub(worker, 'snapshot')).arrayBuffer())).created;
  await waitFor('the hub snapshot to be older than the bound', async () => (await snapshotAge()) > MAX_STALENESS, {
    timeoutMs: (MAX_STALENESS + 5) * 1000,
    intervalMs: 250,
  });
  await remote.start();
  try {
    assert.equal(remote.stale, false);
    assert.ok((await snapshotAge()) > MAX_STALENESS, 'the snapshot taken was older than the bound');
    const sid = `npm-push-${randomUUID()}`;
    const token = await mint({ sid });
    assert.equal(await check(token), 'accept');
    const t0 = performance.now();
    const { accepted } = await svc.post({ kind: 'logout', sid, exp: now() + 3600 });
    await remote.waitForSeq(accepted[0].seq, { timeoutMs: 10000 });
    console.log(`# npm push: logout posted → replica at its seq ${(performance.now() - t0).toFixed(1)} ms`);
    assert.equal(await check(token), 'revoked');
    // Nothing else happens: signed heartbeats (asked every MAX_STALENESS / 3 s, and the
    // relay's pushed unasked) keep it fresh past the bound.
    const from = performance.now();
    const updatesBefore = updates;
    let stale = 0;
    while (performance.now() - from < (MAX_STALENESS + 1) * 1000) {
      if (remote.stale) stale++;
      await delay(100);
    }
    assert.equal(stale, 0, 'never stale while heartbeats come');
    assert.ok(updates - updatesBefore >= MAX_STALENESS, `${updates - updatesBefore} heartbeats taken`);
    assert.equal(await check(token), 'revoked');
    assert.deepEqual(errors.map(String), []);
  } finally {
    await remote.stop();
  }
});

test('hub API: keys and scopes are enforced, bad input is a 4xx', async () => {
  assert.equal((await hub(worker, 'head', { auth: null })).status, 401);
  assert.equal((await hub(worker, 'head', { auth: 'not-a-key-of-the-hub' })).status, 401);
  const head = await hub(worker, 'head');
  assert.equal(head.status, 200);
  const h = await head.json();
  assert.equal(h.tenant, TENANT);
  assert.equal(h.mode, 'relay');
  assert.match(h.snapshot_id, /^[0-9a-f]{16}$/);
  assert.equal((await hub(worker, 'since/abc')).status, 400);
  assert.equal((await hub(worker, `since/${h.seq + 1000}`)).status, 410);
  assert.equal((await hub(worker, 'nope')).status, 404);
  const since = await hub(worker, 'since/0');
  assert.ok([200, 410].includes(since.status));
  const snap = await hub(worker, 'snapshot');
  assert.equal(snap.status, 200);
  assert.equal(Buffer.from(await snap.arrayBuffer()).subarray(0, 3).toString(), 'TGS');
  // Log-mode routes on a relaying hub point to the service.
  const post = await fetch(`${worker.url}/__tollgate/hub/${TENANT}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${HUB_KEY}` }, body: '{}' });
  assert.equal(post.status, 404);
  const bad = await fetch(`${worker.url}/__tollgate/hub/not%2Fa%2Ftenant/head`);
  assert.ok(bad.status >= 400 && bad.status < 500, String(bad.status));
});

test('cache tier: many requests in one isolate → at most one hub check per interval', async () => {
  const token = await mint();
  await ready(worker, '/tier/many', token);
  const before = (await isolate(worker)).hub;
  const stats0 = await (await hub(worker, 'stats')).json();
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < 3000) {
    const replies = await Promise.all(Array.from({ length: 10 }, () => call(worker, '/tier/many', token)));
    for (const r of replies) assert.equal(r.status, 200);
    n += replies.length;
  }
  const elapsed = performance.now() - t0;
  const after = (await isolate(worker)).hub;
  const stats1 = await (await hub(worker, 'stats')).json();
  const checks = after.checks - before.checks;
  const heads = after.head_cache + after.head_hub - before.head_cache - before.head_hub;
  console.log(`# cache tier: ${n} requests in ${elapsed.toFixed(0)} ms → ${checks} checks (${after.head_hub - before.head_hub} from the hub), hub head answers ${stats1.head - stats0.head}`);
  assert.ok(checks >= 1, 'the interval passed: the isolate checked');
  assert.ok(checks <= Math.ceil(elapsed / INTERVAL_MS) + 1, `${checks} checks in ${elapsed} ms`);
  assert.equal(heads, checks, 'one head read per check');
  assert.ok(stats1.head - stats0.head <= checks, 'the hub answered no more heads than the isolate checked');
});

test('the service stopped → the hub keeps serving, edges fail closed after the bound, recover when it returns', async () => {
  const token = await mint();
  await ready(worker, '/down/before', token);
  const seqBefore = (await (await hub(worker, 'head')).json()).seq;
  await svc.stop();
  const stoppedAt = performance.now();
  await waitFor('the Worker to fail closed', async () => (await call(worker, '/down/stale', token)).status === 503, {
    timeoutMs: (MAX_STALENESS + 10) * 1000,
    intervalMs: 100,
  });
  console.log(`# service down: edge failing closed ${(performance.now() - stoppedAt).toFixed(0)} ms after the service stopped (bound ${MAX_STALENESS} s)`);
  const stale = await call(worker, '/down/stale', token);
  assert.equal(stale.status, 503);
  assert.equal((await stale.json()).reason, 'denylist_stale');
  const head = await hub(worker, 'head');
  assert.equal(head.status, 200, 'the hub still answers');
  assert.equal((await head.json()).seq, seqBefore);
  assert.equal((await hub(worker, 'snapshot')).status, 200, 'and serves its snapshot');
  await svc.start();
  await waitFor('the Worker to recover', async () => (await call(worker, '/down/back', token)).status === 200, {
    timeoutMs: 20000,
    intervalMs: 100,
  });
});

test('a fresh isolate (wrangler dev restarted on the same storage) takes its snapshot from the Cache API', async () => {
  const sid = `hub-restart-${randomUUID()}`;
  const token = await mint({ sid });
  const { accepted } = await svc.post({ kind: 'logout', sid, exp: now() + 3600 });
  await waitFor('the Worker to reject the token', async () => (await call(worker, '/restart/before', token)).status === 401, { timeoutMs: 10000 });
  const persistTo = worker.persistTo;
  await worker.stop();
  worker = await startWorker(hubVars(svc.url), { script: BENCH_BUILD, logName: 'hub-restarted', persistTo });
  // The hub's stored heartbeat was signed before the restart, more than the bound ago,
  // so it refreshes nothing: until the hub relays a new one, the answer is 503, never
  // the token let through.
  const first = await call(worker, '/restart/after', token);
  assert.ok([401, 503].includes(first.status), `first answer ${first.status}`);
  await waitFor('the restarted Worker to reject the token', async () => (await call(worker, '/restart/after', token)).status === 401, { timeoutMs: 10000, intervalMs: 100 });
  const iso = await isolate(worker);
  assert.equal(iso.hub.snapshot_cache, 1, JSON.stringify(iso.hub));
  assert.equal(iso.hub.snapshot_hub, 0, JSON.stringify(iso.hub));
  assert.ok(iso.denylist_seq >= accepted[0].seq);
  const stats = await (await hub(worker, 'stats')).json();
  assert.equal(stats.snapshot, 0, 'the restarted hub served no snapshot');
});

test('a delta not signed by the service is refused by the edge even though the hub served it', async () => {
  const proxy = await startForgingProxy(svc.url);
  const forged = await startWorker(hubVars(proxy.url), { script: BENCH_BUILD, logName: 'hub-forged' });
  try {
    const sid = `hub-forged-${randomUUID()}`;
    const token = await mint({ sid });
    await ready(forged, '/forged/before', token);
    const seq0 = (await isolate(forged)).denylist_seq;
    proxy.state.mode = 'forge';
    const { accepted } = await svc.post({ kind: 'logout', sid, exp: now() + 3600 });
    // The hub (no TOLLGATE_HUB_UPSTREAM_KEY) stores and serves the forged delta...
    await waitFor('the hub to take the forged delta', async () => (await (await hub(forged, 'head')).json()).seq >= accepted[0].seq, { timeoutMs: 10000 });
    // ...and the edge refuses it: its replica does not move, and it fails closed.
    await waitFor('the edge to refuse it', async () => {
      await call(forged, '/forged/poke', token);
      return (await isolate(forged)).hub.refused > 0;
    }, { timeoutMs: 10000, intervalMs: 200 });
    assert.ok(proxy.state.forged > 0);
    assert.equal((await isolate(forged)).denylist_seq, seq0);
    await waitFor('the edge to fail closed', async () => (await call(forged, '/forged/stale', token)).status === 503, {
      timeoutMs: (MAX_STALENESS + 10) * 1000,
      intervalMs: 100,
    });
    // The token was never let through on a forged "nothing happened".
    const r = await call(forged, '/forged/after', token);
    assert.equal(r.status, 503);
  } finally {
    await forged.stop();
    await proxy.close();
  }
});

test('a replayed old heartbeat served by the hub does not keep the edge fresh: a withheld logout fails closed', async () => {
  const proxy = await startForgingProxy(svc.url);
  const replayed = await startWorker(hubVars(proxy.url), { script: BENCH_BUILD, logName: 'hub-replayed' });
  try {
    const sid = `hub-replayed-${randomUUID()}`;
    const token = await mint({ sid });
    await ready(replayed, '/replay/before', token);
    await waitFor('a heartbeat to pass the proxy', async () => proxy.state.heartbeat !== null, { timeoutMs: 10000 });
    proxy.state.mode = 'replay';
    // The long-poll in flight when the replay began ends before the logout is posted.
    await waitFor('the replay to take over', async () => proxy.state.replayed > 0 && proxy.state.passing === 0, { timeoutMs: 10000 });
    // The logout reaches the service, never the hub: the proxy answers the hub's
    // long-polls with the old "nothing happened", and the hub serves it as its heartbeat.
    await svc.post({ kind: 'logout', sid, exp: now() + 3600 });
    const seen = new Set();
    await waitFor('the edge to fail closed', async () => {
      const status = (await call(replayed, '/replay/stale', token)).status;
      seen.add(status);
      return status === 503;
    }, { timeoutMs: (2 * MAX_STALENESS + 10) * 1000, intervalMs: 100 });
    assert.ok(!seen.has(401), 'the logout was withheld from the hub (else this test shows nothing)');
    assert.ok(proxy.state.replayed > 0, 'the hub took replayed heartbeats');
    const iso = await isolate(replayed);
    assert.ok(iso.hub.too_old > 0, JSON.stringify(iso.hub));
    // Fail closed holds while the replay goes on (the hub keeps serving a "new" heartbeat).
    for (let i = 0; i < 3; i++) {
      await delay(INTERVAL_MS);
      assert.equal((await call(replayed, '/replay/still', token)).status, 503);
    }
  } finally {
    await replayed.stop();
    await proxy.close();
  }
});
