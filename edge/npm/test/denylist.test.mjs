// Denylist (local revocations, signed snapshots and deltas) and RemoteDenylist against
// an in-process stand-in of the revocation service's replication API, whose messages
// are encoded and signed independently (test/wire.mjs). The real service is exercised
// in revocation.test.mjs.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NOW, keyPair, listen, manualClock, pkg, sign, waitFor } from './helpers.mjs';
import { EPOCH, delta, serviceKey, snapshot } from './wire.mjs';

const { Verifier, Denylist, Acceptance, RemoteDenylist, TollgateError } = pkg;

let es, verifier, svcKey;

before(async () => {
  es = await keyPair('ES256', 'k1');
  verifier = new Verifier({ jwks: { keys: [es.jwk] } });
  svcKey = await serviceKey();
});

async function reason(token, denylist, now = NOW) {
  const r = await verifier.check(token, { now, denylist });
  return r.ok ? 'accept' : r.reason;
}

describe('Denylist', () => {
  it('revokes by jti, sid and subject cutoff, optionally per issuer', async () => {
    const d = new Denylist();
    assert.deepEqual([d.seq, d.size], [0, 0]);
    const t = (claims) => sign(es, { exp: NOW + 60, ...claims });
    d.revokeJti('j1', NOW + 60);
    d.revokeSid('s1', NOW + 60, 'https://a.test');
    d.revokeSubject('u1', NOW - 100, NOW + 60);
    assert.equal(d.size, 3);
    assert.equal(await reason(await t({ jti: 'j1' }), d), 'revoked');
    assert.equal(await reason(await t({ jti: 'j2' }), d), 'accept');
    assert.equal(await reason(await t({ sid: 's1', iss: 'https://a.test' }), d), 'revoked');
    assert.equal(await reason(await t({ sid: 's1', iss: 'https://b.test' }), d), 'accept', 'scoped to its issuer');
    assert.equal(await reason(await t({ sub: 'u1', iat: NOW - 101 }), d), 'revoked');
    assert.equal(await reason(await t({ sub: 'u1', iat: NOW - 100 }), d), 'accept');
    assert.equal(await reason(await t({ sub: 'u1' }), d), 'revoked', 'no iat: covered by the cutoff');
    assert.equal(d.prune(NOW + 61), 3);
    assert.equal(d.size, 0);
    assert.throws(() => d.revokeJti('x', -1), (e) => e instanceof TollgateError && e.code === 'INVALID_ARGUMENT');
    assert.throws(() => d.revokeJti('x', Number.NaN), (e) => e.code === 'INVALID_ARGUMENT');
  });

  it('applies signed snapshots and deltas, refusing bad signatures, gaps and rollbacks', async () => {
    const d = new Denylist();
    d.applySnapshot(await snapshot(svcKey, 10), svcKey.jwk);
    assert.equal(d.seq, 10);
    const events = [
      { seq: 11, kind: 'jti', id: 'j-del', exp: NOW + 60 },
      { seq: 13, kind: 'sid', id: 's-del', exp: NOW + 60, iss: 'https://i.test' },
      { seq: 14, kind: 'sub', id: 'u-del', exp: NOW + 60, before: NOW },
    ];
    assert.equal(d.applyDelta(await delta(svcKey, 10, 15, events), JSON.stringify(svcKey.jwk)), 3);
    assert.deepEqual([d.seq, d.size], [15, 3]);
    assert.equal(await reason(await sign(es, { exp: NOW + 60, jti: 'j-del' }), d), 'revoked');
    assert.equal(await reason(await sign(es, { exp: NOW + 60, sid: 's-del', iss: 'https://i.test' }), d), 'revoked');
    assert.equal(await reason(await sign(es, { exp: NOW + 60, sub: 'u-del', iat: NOW - 1 }), d), 'revoked');

    const other = await serviceKey();
    const forged = await delta(other, 15, 16, [{ seq: 16, kind: 'jti', id: 'x', exp: NOW }]);
    assert.throws(() => d.applyDelta(forged, svcKey.jwk), (e) => e instanceof TollgateError && e.code === 'DENYLIST_SIGNATURE');
    const flipped = await delta(svcKey, 15, 16, [{ seq: 16, kind: 'jti', id: 'x', exp: NOW }]);
    flipped[30] ^= 1;
    assert.throws(() => d.applyDelta(flipped, svcKey.jwk), (e) => e.code === 'DENYLIST_SIGNATURE');
    const gap = await delta(svcKey, 20, 21, []);
    assert.throws(() => d.applyDelta(gap, svcKey.jwk), (e) => e.code === 'DENYLIST_GAP');
    const older = await snapshot(svcKey, 3);
    assert.throws(() => d.applySnapshot(older, svcKey.jwk), (e) => e.code === 'DENYLIST_BACKWARDS');
    assert.throws(() => d.applySnapshot(new Uint8Array(10), svcKey.jwk), (e) => e.code === 'DENYLIST_MALFORMED');
    const later = await snapshot(svcKey, 30);
    assert.throws(() => d.applySnapshot(later, { kty: 'EC' }), (e) => e.code === 'INVALID_JWKS');
    assert.deepEqual([d.seq, d.size], [15, 3], 'refused messages change nothing');
  });
});

describe('Acceptance', () => {
  it('applies the epoch, age and sequence rules, and round-trips its mark', async () => {
    const acc = new Acceptance(10, null);
    assert.deepEqual([acc.highWaterMark, acc.epoch, acc.maxAgeSeconds, acc.rebootstrapping], [null, null, 10, false]);
    const d = new Denylist();
    const at = (created) => ({ created });
    assert.throws(() => d.applyDeltaAccepted(new Uint8Array(3), svcKey.jwk, acc, NOW), (e) => e.code === 'DENYLIST_MALFORMED');
    const tooOld = await snapshot(svcKey, 4, at(NOW - 11));
    assert.throws(() => d.applySnapshotAccepted(tooOld, svcKey.jwk, acc, NOW), (e) => e instanceof TollgateError && e.code === 'DENYLIST_TOO_OLD');
    const early = await delta(svcKey, 0, 1, []);
    assert.throws(() => d.applyDeltaAccepted(early, svcKey.jwk, acc, NOW), (e) => e.code === 'DENYLIST_NO_SNAPSHOT');
    d.applySnapshotAccepted(await snapshot(svcKey, 4, at(NOW - 10)), svcKey.jwk, acc, NOW);
    assert.equal(acc.highWaterMark, markOf(EPOCH, 4));
    const ev = [{ seq: 5, kind: 'jti', id: 'a', exp: NOW + 60 }];
    assert.equal(d.applyDeltaAccepted(await delta(svcKey, 4, 5, ev), svcKey.jwk, acc, NOW), 1);
    assert.equal(acc.highWaterMark, markOf(EPOCH, 5));
    const other = { epoch: new Uint8Array(16).fill(3), created: NOW };
    const foreign = await delta(svcKey, 5, 6, [], other);
    assert.throws(() => d.applyDeltaAccepted(foreign, svcKey.jwk, acc, NOW), (e) => e.code === 'DENYLIST_EPOCH');
    // A new replica resuming from the persisted text refuses what this one would.
    const resumed = new Acceptance(10, acc.highWaterMark);
    const d2 = new Denylist();
    const behind = await snapshot(svcKey, 4);
    assert.throws(() => d2.applySnapshotAccepted(behind, svcKey.jwk, resumed, NOW), (e) => e.code === 'DENYLIST_BACKWARDS');
    const otherSnap = await snapshot(svcKey, 9, other);
    assert.throws(() => d2.applySnapshotAccepted(otherSnap, svcKey.jwk, resumed, NOW), (e) => e.code === 'DENYLIST_EPOCH');
    resumed.rebootstrap();
    assert.equal(resumed.rebootstrapping, true);
    d2.applySnapshotAccepted(otherSnap, svcKey.jwk, resumed, NOW);
    assert.deepEqual([resumed.highWaterMark, resumed.rebootstrapping, d2.seq], [markOf(other.epoch, 9), false, 9]);
    for (const bad of ['', '5', 'tg1:00:1', `tg1:${'0'.repeat(32)}:x`]) {
      assert.throws(() => new Acceptance(10, bad), (e) => e.code === 'INVALID_ARGUMENT', bad);
    }
    assert.throws(() => new Acceptance(-1, null), (e) => e.code === 'INVALID_ARGUMENT');
    const later = await snapshot(svcKey, 9);
    assert.throws(() => d.applySnapshotAccepted(later, svcKey.jwk, acc, Number.NaN), (e) => e.code === 'INVALID_ARGUMENT');
  });
});

/** The high-water mark's text for `epoch` (bytes) at `seq`. */
function markOf(epoch, seq) {
  return `tg1:${Buffer.from(epoch).toString('hex')}:${seq}`;
}

/**
 * A stand-in service: snapshot at `floor`, events appended by the test, long-poll. Every
 * message is stamped with `state.epoch` and the creation time `state.clock()` (ms; the
 * test's clock when it gives one) minus `state.age` seconds.
 */
async function fakeService({ clock = Date.now } = {}) {
  const state = { floor: 0, events: [], head: 0, requests: [], waiters: [], gone: false, clock, age: 0, epoch: EPOCH };
  const stampOf = () => ({ epoch: state.epoch, created: Math.floor(state.clock() / 1000) - state.age });
  const wake = () => {
    for (const w of state.waiters.splice(0)) w();
  };
  const srv = await listen(async (req, res) => {
    const u = new URL(req.url, 'http://x');
    state.requests.push(u.pathname + u.search);
    if (state.down) {
      res.writeHead(503).end('down');
      return;
    }
    if (req.headers.authorization !== 'Bearer read-key') {
      res.writeHead(401).end();
      return;
    }
    if (u.pathname === '/v1/denylist/key') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(svcKey.jwk));
      return;
    }
    const since = u.searchParams.get('since');
    if (since !== null && state.unsigned !== undefined) {
      res.writeHead(state.unsigned).end();
      return;
    }
    if (since === null) {
      // Snapshots carry no entries here (fingerprints need the service's SipHash key), so
      // the stand-in's snapshot is taken at seq 0 and events arrive as deltas.
      res.writeHead(200).end(await snapshot(svcKey, state.floor, stampOf()));
      return;
    }
    const from = Number(since);
    if (state.gone || from < state.floor) {
      state.gone = false;
      res.writeHead(410).end();
      return;
    }
    const wait = Number(u.searchParams.get('wait') ?? 0);
    if (from >= state.head && wait > 0) {
      await new Promise((resolve) => {
        const t = setTimeout(resolve, wait * 1000);
        state.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
        req.on('close', resolve);
      });
    }
    const events = state.events.filter((e) => e.seq > from);
    res.writeHead(200).end(await delta(svcKey, from, Math.max(from, state.head), events, stampOf()));
  });
  return {
    ...srv,
    state,
    wake,
    publish(event) {
      state.head += 1;
      state.events.push({ ...event, seq: state.head });
      wake();
      return state.head;
    },
  };
}

describe('RemoteDenylist (stand-in service)', () => {
  let svc;
  before(async () => {
    svc = await fakeService();
  });
  after(() => svc.close());

  it('snapshot, then long-polled deltas; revocations arrive without polling delay', async () => {
    const remote = new RemoteDenylist({ url: svc.url, token: 'read-key', publicJwk: svcKey.jwk, waitSeconds: 5 });
    await remote.start();
    try {
      assert.equal(remote.seq, 0);
      assert.equal(remote.stale, false);
      const token = await sign(es, { exp: NOW + 60, sid: 'sess-1' });
      assert.equal(await reason(token, remote), 'accept');
      const seq = svc.publish({ kind: 'sid', id: 'sess-1', exp: NOW + 60 });
      await remote.waitForSeq(seq, { timeoutMs: 4000 });
      assert.equal(await reason(token, remote), 'revoked');
      assert.ok(!svc.state.requests.includes('/v1/denylist/key'), 'the pinned key is used; the service is never asked for it');
    } finally {
      await remote.stop();
    }
  });

  it('refuses configurations without a pinned key or with plain http beyond loopback', () => {
    const refused = (opts, pattern) =>
      assert.throws(
        () => new RemoteDenylist(opts),
        (e) => e instanceof TollgateError && e.code === 'INVALID_OPTIONS' && pattern.test(e.message),
      );
    // No trust on first use: publicJwk is required.
    refused({ url: svc.url, token: 'read-key' }, /publicJwk is required/);
    refused({ url: svc.url, token: 'read-key', publicJwk: null }, /publicJwk is required/);
    // http:// only for loopback; https:// elsewhere.
    for (const url of ['http://revocation.example', 'http://10.0.0.7:8790', 'http://127.evil.example', 'http://[::2]:80']) {
      refused({ url, token: 'k', publicJwk: svcKey.jwk }, /must use https/);
    }
    refused({ url: 'ftp://127.0.0.1/', token: 'k', publicJwk: svcKey.jwk }, /unsupported scheme/);
    refused({ url: 'not a url', token: 'k', publicJwk: svcKey.jwk }, /not a URL/);
    for (const url of ['http://127.0.0.1:8790', 'http://127.1.2.3', 'http://localhost:1', 'http://[::1]:8790', 'https://revocation.example']) {
      assert.ok(new RemoteDenylist({ url, token: 'k', publicJwk: svcKey.jwk }));
    }
  });

  it('410 and gaps lead to a fresh snapshot', async () => {
    const remote = new RemoteDenylist({ url: svc.url, token: 'read-key', publicJwk: svcKey.jwk });
    await remote.sync();
    const before = svc.state.requests.length;
    svc.state.gone = true;
    await remote.sync();
    const asked = svc.state.requests.slice(before);
    assert.match(asked[0], /since=/);
    assert.equal(asked[1], '/v1/denylist?wire=2', 'a snapshot after 410 (wire format 2)');
  });

  it('stale under fail-closed refuses; fail-open verifies; errors are reported', async () => {
    const clock = manualClock();
    svc.state.clock = clock;
    const errors = [];
    const remote = new RemoteDenylist({
      url: svc.url,
      token: 'read-key',
      publicJwk: svcKey.jwk,
      clock,
      maxStalenessSeconds: 10,
      onError: (e) => errors.push(e),
    });
    const token = await sign(es, { exp: NOW + 60 });
    await assert.rejects(verifier.verify(token, { now: NOW, denylist: remote }), (e) => e.code === 'DENYLIST_STALE');
    await remote.sync();
    assert.equal(await reason(token, remote), 'accept');
    clock.advance(10_001);
    assert.equal(remote.stale, true);
    assert.equal((await verifier.check(token, { now: NOW, denylist: remote })).code, 'DENYLIST_STALE');
    const open = new RemoteDenylist({ url: svc.url, token: 'read-key', publicJwk: svcKey.jwk, failMode: 'open' });
    assert.equal(await reason(token, open), 'accept');

    const unauthorised = new RemoteDenylist({ url: svc.url, token: 'wrong', publicJwk: svcKey.jwk, onError: (e) => errors.push(e), retryMinMs: 10 });
    await assert.rejects(unauthorised.start(), (e) => e.code === 'DENYLIST_FETCH' && /401/.test(e.message));
    svc.state.clock = Date.now;
  });

  it('an unsigned answer to a delta request (204, 304, empty 200) does not make the replica fresh', async () => {
    const clock = manualClock();
    const svc3 = await fakeService({ clock });
    const remote = new RemoteDenylist({ url: svc3.url, token: 'read-key', publicJwk: svcKey.jwk, clock, maxStalenessSeconds: 10 });
    try {
      await remote.sync(); // snapshot
      await remote.sync(); // a signed delta
      assert.equal(remote.stale, false);
      clock.advance(10_001);
      assert.equal(remote.stale, true);
      for (const status of [204, 304, 200]) {
        svc3.state.unsigned = status;
        await assert.rejects(remote.sync(), (e) => e instanceof TollgateError, `status ${status}`);
        assert.equal(remote.stale, true, `status ${status}`);
      }
      svc3.state.unsigned = undefined;
      await remote.sync();
      assert.equal(remote.stale, false, 'a signed delta makes it fresh again');
    } finally {
      await svc3.close();
    }
  });

  it('a snapshot behind the replica is refused, and nothing more is taken from that service', async () => {
    const svc4 = await fakeService();
    const remote = new RemoteDenylist({ url: svc4.url, token: 'read-key', publicJwk: svcKey.jwk });
    try {
      await remote.sync(); // snapshot at 0
      svc4.publish({ kind: 'jti', id: 'r1', exp: NOW + 60 });
      svc4.publish({ kind: 'jti', id: 'r2', exp: NOW + 60 });
      await remote.sync(); // delta to 2
      assert.equal(remote.seq, 2);
      svc4.state.gone = true; // 410, then the stand-in's snapshot at seq 0: behind the replica
      await assert.rejects(remote.sync(), (e) => e.code === 'DENYLIST_BACKWARDS');
      const asked = svc4.state.requests.length;
      await assert.rejects(remote.sync(), (e) => e.code === 'DENYLIST_BACKWARDS');
      assert.equal(svc4.state.requests.length, asked, 'no further request to the service');
      assert.equal(remote.seq, 2, 'the replica keeps what it had');
      assert.equal(await reason(await sign(es, { exp: NOW + 60, jti: 'r2' }), remote), 'revoked');
    } finally {
      await svc4.close();
    }
  });

  it('a stored high-water mark: a restarted replica refuses a snapshot behind it, unless rebootstrapped', async () => {
    const svc5 = await fakeService();
    const stored = { value: null, saves: [] };
    const store = {
      load: async () => stored.value,
      save: async (mark) => {
        stored.saves.push(mark);
        stored.value = mark;
      },
    };
    try {
      // First life: the replica follows the service to seq 3; each new seq is saved.
      const first = new RemoteDenylist({ url: svc5.url, token: 'read-key', publicJwk: svcKey.jwk, highWaterMark: store });
      await first.sync();
      for (const id of ['h1', 'h2', 'h3']) svc5.publish({ kind: 'jti', id, exp: NOW + 60 });
      await first.sync();
      assert.equal(first.seq, 3);
      assert.equal(stored.value, markOf(EPOCH, 3), 'the mark is the epoch and the sequence');
      assert.equal(first.highWaterMark, stored.value);
      assert.deepEqual(stored.saves, [markOf(EPOCH, 0), markOf(EPOCH, 3)], 'saved when it moves, not on every exchange');
      // The service is rolled back (restored from an old backup): its snapshot is at 1.
      svc5.state.floor = 1;
      svc5.state.head = 1;
      svc5.state.events = svc5.state.events.slice(0, 1);
      // A restarted process (a new RemoteDenylist, an empty replica) refuses it.
      const restarted = new RemoteDenylist({ url: svc5.url, token: 'read-key', publicJwk: svcKey.jwk, highWaterMark: store });
      await assert.rejects(restarted.start(), (e) => e instanceof TollgateError && e.code === 'DENYLIST_BACKWARDS' && e.message.includes(`high-water mark ${markOf(EPOCH, 3)}`));
      assert.equal(restarted.seq, 0);
      assert.equal(restarted.stale, true, 'without data it stays stale: fail mode decides');
      await assert.rejects(verifier.verify(await sign(es, { exp: NOW + 60 }), { now: NOW, denylist: restarted }), (e) => e.code === 'DENYLIST_STALE');
      assert.equal(stored.value, markOf(EPOCH, 3), 'the mark is not lowered');
      // Without a mark the same snapshot is taken (what a plain replica does on first start).
      const plain = new RemoteDenylist({ url: svc5.url, token: 'read-key', publicJwk: svcKey.jwk });
      await plain.sync();
      assert.equal(plain.seq, 1);
      // Asked for by name: rebootstrap accepts the service's snapshot and lowers the mark.
      const again = new RemoteDenylist({ url: svc5.url, token: 'read-key', publicJwk: svcKey.jwk, highWaterMark: store, rebootstrap: true });
      await again.sync();
      assert.equal(again.seq, 1);
      assert.equal(stored.value, markOf(EPOCH, 1));
      // A mark that cannot be read fails closed.
      const broken = new RemoteDenylist({ url: svc5.url, token: 'read-key', publicJwk: svcKey.jwk, highWaterMark: { load: async () => { throw new Error('disk gone'); }, save: async () => {} } });
      await assert.rejects(broken.sync(), (e) => e.code === 'DENYLIST_FETCH' && /disk gone/.test(e.message));
      assert.throws(() => new RemoteDenylist({ url: svc5.url, publicJwk: svcKey.jwk, highWaterMark: {} }), (e) => e.code === 'INVALID_OPTIONS');
    } finally {
      await svc5.close();
    }
  });

  it('a replayed old snapshot or delta is refused by its signed age, and does not make the replica fresh', async () => {
    const clock = manualClock();
    const svc6 = await fakeService({ clock });
    try {
      // Someone on the path replays messages the service signed 11 s ago (bound 10 s).
      svc6.state.age = 11;
      const remote = new RemoteDenylist({ url: svc6.url, token: 'read-key', publicJwk: svcKey.jwk, clock, maxStalenessSeconds: 10 });
      await assert.rejects(remote.sync(), (e) => e instanceof TollgateError && e.code === 'DENYLIST_TOO_OLD');
      assert.equal(remote.stale, true);
      assert.equal(remote.highWaterMark, null);
      // At the bound exactly it is taken; a later replayed delta is refused, and the
      // replica goes stale on time instead of being refreshed by it.
      svc6.state.age = 10;
      await remote.sync();
      assert.equal(remote.stale, false);
      svc6.publish({ kind: 'jti', id: 'old', exp: NOW + 60 });
      clock.advance(10_001);
      svc6.state.age = 11;
      await assert.rejects(remote.sync(), (e) => e.code === 'DENYLIST_TOO_OLD');
      assert.equal(remote.stale, true);
      assert.equal(remote.seq, 0, 'the old delta was not applied');
      // Not final: a fresh message is taken.
      svc6.state.age = 0;
      await remote.sync();
      assert.deepEqual([remote.seq, remote.stale], [1, false]);
      // A message from the future (the service's clock ahead) is fine.
      svc6.state.age = -30;
      svc6.publish({ kind: 'jti', id: 'ahead', exp: NOW + 60 });
      await remote.sync();
      assert.equal(remote.seq, 2);
    } finally {
      await svc6.close();
    }
  });

  it('another epoch of the service is refused for good, in this process and after a restart, unless rebootstrapped', async () => {
    const svc7 = await fakeService();
    const stored = { value: null };
    const store = { load: () => stored.value, save: (mark) => void (stored.value = mark) };
    const other = new Uint8Array(16).fill(0x42);
    try {
      const first = new RemoteDenylist({ url: svc7.url, token: 'read-key', publicJwk: svcKey.jwk, highWaterMark: store });
      await first.sync();
      svc7.publish({ kind: 'jti', id: 'e1', exp: NOW + 60 });
      await first.sync();
      assert.equal(first.epoch, 'e1'.repeat(16));
      assert.equal(stored.value, markOf(EPOCH, 1));
      // The service's data directory is replaced: a new epoch, its log starting again.
      Object.assign(svc7.state, { epoch: other, floor: 5, head: 5, events: [] });
      // A delta from the new epoch (no 410 first) is refused, and that is final.
      svc7.state.floor = 0;
      await assert.rejects(first.sync(), (e) => e.code === 'DENYLIST_EPOCH');
      svc7.state.floor = 5;
      const asked = svc7.state.requests.length;
      await assert.rejects(first.sync(), (e) => e.code === 'DENYLIST_EPOCH');
      assert.equal(svc7.state.requests.length, asked, 'no further request to the service');
      assert.equal(await reason(await sign(es, { exp: NOW + 60, jti: 'e1' }), first), 'revoked', 'the replica keeps what it had');
      // A restarted process resuming from the stored mark refuses the new epoch's snapshot.
      const restarted = new RemoteDenylist({ url: svc7.url, token: 'read-key', publicJwk: svcKey.jwk, highWaterMark: store });
      await assert.rejects(restarted.start(), (e) => e.code === 'DENYLIST_EPOCH' && /rebootstrap: true/.test(e.message));
      assert.equal(restarted.stale, true);
      assert.equal(stored.value, markOf(EPOCH, 1), 'the mark is kept');
      // Asked for by name: the new epoch's snapshot is taken and its mark saved.
      const again = new RemoteDenylist({ url: svc7.url, token: 'read-key', publicJwk: svcKey.jwk, highWaterMark: store, rebootstrap: true });
      await again.sync();
      assert.deepEqual([again.seq, again.epoch, stored.value], [5, '42'.repeat(16), markOf(other, 5)]);
      svc7.publish({ kind: 'jti', id: 'e2', exp: NOW + 60 });
      await again.sync();
      assert.equal(stored.value, markOf(other, 6));
      // Only the next snapshot: a later one from the old epoch is refused again.
      svc7.state.epoch = EPOCH;
      svc7.state.gone = true;
      await assert.rejects(again.sync(), (e) => e.code === 'DENYLIST_EPOCH');
    } finally {
      await svc7.close();
    }
  });

  it('the mark persists across instances; a bare number from an older version is read; an unreadable mark fails closed', async () => {
    const svc8 = await fakeService();
    try {
      for (let i = 0; i < 4; i++) svc8.publish({ kind: 'jti', id: `m${i}`, exp: NOW + 60 });
      svc8.state.floor = 4;
      // A mark saved by an older version (a bare sequence number): the snapshot must reach it.
      const stored = { value: 7 };
      const store = { load: async () => stored.value, save: async (mark) => void (stored.value = mark) };
      const old = new RemoteDenylist({ url: svc8.url, token: 'read-key', publicJwk: svcKey.jwk, highWaterMark: store });
      await assert.rejects(old.sync(), (e) => e.code === 'DENYLIST_BACKWARDS' && /\(7\)/.test(e.message));
      stored.value = 4;
      const upgraded = new RemoteDenylist({ url: svc8.url, token: 'read-key', publicJwk: svcKey.jwk, highWaterMark: store });
      await upgraded.sync();
      assert.equal(stored.value, markOf(EPOCH, 4), 'saved in the new form');
      // A second instance (another process or isolate) resumes from it.
      svc8.state.floor = 3; // a snapshot one behind the mark
      const second = new RemoteDenylist({ url: svc8.url, token: 'read-key', publicJwk: svcKey.jwk, highWaterMark: store });
      await assert.rejects(second.sync(), (e) => e.code === 'DENYLIST_BACKWARDS');
      svc8.state.floor = 4;
      const third = new RemoteDenylist({ url: svc8.url, token: 'read-key', publicJwk: svcKey.jwk, highWaterMark: store });
      await third.sync();
      assert.equal(third.seq, 4);
      for (const bad of ['tg1:zz:1', `tg2:${'00'.repeat(16)}:1`, -1, 1.5, {}, true]) {
        const r = new RemoteDenylist({ url: svc8.url, token: 'read-key', publicJwk: svcKey.jwk, highWaterMark: { load: () => bad, save: () => {} } });
        await assert.rejects(r.sync(), (e) => e.code === 'DENYLIST_FETCH' && /highWaterMark\.load\(\) gave/.test(e.message), JSON.stringify(bad));
        assert.equal(r.stale, true);
      }
    } finally {
      await svc8.close();
    }
  });

  it('keeps retrying with backoff while the service is down, and catches up', async () => {
    const svc2 = await fakeService();
    const errors = [];
    const remote = new RemoteDenylist({
      url: svc2.url,
      token: 'read-key',
      publicJwk: svcKey.jwk,
      waitSeconds: 1,
      retryMinMs: 10,
      retryMaxMs: 40,
      onError: (e) => errors.push(e),
    });
    await remote.start();
    try {
      svc2.state.down = true;
      svc2.wake();
      await waitFor(() => errors.length >= 3, { what: 'three failed attempts reported' });
      assert.ok(errors.every((e) => e instanceof TollgateError && e.code === 'DENYLIST_FETCH'));
      svc2.state.down = false;
      const seq = svc2.publish({ kind: 'jti', id: 'late', exp: NOW + 60 });
      await remote.waitForSeq(seq, { timeoutMs: 5000 });
      assert.equal(await reason(await sign(es, { exp: NOW + 60, jti: 'late' }), remote), 'revoked');
    } finally {
      await remote.stop();
      await svc2.close();
    }
  });
});
