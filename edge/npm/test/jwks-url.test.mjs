// Verifier.fromJwksUrl against a local JWKS server: caching by Cache-Control, key
// rotation, the unknown-kid cooldown (no fetch storm), shared in-flight fetches, and
// keeping the last good set when the server fails. Time is a hand-cranked clock.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { NOW, keyPair, listen, manualClock, pkg, sign } from './helpers.mjs';

const { Verifier, TollgateError } = pkg;

let srv, state, k1, k2;

before(async () => {
  k1 = await keyPair('ES256', 'k1');
  k2 = await keyPair('RS256', 'k2');
  state = { keys: [k1.jwk], status: 200, cacheControl: 'public, max-age=600', fetches: 0, hold: null };
  srv = await listen(async (req, res) => {
    state.fetches += 1;
    if (state.hold) await state.hold;
    if (state.status !== 200) {
      res.writeHead(state.status).end('nope');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': state.cacheControl });
    res.end(JSON.stringify({ keys: state.keys }));
  });
});

after(() => srv.close());

function reset() {
  state.keys = [k1.jwk];
  state.status = 200;
  state.cacheControl = 'public, max-age=600';
  state.fetches = 0;
  state.hold = null;
}

describe('Verifier.fromJwksUrl', () => {
  it('fetches once, then serves from the cached set until max-age passes', async () => {
    reset();
    const clock = manualClock();
    const v = await Verifier.fromJwksUrl(`${srv.url}/jwks`, { clock });
    const t = await sign(k1, { sub: 'a', exp: NOW + 3600 });
    for (let i = 0; i < 5; i++) assert.equal((await v.verify(t)).sub, 'a');
    assert.equal(state.fetches, 1);
    clock.advance(599_000);
    await v.verify(t);
    assert.equal(state.fetches, 1, 'still fresh');
    clock.advance(2_000);
    await v.verify(t); // stale: a background refetch starts, this call uses the cached set
    await v.jwksSource.whenIdle();
    assert.equal(state.fetches, 2);
    assert.equal(v.jwksSource.fetchCount, 2);
  });

  it('picks up a rotated-in key on an unknown kid; a removed key stops verifying after refresh', async () => {
    reset();
    const clock = manualClock();
    const v = await Verifier.fromJwksUrl(`${srv.url}/jwks`, { clock });
    const old = await sign(k1, { sub: 'old', exp: NOW + 3600 });
    const fresh = await sign(k2, { sub: 'new', exp: NOW + 3600 });
    await assert.rejects(v.verify(fresh), (e) => e.reason === 'unknown_key');
    assert.equal(state.fetches, 2, 'the unknown kid caused one refetch');
    state.keys = [k1.jwk, k2.jwk];
    // Within the cooldown: no refetch, still unknown.
    await assert.rejects(v.verify(fresh), (e) => e.reason === 'unknown_key');
    assert.equal(state.fetches, 2);
    clock.advance(30_000);
    assert.equal((await v.verify(fresh)).sub, 'new');
    assert.equal(state.fetches, 3);
    assert.equal((await v.verify(old)).sub, 'old', 'the old key is still valid until removed');
    state.keys = [k2.jwk];
    clock.advance(600_000);
    await v.verify(fresh); // stale: background refresh
    await v.jwksSource.whenIdle();
    assert.equal(state.fetches, 4);
    await assert.rejects(v.verify(old), (e) => e instanceof TollgateError && e.reason === 'unknown_key');
  });

  it('a storm of random kids causes at most one refetch per cooldown, shared by all', async () => {
    reset();
    const clock = manualClock();
    const v = await Verifier.fromJwksUrl(`${srv.url}/jwks`, { clock, cooldownSeconds: 30 });
    let release;
    state.hold = new Promise((r) => (release = r));
    const tokens = await Promise.all(Array.from({ length: 50 }, (_, i) => sign(k1, { exp: NOW + 60 }, { kid: `rand-${i}` })));
    const all = Promise.allSettled(tokens.map((t) => v.verify(t)));
    await waitForFetches(2);
    release();
    const results = await all;
    assert.ok(results.every((r) => r.status === 'rejected' && r.reason.reason === 'unknown_key'));
    assert.equal(state.fetches, 2, 'one refetch for 50 unknown kids');
    for (const t of tokens.slice(0, 10)) assert.equal((await v.check(t)).reason, 'unknown_key');
    assert.equal(state.fetches, 2, 'none within the cooldown');
    assert.equal(v.checkSync(tokens[0]).reason, 'unknown_key');
    clock.advance(30_000);
    await v.check(tokens[0]);
    assert.equal(state.fetches, 3, 'one more after the cooldown');
  });

  it('keeps the last good set when the server fails, and reports it', async () => {
    reset();
    const clock = manualClock();
    const errors = [];
    const v = await Verifier.fromJwksUrl(`${srv.url}/jwks`, { clock, onError: (e) => errors.push(e) });
    const t = await sign(k1, { sub: 'a', exp: NOW + 3600 });
    state.status = 500;
    clock.advance(601_000);
    await v.verify(t);
    await v.jwksSource.whenIdle();
    assert.equal(state.fetches, 2);
    assert.equal((await v.verify(t)).sub, 'a', 'last good set still in use');
    assert.equal(errors.length, 1);
    assert.equal(errors[0].code, 'JWKS_FETCH');
    state.cacheControl = 'no-store';
    await assert.rejects(Verifier.fromJwksUrl(`${srv.url}/jwks`, { clock }), (e) => e.code === 'JWKS_FETCH');
  });

  it('an invalid document keeps the last good set', async () => {
    reset();
    const clock = manualClock();
    const v = await Verifier.fromJwksUrl(`${srv.url}/jwks`, { clock });
    const t = await sign(k1, { sub: 'a', exp: NOW + 3600 });
    state.keys = 'not a list';
    clock.advance(601_000);
    await v.verify(t);
    await v.jwksSource.whenIdle();
    assert.equal((await v.verify(t)).sub, 'a');
    assert.equal(v.jwksSource.lastError?.code, 'INVALID_JWKS');
  });
});

async function waitForFetches(n) {
  const deadline = Date.now() + 5000;
  while (state.fetches < n) {
    if (Date.now() > deadline) throw new Error(`expected ${n} fetches, saw ${state.fetches}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
