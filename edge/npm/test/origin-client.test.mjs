// RevocationClient and Refresher against the real revocation service on 127.0.0.1:
// every call and its log record, every error kind the client meets (kept as the
// service's `error`), no retry of a 4xx, a retry after a dropped answer appending
// exactly once (checked against the log by sequence number), 503 retried, refused
// and silent servers bounded by attempts and deadline, waitForEdge, and the refresh
// flow's four outcomes (ES256 and RS256) with the session's access token then refused
// through a RemoteDenylist.
//
// Faults are injected by a small HTTP relay on 127.0.0.1 in front of the service: it
// forwards each request to the service and, when told to, closes the client's
// connection instead of relaying the answer, or answers 503 itself.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pkg } from './helpers.mjs';
import { logRecords, serviceSkip, startService } from './service.mjs';

const { RevocationClient, Refresher, Issuer, RemoteDenylist, TollgateError, Verifier } = pkg;

const ISS = 'https://auth.example';
const OTHER_ISS = 'https://other.example';
const AUD = 'https://api.example';
const now = () => Math.floor(Date.now() / 1000);
const exp = () => now() + 3600;
const fast = { maxAttempts: 4, baseMs: 20, maxMs: 100 };

/** A relay in front of the service; `faults` is a queue of 'drop' | '503' for the next requests. */
async function relay(target) {
  const faults = [];
  const seen = [];
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks);
    seen.push({ method: req.method, url: req.url, body: body.toString(), idem: body.length ? JSON.parse(body).idempotency_key : undefined });
    const fault = faults.shift();
    if (fault === '503') {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '0' });
      res.end('{"error":"overloaded","detail":"injected"}');
      return;
    }
    const headers = { ...req.headers };
    delete headers.host;
    delete headers['content-length'];
    delete headers.connection;
    const answer = await fetch(target + req.url, { method: req.method, headers, body: body.length ? body : undefined });
    const bytes = Buffer.from(await answer.arrayBuffer());
    if (fault === 'drop') {
      // The service acted on the request; the client never hears about it.
      req.socket.destroy();
      return;
    }
    const out = {};
    answer.headers.forEach((v, k) => {
      if (k !== 'content-length' && k !== 'transfer-encoding' && k !== 'connection') out[k] = v;
    });
    res.writeHead(answer.status, out);
    res.end(bytes);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    faults,
    seen,
    close: () => new Promise((r) => server.close(r)),
  };
}

describe('RevocationClient against the real service', { skip: serviceSkip }, () => {
  let svc, proxy, client, admin;

  before(async () => {
    svc = await startService({
      keys: {
        origin: ['events:write', '--issuer', ISS],
        any: ['events:write', '--all-issuers'],
        read: ['denylist:read'],
        admin: ['admin'],
      },
    });
    admin = svc.keys.admin;
    proxy = await relay(svc.url);
    client = new RevocationClient({ url: proxy.url, apiKey: svc.keys.origin, readKey: svc.keys.read, retry: fast });
  });
  after(async () => {
    await proxy?.close();
    await svc?.stop();
  });

  it('every call appends its record; retries of the same start and rotation are duplicates', async () => {
    const sid = `s-${Date.now()}`;
    const started = await client.startSession({ sid, sub: 'alice', refreshJti: 'r1', exp: exp(), iss: ISS });
    assert.equal(started.status, 'started');
    assert.equal(started.duplicate, false);
    const again = await client.startSession({ sid, sub: 'alice', refreshJti: 'r1', exp: started.seq && exp(), iss: ISS });
    assert.equal(again.seq, started.seq);
    assert.equal(again.duplicate, true);
    const rot = await client.rotate({ sid, presentedJti: 'r1', nextJti: 'r2', exp: exp(), iss: ISS });
    assert.deepEqual({ ...rot, seq: 0 }, { outcome: 'rotated', seq: 0, duplicate: false, grace: false });
    assert.equal(rot.seq, started.seq + 1);
    const logout = await client.logout(sid, { iss: ISS });
    const tok = await client.revokeToken('jti-1', { iss: ISS, exp: exp() });
    const subj = await client.revokeSubject('alice', now(), { iss: ISS });
    const batch = await client.postBatch([
      { kind: 'revoke_token', jti: 'jti-2', iss: ISS },
      { kind: 'logout', sid: 'other-sid', iss: ISS },
    ]);
    const seqs = [logout, tok, subj, ...batch].map((a) => a.seq);
    assert.deepEqual(seqs, [rot.seq + 1, rot.seq + 2, rot.seq + 3, rot.seq + 4, rot.seq + 5]);
    assert.deepEqual([logout, tok, subj, ...batch].map((a) => a.kind), ['logout', 'revoke_token', 'revoke_subject', 'revoke_token', 'logout']);
    const records = await logRecords(svc, admin, started.seq);
    assert.deepEqual(records.map((r) => r.seq), [started.seq, ...Array.from({ length: 6 }, (_, i) => rot.seq + i)]);
    assert.deepEqual(records.map((r) => r.kind), ['session_start', 'rotation', 'logout', 'revoke_token', 'revoke_subject', 'revoke_token', 'logout']);
    // Default exp: now + 20 minutes; revoke_subject: max(before, now) + 20 minutes.
    const logoutRec = records.find((r) => r.seq === logout.seq);
    assert.ok(Math.abs(logoutRec.exp - (now() + 1200)) <= 5, JSON.stringify(logoutRec));
    // Idempotency keys: one per call, `<key>.<i>` in a batch.
    const posts = proxy.seen.filter((s) => s.url === '/v1/events');
    const batchBody = JSON.parse(posts.at(-1).body);
    const [k0, k1] = batchBody.events.map((e) => e.idempotency_key);
    assert.match(k0, /^[A-Za-z0-9_-]{22}\.0$/);
    assert.equal(k1, `${k0.slice(0, -2)}.1`);
    assert.equal(new Set(posts.map((p) => p.idem).filter(Boolean)).size, 3, 'three single posts, three keys');
  });

  it('rotate: an earlier token is reuse_detected and revokes the family', async () => {
    const sid = `s-reuse-${Date.now()}`;
    await client.startSession({ sid, sub: 'bob', refreshJti: 'a', exp: exp(), iss: ISS });
    await client.rotate({ sid, presentedJti: 'a', nextJti: 'b', exp: exp(), iss: ISS });
    await client.rotate({ sid, presentedJti: 'b', nextJti: 'c', exp: exp(), iss: ISS });
    const reuse = await client.rotate({ sid, presentedJti: 'a', nextJti: 'z', exp: exp(), iss: ISS });
    assert.equal(reuse.outcome, 'reuse_detected');
    assert.equal(typeof reuse.seq, 'number');
    const [rec] = await logRecords(svc, admin, reuse.seq);
    assert.equal(rec.kind, 'reuse_detected');
    assert.equal(rec.sid, sid);
    // The family is over: even its current token no longer rotates.
    await assert.rejects(client.rotate({ sid, presentedJti: 'c', nextJti: 'd', exp: exp(), iss: ISS }), (e) => e.code === 'SERVICE_ERROR' && e.status === 409);
  });

  it('every refusal keeps the service kind, and no 4xx is retried', async () => {
    const sid = `s-err-${Date.now()}`;
    await client.startSession({ sid, sub: 'carol', refreshJti: 'x1', exp: exp(), iss: ISS });
    const expectKind = async (promise, status, kind) => {
      const before = proxy.seen.length;
      await assert.rejects(promise, (e) => {
        assert.ok(e instanceof TollgateError);
        assert.equal(e.code, 'SERVICE_ERROR');
        assert.equal(e.status, status);
        assert.equal(e.kind, kind, e.message);
        assert.equal(typeof e.detail, 'string');
        return true;
      });
      assert.equal(proxy.seen.length - before, 1, `${kind}: sent once, not retried`);
    };
    const bad = new RevocationClient({ url: proxy.url, apiKey: 'not-a-key', retry: fast });
    await expectKind(bad.logout('s', { iss: ISS }), 401, 'unauthorized');
    const reader = new RevocationClient({ url: proxy.url, apiKey: svc.keys.read, retry: fast });
    await expectKind(reader.logout('s', { iss: ISS }), 403, 'forbidden');
    await expectKind(client.logout('s', { iss: OTHER_ISS }), 403, 'forbidden_issuer');
    await expectKind(client.revokeToken('j', { iss: ISS, exp: now() + 400 * 86_400 }), 400, 'bad_expiry');
    await expectKind(client.revokeToken('j', { iss: ISS, exp: Date.now() }), 400, 'bad_expiry');
    await expectKind(client.startSession({ sid, sub: 'mallory', refreshJti: 'y', exp: exp(), iss: ISS }), 409, 'session_exists');
    await expectKind(client.rotate({ sid: 'no-such', presentedJti: 'a', nextJti: 'b', exp: exp(), iss: ISS }), 404, 'unknown_session');
    await expectKind(client.rotate({ sid, presentedJti: 'never', nextJti: 'b', exp: exp(), iss: ISS }), 409, 'unknown_token');
    await expectKind(client.rotate({ sid, presentedJti: 'x1', nextJti: 'x1', exp: exp(), iss: ISS }), 409, 'jti_conflict');
    const anyIss = new RevocationClient({ url: proxy.url, apiKey: svc.keys.any, retry: fast });
    await expectKind(anyIss.rotate({ sid, presentedJti: 'x1', nextJti: 'x2', exp: exp(), iss: OTHER_ISS }), 409, 'issuer_mismatch');
    await client.logout(sid, { iss: ISS });
    await expectKind(client.rotate({ sid, presentedJti: 'x1', nextJti: 'x3', exp: exp(), iss: ISS }), 409, 'session_revoked');
    // Bad arguments never reach the service.
    const before = proxy.seen.length;
    await assert.rejects(client.logout(''), (e) => e.code === 'INVALID_OPTIONS');
    assert.throws(() => client.postBatch([]), (e) => e.code === 'INVALID_OPTIONS');
    await assert.rejects(client.post({ kind: 'rotation', sid: 's' }), (e) => e.code === 'INVALID_OPTIONS');
    assert.equal(proxy.seen.length, before);
  });

  it('a retry after a dropped answer appends exactly once (every kind of call)', async () => {
    const head = async () => (await logRecords(svc, admin, 1)).at(-1).seq;
    const sid = `s-drop-${Date.now()}`;
    const start = await head();

    proxy.faults.push('drop');
    const s = await client.startSession({ sid, sub: 'dave', refreshJti: 'd1', exp: exp(), iss: ISS });
    assert.equal(s.duplicate, true, 'the second attempt found the first one recorded');
    proxy.faults.push('drop');
    const r = await client.rotate({ sid, presentedJti: 'd1', nextJti: 'd2', exp: exp(), iss: ISS });
    assert.equal(r.outcome, 'rotated');
    assert.equal(r.duplicate, true);
    proxy.faults.push('drop', 'drop');
    const e = await client.revokeToken('dropped-jti', { iss: ISS });
    assert.equal(e.duplicate, true);
    proxy.faults.push('drop');
    const b = await client.postBatch([
      { kind: 'revoke_token', jti: 'b-1', iss: ISS },
      { kind: 'revoke_token', jti: 'b-2', iss: ISS },
    ]);
    assert.deepEqual(b.map((x) => x.duplicate), [true, true]);

    const records = (await logRecords(svc, admin, start + 1)).filter((x) => x.seq > start);
    assert.deepEqual(records.map((x) => x.seq), [start + 1, start + 2, start + 3, start + 4, start + 5], 'gap-free, one record per event');
    assert.deepEqual([s.seq, r.seq, e.seq, ...b.map((x) => x.seq)], [start + 1, start + 2, start + 3, start + 4, start + 5]);
    assert.deepEqual(records.map((x) => x.kind), ['session_start', 'rotation', 'revoke_token', 'revoke_token', 'revoke_token']);
    // The same idempotency key on every attempt of one call.
    const drops = proxy.seen.filter((x) => x.body.includes('dropped-jti'));
    assert.equal(drops.length, 3);
    assert.equal(new Set(drops.map((x) => x.idem)).size, 1);
  });

  it('503 is retried with backoff; the call succeeds once the service takes it', async () => {
    const before = proxy.seen.length;
    proxy.faults.push('503', '503');
    const a = await client.revokeToken('after-503', { iss: ISS });
    assert.equal(a.duplicate, false);
    assert.equal(proxy.seen.length - before, 3);
    // More 503s than attempts: the service's error, with how many attempts were made.
    proxy.faults.push('503', '503', '503', '503');
    await assert.rejects(client.revokeToken('never', { iss: ISS }), (e) => e.code === 'SERVICE_ERROR' && e.status === 503 && e.kind === 'overloaded' && e.attempts === 4);
    proxy.faults.length = 0;
  });

  it('refused connections and silent servers are bounded by attempts and deadline', async () => {
    const closed = net.createServer();
    await new Promise((r) => closed.listen(0, '127.0.0.1', r));
    const port = closed.address().port;
    await new Promise((r) => closed.close(r));
    const refused = new RevocationClient({ url: `http://127.0.0.1:${port}`, apiKey: 'k', retry: fast });
    await assert.rejects(refused.logout('s'), (e) => e.code === 'UNREACHABLE' && e.attempts === 4);

    const sockets = new Set();
    const silent = net.createServer((s) => sockets.add(s));
    await new Promise((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const c = new RevocationClient({ url: `http://127.0.0.1:${silent.address().port}`, apiKey: 'k', attemptTimeoutMs: 150, callTimeoutMs: 1000, retry: fast });
      const t0 = performance.now();
      await assert.rejects(c.logout('s'), (e) => e.code === 'DEADLINE' && e.attempts >= 1);
      const took = performance.now() - t0;
      assert.ok(took < 5000, `bounded (${took.toFixed(0)} ms)`);
      const short = new RevocationClient({ url: `http://127.0.0.1:${silent.address().port}`, apiKey: 'k', attemptTimeoutMs: 2000, callTimeoutMs: 300, retry: fast });
      await assert.rejects(short.logout('s'), (e) => e.code === 'DEADLINE');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  it('configuration is checked: https beyond loopback, keys, retries', () => {
    const bad = (o) => assert.throws(() => new RevocationClient({ url: 'http://127.0.0.1:1', apiKey: 'k', ...o }), (e) => e.code === 'INVALID_OPTIONS');
    bad({ url: 'http://revocation.example' });
    bad({ url: 'ftp://127.0.0.1' });
    bad({ apiKey: 'has space' });
    bad({ apiKey: '' });
    bad({ retry: { maxAttempts: 0 } });
    bad({ url: 'http://127.0.0.1:1/?x=1' });
    assert.ok(new RevocationClient({ url: 'http://revocation.internal', apiKey: 'k', allowPlainHttp: true }));
    assert.ok(new RevocationClient({ url: 'https://revocation.example', apiKey: 'k' }));
  });

  it('waitForEdge resolves once the event is replicated; fetchDenylistKey gives the pinned key', async () => {
    assert.deepEqual(await client.fetchDenylistKey(), svc.publicJwk);
    const pending = client.logout('edge-sid', { iss: ISS });
    const { seq } = await pending;
    assert.ok((await client.waitForEdge(seq, { timeoutMs: 5000 })) >= seq);
    // A sequence the service has not reached: parked, then DEADLINE.
    await assert.rejects(client.waitForEdge(seq + 1000, { timeoutMs: 1200 }), (e) => e.code === 'DEADLINE');
  });
});

describe('Refresher: the refresh flow against the real service', { skip: serviceSkip }, () => {
  let svc;
  before(async () => {
    svc = await startService({ keys: { origin: ['events:write', '--issuer', ISS], read: ['denylist:read'] } });
  });
  after(async () => svc?.stop());

  for (const alg of ['ES256', 'RS256']) {
    it(`${alg}: rotated, reuse_detected (the session's access token then revoked), expired, invalid`, async () => {
      let ms = Date.now();
      const clock = () => ms;
      const issuer = await Issuer.generate({ issuer: ISS, audience: AUD, alg, clock, refreshTtlSeconds: 3600 });
      const client = new RevocationClient({ url: svc.url, apiKey: svc.keys.origin, retry: fast });
      const auth = new Refresher(issuer, client);
      const remote = new RemoteDenylist({ url: svc.url, token: svc.keys.read, publicJwk: svc.publicJwk, waitSeconds: 2 });
      await remote.start();
      try {
        const login = await auth.start({ sub: 'erin', sid: `sess-${alg}-${Date.now()}`, roles: ['user'] });
        const verifier = issuer.accessVerifier({ denylist: remote });
        assert.equal((await verifier.verify(login.access.token)).sub, 'erin');

        // 1. rotated: the new pair, sub/sid from the refresh token whatever the callback says
        const seen = [];
        const r1 = await auth.refresh(login.refresh.token, (p) => {
          seen.push(p);
          return { sub: 'someone-else', sid: 'other', roles: ['user', 'fresh'] };
        });
        assert.equal(r1.outcome, 'rotated', JSON.stringify(r1));
        assert.equal(seen[0].jti, login.refresh.jti);
        assert.equal(r1.pair.access.sub, 'erin');
        assert.equal(r1.pair.access.sid, login.access.sid);
        assert.deepEqual((await verifier.verify(r1.pair.access.token)).roles, ['user', 'fresh']);
        assert.equal(r1.pair.refresh.sid, login.refresh.sid);
        assert.equal(r1.grace, false);

        // 2. reuse_detected: the first refresh token again
        const r2 = await auth.refresh(login.refresh.token, {});
        assert.equal(r2.outcome, 'reuse_detected');
        assert.equal(r2.sid, login.access.sid);
        await remote.waitForSeq(r2.seq, { timeoutMs: 5000 });
        assert.equal((await verifier.check(r1.pair.access.token)).reason, 'revoked', 'the whole session is revoked at the edge');
        // ... and the newest refresh token of the family is dead too
        const r3 = await auth.refresh(r1.pair.refresh.token, {});
        assert.ok(r3.outcome === 'reuse_detected' || (r3.outcome === 'invalid' && r3.reason === 'session_revoked'), JSON.stringify(r3));

        // 3. expired: never reaches the service
        const later = await auth.start({ sub: 'erin', sid: `sess2-${alg}-${Date.now()}` });
        ms += 3601 * 1000;
        assert.deepEqual(await auth.refresh(later.refresh.token, {}), { outcome: 'expired' });
        ms -= 3601 * 1000;

        // 4. invalid: an access token presented as a refresh token; garbage; another issuer's key
        assert.deepEqual(await auth.refresh(later.access.token, {}), { outcome: 'invalid', reason: 'invalid_type' });
        assert.deepEqual(await auth.refresh('not.a.token', {}), { outcome: 'invalid', reason: 'malformed' });
        const stranger = await Issuer.generate({ issuer: ISS, audience: AUD, alg, clock });
        const forged = await stranger.issueRefresh({ sub: 'erin', sid: later.refresh.sid });
        assert.deepEqual(await auth.refresh(forged.token, {}), { outcome: 'invalid', reason: 'unknown_key' });
        // ... and refusals of the service: a logged-out session
        await client.logout(later.refresh.sid, { iss: ISS });
        assert.deepEqual(await auth.refresh(later.refresh.token, {}), { outcome: 'invalid', reason: 'session_revoked' });
        // A session the service never heard of.
        const unknown = await issuer.issueRefresh({ sub: 'erin', sid: 'never-started' });
        assert.deepEqual(await auth.refresh(unknown.token, {}), { outcome: 'invalid', reason: 'unknown_session' });
        assert.ok(new Verifier({ jwks: JSON.parse(issuer.jwks().body) }));
      } finally {
        await remote.stop();
      }
    });
  }

  it('the service unreachable is an error, not an outcome', async () => {
    const issuer = await Issuer.generate({ issuer: ISS, audience: AUD });
    const client = new RevocationClient({ url: 'http://127.0.0.1:9', apiKey: 'k', retry: { maxAttempts: 2, baseMs: 10, maxMs: 20 } });
    const pair = await issuer.issuePair({ sub: 'a', sid: 's' });
    await assert.rejects(new Refresher(issuer, client).refresh(pair.refresh.token, {}), (e) => e.code === 'UNREACHABLE');
  });
});
