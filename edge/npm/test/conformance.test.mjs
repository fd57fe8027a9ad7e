// Every case of shared/conformance/cases/*.jsonl through the package: verify()
// (WebCrypto), verifySync() (pure Rust in wasm), check()/checkSync(), and a second
// verify() that is served by the verified-token cache for accepted tokens.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { caseDenylist, conformanceCases, pkg, policyOptions } from './helpers.mjs';

const { Verifier, Denylist, TollgateError, REASONS } = pkg;

function outcome(fn) {
  try {
    fn();
    return { verdict: 'accept' };
  } catch (e) {
    if (!(e instanceof TollgateError)) throw e;
    return { verdict: 'reject', reason: e.reason, code: e.code };
  }
}

async function outcomeAsync(fn) {
  try {
    await fn();
    return { verdict: 'accept' };
  } catch (e) {
    if (!(e instanceof TollgateError)) throw e;
    return { verdict: 'reject', reason: e.reason, code: e.code };
  }
}

function expected(c) {
  return c.expect.verdict === 'accept' ? { verdict: 'accept' } : { verdict: 'reject', reason: c.expect.reason };
}

function strip(o) {
  return o.verdict === 'accept' ? o : { verdict: o.verdict, reason: o.reason };
}

let total = 0;
for (const { file, cases } of conformanceCases()) {
  describe(file, () => {
    for (const c of cases) {
      total += 1;
      it(c.id, async () => {
        const want = expected(c);
        if (want.reason) assert.ok(REASONS.includes(want.reason), `case reason ${want.reason} is a known reason`);
        const denylist = caseDenylist(Denylist, c.denylist);
        const opts = { now: c.now, denylist };
        // A verifier per mode, so each mode starts with an empty cache.
        const make = () => new Verifier({ jwks: c.jwks, ...policyOptions(c.policy) });

        const viaWebCrypto = await outcomeAsync(() => make().verify(c.token, opts));
        assert.deepEqual(strip(viaWebCrypto), want, 'verify() (WebCrypto)');
        if (want.reason === 'expired') assert.equal(viaWebCrypto.code, 'TOKEN_EXPIRED');

        assert.deepEqual(strip(outcome(() => make().verifySync(c.token, opts))), want, 'verifySync() (pure Rust)');

        const checked = await make().check(c.token, opts);
        assert.equal(checked.ok, want.verdict === 'accept', 'check()');
        assert.equal(checked.reason, want.reason, 'check() reason');
        const checkedSync = make().checkSync(c.token, opts);
        assert.equal(checkedSync.ok, want.verdict === 'accept', 'checkSync()');
        assert.equal(checkedSync.reason, want.reason, 'checkSync() reason');

        // Twice through one verifier: the second accepted verify() is a cache hit and
        // must agree, for both paths.
        const v = make();
        const first = await outcomeAsync(() => v.verify(c.token, opts));
        const second = await outcomeAsync(() => v.verify(c.token, opts));
        const third = outcome(() => v.verifySync(c.token, opts));
        assert.deepEqual([strip(first), strip(second), strip(third)], [want, want, want], 'repeated through the cache');
        assert.equal(v.cacheSize, want.verdict === 'accept' ? 1 : 0, 'only accepted tokens are cached');
      });
    }
  });
}

it('ran every conformance case', () => {
  assert.ok(total >= 90, `expected the full suite, found ${total} cases`);
});
