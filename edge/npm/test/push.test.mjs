// RemoteDenylist in push mode (transport "hub-ws") against an in-process stand-in of
// the revocation hub's WebSocket (the `ws` package's server on 127.0.0.1), speaking
// the protocol of edge/hub/src/push.rs with messages encoded and signed independently
// (test/wire.mjs). The client is the `ws` package's WebSocket, injected (Node 20 has no
// global one); the real hub in workerd, with Node's global WebSocket, is exercised in
// tests/hub.test.mjs.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import { NOW, keyPair, manualClock, pkg, sign, waitFor } from './helpers.mjs';
import { delta, serviceKey, snapshot } from './wire.mjs';

const { Verifier, RemoteDenylist, TollgateError } = pkg;

let es, verifier, svcKey, otherKey;

before(async () => {
  es = await keyPair('ES256', 'k1');
  verifier = new Verifier({ jwks: { keys: [es.jwk] } });
  svcKey = await serviceKey();
  otherKey = await serviceKey();
});

async function reason(token, denylist) {
  const r = await verifier.check(token, { now: NOW, denylist });
  return r.ok ? 'accept' : r.reason;
}

/**
 * A stand-in hub: records every connection's Authorization header and every ask;
 * `answer(sock, since)` (replaceable per test) answers an ask; by default the snapshot
 * at 0 then the events after `since`, or a heartbeat (created by `clock`) at the head.
 */
async function fakeHub({ clock }) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const hub = {
    url: `ws://127.0.0.1:${wss.address().port}/__tollgate/hub/default/ws`,
    auth: [],
    asks: [],
    sockets: [],
    closes: [],
    events: [],
    head: 0,
    created: () => Math.floor(clock() / 1000),
    async catchUp(since) {
      const out = [];
      let from = since;
      if (from === null) {
        out.push(await snapshot(svcKey, 0, { created: hub.created() }));
        from = 0;
      }
      const events = hub.events.filter((e) => e.seq > from);
      out.push(await delta(svcKey, from, Math.max(from, hub.head), events, { created: hub.created() }));
      return out;
    },
    async answer(sock, since) {
      for (const m of await hub.catchUp(since)) sock.send(m);
    },
    /** Appends an event and pushes its delta to every socket, from `head` before it. */
    async publish(event) {
      const from = hub.head;
      hub.head += 1;
      const e = { ...event, seq: hub.head };
      hub.events.push(e);
      const m = await delta(svcKey, from, hub.head, [e], { created: hub.created() });
      for (const s of hub.sockets) if (s.readyState === WebSocket.OPEN) s.send(m);
      return hub.head;
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of wss.clients) s.terminate();
        wss.close(() => resolve());
      }),
  };
  wss.on('connection', (sock, req) => {
    hub.auth.push(req.headers.authorization);
    hub.sockets.push(sock);
    sock.on('message', (data, isBinary) => {
      const ask = isBinary ? null : JSON.parse(data.toString());
      hub.asks.push(ask?.since);
      hub.answer(sock, ask?.since ?? null);
    });
    sock.on('close', (code) => hub.closes.push(code));
  });
  return hub;
}

function subscriber(hub, extra = {}) {
  const errors = [];
  const remote = new RemoteDenylist({
    url: hub.url,
    transport: 'hub-ws',
    token: 'hub-read-key',
    publicJwk: svcKey.jwk,
    WebSocket,
    retryMinMs: 20,
    retryMaxMs: 100,
    onError: (e) => errors.push(e),
    ...extra,
  });
  return { remote, errors };
}

describe('RemoteDenylist push (stand-in hub)', () => {
  it('snapshot then deltas: asked once, every change pushed unasked', async () => {
    const clock = manualClock();
    const hub = await fakeHub({ clock });
    const { remote, errors } = subscriber(hub, { clock, pingSeconds: 60 });
    try {
      hub.events.push({ seq: 1, kind: 'jti', id: 'early', exp: NOW + 60 });
      hub.head = 1;
      await remote.start();
      assert.equal(remote.transport, 'hub-ws');
      assert.deepEqual(hub.auth, ['Bearer hub-read-key']);
      assert.deepEqual(hub.asks, [null], 'the first ask holds nothing');
      await remote.waitForSeq(1, { timeoutMs: 5000 });
      assert.equal(await reason(await sign(es, { exp: NOW + 60, jti: 'early' }), remote), 'revoked');
      const token = await sign(es, { exp: NOW + 60, sid: 'sess-push' });
      assert.equal(await reason(token, remote), 'accept');
      const seq = await hub.publish({ kind: 'sid', id: 'sess-push', exp: NOW + 60 });
      await remote.waitForSeq(seq, { timeoutMs: 5000 });
      assert.equal(await reason(token, remote), 'revoked');
      assert.deepEqual(hub.asks, [null], 'pushed without another ask');
      assert.deepEqual(errors, []);
    } finally {
      await remote.stop();
      await hub.close();
    }
  });

  it('pings keep it fresh only through signed heartbeats: an old heartbeat refreshes nothing', async () => {
    const clock = manualClock();
    const hub = await fakeHub({ clock });
    const { remote, errors } = subscriber(hub, { clock, maxStalenessSeconds: 10, pingSeconds: 0.15 });
    try {
      await remote.start();
      assert.equal(remote.stale, false);
      // Time passes past the bound: stale until a heartbeat signed now comes.
      clock.advance(11_000);
      assert.equal(remote.stale, true);
      const asked = hub.asks.length;
      await waitFor(() => !remote.stale, { what: 'a heartbeat answering a ping' });
      assert.ok(hub.asks.length > asked, 'the ping is an ask');
      assert.ok(hub.asks.slice(1).every((s) => s === 0), `pings carry the sequence held: ${hub.asks}`);
      // The hub answers pings with a heartbeat signed long ago (a replay): refused, the
      // replica goes stale although the socket is open and answering.
      const old = await delta(svcKey, 0, 0, [], { created: Math.floor(clock() / 1000) });
      hub.answer = (sock) => sock.send(old);
      clock.advance(11_000);
      await waitFor(() => errors.some((e) => e.code === 'DENYLIST_TOO_OLD'), { what: 'an old heartbeat refused' });
      assert.equal(remote.stale, true);
      assert.ok(errors.every((e) => e instanceof TollgateError));
    } finally {
      await remote.stop();
      await hub.close();
    }
  });

  it('a catch-up of messages signed long ago is history: applied, fresh only with a recent heartbeat', async () => {
    const clock = manualClock();
    const hub = await fakeHub({ clock });
    // The hub kept the snapshot and a delta from an hour ago; its heartbeat is signed now.
    const hourAgo = { created: Math.floor(clock() / 1000) - 3600 };
    const e = { seq: 1, kind: 'jti', id: 'old-revocation', exp: NOW + 60 };
    let heartbeat = true;
    hub.answer = async (sock, since) => {
      if (since === null) {
        sock.send(await snapshot(svcKey, 0, hourAgo));
        sock.send(await delta(svcKey, 0, 1, [e], hourAgo));
      }
      if (heartbeat) sock.send(await delta(svcKey, 1, 1, [], { created: hub.created() }));
    };
    const { remote, errors } = subscriber(hub, { clock, maxStalenessSeconds: 10, pingSeconds: 60 });
    try {
      await remote.start();
      assert.equal(remote.stale, false, 'fresh from the heartbeat');
      assert.equal(remote.seq, 1);
      assert.equal(await reason(await sign(es, { exp: NOW + 60, jti: 'old-revocation' }), remote), 'revoked');
      assert.deepEqual(errors, [], 'history is not an error');
    } finally {
      await remote.stop();
    }

    // Only old messages (the signer has not reached the hub for an hour): the history
    // is applied, the replica stays stale, and start() rejects within the bound.
    heartbeat = false;
    const old = subscriber(hub, { clock, maxStalenessSeconds: 1, pingSeconds: 60 });
    try {
      const t0 = performance.now();
      await assert.rejects(old.remote.start(), (err) => err instanceof TollgateError && err.code === 'DENYLIST_TOO_OLD');
      assert.ok(performance.now() - t0 < 5000);
      assert.equal(old.remote.seq, 1, 'the history was applied');
      assert.equal(old.remote.stale, true);
      assert.equal((await verifier.check(await sign(es, { exp: NOW + 60 }), { now: NOW, denylist: old.remote })).code, 'DENYLIST_STALE');
      // An old heartbeat at the head adds nothing: refused at once.
      hub.answer = async (sock, since) => {
        if (since === null) sock.send(await snapshot(svcKey, 0, hourAgo));
        sock.send(await delta(svcKey, 0, 0, [], hourAgo));
      };
      const replay = subscriber(hub, { clock, maxStalenessSeconds: 10, pingSeconds: 60 });
      await assert.rejects(replay.remote.start(), (err) => err.code === 'DENYLIST_TOO_OLD');
      assert.equal(replay.remote.stale, true);
    } finally {
      await hub.close();
    }
  });

  it('a gap or a bad signature is refused and answered by an ask with the sequence held', async () => {
    const clock = manualClock();
    const hub = await fakeHub({ clock });
    const { remote, errors } = subscriber(hub, { clock, pingSeconds: 60 });
    try {
      await remote.start();
      await hub.publish({ kind: 'jti', id: 'j1', exp: NOW + 60 });
      await hub.publish({ kind: 'jti', id: 'j2', exp: NOW + 60 });
      await remote.waitForSeq(2, { timeoutMs: 5000 });
      const sock = hub.sockets[0];
      // A delta (5, 6] to a replica at 2: a gap.
      hub.events.push({ seq: 3, kind: 'jti', id: 'j3', exp: NOW + 60 }, { seq: 6, kind: 'jti', id: 'j6', exp: NOW + 60 });
      hub.head = 6;
      sock.send(await delta(svcKey, 5, 6, [hub.events.at(-1)], { created: NOW }));
      await waitFor(() => errors.some((e) => e.code === 'DENYLIST_GAP'), { what: 'the gap reported' });
      await waitFor(() => remote.seq === 6, { what: 'the re-ask to bring the replica to 6' });
      assert.deepEqual(hub.asks, [null, 2], 'asked again with the sequence held');
      assert.equal(await reason(await sign(es, { exp: NOW + 60, jti: 'j3' }), remote), 'revoked');
      // A delta signed by another key: refused, the replica stays, the re-ask fetches the real one.
      hub.head = 7;
      hub.events.push({ seq: 7, kind: 'jti', id: 'j7', exp: NOW + 60 });
      sock.send(await delta(otherKey, 6, 7, [hub.events.at(-1)], { created: NOW }));
      await waitFor(() => errors.some((e) => e.code === 'DENYLIST_SIGNATURE'), { what: 'the bad signature reported' });
      await waitFor(() => remote.seq === 7, { what: 'the re-ask to bring the real delta' });
      assert.deepEqual(hub.asks, [null, 2, 6]);
      assert.ok(errors.every((e) => e instanceof TollgateError), errors.map(String).join('; '));
    } finally {
      await remote.stop();
      await hub.close();
    }
  });

  it('a socket lost is reopened with backoff and resumes from the sequence held', async () => {
    const clock = manualClock();
    const hub = await fakeHub({ clock });
    const { remote, errors } = subscriber(hub, { clock, pingSeconds: 60 });
    try {
      await remote.start();
      await hub.publish({ kind: 'jti', id: 'r1', exp: NOW + 60 });
      await remote.waitForSeq(1, { timeoutMs: 5000 });
      hub.sockets[0].terminate();
      await waitFor(() => hub.sockets.length === 2 && hub.asks.length === 2, { what: 'a reconnection and its ask' });
      assert.deepEqual(hub.asks, [null, 1], 'the new socket asks from the sequence held');
      assert.ok(errors.some((e) => e.code === 'DENYLIST_FETCH' && /closed/.test(e.message)), 'the loss is reported');
      const seq = await hub.publish({ kind: 'jti', id: 'r2', exp: NOW + 60 });
      await remote.waitForSeq(seq, { timeoutMs: 5000 });
      assert.equal(await reason(await sign(es, { exp: NOW + 60, jti: 'r2' }), remote), 'revoked');
    } finally {
      await remote.stop();
      await hub.close();
    }
  });

  it('error frames and frames that are not messages go to onError as TollgateErrors, then it asks again', async () => {
    const clock = manualClock();
    const hub = await fakeHub({ clock });
    const { remote, errors } = subscriber(hub, { clock, pingSeconds: 60 });
    try {
      await remote.start();
      const sock = hub.sockets[0];
      sock.send(JSON.stringify({ error: 'rate_limited', detail: 'asks are answered at most every 100 ms' }));
      sock.send('not json');
      sock.send(Buffer.from('XYZ\x02 not a message'));
      sock.send(Buffer.from('TGD\x02 truncated'));
      await waitFor(() => errors.length >= 4, { what: 'four errors reported' });
      assert.ok(errors.every((e) => e instanceof TollgateError), errors.map(String).join('; '));
      assert.equal(errors[0].code, 'DENYLIST_FETCH');
      assert.equal(errors[0].kind, 'rate_limited');
      assert.equal(errors[0].detail, 'asks are answered at most every 100 ms');
      assert.equal(errors[1].code, 'DENYLIST_MALFORMED');
      assert.equal(errors[2].code, 'DENYLIST_MALFORMED');
      assert.equal(errors[3].code, 'DENYLIST_MALFORMED');
      await waitFor(() => hub.asks.length >= 2, { what: 'an ask after the errors' });
      assert.equal(hub.asks[1], 0);
      assert.equal(remote.seq, 0);
    } finally {
      await remote.stop();
      await hub.close();
    }
  });

  it('a snapshot behind the replica stops it: no more asks', async () => {
    const clock = manualClock();
    const hub = await fakeHub({ clock });
    const { remote, errors } = subscriber(hub, { clock, pingSeconds: 0.15 });
    try {
      await remote.start();
      await hub.publish({ kind: 'jti', id: 'b1', exp: NOW + 60 });
      await remote.waitForSeq(1, { timeoutMs: 5000 });
      hub.sockets[0].send(await snapshot(svcKey, 0, { created: NOW }));
      await waitFor(() => errors.some((e) => e.code === 'DENYLIST_BACKWARDS'), { what: 'the snapshot refused' });
      await waitFor(() => hub.closes.length === 1, { what: 'the socket closed by the replica' });
      const asked = hub.asks.length;
      assert.equal(remote.seq, 1, 'the replica keeps what it had');
      // Pings would have come every 150 ms: none comes, and no reconnection either.
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(hub.asks.length, asked);
      assert.equal(hub.sockets.length, 1);
    } finally {
      await remote.stop();
      await hub.close();
    }
  });

  it('start() rejects on a refused first answer or connection; stop() closes the socket', async () => {
    const clock = manualClock();
    const hub = await fakeHub({ clock });
    try {
      hub.answer = (sock) => sock.send(JSON.stringify({ error: 'no_snapshot', detail: 'the hub holds no snapshot yet; ask again' }));
      const cold = subscriber(hub, { clock });
      await assert.rejects(cold.remote.start(), (e) => e.code === 'DENYLIST_FETCH' && e.kind === 'no_snapshot');
      await waitFor(() => hub.closes.length === 1, { what: 'the refused start to close its socket' });
      assert.equal(cold.remote.stale, true);

      const nowhere = subscriber({ url: 'ws://127.0.0.1:1/__tollgate/hub/default/ws' }, { clock });
      await assert.rejects(nowhere.remote.start(), (e) => e.code === 'DENYLIST_FETCH');

      hub.answer = async (sock, since) => {
        for (const m of await hub.catchUp(since)) sock.send(m);
      };
      const { remote } = subscriber(hub, { clock, pingSeconds: 0.15 });
      await remote.start();
      await remote.stop();
      await waitFor(() => hub.closes.length === 2, { what: 'the socket closed by stop()' });
      assert.equal(hub.closes[1], 1000);
      const asked = hub.asks.length;
      await new Promise((r) => setTimeout(r, 400));
      assert.equal(hub.asks.length, asked, 'no ping after stop()');
      assert.equal(hub.sockets.length, 2, 'no reconnection after stop()');
    } finally {
      await hub.close();
    }
  });

  it('refuses push configurations that cannot work or would send in the clear', async () => {
    const refused = (opts, pattern) =>
      assert.throws(
        () => new RemoteDenylist({ transport: 'hub-ws', token: 'k', publicJwk: svcKey.jwk, WebSocket, ...opts }),
        (e) => e instanceof TollgateError && e.code === 'INVALID_OPTIONS' && pattern.test(e.message),
        JSON.stringify(opts.url ?? opts),
      );
    for (const url of ['ws://hub.example/__tollgate/hub/t/ws', 'ws://10.0.0.7:8787/x', 'ws://127.evil.example/x']) {
      refused({ url }, /must use wss/);
    }
    refused({ url: 'https://hub.example/__tollgate/hub/t/ws' }, /unsupported scheme https: for transport hub-ws/);
    refused({ url: 'wss://hub.example/x', transport: 'carrier-pigeon' }, /expected "long-poll" or "hub-ws"/);
    refused({ url: 'wss://hub.example/x', WebSocket: 'no' }, /no WebSocket/);
    refused({ url: 'wss://hub.example/x', pingSeconds: 0.05 }, /pingSeconds/);
    refused({ url: 'wss://hub.example/x', publicJwk: undefined }, /publicJwk is required/);
    if (typeof globalThis.WebSocket !== 'function') refused({ url: 'wss://hub.example/x', WebSocket: undefined }, /no WebSocket/);
    // A ws:// URL without the transport: long-poll takes http(s) only, and says so.
    assert.throws(
      () => new RemoteDenylist({ url: 'wss://hub.example/x', token: 'k', publicJwk: svcKey.jwk }),
      (e) => e.code === 'INVALID_OPTIONS' && /transport: "hub-ws"/.test(e.message),
    );
    for (const url of ['wss://hub.example/__tollgate/hub/t/ws', 'ws://127.0.0.1:8787/x', 'ws://localhost:1/x', 'ws://[::1]:8787/x']) {
      const r = new RemoteDenylist({ url, transport: 'hub-ws', token: 'k', publicJwk: svcKey.jwk, WebSocket });
      assert.equal(r.transport, 'hub-ws');
      await assert.rejects(r.sync(), (e) => e.code === 'INVALID_OPTIONS' && /start\(\)/.test(e.message));
    }
    assert.equal(new RemoteDenylist({ url: 'https://r.example', publicJwk: svcKey.jwk }).transport, 'long-poll');
  });
});
