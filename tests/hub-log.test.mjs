// End-to-end tests of the revocation hub in log mode (TOLLGATE_HUB_MODE = "log") in real
// workerd through `wrangler dev`: the hub is the event log (the revocation service's
// API and shapes, its own signing key as a secret), and the Worker's cache-tier
// replica verifies what it signs. No revocation service runs here. Run through
// edge/hub/test.sh.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import * as jose from 'jose';

import { stopAll, waitFor } from './lib/procs.mjs';
import { startOrigin, startJwksHost } from './lib/servers.mjs';
import { startWorker, hubSigningKey, logDir, BENCH_BUILD } from './lib/stack.mjs';
import { Subscriber, read, verified } from './lib/wire-read.mjs';

const ISS = 'https://issuer.test';
const AUD = 'https://api.test';
const TENANT = 'issuer-test';
const SECRET = `hub-log-origin-secret-${randomUUID()}`;
const WRITE_KEY = `hub-write-${randomUUID()}`;
const OTHER_KEY = `hub-other-issuer-${randomUUID()}`;
const READ_KEY = `hub-read-${randomUUID()}`;
const LIMITED_KEY = `hub-limited-${randomUUID()}`;
// Per-key rate limit of the suite (every key): 10 events a second, 50 at once.
const RATE = 10;
const BURST = 50;

let origin;
let jwks;
let worker;
let key;
let vars;

const now = () => Math.floor(Date.now() / 1000);

async function mint(claims = {}) {
  const t = now();
  return new jose.SignJWT({ sid: `s-${randomUUID()}`, ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'JWT' })
    .setIssuer(ISS).setAudience(AUD).setSubject('alice').setJti(randomUUID())
    .setIssuedAt(t).setExpirationTime(t + 600)
    .sign(key.privateKey);
}

const call = (p, token) => fetch(`${worker.url}${p}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

function api(op, { body, auth = WRITE_KEY, method = 'POST', raw } = {}) {
  const headers = { 'content-type': 'application/json' };
  if (auth) headers.authorization = `Bearer ${auth}`;
  return fetch(`${worker.url}/__tollgate/hub/${TENANT}/${op}`, { method, headers, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
}

async function post(op, body, opts = {}) {
  const r = await api(op, { body, ...opts });
  return { status: r.status, body: await r.json() };
}

async function head() {
  return (await api('head', { method: 'GET', auth: READ_KEY })).json();
}

const wsUrl = () => `${worker.url.replace(/^http/, 'ws')}/__tollgate/hub/${TENANT}/ws`;
const hubJwk = () => JSON.parse(vars.TOLLGATE_DENYLIST_KEY);

/** A subscriber that asked from `since` and took the answer up to the head. */
async function subscribed(since) {
  const sub = await Subscriber.open(wsUrl(), READ_KEY);
  sub.ask(since);
  const h = (await head()).seq;
  for (;;) {
    const { msg } = await sub.next(`the catch-up to ${h}`);
    if ((msg.type === 'snapshot' ? msg.seq : msg.to) >= h && msg.type === 'delta') return { sub, seq: h };
  }
}

async function ready(p, token) {
  await waitFor(`${p} to answer 200`, async () => (await call(p, token)).status === 200, { timeoutMs: 15000, intervalMs: 100 });
}

before(async () => {
  origin = await startOrigin();
  jwks = await startJwksHost();
  const kp = await jose.generateKeyPair('ES256', { extractable: true });
  key = { kid: 'hub-log-es', privateKey: kp.privateKey };
  jwks.docs['/hub.json'] = { keys: [{ ...(await jose.exportJWK(kp.publicKey)), kid: key.kid, alg: 'ES256', use: 'sig' }] };
  // The hub's signing key: its scalar is the secret, its public JWK the edges' key.
  const signing = hubSigningKey();
  vars = {
    TOLLGATE_ORIGIN: origin.url,
    TOLLGATE_JWKS_URLS: JSON.stringify([jwks.url('/hub.json')]),
    TOLLGATE_ISSUERS: JSON.stringify([ISS]),
    TOLLGATE_AUDIENCES: JSON.stringify([AUD]),
    TOLLGATE_REVOCATION_SOURCE: 'hub',
    TOLLGATE_HUB_TENANT: TENANT,
    TOLLGATE_HUB_MODE: 'log',
    TOLLGATE_HUB_SIGNING_KEY: signing.hex,
    TOLLGATE_DENYLIST_KEY: signing.publicJwk,
    TOLLGATE_MAX_STALENESS_SECONDS: '3',
    TOLLGATE_HUB_API: 'on',
    TOLLGATE_HUB_API_KEYS: JSON.stringify([
      { name: 'origin', key: WRITE_KEY, scopes: ['events:write'], issuers: [ISS] },
      { name: 'other', key: OTHER_KEY, scopes: ['events:write'], issuers: ['https://other.test'] },
      { name: 'edge', key: READ_KEY, scopes: ['denylist:read'] },
      { name: 'limited', key: LIMITED_KEY, scopes: ['events:write'], issuers: [ISS] },
    ]),
    TOLLGATE_HUB_KEY_EVENTS_PER_SEC: String(RATE),
    TOLLGATE_HUB_KEY_BURST_EVENTS: String(BURST),
    TOLLGATE_ORIGIN_SECRET: SECRET,
    TOLLGATE_BENCH_ENDPOINT: 'on',
    TOLLGATE_ROUTES: JSON.stringify([{ path: '/public/*', auth: 'none' }, { path: '/*', auth: 'required' }]),
  };
  worker = await startWorker(vars, { script: BENCH_BUILD, logName: 'hub-log' });
});

after(async () => {
  await stopAll();
  await origin?.close();
  await jwks?.close();
  console.log(`# logs: ${logDir}`);
});

test('log mode: a logout posted to the hub → the Worker rejects the token; the key is the hub\'s', async () => {
  const sid = `log-logout-${randomUUID()}`;
  const token = await mint({ sid });
  await ready('/log/before', token);
  const t0 = performance.now();
  const r = await post('v1/events', { kind: 'logout', sid, exp: now() + 3600 });
  const acked = performance.now();
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.accepted.length, 1);
  assert.equal(r.body.accepted[0].duplicate, false);
  await waitFor('the Worker to reject the token', async () => (await call('/log/after', token)).status === 401, { timeoutMs: 10000, intervalMs: 20 });
  console.log(`# log-mode propagation: ack ${(acked - t0).toFixed(1)} ms, edge rejecting ${(performance.now() - acked).toFixed(1)} ms after`);
  assert.equal((await (await call('/log/after', token)).json()).reason, 'revoked');
  const jwk = await (await api('v1/denylist/key', { method: 'GET', auth: null })).json();
  assert.equal(jwk.x, JSON.parse(vars.TOLLGATE_DENYLIST_KEY).x);
  assert.equal((await head()).mode, 'log');
});

test('log mode: idempotent retry appends nothing; reusing the key for another event is refused', async () => {
  const ev = { kind: 'revoke_token', jti: `j-${randomUUID()}`, exp: now() + 3600, idempotency_key: `idem-${randomUUID()}` };
  const first = await post('v1/events', ev);
  assert.equal(first.status, 200);
  const h1 = (await head()).seq;
  const again = await post('v1/events', ev);
  assert.equal(again.status, 200);
  assert.deepEqual(again.body.accepted[0], { seq: first.body.accepted[0].seq, kind: 'revoke_token', duplicate: true });
  assert.equal((await head()).seq, h1, 'nothing appended');
  const other = await post('v1/events', { ...ev, jti: 'another' });
  assert.equal(other.status, 422);
  assert.equal(other.body.error, 'idempotency_conflict');
  // A batch with one bad event appends nothing.
  const batch = await post('v1/events', { events: [{ kind: 'logout', sid: 'ok-1', exp: now() + 60 }, { kind: 'logout', exp: now() + 60 }] });
  assert.equal(batch.status, 422);
  assert.equal((await head()).seq, h1);
});

test('log mode: scopes are enforced', async () => {
  const ev = { kind: 'logout', sid: `scoped-${randomUUID()}`, exp: now() + 60 };
  assert.equal((await post('v1/events', ev, { auth: null })).status, 401);
  assert.equal((await post('v1/events', ev, { auth: 'not-a-key-at-all-here' })).status, 401);
  const read = await post('v1/events', ev, { auth: READ_KEY });
  assert.equal(read.status, 403);
  assert.equal(read.body.error, 'forbidden');
  const wrongIss = await post('v1/events', { ...ev, iss: 'https://elsewhere.test' });
  assert.equal(wrongIss.status, 403);
  assert.equal(wrongIss.body.error, 'forbidden_issuer');
  assert.equal((await api('head', { method: 'GET', auth: WRITE_KEY })).status, 403, 'events:write does not read');
  const sid = `scoped-s-${randomUUID()}`;
  assert.equal((await post('v1/sessions', { sid, sub: 'u', refresh_jti: 'r0', exp: now() + 3600 })).status, 201);
  const foreign = await post('v1/refresh/rotate', { sid, presented_jti: 'r0', next_jti: 'r1', exp: now() + 3600 }, { auth: OTHER_KEY });
  assert.equal(foreign.status, 403);
  assert.equal(foreign.body.error, 'forbidden_issuer');
});

test('log mode: per-key rate limit: 429 rate_limited with Retry-After, per key, nothing appended', async () => {
  const logouts = (n) => ({ events: Array.from({ length: n }, () => ({ kind: 'logout', sid: `limited-${randomUUID()}`, exp: now() + 60 })) });
  const over = await api('v1/events', { body: logouts(BURST + 1), auth: LIMITED_KEY });
  assert.equal(over.status, 429);
  assert.equal((await over.json()).error, 'rate_limited');
  assert.equal(over.headers.get('retry-after'), '60', 'a batch over the burst never fits');
  const full = await post('v1/events', logouts(BURST), { auth: LIMITED_KEY });
  assert.equal(full.status, 200, JSON.stringify(full.body));
  const seq = (await head()).seq;
  const spent = await api('v1/events', { body: logouts(RATE), auth: LIMITED_KEY });
  assert.equal(spent.status, 429);
  const body = await spent.json();
  assert.equal(body.error, 'rate_limited');
  assert.match(body.detail, /10 events a second \(burst 50\)/);
  assert.ok(Number(spent.headers.get('retry-after')) >= 1, spent.headers.get('retry-after'));
  assert.equal((await head()).seq, seq, 'a refused batch appends nothing');
  // Another key's bucket is its own.
  assert.equal((await post('v1/events', logouts(1))).status, 200);
  // The bucket refills at the rate.
  await waitFor('the limited key to post again', async () => (await api('v1/events', { body: logouts(1), auth: LIMITED_KEY })).status === 200, { timeoutMs: 5000, intervalMs: 200 });
});

test('log mode: bad bodies are 4xx with a typed error, never 5xx', async () => {
  const t = now();
  const bad = [
    ['v1/events', '{'],
    ['v1/events', '[]'],
    ['v1/events', '{"events": []}'],
    ['v1/events', JSON.stringify({ kind: 'logout', exp: t + 60 })],
    ['v1/events', JSON.stringify({ kind: 'nuke', sid: 'x', exp: t + 60 })],
    ['v1/events', JSON.stringify({ kind: 'logout', sid: 'x', exp: t + 365 * 86400 })],
    ['v1/events', JSON.stringify({ kind: 'logout', sid: 'x', exp: 'soon' })],
    ['v1/events', JSON.stringify({ kind: 'logout', sid: 'x', exp: t + 60, extra: 1 })],
    ['v1/events', JSON.stringify({ kind: 'logout', sid: 'x'.repeat(2000), exp: t + 60 })],
    ['v1/events', JSON.stringify({ kind: 'revoke_subject', sub: 'x', exp: t + 60 })],
    ['v1/sessions', JSON.stringify({ sid: 'x' })],
    ['v1/sessions', 'null'],
    ['v1/refresh/rotate', JSON.stringify({ sid: 'nope', presented_jti: 'a', next_jti: 'b', exp: t + 60 })],
    ['v1/refresh/rotate', JSON.stringify({ sid: 1 })],
    ['v1/nothing', '{}'],
  ];
  for (const [op, raw] of bad) {
    const r = await api(op, { raw });
    const body = await r.json();
    assert.ok(r.status >= 400 && r.status < 500, `${op} ${raw.slice(0, 60)} → ${r.status} ${JSON.stringify(body)}`);
    assert.equal(typeof body.error, 'string');
  }
});

test('log mode: concurrent double rotation → exactly one winner, the loser 409 reuse_detected, the family revoked at the edge', async () => {
  const sid = `fam-${randomUUID()}`;
  const token = await mint({ sid });
  await ready('/rotate/before', token);
  const start = await post('v1/sessions', { sid, sub: 'alice', refresh_jti: 'r0', exp: now() + 3600 });
  assert.equal(start.status, 201);
  const again = await post('v1/sessions', { sid, sub: 'alice', refresh_jti: 'r0', exp: now() + 3600 });
  assert.deepEqual([again.status, again.body.duplicate, again.body.seq], [200, true, start.body.seq]);
  const [a, b] = await Promise.all([
    post('v1/refresh/rotate', { sid, presented_jti: 'r0', next_jti: 'r1-a', exp: now() + 3600 }),
    post('v1/refresh/rotate', { sid, presented_jti: 'r0', next_jti: 'r1-b', exp: now() + 3600 }),
  ]);
  const statuses = [a.status, b.status].sort();
  assert.deepEqual(statuses, [200, 409], JSON.stringify([a, b]));
  const loser = a.status === 409 ? a : b;
  assert.equal(loser.body.error, 'reuse_detected');
  assert.equal(typeof loser.body.seq, 'number');
  await waitFor('the edge to reject the family', async () => (await call('/rotate/after', token)).status === 401, { timeoutMs: 10000, intervalMs: 50 });
  const winner = a.status === 200 ? a : b;
  const next = a.status === 200 ? 'r1-a' : 'r1-b';
  const after = await post('v1/refresh/rotate', { sid, presented_jti: next, next_jti: 'r2', exp: now() + 3600 });
  assert.equal(after.status, 409);
  assert.equal(after.body.error, 'session_revoked');
  assert.equal(typeof winner.body.seq, 'number');
});

test('log mode: a retried rotation is a duplicate; an older token is reuse', async () => {
  const sid = `fam2-${randomUUID()}`;
  assert.equal((await post('v1/sessions', { sid, sub: 'bob', refresh_jti: 'r0', exp: now() + 3600 })).status, 201);
  const r1 = await post('v1/refresh/rotate', { sid, presented_jti: 'r0', next_jti: 'r1', exp: now() + 3600 });
  assert.equal(r1.status, 200);
  const retry = await post('v1/refresh/rotate', { sid, presented_jti: 'r0', next_jti: 'r1', exp: now() + 3600 });
  assert.deepEqual([retry.status, retry.body.duplicate, retry.body.seq], [200, true, r1.body.seq]);
  assert.equal((await post('v1/refresh/rotate', { sid, presented_jti: 'r1', next_jti: 'r2', exp: now() + 3600 })).status, 200);
  const unknown = await post('v1/refresh/rotate', { sid, presented_jti: 'never', next_jti: 'r9', exp: now() + 3600 });
  assert.equal(unknown.body.error, 'unknown_token');
  const reuse = await post('v1/refresh/rotate', { sid, presented_jti: 'r0', next_jti: 'r3', exp: now() + 3600 });
  assert.equal(reuse.status, 409);
  assert.equal(reuse.body.error, 'reuse_detected');
});

test('push: a subscriber gets the snapshot, then each acknowledged event as a signed delta without asking', async () => {
  const sub = await Subscriber.open(wsUrl(), READ_KEY);
  const other = await Subscriber.open(wsUrl(), READ_KEY);
  try {
    sub.ask(null);
    const snap = await sub.next('the snapshot');
    assert.equal(snap.msg.type, 'snapshot');
    assert.ok(await verified(snap.bytes, hubJwk()), 'the snapshot is signed with the hub key');
    assert.equal(snap.msg.seq, (await head()).seq);
    // At the head: a heartbeat signed now, so the subscriber knows how fresh it is.
    const beat = await sub.next('the heartbeat');
    assert.deepEqual([beat.msg.type, beat.msg.from, beat.msg.to, beat.msg.events.length], ['delta', snap.msg.seq, snap.msg.seq, 0]);
    assert.ok(Math.abs(beat.msg.created - now()) <= 2, 'the heartbeat is created now');
    other.ask(snap.msg.seq);
    await other.next('the second subscriber\'s heartbeat');

    const sid = `push-${randomUUID()}`;
    const t0 = performance.now();
    const r = await post('v1/events', { kind: 'logout', sid, exp: now() + 3600 });
    const acked = performance.now();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const pushed = await sub.next('the pushed delta');
    const also = await other.next('the delta pushed to the second subscriber');
    assert.equal(pushed.msg.type, 'delta');
    assert.deepEqual([pushed.msg.from, pushed.msg.to], [snap.msg.seq, r.body.accepted[0].seq]);
    assert.deepEqual(pushed.msg.events.map((e) => [e.kind, e.id]), [['sid', sid]]);
    assert.ok(await verified(pushed.bytes, hubJwk()), 'the delta is signed with the hub key');
    const tampered = Uint8Array.from(pushed.bytes);
    tampered[tampered.length - 70] ^= 1;
    assert.equal(await verified(tampered, hubJwk()), false, 'a changed byte breaks the signature');
    assert.deepEqual(read(also.bytes).events.map((e) => e.id), [sid]);
    console.log(`# push: ack after ${(acked - t0).toFixed(1)} ms; pushed frame arrived ${(pushed.at - acked).toFixed(1)} ms after the ack`);
    assert.equal(sub.errors.length, 0, JSON.stringify(sub.errors));
  } finally {
    sub.close();
    other.close();
  }
});

test('push: the endpoint wants a denylist:read key and an upgrade; a malformed ask closes the socket; asks are rate-limited', async () => {
  await assert.rejects(Subscriber.open(wsUrl(), null), 'no key: refused');
  await assert.rejects(Subscriber.open(wsUrl(), WRITE_KEY), 'a key without denylist:read: refused');
  const plain = await api('ws', { method: 'GET', auth: READ_KEY });
  assert.equal(plain.status, 426);
  assert.equal((await plain.json()).error, 'upgrade_required');
  const noKey = await api('ws', { method: 'GET', auth: null });
  assert.equal(noKey.status, 401);

  const fast = await Subscriber.open(wsUrl(), READ_KEY);
  fast.ask(null);
  fast.ask(null);
  await fast.next('the snapshot');
  await waitFor('the second ask to be refused', async () => fast.errors.length > 0, { timeoutMs: 5000, intervalMs: 20 });
  assert.equal(fast.errors[0].error, 'rate_limited');
  fast.close();

  for (const bad of ['{"since":"x"}', 'hello', '{"since":1,"more":2}', JSON.stringify({ since: -1 })]) {
    const s = await Subscriber.open(wsUrl(), READ_KEY);
    s.ws.send(bad);
    const closed = await s.closedWith();
    assert.equal(closed.code, 1008, `${bad} closes with 1008`);
    assert.equal(s.frames.length, 0);
  }
});

test('push: a subscriber that reconnects resumes from the sequence it holds, with no gap and no snapshot', async () => {
  const { sub, seq: held } = await subscribed(null);
  sub.close();
  await sub.closedWith();
  const jtis = [`gone-${randomUUID()}`, `gone-${randomUUID()}`];
  for (const jti of jtis) assert.equal((await post('v1/events', { kind: 'revoke_token', jti, exp: now() + 3600 })).status, 200);
  const again = await Subscriber.open(wsUrl(), READ_KEY);
  try {
    again.ask(held);
    const { msg } = await again.next('the deltas after the held sequence');
    assert.equal(msg.type, 'delta', 'no snapshot for a subscriber the hub can bring up with a delta');
    assert.equal(msg.from, held);
    assert.equal(msg.to, (await head()).seq);
    assert.deepEqual(msg.events.map((e) => e.id), jtis);
  } finally {
    again.close();
  }
});

test('log mode: acknowledged events are durable across a wrangler dev restart on the same storage', async () => {
  const sid = `durable-${randomUUID()}`;
  const token = await mint({ sid });
  const { sub, seq: held } = await subscribed(null);
  const r = await post('v1/events', { kind: 'logout', sid, exp: now() + 3600 });
  assert.equal(r.status, 200);
  const seq = (await head()).seq;
  const persistTo = worker.persistTo;
  await worker.stop();
  await sub.closedWith();
  worker = await startWorker(vars, { script: BENCH_BUILD, logName: 'hub-log-restarted', persistTo });
  assert.equal((await head()).seq, seq, 'the log survived the restart');
  // A subscriber cut off by the restart resumes from what it held: the event it missed.
  const again = await Subscriber.open(wsUrl(), READ_KEY);
  again.ask(held);
  const { msg } = await again.next('the delta after the restart');
  assert.deepEqual([msg.type, msg.from, msg.to], ['delta', held, seq]);
  assert.ok(msg.events.some((e) => e.kind === 'sid' && e.id === sid));
  again.close();
  await waitFor('the restarted Worker to reject the token', async () => (await call('/durable/after', token)).status === 401, { timeoutMs: 10000, intervalMs: 100 });
  assert.equal((await (await call('/durable/after', token)).json()).reason, 'revoked');
});
