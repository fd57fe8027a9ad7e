// Every case of shared/conformance/cases/*.jsonl through the package in Node:
// verify() (WebCrypto), verifySync() (pure Rust in wasm), check()/checkSync(), and a
// second verify() that is served by the verified-token cache for accepted tokens.
// judge.mjs holds how a case is run and judged; the Deno and Chromium tests use it too.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { conformanceCases, joseCases, pkg } from './helpers.mjs';
import { expectedResult, runCase } from './judge.mjs';

let total = 0;
for (const { file, cases } of conformanceCases()) {
  describe(file, () => {
    for (const c of cases) {
      total += 1;
      it(c.id, async () => {
        if (c.expect.verdict !== 'accept') assert.ok(pkg.REASONS.includes(c.expect.reason), `case reason ${c.expect.reason} is a known reason`);
        assert.deepEqual(await runCase(pkg, c), expectedResult(c));
      });
    }
  });
}

it('ran every conformance case', () => {
  assert.ok(total >= 90, `expected the full suite, found ${total} cases`);
});

// The jose-minted set the Deno and Chromium tests also run: the Node baseline for them.
describe('jose-minted ES256/RS256 tokens and Denylist revocations', async () => {
  for (const c of await joseCases()) {
    it(c.id, async () => assert.deepEqual(await runCase(pkg, c), expectedResult(c)));
  }
});
