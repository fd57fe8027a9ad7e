// Denylist (local revocations, signed snapshots and deltas) and RemoteDenylist against
// an in-process stand-in of the revocation service's replication API, whose messages
// are encoded and signed independently (test/wire.mjs). The real service is exercised
// in revocation.test.mjs.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NOW, keyPair, listen, manualClock, pkg, sign, waitFor } from './helpers.mjs';
import { delta, serviceKey, snapshot } from './wire.mjs';

const { Verifier, Denylist, RemoteDenylist, TollgateError } = pkg;

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

/** A stand-in service: snapshot at `floor`, events appended by the test, long-poll. */
async function fakeService() {
  const state = { floor: 0, events: [], head: 0, requests: [], waiters: [], gone: false };
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
      res.writeHead(200).end(await snapshot(svcKey, state.floor));
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
    res.writeHead(200).end(await delta(svcKey, from, Math.max(from, state.head), events));
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
    const remote = new RemoteDenylist({ url: svc.url, token: 'read-key', waitSeconds: 5 });
    await remote.start();
    try {
      assert.equal(remote.seq, 0);
      assert.equal(remote.stale, false);
      const token = await sign(es, { exp: NOW + 60, sid: 'sess-1' });
      assert.equal(await reason(token, remote), 'accept');
      const seq = svc.publish({ kind: 'sid', id: 'sess-1', exp: NOW + 60 });
      await remote.waitForSeq(seq, { timeoutMs: 4000 });
      assert.equal(await reason(token, remote), 'revoked');
      assert.ok(svc.state.requests.includes('/v1/denylist/key'), 'fetched the key (no publicJwk pinned)');
    } finally {
      await remote.stop();
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
  });

  it('an unsigned answer to a delta request (204, 304, empty 200) does not make the replica fresh', async () => {
    const svc3 = await fakeService();
    const clock = manualClock();
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
